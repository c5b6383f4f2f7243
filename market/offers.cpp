#include "market/offers.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace gpumart::market {
namespace {

constexpr uint64_t kPpm = 1'000'000;

Status Error(const std::string& path, const std::string& message) {
  return Status::InvalidArgument(path + ": " + message);
}

std::string Quote(const std::string& text) {
  constexpr size_t kShown = 40;  // keep messages readable when the input is huge
  return "'" + (text.size() > kShown ? text.substr(0, kShown) + "..." : text) + "'";
}

std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

Result<std::string> ReadString(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) return Error(path, "must be a string");
  const std::string& text = node.Scalar();
  if (text.empty()) return Error(path, "must not be empty");
  if (text.size() > kMaxOfferStringLength) {
    return Error(path, "longer than " + std::to_string(kMaxOfferStringLength) + " characters");
  }
  return text;
}

// A whole number written without sign or fraction, at most `max`.
Result<uint64_t> ReadUnsigned(const YAML::Node& node, const std::string& path, uint64_t max) {
  if (!node.IsScalar()) return Error(path, "must be a whole number");
  const std::string& text = node.Scalar();
  if (!text.empty() && text[0] == '-') return Error(path, text + " is negative");
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range) return Error(path, Quote(text) + " is too large");
  if (ec != std::errc() || p != end || text.empty()) {
    return Error(path, Quote(text) + " is not a whole number");
  }
  if (value > max) return Error(path, text + " exceeds the limit of " + std::to_string(max));
  return value;
}

// "512Gi", "2Ti", "80GiB", "1000000", "4g": decimal (k M G T P E) or binary (Ki..Ei) suffixes,
// any case, with an optional trailing b.
Result<uint64_t> ReadSize(const YAML::Node& node, const std::string& path, uint64_t max) {
  if (!node.IsScalar()) return Error(path, "must be a size like 80Gi");
  const std::string& text = node.Scalar();
  if (!text.empty() && text[0] == '-') return Error(path, text + " is negative");
  uint64_t number = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, number);
  if (ec == std::errc::result_out_of_range) return Error(path, Quote(text) + " is too large");
  if (ec != std::errc() || text.empty()) return Error(path, Quote(text) + " is not a size like 80Gi");
  std::string suffix = ToLower(std::string_view(p, static_cast<size_t>(end - p)));
  if (!suffix.empty() && suffix.back() == 'b') suffix.pop_back();
  static constexpr std::string_view kUnits = "kmgtpe";
  uint64_t multiplier = 1;
  if (!suffix.empty()) {
    const size_t power = kUnits.find(suffix[0]);
    const bool binary = suffix.size() == 2 && suffix[1] == 'i';
    if (power == std::string_view::npos || (suffix.size() == 2 && !binary) || suffix.size() > 2) {
      return Error(path, Quote(text) + " has an unknown size suffix (use k, M, G, T, P, E or Ki..Ei)");
    }
    for (size_t i = 0; i <= power; ++i) multiplier *= binary ? 1024 : 1000;
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(number, multiplier, &bytes)) return Error(path, Quote(text) + " is too large");
  if (bytes > max) return Error(path, text + " exceeds the limit of " + FormatGi(max));
  return bytes;
}

// Checks every key of a map against the allowed ones; `required` must all be present.
Status CheckKeys(const YAML::Node& node, const std::string& path,
                 std::initializer_list<std::string_view> allowed,
                 std::initializer_list<std::string_view> required) {
  if (!node.IsMap()) return Error(path, "must be a map");
  std::set<std::string, std::less<>> present;
  for (const auto& entry : node) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : std::string();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string names;
      for (std::string_view name : allowed) names += (names.empty() ? "" : ", ") + std::string(name);
      return Error(path.empty() ? Quote(key) : path + "." + key, "unknown key (expected one of " + names + ")");
    }
    if (!present.insert(key).second) return Error(path + "." + key, "given twice");
  }
  for (std::string_view key : required) {
    if (present.count(key) == 0) return Error(path.empty() ? std::string(key) : path + "." + std::string(key), "missing");
  }
  return Status::Ok();
}

// A sequence (or null for "none"), at most `max` entries.
Status CheckSequence(const YAML::Node& node, const std::string& path, size_t max) {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) return Error(path, "must be a list");
  if (node.size() > max) {
    return Error(path, std::to_string(node.size()) + " entries exceed the limit of " + std::to_string(max));
  }
  return Status::Ok();
}

// Canonical gpu rate key: "*", "model", "model.<ram>", "model.<ram>.<interface>".
Result<std::string> CanonicalRateKey(const std::string& key, const std::string& path) {
  if (key == "*") return key;
  std::vector<std::string> parts;
  std::stringstream stream(key);
  for (std::string part; std::getline(stream, part, '.');) parts.push_back(part);
  if (parts.empty() || parts.size() > 3 || key.back() == '.' || parts[0].empty() || parts[0] == "*") {
    return Error(path, Quote(key) + " is not '*', 'model', 'model.<ram>' or 'model.<ram>.<interface>'");
  }
  std::string canonical = ToLower(parts[0]);
  if (parts.size() >= 2) {
    Result<uint64_t> ram = ReadSize(YAML::Node(parts[1]), path, kMaxGpuRamBytes);
    if (!ram.ok()) return Error(path, Quote(key) + ": the RAM part " + Quote(parts[1]) + " is not a size like 80Gi");
    canonical += "." + FormatGi(*ram);
  }
  if (parts.size() == 3) {
    auto interface = ParseGpuInterface(parts[2]);
    if (!interface) return Error(path, Quote(key) + ": unknown interface " + Quote(parts[2]) + " (pcie or sxm)");
    canonical += "." + std::string(ToString(*interface));
  }
  return canonical;
}

// Error-returning helper: `TRY_ASSIGN(x, expr)` assigns the value or returns the status.
#define GPUMART_TRY_ASSIGN(target, expression)   \
  do {                                           \
    auto result_ = (expression);                 \
    if (!result_.ok()) return result_.status();  \
    target = std::move(result_).value();         \
  } while (false)
#define GPUMART_TRY(expression)                  \
  do {                                           \
    Status status_ = (expression);               \
    if (!status_.ok()) return status_;           \
  } while (false)

Status ParseGpu(const YAML::Node& node, const std::string& path, GpuDevices& gpu) {
  GPUMART_TRY(CheckKeys(node, path, {"vendor", "model", "ram", "interface", "cuda", "count"},
                        {"model", "ram", "count"}));
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    const std::string at = path + "." + key;
    const YAML::Node& value = entry.second;
    if (key == "vendor") {
      GPUMART_TRY_ASSIGN(gpu.vendor, ReadString(value, at));
      gpu.vendor = ToLower(gpu.vendor);
    } else if (key == "model") {
      GPUMART_TRY_ASSIGN(gpu.model, ReadString(value, at));
      gpu.model = ToLower(gpu.model);
      if (gpu.model == "*") return Error(at, "a device has a concrete model, not '*'");
    } else if (key == "ram") {
      GPUMART_TRY_ASSIGN(gpu.ram_bytes, ReadSize(value, at, kMaxGpuRamBytes));
    } else if (key == "interface") {
      std::string text;
      GPUMART_TRY_ASSIGN(text, ReadString(value, at));
      auto interface = ParseGpuInterface(text);
      if (!interface) return Error(at, Quote(text) + " is not pcie or sxm");
      gpu.interface = *interface;
    } else if (key == "cuda") {
      std::string text;
      GPUMART_TRY_ASSIGN(text, ReadString(value, at));
      gpu.cuda = ParseCudaVersion(text);
      if (!gpu.cuda) return Error(at, Quote(text) + " is not a CUDA version like 12.4");
    } else if (key == "count") {
      uint64_t count = 0;
      GPUMART_TRY_ASSIGN(count, ReadUnsigned(value, at, kMaxGpusPerNode));
      gpu.count = static_cast<uint32_t>(count);
    }
  }
  return Status::Ok();
}

Status ParseNode(const YAML::Node& node, const std::string& path, NodeCapacity& capacity) {
  GPUMART_TRY(CheckKeys(node, path, {"name", "cpu_millis", "memory", "storage", "gpus"},
                        {"name", "cpu_millis", "memory"}));
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    const std::string at = path + "." + key;
    const YAML::Node& value = entry.second;
    if (key == "name") {
      GPUMART_TRY_ASSIGN(capacity.name, ReadString(value, at));
    } else if (key == "cpu_millis") {
      GPUMART_TRY_ASSIGN(capacity.cpu_millis, ReadUnsigned(value, at, kMaxCpuMillisPerNode));
    } else if (key == "memory") {
      GPUMART_TRY_ASSIGN(capacity.memory_bytes, ReadSize(value, at, kMaxNodeMemoryBytes));
    } else if (key == "storage") {
      GPUMART_TRY_ASSIGN(capacity.storage_bytes, ReadSize(value, at, kMaxNodeStorageBytes));
    } else if (key == "gpus") {
      GPUMART_TRY(CheckSequence(value, at, kMaxGpuTypesPerNode));
      for (size_t i = 0; i < value.size(); ++i) {
        GpuDevices gpu;
        GPUMART_TRY(ParseGpu(value[i], Index(at, i), gpu));
        for (const GpuDevices& other : capacity.gpus) {
          if (other.vendor == gpu.vendor && other.model == gpu.model &&
              other.ram_bytes == gpu.ram_bytes && other.interface == gpu.interface) {
            return Error(Index(at, i), "device type " + gpu.model + "." + FormatGi(gpu.ram_bytes) +
                                           "." + std::string(ToString(gpu.interface)) +
                                           " is listed twice on this node");
          }
        }
        capacity.gpus.push_back(std::move(gpu));
      }
    }
  }
  return Status::Ok();
}

Status ParsePriceTable(const YAML::Node& node, const std::string& path, PriceTable& table) {
  GPUMART_TRY(CheckKeys(node, path, {"denom", "gpu", "cpu", "memory", "storage"}, {"denom"}));
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    const std::string at = path + "." + key;
    const YAML::Node& value = entry.second;
    if (key == "denom") {
      GPUMART_TRY_ASSIGN(table.denom, ReadString(value, at));
    } else if (key == "cpu") {
      GPUMART_TRY_ASSIGN(table.cpu, ReadUnsigned(value, at, kMaxRatePerHour));
    } else if (key == "memory") {
      GPUMART_TRY_ASSIGN(table.memory, ReadUnsigned(value, at, kMaxRatePerHour));
    } else if (key == "storage") {
      GPUMART_TRY_ASSIGN(table.storage, ReadUnsigned(value, at, kMaxRatePerHour));
    } else if (key == "gpu") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) return Error(at, "must be a map of device key to rate");
      if (value.size() > kMaxGpuRatesPerTable) {
        return Error(at, std::to_string(value.size()) + " rates exceed the limit of " +
                             std::to_string(kMaxGpuRatesPerTable));
      }
      for (const auto& rate_entry : value) {
        std::string rate_key;
        GPUMART_TRY_ASSIGN(rate_key, ReadString(rate_entry.first, at));
        const std::string rate_at = at + "." + rate_key;
        std::string canonical;
        GPUMART_TRY_ASSIGN(canonical, CanonicalRateKey(rate_key, rate_at));
        uint64_t rate = 0;
        GPUMART_TRY_ASSIGN(rate, ReadUnsigned(rate_entry.second, rate_at, kMaxRatePerHour));
        if (!table.gpu.emplace(canonical, rate).second) {
          return Error(rate_at, "the same device key as another rate (" + canonical + ")");
        }
      }
    }
  }
  return Status::Ok();
}

Status ParseProvider(const YAML::Node& node, const std::string& path, size_t& nodes_total,
                     Offer& offer) {
  GPUMART_TRY(CheckKeys(node, path,
                        {"id", "attributes", "auditors", "reputation", "pricing", "nodes"},
                        {"id", "pricing", "nodes"}));
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    const std::string at = path + "." + key;
    const YAML::Node& value = entry.second;
    if (key == "id") {
      GPUMART_TRY_ASSIGN(offer.provider, ReadString(value, at));
    } else if (key == "attributes") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) return Error(at, "must be a map");
      if (value.size() > kMaxAttributesPerProvider) {
        return Error(at, "more than " + std::to_string(kMaxAttributesPerProvider) + " attributes");
      }
      for (const auto& attribute : value) {
        std::string name;
        std::string text;
        GPUMART_TRY_ASSIGN(name, ReadString(attribute.first, at));
        GPUMART_TRY_ASSIGN(text, ReadString(attribute.second, at + "." + name));
        offer.attributes[name] = text;
      }
    } else if (key == "auditors") {
      GPUMART_TRY(CheckSequence(value, at, kMaxAuditorsPerProvider));
      for (size_t i = 0; i < value.size(); ++i) {
        std::string auditor;
        GPUMART_TRY_ASSIGN(auditor, ReadString(value[i], Index(at, i)));
        offer.auditors.push_back(std::move(auditor));
      }
    } else if (key == "reputation") {
      const std::string text = value.IsScalar() ? value.Scalar() : std::string();
      double reputation = -1;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), reputation);
      if (ec != std::errc() || p != text.data() + text.size() || text.empty() ||
          !std::isfinite(reputation) || reputation < 0 || reputation > 1) {
        return Error(at, Quote(text) + " is not a number from 0 to 1");
      }
      offer.reputation_ppm = static_cast<uint32_t>(std::llround(reputation * kPpm));
    } else if (key == "pricing") {
      GPUMART_TRY(CheckSequence(value, at, kMaxPriceTablesPerProvider));
      if (value.size() == 0) return Error(at, "missing (at least one price table is needed)");
      for (size_t i = 0; i < value.size(); ++i) {
        PriceTable table;
        GPUMART_TRY(ParsePriceTable(value[i], Index(at, i), table));
        for (const PriceTable& other : offer.pricing) {
          if (other.denom == table.denom) return Error(Index(at, i) + ".denom", table.denom + " is priced twice");
        }
        offer.pricing.push_back(std::move(table));
      }
    } else if (key == "nodes") {
      GPUMART_TRY(CheckSequence(value, at, kMaxNodesPerProvider));
      if (value.size() == 0) return Error(at, "missing (a provider has at least one node)");
      nodes_total += value.size();
      if (nodes_total > kMaxOfferNodesTotal) {
        return Error(at, "the file's nodes exceed the limit of " + std::to_string(kMaxOfferNodesTotal));
      }
      std::set<std::string> names;
      for (size_t i = 0; i < value.size(); ++i) {
        NodeCapacity capacity;
        GPUMART_TRY(ParseNode(value[i], Index(at, i), capacity));
        if (!names.insert(capacity.name).second) {
          return Error(Index(at, i) + ".name", capacity.name + " is used by another node");
        }
        offer.nodes.push_back(std::move(capacity));
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<Offer>> ParseDocument(const YAML::Node& root) {
  GPUMART_TRY(CheckKeys(root, "", {"providers"}, {"providers"}));
  const YAML::Node providers = root["providers"];
  GPUMART_TRY(CheckSequence(providers, "providers", kMaxOfferProviders));
  std::vector<Offer> offers;
  offers.reserve(providers.size());
  std::set<std::string, std::less<>> ids;
  size_t nodes_total = 0;
  for (size_t i = 0; i < providers.size(); ++i) {
    Offer offer;
    const std::string path = Index("providers", i);
    GPUMART_TRY(ParseProvider(providers[i], path, nodes_total, offer));
    if (!ids.insert(offer.provider).second) {
      return Error(path + ".id", offer.provider + " is used by another provider");
    }
    // The same rules a peer's advertisement must pass.
    Status valid = ValidateOffer(offer);
    if (!valid.ok()) return valid.WithContext(path);
    offers.push_back(std::move(offer));
  }
  return offers;
}

#undef GPUMART_TRY
#undef GPUMART_TRY_ASSIGN

}  // namespace

Result<std::vector<Offer>> ParseOffers(std::string_view text) {
  if (text.size() > kMaxOffersFileBytes) {
    return Status::LimitExceeded("offers document of " + std::to_string(text.size()) +
                                 " bytes exceeds the limit of " + std::to_string(kMaxOffersFileBytes));
  }
  // yaml-cpp reports errors by exception; they stop here.
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    if (!root.IsMap()) return Status::InvalidArgument("an offers document is a map with a 'providers' list");
    return ParseDocument(root);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("not valid YAML or JSON: ") + e.what());
  }
}

Result<std::vector<Offer>> ParseOffersFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::IoError(path + ": cannot open");
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  if (size < 0) return Status::IoError(path + ": cannot read");
  if (static_cast<uint64_t>(size) > kMaxOffersFileBytes) {
    return Status::LimitExceeded(path + ": " + std::to_string(size) + " bytes exceed the limit of " +
                                 std::to_string(kMaxOffersFileBytes));
  }
  file.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  file.read(text.data(), size);
  if (!file) return Status::IoError(path + ": cannot read");
  Result<std::vector<Offer>> offers = ParseOffers(text);
  if (!offers.ok()) return offers.status().WithContext(path);
  return offers;
}

}  // namespace gpumart::market
