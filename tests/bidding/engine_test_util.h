// A provider, tenants and orders for the bid engine and pricing tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bidding/bid_engine.h"
#include "market/codec.h"
#include "market/crypto.h"

namespace gpumart::bidding::testing {

using market::GpuInterface;
using market::kGi;
using market::kTi;

constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kOrderTtlMs = 60'000;
constexpr int64_t kBidTtlMs = 10'000;

const market::DeviceType kH100{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm};
const market::DeviceType kA100{"nvidia", "a100", 40 * kGi, GpuInterface::kPcie};
const market::DeviceType kRtx4090{"nvidia", "rtx4090", 24 * kGi, GpuInterface::kPcie};

inline market::GpuDevices Devices(const market::DeviceType& type, uint32_t count) {
  return {type.vendor, type.model, type.ram_bytes, type.interface, market::CudaVersion{12, 4}, count};
}

inline market::NodeCapacity Node(std::string name, std::vector<market::GpuDevices> gpus) {
  return {std::move(name), 64'000, 512 * kGi, 2 * kTi, std::move(gpus)};
}

// One node with `h100s` H100 SXM GPUs.
inline market::Offer Inventory(uint32_t h100s) {
  market::Offer offer;
  offer.name = "test provider";
  offer.attributes = {{"region", "us-west"}};
  offer.nodes = {Node("n1", {Devices(kH100, h100s)})};
  return offer;
}

inline market::PriceTable Table() {
  market::PriceTable table;
  table.denom = "uakt";
  table.gpu = {{"h100.80Gi.sxm", 300'000}, {"a100", 200'000}, {"*", 90'000}};
  table.cpu = 1'000;
  table.memory = 200;
  table.storage = 10;
  return table;
}

inline PricingConfig TablePricing() {
  PricingConfig config;
  config.tables = {Table()};
  return config;
}

// One service, one replica, `units` GPUs of any NVIDIA model with at least `ram_min_gi` GiB.
inline market::Order GpuOrder(uint32_t units, std::string model = "*", uint64_t ram_min_gi = 24) {
  market::Order order;
  order.group = "train";
  market::ServiceRequest service;
  service.name = "trainer";
  service.profile = "trainer";
  service.resources.cpu_millis = 4'000;
  service.resources.memory_bytes = 16 * kGi;
  service.resources.storage = {market::StorageVolume{"default", 10 * kGi, std::nullopt, false}};
  service.resources.gpu.units = units;
  service.resources.gpu.options = {market::GpuOption{"nvidia", std::move(model), ram_min_gi * kGi, std::nullopt}};
  service.price_cap = market::PriceCap{"uakt", 1'000'000, market::PerBlockToPerHour(1'000'000)};
  order.services = {service};
  return order;
}

// What the table charges a GpuOrder on `rate` per GPU.
inline uint64_t TablePrice(uint32_t units, uint64_t rate) {
  return units * rate + 4 * 1'000 + 16 * 200 + 10 * 10;
}

inline market::Signed<market::Order> SignOrder(const market::Identity& tenant, const market::Order& order,
                                               int64_t now_ms = kNowMs, int64_t ttl_ms = kOrderTtlMs) {
  return market::MakeSigned(tenant, order, now_ms, ttl_ms, market::RandomNonce());
}

struct SignedAccept {
  market::Signed<market::Accept> accept;
  market::Bytes wire;
};
inline SignedAccept Accept(const market::Identity& tenant, const market::Signed<market::Bid>& bid,
                           int64_t now_ms = kNowMs) {
  market::Accept body{bid.body.order_id, bid.id, bid.envelope.signer};
  auto accept = market::MakeSigned(tenant, body, now_ms, kOrderTtlMs, market::RandomNonce());
  market::Bytes wire = market::EncodeEnvelope(accept.envelope);
  return {std::move(accept), std::move(wire)};
}

inline std::unique_ptr<BidEngine> MakeEngine(const market::Identity& provider, market::Offer inventory,
                                             PricingConfig pricing = TablePricing(), BidEngineOptions options = {}) {
  options.bid_ttl_ms = kBidTtlMs;
  auto engine = BidEngine::Create(provider, std::move(inventory), std::move(pricing), std::move(options));
  if (!engine.ok()) return nullptr;
  return std::move(*engine);
}

// Free GPUs of `type` in the engine's offer.
inline uint64_t FreeGpus(BidEngine& engine, const market::DeviceType& type) {
  uint64_t free = 0;
  for (const auto& node : engine.FreeOffer().nodes) {
    for (const auto& devices : node.gpus) {
      if (devices.model == type.model && devices.ram_bytes == type.ram_bytes) free += devices.count;
    }
  }
  return free;
}

inline uint64_t Skipped(const BidEngine& engine, SkipReason reason) {
  return engine.counters().skipped[static_cast<size_t>(reason)];
}

}  // namespace gpumart::bidding::testing
