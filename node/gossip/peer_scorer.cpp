#include "node/gossip/peer_scorer.h"

#include <algorithm>

#include "node/gossip/frames.h"

namespace gpumart::gossip {

int64_t PeerScorer::Decayed(const Entry& entry, int64_t now_ms) const {
  const int64_t elapsed = std::max<int64_t>(0, now_ms - entry.at_ms);
  return std::max<int64_t>(0, entry.score - elapsed / config_.decay_ms_per_point);
}

bool PeerScorer::Penalize(const std::string& key, Misbehaviour reason, int64_t now_ms) {
  if (IsBanned(key, now_ms)) return false;
  auto it = scores_.find(key);
  if (it == scores_.end()) {
    MakeRoomForScore(now_ms);
    it = scores_.emplace(key, Entry{0, now_ms}).first;
  }
  Entry& entry = it->second;
  // Decay in whole points and keep the remainder, so frequent small penalties still decay.
  const int64_t elapsed = std::max<int64_t>(0, now_ms - entry.at_ms);
  const int64_t points = elapsed / config_.decay_ms_per_point;
  entry.score = std::max<int64_t>(0, entry.score - points);
  entry.at_ms += points * config_.decay_ms_per_point;
  if (entry.score == 0) entry.at_ms = now_ms;
  entry.score += config_.weights[static_cast<size_t>(reason)];
  if (entry.score < config_.ban_threshold) return false;
  scores_.erase(it);
  MakeRoomForBan(now_ms);
  bans_[key] = now_ms + config_.ban_ms;
  return true;
}

bool PeerScorer::IsBanned(const std::string& key, int64_t now_ms) const {
  auto it = bans_.find(key);
  return it != bans_.end() && it->second > now_ms;
}

int64_t PeerScorer::Score(const std::string& key, int64_t now_ms) const {
  auto it = scores_.find(key);
  return it == scores_.end() ? 0 : Decayed(it->second, now_ms);
}

void PeerScorer::MakeRoomForScore(int64_t now_ms) {
  if (scores_.size() < limits::kMaxScoredKeys) return;
  std::erase_if(scores_, [&](const auto& entry) { return Decayed(entry.second, now_ms) == 0; });
  if (scores_.size() < limits::kMaxScoredKeys) return;
  // Still full of live scores: forget the lowest (the least suspicious).
  auto lowest = std::min_element(scores_.begin(), scores_.end(), [&](const auto& a, const auto& b) {
    return Decayed(a.second, now_ms) < Decayed(b.second, now_ms);
  });
  scores_.erase(lowest);
}

void PeerScorer::MakeRoomForBan(int64_t now_ms) {
  if (bans_.size() < limits::kMaxBans) return;
  std::erase_if(bans_, [&](const auto& entry) { return entry.second <= now_ms; });
  if (bans_.size() < limits::kMaxBans) return;
  auto soonest = std::min_element(bans_.begin(), bans_.end(),
                                  [](const auto& a, const auto& b) { return a.second < b.second; });
  bans_.erase(soonest);
}

}  // namespace gpumart::gossip
