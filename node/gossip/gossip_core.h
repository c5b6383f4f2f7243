// The gossip protocol core: a state machine with no I/O. It owns no socket, no thread and reads
// no clock. The driver (an actor with ZeroMQ sockets, a test's in-process loop, a fuzz target, a
// simulator) tells it about links, hands it each frame a peer sent with the time, and ticks it;
// each call appends the actions that follow (frames to send, messages to deliver locally, verdicts
// on peers, links to open or close) to `out`. docs/GOSSIP.md describes the protocol.
//
// Dissemination is Plumtree (Leitão et al., 2007): a message is pushed in full along "eager"
// links, which form a spanning tree, and announced by id (IHAVE) on "lazy" links; a node that
// receives a duplicate PRUNEs the link it came on (making it lazy), and one that hears of an id it
// lacks GRAFTs the nearest announcer after a timeout (making that link eager again), which repairs
// the tree. Bids and Accepts go back along the path of the Order (resp. Bid) they answer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "market/codec.h"
#include "market/crypto.h"
#include "node/gossip/frames.h"
#include "node/gossip/verdicts.h"

namespace gpumart::gossip {

// A link, as the driver numbers it. Never reused while the core may know it; 0 is this node.
using PeerId = uint64_t;
// An immutable envelope kept by the core (see GossipConfig::keep_envelope).
using SharedBytes = std::shared_ptr<const Bytes>;
constexpr PeerId kLocalPeer = 0;

enum class Direction : uint8_t { kInbound, kOutbound };

// Who checks the Ed25519 signatures of a message this node publishes.
enum class Signatures : uint8_t {
  kVerify,           // the core, as for a peer's message
  // The publisher: it signed the message itself, or verified these exact bytes (for a Lease,
  // every signature in it) just before. An Ed25519 check costs about as much as all the rest of
  // a message's handling, and a node's own messages are most of what it publishes.
  kCheckedByCaller,
};

struct GossipConfig {
  std::string advertised_address;  // put in our HELLO; empty when we accept no links
  Role role = Role::kRelay;
  size_t max_inbound = 64;
  size_t max_outbound = 16;
  size_t target_outbound = 8;      // outbound links the core asks the driver to keep open
  uint32_t hop_limit = 32;         // relay a message only while hops < hop_limit (<= kMaxHops)
  int64_t hello_timeout_ms = 5'000;
  int64_t ping_interval_ms = 5'000;
  int64_t peer_timeout_ms = 20'000;      // no frame for this long: the peer is dead
  // PRUNE an eager link after this many duplicates in a row from it (a first delivery on it starts
  // the count again), or after prune_after_duplicates_per_link per ready link the node has if that
  // is more (1 and 0: classic Plumtree). With many concurrent sources (docs/GOSSIP.md): a small
  // network's tree settles within a few messages, and a well-linked node, which many sources' trees
  // cross, does not cut a link that is still some of their trees'.
  uint32_t prune_after_duplicates = 4;
  uint32_t prune_after_duplicates_per_link = 1;
  // Eager links a node aims to keep: while it has more, a duplicate on an eager link prunes that
  // link at once. Each message costs a node one MESSAGE per eager link, so this bounds copies per
  // delivery (about eager links - 1) however many sources publish at once (docs/GOSSIP.md).
  size_t max_eager = 4;
  // A relayed message is announced (IHAVE) to at most this many lazy peers, drawn at random per
  // message (0: to every lazy peer). Bounds a node's upload per message however many peers link to
  // it (a public node may hold many inbound links), as gossipsub's D_lazy does.
  size_t lazy_fanout = 16;
  // Wait this long after the first IHAVE of a missing message, then GRAFT the announcer with the
  // shortest round trip (measured by PING; one not measured yet counts as the slowest), then wait
  // graft_retry_ms before trying the next nearest.
  int64_t graft_timeout_ms = 100;
  int64_t graft_retry_ms = 100;
  // Lazy announcements: the first id queued for a lazy peer waits this long for others to join it
  // in one IHAVE (0: an IHAVE per message, sent at once). Adds to repair latency only (a lost
  // eager push is grafted about ihave_delay_ms + graft_timeout_ms after it was relayed), and
  // divides the IHAVE frames, most of a node's frames, by the messages per batch: with 5 ms,
  // BM_Dissemination32's p50/p99 were about 10/20-40 ms, with 50 ms 3/12 ms (docs/GOSSIP.md).
  int64_t ihave_delay_ms = 50;
  int64_t store_retention_ms = 60'000;   // how long a message is kept to answer GRAFT
  // Anti-entropy: reconcile with one random ready peer this often (0: only when a link becomes
  // ready; negative: anti-entropy off, nothing retained and no session opened, e.g. for a
  // simulator that measures dissemination alone), and keep Leases and Closes reconcilable this
  // long after they were created.
  int64_t reconcile_interval_ms = 30'000;
  int64_t reconcile_retention_ms = 3'600'000;
  int64_t reconnect_min_ms = 1'000;      // dial backoff: doubles per failure up to the max
  int64_t reconnect_max_ms = 60'000;
  // Outbound rotation: this often, when the outbound links are at target, close one outbound link
  // the node chose and dial a known address it has no link with (0: never). Without it a node whose
  // outbound slots are full never dials again, so two parts of the network that filled their slots
  // among themselves during a partition stay apart after it heals.
  int64_t outbound_rotation_ms = 60'000;
  uint64_t frames_per_second = 2'000;    // per-peer rate, with a burst of two seconds' worth
  uint64_t bytes_per_second = 16 << 20;
  // Checks a message's signature; for a Lease, every signature market::OpenLease checks (the
  // core still checks the Lease's structure and binding by decoding it). Empty:
  // market::VerifySignature, and market::OpenLease for a Lease. A simulator running thousands of
  // cores in one process sets one shared memo here so each message's Ed25519 checks run once,
  // not once per node (bench/sim).
  std::function<Status(const market::Envelope&)> verify_signature;
  // Where the core keeps a verified message's envelope bytes to answer GRAFTs and reconciliation:
  // one immutable buffer per message, shared by its store and its retained set. Empty: a copy of
  // `envelope`. A simulator running thousands of cores in one process returns one buffer per
  // message for all of them (bench/sim); the bytes returned must equal `envelope`.
  std::function<SharedBytes(const MessageId& id, std::span<const uint8_t> envelope)> keep_envelope;
};

// ---- Actions (what the driver must do) ----
struct SendFrame {
  PeerId peer = kLocalPeer;
  Bytes frame;
};
// A new, verified, fresh message for this node's own use (ledger, offer book, bid engine).
struct Deliver {
  MessageId id{};
  market::MessageType type = market::MessageType::kOrder;
  Bytes envelope;
  PeerId from = kLocalPeer;
};
struct PeerVerdict {
  PeerId peer = kLocalPeer;
  std::optional<PublicKey> identity;  // once the peer's HELLO checked
  Misbehaviour reason = Misbehaviour::kMalformedFrame;
  std::string detail;
};
struct ConnectTo {
  std::string address;
};
// The core has already forgotten the peer; the driver closes the link.
struct DisconnectPeer {
  PeerId peer = kLocalPeer;
  std::string reason;
};
// The handshake completed: the driver checks `hello.identity` against the link's CURVE key.
struct PeerReady {
  PeerId peer = kLocalPeer;
  Direction direction = Direction::kInbound;
  Hello hello;
};
using Action = std::variant<SendFrame, Deliver, PeerVerdict, ConnectTo, DisconnectPeer, PeerReady>;

// Counts of what went well (what went wrong is in DropCounters).
struct GossipStats {
  uint64_t delivered = 0;        // Deliver actions
  uint64_t eager_sent = 0;       // MESSAGE frames pushed along the tree
  uint64_t ihave_ids_sent = 0;
  uint64_t grafts_sent = 0;      // ids requested
  uint64_t prunes_sent = 0;
  uint64_t routed = 0;           // Bids/Accepts sent back along their path
  uint64_t routed_home = 0;      // Bids/Accepts that reached the node whose Order/Bid they answer
  uint64_t route_fallback = 0;   // Bids/Accepts flooded because their path is gone
  uint64_t reconcile_sessions = 0;  // sessions this node opened
  uint64_t reconciled = 0;          // Deliver actions for messages received by reconciliation
  uint64_t reconcile_served = 0;    // envelopes sent to peers that asked after reconciling
  uint64_t rotations = 0;           // outbound links closed by rotation (and a new address dialled)
};

class GossipCore {
 public:
  GossipCore(const market::Identity& identity, GossipConfig config);
  ~GossipCore();
  GossipCore(const GossipCore&) = delete;
  GossipCore& operator=(const GossipCore&) = delete;

  // Addresses to dial (bootstrap from config). Bounded by limits::kMaxKnownAddresses.
  void AddAddress(const std::string& address);

  // The transport opened a link. `address` is the dialled address for outbound links.
  void OnConnected(PeerId peer, Direction direction, const std::string& address, int64_t now_ms,
                   std::vector<Action>& out);
  // The transport lost a link (or closed it after a DisconnectPeer).
  void OnDisconnected(PeerId peer, int64_t now_ms);
  // A dial requested by ConnectTo failed.
  void OnConnectFailed(const std::string& address, int64_t now_ms);

  // One frame from a peer: untrusted bytes. Never throws, never aborts.
  void HandleFrame(PeerId peer, std::span<const uint8_t> frame, int64_t now_ms, std::vector<Action>& out);
  // Timers: hello and peer timeouts, pings, grafts, lazy announcements, expiry, dialling,
  // reconciliation, rotation. Does what is due at now_ms; calling it early or often is harmless.
  void Tick(int64_t now_ms, std::vector<Action>& out);
  // The earliest time at which Tick may have something to do (INT64_MAX: nothing until another
  // input; at or before the current time: tick now): never later than the first timer due, and
  // exactly it after a Tick. The driver asks after every call into the core and arms its one
  // timer for the answer. After Tick(t) it is later than t. Between ticks it is kept and only
  // lowered as inputs set timers, so it may be early (that tick then finds nothing due); O(1)
  // then, O(links) once after each Tick or change of the dial state.
  int64_t NextDeadline() const;

  // A message made on this node (already signed): verified like a peer's, then sent. Returns why
  // not when it does not verify or was already seen. With Signatures::kCheckedByCaller every
  // check but the Ed25519 ones still runs (decoding, limits, a Lease's binding, time, replay).
  Status Publish(std::span<const uint8_t> envelope, int64_t now_ms, std::vector<Action>& out,
                 Signatures signatures = Signatures::kVerify);

  // Seeds the reconcilable set with a message this node already holds and trusts, e.g. a Lease
  // read back from its ledger (which verified it when it recorded it): it is remembered as seen,
  // kept for reconciliation, and neither verified again nor sent anywhere. Returns why not when it
  // does not decode, is not an Order, Offer, Lease, Close or Attestation, is expired or older than
  // the retention window, or is already there.
  Status Retain(std::span<const uint8_t> envelope, int64_t now_ms);

  const PublicKey& identity() const;
  const DropCounters& drops() const;
  const GossipStats& stats() const;
  size_t ReadyPeers() const;
  bool IsEager(PeerId peer) const;
  bool IsReady(PeerId peer) const;
  bool HasSeen(const MessageId& id) const;
  size_t RetainedCount() const;  // messages kept for reconciliation
  size_t StoredCount() const;    // messages kept to answer GRAFTs (the ones this node announced)

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpumart::gossip
