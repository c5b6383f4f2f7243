#include "bidding/bid_selection.h"

#include <gtest/gtest.h>

#include "market/crypto.h"
#include "tests/market/test_messages.h"

namespace gpumart::bidding {
namespace {

using market::GpuInterface;
using market::kGi;

constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kTtlMs = 60'000;
// What the tenant's node computed for every bidder (a newcomer's score): ranking breaks ties on it.
constexpr uint32_t kReputationPpm = 500'000;

class BidSelectionTest : public ::testing::Test {
 protected:
  BidSelectionTest() : tenant_(market::Identity::Generate()) {
    order_ = market::MakeSigned(tenant_, market::testing::SampleOrder(), kNowMs, kTtlMs, 1);
  }

  // A bid for the order from a fresh provider key: vllm on `device` as option `option`.
  market::Signed<market::Bid> Bid(uint32_t option, market::DeviceType device, uint64_t price_per_hour,
                                  const market::Identity& provider = market::Identity::Generate()) {
    market::Bid bid;
    bid.order_id = order_.id;
    bid.group = order_.body.group;
    bid.denom = order_.body.Denom();
    bid.price_per_hour = price_per_hour;
    bid.tenant = tenant_.public_key();
    bid.services = market::testing::SampleAssignments();
    bid.services[0].option = option;
    bid.services[0].device = std::move(device);
    bid.reservation_expires_ms = kNowMs + kTtlMs;
    return market::MakeSigned(provider, bid, kNowMs, kTtlMs, ++nonce_);
  }

  market::Identity tenant_;
  market::Signed<market::Order> order_;
  uint64_t nonce_ = 0;
};

const market::DeviceType kH100{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm};
const market::DeviceType kA100{"nvidia", "a100", 80 * kGi, GpuInterface::kPcie};

// A provider with A100s claims option 0 (the H100 the tenant prefers) to be ranked first. The
// tenant once ranked it first on its word.
TEST_F(BidSelectionTest, BidClaimingARankItsDeviceDoesNotEarnIsDroppedNotRankedFirst) {
  BidSelection selection(order_, market::Policy::kPreference);
  const auto honest = Bid(1, kA100, 2'000'000);
  const auto liar = Bid(0, kA100, 1'000'000);
  EXPECT_TRUE(selection.Add(honest, kNowMs, kReputationPpm).ok());
  const BidCheck check = selection.Add(liar, kNowMs, kReputationPpm);
  EXPECT_EQ(check.problem, BidProblem::kDeviceMismatch) << check.detail;
  const auto ranking = selection.Ranking(kNowMs);
  ASSERT_EQ(ranking.size(), 1u);
  EXPECT_EQ(ranking[0]->bid.id, honest.id);
  EXPECT_EQ(selection.dropped(BidProblem::kDeviceMismatch), 1u);
  EXPECT_EQ(selection.dropped_total(), 1u);
}

TEST_F(BidSelectionTest, RanksLikeTheMatchingEngine) {
  for (const market::Policy policy : {market::Policy::kPreference, market::Policy::kCheapest}) {
    BidSelection selection(order_, policy);
    const std::vector<market::Signed<market::Bid>> bids = {
        Bid(1, kA100, 1'000'000), Bid(0, kH100, 3'000'000), Bid(0, kH100, 2'000'000), Bid(2, kA100, 500'000)};
    std::vector<market::Candidate> expected;
    for (const auto& bid : bids) {
      ASSERT_TRUE(selection.Add(bid, kNowMs, kReputationPpm, market::ToHex(bid.envelope.signer)).ok());
      market::Candidate candidate;
      candidate.provider = market::ToHex(bid.envelope.signer);
      candidate.denom = bid.body.denom;
      candidate.price_per_hour = bid.body.price_per_hour;
      candidate.reputation_ppm = kReputationPpm;
      candidate.ranks = {*bid.body.services[0].option};
      candidate.services = bid.body.services;
      expected.push_back(candidate);
    }
    market::SortCandidates(expected, policy);
    const auto ranking = selection.Ranking(kNowMs);
    ASSERT_EQ(ranking.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(ranking[i]->candidate, expected[i]) << i;
  }
}

TEST_F(BidSelectionTest, BidForAnotherOrderIsDropped) {
  BidSelection selection(order_, market::Policy::kPreference);
  auto bid = Bid(0, kH100, 1'000'000);
  bid.body.order_id[0] ^= 1;
  bid = market::MakeSigned(market::Identity::Generate(), bid.body, kNowMs, kTtlMs, 99);
  EXPECT_EQ(selection.Add(bid, kNowMs, kReputationPpm).problem, BidProblem::kWrongOrder);
  EXPECT_TRUE(selection.Ranking(kNowMs).empty());
}

TEST_F(BidSelectionTest, ExpiredBidsAreDroppedAndLeaveTheRankingWhenTheyExpire) {
  BidSelection selection(order_, market::Policy::kPreference);
  const auto bid = Bid(0, kH100, 1'000'000);
  EXPECT_EQ(selection.Add(bid, kNowMs + kTtlMs, kReputationPpm).problem, BidProblem::kExpired);
  auto short_reservation = Bid(1, kA100, 1'000'000);
  short_reservation.body.reservation_expires_ms = kNowMs + 1'000;
  short_reservation = market::MakeSigned(market::Identity::Generate(), short_reservation.body, kNowMs, kTtlMs, 98);
  EXPECT_TRUE(selection.Add(short_reservation, kNowMs, kReputationPpm).ok());
  EXPECT_TRUE(selection.Add(bid, kNowMs, kReputationPpm).ok());
  EXPECT_EQ(selection.Ranking(kNowMs).size(), 2u);
  // Its reservation gone, the provider no longer holds the capacity: nothing to accept.
  ASSERT_EQ(selection.Ranking(kNowMs + 1'000).size(), 1u);
  EXPECT_EQ(selection.Ranking(kNowMs + 1'000)[0]->bid.id, bid.id);
  EXPECT_TRUE(selection.Ranking(kNowMs + kTtlMs).empty());
  EXPECT_EQ(selection.dropped(BidProblem::kExpired), 1u);
}

TEST_F(BidSelectionTest, OneBidPerProviderKey) {
  BidSelection selection(order_, market::Policy::kPreference);
  const market::Identity provider = market::Identity::Generate();
  EXPECT_TRUE(selection.Add(Bid(1, kA100, 2'000'000, provider), kNowMs, kReputationPpm).ok());
  EXPECT_EQ(selection.Add(Bid(0, kH100, 1'000'000, provider), kNowMs, kReputationPpm).problem, BidProblem::kDuplicateBidder);
  EXPECT_EQ(selection.kept(), 1u);
  EXPECT_EQ(selection.dropped(BidProblem::kDuplicateBidder), 1u);
}

// Every reason CheckBidAgainstOrder finds is counted under its own name.
TEST_F(BidSelectionTest, DropsAreCountedByReason) {
  BidSelection selection(order_, market::Policy::kPreference);
  auto over_cap = Bid(0, kH100, order_.body.CapPerHour() + 1);
  auto bad_replicas = Bid(0, kH100, 1'000'000);
  bad_replicas.body.services[1].placements[0].replicas = 5;
  bad_replicas = market::MakeSigned(market::Identity::Generate(), bad_replicas.body, kNowMs, kTtlMs, 97);
  EXPECT_EQ(selection.Add(over_cap, kNowMs, kReputationPpm).problem, BidProblem::kOverCap);
  EXPECT_EQ(selection.Add(bad_replicas, kNowMs, kReputationPpm).problem, BidProblem::kReplicaCount);
  EXPECT_EQ(selection.Add(Bid(0, kA100, 1'000'000), kNowMs, kReputationPpm).problem, BidProblem::kDeviceMismatch);
  EXPECT_EQ(selection.dropped(BidProblem::kOverCap), 1u);
  EXPECT_EQ(selection.dropped(BidProblem::kReplicaCount), 1u);
  EXPECT_EQ(selection.dropped(BidProblem::kDeviceMismatch), 1u);
  EXPECT_EQ(selection.dropped_total(), 3u);
  EXPECT_EQ(selection.kept(), 0u);
}

}  // namespace
}  // namespace gpumart::bidding
