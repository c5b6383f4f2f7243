// Orders waiting for capacity: an order skipped only because the provider's capacity was held
// (by reservations of bids for other orders, or leases) gets a bid once that capacity is freed,
// in the step of the input that freed it, while the order is still open.
#include <gtest/gtest.h>

#include <algorithm>

#include "bidding/bid_check.h"
#include "bidding/bid_engine.h"
#include "tests/bidding/engine_test_util.h"

namespace gpumart::bidding {
namespace {

using namespace gpumart::bidding::testing;  // NOLINT

class BidEngineDeferredTest : public ::testing::Test {
 protected:
  BidEngineDeferredTest()
      : provider_(market::Identity::Generate()),
        rival_(market::Identity::Generate()),
        tenant_(market::Identity::Generate()) {}

  // `order` leased to the rival provider: the Lease every node sees.
  market::Signed<market::Lease> LeasedToRival(const market::Signed<market::Order>& order, int64_t now_ms) {
    auto rival = MakeEngine(rival_, Inventory(8));
    const auto bid = rival->OnOrder(order, now_ms).bids.at(0);
    const SignedAccept accept = Accept(tenant_, bid, now_ms);
    rival->OnAccept(accept.accept, accept.wire, now_ms);
    return rival->OnLeaseStored(bid.id, Status::Ok(), now_ms).leases.at(0);
  }

  // `order`'s bid accepted and leased by `engine`: the Lease.
  market::Signed<market::Lease> Lease(BidEngine& engine, const market::Signed<market::Bid>& bid, int64_t now_ms) {
    const SignedAccept accept = Accept(tenant_, bid, now_ms);
    engine.OnAccept(accept.accept, accept.wire, now_ms);
    return engine.OnLeaseStored(bid.id, Status::Ok(), now_ms).leases.at(0);
  }

  static bool BidsOn(const EngineStep& step, const market::Signed<market::Order>& order) {
    return std::any_of(step.bids.begin(), step.bids.end(),
                       [&](const market::Signed<market::Bid>& bid) { return bid.body.order_id == order.id; });
  }

  market::Identity provider_;
  market::Identity rival_;
  market::Identity tenant_;
};

// The market-small simulation's seed 3089356247: every provider of the order's model had its GPUs
// held by bids for earlier orders, released 300 ms later when those went to other providers.
TEST_F(BidEngineDeferredTest, AnOrderSkippedForCapacityIsBidWhenAnotherOrdersLeaseReleasesTheReservation) {
  auto engine = MakeEngine(provider_, Inventory(1));
  ASSERT_NE(engine, nullptr);
  const auto earlier = SignOrder(tenant_, GpuOrder(1));
  const auto held = engine->OnOrder(earlier, kNowMs).bids.at(0);
  const auto waiting = SignOrder(tenant_, GpuOrder(1));
  const EngineStep skipped = engine->OnOrder(waiting, kNowMs + 10);
  EXPECT_EQ(skipped.skipped, SkipReason::kCapacity);
  EXPECT_TRUE(skipped.bids.empty());
  EXPECT_TRUE(skipped.orders.empty());
  EXPECT_EQ(engine->deferred_orders(), 1u);

  const EngineStep released = engine->OnLease(LeasedToRival(earlier, kNowMs + 300), kNowMs + 300);
  EXPECT_EQ(released.release, std::vector<market::MessageId>{held.id});
  ASSERT_EQ(released.bids.size(), 1u);
  const market::Signed<market::Bid>& bid = released.bids[0];
  EXPECT_EQ(bid.body.order_id, waiting.id);
  EXPECT_TRUE(CheckBidAgainstOrder(waiting.body, bid.body).ok());
  EXPECT_EQ(bid.body.reservation_expires_ms, kNowMs + 300 + kBidTtlMs);
  ASSERT_EQ(released.reserve.size(), 1u);
  EXPECT_EQ(released.reserve[0].bid.id, bid.id);
  // The driver records the order before the bid leaves (a restart needs it for the lease).
  ASSERT_EQ(released.orders.size(), 1u);
  EXPECT_EQ(released.orders[0].id, waiting.id);
  EXPECT_FALSE(released.skipped.has_value());  // OnLease answers no order
  EXPECT_TRUE(engine->Holds(bid.id));
  EXPECT_EQ(engine->deferred_orders(), 0u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 0u);
  const auto& counters = engine->counters();
  EXPECT_EQ(counters.bids, 2u);
  EXPECT_EQ(counters.orders_deferred, 1u);
  EXPECT_EQ(counters.deferred_served, 1u);
  EXPECT_EQ(Skipped(*engine, SkipReason::kCapacity), 1u);

  // It is served once: a copy of the order is a duplicate, and freeing more capacity does not
  // bid on it again.
  EXPECT_EQ(engine->OnOrder(waiting, kNowMs + 400).skipped, SkipReason::kDuplicate);
  const EngineStep expired = engine->Tick(kNowMs + 300 + kBidTtlMs);
  EXPECT_EQ(expired.release, std::vector<market::MessageId>{bid.id});
  EXPECT_TRUE(expired.bids.empty());
  EXPECT_EQ(engine->counters().bids, 2u);
}

TEST_F(BidEngineDeferredTest, AClosedLeaseGetsTheWaitingOrderABid) {
  auto engine = MakeEngine(provider_, Inventory(2));
  ASSERT_NE(engine, nullptr);
  const auto bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(2)), kNowMs).bids.at(0);
  const auto lease = Lease(*engine, bid, kNowMs);
  const auto waiting = SignOrder(tenant_, GpuOrder(1));
  EXPECT_EQ(engine->OnOrder(waiting, kNowMs + 1).skipped, SkipReason::kCapacity);
  // A Close nobody may sign changes nothing.
  market::Close body{lease.id, market::CloseReason::kTenantClosed, kNowMs + 5, ""};
  const auto forged = market::MakeSigned(market::Identity::Generate(), body, kNowMs + 5, kOrderTtlMs, 1);
  EXPECT_TRUE(engine->OnClose(forged, kNowMs + 5).bids.empty());
  const EngineStep closed = engine->OnClose(market::MakeSigned(tenant_, body, kNowMs + 5, kOrderTtlMs, 2), kNowMs + 5);
  ASSERT_EQ(closed.bids.size(), 1u);
  EXPECT_EQ(closed.bids[0].body.order_id, waiting.id);
  EXPECT_EQ(closed.orders.size(), 1u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 1u);
}

// A failed lease write and an expired reservation free capacity too; waiting orders are tried
// oldest first, and one that expired while it waited is dropped, not bid on.
TEST_F(BidEngineDeferredTest, WaitingOrdersAreTriedOldestFirstAndNotAfterTheyExpire) {
  auto engine = MakeEngine(provider_, Inventory(1));
  ASSERT_NE(engine, nullptr);
  const auto first_bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  const auto short_lived = SignOrder(tenant_, GpuOrder(1), kNowMs, 2'000);
  const auto older = SignOrder(tenant_, GpuOrder(1));
  const auto newer = SignOrder(tenant_, GpuOrder(1));
  for (const auto* order : {&short_lived, &older, &newer}) {
    EXPECT_EQ(engine->OnOrder(*order, kNowMs + 1).skipped, SkipReason::kCapacity);
  }
  EXPECT_EQ(engine->deferred_orders(), 3u);

  // The ledger fails the first bid's lease at kNowMs + 2000: the short-lived order has expired.
  const SignedAccept accept = Accept(tenant_, first_bid, kNowMs + 2'000);
  engine->OnAccept(accept.accept, accept.wire, kNowMs + 2'000);
  const EngineStep failed = engine->OnLeaseStored(first_bid.id, Status::IoError("disk full"), kNowMs + 2'000);
  EXPECT_EQ(failed.refusals.size(), 1u);
  ASSERT_EQ(failed.bids.size(), 1u);
  EXPECT_EQ(failed.bids[0].body.order_id, older.id);
  EXPECT_FALSE(BidsOn(failed, short_lived));
  EXPECT_EQ(engine->deferred_orders(), 1u);  // `newer` waits on
  EXPECT_EQ(engine->counters().deferred_dropped, 1u);

  // `older`'s reservation expires: `newer` gets the GPU in the Tick that released it.
  const EngineStep ticked = engine->Tick(kNowMs + 2'000 + kBidTtlMs);
  EXPECT_EQ(ticked.release, std::vector<market::MessageId>{failed.bids[0].id});
  ASSERT_EQ(ticked.bids.size(), 1u);
  EXPECT_EQ(ticked.bids[0].body.order_id, newer.id);
  EXPECT_EQ(engine->deferred_orders(), 0u);
  // A retry that skips again is no new skip: each of the three was counted once, on arrival.
  EXPECT_EQ(Skipped(*engine, SkipReason::kCapacity), 3u);
  EXPECT_EQ(Skipped(*engine, SkipReason::kExpired), 0u);
}

// An order leased elsewhere while it waited is dropped; so is one every retry finds unservable
// for another reason. A new inventory or GPUs back in service are tried at the next Tick, which
// NextDeadline asks for at once.
TEST_F(BidEngineDeferredTest, LeasedElsewhereIsDroppedAndMoreInventoryServesAtTheNextTick) {
  auto engine = MakeEngine(provider_, Inventory(1));
  ASSERT_NE(engine, nullptr);
  engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  const auto gone = SignOrder(tenant_, GpuOrder(1));
  const auto waiting = SignOrder(tenant_, GpuOrder(2));
  EXPECT_EQ(engine->OnOrder(gone, kNowMs).skipped, SkipReason::kCapacity);
  EXPECT_EQ(engine->OnOrder(waiting, kNowMs).skipped, SkipReason::kCapacity);
  EXPECT_TRUE(engine->OnLease(LeasedToRival(gone, kNowMs + 1), kNowMs + 1).bids.empty());
  EXPECT_EQ(engine->deferred_orders(), 1u);

  ASSERT_TRUE(engine->SetInventory(Inventory(4)).ok());
  EXPECT_EQ(engine->NextDeadline(), 0);
  const EngineStep ticked = engine->Tick(kNowMs + 2);
  ASSERT_EQ(ticked.bids.size(), 1u);
  EXPECT_EQ(ticked.bids[0].body.order_id, waiting.id);
  EXPECT_NE(engine->NextDeadline(), 0);

  // GPUs out of service, then back: the order waiting for them is served at the next input.
  engine->SetOutOfService("n1", {{kH100, 1}});  // 3 held, 1 out of service
  const auto later = SignOrder(tenant_, GpuOrder(1), kNowMs + 3);
  EXPECT_EQ(engine->OnOrder(later, kNowMs + 3).skipped, SkipReason::kCapacity);
  engine->SetOutOfService("n1", {});
  const EngineStep next = engine->OnOrder(SignOrder(tenant_, GpuOrder(3), kNowMs + 4), kNowMs + 4);
  EXPECT_TRUE(BidsOn(next, later));  // tried first: it is older than the order given
  EXPECT_EQ(next.skipped, SkipReason::kCapacity);
}

// A flood of orders the provider has no room for: the waiting list stays at its bound (oldest
// dropped first), by count and by bytes, and a freeing input tries at most that many.
TEST_F(BidEngineDeferredTest, TheWaitingListIsBoundedAndSoIsTheWorkOfARetry) {
  BidEngineOptions options;
  options.max_deferred_orders = 4;
  auto engine = MakeEngine(provider_, Inventory(1), TablePricing(), options);
  ASSERT_NE(engine, nullptr);
  const auto held = SignOrder(tenant_, GpuOrder(1));
  engine->OnOrder(held, kNowMs).bids.at(0);
  std::vector<market::Signed<market::Order>> flood;
  for (int i = 0; i < 100; ++i) {
    flood.push_back(SignOrder(tenant_, GpuOrder(1)));
    EXPECT_EQ(engine->OnOrder(flood.back(), kNowMs).skipped, SkipReason::kCapacity);
    ASSERT_LE(engine->deferred_orders(), 4u);
  }
  EXPECT_EQ(engine->deferred_orders(), 4u);
  EXPECT_EQ(engine->counters().orders_deferred, 100u);
  EXPECT_EQ(engine->counters().deferred_dropped, 96u);
  const EngineStep released = engine->OnLease(LeasedToRival(held, kNowMs + 1), kNowMs + 1);
  ASSERT_EQ(released.bids.size(), 1u);
  EXPECT_EQ(released.bids[0].body.order_id, flood[96].id);  // the oldest still waiting
  EXPECT_EQ(engine->counters().deferred_retries, 4u);       // one fit per waiting order
  EXPECT_EQ(engine->deferred_orders(), 3u);

  // The byte bound: room for two of these orders' bodies.
  BidEngineOptions by_bytes;
  by_bytes.max_deferred_bytes = 2 * flood[0].envelope.body.size() + 1;
  auto small = MakeEngine(provider_, Inventory(1), TablePricing(), by_bytes);
  ASSERT_NE(small, nullptr);
  small->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  for (int i = 0; i < 10; ++i) small->OnOrder(flood[i], kNowMs);
  EXPECT_EQ(small->deferred_orders(), 2u);

  // No list at all.
  BidEngineOptions none;
  none.max_deferred_orders = 0;
  auto off = MakeEngine(provider_, Inventory(1), TablePricing(), none);
  ASSERT_NE(off, nullptr);
  const auto first = SignOrder(tenant_, GpuOrder(1));
  off->OnOrder(first, kNowMs).bids.at(0);
  off->OnOrder(flood[0], kNowMs);
  EXPECT_EQ(off->deferred_orders(), 0u);
  EXPECT_TRUE(off->OnLease(LeasedToRival(first, kNowMs + 1), kNowMs + 1).bids.empty());
}

// Command pricing: a waiting order's retry asks the program again (the bid comes with its
// answer); an order whose capacity was taken while its program ran waits too, and its retry does
// not ask for the order to be recorded again.
TEST_F(BidEngineDeferredTest, ARetryWithCommandPricingAsksThePriceProgram) {
  PricingConfig command;
  command.kind = PricingKind::kCommand;
  command.command = {"/bin/price"};
  command.command_timeout_ms = 500;
  command.command_max_concurrent = 2;
  auto engine = MakeEngine(provider_, Inventory(1), command);
  ASSERT_NE(engine, nullptr);
  const auto first = SignOrder(tenant_, GpuOrder(1));
  const auto second = SignOrder(tenant_, GpuOrder(1));
  const EngineStep asked_first = engine->OnOrder(first, kNowMs);
  ASSERT_EQ(asked_first.price_requests.size(), 1u);
  EXPECT_EQ(asked_first.orders.size(), 1u);
  const uint64_t second_request = engine->OnOrder(second, kNowMs).price_requests.at(0).id;
  const auto second_bid = engine->OnPriceAnswer(second_request, uint64_t{1'000}, kNowMs + 10).bids.at(0);
  EXPECT_EQ(engine->OnPriceAnswer(asked_first.price_requests[0].id, uint64_t{1'000}, kNowMs + 20).skipped,
            SkipReason::kCapacity);  // taken while being priced
  const auto third = SignOrder(tenant_, GpuOrder(1));
  EXPECT_EQ(engine->OnOrder(third, kNowMs + 30).skipped, SkipReason::kCapacity);
  EXPECT_EQ(engine->deferred_orders(), 2u);

  const EngineStep released = engine->OnLease(LeasedToRival(second, kNowMs + 40), kNowMs + 40);
  EXPECT_EQ(released.release, std::vector<market::MessageId>{second_bid.id});
  EXPECT_TRUE(released.bids.empty());
  // Both may be priced (nothing is reserved while a program runs): the answer decides.
  ASSERT_EQ(released.price_requests.size(), 2u);
  EXPECT_NE(released.price_requests[0].json.find(market::ToHex(first.id)), std::string::npos);
  EXPECT_NE(released.price_requests[1].json.find(market::ToHex(third.id)), std::string::npos);
  // `first` was recorded at its first price request; `third` is recorded now.
  ASSERT_EQ(released.orders.size(), 1u);
  EXPECT_EQ(released.orders[0].id, third.id);
  const EngineStep bid = engine->OnPriceAnswer(released.price_requests[0].id, uint64_t{2'000}, kNowMs + 50);
  ASSERT_EQ(bid.bids.size(), 1u);
  EXPECT_EQ(bid.bids[0].body.order_id, first.id);
  EXPECT_EQ(bid.bids[0].body.price_per_hour, 2'000u);
  // The GPU is taken again while `third` is priced: it waits once more.
  EXPECT_EQ(engine->OnPriceAnswer(released.price_requests[1].id, uint64_t{2'000}, kNowMs + 60).skipped,
            SkipReason::kCapacity);
  EXPECT_EQ(engine->deferred_orders(), 1u);
}

}  // namespace
}  // namespace gpumart::bidding
