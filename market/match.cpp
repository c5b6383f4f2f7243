#include "market/match.h"

#include "market/checked_math.h"
#include "market/codec.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cassert>
#include <compare>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace gpumart::market {
namespace {

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kMillisPerCore = 1000;
constexpr uint32_t kNoType = std::numeric_limits<uint32_t>::max();

// The steps one evaluation may still take (kMaxEvaluationSteps). Every loop whose length an
// offer or an order controls pays for its length before it runs, so an evaluation stops within
// a small multiple of the budget whatever the input.
struct WorkBudget {
  uint64_t left = kMaxEvaluationSteps;
  bool exhausted = false;
  bool Spend(uint64_t steps) {
    if (steps > left) {
      left = 0;
      exhausted = true;
      return false;
    }
    left -= steps;
    return true;
  }
};

__extension__ typedef unsigned __int128 Wide;
// ceil(amount * rate / divisor), saturated; the product is exact in 128 bits.
uint64_t CeilScaled(uint64_t amount, uint64_t rate, uint64_t divisor) {
  uint64_t narrow = 0;  // 64-bit division when it fits: the 128-bit one is a slow library call
  if (!__builtin_mul_overflow(amount, rate, &narrow)) return narrow / divisor + (narrow % divisor != 0);
  const Wide product = static_cast<Wide>(amount) * rate;
  const Wide quotient = (product + divisor - 1) / divisor;
  return quotient > kSaturated ? kSaturated : static_cast<uint64_t>(quotient);
}

// vector::assign(n, value) without the out-of-line call (std::vector's _M_fill_assign was ~6%
// of a query): the evaluator resets these small scratch vectors several times per provider,
// and their capacity is already there.
template <typename T, typename V>
void Fill(std::vector<T>& vector, size_t size, V value) {
  vector.resize(size);
  std::fill(vector.begin(), vector.end(), static_cast<T>(value));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// How far a device gets through an option's checks; kPasses means it satisfies the option.
enum class OptionStage : uint8_t { kModel = 0, kRam = 1, kInterface = 2, kPasses = 3 };
// Whether the device is of the kind the option takes (docs/FRACTIONAL.md): a MIG option takes
// MIG instances (of its profile when it names one), any other option whole GPUs, and time-slice
// replicas only when it accepts sharing. A kind mismatch counts as a model mismatch.
bool KindMatches(const GpuOption& option, const DeviceType& device) {
  if (option.IsMig()) return !device.mig_profile.empty() && (!option.mig || *option.mig == device.mig_profile);
  return device.mig_profile.empty() && (!device.shared || option.shared_ok);
}
// The option's RAM floor: a MIG instance is measured by its own memory (ram_bytes of a MIG
// device type), against both minimums.
bool RamMatches(const GpuOption& option, const DeviceType& device) {
  return (!option.ram_min_bytes || device.ram_bytes >= *option.ram_min_bytes) &&
         device.ram_bytes >= option.mig_min_ram_bytes;
}

OptionStage CheckOption(const GpuOption& option, const DeviceType& device) {
  if (!EqualsIgnoreCase(option.vendor, device.vendor)) return OptionStage::kModel;
  if (option.model != "*" && !EqualsIgnoreCase(option.model, device.model)) return OptionStage::kModel;
  if (!KindMatches(option, device)) return OptionStage::kModel;
  if (!RamMatches(option, device)) return OptionStage::kRam;
  if (option.interface && *option.interface != device.interface) return OptionStage::kInterface;
  return OptionStage::kPasses;
}

// Strings interned to small ids, counted by their users: the last Release frees the id for reuse,
// so a book that sees ever new names (denoms, vendor and model names) stays as large as what
// is live in it.
class InternedStrings {
 public:
  uint32_t Acquire(const std::string& text) {
    auto [it, inserted] = ids_.try_emplace(text, 0);
    if (inserted) {
      uint32_t id = 0;
      if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
      } else {
        id = static_cast<uint32_t>(refs_.size());
        refs_.push_back(0);
        text_.emplace_back();
      }
      text_[id] = text;
      it->second = id;
    }
    ++refs_[it->second];
    return it->second;
  }
  void Release(uint32_t id) {
    assert(refs_[id] > 0);
    if (--refs_[id] > 0) return;
    ids_.erase(text_[id]);
    text_[id].clear();
    free_ids_.push_back(id);
  }
  std::optional<uint32_t> Find(const std::string& text) const {
    auto it = ids_.find(text);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  size_t Live() const { return ids_.size(); }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<uint32_t> refs_;
  std::vector<std::string> text_;
  std::vector<uint32_t> free_ids_;
};

// Interned denoms.
using DenomTable = InternedStrings;

// Interned device types (vendor, model, RAM, interface): the index and the evaluator compare
// small integers instead of strings. Each type counts its users (providers holding it); the last
// release frees its id for the next new type, so the table holds the live market, not its
// history, and loops over types visit live ones only.
class TypeTable {
 public:
  // Vendor and model names get small ids too, so matching options against every type per query
  // compares integers.
  static constexpr uint32_t kUnknownName = std::numeric_limits<uint32_t>::max();
  struct Names {
    uint32_t vendor = 0;
    uint32_t model = 0;
  };

  // The type's id, counting one more user.
  uint32_t Acquire(const DeviceType& type) {
    auto [it, inserted] = ids_.try_emplace(type, 0);
    if (inserted) {
      uint32_t id = 0;
      if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
      } else {
        id = static_cast<uint32_t>(types_.size());
        types_.emplace_back();
        names_.emplace_back();
        refs_.push_back(0);
        live_at_.push_back(0);
      }
      types_[id] = type;
      names_[id] = {name_table_.Acquire(type.vendor), name_table_.Acquire(type.model)};
      live_at_[id] = static_cast<uint32_t>(live_.size());
      live_.push_back(id);
      it->second = id;
    }
    ++refs_[it->second];
    return it->second;
  }
  // One user fewer; the last one frees the type and its names.
  void Release(uint32_t id) {
    assert(refs_[id] > 0);
    if (--refs_[id] > 0) return;
    ids_.erase(types_[id]);
    name_table_.Release(names_[id].vendor);
    name_table_.Release(names_[id].model);
    const uint32_t moved = live_.back();
    live_[live_at_[id]] = moved;
    live_at_[moved] = live_at_[id];
    live_.pop_back();
    types_[id] = DeviceType{};
    free_ids_.push_back(id);
  }

  const Names& NamesOf(uint32_t id) const { return names_[id]; }
  uint32_t NameId(const std::string& name) const { return name_table_.Find(name).value_or(kUnknownName); }
  std::optional<uint32_t> Find(const DeviceType& type) const {
    auto it = ids_.find(type);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  const DeviceType& operator[](uint32_t id) const { return types_[id]; }
  // Ids are below this (live or free): the size of arrays indexed by type.
  uint32_t IdBound() const { return static_cast<uint32_t>(types_.size()); }
  const std::vector<uint32_t>& Live() const { return live_; }
  size_t LiveNames() const { return name_table_.Live(); }

 private:
  std::vector<DeviceType> types_;  // by id
  std::vector<Names> names_;
  std::vector<uint32_t> refs_;
  std::vector<uint32_t> live_at_;  // position in live_
  std::vector<uint32_t> live_;
  std::vector<uint32_t> free_ids_;
  std::map<DeviceType, uint32_t> ids_;
  InternedStrings name_table_;  // vendor and model names
};


// One offer in the evaluator's form. A pool is the free devices of one type and CUDA version on
// one node (equal entries of a node are merged); a replica draws all its GPUs from one pool.
struct Pool {
  uint32_t node = 0;
  uint32_t type = 0;
  uint32_t free = 0;
  std::optional<CudaVersion> cuda;
};
struct NodeState {
  std::string name;
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;
};
// One of the provider's device types with a GPU rate, and the highest CUDA version any of its
// entries has (a service's CUDA minimum is met by some entry exactly when it is met by this).
struct RatedType {
  uint32_t type = 0;
  uint64_t rate = 0;
  std::optional<CudaVersion> best_cuda;
};
struct Rates {
  uint32_t denom = 0;
  uint64_t cpu = 0;
  uint64_t memory = 0;
  uint64_t storage = 0;
  std::vector<RatedType> gpu;  // the provider's own types that have a rate
  std::optional<uint64_t> GpuRate(uint32_t type) const {
    for (const RatedType& rated : gpu) {
      if (rated.type == type) return rated.rate;
    }
    return std::nullopt;
  }
};
struct ProviderState {
  // What every evaluation reads comes first, within the first cache line, so one prefetch of
  // the state brings in the pointers to the rest (OfferBook::Impl::Prefetch).
  std::vector<Rates> rates;     // one per denom
  std::vector<Pool> pools;
  uint32_t reputation_ppm = 0;
  bool live = false;
  std::vector<NodeState> nodes;
  std::vector<uint32_t> types;  // distinct pool types: the ids this provider holds in the table
  std::vector<std::optional<CudaVersion>> type_cuda;  // per entry of `types`: best CUDA version
  std::string id;
  std::map<std::string, std::string> attributes;
  std::vector<std::string> auditors;
};

}  // namespace

std::optional<uint64_t> LookupGpuRate(const PriceTable& table, const DeviceType& type) {
  auto find = [&](const std::string& key) -> std::optional<uint64_t> {
    auto it = table.gpu.find(key);
    if (it == table.gpu.end()) return std::nullopt;
    return it->second;
  };
  // A MIG instance has its own rate and never a whole GPU's: it is a fraction of one.
  if (!type.mig_profile.empty()) return find(type.model + ".mig-" + type.mig_profile);
  const std::string ram = FormatGi(type.ram_bytes);
  const std::string with_ram = type.model + "." + ram;
  // A time-slice replica: the whole-GPU keys but "*", with ".shared", for the same reason.
  const std::string suffix = type.shared ? ".shared" : "";
  for (const std::string& key : {with_ram + "." + std::string(ToString(type.interface)), with_ram, type.model}) {
    if (auto rate = find(key + suffix)) return rate;
  }
  if (type.shared) return std::nullopt;
  return find("*");
}

namespace {

DeviceType TypeOf(const GpuDevices& devices) {
  return {ToLower(devices.vendor), ToLower(devices.model), devices.ram_bytes, devices.interface, devices.mig_profile,
          devices.shared};
}

// The offer's distinct device types (sorted), or kLimitExceeded when the offer is over a bound
// that evaluating it relies on. Stops counting at the first bound passed.
Status OfferTypes(const Offer& offer, std::vector<DeviceType>& types) {
  types.clear();
  auto over = [](const std::string& what, size_t have, size_t limit) {
    return Status::LimitExceeded("offer has " + std::to_string(have) + " " + what + ", more than the limit of " +
                                 std::to_string(limit));
  };
  if (offer.nodes.size() > limits::kMaxNodes) return over("nodes", offer.nodes.size(), limits::kMaxNodes);
  if (offer.pricing.size() > limits::kMaxPriceTables) {
    return over("price tables", offer.pricing.size(), limits::kMaxPriceTables);
  }
  for (const PriceTable& table : offer.pricing) {
    if (table.gpu.size() > limits::kMaxPriceKeys) return over("GPU rates in one table", table.gpu.size(), limits::kMaxPriceKeys);
  }
  if (offer.attributes.size() > limits::kMaxAttributes) {
    return over("attributes", offer.attributes.size(), limits::kMaxAttributes);
  }
  if (offer.auditors.size() > limits::kMaxAuditors) return over("auditors", offer.auditors.size(), limits::kMaxAuditors);
  size_t entries = 0;
  for (const NodeCapacity& node : offer.nodes) {
    if (node.gpus.size() > limits::kMaxGpuTypesPerNode) {
      return over("GPU entries on node " + node.name, node.gpus.size(), limits::kMaxGpuTypesPerNode);
    }
    entries += node.gpus.size();
    if (entries > kMaxOfferGpuEntries) return over("GPU entries", entries, kMaxOfferGpuEntries);
  }
  for (const NodeCapacity& node : offer.nodes) {
    for (const GpuDevices& devices : node.gpus) {
      DeviceType type = TypeOf(devices);
      auto at = std::lower_bound(types.begin(), types.end(), type);
      if (at != types.end() && *at == type) continue;
      if (types.size() == kMaxOfferDeviceTypes) {
        return Status::LimitExceeded("offer has more device types than the limit of " +
                                     std::to_string(kMaxOfferDeviceTypes));
      }
      types.insert(at, std::move(type));
    }
  }
  return Status::Ok();
}

// The offer in the evaluator's form; `offer_types` from OfferTypes. The provider holds one
// reference to each of its types and denoms in the tables until Release.
ProviderState Normalize(const Offer& offer, const std::vector<DeviceType>& offer_types,
                        TypeTable& types, DenomTable& denoms) {
  ProviderState state;
  state.id = offer.provider;
  state.attributes = offer.attributes;
  state.auditors = offer.auditors;
  state.reputation_ppm = offer.reputation_ppm;
  state.live = true;
  state.types.reserve(offer_types.size());
  for (const DeviceType& type : offer_types) state.types.push_back(types.Acquire(type));
  state.type_cuda.resize(offer_types.size());
  for (const NodeCapacity& node : offer.nodes) {
    const auto node_index = static_cast<uint32_t>(state.nodes.size());
    state.nodes.push_back({node.name, node.cpu_millis, node.memory_bytes, node.storage_bytes});
    const size_t node_pools_begin = state.pools.size();
    for (const GpuDevices& devices : node.gpus) {
      const size_t local = static_cast<size_t>(
          std::lower_bound(offer_types.begin(), offer_types.end(), TypeOf(devices)) - offer_types.begin());
      const uint32_t type = state.types[local];
      if (devices.cuda && (!state.type_cuda[local] || *state.type_cuda[local] < *devices.cuda)) {
        state.type_cuda[local] = devices.cuda;
      }
      auto same = std::find_if(state.pools.begin() + static_cast<std::ptrdiff_t>(node_pools_begin),
                               state.pools.end(), [&](const Pool& pool) {
                                 return pool.type == type && pool.cuda == devices.cuda;
                               });
      if (same != state.pools.end()) {
        const uint64_t merged = uint64_t{same->free} + devices.count;
        same->free = static_cast<uint32_t>(std::min<uint64_t>(merged, UINT32_MAX));
      } else {
        state.pools.push_back({node_index, type, devices.count, devices.cuda});
      }
    }
  }
  for (const PriceTable& table : offer.pricing) {
    // The first table of a denom wins (an offers file cannot list a denom twice).
    const std::optional<uint32_t> known = denoms.Find(table.denom);
    if (known && std::any_of(state.rates.begin(), state.rates.end(),
                             [&](const Rates& r) { return r.denom == *known; })) {
      continue;
    }
    Rates rates{denoms.Acquire(table.denom), table.cpu, table.memory, table.storage, {}};
    for (size_t local = 0; local < state.types.size(); ++local) {
      if (auto rate = LookupGpuRate(table, offer_types[local])) {
        rates.gpu.push_back({state.types[local], *rate, state.type_cuda[local]});
      }
    }
    state.rates.push_back(std::move(rates));
  }
  return state;
}

// Gives back the references Normalize took.
void Release(const ProviderState& state, TypeTable& types, DenomTable& denoms) {
  for (uint32_t type : state.types) types.Release(type);
  for (const Rates& rates : state.rates) denoms.Release(rates.denom);
}

// ---------------------------------------------------------------------------------------------
// The query plan: an Order turned into numbers once per query.

// Stands for the option model "*" among name ids.
constexpr uint32_t kAnyModel = TypeTable::kUnknownName - 1;

struct ServicePlan {
  uint32_t count = 0;
  uint32_t units = 0;  // 0 for a service without GPUs
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;
  std::optional<CudaVersion> cuda_min;
  std::vector<int32_t> rank_of_type;  // per interned type: first option it satisfies, or -1
};

struct Plan {
  const Order* order = nullptr;
  std::optional<uint32_t> denom;
  uint64_t cap = 0;
  std::vector<ServicePlan> services;
  std::vector<uint32_t> gpu_services;     // indices of services with units > 0, in order
  std::vector<uint32_t> placement_order;  // services, biggest replicas first (for first-fit)
  uint64_t total_replicas = 0;
  // Sums over services of count x per-replica need: with a provider's rates they give a lower
  // bound of its non-GPU price (floor of the sum <= sum of ceilings).
  uint64_t total_cpu_millis = 0;
  uint64_t total_memory_bytes = 0;
  uint64_t total_storage_bytes = 0;
  std::vector<TypeTable::Names> option_names;  // scratch for BuildPlan
};

void BuildPlan(const Order& order, const TypeTable& types, const DenomTable& denoms, Plan& plan) {
  plan.order = &order;
  plan.denom = denoms.Find(order.Denom());
  plan.cap = 0;
  plan.total_replicas = 0;
  plan.total_cpu_millis = 0;
  plan.total_memory_bytes = 0;
  plan.total_storage_bytes = 0;
  plan.services.resize(order.services.size());
  plan.gpu_services.clear();
  plan.placement_order.clear();
  for (size_t s = 0; s < order.services.size(); ++s) {
    const ServiceRequest& request = order.services[s];
    ServicePlan& service = plan.services[s];
    service.count = request.count;
    service.units = request.resources.gpu.units;
    service.cpu_millis = request.resources.cpu_millis;
    service.memory_bytes = request.resources.memory_bytes;
    service.storage_bytes = request.resources.StorageBytes();
    service.cuda_min = request.cuda_min;
    Fill(service.rank_of_type, types.IdBound(), -1);
    plan.cap = SaturatingAdd(plan.cap, SaturatingMul(request.count, request.price_cap.per_hour));
    plan.total_replicas = SaturatingAdd(plan.total_replicas, request.count);
    plan.total_cpu_millis = SaturatingAdd(plan.total_cpu_millis, SaturatingMul(request.count, service.cpu_millis));
    plan.total_memory_bytes = SaturatingAdd(plan.total_memory_bytes, SaturatingMul(request.count, service.memory_bytes));
    plan.total_storage_bytes = SaturatingAdd(plan.total_storage_bytes, SaturatingMul(request.count, service.storage_bytes));
    plan.placement_order.push_back(static_cast<uint32_t>(s));
    if (service.units == 0) continue;
    plan.gpu_services.push_back(static_cast<uint32_t>(s));
    // Options are matched against every known type once per query, by interned name ids (an
    // option naming a model no offer has gets kUnknownName and matches nothing).
    const auto& options = request.resources.gpu.options;
    plan.option_names.clear();
    for (const GpuOption& option : request.resources.gpu.options) {
      const uint32_t model = option.model == "*" ? kAnyModel : types.NameId(ToLower(option.model));
      plan.option_names.push_back({types.NameId(ToLower(option.vendor)), model});
    }
    for (uint32_t t : types.Live()) {
      const DeviceType& type = types[t];
      const TypeTable::Names& names = types.NamesOf(t);
      for (size_t o = 0; o < options.size(); ++o) {
        const GpuOption& option = options[o];
        const TypeTable::Names& wanted = plan.option_names[o];
        if (wanted.vendor == names.vendor && (wanted.model == kAnyModel || wanted.model == names.model) &&
            KindMatches(option, type) && RamMatches(option, type) &&
            (!option.interface || *option.interface == type.interface)) {
          service.rank_of_type[t] = static_cast<int32_t>(o);
          break;
        }
      }
    }
  }
  // Biggest replicas first makes first-fit succeed more often before the complete search. A
  // stable insertion sort: groups have a handful of services, and std::stable_sort allocates a
  // buffer on every query.
  auto bigger = [&](uint32_t a, uint32_t b) {
    const ServicePlan& x = plan.services[a];
    const ServicePlan& y = plan.services[b];
    return std::tie(x.units, x.cpu_millis, x.memory_bytes) > std::tie(y.units, y.cpu_millis, y.memory_bytes);
  };
  std::vector<uint32_t>& order_of = plan.placement_order;
  for (size_t i = 1; i < order_of.size(); ++i) {
    const uint32_t moving = order_of[i];
    size_t at = i;
    for (; at > 0 && bigger(moving, order_of[at - 1]); --at) order_of[at] = order_of[at - 1];
    order_of[at] = moving;
  }
}

uint64_t FloorScaled(uint64_t amount, uint64_t rate, uint64_t divisor) {
  uint64_t narrow = 0;
  if (!__builtin_mul_overflow(amount, rate, &narrow)) return narrow / divisor;
  const Wide quotient = static_cast<Wide>(amount) * rate / divisor;
  return quotient > kSaturated ? kSaturated : static_cast<uint64_t>(quotient);
}

// A lower bound of the non-GPU part of any bid priced at these rates.
inline uint64_t NonGpuLowerBound(const Plan& plan, uint64_t cpu_rate, uint64_t memory_rate, uint64_t storage_rate) {
  return SaturatingAdd(SaturatingAdd(FloorScaled(plan.total_cpu_millis, cpu_rate, kMillisPerCore),
                       FloorScaled(plan.total_memory_bytes, memory_rate, kGi)),
                FloorScaled(plan.total_storage_bytes, storage_rate, kGi));
}

bool CudaOk(const std::optional<CudaVersion>& have, const std::optional<CudaVersion>& need) {
  return !need || (have && *have >= *need);
}

// ---------------------------------------------------------------------------------------------
// Evaluation of one provider, allocation-free once the scratch vectors have grown.

struct TypeChoice {
  uint32_t type = 0;
  uint32_t rank = 0;
  uint64_t rate = 0;
};

struct Scratch {
  Plan plan;
  // Device types each GPU service may use on the provider being evaluated.
  std::vector<TypeChoice> choices;
  std::vector<uint32_t> choices_begin;  // per GPU service, plus an end
  // Combinations of choices (one per GPU service), flat, and their prices and order.
  std::vector<uint32_t> combos;
  std::vector<uint64_t> combo_price;
  std::vector<uint32_t> combo_order;
  std::vector<uint32_t> service_types;  // per service: the type tried, or kNoType
  // Placement search state.
  std::vector<uint64_t> cpu_left, memory_left, storage_left;
  std::vector<uint32_t> pool_left;
  std::vector<uint32_t> slots;  // per service: pool (GPU service) or node indices
  std::vector<uint32_t> slots_begin, slots_end;
  std::vector<uint32_t> replica_service, replica_choice;
  std::vector<uint32_t> replica_nodes;  // Materialize: nodes of one service's replicas
};

auto NodeFits(const ServicePlan& service) {
  return [&service](const NodeState& node) {
    return node.cpu_millis >= service.cpu_millis && node.memory_bytes >= service.memory_bytes &&
           node.storage_bytes >= service.storage_bytes;
  };
}

// The common case of one replica in the whole group: first fit is exact. Leaves the same
// scratch state as the full search (see Materialize).
bool PlaceOneReplica(const Plan& plan, const ProviderState& provider, Scratch& s, WorkBudget& budget) {
  const size_t service_count = plan.services.size();
  uint32_t only = 0;
  while (plan.services[only].count == 0) ++only;
  const ServicePlan& service = plan.services[only];
  if (!budget.Spend(service_count + (service.units == 0 ? provider.nodes.size() : provider.pools.size()))) {
    return false;
  }
  const auto node_fits = NodeFits(service);
  std::optional<uint32_t> slot;
  if (service.units == 0) {
    for (uint32_t n = 0; n < provider.nodes.size() && !slot; ++n) {
      if (node_fits(provider.nodes[n])) slot = n;
    }
  } else {
    for (uint32_t p = 0; p < provider.pools.size() && !slot; ++p) {
      const Pool& pool = provider.pools[p];
      if (pool.type == s.service_types[only] && pool.free >= service.units &&
          CudaOk(pool.cuda, service.cuda_min) && node_fits(provider.nodes[pool.node])) {
        slot = p;
      }
    }
  }
  if (!slot) return false;
  Fill(s.slots, 1, *slot);
  Fill(s.slots_begin, service_count, 0);
  Fill(s.slots_end, service_count, 0);
  s.slots_end[only] = 1;
  Fill(s.replica_service, 1, only);
  Fill(s.replica_choice, 1, 0);
  return true;
}

// Depth-first search over replica placements: first-fit is its first path, backtracking makes
// it complete. Replicas of one service are interchangeable, so each takes a slot no earlier than
// the previous replica's (each multiset of slots is tried once).
// Returns false when no placement exists or, with `budget.exhausted`, when the search ran out of
// steps first.
bool PlaceGroup(const Plan& plan, const ProviderState& provider, Scratch& s, WorkBudget& budget) {
  const size_t service_count = plan.services.size();
  if (plan.total_replicas > kMaxReplicasPerGroup) {
    budget.exhausted = true;
    return false;
  }
  if (plan.total_replicas == 1) return PlaceOneReplica(plan, provider, s, budget);
  const size_t gpu_count = plan.gpu_services.size();
  // Everything below but the search: totals, slot lists, capacity copies and the replica list.
  if (!budget.Spend(service_count * (1 + std::max(provider.nodes.size(), provider.pools.size())) +
                    gpu_count * (gpu_count + provider.pools.size()) + 2 * provider.nodes.size() +
                    provider.pools.size() + plan.total_replicas)) {
    return false;
  }
  // Cheap necessary condition first: totals must fit.
  uint64_t cpu_need = 0, memory_need = 0, storage_need = 0;
  for (const ServicePlan& service : plan.services) {
    cpu_need = SaturatingAdd(cpu_need, SaturatingMul(service.count, service.cpu_millis));
    memory_need = SaturatingAdd(memory_need, SaturatingMul(service.count, service.memory_bytes));
    storage_need = SaturatingAdd(storage_need, SaturatingMul(service.count, service.storage_bytes));
  }
  uint64_t cpu_have = 0, memory_have = 0, storage_have = 0;
  for (const NodeState& node : provider.nodes) {
    cpu_have = SaturatingAdd(cpu_have, node.cpu_millis);
    memory_have = SaturatingAdd(memory_have, node.memory_bytes);
    storage_have = SaturatingAdd(storage_have, node.storage_bytes);
  }
  if (cpu_need > cpu_have || memory_need > memory_have || storage_need > storage_have) return false;
  for (uint32_t g : plan.gpu_services) {
    const uint32_t type = s.service_types[g];
    uint64_t need = 0;
    for (uint32_t h : plan.gpu_services) {
      if (s.service_types[h] == type) {
        need = SaturatingAdd(need, SaturatingMul(plan.services[h].count, plan.services[h].units));
      }
    }
    uint64_t have = 0;
    for (const Pool& pool : provider.pools) {
      if (pool.type == type) have += pool.free;
    }
    if (need > have) return false;
  }

  // Slots each service may use, filtered by the static capacity.
  s.slots.clear();
  Fill(s.slots_begin, service_count, 0);
  Fill(s.slots_end, service_count, 0);
  for (size_t i = 0; i < service_count; ++i) {
    const ServicePlan& service = plan.services[i];
    s.slots_begin[i] = static_cast<uint32_t>(s.slots.size());
    const auto node_fits = NodeFits(service);
    if (service.units == 0) {
      for (uint32_t n = 0; n < provider.nodes.size(); ++n) {
        if (node_fits(provider.nodes[n])) s.slots.push_back(n);
      }
    } else {
      for (uint32_t p = 0; p < provider.pools.size(); ++p) {
        const Pool& pool = provider.pools[p];
        if (pool.type == s.service_types[i] && pool.free >= service.units &&
            CudaOk(pool.cuda, service.cuda_min) && node_fits(provider.nodes[pool.node])) {
          s.slots.push_back(p);
        }
      }
    }
    s.slots_end[i] = static_cast<uint32_t>(s.slots.size());
    if (service.count > 0 && s.slots_end[i] == s.slots_begin[i]) return false;
  }

  s.cpu_left.resize(provider.nodes.size());
  s.memory_left.resize(provider.nodes.size());
  s.storage_left.resize(provider.nodes.size());
  for (size_t n = 0; n < provider.nodes.size(); ++n) {
    s.cpu_left[n] = provider.nodes[n].cpu_millis;
    s.memory_left[n] = provider.nodes[n].memory_bytes;
    s.storage_left[n] = provider.nodes[n].storage_bytes;
  }
  s.pool_left.resize(provider.pools.size());
  for (size_t p = 0; p < provider.pools.size(); ++p) s.pool_left[p] = provider.pools[p].free;

  s.replica_service.clear();
  for (uint32_t i : plan.placement_order) {
    s.replica_service.insert(s.replica_service.end(), plan.services[i].count, i);
  }
  const size_t replicas = s.replica_service.size();
  Fill(s.replica_choice, replicas, 0);

  auto node_of = [&](uint32_t service, uint32_t slot) {
    return plan.services[service].units == 0 ? slot : provider.pools[slot].node;
  };
  auto try_take = [&](uint32_t service, uint32_t slot) {
    const ServicePlan& sp = plan.services[service];
    const uint32_t n = node_of(service, slot);
    if (s.cpu_left[n] < sp.cpu_millis || s.memory_left[n] < sp.memory_bytes ||
        s.storage_left[n] < sp.storage_bytes) {
      return false;
    }
    if (sp.units > 0) {
      if (s.pool_left[slot] < sp.units) return false;
      s.pool_left[slot] -= sp.units;
    }
    s.cpu_left[n] -= sp.cpu_millis;
    s.memory_left[n] -= sp.memory_bytes;
    s.storage_left[n] -= sp.storage_bytes;
    return true;
  };
  auto give_back = [&](uint32_t service, uint32_t slot) {
    const ServicePlan& sp = plan.services[service];
    const uint32_t n = node_of(service, slot);
    if (sp.units > 0) s.pool_left[slot] += sp.units;
    s.cpu_left[n] += sp.cpu_millis;
    s.memory_left[n] += sp.memory_bytes;
    s.storage_left[n] += sp.storage_bytes;
  };

  size_t i = 0;
  uint32_t next = 0;  // first slot position replica i may take
  while (i < replicas) {
    const uint32_t service = s.replica_service[i];
    const uint32_t begin = s.slots_begin[service];
    const uint32_t width = s.slots_end[service] - begin;
    bool placed = false;
    for (uint32_t q = next; q < width; ++q) {
      if (!budget.Spend(1)) return false;
      if (try_take(service, s.slots[begin + q])) {
        s.replica_choice[i] = q;
        placed = true;
        break;
      }
    }
    if (placed) {
      ++i;
      next = (i < replicas && s.replica_service[i] == service) ? s.replica_choice[i - 1] : 0;
      continue;
    }
    if (i == 0) return false;
    --i;
    const uint32_t back_service = s.replica_service[i];
    give_back(back_service, s.slots[s.slots_begin[back_service] + s.replica_choice[i]]);
    next = s.replica_choice[i] + 1;
  }
  return true;
}

struct Evaluation {
  uint64_t price = 0;
  const uint32_t* types = nullptr;  // per service, valid until the next evaluation
  Exclusion exclusion;
};

ExclusionReason DiagnoseGpu(const ServiceRequest& request, const ProviderState& provider,
                            const Rates& rates, const TypeTable& types) {
  // Nearest miss over every device type and option: model < RAM < interface < CUDA < rate.
  // Per type, not per entry: a type's best CUDA version is the nearest any of its entries gets.
  int best = 0;
  for (size_t local = 0; local < provider.types.size(); ++local) {
    const uint32_t type = provider.types[local];
    for (const GpuOption& option : request.resources.gpu.options) {
      int stage = static_cast<int>(CheckOption(option, types[type]));
      if (stage == static_cast<int>(OptionStage::kPasses)) {
        stage = !CudaOk(provider.type_cuda[local], request.cuda_min) ? 3 : !rates.GpuRate(type) ? 4 : 5;
      }
      best = std::max(best, stage);
    }
  }
  switch (best) {
    case 0: return ExclusionReason::kGpuModel;
    case 1: return ExclusionReason::kGpuRam;
    case 2: return ExclusionReason::kGpuInterface;
    case 3: return ExclusionReason::kGpuCuda;
    default: return ExclusionReason::kGpuRate;
  }
}

// Whether a signedBy entry names `attested`: keys written as 64 hex digits compare without
// regard to case (docs/MATCHING.md, signedBy); any other entry must be equal.
bool IsHexKey(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}
bool SameAuditor(std::string_view wanted, std::string_view attested) {
  if (wanted == attested) return true;
  return IsHexKey(wanted) && IsHexKey(attested) && EqualsIgnoreCase(wanted, attested);
}

// The provider's bid: the feasible choice of device types with the smallest (ranks, price,
// device types), or false with the reason (when `want_reason`).
bool Evaluate(const Plan& plan, const ProviderState& provider, const TypeTable& types, Scratch& s,
              bool want_reason, Evaluation& out) {
  const Order& order = *plan.order;
  for (const auto& [key, value] : order.attributes) {
    auto it = provider.attributes.find(key);
    if (it == provider.attributes.end() || it->second != value) {
      if (want_reason) out.exclusion = {ExclusionReason::kAttributes, key};
      return false;
    }
  }
  auto audited_by = [&](const std::string& auditor) {
    return std::any_of(provider.auditors.begin(), provider.auditors.end(),
                       [&](const std::string& attested) { return SameAuditor(auditor, attested); });
  };
  if (!std::all_of(order.signed_by.all_of.begin(), order.signed_by.all_of.end(), audited_by) ||
      (!order.signed_by.any_of.empty() &&
       std::none_of(order.signed_by.any_of.begin(), order.signed_by.any_of.end(), audited_by))) {
    if (want_reason) out.exclusion = {ExclusionReason::kSignedBy, {}};
    return false;
  }
  const Rates* rates = nullptr;
  if (plan.denom) {
    for (const Rates& r : provider.rates) {
      if (r.denom == *plan.denom) rates = &r;
    }
  }
  if (rates == nullptr) {
    if (want_reason) out.exclusion = {ExclusionReason::kDenom, order.Denom()};
    return false;
  }

  uint64_t fixed_price = 0;
  for (const ServicePlan& service : plan.services) {
    uint64_t replica = CeilScaled(service.cpu_millis, rates->cpu, kMillisPerCore);
    replica = SaturatingAdd(replica, CeilScaled(service.memory_bytes, rates->memory, kGi));
    replica = SaturatingAdd(replica, CeilScaled(service.storage_bytes, rates->storage, kGi));
    fixed_price = SaturatingAdd(fixed_price, SaturatingMul(service.count, replica));
  }

  // Device types each GPU service could use here, best first.
  const size_t gpu_count = plan.gpu_services.size();
  WorkBudget budget;
  auto out_of_budget = [&] {
    if (want_reason) out.exclusion = {ExclusionReason::kWorkLimit, {}};
    return false;
  };
  if (!budget.Spend(gpu_count * (1 + rates->gpu.size()))) return out_of_budget();
  s.choices.clear();
  s.choices_begin.clear();
  for (uint32_t g : plan.gpu_services) {
    const ServicePlan& service = plan.services[g];
    s.choices_begin.push_back(static_cast<uint32_t>(s.choices.size()));
    const size_t first = s.choices.size();
    for (const RatedType& rated : rates->gpu) {
      const int32_t rank = rated.type < service.rank_of_type.size() ? service.rank_of_type[rated.type] : -1;
      if (rank < 0) continue;
      if (CudaOk(rated.best_cuda, service.cuda_min)) {
        s.choices.push_back({rated.type, static_cast<uint32_t>(rank), rated.rate});
      }
    }
    if (s.choices.size() == first) {
      if (want_reason) {
        out.exclusion = {DiagnoseGpu(order.services[g], provider, *rates, types),
                         order.services[g].name};
      }
      return false;
    }
  }
  s.choices_begin.push_back(static_cast<uint32_t>(s.choices.size()));

  // Every combination (one choice per GPU service), in (ranks, price, device types) order; past
  // kMaxDeviceCombinations only the first ones in index order are tried.
  size_t combo_count = 1;
  for (size_t g = 0; g < gpu_count; ++g) {
    combo_count = std::min(combo_count * (s.choices_begin[g + 1] - s.choices_begin[g]),
                           kMaxDeviceCombinations);
  }
  // Building them, and sorting them (about log2 of the count comparisons each).
  if (!budget.Spend(combo_count * gpu_count * (1 + std::bit_width(combo_count)))) return out_of_budget();
  s.combos.resize(combo_count * gpu_count);
  s.combo_price.resize(combo_count);
  s.combo_order.resize(combo_count);
  for (size_t c = 0; c < combo_count; ++c) {
    size_t rest = c;
    uint64_t price = fixed_price;
    for (size_t g = gpu_count; g-- > 0;) {
      const uint32_t width = s.choices_begin[g + 1] - s.choices_begin[g];
      const uint32_t pick = s.choices_begin[g] + (gpu_count == 1 ? static_cast<uint32_t>(c)
                                                                 : static_cast<uint32_t>(rest % width));
      rest = gpu_count == 1 ? 0 : rest / width;
      s.combos[c * gpu_count + g] = pick;
      const ServicePlan& service = plan.services[plan.gpu_services[g]];
      price = SaturatingAdd(price, SaturatingMul(SaturatingMul(service.count, service.units), s.choices[pick].rate));
    }
    s.combo_price[c] = price;
    s.combo_order[c] = static_cast<uint32_t>(c);
  }
  if (combo_count > 1) {
    std::sort(s.combo_order.begin(), s.combo_order.end(), [&](uint32_t a, uint32_t b) {
      for (size_t g = 0; g < gpu_count; ++g) {
        const uint32_t ra = s.choices[s.combos[a * gpu_count + g]].rank;
        const uint32_t rb = s.choices[s.combos[b * gpu_count + g]].rank;
        if (ra != rb) return ra < rb;
      }
      if (s.combo_price[a] != s.combo_price[b]) return s.combo_price[a] < s.combo_price[b];
      for (size_t g = 0; g < gpu_count; ++g) {
        const uint32_t ta = s.choices[s.combos[a * gpu_count + g]].type;
        const uint32_t tb = s.choices[s.combos[b * gpu_count + g]].type;
        if (ta != tb) return types[ta] < types[tb];
      }
      return a < b;
    });
  }

  bool any_affordable = false;
  Fill(s.service_types, plan.services.size(), kNoType);
  for (uint32_t c : s.combo_order) {
    if (s.combo_price[c] > plan.cap) continue;
    any_affordable = true;
    if (!budget.Spend(gpu_count)) return out_of_budget();
    for (size_t g = 0; g < gpu_count; ++g) {
      s.service_types[plan.gpu_services[g]] = s.choices[s.combos[c * gpu_count + g]].type;
    }
    if (PlaceGroup(plan, provider, s, budget)) {
      out.price = s.combo_price[c];
      out.types = s.service_types.data();
      return true;
    }
    if (budget.exhausted) return out_of_budget();
  }
  if (want_reason) {
    out.exclusion = {any_affordable ? ExclusionReason::kCapacity : ExclusionReason::kPriceCap, {}};
  }
  return false;
}

// Builds the candidate for a successful evaluation; `service_types` per service.
// Fills `candidate` in place, reusing its strings' and vectors' storage.
void Materialize(const Plan& plan, const ProviderState& provider, const TypeTable& types,
                 const std::string& denom, uint64_t price, const uint32_t* service_types, Scratch& s,
                 Candidate& candidate) {
  candidate.provider = provider.id;
  candidate.denom = denom;
  candidate.denom_rank = 0;  // the caller sets it for a group of several denoms
  candidate.price_per_hour = price;
  candidate.reputation_ppm = provider.reputation_ppm;
  if (service_types != s.service_types.data()) {
    s.service_types.assign(service_types, service_types + plan.services.size());
  }
  // Deterministic: the placement found before, with at least the budget it had then.
  WorkBudget budget;
  const bool placed = PlaceGroup(plan, provider, s, budget);
  assert(placed);
  (void)placed;
  const Order& order = *plan.order;
  candidate.services.resize(order.services.size());
  candidate.ranks.clear();
  for (size_t i = 0; i < order.services.size(); ++i) {
    ServiceAssignment& assignment = candidate.services[i];
    assignment.service = order.services[i].name;
    if (order.services[i].count == 0) assignment.placements.clear();
    const uint32_t type = s.service_types[i];
    if (plan.services[i].units > 0 && type != kNoType) {
      const auto rank = static_cast<uint32_t>(plan.services[i].rank_of_type[type]);
      assignment.option = rank;
      if (assignment.device) {
        *assignment.device = types[type];
      } else {
        assignment.device = types[type];
      }
      candidate.ranks.push_back(rank);
    } else {
      assignment.option.reset();
      assignment.device.reset();
    }
  }
  // Replicas per (service, node) from the search's choices, in node order. A service's replicas
  // are consecutive in replica_service; placements reuse the candidate's storage.
  size_t r = 0;
  while (r < s.replica_service.size()) {
    const uint32_t i = s.replica_service[r];
    s.replica_nodes.clear();
    for (; r < s.replica_service.size() && s.replica_service[r] == i; ++r) {
      const uint32_t slot = s.slots[s.slots_begin[i] + s.replica_choice[r]];
      s.replica_nodes.push_back(plan.services[i].units == 0 ? slot : provider.pools[slot].node);
    }
    if (s.replica_nodes.size() > 1) std::sort(s.replica_nodes.begin(), s.replica_nodes.end());
    std::vector<Placement>& placements = candidate.services[i].placements;
    size_t used = 0;
    for (size_t at = 0; at < s.replica_nodes.size();) {
      const uint32_t node = s.replica_nodes[at];
      uint32_t replicas = 0;
      for (; at < s.replica_nodes.size() && s.replica_nodes[at] == node; ++at) ++replicas;
      if (used == placements.size()) placements.emplace_back();
      placements[used].node = provider.nodes[node].name;
      placements[used].replicas = replicas;
      ++used;
    }
    placements.resize(used);
  }
}

// Three-way comparisons used by both the Candidate and the index orderings.
std::strong_ordering CompareRanks(const uint32_t* a, const uint32_t* b, size_t n) {
  return std::lexicographical_compare_three_way(a, a + n, b, b + n);
}

// Everything but the provider id, the last tie-break: the index compares ids only on a tie, so
// it does not have to load the providers' states to order its bids.
std::strong_ordering CompareBidsBeforeId(Policy policy, const uint32_t* ranks_a, uint64_t price_a,
                                         uint32_t rep_a, const uint32_t* ranks_b, uint64_t price_b,
                                         uint32_t rep_b, size_t rank_count) {
  const auto ranks = CompareRanks(ranks_a, ranks_b, rank_count);
  const auto price = price_a <=> price_b;
  if (policy == Policy::kPreference) {
    if (ranks != 0) return ranks;
    if (price != 0) return price;
  } else {
    if (price != 0) return price;
    if (ranks != 0) return ranks;
  }
  return rep_b <=> rep_a;  // higher reputation first
}

std::strong_ordering CompareBids(Policy policy, const uint32_t* ranks_a, uint64_t price_a,
                                 uint32_t rep_a, std::string_view id_a, const uint32_t* ranks_b,
                                 uint64_t price_b, uint32_t rep_b, std::string_view id_b,
                                 size_t rank_count) {
  const auto order =
      CompareBidsBeforeId(policy, ranks_a, price_a, rep_a, ranks_b, price_b, rep_b, rank_count);
  return order != 0 ? order : id_a <=> id_b;
}

}  // namespace

std::string_view ToString(Policy policy) {
  return policy == Policy::kCheapest ? "cheapest" : "preference";
}

std::optional<Policy> ParsePolicy(std::string_view text) {
  if (text == "preference") return Policy::kPreference;
  if (text == "cheapest") return Policy::kCheapest;
  return std::nullopt;
}

std::string_view ToString(ExclusionReason reason) {
  switch (reason) {
    case ExclusionReason::kNone: return "none";
    case ExclusionReason::kAttributes: return "attributes";
    case ExclusionReason::kSignedBy: return "signed-by";
    case ExclusionReason::kDenom: return "denom";
    case ExclusionReason::kGpuModel: return "gpu-model";
    case ExclusionReason::kGpuRam: return "gpu-ram";
    case ExclusionReason::kGpuInterface: return "gpu-interface";
    case ExclusionReason::kGpuCuda: return "gpu-cuda";
    case ExclusionReason::kGpuRate: return "gpu-rate";
    case ExclusionReason::kCapacity: return "capacity";
    case ExclusionReason::kPriceCap: return "price-cap";
    case ExclusionReason::kOfferTooLarge: return "offer-too-large";
    case ExclusionReason::kWorkLimit: return "work-limit";
  }
  return "unknown";
}

std::string DescribeExclusion(const Exclusion& exclusion, const Order& order) {
  const std::string& detail = exclusion.detail;
  const std::string service = detail.empty() ? "" : " (service " + detail + ")";
  switch (exclusion.reason) {
    case ExclusionReason::kAttributes: {
      auto wanted = order.attributes.find(detail);
      return "placement attribute " + detail +
             (wanted == order.attributes.end() ? "" : "=" + wanted->second) + " not offered";
    }
    case ExclusionReason::kSignedBy: return "auditor requirements (signedBy) not met";
    case ExclusionReason::kDenom: return "no prices in " + detail;
    case ExclusionReason::kGpuModel: return "no GPU of a wanted model" + service;
    case ExclusionReason::kGpuRam: return "GPU RAM below the minimum" + service;
    case ExclusionReason::kGpuInterface: return "wrong GPU interface" + service;
    case ExclusionReason::kGpuCuda: return "CUDA version too old" + service;
    case ExclusionReason::kGpuRate: return "no GPU rate for the matching devices" + service;
    case ExclusionReason::kCapacity: return "not enough free capacity";
    case ExclusionReason::kPriceCap: return "price above the cap";
    case ExclusionReason::kOfferTooLarge: return "offer over a matching work bound: " + detail;
    case ExclusionReason::kWorkLimit: return "evaluation over its work bound (kMaxEvaluationSteps)";
    case ExclusionReason::kNone: break;
  }
  return "unknown";
}

Status CheckOfferWork(const Offer& offer) {
  std::vector<DeviceType> types;
  return OfferTypes(offer, types);
}

namespace {

// The evaluation in the order's first denom alone (Order::Denom()).
FitOutcome FitInFirstDenom(const Order& order, const Offer& offer) {
  FitOutcome outcome;
  std::vector<DeviceType> offer_types;
  if (Status status = OfferTypes(offer, offer_types); !status.ok()) {
    outcome.exclusion = {ExclusionReason::kOfferTooLarge, status.message()};
    return outcome;
  }
  TypeTable types;
  DenomTable denoms;
  const ProviderState provider = Normalize(offer, offer_types, types, denoms);
  Scratch scratch;
  BuildPlan(order, types, denoms, scratch.plan);
  Evaluation evaluation;
  if (!Evaluate(scratch.plan, provider, types, scratch, /*want_reason=*/true, evaluation)) {
    outcome.exclusion = std::move(evaluation.exclusion);
    return outcome;
  }
  outcome.candidate.emplace();
  Materialize(scratch.plan, provider, types, order.Denom(), evaluation.price, evaluation.types,
              scratch, *outcome.candidate);
  return outcome;
}

bool SeveralDenoms(const Order& order) { return !order.services.empty() && !order.services.front().more_caps.empty(); }

}  // namespace

// Several denoms: the provider bids in the first denom, in the tenant's order, in which it can
// take the group (prices in different denoms are not comparable, so the first that works is the
// tenant's choice). When none works, the reason is the one from the first denom the provider
// prices; a provider pricing none of them is excluded for kDenom, all denoms named.
FitOutcome FitProvider(const Order& order, const Offer& offer) {
  if (!SeveralDenoms(order)) return FitInFirstDenom(order, offer);
  const std::vector<std::string> denoms = order.Denoms();
  std::optional<Exclusion> first_priced;
  for (size_t i = 0; i < denoms.size(); ++i) {
    FitOutcome outcome = FitInFirstDenom(*order.InDenom(denoms[i]), offer);
    if (outcome.candidate) {
      outcome.candidate->denom_rank = static_cast<uint32_t>(i);
      return outcome;
    }
    if (!first_priced && outcome.exclusion.reason != ExclusionReason::kDenom) first_priced = outcome.exclusion;
  }
  FitOutcome outcome;
  if (first_priced) {
    outcome.exclusion = std::move(*first_priced);
  } else {
    outcome.exclusion.reason = ExclusionReason::kDenom;
    for (const std::string& denom : denoms) outcome.exclusion.detail += (outcome.exclusion.detail.empty() ? "" : ", ") + denom;
  }
  return outcome;
}

bool DeviceSatisfies(const GpuOption& option, const DeviceType& device) {
  return CheckOption(option, device) == OptionStage::kPasses;
}

bool RanksBefore(const Candidate& a, const Candidate& b, Policy policy) {
  // The tenant's denom preference comes first: prices in different denoms are not comparable.
  if (a.denom_rank != b.denom_rank) return a.denom_rank < b.denom_rank;
  const size_t n = std::min(a.ranks.size(), b.ranks.size());
  auto order = CompareBids(policy, a.ranks.data(), a.price_per_hour, a.reputation_ppm, a.provider,
                           b.ranks.data(), b.price_per_hour, b.reputation_ppm, b.provider, n);
  if (order == 0) order = a.ranks.size() <=> b.ranks.size();
  return order < 0;
}

void SortCandidates(std::vector<Candidate>& candidates, Policy policy) {
  std::sort(candidates.begin(), candidates.end(),
            [policy](const Candidate& a, const Candidate& b) { return RanksBefore(a, b, policy); });
}

std::vector<Candidate> LinearScanTopK(const Order& order, const std::vector<Offer>& offers,
                                      Policy policy, size_t k) {
  std::vector<Candidate> candidates;
  for (const Offer& offer : offers) {
    FitOutcome outcome = FitProvider(order, offer);
    if (outcome.candidate) candidates.push_back(std::move(*outcome.candidate));
  }
  const size_t keep = std::min(k, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep),
                    candidates.end(),
                    [policy](const Candidate& a, const Candidate& b) { return RanksBefore(a, b, policy); });
  candidates.resize(keep);
  return candidates;
}

// ---------------------------------------------------------------------------------------------
// OfferBook

// Puts `moving` in place of the root of the binary min-heap `heap` (ordered by `key`) and sifts
// it down. Hand-written for the walk's two heaps: std::pop_heap and friends store the moving
// item and reload it at every level, which stalls on store forwarding in this hot loop; here it
// stays in registers.
template <typename T, typename Key>
void SiftDownFromRoot(std::vector<T>& heap, const T moving, Key key) {
  const size_t size = heap.size();
  size_t at = 0;
  while (true) {
    size_t child = 2 * at + 1;
    if (child >= size) break;
    if (child + 1 < size && key(heap[child + 1]) < key(heap[child])) ++child;
    if (key(moving) <= key(heap[child])) break;
    heap[at] = heap[child];
    at = child;
  }
  heap[at] = moving;
}

struct OfferBook::Impl {
  // The provider's other rates ride along so a query can bound its whole price without
  // touching the provider (entries are read in sequence; providers are scattered in memory).
  struct IndexEntry {
    uint64_t rate = 0;
    uint32_t slot = 0;
    uint64_t cpu_rate = 0;
    uint64_t memory_rate = 0;
    uint64_t storage_rate = 0;
    bool operator<(const IndexEntry& other) const {
      return std::tie(rate, slot) < std::tie(other.rate, other.slot);
    }
  };
  // The providers of one (denom, device type) whose CPU and memory rates fall in one tier.
  struct IndexList {
    uint32_t tier = 0;
    std::vector<IndexEntry> entries;  // by (rate, slot)
    // Lowest non-GPU rates ever listed: a bound for every entry (removals only raise the truth).
    uint64_t min_cpu_rate = kSaturated;
    uint64_t min_memory_rate = kSaturated;
    uint64_t min_storage_rate = kSaturated;
  };
  // Why tiers: a query must read every entry whose GPU price plus its list's non-GPU floor is
  // below the k-th best bid. With one list per type that floor is the cheapest CPU, memory and
  // storage rates of any provider, far below most providers' (~300 entries read at 100,000
  // providers for ~20 evaluated). Splitting by CPU and memory rate gives each list a floor
  // close to its providers' own, so the walk reads far fewer entries.
  static uint32_t RateBucket(uint64_t rate) {  // half-octaves: 2 * floor(log2 rate) + next bit
    if (rate < 2) return static_cast<uint32_t>(rate);
    const int top = 63 - __builtin_clzll(rate);
    return static_cast<uint32_t>(2 * top) + static_cast<uint32_t>((rate >> (top - 1)) & 1);
  }
  static uint32_t TierOf(const Rates& rates) {
    return RateBucket(rates.cpu) << 8 | RateBucket(rates.memory);
  }
  // A bid found during a query; its ranks and types live in the flat buffers below.
  struct Found {
    uint32_t slot = 0;
    uint32_t reputation_ppm = 0;  // a copy: comparisons need not touch the provider's state
    uint64_t price = 0;
    uint32_t ranks_at = 0;
    uint32_t types_at = 0;
  };
  struct Cursor {
    const IndexList* list = nullptr;
    size_t position = 0;
    uint64_t floor = 0;  // the list's non-GPU lower bound for this query
    uint64_t head = 0;   // bound of every entry from `position` on
  };
  struct RankedType {
    int32_t rank = 0;
    const std::vector<IndexList>* tiers = nullptr;
  };

  TypeTable types;
  DenomTable denoms;
  std::vector<ProviderState> providers;  // by slot; dead slots are reused
  std::vector<uint32_t> free_slots;
  std::unordered_map<std::string, uint32_t> slot_of;
  // (denom << 32 | type) -> providers offering that type, per tier, by increasing GPU rate in
  // that denom.
  std::unordered_map<uint64_t, std::vector<IndexList>> index;

  // Query scratch.
  Scratch scratch;
  std::vector<uint32_t> seen;
  uint32_t epoch = 0;
  std::vector<Found> found;
  std::vector<uint32_t> found_ranks;
  std::vector<uint32_t> found_types;
  std::vector<RankedType> ranked_types;
  std::vector<Cursor> cursors;  // a binary min-heap by head
  struct Pending {
    uint64_t bound = 0;
    uint32_t slot = 0;
  };
  std::vector<Pending> pending;  // a binary min-heap by bound

  // Hand-written heap operations: they keep the moving item in registers (std::push_heap reloads
  // the item it just stored, which stalls on store forwarding in this hot loop).
  void PushPending(Pending item) {
    pending.emplace_back();
    size_t at = pending.size() - 1;
    while (at > 0) {
      const size_t parent = (at - 1) / 2;
      if (pending[parent].bound <= item.bound) break;
      pending[at] = pending[parent];
      at = parent;
    }
    pending[at] = item;
  }
  Pending PopPending() {
    const Pending top = pending.front();
    const Pending last = pending.back();
    pending.pop_back();
    if (!pending.empty()) SiftDownFromRoot(pending, last, [](const Pending& p) { return p.bound; });
    return top;
  }

  static uint64_t Key(uint32_t denom, uint32_t type) { return uint64_t{denom} << 32 | type; }

  IndexList& ListOf(const Rates& rates, uint32_t type) {
    std::vector<IndexList>& tiers = index[Key(rates.denom, type)];
    const uint32_t tier = TierOf(rates);
    for (IndexList& list : tiers) {
      if (list.tier == tier) return list;
    }
    tiers.emplace_back().tier = tier;
    return tiers.back();
  }
  // Removes the provider's entries; a list left empty goes, and a key left without lists, so
  // the index holds only what live offers list (its type and denom ids may be reused).
  void Unindex(uint32_t slot) {
    for (const Rates& rates : providers[slot].rates) {
      for (const RatedType& rated : rates.gpu) {
        auto key = index.find(Key(rates.denom, rated.type));
        if (key == index.end()) continue;
        std::vector<IndexList>& tiers = key->second;
        const uint32_t tier = TierOf(rates);
        auto list = std::find_if(tiers.begin(), tiers.end(), [&](const IndexList& l) { return l.tier == tier; });
        if (list == tiers.end()) continue;
        auto& entries = list->entries;
        auto it = std::lower_bound(entries.begin(), entries.end(), IndexEntry{rated.rate, slot});
        if (it != entries.end() && it->slot == slot) entries.erase(it);
        if (entries.empty()) {
          *list = std::move(tiers.back());
          tiers.pop_back();
          if (tiers.empty()) index.erase(key);
        }
      }
    }
  }
  // Drops the provider in `slot`: its index entries and its references in the tables.
  void Drop(uint32_t slot) {
    Unindex(slot);
    Release(providers[slot], types, denoms);
    providers[slot] = ProviderState{};
  }
  // kLimitExceeded when storing an offer of these types and denoms would take a table past its
  // bound (what the offer replaces still counts: it is released after the check).
  Status CheckRoom(const Offer& offer, const std::vector<DeviceType>& offer_types) const {
    size_t new_types = 0;
    for (const DeviceType& type : offer_types) new_types += types.Find(type) ? 0 : 1;
    if (types.Live().size() + new_types > kMaxBookDeviceTypes) {
      return Status::LimitExceeded("offer of " + offer.provider + " brings " + std::to_string(new_types) +
                                   " new device types to a book of " + std::to_string(types.Live().size()) +
                                   " (limit " + std::to_string(kMaxBookDeviceTypes) + ")");
    }
    std::vector<std::string_view> new_denoms;
    for (const PriceTable& table : offer.pricing) {
      if (!denoms.Find(table.denom) &&
          std::find(new_denoms.begin(), new_denoms.end(), table.denom) == new_denoms.end()) {
        new_denoms.push_back(table.denom);
      }
    }
    if (denoms.Live() + new_denoms.size() > kMaxBookDenoms) {
      return Status::LimitExceeded("offer of " + offer.provider + " brings " + std::to_string(new_denoms.size()) +
                                   " new denoms to a book of " + std::to_string(denoms.Live()) + " (limit " +
                                   std::to_string(kMaxBookDenoms) + ")");
    }
    return Status::Ok();
  }
  void Index(uint32_t slot, bool keep_sorted) {
    for (const Rates& rates : providers[slot].rates) {
      for (const RatedType& rated : rates.gpu) {
        const uint32_t type = rated.type;
        const uint64_t rate = rated.rate;
        IndexList& indexed = ListOf(rates, type);
        indexed.min_cpu_rate = std::min(indexed.min_cpu_rate, rates.cpu);
        indexed.min_memory_rate = std::min(indexed.min_memory_rate, rates.memory);
        indexed.min_storage_rate = std::min(indexed.min_storage_rate, rates.storage);
        auto& list = indexed.entries;
        const IndexEntry entry{rate, slot, rates.cpu, rates.memory, rates.storage};
        if (keep_sorted) {
          list.insert(std::upper_bound(list.begin(), list.end(), entry), entry);
        } else {
          list.push_back(entry);
        }
      }
    }
  }
  uint32_t Store(ProviderState state) {
    auto existing = slot_of.find(state.id);
    if (existing != slot_of.end()) {
      Drop(existing->second);
      providers[existing->second] = std::move(state);
      return existing->second;
    }
    uint32_t slot = 0;
    if (!free_slots.empty()) {
      slot = free_slots.back();
      free_slots.pop_back();
      providers[slot] = std::move(state);
    } else {
      slot = static_cast<uint32_t>(providers.size());
      providers.push_back(std::move(state));
    }
    slot_of.emplace(providers[slot].id, slot);
    return slot;
  }

  void NewEpoch() {
    if (seen.size() < providers.size()) seen.resize(providers.size(), 0);
    if (++epoch == 0) {  // wrapped: forget every old mark
      std::fill(seen.begin(), seen.end(), 0);
      epoch = 1;
    }
  }

  std::strong_ordering Compare(Policy policy, const Found& a, const Found& b) const {
    const size_t n = scratch.plan.gpu_services.size();
    const auto order =
        CompareBidsBeforeId(policy, found_ranks.data() + a.ranks_at, a.price, a.reputation_ppm,
                            found_ranks.data() + b.ranks_at, b.price, b.reputation_ppm, n);
    return order != 0 ? order : providers[a.slot].id <=> providers[b.slot].id;
  }

  // Starts loading what evaluating the provider reads: its state's first line and, when
  // `deep` (the state is likely cached already), the rates, pools and nodes it points to.
  void Prefetch(uint32_t slot, bool deep) const {
    const ProviderState& provider = providers[slot];
    __builtin_prefetch(&provider);
    if (!deep) return;
    __builtin_prefetch(provider.rates.data());
    __builtin_prefetch(provider.pools.data());
    __builtin_prefetch(provider.nodes.data());
  }

  void Consider(uint32_t slot, Policy policy, size_t k) {
    Evaluation evaluation;
    if (!Evaluate(scratch.plan, providers[slot], types, scratch, false, evaluation)) return;
    Found bid{slot, providers[slot].reputation_ppm, evaluation.price,
              static_cast<uint32_t>(found_ranks.size()),
              static_cast<uint32_t>(found_types.size())};
    for (uint32_t g : scratch.plan.gpu_services) {
      found_ranks.push_back(
          static_cast<uint32_t>(scratch.plan.services[g].rank_of_type[evaluation.types[g]]));
    }
    found_types.insert(found_types.end(), evaluation.types,
                       evaluation.types + scratch.plan.services.size());
    auto worse_first = [&](const Found& a, const Found& b) { return Compare(policy, a, b) < 0; };
    if (found.size() < k) {
      found.push_back(bid);
      std::push_heap(found.begin(), found.end(), worse_first);
    } else if (Compare(policy, bid, found.front()) < 0) {
      std::pop_heap(found.begin(), found.end(), worse_first);
      found.back() = bid;
      std::push_heap(found.begin(), found.end(), worse_first);
    }
  }

  // True when the worst kept bid beats every bid with primary rank >= `rank` and price >= `bound`.
  bool WorstBeatsBound(Policy policy, int32_t rank, uint64_t bound) const {
    const Found& worst = found.front();
    if (policy == Policy::kCheapest) return worst.price < bound;
    const size_t n = scratch.plan.gpu_services.size();
    const uint32_t* ranks = found_ranks.data() + worst.ranks_at;
    if (ranks[0] != static_cast<uint32_t>(rank)) return ranks[0] < static_cast<uint32_t>(rank);
    for (size_t g = 1; g < n; ++g) {
      if (ranks[g] != 0) return false;
    }
    return worst.price < bound;
  }

  void TopK(const Order& order, Policy policy, size_t k, std::vector<Candidate>& result) {
    if (k == 0) {
      result.clear();
      return;
    }
    Plan& plan = scratch.plan;
    BuildPlan(order, types, denoms, plan);
    NewEpoch();
    found.clear();
    found_ranks.clear();
    found_types.clear();
    if (!plan.denom) {
      result.clear();
      return;
    }

    if (plan.gpu_services.empty()) {
      for (uint32_t slot = 0; slot < providers.size(); ++slot) {
        if (providers[slot].live) Consider(slot, policy, k);
      }
    } else {
      Walk(policy, k);
    }

    auto better = [&](const Found& a, const Found& b) { return Compare(policy, a, b) < 0; };
    std::sort(found.begin(), found.end(), better);
    // resize, not fresh objects: a caller reusing `result` reuses the candidates' storage.
    result.resize(found.size());
    const std::string& denom = order.Denom();
    for (size_t i = 0; i < found.size(); ++i) {
      Materialize(plan, providers[found[i].slot], types, denom, found[i].price,
                  found_types.data() + found[i].types_at, scratch, result[i]);
    }
  }

  // Walks providers of the primary (first GPU) service's acceptable device types in increasing
  // lower-bound price: most preferred option first under kPreference, all at once under
  // kCheapest. Every provider that could bid has a type in these lists, so stopping once the
  // k-th best bid beats the bound of everything unvisited is exact.
  void Walk(Policy policy, size_t k) {
    const Plan& plan = scratch.plan;
    const ServicePlan& primary = plan.services[plan.gpu_services[0]];
    const uint64_t units = SaturatingMul(primary.count, primary.units);
    ranked_types.clear();
    for (uint32_t t : types.Live()) {
      const int32_t rank = primary.rank_of_type[t];
      if (rank < 0) continue;
      auto it = index.find(Key(*plan.denom, t));
      if (it == index.end()) continue;
      ranked_types.push_back({rank, &it->second});
    }
    if (policy == Policy::kPreference) {
      std::sort(ranked_types.begin(), ranked_types.end(),
                [](const RankedType& a, const RankedType& b) { return a.rank < b.rank; });
    }
    auto head_of = [&](const Cursor& cursor) {
      return SaturatingAdd(SaturatingMul(units, cursor.list->entries[cursor.position].rate), cursor.floor);
    };
    size_t group_begin = 0;
    while (group_begin < ranked_types.size()) {
      size_t group_end = group_begin + 1;
      if (policy == Policy::kCheapest) {
        group_end = ranked_types.size();
      } else {
        while (group_end < ranked_types.size() &&
               ranked_types[group_end].rank == ranked_types[group_begin].rank) {
          ++group_end;
        }
      }
      const int32_t rank = ranked_types[group_begin].rank;
      // One cursor per non-empty tier list of the group's types; cursors built only for the
      // groups reached (most queries end in the first).
      cursors.clear();
      // Each list's first entry is a likely cache miss: start loading them all before reading.
      for (size_t g = group_begin; g < group_end; ++g) {
        for (const IndexList& list : *ranked_types[g].tiers) __builtin_prefetch(list.entries.data());
      }
      for (size_t g = group_begin; g < group_end; ++g) {
        for (const IndexList& list : *ranked_types[g].tiers) {
          if (list.entries.empty()) continue;
          const uint64_t floor =
              NonGpuLowerBound(plan, list.min_cpu_rate, list.min_memory_rate, list.min_storage_rate);
          const uint64_t head = SaturatingAdd(SaturatingMul(units, list.entries.front().rate), floor);
          if (head > plan.cap) continue;  // nothing in the list is affordable
          // Field by field: a Cursor built on the stack and copied in is stored in 8-byte parts
          // and reloaded in 16-byte ones, which stalls on store forwarding.
          Cursor& cursor = cursors.emplace_back();
          cursor.list = &list;
          cursor.position = 0;
          cursor.floor = floor;
          cursor.head = head;
        }
      }
      auto later = [](const Cursor& a, const Cursor& b) { return a.head > b.head; };
      std::make_heap(cursors.begin(), cursors.end(), later);
      // Best first: entries are read in order of their list's bound (the cursor heap), but
      // providers are evaluated in order of their own whole-price bound (a min-heap of pending
      // entries), once no unread entry can bound lower. The first k bids found are then nearly
      // always the answer.
      pending.clear();
      while (true) {
        // The cursors' least head bounds every entry not read yet.
        uint64_t read_bound = kSaturated;
        if (!cursors.empty()) {
          read_bound = cursors.front().head;
          if (read_bound > plan.cap) {  // nothing unread in this group is affordable
            cursors.clear();
            read_bound = kSaturated;
          }
        }
        if (!pending.empty() && (cursors.empty() || pending.front().bound <= read_bound)) {
          const Pending top = PopPending();
          // The next provider to evaluate is likely the new top (its state was prefetched at the
          // last pop), and the one after one of its children: start loading them while this one
          // is evaluated. Providers are scattered over more memory than the caches hold.
          if (!pending.empty()) Prefetch(pending.front().slot, /*deep=*/true);
          for (size_t child = 1; child < 3 && child < pending.size(); ++child) {
            Prefetch(pending[child].slot, /*deep=*/false);
          }
          if (seen[top.slot] == epoch) continue;
          // Everything not evaluated yet bounds at least top.bound.
          if (found.size() == k && WorstBeatsBound(policy, rank, top.bound)) return;
          seen[top.slot] = epoch;
          Consider(top.slot, policy, k);
          continue;
        }
        if (cursors.empty()) break;
        if (found.size() == k && WorstBeatsBound(policy, rank, read_bound)) return;
        Cursor& cursor = cursors.front();
        const IndexEntry& entry = cursor.list->entries[cursor.position++];
        // Advance the cursor: a new head sifts down, an exhausted cursor leaves the heap.
        if (cursor.position == cursor.list->entries.size()) {
          std::pop_heap(cursors.begin(), cursors.end(), later);
          cursors.pop_back();
        } else {
          SiftDownCursor(head_of(cursor));
        }
        // No `seen` check here: seen[slot] is a random read (a cache miss at 100,000 providers)
        // and almost no entry read is a duplicate, while most are never popped. The pop checks
        // `seen`, so a duplicate is still evaluated once.
        const uint64_t own_bound =
            SaturatingAdd(SaturatingMul(units, entry.rate),
                   NonGpuLowerBound(plan, entry.cpu_rate, entry.memory_rate, entry.storage_rate));
        if (own_bound > plan.cap) continue;
        if (found.size() == k && WorstBeatsBound(policy, rank, own_bound)) continue;
        PushPending({own_bound, entry.slot});
      }
      group_begin = group_end;
    }
  }

  // Gives the top cursor its new (larger) head and restores the heap. The moving cursor is
  // assembled from its fields and the new head, not reloaded after storing the head (a 16-byte
  // reload of an 8-byte store stalls on store forwarding).
  void SiftDownCursor(uint64_t new_head) {
    Cursor moving;
    moving.list = cursors[0].list;
    moving.position = cursors[0].position;
    moving.floor = cursors[0].floor;
    moving.head = new_head;
    SiftDownFromRoot(cursors, moving, [](const Cursor& c) { return c.head; });
  }
};

OfferBook::OfferBook() : impl_(std::make_unique<Impl>()) {}
OfferBook::~OfferBook() = default;
OfferBook::OfferBook(OfferBook&&) noexcept = default;
OfferBook& OfferBook::operator=(OfferBook&&) noexcept = default;

Status OfferBook::Upsert(const Offer& offer) {
  std::vector<DeviceType> offer_types;
  GPUMART_RETURN_IF_ERROR(OfferTypes(offer, offer_types));
  GPUMART_RETURN_IF_ERROR(impl_->CheckRoom(offer, offer_types));
  const uint32_t slot = impl_->Store(Normalize(offer, offer_types, impl_->types, impl_->denoms));
  impl_->Index(slot, /*keep_sorted=*/true);
  return Status::Ok();
}

Status OfferBook::UpsertAll(const std::vector<Offer>& offers) {
  std::unordered_map<std::string_view, size_t> first_seen;
  for (size_t i = 0; i < offers.size(); ++i) {
    if (!first_seen.emplace(offers[i].provider, i).second) {
      return Status::AlreadyExists("provider " + offers[i].provider + " listed twice");
    }
    GPUMART_RETURN_IF_ERROR(CheckOfferWork(offers[i]).WithContext("provider " + offers[i].provider));
  }
  // Replacements keep lists sorted one at a time; new providers are appended, then sorted once.
  std::vector<uint32_t> appended;
  for (const Offer& offer : offers) {
    if (impl_->slot_of.count(offer.provider) > 0) {
      Status status = Upsert(offer);
      if (!status.ok()) return status;
    }
  }
  std::vector<DeviceType> offer_types;
  Status status;
  for (const Offer& offer : offers) {
    if (impl_->slot_of.count(offer.provider) > 0) continue;
    status = OfferTypes(offer, offer_types);
    if (status.ok()) status = impl_->CheckRoom(offer, offer_types);
    if (!status.ok()) break;  // the lists are sorted below all the same
    const uint32_t slot = impl_->Store(Normalize(offer, offer_types, impl_->types, impl_->denoms));
    impl_->Index(slot, /*keep_sorted=*/false);
  }
  for (auto& [key, tiers] : impl_->index) {
    for (auto& list : tiers) {
      if (!std::is_sorted(list.entries.begin(), list.entries.end())) {
        std::sort(list.entries.begin(), list.entries.end());
      }
    }
  }
  return status;
}

bool OfferBook::Remove(std::string_view provider) {
  auto it = impl_->slot_of.find(std::string(provider));
  if (it == impl_->slot_of.end()) return false;
  const uint32_t slot = it->second;
  impl_->Drop(slot);
  impl_->free_slots.push_back(slot);
  impl_->slot_of.erase(it);
  return true;
}

Status OfferBook::ApplyCapacityChange(const CapacityChange& change) {
  auto it = impl_->slot_of.find(change.provider);
  if (it == impl_->slot_of.end()) return Status::NotFound("unknown provider " + change.provider);
  ProviderState& provider = impl_->providers[it->second];
  auto node_it = std::find_if(provider.nodes.begin(), provider.nodes.end(),
                              [&](const NodeState& n) { return n.name == change.node; });
  if (node_it == provider.nodes.end()) {
    return Status::NotFound("provider " + change.provider + " has no node " + change.node);
  }
  NodeState& node = *node_it;
  const auto node_index = static_cast<uint32_t>(node_it - provider.nodes.begin());
  Pool* pool = nullptr;
  if (change.gpus > 0) {
    if (!change.device) return Status::InvalidArgument("a GPU change needs a device type");
    DeviceType wanted = *change.device;
    wanted.vendor = ToLower(wanted.vendor);
    wanted.model = ToLower(wanted.model);
    const auto type = impl_->types.Find(wanted);
    for (Pool& p : provider.pools) {
      if (!type || p.node != node_index || p.type != *type) continue;
      if (change.kind == CapacityChange::Kind::kRelease || p.free >= change.gpus) {
        pool = &p;
        break;
      }
      if (pool == nullptr) pool = &p;
    }
    if (pool == nullptr) {
      return Status::NotFound("node " + change.node + " of " + change.provider +
                              " has no such device type");
    }
  }
  if (change.kind == CapacityChange::Kind::kReserve) {
    if ((pool != nullptr && pool->free < change.gpus) || node.cpu_millis < change.cpu_millis ||
        node.memory_bytes < change.memory_bytes || node.storage_bytes < change.storage_bytes) {
      return Status::FailedPrecondition("not enough free capacity on " + change.provider + "/" +
                                        change.node);
    }
    if (pool != nullptr) pool->free -= change.gpus;
    node.cpu_millis -= change.cpu_millis;
    node.memory_bytes -= change.memory_bytes;
    node.storage_bytes -= change.storage_bytes;
    return Status::Ok();
  }
  uint64_t cpu = 0, memory = 0, storage = 0;
  uint32_t gpus = 0;
  if (__builtin_add_overflow(node.cpu_millis, change.cpu_millis, &cpu) ||
      __builtin_add_overflow(node.memory_bytes, change.memory_bytes, &memory) ||
      __builtin_add_overflow(node.storage_bytes, change.storage_bytes, &storage) ||
      (pool != nullptr && __builtin_add_overflow(pool->free, change.gpus, &gpus))) {
    return Status::InvalidArgument("release overflows the capacity of " + change.provider + "/" +
                                   change.node);
  }
  if (pool != nullptr) pool->free = gpus;
  node.cpu_millis = cpu;
  node.memory_bytes = memory;
  node.storage_bytes = storage;
  return Status::Ok();
}

std::vector<Candidate> OfferBook::TopK(const Order& order, Policy policy, size_t k) {
  std::vector<Candidate> result;
  TopKInto(order, policy, k, result);
  return result;
}

// Several denoms: one single-denom query per denom, in the tenant's order. Every provider that
// can take the group in an earlier denom bids there (FitProvider), so it is left out of the later
// lists. A query asks for k more than the providers already taken: when a list comes back short,
// it holds every provider of its denom, so `taken` is exactly the providers of earlier denoms,
// and once k bids are in no later denom can add one (they all rank after).
void OfferBook::TopKInto(const Order& order, Policy policy, size_t k, std::vector<Candidate>& out) {
  if (!SeveralDenoms(order)) {
    impl_->TopK(order, policy, k, out);
    return;
  }
  out.clear();
  const std::vector<std::string> denoms = order.Denoms();
  std::set<std::string> taken;
  std::vector<Candidate> part;
  for (size_t i = 0; i < denoms.size() && out.size() < k; ++i) {
    impl_->TopK(*order.InDenom(denoms[i]), policy, SaturatingAdd(k, taken.size()), part);
    for (Candidate& candidate : part) {
      if (taken.contains(candidate.provider) || out.size() == k) continue;
      candidate.denom_rank = static_cast<uint32_t>(i);
      out.push_back(candidate);
    }
    for (const Candidate& candidate : part) taken.insert(candidate.provider);
  }
}

size_t OfferBook::size() const { return impl_->slot_of.size(); }

OfferBook::Stats OfferBook::stats() const {
  Stats stats;
  stats.offers = impl_->slot_of.size();
  stats.device_types = impl_->types.Live().size();
  stats.names = impl_->types.LiveNames();
  stats.denoms = impl_->denoms.Live();
  for (const auto& [key, tiers] : impl_->index) {
    stats.index_lists += tiers.size();
    for (const auto& list : tiers) stats.index_entries += list.entries.size();
  }
  return stats;
}

}  // namespace gpumart::market
