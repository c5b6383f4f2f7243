// One value, one byte string, one id: for every body type and the envelope, any bytes that decode
// re-encode to exactly the same bytes. Checked on many random re-encodings of valid messages (every
// integer, header and map order chosen at random among the encodings msgpack allows; only the
// canonical choice may decode) and on random byte mutations. The seed is printed; set
// GPUMART_TEST_SEED to replay one.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "market/codec.h"
#include "tests/market/test_messages.h"
#include "tests/test_seed.h"

namespace gpumart::market {
namespace {

constexpr int64_t kNow = 1'750'000'000'000;
constexpr int64_t kTtl = 60'000;

Identity Tenant() { return Identity::FromSeed(Seed{1}); }
Identity Provider() { return Identity::FromSeed(Seed{2}); }

// ---- a test-only msgpack tree, re-emitted with random (legal, mostly non-canonical) forms ------

struct Node {
  enum Kind { kUint, kNegative, kNil, kBool, kStr, kBin, kArray, kMap } kind = kNil;
  uint64_t u = 0;
  int64_t i = 0;
  bool b = false;
  std::string bytes;
  std::vector<Node> items;  // arrays; maps as key, value, key, value...
};

uint64_t BigEndian(const uint8_t*& p, size_t n) {
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v = v << 8 | *p++;
  return v;
}

// Parses canonical bytes we produced ourselves (trusted input; no checks needed).
Node Parse(const uint8_t*& p) {
  Node n;
  const uint8_t b = *p++;
  auto sized = [&](Node::Kind kind, uint64_t length) {
    n.kind = kind;
    n.bytes.assign(reinterpret_cast<const char*>(p), length);
    p += length;
  };
  auto container = [&](Node::Kind kind, uint64_t count) {
    n.kind = kind;
    for (uint64_t k = 0; k < (kind == Node::kMap ? 2 * count : count); ++k) n.items.push_back(Parse(p));
  };
  if (b <= 0x7f) { n.kind = Node::kUint; n.u = b; }
  else if (b >= 0xe0) { n.kind = Node::kNegative; n.i = static_cast<int8_t>(b); }
  else if (b <= 0x8f) container(Node::kMap, b & 0x0f);
  else if (b <= 0x9f) container(Node::kArray, b & 0x0f);
  else if (b <= 0xbf) sized(Node::kStr, b & 0x1f);
  else if (b == 0xc0) n.kind = Node::kNil;
  else if (b == 0xc2 || b == 0xc3) { n.kind = Node::kBool; n.b = b == 0xc3; }
  else if (b >= 0xc4 && b <= 0xc6) sized(Node::kBin, BigEndian(p, size_t{1} << (b - 0xc4)));
  else if (b >= 0xcc && b <= 0xcf) { n.kind = Node::kUint; n.u = BigEndian(p, size_t{1} << (b - 0xcc)); }
  else if (b >= 0xd0 && b <= 0xd3) {
    const size_t bytes = size_t{1} << (b - 0xd0);
    const unsigned shift = static_cast<unsigned>(64 - 8 * bytes);
    n.kind = Node::kNegative;
    n.i = static_cast<int64_t>(BigEndian(p, bytes) << shift) >> shift;
  } else if (b >= 0xd9 && b <= 0xdb) sized(Node::kStr, BigEndian(p, size_t{1} << (b - 0xd9)));
  else if (b == 0xdc || b == 0xdd) container(Node::kArray, BigEndian(p, b == 0xdc ? 2 : 4));
  else if (b == 0xde || b == 0xdf) container(Node::kMap, BigEndian(p, b == 0xde ? 2 : 4));
  else ADD_FAILURE() << "unexpected format byte " << int(b);
  return n;
}

void PutBigEndian(Bytes& out, uint64_t v, size_t n) {
  for (size_t k = n; k-- > 0;) out.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

class Scrambler {
 public:
  explicit Scrambler(uint64_t seed) : rng_(seed) {}

  // Every choice is canonical with probability 1 - `odd`, so most outputs differ from the input
  // in one or a few places.
  Bytes Emit(const Node& n, double odd) {
    odd_ = odd;
    Bytes out;
    Put(out, n);
    return out;
  }

 private:
  bool Odd() { return std::bernoulli_distribution(odd_)(rng_); }
  template <typename T>
  T Pick(const std::vector<T>& options) {
    // options[0] is the canonical one.
    if (options.size() == 1 || !Odd()) return options[0];
    return options[std::uniform_int_distribution<size_t>(1, options.size() - 1)(rng_)];
  }

  void Length(Bytes& out, uint64_t length, std::vector<std::pair<uint8_t, size_t>> forms) {
    const auto [code, width] = Pick(forms);
    out.push_back(code);
    PutBigEndian(out, length, width);
  }

  void Put(Bytes& out, const Node& n) {
    switch (n.kind) {
      case Node::kNil: out.push_back(0xc0); return;
      case Node::kBool: out.push_back(n.b ? 0xc3 : 0xc2); return;
      case Node::kUint: {
        std::vector<std::pair<uint8_t, size_t>> forms;  // (code, bytes); code 0 = positive fixint
        if (n.u < 0x80) forms.push_back({0, 0});
        if (n.u < 0x100) forms.push_back({0xcc, 1});
        if (n.u < 0x10000) forms.push_back({0xcd, 2});
        if (n.u < 0x100000000) forms.push_back({0xce, 4});
        forms.push_back({0xcf, 8});
        if (n.u < 0x80) forms.push_back({0xd0, 1});
        if (n.u < 0x8000) forms.push_back({0xd1, 2});
        if (n.u < 0x80000000) forms.push_back({0xd2, 4});
        if (n.u < 0x8000000000000000) forms.push_back({0xd3, 8});
        const auto [code, width] = Pick(forms);
        if (code == 0) {
          out.push_back(static_cast<uint8_t>(n.u));
        } else {
          out.push_back(code);
          PutBigEndian(out, n.u, width);
        }
        return;
      }
      case Node::kNegative: {
        std::vector<std::pair<uint8_t, size_t>> forms;
        if (n.i >= -32) forms.push_back({0, 0});
        if (n.i >= INT8_MIN) forms.push_back({0xd0, 1});
        if (n.i >= INT16_MIN) forms.push_back({0xd1, 2});
        if (n.i >= INT32_MIN) forms.push_back({0xd2, 4});
        forms.push_back({0xd3, 8});
        const auto [code, width] = Pick(forms);
        if (code == 0) {
          out.push_back(static_cast<uint8_t>(n.i));
        } else {
          out.push_back(code);
          PutBigEndian(out, static_cast<uint64_t>(n.i), width);
        }
        return;
      }
      case Node::kStr: {
        std::vector<std::pair<uint8_t, size_t>> forms;
        if (n.bytes.size() < 32) forms.push_back({static_cast<uint8_t>(0xa0 | n.bytes.size()), 0});
        if (n.bytes.size() < 0x100) forms.push_back({0xd9, 1});
        if (n.bytes.size() < 0x10000) forms.push_back({0xda, 2});
        forms.push_back({0xdb, 4});
        Length(out, n.bytes.size(), forms);
        out.insert(out.end(), n.bytes.begin(), n.bytes.end());
        return;
      }
      case Node::kBin: {
        std::vector<std::pair<uint8_t, size_t>> forms;
        if (n.bytes.size() < 0x100) forms.push_back({0xc4, 1});
        if (n.bytes.size() < 0x10000) forms.push_back({0xc5, 2});
        forms.push_back({0xc6, 4});
        Length(out, n.bytes.size(), forms);
        out.insert(out.end(), n.bytes.begin(), n.bytes.end());
        return;
      }
      case Node::kArray:
      case Node::kMap: {
        const bool map = n.kind == Node::kMap;
        const size_t count = map ? n.items.size() / 2 : n.items.size();
        std::vector<std::pair<uint8_t, size_t>> forms;
        if (count < 16) forms.push_back({static_cast<uint8_t>((map ? 0x80 : 0x90) | count), 0});
        if (count < 0x10000) forms.push_back({static_cast<uint8_t>(map ? 0xde : 0xdc), 2});
        forms.push_back({static_cast<uint8_t>(map ? 0xdf : 0xdd), 4});
        Length(out, count, forms);
        std::vector<size_t> order(count);
        for (size_t k = 0; k < count; ++k) order[k] = k;
        if (map && count > 1 && Odd()) std::shuffle(order.begin(), order.end(), rng_);
        for (size_t k : order) {
          if (map) {
            Put(out, n.items[2 * k]);
            Put(out, n.items[2 * k + 1]);
          } else {
            Put(out, n.items[k]);
          }
        }
        return;
      }
    }
  }

  std::mt19937_64 rng_;
  double odd_ = 0;
};

// ---- the samples, one per body type, and the property ----------------------------------------

struct Codec {
  std::string name;
  Bytes canonical;
  // Decodes `bytes`; when it succeeds, returns true and the re-encoding in `again`.
  std::function<bool(const Bytes&, Bytes& again)> round_trip;
};

template <typename T, typename Decode>
std::function<bool(const Bytes&, Bytes&)> BodyRoundTrip(Decode decode) {
  return [decode](const Bytes& bytes, Bytes& again) {
    Result<T> value = decode(bytes);
    if (!value.ok()) return false;
    again = EncodeBody(*value);
    return true;
  };
}

std::vector<Codec> Codecs() {
  using testing::SampleAssignments;
  Bid bid;
  bid.order_id.fill(0xab);
  bid.tenant = Tenant().public_key();
  bid.group = "dcloud";
  bid.denom = "uakt";
  bid.price_per_hour = 1'234'567;
  bid.services = SampleAssignments();
  bid.reservation_expires_ms = kNow + 30'000;
  const auto signed_bid = MakeSigned(Provider(), bid, kNow, kTtl, 6);
  Accept accept;
  accept.order_id = bid.order_id;
  accept.bid_id = signed_bid.id;
  accept.provider = Provider().public_key();
  const Lease lease = *BuildLease(EncodeEnvelope(MakeSigned(Tenant(), accept, kNow, kTtl, 7).envelope),
                                  EncodeEnvelope(signed_bid.envelope), kNow);
  // Close with a negative time and non-ASCII text, so the negative and multibyte forms are covered.
  const Close close{accept.order_id, CloseReason::kProviderFailure, -1'000'000, "n\xc3\xb6""de lost power \xe2\x9a\xa1"};
  // An attestation with a negative time and multibyte text too.
  const Attestation attestation{Provider().public_key(), AuditVerdict::kFail, -1'000'000'000'000,
                                "\xe2\x9a\xa1 ecc errors on gpu 3"};
  Order order = testing::SampleOrder();
  order.attributes.emplace("z\xc3\xa9", "v");
  order.attributes.emplace("", "empty key sorts first");
  const auto envelope = MakeSigned(Tenant(), order, kNow, kTtl, 0xfedcba9876543210ULL).envelope;
  return {
      {"order", EncodeBody(order), BodyRoundTrip<Order>(DecodeOrder)},
      {"offer", EncodeBody(testing::SampleOffer()), BodyRoundTrip<Offer>(DecodeOffer)},
      {"bid", EncodeBody(bid), BodyRoundTrip<Bid>(DecodeBid)},
      {"accept", EncodeBody(accept), BodyRoundTrip<Accept>(DecodeAccept)},
      {"lease", EncodeBody(lease), BodyRoundTrip<Lease>(DecodeLease)},
      {"close", EncodeBody(close), BodyRoundTrip<Close>(DecodeClose)},
      {"attestation", EncodeBody(attestation), BodyRoundTrip<Attestation>(DecodeAttestation)},
      {"envelope", EncodeEnvelope(envelope),
       [](const Bytes& bytes, Bytes& again) {
         Result<Envelope> value = DecodeEnvelope(bytes);
         if (!value.ok()) return false;
         again = EncodeEnvelope(*value);
         return true;
       }},
  };
}

TEST(CanonicalTest, OnlyTheCanonicalEncodingDecodes) {
  const uint64_t seed = gpumart::testing::TestSeed();
  Scrambler scrambler(seed);
  for (const Codec& codec : Codecs()) {
    Bytes again;
    ASSERT_TRUE(codec.round_trip(codec.canonical, again)) << codec.name;
    ASSERT_EQ(again, codec.canonical) << codec.name;
    const uint8_t* p = codec.canonical.data();
    const Node tree = Parse(p);
    ASSERT_EQ(p, codec.canonical.data() + codec.canonical.size()) << codec.name;
    size_t different = 0;
    for (int round = 0; round < 2000; ++round) {
      const Bytes variant = scrambler.Emit(tree, round % 4 == 0 ? 0.2 : 0.01);
      if (variant != codec.canonical) ++different;
      if (codec.round_trip(variant, again)) {
        ASSERT_EQ(again, variant) << codec.name << ": a non-canonical encoding decoded (seed " << seed << ", round "
                                  << round << ")";
      }
    }
    EXPECT_GT(different, 200u) << codec.name;  // the property was really exercised
  }
}

TEST(CanonicalTest, MutatedBytesThatDecodeReEncodeIdentically) {
  const uint64_t seed = gpumart::testing::TestSeed();
  std::mt19937_64 rng(seed);
  for (const Codec& codec : Codecs()) {
    size_t decoded = 0;
    for (int round = 0; round < 20000; ++round) {
      Bytes bytes = codec.canonical;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % bytes.size();
        switch (rng() % 4) {
          case 0: bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
          case 1: bytes[at] = static_cast<uint8_t>(rng()); break;
          case 2: bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(at), static_cast<uint8_t>(rng())); break;
          default: if (bytes.size() > 1) bytes.erase(bytes.begin() + static_cast<ptrdiff_t>(at)); break;
        }
      }
      Bytes again;
      if (codec.round_trip(bytes, again)) {
        ++decoded;
        ASSERT_EQ(again, bytes) << codec.name << ": decoded bytes re-encode differently (seed " << seed << ", round "
                                << round << ")";
      }
    }
    EXPECT_GT(decoded, 0u) << codec.name;  // some mutants are valid messages, so the check ran
  }
}

// A Lease carries the tenant's Accept envelope byte for byte. A provider that re-encodes it
// (here: the same Accept, same signature, created_ms in a wider integer form) presents bytes the
// tenant never produced; the strict decoder refuses them, so the lease does not open.
TEST(CanonicalTest, LeaseWithNonCanonicalEmbeddedAcceptRejected) {
  Bid bid;
  bid.order_id.fill(0x11);
  bid.tenant = Tenant().public_key();
  bid.group = "dcloud";
  bid.denom = "uakt";
  bid.price_per_hour = 1000;
  bid.services = testing::SampleAssignments();
  bid.reservation_expires_ms = kNow + 30'000;
  const auto signed_bid = MakeSigned(Provider(), bid, kNow, kTtl, 6);
  Accept accept;
  accept.order_id = bid.order_id;
  accept.bid_id = signed_bid.id;
  accept.provider = Provider().public_key();
  const auto signed_accept = MakeSigned(Tenant(), accept, kNow, kTtl, 7);
  const Bytes canonical = EncodeEnvelope(signed_accept.envelope);
  // The nonce (7, a positive fixint) follows the array header (1), version (1), type (1), signer
  // (2 + 32), created_ms and expires_ms (9 each); re-encode it as uint8 (0xcc 0x07).
  const size_t nonce_at = 1 + 1 + 1 + 34 + 9 + 9;
  ASSERT_EQ(canonical[nonce_at], 0x07);
  Bytes reencoded = canonical;
  reencoded[nonce_at] = 0xcc;
  reencoded.insert(reencoded.begin() + nonce_at + 1, 0x07);

  Result<Lease> lease = BuildLease(canonical, EncodeEnvelope(signed_bid.envelope), kNow);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  const Bytes good = EncodeEnvelope(MakeSigned(Provider(), *lease, kNow, kTtl, 8).envelope);
  ASSERT_TRUE(OpenLease(good).ok()) << OpenLease(good).status().ToString();
  // BuildLease refuses the re-encoded accept, so sign a lease body that carries it by hand.
  lease->accept_envelope = reencoded;
  const Bytes bad = EncodeEnvelope(MakeSigned(Provider(), *lease, kNow, kTtl, 8).envelope);
  const Status status = OpenLease(bad).status();
  EXPECT_EQ(status.code(), Status::Code::kCorruption) << status.ToString();
  EXPECT_NE(status.message().find("non-canonical"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("embedded accept"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace gpumart::market
