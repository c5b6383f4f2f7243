#include "node/config.h"

#include <charconv>
#include <fstream>
#include <set>

#include "market/boundary.h"
#include "market/offers.h"
#include "market/yaml_tree.h"
#include "node/gossip/curve_keys.h"
#include "node/gossip/frames.h"
#include "node/metrics/http_server.h"

namespace gpumart::node {

std::string_view ToString(NodeRole role) {
  switch (role) {
    case NodeRole::kRelay: return "relay";
    case NodeRole::kProvider: return "provider";
    case NodeRole::kTenant: return "tenant";
  }
  return "unknown";
}

namespace {

Status ReadString(const market::YamlNode& node, const std::string& key, std::string& out) {
  if (!node.IsScalar()) return Status::InvalidArgument(key + ": expected a string");
  out = std::string(node.Scalar());
  if (out.empty()) return Status::InvalidArgument(key + ": must not be empty");
  if (out.size() > kMaxConfigStringBytes) {
    return Status::LimitExceeded(key + ": longer than " + std::to_string(kMaxConfigStringBytes) + " bytes");
  }
  return Status::Ok();
}

Status ReadNumber(const market::YamlNode& node, const std::string& key, uint64_t min, uint64_t max, uint64_t& out) {
  if (!node.IsScalar()) return Status::InvalidArgument(key + ": expected a number");
  const std::string_view text = node.Scalar();
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || error == std::errc::invalid_argument || end != text.data() + text.size()) {
    return Status::InvalidArgument(key + ": \"" + std::string(text) + "\" is not a whole number");
  }
  if (error == std::errc::result_out_of_range || out < min || out > max) {
    return Status::InvalidArgument(key + ": " + std::string(text) + " is not in " + std::to_string(min) + ".." +
                                   std::to_string(max));
  }
  return Status::Ok();
}

// "tcp://HOST:PORT" with PORT 1..65535, or "*" (a port the system picks) where `wildcard_port`.
Status CheckEndpoint(const std::string& key, const std::string& endpoint, bool wildcard_port) {
  const Status bad = Status::InvalidArgument(key + ": \"" + endpoint + "\" is not tcp://HOST:PORT");
  constexpr std::string_view kScheme = "tcp://";
  if (!endpoint.starts_with(kScheme)) return bad;
  const size_t colon = endpoint.rfind(':');
  const std::string host = endpoint.substr(kScheme.size(), colon - kScheme.size());
  const std::string port = endpoint.substr(colon + 1);
  if (colon < kScheme.size() || host.empty() || host.find_first_of("/ ") != std::string::npos) return bad;
  if (port == "*") {
    if (!wildcard_port) return Status::InvalidArgument(key + ": a port others can dial, not *");
    return Status::Ok();
  }
  uint32_t number = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) {
    return bad;
  }
  return Status::Ok();
}

Status ReadBootstrap(const market::YamlNode& node, std::vector<std::string>& out) {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) return Status::InvalidArgument("bootstrap: expected a list of peer addresses");
  if (node.size() > kMaxBootstrapPeers) {
    return Status::LimitExceeded("bootstrap: more than " + std::to_string(kMaxBootstrapPeers) + " peers");
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string key = "bootstrap[" + std::to_string(i) + "]";
    std::string address;
    GPUMART_RETURN_IF_ERROR(ReadString(node.Item(i), key, address));
    Result<gossip::PeerEndpoint> peer = gossip::ParsePeerAddress(address);
    if (!peer.ok()) {
      return Status::InvalidArgument(key + ": \"" + address + "\" is not tcp://HOST:PORT/<64 hex identity> (" +
                                     peer.status().message() + ")");
    }
    GPUMART_RETURN_IF_ERROR(CheckEndpoint(key, peer->endpoint, /*wildcard_port=*/false));
    out.push_back(std::move(address));
  }
  return Status::Ok();
}

// YAML keeps a key given twice (market/yaml_tree.h); a config refuses it rather than let the
// last one silently win. Every map a config reads is checked with this before it is read.
Status CheckKeysOnce(const market::YamlNode& map, const std::string& prefix) {
  std::set<std::string_view> seen;
  for (const market::YamlMapEntry& entry : map.Entries()) {
    if (!entry.key.IsScalar()) continue;  // reported as an unknown key
    if (!seen.insert(entry.key.Scalar()).second) {
      return Status::InvalidArgument(prefix + std::string(entry.key.Scalar()) + ": given twice");
    }
  }
  return Status::Ok();
}

Status ReadBool(const market::YamlNode& node, const std::string& key, bool& out) {
  if (node.IsScalar() && node.Scalar() == "true") {
    out = true;
  } else if (node.IsScalar() && node.Scalar() == "false") {
    out = false;
  } else {
    return Status::InvalidArgument(key + ": expected true or false");
  }
  return Status::Ok();
}

// A numeric setting: its key, the values it takes and where it goes.
struct NumberSetting {
  std::string_view key;
  uint64_t min;
  uint64_t max;
  void (*set)(NodeConfig&, uint64_t);
};

// Every numeric setting, in the order docs/CONFIGURATION.md lists them.
constexpr NumberSetting kNumberSettings[] = {
    {"max_inbound_peers", 1, kMaxConfigPeers, [](NodeConfig& c, uint64_t n) { c.limits.max_inbound = n; }},
    {"max_outbound_peers", 1, kMaxConfigPeers, [](NodeConfig& c, uint64_t n) { c.limits.max_outbound = n; }},
    {"outbound_peers", 1, kMaxConfigPeers, [](NodeConfig& c, uint64_t n) { c.limits.target_outbound = n; }},
    {"hop_limit", 1, gossip::limits::kMaxHops,
     [](NodeConfig& c, uint64_t n) { c.limits.hop_limit = static_cast<uint32_t>(n); }},
    {"peer_frames_per_second", 1, kMaxConfigRate, [](NodeConfig& c, uint64_t n) { c.limits.frames_per_second = n; }},
    {"peer_bytes_per_second", 1, kMaxConfigRate, [](NodeConfig& c, uint64_t n) { c.limits.bytes_per_second = n; }},
    {"peer_queue_messages", 1, kMaxConfigPeerQueue,
     [](NodeConfig& c, uint64_t n) { c.peer_queue_messages = static_cast<int>(n); }},
    {"handshake_timeout_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.handshake_timeout_ms = static_cast<int>(n); }},
    {"hello_timeout_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.hello_timeout_ms = static_cast<int64_t>(n); }},
    {"ping_interval_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.ping_interval_ms = static_cast<int64_t>(n); }},
    {"peer_timeout_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.peer_timeout_ms = static_cast<int64_t>(n); }},
    {"graft_timeout_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.graft_timeout_ms = static_cast<int64_t>(n); }},
    {"graft_retry_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.graft_retry_ms = static_cast<int64_t>(n); }},
    {"store_retention_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.store_retention_ms = static_cast<int64_t>(n); }},
    {"reconnect_min_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.reconnect_min_ms = static_cast<int64_t>(n); }},
    {"reconnect_max_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.limits.reconnect_max_ms = static_cast<int64_t>(n); }},
    {"reconcile_interval_ms", 0, kMaxConfigTimerMs,  // 0: only when a link becomes ready
     [](NodeConfig& c, uint64_t n) { c.limits.reconcile_interval_ms = static_cast<int64_t>(n); }},
    {"reconcile_retention_ms", 1, market::limits::kMaxTtlMs,
     [](NodeConfig& c, uint64_t n) { c.limits.reconcile_retention_ms = static_cast<int64_t>(n); }},
    {"ihave_delay_ms", 0, kMaxConfigTimerMs,  // 0: announce at once
     [](NodeConfig& c, uint64_t n) { c.limits.ihave_delay_ms = static_cast<int64_t>(n); }},
    {"outbound_rotation_ms", 0, kMaxConfigTimerMs,  // 0: never rotate
     [](NodeConfig& c, uint64_t n) { c.limits.outbound_rotation_ms = static_cast<int64_t>(n); }},
    {"bid_ttl_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.bidding.bid_ttl_ms = static_cast<int64_t>(n); }},
    {"offer_ttl_ms", 1, market::limits::kMaxTtlMs,
     [](NodeConfig& c, uint64_t n) { c.provider.offer_ttl_ms = static_cast<int64_t>(n); }},
    {"offer_refresh_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.provider.offer_refresh_ms = static_cast<int64_t>(n); }},
    {"offer_debounce_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.provider.offer_debounce_ms = static_cast<int64_t>(n); }},
    {"ban_threshold", 1, kMaxConfigScore,
     [](NodeConfig& c, uint64_t n) { c.score.ban_threshold = static_cast<int64_t>(n); }},
    {"ban_seconds", 1, kMaxConfigBanSeconds,
     [](NodeConfig& c, uint64_t n) { c.score.ban_ms = static_cast<int64_t>(n) * 1000; }},
    {"score_decay_ms", 1, kMaxConfigTimerMs,
     [](NodeConfig& c, uint64_t n) { c.score.decay_ms_per_point = static_cast<int64_t>(n); }},
};

const NumberSetting* FindNumberSetting(std::string_view key) {
  for (const NumberSetting& setting : kNumberSettings) {
    if (setting.key == key) return &setting;
  }
  return nullptr;
}

constexpr std::string_view kMisbehaviourPoints = "misbehaviour_points";

// misbehaviour_points: a map from a misbehaviour's name (docs/GOSSIP.md) to its points.
Status ReadMisbehaviourPoints(const market::YamlNode& node, gossip::ScoreConfig& score) {
  const std::string key(kMisbehaviourPoints);
  if (node.IsNull()) return Status::Ok();
  if (!node.IsMap()) return Status::InvalidArgument(key + ": expected a map of misbehaviour: points");
  GPUMART_RETURN_IF_ERROR(CheckKeysOnce(node, key + "."));
  for (const market::YamlMapEntry& entry : node.Entries()) {
    const std::string name(entry.key.IsScalar() ? entry.key.Scalar() : std::string_view("?"));
    size_t reason = 0;
    while (reason < gossip::kMisbehaviourCount &&
           gossip::ToString(static_cast<gossip::Misbehaviour>(reason)) != name) {
      ++reason;
    }
    if (reason == gossip::kMisbehaviourCount) {
      std::string known;
      for (size_t r = 0; r < gossip::kMisbehaviourCount; ++r) {
        known += (r == 0 ? "" : ", ") + std::string(gossip::ToString(static_cast<gossip::Misbehaviour>(r)));
      }
      return Status::InvalidArgument(key + "." + name + ": unknown misbehaviour (known: " + known + ")");
    }
    uint64_t points = 0;
    GPUMART_RETURN_IF_ERROR(ReadNumber(entry.value, key + "." + name, 0, kMaxConfigScore, points));
    score.weights[reason] = static_cast<int64_t>(points);
  }
  return Status::Ok();
}

// allow_tenants / deny_tenants: tenants' identities, 64 hex digits each.
Status ReadTenants(const market::YamlNode& node, const std::string& key, std::vector<market::PublicKey>& out) {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) return Status::InvalidArgument(key + ": expected a list of tenant identities (64 hex digits)");
  if (node.size() > kMaxConfigTenants) {
    return Status::LimitExceeded(key + ": more than " + std::to_string(kMaxConfigTenants) + " tenants");
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_key = key + "[" + std::to_string(i) + "]";
    std::string hex;
    GPUMART_RETURN_IF_ERROR(ReadString(node.Item(i), item_key, hex));
    std::optional<market::PublicKey> identity = hex.size() == 64 ? market::FromHex<32>(hex) : std::nullopt;
    if (!identity) return Status::InvalidArgument(item_key + ": \"" + hex + "\" is not 64 hex digits");
    out.push_back(*identity);
  }
  return Status::Ok();
}

std::string KnownSettings() {
  std::string known =
      "role, data_dir, identity, offers, inventory, pricing, pricing_policy, executor, health, log_level, listen, "
      "advertise, "
      "bootstrap, client_listen, metrics_listen";
  for (const NumberSetting& setting : kNumberSettings) known += ", " + std::string(setting.key);
  return known + ", " + std::string(kMisbehaviourPoints) + ", ban_addresses, allow_tenants, deny_tenants";
}

// Settings that are each in range but do not work together.
Status CheckCombinations(const NodeConfig& config) {
  const gossip::GossipConfig& core = config.limits;
  if (config.limits.target_outbound > config.limits.max_outbound) {
    return Status::InvalidArgument("outbound_peers: " + std::to_string(config.limits.target_outbound) +
                                   " is more than max_outbound_peers (" + std::to_string(config.limits.max_outbound) +
                                   ")");
  }
  if (core.ping_interval_ms >= core.peer_timeout_ms) {
    return Status::InvalidArgument("ping_interval_ms: " + std::to_string(core.ping_interval_ms) +
                                   " is not less than peer_timeout_ms (" + std::to_string(core.peer_timeout_ms) +
                                   "): a quiet but live peer would time out between pings");
  }
  if (core.reconnect_min_ms > core.reconnect_max_ms) {
    return Status::InvalidArgument("reconnect_min_ms: " + std::to_string(core.reconnect_min_ms) +
                                   " is more than reconnect_max_ms (" + std::to_string(core.reconnect_max_ms) + ")");
  }
  if (core.store_retention_ms <= core.graft_timeout_ms) {
    return Status::InvalidArgument("store_retention_ms: " + std::to_string(core.store_retention_ms) +
                                   " is not more than graft_timeout_ms (" + std::to_string(core.graft_timeout_ms) +
                                   "): a message would be gone before a peer that heard of it asks for it");
  }
  return Status::Ok();
}

Result<NodeConfig> Parse(std::string_view yaml_text) {
  NodeConfig config;
  Result<market::YamlTree> tree =
      market::YamlTree::Parse(yaml_text, {.max_nodes = kMaxConfigYamlNodes, .max_depth = kMaxConfigNestingDepth});
  if (!tree.ok()) return tree.status();
  const market::YamlNode root = tree->Root();
  if (root.IsNull()) return config;  // an empty file: all defaults
  if (!root.IsMap()) return Status::InvalidArgument("a config file is a map of settings");
  GPUMART_RETURN_IF_ERROR(CheckKeysOnce(root, ""));
  bool listen_set = false;
  market::YamlNode pricing_policy;  // undefined unless given; read once the tables are known
  std::string bidding_set;          // a bidding key given (only a provider bids)
  for (const market::YamlMapEntry& entry : root.Entries()) {
    const std::string key(entry.key.IsScalar() ? entry.key.Scalar() : std::string_view("?"));
    const market::YamlNode value = entry.value;
    if (const NumberSetting* setting = FindNumberSetting(key)) {
      uint64_t n = 0;
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, setting->min, setting->max, n));
      setting->set(config, n);
      if (key == "bid_ttl_ms" || key.starts_with("offer_")) bidding_set = key;
    } else if (key == "role") {
      std::string role;
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, role));
      if (role == "relay") config.role = NodeRole::kRelay;
      else if (role == "provider") config.role = NodeRole::kProvider;
      else if (role == "tenant") config.role = NodeRole::kTenant;
      else return Status::InvalidArgument("role: \"" + role + "\" is not relay|provider|tenant");
    } else if (key == "data_dir") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.data_dir));
    } else if (key == "identity") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.identity));
    } else if (key == "offers") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.offers));
    } else if (key == "inventory") {
      Result<bidding::InventoryConfig> inventory = bidding::ParseInventoryConfig(value, key);
      if (!inventory.ok()) return inventory.status();
      config.inventory = std::move(inventory).value();
    } else if (key == "pricing") {
      GPUMART_RETURN_IF_ERROR(market::ParseOfferPricing(value, key, config.pricing));
    } else if (key == "pricing_policy") {
      pricing_policy = value;
    } else if (key == "executor") {
      Result<bidding::ExecutorConfig> executor = bidding::ParseExecutorConfig(value, key);
      if (!executor.ok()) return executor.status();
      config.provider.executor = std::move(executor).value();
      bidding_set = key;
    } else if (key == "health") {
      Result<bidding::GpuHealthConfig> health = bidding::ParseGpuHealthConfig(value, key);
      if (!health.ok()) return health.status();
      config.provider.health = std::move(health).value();
      bidding_set = key;
    } else if (key == "log_level") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.log_level));
      const std::string& l = config.log_level;
      if (l != "trace" && l != "debug" && l != "info" && l != "warn" && l != "error") {
        return Status::InvalidArgument("log_level: \"" + l + "\" is not trace|debug|info|warn|error");
      }
    } else if (key == "listen") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.listen));
      GPUMART_RETURN_IF_ERROR(CheckEndpoint(key, config.listen, /*wildcard_port=*/true));
      listen_set = true;
    } else if (key == "client_listen") {
      // Empty: no client port. Off loopback the port speaks CURVE only (docs/CLIENT.md).
      if (value.IsScalar() && value.Scalar().empty()) {
        config.client_listen.clear();
      } else {
        GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.client_listen));
        GPUMART_RETURN_IF_ERROR(CheckEndpoint(key, config.client_listen, /*wildcard_port=*/true));
      }
    } else if (key == "metrics_listen") {
      // 0 or "": no HTTP endpoint.
      if (value.IsScalar() && value.Scalar().empty()) {
        config.metrics_listen.clear();
      } else {
        GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.metrics_listen));
      }
      if (config.metrics_listen == "0") config.metrics_listen.clear();
      if (!config.metrics_listen.empty()) {
        Result<metrics::ListenAddress> address = metrics::ParseListenAddress(config.metrics_listen);
        if (!address.ok()) return address.status().WithContext(key);
      }
      config.metrics_listen_given = true;
    } else if (key == "advertise") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.advertise));
      GPUMART_RETURN_IF_ERROR(CheckEndpoint(key, config.advertise, /*wildcard_port=*/false));
      if (config.advertise.find("://0.0.0.0:") != std::string::npos || config.advertise.find("://*:") != std::string::npos) {
        return Status::InvalidArgument("advertise: \"" + config.advertise + "\" is not an address others can dial");
      }
    } else if (key == "bootstrap") {
      GPUMART_RETURN_IF_ERROR(ReadBootstrap(value, config.bootstrap));
    } else if (key == kMisbehaviourPoints) {
      GPUMART_RETURN_IF_ERROR(ReadMisbehaviourPoints(value, config.score));
    } else if (key == "allow_tenants") {
      GPUMART_RETURN_IF_ERROR(ReadTenants(value, key, config.bidding.allow_tenants));
      bidding_set = key;
    } else if (key == "deny_tenants") {
      GPUMART_RETURN_IF_ERROR(ReadTenants(value, key, config.bidding.deny_tenants));
      bidding_set = key;
    } else if (key == "ban_addresses") {
      GPUMART_RETURN_IF_ERROR(ReadBool(value, key, config.ban_addresses));
    } else {
      return Status::InvalidArgument(key + ": unknown setting (known: " + KnownSettings() + ")");
    }
  }
  if (config.role == NodeRole::kTenant && !listen_set) config.listen.clear();  // a tenant only dials out
  if (config.role == NodeRole::kTenant && !config.metrics_listen_given) config.metrics_listen.clear();
  if (!config.advertise.empty() && config.listen.empty()) {
    return Status::InvalidArgument("advertise: needs listen (a node that accepts no links advertises none)");
  }
  GPUMART_RETURN_IF_ERROR(CheckCombinations(config));
  if (!bidding_set.empty() && config.role != NodeRole::kProvider) {
    return Status::InvalidArgument(bidding_set + ": only a provider bids (role is " + std::string(ToString(config.role)) +
                                   ")");
  }
  if (config.provider.offer_refresh_ms >= config.provider.offer_ttl_ms) {
    return Status::InvalidArgument("offer_refresh_ms: " + std::to_string(config.provider.offer_refresh_ms) +
                                   " is not less than offer_ttl_ms (" + std::to_string(config.provider.offer_ttl_ms) +
                                   "): the Offer would expire before it is republished");
  }
  const bool sells = config.inventory.has_value() || !config.pricing.empty() || pricing_policy.IsDefined();
  if (sells && config.role != NodeRole::kProvider) {
    return Status::InvalidArgument(std::string(config.inventory ? "inventory" : !config.pricing.empty() ? "pricing" : "pricing_policy") + ": only a provider sells (role is " +
                                   std::string(ToString(config.role)) + ")");
  }
  if (sells && !config.offers.empty()) {
    return Status::InvalidArgument("offers: give the inventory and prices either as an offers file or as inventory and "
                                   "pricing, not both");
  }
  if (config.inventory && config.pricing.empty() && !pricing_policy.IsDefined()) {
    return Status::InvalidArgument("pricing: missing (a provider with an inventory needs its prices)");
  }
  if ((!config.pricing.empty() || pricing_policy.IsDefined()) && !config.inventory) {
    return Status::InvalidArgument("inventory: missing (a provider with prices needs its inventory)");
  }
  if (config.inventory) {
    // A table or utilization policy without tables, a command without a program, ... name the key.
    Result<bidding::PricingConfig> policy = bidding::ParsePricingPolicy(pricing_policy, config.pricing);
    if (!policy.ok()) return policy.status();
    config.pricing_policy = std::move(policy).value();
  }
  if (config.role == NodeRole::kProvider && config.offers.empty() && !config.inventory) {
    return Status::InvalidArgument("offers: a provider needs its inventory and prices (inventory and pricing, or an "
                                   "offers file)");
  }
  return config;
}

Result<NodeConfig> Load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::IoError(path + ": cannot open");
  std::string text(kMaxConfigFileBytes + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(file.gcount()));
  Result<NodeConfig> config = ParseNodeConfig(text);
  if (!config.ok()) return config.status().WithContext(path);
  return config;
}

}  // namespace

gossip::GossipNodeConfig NodeConfig::GossipSettings() const {
  gossip::GossipNodeConfig settings;
  settings.listen_endpoint = listen;
  settings.advertised_endpoint = advertise;
  settings.bootstrap = bootstrap;
  settings.core = limits;
  settings.core.role = role == NodeRole::kProvider ? gossip::Role::kProvider
                       : role == NodeRole::kTenant ? gossip::Role::kTenant
                                                   : gossip::Role::kRelay;
  settings.score = score;
  settings.peer_hwm = peer_queue_messages;
  settings.handshake_ivl_ms = handshake_timeout_ms;
  settings.ban_addresses = ban_addresses;
  return settings;
}

Result<NodeConfig> ParseNodeConfig(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxConfigFileBytes) return Status::LimitExceeded("config larger than 1 MiB");
  return CatchAll("config", [&] { return Parse(yaml_text); });
}

Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  return CatchAll(path, [&] { return Load(path); });
}

}  // namespace gpumart::node
