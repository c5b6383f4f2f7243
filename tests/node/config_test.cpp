#include "node/config.h"

#include <gtest/gtest.h>

#include "tests/alloc_failure.h"

namespace gpumart::node {
namespace {

TEST(ConfigTest, EmptyFileMeansDefaults) {
  Result<NodeConfig> config = ParseNodeConfig("");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->role, NodeRole::kRelay);
  EXPECT_EQ(config->data_dir, "./gpumart-data");
  EXPECT_EQ(config->IdentityPath(), "./gpumart-data/identity.key");
}

TEST(ConfigTest, ReadsEverySetting) {
  Result<NodeConfig> config = ParseNodeConfig(
      "role: provider\ndata_dir: /var/lib/gpumart\nidentity: /etc/gpumart/provider.key\n"
      "offers: /etc/gpumart/offers.yaml\nlog_level: debug\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->role, NodeRole::kProvider);
  EXPECT_EQ(config->data_dir, "/var/lib/gpumart");
  EXPECT_EQ(config->IdentityPath(), "/etc/gpumart/provider.key");
  EXPECT_EQ(config->offers, "/etc/gpumart/offers.yaml");
  EXPECT_EQ(config->log_level, "debug");
}

TEST(ConfigTest, ErrorsNameTheSetting) {
  EXPECT_NE(ParseNodeConfig("rol: relay\n").status().message().find("rol: unknown setting"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("role: miner\n").status().message().find("role: \"miner\" is not"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("log_level: loud\n").status().message().find("log_level"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("data_dir: [a, b]\n").status().message().find("data_dir: expected a string"),
            std::string::npos);
  EXPECT_NE(ParseNodeConfig("role: provider\n").status().message().find("offers: a provider needs"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("- a\n- b\n").status().message().find("a map of settings"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("role: [\n").status().message().find("invalid YAML at line"), std::string::npos);
}

// A hex identity for peer addresses in these tests (any 64 hex digits parse).
const std::string kPeerId(64, 'a');

TEST(ConfigTest, GossipDefaults) {
  Result<NodeConfig> config = ParseNodeConfig("");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->listen, "tcp://0.0.0.0:7700");
  EXPECT_EQ(config->advertise, "");
  EXPECT_TRUE(config->bootstrap.empty());
  const gossip::GossipNodeConfig gossip = config->GossipSettings();
  EXPECT_EQ(gossip.listen_endpoint, "tcp://0.0.0.0:7700");
  EXPECT_EQ(gossip.core.max_inbound, 64u);
  EXPECT_EQ(gossip.core.target_outbound, 8u);
  // A tenant dials out only.
  Result<NodeConfig> tenant = ParseNodeConfig("role: tenant\n");
  ASSERT_TRUE(tenant.ok());
  EXPECT_EQ(tenant->listen, "");
}

TEST(ConfigTest, ReadsEveryGossipSetting) {
  Result<NodeConfig> config = ParseNodeConfig(
      "listen: tcp://0.0.0.0:7800\nadvertise: tcp://relay.example.org:7800\n"
      "bootstrap:\n  - tcp://10.0.0.1:7700/" + kPeerId + "\n  - tcp://10.0.0.2:7700/" + kPeerId + "\n"
      "max_inbound_peers: 100\nmax_outbound_peers: 12\noutbound_peers: 6\nhop_limit: 10\n"
      "peer_frames_per_second: 500\npeer_bytes_per_second: 1048576\nban_threshold: 80\nban_seconds: 600\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->listen, "tcp://0.0.0.0:7800");
  EXPECT_EQ(config->advertise, "tcp://relay.example.org:7800");
  ASSERT_EQ(config->bootstrap.size(), 2u);
  EXPECT_EQ(config->bootstrap[1], "tcp://10.0.0.2:7700/" + kPeerId);
  const gossip::GossipNodeConfig gossip = config->GossipSettings();
  EXPECT_EQ(gossip.advertised_endpoint, "tcp://relay.example.org:7800");
  EXPECT_EQ(gossip.bootstrap.size(), 2u);
  EXPECT_EQ(gossip.core.max_inbound, 100u);
  EXPECT_EQ(gossip.core.max_outbound, 12u);
  EXPECT_EQ(gossip.core.target_outbound, 6u);
  EXPECT_EQ(gossip.core.hop_limit, 10u);
  EXPECT_EQ(gossip.core.frames_per_second, 500u);
  EXPECT_EQ(gossip.core.bytes_per_second, 1048576u);
  EXPECT_EQ(gossip.score.ban_threshold, 80);
  EXPECT_EQ(gossip.score.ban_ms, 600'000);
  // "*" lets the system pick the port (tests); the bound port is then what the node advertises.
  EXPECT_TRUE(ParseNodeConfig("listen: tcp://127.0.0.1:*\n").ok());
  EXPECT_TRUE(ParseNodeConfig("bootstrap: []\n").ok());
}

// The shipped examples stay valid.
TEST(ConfigTest, ExampleConfigsParse) {
  for (const char* name : {"relay.yaml", "provider.yaml"}) {
    Result<NodeConfig> config = LoadNodeConfig(std::string(GPUMART_SOURCE_DIR) + "/configs/" + name);
    EXPECT_TRUE(config.ok()) << name << ": " << config.status().ToString();
  }
}

std::string ErrorOf(const std::string& yaml) { return ParseNodeConfig(yaml).status().message(); }

TEST(ConfigTest, BadGossipSettingsNameTheSetting) {
  const auto has = [](const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  };
  EXPECT_TRUE(has(ErrorOf("listen: 0.0.0.0:7700\n"), "listen: \"0.0.0.0:7700\" is not tcp://HOST:PORT")) << ErrorOf("listen: 0.0.0.0:7700\n");
  EXPECT_TRUE(has(ErrorOf("listen: tcp://0.0.0.0:99999\n"), "listen: "));
  EXPECT_TRUE(has(ErrorOf("listen: tcp://:7700\n"), "listen: "));
  EXPECT_TRUE(has(ErrorOf("listen: tcp://0.0.0.0:77a\n"), "listen: "));
  EXPECT_TRUE(has(ErrorOf("advertise: tcp://1.2.3.4:*\n"), "advertise: a port others can dial"));
  EXPECT_TRUE(has(ErrorOf("advertise: tcp://0.0.0.0:7700\n"), "advertise: "));
  EXPECT_TRUE(has(ErrorOf("role: tenant\nadvertise: tcp://1.2.3.4:7700\n"), "advertise: needs listen"));
  EXPECT_TRUE(has(ErrorOf("bootstrap: tcp://1.2.3.4:7700/" + kPeerId + "\n"), "bootstrap: expected a list"));
  EXPECT_TRUE(has(ErrorOf("bootstrap:\n  - tcp://1.2.3.4:7700\n"), "bootstrap[0]: "));
  EXPECT_TRUE(has(ErrorOf("bootstrap:\n  - tcp://1.2.3.4:7700/" + kPeerId + "\n  - [x]\n"), "bootstrap[1]: "));
  std::string many = "bootstrap:\n";
  for (size_t i = 0; i <= kMaxBootstrapPeers; ++i) many += "  - tcp://1.2.3.4:7700/" + kPeerId + "\n";
  EXPECT_EQ(ParseNodeConfig(many).status().code(), Status::Code::kLimitExceeded);
  EXPECT_TRUE(has(ErrorOf("max_inbound_peers: 0\n"), "max_inbound_peers: 0 is not in 1..")) << ErrorOf("max_inbound_peers: 0\n");
  EXPECT_TRUE(has(ErrorOf("max_inbound_peers: -3\n"), "max_inbound_peers: "));
  EXPECT_TRUE(has(ErrorOf("max_outbound_peers: lots\n"), "max_outbound_peers: \"lots\" is not a whole number"));
  EXPECT_TRUE(has(ErrorOf("max_outbound_peers: 4\noutbound_peers: 5\n"), "outbound_peers: 5 is more than max_outbound_peers (4)"));
  EXPECT_TRUE(has(ErrorOf("hop_limit: 33\n"), "hop_limit: 33 is not in 1..32"));
  EXPECT_TRUE(has(ErrorOf("peer_frames_per_second: 0\n"), "peer_frames_per_second: "));
  EXPECT_TRUE(has(ErrorOf("peer_bytes_per_second: 99999999999999999999999\n"), "peer_bytes_per_second: "));
  EXPECT_TRUE(has(ErrorOf("ban_threshold: 0\n"), "ban_threshold: "));
  EXPECT_TRUE(has(ErrorOf("ban_seconds: [1]\n"), "ban_seconds: "));
  EXPECT_TRUE(has(ErrorOf("ban_seconds: 0\n"), "ban_seconds: "));
}

TEST(ConfigTest, HostileInputRejected) {
  EXPECT_EQ(ParseNodeConfig(std::string(100000, '[')).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(ParseNodeConfig(std::string(kMaxConfigFileBytes + 1, '#')).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(LoadNodeConfig("/nonexistent/gpumart.yaml").status().code(), Status::Code::kIoError);
}

// A provider's inventory and prices in the config itself (bidding/inventory.h checks the GPUs
// against the model table when the daemon starts; tests/bidding/inventory_test.cpp).
TEST(ConfigTest, ProviderInventoryAndPricing) {
  const std::string inventory =
      "inventory:\n  attributes: {region: us-west}\n  nodes:\n"
      "    - {name: n1, cpu_millis: 64000, memory: 512Gi, gpus: [{model: h100, ram: 80Gi, interface: sxm, count: 8}]}\n";
  const std::string pricing = "pricing:\n  - {denom: uakt, gpu: {h100: 650000}, cpu: 4000}\n";
  Result<NodeConfig> config = ParseNodeConfig("role: provider\n" + inventory + pricing);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(config->inventory.has_value());
  EXPECT_EQ(config->inventory->attributes.at("region"), "us-west");
  ASSERT_EQ(config->inventory->nodes.size(), 1u);
  EXPECT_EQ(config->inventory->nodes[0].gpus[0].count, 8u);
  ASSERT_EQ(config->pricing.size(), 1u);
  EXPECT_EQ(config->pricing[0].gpu.at("h100"), 650000u);
  EXPECT_TRUE(ParseNodeConfig("role: provider\ninventory: detect\n" + pricing).ok());

  // The bad input: missing prices, keys that do not belong, errors inside the section.
  EXPECT_EQ(ErrorOf("role: provider\n" + inventory), "pricing: missing (a provider with an inventory needs its prices)");
  EXPECT_EQ(ErrorOf("role: provider\n" + inventory + "pricing: []\n"),
            "pricing: missing (at least one price table is needed)");
  EXPECT_EQ(ErrorOf("role: provider\n" + pricing), "inventory: missing (a provider with prices needs its inventory)");
  EXPECT_EQ(ErrorOf(inventory + pricing), "inventory: only a provider sells (role is relay)");
  EXPECT_EQ(ErrorOf("role: provider\noffers: o.yaml\n" + inventory + pricing),
            "offers: give the inventory and prices either as an offers file or as inventory and pricing, not both");
  EXPECT_EQ(ErrorOf("role: provider\n" + inventory + "pricing:\n  - {denom: uakt, gpu: {h100: -1}}\n"),
            "pricing[0].gpu.h100: -1 is negative");
  EXPECT_EQ(ErrorOf("role: provider\ninventory:\n  nodes:\n    - {name: n1, cpu_millis: 1000, memory: 1Gi, "
                    "gpus: [{model: h100, ram: 80Gi, count: 8, colour: red}]}\n" + pricing)
                .substr(0, 46),
            "inventory.nodes[0].gpus[0].colour: unknown key");
}

// Block nesting (indentation) is a limit like [ and { nesting (the YAML tree bounds both).
TEST(ConfigTest, DeepBlockNestingIsALimit) {
  std::string deep;
  for (int i = 0; i < 10'000; ++i) deep += std::string(static_cast<size_t>(i), ' ') + "k:\n";
  deep.resize(std::min(deep.size(), kMaxConfigFileBytes));
  EXPECT_EQ(ParseNodeConfig(deep).status().code(), Status::Code::kLimitExceeded) << ParseNodeConfig(deep).status().ToString();
}

// Exceptions stop at the boundary (issue 11, item 9): whichever allocation fails while a config
// is parsed, ParseNodeConfig returns a Status. Before, std::bad_alloc escaped (only
// YAML::Exception was caught).
TEST(ConfigTest, AnAllocationFailureAnywhereIsAStatus) {
  if (!GPUMART_ALLOC_FAILURE_INJECTION) GTEST_SKIP() << "allocation failures cannot be injected under a sanitizer";
  const std::string text = "role: provider\ndata_dir: /var/lib/gpumart\noffers: /etc/gpumart/offers.yaml\n";
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("ParseNodeConfig", [&] { return ParseNodeConfig(text); }), 3);
}

}  // namespace
}  // namespace gpumart::node
