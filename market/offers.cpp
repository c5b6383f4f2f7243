#include "market/offers.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "market/boundary.h"
#include "market/match.h"
#include "market/mig.h"
#include "market/sdl.h"
#include "market/yaml_tree.h"

namespace gpumart::market {
namespace {

constexpr uint64_t kPpm = 1'000'000;

Status Error(const std::string& path, const std::string& message) {
  return Status::InvalidArgument(path + ": " + message);
}

std::string Quote(std::string_view text) {
  constexpr size_t kShown = 40;  // keep messages readable when the input is huge
  return "'" + (text.size() > kShown ? std::string(text.substr(0, kShown)) + "..." : std::string(text)) + "'";
}

std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

Result<std::string> ReadString(const YamlNode& node, const std::string& path) {
  if (!node.IsScalar()) return Error(path, "must be a string");
  const std::string_view text = node.Scalar();
  if (text.empty()) return Error(path, "must not be empty");
  if (text.size() > limits::kMaxNameBytes) {
    return Error(path, "longer than " + std::to_string(limits::kMaxNameBytes) + " characters");
  }
  return std::string(text);
}

// A whole number written without sign or fraction, at most `max`.
Result<uint64_t> ReadUnsigned(const YamlNode& node, const std::string& path, uint64_t max) {
  if (!node.IsScalar()) return Error(path, "must be a whole number");
  const std::string text(node.Scalar());
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

// A size as the SDL reads it (ParseSizeBytes: "512Gi", "1.5Ti", "80GiB", "1000000"), at most `max`.
Result<uint64_t> ReadSize(std::string_view text, const std::string& path, uint64_t max) {
  Result<uint64_t> bytes = ParseSizeBytes(text);
  if (!bytes.ok()) return Error(path, bytes.status().message());
  if (*bytes > max) return Error(path, std::string(text) + " exceeds the limit of " + FormatGi(max));
  return bytes;
}
Result<uint64_t> ReadSize(const YamlNode& node, const std::string& path, uint64_t max) {
  if (!node.IsScalar()) return Error(path, "must be a size like 80Gi");
  return ReadSize(node.Scalar(), path, max);
}

// Checks every key of a map against the allowed ones; `required` must all be present.
Status CheckKeys(const YamlNode& node, const std::string& path,
                 std::initializer_list<std::string_view> allowed,
                 std::initializer_list<std::string_view> required) {
  if (!node.IsMap()) return Error(path, "must be a map");
  std::set<std::string, std::less<>> present;
  for (const YamlMapEntry& entry : node.Entries()) {
    const std::string key(entry.key.IsScalar() ? entry.key.Scalar() : std::string_view());
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
Status CheckSequence(const YamlNode& node, const std::string& path, size_t max) {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) return Error(path, "must be a list");
  if (node.size() > max) {
    return Error(path, std::to_string(node.size()) + " entries exceed the limit of " + std::to_string(max));
  }
  return Status::Ok();
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

// Canonical gpu rate key: "*", "model", "model.<ram>", "model.<ram>.<interface>".
Result<std::string> CanonicalRateKey(const std::string& key, const std::string& path) {
  if (key == "*") return key;
  // Fractional devices (docs/PRICING.md): "model.mig-<profile>", and a model key with ".shared".
  if (const size_t mig = key.find(".mig-"); mig != std::string::npos) {
    const std::string model = ToLower(key.substr(0, mig));
    const std::string profile = ToLower(key.substr(mig + 5));
    if (model.empty() || model == "*" || model.find('.') != std::string::npos || !IsMigProfile(profile)) {
      return Error(path, Quote(key) + " is not 'model.mig-<profile>' with a MIG profile such as 1g.10gb");
    }
    return model + ".mig-" + profile;
  }
  constexpr std::string_view kShared = ".shared";
  if (key.size() > kShared.size() && key.compare(key.size() - kShared.size(), kShared.size(), kShared) == 0) {
    const std::string whole = key.substr(0, key.size() - kShared.size());
    if (whole == "*") return Error(path, "'*.shared' is not a key: price time-slice replicas per model");
    std::string canonical;
    GPUMART_TRY_ASSIGN(canonical, CanonicalRateKey(whole, path));
    return canonical + std::string(kShared);
  }
  std::vector<std::string> parts;
  std::stringstream stream(key);
  for (std::string part; std::getline(stream, part, '.');) parts.push_back(part);
  if (parts.empty() || parts.size() > 3 || key.back() == '.' || parts[0].empty() || parts[0] == "*") {
    return Error(path, Quote(key) + " is not '*', 'model', 'model.<ram>' or 'model.<ram>.<interface>'");
  }
  std::string canonical = ToLower(parts[0]);
  if (parts.size() >= 2) {
    Result<uint64_t> ram = ReadSize(parts[1], path, kMaxGpuRamBytes);
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

// One GPU entry: `count` whole GPUs, or with `mig` (a per-GPU layout, profile -> instances,
// checked against market/mig.h) their MIG instances, or with `replicas` their time-slice
// replicas (docs/FRACTIONAL.md). Appends the device entries it describes to `out`: a GPU in MIG
// mode or time-sliced is offered only as its fractions, never whole. `physical` gets the entry
// as physical GPUs.
Status ParseGpu(const YamlNode& node, const std::string& path, std::vector<GpuDevices>& out, PhysicalGpus& physical) {
  GPUMART_TRY(CheckKeys(node, path, {"vendor", "model", "ram", "interface", "cuda", "count", "mig", "replicas"},
                        {"model", "ram", "count"}));
  GpuDevices gpu;
  std::map<std::string, uint32_t> layout;
  uint32_t replicas = 0;
  for (const YamlMapEntry& entry : node.Entries()) {
    const std::string key(entry.key.Scalar());
    const std::string at = path + "." + key;
    const YamlNode value = entry.value;
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
      GPUMART_TRY_ASSIGN(count, ReadUnsigned(value, at, limits::kMaxGpusPerType));
      gpu.count = static_cast<uint32_t>(count);
    } else if (key == "mig") {
      if (!value.IsMap()) return Error(at, "must be a map of MIG profile to instances per GPU, e.g. {1g.10gb: 7}");
      if (value.size() > kMaxMigProfilesPerGpu) {
        return Error(at, std::to_string(value.size()) + " profiles, more than the limit of " +
                             std::to_string(kMaxMigProfilesPerGpu));
      }
      for (const YamlMapEntry& profile : value.Entries()) {
        const std::string name = ToLower(std::string(profile.key.Scalar()));
        const std::string profile_at = at + "." + std::string(profile.key.Scalar());
        if (!IsMigProfile(name)) return Error(profile_at, Quote(name) + " is not a MIG profile such as 1g.10gb");
        uint64_t instances = 0;
        GPUMART_TRY_ASSIGN(instances, ReadUnsigned(profile.value, profile_at, kMaxMigInstancesPerGpu));
        if (!layout.emplace(name, static_cast<uint32_t>(instances)).second) return Error(profile_at, "listed twice");
      }
    } else if (key == "replicas") {
      uint64_t count = 0;
      GPUMART_TRY_ASSIGN(count, ReadUnsigned(value, at, kMaxTimeSliceReplicas));
      if (count < 2) return Error(at, "a time-sliced GPU has at least 2 replicas (leave it out for whole GPUs)");
      replicas = static_cast<uint32_t>(count);
    }
  }
  if (!layout.empty() && replicas > 0) {
    return Error(path, "a GPU is either cut into MIG instances (mig) or time-sliced (replicas), not both");
  }
  physical.gpu = DeviceType{gpu.vendor, gpu.model, gpu.ram_bytes, gpu.interface};
  physical.count = gpu.count;
  if (!layout.empty()) {
    Status fits = CheckMigLayout(gpu.model, gpu.ram_bytes, layout);
    if (!fits.ok()) return Error(path + ".mig", fits.message());
    for (const auto& [profile, instances] : layout) {
      GpuDevices instance = gpu;
      instance.ram_bytes = MigProfileRamBytes(profile);
      instance.mig_profile = profile;
      instance.count = gpu.count * instances;  // both bounded: fits in 32 bits
      if (instance.count > limits::kMaxGpusPerType) {
        return Error(path, std::to_string(instance.count) + " " + profile + " instances, more than the limit of " +
                               std::to_string(limits::kMaxGpusPerType));
      }
      physical.units[DeviceType{instance.vendor, instance.model, instance.ram_bytes, instance.interface, profile}] =
          instances;
      out.push_back(std::move(instance));
    }
    return Status::Ok();
  }
  if (replicas > 0) {
    gpu.shared = true;
    if (uint64_t{gpu.count} * replicas > limits::kMaxGpusPerType) {
      return Error(path, std::to_string(uint64_t{gpu.count} * replicas) + " replicas, more than the limit of " +
                             std::to_string(limits::kMaxGpusPerType));
    }
    gpu.count *= replicas;
  }
  DeviceType unit = physical.gpu;
  unit.shared = gpu.shared;
  physical.units[unit] = replicas > 0 ? replicas : 1;
  out.push_back(std::move(gpu));
  return Status::Ok();
}

Status ParseNode(const YamlNode& node, const std::string& path, NodeCapacity& capacity, bool* gpus_detect,
                 std::vector<PhysicalGpus>& physical) {
  GPUMART_TRY(CheckKeys(node, path, {"name", "cpu_millis", "memory", "storage", "gpus"},
                        {"name", "cpu_millis", "memory"}));
  for (const YamlMapEntry& entry : node.Entries()) {
    const std::string key(entry.key.Scalar());
    const std::string at = path + "." + key;
    const YamlNode value = entry.value;
    if (key == "name") {
      GPUMART_TRY_ASSIGN(capacity.name, ReadString(value, at));
    } else if (key == "cpu_millis") {
      GPUMART_TRY_ASSIGN(capacity.cpu_millis, ReadUnsigned(value, at, kMaxCpuMillisPerNode));
    } else if (key == "memory") {
      GPUMART_TRY_ASSIGN(capacity.memory_bytes, ReadSize(value, at, kMaxNodeMemoryBytes));
    } else if (key == "storage") {
      GPUMART_TRY_ASSIGN(capacity.storage_bytes, ReadSize(value, at, kMaxNodeStorageBytes));
    } else if (key == "gpus") {
      if (gpus_detect != nullptr && value.IsScalar() && value.Scalar() == kDetectGpus) {
        *gpus_detect = true;
        continue;
      }
      GPUMART_TRY(CheckSequence(value, at, limits::kMaxGpuTypesPerNode));
      std::vector<GpuDevices> entries;
      for (size_t i = 0; i < value.size(); ++i) {
        entries.clear();
        GPUMART_TRY(ParseGpu(value.Item(i), Index(at, i), entries, physical.emplace_back()));
        for (GpuDevices& gpu : entries) {
          for (const GpuDevices& other : capacity.gpus) {
            if (other.vendor == gpu.vendor && other.model == gpu.model && other.ram_bytes == gpu.ram_bytes &&
                other.interface == gpu.interface && other.mig_profile == gpu.mig_profile && other.shared == gpu.shared) {
              return Error(Index(at, i), "device type " + gpu.model + "." + FormatGi(gpu.ram_bytes) + "." +
                                             std::string(ToString(gpu.interface)) +
                                             (gpu.mig_profile.empty() ? "" : " mig " + gpu.mig_profile) +
                                             (gpu.shared ? " shared" : "") + " is listed twice on this node");
            }
          }
          if (capacity.gpus.size() == limits::kMaxGpuTypesPerNode) {
            return Error(at, "more than " + std::to_string(limits::kMaxGpuTypesPerNode) + " device types on one node");
          }
          capacity.gpus.push_back(std::move(gpu));
        }
      }
    }
  }
  return Status::Ok();
}

Status ParsePriceTable(const YamlNode& node, const std::string& path, PriceTable& table) {
  GPUMART_TRY(CheckKeys(node, path, {"denom", "gpu", "cpu", "memory", "storage"}, {"denom"}));
  for (const YamlMapEntry& entry : node.Entries()) {
    const std::string key(entry.key.Scalar());
    const std::string at = path + "." + key;
    const YamlNode value = entry.value;
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
      if (value.size() > limits::kMaxPriceKeys) {
        return Error(at, std::to_string(value.size()) + " rates exceed the limit of " +
                             std::to_string(limits::kMaxPriceKeys));
      }
      for (const YamlMapEntry& rate_entry : value.Entries()) {
        std::string rate_key;
        GPUMART_TRY_ASSIGN(rate_key, ReadString(rate_entry.key, at));
        const std::string rate_at = at + "." + rate_key;
        std::string canonical;
        GPUMART_TRY_ASSIGN(canonical, CanonicalRateKey(rate_key, rate_at));
        uint64_t rate = 0;
        GPUMART_TRY_ASSIGN(rate, ReadUnsigned(rate_entry.value, rate_at, kMaxRatePerHour));
        if (!table.gpu.emplace(canonical, rate).second) {
          return Error(rate_at, "the same device key as another rate (" + canonical + ")");
        }
      }
    }
  }
  return Status::Ok();
}

Status ParseAttributes(const YamlNode& value, const std::string& at, std::map<std::string, std::string>& attributes) {
  if (value.IsNull()) return Status::Ok();
  if (!value.IsMap()) return Error(at, "must be a map");
  if (value.size() > limits::kMaxAttributes) {
    return Error(at, "more than " + std::to_string(limits::kMaxAttributes) + " attributes");
  }
  for (const YamlMapEntry& attribute : value.Entries()) {
    std::string name;
    std::string text;
    GPUMART_TRY_ASSIGN(name, ReadString(attribute.key, at));
    GPUMART_TRY_ASSIGN(text, ReadString(attribute.value, at + "." + name));
    if (!attributes.emplace(name, text).second) return Error(at + "." + name, "given twice");
  }
  return Status::Ok();
}

Status ParseAuditors(const YamlNode& value, const std::string& at, std::vector<std::string>& auditors) {
  GPUMART_TRY(CheckSequence(value, at, limits::kMaxAuditors));
  for (size_t i = 0; i < value.size(); ++i) {
    std::string auditor;
    GPUMART_TRY_ASSIGN(auditor, ReadString(value.Item(i), Index(at, i)));
    auditors.push_back(std::move(auditor));
  }
  return Status::Ok();
}

Status ParsePricing(const YamlNode& value, const std::string& at, std::vector<PriceTable>& pricing) {
  GPUMART_TRY(CheckSequence(value, at, limits::kMaxPriceTables));
  if (value.size() == 0) return Error(at, "missing (at least one price table is needed)");
  for (size_t i = 0; i < value.size(); ++i) {
    PriceTable table;
    GPUMART_TRY(ParsePriceTable(value.Item(i), Index(at, i), table));
    for (const PriceTable& other : pricing) {
      if (other.denom == table.denom) return Error(Index(at, i) + ".denom", table.denom + " is priced twice");
    }
    pricing.push_back(std::move(table));
  }
  return Status::Ok();
}

Status ParseNodes(const YamlNode& value, const std::string& at, std::vector<NodeCapacity>& nodes,
                  std::optional<size_t>* detect_node, PhysicalGpuLayout* layout) {
  GPUMART_TRY(CheckSequence(value, at, limits::kMaxNodes));
  if (value.size() == 0) return Error(at, "missing (a provider has at least one node)");
  std::set<std::string> names;
  for (size_t i = 0; i < value.size(); ++i) {
    NodeCapacity capacity;
    bool gpus_detect = false;
    std::vector<PhysicalGpus> physical;
    GPUMART_TRY(ParseNode(value.Item(i), Index(at, i), capacity, detect_node ? &gpus_detect : nullptr, physical));
    if (!names.insert(capacity.name).second) {
      return Error(Index(at, i) + ".name", capacity.name + " is used by another node");
    }
    if (gpus_detect) {
      if (detect_node->has_value()) {
        return Error(Index(at, i) + ".gpus", "detect: only one node is this machine (" + Index(at, **detect_node) +
                                                 " detects its GPUs already)");
      }
      *detect_node = i;
    }
    if (layout != nullptr && !physical.empty()) (*layout)[capacity.name] = std::move(physical);
    nodes.push_back(std::move(capacity));
  }
  return Status::Ok();
}

Status ParseProvider(const YamlNode& node, const std::string& path, size_t& nodes_total,
                     Offer& offer) {
  GPUMART_TRY(CheckKeys(node, path,
                        {"id", "attributes", "auditors", "reputation", "pricing", "nodes"},
                        {"id", "pricing", "nodes"}));
  for (const YamlMapEntry& entry : node.Entries()) {
    const std::string key(entry.key.Scalar());
    const std::string at = path + "." + key;
    const YamlNode value = entry.value;
    if (key == "id") {
      GPUMART_TRY_ASSIGN(offer.provider, ReadString(value, at));
    } else if (key == "attributes") {
      GPUMART_TRY(ParseAttributes(value, at, offer.attributes));
    } else if (key == "auditors") {
      GPUMART_TRY(ParseAuditors(value, at, offer.auditors));
    } else if (key == "reputation") {
      const std::string text(value.IsScalar() ? value.Scalar() : std::string_view());
      double reputation = -1;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), reputation);
      if (ec != std::errc() || p != text.data() + text.size() || text.empty() ||
          !std::isfinite(reputation) || reputation < 0 || reputation > 1) {
        return Error(at, Quote(text) + " is not a number from 0 to 1");
      }
      offer.reputation_ppm = static_cast<uint32_t>(std::llround(reputation * kPpm));
    } else if (key == "pricing") {
      GPUMART_TRY(ParsePricing(value, at, offer.pricing));
    } else if (key == "nodes") {
      GPUMART_TRY(CheckSequence(value, at, limits::kMaxNodes));
      nodes_total += value.size();
      if (nodes_total > kMaxOfferNodesTotal) {
        return Error(at, "the file's nodes exceed the limit of " + std::to_string(kMaxOfferNodesTotal));
      }
      GPUMART_TRY(ParseNodes(value, at, offer.nodes, nullptr, nullptr));
    }
  }
  return Status::Ok();
}

Result<std::vector<Offer>> ParseDocument(const YamlNode& root) {
  GPUMART_TRY(CheckKeys(root, "", {"providers"}, {"providers"}));
  const YamlNode providers = root.Find("providers");
  GPUMART_TRY(CheckSequence(providers, "providers", kMaxOfferProviders));
  std::vector<Offer> offers;
  offers.reserve(providers.size());
  std::set<std::string, std::less<>> ids;
  size_t nodes_total = 0;
  for (size_t i = 0; i < providers.size(); ++i) {
    Offer offer;
    const std::string path = Index("providers", i);
    GPUMART_TRY(ParseProvider(providers.Item(i), path, nodes_total, offer));
    if (!ids.insert(offer.provider).second) {
      return Error(path + ".id", offer.provider + " is used by another provider");
    }
    // The same rules a peer's advertisement must pass, and the matching engine's bounds.
    Status valid = ValidateOffer(offer);
    if (valid.ok()) valid = CheckOfferWork(offer);
    if (!valid.ok()) return valid.WithContext(path);
    offers.push_back(std::move(offer));
  }
  return offers;
}

#undef GPUMART_TRY
#undef GPUMART_TRY_ASSIGN

}  // namespace

Status ParseOfferAttributes(const YamlNode& value, const std::string& path,
                            std::map<std::string, std::string>& attributes) {
  return ParseAttributes(value, path, attributes);
}
Status ParseOfferAuditors(const YamlNode& value, const std::string& path, std::vector<std::string>& auditors) {
  return ParseAuditors(value, path, auditors);
}
Status ParseOfferPricing(const YamlNode& value, const std::string& path, std::vector<PriceTable>& pricing) {
  return ParsePricing(value, path, pricing);
}
Status ParseOfferNodes(const YamlNode& value, const std::string& path, std::vector<NodeCapacity>& nodes,
                       std::optional<size_t>* detect_node, PhysicalGpuLayout* physical) {
  return ParseNodes(value, path, nodes, detect_node, physical);
}
Result<uint64_t> ParseOfferCount(const YamlNode& value, const std::string& path, uint64_t max) {
  return ReadUnsigned(value, path, max);
}
Result<uint64_t> ParseOfferSize(const YamlNode& value, const std::string& path, uint64_t max) {
  return ReadSize(value, path, max);
}
Result<std::string> ParseOfferString(const YamlNode& value, const std::string& path) {
  return ReadString(value, path);
}
Status CheckOfferKeys(const YamlNode& node, const std::string& path, std::initializer_list<std::string_view> allowed,
                      std::initializer_list<std::string_view> required) {
  return CheckKeys(node, path, allowed, required);
}

Result<std::vector<Offer>> ParseOffers(std::string_view text) {
  if (text.size() > kMaxOffersFileBytes) {
    return Status::LimitExceeded("offers document of " + std::to_string(text.size()) +
                                 " bytes exceeds the limit of " + std::to_string(kMaxOffersFileBytes));
  }
  return CatchAll("offers", [&]() -> Result<std::vector<Offer>> {
    Result<YamlTree> tree =
        YamlTree::Parse(text, {.max_nodes = kMaxOffersYamlNodes, .max_depth = kMaxOffersNestingDepth});
    if (!tree.ok()) return tree.status();
    const YamlNode root = tree->Root();
    if (!root.IsMap()) return Status::InvalidArgument("an offers document is a map with a 'providers' list");
    return ParseDocument(root);
  });
}

namespace {
Result<std::vector<Offer>> ReadOffersFile(const std::string& path) {
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
}  // namespace

Result<std::vector<Offer>> ParseOffersFile(const std::string& path) {
  return CatchAll(path, [&] { return ReadOffersFile(path); });
}

}  // namespace gpumart::market
