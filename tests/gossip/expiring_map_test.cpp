#include "node/gossip/expiring_map.h"

#include <gtest/gtest.h>

#include <functional>

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

}  // namespace
}  // namespace gpumart::gossip
