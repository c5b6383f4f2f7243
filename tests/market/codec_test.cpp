#include "market/codec.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include <limits>

#include "market/match.h"
#include "tests/market/test_messages.h"

namespace gpumart::market {
namespace {

using testing::SampleAssignments;
using testing::SampleOffer;
using testing::SampleOrder;

constexpr int64_t kNow = 1'750'000'000'000;
constexpr int64_t kTtl = 60'000;

Identity Tenant() { return Identity::FromSeed(Seed{1}); }
Identity Provider() { return Identity::FromSeed(Seed{2}); }

Bid SampleBid() {
  Bid bid;
  bid.order_id = Blake2b256(reinterpret_cast<const uint8_t*>("order"), 5);
  bid.tenant = Tenant().public_key();
  bid.group = "dcloud";
  bid.denom = "uakt";
  bid.price_per_hour = 1'234'567;
  bid.services = SampleAssignments();
  bid.reservation_expires_ms = kNow + 30'000;
  return bid;
}

// ---- body round trips -------------------------------------------------------------------------

TEST(CodecTest, OrderRoundTrips) {
  const Order order = SampleOrder();
  Result<Order> decoded = DecodeOrder(EncodeBody(order));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, order);
}

TEST(CodecTest, OfferRoundTrips) {
  Offer offer = SampleOffer();
  Result<Offer> decoded = DecodeOffer(EncodeBody(offer));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  // The provider id, the auditors and the reputation are node-local: none travels.
  EXPECT_EQ(decoded->provider, "");
  EXPECT_TRUE(decoded->auditors.empty());
  EXPECT_EQ(decoded->reputation_ppm, 0u);
  offer.provider.clear();
  offer.auditors.clear();
  offer.reputation_ppm = 0;
  EXPECT_EQ(*decoded, offer);
}

TEST(CodecTest, BidRoundTrips) {
  const Bid bid = SampleBid();
  Result<Bid> decoded = DecodeBid(EncodeBody(bid));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, bid);
}

TEST(CodecTest, AcceptLeaseCloseRoundTrip) {
  const auto bid = MakeSigned(Provider(), SampleBid(), kNow, kTtl, 6);
  Accept accept{bid.body.order_id, bid.id, Provider().public_key()};
  ASSERT_TRUE(DecodeAccept(EncodeBody(accept)).ok());
  EXPECT_EQ(*DecodeAccept(EncodeBody(accept)), accept);

  Result<Lease> lease = BuildLease(EncodeEnvelope(MakeSigned(Tenant(), accept, kNow, kTtl, 7).envelope),
                                   EncodeEnvelope(bid.envelope), kNow);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  // The terms come from the embedded messages.
  EXPECT_EQ(lease->order_id, bid.body.order_id);
  EXPECT_EQ(lease->bid_id, bid.id);
  EXPECT_EQ(lease->tenant, Tenant().public_key());
  EXPECT_EQ(lease->provider, Provider().public_key());
  EXPECT_EQ(lease->denom, bid.body.denom);
  EXPECT_EQ(lease->price_per_hour, bid.body.price_per_hour);
  EXPECT_EQ(lease->services, bid.body.services);
  Result<Lease> decoded_lease = DecodeLease(EncodeBody(*lease));
  ASSERT_TRUE(decoded_lease.ok()) << decoded_lease.status().ToString();
  EXPECT_EQ(*decoded_lease, *lease);

  Close close{accept.order_id, CloseReason::kProviderFailure, kNow + 5, "node n1 lost power"};
  ASSERT_TRUE(DecodeClose(EncodeBody(close)).ok());
  EXPECT_EQ(*DecodeClose(EncodeBody(close)), close);
}

// Attestations (docs/PROTOCOL.md, "Attestation"): signed by an auditor about a provider's key.
Attestation SampleAttestation() {
  return Attestation{Provider().public_key(), AuditVerdict::kFail, kNow - 5, "gpu 3 reports ecc errors"};
}

TEST(CodecTest, AttestationRoundTripsAndOpens) {
  const Attestation attestation = SampleAttestation();
  Result<Attestation> decoded = DecodeAttestation(EncodeBody(attestation));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, attestation);
  EXPECT_EQ(ToString(MessageType::kAttestation), "attestation");
  EXPECT_EQ(ToString(AuditVerdict::kPass), "pass");
  EXPECT_EQ(ToString(AuditVerdict::kFail), "fail");

  const Identity auditor = Identity::FromSeed(Seed{9});
  const auto message = MakeSigned(auditor, attestation, kNow, kTtl, 11);
  EXPECT_EQ(message.envelope.type, MessageType::kAttestation);
  Result<Signed<Attestation>> opened = OpenSigned<Attestation>(EncodeEnvelope(message.envelope), kNow);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->body, attestation);
  EXPECT_EQ(opened->id, message.id);
  EXPECT_EQ(opened->envelope.signer, auditor.public_key());
}

TEST(CodecTest, ForgedOrMalformedAttestationRefused) {
  const Identity auditor = Identity::FromSeed(Seed{9});
  // Someone else's signature under the auditor's key.
  auto forged = MakeSigned(Tenant(), SampleAttestation(), kNow, kTtl, 12);
  forged.envelope.signer = auditor.public_key();
  EXPECT_EQ(OpenSigned<Attestation>(EncodeEnvelope(forged.envelope), kNow).status().code(),
            Status::Code::kBadSignature);
  // A changed verdict under the original signature.
  auto flipped = MakeSigned(auditor, SampleAttestation(), kNow, kTtl, 13);
  Attestation passed = SampleAttestation();
  passed.verdict = AuditVerdict::kPass;
  flipped.envelope.body = EncodeBody(passed);
  EXPECT_EQ(OpenSigned<Attestation>(EncodeEnvelope(flipped.envelope), kNow).status().code(),
            Status::Code::kBadSignature);

  // verdict <= 1; a 32-byte provider; a UTF-8 note within kMaxTextBytes; nothing else.
  Bytes bytes = EncodeBody(SampleAttestation());
  const size_t verdict_at = 1 + 2 + kPublicKeyBytes;  // fixarray, bin8 header, key
  ASSERT_EQ(bytes[verdict_at], 0x01);
  bytes[verdict_at] = 0x02;
  EXPECT_FALSE(DecodeAttestation(bytes).ok());
  bytes[verdict_at] = 0x01;
  ASSERT_TRUE(DecodeAttestation(bytes).ok());
  Attestation bad = SampleAttestation();
  bad.note = "caf\xc3";  // truncated UTF-8
  EXPECT_FALSE(DecodeAttestation(EncodeBody(bad)).ok());
  bad.note = std::string(limits::kMaxTextBytes + 1, 'x');
  EXPECT_EQ(DecodeAttestation(EncodeBody(bad)).status().code(), Status::Code::kLimitExceeded);
  bad.note = std::string(limits::kMaxTextBytes, 'x');
  EXPECT_TRUE(DecodeAttestation(EncodeBody(bad)).ok());
  Bytes trailing = EncodeBody(SampleAttestation());
  trailing.push_back(0xc0);
  EXPECT_FALSE(DecodeAttestation(trailing).ok());
  // A non-canonical form of the same attestation: attested_ms as int64 although it fits in
  // fewer bytes would give the same content a second id.
  Attestation small = SampleAttestation();
  small.attested_ms = 5;
  Bytes wide = EncodeBody(small);
  const size_t time_at = verdict_at + 1;
  ASSERT_EQ(wide[time_at], 0x05);
  wide[time_at] = 0xd3;  // int64
  const uint8_t five[8] = {0, 0, 0, 0, 0, 0, 0, 5};
  wide.insert(wide.begin() + static_cast<ptrdiff_t>(time_at) + 1, five, five + 8);
  EXPECT_FALSE(DecodeAttestation(wide).ok());
  // Another type's envelope is not an attestation.
  const Bytes close = EncodeEnvelope(MakeSigned(auditor, Close{}, kNow, kTtl, 14).envelope);
  EXPECT_FALSE(OpenSigned<Attestation>(close, kNow).ok());
}

TEST(CodecTest, EncodingIsCanonical) {
  const Order order = SampleOrder();
  EXPECT_EQ(EncodeBody(order), EncodeBody(order));
  // Attribute insertion order does not matter: maps are encoded in key order.
  Order a = order, b = order;
  a.attributes.clear();
  a.attributes.emplace("z", "1");
  a.attributes.emplace("a", "2");
  b.attributes.clear();
  b.attributes.emplace("a", "2");
  b.attributes.emplace("z", "1");
  EXPECT_EQ(EncodeBody(a), EncodeBody(b));
  // Integers take their shortest form: count 1 is a single positive fixint byte.
  const Bytes bytes = EncodeBody(order);
  EXPECT_LT(bytes.size(), 400u);
  // Re-encoding a decoded value gives the same bytes.
  EXPECT_EQ(EncodeBody(*DecodeOrder(bytes)), bytes);
}

// ---- several denoms (SDL 2.2) ------------------------------------------------------------------

// A one-service order capped in uakt, and the same in uakt then uact: the single-denom bytes are
// the ones every earlier node wrote (a ServiceRequest of 6 fields); several denoms add a 7th.
Order TinyOrder() {
  Order order;
  order.group = "g";
  ServiceRequest service;
  service.name = "s";
  service.profile = "p";
  service.resources.cpu_millis = 100;
  service.price_cap = PriceCap{"uakt", 6117, 3'600'000};
  order.services = {service};
  return order;
}

TEST(CodecTest, SeveralDenomsAddAFieldOnlyWhenUsed) {
  const Order single = TinyOrder();
  const Bytes single_bytes = EncodeBody(single);
  EXPECT_EQ(ToHex(single_bytes.data(), single_bytes.size()),
            "94a167809290909196a173a17001"  // order [g, {}, [[], []], [[s, p, 1,
            "94640090920090c0"              //   resources [100, 0, [], [0, []]], cuda nil,
            "93a475616b74cd17e5ce0036ee80");  //   [uakt, 6117, 3600000]]]]
  Order several = single;
  several.services[0].more_caps = {PriceCap{"uact", 6117, 3'600'000}};
  const Bytes several_bytes = EncodeBody(several);
  EXPECT_EQ(ToHex(several_bytes.data(), several_bytes.size()),
            "94a167809290909197a173a17001"
            "94640090920090c0"
            "93a475616b74cd17e5ce0036ee80"
            "9193a475616374cd17e5ce0036ee80");  // more_caps [[uact, 6117, 3600000]]
  Result<Order> decoded = DecodeOrder(several_bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, several);
  EXPECT_EQ(EncodeBody(*decoded), several_bytes);
  EXPECT_EQ(decoded->Denoms(), (std::vector<std::string>{"uakt", "uact"}));
  EXPECT_EQ(DecodeOrder(single_bytes)->services[0].more_caps, std::vector<PriceCap>{});

  // An empty 7th field would be a second encoding of the single-denom order.
  Bytes empty = single_bytes;
  empty[8] = 0x97;
  empty.push_back(0x90);
  EXPECT_EQ(DecodeOrder(empty).status().message(), "service.more_caps: empty (omit the field instead)");
}

// ---- interruptible (spot) leases: each field is written only when used -----------------------

TEST(CodecTest, InterruptibleOrderAddsAFieldOnlyWhenTrue) {
  const Order regular = TinyOrder();
  const Bytes regular_bytes = EncodeBody(regular);
  Order spot = regular;
  spot.interruptible = true;
  const Bytes spot_bytes = EncodeBody(spot);
  EXPECT_EQ(spot_bytes.front(), 0x95);  // five fields: ..., interruptible
  EXPECT_EQ(spot_bytes.back(), 0xc3);   // true
  EXPECT_EQ(Bytes(spot_bytes.begin() + 1, spot_bytes.end() - 1), Bytes(regular_bytes.begin() + 1, regular_bytes.end()));
  Result<Order> decoded = DecodeOrder(spot_bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, spot);
  EXPECT_FALSE(DecodeOrder(regular_bytes)->interruptible);
  // An explicit false would be a second encoding of the regular order.
  Bytes explicit_false = spot_bytes;
  explicit_false.back() = 0xc2;
  EXPECT_EQ(DecodeOrder(explicit_false).status().message(), "order.interruptible: false (omit the field instead)");
}

TEST(CodecTest, SpotBidStatesItsNoticeAndTheLeaseCarriesIt) {
  Bid bid = SampleBid();
  EXPECT_EQ(EncodeBody(bid).front(), 0x97);
  bid.spot = SpotTerms{30'000};
  const Bytes bytes = EncodeBody(bid);
  EXPECT_EQ(bytes.front(), 0x98);
  Result<Bid> decoded = DecodeBid(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, bid);
  // The notice is bounded.
  Bid too_long = bid;
  too_long.spot->notice_ms = limits::kMaxPreemptionNoticeMs + 1;
  EXPECT_FALSE(DecodeBid(EncodeBody(too_long)).ok());
  // A lease of the bid derives the spot terms from the bid it embeds.
  const auto signed_bid = MakeSigned(Provider(), bid, kNow, kTtl, 1);
  const auto accept = MakeSigned(Tenant(), Accept{bid.order_id, signed_bid.id, Provider().public_key()}, kNow, kTtl, 2);
  Result<Lease> lease = BuildLease(EncodeEnvelope(accept.envelope), EncodeEnvelope(signed_bid.envelope), kNow);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(lease->spot.has_value());
  EXPECT_EQ(lease->spot->notice_ms, 30'000u);
  // Changing it by hand breaks the binding.
  auto signed_lease = MakeSigned(Provider(), *lease, kNow, kTtl, 3);
  signed_lease.body.spot.reset();
  EXPECT_FALSE(CheckLeaseBinding(signed_lease).ok());
}

TEST(CodecTest, PreemptionCloseCarriesItsPreemptorAndOnlyIt) {
  Close close{Blake2b256(reinterpret_cast<const uint8_t*>("lease"), 5), CloseReason::kPreempted, kNow + 30'000,
              "preempted", Bytes{0x01, 0x02, 0x03}};
  const Bytes bytes = EncodeBody(close);
  EXPECT_EQ(bytes.front(), 0x95);
  Result<Close> decoded = DecodeClose(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, close);
  EXPECT_EQ(ToString(CloseReason::kPreempted), "preempted");
  // A preemption without its preemptor, or a preemptor on another reason, is refused.
  Close bare = close;
  bare.preemptor_lease.clear();
  EXPECT_EQ(DecodeClose(EncodeBody(bare)).status().message(), "a preemption close must carry the preemptor lease");
  Close other = close;
  other.reason = CloseReason::kProviderClosed;
  EXPECT_EQ(DecodeClose(EncodeBody(other)).status().message(), "only a preemption close carries a preemptor lease");
  // The reasons before it keep their numbers, and one past it is refused.
  EXPECT_EQ(static_cast<uint8_t>(CloseReason::kExpired), 4);
  EXPECT_EQ(static_cast<uint8_t>(CloseReason::kPreempted), 5);
  Bytes unknown = EncodeBody(bare);
  unknown[1 + 2 + 32] = 6;  // array, bin8 header (2 bytes), id, then the reason
  EXPECT_FALSE(DecodeClose(unknown).ok());
}

TEST(CodecTest, SeveralDenomsAreTheSameForEveryServiceAndListedOnce) {
  Order order = SampleOrder();
  for (ServiceRequest& service : order.services) {
    service.more_caps = {PriceCap{"uact", 100, PerBlockToPerHour(100)}, PriceCap{"usdc", 7, PerBlockToPerHour(7)}};
  }
  ASSERT_TRUE(ValidateOrder(order).ok()) << ValidateOrder(order).ToString();
  ASSERT_TRUE(DecodeOrder(EncodeBody(order)).ok());
  EXPECT_EQ(order.CapPerHourIn("usdc"), PerBlockToPerHour(7) + 2 * PerBlockToPerHour(7));

  Order reordered = order;
  std::swap(reordered.services[1].more_caps[0], reordered.services[1].more_caps[1]);
  EXPECT_EQ(ValidateOrder(reordered).message(),
            "order service web: price denom usdc differs from the group's uact at position 2");
  Order fewer = order;
  fewer.services[1].more_caps.pop_back();
  EXPECT_EQ(ValidateOrder(fewer).message(), "order service web: caps in 2 denoms, the group's first service in 3");
  Order twice = order;
  for (ServiceRequest& service : twice.services) service.more_caps[1].denom = "uakt";
  EXPECT_EQ(ValidateOrder(twice).message(), "order service vllm: caps in uakt twice");
  Order wrong_rate = order;
  wrong_rate.services[0].more_caps[0].per_hour += 1;
  EXPECT_FALSE(ValidateOrder(wrong_rate).ok());
  Order too_many = TinyOrder();
  for (size_t i = 0; i < limits::kMaxPriceCaps; ++i) {
    too_many.services[0].more_caps.push_back(PriceCap{"d" + std::to_string(100 + i), 1, PerBlockToPerHour(1)});
  }
  EXPECT_EQ(ValidateOrder(too_many).code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(DecodeOrder(EncodeBody(too_many)).status().code(), Status::Code::kLimitExceeded);
}

// ---- envelope, signature, id ------------------------------------------------------------------

TEST(CodecTest, SignedOrderOpens) {
  const auto message = MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 42);
  const Bytes wire = EncodeEnvelope(message.envelope);
  Result<Signed<Order>> opened = OpenSigned<Order>(wire, kNow + 1);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->body, SampleOrder());
  EXPECT_EQ(opened->id, message.id);
  EXPECT_EQ(opened->envelope.signer, Tenant().public_key());
  EXPECT_EQ(opened->envelope.expires_ms, kNow + kTtl);
}

TEST(CodecTest, IdIsHashOfSigningInputAndDiffersPerNonce) {
  const auto a = MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 1);
  const auto b = MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 2);
  const Bytes input = SigningInput(a.envelope);
  EXPECT_EQ(a.id, Blake2b256(input.data(), input.size()));
  EXPECT_NE(a.id, b.id);
  // The signing input starts with the domain-separation prefix.
  ASSERT_GE(input.size(), kSigningDomain.size());
  EXPECT_EQ(std::string(input.begin(), input.begin() + kSigningDomain.size()), std::string(kSigningDomain));
}

TEST(CodecTest, EnvelopeRoundTrips) {
  const auto message = MakeSigned(Provider(), SampleBid(), kNow, kTtl, 9);
  Result<Envelope> decoded = DecodeEnvelope(EncodeEnvelope(message.envelope));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, message.envelope);
}

// Tampering with any signed field must break verification.
TEST(CodecTest, TamperingWithEachFieldFailsVerification) {
  const Envelope good = MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 42).envelope;
  ASSERT_TRUE(VerifyEnvelope(good, kNow).ok());
  std::vector<std::pair<std::string, Envelope>> tampered;
  auto add = [&](std::string name, auto change) {
    Envelope e = good;
    change(e);
    tampered.emplace_back(std::move(name), std::move(e));
  };
  add("type", [](Envelope& e) { e.type = MessageType::kOffer; });
  add("signer", [](Envelope& e) { e.signer = Provider().public_key(); });
  add("created", [](Envelope& e) { e.created_ms -= 1; });
  add("expires", [](Envelope& e) { e.expires_ms += 1; });
  add("nonce", [](Envelope& e) { e.nonce += 1; });
  add("body", [](Envelope& e) { e.body.back() ^= 1; });
  add("signature", [](Envelope& e) { e.signature[10] ^= 0x40; });
  add("version", [](Envelope& e) { e.version = 2; });
  for (const auto& [name, envelope] : tampered) {
    Status status = VerifyEnvelope(envelope, kNow);
    EXPECT_EQ(status.code(), Status::Code::kBadSignature) << name << ": " << status.ToString();
  }
}

TEST(CodecTest, FlippingAnyWireByteNeverVerifies) {
  const Bytes wire = EncodeEnvelope(MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 42).envelope);
  for (size_t i = 0; i < wire.size(); ++i) {
    Bytes copy = wire;
    copy[i] ^= 0x01;
    EXPECT_FALSE(OpenSigned<Order>(copy, kNow).ok()) << "byte " << i;
  }
}

TEST(CodecTest, ExpiredMessageRejected) {
  const Envelope e = MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 1).envelope;
  EXPECT_EQ(VerifyEnvelope(e, kNow + kTtl).code(), Status::Code::kExpired);
  EXPECT_EQ(OpenSigned<Order>(EncodeEnvelope(e), kNow + kTtl + 1).status().code(), Status::Code::kExpired);
  // The ledger re-checks old records by signature only.
  EXPECT_TRUE(OpenSigned<Order>(EncodeEnvelope(e), kNow + 10 * kTtl, Freshness::kIgnore).ok());
}

TEST(CodecTest, MessageFromTheFutureRejected) {
  const Envelope e = MakeSigned(Tenant(), SampleOrder(), kNow + limits::kMaxClockSkewMs + 1, kTtl, 1).envelope;
  EXPECT_EQ(VerifyEnvelope(e, kNow).code(), Status::Code::kFromFuture);
  const Envelope within = MakeSigned(Tenant(), SampleOrder(), kNow + limits::kMaxClockSkewMs, kTtl, 1).envelope;
  EXPECT_TRUE(VerifyEnvelope(within, kNow).ok());
}

TEST(CodecTest, TooLongLifetimeRejected) {
  const Envelope e = MakeSigned(Tenant(), SampleOrder(), kNow, limits::kMaxTtlMs + 1, 1).envelope;
  EXPECT_EQ(VerifyEnvelope(e, kNow).code(), Status::Code::kLimitExceeded);
  const Envelope backwards = MakeSigned(Tenant(), SampleOrder(), kNow, 0, 1).envelope;
  EXPECT_EQ(VerifyEnvelope(backwards, kNow).code(), Status::Code::kInvalidArgument);
}

// Peer-chosen times at the ends of int64: every check is exact, none overflows (UBSan guards the
// arithmetic; the verdicts guard the logic). Before the fix INT64_MAX - INT64_MIN wrapped to -1 and
// the message passed as one that never expires.
TEST(CodecTest, FreshnessAtTheEndsOfTimeNeverOverflows) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  auto freshness = [](int64_t created, int64_t expires, int64_t now) {
    Envelope e;
    e.created_ms = created;
    e.expires_ms = expires;
    return CheckFreshness(e, now).code();
  };
  EXPECT_EQ(freshness(kMin, kMax, kNow), Status::Code::kLimitExceeded);
  EXPECT_EQ(freshness(kMin, kMax, kMin), Status::Code::kLimitExceeded);
  EXPECT_EQ(freshness(-1, kMax, 0), Status::Code::kLimitExceeded);
  EXPECT_EQ(freshness(kMin, 1, 0), Status::Code::kLimitExceeded);
  EXPECT_EQ(freshness(kMax, kMin, kNow), Status::Code::kInvalidArgument);
  EXPECT_EQ(freshness(kMax, kMax, kNow), Status::Code::kInvalidArgument);
  // A lifetime within the limit at either end of time.
  EXPECT_EQ(freshness(kMin, kMin + kTtl, kMax), Status::Code::kExpired);
  EXPECT_EQ(freshness(kMin, kMin + kTtl, kMin), Status::Code::kOk);
  EXPECT_EQ(freshness(kMax - kTtl, kMax, kMin), Status::Code::kFromFuture);
  EXPECT_EQ(freshness(kMax - kTtl, kMax, kMax - 1), Status::Code::kOk);
  EXPECT_EQ(freshness(kMax - kTtl, kMax, kMax), Status::Code::kExpired);
  // "now + skew" at the end of time saturates instead of wrapping into the past.
  EXPECT_EQ(freshness(kMax - 2, kMax, kMax - limits::kMaxClockSkewMs / 2), Status::Code::kOk);
  // The lifetime limit is exact at its boundary.
  EXPECT_EQ(freshness(kNow, kNow + limits::kMaxTtlMs, kNow), Status::Code::kOk);
  EXPECT_EQ(freshness(kNow, kNow + limits::kMaxTtlMs + 1, kNow), Status::Code::kLimitExceeded);
  // Signing with a TTL past the end of time saturates the expiry rather than wrapping it.
  const Envelope far = SignEnvelope(Tenant(), MessageType::kAccept, {}, kMax - 10, kTtl, 1);
  EXPECT_EQ(far.expires_ms, kMax);
}

TEST(CodecTest, WrongMessageTypeRejected) {
  const Bytes wire = EncodeEnvelope(MakeSigned(Provider(), SampleBid(), kNow, kTtl, 1).envelope);
  Status status = OpenSigned<Order>(wire, kNow).status();
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(status.message().find("expected a order message, got bid"), std::string::npos) << status.message();
}

// Hand-built envelopes with a bad field in an otherwise valid shape.
Bytes RawEnvelope(uint64_t version, uint64_t type, size_t key_bytes, size_t signature_bytes) {
  Bytes out;
  struct Sink {
    Bytes& out;
    void write(const char* d, size_t n) { out.insert(out.end(), d, d + n); }
  } sink{out};
  msgpack::packer<Sink> p(sink);
  p.pack_array(8);
  p.pack_uint64(version);
  p.pack_uint64(type);
  std::string key(key_bytes, 'k');
  p.pack_bin(static_cast<uint32_t>(key.size()));
  p.pack_bin_body(key.data(), static_cast<uint32_t>(key.size()));
  p.pack_int64(kNow);
  p.pack_int64(kNow + kTtl);
  p.pack_uint64(1);
  p.pack_bin(0);
  std::string sig(signature_bytes, 's');
  p.pack_bin(static_cast<uint32_t>(sig.size()));
  p.pack_bin_body(sig.data(), static_cast<uint32_t>(sig.size()));
  return out;
}

TEST(CodecTest, WrongKeyLengthRejected) {
  Result<Envelope> e = DecodeEnvelope(RawEnvelope(1, 1, 31, 64));
  EXPECT_EQ(e.status().code(), Status::Code::kBadSignature);
  EXPECT_NE(e.status().message().find("public key must be 32 bytes, got 31"), std::string::npos);
  EXPECT_EQ(DecodeEnvelope(RawEnvelope(1, 1, 33, 64)).status().code(), Status::Code::kBadSignature);
}

TEST(CodecTest, WrongSignatureLengthRejected) {
  Result<Envelope> e = DecodeEnvelope(RawEnvelope(1, 1, 32, 63));
  EXPECT_EQ(e.status().code(), Status::Code::kBadSignature);
  EXPECT_NE(e.status().message().find("must be 64 bytes"), std::string::npos);
}

TEST(CodecTest, UnknownVersionAndTypeRejected) {
  EXPECT_TRUE(DecodeEnvelope(RawEnvelope(1, 1, 32, 64)).ok());
  Status version = DecodeEnvelope(RawEnvelope(2, 1, 32, 64)).status();
  EXPECT_NE(version.message().find("unsupported protocol version 2"), std::string::npos) << version.message();
  Status type = DecodeEnvelope(RawEnvelope(1, 99, 32, 64)).status();
  EXPECT_NE(type.message().find("unknown message type 99"), std::string::npos) << type.message();
  EXPECT_FALSE(DecodeEnvelope(RawEnvelope(1, 0, 32, 64)).ok());
}

// ---- hostile bytes ----------------------------------------------------------------------------

TEST(CodecTest, HugeArrayHeaderRejectedCheaply) {
  // array32 claiming 2^32-1 elements where a fixed-size struct belongs: a shape error.
  const Bytes bomb = {0xdd, 0xff, 0xff, 0xff, 0xff};
  Status top = DecodeEnvelope(bomb).status();
  EXPECT_EQ(top.code(), Status::Code::kCorruption);
  EXPECT_NE(top.message().find("expected 8 fields, got 4294967295"), std::string::npos) << top.message();
  EXPECT_EQ(DecodeOrder(bomb).status().code(), Status::Code::kCorruption);
  // ... and where a list belongs (order.services): refused by the named limit, nothing allocated.
  const Bytes list_bomb = {0x94, 0xa1, 'g', 0x80, 0x92, 0x90, 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff};
  Status list = DecodeOrder(list_bomb).status();
  EXPECT_EQ(list.code(), Status::Code::kLimitExceeded);
  EXPECT_NE(list.message().find("order.services: 4294967295 items exceed the limit of 64"), std::string::npos)
      << list.message();
  // A list within the limit but longer than the bytes left is truncated, also before allocating.
  const Bytes short_list = {0x94, 0xa1, 'g', 0x80, 0x92, 0x90, 0x90, 0xdc, 0x00, 0x30};
  EXPECT_NE(DecodeOrder(short_list).status().message().find("order.services: truncated"), std::string::npos);
  // map32 in the attributes position.
  const Bytes map_bomb = {0x94, 0xa1, 'g', 0xdf, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(DecodeOrder(map_bomb).status().code(), Status::Code::kLimitExceeded);
  // str32/bin32 claiming 4 GiB: strings reference the input instead of being copied, so nothing
  // is allocated; msgpack-c reports them as a length longer than the input.
  for (const Bytes& length_bomb : {Bytes{0xdb, 0xff, 0xff, 0xff, 0xff}, Bytes{0xc6, 0xff, 0xff, 0xff, 0xff}}) {
    const Status status = DecodeEnvelope(length_bomb).status();
    EXPECT_TRUE(status.code() == Status::Code::kLimitExceeded || status.code() == Status::Code::kCorruption)
        << status.ToString();
  }
}

TEST(CodecTest, DeepNestingRejected) {
  // The reader follows the schema and never recurses on its own, so nesting deeper than the
  // schema is just a wrong field shape.
  Bytes deep(100000, 0x91);  // 100k nested one-element arrays
  deep.push_back(0xc0);
  Status status = DecodeOrder(deep).status();
  EXPECT_EQ(status.code(), Status::Code::kCorruption);
  EXPECT_NE(status.message().find("order: expected 4 or 5 fields, got 1"), std::string::npos) << status.message();
}

TEST(CodecTest, TruncatedAndTrailingBytesRejected) {
  const Bytes wire = EncodeEnvelope(MakeSigned(Tenant(), SampleOrder(), kNow, kTtl, 42).envelope);
  for (size_t cut : {size_t{1}, size_t{10}, wire.size() / 2, wire.size() - 1}) {
    Status status = DecodeEnvelope(std::span<const uint8_t>(wire.data(), cut)).status();
    EXPECT_EQ(status.code(), Status::Code::kCorruption) << cut;
  }
  Bytes extra = wire;
  extra.push_back(0xc0);
  Status status = DecodeEnvelope(extra).status();
  EXPECT_NE(status.message().find("1 trailing bytes"), std::string::npos) << status.message();
  EXPECT_EQ(DecodeEnvelope(Bytes{}).status().code(), Status::Code::kCorruption);
}

TEST(CodecTest, OversizeMessageRejectedBeforeParsing) {
  Bytes big(limits::kMaxMessageBytes + 1, 0xc0);
  EXPECT_EQ(DecodeEnvelope(big).status().code(), Status::Code::kLimitExceeded);
}

TEST(CodecTest, WrongFieldTypesNamed) {
  Bytes body = EncodeBody(SampleOrder());
  body[1] = 0x05;  // group name replaced by... the first byte of the group str header -> fixint
  Status status = DecodeOrder(body).status();
  EXPECT_FALSE(status.ok());
  Bytes not_array = {0x05};
  EXPECT_NE(DecodeOrder(not_array).status().message().find("order: expected array"), std::string::npos);
}

TEST(CodecTest, TooManyServicesRejected) {
  Order order = SampleOrder();
  while (order.services.size() <= limits::kMaxServices) {
    ServiceRequest extra = order.services[1];
    extra.name = "s" + std::to_string(order.services.size());
    order.services.push_back(extra);
  }
  Status status = DecodeOrder(EncodeBody(order)).status();
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded);
  EXPECT_NE(status.message().find("order.services"), std::string::npos) << status.message();
}

TEST(CodecTest, OverlongStringRejected) {
  Order order = SampleOrder();
  order.group = std::string(limits::kMaxNameBytes + 1, 'g');
  Status status = DecodeOrder(EncodeBody(order)).status();
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded);
  EXPECT_NE(status.message().find("order.group"), std::string::npos);
}

TEST(CodecTest, DuplicateMapKeysRejected) {
  // A hand-built order whose attributes map repeats a key.
  Bytes body = {0x94, 0xa1, 'g', 0x82, 0xa1, 'k', 0xa1, 'v', 0xa1, 'k', 0xa1, 'w', 0x92, 0x90, 0x90, 0x90};
  Status status = DecodeOrder(body).status();
  EXPECT_NE(status.message().find("duplicate key"), std::string::npos) << status.ToString();
}

// ---- semantic validation ----------------------------------------------------------------------

TEST(CodecTest, ValidateOrderRules) {
  EXPECT_TRUE(ValidateOrder(SampleOrder()).ok());
  Order no_services = SampleOrder();
  no_services.services.clear();
  EXPECT_FALSE(ValidateOrder(no_services).ok());
  Order zero_count = SampleOrder();
  zero_count.services[0].count = 0;
  EXPECT_NE(ValidateOrder(zero_count).message().find("count must be >= 1"), std::string::npos);
  Order gpu_without_options = SampleOrder();
  gpu_without_options.services[0].resources.gpu.options.clear();
  EXPECT_NE(ValidateOrder(gpu_without_options).message().find("without any acceptable GPU option"), std::string::npos);
  Order mixed_denoms = SampleOrder();
  mixed_denoms.services[1].price_cap.denom = "usdc";
  EXPECT_NE(ValidateOrder(mixed_denoms).message().find("differs from the group's uakt"), std::string::npos);
  Order duplicate = SampleOrder();
  duplicate.services[1].name = "vllm";
  EXPECT_NE(ValidateOrder(duplicate).message().find("appears twice"), std::string::npos);
  Order unnamed = SampleOrder();
  unnamed.group.clear();
  EXPECT_FALSE(ValidateOrder(unnamed).ok());
  // Decoding applies the same rules.
  EXPECT_FALSE(DecodeOrder(EncodeBody(zero_count)).ok());
}

// per_hour is derived, never chosen: a cap whose per_hour is not amount * 3600000 / 6117 says two
// different things, and matching compares per_hour.
TEST(CodecTest, PerHourMustFollowFromAmount) {
  Order order = SampleOrder();
  order.services[0].price_cap.per_hour += 1;
  Status status = ValidateOrder(order);
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(status.message().find("per_hour"), std::string::npos) << status.message();
  EXPECT_FALSE(DecodeOrder(EncodeBody(order)).ok());
  // Exact at large amounts (the product needs more than 64 bits).
  Order big = SampleOrder();
  const uint64_t amount = 30'000'000'000'000'000ULL;  // * 3600000 overflows 64 bits
  big.services[0].price_cap.amount = amount;
  // amount = q * 6117 + r, so amount * 3600000 / 6117 = q * 3600000 + r * 3600000 / 6117 exactly.
  big.services[0].price_cap.per_hour =
      amount / kAkashBlockMs * kMsPerHour + amount % kAkashBlockMs * kMsPerHour / kAkashBlockMs;
  EXPECT_EQ(big.services[0].price_cap.per_hour, 17'655'713'585'090'730'750ULL);
  EXPECT_TRUE(ValidateOrder(big).ok()) << ValidateOrder(big).ToString();
  // An amount whose per-hour value does not fit in 64 bits cannot be stated at all.
  big.services[0].price_cap.amount = UINT64_MAX;
  big.services[0].price_cap.per_hour = UINT64_MAX;
  EXPECT_EQ(ValidateOrder(big).code(), Status::Code::kLimitExceeded);
}

// count x per-replica need must fit in 64 bits (storage summed over volumes, cpu, memory), and so
// must the group's totals, so no later sum or product over a valid order can overflow.
TEST(CodecTest, ServiceTotalsMustNotOverflow) {
  Order storage = SampleOrder();
  storage.services[1].count = 4;
  // 2^61 + 2^61 per replica fits; times count 4 is 2^64.
  storage.services[1].resources.storage = {StorageVolume{"a", uint64_t{1} << 61, std::nullopt, false},
                                           StorageVolume{"b", uint64_t{1} << 61, std::nullopt, false}};
  Status status = ValidateOrder(storage);
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded) << status.ToString();
  EXPECT_NE(status.message().find("storage"), std::string::npos) << status.message();
  EXPECT_FALSE(DecodeOrder(EncodeBody(storage)).ok());
  storage.services[1].resources.storage.pop_back();
  EXPECT_TRUE(ValidateOrder(storage).ok()) << ValidateOrder(storage).ToString();
  Order cpu = SampleOrder();
  cpu.services[1].resources.cpu_millis = UINT64_MAX / 2 + 1;  // count is 2
  EXPECT_EQ(ValidateOrder(cpu).code(), Status::Code::kLimitExceeded);
  Order memory = SampleOrder();
  memory.services[1].resources.memory_bytes = UINT64_MAX / 2 + 1;
  EXPECT_EQ(ValidateOrder(memory).code(), Status::Code::kLimitExceeded);
  // Each service fits, the group's total does not.
  Order group = SampleOrder();
  group.services[0].resources.memory_bytes = uint64_t{1} << 63;  // count 1
  group.services[1].resources.memory_bytes = uint64_t{1} << 62;  // count 2: 2^63, total 2^64
  EXPECT_EQ(ValidateOrder(group).code(), Status::Code::kLimitExceeded);
}

TEST(CodecTest, ValidateOfferAndBidRules) {
  Offer twice = SampleOffer();
  twice.nodes.push_back(twice.nodes[0]);
  EXPECT_NE(ValidateOffer(twice).message().find("lists node n1 twice"), std::string::npos);
  Offer denoms = SampleOffer();
  denoms.pricing.push_back(denoms.pricing[0]);
  EXPECT_FALSE(ValidateOffer(denoms).ok());
  Bid bid = SampleBid();
  bid.services[0].placements[0].replicas = 0;
  EXPECT_FALSE(ValidateBid(bid).ok());
  Bid half = SampleBid();
  half.services[0].device.reset();
  EXPECT_NE(ValidateBid(half).message().find("option and device must be given together"), std::string::npos);
}

// Rate keys are looked up literally as "model.<FormatGi(ram)>.<interface>" and shorter forms, so
// only that spelling can ever match; any other is refused rather than silently never used.
TEST(CodecTest, PriceKeysOnlyInTheSpellingMatchingLooksUp) {
  for (const std::string key : {"*", "h100", "h100.80Gi", "h100.80Gi.sxm", "a10.24Gi.pcie", "x.0Gi", "x.1000"}) {
    Offer offer = SampleOffer();
    offer.pricing[0].gpu = {{key, 1}};
    EXPECT_TRUE(ValidateOffer(offer).ok()) << key << ": " << ValidateOffer(offer).ToString();
  }
  for (const std::string key : {"", ".80Gi", "*.80Gi", "h100.", "h100.80gi", "h100.080Gi", "h100.80GiB",
                                "h100.85899345920", "h100.80Gi.", "h100.80Gi.SXM", "h100.80Gi.sxm5", "h100.80Gi.sxm.x",
                                "h100.-1Gi", "h100.99999999999999999999Gi", "h100.Gi"}) {
    Offer offer = SampleOffer();
    offer.pricing[0].gpu = {{key, 1}};
    const Status status = ValidateOffer(offer);
    EXPECT_EQ(status.code(), Status::Code::kInvalidArgument) << "'" << key << "'";
    EXPECT_FALSE(DecodeOffer(EncodeBody(offer)).ok()) << key;
  }
}

TEST(CodecTest, DevicesNameTheirVendorAndModel) {
  Bid bid = SampleBid();
  bid.services[0].device->vendor.clear();
  EXPECT_NE(ValidateBid(bid).message().find("device without a vendor or model"), std::string::npos);
  Bid no_model = SampleBid();
  no_model.services[0].device->model.clear();
  EXPECT_FALSE(DecodeBid(EncodeBody(no_model)).ok());
  Offer offer = SampleOffer();
  offer.nodes[0].gpus[0].vendor.clear();
  EXPECT_FALSE(ValidateOffer(offer).ok());
}

// ---- fractional GPUs (MIG instances, time-slice replicas) ------------------------------------

// Finds `needle` in `haystack` (hex), or npos.
size_t FindHex(const Bytes& haystack, const std::string& needle) {
  return ToHex(haystack.data(), haystack.size()).find(needle);
}

TEST(CodecTest, FractionalOptionFieldsAddedOnlyWhenUsed) {
  Order whole = TinyOrder();
  whole.services[0].resources.gpu.units = 1;
  whole.services[0].resources.gpu.options = {GpuOption{"nvidia", "a100", std::nullopt, std::nullopt}};
  // A whole-GPU option keeps the 4 fields every earlier node wrote.
  EXPECT_NE(FindHex(EncodeBody(whole), "94a66e7669646961a461313030c0c0"), std::string::npos);
  for (auto set : std::vector<void (*)(GpuOption&)>{
           [](GpuOption& o) { o.mig = "1g.10gb"; },
           [](GpuOption& o) { o.mig_min_ram_bytes = 10 * kGi; },
           [](GpuOption& o) { o.shared_ok = true; }}) {
    Order fractional = whole;
    set(fractional.services[0].resources.gpu.options[0]);
    const Bytes bytes = EncodeBody(fractional);
    EXPECT_NE(FindHex(bytes, "97a66e7669646961a461313030c0c0"), std::string::npos);
    Result<Order> decoded = DecodeOrder(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, fractional);
    EXPECT_EQ(EncodeBody(*decoded), bytes);
  }
  // Seven fields that are all unset would be a second encoding of the four.
  Order shared = whole;
  shared.services[0].resources.gpu.options[0].shared_ok = true;
  Bytes bytes = EncodeBody(shared);
  const size_t at = FindHex(bytes, "c000c3");
  ASSERT_NE(at, std::string::npos);
  bytes[at / 2 + 2] = 0xc2;
  EXPECT_EQ(DecodeOrder(bytes).status().code(), Status::Code::kCorruption);
  EXPECT_NE(DecodeOrder(bytes).status().message().find("non-canonical"), std::string::npos);
  // Any other field count is refused.
  Bytes five = EncodeBody(whole);
  const size_t option = FindHex(five, "94a66e7669646961");
  five[option / 2] = 0x95;
  five.insert(five.begin() + static_cast<long>(option / 2 + 15), 0xc0);
  EXPECT_NE(DecodeOrder(five).status().message().find("expected 4 or 7 fields"), std::string::npos);
}

TEST(CodecTest, FractionalOptionRules) {
  Order order = TinyOrder();
  order.services[0].resources.gpu.units = 1;
  order.services[0].resources.gpu.options = {GpuOption{}};
  GpuOption& option = order.services[0].resources.gpu.options[0];
  for (const std::string bad : {"", "1g", "1g.10", "1g.10GB", "01g.10gb", "1c.3g.40gb", "1g.10gb+", "1g.10gb+ME",
                                "12345g.10gb", "1g.10gb "}) {
    option.mig = bad;
    EXPECT_EQ(ValidateOrder(order).code(), Status::Code::kInvalidArgument) << "'" << bad << "'";
    EXPECT_FALSE(DecodeOrder(EncodeBody(order)).ok()) << bad;
  }
  for (const std::string good : {"1g.10gb", "1g.10gb+me", "7g.141gb", "1g.6gb", "3g.40gb"}) {
    option.mig = good;
    EXPECT_TRUE(ValidateOrder(order).ok()) << good;
  }
  option.shared_ok = true;
  EXPECT_NE(ValidateOrder(order).message().find("a MIG instance and a shared GPU"), std::string::npos);
  option.mig.reset();
  option.mig_min_ram_bytes = 10 * kGi;
  EXPECT_FALSE(ValidateOrder(order).ok());
  EXPECT_FALSE(DecodeOrder(EncodeBody(order)).ok());
  option.mig_min_ram_bytes = 0;
  EXPECT_TRUE(ValidateOrder(order).ok());
}

TEST(CodecTest, FractionalDevicesInOffersAndBids) {
  Offer offer = SampleOffer();
  offer.provider.clear();
  offer.auditors.clear();
  offer.reputation_ppm = 0;
  GpuDevices mig{"nvidia", "a100", 10 * kGi, GpuInterface::kSxm, CudaVersion{12, 4}, 7};
  mig.mig_profile = "1g.10gb";
  GpuDevices slices{"nvidia", "a10", 24 * kGi, GpuInterface::kPcie, std::nullopt, 4};
  slices.shared = true;
  offer.nodes[0].gpus.push_back(mig);
  offer.nodes[0].gpus.push_back(slices);
  offer.pricing[0].gpu["a100.mig-1g.10gb"] = 40'000;
  offer.pricing[0].gpu["a10.shared"] = 20'000;
  Bytes bytes = EncodeBody(offer);
  Result<Offer> decoded = DecodeOffer(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, offer);
  // The whole H100s keep their 6 fields.
  EXPECT_NE(FindHex(bytes, "96a66e7669646961a468313030"), std::string::npos);
  // A device cannot be both, and a profile must be well formed.
  Offer both = offer;
  both.nodes[0].gpus[1].shared = true;
  EXPECT_NE(ValidateOffer(both).message().find("cannot also be a time-slice replica"), std::string::npos);
  EXPECT_FALSE(DecodeOffer(EncodeBody(both)).ok());
  Offer bad = offer;
  bad.nodes[0].gpus[1].mig_profile = "one.tenth";
  EXPECT_FALSE(ValidateOffer(bad).ok());
  EXPECT_FALSE(DecodeOffer(EncodeBody(bad)).ok());
  // An instance is measured by its own size, stated exactly.
  Offer big = offer;
  big.nodes[0].gpus[1].ram_bytes = 80 * kGi;
  EXPECT_NE(ValidateOffer(big).message().find("a 1g.10gb instance has 10Gi, not 80Gi"), std::string::npos);
  EXPECT_FALSE(DecodeOffer(EncodeBody(big)).ok());
  // An 8-field entry with both unset is a second encoding of the 6.
  const size_t shared_tail = FindHex(bytes, "04a0c3");
  ASSERT_NE(shared_tail, std::string::npos);
  bytes[shared_tail / 2 + 2] = 0xc2;
  EXPECT_NE(DecodeOffer(bytes).status().message().find("non-canonical"), std::string::npos);

  Bid bid = SampleBid();
  bid.services[0].device = DeviceType{"nvidia", "a100", 10 * kGi, GpuInterface::kSxm, "1g.10gb", false};
  Result<Bid> decoded_bid = DecodeBid(EncodeBody(bid));
  ASSERT_TRUE(decoded_bid.ok()) << decoded_bid.status().ToString();
  EXPECT_EQ(*decoded_bid, bid);
  bid.services[0].device->shared = true;
  EXPECT_FALSE(ValidateBid(bid).ok());
  EXPECT_FALSE(DecodeBid(EncodeBody(bid)).ok());
  bid.services[0].device->mig_profile.clear();
  decoded_bid = DecodeBid(EncodeBody(bid));
  ASSERT_TRUE(decoded_bid.ok()) << decoded_bid.status().ToString();
  EXPECT_TRUE(decoded_bid->services[0].device->shared);
}

TEST(CodecTest, FractionalPriceKeys) {
  for (const std::string key : {"a100.mig-1g.10gb", "a100.mig-1g.10gb+me", "h200.mig-7g.141gb", "a10.shared",
                                "a10.24Gi.shared", "a10.24Gi.pcie.shared", "shared"}) {
    Offer offer = SampleOffer();
    offer.pricing[0].gpu = {{key, 1}};
    EXPECT_TRUE(ValidateOffer(offer).ok()) << key << ": " << ValidateOffer(offer).ToString();
  }
  for (const std::string key : {"*.shared", ".shared", "a10.shared.shared", "a10.24Gi.shared.pcie", "a100.mig-",
                                "a100.mig-1c.3g.40gb", "*.mig-1g.10gb", "mig-1g.10gb", ".mig-1g.10gb",
                                "a100.80Gi.mig-1g.10gb", "a100.mig-1g.10gb.shared"}) {
    Offer offer = SampleOffer();
    offer.pricing[0].gpu = {{key, 1}};
    EXPECT_EQ(ValidateOffer(offer).code(), Status::Code::kInvalidArgument) << "'" << key << "'";
  }
}

// ---- leases: bound to the accepted bid, three signatures --------------------------------------

Bytes Wire(const Envelope& envelope) { return EncodeEnvelope(envelope); }

// A provider's bid, a tenant's accept of it, and the provider's lease, each signed by the given key.
struct LeaseParts {
  Signed<Bid> bid;
  Signed<Accept> accept;
};
LeaseParts MakeParts(const Identity& tenant, const Identity& bidder, Bid bid = SampleBid()) {
  LeaseParts parts;
  bid.tenant = tenant.public_key();
  parts.bid = MakeSigned(bidder, bid, kNow, kTtl, 4);
  parts.accept = MakeSigned(tenant, Accept{bid.order_id, parts.bid.id, bidder.public_key()}, kNow, kTtl, 5);
  return parts;
}
Signed<Lease> SignLease(const Identity& provider, const LeaseParts& parts) {
  Result<Lease> lease = BuildLease(Wire(parts.accept.envelope), Wire(parts.bid.envelope), kNow);
  EXPECT_TRUE(lease.ok()) << lease.status().ToString();
  return MakeSigned(provider, *lease, kNow, kTtl, 6);
}
// A lease body as an attacker would write it: any accept and bid bytes, no BuildLease checks.
Signed<Lease> SignRawLease(const Identity& provider, const Bytes& accept, const Bytes& bid) {
  Lease lease;
  lease.accept_envelope = accept;
  lease.bid_envelope = bid;
  lease.start_ms = kNow;
  Signed<Lease> message;
  message.envelope = SignEnvelope(provider, MessageType::kLease, EncodeBody(lease), kNow, kTtl, 7);
  message.id = ComputeId(message.envelope);
  message.body = lease;
  return message;
}

TEST(CodecTest, LeaseChecksAllThreeSignatures) {
  const auto lease = SignLease(Provider(), MakeParts(Tenant(), Provider()));
  EXPECT_TRUE(CheckLeaseBinding(lease).ok());
  Result<Signed<Lease>> opened = OpenLease(Wire(lease.envelope));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->id, lease.id);
  EXPECT_EQ(opened->body, lease.body);
}

TEST(CodecTest, LeaseByAnotherProviderRejected) {
  const Identity mallory = Identity::FromSeed(Seed{9});
  const auto lease = SignLease(mallory, MakeParts(Tenant(), Provider()));
  EXPECT_EQ(OpenLease(Wire(lease.envelope)).status().code(), Status::Code::kBadSignature);
  EXPECT_EQ(CheckLeaseBinding(lease).code(), Status::Code::kBadSignature);
}

TEST(CodecTest, LeaseWithForgedAcceptRejected) {
  const auto parts = MakeParts(Tenant(), Provider());
  Bytes accept = Wire(parts.accept.envelope);
  accept[accept.size() - 3] ^= 1;  // breaks the tenant's signature
  Status status = OpenLease(Wire(SignRawLease(Provider(), accept, Wire(parts.bid.envelope)).envelope)).status();
  EXPECT_EQ(status.code(), Status::Code::kBadSignature) << status.ToString();
  EXPECT_NE(status.message().find("embedded accept"), std::string::npos);
}

TEST(CodecTest, LeaseWithForgedBidRejected) {
  const auto parts = MakeParts(Tenant(), Provider());
  Bytes bid = Wire(parts.bid.envelope);
  bid[bid.size() - 3] ^= 1;  // breaks the provider's signature on its bid (the id is unchanged)
  Status status = OpenLease(Wire(SignRawLease(Provider(), Wire(parts.accept.envelope), bid).envelope)).status();
  EXPECT_EQ(status.code(), Status::Code::kBadSignature) << status.ToString();
  EXPECT_NE(status.message().find("embedded bid"), std::string::npos);
}

TEST(CodecTest, LeaseEmbeddingABidSignedBySomeoneElseRejected) {
  // Mallory's bid, accepted by the tenant, countersigned by Provider: not Provider's bid.
  const Identity mallory = Identity::FromSeed(Seed{9});
  const auto parts = MakeParts(Tenant(), mallory);
  const auto lease = SignRawLease(Provider(), Wire(parts.accept.envelope), Wire(parts.bid.envelope));
  EXPECT_EQ(OpenLease(Wire(lease.envelope)).status().code(), Status::Code::kBadSignature);
}

TEST(CodecTest, LeaseWhoseAcceptNamesAnotherBidRejected) {
  // Failing-first (issue 11, item 4): the provider re-signs its bid at a higher price and embeds
  // that one with the tenant's accept of the original.
  const auto parts = MakeParts(Tenant(), Provider());
  Bid dearer = parts.bid.body;
  dearer.price_per_hour += 1;
  const auto dearer_bid = MakeSigned(Provider(), dearer, kNow, kTtl, 8);
  const auto lease = SignRawLease(Provider(), Wire(parts.accept.envelope), Wire(dearer_bid.envelope));
  Status status = OpenLease(Wire(lease.envelope)).status();
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("not the embedded bid"), std::string::npos) << status.ToString();
}

TEST(CodecTest, LeaseWhoseAcceptNamesAnotherOrderRejected) {
  const auto parts = MakeParts(Tenant(), Provider());
  const auto accept = MakeSigned(Tenant(), Accept{MessageId{}, parts.bid.id, Provider().public_key()}, kNow, kTtl, 9);
  const auto lease = SignRawLease(Provider(), Wire(accept.envelope), Wire(parts.bid.envelope));
  EXPECT_NE(OpenLease(Wire(lease.envelope)).status().message().find("different orders"), std::string::npos);
}

TEST(CodecTest, LeaseWhoseAcceptNamesAnotherProviderRejected) {
  const auto parts = MakeParts(Tenant(), Provider());
  const Accept other{parts.bid.body.order_id, parts.bid.id, Identity::FromSeed(Seed{9}).public_key()};
  const auto accept = MakeSigned(Tenant(), other, kNow, kTtl, 9);
  const auto lease = SignRawLease(Provider(), Wire(accept.envelope), Wire(parts.bid.envelope));
  EXPECT_EQ(OpenLease(Wire(lease.envelope)).status().code(), Status::Code::kBadSignature);
}

TEST(CodecTest, LeaseAcceptedBySomeoneOtherThanTheBidsTenantRejected) {
  // Mallory accepts a bid made for the tenant's order: the order would show as leased to her.
  const Identity mallory = Identity::FromSeed(Seed{9});
  const auto parts = MakeParts(Tenant(), Provider());
  const auto accept = MakeSigned(mallory, parts.accept.body, kNow, kTtl, 9);
  const auto lease = SignRawLease(Provider(), Wire(accept.envelope), Wire(parts.bid.envelope));
  Status status = OpenLease(Wire(lease.envelope)).status();
  EXPECT_EQ(status.code(), Status::Code::kBadSignature) << status.ToString();
  EXPECT_NE(status.message().find("not signed by the tenant"), std::string::npos) << status.ToString();
}

TEST(CodecTest, LeaseEmbeddingWrongMessageTypesRejected) {
  const auto parts = MakeParts(Tenant(), Provider());
  const auto swapped = SignRawLease(Provider(), Wire(parts.bid.envelope), Wire(parts.accept.envelope));
  EXPECT_FALSE(OpenLease(Wire(swapped.envelope)).ok());
  const auto empty = SignRawLease(Provider(), Wire(parts.accept.envelope), Bytes{});
  EXPECT_FALSE(OpenLease(Wire(empty.envelope)).ok());
}

TEST(CodecTest, LeaseWithTermsChangedByHandRefused) {
  // Failing-first (issue 11, item 4): a lease with a higher price than the accepted bid. On the
  // wire the terms are the bid's and cannot differ; a Signed<Lease> built in memory with other
  // terms is refused by CheckLeaseBinding (the ledger runs it before storing).
  const auto parts = MakeParts(Tenant(), Provider());
  const auto good = SignLease(Provider(), parts);
  auto tampered = [&](auto change) {
    Lease body = good.body;
    change(body);
    return MakeSigned(Provider(), body, kNow, kTtl, 10);
  };
  EXPECT_FALSE(CheckLeaseBinding(tampered([](Lease& l) { l.price_per_hour += 1; })).ok());
  EXPECT_FALSE(CheckLeaseBinding(tampered([](Lease& l) { l.denom = "usdc"; })).ok());
  EXPECT_FALSE(CheckLeaseBinding(tampered([](Lease& l) { l.services[0].placements[0].replicas = 2; })).ok());
  EXPECT_FALSE(CheckLeaseBinding(tampered([](Lease& l) { l.order_id[0] ^= 1; })).ok());
  EXPECT_FALSE(CheckLeaseBinding(tampered([](Lease& l) { l.tenant = Identity::FromSeed(Seed{3}).public_key(); })).ok());
  // What travels is the bid's price, whatever the provider put in its struct.
  const auto dearer = tampered([](Lease& l) { l.price_per_hour += 1; });
  Result<Signed<Lease>> opened = OpenLease(Wire(dearer.envelope));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->body.price_per_hour, parts.bid.body.price_per_hour);
}

TEST(CodecTest, OversizeEmbeddedBidRefused) {
  // A bid that could never fit in a lease is refused on arrival, and inside a lease.
  Bid big = SampleBid();
  ServiceAssignment filler = big.services[1];
  filler.placements.assign(limits::kMaxPlacements, Placement{std::string(limits::kMaxNameBytes, 'n'), 1});
  big.services.push_back(filler);
  big.services.back().service = "filler";
  const auto bid = MakeSigned(Provider(), big, kNow, kTtl, 11);
  const Bytes wire = Wire(bid.envelope);
  ASSERT_GT(wire.size(), limits::kMaxBidEnvelopeBytes);
  EXPECT_EQ(OpenSigned<Bid>(wire, kNow).status().code(), Status::Code::kLimitExceeded);
  const auto accept = MakeSigned(Tenant(), Accept{big.order_id, bid.id, Provider().public_key()}, kNow, kTtl, 12);
  EXPECT_EQ(BuildLease(Wire(accept.envelope), wire, kNow).status().code(), Status::Code::kLimitExceeded);
}

// Issue 11, item 6: an offer's provider is its signer; the name is a label.
TEST(CodecTest, OffersOfTwoSignersWithOneNameKeepTwoEntries) {
  const Identity honest = Identity::FromSeed(Seed{4});
  const Identity impostor = Identity::FromSeed(Seed{5});
  Offer offer = SampleOffer();
  OfferBook book;
  for (const Identity* signer : {&honest, &impostor}) {
    const auto signed_offer = MakeSigned(*signer, offer, kNow, kTtl, 30);
    Result<Signed<Offer>> opened = OpenSigned<Offer>(Wire(signed_offer.envelope), kNow);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    const Offer indexed = OfferOfSigner(*opened, 500'000, {"aa"});
    EXPECT_EQ(indexed.provider, ToHex(signer->public_key()));
    EXPECT_EQ(indexed.name, "Provider A");
    EXPECT_EQ(indexed.reputation_ppm, 500'000u);
    EXPECT_EQ(indexed.auditors, std::vector<std::string>{"aa"});
    ASSERT_TRUE(book.Upsert(indexed).ok());
  }
  EXPECT_EQ(book.size(), 2u);
  // A newer offer from the same signer replaces its own entry only.
  offer.nodes[0].cpu_millis = 1000;
  const auto update = MakeSigned(honest, offer, kNow + 1, kTtl, 31);
  ASSERT_TRUE(book.Upsert(OfferOfSigner(update, 500'000, {})).ok());
  EXPECT_EQ(book.size(), 2u);
}

// ---- the test vector in docs/PROTOCOL.md ------------------------------------------------------

TEST(CodecTest, ProtocolDocTestVector) {
  Seed seed{};
  for (uint8_t i = 0; i < 32; ++i) seed[i] = i;
  Accept accept;
  accept.order_id.fill(0x11);
  accept.bid_id.fill(0x22);
  accept.provider.fill(0x33);
  const auto message = MakeSigned(Identity::FromSeed(seed), accept, 1'750'000'000'000, 60'000, 42);
  const Bytes body = EncodeBody(accept);
  const Bytes input = SigningInput(message.envelope);
  const Bytes wire = EncodeEnvelope(message.envelope);
  EXPECT_EQ(ToHex(message.envelope.signer), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
  EXPECT_EQ(ToHex(body.data(), body.size()),
            "93c4201111111111111111111111111111111111111111111111111111111111111111c4202222222222222222222222222222222222222222222222222222222222222222c4203333333333333333333333333333333333333333333333333333333333333333");
  EXPECT_EQ(ToHex(input.data(), input.size()),
            "6770756d6172742f6d73672f763100970104c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8cf000001977420dc00cf000001977421c6602ac46793c4201111111111111111111111111111111111111111111111111111111111111111c4202222222222222222222222222222222222222222222222222222222222222222c4203333333333333333333333333333333333333333333333333333333333333333");
  EXPECT_EQ(ToHex(wire.data(), wire.size()),
            "980104c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8cf000001977420dc00cf000001977421c6602ac46793c4201111111111111111111111111111111111111111111111111111111111111111c4202222222222222222222222222222222222222222222222222222222222222222c4203333333333333333333333333333333333333333333333333333333333333333c440a92fd7016308479191958aaee4e1d19430e3effd7bb637a961b0a1bec4e4bda99f894bb279fc4e62633ee0b9ee758277b4343568456113e403cf71b9fa1e5e0d");
  EXPECT_EQ(ToHex(message.id), "05efb454673f911c2f069c60323adad9c2708f835d486b686504194b06bc3c6a");
}

// The lease vector in docs/PROTOCOL.md: a provider's Bid, the tenant's Accept of it, and the
// provider's Lease embedding both, so a client in another language can check the binding rules.
TEST(CodecTest, ProtocolDocLeaseVector) {
  Seed tenant_seed{};
  Seed provider_seed{};
  for (uint8_t i = 0; i < 32; ++i) {
    tenant_seed[i] = i;
    provider_seed[i] = static_cast<uint8_t>(0x20 + i);
  }
  const Identity tenant = Identity::FromSeed(tenant_seed);
  const Identity provider = Identity::FromSeed(provider_seed);
  constexpr int64_t kCreated = 1'750'000'000'000;
  Bid bid;
  bid.order_id.fill(0x11);
  bid.tenant = tenant.public_key();
  bid.group = "g";
  bid.denom = "uakt";
  bid.price_per_hour = 1000;
  bid.services = {ServiceAssignment{"web", std::nullopt, std::nullopt, {Placement{"n1", 1}}}};
  bid.reservation_expires_ms = kCreated + 30'000;
  const auto signed_bid = MakeSigned(provider, bid, kCreated, 30'000, 1);
  const Accept accept{bid.order_id, signed_bid.id, provider.public_key()};
  const auto signed_accept = MakeSigned(tenant, accept, kCreated + 1, 60'000, 2);
  Result<Lease> lease = BuildLease(EncodeEnvelope(signed_accept.envelope), EncodeEnvelope(signed_bid.envelope),
                                   kCreated + 2);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  const auto signed_lease = MakeSigned(provider, *lease, kCreated + 2, 60'000, 3);
  const Bytes lease_wire = EncodeEnvelope(signed_lease.envelope);
  const Bytes bid_body = EncodeBody(bid);
  const Bytes lease_body = EncodeBody(*lease);
  EXPECT_EQ(ToHex(provider.public_key()), "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7");
  EXPECT_EQ(ToHex(bid_body.data(), bid_body.size()), 
            "97c4201111111111111111111111111111111111111111111111111111111111111111c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a167a475616b74cd03e89194a3776562c0c09192a26e3101cf0000019774215130");
  EXPECT_EQ(ToHex(signed_bid.id), "6a8629a866f08b683be1759897a438eb3f5c613828fcd73abd6d273568f3dbc5");
  EXPECT_EQ(ToHex(lease_body.data(), lease_body.size()),
            "93c4e3980104c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8cf000001977420dc01cf000001977421c66102c46793c4201111111111111111111111111111111111111111111111111111111111111111c4206a8629a866f08b683be1759897a438eb3f5c613828fcd73abd6d273568f3dbc5c42029acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7c440f7fef843790b7fd8b9068439e53282df1693792fe77f49db47dccebea79230c99deeaacc7a6c920c7d423f256344ba5106dbceb50f426caf62da0e3e06496501c4e2980103c42029acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7cf000001977420dc00cf000001977421513001c46697c4201111111111111111111111111111111111111111111111111111111111111111c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a167a475616b74cd03e89194a3776562c0c09192a26e3101cf0000019774215130c44059b5041719e0d61eedf74be0bed1d4f4e11f5eba4bde32ae5a798edb0d904b0e344d7769a48507729844789b7ab94ebd2aaed4f2a50424daddf8d15d955ba40dcf000001977420dc02");
  EXPECT_EQ(ToHex(signed_lease.id), "1c881f759b4f5d708b1be916b4ff73b2483433052c58e691f6472555388636c0");
  Result<Signed<Lease>> opened = OpenLease(lease_wire);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->body.price_per_hour, 1000u);
  EXPECT_EQ(opened->body.tenant, tenant.public_key());
}

}  // namespace
}  // namespace gpumart::market
