#include "bidding/bid_engine.h"

#include <gtest/gtest.h>

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

#include "bidding/bid_check.h"
#include "tests/bidding/engine_test_util.h"
#include "tests/test_seed.h"

namespace gpumart::bidding {
namespace {

using namespace gpumart::bidding::testing;  // NOLINT

class BidEngineTest : public ::testing::Test {
 protected:
  BidEngineTest() : provider_(market::Identity::Generate()), tenant_(market::Identity::Generate()) {}

  market::Identity provider_;
  market::Identity tenant_;
};

TEST_F(BidEngineTest, BidNamesTheConcreteDeviceAndPriceAndReservesItsCapacity) {
  auto engine = MakeEngine(provider_, Inventory(8));
  ASSERT_NE(engine, nullptr);
  const auto order = SignOrder(tenant_, GpuOrder(2));
  const EngineStep step = engine->OnOrderBytes(market::EncodeEnvelope(order.envelope), kNowMs);
  ASSERT_EQ(step.bids.size(), 1u) << (step.log.empty() ? "" : step.log.front());
  const auto& bid = step.bids.front();
  // It is a valid signed bid of this provider for this order and tenant.
  auto opened = market::OpenSigned<market::Bid>(market::EncodeEnvelope(bid.envelope), kNowMs);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->envelope.signer, provider_.public_key());
  EXPECT_EQ(bid.body.order_id, order.id);
  EXPECT_EQ(bid.body.tenant, tenant_.public_key());
  ASSERT_EQ(bid.body.services.size(), 1u);
  EXPECT_EQ(bid.body.services[0].device, kH100);
  ASSERT_EQ(bid.body.services[0].placements.size(), 1u);
  EXPECT_EQ(bid.body.services[0].placements[0].node, "n1");
  EXPECT_EQ(bid.body.price_per_hour, TablePrice(2, 300'000));
  EXPECT_EQ(bid.body.reservation_expires_ms, kNowMs + kBidTtlMs);
  ASSERT_EQ(step.reserve.size(), 1u);
  EXPECT_EQ(step.reserve[0].allocation.at("n1").gpus.at(kH100), 2u);
  EXPECT_EQ(step.reserve[0].allocation.at("n1").cpu_millis, 4'000u);
  EXPECT_TRUE(step.capacity_changed);
  EXPECT_EQ(FreeGpus(*engine, kH100), 6u);
  EXPECT_EQ(engine->live_reservations(), 1u);
  EXPECT_EQ(engine->counters().bids, 1u);
}

// SDL 2.2: the order caps in usdc first, then uakt. A provider pricing only uakt bids in uakt,
// held to the uakt cap; the bid passes the tenant's check.
TEST_F(BidEngineTest, SeveralDenomsBidInOneTheProviderPrices) {
  auto engine = MakeEngine(provider_, Inventory(8));  // prices in uakt only
  ASSERT_NE(engine, nullptr);
  market::Order order = GpuOrder(2);
  market::ServiceRequest& service = order.services[0];
  service.more_caps = {service.price_cap};
  service.price_cap = market::PriceCap{"usdc", 5, market::PerBlockToPerHour(5)};
  ASSERT_TRUE(market::ValidateOrder(order).ok());
  const auto signed_order = SignOrder(tenant_, order);
  const EngineStep step = engine->OnOrderBytes(market::EncodeEnvelope(signed_order.envelope), kNowMs);
  ASSERT_EQ(step.bids.size(), 1u) << (step.log.empty() ? "" : step.log.front());
  EXPECT_EQ(step.bids[0].body.denom, "uakt");
  EXPECT_EQ(step.bids[0].body.price_per_hour, TablePrice(2, 300'000));
  EXPECT_TRUE(CheckBidAgainstOrder(order, step.bids[0].body).ok());
  // Over the uakt cap it does not bid, although the usdc cap is a different number.
  service.more_caps[0] = market::PriceCap{"uakt", 1'000, market::PerBlockToPerHour(1'000)};
  const auto cheap = SignOrder(tenant_, order);
  const EngineStep refused = engine->OnOrderBytes(market::EncodeEnvelope(cheap.envelope), kNowMs);
  EXPECT_TRUE(refused.bids.empty());
  EXPECT_EQ(refused.skipped, SkipReason::kPriceCap);
}

TEST_F(BidEngineTest, OrdersItCannotServeCostNoReservationAndAreCountedByReason) {
  market::Identity denied = market::Identity::Generate();
  BidEngineOptions options;
  options.deny_tenants = {denied.public_key()};
  auto engine = MakeEngine(provider_, Inventory(2), TablePricing(), options);
  ASSERT_NE(engine, nullptr);
  auto expect_skip = [&](const EngineStep& step, SkipReason reason) {
    EXPECT_TRUE(step.bids.empty());
    EXPECT_TRUE(step.reserve.empty());
    ASSERT_TRUE(step.skipped.has_value()) << ToString(reason);
    EXPECT_EQ(*step.skipped, reason) << (step.log.empty() ? "" : step.log.front());
  };
  const auto order = SignOrder(tenant_, GpuOrder(1));
  market::Bytes wire = market::EncodeEnvelope(order.envelope);
  market::Bytes tampered = wire;
  tampered[tampered.size() - 1] ^= 1;  // the signature
  expect_skip(engine->OnOrderBytes(tampered, kNowMs), SkipReason::kMalformed);
  expect_skip(engine->OnOrderBytes(market::Bytes{0x01, 0x02}, kNowMs), SkipReason::kMalformed);
  expect_skip(engine->OnOrderBytes(market::Bytes(market::limits::kMaxMessageBytes + 1, 0), kNowMs),
              SkipReason::kOversized);
  expect_skip(engine->OnOrderBytes(wire, kNowMs + kOrderTtlMs), SkipReason::kExpired);
  expect_skip(engine->OnOrder(SignOrder(denied, GpuOrder(1)), kNowMs), SkipReason::kDeniedOwner);
  expect_skip(engine->OnOrder(SignOrder(tenant_, GpuOrder(3)), kNowMs), SkipReason::kCapacity);
  expect_skip(engine->OnOrder(SignOrder(tenant_, GpuOrder(1, "a100")), kNowMs), SkipReason::kNoDevice);
  market::Order elsewhere = GpuOrder(1);
  elsewhere.attributes = {{"region", "eu-west"}};
  expect_skip(engine->OnOrder(SignOrder(tenant_, elsewhere), kNowMs), SkipReason::kAttributes);
  market::Order audited = GpuOrder(1);
  audited.signed_by.all_of = {std::string(64, 'a')};
  expect_skip(engine->OnOrder(SignOrder(tenant_, audited), kNowMs), SkipReason::kSignedBy);
  market::Order cheap = GpuOrder(1);
  cheap.services[0].price_cap = market::PriceCap{"uakt", 10, market::PerBlockToPerHour(10)};
  expect_skip(engine->OnOrder(SignOrder(tenant_, cheap), kNowMs), SkipReason::kPriceCap);
  market::Order other_denom = GpuOrder(1);
  other_denom.services[0].price_cap.denom = "uusdc";
  expect_skip(engine->OnOrder(SignOrder(tenant_, other_denom), kNowMs), SkipReason::kDenom);
  // The order itself is served once; the second copy is a duplicate.
  EXPECT_EQ(engine->OnOrderBytes(wire, kNowMs).bids.size(), 1u);
  expect_skip(engine->OnOrderBytes(wire, kNowMs), SkipReason::kDuplicate);

  EXPECT_EQ(engine->live_reservations(), 1u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 1u);
  EXPECT_EQ(engine->counters().skipped_total(), 12u);
  EXPECT_EQ(Skipped(*engine, SkipReason::kMalformed), 2u);
  EXPECT_EQ(Skipped(*engine, SkipReason::kCapacity), 1u);
  EXPECT_EQ(engine->counters().orders, 13u);
}

// Untrusted bytes are verified once; an order the caller already verified (a gossip delivery)
// is not verified again, but its time window is still checked.
TEST_F(BidEngineTest, BytesAreVerifiedOnceAndVerifiedOrdersOnlyTimeChecked) {
  auto engine = MakeEngine(provider_, Inventory(8));
  ASSERT_NE(engine, nullptr);
  const auto order = SignOrder(tenant_, GpuOrder(1));
  uint64_t before = market::SignatureVerificationCount();
  EXPECT_EQ(engine->OnOrderBytes(market::EncodeEnvelope(order.envelope), kNowMs).bids.size(), 1u);
  EXPECT_EQ(market::SignatureVerificationCount() - before, 1u);

  const auto verified = SignOrder(tenant_, GpuOrder(1));
  before = market::SignatureVerificationCount();
  EXPECT_EQ(engine->OnVerifiedOrder(verified, kNowMs).bids.size(), 1u);
  const EngineStep expired = engine->OnVerifiedOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs + kOrderTtlMs);
  EXPECT_EQ(expired.skipped, SkipReason::kExpired);
  // Created too far ahead of this provider's clock.
  const EngineStep early = engine->OnVerifiedOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs - 3'600'000);
  EXPECT_EQ(early.skipped, SkipReason::kExpired);
  EXPECT_EQ(market::SignatureVerificationCount() - before, 0u);
  EXPECT_EQ(engine->live_reservations(), 2u);
}

TEST_F(BidEngineTest, AllowListServesOnlyItsTenants) {
  market::Identity friendly = market::Identity::Generate();
  BidEngineOptions options;
  options.allow_tenants = {friendly.public_key()};
  auto engine = MakeEngine(provider_, Inventory(2), TablePricing(), options);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).skipped, SkipReason::kDeniedOwner);
  EXPECT_EQ(engine->OnOrder(SignOrder(friendly, GpuOrder(1)), kNowMs).bids.size(), 1u);
}

TEST_F(BidEngineTest, TwoOrdersRacingForTheLastGpuNeverBothGetIt) {
  auto engine = MakeEngine(provider_, Inventory(1));
  ASSERT_NE(engine, nullptr);
  market::Identity other = market::Identity::Generate();
  const auto second_order = SignOrder(other, GpuOrder(1));
  const EngineStep first = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs);
  const EngineStep second = engine->OnOrder(second_order, kNowMs);
  EXPECT_EQ(first.bids.size(), 1u);
  EXPECT_TRUE(second.bids.empty());
  EXPECT_EQ(second.skipped, SkipReason::kCapacity);
  // Once the first bid's reservation expires, the GPU goes to the order that waited for it
  // (tests/bidding/bid_engine_deferred_test.cpp), and a third order finds it taken.
  const EngineStep expired = engine->Tick(kNowMs + kBidTtlMs);
  ASSERT_EQ(expired.bids.size(), 1u);
  EXPECT_EQ(expired.bids[0].body.order_id, second_order.id);
  EXPECT_EQ(engine->OnOrder(SignOrder(other, GpuOrder(1)), kNowMs + kBidTtlMs).skipped, SkipReason::kCapacity);
}

TEST_F(BidEngineTest, AcceptCommitsOnlyAfterTheLedgerAcknowledgesAndThenPublishesTheLease) {
  auto engine = MakeEngine(provider_, Inventory(2));
  ASSERT_NE(engine, nullptr);
  const auto bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  const SignedAccept accept = Accept(tenant_, bid);
  const EngineStep step = engine->OnAccept(accept.accept, accept.wire, kNowMs + 100);
  ASSERT_EQ(step.record_leases.size(), 1u);
  EXPECT_TRUE(step.leases.empty());  // not before it is durable
  EXPECT_TRUE(market::CheckLeaseBinding(step.record_leases[0].lease).ok());
  // The reservation cannot expire under a lease being written.
  EXPECT_TRUE(engine->Tick(kNowMs + kBidTtlMs + 1).release.empty());
  const EngineStep stored = engine->OnLeaseStored(bid.id, Status::Ok(), kNowMs + kBidTtlMs + 2);
  ASSERT_EQ(stored.leases.size(), 1u);
  auto lease = market::OpenLease(market::EncodeEnvelope(stored.leases[0].envelope));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->body.bid_id, bid.id);
  EXPECT_EQ(lease->body.tenant, tenant_.public_key());
  EXPECT_EQ(engine->active_leases(), 1u);
  EXPECT_EQ(engine->live_reservations(), 0u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 1u);
  EXPECT_EQ(engine->counters().leases, 1u);
}

// A new pricing (SIGHUP) prices new bids; a bid made before keeps its price, and so does the
// lease made from it. A pricing the engine refuses changes nothing.
TEST_F(BidEngineTest, SetPricingPricesNewBidsAndKeepsExistingOnes) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  const auto old_bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  EXPECT_EQ(old_bid.body.price_per_hour, TablePrice(1, 300'000));

  PricingConfig dearer = TablePricing();
  dearer.tables[0].gpu["h100.80Gi.sxm"] = 400'000;
  ASSERT_TRUE(engine->SetPricing(dearer).ok());
  const auto new_bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  EXPECT_EQ(new_bid.body.price_per_hour, TablePrice(1, 400'000));
  // The Offer advertises the new tables.
  const market::Offer offer = engine->FreeOffer();
  ASSERT_FALSE(offer.pricing.empty());
  EXPECT_EQ(offer.pricing[0].gpu.at("h100.80Gi.sxm"), 400'000u);

  // The old bid is leased at its own price.
  const SignedAccept accept = Accept(tenant_, old_bid);
  ASSERT_EQ(engine->OnAccept(accept.accept, accept.wire, kNowMs + 100).record_leases.size(), 1u);
  const EngineStep stored = engine->OnLeaseStored(old_bid.id, Status::Ok(), kNowMs + 101);
  ASSERT_EQ(stored.leases.size(), 1u);
  EXPECT_EQ(stored.leases[0].body.price_per_hour, TablePrice(1, 300'000));

  // Refused (no tables for the table policy): the running pricing stays.
  PricingConfig empty;
  EXPECT_FALSE(engine->SetPricing(empty).ok());
  const auto third = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  EXPECT_EQ(third.body.price_per_hour, TablePrice(1, 400'000));
}

TEST_F(BidEngineTest, AcceptTwiceOrForAnothersBidChangesNothing) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  const auto bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  // Another provider's bid for an order of the same tenant.
  market::Identity rival = market::Identity::Generate();
  auto rival_engine = MakeEngine(rival, Inventory(4));
  const auto rival_bid = rival_engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  const SignedAccept for_rival = Accept(tenant_, rival_bid);
  auto nothing = [](const EngineStep& step) {
    return step.record_leases.empty() && step.leases.empty() && step.refusals.empty() && step.release.empty() &&
           step.reserve.empty();
  };
  EXPECT_TRUE(nothing(engine->OnAccept(for_rival.accept, for_rival.wire, kNowMs)));
  // An accept naming this provider but a bid it never made.
  market::Accept forged{bid.body.order_id, rival_bid.id, provider_.public_key()};
  auto forged_signed = market::MakeSigned(tenant_, forged, kNowMs, kOrderTtlMs, 7);
  EXPECT_TRUE(nothing(engine->OnAccept(forged_signed, market::EncodeEnvelope(forged_signed.envelope), kNowMs)));
  // Someone other than the order's tenant accepting its bid.
  market::Identity stranger = market::Identity::Generate();
  const SignedAccept stolen = Accept(stranger, bid);
  EXPECT_TRUE(nothing(engine->OnAccept(stolen.accept, stolen.wire, kNowMs)));
  EXPECT_TRUE(engine->Holds(bid.id));

  const SignedAccept accept = Accept(tenant_, bid);
  EXPECT_EQ(engine->OnAccept(accept.accept, accept.wire, kNowMs).record_leases.size(), 1u);
  EXPECT_TRUE(nothing(engine->OnAccept(accept.accept, accept.wire, kNowMs)));  // while it is written
  EXPECT_EQ(engine->OnLeaseStored(bid.id, Status::Ok(), kNowMs).leases.size(), 1u);
  EXPECT_TRUE(nothing(engine->OnAccept(accept.accept, accept.wire, kNowMs)));  // after
  const SignedAccept again = Accept(tenant_, bid);                             // a new accept of it
  EXPECT_TRUE(nothing(engine->OnAccept(again.accept, again.wire, kNowMs)));
  EXPECT_TRUE(engine->OnLeaseStored(bid.id, Status::Ok(), kNowMs).leases.empty());  // a second ack
  EXPECT_EQ(engine->counters().leases, 1u);
  EXPECT_EQ(engine->counters().accepts_ignored, 6u);
  EXPECT_EQ(engine->active_leases(), 1u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 3u);
}

TEST_F(BidEngineTest, AcceptBytesAreVerifiedBeforeTheyCount) {
  auto engine = MakeEngine(provider_, Inventory(2));
  ASSERT_NE(engine, nullptr);
  const auto bid = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  SignedAccept accept = Accept(tenant_, bid);
  market::Bytes tampered = accept.wire;
  tampered.back() ^= 1;  // the tenant's signature
  EXPECT_TRUE(engine->OnAcceptBytes(tampered, kNowMs).record_leases.empty());
  EXPECT_TRUE(engine->OnAcceptBytes(market::Bytes{0x93, 0x01}, kNowMs).record_leases.empty());
  EXPECT_TRUE(engine->OnAcceptBytes(accept.wire, kNowMs + kOrderTtlMs).record_leases.empty());  // expired
  EXPECT_EQ(engine->counters().accepts_ignored, 3u);
  EXPECT_TRUE(engine->Holds(bid.id));
  EXPECT_EQ(engine->OnAcceptBytes(accept.wire, kNowMs).record_leases.size(), 1u);
}

// Ended bids are remembered (to refuse late accepts) for a bounded time and number.
TEST_F(BidEngineTest, EndedBidsAreForgottenWithinTheirBounds) {
  BidEngineOptions options;
  options.max_ended = 2;
  auto engine = MakeEngine(provider_, Inventory(8), TablePricing(), options);
  ASSERT_NE(engine, nullptr);
  std::vector<market::Signed<market::Bid>> bids;
  for (int i = 0; i < 3; ++i) bids.push_back(engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0));
  engine->Tick(kNowMs + kBidTtlMs);
  auto refused = [&](const market::Signed<market::Bid>& bid, int64_t now) {
    const SignedAccept accept = Accept(tenant_, bid, now);
    return engine->OnAccept(accept.accept, accept.wire, now).refusals.size() == 1;
  };
  // Only two of the three are remembered.
  EXPECT_EQ(static_cast<int>(refused(bids[0], kNowMs + kBidTtlMs)) + refused(bids[1], kNowMs + kBidTtlMs) +
                refused(bids[2], kNowMs + kBidTtlMs),
            2);
  // And none once ended_memory_ms has passed.
  const int64_t later = kNowMs + kBidTtlMs + options.ended_memory_ms;
  engine->Tick(later);
  EXPECT_EQ(engine->NextDeadline(), std::nullopt);
  for (const auto& bid : bids) EXPECT_FALSE(refused(bid, later));
}

TEST_F(BidEngineTest, AcceptForAnExpiredOrReleasedReservationIsRefusedWithASignedReason) {
  auto engine = MakeEngine(provider_, Inventory(2));
  ASSERT_NE(engine, nullptr);
  const auto late = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  const auto lost = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  // `late` expires without a tick: the accept itself finds it expired.
  const SignedAccept accept_late = Accept(tenant_, late, kNowMs + kBidTtlMs);
  EngineStep step = engine->OnAccept(accept_late.accept, accept_late.wire, kNowMs + kBidTtlMs);
  ASSERT_EQ(step.refusals.size(), 1u);
  EXPECT_EQ(step.release, std::vector<market::MessageId>{late.id});
  const market::Signed<market::Close>& refusal = step.refusals[0].close;
  EXPECT_EQ(step.refusals[0].tenant, tenant_.public_key());
  auto opened = market::OpenSigned<market::Close>(market::EncodeEnvelope(refusal.envelope), kNowMs + kBidTtlMs);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->envelope.signer, provider_.public_key());
  EXPECT_EQ(opened->body.lease_id, accept_late.accept.id);
  EXPECT_NE(opened->body.note.find("expired"), std::string::npos) << opened->body.note;
  // `lost` was expired by a tick first; its accept is refused too.
  EXPECT_EQ(engine->Tick(kNowMs + kBidTtlMs).release, std::vector<market::MessageId>{lost.id});
  const SignedAccept accept_lost = Accept(tenant_, lost, kNowMs + kBidTtlMs);
  step = engine->OnAccept(accept_lost.accept, accept_lost.wire, kNowMs + kBidTtlMs + 1);
  ASSERT_EQ(step.refusals.size(), 1u);
  EXPECT_TRUE(step.record_leases.empty());
  EXPECT_EQ(engine->counters().accepts_refused, 2u);
  EXPECT_EQ(engine->counters().reservations_expired, 2u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 2u);
}

TEST_F(BidEngineTest, ReservationsAreReleasedOnEveryPath) {
  auto engine = MakeEngine(provider_, Inventory(8));
  ASSERT_NE(engine, nullptr);
  market::Identity rival = market::Identity::Generate();
  auto rival_engine = MakeEngine(rival, Inventory(8));

  // 1. The order is leased to another provider: released at once.
  const auto order = SignOrder(tenant_, GpuOrder(1));
  const auto mine = engine->OnOrder(order, kNowMs).bids.at(0);
  const auto theirs = rival_engine->OnOrder(order, kNowMs).bids.at(0);
  const SignedAccept accept_theirs = Accept(tenant_, theirs);
  const auto record = rival_engine->OnAccept(accept_theirs.accept, accept_theirs.wire, kNowMs).record_leases.at(0);
  const auto published = rival_engine->OnLeaseStored(theirs.id, Status::Ok(), kNowMs).leases.at(0);
  EXPECT_EQ(engine->OnLease(published, kNowMs + 1).release, std::vector<market::MessageId>{mine.id});
  EXPECT_FALSE(engine->Holds(mine.id));
  // Its own lease does not release the rival's other reservations.
  EXPECT_TRUE(rival_engine->OnLease(published, kNowMs).release.empty());

  // 2. The bid's TTL passes; 3. the order expires before the bid's TTL would.
  const auto ttl = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.at(0);
  const auto short_order = engine->OnOrder(SignOrder(tenant_, GpuOrder(1), kNowMs, 2'000), kNowMs).bids.at(0);
  EXPECT_EQ(short_order.body.reservation_expires_ms, kNowMs + 2'000);
  EXPECT_EQ(engine->NextDeadline(), kNowMs + 2'000);
  EXPECT_EQ(engine->Tick(kNowMs + 2'000).release, std::vector<market::MessageId>{short_order.id});
  EXPECT_EQ(engine->Tick(kNowMs + kBidTtlMs).release, std::vector<market::MessageId>{ttl.id});

  // 4. The ledger fails to record the lease: released, and the tenant told.
  const auto failing = engine->OnOrder(SignOrder(tenant_, GpuOrder(1), kNowMs + kBidTtlMs), kNowMs + kBidTtlMs).bids.at(0);
  const SignedAccept accept_failing = Accept(tenant_, failing, kNowMs + kBidTtlMs);
  ASSERT_EQ(engine->OnAccept(accept_failing.accept, accept_failing.wire, kNowMs + kBidTtlMs).record_leases.size(), 1u);
  EngineStep failed = engine->OnLeaseStored(failing.id, Status::IoError("disk full"), kNowMs + kBidTtlMs);
  EXPECT_EQ(failed.release, std::vector<market::MessageId>{failing.id});
  ASSERT_EQ(failed.refusals.size(), 1u);
  EXPECT_EQ(failed.refusals[0].close.body.lease_id, accept_failing.accept.id);
  EXPECT_EQ(engine->counters().leases_failed, 1u);

  // 5. A closed lease frees its capacity at once; a Close signed by a stranger does nothing.
  const auto leased = engine->OnOrder(SignOrder(tenant_, GpuOrder(3), kNowMs + kBidTtlMs), kNowMs + kBidTtlMs).bids.at(0);
  const SignedAccept accept_leased = Accept(tenant_, leased, kNowMs + kBidTtlMs);
  engine->OnAccept(accept_leased.accept, accept_leased.wire, kNowMs + kBidTtlMs);
  const auto lease = engine->OnLeaseStored(leased.id, Status::Ok(), kNowMs + kBidTtlMs).leases.at(0);
  EXPECT_EQ(FreeGpus(*engine, kH100), 5u);
  market::Close close_body{lease.id, market::CloseReason::kTenantClosed, kNowMs + kBidTtlMs + 5, ""};
  market::Identity stranger = market::Identity::Generate();
  EXPECT_FALSE(engine->OnClose(market::MakeSigned(stranger, close_body, kNowMs, kOrderTtlMs, 1), kNowMs).capacity_changed);
  EXPECT_EQ(FreeGpus(*engine, kH100), 5u);
  EXPECT_TRUE(engine->OnClose(market::MakeSigned(tenant_, close_body, kNowMs, kOrderTtlMs, 2), kNowMs).capacity_changed);
  EXPECT_EQ(FreeGpus(*engine, kH100), 8u);
  EXPECT_EQ(engine->active_leases(), 0u);
  EXPECT_EQ(engine->live_reservations(), 0u);
  EXPECT_EQ(engine->counters().leases_closed, 1u);
  EXPECT_EQ(engine->counters().reservations_released, 2u);  // lost, ledger failure
  EXPECT_EQ(engine->counters().reservations_expired, 2u);
}

TEST_F(BidEngineTest, RestartRestoresLiveReservationsAndLeasesAndReleasesExpiredOnes) {
  auto before = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(before, nullptr);
  // What the ledger holds: two reservations (one expires before the restart) and a lease.
  std::vector<RestoredReservation> reservations;
  const auto long_order = SignOrder(tenant_, GpuOrder(1));
  BidEngineOptions options;
  const EngineStep live = before->OnOrder(long_order, kNowMs + 5'000);
  const EngineStep expired = before->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs);
  for (const auto* step : {&live, &expired}) {
    const StoreReservation& stored = step->reserve.at(0);
    reservations.push_back(RestoredReservation{stored.bid, stored.expires_ms, stored.allocation});
  }
  const auto leased_bid = before->OnOrder(SignOrder(tenant_, GpuOrder(2)), kNowMs).bids.at(0);
  const SignedAccept accept = Accept(tenant_, leased_bid);
  before->OnAccept(accept.accept, accept.wire, kNowMs);
  const auto lease = before->OnLeaseStored(leased_bid.id, Status::Ok(), kNowMs).leases.at(0);
  Result<Allocation> lease_allocation = market::UsageOf(GpuOrder(2), lease.body.services);
  ASSERT_TRUE(lease_allocation.ok());
  std::vector<RestoredLease> leases = {
      RestoredLease{lease.id, tenant_.public_key(), lease.body.order_id, lease.body.bid_id, *lease_allocation}};
  before.reset();

  auto after = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(after, nullptr);
  const int64_t restart_ms = kNowMs + kBidTtlMs + 1;
  const EngineStep restored = after->Restore(reservations, leases, restart_ms);
  EXPECT_EQ(restored.release, std::vector<market::MessageId>{expired.bids[0].id});
  EXPECT_EQ(after->live_reservations(), 1u);
  EXPECT_EQ(after->active_leases(), 1u);
  EXPECT_EQ(FreeGpus(*after, kH100), 1u);  // 4 - lease 2 - live reservation 1
  const auto waiting = SignOrder(tenant_, GpuOrder(2));
  EXPECT_EQ(after->OnOrder(waiting, restart_ms).skipped, SkipReason::kCapacity);
  // The restored bid can still become a lease; the restored lease can still be closed, and its
  // GPUs go to the order that waited for them.
  const SignedAccept accept_live = Accept(tenant_, live.bids[0], restart_ms);
  EXPECT_EQ(after->OnAccept(accept_live.accept, accept_live.wire, restart_ms).record_leases.size(), 1u);
  EXPECT_EQ(after->OnLeaseStored(live.bids[0].id, Status::Ok(), restart_ms).leases.size(), 1u);
  market::Close close_body{lease.id, market::CloseReason::kProviderClosed, restart_ms, ""};
  const EngineStep closed = after->OnClose(market::MakeSigned(provider_, close_body, restart_ms, kOrderTtlMs, 3), restart_ms);
  ASSERT_EQ(closed.bids.size(), 1u);
  EXPECT_EQ(closed.bids[0].body.order_id, waiting.id);
  EXPECT_EQ(FreeGpus(*after, kH100), 1u);  // 4 - the restored bid's lease 1 - the waiting order's bid 2
  // The restored order is not bid on twice.
  EXPECT_EQ(after->OnOrder(long_order, restart_ms).skipped, SkipReason::kDuplicate);
}

TEST_F(BidEngineTest, MaxReservationsBoundsWhatAFloodOfOrdersCanHold) {
  BidEngineOptions options;
  options.max_reservations = 3;
  auto engine = MakeEngine(provider_, Inventory(8), TablePricing(), options);
  ASSERT_NE(engine, nullptr);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).bids.size(), 1u);
  EXPECT_EQ(engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).skipped, SkipReason::kTooManyReservations);
  EXPECT_EQ(engine->live_reservations(), 3u);
}

// A live reservation costs the engine at most kMaxReservationBytes of heap (its entry, the
// signed bid's bytes, its allocation and indexes): 10,000 open orders are a provider's normal
// load (bench_e2e). Measured with glibc's counters; the sanitizers replace malloc.
TEST_F(BidEngineTest, ALiveReservationCostsAtMostItsBound) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators keep no glibc counters";
#else
  constexpr size_t kOrders = 1'000;
  market::Offer inventory = Inventory(16);
  inventory.nodes.clear();  // a node has room for 16 of these orders
  for (size_t i = 0; i <= kOrders / 16; ++i) inventory.nodes.push_back(Node("n" + std::to_string(i), {Devices(kH100, 16)}));
  auto engine = MakeEngine(provider_, std::move(inventory));
  ASSERT_NE(engine, nullptr);
  std::vector<market::Signed<market::Order>> orders;
  for (size_t i = 0; i <= kOrders; ++i) orders.push_back(SignOrder(tenant_, GpuOrder(1)));
  ASSERT_EQ(engine->OnOrder(orders[0], kNowMs).bids.size(), 1u);  // the first one sizes the tables
  const size_t before = mallinfo2().uordblks;
  for (size_t i = 1; i <= kOrders; ++i) {
    const EngineStep step = engine->OnOrder(orders[i], kNowMs);
    ASSERT_EQ(step.bids.size(), 1u) << i << ": " << step.skip_detail;
  }
  const size_t per_reservation = (mallinfo2().uordblks - before) / kOrders;
  std::printf("heap bytes per live reservation: %zu\n", per_reservation);
  EXPECT_LE(per_reservation, kMaxReservationBytes);
  EXPECT_EQ(engine->live_reservations(), kOrders + 1);
#endif
}

// Damaged orders and accepts (random bytes changed, cut short, grown) never cost a reservation
// nor make a lease, and never crash the engine.
TEST_F(BidEngineTest, DamagedOrdersAndAcceptsCostNothing) {
  const uint32_t seed = gpumart::testing::TestSeed();
  std::mt19937 random(seed);
  auto engine = MakeEngine(provider_, Inventory(8));
  ASSERT_NE(engine, nullptr);
  const market::Bytes order = market::EncodeEnvelope(SignOrder(tenant_, GpuOrder(1)).envelope);
  const auto bid = engine->OnOrderBytes(order, kNowMs).bids.at(0);
  const market::Bytes accept = Accept(tenant_, bid).wire;
  auto damage = [&](market::Bytes bytes) {
    switch (random() % 3) {
      case 0:
        for (int flips = 1 + static_cast<int>(random() % 4); flips > 0; --flips) {
          bytes[random() % bytes.size()] ^= static_cast<uint8_t>(1 + random() % 255);
        }
        break;
      case 1: bytes.resize(random() % bytes.size()); break;
      default: bytes.insert(bytes.begin() + static_cast<long>(random() % bytes.size()), static_cast<uint8_t>(random()));
    }
    return bytes;
  };
  for (int i = 0; i < 1'000; ++i) {
    const EngineStep ordered = engine->OnOrderBytes(damage(order), kNowMs);
    ASSERT_TRUE(ordered.bids.empty() && ordered.reserve.empty()) << "iteration " << i;
    const EngineStep accepted = engine->OnAcceptBytes(damage(accept), kNowMs);
    ASSERT_TRUE(accepted.record_leases.empty() && accepted.refusals.empty()) << "iteration " << i;
  }
  EXPECT_EQ(engine->live_reservations(), 1u);
  EXPECT_EQ(engine->counters().bids, 1u);
  EXPECT_EQ(engine->counters().skipped_total(), 1'000u);
  EXPECT_EQ(engine->OnAcceptBytes(accept, kNowMs).record_leases.size(), 1u);  // the real one still works
}

// Many tenants' orders and accepts at once, in a random interleaving with ledger acks, rival
// leases, closes and the passing of time: the GPUs promised (live reservations + leases) never
// exceed the inventory, every bid ends exactly once, and free capacity is exact at the end.
TEST_F(BidEngineTest, RaceOfManyTenantsNeverOverbooksAndReleasesEverything) {
  const uint32_t seed = gpumart::testing::TestSeed();
  std::mt19937 random(seed);
  constexpr uint32_t kGpus = 6;
  auto engine = MakeEngine(provider_, Inventory(kGpus));
  ASSERT_NE(engine, nullptr);
  std::vector<market::Identity> tenants;
  for (int i = 0; i < 12; ++i) tenants.push_back(market::Identity::Generate());
  struct Open {
    market::Signed<market::Bid> bid;
    size_t tenant;
    uint32_t gpus;
  };
  std::vector<Open> bids;                  // bids not yet accepted
  std::vector<market::MessageId> writing;  // leases being written
  std::map<market::MessageId, std::pair<market::Signed<market::Lease>, size_t>> leased;
  std::map<market::MessageId, uint32_t> gpus_of_bid;
  int64_t now = kNowMs;
  uint64_t lease_gpus = 0;
  for (int round = 0; round < 400; ++round) {
    const int action = std::uniform_int_distribution<int>(0, 5)(random);
    if (action <= 1) {
      const size_t t = random() % tenants.size();
      const uint32_t units = 1 + random() % 3;
      const EngineStep step = engine->OnOrder(SignOrder(tenants[t], GpuOrder(units), now), now);
      for (const auto& bid : step.bids) {
        bids.push_back({bid, t, units});
        gpus_of_bid[bid.id] = units;
      }
    } else if (action == 2 && !bids.empty()) {
      // Every open bid is accepted at once, some twice.
      for (const Open& open : bids) {
        const SignedAccept accept = Accept(tenants[open.tenant], open.bid, now);
        for (int copy = 0; copy < 1 + static_cast<int>(random() % 2); ++copy) {
          const EngineStep step = engine->OnAccept(accept.accept, accept.wire, now);
          for (const auto& record : step.record_leases) writing.push_back(record.bid_id);
        }
      }
      bids.clear();
    } else if (action == 3 && !writing.empty()) {
      std::shuffle(writing.begin(), writing.end(), random);
      for (const auto& bid_id : writing) {
        const bool fails = random() % 8 == 0;
        const EngineStep step = engine->OnLeaseStored(bid_id, fails ? Status::IoError("x") : Status::Ok(), now);
        for (const auto& lease : step.leases) {
          leased.emplace(lease.id, std::make_pair(lease, gpus_of_bid.at(bid_id)));
          lease_gpus += gpus_of_bid.at(bid_id);
        }
      }
      writing.clear();
    } else if (action == 4 && !leased.empty()) {
      auto it = leased.begin();
      std::advance(it, random() % leased.size());
      market::Close body{it->first, market::CloseReason::kTenantClosed, now, ""};
      engine->OnClose(market::MakeSigned(provider_, body, now, kOrderTtlMs, market::RandomNonce()), now);
      lease_gpus -= it->second.second;
      leased.erase(it);
    } else {
      now += std::uniform_int_distribution<int64_t>(0, kBidTtlMs / 3)(random);
      engine->Tick(now);
    }
    ASSERT_LE(FreeGpus(*engine, kH100) + lease_gpus, kGpus) << "round " << round;
    ASSERT_EQ(engine->active_leases(), leased.size());
  }
  // Finish what is in flight, let everything expire, close every lease: all capacity is back.
  for (const auto& bid_id : writing) engine->OnLeaseStored(bid_id, Status::IoError("shutdown"), now);
  engine->Tick(now + kOrderTtlMs);
  for (const auto& [id, lease] : leased) {
    market::Close body{id, market::CloseReason::kTenantClosed, now, ""};
    engine->OnClose(market::MakeSigned(provider_, body, now, kOrderTtlMs, market::RandomNonce()), now);
  }
  EXPECT_EQ(FreeGpus(*engine, kH100), kGpus);
  EXPECT_EQ(engine->live_reservations(), 0u);
  EXPECT_EQ(engine->active_leases(), 0u);
  const auto& counters = engine->counters();
  EXPECT_EQ(counters.bids, counters.leases + counters.reservations_released + counters.reservations_expired);
  EXPECT_GT(counters.leases, 0u);  // the interleaving did race accepts to leases
  EXPECT_GT(counters.skipped[static_cast<size_t>(SkipReason::kCapacity)], 0u);  // and ran out of GPUs
}

}  // namespace
}  // namespace gpumart::bidding
