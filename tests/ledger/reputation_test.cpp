#include "ledger/reputation.h"

#include <gtest/gtest.h>

#include "tests/ledger/ledger_test_util.h"

namespace gpumart::ledger {
namespace {

using market::CloseReason;
using testing::kStartMs;
using testing::OpenOrDie;
using testing::Parties;
using testing::TempDir;
using testing::WriteOne;

TEST(ReputationTest, CloseReasonsMapToOutcomes) {
  EXPECT_EQ(OutcomeOf(CloseReason::kTenantClosed), LeaseOutcome::kCompleted);
  EXPECT_EQ(OutcomeOf(CloseReason::kExpired), LeaseOutcome::kCompleted);
  EXPECT_EQ(OutcomeOf(CloseReason::kProviderFailure), LeaseOutcome::kFailed);
  EXPECT_EQ(OutcomeOf(CloseReason::kProviderClosed), LeaseOutcome::kFailed);
  EXPECT_EQ(OutcomeOf(CloseReason::kInsufficientFunds), LeaseOutcome::kNeutral);
}

TEST(ReputationTest, FormulaWithPrior) {
  // A newcomer is neither trusted nor condemned.
  EXPECT_EQ(ReputationPpm({}), 500'000u);
  EXPECT_EQ(ReputationPpm({1, 0, 0, 0}), 666'666u);  // 2/3
  EXPECT_EQ(ReputationPpm({0, 1, 0, 0}), 333'333u);  // 1/3
  EXPECT_EQ(ReputationPpm({9, 1, 0, 0}), 833'333u);  // 10/12
  // Neutral and active leases do not count.
  EXPECT_EQ(ReputationPpm({9, 1, 50, 70}), 833'333u);
  // More evidence moves further from the prior, never to the bounds.
  EXPECT_GT(ReputationPpm({1000, 0, 0, 0}), ReputationPpm({10, 0, 0, 0}));
  EXPECT_LT(ReputationPpm({1000, 0, 0, 0}), kReputationScalePpm);
  EXPECT_GT(ReputationPpm({0, 1000, 0, 0}), 0u);
}

TEST(ReputationTest, HugeCountsStayInRange) {
  EXPECT_EQ(ReputationPpm({UINT64_MAX, 0, 0, 0}), kReputationScalePpm - 1);
  EXPECT_EQ(ReputationPpm({0, UINT64_MAX, 0, 0}), 0u);
  const uint32_t even = ReputationPpm({UINT64_MAX / 2, UINT64_MAX / 2, 0, 0});
  EXPECT_EQ(even, 500'000u);
  const uint32_t mostly = ReputationPpm({UINT64_MAX - 10, UINT64_MAX / 3, 0, 0});
  EXPECT_GT(mostly, 740'000u);
  EXPECT_LT(mostly, 760'000u);
}

TEST(ReputationTest, StoreCountsAProvidersLeaseOutcomes) {
  TempDir dir;
  Parties alice;
  Parties bob;
  auto store = OpenOrDie(dir.Sub("ledger"));
  ASSERT_TRUE(store);
  auto outcomes = store->ProviderOutcomes(alice.provider().public_key());
  ASSERT_TRUE(outcomes.ok()) << outcomes.status().ToString();
  EXPECT_EQ(*outcomes, LeaseOutcomes{});

  // Alice's provider: two completed (one by the tenant, one expired), one failure, one
  // provider-closed, one insufficient-funds, one still active. Bob's provider: one failure.
  struct Case {
    const market::Identity* closer;
    CloseReason reason;
  };
  const Case cases[] = {{&alice.tenant(), CloseReason::kTenantClosed},
                        {&alice.provider(), CloseReason::kExpired},
                        {&alice.provider(), CloseReason::kProviderFailure},
                        {&alice.provider(), CloseReason::kProviderClosed},
                        {&alice.tenant(), CloseReason::kInsufficientFunds}};
  for (const Case& c : cases) {
    const auto lease = alice.FreshLease();
    ASSERT_TRUE(WriteOne(*store, RecordLease{lease}).ok());
    ASSERT_TRUE(WriteOne(*store, RecordClose{alice.Close(lease.id, *c.closer, c.reason, kStartMs + 1000)}).ok());
  }
  ASSERT_TRUE(WriteOne(*store, RecordLease{alice.FreshLease()}).ok());
  const auto bobs = bob.FreshLease();
  ASSERT_TRUE(WriteOne(*store, RecordLease{bobs}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordClose{bob.Close(bobs.id, bob.provider(), CloseReason::kProviderFailure,
                                                     kStartMs + 1000)})
                  .ok());

  outcomes = store->ProviderOutcomes(alice.provider().public_key());
  ASSERT_TRUE(outcomes.ok()) << outcomes.status().ToString();
  EXPECT_EQ(*outcomes, (LeaseOutcomes{2, 2, 1, 1}));
  EXPECT_EQ(ReputationPpm(*outcomes), 500'000u);  // (2+1)/(4+2)
  outcomes = store->ProviderOutcomes(bob.provider().public_key());
  ASSERT_TRUE(outcomes.ok()) << outcomes.status().ToString();
  EXPECT_EQ(*outcomes, (LeaseOutcomes{0, 1, 0, 0}));
  EXPECT_EQ(ReputationPpm(*outcomes), 333'333u);
  // A tenant's key has no leases as a provider.
  outcomes = store->ProviderOutcomes(alice.tenant().public_key());
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ(*outcomes, LeaseOutcomes{});
}

}  // namespace
}  // namespace gpumart::ledger
