// Preemption Closes (docs/SPOT.md): every rule a node checks from signed data alone, what the
// store does with a Close that keeps them (applied, billing stops at its effective time) and with
// one that breaks them (refused, the lease stays open, the Close kept as a violation that counts
// against the provider), and that `ledger verify` re-checks both.
#include <gtest/gtest.h>

#include <cstring>

#include "ledger/lease_state.h"
#include "ledger/reputation.h"
#include "ledger/store.h"
#include "ledger/verify.h"
#include "tests/ledger/ledger_test_util.h"

namespace gpumart::ledger {
namespace {

using market::CloseReason;
using market::MessageId;
using market::Signed;
using testing::kStartMs;
using testing::kTtlMs;
using testing::OpenOrDie;
using testing::Parties;
using testing::TempDir;
using testing::WriteOne;

constexpr uint64_t kNoticeMs = 30'000;
constexpr int64_t kPreemptAtMs = kStartMs + 600'000;  // the provider signs the preemption then

// One provider with a spot lease (notice kNoticeMs) and, for a regular order, the lease that
// preempts it; every message really signed.
class Spot {
 public:
  Spot() : victim_(SpotLease(parties_)), preemptor_(RegularLease(parties_, kPreemptAtMs, kPreemptAtMs + kNoticeMs)) {}

  Parties& parties() { return parties_; }
  const Signed<market::Lease>& victim() const { return victim_; }
  const Signed<market::Lease>& preemptor() const { return preemptor_; }

  // A spot lease for a fresh order, starting at kStartMs.
  static Signed<market::Lease> SpotLease(Parties& parties, int64_t start_ms = kStartMs) {
    auto bid = parties.Bid(FreshOrderId(), start_ms);
    bid.body.spot = market::SpotTerms{kNoticeMs};
    return parties.Lease(Resign(parties.provider(), bid.body, start_ms), start_ms);
  }
  // A regular lease signed at `signed_ms`, starting at `start_ms`.
  static Signed<market::Lease> RegularLease(Parties& parties, int64_t signed_ms, int64_t start_ms) {
    auto lease = parties.Lease(parties.Bid(FreshOrderId(), signed_ms), signed_ms);
    lease.body.start_ms = start_ms;
    auto rebuilt = market::BuildLease(lease.body.accept_envelope, lease.body.bid_envelope, start_ms);
    EXPECT_TRUE(rebuilt.ok());
    return market::MakeSigned(parties.provider(), *rebuilt, signed_ms, kTtlMs, NextNonce());
  }

  // The provider's preemption of the spot lease for `preemptor`, signed at `signed_ms`,
  // effective at `effective_ms`.
  Signed<market::Close> Preemption(const Signed<market::Lease>& preemptor, int64_t signed_ms, int64_t effective_ms,
                                   const market::Identity* signer = nullptr) {
    market::Close close{victim_.id, CloseReason::kPreempted, effective_ms, "preempted",
                        market::EncodeEnvelope(preemptor.envelope)};
    return market::MakeSigned(signer ? *signer : parties_.provider(), close, signed_ms, kTtlMs, NextNonce());
  }
  Signed<market::Close> Honest() { return Preemption(preemptor_, kPreemptAtMs, kPreemptAtMs + kNoticeMs); }

 private:
  static MessageId FreshOrderId() {
    MessageId id{};
    const uint64_t n = NextNonce();
    std::memcpy(id.data(), &n, sizeof n);
    id[31] = 0x5f;
    return id;
  }
  static uint64_t NextNonce() {
    static uint64_t nonce = 1'000'000;
    return ++nonce;
  }
  static Signed<market::Bid> Resign(const market::Identity& provider, const market::Bid& bid, int64_t at_ms) {
    return market::MakeSigned(provider, bid, at_ms, kTtlMs, NextNonce());
  }

  Parties parties_;
  Signed<market::Lease> victim_;
  Signed<market::Lease> preemptor_;
};

TEST(PreemptionRulesTest, AnHonestPreemptionPasses) {
  Spot spot;
  EXPECT_TRUE(CheckPreemption(spot.Honest(), spot.parties().provider().public_key(), spot.victim().body.spot).ok());
  // A longer notice than stated is fine too.
  auto later_start = Spot::RegularLease(spot.parties(), kPreemptAtMs, kPreemptAtMs + 2 * kNoticeMs);
  auto generous = spot.Preemption(later_start, kPreemptAtMs, kPreemptAtMs + 2 * kNoticeMs);
  EXPECT_TRUE(CheckPreemption(generous, spot.parties().provider().public_key(), spot.victim().body.spot).ok());
}

TEST(PreemptionRulesTest, OnlyAnInterruptibleLease) {
  Spot spot;
  const Status status = CheckPreemption(spot.Honest(), spot.parties().provider().public_key(), std::nullopt);
  EXPECT_EQ(status.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(status.message().find("not interruptible"), std::string::npos) << status.message();
}

TEST(PreemptionRulesTest, TheNoticeMustBeHonoured) {
  Spot spot;
  auto early = spot.Preemption(spot.preemptor(), kPreemptAtMs, kPreemptAtMs + kNoticeMs - 1);
  const Status status = CheckPreemption(early, spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("notice not honoured"), std::string::npos) << status.message();
}

TEST(PreemptionRulesTest, ThePreemptorMustVerify) {
  Spot spot;
  auto forged = spot.preemptor();
  forged.envelope.signature[0] ^= 1;
  auto close = spot.Preemption(forged, kPreemptAtMs, kPreemptAtMs + kNoticeMs);
  const Status status = CheckPreemption(close, spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("does not verify"), std::string::npos) << status.message();
}

TEST(PreemptionRulesTest, ThePreemptorMustBeTheSameProvidersRegularLease) {
  Spot spot;
  Parties other;
  auto foreign = Spot::RegularLease(other, kPreemptAtMs, kPreemptAtMs + kNoticeMs);
  auto close = spot.Preemption(foreign, kPreemptAtMs, kPreemptAtMs + kNoticeMs);
  Status status = CheckPreemption(close, spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("another provider"), std::string::npos) << status.message();

  auto spot_preemptor = Spot::SpotLease(spot.parties(), kPreemptAtMs);
  close = spot.Preemption(spot_preemptor, kPreemptAtMs, kPreemptAtMs + kNoticeMs);
  status = CheckPreemption(close, spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("itself interruptible"), std::string::npos) << status.message();
}

TEST(PreemptionRulesTest, ThePreemptorMustBeRecentAndStartAfterTheEffectiveTime) {
  Spot spot;
  // Signed long before the Close: an old lease cannot justify a preemption now.
  auto old = Spot::RegularLease(spot.parties(), kPreemptAtMs - kMaxPreemptionLeadMs - 1, kPreemptAtMs + kNoticeMs);
  Status status = CheckPreemption(spot.Preemption(old, kPreemptAtMs, kPreemptAtMs + kNoticeMs),
                                  spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("not within"), std::string::npos) << status.message();
  // Signed after the Close.
  auto later = Spot::RegularLease(spot.parties(), kPreemptAtMs + 1, kPreemptAtMs + kNoticeMs);
  status = CheckPreemption(spot.Preemption(later, kPreemptAtMs, kPreemptAtMs + kNoticeMs),
                           spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("not within"), std::string::npos) << status.message();
  // Starting before the spot lease has ended: the capacity would be used twice.
  auto eager = Spot::RegularLease(spot.parties(), kPreemptAtMs, kPreemptAtMs + kNoticeMs - 1);
  status = CheckPreemption(spot.Preemption(eager, kPreemptAtMs, kPreemptAtMs + kNoticeMs),
                           spot.parties().provider().public_key(), spot.victim().body.spot);
  EXPECT_NE(status.message().find("before the preemption takes effect"), std::string::npos) << status.message();
}

TEST(PreemptionRulesTest, OnlyTheProviderMayPreempt) {
  Spot spot;
  const auto& p = spot.parties();
  EXPECT_TRUE(CheckCloser(p.provider().public_key(), p.tenant().public_key(), p.provider().public_key(),
                          CloseReason::kPreempted)
                  .ok());
  EXPECT_EQ(CheckCloser(p.tenant().public_key(), p.tenant().public_key(), p.provider().public_key(),
                        CloseReason::kPreempted)
                .code(),
            Status::Code::kPermissionDenied);
}

TEST(PreemptionStoreTest, AHonestPreemptionClosesAndBillsToItsEffectiveTime) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("ledger"));
  ASSERT_TRUE(store);
  Spot spot;
  ASSERT_TRUE(WriteOne(*store, RecordLease{spot.victim()}).ok());
  const auto close = spot.Honest();
  const Status written = WriteOne(*store, RecordClose{close}, kPreemptAtMs);
  ASSERT_TRUE(written.ok()) << written.ToString();
  auto record = store->GetLease(spot.victim().id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, LeaseState::kClosed);
  ASSERT_TRUE(record->billing.has_value());
  // Billed to the effective time (signed time + notice), not to when the Close was signed.
  EXPECT_EQ(record->billing->duration_ms, kPreemptAtMs + static_cast<int64_t>(kNoticeMs) - kStartMs);
  auto outcomes = store->ProviderOutcomes(spot.parties().provider().public_key());
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ(outcomes->neutral, 1u);
  EXPECT_EQ(outcomes->violations, 0u);
  const VerifyReport report = VerifyLedger(*store);
  EXPECT_TRUE(report.ok) << report.Describe();
}

TEST(PreemptionStoreTest, ARuleBreakingPreemptionIsRefusedAndCountsAgainstTheProvider) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("ledger"));
  ASSERT_TRUE(store);
  Spot spot;
  ASSERT_TRUE(WriteOne(*store, RecordLease{spot.victim()}).ok());
  const uint32_t before = *store->Reputation(spot.parties().provider().public_key(), {});
  const auto hasty = spot.Preemption(spot.preemptor(), kPreemptAtMs, kPreemptAtMs);  // no notice at all
  const Status refused = WriteOne(*store, RecordClose{hasty}, kPreemptAtMs);
  EXPECT_EQ(refused.code(), Status::Code::kFailedPrecondition) << refused.ToString();
  auto record = store->GetLease(spot.victim().id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, LeaseState::kActive);  // not applied
  auto outcomes = store->ProviderOutcomes(spot.parties().provider().public_key());
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ(outcomes->violations, 1u);
  EXPECT_LT(*store->Reputation(spot.parties().provider().public_key(), {}), before);
  // The same Close again changes nothing (one violation, still refused).
  EXPECT_FALSE(WriteOne(*store, RecordClose{hasty}, kPreemptAtMs).ok());
  EXPECT_EQ(store->ProviderOutcomes(spot.parties().provider().public_key())->violations, 1u);
  // The evidence verifies, and an honest preemption can still close the lease.
  VerifyReport report = VerifyLedger(*store);
  EXPECT_TRUE(report.ok) << report.Describe();
  ASSERT_TRUE(WriteOne(*store, RecordClose{spot.Honest()}, kPreemptAtMs).ok());
  report = VerifyLedger(*store);
  EXPECT_TRUE(report.ok) << report.Describe();
}

TEST(PreemptionStoreTest, APreemptionByAnyoneButTheProviderIsRefusedWithoutAViolation) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("ledger"));
  ASSERT_TRUE(store);
  Spot spot;
  ASSERT_TRUE(WriteOne(*store, RecordLease{spot.victim()}).ok());
  const market::Identity stranger = market::Identity::Generate();
  const auto close = spot.Preemption(spot.preemptor(), kPreemptAtMs, kPreemptAtMs, &stranger);
  EXPECT_EQ(WriteOne(*store, RecordClose{close}, kPreemptAtMs).code(), Status::Code::kPermissionDenied);
  // A stranger's word is nobody's evidence against the provider.
  EXPECT_EQ(store->ProviderOutcomes(spot.parties().provider().public_key())->violations, 0u);
}

}  // namespace
}  // namespace gpumart::ledger
