#include "market/offer_query.h"

#include <algorithm>
#include <array>
#include <tuple>

#include "market/checked_math.h"
#include "market/match.h"
#include "market/sdl.h"

namespace gpumart::market {

namespace {

// How a field's values are written and compared.
enum class Kind : uint8_t {
  kText,       // compared without regard to letter case
  kGpuName,    // a model, vast.ai style
  kInterface,  // pcie | sxm (sxm2..sxm5 read as sxm)
  kCount,      // a whole number
  kSize,       // GiB when bare (`80`, `7.5`), or a size with a unit (`80Gi`, `48GB`)
  kMoney,      // whole micro-units of the denom
  kFraction,   // 0..1, at most 6 digits after the point; held as parts per million
  kVersion,    // a CUDA version
  kBool,       // true | false
  kCores,      // cores, at most 3 digits after the point; held as millicores
};

// Which part of an offer decides the field: a search checks a term once per offer, node,
// device entry or price table, not once per row.
enum class Level : uint8_t { kOffer, kNode, kDevice, kPrice };

struct FieldSpec {
  std::string_view name;
  OfferField field;
  Kind kind;
  Level level;
};

// In OfferField order.
constexpr std::array<FieldSpec, 19> kFields{{
    {"gpu_name", OfferField::kGpuName, Kind::kGpuName, Level::kDevice},
    {"gpu_arch", OfferField::kGpuArch, Kind::kText, Level::kDevice},
    {"num_gpus", OfferField::kNumGpus, Kind::kCount, Level::kDevice},
    {"gpu_ram", OfferField::kGpuRam, Kind::kSize, Level::kDevice},
    {"gpu_total_ram", OfferField::kGpuTotalRam, Kind::kSize, Level::kDevice},
    {"cuda_vers", OfferField::kCudaVers, Kind::kVersion, Level::kDevice},
    {"interface", OfferField::kInterface, Kind::kInterface, Level::kDevice},
    {"dph", OfferField::kDph, Kind::kMoney, Level::kPrice},
    {"dph_per_gpu", OfferField::kDphPerGpu, Kind::kMoney, Level::kPrice},
    {"denom", OfferField::kDenom, Kind::kText, Level::kPrice},
    {"reliability", OfferField::kReliability, Kind::kFraction, Level::kOffer},
    {"verified", OfferField::kVerified, Kind::kBool, Level::kOffer},
    {"geolocation", OfferField::kGeolocation, Kind::kText, Level::kOffer},
    {"region", OfferField::kRegion, Kind::kText, Level::kOffer},
    {"provider", OfferField::kProvider, Kind::kText, Level::kOffer},
    {"node", OfferField::kNode, Kind::kText, Level::kNode},
    {"cpu_cores", OfferField::kCpuCores, Kind::kCores, Level::kNode},
    {"cpu_ram", OfferField::kCpuRam, Kind::kSize, Level::kNode},
    {"disk_space", OfferField::kDiskSpace, Kind::kSize, Level::kNode},
}};

// vast.ai's other names for the same fields.
struct Alias {
  std::string_view name;
  OfferField field;
};
constexpr std::array<Alias, 4> kAliases{{
    {"dph_total", OfferField::kDph},
    {"cuda_max_good", OfferField::kCudaVers},
    {"vendor", OfferField::kGpuArch},
    {"cpu_cores_effective", OfferField::kCpuCores},
}};

const FieldSpec& Spec(OfferField field) { return kFields[static_cast<size_t>(field)]; }

std::optional<OfferField> LookupField(std::string_view name) {
  for (const FieldSpec& spec : kFields) {
    if (spec.name == name) return spec.field;
  }
  for (const Alias& alias : kAliases) {
    if (alias.name == name) return alias.field;
  }
  return std::nullopt;
}

std::string KnownFields() {
  std::string known;
  for (const FieldSpec& spec : kFields) known += (known.empty() ? "" : ", ") + std::string(spec.name);
  for (const Alias& alias : kAliases) {
    known += ", " + std::string(alias.name) + " (= " + std::string(Spec(alias.field).name) + ")";
  }
  return known;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsFieldChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool IsOperatorChar(char c) { return c == '<' || c == '>' || c == '=' || c == '!'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

// `text` as shown in an error: quoted, cut short, without control characters.
std::string Shown(std::string_view text) {
  constexpr size_t kShownBytes = 40;
  std::string out = "'";
  for (char c : text.substr(0, kShownBytes)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (text.size() > kShownBytes) out += "...";
  return out + "'";
}

Status ErrorAt(size_t offset, const std::string& what) {
  return Status::InvalidArgument("column " + std::to_string(offset + 1) + ": " + what);
}

std::optional<QueryOp> LookupOperator(std::string_view op) {
  static constexpr std::array<std::pair<std::string_view, QueryOp>, 19> kOperators{{
      {"<", QueryOp::kLt},       {"<=", QueryOp::kLe},       {"=", QueryOp::kEq},      {"==", QueryOp::kEq},
      {"!=", QueryOp::kNe},      {">=", QueryOp::kGe},       {">", QueryOp::kGt},      {"lt", QueryOp::kLt},
      {"lte", QueryOp::kLe},     {"eq", QueryOp::kEq},       {"neq", QueryOp::kNe},    {"noteq", QueryOp::kNe},
      {"not eq", QueryOp::kNe},  {"gte", QueryOp::kGe},      {"gt", QueryOp::kGt},     {"in", QueryOp::kIn},
      {"notin", QueryOp::kNotIn}, {"nin", QueryOp::kNotIn},  {"not in", QueryOp::kNotIn},
  }};
  for (const auto& [name, value] : kOperators) {
    if (name == op) return value;
  }
  return std::nullopt;
}

constexpr std::string_view kOperatorList = "<, <=, =, ==, !=, >=, >, in, notin";

// A decimal `digits[.digits]` times 10^scale, exactly; nullopt when it is not one, has more than
// `scale` digits after the point, or does not fit.
std::optional<uint64_t> ParseScaled(std::string_view text, int scale) {
  uint64_t value = 0;
  size_t i = 0;
  bool any_digit = false;
  for (; i < text.size() && IsDigit(text[i]); ++i) {
    if (!CheckedMul(value, 10, value) || !CheckedAdd(value, static_cast<uint64_t>(text[i] - '0'), value)) {
      return std::nullopt;
    }
    any_digit = true;
  }
  int fraction_digits = 0;
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size() && IsDigit(text[i]); ++i) {
      if (++fraction_digits > scale) return std::nullopt;
      if (!CheckedMul(value, 10, value) || !CheckedAdd(value, static_cast<uint64_t>(text[i] - '0'), value)) {
        return std::nullopt;
      }
      any_digit = true;
    }
  }
  if (!any_digit || i != text.size()) return std::nullopt;
  for (; fraction_digits < scale; ++fraction_digits) {
    if (!CheckedMul(value, 10, value)) return std::nullopt;
  }
  return value;
}

// `RTX_4090`, `rtx 4090`, `RTX-4090` -> "rtx4090": how gpu_name compares a term with a model.
std::string SquashName(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c != ' ' && c != '_' && c != '-') out += LowerAscii(c);
  }
  return out;
}

uint64_t VersionNumber(const CudaVersion& version) { return (uint64_t{version.major} << 16) | version.minor; }

Result<QueryValue> ParseValue(const FieldSpec& spec, std::string_view text, size_t offset) {
  QueryValue value;
  const std::string field(spec.name);
  auto expected = [&](const std::string& what) { return ErrorAt(offset, field + " takes " + what + ", not " + Shown(text)); };
  switch (spec.kind) {
    case Kind::kText:
      if (text.empty()) return expected("a name");
      value.text = ToLower(text);
      return value;
    case Kind::kGpuName: {
      // A vast.ai name may end with the board's interface (H100_SXM, A100_PCIE): it names both.
      std::string name = SquashName(text);
      for (std::string_view suffix : {"sxm2", "sxm3", "sxm4", "sxm5", "sxm", "pcie"}) {
        if (name.size() > suffix.size() && name.ends_with(suffix)) {
          value.interface = ParseGpuInterface(suffix);
          name.resize(name.size() - suffix.size());
          break;
        }
      }
      if (name.empty()) return expected("a GPU model (like h100 or RTX_4090)");
      value.text = std::move(name);
      return value;
    }
    case Kind::kInterface: {
      const auto interface = ParseGpuInterface(text);
      if (!interface) return expected("pcie or sxm");
      value.number = static_cast<uint64_t>(*interface);
      return value;
    }
    case Kind::kCount:
    case Kind::kMoney: {
      const auto number = ParseScaled(text, 0);
      if (!number) {
        return expected(spec.kind == Kind::kCount
                            ? std::string("a whole number")
                            : "a whole number of micro-units of the denom per hour (like 300000 for 0.3 akt in uakt)");
      }
      value.number = *number;
      return value;
    }
    case Kind::kSize: {
      const bool bare = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return IsDigit(c) || c == '.'; });
      Result<uint64_t> bytes = ParseSizeBytes(bare ? std::string(text) + "Gi" : std::string(text));
      if (!bytes.ok()) return expected("a size: GiB as a bare number (80, 7.5) or with a unit (80Gi, 48GB, 24000Mi)");
      value.number = *bytes;
      return value;
    }
    case Kind::kFraction: {
      const auto ppm = ParseScaled(text, 6);
      if (!ppm || *ppm > 1'000'000) return expected("a number from 0 to 1 with at most 6 digits after the point");
      value.number = *ppm;
      return value;
    }
    case Kind::kVersion: {
      const auto version = ParseCudaVersion(text);
      if (!version) return expected("a CUDA version (like 12.4)");
      value.number = VersionNumber(*version);
      return value;
    }
    case Kind::kBool:
      if (EqualsIgnoringCase(text, "true") || text == "1") {
        value.number = 1;
      } else if (EqualsIgnoringCase(text, "false") || text == "0") {
        value.number = 0;
      } else {
        return expected("true or false");
      }
      return value;
    case Kind::kCores: {
      const auto millis = ParseScaled(text, 3);
      if (!millis) return expected("a number of cores with at most 3 digits after the point");
      value.number = *millis;
      return value;
    }
  }
  return expected("a value");
}

// Ordering makes sense for numbers and versions, not for names and flags.
bool IsOrdered(Kind kind) {
  return kind != Kind::kText && kind != Kind::kGpuName && kind != Kind::kInterface && kind != Kind::kBool;
}

// One raw value as written: its text (quotes and brackets removed) and where it starts.
struct RawValue {
  std::string_view text;
  size_t offset = 0;
};

// The items of a list between `[` and `]` (or of a bare `a,b` after in / notin): comma
// separated, each bare or quoted, spaces around them ignored, empty items skipped as vast.ai
// does.
Status SplitItems(std::string_view query, size_t begin, size_t end, std::vector<RawValue>& items) {
  size_t i = begin;
  while (i < end) {
    while (i < end && IsSpace(query[i])) ++i;
    if (i == end) break;
    if (query[i] == ',') {
      ++i;
      continue;
    }
    RawValue item;
    if (query[i] == '"' || query[i] == '\'') {
      const char quote = query[i];
      const size_t close = query.find(quote, i + 1);
      if (close == std::string_view::npos || close >= end) return ErrorAt(i, "unterminated quoted value in the list");
      item = {query.substr(i + 1, close - i - 1), i + 1};
      i = close + 1;
      while (i < end && IsSpace(query[i])) ++i;
      if (i < end && query[i] != ',') return ErrorAt(i, "expected ',' or ']' after a quoted list item");
    } else {
      size_t stop = i;
      while (stop < end && query[stop] != ',') ++stop;
      size_t last = stop;
      while (last > i && IsSpace(query[last - 1])) --last;
      item = {query.substr(i, last - i), i};
      i = stop;
    }
    if (items.size() == kMaxOfferQueryListItems) {
      return Status::LimitExceeded("column " + std::to_string(item.offset + 1) + ": a list has more than " +
                                   std::to_string(kMaxOfferQueryListItems) + " items");
    }
    items.push_back(item);
  }
  return Status::Ok();
}

// The `]` that closes a list whose items start at `begin`; a `]` inside a quoted item is part of
// it. npos when there is none (`open_quote` says whether a quoted item was left open).
size_t ListEnd(std::string_view text, size_t begin, bool& open_quote) {
  char quote = 0;
  for (size_t i = begin; i < text.size(); ++i) {
    if (quote != 0) {
      if (text[i] == quote) quote = 0;
    } else if (text[i] == '"' || text[i] == '\'') {
      quote = text[i];
    } else if (text[i] == ']') {
      return i;
    }
  }
  open_quote = quote != 0;
  return std::string_view::npos;
}

bool IsWildcard(std::string_view text) { return text == "any" || text == "*" || text == "?"; }

}  // namespace

std::string_view ToString(OfferField field) { return Spec(field).name; }

std::string_view ToString(QueryOp op) {
  switch (op) {
    case QueryOp::kLt: return "<";
    case QueryOp::kLe: return "<=";
    case QueryOp::kEq: return "==";
    case QueryOp::kNe: return "!=";
    case QueryOp::kGe: return ">=";
    case QueryOp::kGt: return ">";
    case QueryOp::kIn: return "in";
    case QueryOp::kNotIn: return "notin";
  }
  return "?";
}

Result<OfferQuery> ParseOfferQuery(std::string_view text) {
  if (text.size() > kMaxOfferQueryBytes) {
    return Status::LimitExceeded("the query is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                                 std::to_string(kMaxOfferQueryBytes));
  }
  OfferQuery query;
  size_t i = 0;
  size_t terms = 0;
  auto skip_spaces = [&] {
    while (i < text.size() && IsSpace(text[i])) ++i;
  };
  skip_spaces();
  while (i < text.size()) {
    // field
    const size_t field_at = i;
    while (i < text.size() && IsFieldChar(text[i])) ++i;
    if (i == field_at) return ErrorAt(field_at, "expected a field name, found " + Shown(text.substr(field_at, 1)));
    const std::string name = ToLower(text.substr(field_at, i - field_at));
    const auto field = LookupField(name);
    if (!field) return ErrorAt(field_at, "unknown field " + Shown(name) + " (known: " + KnownFields() + ")");
    if (++terms > kMaxOfferQueryTerms) {
      return Status::LimitExceeded("column " + std::to_string(field_at + 1) + ": more than " +
                                   std::to_string(kMaxOfferQueryTerms) + " terms");
    }
    const FieldSpec& spec = Spec(*field);
    // operator: symbols right after the field or after spaces, or a word between spaces
    const size_t after_field = i;
    skip_spaces();
    const size_t op_at = i;
    std::string op_text;
    if (i < text.size() && IsOperatorChar(text[i])) {
      while (i < text.size() && IsOperatorChar(text[i])) ++i;
      op_text = std::string(text.substr(op_at, i - op_at));
    } else if (i > after_field && i < text.size()) {
      while (i < text.size() && IsFieldChar(text[i])) ++i;
      op_text = ToLower(text.substr(op_at, i - op_at));
      if (op_text.empty()) {
        return ErrorAt(op_at, "expected an operator (" + std::string(kOperatorList) + ") after " + Shown(name) +
                                  ", found " + Shown(text.substr(op_at, 1)));
      }
      if (op_text == "not") {  // `not in`, `not eq`
        const size_t word_end = i;
        skip_spaces();
        const size_t second_at = i;
        while (i < text.size() && IsFieldChar(text[i])) ++i;
        const std::string second = ToLower(text.substr(second_at, i - second_at));
        if (second_at > word_end && (second == "in" || second == "eq")) {
          op_text += " " + second;
        } else {
          i = word_end;
        }
      }
      if (i < text.size() && !IsSpace(text[i])) {
        return ErrorAt(i, "expected a space after the operator " + Shown(op_text) + ", found " + Shown(text.substr(i, 1)));
      }
    }
    if (i == op_at) {
      return ErrorAt(op_at, "expected an operator (" + std::string(kOperatorList) + ") after " + Shown(name) +
                                (op_at < text.size() ? ", found " + Shown(text.substr(op_at, 1)) : ""));
    }
    const auto op = LookupOperator(op_text);
    if (!op) {
      return ErrorAt(op_at, "unknown operator " + Shown(text.substr(op_at, i - op_at)) + " (expected one of " +
                                std::string(kOperatorList) + ")");
    }
    const bool list_op = *op == QueryOp::kIn || *op == QueryOp::kNotIn;
    if (!IsOrdered(spec.kind) && !list_op && *op != QueryOp::kEq && *op != QueryOp::kNe) {
      return ErrorAt(op_at, std::string(spec.name) + std::string(" is compared with =, !=, in or notin, not ") +
                                std::string(ToString(*op)));
    }
    // value
    skip_spaces();
    const size_t value_at = i;
    if (i == text.size()) return ErrorAt(value_at, "expected a value after " + Shown(op_text));
    std::vector<RawValue> raw;
    bool was_list = false;
    if (text[i] == '[') {
      bool open_quote = false;
      const size_t close = ListEnd(text, i + 1, open_quote);
      if (close == std::string_view::npos) {
        return ErrorAt(value_at, open_quote ? "unterminated quoted value in the list" : "unterminated list: expected ']'");
      }
      GPUMART_RETURN_IF_ERROR(SplitItems(text, i + 1, close, raw));
      if (raw.empty()) return ErrorAt(value_at, "an empty list");
      i = close + 1;
      was_list = true;
    } else if (text[i] == '"' || text[i] == '\'') {
      const size_t close = text.find(text[i], i + 1);
      if (close == std::string_view::npos) return ErrorAt(value_at, "unterminated quoted value");
      raw.push_back({text.substr(i + 1, close - i - 1), i + 1});
      i = close + 1;
    } else {
      while (i < text.size() && !IsSpace(text[i])) ++i;
      if (list_op) {
        GPUMART_RETURN_IF_ERROR(SplitItems(text, value_at, i, raw));
        if (raw.empty()) return ErrorAt(value_at, "expected a value after " + Shown(op_text));
      } else {
        raw.push_back({text.substr(value_at, i - value_at), value_at});
      }
    }
    if (i < text.size() && !IsSpace(text[i])) {
      return ErrorAt(i, "expected a space after the value, found " + Shown(text.substr(i, 1)));
    }
    if (!list_op && (was_list || raw.size() != 1)) {
      return ErrorAt(value_at, "a list goes with in or notin, not " + std::string(ToString(*op)));
    }
    skip_spaces();
    if (raw.size() == 1 && IsWildcard(raw[0].text)) {
      // vast.ai's `field=any`: no condition on the field.
      if (*op != QueryOp::kEq) return ErrorAt(value_at, "the wildcard " + Shown(raw[0].text) + " goes only with =");
      continue;
    }
    OfferTerm term;
    term.field = *field;
    term.op = *op;
    term.column = field_at + 1;
    for (const RawValue& item : raw) {
      Result<QueryValue> value = ParseValue(spec, item.text, item.offset);
      if (!value.ok()) return value.status();
      term.values.push_back(std::move(value).value());
    }
    query.terms.push_back(std::move(term));
  }
  return query;
}

Result<std::vector<OfferOrderKey>> ParseOfferOrder(std::string_view text) {
  if (text.size() > kMaxOfferOrderBytes) {
    return Status::LimitExceeded("the sort order is " + std::to_string(text.size()) +
                                 " bytes, more than the limit of " + std::to_string(kMaxOfferOrderBytes));
  }
  std::vector<OfferOrderKey> keys;
  size_t i = 0;
  while (i <= text.size()) {
    const size_t comma = std::min(text.find(',', i), text.size());
    std::string_view item = text.substr(i, comma - i);
    const size_t item_at = i;
    i = comma + 1;
    while (!item.empty() && IsSpace(item.front())) item.remove_prefix(1);
    while (!item.empty() && IsSpace(item.back())) item.remove_suffix(1);
    if (item.empty()) continue;
    OfferOrderKey key;
    auto direction = [&](char c) {
      if (c == '-') key.descending = true;
      if (c == '+') key.descending = false;
      return c == '-' || c == '+';
    };
    if (direction(item.front())) item.remove_prefix(1);
    if (!item.empty() && direction(item.back())) item.remove_suffix(1);
    const auto field = LookupField(ToLower(item));
    if (!field) {
      return Status::InvalidArgument("sort order, column " + std::to_string(item_at + 1) + ": unknown field " +
                                     Shown(item) + " (known: " + KnownFields() + ")");
    }
    if (keys.size() == kMaxOfferOrderKeys) {
      return Status::LimitExceeded("sort order: more than " + std::to_string(kMaxOfferOrderKeys) + " keys");
    }
    key.field = *field;
    keys.push_back(key);
  }
  if (keys.empty()) keys.push_back(OfferOrderKey{OfferField::kDph, false});
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

namespace {

using RowRef = OfferSearch::RowRef;

std::optional<std::string_view> Attribute(const Offer& offer, const char* key) {
  const auto found = offer.attributes.find(key);
  if (found == offer.attributes.end()) return std::nullopt;
  return std::string_view(found->second);
}

// The row's value of a number field (nullopt when the row has none: a device without a CUDA
// version). Only the parts of `row` the field's level needs are read.
std::optional<uint64_t> NumberOf(OfferField field, const RowRef& row) {
  switch (field) {
    case OfferField::kNumGpus: return row.gpus->count;
    case OfferField::kGpuRam: return row.gpus->ram_bytes;
    case OfferField::kGpuTotalRam: return SaturatingMul(row.gpus->count, row.gpus->ram_bytes);
    case OfferField::kCudaVers:
      if (!row.gpus->cuda) return std::nullopt;
      return VersionNumber(*row.gpus->cuda);
    case OfferField::kInterface: return static_cast<uint64_t>(row.gpus->interface);
    case OfferField::kDph: return SaturatingMul(row.gpus->count, row.rate);
    case OfferField::kDphPerGpu: return row.rate;
    case OfferField::kReliability: return row.offer->reputation_ppm;
    case OfferField::kVerified: return row.offer->auditors.empty() ? 0 : 1;
    case OfferField::kCpuCores: return row.node->cpu_millis;
    case OfferField::kCpuRam: return row.node->memory_bytes;
    case OfferField::kDiskSpace: return row.node->storage_bytes;
    default: return std::nullopt;
  }
}

std::optional<std::string_view> TextOf(OfferField field, const RowRef& row) {
  switch (field) {
    case OfferField::kGpuName: return std::string_view(row.gpus->model);
    case OfferField::kGpuArch: return std::string_view(row.gpus->vendor);
    case OfferField::kDenom: return std::string_view(row.table->denom);
    case OfferField::kGeolocation: return Attribute(*row.offer, "country");
    case OfferField::kRegion: return Attribute(*row.offer, "region");
    case OfferField::kProvider: return std::string_view(row.offer->provider);
    case OfferField::kNode: return std::string_view(row.node->name);
    default: return std::nullopt;
  }
}

bool IsTextField(OfferField field) {
  const Kind kind = Spec(field).kind;
  return kind == Kind::kText || kind == Kind::kGpuName;
}

bool ValueEquals(const OfferTerm& term, const QueryValue& value, const RowRef& row, uint64_t number,
                 std::string_view text) {
  if (term.field == OfferField::kGpuName) {
    return SquashName(text) == value.text && (!value.interface || *value.interface == row.gpus->interface);
  }
  if (IsTextField(term.field)) return EqualsIgnoringCase(text, value.text);
  return number == value.number;
}

// A row without a value for the field fails every term on it (like SQL's NULL).
bool Holds(const OfferTerm& term, const RowRef& row) {
  uint64_t number = 0;
  std::string_view text;
  if (IsTextField(term.field)) {
    const auto value = TextOf(term.field, row);
    if (!value) return false;
    text = *value;
  } else {
    const auto value = NumberOf(term.field, row);
    if (!value) return false;
    number = *value;
  }
  const uint64_t wanted = term.values.front().number;
  switch (term.op) {
    case QueryOp::kLt: return number < wanted;
    case QueryOp::kLe: return number <= wanted;
    case QueryOp::kGt: return number > wanted;
    case QueryOp::kGe: return number >= wanted;
    case QueryOp::kEq: return ValueEquals(term, term.values.front(), row, number, text);
    case QueryOp::kNe: return !ValueEquals(term, term.values.front(), row, number, text);
    case QueryOp::kIn:
    case QueryOp::kNotIn: {
      const bool any = std::any_of(term.values.begin(), term.values.end(), [&](const QueryValue& value) {
        return ValueEquals(term, value, row, number, text);
      });
      return term.op == QueryOp::kIn ? any : !any;
    }
  }
  return false;
}

bool AllHold(const OfferQuery& query, Level level, const RowRef& row) {
  for (const OfferTerm& term : query.terms) {
    if (Spec(term.field).level == level && !Holds(term, row)) return false;
  }
  return true;
}

// -1, 0, 1 for a against b on one field; a row without a value sorts after one with a value
// (whichever the direction), which the caller applies.
template <typename T>
int Compare(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

int CompareIgnoringCase(std::string_view a, std::string_view b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const char x = LowerAscii(a[i]);
    const char y = LowerAscii(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return Compare(a.size(), b.size());
}

}  // namespace

OfferSearch::OfferSearch(const OfferQuery& query, const std::vector<OfferOrderKey>& order, size_t limit)
    : query_(query), order_(order), limit_(std::min(limit, kMaxOfferSearchRows)) {
  heap_.reserve(limit_);
}

bool OfferSearch::Before(const RowRef& a, const RowRef& b) const {
  for (const OfferOrderKey& key : order_) {
    int order = 0;
    bool a_has = true;
    bool b_has = true;
    if (IsTextField(key.field)) {
      const auto x = TextOf(key.field, a);
      const auto y = TextOf(key.field, b);
      a_has = x.has_value();
      b_has = y.has_value();
      // Names sort as they match: without regard to letter case (then as written, for a total order).
      if (a_has && b_has) order = CompareIgnoringCase(*x, *y);
      if (a_has && b_has && order == 0) order = Compare(*x, *y);
    } else {
      const auto x = NumberOf(key.field, a);
      const auto y = NumberOf(key.field, b);
      a_has = x.has_value();
      b_has = y.has_value();
      if (a_has && b_has) order = Compare(*x, *y);
    }
    if (a_has != b_has) return a_has;
    if (order != 0) return key.descending ? order > 0 : order < 0;
  }
  // The row's identity: unique per row, so the order is total.
  const auto identity = [](const RowRef& row) {
    return std::tie(row.offer->provider, row.node->name, row.gpus->vendor, row.gpus->model, row.gpus->ram_bytes,
                    row.gpus->interface, row.table->denom);
  };
  return identity(a) < identity(b);
}

void OfferSearch::Add(const Offer& offer) {
  RowRef row;
  row.offer = &offer;
  if (!AllHold(query_, Level::kOffer, row)) return;
  const auto before = [this](const RowRef& a, const RowRef& b) { return Before(a, b); };
  for (const NodeCapacity& node : offer.nodes) {
    row.node = &node;
    if (!AllHold(query_, Level::kNode, row)) continue;
    for (const GpuDevices& gpus : node.gpus) {
      if (gpus.count == 0) continue;
      row.gpus = &gpus;
      if (!AllHold(query_, Level::kDevice, row)) continue;
      const DeviceType type{ToLower(gpus.vendor), ToLower(gpus.model), gpus.ram_bytes, gpus.interface,
                            gpus.mig_profile, gpus.shared};
      for (const PriceTable& table : offer.pricing) {
        const auto rate = LookupGpuRate(table, type);
        if (!rate) continue;  // a device type without a rate is not offered in that denom
        row.table = &table;
        row.rate = *rate;
        if (!AllHold(query_, Level::kPrice, row)) continue;
        ++matched_;
        if (limit_ == 0) continue;
        if (heap_.size() < limit_) {
          heap_.push_back(row);
          std::push_heap(heap_.begin(), heap_.end(), before);
        } else if (Before(row, heap_.front())) {
          std::pop_heap(heap_.begin(), heap_.end(), before);
          heap_.back() = row;
          std::push_heap(heap_.begin(), heap_.end(), before);
        }
      }
    }
  }
}

OfferSearchResult OfferSearch::Finish() {
  std::sort_heap(heap_.begin(), heap_.end(), [this](const RowRef& a, const RowRef& b) { return Before(a, b); });
  OfferSearchResult result;
  result.matched = matched_;
  result.rows.reserve(heap_.size());
  for (const RowRef& ref : heap_) {
    OfferRow row;
    row.provider = ref.offer->provider;
    row.name = ref.offer->name;
    row.node = ref.node->name;
    row.device = DeviceType{ToLower(ref.gpus->vendor), ToLower(ref.gpus->model), ref.gpus->ram_bytes,
                            ref.gpus->interface, ref.gpus->mig_profile, ref.gpus->shared};
    row.cuda = ref.gpus->cuda;
    row.num_gpus = ref.gpus->count;
    row.denom = ref.table->denom;
    row.dph_per_gpu = ref.rate;
    row.dph = SaturatingMul(ref.gpus->count, ref.rate);
    row.reliability_ppm = ref.offer->reputation_ppm;
    row.verified = !ref.offer->auditors.empty();
    row.attributes = ref.offer->attributes;
    row.cpu_millis = ref.node->cpu_millis;
    row.memory_bytes = ref.node->memory_bytes;
    row.storage_bytes = ref.node->storage_bytes;
    result.rows.push_back(std::move(row));
  }
  heap_.clear();
  matched_ = 0;
  return result;
}

OfferSearchResult SearchOffers(const std::vector<Offer>& offers, const OfferQuery& query,
                               const std::vector<OfferOrderKey>& order, size_t limit) {
  OfferSearch search(query, order, limit);
  for (const Offer& offer : offers) search.Add(offer);
  return search.Finish();
}

}  // namespace gpumart::market
