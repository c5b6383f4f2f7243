#include "bidding/pricing.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "market/checked_math.h"
#include "market/offers.h"

namespace gpumart::bidding {

std::string_view ToString(PricingKind kind) {
  switch (kind) {
    case PricingKind::kTable: return "table";
    case PricingKind::kUtilization: return "utilization";
    case PricingKind::kCommand: return "command";
  }
  return "unknown";
}

std::optional<PricingKind> ParsePricingKind(std::string_view text) {
  if (text == "table") return PricingKind::kTable;
  if (text == "utilization") return PricingKind::kUtilization;
  if (text == "command") return PricingKind::kCommand;
  return std::nullopt;
}

Status ValidatePricing(const PricingConfig& config) {
  if (config.kind != PricingKind::kCommand && config.tables.empty()) {
    return Status::InvalidArgument(std::string("pricing policy ") + std::string(ToString(config.kind)) +
                                   " needs at least one price table");
  }
  market::Offer prices;  // the wire's rules for price tables, so a config cannot price what no lookup finds
  prices.pricing = config.tables;
  if (Status valid = market::ValidateOffer(prices); !valid.ok()) return valid.WithContext("pricing");
  if (config.kind == PricingKind::kUtilization &&
      (config.utilization_max_percent < kMinUtilizationMaxPercent ||
       config.utilization_max_percent > kMaxUtilizationMaxPercent)) {
    return Status::InvalidArgument("pricing utilization max_percent " + std::to_string(config.utilization_max_percent) +
                                   " is outside [100, 1000]");
  }
  if (config.kind == PricingKind::kCommand) {
    if (config.command.empty() || config.command.front().empty()) {
      return Status::InvalidArgument("pricing policy command needs a program");
    }
    if (config.command_timeout_ms <= 0 || config.command_timeout_ms > kMaxPriceCommandTimeoutMs) {
      return Status::InvalidArgument("pricing command timeout " + std::to_string(config.command_timeout_ms) +
                                     " ms is outside (0, 60000]");
    }
    if (config.command_max_concurrent < 1 || config.command_max_concurrent > kMaxPriceCommandConcurrency) {
      return Status::InvalidArgument("pricing command max_concurrent " +
                                     std::to_string(config.command_max_concurrent) + " is outside [1, 64]");
    }
  }
  if (config.spot) {
    if (config.spot->tables.empty()) return Status::InvalidArgument("pricing_policy spot needs at least one price table");
    market::Offer spot_prices;
    spot_prices.pricing = config.spot->tables;
    if (Status valid = market::ValidateOffer(spot_prices); !valid.ok()) return valid.WithContext("spot pricing");
    if (config.spot->notice_ms > market::limits::kMaxPreemptionNoticeMs) {
      return Status::InvalidArgument("pricing_policy spot notice_ms " + std::to_string(config.spot->notice_ms) +
                                     " exceeds " + std::to_string(market::limits::kMaxPreemptionNoticeMs));
    }
  }
  return Status::Ok();
}

namespace {

std::string At(const market::YamlNode& node) { return " at line " + std::to_string(node.Line()); }

Result<uint64_t> ParseCount(const market::YamlNode& node, std::string_view key) {
  const std::string_view text = node.Scalar();
  uint64_t value = 0;
  bool ok = node.IsScalar() && !text.empty() && text.size() <= 9;  // bounds are far below 10^9
  for (char c : text) ok = ok && c >= '0' && c <= '9';
  if (!ok) return Status::InvalidArgument("pricing_policy " + std::string(key) + " must be a whole number" + At(node));
  for (char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

}  // namespace

Result<PricingConfig> ParsePricingPolicy(const market::YamlNode& policy, std::vector<market::PriceTable> tables) {
  PricingConfig config;
  config.tables = std::move(tables);
  if (!policy.IsDefined() || policy.IsNull()) {
    GPUMART_RETURN_IF_ERROR(ValidatePricing(config));
    return config;
  }
  if (!policy.IsMap()) return Status::InvalidArgument("pricing_policy must be a mapping" + At(policy));
  const market::YamlNode kind = policy.Find("kind");
  if (!kind.IsScalar()) return Status::InvalidArgument("pricing_policy needs kind: table, utilization or command" + At(policy));
  const std::optional<PricingKind> parsed = ParsePricingKind(kind.Scalar());
  if (!parsed) {
    return Status::InvalidArgument("pricing_policy kind '" + std::string(kind.Scalar()) +
                                   "' is not table, utilization or command" + At(kind));
  }
  config.kind = *parsed;
  std::vector<std::string_view> seen;
  for (const market::YamlMapEntry& entry : policy.Entries()) {
    const std::string_view key = entry.key.Scalar();
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      return Status::InvalidArgument("pricing_policy " + std::string(key) + " is given twice" + At(entry.key));
    }
    seen.push_back(key);
    auto only_for = [&](PricingKind wanted) -> Status {
      if (config.kind == wanted) return Status::Ok();
      return Status::InvalidArgument("pricing_policy " + std::string(key) + " applies only to kind " +
                                     std::string(ToString(wanted)) + At(entry.key));
    };
    if (key == "kind") continue;
    if (key == "max_percent") {
      GPUMART_RETURN_IF_ERROR(only_for(PricingKind::kUtilization));
      Result<uint64_t> value = ParseCount(entry.value, key);
      if (!value.ok()) return value.status();
      config.utilization_max_percent = static_cast<uint32_t>(*value);
    } else if (key == "timeout_ms" || key == "max_concurrent") {
      GPUMART_RETURN_IF_ERROR(only_for(PricingKind::kCommand));
      Result<uint64_t> value = ParseCount(entry.value, key);
      if (!value.ok()) return value.status();
      if (key == "timeout_ms") {
        config.command_timeout_ms = static_cast<int64_t>(*value);
      } else {
        config.command_max_concurrent = static_cast<uint32_t>(*value);
      }
    } else if (key == "command") {
      GPUMART_RETURN_IF_ERROR(only_for(PricingKind::kCommand));
      if (!entry.value.IsSequence() || entry.value.size() == 0) {
        return Status::InvalidArgument("pricing_policy command must be a list: the program and its arguments" +
                                       At(entry.value));
      }
      for (const market::YamlNode& arg : entry.value.Items()) {
        if (!arg.IsScalar()) return Status::InvalidArgument("pricing_policy command items must be strings" + At(arg));
        config.command.emplace_back(arg.Scalar());
      }
    } else if (key == "spot") {
      if (!entry.value.IsMap()) return Status::InvalidArgument("pricing_policy spot must be a mapping" + At(entry.value));
      SpotPricing spot;
      for (const market::YamlMapEntry& field : entry.value.Entries()) {
        const std::string_view name = field.key.Scalar();
        if (name == "notice_ms") {
          Result<uint64_t> value = ParseCount(field.value, name);
          if (!value.ok()) return value.status();
          spot.notice_ms = *value;
        } else if (name == "pricing") {
          GPUMART_RETURN_IF_ERROR(market::ParseOfferPricing(field.value, "pricing_policy spot pricing", spot.tables));
        } else {
          return Status::InvalidArgument("pricing_policy spot has unknown key '" + std::string(name) + "'" + At(field.key));
        }
      }
      config.spot = std::move(spot);
    } else {
      return Status::InvalidArgument("pricing_policy has unknown key '" + std::string(key) + "'" + At(entry.key));
    }
  }
  GPUMART_RETURN_IF_ERROR(ValidatePricing(config));
  return config;
}

namespace {

market::DeviceType TypeOf(const market::GpuDevices& devices) {
  return {market::ToLower(devices.vendor), market::ToLower(devices.model), devices.ram_bytes, devices.interface,
          devices.mig_profile, devices.shared};
}

struct TypeCount {
  uint64_t total = 0;
  uint64_t free = 0;
};

// The most specific key market::LookupGpuRate tries for `type` (docs/PRICING.md).
std::string ExactKey(const market::DeviceType& type) {
  if (!type.mig_profile.empty()) return type.model + ".mig-" + type.mig_profile;
  return type.model + "." + market::FormatGi(type.ram_bytes) + "." + std::string(market::ToString(type.interface)) +
         (type.shared ? ".shared" : "");
}

// rate x (100 + (max - 100) x used / total) / 100, rounded up, saturating.
uint64_t ScaledRate(uint64_t rate, uint32_t max_percent, const TypeCount& count) {
  if (count.total == 0) return rate;
  const uint64_t used = count.total - std::min(count.free, count.total);
  using market::SaturatingAdd;
  using market::SaturatingMul;
  const uint64_t denominator = SaturatingMul(100, count.total);
  const uint64_t numerator =
      SaturatingMul(rate, SaturatingAdd(denominator, SaturatingMul(max_percent - 100, used)));
  return numerator / denominator + (numerator % denominator != 0 ? 1 : 0);
}

}  // namespace

std::vector<market::PriceTable> EffectiveTables(const PricingConfig& config,
                                                const std::vector<market::NodeCapacity>& inventory,
                                                const std::vector<market::NodeCapacity>& free,
                                                const std::string& order_denom) {
  switch (config.kind) {
    case PricingKind::kTable:
      return config.tables;
    case PricingKind::kCommand: {
      if (!config.tables.empty()) return config.tables;
      market::PriceTable zero;
      zero.denom = order_denom;
      zero.gpu["*"] = 0;
      return {zero};
    }
    case PricingKind::kUtilization:
      break;
  }
  std::map<market::DeviceType, TypeCount> counts;
  for (const auto& node : inventory) {
    for (const auto& devices : node.gpus) counts[TypeOf(devices)].total += devices.count;
  }
  for (const auto& node : free) {
    for (const auto& devices : node.gpus) counts[TypeOf(devices)].free += devices.count;
  }
  std::vector<market::PriceTable> tables = config.tables;
  for (auto& table : tables) {
    const market::PriceTable base = table;
    for (const auto& [type, count] : counts) {
      const std::optional<uint64_t> rate = market::LookupGpuRate(base, type);
      if (!rate) continue;  // the table does not price it; neither does the scaled one
      table.gpu[ExactKey(type)] = ScaledRate(*rate, config.utilization_max_percent, count);
    }
  }
  return tables;
}

namespace {

void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

void AppendKey(std::string& out, std::string_view key) {
  AppendJsonString(out, key);
  out += ':';
}

}  // namespace

std::string PriceRequestJson(const market::Signed<market::Order>& order, const market::Candidate& allocation) {
  std::string out = "{";
  AppendKey(out, "order_id");
  AppendJsonString(out, market::ToHex(order.id));
  out += ',';
  AppendKey(out, "tenant");
  AppendJsonString(out, market::ToHex(order.envelope.signer));
  out += ',';
  AppendKey(out, "group");
  AppendJsonString(out, order.body.group);
  out += ',';
  AppendKey(out, "denom");
  AppendJsonString(out, allocation.denom);  // the denom the bid will be in (one the order caps in)
  out += ',';
  AppendKey(out, "cap_per_hour");
  out += std::to_string(order.body.CapPerHourIn(allocation.denom).value_or(0));
  out += ',';
  AppendKey(out, "table_price_per_hour");
  out += std::to_string(allocation.price_per_hour);
  out += ',';
  AppendKey(out, "services");
  out += '[';
  for (size_t i = 0; i < allocation.services.size(); ++i) {
    const market::ServiceAssignment& assignment = allocation.services[i];
    const market::ServiceRequest* request = nullptr;
    for (const auto& service : order.body.services) {
      if (service.name == assignment.service) request = &service;
    }
    if (i > 0) out += ',';
    out += '{';
    AppendKey(out, "name");
    AppendJsonString(out, assignment.service);
    if (request != nullptr) {
      out += ',';
      AppendKey(out, "count");
      out += std::to_string(request->count);
      out += ',';
      AppendKey(out, "cpu_millis");
      out += std::to_string(request->resources.cpu_millis);
      out += ',';
      AppendKey(out, "memory_bytes");
      out += std::to_string(request->resources.memory_bytes);
      out += ',';
      AppendKey(out, "storage_bytes");
      out += std::to_string(request->resources.StorageBytes());
      out += ',';
      AppendKey(out, "gpu_units");
      out += std::to_string(request->resources.gpu.units);
    }
    out += ',';
    AppendKey(out, "option");
    out += assignment.option ? std::to_string(*assignment.option) : "null";
    out += ',';
    AppendKey(out, "device");
    if (assignment.device) {
      out += '{';
      AppendKey(out, "vendor");
      AppendJsonString(out, assignment.device->vendor);
      out += ',';
      AppendKey(out, "model");
      AppendJsonString(out, assignment.device->model);
      out += ',';
      AppendKey(out, "ram_bytes");
      out += std::to_string(assignment.device->ram_bytes);
      out += ',';
      AppendKey(out, "interface");
      AppendJsonString(out, market::ToString(assignment.device->interface));
      // Fractional devices only (docs/FRACTIONAL.md): a whole GPU's object is as before.
      if (!assignment.device->mig_profile.empty()) {
        out += ',';
        AppendKey(out, "mig_profile");
        AppendJsonString(out, assignment.device->mig_profile);
      }
      if (assignment.device->shared) {
        out += ',';
        AppendKey(out, "shared");
        out += "true";
      }
      out += '}';
    } else {
      out += "null";
    }
    out += ',';
    AppendKey(out, "placements");
    out += '[';
    for (size_t p = 0; p < assignment.placements.size(); ++p) {
      if (p > 0) out += ',';
      out += '{';
      AppendKey(out, "node");
      AppendJsonString(out, assignment.placements[p].node);
      out += ',';
      AppendKey(out, "replicas");
      out += std::to_string(assignment.placements[p].replicas);
      out += '}';
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

Result<uint64_t> ParsePriceAnswer(std::string_view output) {
  if (output.size() > kMaxPriceAnswerBytes) {
    return Status::InvalidArgument("price program printed more than " + std::to_string(kMaxPriceAnswerBytes) + " bytes");
  }
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!output.empty() && space(output.front())) output.remove_prefix(1);
  while (!output.empty() && space(output.back())) output.remove_suffix(1);
  if (output.empty()) return Status::InvalidArgument("price program printed no price");
  uint64_t price = 0;
  for (char c : output) {
    if (c < '0' || c > '9') {
      return Status::InvalidArgument("price program printed '" + std::string(output) +
                                     "', not a whole number of micro-units per hour");
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (price > (UINT64_MAX - digit) / 10) return Status::InvalidArgument("price program printed a price over 2^64");
    price = price * 10 + digit;
  }
  return price;
}

}  // namespace gpumart::bidding
