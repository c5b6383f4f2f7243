#include "node/gossip/peer_scorer.h"

#include <gtest/gtest.h>

namespace gpumart::gossip {
namespace {

TEST(PeerScorerTest, BansWhenTheScoreReachesTheThreshold) {
  PeerScorer scorer;
  EXPECT_FALSE(scorer.Penalize("mallory", Misbehaviour::kBadSignature, 0));
  EXPECT_EQ(scorer.Score("mallory", 0), 50);
  EXPECT_FALSE(scorer.IsBanned("mallory", 0));
  EXPECT_TRUE(scorer.Penalize("mallory", Misbehaviour::kBadSignature, 0));
  EXPECT_TRUE(scorer.IsBanned("mallory", 0));
  EXPECT_FALSE(scorer.IsBanned("alice", 0));
  // A banned key is not scored further (the ban does not restart).
  EXPECT_FALSE(scorer.Penalize("mallory", Misbehaviour::kBadSignature, 1));
}

TEST(PeerScorerTest, BanEnds) {
  ScoreConfig config;
  config.ban_ms = 10'000;
  PeerScorer scorer(config);
  scorer.Penalize("mallory", Misbehaviour::kBadHello, 0);
  EXPECT_TRUE(scorer.Penalize("mallory", Misbehaviour::kBadHello, 0));
  EXPECT_TRUE(scorer.IsBanned("mallory", 9'999));
  EXPECT_FALSE(scorer.IsBanned("mallory", 10'000));
  EXPECT_EQ(scorer.Score("mallory", 10'000), 0);  // the ban wiped the score
}

TEST(PeerScorerTest, ScoresDecay) {
  PeerScorer scorer;  // one point a second
  scorer.Penalize("bob", Misbehaviour::kBadSignature, 0);
  EXPECT_EQ(scorer.Score("bob", 10'000), 40);
  EXPECT_EQ(scorer.Score("bob", 60'000), 0);
  // Slow, occasional faults never add up to a ban.
  for (int64_t t = 0; t < 1'000'000; t += 30'000) EXPECT_FALSE(scorer.Penalize("carol", Misbehaviour::kMalformedFrame, t));
  // Frequent small ones do.
  bool banned = false;
  for (int i = 0; i < 100 && !banned; ++i) banned = scorer.Penalize("dave", Misbehaviour::kExpired, i * 100);
  EXPECT_TRUE(banned);
}

TEST(PeerScorerTest, DecayKeepsTheRemainder) {
  // Penalties 600 ms apart must decay 0.6 points each, not 0 (rounding must not stop decay).
  PeerScorer scorer;
  for (int i = 0; i < 10; ++i) scorer.Penalize("erin", Misbehaviour::kExpired, i * 600);
  EXPECT_EQ(scorer.Score("erin", 5'400), 20 - 5);
}

}  // namespace
}  // namespace gpumart::gossip
