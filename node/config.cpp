#include "node/config.h"

#include <charconv>
#include <fstream>

#include "market/boundary.h"
#include "market/offers.h"
#include "market/yaml_tree.h"
#include "node/gossip/curve_keys.h"
#include "node/gossip/frames.h"

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

Result<NodeConfig> Parse(std::string_view yaml_text) {
  NodeConfig config;
  Result<market::YamlTree> tree =
      market::YamlTree::Parse(yaml_text, {.max_nodes = kMaxConfigYamlNodes, .max_depth = kMaxConfigNestingDepth});
  if (!tree.ok()) return tree.status();
  const market::YamlNode root = tree->Root();
  if (root.IsNull()) return config;  // an empty file: all defaults
  if (!root.IsMap()) return Status::InvalidArgument("a config file is a map of settings");
  bool listen_set = false;
  for (const market::YamlMapEntry& entry : root.Entries()) {
    const std::string key(entry.key.IsScalar() ? entry.key.Scalar() : std::string_view("?"));
    const market::YamlNode value = entry.value;
    if (key == "role") {
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
    } else if (key == "advertise") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.advertise));
      GPUMART_RETURN_IF_ERROR(CheckEndpoint(key, config.advertise, /*wildcard_port=*/false));
      if (config.advertise.find("://0.0.0.0:") != std::string::npos || config.advertise.find("://*:") != std::string::npos) {
        return Status::InvalidArgument("advertise: \"" + config.advertise + "\" is not an address others can dial");
      }
    } else if (key == "bootstrap") {
      GPUMART_RETURN_IF_ERROR(ReadBootstrap(value, config.bootstrap));
    } else if (key == "max_inbound_peers" || key == "max_outbound_peers" || key == "outbound_peers") {
      uint64_t n = 0;
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, 1, kMaxConfigPeers, n));
      (key == "max_inbound_peers" ? config.limits.max_inbound
       : key == "max_outbound_peers" ? config.limits.max_outbound
                                     : config.limits.target_outbound) = static_cast<size_t>(n);
    } else if (key == "hop_limit") {
      uint64_t n = 0;
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, 1, gossip::limits::kMaxHops, n));
      config.limits.hop_limit = static_cast<uint32_t>(n);
    } else if (key == "peer_frames_per_second") {
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, 1, kMaxConfigRate, config.limits.frames_per_second));
    } else if (key == "peer_bytes_per_second") {
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, 1, kMaxConfigRate, config.limits.bytes_per_second));
    } else if (key == "ban_threshold") {
      uint64_t n = 0;
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, 1, 1'000'000, n));
      config.score.ban_threshold = static_cast<int64_t>(n);
    } else if (key == "ban_seconds") {
      uint64_t n = 0;
      GPUMART_RETURN_IF_ERROR(ReadNumber(value, key, 1, kMaxConfigBanSeconds, n));
      config.score.ban_ms = static_cast<int64_t>(n) * 1000;
    } else {
      return Status::InvalidArgument(key +
                                     ": unknown setting (known: role, data_dir, identity, offers, inventory, pricing, log_level, listen, "
                                     "advertise, bootstrap, max_inbound_peers, max_outbound_peers, outbound_peers, "
                                     "hop_limit, peer_frames_per_second, peer_bytes_per_second, ban_threshold, "
                                     "ban_seconds)");
    }
  }
  if (config.role == NodeRole::kTenant && !listen_set) config.listen.clear();  // a tenant only dials out
  if (!config.advertise.empty() && config.listen.empty()) {
    return Status::InvalidArgument("advertise: needs listen (a node that accepts no links advertises none)");
  }
  if (config.limits.target_outbound > config.limits.max_outbound) {
    return Status::InvalidArgument("outbound_peers: " + std::to_string(config.limits.target_outbound) +
                                   " is more than max_outbound_peers (" + std::to_string(config.limits.max_outbound) +
                                   ")");
  }
  const bool sells = config.inventory.has_value() || !config.pricing.empty();
  if (sells && config.role != NodeRole::kProvider) {
    return Status::InvalidArgument(std::string(config.inventory ? "inventory" : "pricing") + ": only a provider sells (role is " +
                                   std::string(ToString(config.role)) + ")");
  }
  if (sells && !config.offers.empty()) {
    return Status::InvalidArgument("offers: give the inventory and prices either as an offers file or as inventory and "
                                   "pricing, not both");
  }
  if (config.inventory && config.pricing.empty()) {
    return Status::InvalidArgument("pricing: missing (a provider with an inventory needs its prices)");
  }
  if (!config.pricing.empty() && !config.inventory) {
    return Status::InvalidArgument("inventory: missing (a provider with prices needs its inventory)");
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
