#include "market/replay_guard.h"

#include <gtest/gtest.h>

#include <cstring>

namespace gpumart::market {
namespace {

constexpr int64_t kNow = 1'750'000'000'000;
using Verdict = ReplayGuard::Verdict;

PublicKey Key(uint32_t n) {
  PublicKey key{};
  std::memcpy(key.data(), &n, sizeof n);
  key[31] = 0xaa;
  return key;
}

MessageId Id(uint64_t n) {
  MessageId id{};
  std::memcpy(id.data(), &n, sizeof n);
  return id;
}

Status::Code CodeOf(const Result<Verdict>& result) { return result.ok() ? Status::Code::kOk : result.status().code(); }

TEST(ReplayGuardTest, DuplicateIsHarmlessReplayIsMisbehaviour) {
  ReplayGuard guard;
  const PublicKey a = Key(1);
  ASSERT_EQ(*guard.Check(a, 1, Id(10), kNow + 1000, kNow), Verdict::kNew);
  // The same message again: a duplicate, not an error.
  ASSERT_EQ(*guard.Check(a, 1, Id(10), kNow + 1000, kNow + 10), Verdict::kDuplicate);
  // A different message reusing the nonce: a replay.
  const Result<Verdict> replay = guard.Check(a, 1, Id(11), kNow + 1000, kNow + 10);
  EXPECT_EQ(CodeOf(replay), Status::Code::kReplay);
  // The first message is still remembered as it was.
  EXPECT_EQ(*guard.Check(a, 1, Id(10), kNow + 1000, kNow + 20), Verdict::kDuplicate);
  EXPECT_EQ(*guard.Check(a, 2, Id(12), kNow + 1000, kNow + 10), Verdict::kNew);
  EXPECT_EQ(*guard.Check(Key(2), 1, Id(13), kNow + 1000, kNow + 10), Verdict::kNew);
  EXPECT_EQ(guard.size(), 3u);
  // Expired messages are not remembered at all.
  EXPECT_EQ(CodeOf(guard.Check(a, 3, Id(14), kNow, kNow)), Status::Code::kExpired);
}

// One key flooding cheap messages fills its own quota and nothing else: before the per-signer
// quota, the first 2^20 messages of one key made the guard refuse everyone.
TEST(ReplayGuardTest, FloodFromOneKeyDoesNotDeafenOthers) {
  ReplayGuard guard;
  const PublicKey flooder = Key(666);
  const size_t quota = limits::kMaxReplayEntriesPerSigner;
  for (uint64_t nonce = 0; nonce < quota + 1000; ++nonce) {
    const Result<Verdict> verdict = guard.Check(flooder, nonce, Id(nonce), kNow + limits::kMaxTtlMs, kNow);
    if (nonce < quota) {
      ASSERT_TRUE(verdict.ok()) << nonce << ": " << verdict.status().ToString();
    } else {
      ASSERT_EQ(CodeOf(verdict), Status::Code::kLimitExceeded) << nonce;
      EXPECT_NE(verdict.status().message().find("quota"), std::string::npos) << verdict.status().message();
    }
  }
  EXPECT_EQ(guard.EntriesOf(flooder), quota);
  // Everyone else is heard.
  for (uint32_t other = 0; other < 100; ++other) {
    ASSERT_EQ(*guard.Check(Key(other), 1, Id(1'000'000 + other), kNow + 1000, kNow + 1), Verdict::kNew);
  }
  // The flooder's own duplicates are still recognised while it is at quota.
  EXPECT_EQ(*guard.Check(flooder, 5, Id(5), kNow + limits::kMaxTtlMs, kNow + 2), Verdict::kDuplicate);
}

TEST(ReplayGuardTest, FullGuardRefusesNewButKnowsDuplicates) {
  ReplayGuard guard(/*max_entries=*/5, /*max_entries_per_signer=*/3);
  for (uint32_t signer = 0; signer < 5; ++signer) ASSERT_TRUE(guard.Check(Key(signer), 0, Id(signer), kNow + 1000, kNow).ok());
  const Result<Verdict> full = guard.Check(Key(9), 0, Id(9), kNow + 1000, kNow);
  EXPECT_EQ(CodeOf(full), Status::Code::kLimitExceeded);
  EXPECT_NE(full.status().message().find("replay guard full"), std::string::npos);
  EXPECT_EQ(*guard.Check(Key(2), 0, Id(2), kNow + 1000, kNow), Verdict::kDuplicate);
  EXPECT_EQ(CodeOf(guard.Check(Key(2), 0, Id(99), kNow + 1000, kNow)), Status::Code::kReplay);
  // Room again once they expire.
  EXPECT_EQ(*guard.Check(Key(9), 0, Id(9), kNow + 5 * ReplayGuard::kBucketMs, kNow + 3 * ReplayGuard::kBucketMs),
            Verdict::kNew);
  EXPECT_EQ(guard.size(), 1u);
}

// The horizon is the longest a fresh message can live (kMaxTtlMs + kMaxClockSkewMs): anything
// CheckFreshness passes fits, anything further out is refused rather than remembered for longer.
TEST(ReplayGuardTest, ExpiryBeyondTheHorizonRefused) {
  ReplayGuard guard;
  EXPECT_EQ(limits::kReplayHorizonMs, limits::kMaxTtlMs + limits::kMaxClockSkewMs);
  EXPECT_EQ(CodeOf(guard.Check(Key(1), 1, Id(1), kNow + limits::kReplayHorizonMs + 1, kNow)),
            Status::Code::kLimitExceeded);
  EXPECT_EQ(*guard.Check(Key(1), 2, Id(2), kNow + limits::kReplayHorizonMs, kNow), Verdict::kNew);
  // At the end of time the horizon saturates instead of wrapping.
  EXPECT_EQ(*guard.Check(Key(1), 3, Id(3), INT64_MAX, INT64_MAX - 1), Verdict::kNew);
}

TEST(ReplayGuardTest, EntriesExpireByBucketAndFreeTheQuota) {
  ReplayGuard guard(/*max_entries=*/1000, /*max_entries_per_signer=*/10);
  const PublicKey a = Key(1);
  for (uint64_t nonce = 0; nonce < 10; ++nonce) ASSERT_TRUE(guard.Check(a, nonce, Id(nonce), kNow + 1000, kNow).ok());
  EXPECT_EQ(CodeOf(guard.Check(a, 10, Id(10), kNow + 1000, kNow)), Status::Code::kLimitExceeded);
  // Just after expiry: the nonce is free again (a different message with it is new, not a replay),
  // even while the old entry waits for its bucket.
  EXPECT_EQ(*guard.Check(a, 0, Id(100), kNow + 5000, kNow + 1000), Verdict::kNew);
  // One bucket later all expired entries are gone and the quota is free.
  const int64_t later = kNow + 1000 + 2 * ReplayGuard::kBucketMs;
  EXPECT_EQ(*guard.Check(a, 50, Id(50), later + 1000, later), Verdict::kNew);
  EXPECT_EQ(guard.size(), 1u);
  EXPECT_EQ(guard.EntriesOf(a), 1u);
}

// No call scans the table: over a long steady run the expiry work is one visit per elapsed bucket
// plus one per entry ever dropped, however many calls there were.
TEST(ReplayGuardTest, ExpiryWorkIsAmortisedConstant) {
  ReplayGuard guard;
  const int64_t ttl = 60'000;
  const int calls = 200'000;
  int64_t now = kNow;
  for (int i = 0; i < calls; ++i) {
    now += 10;  // 100 messages a second, each live for a minute
    ASSERT_TRUE(guard.Check(Key(i % 50), static_cast<uint64_t>(i), Id(static_cast<uint64_t>(i)), now + ttl, now).ok());
  }
  const uint64_t elapsed_buckets = static_cast<uint64_t>((now - kNow) / ReplayGuard::kBucketMs) + 2;
  EXPECT_LE(guard.expiry_work(), calls + elapsed_buckets);
  // About a minute and a bucket of messages stay live, not all of them.
  EXPECT_LE(guard.size(), static_cast<size_t>((ttl + 2 * ReplayGuard::kBucketMs) / 10));
  // After a pause longer than the horizon, one call visits each ring slot at most once.
  const uint64_t before = guard.expiry_work();
  const size_t live = guard.size();
  ASSERT_TRUE(guard.Check(Key(1), 1ULL << 40, Id(1ULL << 40), now + 30 * 86'400'000LL + 1000, now + 30 * 86'400'000LL).ok());
  const uint64_t slots = static_cast<uint64_t>(limits::kReplayHorizonMs / ReplayGuard::kBucketMs) + 3;
  EXPECT_LE(guard.expiry_work() - before, slots + live);
  EXPECT_EQ(guard.size(), 1u);
}

TEST(ReplayGuardTest, ClockGoingBackLosesNothing) {
  ReplayGuard guard;
  ASSERT_EQ(*guard.Check(Key(1), 1, Id(1), kNow + 600'000, kNow), Verdict::kNew);
  // An hour back, then forward again: the entry is still remembered until it expires.
  ASSERT_EQ(*guard.Check(Key(1), 2, Id(2), kNow - 3'000'000, kNow - 3'600'000), Verdict::kNew);
  EXPECT_EQ(*guard.Check(Key(1), 1, Id(1), kNow + 600'000, kNow + 1000), Verdict::kDuplicate);
  EXPECT_EQ(CodeOf(guard.Check(Key(1), 1, Id(7), kNow + 600'000, kNow + 1000)), Status::Code::kReplay);
  // The entry filed while the clock was behind is dropped once its time has passed.
  ASSERT_TRUE(guard.Check(Key(2), 1, Id(3), kNow + 3'600'000, kNow + 3'000'000).ok());
  EXPECT_EQ(guard.size(), 1u);
}

}  // namespace
}  // namespace gpumart::market
