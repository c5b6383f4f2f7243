// The replay guard: remembers each live message by (signer, nonce) -> id until it expires, and
// tells the three cases apart (docs/PROTOCOL.md, "Verification"):
//   - new: (signer, nonce) not remembered: remembered now;
//   - duplicate: the same message id again. Normal in gossip and harmless: reported as its own
//     verdict, never as an error or misbehaviour, and costs one hash lookup;
//   - replay: a different message id reusing a remembered (signer, nonce). Only the signer can
//     make one (the id covers every signed field), so it is the signer's misbehaviour: kReplay.
//
// Bounded three ways, each by a named limit: a message expiring beyond now + kReplayHorizonMs
// is refused; one signer holds at most kMaxReplayEntriesPerSigner live entries, so a flood from
// one key deafens only that key; the whole guard holds at most kMaxReplayEntries. A full guard or
// quota refuses new messages (kLimitExceeded) rather than forgetting live ones, so a flood can
// never make it accept a replay or re-process a message.
//
// Expiry is amortised O(1): entries sit in time buckets (a ring covering the horizon) and each
// call drops only the buckets that expired since the last call; no call scans the whole table.
// Hashes are keyed with a per-guard random key, so a peer cannot choose nonces or keys that
// collide. Not thread-safe: owned by one actor.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "market/codec.h"

namespace gpumart::market {

class ReplayGuard {
 public:
  enum class Verdict {
    kNew,        // remembered until it expires: process it
    kDuplicate,  // this very message was seen before: drop it quietly
  };

  explicit ReplayGuard(size_t max_entries = limits::kMaxReplayEntries,
                       size_t max_entries_per_signer = limits::kMaxReplayEntriesPerSigner);

  // kNew or kDuplicate; or an error: kReplay (a different message reusing the signer's nonce),
  // kLimitExceeded (the signer's quota or the guard is full, or it expires beyond the horizon),
  // kExpired (expires_ms <= now_ms: nothing to remember).
  Result<Verdict> Check(const PublicKey& signer, uint64_t nonce, const MessageId& id, int64_t expires_ms,
                        int64_t now_ms);

  size_t size() const { return entries_.size(); }
  size_t EntriesOf(const PublicKey& signer) const;
  // Buckets visited and entries dropped by expiry so far (tests check the work stays amortised
  // O(1) per call).
  uint64_t expiry_work() const { return expiry_work_; }

  // Bucket width: an entry is dropped at most this long after it expires.
  static constexpr int64_t kBucketMs = 30'000;

 private:
  struct Key {
    PublicKey signer;
    uint64_t nonce;
    bool operator==(const Key&) const = default;
  };
  struct Entry {
    MessageId id;
    int64_t expires_ms;
    int64_t bucket;  // the bucket whose sweep drops it
  };
  // SipHash-2-4 (libsodium crypto_shorthash) under a random per-guard key.
  struct KeyedHash {
    uint8_t key[16];
    size_t operator()(const Key& key) const;
    size_t operator()(const PublicKey& signer) const;
  };

  static int64_t BucketOf(int64_t ms);
  size_t Slot(int64_t bucket) const;
  // Drops every entry of the buckets that ended at or before now_ms.
  void Expire(int64_t now_ms);
  void Forget(std::unordered_map<Key, Entry, KeyedHash>::iterator it);

  size_t max_entries_;
  size_t max_entries_per_signer_;
  std::unordered_map<Key, Entry, KeyedHash> entries_;
  std::unordered_map<PublicKey, uint32_t, KeyedHash> per_signer_;
  std::vector<std::vector<Key>> ring_;  // bucket b's keys in ring_[Slot(b)]; allocated on first use
  bool started_ = false;
  int64_t swept_through_ = 0;  // every bucket <= this has been dropped
  uint64_t expiry_work_ = 0;
};

}  // namespace gpumart::market
