#include "market/replay_guard.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "market/checked_math.h"

namespace gpumart::market {

namespace {
// Enough buckets that the ring covers the whole horizon plus the partial buckets at both ends,
// so two live buckets never share a slot.
constexpr size_t kRingSlots = static_cast<size_t>(limits::kReplayHorizonMs / ReplayGuard::kBucketMs) + 3;

std::string SignerText(const PublicKey& signer) { return ToHex(signer).substr(0, 16) + "…"; }
}  // namespace

size_t ReplayGuard::KeyedHash::operator()(const Key& k) const {
  uint8_t input[kPublicKeyBytes + sizeof k.nonce];
  std::memcpy(input, k.signer.data(), kPublicKeyBytes);
  std::memcpy(input + kPublicKeyBytes, &k.nonce, sizeof k.nonce);
  uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, input, sizeof input, key);
  size_t hash = 0;
  std::memcpy(&hash, out, sizeof hash);
  return hash;
}

size_t ReplayGuard::KeyedHash::operator()(const PublicKey& signer) const {
  uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, signer.data(), signer.size(), key);
  size_t hash = 0;
  std::memcpy(&hash, out, sizeof hash);
  return hash;
}

ReplayGuard::ReplayGuard(size_t max_entries, size_t max_entries_per_signer)
    : max_entries_(max_entries), max_entries_per_signer_(max_entries_per_signer) {
  KeyedHash hash;
  // RandomNonce initialises libsodium and draws from its CSPRNG.
  for (size_t i = 0; i < sizeof hash.key; i += sizeof(uint64_t)) {
    const uint64_t random = RandomNonce();
    std::memcpy(hash.key + i, &random, sizeof random);
  }
  entries_ = decltype(entries_)(0, hash);
  per_signer_ = decltype(per_signer_)(0, hash);
}

int64_t ReplayGuard::BucketOf(int64_t ms) {
  // Floor division, also for negative times (no overflow: ms + 1 > INT64_MIN).
  return ms >= 0 ? ms / kBucketMs : -((-(ms + 1)) / kBucketMs) - 1;
}

size_t ReplayGuard::Slot(int64_t bucket) const {
  constexpr auto slots = static_cast<int64_t>(kRingSlots);
  return static_cast<size_t>(((bucket % slots) + slots) % slots);
}

size_t ReplayGuard::EntriesOf(const PublicKey& signer) const {
  auto it = per_signer_.find(signer);
  return it == per_signer_.end() ? 0 : it->second;
}

void ReplayGuard::Forget(std::unordered_map<Key, Entry, KeyedHash>::iterator it) {
  auto count = per_signer_.find(it->first.signer);
  if (count != per_signer_.end() && --count->second == 0) per_signer_.erase(count);
  entries_.erase(it);
}

void ReplayGuard::Expire(int64_t now_ms) {
  // Bucket b holds expiries in [b * kBucketMs, (b + 1) * kBucketMs): all expired once the bucket
  // of now_ms is past it.
  const int64_t target = BucketOf(now_ms) - 1;
  if (!started_) {
    started_ = true;
    swept_through_ = target;
    return;
  }
  if (target <= swept_through_ || ring_.empty()) {  // same bucket as last time, clock went back, or empty
    swept_through_ = std::max(swept_through_, target);
    return;
  }
  // After a long pause every slot is due once; visiting each slot once drops everything older.
  const uint64_t gap = MsBetween(swept_through_, target);
  const size_t steps = gap >= kRingSlots ? kRingSlots : static_cast<size_t>(gap);
  for (size_t i = 1; i <= steps; ++i) {
    const size_t slot = Slot(swept_through_ + static_cast<int64_t>(i));
    std::vector<Key>& keys = ring_[slot];
    ++expiry_work_;
    size_t kept = 0;
    for (const Key& key : keys) {
      auto it = entries_.find(key);
      // A reference is stale when the entry is gone or was re-filed under another slot.
      if (it == entries_.end() || Slot(it->second.bucket) != slot) continue;
      if (it->second.bucket <= target) {
        Forget(it);
        ++expiry_work_;
      } else {
        keys[kept++] = key;  // re-filed a whole ring later in the same slot
      }
    }
    keys.resize(kept);
    // Give back what a past flood grew, so the ring's memory follows the live entries.
    if (keys.capacity() > 2 * kept + 64) std::vector<Key>(keys.begin(), keys.end()).swap(keys);
  }
  swept_through_ = target;
}

Result<ReplayGuard::Verdict> ReplayGuard::Check(const PublicKey& signer, uint64_t nonce, const MessageId& id,
                                                int64_t expires_ms, int64_t now_ms) {
  Expire(now_ms);
  if (expires_ms <= now_ms) return Status::Expired("message from " + SignerText(signer) + " has expired");
  const Key key{signer, nonce};
  auto it = entries_.find(key);
  const bool live = it != entries_.end() && it->second.expires_ms > now_ms;
  if (live) {
    if (it->second.id == id) return Verdict::kDuplicate;
    return Status::Replay("nonce " + std::to_string(nonce) + " from " + SignerText(signer) +
                          " reused by a different message");
  }
  if (expires_ms > SaturatingAddMs(now_ms, limits::kReplayHorizonMs)) {
    return Status::LimitExceeded("message from " + SignerText(signer) + " expires beyond the replay horizon of " +
                                 std::to_string(limits::kReplayHorizonMs) + " ms");
  }
  // Filed under the bucket of its expiry, never one already swept (the clock may have gone back).
  const int64_t bucket = std::max(BucketOf(expires_ms), swept_through_ + 1);
  if (it != entries_.end()) {
    // An expired entry of the same (signer, nonce) still waiting for its bucket: reuse it.
    it->second = Entry{id, expires_ms, bucket};
    ring_[Slot(bucket)].push_back(key);
    return Verdict::kNew;
  }
  auto count = per_signer_.find(signer);
  if (count != per_signer_.end() && count->second >= max_entries_per_signer_) {
    return Status::LimitExceeded(SignerText(signer) + " has " + std::to_string(count->second) +
                                 " live messages, its quota (kMaxReplayEntriesPerSigner)");
  }
  if (entries_.size() >= max_entries_) {
    return Status::LimitExceeded("replay guard full (" + std::to_string(max_entries_) + " live messages)");
  }
  if (ring_.empty()) ring_.resize(kRingSlots);  // ~0.5 MB, only for a guard that is used
  entries_.emplace(key, Entry{id, expires_ms, bucket});
  ++per_signer_[signer];
  ring_[Slot(bucket)].push_back(key);
  return Verdict::kNew;
}

}  // namespace gpumart::market
