// The bid engine's side of GPU health (docs/HEALTH.md): out-of-service GPUs leave the free
// capacity, leases over what is left in service are named for closing, and usage per device type.
#include <gtest/gtest.h>

#include "bidding/bid_engine.h"
#include "tests/bidding/engine_test_util.h"

namespace gpumart::bidding {
namespace {

using namespace gpumart::bidding::testing;  // NOLINT

class BidEngineHealthTest : public ::testing::Test {
 protected:
  BidEngineHealthTest() : provider_(market::Identity::Generate()), tenant_(market::Identity::Generate()) {}

  // Leases `units` GPUs on `engine`; returns the lease id.
  market::MessageId Lease(BidEngine& engine, uint32_t units, int64_t now_ms) {
    const EngineStep bid = engine.OnOrder(SignOrder(tenant_, GpuOrder(units), now_ms), now_ms);
    EXPECT_EQ(bid.bids.size(), 1u);
    if (bid.bids.empty()) return {};
    const SignedAccept accept = Accept(tenant_, bid.bids[0], now_ms);
    engine.OnAccept(accept.accept, accept.wire, now_ms);
    const EngineStep stored = engine.OnLeaseStored(bid.bids[0].id, Status::Ok(), now_ms);
    EXPECT_EQ(stored.leases.size(), 1u);
    return stored.leases.empty() ? market::MessageId{} : stored.leases[0].id;
  }

  market::Identity provider_;
  market::Identity tenant_;
};

TEST_F(BidEngineHealthTest, OutOfServiceGpusLeaveTheOfferAndComeBack) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(engine->SetOutOfService("n1", {{kH100, 3}}).empty());
  EXPECT_EQ(FreeGpus(*engine, kH100), 1u);
  // Two GPUs no longer fit; one does.
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, GpuOrder(2)), kNowMs).bids.empty());
  const market::MessageId lease = Lease(*engine, 1, kNowMs);
  EXPECT_EQ(FreeGpus(*engine, kH100), 0u);
  const auto usage = engine->Usage();
  EXPECT_EQ(usage.at(kH100).installed, 4u);
  EXPECT_EQ(usage.at(kH100).out_of_service, 3u);
  EXPECT_EQ(usage.at(kH100).leased, 1u);
  EXPECT_EQ(usage.at(kH100).revenue_per_hour.at("uakt"), TablePrice(1, 300000));
  // Back in service: free again, the lease untouched.
  EXPECT_TRUE(engine->SetOutOfService("n1", {}).empty());
  EXPECT_EQ(FreeGpus(*engine, kH100), 3u);
  EXPECT_EQ(engine->active_leases(), 1u);
  (void)lease;
}

TEST_F(BidEngineHealthTest, LeasesOverWhatIsLeftInServiceAreNamedNewestFirst) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  const market::MessageId first = Lease(*engine, 2, kNowMs);
  const market::MessageId second = Lease(*engine, 1, kNowMs + 1);
  const market::MessageId third = Lease(*engine, 1, kNowMs + 2);
  // One GPU fails: 3 in service, 4 leased: the newest lease goes.
  EXPECT_EQ(engine->SetOutOfService("n1", {{kH100, 1}}), std::vector<market::MessageId>{third});
  // Three fail: 1 in service; closing the newest two leaves 2 leased, so the first goes too.
  EXPECT_EQ(engine->SetOutOfService("n1", {{kH100, 3}}), (std::vector<market::MessageId>{third, second, first}));
  EXPECT_TRUE(engine->SetOutOfService("n9", {{kH100, 1}}).empty());  // no such node
  // Closing is the caller's: until then the leases hold their GPUs and nothing is free.
  EXPECT_EQ(FreeGpus(*engine, kH100), 0u);
}

// A reloaded inventory (SIGHUP) does not bring a failed GPU back: health decides that.
TEST_F(BidEngineHealthTest, AReloadKeepsGpusOutOfService) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  engine->SetOutOfService("n1", {{kH100, 1}});
  ASSERT_TRUE(engine->SetInventory(Inventory(8)).ok());
  EXPECT_EQ(FreeGpus(*engine, kH100), 7u);
  EXPECT_EQ(engine->Usage().at(kH100).out_of_service, 1u);
}

}  // namespace
}  // namespace gpumart::bidding
