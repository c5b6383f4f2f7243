// gpumartd as a real process: starts, says it is ready, holds its ledger against a second
// daemon, and stops cleanly on SIGTERM; bad configs fail with a clear error; three daemons find
// each other over gossip from bootstrap config alone.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "node/gossip/gossip_node.h"
#include "tests/ledger/test_leases.h"
#include "tests/market/test_messages.h"
#include "tests/node/gossip_peer.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using gpumart::testing::GossipPeer;

std::string Daemon() { return std::string(GPUMART_BIN_DIR) + "/gpumartd"; }

// A daemon in the background; killed by ChildProcess's destructor if a test fails early.
using DaemonProcess = testing::ChildProcess;

class GpumartdTest : public ::testing::Test {
 protected:
  // A config that listens (gossip and metrics) on free loopback ports (the defaults, 7700 and
  // 7702, may be taken, and tests run in parallel), plus `extra` lines.
  std::string LoopbackConfig(const std::string& name, const std::string& extra = "") {
    const std::string path = dir_ + "/" + name + ".yaml";
    std::ofstream(path) << "listen: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*\nmetrics_listen: 127.0.0.1:*\n" << extra;
    return path;
  }

  testing::TempDir temp_{"gpumartd-test"};
  const std::string& dir_ = temp_.path();
};

// The "gossip listening on ADDRESS" line a daemon prints before it is ready.
std::string PeerAddressOf(const std::string& out) {
  const std::string marker = "gossip listening on ";
  const size_t at = out.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return out.substr(start, out.find('\n', start) - start);
}

TEST_F(GpumartdTest, StartsReadyAndStopsCleanlyOnSigterm) {
  DaemonProcess daemon({Daemon(), "--config", LoopbackConfig("relay"), "--data-dir", dir_ + "/data"});
  ASSERT_TRUE(daemon.WaitForOutput("gpumartd ready")) << daemon.out();
  EXPECT_NE(daemon.out().find("role relay"), std::string::npos);
  // Its peer address: the loopback endpoint it bound and its identity.
  const std::string address = PeerAddressOf(daemon.out());
  EXPECT_TRUE(address.starts_with("tcp://127.0.0.1:")) << daemon.out();
  EXPECT_NE(address.find("/" + daemon.out().substr(daemon.out().find("node ") + 5, 64)), std::string::npos)
      << daemon.out();
  // Where it serves /metrics, printed before it is ready (docs/METRICS.md).
  EXPECT_NE(daemon.out().find("metrics listening on http://127.0.0.1:"), std::string::npos) << daemon.out();
  EXPECT_LT(daemon.out().find("metrics listening on"), daemon.out().find("gpumartd ready")) << daemon.out();
  struct stat info{};
  ASSERT_EQ(stat((dir_ + "/data/identity.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(daemon.SignalAndWait(SIGTERM), 0);
  // The same identity next time.
  DaemonProcess again({Daemon(), "--config", LoopbackConfig("relay"), "--data-dir", dir_ + "/data"});
  ASSERT_TRUE(again.WaitForOutput("gpumartd ready")) << again.out();
  const auto key_of = [](const std::string& text) { return text.substr(text.find("node ") + 5, 64); };
  EXPECT_EQ(key_of(again.out()), key_of(daemon.out()));
  EXPECT_EQ(again.SignalAndWait(SIGTERM), 0);
}

TEST_F(GpumartdTest, SecondDaemonOnTheSameDataDirIsRefused) {
  DaemonProcess first({Daemon(), "--config", LoopbackConfig("relay"), "--data-dir", dir_});
  ASSERT_TRUE(first.WaitForOutput("gpumartd ready")) << first.out();
  auto second = testing::RunProcess({Daemon(), "--config", LoopbackConfig("relay"), "--data-dir", dir_}, 20'000);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("ledger"), std::string::npos) << second.err;
  EXPECT_EQ(first.SignalAndWait(SIGTERM), 0);
}

TEST_F(GpumartdTest, ProviderConfigReadsItsOffers) {
  const std::string config = dir_ + "/provider.yaml";
  std::ofstream(config) << "listen: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*\nrole: provider\ndata_dir: " << dir_ << "/p\noffers: " << GPUMART_SOURCE_DIR
                        << "/configs/offers-example.yaml\n";
  DaemonProcess daemon({Daemon(), "--config", config});
  ASSERT_TRUE(daemon.WaitForOutput("gpumartd ready")) << daemon.out();
  EXPECT_NE(daemon.out().find("role provider"), std::string::npos);
  EXPECT_NE(daemon.out().find("offers 5"), std::string::npos);
  EXPECT_EQ(daemon.SignalAndWait(SIGTERM), 0);
}

// The shipped provider config (its inventory and prices in the config itself) starts; an
// impossible inventory stops the daemon with the exact key.
TEST_F(GpumartdTest, ProviderConfigWithInventory) {
  std::ifstream shipped(std::string(GPUMART_SOURCE_DIR) + "/configs/provider.yaml");
  std::stringstream text;
  text << shipped.rdbuf();
  std::string yaml = text.str();
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"listen: tcp://0.0.0.0:7700", "listen: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*"},
                                 {"data_dir: ./gpumart-provider-data", "data_dir: " + dir_ + "/p"},
                                 {"identity: ./gpumart-provider-data/identity.key", "identity: " + dir_ + "/p.key"}}) {
    ASSERT_NE(yaml.find(from), std::string::npos) << from;
    yaml.replace(yaml.find(from), from.size(), to);
  }
  const std::string config = dir_ + "/provider.yaml";
  std::ofstream(config) << yaml;
  DaemonProcess daemon({Daemon(), "--config", config});
  ASSERT_TRUE(daemon.WaitForOutput("gpumartd ready")) << daemon.out() << daemon.err();
  EXPECT_NE(daemon.out().find("role provider"), std::string::npos);
  EXPECT_NE(daemon.out().find("inventory 4 nodes 16 gpus"), std::string::npos) << daemon.out();
  EXPECT_EQ(daemon.SignalAndWait(SIGTERM), 0);

  const std::string from = "{model: h100, ram: 80Gi";
  yaml.replace(yaml.find(from), from.size(), "{model: h100, ram: 40Gi");
  std::ofstream(config, std::ios::trunc) << yaml;
  auto bad = testing::RunProcess({Daemon(), "--config", config});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("inventory.nodes[0].gpus[0].ram: 40Gi sxm is not a known h100"), std::string::npos) << bad.err;
}

TEST_F(GpumartdTest, BadConfigIsAClearError) {
  const std::string config = dir_ + "/bad.yaml";
  std::ofstream(config) << "role: miner\n";
  auto result = testing::RunProcess({Daemon(), "--config", config});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("role: \"miner\" is not relay|provider|tenant"), std::string::npos) << result.err;
  auto missing = testing::RunProcess({Daemon(), "--config", dir_ + "/none.yaml"});
  EXPECT_EQ(missing.exit_code, 1);
  auto usage = testing::RunProcess({Daemon(), "--bogus"});
  EXPECT_EQ(usage.exit_code, 2);
}

// Issue 12: three daemons on loopback; the 2nd and 3rd know only the 1st's printed address, and
// all three end up linked with each other (the 2nd and 3rd meet by peer exchange).
TEST_F(GpumartdTest, ThreeDaemonsFindEachOtherFromBootstrap) {
  DaemonProcess first({Daemon(), "--config", LoopbackConfig("first"), "--data-dir", dir_ + "/1"});
  ASSERT_TRUE(first.WaitForOutput("gpumartd ready")) << first.out() << first.err();
  const std::string bootstrap = PeerAddressOf(first.out());
  ASSERT_FALSE(bootstrap.empty()) << first.out();
  const std::string joiner = LoopbackConfig("joiner", "bootstrap:\n  - " + bootstrap + "\n");
  DaemonProcess second({Daemon(), "--config", joiner, "--data-dir", dir_ + "/2"});
  DaemonProcess third({Daemon(), "--config", joiner, "--data-dir", dir_ + "/3"});
  for (DaemonProcess* daemon : {&first, &second, &third}) {
    EXPECT_TRUE(daemon->WaitForOutput("gossip peers 2", 30'000)) << daemon->out() << daemon->err();
  }
  for (DaemonProcess* daemon : {&third, &second, &first}) {
    EXPECT_EQ(daemon->SignalAndWait(SIGTERM), 0) << daemon->err();
    EXPECT_NE(daemon->out().find("gpumartd stopped"), std::string::npos) << daemon->out();
  }
}

// Issue 12: a lease published at the first daemon reaches the third's ledger (two hops away at
// most, verified at each), where `gpumart leases` finds it after the daemons stopped.
TEST_F(GpumartdTest, GossipedLeaseIsRecordedInEveryLedger) {
  DaemonProcess first({Daemon(), "--config", LoopbackConfig("first"), "--data-dir", dir_ + "/1"});
  ASSERT_TRUE(first.WaitForOutput("gpumartd ready")) << first.out() << first.err();
  const std::string bootstrap = PeerAddressOf(first.out());
  const std::string joiner = LoopbackConfig("joiner", "bootstrap:\n  - " + bootstrap + "\n");
  DaemonProcess second({Daemon(), "--config", joiner, "--data-dir", dir_ + "/2"});
  DaemonProcess third({Daemon(), "--config", joiner, "--data-dir", dir_ + "/3"});
  for (DaemonProcess* daemon : {&first, &second, &third}) {
    ASSERT_TRUE(daemon->WaitForOutput("gossip peers 2", 30'000)) << daemon->out() << daemon->err();
  }

  GossipPeer publisher(bootstrap);
  ASSERT_TRUE(publisher.ok());
  ASSERT_TRUE(publisher.WaitReady(std::chrono::seconds(20)));
  ledger::testing::Parties parties;
  const auto lease = parties.FreshLease(SystemClock::Instance().NowMs());
  ASSERT_TRUE(publisher.Publish(lease.envelope).ok());
  for (DaemonProcess* daemon : {&first, &second, &third}) {
    EXPECT_TRUE(daemon->WaitForOutput("gossip recorded 1", 20'000)) << daemon->out() << daemon->err();
  }
  for (DaemonProcess* daemon : {&third, &second, &first}) EXPECT_EQ(daemon->SignalAndWait(SIGTERM), 0);

  for (const char* node : {"1", "3"}) {
    auto result = testing::RunProcess({testing::GpumartBinary(), "leases", "--data-dir", dir_ + "/" + node, "--json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto json = nlohmann::json::parse(result.out);
    ASSERT_EQ(json["leases"].size(), 1u) << result.out;
    EXPECT_EQ(json["leases"][0]["id"], market::ToHex(lease.id));
  }
}


// Issue 12: an Offer published at the first daemon is in the live offer book of the others
// (the daemons print their book's size), keyed by its signer.
TEST_F(GpumartdTest, GossipedOfferIsInEveryOfferBook) {
  DaemonProcess first({Daemon(), "--config", LoopbackConfig("first"), "--data-dir", dir_ + "/1"});
  ASSERT_TRUE(first.WaitForOutput("gpumartd ready")) << first.out() << first.err();
  const std::string bootstrap = PeerAddressOf(first.out());
  const std::string joiner = LoopbackConfig("joiner", "bootstrap:\n  - " + bootstrap + "\n");
  DaemonProcess second({Daemon(), "--config", joiner, "--data-dir", dir_ + "/2"});
  for (DaemonProcess* daemon : {&first, &second}) {
    ASSERT_TRUE(daemon->WaitForOutput("gossip peers 1", 30'000)) << daemon->out() << daemon->err();
  }
  GossipPeer publisher(bootstrap);
  ASSERT_TRUE(publisher.ok());
  ASSERT_TRUE(publisher.WaitReady(std::chrono::seconds(20)));
  const market::Identity provider = market::Identity::Generate();
  const auto offer = market::MakeSigned(provider, market::testing::SampleOffer(), SystemClock::Instance().NowMs(),
                                        60'000, 1);
  ASSERT_TRUE(publisher.Publish(offer.envelope).ok());
  for (DaemonProcess* daemon : {&first, &second}) {
    EXPECT_TRUE(daemon->WaitForOutput("offer book 1 offers", 20'000)) << daemon->out() << daemon->err();
  }
  for (DaemonProcess* daemon : {&second, &first}) EXPECT_EQ(daemon->SignalAndWait(SIGTERM), 0);
}

// Issue 13: a provider daemon behind a relay earns: an Order published into the relay reaches
// the provider, whose Bid comes back; its gossiped Offer follows its inventory on SIGHUP (a bad
// config is refused and the old one kept); SIGTERM withdraws the Offer (one with no nodes).
TEST_F(GpumartdTest, ProviderBehindARelayBidsReloadsAndWithdraws) {
  DaemonProcess relay({Daemon(), "--config", LoopbackConfig("relay"), "--data-dir", dir_ + "/relay"});
  ASSERT_TRUE(relay.WaitForOutput("gpumartd ready")) << relay.out() << relay.err();
  const std::string bootstrap = PeerAddressOf(relay.out());
  const auto provider_yaml = [&](int gpus) {
    return "role: provider\nlisten: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*\nbootstrap:\n  - " + bootstrap +
           "\ninventory:\n  attributes: {region: us-west}\n  nodes:\n    - {name: n1, cpu_millis: 64000, memory: 512Gi, "
           "storage: 2Ti, gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: " +
           std::to_string(gpus) + "}]}\npricing:\n  - {denom: uakt, gpu: {h100.80Gi.sxm: 300000}, cpu: 1000, memory: 200, storage: 10}\n";
  };
  const std::string config = dir_ + "/provider.yaml";
  std::ofstream(config) << provider_yaml(8);
  DaemonProcess provider({Daemon(), "--config", config, "--data-dir", dir_ + "/provider"});
  ASSERT_TRUE(provider.WaitForOutput("gossip peers 1", 20'000)) << provider.out() << provider.err();
  const size_t node_at = provider.out().find("node ");
  ASSERT_NE(node_at, std::string::npos);
  const std::string provider_key = provider.out().substr(node_at + 5, 64);

  GossipPeer tenant(bootstrap);
  ASSERT_TRUE(tenant.ok());
  const auto offer_with = [&](std::optional<uint64_t> gpus) {
    return [&, gpus](const gossip::Deliver& deliver) {
      auto offer = market::OpenSigned<market::Offer>(deliver.envelope, SystemClock::Instance().NowMs());
      if (!offer.ok() || market::ToHex(offer->envelope.signer) != provider_key) return false;
      if (!gpus) return offer->body.nodes.empty();
      uint64_t count = 0;
      for (const auto& node : offer->body.nodes) {
        for (const auto& devices : node.gpus) count += devices.count;
      }
      return count == *gpus;
    };
  };
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, offer_with(8))) << provider.out() << provider.err();

  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  const auto signed_order = market::MakeSigned(tenant.identity(), order, SystemClock::Instance().NowMs(), 60'000,
                                               market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(market::EncodeEnvelope(signed_order.envelope)).ok());
  const auto bid = tenant.WaitFor(market::MessageType::kBid, [&](const gossip::Deliver& deliver) {
    auto opened = market::OpenSigned<market::Bid>(deliver.envelope, SystemClock::Instance().NowMs());
    return opened.ok() && market::ToHex(opened->envelope.signer) == provider_key &&
           opened->body.order_id == signed_order.id;
  });
  ASSERT_TRUE(bid) << provider.out() << provider.err();
  EXPECT_TRUE(provider.WaitForOutput("bids 1", 5'000)) << provider.out();

  // A config that does not load is refused; the provider keeps running on the old one.
  std::ofstream(config, std::ios::trunc) << provider_yaml(8) << "colour: red\n";
  kill(provider.pid(), SIGHUP);
  ASSERT_TRUE(provider.WaitForOutput("config reload refused: ", 5'000)) << provider.out() << provider.err();
  EXPECT_NE(provider.out().find("colour: unknown setting"), std::string::npos) << provider.out();
  // Four GPUs now, two of them reserved by the bid: two free.
  std::ofstream(config, std::ios::trunc) << provider_yaml(4);
  kill(provider.pid(), SIGHUP);
  ASSERT_TRUE(provider.WaitForOutput("config reloaded: inventory 1 nodes 4 gpus", 5'000)) << provider.out();
  EXPECT_TRUE(tenant.WaitFor(market::MessageType::kOffer, offer_with(2))) << provider.out() << provider.err();

  EXPECT_EQ(provider.SignalAndWait(SIGTERM), 0);
  EXPECT_NE(provider.out().find("provider offer withdrawn\n"), std::string::npos) << provider.out() << provider.err();
  EXPECT_NE(provider.out().find("provider orders 1, bids 1"), std::string::npos) << provider.out();
  EXPECT_TRUE(tenant.WaitFor(market::MessageType::kOffer, offer_with(std::nullopt))) << provider.out();
  EXPECT_EQ(relay.SignalAndWait(SIGTERM), 0);
}

}  // namespace
}  // namespace gpumart
