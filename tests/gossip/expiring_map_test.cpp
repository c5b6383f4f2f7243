#include "node/gossip/expiring_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <malloc.h>
#include <map>
#include <random>

#include "node/gossip/frames.h"
#include "node/gossip/short_id.h"
#include "tests/test_seed.h"

namespace gpumart::gossip {
namespace {

using Map = ExpiringMap<int, int, std::hash<int>>;

TEST(ExpiringMapTest, EntriesLiveUntilTheirExpiry) {
  Map map(100, 1'000);
  EXPECT_TRUE(map.Insert(1, 10, 5'500));
  EXPECT_TRUE(map.Insert(2, 20, 9'000));
  map.Expire(5'500);
  EXPECT_TRUE(map.Contains(1));  // never dropped before it expires
  map.Expire(6'000);
  EXPECT_FALSE(map.Contains(1));
  ASSERT_NE(map.Find(2), nullptr);
  EXPECT_EQ(*map.Find(2), 20);
  map.Expire(10'000);
  EXPECT_EQ(map.size(), 0u);
}

TEST(ExpiringMapTest, FirstInsertWins) {
  Map map(100, 1'000);
  EXPECT_TRUE(map.Insert(1, 10, 5'000));
  EXPECT_FALSE(map.Insert(1, 11, 50'000));
  EXPECT_EQ(*map.Find(1), 10);
  map.Expire(6'000);
  EXPECT_FALSE(map.Contains(1));
}

TEST(ExpiringMapTest, FullMapDropsWhatExpiresSoonest) {
  Map map(3, 1'000);
  map.Insert(1, 0, 50'000);
  map.Insert(2, 0, 10'000);
  map.Insert(3, 0, 30'000);
  map.Insert(4, 0, 40'000);
  EXPECT_EQ(map.size(), 3u);
  EXPECT_FALSE(map.Contains(2));
  EXPECT_TRUE(map.Contains(1));
  EXPECT_TRUE(map.Contains(4));
  EXPECT_EQ(map.evicted(), 1u);
}

// Every key lands on one of a few home slots, so runs are long, wrap round the table's end and
// get erased from the middle: the table must answer as a plain map does after any mix of inserts,
// expiry, eviction and shrinking.
struct FewHomes {
  size_t operator()(int key) const { return static_cast<size_t>(key % 7) * 5; }
};

TEST(ExpiringMapTest, AnswersAsAPlainMapDoes) {
  const uint32_t seed = gpumart::testing::TestSeed();
  std::mt19937 random(seed);
  ExpiringMap<int, int, FewHomes> map(2'000, 100);  // never full: the reference does not model eviction
  std::map<int, std::pair<int, int64_t>> reference;  // key -> (value, bucket end)
  int64_t now = 0;
  for (int step = 0; step < 20'000; ++step) {
    const int key = static_cast<int>(random() % 2'000);
    if (random() % 4 != 0) {
      const int64_t expires = now + static_cast<int64_t>(random() % 3'000);
      const bool inserted = map.Insert(key, step, expires);
      EXPECT_EQ(inserted, !reference.contains(key)) << step;
      if (inserted) reference[key] = {step, (expires / 100 + 1) * 100};
    } else {
      now += static_cast<int64_t>(random() % 200);
      map.Expire(now);
      std::erase_if(reference, [&](const auto& entry) { return entry.second.second <= now; });
    }
    ASSERT_EQ(map.evicted(), 0u) << step;  // the reference does not model eviction; FullMapDropsWhatExpiresSoonest does
    ASSERT_EQ(map.size(), reference.size()) << step;
    if (step % 499 == 0) {
      for (int probe = 0; probe < 2'000; ++probe) {
        const auto it = reference.find(probe);
        const int* found = map.Find(probe);
        ASSERT_EQ(found != nullptr, it != reference.end()) << step << " " << probe;
        if (found != nullptr) {
          EXPECT_EQ(*found, it->second.first);
        }
      }
    }
  }
  map.Expire(now + 10'000);
  EXPECT_EQ(map.size(), 0u);
  EXPECT_LE(map.slots(), 16u);  // emptied, it gave its table back
}

// The gossip core's seen-cache and nonce index: a 16-byte short id to a flag, and to another
// short id (gossip_core.cpp). Per entry they cost the table's slots and one key in its expiry
// bucket, not a heap block each.
TEST(ExpiringMapTest, AnEntryCostsAtMostItsBound) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators keep no glibc counters";
#else
  constexpr size_t kEntries = 20'000;  // a provider's 10,000 open orders and its bid on each
  std::mt19937_64 random(1);
  const auto make_id = [&] {
    ShortId id;
    for (size_t i = 0; i < id.size(); i += 8) {
      const uint64_t word = random();
      std::memcpy(id.data() + i, &word, 8);
    }
    return id;
  };
  const auto heap = [] { return mallinfo2().uordblks + mallinfo2().hblkhd; };  // hblkhd: the mmapped tables
  const size_t before = heap();
  ExpiringMap<ShortId, bool, ShortIdHash> seen(1 << 20, 1'000);
  ExpiringMap<ShortId, ShortId, ShortIdHash> nonces(1 << 20, 1'000);
  for (size_t i = 0; i < kEntries; ++i) {
    const int64_t expires = 600'000 + static_cast<int64_t>(i) * 2;  // orders arriving over 40 s
    seen.Insert(make_id(), false, expires);
    nonces.Insert(make_id(), make_id(), expires);
  }
  const size_t per_message = (heap() - before) / kEntries;
  std::printf("heap bytes per message in the seen-cache and nonce index: %zu\n", per_message);
  EXPECT_LE(per_message, limits::kMaxSeenBytesPerMessage);
#endif
}

}  // namespace
}  // namespace gpumart::gossip
