// Bid engine benchmark (issue 13). Target (../shared/BENCHMARKS.md):
//   BM_OrderToBid: an Order's wire bytes in -> a signed Bid out, in process, with 10,000 open
//   orders and their reservations live: p50 <= 100 us (order verification and bid signature
//   included), >= 5,000 orders/s on one core.
//
// The steady state: every bid holds its reservation for kBidTtlMs and virtual time advances 1 ms
// per order, so 10,000 reservations are live throughout and each order also pays for expiring
// the oldest (BidEngine::Tick), as the daemon would.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "bidding/bid_engine.h"
#include "market/codec.h"
#include "market/crypto.h"

namespace gpumart::bidding {
namespace {

using market::GpuInterface;
using market::kGi;

constexpr int64_t kStartMs = 1'750'000'000'000;
constexpr int64_t kStepMs = 1;
constexpr size_t kOpenOrders = 10'000;
constexpr int64_t kBidTtlMs = kOpenOrders * kStepMs;
// Orders are reused once their reservation expired (2 x the live ones apart): a fresh signed
// order per iteration would spend the setup signing.
constexpr size_t kOrderPool = 2 * kOpenOrders;

// A big provider: 8 nodes, each with 1,000 H100 SXM and 500 A100 PCIe (12,000 GPUs), so 10,000
// one-GPU reservations fit with room.
market::Offer Inventory() {
  market::Offer offer;
  offer.name = "bench provider";
  offer.attributes = {{"region", "us-west"}};
  for (int n = 0; n < 8; ++n) {
    market::NodeCapacity node;
    node.name = "node-" + std::to_string(n);
    node.cpu_millis = 10'000'000;
    node.memory_bytes = 100'000 * kGi;
    node.storage_bytes = 1'000'000 * kGi;
    node.gpus = {market::GpuDevices{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm, market::CudaVersion{12, 4}, 1'000},
                 market::GpuDevices{"nvidia", "a100", 80 * kGi, GpuInterface::kPcie, market::CudaVersion{12, 2}, 500}};
    offer.nodes.push_back(std::move(node));
  }
  return offer;
}

PricingConfig Pricing() {
  market::PriceTable table;
  table.denom = "uakt";
  table.gpu = {{"h100.80Gi.sxm", 3'000'000}, {"a100", 1'500'000}, {"*", 900'000}};
  table.cpu = 10'000;
  table.memory = 2'000;
  table.storage = 100;
  PricingConfig config;
  config.tables = {table};
  return config;
}

// One GPU with three fallbacks (an H100 SXM, else an 80Gi A100, else anything with 48Gi), in
// us-west, plus its CPU, memory and storage.
market::Order Order() {
  market::Order order;
  order.group = "inference";
  order.attributes = {{"region", "us-west"}};
  market::ServiceRequest service;
  service.name = "vllm";
  service.profile = "vllm";
  service.resources.cpu_millis = 100;
  service.resources.memory_bytes = kGi;
  service.resources.storage = {market::StorageVolume{"default", 10 * kGi, std::nullopt, false}};
  service.resources.gpu.units = 1;
  service.resources.gpu.options = {market::GpuOption{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm},
                                   market::GpuOption{"nvidia", "a100", 80 * kGi, std::nullopt},
                                   market::GpuOption{"nvidia", "*", 48 * kGi, std::nullopt}};
  service.cuda_min = market::CudaVersion{12, 0};
  service.price_cap = market::PriceCap{"uakt", 10'000, market::PerBlockToPerHour(10'000)};
  order.services = {service};
  return order;
}

void BM_OrderToBid(benchmark::State& state) {
  const market::Identity provider = market::Identity::FromSeed(market::Seed{7});
  BidEngineOptions options;
  options.bid_ttl_ms = kBidTtlMs;
  auto created = BidEngine::Create(provider, Inventory(), Pricing(), options);
  if (!created.ok()) return state.SkipWithError(created.status().ToString().c_str());
  BidEngine& engine = **created;

  std::vector<market::Bytes> orders;
  orders.reserve(kOrderPool);
  const market::Order order = Order();
  for (size_t i = 0; i < kOrderPool; ++i) {
    // Many tenants; every order valid for a day of virtual time.
    const market::Identity tenant = market::Identity::FromSeed(market::Seed{static_cast<uint8_t>(i % 251), 1});
    orders.push_back(market::EncodeEnvelope(
        market::MakeSigned(tenant, order, kStartMs, 24LL * 3600 * 1000, i + 1).envelope));
  }
  int64_t now = kStartMs;
  size_t next = 0;
  auto one_order = [&]() -> bool {
    now += kStepMs;
    engine.Tick(now);
    const EngineStep step = engine.OnOrderBytes(orders[next], now);
    next = (next + 1) % kOrderPool;
    benchmark::DoNotOptimize(step.bids.data());
    return step.bids.size() == 1;
  };
  for (size_t i = 0; i < kOpenOrders; ++i) {
    if (!one_order()) return state.SkipWithError("the warm-up got no bid");
  }

  std::vector<int64_t> latencies_ns;
  latencies_ns.reserve(1 << 20);
  bool all_bid = true;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    all_bid = one_order() && all_bid;
    latencies_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  }
  if (!all_bid) return state.SkipWithError("an order got no bid");
  std::sort(latencies_ns.begin(), latencies_ns.end());
  auto percentile_us = [&](double p) {
    return static_cast<double>(latencies_ns[std::min(latencies_ns.size() - 1,
                                                     static_cast<size_t>(p * latencies_ns.size()))]) / 1e3;
  };
  state.counters["p50_us"] = percentile_us(0.50);
  state.counters["p99_us"] = percentile_us(0.99);
  state.counters["live_reservations"] = static_cast<double>(engine.live_reservations());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OrderToBid)->Unit(benchmark::kMicrosecond)->MinTime(2.0);

// The floor under BM_OrderToBid: what any provider must spend per order whatever its engine does,
// verifying the order (decode + Ed25519 verify) and signing a bid (Ed25519 sign).
void BM_VerifyOrderSignBid(benchmark::State& state) {
  const market::Identity provider = market::Identity::FromSeed(market::Seed{7});
  const market::Identity tenant = market::Identity::FromSeed(market::Seed{8});
  const market::Bytes wire =
      market::EncodeEnvelope(market::MakeSigned(tenant, Order(), kStartMs, 24LL * 3600 * 1000, 1).envelope);
  market::Bid bid;
  bid.group = "inference";
  bid.denom = "uakt";
  bid.price_per_hour = 3'000'000;
  bid.services = {market::ServiceAssignment{"vllm", 0, market::DeviceType{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm},
                                            {market::Placement{"node-0", 1}}}};
  bid.reservation_expires_ms = kStartMs + kBidTtlMs;
  uint64_t nonce = 0;
  for (auto _ : state) {
    auto order = market::OpenSigned<market::Order>(wire, kStartMs + 1);
    if (!order.ok()) return state.SkipWithError(order.status().ToString().c_str());
    bid.order_id = order->id;
    bid.tenant = order->envelope.signer;
    auto signed_bid = market::MakeSigned(provider, bid, kStartMs + 1, kBidTtlMs, ++nonce);
    benchmark::DoNotOptimize(signed_bid.id);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyOrderSignBid)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gpumart::bidding
