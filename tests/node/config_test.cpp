#include "node/config.h"

#include <gtest/gtest.h>

#include <fstream>

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

// The settings configs/relay.yaml shows commented out (with their defaults) are valid too, and
// are the defaults: uncommenting them changes nothing.
TEST(ConfigTest, RelayExamplesCommentedSettingsAreValidDefaults) {
  std::ifstream file(std::string(GPUMART_SOURCE_DIR) + "/configs/relay.yaml");
  std::string line, uncommented;
  size_t settings = 0;
  while (std::getline(file, line)) {
    // "# key: value" and "#   key: value" (inside a commented map) are settings; prose is not.
    const bool setting = line.starts_with("# ") && line.find(": ") != std::string::npos &&
                         line.find_first_of(".,;()") == std::string::npos;
    const bool map_head = line.starts_with("# ") && line.ends_with(":") && line.find(' ', 2) == std::string::npos;
    if (setting || map_head) {
      uncommented += line.substr(2) + "\n";
      ++settings;
    } else {
      uncommented += line + "\n";
    }
  }
  EXPECT_GT(settings, 10u);
  Result<NodeConfig> config = ParseNodeConfig(uncommented);
  ASSERT_TRUE(config.ok()) << config.status().ToString() << "\n" << uncommented;
  Result<NodeConfig> shipped = LoadNodeConfig(std::string(GPUMART_SOURCE_DIR) + "/configs/relay.yaml");
  ASSERT_TRUE(shipped.ok());
  const gossip::GossipNodeConfig a = config->GossipSettings(), b = shipped->GossipSettings();
  EXPECT_EQ(a.peer_hwm, b.peer_hwm);
  EXPECT_EQ(a.handshake_ivl_ms, b.handshake_ivl_ms);
  EXPECT_EQ(a.ban_addresses, b.ban_addresses);
  EXPECT_EQ(a.score.weights, b.score.weights);
  EXPECT_EQ(a.score.decay_ms_per_point, b.score.decay_ms_per_point);
  for (auto field : {&gossip::GossipConfig::hello_timeout_ms, &gossip::GossipConfig::ping_interval_ms,
                     &gossip::GossipConfig::peer_timeout_ms, &gossip::GossipConfig::graft_timeout_ms,
                     &gossip::GossipConfig::graft_retry_ms, &gossip::GossipConfig::store_retention_ms,
                     &gossip::GossipConfig::reconnect_min_ms, &gossip::GossipConfig::reconnect_max_ms,
                     &gossip::GossipConfig::reconcile_interval_ms, &gossip::GossipConfig::reconcile_retention_ms,
                     &gossip::GossipConfig::ihave_delay_ms, &gossip::GossipConfig::outbound_rotation_ms}) {
    EXPECT_EQ(a.core.*field, b.core.*field);
  }
}

std::string ErrorOf(const std::string& yaml) { return ParseNodeConfig(yaml).status().message(); }

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

// The client port (docs/CLIENT.md): loopback 7701 by default, "*" allowed, empty turns it off,
// anything else that is not tcp://HOST:PORT is an error naming the key.
TEST(ConfigTest, ClientListen) {
  EXPECT_EQ(ParseNodeConfig("")->client_listen, "tcp://127.0.0.1:7701");
  EXPECT_EQ(ParseNodeConfig("client_listen: tcp://127.0.0.1:*\n")->client_listen, "tcp://127.0.0.1:*");
  EXPECT_EQ(ParseNodeConfig("client_listen: tcp://0.0.0.0:9701\n")->client_listen, "tcp://0.0.0.0:9701");
  EXPECT_EQ(ParseNodeConfig("client_listen: \"\"\n")->client_listen, "");
  auto bad = ParseNodeConfig("client_listen: 127.0.0.1:7701\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("client_listen"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(ParseNodeConfig("client_listen: [a]\n").ok());
}

// Issue 12: every gossip timer and limit a user may want is a setting.
TEST(ConfigTest, ReadsEveryGossipTimerAndLimit) {
  Result<NodeConfig> config = ParseNodeConfig(
      "peer_queue_messages: 500\nhandshake_timeout_ms: 2000\nhello_timeout_ms: 4000\nping_interval_ms: 3000\n"
      "peer_timeout_ms: 12000\ngraft_timeout_ms: 150\ngraft_retry_ms: 80\nstore_retention_ms: 30000\n"
      "reconnect_min_ms: 500\nreconnect_max_ms: 30000\nscore_decay_ms: 2000\nban_addresses: false\n"
      "reconcile_interval_ms: 0\nreconcile_retention_ms: 7200000\nihave_delay_ms: 0\noutbound_rotation_ms: 120000\n"
      "misbehaviour_points:\n  expired: 1\n  bad_signature: 100\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const gossip::GossipNodeConfig gossip = config->GossipSettings();
  EXPECT_EQ(gossip.peer_hwm, 500);
  EXPECT_EQ(gossip.handshake_ivl_ms, 2000);
  EXPECT_EQ(gossip.core.hello_timeout_ms, 4000);
  EXPECT_EQ(gossip.core.ping_interval_ms, 3000);
  EXPECT_EQ(gossip.core.peer_timeout_ms, 12000);
  EXPECT_EQ(gossip.core.graft_timeout_ms, 150);
  EXPECT_EQ(gossip.core.graft_retry_ms, 80);
  EXPECT_EQ(gossip.core.store_retention_ms, 30000);
  EXPECT_EQ(gossip.core.reconnect_min_ms, 500);
  EXPECT_EQ(gossip.core.reconnect_max_ms, 30000);
  EXPECT_EQ(gossip.score.decay_ms_per_point, 2000);
  EXPECT_EQ(gossip.core.reconcile_interval_ms, 0);
  EXPECT_EQ(gossip.core.reconcile_retention_ms, 7'200'000);
  EXPECT_EQ(gossip.core.ihave_delay_ms, 0);
  EXPECT_EQ(gossip.core.outbound_rotation_ms, 120'000);
  EXPECT_FALSE(gossip.ban_addresses);
  EXPECT_EQ(gossip.score.weights[static_cast<size_t>(gossip::Misbehaviour::kExpired)], 1);
  EXPECT_EQ(gossip.score.weights[static_cast<size_t>(gossip::Misbehaviour::kBadSignature)], 100);
  // The others keep their defaults.
  EXPECT_EQ(gossip.score.weights[static_cast<size_t>(gossip::Misbehaviour::kFlood)],
            gossip::ScoreConfig{}.weights[static_cast<size_t>(gossip::Misbehaviour::kFlood)]);

  // Defaults are the gossip layer's own.
  const gossip::GossipNodeConfig defaults = ParseNodeConfig("")->GossipSettings();
  EXPECT_EQ(defaults.peer_hwm, gossip::kPeerHwm);
  EXPECT_EQ(defaults.handshake_ivl_ms, gossip::kHandshakeIvlMs);
  EXPECT_TRUE(defaults.ban_addresses);
  EXPECT_EQ(defaults.core.ping_interval_ms, gossip::GossipConfig{}.ping_interval_ms);
  EXPECT_EQ(defaults.core.store_retention_ms, gossip::GossipConfig{}.store_retention_ms);
  EXPECT_EQ(defaults.score.weights, gossip::ScoreConfig{}.weights);
}

TEST(ConfigTest, BadGossipTimersNameTheSettingAndWhy) {
  EXPECT_EQ(ErrorOf("ping_interval_ms: 0\n"), "ping_interval_ms: 0 is not in 1..86400000");
  EXPECT_EQ(ErrorOf("store_retention_ms: 86400001\n"), "store_retention_ms: 86400001 is not in 1..86400000");
  EXPECT_EQ(ErrorOf("graft_timeout_ms: 1.5\n"), "graft_timeout_ms: \"1.5\" is not a whole number");
  EXPECT_EQ(ErrorOf("peer_queue_messages: 0\n"), "peer_queue_messages: 0 is not in 1..1000000");
  EXPECT_EQ(ErrorOf("ban_addresses: yes\n"), "ban_addresses: expected true or false");
  EXPECT_EQ(ErrorOf("ping_interval_ms: 20000\n"),
            "ping_interval_ms: 20000 is not less than peer_timeout_ms (20000): a quiet but live peer would time "
            "out between pings");
  EXPECT_EQ(ErrorOf("reconnect_min_ms: 5000\nreconnect_max_ms: 4000\n"),
            "reconnect_min_ms: 5000 is more than reconnect_max_ms (4000)");
  EXPECT_EQ(ErrorOf("store_retention_ms: 100\n"),
            "store_retention_ms: 100 is not more than graft_timeout_ms (100): a message would be gone before a "
            "peer that heard of it asks for it");
  EXPECT_EQ(ErrorOf("misbehaviour_points: 5\n"), "misbehaviour_points: expected a map of misbehaviour: points");
  EXPECT_EQ(ErrorOf("misbehaviour_points:\n  flood: 2000000\n"), "misbehaviour_points.flood: 2000000 is not in 0..1000000");
  EXPECT_NE(ErrorOf("misbehaviour_points:\n  rudeness: 5\n").find("misbehaviour_points.rudeness: unknown misbehaviour "
                                                                 "(known: malformed_frame, "),
            std::string::npos);
  // The unknown-setting error lists every setting.
  const std::string unknown = ErrorOf("ping_intervall_ms: 5\n");
  for (const char* key : {"ping_interval_ms", "store_retention_ms", "reconnect_max_ms", "misbehaviour_points",
                          "ban_addresses", "score_decay_ms", "handshake_timeout_ms"}) {
    EXPECT_NE(unknown.find(key), std::string::npos) << key << " missing from: " << unknown;
  }
}

// The shipped examples stay valid.
TEST(ConfigTest, ExampleConfigsParse) {
  for (const char* name : {"relay.yaml", "provider.yaml"}) {
    Result<NodeConfig> config = LoadNodeConfig(std::string(GPUMART_SOURCE_DIR) + "/configs/" + name);
    EXPECT_TRUE(config.ok()) << name << ": " << config.status().ToString();
  }
}

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

// A setting given twice is an error, not "the last one wins": which of two values a node runs
// with must never be a surprise.
TEST(ConfigTest, ASettingGivenTwiceIsAnError) {
  EXPECT_EQ(ErrorOf("hop_limit: 3\nhop_limit: 4\n"), "hop_limit: given twice");
  EXPECT_EQ(ErrorOf("role: relay\ndata_dir: a\nrole: tenant\n"), "role: given twice");
  EXPECT_EQ(ErrorOf("misbehaviour_points:\n  flood: 1\n  flood: 2\n"), "misbehaviour_points.flood: given twice");
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

// `executor`: what a provider runs on lease start and stop (bidding::ParseExecutorConfig).
TEST(ConfigTest, ProviderExecutor) {
  const std::string provider =
      "role: provider\ninventory:\n  nodes:\n"
      "    - {name: n1, cpu_millis: 64000, memory: 512Gi, gpus: [{model: h100, ram: 80Gi, interface: sxm, count: 8}]}\n"
      "pricing:\n  - {denom: uakt, gpu: {h100: 650000}}\n";
  Result<NodeConfig> plain = ParseNodeConfig(provider);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->provider.executor.kind, bidding::ExecutorKind::kLog);
  Result<NodeConfig> config = ParseNodeConfig(provider +
                                              "executor:\n  kind: exec\n  command: [/usr/local/bin/deploy, --ns, gm]\n"
                                              "  timeout_ms: 30000\n  max_concurrent: 2\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->provider.executor.kind, bidding::ExecutorKind::kExec);
  EXPECT_EQ(config->provider.executor.command, (std::vector<std::string>{"/usr/local/bin/deploy", "--ns", "gm"}));
  EXPECT_EQ(config->provider.executor.timeout_ms, 30000);
  EXPECT_EQ(config->provider.executor.max_concurrent, 2u);
  EXPECT_NE(ErrorOf(provider + "executor:\n  kind: exec\n").find("executor kind exec needs a command"),
            std::string::npos)
      << ErrorOf(provider + "executor:\n  kind: exec\n");
  EXPECT_EQ(ErrorOf("executor: {kind: log}\n"), "executor: only a provider bids (role is relay)");
}

// The provider's Offer timings: defaults as ProviderOptions has them, settable, checked together.
TEST(ConfigTest, ProviderOfferTimings) {
  const std::string provider =
      "role: provider\ninventory:\n  nodes:\n"
      "    - {name: n1, cpu_millis: 64000, memory: 512Gi, gpus: [{model: h100, ram: 80Gi, interface: sxm, count: 8}]}\n"
      "pricing:\n  - {denom: uakt, gpu: {h100: 650000}}\n";
  Result<NodeConfig> plain = ParseNodeConfig(provider);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->provider.offer_ttl_ms, ProviderOptions{}.offer_ttl_ms);
  Result<NodeConfig> config =
      ParseNodeConfig(provider + "offer_ttl_ms: 120000\noffer_refresh_ms: 60000\noffer_debounce_ms: 50\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->provider.offer_ttl_ms, 120000);
  EXPECT_EQ(config->provider.offer_refresh_ms, 60000);
  EXPECT_EQ(config->provider.offer_debounce_ms, 50);
  EXPECT_EQ(ErrorOf(provider + "offer_ttl_ms: 60000\noffer_refresh_ms: 60000\n"),
            "offer_refresh_ms: 60000 is not less than offer_ttl_ms (60000): the Offer would expire before it is "
            "republished");
  EXPECT_EQ(ErrorOf(provider + "offer_debounce_ms: 0\n"), "offer_debounce_ms: 0 is not in 1..86400000");
  EXPECT_EQ(ErrorOf("offer_ttl_ms: 60000\n"), "offer_ttl_ms: only a provider bids (role is relay)");
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

TEST(ConfigTest, MetricsListen) {
  Result<NodeConfig> defaults = ParseNodeConfig("");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->metrics_listen, "127.0.0.1:7702");
  EXPECT_FALSE(defaults->metrics_listen_given);
  Result<NodeConfig> any_port = ParseNodeConfig("metrics_listen: 127.0.0.1:*\n");
  ASSERT_TRUE(any_port.ok()) << any_port.status().ToString();
  EXPECT_EQ(any_port->metrics_listen, "127.0.0.1:*");
  EXPECT_TRUE(any_port->metrics_listen_given);
  for (const char* off : {"metrics_listen: 0\n", "metrics_listen: \"\"\n"}) {
    Result<NodeConfig> none = ParseNodeConfig(off);
    ASSERT_TRUE(none.ok()) << off << none.status().ToString();
    EXPECT_EQ(none->metrics_listen, "") << off;
  }
  // A tenant serves no metrics unless told to.
  EXPECT_EQ(ParseNodeConfig("role: tenant\n")->metrics_listen, "");
  EXPECT_EQ(ParseNodeConfig("role: tenant\nmetrics_listen: '[::1]:9100'\n")->metrics_listen, "[::1]:9100");
  for (const char* bad : {"metrics_listen: tcp://127.0.0.1:7702\n", "metrics_listen: 127.0.0.1\n",
                          "metrics_listen: 127.0.0.1:99999\n", "metrics_listen: [a]\n"}) {
    Result<NodeConfig> refused = ParseNodeConfig(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_TRUE(refused.status().message().starts_with("metrics_listen")) << refused.status().message();
  }
}

}  // namespace
}  // namespace gpumart::node
