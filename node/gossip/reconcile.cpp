#include "node/gossip/reconcile.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_set>

namespace gpumart::gossip::reconcile {

namespace {

struct IdHash {
  size_t operator()(const MessageId& id) const {
    uint64_t prefix = 0;  // ids are hashes: any eight bytes are uniform
    std::memcpy(&prefix, id.data(), sizeof prefix);
    return static_cast<size_t>(prefix);
  }
};
using IdSet = std::unordered_set<MessageId, IdHash>;

const Bound kMinimum{};

// The first index in [from, items.size()) whose item is not below `bound`.
size_t IndexOf(std::span<const Item> items, size_t from, const Bound& bound) {
  auto it = std::partition_point(items.begin() + static_cast<ptrdiff_t>(from), items.end(),
                                 [&](const Item& item) { return Below(item, bound); });
  return static_cast<size_t>(it - items.begin());
}

// Builds a reply within the per-message limits, merging adjacent skips.
class Emitter {
 public:
  size_t ranges_left() const { return limits::kMaxReconcileRanges - ranges_.size(); }
  size_t ids_left() const { return limits::kMaxReconcileIds - ids_; }

  void Skip(const Bound& upper) {
    if (!ranges_.empty() && ranges_.back().mode == Mode::kSkip) {
      ranges_.back().upper = upper;
      return;
    }
    ranges_.push_back(Range{upper, Mode::kSkip, {}, {}});
  }
  void Fingerprint(const Bound& upper, const reconcile::Fingerprint& fingerprint) {
    ranges_.push_back(Range{upper, Mode::kFingerprint, fingerprint, {}});
  }
  void IdList(const Bound& upper, std::span<const Item> items) {
    Range range{upper, Mode::kIdList, {}, {}};
    range.ids.reserve(items.size());
    for (const Item& item : items) range.ids.push_back(item.id);
    ids_ += items.size();
    ranges_.push_back(std::move(range));
  }

  // What `items` (the caller's items between the range's lower bound and `upper`) become when a
  // fingerprint did not match: an id list when few, else kBuckets fingerprinted sub-ranges.
  void Split(std::span<const Item> items, const Bound& upper) {
    if (items.size() <= kIdListThreshold) return IdList(upper, items);
    const size_t per = items.size() / kBuckets;
    const size_t extra = items.size() % kBuckets;
    size_t begin = 0;
    for (size_t b = 0; b < kBuckets; ++b) {
      const size_t end = begin + per + (b < extra ? 1 : 0);
      const Bound bound = b + 1 == kBuckets ? upper : SeparatingBound(items[end - 1], items[end]);
      Fingerprint(bound, FingerprintOf(items.subspan(begin, end - begin)));
      begin = end;
    }
  }
  // Whether a Split of `count` items fits and still leaves room for a skip after it and one
  // closing range (so every reply stays within kMaxReconcileRanges).
  bool SplitFits(size_t count) const {
    if (count <= kIdListThreshold) return IdListFits(count);
    return ranges_left() >= kBuckets + 2;
  }
  bool IdListFits(size_t count) const { return ranges_left() >= 3 && ids_left() >= count; }

  std::vector<Range> Finish() {
    if (!ranges_.empty() && ranges_.back().mode == Mode::kSkip) ranges_.pop_back();  // implied
    return std::move(ranges_);
  }

 private:
  std::vector<Range> ranges_;
  size_t ids_ = 0;
};

// ---- varints: unsigned LEB128 (7 bits a byte, least significant group first, high bit = more) ----

void PutVarint(Bytes& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool AtEnd() const { return at_ == bytes_.size(); }
  size_t Remaining() const { return bytes_.size() - at_; }
  Status Varint(const char* field, uint64_t& out) {
    out = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (AtEnd()) return Status::Corruption(std::string("reconcile.") + field + ": truncated");
      const uint8_t byte = bytes_[at_++];
      const uint64_t group = byte & 0x7f;
      if (shift == 63 && group > 1) break;  // would overflow 64 bits
      out |= group << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift != 0) break;  // a needless trailing zero group: not the shortest form
        return Status::Ok();
      }
    }
    return Status::Corruption(std::string("reconcile.") + field + ": bad varint");
  }
  Status Take(const char* field, size_t size, const uint8_t*& data) {
    if (Remaining() < size) return Status::Corruption(std::string("reconcile.") + field + ": truncated");
    data = bytes_.data() + at_;
    at_ += size;
    return Status::Ok();
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
};

}  // namespace

std::strong_ordering Bound::operator<=>(const Bound& other) const {
  if (auto c = timestamp_ms <=> other.timestamp_ms; c != 0) return c;
  return prefix <=> other.prefix;
}

bool Below(const Item& item, const Bound& bound) {
  if (item.timestamp_ms != bound.timestamp_ms) return item.timestamp_ms < bound.timestamp_ms;
  return item.id < bound.prefix;
}

Bound SeparatingBound(const Item& before, const Item& at) {
  Bound bound;
  bound.timestamp_ms = at.timestamp_ms;
  if (before.timestamp_ms != at.timestamp_ms) return bound;
  size_t shared = 0;
  while (shared + 1 < at.id.size() && before.id[shared] == at.id[shared]) ++shared;
  std::copy_n(at.id.begin(), shared + 1, bound.prefix.begin());
  bound.prefix_bytes = static_cast<uint8_t>(shared + 1);
  return bound;
}

void Accumulator::Add(const MessageId& id) {
  uint64_t carry = 0;
  for (size_t limb = 0; limb < sum_.size(); ++limb) {
    uint64_t value = 0;
    for (size_t byte = 0; byte < 8; ++byte) value |= static_cast<uint64_t>(id[limb * 8 + byte]) << (8 * byte);
    const uint64_t partial = sum_[limb] + value;
    const uint64_t next_carry = partial < value ? 1 : 0;
    sum_[limb] = partial + carry;
    carry = next_carry + (sum_[limb] < carry ? 1 : 0);
  }
  ++count_;
}

Fingerprint Accumulator::Finish() const {
  uint8_t input[40];
  for (size_t limb = 0; limb < sum_.size(); ++limb) {
    for (size_t byte = 0; byte < 8; ++byte) input[limb * 8 + byte] = static_cast<uint8_t>(sum_[limb] >> (8 * byte));
  }
  for (size_t byte = 0; byte < 8; ++byte) input[32 + byte] = static_cast<uint8_t>(count_ >> (8 * byte));
  Fingerprint out{};
  crypto_generichash(out.data(), out.size(), input, sizeof input, nullptr, 0);
  return out;
}

Fingerprint FingerprintOf(std::span<const Item> items) {
  Accumulator accumulator;
  for (const Item& item : items) accumulator.Add(item.id);
  return accumulator.Finish();
}

// Layout (docs/GOSSIP.md, "RECONCILE ranges"): ranges back to back, each
//   timestamp:varint   0 = infinity, else 1 + (timestamp - previous finite timestamp, from 0)
//   prefix_len:varint  0..32, then that many id bytes
//   mode:varint        0 skip, 1 fingerprint (16 bytes follow), 2 id list (count:varint, 32 x count)
Bytes EncodeRanges(const std::vector<Range>& ranges) {
  Bytes out;
  uint64_t previous = 0;
  for (const Range& range : ranges) {
    if (range.upper.IsInfinity()) {
      PutVarint(out, 0);
    } else {
      PutVarint(out, 1 + (range.upper.timestamp_ms - previous));
      previous = range.upper.timestamp_ms;
    }
    PutVarint(out, range.upper.prefix_bytes);
    out.insert(out.end(), range.upper.prefix.begin(), range.upper.prefix.begin() + range.upper.prefix_bytes);
    PutVarint(out, static_cast<uint8_t>(range.mode));
    if (range.mode == Mode::kFingerprint) {
      out.insert(out.end(), range.fingerprint.begin(), range.fingerprint.end());
    } else if (range.mode == Mode::kIdList) {
      PutVarint(out, range.ids.size());
      for (const MessageId& id : range.ids) out.insert(out.end(), id.begin(), id.end());
    }
  }
  return out;
}

Result<std::vector<Range>> DecodeRanges(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  std::vector<Range> ranges;
  uint64_t previous = 0;
  size_t ids = 0;
  Bound lower = kMinimum;
  while (!r.AtEnd()) {
    if (ranges.size() >= limits::kMaxReconcileRanges) {
      return Status::LimitExceeded("reconcile: more than " + std::to_string(limits::kMaxReconcileRanges) + " ranges");
    }
    if (lower.IsInfinity()) return Status::Corruption("reconcile: a range after the infinite bound");
    Range range;
    uint64_t encoded = 0;
    GPUMART_RETURN_IF_ERROR(r.Varint("timestamp", encoded));
    if (encoded == 0) {
      range.upper.timestamp_ms = Bound::kInfinity;
    } else {
      const uint64_t delta = encoded - 1;
      if (delta >= Bound::kInfinity - previous) return Status::Corruption("reconcile.timestamp: out of range");
      previous += delta;
      range.upper.timestamp_ms = previous;
    }
    uint64_t prefix_bytes = 0;
    GPUMART_RETURN_IF_ERROR(r.Varint("prefix_len", prefix_bytes));
    if (prefix_bytes > range.upper.prefix.size()) return Status::Corruption("reconcile.prefix_len: over 32");
    const uint8_t* data = nullptr;
    GPUMART_RETURN_IF_ERROR(r.Take("prefix", prefix_bytes, data));
    std::copy_n(data, prefix_bytes, range.upper.prefix.begin());
    range.upper.prefix_bytes = static_cast<uint8_t>(prefix_bytes);
    if (range.upper <= lower) return Status::Corruption("reconcile: bounds do not increase");
    uint64_t mode = 0;
    GPUMART_RETURN_IF_ERROR(r.Varint("mode", mode));
    switch (mode) {
      case static_cast<uint64_t>(Mode::kSkip):
        range.mode = Mode::kSkip;
        break;
      case static_cast<uint64_t>(Mode::kFingerprint):
        range.mode = Mode::kFingerprint;
        GPUMART_RETURN_IF_ERROR(r.Take("fingerprint", kFingerprintBytes, data));
        std::copy_n(data, kFingerprintBytes, range.fingerprint.begin());
        break;
      case static_cast<uint64_t>(Mode::kIdList): {
        range.mode = Mode::kIdList;
        uint64_t count = 0;
        GPUMART_RETURN_IF_ERROR(r.Varint("count", count));
        if (count > limits::kMaxReconcileIds - ids) {
          return Status::LimitExceeded("reconcile: more than " + std::to_string(limits::kMaxReconcileIds) + " ids");
        }
        if (count > r.Remaining() / sizeof(MessageId)) return Status::Corruption("reconcile.ids: truncated");
        ids += count;
        range.ids.resize(count);
        for (MessageId& id : range.ids) {
          GPUMART_RETURN_IF_ERROR(r.Take("ids", id.size(), data));
          std::copy_n(data, id.size(), id.begin());
        }
        break;
      }
      default:
        return Status::Corruption("reconcile.mode: unknown mode " + std::to_string(mode));
    }
    lower = range.upper;
    ranges.push_back(std::move(range));
  }
  return ranges;
}

std::vector<Range> Initiate(std::span<const Item> items) {
  Emitter emitter;
  emitter.Split(items, Bound::Infinity());
  return emitter.Finish();
}

Output Reconcile(std::span<const Item> items, const std::vector<Range>& theirs, Role role) {
  Output output;
  Emitter emitter;
  size_t lower_index = 0;
  for (const Range& range : theirs) {
    const size_t upper_index = IndexOf(items, lower_index, range.upper);
    const std::span<const Item> mine = items.subspan(lower_index, upper_index - lower_index);
    // When this range's reply may not fit, one fingerprint of everything from here on closes the
    // message; the peer answers it in the next round.
    auto close_rest = [&] {
      emitter.Fingerprint(Bound::Infinity(), FingerprintOf(items.subspan(lower_index)));
    };
    switch (range.mode) {
      case Mode::kSkip:
        emitter.Skip(range.upper);
        break;
      case Mode::kFingerprint:
        if (FingerprintOf(mine) == range.fingerprint) {
          emitter.Skip(range.upper);
        } else if (emitter.SplitFits(mine.size())) {
          emitter.Split(mine, range.upper);
        } else {
          close_rest();
          output.ranges = emitter.Finish();
          return output;
        }
        break;
      case Mode::kIdList:
        if (role == Role::kInitiator) {
          IdSet theirs_set(range.ids.begin(), range.ids.end());
          IdSet mine_set;
          mine_set.reserve(mine.size());
          for (const Item& item : mine) {
            mine_set.insert(item.id);
            if (!theirs_set.contains(item.id)) output.have.push_back(item.id);
          }
          for (const MessageId& id : range.ids) {
            if (mine_set.insert(id).second) output.need.push_back(id);  // inserted: new, and reported once
          }
          emitter.Skip(range.upper);
        } else if (emitter.IdListFits(mine.size())) {
          emitter.IdList(range.upper, mine);
        } else {
          // Our ids here do not all fit: as many as do, then a fingerprint of the rest.
          const size_t fit = std::min(mine.size(), emitter.ids_left());
          if (fit > 0 && emitter.IdListFits(fit)) {
            const Bound cut = SeparatingBound(mine[fit - 1], mine[fit]);
            emitter.IdList(cut, mine.first(fit));
            lower_index += fit;
          }
          close_rest();
          output.ranges = emitter.Finish();
          return output;
        }
        break;
    }
    lower_index = upper_index;
  }
  output.ranges = emitter.Finish();
  return output;
}

}  // namespace gpumart::gossip::reconcile
