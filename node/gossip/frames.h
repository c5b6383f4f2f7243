// The peer frames of the gossip protocol: what two gossip nodes say to each other over a link.
// docs/GOSSIP.md documents every byte of this; keep the two in step.
//
// A frame is one msgpack array whose first element is the frame type; the rest depends on the
// type. Market messages travel inside MESSAGE frames as their exact envelope bytes (market/codec.h),
// so their ids and signatures are over bytes no relay re-encodes. Frames are decoded with
// market::MsgpackReader and the named limits below; a decoder never throws, never allocates from a
// length it has not bounded, and rejects trailing bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "market/codec.h"
#include "market/crypto.h"
#include "market/status.h"
#include "market/types.h"
#include "node/gossip/reconcile.h"

namespace gpumart::gossip {

using market::Bytes;
using market::MessageId;
using market::PublicKey;
using market::Signature;

// The version of the peer protocol (frames and handshake), separate from the market message
// version (market::kProtocolVersion) so each can change without the other.
constexpr uint8_t kGossipVersion = 1;

// Limits on everything a peer can send in a frame. Market message limits stay in market::limits.
namespace limits {
// A MESSAGE frame carries one envelope plus a few bytes of framing; nothing else is bigger.
constexpr size_t kMaxFrameBytes = market::limits::kMaxMessageBytes + 64;
constexpr size_t kMaxAddressBytes = 256;     // an advertised address, e.g. "tcp://203.0.113.7:7700"
constexpr size_t kMaxIhaveIds = 512;         // ids announced in one IHAVE
constexpr size_t kMaxGraftIds = 64;          // ids requested in one GRAFT
constexpr size_t kMaxPeersPerFrame = 32;     // addresses in one PEERS
constexpr uint32_t kMaxHops = 32;            // hops a MESSAGE may travel (larger is malformed)
constexpr int64_t kMaxHelloSkewMs = 60'000;  // |hello.created_ms - now| a HELLO may be off by
// State a core keeps for its peers, each bounded so no peer can make it grow without limit.
constexpr size_t kMaxSeenIds = 1 << 20;         // message ids remembered for dedup (and their nonces)
// Heap bytes per message in the seen-cache and the nonce index together, however full their
// tables are (expiring_map.h; tests/gossip/expiring_map_test.cpp). A node-based map cost ~280.
constexpr size_t kMaxSeenBytesPerMessage = 176;
constexpr size_t kMaxRoutes = 1 << 18;          // order/bid id -> the peer it came from
constexpr size_t kMaxAnswerDigests = 1 << 18;   // bid/accept id -> the digest of its bytes (Lease checks)
constexpr size_t kMaxStoredBytes = 64 << 20;    // envelopes kept to answer GRAFT
constexpr size_t kMaxMissingIds = 1 << 16;      // announced (IHAVE) ids not yet received
constexpr size_t kMaxAnnouncersPerId = 4;       // peers remembered per missing id to GRAFT from
constexpr size_t kMaxKnownAddresses = 4096;     // addresses learned from config, HELLO and PEERS
constexpr size_t kMaxScoredKeys = 1 << 16;      // peers (by identity or address) with a score
constexpr size_t kMaxBans = 1 << 16;            // identities and addresses banned at once
// Anti-entropy: what a node keeps to reconcile (Orders, Offers and Attestations until they
// expire, Leases and Closes for GossipConfig::reconcile_retention_ms), the ids it has found
// missing and not yet received, and how often a peer may open a session with it.
constexpr size_t kMaxRetainedItems = 1 << 18;
constexpr size_t kMaxRetainedBytes = size_t{256} << 20;
constexpr size_t kMaxPullIds = 1 << 18;
constexpr int64_t kMinReconcileGapMs = 1'000;
}  // namespace limits

enum class FrameType : uint8_t {
  kHello = 1,
  kMessage = 2,
  kIhave = 3,
  kGraft = 4,
  kPrune = 5,
  kPing = 6,
  kPong = 7,
  kPeers = 8,
  kGetPeers = 9,
  // Anti-entropy: range-based set reconciliation (reconcile.h) and the items it finds missing.
  kReconcile = 16,
  kReconcileItems = 17,
};
std::string_view ToString(FrameType type);

// What a node is for; carried in HELLO and PEERS (values match node::NodeRole's order).
enum class Role : uint8_t { kRelay = 0, kProvider = 1, kTenant = 2 };
constexpr uint8_t kMaxRole = 2;

// HELLO: the first frame on a link, in both directions. Signed by `identity` over
// kHelloDomain + msgpack [version, identity, address, role, created_ms].
struct Hello {
  uint8_t version = kGossipVersion;
  PublicKey identity{};
  std::string address;  // where this node accepts links; empty when it accepts none
  Role role = Role::kRelay;
  int64_t created_ms = 0;
  Signature signature{};
  bool operator==(const Hello&) const = default;
};
inline constexpr std::string_view kHelloDomain{"gpumart/hello/v1\0", 17};
Bytes HelloSigningInput(const Hello& hello);
Hello SignHello(const market::Identity& identity, std::string address, Role role, int64_t created_ms);
// The signature, the version and the time window at now_ms.
Status VerifyHello(const Hello& hello, int64_t now_ms);

// MESSAGE: one market envelope and how many links it has crossed.
struct MessageFrame {
  uint32_t hops = 0;
  Bytes envelope;  // exact envelope bytes as signed
  bool operator==(const MessageFrame&) const = default;
};
struct IhaveFrame {
  std::vector<MessageId> ids;
  bool operator==(const IhaveFrame&) const = default;
};
struct GraftFrame {
  std::vector<MessageId> ids;  // may be empty: "make this link eager" without asking for a message
  bool operator==(const GraftFrame&) const = default;
};
struct PruneFrame {
  bool operator==(const PruneFrame&) const = default;
};
struct PingFrame {
  uint64_t nonce = 0;
  bool operator==(const PingFrame&) const = default;
};
struct PongFrame {
  uint64_t nonce = 0;
  bool operator==(const PongFrame&) const = default;
};
struct PeerAddress {
  PublicKey identity{};
  std::string address;
  Role role = Role::kRelay;
  bool operator==(const PeerAddress&) const = default;
};
struct PeersFrame {
  std::vector<PeerAddress> peers;
  bool operator==(const PeersFrame&) const = default;
};
struct GetPeersFrame {
  bool operator==(const GetPeersFrame&) const = default;
};

// RECONCILE: one message of a reconciliation session (reconcile.h). The initiator sends the even
// rounds (0 opens a session), the responder answers each with the next odd round; an answer with
// no ranges ends the session, and so does an initiator that has nothing left to send.
struct ReconcileFrame {
  uint32_t round = 0;  // at most limits::kMaxReconcileRounds - 1
  std::vector<reconcile::Range> ranges;
  bool operator==(const ReconcileFrame&) const = default;
};
// RECONCILE_ITEMS: ids a node asks a peer for (`want`, found missing by a session), or the
// envelopes that answer such a request (`items`, exact envelope bytes); `done` marks the last
// frame of an answer.
struct ReconcileItemsFrame {
  std::vector<MessageId> want;
  std::vector<Bytes> items;
  bool done = false;
  bool operator==(const ReconcileItemsFrame&) const = default;
};

using Frame = std::variant<Hello, MessageFrame, IhaveFrame, GraftFrame, PruneFrame, PingFrame, PongFrame,
                           PeersFrame, GetPeersFrame, ReconcileFrame, ReconcileItemsFrame>;

Bytes EncodeFrame(const Frame& frame);
// Structure and limits only (a HELLO's signature is checked by VerifyHello). An unknown
// frame type is Status::InvalidArgument, and nothing else is: malformed bytes are kCorruption,
// anything over a limit kLimitExceeded.
Result<Frame> DecodeFrame(std::span<const uint8_t> bytes);

// The two frames a gossiping node gets most, read without allocating: a MESSAGE's envelope as a
// span into `bytes` (about two per message delivered, half of them duplicates dropped unread),
// an IHAVE's ids into `ihave`, whose capacity is reused (about six per message delivered). Valid
// bytes give what DecodeFrame gives; anything else is an error (another frame type included),
// for which DecodeFrame says what is wrong.
struct MessageFrameView {
  uint32_t hops = 0;
  std::span<const uint8_t> envelope;
};
Result<MessageFrameView> DecodeMessageFrameView(std::span<const uint8_t> bytes);
Status DecodeIhaveFrame(std::span<const uint8_t> bytes, IhaveFrame& ihave);

// The MESSAGE frame around `envelope` without copying it through a MessageFrame first (relaying
// is the hot path).
Bytes EncodeMessageFrame(uint32_t hops, std::span<const uint8_t> envelope);

// The id of a message read off its envelope bytes, without decoding or copying them (the dedup
// check runs on every copy a node receives): BLAKE2b-256 of market::kSigningDomain, the header of a
// 7-element array and the bytes' first seven fields as they stand. It equals
// market::ComputeId(*market::DecodeEnvelope(envelope)) when the bytes are canonical (as
// market::EncodeEnvelope writes them, and market::DecodeEnvelope accepts no other form); nullopt
// when they cannot be an envelope (not an 8-element array ending in a 64-byte signature). Bytes
// that do not decode get an id no message has, so a miss here must still go the full way.
std::optional<MessageId> WireMessageId(std::span<const uint8_t> envelope);

}  // namespace gpumart::gossip
