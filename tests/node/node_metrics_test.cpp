// The node's /metrics over real HTTP on loopback: a relay and a provider (NodeContexts in this
// process) and a tenant's gossip node. Values move with gossip traffic, the exposition passes
// `promtool check metrics`, bad requests are answered and the endpoint keeps serving.
#include "node/node_metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "node/gossip/gossip_node.h"
#include "node/node_context.h"
#include "tests/eventually.h"
#include "tests/ledger/test_leases.h"
#include "tests/market/test_messages.h"
#include "tests/node/gossip_peer.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

using gpumart::testing::Eventually;
using gpumart::testing::GossipPeer;

std::optional<httplib::Result> Request(const std::string& address, const std::string& method, const std::string& path) {
  httplib::Client client("http://" + address);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(5));
  if (method == "POST") return client.Post(path, "x", "text/plain");
  return client.Get(path);
}

std::string Scrape(const NodeContext& context) {
  auto result = Request(context.metrics_address(), "GET", "/metrics");
  if (!result || !*result || (*result)->status != 200) return "";
  EXPECT_EQ((*result)->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return (*result)->body;
}

// The value of the sample `series` (name and labels exactly as exposed); nullopt when absent.
std::optional<double> Sample(const std::string& scrape, const std::string& series) {
  const std::string lines = "\n" + scrape;
  const std::string prefix = "\n" + series + " ";
  const size_t at = lines.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(lines.c_str() + at + prefix.size(), nullptr);
}

bidding::Inventory EightH100() {
  const market::Offer sample = market::testing::SampleOffer();
  bidding::Inventory inventory;
  inventory.attributes = sample.attributes;
  inventory.nodes = sample.nodes;
  return inventory;
}

NodeConfig LoopbackConfig(const std::string& data_dir) {
  NodeConfig config;
  config.data_dir = data_dir;
  config.listen = "tcp://127.0.0.1:*";
  config.client_listen = "tcp://127.0.0.1:*";
  config.metrics_listen = "127.0.0.1:0";
  config.metrics_listen_given = true;
  return config;
}

// `promtool check metrics` on `scrape`: its exit status and output, or nullopt without promtool.
std::optional<std::pair<int, std::string>> Promtool(const std::string& scrape, const std::string& dir) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  const std::string input = dir + "/scrape.txt";
  const std::string output = dir + "/promtool.txt";
  std::ofstream(input) << scrape;
  const int status = std::system(("promtool check metrics < " + input + " > " + output + " 2>&1").c_str());
  std::ifstream in(output);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, text);
}

TEST(NodeMetricsTest, ARelayAndAProviderServeMetricsThatMoveWithTraffic) {
  gpumart::testing::TempDir dir("node-metrics-test");
  auto relay_started = NodeContext::Start(LoopbackConfig(dir.Sub("relay")));
  ASSERT_TRUE(relay_started.ok()) << relay_started.status().ToString();
  std::unique_ptr<NodeContext> relay = std::move(relay_started).value();
  ASSERT_FALSE(relay->metrics_address().empty());
  EXPECT_TRUE(relay->metrics_address().starts_with("127.0.0.1:"));

  const std::string before = Scrape(*relay);
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(Sample(before, "gpumart_gossip_peers{direction=\"inbound\"}"), 0);
  EXPECT_EQ(Sample(before, "gpumart_offer_book_offers"), 0);
  EXPECT_EQ(Sample(before, "gpumart_ledger_commit_seconds_count"), 0);
  EXPECT_EQ(Sample(before, "gpumart_gossip_frames_total{direction=\"in\"}"), 0);
  // Its client port's counters, at 0 (tests/client/client_port_test.cpp moves them).
  EXPECT_EQ(Sample(before, "gpumart_client_requests_total"), 0) << before;
  EXPECT_EQ(Sample(before, "gpumart_client_publishes_total{outcome=\"refused\"}"), 0);
  // A relay has no provider metrics, rather than zeros that would claim it bids.
  EXPECT_EQ(before.find("gpumart_provider_"), std::string::npos);

  NodeConfig provider_config = LoopbackConfig(dir.Sub("provider"));
  provider_config.role = NodeRole::kProvider;
  provider_config.bootstrap = {relay->peer_address()};
  provider_config.pricing_policy.tables = market::testing::SampleOffer().pricing;
  const bidding::Inventory inventory = EightH100();
  auto provider_started = NodeContext::Start(provider_config, &inventory, ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(provider_started.ok()) << provider_started.status().ToString();
  std::unique_ptr<NodeContext> provider = std::move(provider_started).value();

  // The provider's link and Offer reach the relay: its peer, frame, byte and book metrics move.
  std::string after;
  ASSERT_TRUE(Eventually([&] {
    after = Scrape(*relay);
    return Sample(after, "gpumart_gossip_peers{direction=\"inbound\"}") == 1 &&
           Sample(after, "gpumart_offer_book_offers") == 1;
  })) << after;
  EXPECT_GT(*Sample(after, "gpumart_gossip_frames_total{direction=\"in\"}"), 0);
  EXPECT_GT(*Sample(after, "gpumart_gossip_bytes_total{direction=\"in\"}"), 0);
  EXPECT_GT(*Sample(after, "gpumart_gossip_bytes_total{direction=\"out\"}"), 0);
  EXPECT_EQ(Sample(after, "gpumart_offer_book_received_total{outcome=\"added\"}"), 1);

  // The provider: an outbound peer, its free capacity by device type, its published offer.
  std::string provider_scrape;
  ASSERT_TRUE(Eventually([&] {
    provider_scrape = Scrape(*provider);
    return Sample(provider_scrape, "gpumart_gossip_peers{direction=\"outbound\"}") == 1;
  })) << provider_scrape;
  EXPECT_EQ(Sample(provider_scrape,
                   "gpumart_provider_free_gpus{interface=\"sxm\",model=\"h100\",ram=\"80Gi\",vendor=\"nvidia\"}"),
            8)
      << provider_scrape;
  EXPECT_GE(*Sample(provider_scrape, "gpumart_provider_offers_published_total"), 1);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_provider_order_skips_total{reason=\"capacity\"}"), 0);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_provider_leases"), 0);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_provider_orders_waiting"), 0);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_provider_order_waits_ended_total{outcome=\"served\"}"), 0);

  // A lease gossiped to the relay is recorded: the feed counts it, the commit is timed.
  GossipPeer publisher(relay->peer_address());
  ledger::testing::Parties parties;
  const auto lease = parties.FreshLease(SystemClock::Instance().NowMs());
  ASSERT_TRUE(Eventually([&] { return publisher.Publish(lease.envelope).ok(); }));
  ASSERT_TRUE(Eventually([&] {
    after = Scrape(*relay);
    return Sample(after, "gpumart_ledger_feed_messages_total{outcome=\"recorded\"}") == 1;
  })) << after;
  EXPECT_GE(*Sample(after, "gpumart_ledger_commit_seconds_count"), 1);
  EXPECT_EQ(Sample(after, "gpumart_ledger_commit_seconds_bucket{le=\"+Inf\"}"),
            Sample(after, "gpumart_ledger_commit_seconds_count"));
  EXPECT_GE(*Sample(after, "gpumart_ledger_commits_total{outcome=\"ok\"}"), 1);

  // The client port's histogram, observed through the context.
  provider->metrics()->submit_to_lease_seconds.Observe(0.003);
  provider_scrape = Scrape(*provider);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_submit_to_lease_seconds_bucket{le=\"0.0025\"}"), 0);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_submit_to_lease_seconds_bucket{le=\"0.005\"}"), 1);
  EXPECT_EQ(Sample(provider_scrape, "gpumart_submit_to_lease_seconds_count"), 1);

  // Both expositions pass promtool's parser and its lint (names, units, _total, HELP).
  for (const std::string* scrape : {&after, &provider_scrape}) {
    auto checked = Promtool(*scrape, dir.path());
    if (!checked) GTEST_SKIP() << "promtool not found: install the Debian package prometheus (scripts/setup does)";
    EXPECT_EQ(checked->first, 0) << checked->second;
  }
}

// A whole H100, a 7g.80gb MIG instance of one and a time-slice replica of one all have 80Gi:
// each device type is its own series (labels `mig` and `shared`), never summed or repeated.
TEST(NodeMetricsTest, MigInstancesAndSharedReplicasAreTheirOwnDeviceTypes) {
  const market::DeviceType whole{.model = "h100", .ram_bytes = 80 * market::kGi, .interface = market::GpuInterface::kSxm};
  market::DeviceType instance = whole;
  instance.mig_profile = "7g.80gb";
  market::DeviceType replica = whole;
  replica.shared = true;
  auto devices = [](const market::DeviceType& type, uint32_t count) {
    return market::GpuDevices{.vendor = type.vendor, .model = type.model, .ram_bytes = type.ram_bytes,
                              .interface = type.interface, .count = count, .mig_profile = type.mig_profile,
                              .shared = type.shared};
  };
  market::Offer offer;
  offer.nodes.push_back(market::NodeCapacity{.name = "n1", .gpus = {devices(whole, 2), devices(instance, 1), devices(replica, 4)}});
  std::map<market::DeviceType, bidding::DeviceUsage> usage;
  usage[whole] = {.installed = 2};
  usage[instance] = {.installed = 1};
  usage[replica] = {.installed = 4};
  metrics::Registry registry;
  registry.AddCollector([&](metrics::Scrape& scrape) { CollectDeviceTypes(offer, usage, scrape); });
  const std::string scrape = registry.Expose();
  for (const std::string family : {"gpumart_provider_free_gpus", "gpumart_provider_gpus_installed"}) {
    EXPECT_EQ(Sample(scrape, family + "{interface=\"sxm\",model=\"h100\",ram=\"80Gi\",vendor=\"nvidia\"}"), 2)
        << scrape;
    EXPECT_EQ(Sample(scrape,
                     family + "{interface=\"sxm\",mig=\"7g.80gb\",model=\"h100\",ram=\"80Gi\",vendor=\"nvidia\"}"),
              1);
    EXPECT_EQ(Sample(scrape,
                     family + "{interface=\"sxm\",model=\"h100\",ram=\"80Gi\",shared=\"true\",vendor=\"nvidia\"}"),
              4);
    size_t series = 0;
    for (size_t at = scrape.find("\n" + family + "{"); at != std::string::npos; at = scrape.find("\n" + family + "{", at + 1)) {
      ++series;
    }
    EXPECT_EQ(series, 3u) << scrape;
  }
}

TEST(NodeMetricsTest, BadRequestsAreAnsweredAndTheEndpointKeepsServing) {
  gpumart::testing::TempDir dir("node-metrics-test");
  auto started = NodeContext::Start(LoopbackConfig(dir.Sub("relay")));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> relay = std::move(started).value();
  const std::string address = relay->metrics_address();
  auto post = Request(address, "POST", "/metrics");
  ASSERT_TRUE(post && *post);
  EXPECT_EQ((*post)->status, 405);
  // /api/v1/leases is the console's now (tests/console/); a path nobody serves is still 404.
  auto other = Request(address, "GET", "/api/v1/nothing");
  ASSERT_TRUE(other && *other);
  EXPECT_EQ((*other)->status, 404);
  EXPECT_EQ((*other)->body, "{\"error\":\"no endpoint /api/v1/nothing (docs/API.md)\"}\n");
  auto long_path = Request(address, "GET", "/" + std::string(20'000, 'x'));
  ASSERT_TRUE(long_path && *long_path);
  EXPECT_EQ((*long_path)->status, 414);
  httplib::Client client("http://" + address);
  client.set_read_timeout(std::chrono::seconds(5));
  httplib::Headers huge;
  for (int i = 0; i < 32; ++i) huge.emplace("X-Filler-" + std::to_string(i), std::string(16 * 1024, 'h'));
  auto answer = client.Get("/metrics", huge);
  EXPECT_TRUE(!answer || answer->status != 200);
  EXPECT_FALSE(Scrape(*relay).empty());
}

TEST(NodeMetricsTest, AnAddressInUseStopsTheNodeOnlyWhenTheConfigNamesIt) {
  gpumart::testing::TempDir dir("node-metrics-test");
  auto first = NodeContext::Start(LoopbackConfig(dir.Sub("first")));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string taken = (*first)->metrics_address();

  NodeConfig named = LoopbackConfig(dir.Sub("named"));
  named.metrics_listen = taken;
  auto refused = NodeContext::Start(named);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("metrics_listen: cannot listen on " + taken), std::string::npos)
      << refused.status().message();

  NodeConfig defaulted = named;
  defaulted.data_dir = dir.Sub("defaulted");
  defaulted.metrics_listen_given = false;  // the default address, which another daemon has
  auto started = NodeContext::Start(defaulted);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ((*started)->metrics_address(), "");

  NodeConfig none = LoopbackConfig(dir.Sub("none"));
  none.metrics_listen.clear();
  auto quiet = NodeContext::Start(none);
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ((*quiet)->metrics_address(), "");
  // Without an endpoint the registry still works (the client port observes into it).
  (*quiet)->metrics()->submit_to_lease_seconds.Observe(0.5);
  EXPECT_NE((*quiet)->metrics()->registry.Expose().find("gpumart_submit_to_lease_seconds_count 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace gpumart::node
