#include "ledger/lease_state.h"

#include <gtest/gtest.h>

#include <limits>

namespace gpumart::ledger {
namespace {

using market::CloseReason;

TEST(LeaseStateTest, OnlyRecordThenCloseIsLegal) {
  EXPECT_EQ(*NextLeaseState(std::nullopt, LeaseEvent::kRecord), LeaseState::kActive);
  EXPECT_EQ(*NextLeaseState(LeaseState::kActive, LeaseEvent::kClose), LeaseState::kClosed);
  EXPECT_EQ(NextLeaseState(std::nullopt, LeaseEvent::kClose).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(NextLeaseState(LeaseState::kActive, LeaseEvent::kRecord).status().code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(NextLeaseState(LeaseState::kClosed, LeaseEvent::kClose).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(NextLeaseState(LeaseState::kClosed, LeaseEvent::kRecord).status().code(),
            Status::Code::kFailedPrecondition);
}

TEST(LeaseStateTest, StatesPrintAndParse) {
  for (auto state : {LeaseState::kActive, LeaseState::kClosed}) EXPECT_EQ(ParseLeaseState(ToString(state)), state);
  EXPECT_FALSE(ParseLeaseState("pending"));
}

TEST(LeaseStateTest, WhoMayClose) {
  market::PublicKey tenant{};
  market::PublicKey provider{};
  market::PublicKey stranger{};
  tenant[0] = 1;
  provider[0] = 2;
  stranger[0] = 3;
  EXPECT_TRUE(CheckCloser(tenant, tenant, provider, CloseReason::kTenantClosed).ok());
  EXPECT_TRUE(CheckCloser(provider, tenant, provider, CloseReason::kProviderClosed).ok());
  EXPECT_TRUE(CheckCloser(provider, tenant, provider, CloseReason::kProviderFailure).ok());
  EXPECT_TRUE(CheckCloser(tenant, tenant, provider, CloseReason::kExpired).ok());
  EXPECT_TRUE(CheckCloser(provider, tenant, provider, CloseReason::kInsufficientFunds).ok());
  EXPECT_EQ(CheckCloser(provider, tenant, provider, CloseReason::kTenantClosed).code(),
            Status::Code::kPermissionDenied);
  EXPECT_EQ(CheckCloser(tenant, tenant, provider, CloseReason::kProviderFailure).code(),
            Status::Code::kPermissionDenied);
  EXPECT_EQ(CheckCloser(stranger, tenant, provider, CloseReason::kExpired).code(), Status::Code::kPermissionDenied);
}

TEST(LeaseStateTest, BillingRoundsDurationDownToWholeSecondsThenAmountDown) {
  // 3600 per hour = 1 per second.
  EXPECT_EQ(*ComputeBilling(3'600, 0, 1'999), (Billing{1'000, 1}));
  EXPECT_EQ(*ComputeBilling(3'600, 0, 999), (Billing{0, 0}));
  EXPECT_EQ(*ComputeBilling(3'600, 5'000, 5'000), (Billing{0, 0}));
  // 1000 per hour for 1 s is 0.277..., rounded down.
  EXPECT_EQ(*ComputeBilling(1'000, 0, 1'000), (Billing{1'000, 0}));
  EXPECT_EQ(*ComputeBilling(1'000, 0, 3'600'000), (Billing{3'600'000, 1'000}));
  // 1.5 hours at 250,000 uakt per hour.
  EXPECT_EQ(*ComputeBilling(250'000, 1'700'000'000'000, 1'700'005'400'999), (Billing{5'400'000, 375'000}));
  // 7 per hour for 7 minutes 59.9 s: 479 s x 7 / 3600 = 0.93 -> 0.
  EXPECT_EQ(ComputeBilling(7, 0, 479'900)->amount_owed, 0u);
  // The exact split (q*s + r*s/3600) agrees with the naive formula wherever that does not overflow.
  for (uint64_t price : {1ull, 3'599ull, 3'601ull, 123'456'789ull}) {
    for (int64_t ms : {0ll, 1'000ll, 61'500ll, 86'400'000ll}) {
      EXPECT_EQ(ComputeBilling(price, 0, ms)->amount_owed, price * static_cast<uint64_t>(ms / 1000) / 3600)
          << price << " " << ms;
    }
  }
}

TEST(LeaseStateTest, BillingRejectsTimeTravelAndOverflow) {
  EXPECT_EQ(ComputeBilling(1, 10, 9).status().code(), Status::Code::kInvalidArgument);
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(ComputeBilling(huge, 0, 3'600'000'000).status().code(), Status::Code::kLimitExceeded);
  // A price near the limit for exactly one hour still fits.
  EXPECT_EQ(ComputeBilling(huge, 0, 3'600'000)->amount_owed, huge);
}

TEST(LeaseStateTest, BillingValueRoundTrips) {
  const Billing billing{90'000, 123'456'789'012ull};
  const std::string encoded = EncodeBilling(billing);
  EXPECT_EQ(encoded.size(), kBillingBytes);
  EXPECT_EQ(*DecodeBilling(encoded), billing);
  EXPECT_FALSE(DecodeBilling(encoded.substr(1)).ok());
}

}  // namespace
}  // namespace gpumart::ledger
