#include "node/config.h"

#include <fstream>

#include "market/boundary.h"
#include "market/yaml_tree.h"

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

Result<NodeConfig> Parse(std::string_view yaml_text) {
  NodeConfig config;
  Result<market::YamlTree> tree =
      market::YamlTree::Parse(yaml_text, {.max_nodes = kMaxConfigYamlNodes, .max_depth = kMaxConfigNestingDepth});
  if (!tree.ok()) return tree.status();
  const market::YamlNode root = tree->Root();
  if (root.IsNull()) return config;  // an empty file: all defaults
  if (!root.IsMap()) return Status::InvalidArgument("a config file is a map of settings");
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
    } else if (key == "log_level") {
      GPUMART_RETURN_IF_ERROR(ReadString(value, key, config.log_level));
      const std::string& l = config.log_level;
      if (l != "trace" && l != "debug" && l != "info" && l != "warn" && l != "error") {
        return Status::InvalidArgument("log_level: \"" + l + "\" is not trace|debug|info|warn|error");
      }
    } else {
      return Status::InvalidArgument(key + ": unknown setting (known: role, data_dir, identity, offers, log_level)");
    }
  }
  if (config.role == NodeRole::kProvider && config.offers.empty()) {
    return Status::InvalidArgument("offers: a provider needs its inventory and prices (an offers file)");
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

Result<NodeConfig> ParseNodeConfig(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxConfigFileBytes) return Status::LimitExceeded("config larger than 1 MiB");
  return CatchAll("config", [&] { return Parse(yaml_text); });
}

Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  return CatchAll(path, [&] { return Load(path); });
}

}  // namespace gpumart::node
