#include "ledger/verify.h"

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include "ledger/keys.h"
#include "tests/ledger/ledger_test_util.h"

namespace gpumart::ledger {
namespace {

using market::CloseReason;
using testing::kStartMs;
using testing::OpenOrDie;
using testing::Parties;
using testing::TempDir;
using testing::WriteOne;

// A ledger with one of everything: orders, bids, a reservation, active and closed leases.
class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(dir_.Sub("ledger"));
    ASSERT_TRUE(store_);
    order_ = parties_.Order();
    bid_ = parties_.Bid(order_.id);
    lease_ = parties_.Lease(bid_);
    closed_ = parties_.FreshLease();
    ASSERT_TRUE(WriteOne(*store_, RecordOrder{order_}).ok());
    ASSERT_TRUE(WriteOne(*store_, RecordBid{bid_}).ok());
    ASSERT_TRUE(WriteOne(*store_, RecordLease{lease_}).ok());
    ASSERT_TRUE(WriteOne(*store_, RecordLease{closed_}).ok());
    ASSERT_TRUE(WriteOne(*store_, RecordClose{parties_.Close(closed_.id, parties_.tenant(),
                                                             CloseReason::kTenantClosed, kStartMs + 7'000)})
                    .ok());
    ASSERT_TRUE(WriteOne(*store_, Reserve{Reservation{parties_.Bid(order_.id, kStartMs + 1).id,
                                                      parties_.provider().public_key(), kStartMs + 60'000, {}}})
                    .ok());
    ASSERT_TRUE(WriteOne(*store_, RecordOrder{parties_.Order(kStartMs + 5)}).ok());
  }

  std::string Get(const std::string& key) {
    std::string value;
    EXPECT_TRUE(store_->db()->Get(leveldb::ReadOptions(), key, &value).ok()) << keys::Describe(key);
    return value;
  }
  void Put(const std::string& key, const std::string& value) {
    ASSERT_TRUE(store_->db()->Put(leveldb::WriteOptions(), key, value).ok());
  }
  void Delete(const std::string& key) { ASSERT_TRUE(store_->db()->Delete(leveldb::WriteOptions(), key).ok()); }

  VerifyReport ExpectFailureAt(const std::string& key) {
    const VerifyReport report = VerifyLedger(*store_);
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.key, keys::Describe(key)) << report.Describe();
    return report;
  }

  TempDir dir_;
  Parties parties_;
  std::unique_ptr<LedgerStore> store_;
  market::Signed<market::Order> order_;
  market::Signed<market::Bid> bid_;
  market::Signed<market::Lease> lease_;
  market::Signed<market::Lease> closed_;
};

TEST_F(VerifyTest, GoodLedgerPasses) {
  const VerifyReport report = VerifyLedger(*store_);
  EXPECT_TRUE(report.ok) << report.Describe();
  EXPECT_EQ(report.records, 6u);  // 2 orders, 1 bid, 2 leases, 1 close
  EXPECT_EQ(report.signatures, 8u);
  EXPECT_EQ(report.derived_values, 3u);  // usage of the lease whose order is known, a bill, a reservation
  EXPECT_EQ(report.head, store_->head());
  EXPECT_GT(report.index_entries, 10u);
}

TEST_F(VerifyTest, FlippedByteInALeaseIsCaughtAtItsKey) {
  const std::string key = keys::Id(keys::kLease, lease_.id);
  std::string value = Get(key);
  value[value.size() / 2] ^= 0x04;  // inside the embedded bid: it no longer has the accepted id
  Put(key, value);
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("not the embedded bid"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, FlippedByteInTheSignatureIsCaught) {
  const std::string key = keys::Id(keys::kOrder, order_.id);
  std::string value = Get(key);
  value.back() ^= 0x80;  // the signature is the envelope's last field
  Put(key, value);
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("signature"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, AlteredDerivedValueIsCaughtByTheChain) {
  const std::string key = keys::Id(keys::kBill, closed_.id);
  Put(key, EncodeBilling(Billing{7'000, 1}));
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("chain"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, DeletedIndexEntryIsCaught) {
  const std::string key = keys::Pair(keys::kLeaseByTenant, parties_.tenant().public_key(), lease_.id);
  Delete(key);
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("missing index entry"), std::string::npos) << report.problem;
  EXPECT_NE(report.problem.find(market::ToHex(lease_.id)), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, StaleIndexEntryIsCaught) {
  const std::string key = keys::StateId(keys::kLeaseByState, static_cast<uint8_t>(LeaseState::kActive), closed_.id);
  Put(key, "");
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("unexpected index entry"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, DeletedRecordIsCaught) {
  const std::string key = keys::Id(keys::kBid, bid_.id);
  Delete(key);
  const VerifyReport report = VerifyLedger(*store_);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.key, keys::Describe(key)) << report.Describe();
  EXPECT_NE(report.problem.find("removed"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, RecordWrittenBehindTheLedgersBackIsCaught) {
  const auto forged = parties_.FreshLease();
  const auto bytes = market::EncodeEnvelope(forged.envelope);
  const std::string key = keys::Id(keys::kLease, forged.id);
  Put(key, std::string(bytes.begin(), bytes.end()));
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("not in the hash chain"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, LeaseNotBoundToItsBidIsFlagged) {
  // The provider embeds a dearer re-signed copy of its bid with the tenant's accept of the
  // original: every signature is valid, the binding is not.
  market::Bid dearer = bid_.body;
  dearer.price_per_hour *= 2;
  const auto dearer_bid = market::MakeSigned(parties_.provider(), dearer, kStartMs, testing::kTtlMs, 1000);
  market::Lease body;
  body.accept_envelope = lease_.body.accept_envelope;
  body.bid_envelope = market::EncodeEnvelope(dearer_bid.envelope);
  body.start_ms = kStartMs;
  const auto envelope = market::SignEnvelope(parties_.provider(), market::MessageType::kLease, market::EncodeBody(body),
                                             kStartMs, testing::kTtlMs, 1001);
  const auto bytes = market::EncodeEnvelope(envelope);
  const std::string key = keys::Id(keys::kLease, market::ComputeId(envelope));
  Put(key, std::string(bytes.begin(), bytes.end()));
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("not the embedded bid"), std::string::npos) << report.problem;
  // Nor does the ledger take it through its front door.
  EXPECT_FALSE(OpenRecord(bytes).ok());
}

TEST_F(VerifyTest, AlteredChainEntryBreaksTheLink) {
  std::string entry = Get(keys::ChainSeq(2));
  entry[entry.size() - 1] ^= 1;
  Put(keys::ChainSeq(2), entry);
  const VerifyReport report = ExpectFailureAt(keys::ChainSeq(3));
  EXPECT_NE(report.problem.find("prev_hash"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, TruncatedChainIsCaughtAtTheHead) {
  Delete(keys::ChainSeq(store_->head().seq));
  const VerifyReport report = ExpectFailureAt(std::string(keys::kHeadKey));
  EXPECT_NE(report.problem.find("chain ends"), std::string::npos) << report.problem;
}

TEST_F(VerifyTest, UnknownKeyIsCaught) {
  Put("zzz/extra", "x");
  const VerifyReport report = VerifyLedger(*store_);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("unknown key"), std::string::npos) << report.Describe();
}

TEST_F(VerifyTest, LeaseSwappedForAnotherValidLeaseIsCaught) {
  // A valid, signed lease stored under another lease's id: signatures pass, the id does not.
  const auto other = parties_.FreshLease();
  const auto bytes = market::EncodeEnvelope(other.envelope);
  const std::string key = keys::Id(keys::kLease, lease_.id);
  Put(key, std::string(bytes.begin(), bytes.end()));
  const VerifyReport report = ExpectFailureAt(key);
  EXPECT_NE(report.problem.find("id"), std::string::npos) << report.problem;
}

// Attestations are signed records like the others: verify re-checks each one.
class VerifyAttestationTest : public VerifyTest {
 protected:
  void SetUp() override {
    VerifyTest::SetUp();
    attestation_ = market::MakeSigned(
        auditor_, market::Attestation{parties_.provider().public_key(), market::AuditVerdict::kPass, kStartMs, "ok"},
        kStartMs, testing::kTtlMs, 1);
    ASSERT_TRUE(WriteOne(*store_, RecordAttestation{attestation_}).ok());
    key_ = keys::Pair(keys::kAttestation, parties_.provider().public_key(), auditor_.public_key());
  }
  market::Identity auditor_ = market::Identity::Generate();
  market::Signed<market::Attestation> attestation_;
  std::string key_;
};

TEST_F(VerifyAttestationTest, LedgerWithAnAttestationPasses) {
  const VerifyReport report = VerifyLedger(*store_);
  EXPECT_TRUE(report.ok) << report.Describe();
  EXPECT_EQ(report.records, 7u);
  EXPECT_EQ(report.signatures, 9u);
  // A later attestation replaces the record; the chain logs both puts.
  ASSERT_TRUE(WriteOne(*store_, RecordAttestation{market::MakeSigned(
                                    auditor_,
                                    market::Attestation{parties_.provider().public_key(), market::AuditVerdict::kFail,
                                                        kStartMs + 1, ""},
                                    kStartMs + 1, testing::kTtlMs, 2)})
                  .ok());
  const VerifyReport again = VerifyLedger(*store_);
  EXPECT_TRUE(again.ok) << again.Describe();
  EXPECT_EQ(again.records, 7u);
}

TEST_F(VerifyAttestationTest, FlippedSignatureByteIsCaught) {
  std::string value = Get(key_);
  value.back() ^= 0x01;
  Put(key_, value);
  const VerifyReport report = ExpectFailureAt(key_);
  EXPECT_NE(report.problem.find("signature"), std::string::npos) << report.problem;
}

TEST_F(VerifyAttestationTest, AttestationFiledUnderAnotherAuditorIsCaught) {
  // A genuine attestation moved to another auditor's key would speak for that auditor.
  const std::string value = Get(key_);
  Delete(key_);
  const std::string moved = keys::Pair(keys::kAttestation, parties_.provider().public_key(),
                                       parties_.tenant().public_key());
  Put(moved, value);
  const VerifyReport report = ExpectFailureAt(moved);
  EXPECT_NE(report.problem.find("misplaced"), std::string::npos) << report.problem;
}

TEST_F(VerifyAttestationTest, UndecodableAttestationIsCaught) {
  Put(key_, "not an envelope");
  const VerifyReport report = ExpectFailureAt(key_);
  EXPECT_NE(report.problem.find("does not decode"), std::string::npos) << report.problem;
}

}  // namespace
}  // namespace gpumart::ledger
