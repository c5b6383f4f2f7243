#include "market/sdl.h"

#include "market/boundary.h"

#include "market/codec.h"

#include "market/yaml_tree.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <new>
#include <system_error>

namespace gpumart::market {
namespace {

using Entries = std::vector<std::pair<std::string, YamlNode>>;

// ---------------------------------------------------------------------------------------------
// Messages and paths.

std::string Quoted(std::string_view text) {
  constexpr size_t kShownBytes = 64;  // long values are cut so an error stays one readable line
  std::string out = "\"";
  out.append(text.substr(0, kShownBytes));
  if (text.size() > kShownBytes) out += "...";
  out += '"';
  return out;
}

std::string Child(const std::string& path, std::string_view key) {
  std::string out;
  out.reserve(path.size() + 1 + key.size());
  out = path;
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string Item(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

Status Invalid(const std::string& path, const std::string& reason) {
  return Status::InvalidArgument(path + ": " + reason);
}

Status TooMany(const std::string& path, size_t limit, std::string_view what) {
  return Status::LimitExceeded(path + ": more than " + std::to_string(limit) + " " + std::string(what));
}

Status Unknown(const std::string& path, std::string_view expected) {
  return Invalid(path, "unknown field (expected " + std::string(expected) + ")");
}

std::string KindName(const YamlNode& node) {
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (node.IsNull() || !node.IsDefined()) return "nothing";
  return "a value";
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Akash's service names: ^[a-z]([-a-z0-9]*[a-z0-9])?$
bool IsDnsLabel(std::string_view name) {
  if (name.empty() || !(name.front() >= 'a' && name.front() <= 'z') || !IsLowerAlnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}

// Akash's endpoint names: ^[a-z]+[-_0-9a-z]+$ (so at least two characters).
bool IsEndpointName(std::string_view name) {
  if (name.size() < 2 || !(name.front() >= 'a' && name.front() <= 'z')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsLowerAlnum(c) || c == '-' || c == '_'; });
}

// Kubernetes' environment variable names (Akash's manifest check): [-._a-zA-Z][-._a-zA-Z0-9]*
bool IsEnvName(std::string_view name) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_'; };
  if (name.empty() || !letter(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

// Cosmos SDK denoms, which Akash prices are: [a-zA-Z][a-zA-Z0-9/:._-]{2,127}
bool IsCosmosDenom(std::string_view denom) {
  if (denom.size() < 3 || denom.size() > 128) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(denom.front())) return false;
  return std::all_of(denom.begin(), denom.end(), [&](char c) {
    return alpha(c) || (c >= '0' && c <= '9') || c == '/' || c == ':' || c == '.' || c == '_' || c == '-';
  });
}

// ---------------------------------------------------------------------------------------------
// Numbers, without floating point: CPU and sizes are exact integers.

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::optional<uint64_t> ParseUint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (!IsDigit(c)) return std::nullopt;
    if (__builtin_mul_overflow(value, 10u, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(c - '0'), &value)) {
      return std::nullopt;
    }
  }
  return value;
}

// "12", "12.5", ".5", "+3": whole part and up to kMaxFractionDigits significant fraction digits.
struct Decimal {
  uint64_t whole = 0;
  uint64_t fraction = 0;
  uint32_t fraction_digits = 0;
};
constexpr uint32_t kMaxFractionDigits = 9;

std::optional<Decimal> ParseDecimal(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (whole.empty() && fraction.empty()) return std::nullopt;
  Decimal decimal;
  if (!whole.empty()) {
    auto value = ParseUint(whole);
    if (!value) return std::nullopt;
    decimal.whole = *value;
  }
  for (char c : fraction) {
    if (!IsDigit(c)) return std::nullopt;
  }
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (fraction.size() > kMaxFractionDigits) return std::nullopt;
  if (!fraction.empty()) {
    decimal.fraction = *ParseUint(fraction);
    decimal.fraction_digits = static_cast<uint32_t>(fraction.size());
  }
  return decimal;
}

uint64_t PowerOfTen(uint32_t exponent) {
  uint64_t value = 1;
  for (uint32_t i = 0; i < exponent; ++i) value *= 10;
  return value;
}

// decimal x multiplier, the fraction rounded up to a whole unit; nullopt on overflow.
std::optional<uint64_t> Scale(const Decimal& decimal, uint64_t multiplier) {
  uint64_t value = 0;
  if (__builtin_mul_overflow(decimal.whole, multiplier, &value)) return std::nullopt;
  if (decimal.fraction_digits == 0) return value;
  // fraction x multiplier / 10^d without overflowing: split multiplier = q x 10^d + r.
  const uint64_t denominator = PowerOfTen(decimal.fraction_digits);
  const uint64_t q = multiplier / denominator;
  const uint64_t r = multiplier % denominator;
  uint64_t part = 0;
  if (__builtin_mul_overflow(decimal.fraction, q, &part)) return std::nullopt;
  const uint64_t rest = decimal.fraction * r;  // both < 10^9
  part += rest / denominator + (rest % denominator != 0 ? 1 : 0);
  if (__builtin_add_overflow(value, part, &value)) return std::nullopt;
  return value;
}

// "", "b" -> 1; "k".."e" -> powers of 1000; "ki".."ei" -> powers of 1024; any case, optional b.
std::optional<uint64_t> SizeMultiplier(std::string_view suffix) {
  std::string unit = ToLower(suffix);
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  if (unit.empty()) return 1;
  constexpr std::string_view kPrefixes = "kmgtpe";
  const size_t power = kPrefixes.find(unit[0]);
  if (power == std::string_view::npos) return std::nullopt;
  const bool binary = unit.size() == 2 && unit[1] == 'i';
  if (unit.size() > 2 || (unit.size() == 2 && !binary)) return std::nullopt;
  const uint64_t base = binary ? 1024 : 1000;
  uint64_t multiplier = 1;
  for (size_t i = 0; i <= power; ++i) multiplier *= base;
  return multiplier;
}

// ---------------------------------------------------------------------------------------------
// Pre-scan: pathological nesting is refused with a clear message before any YAML is loaded (the
// YAML tree bounds its depth too, as a second line). Counts block levels (indentation, plus
// "- - -" / "? " chains on one line) and flow levels ([ and {). Brackets inside strings and
// comments count too: that can only over-estimate, and real files stay far below the limit.
Status CheckNesting(std::string_view text) {
  std::vector<size_t> indents;  // columns of the open block levels
  size_t flow_depth = 0;
  size_t line_number = 0;
  size_t begin = 0;
  while (begin < text.size()) {
    ++line_number;
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;

    size_t column = 0;
    while (column < line.size() && line[column] == ' ') ++column;
    if (column < line.size() && line[column] != '#' && line[column] != '\r') {
      while (!indents.empty() && indents.back() > column) indents.pop_back();
      if (indents.empty() || indents.back() < column) indents.push_back(column);
      size_t depth = indents.size();
      size_t i = column;
      while (i + 1 < line.size() && (line[i] == '-' || line[i] == '?') &&
             (line[i + 1] == ' ' || line[i + 1] == '\t')) {
        ++depth;
        i += 2;
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      }
      if (depth > kSdlMaxNestingDepth) {
        return Status::LimitExceeded("line " + std::to_string(line_number) + ": nested deeper than " +
                                     std::to_string(kSdlMaxNestingDepth) + " levels");
      }
    }
    for (char c : line) {
      if (c == '[' || c == '{') {
        if (++flow_depth > kSdlMaxNestingDepth) {
          return Status::LimitExceeded("line " + std::to_string(line_number) + ": brackets nested deeper than " +
                                       std::to_string(kSdlMaxNestingDepth) + " levels");
        }
      } else if ((c == ']' || c == '}') && flow_depth > 0) {
        --flow_depth;
      }
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Reading YAML tree nodes into checked values. A null node ("key:" with nothing after it) reads
// as an empty mapping or list.

Status ReadScalar(const YamlNode& node, const std::string& path, size_t max_bytes, std::string* out) {
  if (!node.IsScalar()) return Invalid(path, "expected a value, found " + KindName(node));
  const std::string_view text = node.Scalar();
  if (text.size() > max_bytes) {
    return Status::LimitExceeded(path + ": longer than " + std::to_string(max_bytes) + " bytes");
  }
  out->assign(text);
  return Status::Ok();
}

Status ReadName(const YamlNode& node, const std::string& path, std::string* out) {
  Status status = ReadScalar(node, path, kSdlMaxNameBytes, out);
  if (!status.ok()) return status;
  if (Trim(*out).empty()) return Invalid(path, "empty");
  return Status::Ok();
}

// YAML merge keys ("<<: *defaults"), which Akash's YAML library honours and the YAML tree leaves
// as a plain "<<" key: the merged mapping's entries are added unless the mapping sets them itself.
// Bounded in depth, as an alias can make a mapping merge itself, and in work: aliases let a few
// lines merge the same big mapping again and again, at every level.
constexpr int kMaxMergeDepth = 8;
constexpr size_t kMaxMergedMappings = 256;     // per mapping read, over all levels
constexpr size_t kMaxMergedEntries = 4 * 1024; // entries read from merged mappings, likewise

struct MergeBudget {
  size_t mappings_left = kMaxMergedMappings;
  size_t entries_left = kMaxMergedEntries;
};

Status ReadMappingInto(const YamlNode& node, const std::string& path, size_t max_entries, std::string_view what,
                       int merge_depth, bool merged, MergeBudget* budget, Entries* out) {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsMap()) return Invalid(path, "expected a mapping, found " + KindName(node));
  std::vector<YamlNode> merges;
  for (const YamlMapEntry& entry : node.Entries()) {
    if (merged && budget->entries_left-- == 0) {
      return Status::LimitExceeded(path + ": merge keys (<<) bring in more than " +
                                   std::to_string(kMaxMergedEntries) + " entries");
    }
    if (entry.key.IsScalar() && entry.key.Scalar() == "<<" && entry.key.Tag() != "!") {
      merges.push_back(entry.value);
      continue;
    }
    std::string key;
    Status status = ReadName(entry.key, path, &key);
    if (!status.ok()) return status;
    const bool seen = std::any_of(out->begin(), out->end(), [&](const auto& e) { return e.first == key; });
    if (seen && !merged) return Invalid(Child(path, key), "duplicate key");
    if (seen) continue;  // set by the mapping that merges this one
    if (out->size() == max_entries) return TooMany(path, max_entries, what);
    out->emplace_back(std::move(key), entry.value);
  }
  for (const YamlNode& merge : merges) {
    if (merge_depth == kMaxMergeDepth) return Status::LimitExceeded(path + ": merge keys (<<) nested too deeply");
    // "<<: [*a, *b]" merges several mappings, the first winning.
    const size_t source_count = merge.IsSequence() ? merge.size() : 1;
    if (source_count > max_entries) return TooMany(path, max_entries, what);
    for (size_t i = 0; i < source_count; ++i) {
      if (budget->mappings_left == 0) {
        return Status::LimitExceeded(path + ": merge keys (<<) merge more than " + std::to_string(kMaxMergedMappings) +
                                     " mappings");
      }
      --budget->mappings_left;
      const YamlNode source = merge.IsSequence() ? merge.Item(i) : merge;
      Status status = ReadMappingInto(source, Child(path, "<<"), max_entries, what, merge_depth + 1, true, budget, out);
      if (!status.ok()) return status;
    }
  }
  return Status::Ok();
}

Status ReadMapping(const YamlNode& node, const std::string& path, size_t max_entries, std::string_view what,
                   Entries* out) {
  out->clear();
  MergeBudget budget;
  return ReadMappingInto(node, path, max_entries, what, 0, false, &budget, out);
}

Status ReadSequence(const YamlNode& node, const std::string& path, size_t max_entries, std::string_view what,
                    std::vector<YamlNode>* out) {
  out->clear();
  if (node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) return Invalid(path, "expected a list, found " + KindName(node));
  for (const YamlNode item : node.Items()) {
    if (out->size() == max_entries) return TooMany(path, max_entries, what);
    out->push_back(item);
  }
  return Status::Ok();
}

Status ReadBool(const YamlNode& node, const std::string& path, bool* out) {
  std::string text;
  Status status = ReadScalar(node, path, kSdlMaxNameBytes, &text);
  if (!status.ok()) return status;
  const std::string lower = ToLower(Trim(text));
  if (lower == "true" || lower == "yes" || lower == "on") {
    *out = true;
  } else if (lower == "false" || lower == "no" || lower == "off") {
    *out = false;
  } else {
    return Invalid(path, Quoted(text) + " is not true or false");
  }
  return Status::Ok();
}

// A whole number; "-3" reads as negative so callers can say what the lower bound is.
Status ReadInteger(const YamlNode& node, const std::string& path, int64_t min, uint64_t max, uint64_t* out) {
  std::string text;
  Status status = ReadScalar(node, path, kSdlMaxNameBytes, &text);
  if (!status.ok()) return status;
  const std::string_view trimmed = Trim(text);
  const bool negative = !trimmed.empty() && trimmed.front() == '-';
  auto decimal = ParseDecimal(negative ? trimmed.substr(1) : trimmed);
  if (!decimal || decimal->fraction_digits != 0) return Invalid(path, Quoted(text) + " is not a whole number");
  if (negative && decimal->whole != 0) {
    return Invalid(path, "must be at least " + std::to_string(min) + ", got " + std::string(trimmed));
  }
  if (static_cast<int64_t>(std::min<uint64_t>(decimal->whole, INT64_MAX)) < min) {
    return Invalid(path, "must be at least " + std::to_string(min) + ", got " + std::string(trimmed));
  }
  if (decimal->whole > max) {
    return Status::LimitExceeded(path + ": " + std::string(trimmed) + " is more than the limit of " +
                                 std::to_string(max));
  }
  *out = decimal->whole;
  return Status::Ok();
}

Status ReadSize(const YamlNode& node, const std::string& path, uint64_t* out) {
  std::string text;
  Status status = ReadScalar(node, path, kSdlMaxNameBytes, &text);
  if (!status.ok()) return status;
  Result<uint64_t> bytes = ParseSizeBytes(text);
  if (!bytes.ok()) return bytes.status().WithContext(path);
  if (*bytes == 0) return Invalid(path, "must be more than 0 bytes");
  *out = *bytes;
  return Status::Ok();
}

// A list of strings written as a list or as one value; entries that are not values are skipped
// (command/args/env never fail a file: they do not affect matching).
Status ReadTextList(const YamlNode& node, const std::string& path, std::vector<std::string>* out) {
  out->clear();
  if (node.IsScalar()) {
    out->emplace_back();
    return ReadScalar(node, path, kSdlMaxTextBytes, &out->back());
  }
  if (!node.IsSequence()) return Status::Ok();
  for (const YamlNode item : node.Items()) {
    if (out->size() == kSdlMaxListEntries) return TooMany(path, kSdlMaxListEntries, "entries");
    if (!item.IsScalar()) continue;
    out->emplace_back();
    Status status = ReadScalar(item, Item(path, out->size() - 1), kSdlMaxTextBytes, &out->back());
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// The parser proper. One instance per call; it holds what it has read so far.

class SdlParser {
 public:
  explicit SdlParser(const SdlOptions& options) : options_(options) {}
  Result<Deployment> Parse(std::string_view text);

 private:
  Status ParseRoot(const YamlNode& root);
  Status ParseVersion(const YamlNode& node);
  Status ParseEndpoints(const std::string& path, const YamlNode& node);
  Status ParseService(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseEnv(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseExpose(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseExposeTargets(const std::string& path, const YamlNode& node, ExposedPort* port);
  Status ParseParams(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseCredentials(const std::string& path, const YamlNode& node);
  Status ParseCompute(const std::string& path, const YamlNode& node);
  Status ParseResources(const std::string& path, const YamlNode& node, Resources* resources);
  Status ParseCpu(const std::string& path, const YamlNode& node, uint64_t* millis);
  Status ParseMemory(const std::string& path, const YamlNode& node, uint64_t* bytes);
  Status ParseStorage(const std::string& path, const YamlNode& node, std::vector<StorageVolume>* volumes);
  Status ParseVolume(const std::string& path, const YamlNode& node, StorageVolume* volume);
  Status CheckVolumeClass(const std::string& path, const StorageVolume& volume, bool has_persistent,
                          bool has_class) const;
  Status ParseGpu(const std::string& path, const YamlNode& node, GpuRequest* gpu);
  Status ParseGpuVendors(const std::string& path, const YamlNode& node, std::vector<GpuOption>* options);
  Status ParseGpuOption(const std::string& path, const YamlNode& node, GpuOption* option);
  Status ParsePlacements(const std::string& path, const YamlNode& node);
  Status ParsePrices(const std::string& path, const YamlNode& node, std::vector<PriceCap>* caps);
  Status ParsePrice(const std::string& path, const YamlNode& node, PriceCap* cap);
  Status ParseDeployment(const std::string& path, const YamlNode& node);
  Status CheckMounts() const;
  Status CheckEndpointsUsed() const;
  Status SetCaps(const std::string& group, const std::string& profile, const std::vector<PriceCap>& caps,
                 const Order& order, ServiceRequest* request) const;
  Status BuildOrders();

  // An unknown field: Akash's Go reader ignores it, so it is a warning; an error when strict.
  Status UnknownField(const std::string& path, std::string_view expected);
  // A rule of Akash Console's schema that the Go reader does not apply: checked when strict.
  Status SchemaRule(bool holds, const std::string& path, const std::string& reason) const {
    if (holds || !options_.strict) return Status::Ok();
    return Invalid(path, reason + " (--strict: Akash Console's schema)");
  }
  void Warn(std::string path, std::string message);

  struct PlacementGroup {
    std::string name;
    std::map<std::string, std::string> attributes;
    SignedBy signed_by;
    std::vector<std::pair<std::string, std::vector<PriceCap>>> pricing;  // compute profile -> caps
    // Every price of the placement says `interruptible: true` (a gpumart extension, docs/SPOT.md).
    std::optional<bool> interruptible;
  };
  struct Deployed {
    size_t service_index = 0;    // position in `services:`
    size_t placement_index = 0;  // position in profiles.placement
    std::string profile;
    uint32_t count = 1;
    std::string path;  // deployment.<service>.<placement>, for messages
  };

  const PlacementGroup* FindPlacement(std::string_view name, size_t* index) const;
  const Resources* FindProfile(std::string_view name) const;

  const SdlOptions options_;
  Deployment deployment_;
  size_t dropped_warnings_ = 0;  // past kSdlMaxWarnings
  // How Akash's reader reads the file: 20 for "2.0", 21 for "2.1", 22 for "2.2" and later.
  int dialect_ = 20;
  std::vector<std::string> service_names_;  // in `services:` order
  std::vector<std::string> endpoints_;       // declared in `endpoints:`
  std::vector<std::string> endpoints_used_;  // named by some expose.to.ip
  std::vector<std::pair<std::string, Resources>> compute_;
  std::vector<PlacementGroup> placements_;
  // The `interruptible:` of the price ParsePrice read last (false when not given).
  bool price_interruptible_ = false;
  std::vector<Deployed> deployed_;
};

const SdlParser::PlacementGroup* SdlParser::FindPlacement(std::string_view name, size_t* index) const {
  for (size_t i = 0; i < placements_.size(); ++i) {
    if (placements_[i].name == name) {
      *index = i;
      return &placements_[i];
    }
  }
  return nullptr;
}

const Resources* SdlParser::FindProfile(std::string_view name) const {
  for (const auto& [profile, resources] : compute_) {
    if (profile == name) return &resources;
  }
  return nullptr;
}

Status SdlParser::UnknownField(const std::string& path, std::string_view expected) {
  if (options_.strict) return Invalid(path, "unknown field (expected " + std::string(expected) + ")");
  Warn(path, "unknown field, ignored (expected " + std::string(expected) + ")");
  return Status::Ok();
}

void SdlParser::Warn(std::string path, std::string message) {
  if (deployment_.warnings.size() == kSdlMaxWarnings) {
    ++dropped_warnings_;
    return;
  }
  deployment_.warnings.push_back({std::move(path), std::move(message)});
}

Result<Deployment> SdlParser::Parse(std::string_view text) {
  if (text.size() > kSdlMaxFileBytes) {
    return Status::LimitExceeded("the file is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                                 std::to_string(kSdlMaxFileBytes));
  }
  Status status = CheckNesting(text);
  if (!status.ok()) return status;
  Result<YamlTree> tree = YamlTree::Parse(text, {.max_nodes = kSdlMaxNodes, .max_depth = kSdlMaxNestingDepth});
  if (!tree.ok()) return tree.status();
  status = ParseRoot(tree->Root());
  if (!status.ok()) return status;
  status = BuildOrders();
  if (!status.ok()) return status;
  if (dropped_warnings_ > 0) {
    deployment_.warnings.push_back({"", std::to_string(dropped_warnings_) + " more warnings not shown"});
  }
  return std::move(deployment_);
}

// Akash's reader reads `version` as a semantic version, tolerantly (blang/semver ParseTolerant):
// spaces around it and a leading "v" are dropped, leading zeros of each part too, and "2" or
// "2.1" stand for 2.0.0 and 2.1.0 (a short form may not carry a pre-release or build suffix).
// Exactly 2.0.0 reads as 2.0; 2.2.0 and later as 2.2; 2.1.0 up to 2.2.0 as 2.1; anything else is
// refused. A pre-release sorts before its release ("2.1.0-rc1" < 2.1.0); build metadata is ignored.
struct SemVer {
  uint64_t major = 0, minor = 0, patch = 0;
  bool prerelease = false;
};

bool IsIdentifier(std::string_view text) {  // a pre-release or build identifier: [0-9A-Za-z-]+
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
}

std::optional<uint64_t> ParseVersionNumber(std::string_view text) {
  if (text.size() > 1 && text.front() == '0') return std::nullopt;  // strict semver: no leading zero
  return ParseUint(text);
}

std::optional<SemVer> ParseTolerantSemVer(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\n' || text.front() == '\r')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (!text.empty() && text.front() == 'v') text.remove_prefix(1);
  std::vector<std::string> parts;
  for (size_t begin = 0; parts.size() < 3;) {
    const size_t dot = parts.size() == 2 ? std::string_view::npos : text.find('.', begin);
    parts.emplace_back(text.substr(begin, dot == std::string_view::npos ? std::string_view::npos : dot - begin));
    if (dot == std::string_view::npos) break;
    begin = dot + 1;
  }
  for (std::string& part : parts) {
    if (part.size() <= 1) continue;
    const size_t first = part.find_first_not_of('0');
    part = first == std::string::npos ? "" : part.substr(first);
    if (part.empty() || !IsDigit(part.front())) part.insert(0, "0");
  }
  if (parts.size() < 3) {
    if (parts.back().find_first_of("+-") != std::string::npos) return std::nullopt;
    while (parts.size() < 3) parts.emplace_back("0");
  }
  std::string_view patch = parts[2];
  const size_t plus = patch.find('+');
  if (plus != std::string_view::npos) {
    std::string_view build = patch.substr(plus + 1);
    patch = patch.substr(0, plus);
    for (size_t begin = 0;;) {
      const size_t dot = build.find('.', begin);
      if (!IsIdentifier(build.substr(begin, dot == std::string_view::npos ? std::string_view::npos : dot - begin))) {
        return std::nullopt;
      }
      if (dot == std::string_view::npos) break;
      begin = dot + 1;
    }
  }
  SemVer version;
  const size_t minus = patch.find('-');
  if (minus != std::string_view::npos) {
    std::string_view prerelease = patch.substr(minus + 1);
    patch = patch.substr(0, minus);
    for (size_t begin = 0;;) {
      const size_t dot = prerelease.find('.', begin);
      const std::string_view id =
          prerelease.substr(begin, dot == std::string_view::npos ? std::string_view::npos : dot - begin);
      if (!IsIdentifier(id)) return std::nullopt;
      const bool numeric = std::all_of(id.begin(), id.end(), IsDigit);
      if (numeric && id.size() > 1 && id.front() == '0') return std::nullopt;
      if (dot == std::string_view::npos) break;
      begin = dot + 1;
    }
    version.prerelease = true;
  }
  auto major = ParseVersionNumber(parts[0]);
  auto minor = ParseVersionNumber(parts[1]);
  auto patch_number = ParseVersionNumber(patch);
  if (!major || !minor || !patch_number) return std::nullopt;
  version.major = *major;
  version.minor = *minor;
  version.patch = *patch_number;
  return version;
}

// version >= major.minor.0 (a pre-release of major.minor.0 is below it).
bool AtLeast(const SemVer& version, uint64_t major, uint64_t minor) {
  if (version.major != major) return version.major > major;
  if (version.minor != minor) return version.minor > minor;
  return version.patch > 0 || !version.prerelease;
}

Status SdlParser::ParseVersion(const YamlNode& node) {
  std::string text;
  GPUMART_RETURN_IF_ERROR(ReadName(node, "version", &text));
  const std::string unsupported = Quoted(text) + " is not supported (expected \"2.0\", \"2.1\" or \"2.2\")";
  std::optional<SemVer> version = ParseTolerantSemVer(text);
  if (!version) return Invalid("version", unsupported);
  const bool exactly_2_0 = version->major == 2 && version->minor == 0 && version->patch == 0 && !version->prerelease;
  if (exactly_2_0) {
    dialect_ = 20;
  } else if (AtLeast(*version, 2, 2)) {
    dialect_ = 22;
  } else if (AtLeast(*version, 2, 1)) {
    dialect_ = 21;
  } else {
    return Invalid("version", unsupported);
  }
  deployment_.version = dialect_ == 20 ? "2.0" : dialect_ == 21 ? "2.1" : "2.2";
  GPUMART_RETURN_IF_ERROR(SchemaRule(text == "2.0" || text == "2.1" || text == "2.2", "version",
                                     Quoted(text) + " is not written as \"2.0\", \"2.1\" or \"2.2\""));
  if (text != deployment_.version) {
    Warn("version", Quoted(text) + " read as " + Quoted(deployment_.version) + ", as Akash's reader reads it");
  }
  return Status::Ok();
}

Status SdlParser::ParseRoot(const YamlNode& root) {
  if (root.IsNull()) return Status::InvalidArgument("the file is empty");
  Entries top;
  Status status = ReadMapping(root, "", 64, "top-level fields", &top);
  if (!status.ok()) return Status::InvalidArgument("expected a mapping at the top level, found " + KindName(root));
  std::optional<YamlNode> version, services, profiles, deployment, endpoints;
  for (const auto& [key, value] : top) {
    if (key == "version") version.emplace(value);
    else if (key == "services") services.emplace(value);
    else if (key == "profiles") profiles.emplace(value);
    else if (key == "deployment") deployment.emplace(value);
    else if (key == "endpoints") endpoints.emplace(value);
    else if (key == "include" || key == "reclamation") continue;  // read by Akash, no say in matching
    // Akash's reader refuses a top-level field it does not know ("sdl: unexpected field").
    else return Invalid(key, "unknown top-level field (expected version, services, profiles, deployment, endpoints, "
                             "include or reclamation)");
  }

  if (!version) return Invalid("version", "missing (expected \"2.0\", \"2.1\" or \"2.2\")");
  GPUMART_RETURN_IF_ERROR(ParseVersion(*version));
  if (endpoints) GPUMART_RETURN_IF_ERROR(ParseEndpoints("endpoints", *endpoints));

  if (!services) return Invalid("services", "missing");
  Entries service_entries;
  status = ReadMapping(*services, "services", kSdlMaxServices, "services", &service_entries);
  if (!status.ok()) return status;
  if (service_entries.empty()) return Invalid("services", "no services");

  if (!profiles) {
    std::string hint;
    for (const auto& [name, value] : service_entries) {
      if (name == "profiles" || name == "deployment") {
        hint = " (\"services." + name + "\" exists: is it indented too far?)";
        break;
      }
    }
    return Invalid("profiles", "missing: the file has no compute or placement profiles" + hint);
  }
  Entries profile_entries;
  status = ReadMapping(*profiles, "profiles", 8, "fields", &profile_entries);
  if (!status.ok()) return status;
  std::optional<YamlNode> compute, placement;
  for (const auto& [key, value] : profile_entries) {
    if (key == "compute") compute.emplace(value);
    else if (key == "placement") placement.emplace(value);
    else GPUMART_RETURN_IF_ERROR(UnknownField(Child("profiles", key), "compute or placement"));
  }
  if (!compute) return Invalid("profiles.compute", "missing");
  if (!placement) return Invalid("profiles.placement", "missing: the file has no placement group");
  if (!deployment) return Invalid("deployment", "missing: the file deploys no service");

  for (const auto& [name, value] : service_entries) {
    const std::string service_path = Child("services", name);
    // Akash's manifest check: a service name is a DNS label (it names Kubernetes objects).
    if (!IsDnsLabel(name)) {
      return Invalid(service_path, Quoted(name) + " is not a valid service name (lower-case letters, digits and '-', "
                                   "starting with a letter and not ending with '-')");
    }
    ServiceSpec spec;
    status = ParseService(service_path, value, &spec);
    if (!status.ok()) return status;
    service_names_.push_back(name);
    deployment_.services.emplace(name, std::move(spec));
  }
  status = ParseCompute("profiles.compute", *compute);
  if (!status.ok()) return status;
  status = ParsePlacements("profiles.placement", *placement);
  if (!status.ok()) return status;
  GPUMART_RETURN_IF_ERROR(ParseDeployment("deployment", *deployment));
  GPUMART_RETURN_IF_ERROR(CheckMounts());
  return CheckEndpointsUsed();
}

// ---------------------------------------------------------------------------------------------
// endpoints: named IP endpoints that services' expose.to.ip refer to (SDL 2.1). Not used for
// matching, but Akash refuses a file whose endpoints are malformed or unused, and so does this.

Status SdlParser::ParseEndpoints(const std::string& path, const YamlNode& node) {
  Entries entries;
  GPUMART_RETURN_IF_ERROR(ReadMapping(node, path, kSdlMaxListEntries, "endpoints", &entries));
  for (const auto& [name, body] : entries) {
    const std::string endpoint_path = Child(path, name);
    if (!IsEndpointName(name)) {
      return Invalid(endpoint_path, Quoted(name) + " is not a valid endpoint name (lower-case letters, then "
                                    "lower-case letters, digits, '-' or '_')");
    }
    Entries fields;
    GPUMART_RETURN_IF_ERROR(ReadMapping(body, endpoint_path, 8, "fields", &fields));
    std::string kind;
    for (const auto& [key, value] : fields) {
      if (key == "kind") {
        GPUMART_RETURN_IF_ERROR(ReadName(value, Child(endpoint_path, key), &kind));
      } else {
        GPUMART_RETURN_IF_ERROR(UnknownField(Child(endpoint_path, key), "kind"));
      }
    }
    if (kind.empty()) return Invalid(Child(endpoint_path, "kind"), "missing");
    if (kind != "ip") return Invalid(Child(endpoint_path, "kind"), Quoted(kind) + " is not a known kind (expected ip)");
    endpoints_.push_back(name);
  }
  return Status::Ok();
}

Status SdlParser::CheckEndpointsUsed() const {
  for (const std::string& name : endpoints_) {
    if (std::find(endpoints_used_.begin(), endpoints_used_.end(), name) == endpoints_used_.end()) {
      return Invalid(Child("endpoints", name), "declared but no service exposes to it (expose.to.ip)");
    }
  }
  return Status::Ok();
}

// Every service deployed with a compute profile mounts only volumes of that profile, and mounts
// every persistent one (a persistent volume nobody mounts would be paid for and never used;
// Akash refuses it). A ram volume cannot be mounted read-only.
Status SdlParser::CheckMounts() const {
  for (const Deployed& deployed : deployed_) {
    const std::string& service = service_names_[deployed.service_index];
    const ServiceSpec& spec = deployment_.services.at(service);
    const Resources& resources = *FindProfile(deployed.profile);
    const std::string params_path = Child(Child(Child("services", service), "params"), "storage");
    for (const VolumeMount& mount : spec.mounts) {
      const auto volume = std::find_if(resources.storage.begin(), resources.storage.end(),
                                       [&](const StorageVolume& v) { return v.name == mount.volume; });
      if (volume == resources.storage.end()) {
        return Invalid(Child(params_path, mount.volume),
                       "no volume " + Quoted(mount.volume) + " in profiles.compute." + deployed.profile +
                           ".resources.storage (used by " + deployed.path + ")");
      }
      if (mount.read_only && volume->storage_class == "ram") {
        return Invalid(Child(Child(params_path, mount.volume), "readOnly"), "a ram volume cannot be read-only");
      }
    }
    for (const StorageVolume& volume : resources.storage) {
      if (!volume.persistent) continue;
      const bool mounted = std::any_of(spec.mounts.begin(), spec.mounts.end(),
                                       [&](const VolumeMount& m) { return m.volume == volume.name; });
      if (!mounted) {
        return Invalid(Child(Child(params_path, volume.name), "mount"),
                       "missing: persistent volume " + Quoted(volume.name) + " of profiles.compute." +
                           deployed.profile + " must be mounted by service " + Quoted(service) +
                           " (params.storage." + volume.name + ".mount: /an/absolute/path)");
      }
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// services: kept for display and CUDA detection; malformed optional fields are skipped.

Status SdlParser::ParseService(const std::string& path, const YamlNode& node, ServiceSpec* spec) {
  Entries fields;
  Status status = ReadMapping(node, path, kSdlMaxListEntries, "fields", &fields);
  if (!status.ok()) return status;
  bool has_image = false;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    const bool list_field = key == "env" || key == "command" || key == "args";
    if (list_field) {
      GPUMART_RETURN_IF_ERROR(SchemaRule(value.IsSequence() || value.IsNull(), field_path, "must be a list of strings"));
    }
    if (key == "image") {
      has_image = true;
      status = ReadScalar(value, field_path, kSdlMaxTextBytes, &spec->image);
      if (status.ok() && Trim(spec->image).empty()) status = Invalid(field_path, "empty");
    } else if (key == "env") {
      status = ParseEnv(field_path, value, spec);
    } else if (key == "command") {
      status = ReadTextList(value, field_path, &spec->command);
    } else if (key == "args") {
      status = ReadTextList(value, field_path, &spec->args);
    } else if (key == "expose") {
      status = ParseExpose(field_path, value, spec);
    } else if (key == "params") {
      status = ParseParams(field_path, value, spec);
    } else if (key == "credentials") {
      status = ParseCredentials(field_path, value);
    } else if (key != "dependencies") {  // dependencies: accepted, no say in matching
      status = UnknownField(field_path, "image, command, args, env, expose, params, credentials or dependencies");
    }
    if (!status.ok()) return status;
  }
  // Akash's manifest check refuses a service without an image.
  if (!has_image) return Invalid(Child(path, "image"), "missing");
  return Status::Ok();
}

// params: storage mounts (read), and fields newer Akash versions added (permissions, tee) that
// say nothing about what to match.
Status SdlParser::ParseParams(const std::string& path, const YamlNode& node, ServiceSpec* spec) {
  Entries fields;
  GPUMART_RETURN_IF_ERROR(ReadMapping(node, path, 8, "fields", &fields));
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    if (key == "permissions" || key == "tee") continue;
    if (key != "storage") {
      GPUMART_RETURN_IF_ERROR(UnknownField(field_path, "storage"));
      continue;
    }
    Entries volumes;
    GPUMART_RETURN_IF_ERROR(ReadMapping(value, field_path, kSdlMaxMounts, "volumes", &volumes));
    for (const auto& [volume, body] : volumes) {
      const std::string volume_path = Child(field_path, volume);
      VolumeMount mount;
      mount.volume = volume;
      Entries mount_fields;
      GPUMART_RETURN_IF_ERROR(ReadMapping(body, volume_path, 8, "fields", &mount_fields));
      for (const auto& [mount_key, mount_value] : mount_fields) {
        const std::string mount_path = Child(volume_path, mount_key);
        if (mount_key == "mount") {
          GPUMART_RETURN_IF_ERROR(ReadScalar(mount_value, mount_path, kSdlMaxTextBytes, &mount.path));
        } else if (mount_key == "readOnly") {
          GPUMART_RETURN_IF_ERROR(ReadBool(mount_value, mount_path, &mount.read_only));
        } else {
          GPUMART_RETURN_IF_ERROR(UnknownField(mount_path, "mount or readOnly"));
        }
      }
      // Akash: the mount point is an absolute path, and one path mounts one volume.
      const std::string mount_path = Child(volume_path, "mount");
      if (mount.path.empty()) return Invalid(mount_path, "missing: where the volume is mounted, an absolute path");
      if (mount.path.front() != '/') return Invalid(mount_path, Quoted(mount.path) + " is not an absolute path");
      for (const VolumeMount& other : spec->mounts) {
        if (other.path == mount.path) {
          return Invalid(mount_path, Quoted(mount.path) + " is already the mount point of volume " + Quoted(other.volume));
        }
      }
      spec->mounts.push_back(std::move(mount));
    }
  }
  return Status::Ok();
}

// Registry credentials: not kept (gpumart does not pull images), but Akash refuses incomplete ones.
Status SdlParser::ParseCredentials(const std::string& path, const YamlNode& node) {
  Entries fields;
  GPUMART_RETURN_IF_ERROR(ReadMapping(node, path, 8, "fields", &fields));
  std::map<std::string, std::string> values;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    if (key != "host" && key != "email" && key != "username" && key != "password") {
      GPUMART_RETURN_IF_ERROR(UnknownField(field_path, "host, email, username or password"));
      continue;
    }
    std::string text;
    GPUMART_RETURN_IF_ERROR(ReadScalar(value, field_path, kSdlMaxTextBytes, &text));
    values[key] = std::string(Trim(text));
  }
  for (const char* required : {"host", "username", "password"}) {
    if (values[required].empty()) return Invalid(Child(path, required), "missing");
  }
  GPUMART_RETURN_IF_ERROR(
      SchemaRule(values["password"].size() >= 6, Child(path, "password"), "shorter than 6 characters"));
  const auto email = values.find("email");
  return SchemaRule(email == values.end() || email->second.size() >= 5, Child(path, "email"),
                    "shorter than 5 characters");
}

Status SdlParser::ParseEnv(const std::string& path, const YamlNode& node, ServiceSpec* spec) {
  // Akash's manifest check: every name is a valid environment variable name.
  auto add = [&](const std::string& item_path, std::string name, std::string value) {
    if (!IsEnvName(name)) return Invalid(item_path, Quoted(name) + " is not a valid environment variable name");
    spec->env.emplace_back(std::move(name), std::move(value));
    return Status::Ok();
  };
  if (node.IsMap()) {  // compose-style NAME: value
    Warn(path, "a mapping, read as NAME: value (Akash SDL writes env as a list of NAME=value)");
    for (const YamlMapEntry& entry : node.Entries()) {
      if (spec->env.size() == kSdlMaxEnvEntries) return TooMany(path, kSdlMaxEnvEntries, "entries");
      if (!entry.key.IsScalar()) continue;
      std::string value;
      if (entry.value.IsScalar()) {
        Status status = ReadScalar(entry.value, Child(path, entry.key.Scalar()), kSdlMaxTextBytes, &value);
        if (!status.ok()) return status;
      }
      std::string name;
      Status status = ReadScalar(entry.key, path, kSdlMaxTextBytes, &name);
      if (!status.ok()) return status;
      const std::string item_path = Child(path, name);
      GPUMART_RETURN_IF_ERROR(add(item_path, std::move(name), std::move(value)));
    }
    return Status::Ok();
  }
  if (!node.IsSequence()) return Status::Ok();
  size_t index = 0;
  for (const YamlNode item : node.Items()) {
    if (index == kSdlMaxEnvEntries) return TooMany(path, kSdlMaxEnvEntries, "entries");
    const std::string item_path = Item(path, index++);
    if (!item.IsScalar()) continue;
    std::string text;
    Status status = ReadScalar(item, item_path, kSdlMaxTextBytes, &text);
    if (!status.ok()) return status;
    const size_t equals = text.find('=');
    if (equals == std::string::npos) {
      GPUMART_RETURN_IF_ERROR(add(item_path, std::move(text), std::string()));  // "- NAME": set, empty
    } else {
      GPUMART_RETURN_IF_ERROR(add(item_path, text.substr(0, equals), text.substr(equals + 1)));
    }
  }
  return Status::Ok();
}

// Fields and `to` targets read over all entries of one `expose`: aliases could otherwise repeat a
// big mapping in every entry and every target.
constexpr size_t kMaxExposeNodesRead = 16 * 1024;

Status SdlParser::ParseExpose(const std::string& path, const YamlNode& node, ServiceSpec* spec) {
  if (!node.IsSequence()) return Status::Ok();
  size_t nodes_left = kMaxExposeNodesRead;
  size_t index = 0;
  for (const YamlNode item : node.Items()) {
    if (index == kSdlMaxListEntries) return TooMany(path, kSdlMaxListEntries, "entries");
    const std::string item_path = Item(path, index++);
    if (!item.IsMap()) return Invalid(item_path, "expected a mapping, found " + KindName(item));
    ExposedPort port;
    bool has_port = false;
    for (const YamlMapEntry& field : item.Entries()) {
      if (nodes_left-- == 0) return TooMany(path, kMaxExposeNodesRead, "fields and targets");
      if (!field.key.IsScalar() || field.key.Scalar().empty()) continue;
      const std::string key(field.key.Scalar());
      const std::string field_path = Child(item_path, key);
      const YamlNode value = field.value;
      if (key == "port" || key == "as") {
        // Akash's manifest check: a port is 1..65535 (`as` may be 0: the same as `port`).
        uint64_t number = 0;
        GPUMART_RETURN_IF_ERROR(ReadInteger(value, field_path, key == "port" ? 1 : 0, 65535, &number));
        if (key == "port") {
          port.port = static_cast<uint32_t>(number);
          has_port = true;
        } else {
          port.as = static_cast<uint32_t>(number);
        }
      } else if (key == "proto") {
        GPUMART_RETURN_IF_ERROR(ReadScalar(value, field_path, kSdlMaxNameBytes, &port.proto));
        if (port.proto != "" && port.proto != "tcp" && port.proto != "TCP" && port.proto != "udp" &&
            port.proto != "UDP") {
          return Invalid(field_path, Quoted(port.proto) + " is not a protocol (expected tcp or udp)");
        }
      } else if (key == "to") {
        GPUMART_RETURN_IF_ERROR(ParseExposeTargets(field_path, value, &port));
        nodes_left = nodes_left > value.size() ? nodes_left - value.size() : 0;
      } else if (key != "accept" && key != "http_options") {  // accepted, no say in matching
        GPUMART_RETURN_IF_ERROR(UnknownField(field_path, "port, as, proto, to, accept or http_options"));
      }
    }
    if (!has_port) return Invalid(Child(item_path, "port"), "missing");
    spec->expose.push_back(std::move(port));
  }
  return Status::Ok();
}

Status SdlParser::ParseExposeTargets(const std::string& path, const YamlNode& node, ExposedPort* port) {
  std::vector<YamlNode> targets;
  GPUMART_RETURN_IF_ERROR(ReadSequence(node, path, kSdlMaxListEntries, "targets", &targets));
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string target_path = Item(path, i);
    Entries fields;
    GPUMART_RETURN_IF_ERROR(ReadMapping(targets[i], target_path, 8, "fields", &fields));
    bool global = false;
    std::string ip;
    for (const auto& [key, value] : fields) {
      const std::string field_path = Child(target_path, key);
      if (key == "global") {
        GPUMART_RETURN_IF_ERROR(ReadBool(value, field_path, &global));
      } else if (key == "ip") {
        GPUMART_RETURN_IF_ERROR(ReadScalar(value, field_path, kSdlMaxNameBytes, &ip));
      } else if (key != "service" && key != "http_options") {
        GPUMART_RETURN_IF_ERROR(UnknownField(field_path, "global, service, ip or http_options"));
      }
    }
    if (global) port->global = true;
    if (ip.empty()) continue;
    // Akash: an IP endpoint is reached from outside, so it must be global, and must be declared.
    if (!global) return Invalid(Child(target_path, "global"), "must be true when an ip endpoint is named");
    if (std::find(endpoints_.begin(), endpoints_.end(), ip) == endpoints_.end()) {
      return Invalid(Child(target_path, "ip"), "no endpoint " + Quoted(ip) + " in endpoints");
    }
    if (std::find(endpoints_used_.begin(), endpoints_used_.end(), ip) == endpoints_used_.end()) {
      endpoints_used_.push_back(ip);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// profiles.compute: what a replica needs. Strict: an unknown or misspelt field here would
// silently drop a requirement, so it is an error.

Status SdlParser::ParseCompute(const std::string& path, const YamlNode& node) {
  Entries profiles;
  Status status = ReadMapping(node, path, kSdlMaxComputeProfiles, "compute profiles", &profiles);
  if (!status.ok()) return status;
  if (profiles.empty()) return Invalid(path, "no compute profiles");
  for (const auto& [name, body] : profiles) {
    const std::string profile_path = Child(path, name);
    Entries fields;
    status = ReadMapping(body, profile_path, 8, "fields", &fields);
    if (!status.ok()) return status;
    std::optional<YamlNode> resources_node;
    for (const auto& [key, value] : fields) {
      if (key != "resources") {
        GPUMART_RETURN_IF_ERROR(UnknownField(Child(profile_path, key), "resources"));
        continue;
      }
      resources_node.emplace(value);
    }
    if (!resources_node) return Invalid(Child(profile_path, "resources"), "missing");
    Resources resources;
    status = ParseResources(Child(profile_path, "resources"), *resources_node, &resources);
    if (!status.ok()) return status;
    compute_.emplace_back(name, std::move(resources));
  }
  return Status::Ok();
}

Status SdlParser::ParseResources(const std::string& path, const YamlNode& node, Resources* resources) {
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  bool has_cpu = false, has_memory = false, has_storage = false;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    has_storage = has_storage || key == "storage";
    if (key == "cpu") {
      has_cpu = true;
      status = ParseCpu(field_path, value, &resources->cpu_millis);
    } else if (key == "memory") {
      has_memory = true;
      status = ParseMemory(field_path, value, &resources->memory_bytes);
    } else if (key == "storage") {
      status = ParseStorage(field_path, value, &resources->storage);
    } else if (key == "gpu") {
      status = ParseGpu(field_path, value, &resources->gpu);
    } else {
      status = UnknownField(field_path, "cpu, memory, storage or gpu");
    }
    if (!status.ok()) return status;
  }
  if (!has_cpu) return Invalid(Child(path, "cpu"), "missing");
  if (!has_memory) return Invalid(Child(path, "memory"), "missing");
  return SchemaRule(has_storage, Child(path, "storage"), "missing");
}

Status SdlParser::ParseCpu(const std::string& path, const YamlNode& node, uint64_t* millis) {
  // "cpu: 0.5" is accepted as shorthand for "cpu: {units: 0.5}".
  std::optional<YamlNode> units;
  std::string units_path = path;
  if (node.IsScalar()) {
    GPUMART_RETURN_IF_ERROR(SchemaRule(false, path, "a shorthand: write cpu: {units: ...}"));
    units.emplace(node);
  } else {
    Entries fields;
    Status status = ReadMapping(node, path, 8, "fields", &fields);
    if (!status.ok()) return status;
    for (const auto& [key, value] : fields) {
      if (key == "units") units.emplace(value);
      else if (key != "attributes") GPUMART_RETURN_IF_ERROR(UnknownField(Child(path, key), "units or attributes"));
    }
    units_path = Child(path, "units");
    if (!units) return Invalid(units_path, "missing");
  }
  std::string text;
  Status status = ReadScalar(*units, units_path, kSdlMaxNameBytes, &text);
  if (!status.ok()) return status;
  Result<uint64_t> parsed = ParseCpuMillis(text);
  if (!parsed.ok()) return parsed.status().WithContext(units_path);
  *millis = *parsed;
  return Status::Ok();
}

Status SdlParser::ParseMemory(const std::string& path, const YamlNode& node, uint64_t* bytes) {
  if (node.IsScalar()) {  // "memory: 2Gi" shorthand
    GPUMART_RETURN_IF_ERROR(SchemaRule(false, path, "a shorthand: write memory: {size: ...}"));
    return ReadSize(node, path, bytes);
  }
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  std::optional<YamlNode> size;
  for (const auto& [key, value] : fields) {
    if (key == "size") size.emplace(value);
    else if (key != "attributes") GPUMART_RETURN_IF_ERROR(UnknownField(Child(path, key), "size or attributes"));
  }
  if (!size) return Invalid(Child(path, "size"), "missing");
  return ReadSize(*size, Child(path, "size"), bytes);
}

Status SdlParser::ParseStorage(const std::string& path, const YamlNode& node, std::vector<StorageVolume>* volumes) {
  volumes->clear();
  if (node.IsScalar()) {  // "storage: 10Gi" shorthand for one default volume
    GPUMART_RETURN_IF_ERROR(SchemaRule(false, path, "a shorthand: write storage: {size: ...}"));
    volumes->emplace_back();
    return ReadSize(node, path, &volumes->back().bytes);
  }
  if (node.IsMap()) {  // one volume written as a mapping
    volumes->emplace_back();
    return ParseVolume(path, node, &volumes->back());
  }
  std::vector<YamlNode> items;
  Status status = ReadSequence(node, path, kSdlMaxVolumes, "volumes", &items);
  if (!status.ok()) return status;
  for (size_t i = 0; i < items.size(); ++i) {
    StorageVolume volume;
    const std::string item_path = Item(path, i);
    status = ParseVolume(item_path, items[i], &volume);
    if (!status.ok()) return status;
    // Names are unique, as params.storage mounts refer to them. An unnamed volume is "default",
    // so two unnamed volumes are refused too, as Akash's reader refuses them.
    for (const StorageVolume& other : *volumes) {
      if (other.name == volume.name) {
        return Invalid(items[i].IsMap() && items[i].Find("name").IsDefined() ? Child(item_path, "name") : item_path,
                       "duplicate volume " + Quoted(volume.name) +
                           (volume.name == "default" ? " (an unnamed volume is called default: name the others)" : ""));
      }
    }
    volumes->push_back(std::move(volume));
  }
  return Status::Ok();
}

// Akash's storage classes: a class names persistent storage, except ram (memory-backed, never
// persistent); an ephemeral volume has no class.
Status SdlParser::CheckVolumeClass(const std::string& path, const StorageVolume& volume, bool has_persistent,
                                   bool has_class) const {
  const std::string class_path = Child(Child(path, "attributes"), "class");
  if (volume.storage_class) {
    const std::string& name = *volume.storage_class;
    if (name != "default" && name != "beta1" && name != "beta2" && name != "beta3" && name != "ram") {
      return Invalid(class_path, Quoted(name) + " is not a storage class (expected default, beta1, beta2, beta3 or ram)");
    }
    if (name == "ram" && volume.persistent) return Invalid(class_path, "a ram volume cannot be persistent");
    if (name != "ram" && !volume.persistent) {
      return Invalid(class_path, "class " + Quoted(name) + " needs persistent: true (an ephemeral volume has no class)");
    }
  }
  return SchemaRule(has_persistent == has_class, Child(path, "attributes"), "needs both class and persistent");
}

Status SdlParser::ParseVolume(const std::string& path, const YamlNode& node, StorageVolume* volume) {
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  bool has_size = false, has_persistent = false, has_class = false;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    if (key == "name") {
      status = ReadName(value, field_path, &volume->name);
    } else if (key == "size") {
      has_size = true;
      status = ReadSize(value, field_path, &volume->bytes);
    } else if (key == "attributes") {
      Entries attributes;
      status = ReadMapping(value, field_path, 8, "attributes", &attributes);
      if (!status.ok()) return status;
      for (const auto& [attribute, attribute_value] : attributes) {
        const std::string attribute_path = Child(field_path, attribute);
        has_persistent = has_persistent || attribute == "persistent";
        has_class = has_class || attribute == "class";
        if (attribute == "persistent") {
          status = ReadBool(attribute_value, attribute_path, &volume->persistent);
        } else if (attribute == "class") {
          std::string storage_class;
          status = ReadName(attribute_value, attribute_path, &storage_class);
          volume->storage_class = std::move(storage_class);
        } else {
          return Unknown(attribute_path, "persistent or class");
        }
        if (!status.ok()) return status;
      }
    } else {
      status = UnknownField(field_path, "name, size or attributes");
    }
    if (!status.ok()) return status;
  }
  if (!has_size) return Invalid(Child(path, "size"), "missing");
  return CheckVolumeClass(path, *volume, has_persistent, has_class);
}

Status SdlParser::ParseGpu(const std::string& path, const YamlNode& node, GpuRequest* gpu) {
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  std::optional<YamlNode> units, attributes;
  for (const auto& [key, value] : fields) {
    if (key == "units") units.emplace(value);
    else if (key == "attributes") attributes.emplace(value);
    else return Unknown(Child(path, key), "units or attributes");
  }
  if (!units) {
    if (fields.empty()) return Status::Ok();  // "gpu:" with nothing: no GPU
    return Invalid(Child(path, "units"), "missing");
  }
  uint64_t count = 0;
  status = ReadInteger(*units, Child(path, "units"), 0, kSdlMaxGpuUnits, &count);
  if (!status.ok()) return status;
  const std::string attributes_path = Child(path, "attributes");
  std::vector<GpuOption> options;
  if (attributes && !attributes->IsNull()) {
    Entries attribute_fields;
    status = ReadMapping(*attributes, attributes_path, 8, "fields", &attribute_fields);
    if (!status.ok()) return status;
    std::optional<YamlNode> vendor;
    for (const auto& [key, value] : attribute_fields) {
      if (key != "vendor") return Unknown(Child(attributes_path, key), "vendor");
      vendor.emplace(value);
    }
    if (!vendor) return Invalid(Child(attributes_path, "vendor"), "missing");
    status = ParseGpuVendors(Child(attributes_path, "vendor"), *vendor, &options);
    if (!status.ok()) return status;
  }
  if (count > 0 && options.empty()) {
    return Invalid(attributes_path, "missing: " + std::to_string(count) +
                                        " GPU(s) need a vendor (attributes.vendor.nvidia, optionally with models)");
  }
  // Akash's deployment check: attributes without GPUs are refused.
  if (count == 0 && !options.empty()) return Invalid(attributes_path, "given for 0 GPUs (remove it or set units)");
  gpu->units = static_cast<uint32_t>(count);
  gpu->options = std::move(options);
  return Status::Ok();
}

Status SdlParser::ParseGpuVendors(const std::string& path, const YamlNode& node, std::vector<GpuOption>* options) {
  Entries vendors;
  Status status = ReadMapping(node, path, 8, "vendors", &vendors);
  if (!status.ok()) return status;
  if (vendors.empty()) return Invalid(path, "no GPU vendor (expected nvidia)");
  for (const auto& [vendor_key, list] : vendors) {
    const std::string vendor = ToLower(vendor_key);
    const std::string vendor_path = Child(path, vendor_key);
    if (vendor != "nvidia" && vendor != "amd") return Invalid(vendor_path, "unknown GPU vendor (expected nvidia or amd)");
    GPUMART_RETURN_IF_ERROR(SchemaRule(vendor_key == "nvidia", vendor_path, "not a vendor Akash knows (nvidia)"));
    std::vector<YamlNode> items;
    status = ReadSequence(list, vendor_path, kSdlMaxGpuOptions, "GPU options", &items);
    if (!status.ok()) return status;
    if (items.empty()) {  // "nvidia:" with no list: any model of the vendor
      GpuOption any;
      any.vendor = vendor;
      options->push_back(std::move(any));
    }
    for (size_t i = 0; i < items.size(); ++i) {
      GpuOption option;
      option.vendor = vendor;
      status = ParseGpuOption(Item(vendor_path, i), items[i], &option);
      if (!status.ok()) return status;
      options->push_back(std::move(option));
    }
    if (options->size() > kSdlMaxGpuOptions) return TooMany(path, kSdlMaxGpuOptions, "GPU options");
  }
  return Status::Ok();
}

Status SdlParser::ParseGpuOption(const std::string& path, const YamlNode& node, GpuOption* option) {
  if (node.IsScalar()) {  // "- a100" shorthand for "- model: a100"
    GPUMART_RETURN_IF_ERROR(SchemaRule(false, path, "a shorthand: write - model: ..."));
    std::string model;
    Status status = ReadName(node, path, &model);
    if (!status.ok()) return status;
    option->model = ToLower(Trim(model));
    return Status::Ok();
  }
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    if (key == "model") {
      std::string model;
      status = ReadName(value, field_path, &model);
      option->model = ToLower(Trim(model));
    } else if (key == "ram") {
      uint64_t bytes = 0;
      status = ReadSize(value, field_path, &bytes);
      option->ram_min_bytes = bytes;
    } else if (key == "interface") {
      std::string text;
      status = ReadName(value, field_path, &text);
      if (status.ok()) {
        option->interface = ParseGpuInterface(Trim(text));
        if (!option->interface) return Invalid(field_path, Quoted(text) + " is not pcie|sxm");
      }
    } else if (key == "mig") {  // gpumart extension (docs/FRACTIONAL.md)
      GPUMART_RETURN_IF_ERROR(SchemaRule(false, field_path, "a gpumart extension"));
      std::string text;
      status = ReadName(value, field_path, &text);
      if (status.ok()) {
        option->mig = ToLower(Trim(text));
        if (!IsMigProfile(*option->mig)) {
          return Invalid(field_path, Quoted(text) + " is not a MIG profile such as 1g.10gb");
        }
      }
    } else if (key == "mig_min_ram") {  // gpumart extension
      GPUMART_RETURN_IF_ERROR(SchemaRule(false, field_path, "a gpumart extension"));
      status = ReadSize(value, field_path, &option->mig_min_ram_bytes);  // refuses 0
    } else if (key == "shared") {  // gpumart extension
      GPUMART_RETURN_IF_ERROR(SchemaRule(false, field_path, "a gpumart extension"));
      status = ReadBool(value, field_path, &option->shared_ok);
    } else {
      status = UnknownField(field_path, "model, ram, interface, mig, mig_min_ram or shared");
    }
    if (!status.ok()) return status;
  }
  if (option->IsMig() && option->shared_ok) {
    return Invalid(path, "asks for a MIG instance and a shared GPU (a MIG instance is never time-sliced)");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// profiles.placement: groups, their provider constraints and prices.

Status SdlParser::ParsePlacements(const std::string& path, const YamlNode& node) {
  Entries groups;
  Status status = ReadMapping(node, path, kSdlMaxPlacements, "placement groups", &groups);
  if (!status.ok()) return status;
  if (groups.empty()) return Invalid(path, "no placement group");
  for (const auto& [name, body] : groups) {
    const std::string group_path = Child(path, name);
    PlacementGroup group;
    group.name = name;
    Entries fields;
    status = ReadMapping(body, group_path, 8, "fields", &fields);
    if (!status.ok()) return status;
    for (const auto& [key, value] : fields) {
      const std::string field_path = Child(group_path, key);
      if (key == "attributes") {
        Entries attributes;
        status = ReadMapping(value, field_path, kSdlMaxAttributes, "attributes", &attributes);
        if (!status.ok()) return status;
        for (const auto& [attribute, attribute_value] : attributes) {
          std::string text;  // kept as written: "true", "1" and "us-west" are all strings
          status = ReadScalar(attribute_value, Child(field_path, attribute), kSdlMaxNameBytes, &text);
          if (!status.ok()) return status;
          group.attributes.emplace(attribute, std::move(text));
        }
      } else if (key == "signedBy") {
        Entries lists;
        status = ReadMapping(value, field_path, 8, "fields", &lists);
        if (!status.ok()) return status;
        size_t auditors = 0;
        for (const auto& [list_key, list] : lists) {
          const std::string list_path = Child(field_path, list_key);
          std::vector<std::string>* keys = nullptr;
          if (list_key == "allOf") keys = &group.signed_by.all_of;
          else if (list_key == "anyOf") keys = &group.signed_by.any_of;
          else {
            GPUMART_RETURN_IF_ERROR(UnknownField(list_path, "allOf or anyOf"));
            continue;
          }
          std::vector<YamlNode> items;
          status = ReadSequence(list, list_path, kSdlMaxAuditors, "auditors", &items);
          if (!status.ok()) return status;
          auditors += items.size();
          if (auditors > kSdlMaxAuditors) return TooMany(field_path, kSdlMaxAuditors, "auditors");
          for (size_t i = 0; i < items.size(); ++i) {
            std::string auditor;
            status = ReadName(items[i], Item(list_path, i), &auditor);
            if (!status.ok()) return status;
            keys->push_back(std::move(auditor));
          }
        }
      } else if (key == "pricing") {
        Entries prices;
        status = ReadMapping(value, field_path, kSdlMaxComputeProfiles, "prices", &prices);
        if (!status.ok()) return status;
        for (const auto& [profile, price] : prices) {
          const std::string price_path = Child(field_path, profile);
          if (FindProfile(profile) == nullptr) {
            return Invalid(price_path, "no compute profile " + Quoted(profile) + " in profiles.compute");
          }
          std::vector<PriceCap> caps;
          status = ParsePrices(price_path, price, &caps);
          if (!status.ok()) return status;
          // One lease serves the whole group, so it is interruptible for every profile or none.
          if (group.interruptible && *group.interruptible != price_interruptible_) {
            return Invalid(Child(price_path, "interruptible"),
                           "every price of a placement must agree on interruptible (one lease serves the group)");
          }
          group.interruptible = price_interruptible_;
          group.pricing.emplace_back(profile, std::move(caps));
        }
      } else {
        GPUMART_RETURN_IF_ERROR(UnknownField(field_path, "attributes, signedBy or pricing"));
      }
    }
    const bool priced = std::any_of(fields.begin(), fields.end(), [](const auto& f) { return f.first == "pricing"; });
    GPUMART_RETURN_IF_ERROR(SchemaRule(priced, Child(group_path, "pricing"), "missing"));
    placements_.push_back(std::move(group));
  }
  return Status::Ok();
}

// One cap `{denom, amount}`, or (SDL 2.2) a list of them: the tenant pays in any listed denom, and
// the list's order is its preference (docs/SDL.md, "Several denoms"; Akash sorts the list).
Status SdlParser::ParsePrices(const std::string& path, const YamlNode& node, std::vector<PriceCap>* caps) {
  caps->clear();
  if (!node.IsSequence()) {
    caps->emplace_back();
    return ParsePrice(path, node, &caps->back());
  }
  if (dialect_ < 22) {
    return Invalid(path, "a list of prices needs version \"2.2\" (this file is " + Quoted(deployment_.version) + ")");
  }
  std::vector<YamlNode> items;
  GPUMART_RETURN_IF_ERROR(ReadSequence(node, path, limits::kMaxPriceCaps, "prices (denoms)", &items));
  if (items.empty()) return Invalid(path, "no prices");
  std::optional<bool> interruptible;
  for (size_t i = 0; i < items.size(); ++i) {
    PriceCap cap;
    GPUMART_RETURN_IF_ERROR(ParsePrice(Item(path, i), items[i], &cap));
    if (interruptible && *interruptible != price_interruptible_) {
      return Invalid(Child(Item(path, i), "interruptible"), "every denom of a price must agree on interruptible");
    }
    interruptible = price_interruptible_;
    for (const PriceCap& other : *caps) {
      if (other.denom == cap.denom) return Invalid(Child(Item(path, i), "denom"), Quoted(cap.denom) + " is listed twice");
    }
    caps->push_back(std::move(cap));
  }
  return Status::Ok();
}

Status SdlParser::ParsePrice(const std::string& path, const YamlNode& node, PriceCap* cap) {
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  std::optional<YamlNode> denom, amount;
  price_interruptible_ = false;
  for (const auto& [key, value] : fields) {
    if (key == "denom") {
      denom.emplace(value);
    } else if (key == "amount") {
      amount.emplace(value);
    } else if (key == "interruptible") {
      // A gpumart extension (Akash's reader ignores it): the amount is then the spot cap.
      const std::string flag_path = Child(path, key);
      GPUMART_RETURN_IF_ERROR(SchemaRule(false, flag_path, "interruptible is a gpumart extension"));
      GPUMART_RETURN_IF_ERROR(ReadBool(value, flag_path, &price_interruptible_));
    } else {
      GPUMART_RETURN_IF_ERROR(UnknownField(Child(path, key), "denom, amount or interruptible"));
    }
  }
  if (!denom) return Invalid(Child(path, "denom"), "missing");
  if (!amount) return Invalid(Child(path, "amount"), "missing");
  const std::string denom_path = Child(path, "denom");
  status = ReadName(*denom, denom_path, &cap->denom);
  if (!status.ok()) return status;
  // Akash prices are Cosmos SDK coins; a denom outside their grammar is refused.
  if (!IsCosmosDenom(cap->denom)) {
    return Invalid(denom_path, Quoted(cap->denom) + " is not a denom (a letter, then 2 to 127 letters, digits or /:._-)");
  }
  GPUMART_RETURN_IF_ERROR(SchemaRule(cap->denom == "uakt" || cap->denom == "uact" || cap->denom.starts_with("ibc/"),
                                     denom_path, Quoted(cap->denom) + " is not uakt, uact or ibc/..."));
  const std::string amount_path = Child(path, "amount");
  std::string text;
  status = ReadScalar(*amount, amount_path, kSdlMaxNameBytes, &text);
  if (!status.ok()) return status;
  const std::string_view trimmed = Trim(text);
  if (!trimmed.empty() && trimmed.front() == '-') return Invalid(amount_path, Quoted(text) + " is negative");
  auto decimal = ParseDecimal(trimmed);
  if (!decimal) return Invalid(amount_path, Quoted(text) + " is not a number");
  if (decimal->fraction_digits != 0) {
    return Invalid(amount_path, Quoted(text) + " has a fraction; write a whole number of " + cap->denom + " per block");
  }
  if (decimal->whole == 0) return Invalid(amount_path, "is zero (Akash refuses a zero price)");
  if (decimal->whole > kSdlMaxAmountPerBlock) {
    return Status::LimitExceeded(amount_path + ": " + std::string(trimmed) + " is more than the limit of " +
                                 std::to_string(kSdlMaxAmountPerBlock) + " per block");
  }
  cap->amount = decimal->whole;
  cap->per_hour = PerBlockToPerHour(cap->amount);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// deployment: service -> placement -> {profile, count}.

Status SdlParser::ParseDeployment(const std::string& path, const YamlNode& node) {
  Entries services;
  Status status = ReadMapping(node, path, kSdlMaxServices, "services", &services);
  if (!status.ok()) return status;
  if (services.empty()) return Invalid(path, "no service is deployed");
  for (const auto& [service, groups] : services) {
    const std::string service_path = Child(path, service);
    const auto service_it = std::find(service_names_.begin(), service_names_.end(), service);
    if (service_it == service_names_.end()) {
      return Invalid(service_path, "no service " + Quoted(service) + " in services");
    }
    Entries targets;
    status = ReadMapping(groups, service_path, kSdlMaxDeploymentsPerService, "placements", &targets);
    if (!status.ok()) return status;
    if (targets.empty()) return Invalid(service_path, "deployed to no placement group");
    for (const auto& [placement, body] : targets) {
      Deployed deployed;
      deployed.path = Child(service_path, placement);
      deployed.service_index = static_cast<size_t>(service_it - service_names_.begin());
      const PlacementGroup* group = FindPlacement(placement, &deployed.placement_index);
      if (group == nullptr) {
        return Invalid(deployed.path, "no placement " + Quoted(placement) + " in profiles.placement");
      }
      Entries fields;
      status = ReadMapping(body, deployed.path, 8, "fields", &fields);
      if (!status.ok()) return status;
      std::optional<YamlNode> profile, count;
      for (const auto& [key, value] : fields) {
        if (key == "profile") profile.emplace(value);
        else if (key == "count") count.emplace(value);
        else GPUMART_RETURN_IF_ERROR(UnknownField(Child(deployed.path, key), "profile or count"));
      }
      const std::string profile_path = Child(deployed.path, "profile");
      if (!profile) return Invalid(profile_path, "missing");
      status = ReadName(*profile, profile_path, &deployed.profile);
      if (!status.ok()) return status;
      if (FindProfile(deployed.profile) == nullptr) {
        return Invalid(profile_path, "no compute profile " + Quoted(deployed.profile) + " in profiles.compute");
      }
      const std::string count_path = Child(deployed.path, "count");
      if (!count) return Invalid(count_path, "missing");
      uint64_t replicas = 0;
      status = ReadInteger(*count, count_path, 1, kSdlMaxCount, &replicas);
      if (!status.ok()) return status;
      deployed.count = static_cast<uint32_t>(replicas);
      const bool priced = std::any_of(group->pricing.begin(), group->pricing.end(),
                                      [&](const auto& price) { return price.first == deployed.profile; });
      if (!priced) {
        return Invalid(Child(Child(Child("profiles.placement", placement), "pricing"), deployed.profile),
                       "missing: no price for compute profile " + Quoted(deployed.profile) + " used by " +
                           deployed.path);
      }
      deployed_.push_back(std::move(deployed));
    }
  }
  return Status::Ok();
}

std::string DenomList(const std::vector<std::string>& denoms) {
  std::string out;
  for (const std::string& denom : denoms) out += (out.empty() ? "" : ", ") + denom;
  return out;
}

// A group's bid is paid in one denom, so every service of a group is priced in the same denoms;
// the group's first service's order of them is the tenant's preference, and the others' caps
// are put in that order.
Status SdlParser::SetCaps(const std::string& group, const std::string& profile, const std::vector<PriceCap>& caps,
                          const Order& order, ServiceRequest* request) const {
  std::vector<PriceCap> ordered = caps;
  if (!order.services.empty()) {
    const std::vector<std::string> denoms = order.Denoms();
    bool same = caps.size() == denoms.size();
    for (size_t i = 0; same && i < denoms.size(); ++i) {
      const auto cap = std::find_if(caps.begin(), caps.end(), [&](const PriceCap& c) { return c.denom == denoms[i]; });
      same = cap != caps.end();
      if (same) ordered[i] = *cap;
    }
    if (!same) {
      std::vector<std::string> these;
      for (const PriceCap& cap : caps) these.push_back(cap.denom);
      return Invalid(Child(Child(Child("profiles.placement", group), "pricing"), profile),
                     "priced in " + DenomList(these) + ", the group's other services in " + DenomList(denoms) +
                         "; every service of a group is priced in the same denoms");
    }
  }
  request->price_cap = ordered.front();
  request->more_caps.assign(ordered.begin() + 1, ordered.end());
  return Status::Ok();
}

Status SdlParser::BuildOrders() {
  for (size_t placement_index = 0; placement_index < placements_.size(); ++placement_index) {
    const PlacementGroup& group = placements_[placement_index];
    Order order;
    order.group = group.name;
    order.attributes = group.attributes;
    order.signed_by = group.signed_by;
    order.interruptible = group.interruptible.value_or(false);
    for (size_t service_index = 0; service_index < service_names_.size(); ++service_index) {
      for (const Deployed& deployed : deployed_) {
        if (deployed.service_index != service_index || deployed.placement_index != placement_index) continue;
        ServiceRequest request;
        request.name = service_names_[service_index];
        request.profile = deployed.profile;
        request.count = deployed.count;
        request.resources = *FindProfile(deployed.profile);
        request.cuda_min = DetectCudaRequirement(deployment_.services.at(request.name));
        const std::vector<PriceCap>* caps = nullptr;
        for (const auto& [profile, profile_caps] : group.pricing) {
          if (profile == deployed.profile) caps = &profile_caps;
        }
        GPUMART_RETURN_IF_ERROR(SetCaps(group.name, deployed.profile, *caps, order, &request));
        order.services.push_back(std::move(request));
      }
    }
    // A placement that no service is deployed to asks the market for nothing.
    if (order.services.empty()) continue;
    // What the SDL accepts must also be a valid wire order (same limits as a peer's order).
    Status valid = ValidateOrder(order);
    if (!valid.ok()) return valid.WithContext(Child("profiles.placement", group.name));
    deployment_.orders.push_back(std::move(order));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// CUDA detection helpers.

// The leading "12.4" of "12.4.1-devel" or "12.4 brand=...", as a CudaVersion.
std::optional<CudaVersion> LeadingCudaVersion(std::string_view text) {
  size_t end = 0;
  while (end < text.size() && (IsDigit(text[end]) || text[end] == '.')) ++end;
  std::string_view version = text.substr(0, end);
  while (!version.empty() && version.back() == '.') version.remove_suffix(1);
  return ParseCudaVersion(version);
}

const std::string* FindEnv(const ServiceSpec& service, std::string_view name) {
  const std::string* found = nullptr;
  for (const auto& [key, value] : service.env) {
    if (key == name) found = &value;  // a later entry overrides an earlier one, as in Docker
  }
  return found;
}

}  // namespace

Result<uint64_t> ParseCpuMillis(std::string_view raw) {
  const std::string_view text = Trim(raw);
  const std::string shown = Quoted(text);
  if (!text.empty() && text.front() == '-') return Status::InvalidArgument(shown + " is negative");
  const Status not_cpu =
      Status::InvalidArgument(shown + " is not a CPU quantity (cores like 0.5 or millicores like 100m)");
  uint64_t millis = 0;
  if (!text.empty() && text.back() == 'm') {
    auto value = ParseUint(text.substr(0, text.size() - 1));
    if (!value) return not_cpu;
    millis = *value;
  } else {
    auto decimal = ParseDecimal(text);
    if (!decimal) return not_cpu;
    if (decimal->fraction_digits > 3) return Status::InvalidArgument(shown + " is finer than a millicore");
    auto value = Scale(*decimal, 1000);
    if (!value) return Status::InvalidArgument(shown + " is too large");
    millis = *value;
  }
  if (millis == 0) return Status::InvalidArgument(shown + " is zero; a service needs some CPU");
  return millis;
}

Result<uint64_t> ParseSizeBytes(std::string_view raw) {
  const std::string_view text = Trim(raw);
  const std::string shown = Quoted(text);
  if (!text.empty() && text.front() == '-') return Status::InvalidArgument(shown + " is negative");
  size_t number_end = 0;
  while (number_end < text.size() && (IsDigit(text[number_end]) || text[number_end] == '.' || text[number_end] == '+')) {
    ++number_end;
  }
  auto decimal = ParseDecimal(text.substr(0, number_end));
  if (!decimal) {
    return Status::InvalidArgument(shown + " is not a size (like 512Mi, 16Gi, 100GB or a number of bytes)");
  }
  const std::string_view suffix = Trim(text.substr(number_end));
  auto multiplier = SizeMultiplier(suffix);
  if (!multiplier) {
    return Status::InvalidArgument(shown + " has an unknown unit " + Quoted(suffix) +
                                   " (use k, M, G, T, P, E or Ki, Mi, Gi, Ti, Pi, Ei)");
  }
  auto bytes = Scale(*decimal, *multiplier);
  if (!bytes) return Status::InvalidArgument(shown + " is too large");
  return *bytes;
}

std::optional<CudaVersion> DetectCudaRequirement(const ServiceSpec& service) {
  if (const std::string* require = FindEnv(service, "NVIDIA_REQUIRE_CUDA")) {
    const std::string lower = ToLower(*require);
    const size_t at = lower.find("cuda>=");
    if (at != std::string::npos) {
      if (auto version = LeadingCudaVersion(std::string_view(lower).substr(at + 6))) return version;
    }
  }
  if (const std::string* version_text = FindEnv(service, "CUDA_VERSION")) {
    if (auto version = LeadingCudaVersion(Trim(*version_text))) return version;
  }
  // nvidia/cuda:12.4.1-devel-ubuntu22.04, also behind a registry (nvcr.io/nvidia/cuda:...).
  std::string_view image = Trim(service.image);
  image = image.substr(0, image.find('@'));  // drop a digest
  const size_t last_slash = image.rfind('/');
  const size_t colon = image.find(':', last_slash == std::string_view::npos ? 0 : last_slash);
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string repository = ToLower(image.substr(0, colon));
  constexpr std::string_view kCudaRepository = "nvidia/cuda";
  const bool is_cuda_image =
      repository == kCudaRepository ||
      (repository.size() > kCudaRepository.size() && repository.ends_with(kCudaRepository) &&
       repository[repository.size() - kCudaRepository.size() - 1] == '/');
  if (!is_cuda_image) return std::nullopt;
  return LeadingCudaVersion(image.substr(colon + 1));
}

Result<Deployment> ParseSdl(std::string_view yaml_text, const SdlOptions& options) {
  return CatchAll("SDL", [&] {
    SdlParser parser(options);
    return parser.Parse(yaml_text);
  });
}

namespace {
Result<Deployment> ReadSdlFile(const std::string& path, const SdlOptions& options) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return Status::IoError("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code open_error(errno, std::generic_category());
    return Status::IoError("cannot open: " + open_error.message());
  }
  // Read one byte past the limit so an oversized file is refused without reading all of it.
  std::string text(kSdlMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return Status::IoError("cannot read the file");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kSdlMaxFileBytes) {
    return Status::LimitExceeded("the file is larger than the limit of " + std::to_string(kSdlMaxFileBytes) +
                                 " bytes");
  }
  return ParseSdl(text, options);
}
}  // namespace

Result<Deployment> ParseSdlFile(const std::string& path, const SdlOptions& options) {
  return CatchAll(path, [&] { return ReadSdlFile(path, options); });
}

}  // namespace gpumart::market
