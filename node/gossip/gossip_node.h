// The gossip actor: drives a GossipCore over real ZeroMQ sockets (docs/GOSSIP.md, "Transport").
//
// One ROUTER (CURVE server) takes inbound links; one DEALER (CURVE client) per outbound peer. Every
// link is CURVE with the X25519 form of the node's Ed25519 identity; a ZapHandler in the actor's
// own context admits client keys (banned keys are refused) and tags each inbound message with the
// client's CURVE key, and the HELLO's identity must convert to the link's CURVE key, so no peer can
// speak for another identity. An operator's deny list refuses identities the same way (ZAP, dialling,
// open links). Sends never block: a full queue is a counted drop. Each ActorSystem
// (ZeroMQ context) can host one GossipNode, because the ZAP endpoint is per context.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/actor.h"
#include "market/crypto.h"
#include "market/status.h"
#include "node/gossip/curve_keys.h"
#include "node/gossip/gossip_core.h"
#include "node/gossip/peer_scorer.h"

namespace gpumart::gossip {

// Messages queued towards one peer (each direction) before sends to it are dropped.
constexpr int kPeerHwm = 1000;
// A CURVE handshake that has not completed in this long closes the connection (libzmq's default
// is 30 s, long enough to tie up sockets with half-open handshakes).
constexpr int kHandshakeIvlMs = 3'000;
// The actor ticks its core when GossipCore::NextDeadline says, no sooner than this after the
// input that asked (so a due timer costs one wake-up per millisecond at most) ...
constexpr int64_t kMinTickDelayMs = 1;
// ... and no later than this, whatever it says (a bound on the effect of a clock step).
constexpr int64_t kMaxTickDelayMs = 1'000;
// Frames taken from one socket per wake-up, so one busy peer cannot starve the others.
constexpr int kMaxFramesPerWake = 256;
// Inbound links the node closed and whose further messages it drops (ZeroMQ cannot close one
// connection of a ROUTER); the oldest are forgotten first.
constexpr size_t kMaxClosedLinks = 4096;
// Identities on the operator's deny list at most (GossipNodeConfig::deny, SetDenyList).
constexpr size_t kMaxDeniedIdentities = 4096;

struct GossipNodeConfig {
  // Where to accept links, e.g. "tcp://0.0.0.0:7700" ("tcp://127.0.0.1:*" picks a port); empty:
  // accept none (a tenant client).
  std::string listen_endpoint;
  // The endpoint others dial, put in our HELLO; empty: the endpoint actually bound.
  std::string advertised_endpoint;
  std::vector<std::string> bootstrap;  // peer addresses (curve_keys.h: endpoint + "/" + identity hex)
  GossipConfig core;                   // its advertised_address is set from the above
  ScoreConfig score;
  int peer_hwm = kPeerHwm;
  int handshake_ivl_ms = kHandshakeIvlMs;
  // A new verified message; runs on the gossip thread and must not block (SendOrDrop to an actor).
  std::function<void(const Deliver&)> on_deliver;
  // A message this node published (PublishMessage accepted it), which the core does not deliver
  // back: runs on the gossip thread and must not block. The node hands a client's publishes to
  // its own parts here, and a provider's own bids to the client port.
  std::function<void(const Deliver&)> on_publish;
  // Extra admission policy for client keys; banned keys are refused before it is asked.
  std::function<bool(const CurveKey&)> admit;
  // Score and ban peers by IP address (the host of a dialled endpoint) as well as by key. Off
  // where honest and hostile peers share an address (loopback tests, one NAT).
  bool ban_addresses = true;
  // The operator's deny list: identities the node never links with. ZAP refuses their keys, the
  // node does not dial them, and links to them are closed. SetDenyList replaces it at run time;
  // lifting a denial lets the links come back through the core's normal redialling. At most
  // kMaxDeniedIdentities; an identity that is not an Ed25519 key makes the node fail to start.
  std::vector<PublicKey> deny;
  // Messages this node already holds and trusts (Leases and Closes read back from its ledger,
  // which verified them when it recorded them), seeded into the core's reconcilable set at start
  // (GossipCore::Retain) so that after a restart it still serves them to peers that reconcile.
  // Neither verified again nor sent; those the core will not keep (expired, outside the
  // retention window, over its limits) are counted in GossipNodeStatus::retain_refused.
  std::vector<Bytes> retain;
};

// Drops by the transport (the core counts its own in DropCounters).
enum class TransportDrop : uint8_t {
  kSendQueueFull,     // a peer's send queue was at its high-water mark
  kPeerUnreachable,   // the ROUTER no longer has the inbound link
  kClosedLink,        // a message on an inbound link we closed (or of a banned key)
  kIdentityMismatch,  // a HELLO whose identity is not the link's CURVE key
  kBadAddress,        // a dial to an address that does not parse or whose endpoint fails
  kBannedPeer,        // a dial to a banned identity
  kNoUserId,          // an inbound message without a ZAP User-Id (cannot happen with CURVE + ZAP)
  kMultipart,         // a message of more than one part (handed to the core as malformed)
  kDeniedPeer,        // a dial to, or a new link from, an identity on the deny list
};
constexpr size_t kTransportDropCount = 9;
std::string_view ToString(TransportDrop reason);

struct GossipNodeStatus {
  std::string address;  // our peer address, what others put in their bootstrap
  size_t ready_peers = 0;
  size_t ready_inbound = 0, ready_outbound = 0;  // ready links by who dialled
  std::vector<PublicKey> peers;  // the identities of the ready peers (checked against their links)
  size_t links = 0;
  DropCounters core_drops;
  GossipStats core_stats;
  std::array<uint64_t, kTransportDropCount> transport_drops{};
  uint64_t frames_in = 0, frames_out = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // the payload bytes of those frames
  uint64_t verdicts = 0, bans = 0;
  uint64_t links_lost = 0;  // outbound links whose connection failed or closed (socket events)
  uint64_t ticks = 0;       // times the core was ticked (its timer fired)
  uint64_t zap_admitted = 0, zap_refused = 0, zap_malformed = 0;
  size_t denied = 0;  // identities on the deny list
  uint64_t retained_seeded = 0, retain_refused = 0;  // GossipNodeConfig::retain at start
  uint64_t operator[](TransportDrop reason) const { return transport_drops[static_cast<size_t>(reason)]; }
};

// Requests (Outbox::Request) and messages the actor takes.
struct PublishMessage {  // reply: Status (why the core refused it)
  Bytes envelope;
  Signatures signatures = Signatures::kVerify;  // kCheckedByCaller: see GossipCore::Publish
};
struct GetGossipStatus {};  // reply: GossipNodeStatus
// Replaces the deny list (GossipNodeConfig::deny) and closes the links it now denies; an empty
// list lifts every denial. Reply: Status (the list is unchanged unless Ok).
struct SetDenyList {
  std::vector<PublicKey> identities;
};

class GossipNode final : public actors::Actor {
 public:
  GossipNode(const market::Identity& identity, GossipNodeConfig config);
  ~GossipNode() override;
  void Init(actors::Handlers& on, actors::ActorContext& ctx) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpumart::gossip
