// The wire codec: canonical msgpack bodies for every message type, the signed envelope, message
// ids and verification (the replay guard is market/replay_guard.h). docs/PROTOCOL.md documents every byte of this; keep
// the two in step.
//
// Untrusted bytes are decoded by a schema-driven reader (market/msgpack_reader.h, which says why
// not msgpack::unpack) with the named per-field limits below: every list, map and string length
// is checked against its limit and the bytes left before anything is allocated, and nesting
// cannot go deeper than the schema. Decoders never throw, never abort and never allocate from a
// length they have not bounded; they return a Status with the reason.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "market/crypto.h"
#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

constexpr uint8_t kProtocolVersion = 1;

enum class MessageType : uint8_t {
  kOrder = 1,
  kOffer = 2,
  kBid = 3,
  kAccept = 4,
  kLease = 5,
  kClose = 6,
  kAttestation = 7,
};
std::string_view ToString(MessageType type);

// Limits on everything a peer can send. Each is the most an honest sender ever needs, with room.
namespace limits {
constexpr size_t kMaxMessageBytes = 1 << 20;           // a whole envelope (also ZMQ_MAXMSGSIZE)
constexpr size_t kMaxBodyBytes = kMaxMessageBytes - 256;
constexpr size_t kMaxNameBytes = 128;                  // group, service, profile, node, denom...
constexpr size_t kMaxTextBytes = 1024;                 // free text such as a close note
constexpr size_t kMaxServices = 64;                    // services in one group
constexpr size_t kMaxGpuOptions = 32;                  // fallbacks for one service
constexpr size_t kMaxVolumes = 16;                     // storage volumes per service
constexpr size_t kMaxAttributes = 64;                  // placement / provider attributes
constexpr size_t kMaxAuditors = 32;                    // signedBy entries, provider auditors
constexpr size_t kMaxNodes = 4096;                     // nodes of one provider
constexpr size_t kMaxGpuTypesPerNode = 32;
constexpr size_t kMaxPriceTables = 16;                 // denoms one provider prices in
constexpr size_t kMaxPriceCaps = 16;                   // denoms one service of an Order caps in
constexpr size_t kMaxPriceKeys = 256;                  // gpu rate keys in one price table
constexpr size_t kMaxPlacements = 4096;                // node placements of one service in a bid
constexpr uint32_t kMaxReplicas = 100'000;             // count of one service
constexpr uint32_t kMaxGpuUnits = 1'024;               // GPUs per replica
constexpr uint32_t kMaxGpusPerType = 100'000;          // devices of one type on one node
constexpr int64_t kMaxClockSkewMs = 30'000;            // how far in the future `created` may be
constexpr int64_t kMaxTtlMs = 7LL * 24 * 3600 * 1000;  // expires - created, at most a week
// The replay guard (market/replay_guard.h): live messages remembered in all, and of one signer
// (a busy provider's bids: about 180 a second at a 30 s lifetime), and how far ahead an expiry
// may lie: the longest a message that passes CheckFreshness can stay live, so no valid message
// is refused for its lifetime and none is forgotten while it could still be accepted.
constexpr size_t kMaxReplayEntries = 1 << 20;
constexpr size_t kMaxReplayEntriesPerSigner = 1 << 14;
constexpr int64_t kReplayHorizonMs = kMaxTtlMs + kMaxClockSkewMs;
// A whole Accept envelope: ids and a key plus the envelope's own fields (about 250 bytes).
constexpr size_t kMaxAcceptEnvelopeBytes = 1024;
// A whole Bid envelope. A Lease embeds one, so a bid over this could never become a lease: it is
// refused wherever it arrives. Half a message leaves the Lease room for the rest.
constexpr size_t kMaxBidEnvelopeBytes = kMaxMessageBytes / 2;
// The longest preemption notice a spot bid may state (docs/SPOT.md): a day.
constexpr uint64_t kMaxPreemptionNoticeMs = 24ull * 3600 * 1000;
// A whole Lease envelope embedded in a preemption Close: a Lease's embedded Bid and Accept at
// their limits plus the Lease's own fields and envelope, so every valid Lease fits.
constexpr size_t kMaxPreemptorLeaseBytes = kMaxBidEnvelopeBytes + kMaxAcceptEnvelopeBytes + 1024;
static_assert(kMaxPreemptorLeaseBytes + kMaxTextBytes + 1024 <= kMaxBodyBytes);
}  // namespace limits

// The signed envelope every message travels in. On the wire (msgpack array of 8):
//   [version:uint, type:uint, signer:bin32, created_ms:int, expires_ms:int, nonce:uint,
//    body:bin, signature:bin64]
struct Envelope {
  uint8_t version = kProtocolVersion;
  MessageType type = MessageType::kOrder;
  PublicKey signer{};
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  uint64_t nonce = 0;
  Bytes body;
  Signature signature{};
  bool operator==(const Envelope&) const = default;
};

// Canonical body encodings (msgpack arrays in a fixed field order; maps with keys sorted
// bytewise; integers in their shortest form; absent optionals as nil).
Bytes EncodeBody(const Order& order);
Bytes EncodeBody(const Offer& offer);
Bytes EncodeBody(const Bid& bid);
Bytes EncodeBody(const Accept& accept);
Bytes EncodeBody(const Lease& lease);
Bytes EncodeBody(const Close& close);
Bytes EncodeBody(const Attestation& attestation);

// Body decoders: decode strictly (only the canonical encoding is accepted, so bytes that decode
// re-encode to themselves; see msgpack_reader.h) with limits, then validate (ValidateXxx below).
Result<Order> DecodeOrder(std::span<const uint8_t> bytes);
Result<Offer> DecodeOffer(std::span<const uint8_t> bytes);
Result<Bid> DecodeBid(std::span<const uint8_t> bytes);
Result<Accept> DecodeAccept(std::span<const uint8_t> bytes);
Result<Lease> DecodeLease(std::span<const uint8_t> bytes);
Result<Close> DecodeClose(std::span<const uint8_t> bytes);
Result<Attestation> DecodeAttestation(std::span<const uint8_t> bytes);

// Semantic checks of a decoded (or locally built) value: names non-empty and bounded, counts
// >= 1 and within limits, GPU units with options, one denom per group, per_hour derived from
// amount, totals that fit in 64 bits, price keys in the spelling matching looks up... Every rule
// is listed in docs/PROTOCOL.md.
Status ValidateOrder(const Order& order);
Status ValidateOffer(const Offer& offer);
Status ValidateBid(const Bid& bid);
// A Close carries preemptor_lease iff its reason is kPreempted.
Status ValidateClose(const Close& close);

Bytes EncodeEnvelope(const Envelope& envelope);
// Structure only, strictly canonical: limits, field types, key and signature lengths, version.
// No signature check.
Result<Envelope> DecodeEnvelope(std::span<const uint8_t> bytes);

// What is signed: kSigningDomain followed by the canonical msgpack array of the envelope's first
// seven fields (everything but the signature).
inline constexpr std::string_view kSigningDomain{"gpumart/msg/v1\0", 15};
Bytes SigningInput(const Envelope& envelope);
// BLAKE2b-256 of SigningInput: the message id (the same message always has the same id).
MessageId ComputeId(const Envelope& envelope);

// Builds and signs an envelope around `body`, valid from created_ms for ttl_ms.
Envelope SignEnvelope(const Identity& identity, MessageType type, Bytes body, int64_t created_ms,
                      int64_t ttl_ms, uint64_t nonce);

// The signature alone (for records re-checked long after they expired, e.g. by the ledger).
Status VerifySignature(const Envelope& envelope);
// Time checks alone: not expired at now_ms, not created more than kMaxClockSkewMs ahead of
// now_ms, expiry after creation and within kMaxTtlMs.
Status CheckFreshness(const Envelope& envelope, int64_t now_ms);
// Both: what a node does to a live message.
Status VerifyEnvelope(const Envelope& envelope, int64_t now_ms);

// A decoded, verified message of a known body type.
template <typename Body>
struct Signed {
  Envelope envelope;
  MessageId id{};
  Body body;
};

// The largest whole envelope of each type a node accepts (kMaxMessageBytes unless a tighter limit
// applies: Bids and Accepts are embedded in Leases).
constexpr size_t MaxEnvelopeBytes(MessageType type) {
  switch (type) {
    case MessageType::kBid: return limits::kMaxBidEnvelopeBytes;
    case MessageType::kAccept: return limits::kMaxAcceptEnvelopeBytes;
    default: return limits::kMaxMessageBytes;
  }
}

template <typename Body> struct BodyTraits;
template <> struct BodyTraits<Order> { static constexpr MessageType kType = MessageType::kOrder; };
template <> struct BodyTraits<Offer> { static constexpr MessageType kType = MessageType::kOffer; };
template <> struct BodyTraits<Bid> { static constexpr MessageType kType = MessageType::kBid; };
template <> struct BodyTraits<Accept> { static constexpr MessageType kType = MessageType::kAccept; };
template <> struct BodyTraits<Lease> { static constexpr MessageType kType = MessageType::kLease; };
template <> struct BodyTraits<Close> { static constexpr MessageType kType = MessageType::kClose; };
template <> struct BodyTraits<Attestation> { static constexpr MessageType kType = MessageType::kAttestation; };

// Signs `body` as a message of its type.
template <typename Body>
Signed<Body> MakeSigned(const Identity& identity, const Body& body, int64_t created_ms,
                        int64_t ttl_ms, uint64_t nonce) {
  Signed<Body> message;
  message.envelope = SignEnvelope(identity, BodyTraits<Body>::kType, EncodeBody(body), created_ms,
                                  ttl_ms, nonce);
  message.id = ComputeId(message.envelope);
  message.body = body;
  return message;
}

enum class Freshness { kCheck, kIgnore };

// Decodes envelope + body of the expected type and verifies the signature (and, with
// Freshness::kCheck, the time window at now_ms).
template <typename Body>
Result<Signed<Body>> OpenSigned(std::span<const uint8_t> bytes, int64_t now_ms,
                                Freshness freshness = Freshness::kCheck);

// Decodes envelope + body of the expected type WITHOUT checking the signature or time: only for
// bytes this process already verified (a gossip delivery: the gossip core verified it before
// delivering; a Lease's embedded messages, bound by the Lease's own checks). Never for bytes from
// anywhere else. Checks the type's size limit (MaxEnvelopeBytes).
template <typename Body>
Result<Signed<Body>> DecodeVerified(std::span<const uint8_t> bytes);

// The one way to make a Lease: from the tenant's signed Accept and the provider's signed Bid (their
// envelope bytes), deriving the terms from them. Structure only, no signature check: both decode
// (within kMaxAcceptEnvelopeBytes / kMaxBidEnvelopeBytes, of the right types, valid bodies), the
// Accept's bid_id is the Bid's id, its order_id is the Bid's order_id, its provider is the Bid's
// signer, and its signer is the Bid's tenant. DecodeLease builds its result with this too.
Result<Lease> BuildLease(std::span<const uint8_t> accept_envelope, std::span<const uint8_t> bid_envelope,
                         int64_t start_ms);

// The binding rules that need no signature check, for a Signed<Lease> built or decoded anywhere:
// BuildLease's rules, the derived terms in `lease.body` are exactly what the embedded messages
// say (nothing changed by hand), and the Lease is signed by the Bid's signer. The ledger runs this
// before it stores a lease.
Status CheckLeaseBinding(const Signed<Lease>& lease);

// Checks a Lease completely (docs/PROTOCOL.md, "Lease binding"): decoding applies BuildLease's
// rules, then the provider's signature, the embedded Accept's (tenant) and Bid's (provider)
// signatures, and that the Lease is signed by the Bid's signer. Time is not checked: a lease
// stays valid after its messages expire.
Result<Signed<Lease>> OpenLease(std::span<const uint8_t> bytes);

// The Offer an OfferBook indexes for a verified signed offer: provider id = the signer's public
// key in hex (the body's name is a label only, so nobody can replace another provider's entry by
// using its name), and what this node computed for that key (the wire carries neither): its
// reputation and the auditors whose latest attestation about it is a pass
// (ledger::LedgerStore::PassingAuditors).
Offer OfferOfSigner(const Signed<Offer>& offer, uint32_t reputation_ppm,
                    std::vector<std::string> attested_auditors);

}  // namespace gpumart::market
