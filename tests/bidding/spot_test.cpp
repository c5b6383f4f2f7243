// Interruptible (spot) capacity in the bid engine (docs/SPOT.md): spot orders priced with the
// spot tables and their bids stating the notice; a regular order that does not fit otherwise
// preempts spot leases, and the Closes it produces keep every rule other nodes check
// (ledger::CheckPreemption); nothing is preempted when the capacity is free, or for a spot order,
// or when the preempting bid is lost. The tenant side refuses a bid of the wrong kind.
#include <gtest/gtest.h>

#include "bidding/bid_check.h"
#include "bidding/bid_engine.h"
#include "bidding/tenant_session.h"
#include "ledger/lease_state.h"
#include "market/yaml_tree.h"
#include "tests/bidding/engine_test_util.h"

namespace gpumart::bidding {
namespace {

using namespace testing;  // NOLINT: the engine test helpers

constexpr uint64_t kSpotRate = 100'000;  // an H100 at a third of the regular 300'000
constexpr uint64_t kNoticeMs = 20'000;

PricingConfig SpotPricing() {
  PricingConfig config = TablePricing();
  market::PriceTable spot = Table();
  spot.gpu = {{"h100.80Gi.sxm", kSpotRate}, {"*", 30'000}};
  config.spot = bidding::SpotPricing{{spot}, kNoticeMs};
  return config;
}

market::Order SpotOrder(uint32_t units) {
  market::Order order = GpuOrder(units);
  order.interruptible = true;
  return order;
}

// Bids on `order`, has `tenant` accept, stores the lease: the lease, and the step that made it durable.
struct Leased {
  market::Signed<market::Lease> lease;
  EngineStep stored;
};
std::optional<Leased> Lease(BidEngine& engine, const market::Identity& tenant, const market::Order& order,
                            int64_t now_ms) {
  EngineStep bid = engine.OnOrder(SignOrder(tenant, order, now_ms), now_ms);
  if (bid.bids.size() != 1) return std::nullopt;
  const SignedAccept accept = Accept(tenant, bid.bids[0], now_ms);
  EngineStep accepted = engine.OnAccept(accept.accept, accept.wire, now_ms);
  if (accepted.record_leases.size() != 1) return std::nullopt;
  EngineStep stored = engine.OnLeaseStored(bid.bids[0].id, Status::Ok(), now_ms);
  if (stored.leases.size() != 1) return std::nullopt;
  return Leased{stored.leases[0], std::move(stored)};
}

TEST(SpotEngineTest, ASpotOrderIsPricedWithTheSpotTablesAndTheBidStatesTheNotice) {
  const market::Identity provider = market::Identity::Generate();
  const market::Identity tenant = market::Identity::Generate();
  auto engine = MakeEngine(provider, Inventory(8), SpotPricing());
  ASSERT_TRUE(engine);
  EngineStep step = engine->OnOrder(SignOrder(tenant, SpotOrder(2)), kNowMs);
  ASSERT_EQ(step.bids.size(), 1u) << step.skip_detail;
  const market::Bid& bid = step.bids[0].body;
  EXPECT_EQ(bid.price_per_hour, TablePrice(2, kSpotRate));
  ASSERT_TRUE(bid.spot.has_value());
  EXPECT_EQ(bid.spot->notice_ms, kNoticeMs);
  EXPECT_TRUE(CheckBidAgainstOrder(SpotOrder(2), bid).ok());
  // A regular order gets a regular bid at the regular rate.
  step = engine->OnOrder(SignOrder(tenant, GpuOrder(2)), kNowMs);
  ASSERT_EQ(step.bids.size(), 1u);
  EXPECT_FALSE(step.bids[0].body.spot.has_value());
  EXPECT_EQ(step.bids[0].body.price_per_hour, TablePrice(2, 300'000));
}

TEST(SpotEngineTest, AProviderWithoutSpotPricingSkipsSpotOrders) {
  const market::Identity provider = market::Identity::Generate();
  auto engine = MakeEngine(provider, Inventory(8));
  ASSERT_TRUE(engine);
  EngineStep step = engine->OnOrder(SignOrder(market::Identity::Generate(), SpotOrder(1)), kNowMs);
  EXPECT_TRUE(step.bids.empty());
  EXPECT_EQ(step.skipped, SkipReason::kNoSpotPricing);
  EXPECT_EQ(Skipped(*engine, SkipReason::kNoSpotPricing), 1u);
}

TEST(SpotEngineTest, ARegularOrderThatDoesNotFitPreemptsASpotLeaseWithNotice) {
  const market::Identity provider = market::Identity::Generate();
  const market::Identity spot_tenant = market::Identity::Generate();
  const market::Identity tenant = market::Identity::Generate();
  auto engine = MakeEngine(provider, Inventory(8), SpotPricing());
  ASSERT_TRUE(engine);
  auto spot = Lease(*engine, spot_tenant, SpotOrder(6), kNowMs);
  ASSERT_TRUE(spot);
  // The Offer counts the spot lease's GPUs as free: a regular order can have them.
  EXPECT_EQ(FreeGpus(*engine, kH100), 8u);
  // 2 GPUs fit on free capacity: no preemption.
  auto small = Lease(*engine, tenant, GpuOrder(2), kNowMs + 1'000);
  ASSERT_TRUE(small);
  EXPECT_TRUE(small->stored.preemptions.empty());
  EXPECT_EQ(small->lease.body.start_ms, kNowMs + 1'000);
  // 4 more do not: the spot lease goes, with its notice.
  const int64_t at_ms = kNowMs + 60'000;
  auto big = Lease(*engine, tenant, GpuOrder(4), at_ms);
  ASSERT_TRUE(big);
  ASSERT_EQ(big->stored.preemptions.size(), 1u);
  const market::Signed<market::Close>& close = big->stored.preemptions[0];
  EXPECT_EQ(close.body.lease_id, spot->lease.id);
  EXPECT_EQ(close.body.reason, market::CloseReason::kPreempted);
  EXPECT_EQ(close.envelope.signer, provider.public_key());
  EXPECT_EQ(close.body.closed_ms, close.envelope.created_ms + static_cast<int64_t>(kNoticeMs));
  EXPECT_EQ(big->lease.body.start_ms, at_ms + static_cast<int64_t>(kNoticeMs));  // after the notice
  EXPECT_EQ(close.body.preemptor_lease, market::EncodeEnvelope(big->lease.envelope));
  // Every node's check passes.
  const Status rules = ledger::CheckPreemption(close, provider.public_key(), spot->lease.body.spot);
  EXPECT_TRUE(rules.ok()) << rules.ToString();
  // Capacity: 8 - 2 - 4 = 2 free, the spot lease is gone.
  EXPECT_EQ(FreeGpus(*engine, kH100), 2u);
  EXPECT_EQ(engine->active_leases(), 2u);
  EXPECT_EQ(engine->counters().leases_preempted, 1u);
}

TEST(SpotEngineTest, NoPreemptionForASpotOrderOrWhenItWouldNotHelp) {
  const market::Identity provider = market::Identity::Generate();
  const market::Identity tenant = market::Identity::Generate();
  auto engine = MakeEngine(provider, Inventory(8), SpotPricing());
  ASSERT_TRUE(engine);
  ASSERT_TRUE(Lease(*engine, tenant, SpotOrder(6), kNowMs));
  // A spot order never preempts another.
  EngineStep step = engine->OnOrder(SignOrder(tenant, SpotOrder(4)), kNowMs);
  EXPECT_TRUE(step.bids.empty());
  EXPECT_EQ(step.skipped, SkipReason::kCapacity);
  // More than the whole provider: preempting would not make it fit.
  step = engine->OnOrder(SignOrder(tenant, GpuOrder(9)), kNowMs);
  EXPECT_TRUE(step.bids.empty());
  EXPECT_EQ(engine->active_leases(), 1u);
}

TEST(SpotEngineTest, ALostPreemptingBidLeavesTheSpotLeaseAlone) {
  const market::Identity provider = market::Identity::Generate();
  const market::Identity tenant = market::Identity::Generate();
  auto engine = MakeEngine(provider, Inventory(8), SpotPricing());
  ASSERT_TRUE(engine);
  ASSERT_TRUE(Lease(*engine, tenant, SpotOrder(6), kNowMs));
  EngineStep step = engine->OnOrder(SignOrder(tenant, GpuOrder(4)), kNowMs);
  ASSERT_EQ(step.bids.size(), 1u);
  // The bid holds the spot lease's 6 GPUs (a lease goes whole); the 2 free ones stay free.
  EXPECT_EQ(FreeGpus(*engine, kH100), 2u);
  // The bid expires unaccepted: the 2 GPUs come back and the spot lease runs on.
  step = engine->Tick(kNowMs + kBidTtlMs);
  EXPECT_EQ(step.release.size(), 1u);
  EXPECT_TRUE(step.preemptions.empty());
  EXPECT_EQ(FreeGpus(*engine, kH100), 8u);  // 2 free, 6 under the spot lease
  EXPECT_EQ(engine->active_leases(), 1u);
  // And the spot lease can be preempted again later.
  auto later = Lease(*engine, tenant, GpuOrder(4), kNowMs + kBidTtlMs + 1);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->stored.preemptions.size(), 1u);
}

TEST(SpotEngineTest, ASpotLeaseClosedBeforeItsPreemptionIsNotClosedTwice) {
  const market::Identity provider = market::Identity::Generate();
  const market::Identity tenant = market::Identity::Generate();
  auto engine = MakeEngine(provider, Inventory(8), SpotPricing());
  ASSERT_TRUE(engine);
  auto spot = Lease(*engine, tenant, SpotOrder(6), kNowMs);
  ASSERT_TRUE(spot);
  EngineStep bid = engine->OnOrder(SignOrder(tenant, GpuOrder(4)), kNowMs);
  ASSERT_EQ(bid.bids.size(), 1u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 2u);
  // The tenant closes the spot lease while the preempting bid is pending.
  market::Close close{spot->lease.id, market::CloseReason::kTenantClosed, kNowMs + 10, "done"};
  engine->OnClose(market::MakeSigned(tenant, close, kNowMs + 10, kOrderTtlMs, 7), kNowMs + 10);
  EXPECT_EQ(FreeGpus(*engine, kH100), 2u);  // its 6 still held, now by the bid alone
  const SignedAccept accept = Accept(tenant, bid.bids[0], kNowMs + 20);
  ASSERT_EQ(engine->OnAccept(accept.accept, accept.wire, kNowMs + 20).record_leases.size(), 1u);
  EngineStep stored = engine->OnLeaseStored(bid.bids[0].id, Status::Ok(), kNowMs + 20);
  ASSERT_EQ(stored.leases.size(), 1u);
  EXPECT_TRUE(stored.preemptions.empty());
  EXPECT_EQ(FreeGpus(*engine, kH100), 4u);
  EXPECT_EQ(engine->active_leases(), 1u);
}

TEST(SpotBidCheckTest, ABidOfTheWrongKindIsDropped) {
  market::Bid bid;
  bid.group = "train";
  bid.denom = "uakt";
  bid.price_per_hour = 1;
  bid.services = {market::ServiceAssignment{"trainer", 0, kH100, {market::Placement{"n1", 1}}}};
  bid.spot = market::SpotTerms{kNoticeMs};
  EXPECT_EQ(CheckBidAgainstOrder(GpuOrder(1), bid).problem, BidProblem::kInterruptibility);
  bid.spot.reset();
  EXPECT_EQ(CheckBidAgainstOrder(SpotOrder(1), bid).problem, BidProblem::kInterruptibility);
  EXPECT_TRUE(CheckBidAgainstOrder(GpuOrder(1), bid).ok());
}

TEST(SpotPricingTest, TheSpotBlockParsesAndIsValidated) {
  Result<market::YamlTree> tree = market::YamlTree::Parse(R"(
pricing_policy:
  kind: table
  spot:
    notice_ms: 45000
    pricing:
      - denom: uakt
        gpu: {h100: 90000}
)",
                                                          market::YamlLimits{1000, 16});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  Result<PricingConfig> config = ParsePricingPolicy(tree->Root().Find("pricing_policy"), {Table()});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(config->spot.has_value());
  EXPECT_EQ(config->spot->notice_ms, 45'000u);
  ASSERT_EQ(config->spot->tables.size(), 1u);
  EXPECT_EQ(config->spot->tables[0].gpu.at("h100"), 90'000u);

  PricingConfig too_long = SpotPricing();
  too_long.spot->notice_ms = market::limits::kMaxPreemptionNoticeMs + 1;
  EXPECT_FALSE(ValidatePricing(too_long).ok());
  PricingConfig no_tables = SpotPricing();
  no_tables.spot->tables.clear();
  EXPECT_FALSE(ValidatePricing(no_tables).ok());
}

TEST(KeepRunningPolicyTest, ResubmitsOnlyAfterPreemptionOrProviderFailureWithBoundedBackoff) {
  EXPECT_TRUE(ResubmitsAfter(market::CloseReason::kPreempted));
  EXPECT_TRUE(ResubmitsAfter(market::CloseReason::kProviderFailure));
  for (auto final_reason : {market::CloseReason::kTenantClosed, market::CloseReason::kProviderClosed,
                            market::CloseReason::kInsufficientFunds, market::CloseReason::kExpired}) {
    EXPECT_FALSE(ResubmitsAfter(final_reason)) << market::ToString(final_reason);
  }
  const KeepRunningPolicy policy{5, 1'000, 60'000};
  EXPECT_EQ(RestartDelayMs(policy, 0), 0);
  EXPECT_EQ(RestartDelayMs(policy, 1), 1'000);
  EXPECT_EQ(RestartDelayMs(policy, 2), 2'000);
  EXPECT_EQ(RestartDelayMs(policy, 4), 8'000);
  EXPECT_EQ(RestartDelayMs(policy, 7), 60'000);  // 64 s, capped
  EXPECT_EQ(RestartDelayMs(policy, 1'000'000), 60'000);  // no overflow, no long loop
  EXPECT_EQ(RestartDelayMs(KeepRunningPolicy{5, 0, 60'000}, 3), 0);
}

}  // namespace
}  // namespace gpumart::bidding
