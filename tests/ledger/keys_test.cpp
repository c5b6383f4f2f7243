#include "ledger/keys.h"

#include <gtest/gtest.h>

namespace gpumart::ledger {
namespace {

MessageId IdOf(uint8_t fill) {
  MessageId id{};
  id.fill(fill);
  return id;
}

TEST(LedgerKeysTest, FamiliesHaveFixedShapes) {
  const MessageId id = IdOf(0xab);
  EXPECT_EQ(keys::Id(keys::kLease, id).size(), keys::kLease.size() + 32);
  EXPECT_EQ(keys::Pair(keys::kLeaseByTenant, IdOf(1), id).size(), keys::kLeaseByTenant.size() + 64);
  EXPECT_EQ(keys::StateId(keys::kLeaseByState, 2, id).size(), keys::kLeaseByState.size() + 33);
  EXPECT_EQ(keys::TimeId(keys::kOrderByExpiry, 5, id).size(), keys::kOrderByExpiry.size() + 40);
  EXPECT_EQ(keys::TrailingId(keys::Pair(keys::kLeaseByTenant, IdOf(1), id)), id);
}

TEST(LedgerKeysTest, TimeKeysSortInTimeOrder) {
  const MessageId id = IdOf(0);
  EXPECT_LT(keys::TimeId(keys::kOrderByExpiry, 255, id), keys::TimeId(keys::kOrderByExpiry, 256, id));
  EXPECT_LT(keys::TimeId(keys::kOrderByExpiry, 1'700'000'000'000, IdOf(0xff)),
            keys::TimeId(keys::kOrderByExpiry, 1'700'000'000'001, id));
  EXPECT_EQ(keys::KeyTime(keys::TimeId(keys::kBidByExpiry, 1'700'000'000'123, id), keys::kBidByExpiry),
            1'700'000'000'123);
  EXPECT_EQ(keys::TimeId(keys::kOrderByExpiry, -5, id), keys::TimeId(keys::kOrderByExpiry, 0, id));  // clamped
  EXPECT_LT(keys::ChainSeq(9), keys::ChainSeq(10));
  EXPECT_EQ(keys::ChainSeqOf(keys::ChainSeq(77)), 77u);
}

TEST(LedgerKeysTest, OnlyRecordsAndDerivedValuesAreChained) {
  const MessageId id = IdOf(3);
  for (auto prefix : {keys::kOrder, keys::kBid, keys::kLease, keys::kClose, keys::kBill, keys::kUsage,
                      keys::kReservation}) {
    EXPECT_TRUE(keys::IsChained(keys::Id(prefix, id))) << prefix;
  }
  EXPECT_TRUE(keys::IsChained(keys::Pair(keys::kAttestation, id, IdOf(4))));
  EXPECT_FALSE(keys::IsChained(keys::Id(keys::kOpenOrder, id)));
  EXPECT_FALSE(keys::IsChained(keys::ChainSeq(1)));
  EXPECT_FALSE(keys::IsChained(keys::kHeadKey));
}

TEST(LedgerKeysTest, DescribePrintsEveryField) {
  const MessageId id = IdOf(0x0f);
  const std::string hex(64, '0');
  EXPECT_EQ(keys::Describe(keys::Id(keys::kLease, IdOf(0))), "lease/" + hex);
  EXPECT_EQ(keys::Describe(keys::TimeId(keys::kOrderByExpiry, 1234, IdOf(0))), "ix/ox/1234/" + hex);
  EXPECT_EQ(keys::Describe(keys::StateId(keys::kLeaseByState, 2, IdOf(0))), "ix/ls/2/" + hex);
  EXPECT_EQ(keys::Describe(keys::ChainSeq(5)), "chain/5");
  EXPECT_EQ(keys::Describe(keys::Pair(keys::kAttestation, IdOf(0), IdOf(0))), "attest/" + hex + "/" + hex);
  EXPECT_EQ(keys::Describe(keys::kHeadKey), "meta/head");
  EXPECT_NE(keys::Describe("zz").find("unknown"), std::string::npos);
  EXPECT_NE(keys::Describe(keys::Id(keys::kLease, id) + "x").find("extra"), std::string::npos);
}

TEST(LedgerKeysTest, BigEndianIntegersRoundTrip) {
  std::string out;
  AppendU64(out, 0x0102030405060708ull);
  AppendU32(out, 0x0a0b0c0du);
  AppendU16(out, 0xbeef);
  ASSERT_EQ(out.size(), 14u);
  EXPECT_EQ(out[0], '\x01');
  EXPECT_EQ(ReadU64(out.data()), 0x0102030405060708ull);
  EXPECT_EQ(ReadU32(out.data() + 8), 0x0a0b0c0du);
  EXPECT_EQ(ReadU16(out.data() + 12), 0xbeef);
}

}  // namespace
}  // namespace gpumart::ledger
