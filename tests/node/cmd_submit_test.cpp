// `gpumart submit` in process (RunCli) against real nodes on loopback: a relay NodeContext whose
// client port the command talks to, and provider NodeContexts (real bid engines, ledgers and
// gossip) bootstrapped to it. The command signs, gets the relay's dry run, publishes, collects
// real bids, accepts, and verifies the real Lease.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/clock.h"
#include "bidding/inventory.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "node/cli.h"
#include "node/node_context.h"
#include "tests/eventually.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

using gpumart::testing::Eventually;

using nlohmann::json;
using market::kGi;
using market::kTi;

// One GPU for the llm: an 80Gi H100 if possible, else an A100 with 40Gi or more.
constexpr const char* kFallbackSdl = R"(version: "2.0"
services:
  llm:
    image: vllm/vllm-openai:latest
profiles:
  compute:
    llm:
      resources:
        cpu: {units: 4}
        memory: {size: 16Gi}
        storage: {size: 10Gi}
        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: h100
                  ram: 80Gi
                - model: a100
                  ram: 40Gi
  placement:
    west:
      attributes: {region: us-west}
      pricing:
        llm: {denom: uakt, amount: 100000}
deployment:
  llm:
    west: {profile: llm, count: 1}
)";

struct CliRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

CliRun Submit(std::vector<std::string> args) {
  std::vector<std::string> argv{"gpumart", "submit"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<const char*> pointers;
  for (const std::string& arg : argv) pointers.push_back(arg.c_str());
  std::ostringstream out;
  std::ostringstream err;
  CliRun run;
  run.exit_code = RunCli(static_cast<int>(pointers.size()), pointers.data(), out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

// A relay with a client port, and providers of one GPU model each.
class SubmitMarket {
 public:
  SubmitMarket() : dir_("cmd-submit-test") {
    NodeConfig config;
    config.data_dir = dir_.Sub("relay");
    config.listen = "tcp://127.0.0.1:*";
    config.client_listen = "tcp://127.0.0.1:*";
    auto started = NodeContext::Start(config);
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    if (started.ok()) relay_ = std::move(started).value();
  }

  // A provider of `count` GPUs `model` with `ram_gi`, at `rate` per GPU-hour, in us-west.
  NodeContext* AddProvider(const std::string& model, uint64_t ram_gi, uint64_t rate, uint32_t count = 2) {
    NodeConfig config;
    config.role = NodeRole::kProvider;
    config.data_dir = dir_.Sub("provider" + std::to_string(providers_.size()));
    config.listen = "";
    config.client_listen = "";
    config.bootstrap = {relay_->peer_address()};
    market::PriceTable table;
    table.denom = "uakt";
    table.gpu = {{"*", rate}};
    table.cpu = 1'000;
    table.memory = 100;
    table.storage = 10;
    config.pricing_policy.tables = {table};
    bidding::Inventory inventory;
    inventory.attributes = {{"region", "us-west"}};
    market::NodeCapacity node{"n1", 64'000, 512 * kGi, 2 * kTi,
                              {market::GpuDevices{"nvidia", model, ram_gi * kGi, market::GpuInterface::kSxm,
                                                  market::CudaVersion{12, 4}, count}}};
    inventory.nodes = {node};
    auto started = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 20});
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    if (!started.ok()) return nullptr;
    providers_.push_back(std::move(started).value());
    return providers_.back().get();
  }

  // Until the relay's offer book holds every provider's offer.
  bool WaitForOffers() {
    return Eventually([&] {
      auto status = relay_->OfferStatus();
      return status.ok() && status->offers == providers_.size();
    });
  }

  NodeContext& relay() { return *relay_; }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.Sub(name);
    std::ofstream(path) << text;
    return path;
  }
  const gpumart::testing::TempDir& dir() const { return dir_; }

 private:
  gpumart::testing::TempDir dir_;
  std::unique_ptr<NodeContext> relay_;
  std::vector<std::unique_ptr<NodeContext>> providers_;
};

// The SDL's first choice (an H100) wins under preference though the A100 is cheaper; the window
// closes early (every candidate answered, or the H100 bid is unbeatable); the lease is the
// H100 provider's, and the relay's ledger records it.
TEST(CmdSubmitTest, SubmitGetsTheLeaseOfThePreferredProvider) {
  SubmitMarket market;
  NodeContext* h100 = market.AddProvider("h100", 80, 300'000);
  ASSERT_NE(h100, nullptr);
  ASSERT_NE(market.AddProvider("a100", 80, 100'000), nullptr);
  ASSERT_TRUE(market.WaitForOffers());
  const std::string sdl = market.Write("deploy.yaml", kFallbackSdl);
  const std::string key = market.dir().Sub("tenant.key");

  const auto started = std::chrono::steady_clock::now();
  CliRun run = Submit({sdl, "--node", market.relay().client_address(), "--key", key, "--json",
                       "--bid-window", "5000"});
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  const json doc = json::parse(run.out);
  EXPECT_TRUE(doc.at("ok").get<bool>());
  ASSERT_EQ(doc.at("groups").size(), 1u);
  const json& group = doc.at("groups")[0];
  EXPECT_NE(group.at("window"), "deadline") << group.dump();
  EXPECT_EQ(group.at("lease").at("provider"), market::ToHex(h100->identity().public_key()));
  // Both bids when every candidate answered. The H100's bid closes the window as unbeatable when
  // it comes: with the A100's in hand (2 bids) or alone (1).
  if (group.at("window") == "all-answered") {
    EXPECT_EQ(group.at("bids").size(), 2u) << group.dump();
  } else {
    EXPECT_EQ(group.at("window"), "unbeatable") << group.dump();
    EXPECT_GE(group.at("bids").size(), 1u) << group.dump();
  }
  EXPECT_EQ(group.at("accepts"), 1);
  EXPECT_LT(took, std::chrono::seconds(4));  // closed early, not at the 5 s window
  // The key file was created (given by --key), mode 0600, and said so.
  struct stat info {};
  ASSERT_EQ(::stat(key.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_NE(run.err.find("created the tenant key " + key), std::string::npos) << run.err;

  const std::string lease_id = group.at("lease").at("id");
  auto id = market::FromHex<market::kIdBytes>(lease_id);
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE(Eventually([&] { return market.relay().ledger().store().GetLease(*id).ok(); }));
}

// Cheapest takes the A100; the table names the lease.
TEST(CmdSubmitTest, CheapestTakesTheCheaperDeviceAndPrintsATable) {
  SubmitMarket market;
  ASSERT_NE(market.AddProvider("h100", 80, 300'000), nullptr);
  NodeContext* a100 = market.AddProvider("a100", 80, 100'000);
  ASSERT_NE(a100, nullptr);
  ASSERT_TRUE(market.WaitForOffers());
  const std::string sdl = market.Write("deploy.yaml", kFallbackSdl);
  CliRun run = Submit({sdl, "--node", market.relay().client_address(), "--key", market.dir().Sub("tenant.key"),
                       "--policy", "cheapest"});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  // Under `cheapest` nothing beats the a100's bid: it closes the window as unbeatable when it
  // comes (bidding/tenant_session.h, "Closing the window early"), so the h100's bid is in the
  // table only when it came first. The lease is the a100's either way.
  EXPECT_TRUE(run.out.find("group west: 2 bids (window closed: ") != std::string::npos ||
              run.out.find("group west: 1 bid (window closed: unbeatable") != std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("lease "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("provider " + market::ToHex(a100->identity().public_key())), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("a100 80Gi sxm"), std::string::npos) << run.out;
}

// Nobody serves eu-central: no bids, the dry run's reason, exit 1 at once (not after the window).
TEST(CmdSubmitTest, NoProviderExplainsWhyAndExitsNonZero) {
  SubmitMarket market;
  ASSERT_NE(market.AddProvider("h100", 80, 300'000), nullptr);
  ASSERT_TRUE(market.WaitForOffers());
  std::string text = kFallbackSdl;
  text.replace(text.find("us-west"), 7, "eu-central");
  const std::string sdl = market.Write("eu.yaml", text);
  const auto started = std::chrono::steady_clock::now();
  CliRun run = Submit({sdl, "--node", market.relay().client_address(), "--key", market.dir().Sub("tenant.key"),
                       "--json", "--bid-window", "5000"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  EXPECT_EQ(run.exit_code, kExitFailure);
  const json doc = json::parse(run.out);
  EXPECT_FALSE(doc.at("ok").get<bool>());
  const json& group = doc.at("groups")[0];
  EXPECT_TRUE(group.at("lease").is_null());
  const std::string error = group.at("error");
  EXPECT_NE(error.find("placement attribute region=eu-central not offered (1 of 1 providers)"), std::string::npos)
      << error;
  EXPECT_NE(run.err.find("got no lease"), std::string::npos) << run.err;
}

// Without --key the key lives in $XDG_CONFIG_HOME/gpumart (else ~/.config/gpumart), created once.
TEST(CmdSubmitTest, TheDefaultTenantKeyIsCreatedOnceUnderTheConfigHome) {
  gpumart::testing::TempDir config_dir("cmd-submit-config");
  const std::string config_home = config_dir.Sub("config");
  // Set while no other thread runs (setenv is not thread-safe); the market starts after.
  ::setenv("XDG_CONFIG_HOME", config_home.c_str(), 1);
  CliRun first;
  CliRun second;
  {
    SubmitMarket market;
    ASSERT_NE(market.AddProvider("h100", 80, 300'000), nullptr);
    ASSERT_TRUE(market.WaitForOffers());
    const std::string sdl = market.Write("deploy.yaml", kFallbackSdl);
    first = Submit({sdl, "--node", market.relay().client_address()});
    second = Submit({sdl, "--node", market.relay().client_address(), "--json"});
  }
  ::unsetenv("XDG_CONFIG_HOME");
  const std::string key = config_home + "/gpumart/tenant.key";
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("created the tenant key " + key), std::string::npos) << first.err;
  EXPECT_EQ(second.exit_code, 0) << second.err;  // the provider has 2 GPUs: one lease each
  EXPECT_EQ(second.err.find("created the tenant key"), std::string::npos) << second.err;
  auto identity = market::LoadKeyFile(key);
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_EQ(json::parse(second.out).at("tenant"), market::ToHex(identity->public_key()));
}

// An unknown SDL field is a warning on stderr (the submit goes on); --strict refuses the file.
TEST(CmdSubmitTest, UnknownSdlFieldsWarnAndStrictRefuses) {
  SubmitMarket market;
  ASSERT_NE(market.AddProvider("h100", 80, 300'000), nullptr);
  ASSERT_TRUE(market.WaitForOffers());
  std::string text = kFallbackSdl;
  text.replace(text.find("    image:"), 0, "    colour: red\n");
  const std::string sdl = market.Write("colour.yaml", text);
  const std::string key = market.dir().Sub("tenant.key");
  CliRun strict = Submit({sdl, "--node", market.relay().client_address(), "--key", key, "--strict"});
  EXPECT_EQ(strict.exit_code, kExitFailure);
  EXPECT_NE(strict.err.find("colour"), std::string::npos) << strict.err;
  EXPECT_TRUE(strict.out.empty()) << strict.out;
  CliRun lenient = Submit({sdl, "--node", market.relay().client_address(), "--key", key});
  EXPECT_EQ(lenient.exit_code, 0) << lenient.err;
  EXPECT_NE(lenient.err.find("warning: " + sdl), std::string::npos) << lenient.err;
  EXPECT_NE(lenient.err.find("colour"), std::string::npos) << lenient.err;
}

TEST(CmdSubmitTest, BadInputsFailClearly) {
  gpumart::testing::TempDir dir("cmd-submit-bad");
  CliRun missing = Submit({dir.Sub("nope.yaml"), "--node", "tcp://127.0.0.1:1", "--key", dir.Sub("k")});
  EXPECT_EQ(missing.exit_code, kExitFailure);
  EXPECT_NE(missing.err.find("gpumart submit: "), std::string::npos);
  EXPECT_TRUE(missing.out.empty());
  CliRun usage = Submit({dir.Sub("x.yaml"), "--policy", "random"});
  EXPECT_EQ(usage.exit_code, kExitUsage);
}

}  // namespace
}  // namespace gpumart::node
