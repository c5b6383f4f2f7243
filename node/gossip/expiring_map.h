// A bounded map whose entries expire at a time given on insert: the seen-cache, the nonce index
// and the routing table of the gossip core. Expiry is by time bucket (all keys expiring within one
// bucket go together), so expiring costs one map step per bucket, not a scan. When full, the
// bucket expiring soonest is dropped to make room: those entries had the least life left.
//
// The entries live in one flat open-addressing table (linear probing, backward-shift erase), not
// in a node per entry: a node-based map costs a heap block, a bucket pointer and malloc's header
// per entry, several times the key and value of the gossip core's compact keys (docs/GOSSIP.md,
// "Memory"). The table shrinks again when it empties, so a burst's memory goes back.
// Pointers from Find stay valid until the next Insert or Expire.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace gpumart::gossip {

template <typename Key, typename Value, typename Hash>
class ExpiringMap {
 public:
  ExpiringMap(size_t capacity, int64_t bucket_ms) : capacity_(capacity), bucket_ms_(bucket_ms) {}

  // Inserts key until expires_ms; the first insert of a key wins (returns false when present).
  bool Insert(const Key& key, const Value& value, int64_t expires_ms) {
    if (FindSlot(key) != kNone) return false;
    while (size_ >= capacity_ && !buckets_.empty()) {
      evicted_ += buckets_.begin()->second.size();
      DropBucket(buckets_.begin());
    }
    if ((size_ + 1) * kMaxLoadDen > slots() * kMaxLoadNum) Resize(std::max(kMinSlots, slots() * 2));
    size_t slot = Home(key);
    while (used_[slot]) slot = (slot + 1) & mask();
    used_[slot] = 1;
    keys_[slot] = key;
    values_[slot].value = value;
    ++size_;
    const int64_t bucket = (expires_ms / bucket_ms_ + 1) * bucket_ms_;  // the bucket's end
    buckets_[bucket].push_back(key);
    return true;
  }
  const Value* Find(const Key& key) const {
    const size_t slot = FindSlot(key);
    return slot == kNone ? nullptr : &values_[slot].value;
  }
  Value* Find(const Key& key) {
    const size_t slot = FindSlot(key);
    return slot == kNone ? nullptr : &values_[slot].value;
  }
  bool Contains(const Key& key) const { return FindSlot(key) != kNone; }
  // Drops every entry whose bucket ended at or before now_ms.
  void Expire(int64_t now_ms) {
    while (!buckets_.empty() && buckets_.begin()->first <= now_ms) DropBucket(buckets_.begin());
  }
  // When Expire next has work: the end of the soonest bucket (INT64_MAX when empty).
  int64_t NextExpiry() const { return buckets_.empty() ? INT64_MAX : buckets_.begin()->first; }
  size_t size() const { return size_; }
  // Live entries dropped because the map was full.
  uint64_t evicted() const { return evicted_; }
  // Slots the table holds now (for tests of its memory): a power of two, at most 4/3 of the
  // entries while growing and at least kMinSlots.
  size_t slots() const { return used_.size(); }

 private:
  using Buckets = std::map<int64_t, std::vector<Key>>;
  struct Boxed {  // a bool too, as vector<bool> has no addressable elements
    Value value{};
  };
  static constexpr size_t kNone = SIZE_MAX;
  static constexpr size_t kMinSlots = 16;
  // Linear probing stays short (about 2.5 probes for a hit) up to 3/4 full.
  static constexpr size_t kMaxLoadNum = 3;
  static constexpr size_t kMaxLoadDen = 4;

  size_t mask() const { return slots() - 1; }
  size_t Home(const Key& key) const { return Hash{}(key) & mask(); }

  size_t FindSlot(const Key& key) const {
    if (size_ == 0) return kNone;
    for (size_t slot = Home(key); used_[slot]; slot = (slot + 1) & mask()) {
      if (keys_[slot] == key) return slot;
    }
    return kNone;
  }

  void Erase(const Key& key) {
    size_t hole = FindSlot(key);
    if (hole == kNone) return;
    // Backward shift: pull each later entry of the run into the hole when its home allows, so no
    // tombstones are left and lookups stop at the first empty slot.
    for (size_t next = (hole + 1) & mask(); used_[next]; next = (next + 1) & mask()) {
      const size_t home = Home(keys_[next]);
      if (((next - home) & mask()) >= ((next - hole) & mask())) {
        keys_[hole] = keys_[next];
        values_[hole].value = std::move(values_[next].value);
        hole = next;
      }
    }
    used_[hole] = 0;
    keys_[hole] = Key{};
    values_[hole].value = Value{};
    --size_;
  }

  void Resize(size_t slot_count) {
    std::vector<Key> keys(slot_count);
    std::vector<Boxed> values(slot_count);
    std::vector<uint8_t> used(slot_count, 0);
    keys.swap(keys_);
    values.swap(values_);
    used.swap(used_);
    for (size_t old = 0; old < used.size(); ++old) {
      if (!used[old]) continue;
      size_t slot = Home(keys[old]);
      while (used_[slot]) slot = (slot + 1) & mask();
      used_[slot] = 1;
      keys_[slot] = keys[old];
      values_[slot].value = std::move(values[old].value);
    }
  }

  void DropBucket(typename Buckets::iterator it) {
    for (const Key& key : it->second) Erase(key);
    buckets_.erase(it);
    // Give a burst's table back once it is mostly empty (an eighth full: halving leaves it a
    // quarter full, so a few inserts do not grow it again at once).
    if (slots() > kMinSlots && size_ * 8 < slots()) {
      size_t target = kMinSlots;
      while (target * kMaxLoadNum < size_ * 2 * kMaxLoadDen) target *= 2;
      Resize(target);
    }
  }

  size_t capacity_;
  int64_t bucket_ms_;
  uint64_t evicted_ = 0;
  size_t size_ = 0;
  // The table, as parallel arrays (no padding between a key and its value).
  std::vector<Key> keys_;
  std::vector<Boxed> values_;
  std::vector<uint8_t> used_;
  Buckets buckets_;  // bucket end -> keys
};

}  // namespace gpumart::gossip
