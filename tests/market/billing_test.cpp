#include "market/billing.h"

#include <gtest/gtest.h>

#include <limits>

namespace gpumart::market {
namespace {

Lease At(int64_t start_ms, uint64_t price_per_hour) {
  Lease lease;
  lease.start_ms = start_ms;
  lease.price_per_hour = price_per_hour;
  lease.denom = "uakt";
  return lease;
}

uint64_t Cost(const Lease& lease, const Close* close, int64_t now_ms) {
  Result<Accrued> accrued = AccruedCost(lease, close, now_ms);
  EXPECT_TRUE(accrued.ok()) << accrued.status().ToString();
  return accrued.ok() ? accrued->amount : 0;
}

TEST(BillingTest, AccruesPerWholeSecondUntilNowOrTheClose) {
  const Lease lease = At(1'000'000, 650'000);
  EXPECT_EQ(Cost(lease, nullptr, 1'000'000), 0u);
  EXPECT_EQ(Cost(lease, nullptr, 1'000'000 + static_cast<int64_t>(kMsPerHour)), 650'000u);
  EXPECT_EQ(Cost(lease, nullptr, 1'000'000 + 90 * 60'000), 975'000u);
  EXPECT_EQ(Cost(lease, nullptr, 1'000'000 + 999), 0u);   // not a whole second yet
  EXPECT_EQ(Cost(lease, nullptr, 1'000'000 + 1'000), 180u);  // 650000 / 3600 = 180.5
  EXPECT_EQ(AccruedCost(lease, nullptr, 1'000'000 + 1'999)->duration_ms, 1'000);
  Close close{{}, CloseReason::kTenantClosed, 1'000'000 + 2 * static_cast<int64_t>(kMsPerHour), ""};
  EXPECT_EQ(Cost(lease, &close, 1'000'000 + 10 * static_cast<int64_t>(kMsPerHour)), 1'300'000u);  // stops at the close
  EXPECT_EQ(BilledUntilMs(lease, &close, 0), close.closed_ms);
  // An open lease seen before its start (clock skew) costs nothing; a close before it is refused.
  EXPECT_EQ(Cost(lease, nullptr, 0), 0u);
  close.closed_ms = 0;
  EXPECT_EQ(AccruedCost(lease, &close, 2'000'000).status().code(), Status::Code::kInvalidArgument);
}

TEST(BillingTest, AnAmountPast64BitsIsRefusedNotWrapped) {
  const Lease lease = At(0, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(AccruedCost(lease, nullptr, 2 * static_cast<int64_t>(kMsPerHour)).status().code(),
            Status::Code::kLimitExceeded);
  EXPECT_EQ(AccruedCost(At(std::numeric_limits<int64_t>::min(), 1), nullptr, std::numeric_limits<int64_t>::max())
                .status()
                .code(),
            Status::Code::kLimitExceeded);
}

}  // namespace
}  // namespace gpumart::market
