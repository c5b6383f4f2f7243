// Node configuration: what `gpumartd --config FILE` reads (docs/CONFIGURATION.md). A config file
// is untrusted input (a typo must not silently change behaviour): unknown keys are errors, and
// every error names the key.
#pragma once

#include <string>
#include <string_view>

#include "market/status.h"

namespace gpumart::node {

constexpr size_t kMaxConfigFileBytes = 1 << 20;
constexpr size_t kMaxConfigStringBytes = 4096;  // a path or a name
// A config is a flat map; its YAML tree is bounded (market/yaml_tree.h never recurses).
constexpr size_t kMaxConfigYamlNodes = 64 * 1024;
constexpr size_t kMaxConfigNestingDepth = 16;
constexpr std::string_view kDefaultDataDir = "./gpumart-data";

enum class NodeRole { kRelay, kProvider, kTenant };
std::string_view ToString(NodeRole role);

struct NodeConfig {
  NodeRole role = NodeRole::kRelay;
  std::string data_dir = std::string(kDefaultDataDir);
  // The identity key file; empty = <data_dir>/identity.key, created on first start.
  std::string identity;
  // Provider inventory and prices, in the offers file format (docs/OFFERS.md); providers only.
  std::string offers;
  std::string log_level = "info";  // trace, debug, info, warn, error
  std::string IdentityPath() const { return identity.empty() ? data_dir + "/identity.key" : identity; }
};

// Never throw: every error, out of memory included, is a Status.
Result<NodeConfig> ParseNodeConfig(std::string_view yaml_text);
Result<NodeConfig> LoadNodeConfig(const std::string& path);

}  // namespace gpumart::node
