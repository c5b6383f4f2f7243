// The matching engine: which providers can take a whole placement group (an Order), what each
// would bid, and how the bids rank. The contract is "Matching semantics" in DESIGN.md; the user
// documentation is docs/MATCHING.md.
//
// Two entry points share one evaluator, so they cannot disagree:
// - FitProvider(order, offer): a pure function for one provider (the bid engine, diagnostics).
// - OfferBook: an index of many offers, kept current with Upsert/Remove/ApplyCapacityChange,
//   answering TopK(order, policy, k) without looking at most providers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

// Work bounds. An offer comes from a peer, so what evaluating it can cost is bounded by these
// named limits (docs/MATCHING.md, "Work bounds"); real providers are far below them.
//
// Per offer, checked when it arrives (OfferBook::Upsert refuses it with kLimitExceeded,
// FitProvider excludes it with kOfferTooLarge). Nodes, GPU entries per node, price tables and
// rate keys are bounded by the wire limits (market/codec.h), which an offer must pass too.
constexpr size_t kMaxOfferDeviceTypes = 64;     // distinct device types over all nodes
constexpr size_t kMaxOfferGpuEntries = 8'192;   // GPU entries over all nodes
// Per evaluation of one offer for one group: the device-type combinations tried (in a fixed
// order; the rest are not tried), the replicas of the group, and every step of the evaluation
// (choices, combinations, placement prechecks and the backtracking search) against one budget.
// An evaluation that runs out is excluded (kWorkLimit): a missed bid, never a wrong one.
constexpr size_t kMaxDeviceCombinations = 4'096;
constexpr uint64_t kMaxReplicasPerGroup = 65'536;
constexpr uint64_t kMaxEvaluationSteps = 100'000;
// Per OfferBook: what its tables may hold at once. Entries are freed when the last offer using
// them goes, so these bound the live market, not its history. A query plans against every live
// device type (options x types), so this also bounds a query's fixed cost.
constexpr size_t kMaxBookDeviceTypes = 4'096;
constexpr size_t kMaxBookDenoms = 256;

// How bids of one group are ordered (DESIGN.md, "Ranking").
enum class Policy : uint8_t {
  kPreference = 0,  // option ranks, price, reputation (higher first), provider id
  kCheapest = 1,    // price, option ranks, reputation (higher first), provider id
};
std::string_view ToString(Policy policy);
std::optional<Policy> ParsePolicy(std::string_view text);  // "preference" | "cheapest"

// Why a provider cannot take a group. GPU reasons are the nearest miss over all of the
// provider's devices and the service's options: a device of the right model with too little RAM
// reports kGpuRam, not kGpuModel.
enum class ExclusionReason : uint8_t {
  kNone = 0,
  kAttributes,    // a placement attribute (e.g. region) the provider lacks; detail: the key
  kSignedBy,      // auditor requirements not met
  kDenom,         // no price table in the order's denom; detail: the denom
  kGpuModel,      // no device of a wanted vendor/model; detail: the service
  kGpuRam,        // right model, too little RAM
  kGpuInterface,  // right model and RAM, wrong interface
  kGpuCuda,       // otherwise matching, CUDA too old (or unknown)
  kGpuRate,       // matching devices, but no gpu rate prices them
  kCapacity,      // not enough free capacity for every affordable choice
  kPriceCap,      // fits, but every choice costs more than the group's cap
  kOfferTooLarge, // the offer is over a per-offer work bound; detail: which
  kWorkLimit,     // the evaluation ran out of its step budget (kMaxEvaluationSteps)
};
std::string_view ToString(ExclusionReason reason);

struct Exclusion {
  ExclusionReason reason = ExclusionReason::kNone;
  std::string detail;
};
// For people: why an exclusion kept a provider from `order`, e.g. "placement attribute
// region=us-west not offered" (the dry run's hint, `gpumart match` and `gpumart submit`).
std::string DescribeExclusion(const Exclusion& exclusion, const Order& order);

// The one definition of "a device satisfies a GPU option" (DESIGN.md, "Matching semantics"):
// same vendor, same model (case-insensitive) or "*", of the option's kind (a MIG option: a MIG
// instance of its profile when it names one; any other: a whole GPU, or a time-slice replica when
// it accepts sharing), RAM (a MIG instance's own) >= ram_min and >= mig_min_ram, the interface
// when given. CUDA is checked separately, against the service's cuda_min.
bool DeviceSatisfies(const GpuOption& option, const DeviceType& device);

// The one GPU rate lookup (DESIGN.md, "Matching semantics"): the rate of the first key present of
// `model.<ram>.interface`, `model.<ram>`, `model`, `*`; nullopt when none is. A time-slice
// replica looks up the same keys but `*` with `.shared` appended; a MIG instance only
// `model.mig-<profile>` (docs/FRACTIONAL.md). Pricing policies
// (bidding/pricing.h) use it so a provider prices exactly the device a bid names.
std::optional<uint64_t> LookupGpuRate(const PriceTable& table, const DeviceType& type);

// One provider's bid for a group.
struct Candidate {
  std::string provider;
  std::string denom;
  uint64_t price_per_hour = 0;
  uint32_t reputation_ppm = 0;
  std::vector<uint32_t> ranks;               // option index per GPU service, in service order
  std::vector<ServiceAssignment> services;   // every service of the group, in order
  // Index of `denom` in the order's Denoms(): prices in different denoms are not comparable, so
  // the tenant's order of preference ranks them first (0 = most preferred; 0 with one denom).
  uint32_t denom_rank = 0;
  bool operator==(const Candidate&) const = default;
};

struct FitOutcome {
  std::optional<Candidate> candidate;  // set when the provider can take the group
  Exclusion exclusion;                 // kNone when candidate is set
};

// Ok when the offer is within the per-offer work bounds above (and the wire limits on nodes,
// GPU entries per node, price tables and rate keys); else kLimitExceeded naming the bound.
Status CheckOfferWork(const Offer& offer);

// The provider's bid for the group, or why there is none. Deterministic: among choices of equal
// ranks and price, the lexicographically smallest device types (in service order) win.
FitOutcome FitProvider(const Order& order, const Offer& offer);

// True when `a` ranks strictly before `b` under `policy`.
bool RanksBefore(const Candidate& a, const Candidate& b, Policy policy);
void SortCandidates(std::vector<Candidate>& candidates, Policy policy);

// The obvious baseline: FitProvider on every offer, then the best k. Used by the benchmark and
// the tests; OfferBook::TopK returns the same list.
std::vector<Candidate> LinearScanTopK(const Order& order, const std::vector<Offer>& offers,
                                      Policy policy, size_t k);

// A reservation or release of part of one provider node's free capacity.
struct CapacityChange {
  enum class Kind : uint8_t { kReserve, kRelease };
  Kind kind = Kind::kReserve;
  std::string provider;
  std::string node;
  std::optional<DeviceType> device;  // which GPUs; nullopt when gpus == 0
  uint32_t gpus = 0;
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;
};

// An index of offers. Providers are indexed per (denom, device type, tier of CPU and memory rate)
// in increasing GPU rate, so a query walks only the cheapest providers of the device types its
// options accept, most preferred option first, and stops once k bids beat every bound left. Every provider it stops at is
// checked by the exact evaluator. Not thread-safe: one owner (an actor) uses it; TopK reuses
// scratch space inside the book, which is why it is not const.
class OfferBook {
 public:
  OfferBook();
  ~OfferBook();
  OfferBook(OfferBook&&) noexcept;
  OfferBook& operator=(OfferBook&&) noexcept;

  // Adds the offer or replaces the provider's previous one. O(index list length).
  // kLimitExceeded, without changing the book, when the offer is over a per-offer work bound or
  // would take the book past kMaxBookDeviceTypes / kMaxBookDenoms (counting what the offer it
  // replaces still holds).
  Status Upsert(const Offer& offer);
  // Bulk load: one sort per index list. Fails without changing the book on a duplicate id or an
  // offer over a per-offer bound; on a book limit, the offers before the one refused stay.
  Status UpsertAll(const std::vector<Offer>& offers);
  // False when the provider is unknown.
  bool Remove(std::string_view provider);
  // Reserve fails (kFailedPrecondition) without changing anything when the capacity is not free;
  // unknown provider/node/device is kNotFound. GPUs come from the first matching device entry.
  Status ApplyCapacityChange(const CapacityChange& change);

  // The best k bids for the order under the policy, best first; exactly what LinearScanTopK
  // returns for the same offers.
  std::vector<Candidate> TopK(const Order& order, Policy policy, size_t k);
  // The same into `out`, reusing the storage of the candidates already there: a caller that
  // answers queries in a loop (the offers service) allocates nothing in steady state.
  void TopKInto(const Order& order, Policy policy, size_t k, std::vector<Candidate>& out);

  size_t size() const;

  // What the book holds, for tests and metrics: none of it outlives the offers that use it.
  struct Stats {
    size_t offers = 0;
    size_t device_types = 0;  // live interned device types
    size_t names = 0;         // live interned vendor and model names
    size_t denoms = 0;        // live interned denoms
    size_t index_lists = 0;   // (denom, device type, tier) lists
    size_t index_entries = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpumart::market
