// BidSelection: the tenant's side of one order's bid window, as a state machine fed (bid, now).
// Each verified bid (OpenSigned: signature and freshness) is checked against the order
// (CheckBidAgainstOrder), kept or dropped and counted by reason; the kept bids are ranked with
// the matching engine's own order (market::RanksBefore), so a tenant ranks bids exactly as
// `gpumart match` would rank the same providers. No I/O, no clock of its own, one owner.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bidding/bid_check.h"
#include "market/codec.h"
#include "market/match.h"

namespace gpumart::bidding {

struct SelectedBid {
  market::Signed<market::Bid> bid;
  market::Candidate candidate;  // what ranking compares: ranks, price, reputation, provider
};

class BidSelection {
 public:
  // The tenant's own signed order: a bid must name its id and its signer as the tenant.
  BidSelection(const market::Signed<market::Order>& order, market::Policy policy);

  // Checks `bid` (already verified) at now_ms and keeps it, or drops it and counts why.
  // `reputation_ppm` is what this node computed for the bidder's key and this order
  // (LedgerStore::Reputation: lease outcomes and the order's named auditors' attestations),
  // never a number the bidder states. `provider` is the label ranking breaks ties with and
  // reports (the signer's key in hex when empty); the bidder is identified by its signing key.
  BidCheck Add(const market::Signed<market::Bid>& bid, int64_t now_ms, uint32_t reputation_ppm,
               std::string provider = {});

  // The kept bids whose bid and reservation are still valid at now_ms, best first.
  std::vector<const SelectedBid*> Ranking(int64_t now_ms) const;

  uint64_t dropped(BidProblem problem) const { return dropped_[static_cast<size_t>(problem)]; }
  uint64_t dropped_total() const;
  size_t kept() const { return kept_.size(); }

 private:
  market::MessageId order_id_;
  market::PublicKey tenant_;
  market::Order order_;
  market::Policy policy_;
  std::vector<SelectedBid> kept_;
  std::array<uint64_t, kBidProblemCount> dropped_{};
};

}  // namespace gpumart::bidding
