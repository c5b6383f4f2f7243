// Pricing policies of a provider (docs/PRICING.md; configs/pricing-examples.yaml shows each).
//
// The bid engine (bidding/bid_engine.h) prices a group in two steps, both without I/O:
//   1. EffectiveTables gives the price tables the matching engine fits and prices the group with
//      (market::FitProvider), so the device a bid names is exactly the device its price counts,
//      with the contract's key lookup (market::LookupGpuRate), never "the first model listed".
//   2. For `command` only: the chosen allocation goes to an external program as JSON
//      (PriceRequestJson); its answer (ParsePriceAnswer) replaces the table price.
// The program runner is bidding/price_command.h; the engine never waits on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "market/codec.h"
#include "market/match.h"
#include "market/status.h"
#include "market/types.h"
#include "market/yaml_tree.h"

namespace gpumart::bidding {

enum class PricingKind : uint8_t {
  kTable = 0,        // the tables' rates as written
  kUtilization = 1,  // GPU rates scaled up as the device type's free capacity falls
  kCommand = 2,      // an external program prices each concrete allocation
};
std::string_view ToString(PricingKind kind);
std::optional<PricingKind> ParsePricingKind(std::string_view text);  // "table" | "utilization" | "command"

// Bounds on a command's configuration and on what it prints.
constexpr uint32_t kMinUtilizationMaxPercent = 100;
constexpr uint32_t kMaxUtilizationMaxPercent = 1000;
constexpr int64_t kMaxPriceCommandTimeoutMs = 60'000;
constexpr uint32_t kMaxPriceCommandConcurrency = 64;
constexpr size_t kMaxPriceAnswerBytes = 64;  // one decimal integer and a newline, with room

// Interruptible (spot) capacity (docs/SPOT.md): interruptible orders are priced with these
// tables alone, whatever the policy's kind, and their bids state this notice.
constexpr uint64_t kDefaultSpotNoticeMs = 30'000;
struct SpotPricing {
  std::vector<market::PriceTable> tables;  // at least one
  uint64_t notice_ms = kDefaultSpotNoticeMs;  // at most market::limits::kMaxPreemptionNoticeMs
  bool operator==(const SpotPricing&) const = default;
};

struct PricingConfig {
  PricingKind kind = PricingKind::kTable;
  // table, utilization: required (one per denom the provider accepts). command: optional; when
  // given, the allocation is chosen at these rates (cheapest first among equally preferred
  // choices) and the program sees that price too; when empty, any denom is accepted and the
  // allocation is the most preferred one that fits.
  std::vector<market::PriceTable> tables;
  // utilization: the GPU rate multiplier, in percent, when no device of the type is free; it
  // rises linearly from 100% (all free) to this (none free).
  uint32_t utilization_max_percent = 200;
  // command: argv (no shell), how long one run may take, and how many may run at once (more
  // orders than that while they run are skipped with reason pricing-busy, never queued).
  std::vector<std::string> command;
  int64_t command_timeout_ms = 2'000;
  uint32_t command_max_concurrent = 4;
  // Without it the provider sells no interruptible capacity (interruptible orders get no bid).
  std::optional<SpotPricing> spot;
  bool operator==(const PricingConfig&) const = default;
};

// Ok, or kInvalidArgument naming the first problem: a table/utilization policy without tables,
// a table that market::ValidateOffer would refuse (a rate key the lookup could never find), two
// tables of one denom, a multiplier outside [100, 1000]%, a command policy without a program,
// a timeout outside (0, 60 s], a concurrency outside [1, 64], spot pricing without tables (or a
// table ValidateOffer refuses), a spot notice over market::limits::kMaxPreemptionNoticeMs.
Status ValidatePricing(const PricingConfig& config);

// A provider config's `pricing_policy:` mapping (configs/pricing-examples.yaml) with its
// `pricing:` tables: `kind` (table | utilization | command), and for utilization `max_percent`,
// for command `command` (a sequence: argv), `timeout_ms`, `max_concurrent`; for any kind
// `spot: {notice_ms, pricing: [tables as in pricing:]}`. An undefined or null
// node is the table policy. Errors name the key and its line: an unknown key, a key of another
// kind, a value that is not what it must be; then ValidatePricing.
Result<PricingConfig> ParsePricingPolicy(const market::YamlNode& policy, std::vector<market::PriceTable> tables);

// The tables market::FitProvider prices `order` with, given the provider's whole inventory and
// its free capacity now.
// - table: config.tables.
// - utilization: config.tables, where every device type of the inventory that a table prices
//   gets its exact key (model.<ram>.interface) at rate x (100 + (max - 100) x used / total) / 100,
//   rounded up; used and total count that device type's GPUs over all nodes.
// - command: config.tables, or, without any, one table in the order's denom pricing everything
//   at zero (the program sets the price). With several denoms that is the order's first
//   (Order::Denom(), the tenant's preferred), so such a provider always bids in it.
std::vector<market::PriceTable> EffectiveTables(const PricingConfig& config,
                                                const std::vector<market::NodeCapacity>& inventory,
                                                const std::vector<market::NodeCapacity>& free,
                                                const std::string& order_denom);

// What a `command` program reads on stdin: one JSON object (docs/PRICING.md lists every field):
// the order (id, tenant, group, denom, cap_per_hour, services with their resources) and the
// concrete allocation (per service: option, device, placements), and table_price_per_hour.
// `denom` is the one the bid will be in (the allocation's: with several denoms, the first the
// provider can take the group in), `cap_per_hour` the order's cap in it.
std::string PriceRequestJson(const market::Signed<market::Order>& order, const market::Candidate& allocation);

// What a `command` program must print: one decimal integer, the group's price in micro-units of
// the request's denom per hour, optionally surrounded by whitespace; at most kMaxPriceAnswerBytes.
// Anything else is kInvalidArgument naming what was wrong.
Result<uint64_t> ParsePriceAnswer(std::string_view output);

}  // namespace gpumart::bidding
