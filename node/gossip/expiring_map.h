// A bounded map whose entries expire at a time given on insert: the seen-cache, the nonce index
// and the routing table of the gossip core. Expiry is by time bucket (all keys expiring within one
// bucket go together), so expiring costs one map step per bucket, not a scan. When full, the
// bucket expiring soonest is dropped to make room: those entries had the least life left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

namespace gpumart::gossip {

template <typename Key, typename Value, typename Hash>
class ExpiringMap {
 public:
  ExpiringMap(size_t capacity, int64_t bucket_ms) : capacity_(capacity), bucket_ms_(bucket_ms) {}

  // Inserts key until expires_ms; the first insert of a key wins (returns false when present).
  bool Insert(const Key& key, const Value& value, int64_t expires_ms) {
    if (entries_.contains(key)) return false;
    while (entries_.size() >= capacity_ && !buckets_.empty()) {
      evicted_ += buckets_.begin()->second.size();
      DropBucket(buckets_.begin());
    }
    const int64_t bucket = (expires_ms / bucket_ms_ + 1) * bucket_ms_;  // the bucket's end
    auto entry = entries_.emplace(key, value).first;
    buckets_[bucket].push_back(&entry->first);
    return true;
  }
  const Value* Find(const Key& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  Value* Find(const Key& key) {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  bool Contains(const Key& key) const { return entries_.contains(key); }
  // Drops every entry whose bucket ended at or before now_ms.
  void Expire(int64_t now_ms) {
    while (!buckets_.empty() && buckets_.begin()->first <= now_ms) DropBucket(buckets_.begin());
  }
  // When Expire next has work: the end of the soonest bucket (INT64_MAX when empty).
  int64_t NextExpiry() const { return buckets_.empty() ? INT64_MAX : buckets_.begin()->first; }
  size_t size() const { return entries_.size(); }
  // Live entries dropped because the map was full.
  uint64_t evicted() const { return evicted_; }

 private:
  // A bucket lists its keys by pointer into entries_ (an unordered_map's elements stay put until
  // erased, and only DropBucket erases): a key is 32-40 bytes, and the seen-cache and nonce index
  // hold one entry per message for its whole life.
  using Buckets = std::map<int64_t, std::vector<const Key*>>;
  void DropBucket(typename Buckets::iterator it) {
    for (const Key* key : it->second) entries_.erase(entries_.find(*key));
    buckets_.erase(it);
  }
  size_t capacity_;
  int64_t bucket_ms_;
  uint64_t evicted_ = 0;
  std::unordered_map<Key, Value, Hash> entries_;
  Buckets buckets_;  // bucket end -> keys
};

}  // namespace gpumart::gossip
