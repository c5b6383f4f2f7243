// libFuzzer target for offers going into an OfferBook (market/match.h), as a node's offers
// service will feed it from peers: decoded offers upserted, providers removed, capacity reserved
// and released, and queries, in any order. Nothing may crash or take unbounded time (libFuzzer's
// -timeout catches a stall), and until capacity changes, every query must return exactly what
// the reference full scan (LinearScanTopK) returns over the same offers, as match.h promises.
//
// Input: frames of  op:1 len:2 (big-endian) payload:len . op % 5: 0 the payload is the Order body
// to query with (no query runs before one), 1 an Offer body
// to upsert, 2 remove the provider named by the payload, 3 a capacity change derived from the
// payload against a known offer, 4 a query with k = payload length % 8 + 1.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "market/codec.h"
#include "market/match.h"

using namespace gpumart::market;

namespace {

struct Fuzz {
  OfferBook book;
  std::map<std::string, Offer> offers;  // what the book should hold, by provider id
  std::optional<Order> order;
  bool changed_capacity = false;

  void Query(size_t k) {
    if (!order) return;
    std::vector<Offer> all;
    for (const auto& [id, offer] : offers) all.push_back(offer);
    for (Policy policy : {Policy::kPreference, Policy::kCheapest}) {
      const auto fast = book.TopK(*order, policy, k);
      if (fast.size() > k) __builtin_trap();
      if (!changed_capacity && fast != LinearScanTopK(*order, all, policy, k)) __builtin_trap();
    }
  }

  void Capacity(std::span<const uint8_t> payload) {
    if (offers.empty() || payload.empty()) return;
    auto it = offers.begin();
    std::advance(it, payload[0] % offers.size());
    const Offer& offer = it->second;
    if (offer.nodes.empty()) return;
    const NodeCapacity& node = offer.nodes[(payload.size() > 1 ? payload[1] : 0) % offer.nodes.size()];
    CapacityChange change;
    change.kind = payload[0] & 0x80 ? CapacityChange::Kind::kRelease : CapacityChange::Kind::kReserve;
    change.provider = offer.provider;
    change.node = node.name;
    const uint64_t amount = payload.size() > 2 ? payload[2] : 1;
    if (!node.gpus.empty() && payload.size() > 3) {
      const GpuDevices& gpu = node.gpus[payload[3] % node.gpus.size()];
      change.device = DeviceType{gpu.vendor, gpu.model, gpu.ram_bytes, gpu.interface};
      change.gpus = static_cast<uint32_t>(amount % 9);
    }
    change.cpu_millis = amount * 250;
    change.memory_bytes = amount << 28;
    change.storage_bytes = amount << 30;
    // After a change that took effect the book's free capacity differs from the offers as
    // published, so the reference scan no longer applies; queries still must not crash or stall.
    if (book.ApplyCapacityChange(change).ok()) changed_capacity = true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fuzz fuzz;
  size_t at = 0;
  while (size - at >= 3) {
    const uint8_t op = data[at] % 5;
    const size_t length = std::min<size_t>((size_t{data[at + 1]} << 8) | data[at + 2], size - at - 3);
    const std::span<const uint8_t> payload(data + at + 3, length);
    at += 3 + length;
    switch (op) {
      case 0:
        if (auto order = DecodeOrder(payload); order.ok()) fuzz.order = std::move(order).value();
        break;
      case 1:
        if (auto offer = DecodeOffer(payload); offer.ok()) {
          if (fuzz.book.Upsert(*offer).ok()) fuzz.offers[offer->provider] = *offer;
        }
        break;
      case 2: {
        const std::string provider(payload.begin(), payload.end());
        if (fuzz.book.Remove(provider) != (fuzz.offers.erase(provider) == 1)) __builtin_trap();
        break;
      }
      case 3:
        fuzz.Capacity(payload);
        break;
      case 4:
        fuzz.Query(length % 8 + 1);
        break;
    }
    if (fuzz.book.size() != fuzz.offers.size()) __builtin_trap();
  }
  fuzz.Query(fuzz.offers.size() + 1);
  return 0;
}
