// Node configuration: what `gpumartd --config FILE` reads (docs/CONFIGURATION.md). A config file
// is untrusted input (a typo must not silently change behaviour): unknown keys are errors, and
// every error names the key.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/bid_engine.h"
#include "bidding/inventory.h"
#include "bidding/pricing.h"
#include "market/status.h"
#include "market/types.h"
#include "node/gossip/gossip_node.h"
#include "node/provider_actor.h"

namespace gpumart::node {

constexpr size_t kMaxConfigFileBytes = 1 << 20;
constexpr size_t kMaxConfigStringBytes = 4096;  // a path or a name
// A config is a flat map; its YAML tree is bounded (market/yaml_tree.h never recurses).
constexpr size_t kMaxConfigYamlNodes = 64 * 1024;
constexpr size_t kMaxConfigNestingDepth = 16;
constexpr std::string_view kDefaultDataDir = "./gpumart-data";
constexpr std::string_view kDefaultListen = "tcp://0.0.0.0:7700";
// The client port (docs/CLIENT.md): loopback by default; off loopback it speaks CURVE only.
constexpr std::string_view kDefaultClientListen = "tcp://127.0.0.1:7701";
constexpr size_t kMaxBootstrapPeers = 256;
// Upper bounds of the gossip settings: far above any sane value, they only keep a typo (an extra
// digit) from sizing tables or rates absurdly.
constexpr uint64_t kMaxConfigPeers = 4096;
constexpr uint64_t kMaxConfigRate = uint64_t{1} << 40;
constexpr uint64_t kMaxConfigBanSeconds = 365 * 24 * 3600;
constexpr uint64_t kMaxConfigTimerMs = 24 * 3600 * 1000;  // every *_ms setting: at most a day
constexpr uint64_t kMaxConfigPeerQueue = 1'000'000;       // messages queued towards one peer
constexpr uint64_t kMaxConfigScore = 1'000'000;           // ban_threshold, misbehaviour points
constexpr size_t kMaxConfigTenants = 4096;                // allow_tenants, deny_tenants (each)

enum class NodeRole { kRelay, kProvider, kTenant };
std::string_view ToString(NodeRole role);

struct NodeConfig {
  NodeRole role = NodeRole::kRelay;
  std::string data_dir = std::string(kDefaultDataDir);
  // The identity key file; empty = <data_dir>/identity.key, created on first start.
  std::string identity;
  // Provider inventory and prices, in the offers file format (docs/OFFERS.md); providers only.
  std::string offers;
  // Or in the config itself (docs/CONFIGURATION.md, "Provider inventory"): the `inventory`
  // section (checked against the GPU model table and detected at start: bidding::LoadInventory)
  // and the `pricing` price tables (the offers format's).
  std::optional<bidding::InventoryConfig> inventory;
  std::vector<market::PriceTable> pricing;
  // How the provider prices (docs/PRICING.md): the `pricing_policy` section read with the
  // `pricing` tables (bidding::ParsePricingPolicy); without the section, the table policy.
  bidding::PricingConfig pricing_policy;
  // The bid engine's settings: `bid_ttl_ms`, `allow_tenants`, `deny_tenants` (providers only);
  // the rest are the engine's defaults.
  bidding::BidEngineOptions bidding;
  // The provider actor's settings (providers only): `executor` (bidding::ParseExecutorConfig;
  // the log executor unless given) and the Offer's timings `offer_ttl_ms`, `offer_refresh_ms`,
  // `offer_debounce_ms`. gpumartd starts the provider with these.
  ProviderOptions provider;
  std::string log_level = "info";  // trace, debug, info, warn, error
  // Gossip (docs/GOSSIP.md): where to accept links ("" = none; a tenant's default), the endpoint
  // others dial ("" = the one bound), and peer addresses to dial first.
  std::string listen = std::string(kDefaultListen);
  std::string advertise;
  std::vector<std::string> bootstrap;
  // Where the client port listens ("" = none; "*" as the port picks a free one).
  std::string client_listen = std::string(kDefaultClientListen);
  gossip::GossipConfig limits;  // limits, degree, hop limit, rates, timers (its advertised_address unused here)
  gossip::ScoreConfig score;    // ban threshold and duration, decay, points per misbehaviour
  int peer_queue_messages = gossip::kPeerHwm;        // per peer and direction, then sends are dropped
  int handshake_timeout_ms = gossip::kHandshakeIvlMs;  // a CURVE handshake not done by then is closed
  bool ban_addresses = true;                         // ban a misbehaving peer's IP address too
  std::string IdentityPath() const { return identity.empty() ? data_dir + "/identity.key" : identity; }
  // The gossip actor's settings (without its callbacks, which the daemon adds).
  gossip::GossipNodeConfig GossipSettings() const;
};

// Never throw: every error, out of memory included, is a Status.
Result<NodeConfig> ParseNodeConfig(std::string_view yaml_text);
Result<NodeConfig> LoadNodeConfig(const std::string& path);

}  // namespace gpumart::node
