#include "ledger/reputation.h"

#include <gtest/gtest.h>

#include <cctype>
#include <variant>

#include "market/codec.h"
#include "market/match.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/market/test_messages.h"

namespace gpumart::ledger {
namespace {

using market::AuditVerdict;
using market::CloseReason;
using market::Identity;
using market::PublicKey;
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

TEST(ReputationTest, AttestationsWeighTenOutcomesEach) {
  EXPECT_EQ(ReputationPpm({}, {}), 500'000u);
  EXPECT_EQ(ReputationPpm({}, {1, 0}), 916'666u);           // (10+1)/(10+2)
  EXPECT_EQ(ReputationPpm({}, {0, 1}), 83'333u);            // 1/(10+2)
  EXPECT_EQ(ReputationPpm({9, 1, 0, 0}, {1, 1}), 625'000u); // (19+1)/(19+11+2)
  // Without verdicts it is the ledger-only formula.
  EXPECT_EQ(ReputationPpm({9, 1, 0, 0}, {}), ReputationPpm({9, 1, 0, 0}));
}

TEST(ReputationTest, HugeVerdictCountsStayInRange) {
  EXPECT_EQ(ReputationPpm({UINT64_MAX, 0, 0, 0}, {UINT64_MAX, 0}), kReputationScalePpm - 1);
  EXPECT_EQ(ReputationPpm({0, UINT64_MAX, 0, 0}, {0, UINT64_MAX}), 0u);
  EXPECT_EQ(ReputationPpm({0, 0, 0, 0}, {UINT64_MAX, UINT64_MAX}), 500'000u);
  EXPECT_EQ(ReputationPpm({UINT64_MAX / 2, UINT64_MAX / 2, 0, 0}, {UINT64_MAX / 20, UINT64_MAX / 20}), 500'000u);
}

TEST(ReputationTest, NamedAuditorsAreTheOrdersKeysOnly) {
  const PublicKey a = Identity::FromSeed(market::Seed{1}).public_key();
  const PublicKey b = Identity::FromSeed(market::Seed{2}).public_key();
  market::SignedBy signed_by;
  std::string upper = market::ToHex(b);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  signed_by.all_of = {market::ToHex(a), "akash1auditorsaddress", market::ToHex(a).substr(2)};
  signed_by.any_of = {upper, market::ToHex(a), ""};
  EXPECT_EQ(NamedAuditors(signed_by), (std::vector<PublicKey>{a, b}));
  EXPECT_TRUE(NamedAuditors({}).empty());
}

market::Signed<market::Attestation> Attest(const Identity& auditor, const PublicKey& provider, AuditVerdict verdict,
                                           int64_t attested_ms, uint64_t nonce = 1) {
  return market::MakeSigned(auditor, market::Attestation{provider, verdict, attested_ms, "checked"}, attested_ms,
                            testing::kTtlMs, nonce);
}

class AttestationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(dir_.Sub("ledger"));
    ASSERT_TRUE(store_);
  }
  std::vector<market::Signed<market::Attestation>> Latest(std::vector<PublicKey> auditors) {
    auto found = store_->Attestations(provider_, auditors);
    EXPECT_TRUE(found.ok()) << found.status().ToString();
    return found.ok() ? *found : std::vector<market::Signed<market::Attestation>>{};
  }
  uint32_t ReputationFor(std::vector<PublicKey> auditors) {
    auto reputation = store_->Reputation(provider_, auditors);
    EXPECT_TRUE(reputation.ok()) << reputation.status().ToString();
    return reputation.ok() ? *reputation : 0;
  }

  TempDir dir_;
  std::unique_ptr<LedgerStore> store_;
  Identity named_ = Identity::Generate();
  Identity stranger_ = Identity::Generate();
  PublicKey provider_ = Identity::Generate().public_key();
};

// An offer's claim that an auditor signed its provider is worth nothing: the wire does not
// carry it, and an order's signedBy counts only the auditors whose latest attestation about the
// signer's key in this node's ledger is a pass (docs/MATCHING.md, signedBy).
TEST_F(AttestationStoreTest, SignedByCountsLatestPassingAttestationsNotTheOffersClaim) {
  const Identity provider = Identity::Generate();
  std::string named_upper = market::ToHex(named_.public_key());
  for (char& c : named_upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  market::Offer claim = market::testing::SampleOffer();
  claim.auditors = {market::ToHex(named_.public_key()), market::ToHex(stranger_.public_key())};
  const auto signed_claim = market::MakeSigned(provider, claim, kStartMs, testing::kTtlMs, 1);
  auto opened = market::OpenSigned<market::Offer>(market::EncodeEnvelope(signed_claim.envelope), kStartMs);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->body.auditors.empty()) << "an offer's auditors must not travel";

  market::Order order = market::testing::SampleOrder();
  order.attributes.clear();
  order.signed_by = {};
  market::Order unaudited = order;
  order.signed_by.all_of = {named_upper};
  auto reason = [&](const market::Order& o) {
    auto passing = store_->PassingAuditors(provider.public_key());
    EXPECT_TRUE(passing.ok()) << passing.status().ToString();
    const market::Offer indexed = market::OfferOfSigner(*opened, 0, passing.ok() ? *passing : std::vector<std::string>{});
    return market::FitProvider(o, indexed).exclusion.reason;
  };
  ASSERT_NE(reason(unaudited), market::ExclusionReason::kSignedBy);
  EXPECT_EQ(reason(order), market::ExclusionReason::kSignedBy);  // claimed, never attested

  // A stranger's fail and the named auditor's pass: only the pass counts, as a lower-case key
  // that an upper-case signedBy entry still names.
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{Attest(stranger_, provider.public_key(), AuditVerdict::kFail, kStartMs)}).ok());
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{Attest(named_, provider.public_key(), AuditVerdict::kPass, kStartMs)}).ok());
  auto passing = store_->PassingAuditors(provider.public_key());
  ASSERT_TRUE(passing.ok()) << passing.status().ToString();
  EXPECT_EQ(*passing, std::vector<std::string>{market::ToHex(named_.public_key())});
  EXPECT_EQ(reason(order), reason(unaudited));
  order.signed_by.all_of = {market::ToHex(stranger_.public_key())};
  EXPECT_EQ(reason(order), market::ExclusionReason::kSignedBy);
  order.signed_by.all_of = {};
  order.signed_by.any_of = {market::ToHex(stranger_.public_key()), named_upper};
  EXPECT_EQ(reason(order), reason(unaudited));

  // A later fail replaces the pass: the provider is no longer signed by that auditor.
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{Attest(named_, provider.public_key(), AuditVerdict::kFail, kStartMs + 1'000, 2)}).ok());
  passing = store_->PassingAuditors(provider.public_key());
  ASSERT_TRUE(passing.ok()) << passing.status().ToString();
  EXPECT_TRUE(passing->empty());
  EXPECT_EQ(reason(order), market::ExclusionReason::kSignedBy);
}

TEST_F(AttestationStoreTest, OnlyNamedAuditorsCount) {
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{Attest(stranger_, provider_, AuditVerdict::kFail, kStartMs)}).ok());
  EXPECT_TRUE(Latest({named_.public_key()}).empty());
  EXPECT_EQ(ReputationFor({named_.public_key()}), 500'000u);  // the stranger changes nothing
  EXPECT_EQ(ReputationFor({}), 500'000u);
  EXPECT_EQ(ReputationFor({stranger_.public_key()}), 83'333u);  // for a tenant that names it

  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{Attest(named_, provider_, AuditVerdict::kPass, kStartMs)}).ok());
  EXPECT_EQ(ReputationFor({named_.public_key()}), 916'666u);
  // Naming a key twice counts its attestation once.
  EXPECT_EQ(ReputationFor({named_.public_key(), named_.public_key()}), 916'666u);
  EXPECT_EQ(ReputationFor({named_.public_key(), stranger_.public_key()}), 500'000u);  // 11/22
  // An attestation is about one provider.
  auto other = store_->Reputation(named_.public_key(), std::vector<PublicKey>{named_.public_key()});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, 500'000u);
}

TEST_F(AttestationStoreTest, TheLatestAttestationOfAnAuditorReplacesEarlierOnes) {
  const auto first = Attest(named_, provider_, AuditVerdict::kPass, kStartMs, 1);
  const auto later = Attest(named_, provider_, AuditVerdict::kFail, kStartMs + 1'000, 2);
  const auto older = Attest(named_, provider_, AuditVerdict::kPass, kStartMs - 1'000, 3);
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{first}).ok());
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{later}).ok());
  auto latest = Latest({named_.public_key()});
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].id, later.id);
  EXPECT_EQ(ReputationFor({named_.public_key()}), 83'333u);
  // An older one arriving late, or the same again, changes nothing.
  EXPECT_EQ(WriteOne(*store_, RecordAttestation{older}).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(WriteOne(*store_, RecordAttestation{later}).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(WriteOne(*store_, RecordAttestation{first}).code(), Status::Code::kAlreadyExists);
  latest = Latest({named_.public_key()});
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].id, later.id);
  // At the same attested_ms the larger id wins, whichever arrives first.
  const auto tie_a = Attest(named_, provider_, AuditVerdict::kPass, kStartMs + 1'000, 4);
  const auto& winner = tie_a.id > later.id ? tie_a : later;
  const Status tie = WriteOne(*store_, RecordAttestation{tie_a});
  EXPECT_EQ(tie.ok(), tie_a.id > later.id) << tie.ToString();
  latest = Latest({named_.public_key()});
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].id, winner.id);
}

TEST_F(AttestationStoreTest, ForgedOrUndecodableAttestationsAreNeverStored) {
  // Wire bytes go through OpenRecord, which checks the auditor's signature.
  auto forged = Attest(stranger_, provider_, AuditVerdict::kPass, kStartMs);
  forged.envelope.signer = named_.public_key();
  const market::Bytes wire = market::EncodeEnvelope(forged.envelope);
  EXPECT_EQ(OpenRecord(wire).status().code(), Status::Code::kBadSignature);
  auto genuine = OpenRecord(market::EncodeEnvelope(Attest(named_, provider_, AuditVerdict::kPass, kStartMs).envelope));
  ASSERT_TRUE(genuine.ok()) << genuine.status().ToString();
  EXPECT_TRUE(std::holds_alternative<RecordAttestation>(*genuine));
  // A signed body the decoder would refuse (verdict 2) is refused before it is stored.
  market::Attestation bad{provider_, static_cast<AuditVerdict>(2), kStartMs, ""};
  EXPECT_FALSE(WriteOne(*store_, RecordAttestation{market::MakeSigned(named_, bad, kStartMs, testing::kTtlMs, 9)}).ok());
  bad.verdict = AuditVerdict::kPass;
  bad.note = std::string(market::limits::kMaxTextBytes + 1, 'x');
  EXPECT_FALSE(WriteOne(*store_, RecordAttestation{market::MakeSigned(named_, bad, kStartMs, testing::kTtlMs, 9)}).ok());
  // An id that is not its envelope's.
  auto misnamed = Attest(named_, provider_, AuditVerdict::kPass, kStartMs);
  misnamed.id.fill(7);
  EXPECT_FALSE(WriteOne(*store_, RecordAttestation{misnamed}).ok());
  EXPECT_TRUE(Latest({named_.public_key(), stranger_.public_key()}).empty());
}

}  // namespace
}  // namespace gpumart::ledger
