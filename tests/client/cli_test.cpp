// `gpumart leases`, `status`, `close` and `lease manifest` through the real CLI, against a node's
// client port: a provider and a relay in this process (real sockets), and a real gpumartd for
// the client.address file the CLI finds the local daemon by.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "node/client/client.h"
#include "tests/client/client_test_util.h"
#include "tests/eventually.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart::client {
namespace {

using gpumart::testing::Eventually;

using namespace std::chrono_literals;
using gpumart::testing::GpumartBinary;
using gpumart::testing::RunProcess;
using testing::Now;
using testing::Signed;

class ClientCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A developer's own ~/.config/gpumart/client.yaml must not steer the commands.
    setenv("GPUMART_CLIENT_CONFIG", dir_.Sub("no-client.yaml").c_str(), 1);
  }

  // A provider with a relay in front; the tenant leases through the relay's port.
  void MakeLease() {
    const bidding::Inventory inventory = testing::EightH100();
    auto provider = node::NodeContext::Start(testing::ProviderConfig(dir_.Sub("provider")), &inventory,
                                             node::ProviderOptions{.offer_debounce_ms = 20});
    ASSERT_TRUE(provider.ok()) << provider.status().ToString();
    provider_ = std::move(provider).value();
    node::NodeConfig config = testing::LoopbackConfig(dir_.Sub("relay"));
    config.bootstrap = {provider_->peer_address()};
    auto relay = node::NodeContext::Start(config);
    ASSERT_TRUE(relay.ok()) << relay.status().ToString();
    relay_ = std::move(relay).value();
    auto client = Client::Connect(relay_->client_address());
    ASSERT_TRUE(client.ok());
    const auto order = market::MakeSigned(tenant_, testing::ServableOrder(), Now(), 60'000, market::RandomNonce());
    ASSERT_TRUE((*client)->Publish(market::EncodeEnvelope(order.envelope)).ok());
    auto bid_event = (*client)->WaitEvent(5s);
    ASSERT_TRUE(bid_event.ok()) << bid_event.status().ToString();
    auto bid = market::OpenSigned<market::Bid>(bid_event->envelope, Now());
    ASSERT_TRUE(bid.ok());
    ASSERT_TRUE((*client)->Publish(Signed(tenant_, market::Accept{order.id, bid->id, bid->envelope.signer})).ok());
    auto lease_event = (*client)->WaitEvent(5s);
    ASSERT_TRUE(lease_event.ok()) << lease_event.status().ToString();
    lease_id_ = market::ToHex(lease_event->id);
    ASSERT_TRUE(Eventually([&] { return relay_->ledger().store().GetLease(lease_event->id).ok(); }));
    ASSERT_TRUE(market::WriteKeyFile(dir_.Sub("tenant.key"), tenant_).ok());
    ASSERT_TRUE(market::WriteKeyFile(dir_.Sub("stranger.key"), market::Identity::Generate()).ok());
  }

  gpumart::testing::TempDir dir_{"client-cli-test"};
  const market::Identity tenant_ = market::Identity::Generate();
  std::unique_ptr<node::NodeContext> provider_;
  std::unique_ptr<node::NodeContext> relay_;
  std::string lease_id_;
};

TEST_F(ClientCliTest, LeasesStatusAndCloseOverTheClientPort) {
  ASSERT_NO_FATAL_FAILURE(MakeLease());
  const std::string node = relay_->client_address();

  auto leases = RunProcess({GpumartBinary(), "leases", "--node", node, "--json"});
  ASSERT_EQ(leases.exit_code, 0) << leases.err;
  const nlohmann::json page = nlohmann::json::parse(leases.out);
  ASSERT_EQ(page["leases"].size(), 1u);
  EXPECT_EQ(page["leases"][0]["id"], lease_id_);
  EXPECT_EQ(page["leases"][0]["tenant"], market::ToHex(tenant_.public_key()));
  auto table = RunProcess({GpumartBinary(), "leases", "--node", node, "--state", "active"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find(lease_id_ + "  active"), std::string::npos) << table.out;

  auto status = RunProcess({GpumartBinary(), "status", "--node", provider_->client_address(), "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const nlohmann::json state = nlohmann::json::parse(status.out);
  EXPECT_EQ(state["role"], "provider");
  EXPECT_EQ(state["leases_active"], 1);
  EXPECT_EQ(state["ready_peers"], 1);
  auto human = RunProcess({GpumartBinary(), "status", "--node", provider_->client_address()});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("leases     1 active"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("uakt/h"), std::string::npos) << human.out;

  // Someone else's key: refused by the node, exit 1, and the lease stays active.
  auto foreign = RunProcess({GpumartBinary(), "close", lease_id_, "--key", dir_.Sub("stranger.key"), "--node", node});
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_NE(foreign.err.find("neither the tenant"), std::string::npos) << foreign.err;
  // A key file that is not there: a clear message how to make one.
  auto nokey = RunProcess({GpumartBinary(), "close", lease_id_, "--key", dir_.Sub("none.key"), "--node", node});
  EXPECT_EQ(nokey.exit_code, 1);
  EXPECT_NE(nokey.err.find("gpumart keygen"), std::string::npos) << nokey.err;
  // The tenant's own close.
  auto closed = RunProcess({GpumartBinary(), "close", lease_id_, "--key", dir_.Sub("tenant.key"), "--node", node, "--json"});
  ASSERT_EQ(closed.exit_code, 0) << closed.err;
  EXPECT_EQ(nlohmann::json::parse(closed.out)["reason"], "tenant-closed");
  ASSERT_TRUE(Eventually([&] {
    auto after = RunProcess({GpumartBinary(), "leases", "--node", node, "--state", "closed", "--json"});
    return after.exit_code == 0 && nlohmann::json::parse(after.out)["leases"].size() == 1;
  }));

  // No node answering there: a timeout that says so, not a hang.
  auto nobody = RunProcess({GpumartBinary(), "status", "--node", "tcp://127.0.0.1:9"});
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_NE(nobody.err.find("no answer"), std::string::npos) << nobody.err;
}

// The daemon writes its client address to its data dir; the CLI finds it there, and reads the
// ledger directly once the daemon has stopped (and removed the file).
TEST_F(ClientCliTest, TheLocalDaemonIsFoundByItsDataDir) {
  const std::string data = dir_.Sub("daemon");
  const std::string config = dir_.Sub("relay.yaml");
  std::ofstream(config) << "listen: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*\n";
  gpumart::testing::ChildProcess daemon({std::string(GPUMART_BIN_DIR) + "/gpumartd", "--config", config, "--data-dir", data});
  ASSERT_TRUE(daemon.WaitForOutput("gpumartd ready")) << daemon.out() << daemon.err();
  EXPECT_NE(daemon.out().find("client port listening on tcp://127.0.0.1:"), std::string::npos) << daemon.out();
  auto address = LocalDaemonAddress(data);
  ASSERT_TRUE(address.ok()) << address.status().ToString();

  auto status = RunProcess({GpumartBinary(), "status", "--data-dir", data, "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(nlohmann::json::parse(status.out)["role"], "relay");
  auto live = RunProcess({GpumartBinary(), "leases", "--data-dir", data});
  ASSERT_EQ(live.exit_code, 0) << live.err;  // the ledger is locked: this went over the port
  EXPECT_EQ(live.out, "no leases\n");

  EXPECT_EQ(daemon.SignalAndWait(SIGTERM), 0);
  EXPECT_FALSE(std::filesystem::exists(data + "/" + kClientAddressFile));
  auto offline = RunProcess({GpumartBinary(), "leases", "--data-dir", data});
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_EQ(offline.out, "no leases\n");
  auto stopped = RunProcess({GpumartBinary(), "status", "--data-dir", data});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_NE(stopped.err.find("start gpumartd"), std::string::npos) << stopped.err;
}

}  // namespace
}  // namespace gpumart::client
