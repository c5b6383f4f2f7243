// Range-based set reconciliation alone: whole sessions between two in-memory sets, the byte form,
// and hostile messages.
#include "node/gossip/reconcile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "tests/test_seed.h"

namespace gpumart::gossip::reconcile {
namespace {

using Items = std::vector<Item>;

Item RandomItem(std::mt19937_64& rng, uint64_t timestamps) {
  Item item;
  item.timestamp_ms = 1'750'000'000'000 + rng() % timestamps;
  for (auto& byte : item.id) byte = static_cast<uint8_t>(rng());
  return item;
}

Items Sorted(Items items) {
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  return items;
}

struct Session {
  std::set<MessageId> have;  // the initiator's view
  std::set<MessageId> need;
  size_t bytes = 0;
  uint32_t frames = 0;
};

// Runs a whole session as two peers would, every message through its byte form.
Session RunSession(const Items& initiator, const Items& responder) {
  Session session;
  std::vector<Range> message = Initiate(initiator);
  while (true) {
    Bytes wire = EncodeRanges(message);
    session.bytes += wire.size();
    ++session.frames;
    auto decoded = DecodeRanges(wire);
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    if (!decoded.ok()) return session;
    Output reply = Reconcile(responder, *decoded, Role::kResponder);
    EXPECT_TRUE(reply.have.empty() && reply.need.empty());
    wire = EncodeRanges(reply.ranges);
    session.bytes += wire.size();
    ++session.frames;
    if (reply.ranges.empty()) break;
    decoded = DecodeRanges(wire);
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    if (!decoded.ok()) return session;
    Output next = Reconcile(initiator, *decoded, Role::kInitiator);
    session.have.insert(next.have.begin(), next.have.end());
    session.need.insert(next.need.begin(), next.need.end());
    if (next.ranges.empty()) break;
    if (session.frames >= limits::kMaxReconcileRounds) {
      ADD_FAILURE() << "session did not finish within " << limits::kMaxReconcileRounds << " frames";
      break;
    }
    message = std::move(next.ranges);
  }
  return session;
}

std::set<MessageId> Minus(const Items& a, const Items& b) {
  std::set<MessageId> out;
  std::set<MessageId> in_b;
  for (const Item& item : b) in_b.insert(item.id);
  for (const Item& item : a) {
    if (!in_b.contains(item.id)) out.insert(item.id);
  }
  return out;
}

void ExpectExactDifference(const Items& a, const Items& b, const Session& session) {
  EXPECT_EQ(session.have, Minus(a, b));
  EXPECT_EQ(session.need, Minus(b, a));
}

// Two sets sharing `common` items, with `only_a` and `only_b` more on each side.
void Check(std::mt19937_64& rng, size_t common, size_t only_a, size_t only_b, uint64_t timestamps) {
  Items shared;
  for (size_t i = 0; i < common; ++i) shared.push_back(RandomItem(rng, timestamps));
  Items a = shared;
  Items b = shared;
  for (size_t i = 0; i < only_a; ++i) a.push_back(RandomItem(rng, timestamps));
  for (size_t i = 0; i < only_b; ++i) b.push_back(RandomItem(rng, timestamps));
  a = Sorted(a);
  b = Sorted(b);
  SCOPED_TRACE(::testing::Message() << common << " common, " << only_a << " / " << only_b << " only, "
                                    << timestamps << " timestamps");
  const Session session = RunSession(a, b);
  ExpectExactDifference(a, b, session);
}

TEST(ReconcileTest, FindsExactlyTheDifferences) {
  std::mt19937_64 rng(gpumart::testing::TestSeed());
  for (uint64_t timestamps : {uint64_t{1}, uint64_t{50}, uint64_t{1'000'000}}) {  // 1: every bound needs an id prefix
    Check(rng, 1'000, 0, 0, timestamps);
    Check(rng, 1'000, 1, 0, timestamps);
    Check(rng, 1'000, 0, 1, timestamps);
    Check(rng, 1'000, 50, 50, timestamps);
    Check(rng, 0, 300, 300, timestamps);  // nothing in common
    Check(rng, 5, 2, 3, timestamps);          // below one id list
  }
}

TEST(ReconcileTest, EmptySets) {
  std::mt19937_64 rng(gpumart::testing::TestSeed());
  const Session both = RunSession({}, {});
  EXPECT_TRUE(both.have.empty());
  EXPECT_TRUE(both.need.empty());
  EXPECT_EQ(both.frames, 2u);  // an empty id list, answered by an empty one
  Check(rng, 0, 0, 500, 1'000);
  Check(rng, 0, 500, 0, 1'000);
}

// A joiner with nothing against a peer holding more ids than one message may carry: the peer's id
// lists are cut at kMaxReconcileIds and the session goes on in later rounds.
TEST(ReconcileTest, LargeDifferencesSpanSeveralRounds) {
  std::mt19937_64 rng(gpumart::testing::TestSeed());
  Items full;
  for (size_t i = 0; i < limits::kMaxReconcileIds + 100; ++i) full.push_back(RandomItem(rng, 100'000));
  full = Sorted(full);
  const Session session = RunSession({}, full);
  ExpectExactDifference({}, full, session);
  EXPECT_GT(session.frames, 2u);
}

TEST(ReconcileTest, BytesGrowWithTheDifferenceNotTheSet) {
  std::mt19937_64 rng(gpumart::testing::TestSeed());
  Items shared;
  for (size_t i = 0; i < 10'000; ++i) shared.push_back(RandomItem(rng, 10'000'000));
  Items a = Sorted(shared);
  Items b = a;
  for (int i = 0; i < 20; ++i) b.push_back(RandomItem(rng, 10'000'000));
  b = Sorted(b);
  const Session session = RunSession(a, b);
  ExpectExactDifference(a, b, session);
  const double ratio = static_cast<double>(session.bytes) / (b.size() * sizeof(MessageId));
  EXPECT_LT(ratio, 0.05) << session.bytes << " bytes";
  EXPECT_LE(session.frames, 10u);
}

TEST(ReconcileTest, FingerprintIsTheDocumentedHash) {
  // docs/GOSSIP.md: BLAKE2b-128(sum of ids mod 2^256, little-endian || count, 8 bytes little-endian).
  // Values from Python: hashlib.blake2b(sum.to_bytes(32, 'little') + n.to_bytes(8, 'little'), digest_size=16).
  auto hex = [](const Fingerprint& f) {
    std::string out;
    for (uint8_t b : f) out += "0123456789abcdef"[b >> 4], out += "0123456789abcdef"[b & 15];
    return out;
  };
  EXPECT_EQ(hex(FingerprintOf({})), "673cbd9a83cb676eba3e0bcd63a2b414");
  Item one;
  one.id.fill(0x01);
  Item ff;
  ff.id.fill(0xff);
  ff.timestamp_ms = 1;
  EXPECT_EQ(hex(FingerprintOf(Items{one, ff})), "a19127b8e3619114fd231af6144d203b");  // the sum wraps
  // Order-independent and incremental.
  Accumulator accumulator;
  accumulator.Add(ff.id);
  accumulator.Add(one.id);
  EXPECT_EQ(accumulator.Finish(), FingerprintOf(Items{one, ff}));
}

TEST(ReconcileTest, SeparatingBoundsAreShortAndSeparate) {
  Item a;
  Item b;
  a.timestamp_ms = b.timestamp_ms = 7;
  a.id[0] = b.id[0] = 0x42;
  a.id[1] = 0x10;
  b.id[1] = 0x11;
  const Bound bound = SeparatingBound(a, b);
  EXPECT_EQ(bound.prefix_bytes, 2);
  EXPECT_FALSE(Below(b, bound));
  EXPECT_TRUE(Below(a, bound));
  b.timestamp_ms = 9;
  EXPECT_EQ(SeparatingBound(a, b).prefix_bytes, 0);
  EXPECT_EQ(SeparatingBound(a, b).timestamp_ms, 9u);
}

TEST(ReconcileTest, RangesRoundTrip) {
  std::vector<Range> ranges(4);
  ranges[0].upper.timestamp_ms = 5;
  ranges[0].mode = Mode::kSkip;
  ranges[1].upper.timestamp_ms = 5;
  ranges[1].upper.prefix[0] = 0x80;
  ranges[1].upper.prefix_bytes = 1;
  ranges[1].mode = Mode::kFingerprint;
  ranges[1].fingerprint.fill(0xab);
  ranges[2].upper.timestamp_ms = 1'000'000;
  ranges[2].mode = Mode::kIdList;
  ranges[2].ids.resize(3);
  ranges[2].ids[1].fill(7);
  ranges[3].upper = Bound::Infinity();
  ranges[3].mode = Mode::kIdList;
  const Bytes wire = EncodeRanges(ranges);
  auto decoded = DecodeRanges(wire);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, ranges);
  // Byte by byte, as docs/GOSSIP.md gives it: ts 1+5, no prefix, skip; ts 1+0, prefix 80, fingerprint...
  EXPECT_EQ(wire[0], 6);
  EXPECT_EQ(wire[1], 0);
  EXPECT_EQ(wire[2], 0);
  EXPECT_EQ(wire[3], 1);
  EXPECT_EQ(wire[4], 1);
  EXPECT_EQ(wire[5], 0x80);
  EXPECT_EQ(wire[6], 1);
  EXPECT_TRUE(DecodeRanges({}).ok());  // no ranges: "nothing left"
}

// ---- hostile messages ----

Bytes Varint(uint64_t value) {
  Bytes out;
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
  return out;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

TEST(ReconcileTest, HostileRangesAreRefused) {
  const Bytes skip = {0};
  // Bounds must increase: ts 10 then ts 10 again (delta 0) with no prefix.
  EXPECT_FALSE(DecodeRanges(Cat({Varint(11), {0}, skip, Varint(1), {0}, skip})).ok());
  // Nor may the first bound be the minimum.
  EXPECT_FALSE(DecodeRanges(Cat({Varint(1), {0}, skip})).ok());
  // Nothing after infinity.
  EXPECT_FALSE(DecodeRanges(Cat({{0}, {0}, skip, {0}, {0}, skip})).ok());
  // A prefix over 32 bytes, an unknown mode, a truncated fingerprint.
  EXPECT_FALSE(DecodeRanges(Cat({Varint(2), Varint(33), Bytes(33, 1), skip})).ok());
  EXPECT_FALSE(DecodeRanges(Cat({Varint(2), {0}, {3}})).ok());
  EXPECT_FALSE(DecodeRanges(Cat({Varint(2), {0}, {1}, Bytes(15, 0)})).ok());
  // Timestamps that overflow, varints that never end or are not the shortest form.
  EXPECT_TRUE(DecodeRanges(Cat({Varint(UINT64_MAX), {0}, skip})).ok());  // the last finite timestamp
  EXPECT_FALSE(DecodeRanges(Cat({Varint(UINT64_MAX - 5), {0}, skip, Varint(10), {0}, skip})).ok());
  EXPECT_FALSE(DecodeRanges(Bytes(11, 0xff)).ok());
  EXPECT_FALSE(DecodeRanges(Bytes{0x82, 0x00, 0x00, 0x00}).ok());
  // A huge id count with no ids behind it allocates nothing and is refused.
  auto huge = DecodeRanges(Cat({{0}, {0}, {2}, Varint(UINT64_MAX / 2)}));
  EXPECT_EQ(huge.status().code(), Status::Code::kLimitExceeded);
  auto short_list = DecodeRanges(Cat({{0}, {0}, {2}, Varint(1000), Bytes(64, 0)}));
  EXPECT_EQ(short_list.status().code(), Status::Code::kCorruption);
  // Too many ranges.
  Bytes many;
  for (size_t i = 0; i <= limits::kMaxReconcileRanges; ++i) {
    const Bytes range = Cat({Varint(2), {0}, skip});
    many.insert(many.end(), range.begin(), range.end());
  }
  EXPECT_EQ(DecodeRanges(many).status().code(), Status::Code::kLimitExceeded);
  // Too many ids over several lists.
  Bytes ids;
  for (size_t list = 0; list < 3; ++list) {
    const Bytes range = Cat({Varint(2), {0}, {2}, Varint(limits::kMaxReconcileIds / 2)});
    ids.insert(ids.end(), range.begin(), range.end());
    ids.resize(ids.size() + limits::kMaxReconcileIds / 2 * sizeof(MessageId));
  }
  EXPECT_EQ(DecodeRanges(ids).status().code(), Status::Code::kLimitExceeded);
  // Every truncation of a valid message is refused or decodes to fewer ranges, never crashes.
  std::vector<Range> valid(2);
  valid[0].upper.timestamp_ms = 3;
  valid[0].mode = Mode::kIdList;
  valid[0].ids.resize(2);
  valid[1].upper = Bound::Infinity();
  valid[1].mode = Mode::kFingerprint;
  const Bytes wire = EncodeRanges(valid);
  for (size_t size = 0; size < wire.size(); ++size) {
    auto cut = DecodeRanges(std::span(wire.data(), size));
    if (cut.ok()) {
      EXPECT_LT(cut->size(), valid.size());
    }
  }
}

// Replies stay within the limits even when the peer's message asks for a lot.
TEST(ReconcileTest, RepliesStayWithinTheLimits) {
  std::mt19937_64 rng(gpumart::testing::TestSeed());
  Items mine;
  for (size_t i = 0; i < limits::kMaxReconcileIds + 4'000; ++i) mine.push_back(RandomItem(rng, 1'000'000'000));
  mine = Sorted(mine);
  // A peer's message of as many fingerprint ranges as allowed, all mismatching: the first ones hold
  // 20 of our items each (each would split into 16), the rest none.
  std::vector<Range> theirs;
  for (size_t i = 0; i < limits::kMaxReconcileRanges; ++i) {
    Range range;
    const size_t at = (i + 1) * 20;
    range.upper.timestamp_ms = at < mine.size() ? mine[at].timestamp_ms : mine.back().timestamp_ms + at;
    if (i + 1 == limits::kMaxReconcileRanges) range.upper = Bound::Infinity();
    range.mode = Mode::kFingerprint;
    if (!theirs.empty() && !(theirs.back().upper < range.upper)) continue;  // equal timestamps: skip
    theirs.push_back(range);
  }
  ASSERT_TRUE(DecodeRanges(EncodeRanges(theirs)).ok());
  for (Role role : {Role::kInitiator, Role::kResponder}) {
    const Output reply = Reconcile(mine, theirs, role);
    ASSERT_TRUE(DecodeRanges(EncodeRanges(reply.ranges)).ok());
    EXPECT_GT(reply.ranges.size(), limits::kMaxReconcileRanges - 20);  // it was the range limit that cut it
    EXPECT_LE(reply.ranges.size(), limits::kMaxReconcileRanges);
    EXPECT_EQ(reply.ranges.back().mode, Mode::kFingerprint);
    EXPECT_TRUE(reply.ranges.back().upper.IsInfinity());
  }
  // An id list over everything: the responder answers with at most kMaxReconcileIds of its own.
  std::vector<Range> all(1);
  all[0].upper = Bound::Infinity();
  all[0].mode = Mode::kIdList;
  const Output reply = Reconcile(mine, all, Role::kResponder);
  auto decoded = DecodeRanges(EncodeRanges(reply.ranges));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_EQ(reply.ranges.size(), 2u);
  EXPECT_EQ(reply.ranges[0].ids.size(), limits::kMaxReconcileIds);
  EXPECT_EQ(reply.ranges[1].mode, Mode::kFingerprint);
}

}  // namespace
}  // namespace gpumart::gossip::reconcile
