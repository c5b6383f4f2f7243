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
  Result<Deployment> Parse(std::string_view text);

 private:
  Status ParseRoot(const YamlNode& root);
  Status ParseService(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseEnv(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseExpose(const std::string& path, const YamlNode& node, ServiceSpec* spec);
  Status ParseCompute(const std::string& path, const YamlNode& node);
  Status ParseResources(const std::string& path, const YamlNode& node, Resources* resources);
  Status ParseCpu(const std::string& path, const YamlNode& node, uint64_t* millis);
  Status ParseMemory(const std::string& path, const YamlNode& node, uint64_t* bytes);
  Status ParseStorage(const std::string& path, const YamlNode& node, std::vector<StorageVolume>* volumes);
  Status ParseVolume(const std::string& path, const YamlNode& node, StorageVolume* volume);
  Status ParseGpu(const std::string& path, const YamlNode& node, GpuRequest* gpu);
  Status ParseGpuVendors(const std::string& path, const YamlNode& node, std::vector<GpuOption>* options);
  Status ParseGpuOption(const std::string& path, const YamlNode& node, GpuOption* option);
  Status ParsePlacements(const std::string& path, const YamlNode& node);
  Status ParsePrice(const std::string& path, const YamlNode& node, PriceCap* cap);
  Status ParseDeployment(const std::string& path, const YamlNode& node);
  Status BuildOrders();

  struct PlacementGroup {
    std::string name;
    std::map<std::string, std::string> attributes;
    SignedBy signed_by;
    std::vector<std::pair<std::string, PriceCap>> pricing;  // compute profile -> cap
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

  Deployment deployment_;
  std::vector<std::string> service_names_;  // in `services:` order
  std::vector<std::pair<std::string, Resources>> compute_;
  std::vector<PlacementGroup> placements_;
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
  return std::move(deployment_);
}

Status SdlParser::ParseRoot(const YamlNode& root) {
  if (root.IsNull()) return Status::InvalidArgument("the file is empty");
  Entries top;
  Status status = ReadMapping(root, "", 64, "top-level fields", &top);
  if (!status.ok()) return Status::InvalidArgument("expected a mapping at the top level, found " + KindName(root));
  std::optional<YamlNode> version, services, profiles, deployment;
  for (const auto& [key, value] : top) {
    if (key == "version") version.emplace(value);
    else if (key == "services") services.emplace(value);
    else if (key == "profiles") profiles.emplace(value);
    else if (key == "deployment") deployment.emplace(value);
    // Others ("endpoints" in 2.1, future additions) do not affect matching.
  }

  if (!version) return Invalid("version", "missing (expected \"2.0\" or \"2.1\")");
  status = ReadName(*version, "version", &deployment_.version);
  if (!status.ok()) return status;
  if (deployment_.version != "2.0" && deployment_.version != "2.1") {
    return Invalid("version", Quoted(deployment_.version) + " is not supported (expected \"2.0\" or \"2.1\")");
  }

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
    else return Unknown(Child("profiles", key), "compute or placement");
  }
  if (!compute) return Invalid("profiles.compute", "missing");
  if (!placement) return Invalid("profiles.placement", "missing: the file has no placement group");
  if (!deployment) return Invalid("deployment", "missing: the file deploys no service");

  for (const auto& [name, value] : service_entries) {
    ServiceSpec spec;
    status = ParseService(Child("services", name), value, &spec);
    if (!status.ok()) return status;
    service_names_.push_back(name);
    deployment_.services.emplace(name, std::move(spec));
  }
  status = ParseCompute("profiles.compute", *compute);
  if (!status.ok()) return status;
  status = ParsePlacements("profiles.placement", *placement);
  if (!status.ok()) return status;
  return ParseDeployment("deployment", *deployment);
}

// ---------------------------------------------------------------------------------------------
// services: kept for display and CUDA detection; malformed optional fields are skipped.

Status SdlParser::ParseService(const std::string& path, const YamlNode& node, ServiceSpec* spec) {
  Entries fields;
  Status status = ReadMapping(node, path, kSdlMaxListEntries, "fields", &fields);
  if (!status.ok()) return status;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
    if (key == "image") {
      if (value.IsScalar()) status = ReadScalar(value, field_path, kSdlMaxTextBytes, &spec->image);
    } else if (key == "env") {
      status = ParseEnv(field_path, value, spec);
    } else if (key == "command") {
      status = ReadTextList(value, field_path, &spec->command);
    } else if (key == "args") {
      status = ReadTextList(value, field_path, &spec->args);
    } else if (key == "expose") {
      status = ParseExpose(field_path, value, spec);
    }
    // params, credentials, depends_on, ...: accepted, not needed for matching.
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

Status SdlParser::ParseEnv(const std::string& path, const YamlNode& node, ServiceSpec* spec) {
  auto add = [&](std::string name, std::string value) {
    spec->env.emplace_back(std::move(name), std::move(value));
  };
  if (node.IsMap()) {  // compose-style NAME: value
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
      add(std::move(name), std::move(value));
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
      add(std::move(text), std::string());  // "- NAME": set, empty
    } else {
      add(text.substr(0, equals), text.substr(equals + 1));
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
  auto too_many = [&] { return TooMany(path, kMaxExposeNodesRead, "fields and targets"); };
  size_t index = 0;
  for (const YamlNode item : node.Items()) {
    if (index++ == kSdlMaxListEntries) return TooMany(path, kSdlMaxListEntries, "entries");
    if (!item.IsMap()) continue;
    ExposedPort port;
    bool has_port = false;
    for (const YamlMapEntry& field : item.Entries()) {
      if (nodes_left-- == 0) return too_many();
      if (!field.key.IsScalar() || field.key.Scalar().empty()) continue;
      const std::string_view key = field.key.Scalar();
      const YamlNode value = field.value;
      if ((key == "port" || key == "as") && value.IsScalar()) {
        auto number = ParseUint(Trim(value.Scalar()));
        if (!number || *number > 65535) continue;
        if (key == "port") {
          port.port = static_cast<uint32_t>(*number);
          has_port = true;
        } else {
          port.as = static_cast<uint32_t>(*number);
        }
      } else if (key == "proto" && value.IsScalar() && value.Scalar().size() <= kSdlMaxNameBytes) {
        port.proto = std::string(value.Scalar());
      } else if (key == "to" && value.IsSequence()) {
        for (const YamlNode target : value.Items()) {
          if (nodes_left-- == 0) return too_many();
          if (!target.IsMap()) continue;
          for (const YamlMapEntry& target_field : target.Entries()) {
            if (nodes_left-- == 0) return too_many();
            bool global = false;
            if (target_field.key.IsScalar() && target_field.key.Scalar() == "global" &&
                ReadBool(target_field.value, path, &global).ok() && global) {
              port.global = true;
            }
          }
        }
      }
    }
    if (has_port) spec->expose.push_back(std::move(port));
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
      if (key != "resources") return Unknown(Child(profile_path, key), "resources");
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
  bool has_cpu = false, has_memory = false;
  for (const auto& [key, value] : fields) {
    const std::string field_path = Child(path, key);
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
      return Unknown(field_path, "cpu, memory, storage or gpu");
    }
    if (!status.ok()) return status;
  }
  if (!has_cpu) return Invalid(Child(path, "cpu"), "missing");
  if (!has_memory) return Invalid(Child(path, "memory"), "missing");
  return Status::Ok();
}

Status SdlParser::ParseCpu(const std::string& path, const YamlNode& node, uint64_t* millis) {
  // "cpu: 0.5" is accepted as shorthand for "cpu: {units: 0.5}".
  std::optional<YamlNode> units;
  std::string units_path = path;
  if (node.IsScalar()) {
    units.emplace(node);
  } else {
    Entries fields;
    Status status = ReadMapping(node, path, 8, "fields", &fields);
    if (!status.ok()) return status;
    for (const auto& [key, value] : fields) {
      if (key == "units") units.emplace(value);
      else if (key != "attributes") return Unknown(Child(path, key), "units or attributes");
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
  if (node.IsScalar()) return ReadSize(node, path, bytes);  // "memory: 2Gi" shorthand
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  std::optional<YamlNode> size;
  for (const auto& [key, value] : fields) {
    if (key == "size") size.emplace(value);
    else if (key != "attributes") return Unknown(Child(path, key), "size or attributes");
  }
  if (!size) return Invalid(Child(path, "size"), "missing");
  return ReadSize(*size, Child(path, "size"), bytes);
}

Status SdlParser::ParseStorage(const std::string& path, const YamlNode& node, std::vector<StorageVolume>* volumes) {
  volumes->clear();
  if (node.IsScalar()) {  // "storage: 10Gi" shorthand for one default volume
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
    // Unnamed volumes are all "default" (the Akash GPU guide writes two of them); only names
    // written out must be unique, as params.storage mounts refer to them.
    auto named = [&](size_t index) {
      const YamlNode& item = items[index];
      return item.IsMap() && item.Find("name").IsDefined();
    };
    if (named(i)) {
      for (size_t j = 0; j < i; ++j) {
        if (named(j) && (*volumes)[j].name == volume.name) {
          return Invalid(Child(item_path, "name"), "duplicate volume " + Quoted(volume.name));
        }
      }
    }
    volumes->push_back(std::move(volume));
  }
  return Status::Ok();
}

Status SdlParser::ParseVolume(const std::string& path, const YamlNode& node, StorageVolume* volume) {
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  bool has_size = false;
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
      return Unknown(field_path, "name, size or attributes");
    }
    if (!status.ok()) return status;
  }
  if (!has_size) return Invalid(Child(path, "size"), "missing");
  return Status::Ok();
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
  gpu->units = static_cast<uint32_t>(count);
  if (count > 0) gpu->options = std::move(options);  // options of a zero-GPU request mean nothing
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
    } else {
      return Unknown(field_path, "model, ram or interface");
    }
    if (!status.ok()) return status;
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
          else return Unknown(list_path, "allOf or anyOf");
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
          PriceCap cap;
          status = ParsePrice(price_path, price, &cap);
          if (!status.ok()) return status;
          group.pricing.emplace_back(profile, std::move(cap));
        }
      } else {
        return Unknown(field_path, "attributes, signedBy or pricing");
      }
    }
    placements_.push_back(std::move(group));
  }
  return Status::Ok();
}

Status SdlParser::ParsePrice(const std::string& path, const YamlNode& node, PriceCap* cap) {
  Entries fields;
  Status status = ReadMapping(node, path, 8, "fields", &fields);
  if (!status.ok()) return status;
  std::optional<YamlNode> denom, amount;
  for (const auto& [key, value] : fields) {
    if (key == "denom") denom.emplace(value);
    else if (key == "amount") amount.emplace(value);
    else return Unknown(Child(path, key), "denom or amount");
  }
  if (!denom) return Invalid(Child(path, "denom"), "missing");
  if (!amount) return Invalid(Child(path, "amount"), "missing");
  status = ReadName(*denom, Child(path, "denom"), &cap->denom);
  if (!status.ok()) return status;
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
        else return Unknown(Child(deployed.path, key), "profile or count");
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

Status SdlParser::BuildOrders() {
  for (size_t placement_index = 0; placement_index < placements_.size(); ++placement_index) {
    const PlacementGroup& group = placements_[placement_index];
    Order order;
    order.group = group.name;
    order.attributes = group.attributes;
    order.signed_by = group.signed_by;
    for (size_t service_index = 0; service_index < service_names_.size(); ++service_index) {
      for (const Deployed& deployed : deployed_) {
        if (deployed.service_index != service_index || deployed.placement_index != placement_index) continue;
        ServiceRequest request;
        request.name = service_names_[service_index];
        request.profile = deployed.profile;
        request.count = deployed.count;
        request.resources = *FindProfile(deployed.profile);
        request.cuda_min = DetectCudaRequirement(deployment_.services.at(request.name));
        for (const auto& [profile, cap] : group.pricing) {
          if (profile == deployed.profile) request.price_cap = cap;
        }
        if (!order.services.empty() && request.price_cap.denom != order.Denom()) {
          return Invalid(Child(Child(Child(Child("profiles.placement", group.name), "pricing"), deployed.profile),
                               "denom"),
                         Quoted(request.price_cap.denom) + " differs from " + Quoted(order.Denom()) +
                             " used by the group's other services; a group is priced in one denom");
        }
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

Result<Deployment> ParseSdl(std::string_view yaml_text) {
  return CatchAll("SDL", [&] {
    SdlParser parser;
    return parser.Parse(yaml_text);
  });
}

namespace {
Result<Deployment> ReadSdlFile(const std::string& path) {
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
  return ParseSdl(text);
}
}  // namespace

Result<Deployment> ParseSdlFile(const std::string& path) {
  return CatchAll(path, [&] { return ReadSdlFile(path); });
}

}  // namespace gpumart::market
