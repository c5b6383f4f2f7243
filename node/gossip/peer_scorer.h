// Punishment, kept apart from detection: consumes the core's misbehaviour verdicts, keeps a
// decaying score per key (a peer's identity, or its address, as the driver chooses) and bans a
// key for a while when its score reaches the threshold. The driver asks IsBanned before admitting
// a link (the ZAP handler) or dialling an address, and disconnects a peer whose key gets banned.
// Bounded: at most limits::kMaxScoredKeys scores and limits::kMaxBans bans.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "node/gossip/verdicts.h"

namespace gpumart::gossip {

struct ScoreConfig {
  int64_t ban_threshold = 100;
  int64_t decay_ms_per_point = 1'000;  // a score falls by one point a second
  int64_t ban_ms = 3'600'000;
  // Points per verdict, by Misbehaviour. A forged signature or bad HELLO bans in two; an expired
  // message (which an honest relay can forward just before it expires) takes fifty.
  std::array<int64_t, kMisbehaviourCount> weights{
      20,   // kMalformedFrame
      10,   // kUnsupportedFrame
      50,   // kHandshake
      50,   // kBadHello
      20,   // kMalformedMessage
      50,   // kBadSignature
      25,   // kReplay
      2,    // kExpired
      5,    // kFromFuture
      5,    // kUnsolicited
      10,   // kFlood
  };
};

class PeerScorer {
 public:
  explicit PeerScorer(ScoreConfig config = {}) : config_(config) {}

  // Adds the verdict's points to key's score; true when this started a ban.
  bool Penalize(const std::string& key, Misbehaviour reason, int64_t now_ms);
  bool IsBanned(const std::string& key, int64_t now_ms) const;
  // The decayed score at now_ms (0 for an unknown key).
  int64_t Score(const std::string& key, int64_t now_ms) const;
  size_t bans() const { return bans_.size(); }

 private:
  struct Entry {
    int64_t score = 0;
    int64_t at_ms = 0;  // when score was last brought up to date
  };
  int64_t Decayed(const Entry& entry, int64_t now_ms) const;
  void MakeRoomForScore(int64_t now_ms);
  void MakeRoomForBan(int64_t now_ms);

  ScoreConfig config_;
  std::unordered_map<std::string, Entry> scores_;
  std::unordered_map<std::string, int64_t> bans_;  // key -> banned until
};

}  // namespace gpumart::gossip
