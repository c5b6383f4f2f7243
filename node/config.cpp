#include "node/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

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

Status ReadString(const YAML::Node& node, const std::string& key, std::string& out) {
  if (!node.IsScalar()) return Status::InvalidArgument(key + ": expected a string");
  out = node.Scalar();
  if (out.empty()) return Status::InvalidArgument(key + ": must not be empty");
  if (out.size() > 4096) return Status::LimitExceeded(key + ": longer than 4096 bytes");
  return Status::Ok();
}

}  // namespace

Result<NodeConfig> ParseNodeConfig(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxConfigFileBytes) return Status::LimitExceeded("config larger than 1 MiB");
  // Config files are small and flat; deep nesting means a wrong file, and yaml-cpp recurses.
  int depth = 0;
  for (char c : yaml_text) {
    if (c == '[' || c == '{') ++depth;
    if (c == ']' || c == '}') --depth;
    if (depth > 16) return Status::LimitExceeded("config nested deeper than 16 levels");
  }
  NodeConfig config;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("invalid YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return config;  // an empty file: all defaults
  if (!root.IsMap()) return Status::InvalidArgument("a config file is a map of settings");
  try {
    for (const auto& entry : root) {
      const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : std::string("?");
      const YAML::Node& value = entry.second;
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
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("config: ") + e.what());
  }
  if (config.role == NodeRole::kProvider && config.offers.empty()) {
    return Status::InvalidArgument("offers: a provider needs its inventory and prices (an offers file)");
  }
  return config;
}

Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::IoError(path + ": cannot open");
  std::string text(kMaxConfigFileBytes + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(file.gcount()));
  Result<NodeConfig> config = ParseNodeConfig(text);
  if (!config.ok()) return config.status().WithContext(path);
  return config;
}

}  // namespace gpumart::node
