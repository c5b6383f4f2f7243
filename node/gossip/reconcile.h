// Range-based set reconciliation (the idea of Negentropy, Doug Hoyte 2023): two peers find which
// message ids one has and the other lacks, with traffic that grows with the number of differences
// rather than with the size of the sets. Pure: no I/O, no clock, no state between calls.
// docs/GOSSIP.md ("Anti-entropy") documents every byte; keep the two in step.
//
// The items of a set are (timestamp, id) pairs in ascending order. A message is a list of ranges
// that partition the item space in ascending order; each range is given by its upper bound (the
// lower bound is the previous range's upper bound, the first starts at the minimum) and says one
// of: "skip" (nothing to do here), "my fingerprint of this range is F", or "my ids in this range
// are exactly these". A receiver compares each range with its own items: equal fingerprints end
// a range; unequal ones split it into sub-ranges (or, when it holds few items, into an id list);
// an id list resolves the range. The initiator learns both differences; the responder answers
// id lists with its own.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <vector>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::gossip {

// Limits on what a peer may send in a reconciliation session (the frame-level ones are in
// frames.h). An honest node's own messages never exceed them: it cuts a message at these limits
// and leaves the rest for the next round.
namespace limits {
constexpr size_t kMaxReconcileRanges = 4'096;    // ranges in one RECONCILE message
constexpr size_t kMaxReconcileIds = 16'384;      // ids in the id lists of one RECONCILE message (512 KiB)
constexpr uint32_t kMaxReconcileRounds = 64;     // RECONCILE frames in one session, both directions
constexpr size_t kMaxReconcileWantIds = 1'024;   // ids asked for in one RECONCILE_ITEMS
constexpr size_t kMaxReconcileItems = 4'096;     // envelopes in one RECONCILE_ITEMS
}  // namespace limits

namespace reconcile {

using market::Bytes;
using market::MessageId;

// A range with more items than this is split into kBuckets fingerprinted sub-ranges; one with at
// most this many is sent as an id list.
constexpr size_t kBuckets = 16;
constexpr size_t kIdListThreshold = 16;
constexpr size_t kFingerprintBytes = 16;
using Fingerprint = std::array<uint8_t, kFingerprintBytes>;

struct Item {
  uint64_t timestamp_ms = 0;  // the message's created_ms
  MessageId id{};
  auto operator<=>(const Item&) const = default;
};

// A point in the item space: (timestamp, id prefix padded with zero bytes). An item lies below
// a bound when (timestamp, id) < (bound timestamp, padded prefix). The largest timestamp means
// "infinity", above every item.
struct Bound {
  static constexpr uint64_t kInfinity = UINT64_MAX;
  uint64_t timestamp_ms = 0;
  MessageId prefix{};         // the first prefix_bytes bytes, the rest zero
  uint8_t prefix_bytes = 0;   // 0..32
  static Bound Infinity() { return Bound{kInfinity, {}, 0}; }
  bool IsInfinity() const { return timestamp_ms == kInfinity; }
  // Position only: bounds that name the same point compare equal whatever their prefix length.
  std::strong_ordering operator<=>(const Bound& other) const;
  bool operator==(const Bound& other) const { return (*this <=> other) == 0; }
};
bool Below(const Item& item, const Bound& bound);
// The shortest bound above `before` and at or below `at` (before < at).
Bound SeparatingBound(const Item& before, const Item& at);

enum class Mode : uint8_t { kSkip = 0, kFingerprint = 1, kIdList = 2 };

struct Range {
  Bound upper;
  Mode mode = Mode::kSkip;
  Fingerprint fingerprint{};    // kFingerprint
  std::vector<MessageId> ids;   // kIdList
  bool operator==(const Range&) const = default;
};

// BLAKE2b-128 over (the sum of the ids as 256-bit little-endian numbers, mod 2^256, as 32
// little-endian bytes) || (the item count as 8 little-endian bytes). The sum makes it
// order-independent and incremental; the hash makes it hard to forge a collision.
class Accumulator {
 public:
  void Add(const MessageId& id);
  Fingerprint Finish() const;
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, 4> sum_{};  // little-endian limbs
  uint64_t count_ = 0;
};
Fingerprint FingerprintOf(std::span<const Item> items);

// The byte form of a message (the `ranges` of a RECONCILE frame). Decoding checks every limit
// above, that bounds strictly increase, and that the bytes hold nothing else; it allocates nothing
// it has not bounded. Any failure is kCorruption or kLimitExceeded.
Bytes EncodeRanges(const std::vector<Range>& ranges);
Result<std::vector<Range>> DecodeRanges(std::span<const uint8_t> bytes);

enum class Role : uint8_t { kInitiator, kResponder };

struct Output {
  std::vector<Range> ranges;     // the reply; empty: nothing left to say (the session ends)
  std::vector<MessageId> have;   // ids this side has and the other lacks (known to the initiator)
  std::vector<MessageId> need;   // ids the other side has and this side lacks (known to the initiator)
};

// `items` must be sorted and unique (the caller's set). The first message of a session.
std::vector<Range> Initiate(std::span<const Item> items);
// Processes a peer's message against `items`. Work is O(ranges x log n + n + ids received).
// The reply never exceeds kMaxReconcileRanges ranges or kMaxReconcileIds ids.
Output Reconcile(std::span<const Item> items, const std::vector<Range>& theirs, Role role);

}  // namespace reconcile
}  // namespace gpumart::gossip
