// The property the offer query fuzz target checks (tests/fuzz/fuzz_offer_query.cpp), shared with
// the unit test that replays its seed corpus, so the seeds are checked on every build.
//
// Input: `query \n order \n limit-byte...`. Any bytes give a parsed query or an error, never a
// crash; a parsed query searched with any limit returns the first rows of the same search with
// the largest limit (the order is total and the bounded heap keeps exactly the best rows), and
// never more rows than the limit or than matched.
#pragma once

#include <algorithm>
#include <string_view>
#include <vector>

#include "market/offer_query.h"
#include "market/offers.h"

namespace gpumart::market::testing {

// Two providers, four rows, one device without a CUDA version, two denoms.
inline const std::vector<Offer>& FuzzOffers() {
  static const std::vector<Offer> offers = [] {
    auto parsed = ParseOffers(R"(
providers:
  - id: prov-a
    attributes: {region: us-west, country: US}
    auditors: [auditor-1]
    reputation: 0.97
    pricing:
      - {denom: uakt, gpu: {"h100.80Gi.sxm": 300000, "a100": 200000}}
      - {denom: uusdc, gpu: {"*": 2000000}}
    nodes:
      - {name: n1, cpu_millis: 64000, memory: 512Gi, storage: 2Ti,
         gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: "12.4", count: 8}]}
  - id: prov-b
    attributes: {region: us-east}
    reputation: 0.5
    pricing: [{denom: uakt, gpu: {"*": 90000}}]
    nodes:
      - {name: b1, cpu_millis: 32000, memory: 256Gi,
         gpus: [{model: rtx4090, ram: 24Gi, cuda: "12.2", count: 4}, {model: a100, ram: 80Gi, count: 1}]}
)");
    return parsed.ok() ? *parsed : std::vector<Offer>{};
  }();
  return offers;
}

// False when the property fails (the fuzz target traps).
inline bool CheckOfferQueryInput(std::string_view input) {
  const size_t first = input.find('\n');
  const std::string_view query_text = input.substr(0, first);
  std::string_view rest = first == std::string_view::npos ? std::string_view() : input.substr(first + 1);
  const size_t second = rest.find('\n');
  const std::string_view order_text = rest.substr(0, second);
  const size_t limit =
      second == std::string_view::npos || second + 1 >= rest.size() ? 3 : static_cast<uint8_t>(rest[second + 1]) % 8;
  auto query = ParseOfferQuery(query_text);
  auto order = ParseOfferOrder(order_text);
  if (!query.ok() || !order.ok()) return true;
  if (FuzzOffers().empty()) return false;
  const OfferSearchResult all = SearchOffers(FuzzOffers(), *query, *order, kMaxOfferSearchRows);
  const OfferSearchResult some = SearchOffers(FuzzOffers(), *query, *order, limit);
  if (all.rows.size() != all.matched || some.matched != all.matched) return false;
  if (some.rows.size() != std::min(limit, all.matched)) return false;
  return std::equal(some.rows.begin(), some.rows.end(), all.rows.begin());
}

}  // namespace gpumart::market::testing
