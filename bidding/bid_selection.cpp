#include "bidding/bid_selection.h"

#include <algorithm>
#include <numeric>

namespace gpumart::bidding {

namespace {

// A bid is worth accepting only while it and the reservation behind it last.
bool Expired(const market::Signed<market::Bid>& bid, int64_t now_ms) {
  return bid.envelope.expires_ms <= now_ms || bid.body.reservation_expires_ms <= now_ms;
}

}  // namespace

BidSelection::BidSelection(const market::Signed<market::Order>& order, market::Policy policy)
    : order_id_(order.id), tenant_(order.envelope.signer), order_(order.body), policy_(policy) {}

BidCheck BidSelection::Add(const market::Signed<market::Bid>& bid, int64_t now_ms, uint32_t reputation_ppm,
                           std::string provider) {
  BidCheck check;
  if (bid.body.order_id != order_id_) {
    check = BidCheck{BidProblem::kWrongOrder, "the bid answers order " + market::ToHex(bid.body.order_id)};
  } else if (bid.body.tenant != tenant_) {
    check = BidCheck{BidProblem::kWrongOrder, "the bid names tenant " + market::ToHex(bid.body.tenant)};
  } else if (Expired(bid, now_ms)) {
    check = BidCheck{BidProblem::kExpired, "the bid or its reservation expired by " + std::to_string(now_ms)};
  } else if (std::any_of(kept_.begin(), kept_.end(),
                         [&](const SelectedBid& kept) { return kept.bid.envelope.signer == bid.envelope.signer; })) {
    check = BidCheck{BidProblem::kDuplicateBidder, "provider " + market::ToHex(bid.envelope.signer) + " already bid"};
  } else {
    check = CheckBidAgainstOrder(order_, bid.body);
  }
  if (!check.ok()) {
    ++dropped_[static_cast<size_t>(check.problem)];
    return check;
  }
  SelectedBid selected{bid, {}};
  market::Candidate& candidate = selected.candidate;
  candidate.provider = provider.empty() ? market::ToHex(bid.envelope.signer) : std::move(provider);
  candidate.denom = bid.body.denom;
  candidate.denom_rank = static_cast<uint32_t>(order_.DenomRank(bid.body.denom).value_or(0));
  candidate.price_per_hour = bid.body.price_per_hour;
  candidate.reputation_ppm = reputation_ppm;
  candidate.ranks = OptionRanks(order_, bid.body);
  candidate.services = bid.body.services;
  kept_.push_back(std::move(selected));
  return check;
}

std::vector<const SelectedBid*> BidSelection::Ranking(int64_t now_ms) const {
  std::vector<const SelectedBid*> ranking;
  for (const auto& selected : kept_) {
    if (!Expired(selected.bid, now_ms)) ranking.push_back(&selected);
  }
  std::stable_sort(ranking.begin(), ranking.end(), [this](const SelectedBid* a, const SelectedBid* b) {
    return market::RanksBefore(a->candidate, b->candidate, policy_);
  });
  return ranking;
}

uint64_t BidSelection::dropped_total() const { return std::accumulate(dropped_.begin(), dropped_.end(), uint64_t{0}); }

}  // namespace gpumart::bidding
