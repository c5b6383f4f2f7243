// Matching benchmarks (BENCHMARKS.md): the indexed top-20 query against the obvious linear scan
// over the same offers, and the cost of applying a capacity change to the index.
//
// Offers are generated with a realistic mix of about 30 GPU types (popular consumer and
// datacenter cards common, exotic ones rare), 1-4 nodes per provider, partly booked capacity and
// prices scattered around each type's market rate. The order is the LLM example: 2 GPUs, an 80Gi
// H100 over SXM, else an 80Gi A100, else anything with at least 48Gi, CUDA >= 12.0.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>

#include "market/codec.h"
#include "market/match.h"

namespace gpumart::market {
namespace {

struct GpuKind {
  const char* vendor;
  const char* model;
  uint64_t ram_gi;
  GpuInterface interface;
  uint64_t rate;  // typical micro-units per GPU-hour
  int weight;     // relative share of providers
};

constexpr auto kSxm = GpuInterface::kSxm;
constexpr auto kPcie = GpuInterface::kPcie;
const GpuKind kKinds[] = {
    {"nvidia", "h100", 80, kSxm, 300'000, 8},     {"nvidia", "h100", 80, kPcie, 260'000, 5},
    {"nvidia", "h200", 141, kSxm, 380'000, 2},    {"nvidia", "b200", 192, kSxm, 500'000, 1},
    {"nvidia", "gh200", 96, kSxm, 350'000, 1},    {"nvidia", "a100", 80, kSxm, 200'000, 8},
    {"nvidia", "a100", 80, kPcie, 180'000, 6},    {"nvidia", "a100", 40, kSxm, 140'000, 4},
    {"nvidia", "a100", 40, kPcie, 120'000, 4},    {"nvidia", "l40s", 48, kPcie, 110'000, 6},
    {"nvidia", "l40", 48, kPcie, 95'000, 3},      {"nvidia", "a6000", 48, kPcie, 80'000, 4},
    {"nvidia", "rtx6000ada", 48, kPcie, 100'000, 2}, {"nvidia", "a40", 48, kPcie, 70'000, 3},
    {"nvidia", "a30", 24, kPcie, 50'000, 2},      {"nvidia", "a10", 24, kPcie, 45'000, 3},
    {"nvidia", "a10g", 24, kPcie, 45'000, 2},     {"nvidia", "l4", 24, kPcie, 40'000, 4},
    {"nvidia", "rtx4090", 24, kPcie, 40'000, 12}, {"nvidia", "rtx3090", 24, kPcie, 25'000, 8},
    {"nvidia", "rtx4080", 16, kPcie, 25'000, 3},  {"nvidia", "rtx3080", 10, kPcie, 15'000, 3},
    {"nvidia", "a5000", 24, kPcie, 30'000, 2},    {"nvidia", "a4000", 16, kPcie, 20'000, 2},
    {"nvidia", "t4", 16, kPcie, 15'000, 3},       {"nvidia", "v100", 32, kSxm, 60'000, 2},
    {"nvidia", "v100", 16, kPcie, 40'000, 2},     {"nvidia", "p100", 16, kPcie, 20'000, 1},
    {"amd", "mi300x", 192, kSxm, 280'000, 1},     {"amd", "mi250", 128, kSxm, 150'000, 1},
};

std::vector<Offer> GenerateOffers(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> weights;
  for (const GpuKind& kind : kKinds) weights.push_back(kind.weight);
  std::discrete_distribution<size_t> pick_kind(weights.begin(), weights.end());
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const char* regions[] = {"us-west", "us-east", "eu-central", "ap-south", "sa-east"};
  const CudaVersion cudas[] = {{11, 8}, {12, 2}, {12, 4}, {12, 6}};
  std::vector<Offer> offers(count);
  for (size_t i = 0; i < count; ++i) {
    Offer& offer = offers[i];
    offer.provider = "prov-" + std::to_string(i);
    offer.attributes["region"] = regions[uniform(0, 4)];
    offer.reputation_ppm = static_cast<uint32_t>(uniform(500'000, 1'000'000));
    PriceTable table;
    table.denom = "uakt";
    table.cpu = static_cast<uint64_t>(uniform(500, 1'500));
    table.memory = static_cast<uint64_t>(uniform(100, 300));
    table.storage = static_cast<uint64_t>(uniform(5, 15));
    const int node_count = uniform(1, 4);
    const GpuKind& main_kind = kKinds[pick_kind(rng)];
    for (int n = 0; n < node_count; ++n) {
      NodeCapacity node;
      node.name = "node-" + std::to_string(n);
      node.cpu_millis = static_cast<uint64_t>(uniform(16, 128)) * 1000;
      node.memory_bytes = static_cast<uint64_t>(uniform(64, 1024)) * kGi;
      node.storage_bytes = static_cast<uint64_t>(uniform(1, 8)) * kTi;
      // Most providers run one kind of card; some have a second kind on a node.
      std::vector<const GpuKind*> kinds{&main_kind};
      if (uniform(0, 9) == 0) kinds.push_back(&kKinds[pick_kind(rng)]);
      for (const GpuKind* kind : kinds) {
        if (std::any_of(node.gpus.begin(), node.gpus.end(), [&](const GpuDevices& g) { return g.model == kind->model && g.ram_bytes == kind->ram_gi * kGi && g.interface == kind->interface; })) continue;
        GpuDevices gpu;
        gpu.vendor = kind->vendor;
        gpu.model = kind->model;
        gpu.ram_bytes = kind->ram_gi * kGi;
        gpu.interface = kind->interface;
        gpu.cuda = cudas[uniform(0, 3)];
        gpu.count = static_cast<uint32_t>(uniform(0, 8));  // partly booked
        node.gpus.push_back(gpu);
        const std::string key = std::string(kind->model) + "." + FormatGi(gpu.ram_bytes) + "." +
                                std::string(ToString(kind->interface));
        if (table.gpu.count(key) == 0) {
          table.gpu[key] = kind->rate * static_cast<uint64_t>(uniform(70, 130)) / 100;
        }
      }
      offer.nodes.push_back(std::move(node));
    }
    offer.pricing.push_back(std::move(table));
  }
  return offers;
}

Order LlmOrder() {
  ServiceRequest service;
  service.name = "vllm";
  service.count = 1;
  service.resources.cpu_millis = 16'000;
  service.resources.memory_bytes = 64 * kGi;
  service.resources.storage = {{"default", 20 * kGi, std::nullopt, false}, {"models", 200 * kGi, "beta3", true}};
  service.resources.gpu.units = 2;
  GpuOption h100{"nvidia", "h100", 80 * kGi, kSxm};
  GpuOption a100{"nvidia", "a100", 80 * kGi, std::nullopt};
  GpuOption any48{"nvidia", "*", 48 * kGi, std::nullopt};
  service.resources.gpu.options = {h100, a100, any48};
  service.cuda_min = CudaVersion{12, 0};
  service.price_cap = {"uakt", 250'000, PerBlockToPerHour(250'000)};
  Order order;
  order.group = "dcloud";
  order.services.push_back(std::move(service));
  return order;
}

constexpr size_t kTop = 20;
constexpr uint32_t kSeed = 20'240'601;

// Generated offers and their book per size, built once per process: setup at 100,000 providers
// takes longer than the measurement, and Google Benchmark calls a benchmark several times.
struct Market {
  std::vector<Offer> offers;
  OfferBook book;
};
Market& MarketOf(size_t providers) {
  static std::map<size_t, std::unique_ptr<Market>> markets;
  auto& market = markets[providers];
  if (!market) {
    market = std::make_unique<Market>();
    market->offers = GenerateOffers(providers, kSeed);
    if (!market->book.UpsertAll(market->offers).ok()) std::abort();
  }
  return *market;
}

// The query as a serving loop runs it: TopKInto reuses the result vector's storage.
void BM_MatchTop20(benchmark::State& state) {
  Market& market = MarketOf(static_cast<size_t>(state.range(0)));
  const Order order = LlmOrder();
  std::vector<Candidate> top;
  market.book.TopKInto(order, Policy::kPreference, kTop, top);
  if (top.size() != kTop || top != LinearScanTopK(order, market.offers, Policy::kPreference, kTop)) {
    state.SkipWithError("index and linear scan disagree");
    return;
  }
  for (auto _ : state) {
    market.book.TopKInto(order, Policy::kPreference, kTop, top);
    benchmark::DoNotOptimize(top.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MatchTop20)->Arg(1'000)->Arg(10'000)->Arg(100'000);

// The same with a fresh result per query (TopK): the cost of allocating 20 candidates.
void BM_MatchTop20Alloc(benchmark::State& state) {
  Market& market = MarketOf(static_cast<size_t>(state.range(0)));
  const Order order = LlmOrder();
  for (auto _ : state) {
    auto top = market.book.TopK(order, Policy::kPreference, kTop);
    benchmark::DoNotOptimize(top.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MatchTop20Alloc)->Arg(1'000)->Arg(10'000)->Arg(100'000);

void BM_MatchLinearScan(benchmark::State& state) {
  Market& market = MarketOf(static_cast<size_t>(state.range(0)));
  const Order order = LlmOrder();
  for (auto _ : state) {
    auto top = LinearScanTopK(order, market.offers, Policy::kPreference, kTop);
    benchmark::DoNotOptimize(top.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MatchLinearScan)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMicrosecond);

// Reserve then release 1 GPU (and 4 cores) on random providers' nodes of a 100,000-provider book.
void BM_OfferUpdate(benchmark::State& state) {
  Market& market = MarketOf(100'000);
  std::mt19937 rng(kSeed);
  std::vector<CapacityChange> changes;
  while (changes.size() < 4'096) {
    const Offer& offer = market.offers[rng() % market.offers.size()];
    const NodeCapacity& node = offer.nodes[rng() % offer.nodes.size()];
    if (node.gpus.empty() || node.gpus[0].count == 0) continue;
    CapacityChange change;
    change.provider = offer.provider;
    change.node = node.name;
    change.device = DeviceType{node.gpus[0].vendor, node.gpus[0].model, node.gpus[0].ram_bytes, node.gpus[0].interface};
    change.gpus = 1;
    change.cpu_millis = 4'000;
    changes.push_back(change);
  }
  size_t next = 0;
  for (auto _ : state) {
    CapacityChange& change = changes[next++ & (changes.size() - 1)];
    change.kind = CapacityChange::Kind::kReserve;
    Status reserved = market.book.ApplyCapacityChange(change);
    change.kind = CapacityChange::Kind::kRelease;
    Status released = market.book.ApplyCapacityChange(change);
    if (!reserved.ok() || !released.ok()) {
      state.SkipWithError("capacity change failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_OfferUpdate);

// ---------------------------------------------------------------------------------------------
// The worst offer the work bounds admit (issue 11, item 10): kMaxOfferGpuEntries entries on
// limits::kMaxNodes nodes, kMaxOfferDeviceTypes device types all priced, the most attributes
// (as a peer could send it: its body fits in one message, checked) and the most auditors this
// node may fill in from attestations (node-local, not on the wire). Each order
// makes the evaluator work a different way; the budget must hold every one under 1 ms.

Offer WorstOffer() {
  Offer offer;
  offer.provider = std::string(limits::kMaxNameBytes, 'p');
  for (size_t a = 0; a < limits::kMaxAttributes; ++a) offer.attributes["attr" + std::to_string(a)] = "v";
  for (size_t a = 0; a < limits::kMaxAuditors; ++a) offer.auditors.push_back("auditor" + std::to_string(a));
  PriceTable table;
  table.denom = "uakt";
  table.gpu["*"] = 100;
  table.cpu = 1000;
  table.memory = 200;
  table.storage = 10;
  offer.pricing.push_back(table);
  const size_t per_node = kMaxOfferGpuEntries / limits::kMaxNodes;
  for (size_t n = 0; n < limits::kMaxNodes; ++n) {
    // 1.5 cores: a node holds one replica of a 1-core service, which makes placement searches
    // backtrack (see the orders below).
    NodeCapacity node{"n" + std::to_string(n), 1'500, 64 * kGi, 1 * kTi, {}};
    for (size_t j = 0; j < per_node; ++j) {
      GpuDevices gpu;
      gpu.model = "m" + std::to_string((n * per_node + j) % kMaxOfferDeviceTypes);
      gpu.ram_bytes = 80 * kGi;
      gpu.interface = kSxm;
      gpu.cuda = CudaVersion{12, 4};
      gpu.count = 2;
      node.gpus.push_back(gpu);
    }
    offer.nodes.push_back(std::move(node));
  }
  return offer;
}

ServiceRequest OneCoreService(std::string name, uint32_t count, uint32_t units) {
  ServiceRequest service;
  service.name = std::move(name);
  service.count = count;
  service.resources.cpu_millis = 1'000;
  service.resources.gpu.units = units;
  if (units > 0) service.resources.gpu.options = {GpuOption{"nvidia", "*", std::nullopt, std::nullopt}};
  service.price_cap = {"uakt", 0, 1'000'000'000};
  return service;
}

// 0: two GPU services of 129 replicas, any type each: 4096 combinations, each placement failing
//    only after an exponential backtracking search (each type is on 128 nodes, one replica fits
//    a node). Before the bounds: seconds.
// 1: four GPU services of 2 replicas: every combination pays the placement prechecks over all
//    8192 entries and 4096 nodes.
// 2: one GPU service and one CPU-only service of 4097 replicas: one more replica than nodes.
// 3: the most services (limits::kMaxServices), each a GPU replica of any type.
Order WorstOrder(int64_t which) {
  Order order;
  order.group = "worst";
  switch (which) {
    case 0:
      order.services = {OneCoreService("a", 129, 1), OneCoreService("b", 129, 1)};
      break;
    case 1:
      for (int s = 0; s < 4; ++s) order.services.push_back(OneCoreService("s" + std::to_string(s), 2, 2));
      break;
    case 2:
      order.services = {OneCoreService("gpu", 1, 1),
                        OneCoreService("cpu", static_cast<uint32_t>(limits::kMaxNodes), 0)};
      break;
    default:
      for (size_t s = 0; s < limits::kMaxServices; ++s) {
        order.services.push_back(OneCoreService("s" + std::to_string(s), 1, 1));
      }
      break;
  }
  return order;
}

void BM_MatchWorstOffer(benchmark::State& state) {
  const Offer offer = WorstOffer();
  if (!CheckOfferWork(offer).ok() || EncodeBody(offer).size() > limits::kMaxBodyBytes) {
    state.SkipWithError("the worst offer is not admitted");
    return;
  }
  OfferBook book;
  if (!book.Upsert(offer).ok()) std::abort();
  const Order order = WorstOrder(state.range(0));
  std::vector<Candidate> top;
  for (auto _ : state) {
    book.TopKInto(order, Policy::kPreference, kTop, top);
    benchmark::DoNotOptimize(top.data());
  }
  state.counters["body_bytes"] = static_cast<double>(EncodeBody(offer).size());
  state.counters["exclusion"] = static_cast<double>(FitProvider(order, offer).exclusion.reason);
}
BENCHMARK(BM_MatchWorstOffer)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

// What the worst admitted offer costs when it arrives (checks, normalization, indexing).
void BM_MatchWorstOfferUpsert(benchmark::State& state) {
  const Offer offer = WorstOffer();
  OfferBook book;
  for (auto _ : state) {
    if (!book.Upsert(offer).ok()) std::abort();
  }
}
BENCHMARK(BM_MatchWorstOfferUpsert)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gpumart::market
