#include "node/gossip/gossip_core.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "market/crypto.h"
#include "node/gossip/expiring_map.h"
#include "node/gossip/short_id.h"

namespace gpumart::gossip {

namespace {

using market::Envelope;
using market::MessageType;

struct IdHash {
  size_t operator()(const MessageId& id) const {
    uint64_t prefix = 0;  // ids are hashes: any eight bytes are uniform
    std::memcpy(&prefix, id.data(), sizeof prefix);
    return static_cast<size_t>(prefix);
  }
};

// Appends an action in place (a temporary variant trips GCC's -Wmaybe-uninitialized).
template <typename T>
void Emit(std::vector<Action>& out, T&& action) {
  out.emplace_back(std::in_place_type<T>, std::move(action));
}

constexpr int64_t kBucketMs = 1'000;
constexpr int64_t kMilli = 1'000;  // token bucket units per frame / byte
constexpr int64_t kBurstSeconds = 2;

// Orders, Offers, Leases, Closes and Attestations reach every node; Bids and Accepts are answers.
bool IsAnswer(MessageType type) { return type == MessageType::kBid || type == MessageType::kAccept; }
// What reaches every node is what anti-entropy reconciles.
bool IsReconcilable(MessageType type) { return !IsAnswer(type); }
// A Peer's session round when it has none open.
constexpr uint32_t kNoSession = std::numeric_limits<uint32_t>::max();

// What verification of a message yields beyond ok: for an answer, the id of what it answers.
struct Verified {
  std::optional<MessageId> answers;
};

bool IsSignatureFailure(const Status& status) { return status.code() == Status::Code::kBadSignature; }

// Decodes and validates the body for its type, then checks the signature (unless `signatures`
// says the caller did). The envelope's time window has been checked already.
// `held` says whether the core holds exactly these envelope bytes already, i.e. verified them (or
// its own node made them) when they passed through: a Lease's embedded Accept and Bid usually did.
Result<Verified> VerifyMessage(const Envelope& envelope, std::span<const uint8_t> bytes, const GossipConfig& config,
                               Signatures signatures, const std::function<bool(std::span<const uint8_t>)>& held) {
  const bool check = signatures == Signatures::kVerify;
  Verified verified;
  Status status;
  switch (envelope.type) {
    case MessageType::kOrder: status = market::DecodeOrder(envelope.body).status(); break;
    case MessageType::kOffer: status = market::DecodeOffer(envelope.body).status(); break;
    case MessageType::kBid: {
      auto bid = market::DecodeBid(envelope.body);
      if (!bid.ok()) return bid.status();
      verified.answers = bid->order_id;
      break;
    }
    case MessageType::kAccept: {
      auto accept = market::DecodeAccept(envelope.body);
      if (!accept.ok()) return accept.status();
      verified.answers = accept->bid_id;
      break;
    }
    case MessageType::kLease: {
      // The provider's signature and the embedded Accept's, and that they agree. With a hook, the
      // structure is checked here and the hook stands for the signature checks (OpenLease's).
      if (!check) {
        // Structure and binding alone: the caller made or verified every signature in it.
        auto lease = market::DecodeVerified<market::Lease>(bytes);
        if (!lease.ok()) return lease.status();
        GPUMART_RETURN_IF_ERROR(market::CheckLeaseBinding(*lease));
        return verified;
      }
      if (config.verify_signature) {
        status = market::DecodeLease(envelope.body).status();
        break;
      }
      // market::OpenLease's checks, but an embedded message this core holds byte for byte is not
      // verified again (at the relay between a tenant and a provider: both).
      auto lease = market::DecodeVerified<market::Lease>(bytes);
      if (!lease.ok()) return lease.status();
      GPUMART_RETURN_IF_ERROR(market::VerifySignature(lease->envelope));
      const std::pair<const Bytes*, const char*> embedded[] = {{&lease->body.accept_envelope, "lease's embedded accept"},
                                                               {&lease->body.bid_envelope, "lease's embedded bid"}};
      for (const auto& [inner, what] : embedded) {
        if (held(*inner)) continue;
        Result<Envelope> inner_envelope = market::DecodeEnvelope(*inner);
        if (!inner_envelope.ok()) return inner_envelope.status().WithContext(what);
        GPUMART_RETURN_IF_ERROR(market::VerifySignature(*inner_envelope).WithContext(what));
      }
      GPUMART_RETURN_IF_ERROR(market::CheckLeaseBinding(*lease));
      return verified;
    }
    case MessageType::kClose: status = market::DecodeClose(envelope.body).status(); break;
    case MessageType::kAttestation: status = market::DecodeAttestation(envelope.body).status(); break;
  }
  if (!status.ok()) return status;
  if (!check) return verified;
  GPUMART_RETURN_IF_ERROR(config.verify_signature ? config.verify_signature(envelope) : market::VerifySignature(envelope));
  return verified;
}

// The core's peers by id: std::map's interface and order (the same inputs give the same actions
// in the same order), but the ids are searched in one small array, not a tree of nodes. A frame
// looks up its peer, and NextDeadline's callers run after every frame: with thousands of cores
// in one process (bench/sim) each tree step was a cache miss. Entries are heap-allocated, so a
// reference to one stays valid while others come and go, as with std::map.
template <typename T>
class PeerMap {
 public:
  using value_type = std::pair<const PeerId, T>;
  template <bool kConst>
  class Iterator {
   public:
    using Slot = std::conditional_t<kConst, typename std::vector<std::unique_ptr<value_type>>::const_iterator,
                                    typename std::vector<std::unique_ptr<value_type>>::iterator>;
    using Value = std::conditional_t<kConst, const value_type, value_type>;
    using iterator_category = std::forward_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using reference = Value&;
    using pointer = Value*;
    Iterator() = default;
    explicit Iterator(Slot slot) : slot_(slot) {}
    Value& operator*() const { return **slot_; }
    Value* operator->() const { return slot_->get(); }
    Iterator& operator++() {
      ++slot_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator before = *this;
      ++slot_;
      return before;
    }
    bool operator==(const Iterator& other) const { return slot_ == other.slot_; }
    Slot slot() const { return slot_; }

   private:
    Slot slot_{};
  };
  using iterator = Iterator<false>;
  using const_iterator = Iterator<true>;

  iterator begin() { return iterator(entries_.begin()); }
  iterator end() { return iterator(entries_.end()); }
  const_iterator begin() const { return const_iterator(entries_.begin()); }
  const_iterator end() const { return const_iterator(entries_.end()); }
  size_t size() const { return entries_.size(); }

  iterator find(PeerId id) {
    const size_t at = Position(id);
    return at < ids_.size() && ids_[at] == id ? iterator(entries_.begin() + static_cast<std::ptrdiff_t>(at)) : end();
  }
  const_iterator find(PeerId id) const {
    const size_t at = Position(id);
    return at < ids_.size() && ids_[at] == id ? const_iterator(entries_.begin() + static_cast<std::ptrdiff_t>(at))
                                              : end();
  }
  bool contains(PeerId id) const { return find(id) != end(); }
  T& at(PeerId id) {  // as std::map's: a missing id throws
    auto it = find(id);
    if (it == end()) throw std::out_of_range("PeerMap::at");
    return it->second;
  }
  // Inserts a default T when absent.
  T& operator[](PeerId id) {
    const size_t at = Position(id);
    if (at < ids_.size() && ids_[at] == id) return entries_[at]->second;
    ids_.insert(ids_.begin() + static_cast<std::ptrdiff_t>(at), id);
    auto entry = std::make_unique<value_type>(std::piecewise_construct, std::forward_as_tuple(id), std::forward_as_tuple());
    T& value = entry->second;
    entries_.insert(entries_.begin() + static_cast<std::ptrdiff_t>(at), std::move(entry));
    return value;
  }
  void erase(iterator it) {
    const auto at = it.slot() - entries_.begin();
    ids_.erase(ids_.begin() + at);
    entries_.erase(entries_.begin() + at);
  }

 private:
  size_t Position(PeerId id) const {
    return static_cast<size_t>(std::lower_bound(ids_.begin(), ids_.end(), id) - ids_.begin());
  }
  std::vector<PeerId> ids_;  // sorted; ids_[i] is entries_[i]'s key
  std::vector<std::unique_ptr<value_type>> entries_;
};

}  // namespace

class GossipCore::Impl {
 public:
  Impl(const market::Identity& identity, GossipConfig config)
      : identity_(identity),
        config_(std::move(config)),
        seen_(limits::kMaxSeenIds, kBucketMs),
        nonces_(limits::kMaxSeenIds, kBucketMs),
        routes_(limits::kMaxRoutes, kBucketMs),
        answered_(limits::kMaxAnswerDigests, kBucketMs) {
    config_.hop_limit = std::min(config_.hop_limit, limits::kMaxHops);
    // Which peer a periodic reconciliation picks: deterministic per identity (same inputs, same run).
    uint64_t seed = 0;
    std::memcpy(&seed, identity_.public_key().data(), sizeof seed);
    random_.seed(seed);
  }

  // ---- Links ----

  void AddAddress(const std::string& address) {
    if (address.empty() || address.size() > limits::kMaxAddressBytes) return;
    if (address == config_.advertised_address || self_addresses_.contains(address)) return;
    if (dials_.size() >= limits::kMaxKnownAddresses) return;
    if (dials_.try_emplace(address, Dial{0, config_.reconnect_min_ms, false, 0}).second) DialsChanged();
  }

  void OnConnected(PeerId peer, Direction direction, const std::string& address, int64_t now,
                   std::vector<Action>& out) {
    if (peer == kLocalPeer || peers_.contains(peer)) return;  // a driver bug; ignore
    DialsChanged();
    if (direction == Direction::kOutbound) {
      if (auto it = dials_.find(address); it != dials_.end()) SetPending(it->second, false);
    }
    const size_t limit = direction == Direction::kInbound ? config_.max_inbound : config_.max_outbound;
    if (CountLinks(direction) >= limit) {
      drops_.Add(Drop::kPeerLimit);
      Emit<DisconnectPeer>(out, {peer, "link limit reached"});
      return;
    }
    Peer& p = peers_[peer];
    p.direction = direction;
    p.dialed_address = direction == Direction::kOutbound ? address : std::string();
    p.connected_ms = now;
    Due(now + config_.hello_timeout_ms);
    p.last_heard_ms = now;
    p.refill_ms = now;
    p.frame_tokens = static_cast<int64_t>(config_.frames_per_second) * kMilli * kBurstSeconds;
    p.byte_tokens = static_cast<int64_t>(config_.bytes_per_second) * kMilli * kBurstSeconds;
    Send(peer, SignHello(identity_, config_.advertised_address, config_.role, now), out);
  }

  void OnDisconnected(PeerId peer, int64_t now) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    Forget(it, now);
  }

  void OnConnectFailed(const std::string& address, int64_t now) {
    auto it = dials_.find(address);
    if (it == dials_.end()) return;
    Backoff(it->second, now);
  }

  // ---- Frames ----

  void HandleFrame(PeerId peer_id, std::span<const uint8_t> bytes, int64_t now, std::vector<Action>& out) {
    auto it = peers_.find(peer_id);
    if (it == peers_.end()) return;  // a link we already dropped: its last frames are moot
    Peer& peer = it->second;
    // The answers to our own RECONCILE_ITEMS requests are exempt from the rate limit: a catch-up
    // may be tens of megabytes, and their volume is bounded by what we asked for (each item must
    // be an id we are waiting for, or the peer gets a verdict).
    const bool solicited = !peer.wanted.empty() && bytes.size() >= 2 &&
                           bytes[1] == static_cast<uint8_t>(FrameType::kReconcileItems);
    if (!solicited && !TakeTokens(peer, bytes.size(), now)) {
      return Punish(peer_id, Drop::kRateLimited, Misbehaviour::kFlood, "rate limit", out);
    }
    // The frames a node gets most, read without allocating; any error goes the full way below.
    if (peer.ready && bytes.size() >= 2 && bytes[1] == static_cast<uint8_t>(FrameType::kMessage)) {
      if (Result<MessageFrameView> message = DecodeMessageFrameView(bytes); message.ok()) {
        peer.last_heard_ms = now;
        return Ingest(peer_id, message->envelope, message->hops, /*reconciled=*/false, now, out);
      }
    } else if (peer.ready && bytes.size() >= 2 && bytes[1] == static_cast<uint8_t>(FrameType::kIhave)) {
      if (DecodeIhaveFrame(bytes, ihave_in_).ok()) {
        peer.last_heard_ms = now;
        return Handle(peer_id, ihave_in_, now, out);
      }
    }
    Result<Frame> frame = DecodeFrame(bytes);
    if (!frame.ok()) {
      const Status& status = frame.status();
      if (bytes.size() > limits::kMaxFrameBytes) {
        Punish(peer_id, Drop::kOversizedFrame, Misbehaviour::kMalformedFrame, status.message(), out);
      } else if (status.code() == Status::Code::kInvalidArgument) {  // only an unsupported frame type
        Punish(peer_id, Drop::kUnsupportedFrame, Misbehaviour::kUnsupportedFrame, status.message(), out);
      } else {
        Punish(peer_id, Drop::kMalformedFrame, Misbehaviour::kMalformedFrame, status.message(), out);
      }
      // Before the handshake there is no identity to score: a bad first frame ends the link.
      if (!peer.ready) CloseLink(peer_id, "malformed frame before HELLO", now, out);
      return;
    }
    peer.last_heard_ms = now;
    if (!peer.ready) {
      if (auto* hello = std::get_if<Hello>(&*frame)) return HandleHello(peer_id, *hello, now, out);
      Punish(peer_id, Drop::kHandshake, Misbehaviour::kHandshake, "frame before HELLO", out);
      return CloseLink(peer_id, "no HELLO", now, out);
    }
    std::visit([&](auto& f) { Handle(peer_id, f, now, out); }, *frame);
  }

  // ---- Publishing ----

  Status Publish(std::span<const uint8_t> bytes, int64_t now, std::vector<Action>& out, Signatures signatures) {
    if (bytes.size() > market::limits::kMaxMessageBytes) return Status::LimitExceeded("message too large");
    Result<Envelope> envelope = market::DecodeEnvelope(bytes);
    if (!envelope.ok()) return envelope.status();
    const MessageId id = market::ComputeId(*envelope);
    if (seen_.Contains(Short(id))) return Status::AlreadyExists("message already seen");
    GPUMART_RETURN_IF_ERROR(market::CheckFreshness(*envelope, now));
    Result<Verified> verified = VerifyMessage(*envelope, bytes, config_, signatures, held_);
    if (!verified.ok()) return verified.status();
    if (const ShortId* owner = nonces_.Find(NonceKey(envelope->signer, envelope->nonce)); owner && *owner != Short(id)) {
      return Status::Replay("nonce already used by another message");
    }
    Accept(id, *envelope);
    Dispatch(id, *envelope, *verified, bytes, kLocalPeer, 0, now, out);
    return Status::Ok();
  }

  // ---- Timers ----

  void Tick(int64_t now, std::vector<Action>& out) {
    seen_.Expire(now);
    nonces_.Expire(now);
    routes_.Expire(now);
    answered_.Expire(now);
    ExpireStore(now);
    ExpireRetained(now);
    CheckLiveness(now, out);
    ReconcileTimers(now, out);
    SendGrafts(now, out);
    for (auto& [id, peer] : peers_) {
      if (!peer.pending_ihave.empty() && peer.ihave_due_ms <= now) FlushIhave(id, peer, out);
    }
    RotateOutbound(now, out);
    DialMore(now, out);
    deadline_stale_ = true;  // timers moved later: the next NextDeadline looks at every one again
  }

  // The earliest timer, kept between ticks (docs/GOSSIP.md, "The core's contract"): the driver asks after
  // every frame, and looking at every timer each time (a dozen structures, every peer) cost more
  // than most frames. Tick leaves it to be computed afresh; between ticks each timer set outside
  // Tick lowers it (Due), and a change of the dial state makes it stale. Timers that move later
  // meanwhile (a frame heard, an IHAVE sent when full, an entry gone) leave it early: that tick
  // finds nothing due and the value after it is exact again. Debug builds check it is never late.
  int64_t NextDeadline() const {
    if (deadline_stale_) {
      deadline_ = WalkDeadline();
      deadline_stale_ = false;
    }
    assert(deadline_ <= WalkDeadline());
    return deadline_;
  }

  // Mirrors Tick: every timer it checks, and nothing it would not act on (a deadline that Tick
  // leaves in the past would make the driver spin).
  int64_t WalkDeadline() const {
    int64_t next = std::numeric_limits<int64_t>::max();
    auto at = [&next](int64_t due) { next = std::min(next, due); };
    at(seen_.NextExpiry());
    at(nonces_.NextExpiry());
    at(routes_.NextExpiry());
    at(answered_.NextExpiry());
    if (!store_order_.empty()) at(store_order_.front().first);
    if (!retained_evictions_.empty()) at(retained_evictions_.begin()->first);
    if (!graft_due_.empty()) at(graft_due_.begin()->first);
    for (const auto& [peer_id, peer] : peers_) {
      if (!peer.ready) {
        at(peer.connected_ms + config_.hello_timeout_ms);
        continue;
      }
      at(peer.last_heard_ms + config_.peer_timeout_ms);
      at(peer.next_ping_ms);
      if (peer.our_round != kNoSession) at(peer.our_last_ms + config_.peer_timeout_ms);
      if (!peer.wanted.empty()) at(peer.wanted_since_ms + config_.peer_timeout_ms);
      if (!peer.pending_ihave.empty()) at(peer.ihave_due_ms);
    }
    // INT64_MIN until the first Tick starts these periods.
    if (config_.reconcile_interval_ms > 0) at(next_reconcile_ms_);
    if (config_.outbound_rotation_ms > 0) at(next_rotation_ms_);
    at(DialDeadline());
    return next;
  }

  // Dialling: pending dials time out; below target, a dialable address is due at its backoff.
  // Walking the address book (up to kMaxKnownAddresses) on every NextDeadline cost more than the
  // frame handled before it, so the result is kept until the dial or link state changes
  // (DialsChanged at each change); debug builds check the kept value against a fresh walk.
  int64_t DialDeadline() const {
    if (dial_deadline_stale_) {
      dial_deadline_ = WalkDialDeadline();
      dial_deadline_stale_ = false;
    }
    assert(dial_deadline_ == WalkDialDeadline());
    return dial_deadline_;
  }

  int64_t WalkDialDeadline() const {
    int64_t next = std::numeric_limits<int64_t>::max();
    const bool below_target = CountLinks(Direction::kOutbound) < config_.target_outbound;
    std::set<std::string> linked;
    if (below_target) linked = LinkedAddresses();
    for (const auto& [address, dial] : dials_) {
      if (dial.pending) {
        next = std::min(next, dial.pending_since_ms + config_.hello_timeout_ms);
      } else if (below_target && !linked.contains(address)) {
        next = std::min(next, dial.next_try_ms);
      }
    }
    return next;
  }

  void DialsChanged() {
    dial_deadline_stale_ = true;
    deadline_stale_ = true;
  }

  // Every timer set outside Tick comes through here (see NextDeadline).
  void Due(int64_t due) {
    if (!deadline_stale_) deadline_ = std::min(deadline_, due);
  }

  // ---- Queries ----

  const PublicKey& identity() const { return identity_.public_key(); }
  const DropCounters& drops() const { return drops_; }
  const GossipStats& stats() const { return stats_; }
  size_t ReadyPeers() const {
    return static_cast<size_t>(std::count_if(peers_.begin(), peers_.end(), [](const auto& p) { return p.second.ready; }));
  }
  bool IsEager(PeerId peer) const {
    auto it = peers_.find(peer);
    return it != peers_.end() && it->second.ready && it->second.eager;
  }
  bool IsReady(PeerId peer) const {
    auto it = peers_.find(peer);
    return it != peers_.end() && it->second.ready;
  }
  bool HasSeen(const MessageId& id) const { return seen_.Contains(Short(id)); }
  size_t RetainedCount() const { return retained_.size(); }
  size_t StoredCount() const { return store_.size(); }

  // ---- Seeding the reconcilable set ----

  Status Retain(std::span<const uint8_t> bytes, int64_t now) {
    if (bytes.size() > market::limits::kMaxMessageBytes) return Status::LimitExceeded("message too large");
    Result<Envelope> envelope = market::DecodeEnvelope(bytes);
    if (!envelope.ok()) return envelope.status();
    if (!IsReconcilable(envelope->type)) {
      return Status::InvalidArgument("only Orders, Offers, Leases, Closes and Attestations are reconciled");
    }
    if (!AntiEntropyOn()) return Status::FailedPrecondition("anti-entropy is off (reconcile_interval_ms < 0)");
    GPUMART_RETURN_IF_ERROR(market::CheckFreshness(*envelope, now));
    if (RetainUntil(*envelope) <= now) return Status::Expired("older than the reconciliation retention window");
    const MessageId id = market::ComputeId(*envelope);
    if (retained_.contains(id)) return Status::AlreadyExists("message already retained");
    Accept(id, *envelope);  // so a peer's copy is a duplicate, and its nonce is taken
    if (!SupersededOffer(id, *envelope)) Retain(id, *envelope, Keep(id, bytes), now);
    return Status::Ok();
  }

 private:
  struct Peer {
    // First, what every frame and every tick reads (one or two cache lines: a simulator runs
    // thousands of cores, and a tick walks every peer).
    bool ready = false;
    bool eager = true;  // Plumtree: every new link starts in the eager set
    Direction direction = Direction::kInbound;
    uint32_t duplicates_in_a_row = 0;  // eager duplicates since this link last delivered first
    uint32_t our_round = kNoSession;   // our session's last round sent; kNoSession: none open
    int64_t connected_ms = 0;
    int64_t last_heard_ms = 0;
    int64_t next_ping_ms = 0;
    int64_t ihave_due_ms = 0;  // when pending_ihave is sent (set by its first id)
    int64_t our_last_ms = 0;
    int64_t wanted_since_ms = 0;
    int64_t frame_tokens = 0;
    int64_t byte_tokens = 0;
    int64_t refill_ms = 0;
    std::vector<MessageId> pending_ihave;
    std::unordered_set<MessageId, IdHash> wanted;  // asked for by reconciliation, not received yet
    std::string dialed_address;
    Hello hello;
    std::optional<uint64_t> ping_nonce;
    int64_t ping_sent_ms = 0;
    int64_t rtt_ms = -1;  // the last PING's round trip (-1: none answered yet); grafts go to the nearest
    // Anti-entropy: our session with this peer, its session with us, the ids ours found missing.
    int64_t our_start_ms = std::numeric_limits<int64_t>::min();
    size_t our_announced = 0;                // ids our session found the peer lacks, sent by IHAVE
    uint32_t their_next_round = kNoSession;  // the round its session must send next
    int64_t their_start_ms = std::numeric_limits<int64_t>::min();
    uint64_t serve_budget = 0;               // ids we listed to it, which it may ask for
    std::deque<MessageId> to_pull;           // found missing, not asked for yet
  };
  struct RetainedEntry {
    int64_t created_ms = 0;  // with the id, its reconcile::Item
    int64_t evict_ms = 0;
    SharedBytes envelope;  // the same buffer as the store's, while both keep the message
  };
  struct Dial {
    int64_t next_try_ms = 0;
    int64_t backoff_ms = 0;
    bool pending = false;
    int64_t pending_since_ms = 0;
  };
  struct Missing {
    int64_t deadline_ms = 0;
    std::vector<PeerId> announcers;
    size_t next = 0;
  };
  struct Stored {
    SharedBytes envelope;
    uint32_t hops = 0;
  };

  // Whether this core verified (or its own node made) exactly these envelope bytes: the store
  // keeps flooded messages, answered_ the digests of routed answers, which are not stored. The id
  // alone would not do (it leaves the signature out).
  bool Holds(std::span<const uint8_t> envelope) const {
    const std::optional<MessageId> id = WireMessageId(envelope);
    if (!id) return false;
    if (const auto it = store_.find(*id); it != store_.end()) return std::ranges::equal(*it->second.envelope, envelope);
    const MessageId* digest = answered_.Find(Short(*id));
    return digest && *digest == market::Blake2b256(envelope.data(), envelope.size());
  }
  const std::function<bool(std::span<const uint8_t>)> held_ = [this](std::span<const uint8_t> envelope) {
    return Holds(envelope);
  };

  // One immutable buffer per message kept, for the store and the retained set alike.
  SharedBytes Keep(const MessageId& id, std::span<const uint8_t> bytes) const {
    if (config_.keep_envelope) return config_.keep_envelope(id, bytes);
    return std::make_shared<const Bytes>(bytes.begin(), bytes.end());
  }

  // ---- Helpers ----

  void Send(PeerId peer, const Frame& frame, std::vector<Action>& out) {
    Emit<SendFrame>(out, {peer, EncodeFrame(frame)});
  }

  void Punish(PeerId peer, Drop drop, Misbehaviour reason, std::string detail, std::vector<Action>& out) {
    drops_.Add(drop);
    std::optional<PublicKey> identity;
    if (auto it = peers_.find(peer); it != peers_.end() && it->second.ready) identity = it->second.hello.identity;
    Emit<PeerVerdict>(out, {peer, identity, reason, std::move(detail)});
  }

  // Forgets the peer and asks the driver to close its link.
  void CloseLink(PeerId peer, std::string reason, int64_t now, std::vector<Action>& out) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    Forget(it, now);
    Emit<DisconnectPeer>(out, {peer, std::move(reason)});
  }

  void Forget(PeerMap<Peer>::iterator it, int64_t now) {
    DialsChanged();
    const Peer& peer = it->second;
    for (const MessageId& id : peer.to_pull) pulling_.erase(id);
    for (const MessageId& id : peer.wanted) pulling_.erase(id);
    if (peer.ready) {
      auto identity = identities_.find(peer.hello.identity);
      if (identity != identities_.end() && identity->second == it->first) identities_.erase(identity);
    }
    if (peer.direction == Direction::kOutbound) {
      if (auto dial = dials_.find(peer.dialed_address); dial != dials_.end()) {
        SetPending(dial->second, false);
        dial->second.next_try_ms = now + dial->second.backoff_ms;
      }
    }
    peers_.erase(it);
  }

  size_t CountLinks(Direction direction) const {
    size_t count = 0;
    for (const auto& [id, peer] : peers_) count += peer.direction == direction;
    if (direction == Direction::kOutbound) count += pending_dials_;
    return count;
  }

  // Every change of Dial::pending goes through here: Tick counts links and looks for timed-out
  // dials by pending_dials_ instead of walking the address book on every tick.
  void SetPending(Dial& dial, bool pending) {
    if (dial.pending == pending) return;
    dial.pending = pending;
    pending_dials_ += pending ? 1 : -1;
    assert(pending_dials_ == static_cast<size_t>(std::count_if(
                                 dials_.begin(), dials_.end(), [](const auto& d) { return d.second.pending; })));
    DialsChanged();
  }

  void Backoff(Dial& dial, int64_t now) {
    DialsChanged();
    SetPending(dial, false);
    dial.next_try_ms = now + dial.backoff_ms;
    dial.backoff_ms = std::min(dial.backoff_ms * 2, config_.reconnect_max_ms);
  }

  bool TakeTokens(Peer& peer, size_t bytes, int64_t now) {
    const int64_t elapsed = std::max<int64_t>(0, now - peer.refill_ms);
    peer.refill_ms = now;
    const int64_t frame_cap = static_cast<int64_t>(config_.frames_per_second) * kMilli * kBurstSeconds;
    const int64_t byte_cap = static_cast<int64_t>(config_.bytes_per_second) * kMilli * kBurstSeconds;
    // elapsed is capped so the products cannot overflow after a long pause.
    const int64_t span = std::min<int64_t>(elapsed, kBurstSeconds * 1'000);
    peer.frame_tokens = std::min(frame_cap, peer.frame_tokens + span * static_cast<int64_t>(config_.frames_per_second));
    peer.byte_tokens = std::min(byte_cap, peer.byte_tokens + span * static_cast<int64_t>(config_.bytes_per_second));
    const int64_t byte_cost = static_cast<int64_t>(bytes) * kMilli;
    if (peer.frame_tokens < kMilli || peer.byte_tokens < byte_cost) return false;
    peer.frame_tokens -= kMilli;
    peer.byte_tokens -= byte_cost;
    return true;
  }

  // ---- Handshake ----

  void HandleHello(PeerId peer_id, const Hello& hello, int64_t now, std::vector<Action>& out) {
    if (Status status = VerifyHello(hello, now); !status.ok()) {
      Punish(peer_id, Drop::kBadHello, Misbehaviour::kBadHello, status.message(), out);
      return CloseLink(peer_id, "bad HELLO", now, out);
    }
    Peer& peer = peers_.at(peer_id);
    if (hello.identity == identity_.public_key()) {
      drops_.Add(Drop::kSelfLink);
      if (peer.direction == Direction::kOutbound && !peer.dialed_address.empty()) {
        if (auto dial = dials_.find(peer.dialed_address); dial != dials_.end()) {
          SetPending(dial->second, false);
          dials_.erase(dial);
        }
        DialsChanged();
        if (self_addresses_.size() < limits::kMaxKnownAddresses) self_addresses_.insert(peer.dialed_address);
        peer.dialed_address.clear();
      }
      return CloseLink(peer_id, "link to self", now, out);
    }
    if (auto existing = identities_.find(hello.identity); existing != identities_.end()) {
      // Two links to one identity (both dialled at once, or one twice). Both ends must keep the
      // same one: the link dialled by the lower of the two identities wins.
      drops_.Add(Drop::kDuplicateLink);
      const PeerId old_id = existing->second;
      const Direction preferred = identity_.public_key() < hello.identity ? Direction::kOutbound : Direction::kInbound;
      if (peer.direction != preferred || peers_.at(old_id).direction == preferred) {
        return CloseLink(peer_id, "identity already linked", now, out);
      }
      CloseLink(old_id, "identity linked again", now, out);
    }
    peer.ready = true;
    peer.hello = hello;
    DialsChanged();
    peer.next_ping_ms = now + config_.ping_interval_ms;
    Due(peer.last_heard_ms + config_.peer_timeout_ms);
    Due(peer.next_ping_ms);
    identities_[hello.identity] = peer_id;
    if (peer.direction == Direction::kOutbound) {
      if (auto dial = dials_.find(peer.dialed_address); dial != dials_.end()) {
        dial->second.backoff_ms = config_.reconnect_min_ms;
      }
    }
    AddAddress(hello.address);
    Emit<PeerReady>(out, {peer_id, peer.direction, hello});
    Send(peer_id, KnownPeers(peer_id), out);
    // Anti-entropy on every new link, from both ends: each side pulls what it lacks.
    StartReconcile(peer_id, peer, now, out);
  }

  PeersFrame KnownPeers(PeerId except) const {
    PeersFrame frame;
    for (const auto& [id, peer] : peers_) {
      if (frame.peers.size() >= limits::kMaxPeersPerFrame) break;
      if (id == except || !peer.ready || peer.hello.address.empty()) continue;
      frame.peers.push_back(PeerAddress{peer.hello.identity, peer.hello.address, peer.hello.role});
    }
    return frame;
  }

  // ---- Frame handlers (after the handshake) ----

  void Handle(PeerId peer, const Hello&, int64_t, std::vector<Action>& out) {
    Punish(peer, Drop::kHandshake, Misbehaviour::kHandshake, "second HELLO", out);
  }

  void HandleDuplicate(PeerId peer_id, const MessageId& id, market::MessageType type, bool* flooded,
                       std::span<const uint8_t> bytes, uint32_t hops, int64_t now, std::vector<Action>& out) {
    drops_.Add(Drop::kDuplicate);
    if (IsAnswer(type) && !*flooded) {
      // An answer we routed came back: the path broke further on and the node there flooded it
      // (see Dispatch). Flood it from here too, once, so it can go round the break.
      *flooded = true;
      ++stats_.route_fallback;
      if (hops < config_.hop_limit) {
        Store(id, Keep(id, bytes), hops, now);
        Broadcast(id, bytes, peer_id, hops, now, out);
      }
      return;
    }
    Peer& peer = peers_.at(peer_id);
    if (IsAnswer(type)) return;
    // A push on a link we hold lazy: its end still holds us eager (our PRUNE crossed a message that
    // made the link eager there, or the other way round). Say it again, or it pushes forever.
    if (!peer.eager) return Prune(peer_id, peer, out);
    if (++peer.duplicates_in_a_row >= PruneAfterDuplicates()) return Prune(peer_id, peer, out);
    if (EagerLinks() <= config_.max_eager) return;
    // Over max_eager: prune the eager link that has been redundant longest (most duplicates in a
    // row; this one on a tie), not necessarily this one: the links that still deliver some
    // sources' first copies are the tree's.
    PeerId redundant = peer_id;
    uint32_t most = peer.duplicates_in_a_row;
    for (const auto& [other_id, other] : peers_) {
      if (other.ready && other.eager && other.duplicates_in_a_row > most) {
        redundant = other_id;
        most = other.duplicates_in_a_row;
      }
    }
    Prune(redundant, peers_.at(redundant), out);
  }

  // Duplicates in a row that make an eager link redundant. The more links a node has, the more
  // sources' trees cross it, and the longer a link that is the tree's for some of them goes between
  // its first deliveries: pruning it sooner cuts the tree, and its nodes graft it back.
  uint32_t PruneAfterDuplicates() const {
    const uint64_t per_links = uint64_t{config_.prune_after_duplicates_per_link} * ReadyPeers();
    return static_cast<uint32_t>(std::max<uint64_t>(config_.prune_after_duplicates, per_links));
  }

  void Prune(PeerId peer_id, Peer& peer, std::vector<Action>& out) {
    peer.eager = false;
    peer.duplicates_in_a_row = 0;
    ++stats_.prunes_sent;
    Send(peer_id, PruneFrame{}, out);
  }

  void Handle(PeerId peer_id, const MessageFrame& frame, int64_t now, std::vector<Action>& out) {
    Ingest(peer_id, frame.envelope, frame.hops, /*reconciled=*/false, now, out);
  }

  // A message from a peer: in a MESSAGE frame, or (reconciled) in a RECONCILE_ITEMS frame that
  // answers our request. Both take the same checks, in the same order, once.
  void Ingest(PeerId peer_id, std::span<const uint8_t> bytes, uint32_t hops, bool reconciled, int64_t now,
              std::vector<Action>& out) {
    // Dedup before decoding: a duplicate costs one hash over the bytes and a lookup. The id matched
    // the canonical signing input of a message we have, so byte 2 is its type (a fixint).
    if (std::optional<MessageId> wire_id = WireMessageId(bytes)) {
      if (bool* flooded = seen_.Find(Short(*wire_id))) {
        if (reconciled) return drops_.Add(Drop::kDuplicate);  // it came by gossip meanwhile
        return HandleDuplicate(peer_id, *wire_id, static_cast<market::MessageType>(bytes[2]), flooded, bytes, hops,
                               now, out);
      }
    }
    Result<Envelope> envelope = market::DecodeEnvelope(bytes);
    if (!envelope.ok()) {
      return Punish(peer_id, Drop::kMalformedMessage, Misbehaviour::kMalformedMessage, envelope.status().message(), out);
    }
    const MessageId id = market::ComputeId(*envelope);
    // Reached only when the fast check missed on bytes that decode, i.e. never for a canonical
    // decoder; kept so the dedup does not rest on that property of another module.
    if (bool* flooded = seen_.Find(Short(id))) {
      if (reconciled) return drops_.Add(Drop::kDuplicate);
      return HandleDuplicate(peer_id, id, envelope->type, flooded, bytes, hops, now, out);
    }
    if (reconciled && !IsReconcilable(envelope->type)) {
      return Punish(peer_id, Drop::kMalformedMessage, Misbehaviour::kMalformedMessage,
                    "a Bid or Accept offered by reconciliation", out);
    }
    if (Status fresh = market::CheckFreshness(*envelope, now); !fresh.ok()) {
      switch (fresh.code()) {
        case Status::Code::kExpired:
          return Punish(peer_id, Drop::kExpired, Misbehaviour::kExpired, fresh.message(), out);
        case Status::Code::kFromFuture:
          return Punish(peer_id, Drop::kFromFuture, Misbehaviour::kFromFuture, fresh.message(), out);
        default:
          return Punish(peer_id, Drop::kMalformedMessage, Misbehaviour::kMalformedMessage, fresh.message(), out);
      }
    }
    Result<Verified> verified = VerifyMessage(*envelope, bytes, config_, Signatures::kVerify, held_);
    if (!verified.ok()) {
      if (IsSignatureFailure(verified.status())) {
        return Punish(peer_id, Drop::kBadSignature, Misbehaviour::kBadSignature, verified.status().message(), out);
      }
      return Punish(peer_id, Drop::kMalformedMessage, Misbehaviour::kMalformedMessage, verified.status().message(), out);
    }
    if (const ShortId* owner = nonces_.Find(NonceKey(envelope->signer, envelope->nonce)); owner && *owner != Short(id)) {
      return Punish(peer_id, Drop::kReplay, Misbehaviour::kReplay, "nonce already used by another message", out);
    }
    Accept(id, *envelope);
    ++stats_.delivered;
    Emit<Deliver>(out, {id, envelope->type, Bytes(bytes.begin(), bytes.end()), peer_id});
    if (reconciled) {
      // Not pushed: announced lazily to the other peers, which GRAFT it if they lack it (the
      // retained set answers). A catch-up of thousands then costs the tree nothing.
      ++stats_.reconciled;
      if (!SupersededOffer(id, *envelope)) Retain(id, *envelope, Keep(id, bytes), now);
      return Announce(id, peer_id, now, out);
    }
    // Plumtree: the link a new message came on is a tree link.
    Peer& sender = peers_.at(peer_id);
    sender.eager = true;
    sender.duplicates_in_a_row = 0;
    Dispatch(id, *envelope, *verified, bytes, peer_id, hops, now, out);
  }

  void Handle(PeerId peer_id, const IhaveFrame& frame, int64_t now, std::vector<Action>&) {
    for (const MessageId& id : frame.ids) {
      if (seen_.Contains(Short(id)) || pulling_.contains(id)) continue;  // had, or on its way by reconciliation
      auto it = missing_.find(id);
      if (it == missing_.end()) {
        if (missing_.size() >= limits::kMaxMissingIds) {
          drops_.Add(Drop::kMissingFull);
          continue;
        }
        missing_.emplace(id, Missing{now + config_.graft_timeout_ms, {peer_id}, 0});
        graft_due_.insert({now + config_.graft_timeout_ms, id});
        Due(now + config_.graft_timeout_ms);
        continue;
      }
      auto& announcers = it->second.announcers;
      if (announcers.size() < limits::kMaxAnnouncersPerId &&
          std::find(announcers.begin(), announcers.end(), peer_id) == announcers.end()) {
        announcers.push_back(peer_id);
      }
    }
  }

  void Handle(PeerId peer_id, const GraftFrame& frame, int64_t, std::vector<Action>& out) {
    peers_.at(peer_id).eager = true;
    for (const MessageId& id : frame.ids) {
      if (auto it = store_.find(id); it != store_.end()) {
        ++stats_.eager_sent;
        Emit<SendFrame>(out, {peer_id, EncodeMessageFrame(it->second.hops + 1, *it->second.envelope)});
      } else if (auto kept = retained_.find(id); kept != retained_.end()) {
        // Announced after a reconciliation, or seeded: its hop count is unknown, so it starts over.
        ++stats_.eager_sent;
        Emit<SendFrame>(out, {peer_id, EncodeMessageFrame(1, *kept->second.envelope)});
      } else {
        drops_.Add(Drop::kUnknownGraft);
      }
    }
  }

  void Handle(PeerId peer_id, const PruneFrame&, int64_t, std::vector<Action>&) {
    peers_.at(peer_id).eager = false;
  }

  void Handle(PeerId peer_id, const PingFrame& frame, int64_t, std::vector<Action>& out) {
    Send(peer_id, PongFrame{frame.nonce}, out);
  }

  void Handle(PeerId peer_id, const PongFrame& frame, int64_t now, std::vector<Action>& out) {
    Peer& peer = peers_.at(peer_id);
    if (peer.ping_nonce != frame.nonce) {
      return Punish(peer_id, Drop::kUnsolicitedPong, Misbehaviour::kUnsolicited, "PONG to no PING", out);
    }
    peer.ping_nonce.reset();
    peer.rtt_ms = now - peer.ping_sent_ms;
  }

  void Handle(PeerId, const PeersFrame& frame, int64_t, std::vector<Action>&) {
    for (const PeerAddress& entry : frame.peers) {
      if (entry.identity == identity_.public_key() || identities_.contains(entry.identity)) continue;
      AddAddress(entry.address);
    }
  }

  void Handle(PeerId peer_id, const GetPeersFrame&, int64_t, std::vector<Action>& out) {
    Send(peer_id, KnownPeers(peer_id), out);
  }

  // ---- Dissemination ----

  // Records a verified message: seen (dedup; the value says whether we flooded it, which only an
  // answer we routed has not), and its nonce (replays).
  void Accept(const MessageId& id, const Envelope& envelope) {
    seen_.Insert(Short(id), false, envelope.expires_ms);
    nonces_.Insert(NonceKey(envelope.signer, envelope.nonce), Short(id), envelope.expires_ms);
    Due(envelope.expires_ms);  // both expire in its bucket, which ends no sooner
    if (auto it = missing_.find(id); it != missing_.end()) {
      graft_due_.erase({it->second.deadline_ms, id});
      missing_.erase(it);
    }
  }

  // Only what this node announces (floods) can be grafted from it: a routed answer, or a message
  // past the hop limit, is never stored (a relay would otherwise keep every bid it routes).
  void Store(const MessageId& id, const SharedBytes& bytes, uint32_t hops, int64_t now) {
    if (bytes->size() > limits::kMaxStoredBytes) return;
    auto [it, inserted] = store_.try_emplace(id, Stored{bytes, hops});
    if (!inserted) return;
    stored_bytes_ += bytes->size();
    store_order_.push_back({now + config_.store_retention_ms, id});
    Due(now + config_.store_retention_ms);
    while (stored_bytes_ > limits::kMaxStoredBytes) EvictOldestStored();
  }

  void ExpireStore(int64_t now) {
    while (!store_order_.empty() && store_order_.front().first <= now) EvictOldestStored();
  }

  void EvictOldestStored() {
    const MessageId id = store_order_.front().second;
    store_order_.pop_front();
    if (auto it = store_.find(id); it != store_.end()) {  // gone already when a newer Offer replaced it
      stored_bytes_ -= it->second.envelope->size();
      store_.erase(it);
      ForgetOffer(id);
    }
  }

  // A provider's newer Offer replaces its older ones (docs/PROTOCOL.md), so only its newest is
  // kept for GRAFTs and reconciliation: with an Offer re-signed on every capacity change, keeping
  // each until it expired cost every node megabytes per provider. True when `envelope` is an Offer
  // older than the one of its signer kept; a newer one drops the one kept. Call only for a message
  // that will be kept (the index is cleared when the kept one goes).
  bool SupersededOffer(const MessageId& id, const Envelope& envelope) {
    if (envelope.type != MessageType::kOffer) return false;
    const std::pair<int64_t, MessageId> offer{envelope.created_ms, id};
    auto [it, inserted] = newest_offer_.try_emplace(envelope.signer, offer);
    if (inserted) {
      offer_signer_.emplace(id, envelope.signer);
      return false;
    }
    if (offer < it->second) return true;
    if (offer == it->second) return false;
    const MessageId replaced = it->second.second;
    it->second = offer;
    offer_signer_.erase(replaced);
    offer_signer_.emplace(id, envelope.signer);
    if (retained_.contains(replaced)) Unretain(replaced);
    if (auto stored = store_.find(replaced); stored != store_.end()) {
      stored_bytes_ -= stored->second.envelope->size();
      store_.erase(stored);  // its store_order_ entry is skipped when it comes up
    }
    return false;
  }

  // Once an Offer is kept nowhere, its signer's entry goes.
  void ForgetOffer(const MessageId& id) {
    auto it = offer_signer_.find(id);
    if (it == offer_signer_.end() || retained_.contains(id) || store_.contains(id)) return;
    newest_offer_.erase(it->second);
    offer_signer_.erase(it);
  }

  void Dispatch(const MessageId& id, const Envelope& envelope, const Verified& verified,
                std::span<const uint8_t> bytes, PeerId from, uint32_t hops, int64_t now, std::vector<Action>& out) {
    // One buffer for the retained set and the GRAFT store, made only when one of them keeps it.
    SharedBytes kept;
    const bool superseded = SupersededOffer(id, envelope);
    if (!superseded && AntiEntropyOn() && IsReconcilable(envelope.type)) {
      kept = Keep(id, bytes);
      Retain(id, envelope, kept, now);
    }
    // Answers to this message come back to whoever sent it (Orders and Bids are answered).
    if (envelope.type == MessageType::kOrder || envelope.type == MessageType::kBid) {
      routes_.Insert(Short(id), from, envelope.expires_ms);
      Due(envelope.expires_ms);
    }
    if (hops >= config_.hop_limit) {
      drops_.Add(Drop::kHopLimit);
      ForgetOffer(id);  // when not retained either
      return;
    }
    // A Lease embeds its Bid and Accept: with their digest kept, the Lease's check skips their
    // signatures (Holds) without the core keeping the routed answers' bytes. Not for the node's own
    // Bids: the Lease that embeds one is the node's own too, published without checks, and a
    // provider with many open bids would keep a digest per bid for nothing.
    if (envelope.type == MessageType::kAccept || (envelope.type == MessageType::kBid && from != kLocalPeer)) {
      answered_.Insert(Short(id), market::Blake2b256(bytes.data(), bytes.size()), envelope.expires_ms);
      Due(envelope.expires_ms);
    }
    if (IsAnswer(envelope.type) && verified.answers) {
      if (const PeerId* target = routes_.Find(Short(*verified.answers))) {
        if (*target == kLocalPeer) {
          ++stats_.routed_home;
          return;
        }
        if (*target != from && IsReady(*target)) {
          ++stats_.routed;
          Emit<SendFrame>(out, {*target, EncodeMessageFrame(hops + 1, bytes)});
          return;
        }
      }
      // The path is gone (the route expired or its link died): flood it instead, back to the
      // sender too, which then floods it as well (a dead end must not swallow it).
      ++stats_.route_fallback;
      from = kLocalPeer;
    }
    if (bool* flooded = seen_.Find(Short(id))) *flooded = true;
    if (!superseded) Store(id, kept ? kept : Keep(id, bytes), hops, now);
    Broadcast(id, bytes, from, hops, now, out);
  }

  void Broadcast(const MessageId& id, std::span<const uint8_t> bytes, PeerId from, uint32_t hops, int64_t now,
                 std::vector<Action>& out) {
    Bytes frame;
    lazy_scratch_.clear();
    for (auto& [peer_id, peer] : peers_) {
      if (peer_id == from || !peer.ready) continue;
      if (peer.eager) {
        if (frame.empty()) frame = EncodeMessageFrame(hops + 1, bytes);
        ++stats_.eager_sent;
        Emit<SendFrame>(out, {peer_id, frame});
      } else {
        lazy_scratch_.push_back({peer_id, &peer});
      }
    }
    // IHAVEs to lazy_fanout lazy peers drawn at random (the first ones of a partial shuffle).
    size_t announce = lazy_scratch_.size();
    if (config_.lazy_fanout > 0 && announce > config_.lazy_fanout) {
      announce = config_.lazy_fanout;
      for (size_t i = 0; i < announce; ++i) {
        std::swap(lazy_scratch_[i], lazy_scratch_[i + random_() % (lazy_scratch_.size() - i)]);
      }
    }
    for (size_t i = 0; i < announce; ++i) QueueIhave(lazy_scratch_[i].first, *lazy_scratch_[i].second, id, now, out);
  }

  size_t EagerLinks() const {
    return static_cast<size_t>(
        std::count_if(peers_.begin(), peers_.end(), [](const auto& p) { return p.second.ready && p.second.eager; }));
  }

  // Lazy announcements wait ihave_delay_ms from the first id queued, or until an IHAVE is full.
  void QueueIhave(PeerId peer_id, Peer& peer, const MessageId& id, int64_t now, std::vector<Action>& out) {
    if (peer.pending_ihave.empty()) {
      peer.ihave_due_ms = now + config_.ihave_delay_ms;
      Due(peer.ihave_due_ms);
      peer.pending_ihave.reserve(4);  // an IHAVE usually holds a few ids: one allocation, not three
    }
    peer.pending_ihave.push_back(id);
    if (peer.pending_ihave.size() >= limits::kMaxIhaveIds || config_.ihave_delay_ms <= 0) {
      FlushIhave(peer_id, peer, out);
    }
  }

  void FlushIhave(PeerId peer_id, Peer& peer, std::vector<Action>& out) {
    if (peer.pending_ihave.empty()) return;
    stats_.ihave_ids_sent += peer.pending_ihave.size();
    Send(peer_id, IhaveFrame{std::move(peer.pending_ihave)}, out);
    peer.pending_ihave.clear();
  }

  static uint64_t RttRank(const Peer& peer) {
    return peer.rtt_ms < 0 ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(peer.rtt_ms);
  }

  void SendGrafts(int64_t now, std::vector<Action>& out) {
    std::map<PeerId, std::vector<MessageId>> grafts;
    std::vector<MessageId> retried;
    while (!graft_due_.empty() && graft_due_.begin()->first <= now) {
      const MessageId id = graft_due_.begin()->second;
      graft_due_.erase(graft_due_.begin());
      auto it = missing_.find(id);
      Missing& missing = it->second;
      // The untried announcer with the shortest round trip (one not measured yet counts as the
      // slowest; the earliest announcer on a tie): its answer arrives soonest.
      auto& announcers = missing.announcers;
      size_t nearest = announcers.size();
      uint64_t nearest_rank = std::numeric_limits<uint64_t>::max();
      for (size_t i = missing.next; i < announcers.size(); ++i) {
        const auto peer = peers_.find(announcers[i]);
        if (peer == peers_.end() || !peer->second.ready) continue;
        if (nearest == announcers.size() || RttRank(peer->second) < nearest_rank) {
          nearest = i;
          nearest_rank = RttRank(peer->second);
        }
      }
      if (nearest == announcers.size()) {
        missing_.erase(it);  // every announcer tried: reconciliation will find it later
        continue;
      }
      // Tried ones stay before `next`; the others keep their order.
      std::rotate(announcers.begin() + missing.next, announcers.begin() + nearest, announcers.begin() + nearest + 1);
      grafts[announcers[missing.next++]].push_back(id);
      missing.deadline_ms = now + config_.graft_retry_ms;
      retried.push_back(id);
    }
    for (const MessageId& id : retried) graft_due_.insert({now + config_.graft_retry_ms, id});
    for (auto& [peer_id, ids] : grafts) {
      peers_.at(peer_id).eager = true;
      stats_.grafts_sent += ids.size();
      for (size_t i = 0; i < ids.size(); i += limits::kMaxGraftIds) {
        const size_t end = std::min(ids.size(), i + limits::kMaxGraftIds);
        Send(peer_id, GraftFrame{std::vector<MessageId>(ids.begin() + i, ids.begin() + end)}, out);
      }
    }
  }

  // Queues an IHAVE of `id` to every ready peer but `from`.
  void Announce(const MessageId& id, PeerId from, int64_t now, std::vector<Action>& out) {
    for (auto& [peer_id, peer] : peers_) {
      if (peer_id == from || !peer.ready) continue;
      QueueIhave(peer_id, peer, id, now, out);
    }
  }

  // ---- Anti-entropy (docs/GOSSIP.md, "Anti-entropy") ----

  // Orders, Offers and Attestations stay until they expire; Leases and Closes for the retention
  // window after their creation, so every node keeps the same set whenever it received them.
  int64_t RetainUntil(const Envelope& envelope) const {
    if (envelope.type != MessageType::kLease && envelope.type != MessageType::kClose) return envelope.expires_ms;
    const int64_t retention = std::max<int64_t>(0, config_.reconcile_retention_ms);
    const int64_t window_end = envelope.created_ms > std::numeric_limits<int64_t>::max() - retention
                                   ? std::numeric_limits<int64_t>::max()
                                   : envelope.created_ms + retention;
    return std::min(envelope.expires_ms, window_end);
  }

  bool AntiEntropyOn() const { return config_.reconcile_interval_ms >= 0; }

  // The retained indexes are sorted deques: messages come nearly in created (and eviction) order,
  // so an insert lands near the back and an eviction at the front, each moving a few entries,
  // where a std::set allocated, linked and rebalanced a node per entry (a hot path in a simulated
  // network of 10,000 cores: one insert per message per node).
  template <typename T>
  static void InsertSorted(std::deque<T>& sorted, const T& value) {
    sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), value), value);
  }
  template <typename T>
  static void EraseSorted(std::deque<T>& sorted, const T& value) {
    const auto it = std::lower_bound(sorted.begin(), sorted.end(), value);
    if (it != sorted.end() && *it == value) sorted.erase(it);
  }

  void Retain(const MessageId& id, const Envelope& envelope, const SharedBytes& bytes, int64_t now) {
    if (!AntiEntropyOn() || !IsReconcilable(envelope.type) || envelope.created_ms < 0 || retained_.contains(id)) {
      return;
    }
    const int64_t evict_ms = RetainUntil(envelope);
    if (evict_ms <= now || bytes->size() > limits::kMaxRetainedBytes) return;
    // Full: the entries that would leave soonest make room.
    while (retained_.size() >= limits::kMaxRetainedItems ||
           retained_bytes_ + bytes->size() > limits::kMaxRetainedBytes) {
      drops_.Add(Drop::kRetainedFull);
      const MessageId oldest = retained_evictions_.begin()->second;
      Unretain(oldest);
    }
    const reconcile::Item item{static_cast<uint64_t>(envelope.created_ms), id};
    retained_.emplace(id, RetainedEntry{envelope.created_ms, evict_ms, bytes});
    InsertSorted(retained_items_, item);
    InsertSorted(retained_evictions_, {evict_ms, id});
    Due(evict_ms);
    retained_bytes_ += bytes->size();
    RetainedChanged();
  }

  void Unretain(const MessageId& id) {
    auto it = retained_.find(id);
    EraseSorted(retained_items_, reconcile::Item{static_cast<uint64_t>(it->second.created_ms), id});
    EraseSorted(retained_evictions_, {it->second.evict_ms, id});
    retained_bytes_ -= it->second.envelope->size();
    retained_.erase(it);
    RetainedChanged();
    ForgetOffer(id);
  }

  void ExpireRetained(int64_t now) {
    while (!retained_evictions_.empty() && retained_evictions_.begin()->first <= now) {
      const MessageId id = retained_evictions_.begin()->second;
      Unretain(id);
    }
  }

  // The sorted copy is rebuilt by the next session anyway: its memory (40 bytes a message) is
  // given back meanwhile rather than kept beside the set.
  void RetainedChanged() {
    retained_stale_ = true;
    retained_sorted_ = {};
  }

  std::span<const reconcile::Item> RetainedItems() {
    if (retained_stale_) {
      retained_sorted_.assign(retained_items_.begin(), retained_items_.end());
      retained_stale_ = false;
    }
    return retained_sorted_;
  }

  // Whether we may open a session with the peer now: one at a time, and never sooner after the
  // last than the peer accepts (kMinReconcileGapMs).
  bool MayReconcile(const Peer& peer, int64_t now) const {
    return AntiEntropyOn() && peer.ready && peer.our_round == kNoSession &&
           peer.our_start_ms <= now - limits::kMinReconcileGapMs;
  }

  void StartReconcile(PeerId peer_id, Peer& peer, int64_t now, std::vector<Action>& out) {
    if (!MayReconcile(peer, now)) return;
    peer.our_round = 0;
    peer.our_start_ms = now;
    peer.our_announced = 0;
    peer.our_last_ms = now;
    Due(now + config_.peer_timeout_ms);
    ++stats_.reconcile_sessions;
    Send(peer_id, ReconcileFrame{0, reconcile::Initiate(RetainedItems())}, out);
  }

  void Handle(PeerId peer_id, const ReconcileFrame& frame, int64_t now, std::vector<Action>& out) {
    Peer& peer = peers_.at(peer_id);
    if (frame.round % 2 == 0) return Respond(peer_id, peer, frame, now, out);
    // A reply in our session.
    if (peer.our_round == kNoSession || frame.round != peer.our_round + 1) {
      return Punish(peer_id, Drop::kUnsolicitedReconcile, Misbehaviour::kUnsolicited,
                    "RECONCILE round " + std::to_string(frame.round) + " answers no round we sent", out);
    }
    peer.our_last_ms = now;
    if (frame.ranges.empty()) {
      peer.our_round = kNoSession;
      return;
    }
    reconcile::Output next = reconcile::Reconcile(RetainedItems(), frame.ranges, reconcile::Role::kInitiator);
    for (const MessageId& id : next.need) QueuePull(peer, id);
    // What the peer lacks it would only find in a session of its own; a few are announced to it
    // now (it GRAFTs them), the bulk is left to its sessions, which pull at their own pace.
    for (const MessageId& id : next.have) {
      if (peer.our_announced >= limits::kMaxIhaveIds) break;
      ++peer.our_announced;
      QueueIhave(peer_id, peer, id, now, out);
    }
    if (next.ranges.empty()) {
      peer.our_round = kNoSession;
    } else if (frame.round + 1 >= limits::kMaxReconcileRounds) {
      drops_.Add(Drop::kReconcileLimit);  // given up; the next session starts over
      peer.our_round = kNoSession;
    } else {
      peer.our_round = frame.round + 1;
      Send(peer_id, ReconcileFrame{peer.our_round, std::move(next.ranges)}, out);
    }
    PullMore(peer_id, peer, now, out);
  }

  // A round of the peer's session with us: answered at once, whatever it asks, in work bounded
  // by our set (reconcile.h); the session itself is bounded in rounds (the frame decoder) and
  // in how often the peer may open one.
  void Respond(PeerId peer_id, Peer& peer, const ReconcileFrame& frame, int64_t now, std::vector<Action>& out) {
    if (frame.round == 0) {
      if (peer.their_start_ms > now - limits::kMinReconcileGapMs) {
        return Punish(peer_id, Drop::kReconcileLimit, Misbehaviour::kFlood, "reconciliation sessions too often", out);
      }
      peer.their_start_ms = now;
      peer.their_next_round = 0;
    }
    if (frame.round != peer.their_next_round) {
      return Punish(peer_id, Drop::kUnsolicitedReconcile, Misbehaviour::kUnsolicited,
                    "RECONCILE round " + std::to_string(frame.round) + " out of order", out);
    }
    reconcile::Output reply = reconcile::Reconcile(RetainedItems(), frame.ranges, reconcile::Role::kResponder);
    for (const reconcile::Range& range : reply.ranges) peer.serve_budget += range.ids.size();
    peer.serve_budget = std::min<uint64_t>(peer.serve_budget, limits::kMaxRetainedItems);
    peer.their_next_round = reply.ranges.empty() ? kNoSession : frame.round + 2;
    Send(peer_id, ReconcileFrame{frame.round + 1, std::move(reply.ranges)}, out);
  }

  void QueuePull(Peer& peer, const MessageId& id) {
    if (seen_.Contains(Short(id)) || pulling_.contains(id)) return;
    if (pulling_.size() >= limits::kMaxPullIds) return drops_.Add(Drop::kMissingFull);
    pulling_.insert(id);
    peer.to_pull.push_back(id);
  }

  // Asks for the next batch of missing ids once the previous one is answered.
  void PullMore(PeerId peer_id, Peer& peer, int64_t now, std::vector<Action>& out) {
    if (!peer.wanted.empty()) return;
    ReconcileItemsFrame request;
    while (!peer.to_pull.empty() && request.want.size() < limits::kMaxReconcileWantIds) {
      const MessageId id = peer.to_pull.front();
      peer.to_pull.pop_front();
      if (seen_.Contains(Short(id))) {
        pulling_.erase(id);
        continue;
      }
      request.want.push_back(id);
      peer.wanted.insert(id);
    }
    if (request.want.empty()) return;
    peer.wanted_since_ms = now;
    Due(now + config_.peer_timeout_ms);
    Send(peer_id, request, out);
  }

  void Handle(PeerId peer_id, const ReconcileItemsFrame& frame, int64_t now, std::vector<Action>& out) {
    Peer& peer = peers_.at(peer_id);
    if (frame.want.empty() && frame.items.empty() && !frame.done) {
      return Punish(peer_id, Drop::kUnsolicitedReconcile, Misbehaviour::kUnsolicited, "empty RECONCILE_ITEMS", out);
    }
    if (!frame.items.empty() || frame.done) {
      if (peer.wanted.empty()) {
        return Punish(peer_id, Drop::kUnsolicitedReconcile, Misbehaviour::kUnsolicited,
                      "RECONCILE_ITEMS answering no request", out);
      }
      for (const Bytes& item : frame.items) {
        const std::optional<MessageId> id = WireMessageId(item);
        if (!id || peer.wanted.erase(*id) == 0) {
          return Punish(peer_id, Drop::kUnsolicitedReconcile, Misbehaviour::kUnsolicited, "an item not asked for", out);
        }
        pulling_.erase(*id);
        Ingest(peer_id, item, 0, /*reconciled=*/true, now, out);
      }
      if (frame.done) {  // what it did not send, it no longer has
        for (const MessageId& id : peer.wanted) pulling_.erase(id);
        peer.wanted.clear();
      }
      PullMore(peer_id, peer, now, out);
    }
    if (!frame.want.empty()) Serve(peer_id, peer, frame.want, out);
  }

  // Answers a request with the envelopes still retained, in as many frames as the frame limit
  // needs; the last says done. A peer may ask for no more ids than its sessions were told of.
  void Serve(PeerId peer_id, Peer& peer, const std::vector<MessageId>& want, std::vector<Action>& out) {
    constexpr size_t kFrameOverhead = 8;  // array, type, empty want, items header, done
    constexpr size_t kItemOverhead = 5;   // a bin32 header at most
    ReconcileItemsFrame answer;
    size_t bytes = kFrameOverhead;
    for (const MessageId& id : want) {
      if (peer.serve_budget == 0) {
        Punish(peer_id, Drop::kReconcileLimit, Misbehaviour::kFlood, "asked for ids it was never told of", out);
        break;
      }
      --peer.serve_budget;
      auto it = retained_.find(id);
      if (it == retained_.end()) continue;  // gone meanwhile
      const Bytes& envelope = *it->second.envelope;
      if (answer.items.size() == limits::kMaxReconcileItems ||
          bytes + envelope.size() + kItemOverhead > limits::kMaxFrameBytes) {
        Send(peer_id, answer, out);
        answer.items.clear();
        bytes = kFrameOverhead;
      }
      answer.items.push_back(envelope);
      bytes += envelope.size() + kItemOverhead;
      ++stats_.reconcile_served;
    }
    answer.done = true;
    Send(peer_id, answer, out);
  }

  void ReconcileTimers(int64_t now, std::vector<Action>& out) {
    std::vector<PeerId> idle;
    for (auto& [peer_id, peer] : peers_) {
      if (!peer.ready) continue;
      // A silent peer's session and requests are given up after the peer timeout.
      if (peer.our_round != kNoSession && now - peer.our_last_ms >= config_.peer_timeout_ms) {
        peer.our_round = kNoSession;
      }
      if (!peer.wanted.empty() && now - peer.wanted_since_ms >= config_.peer_timeout_ms) {
        for (const MessageId& id : peer.wanted) pulling_.erase(id);
        peer.wanted.clear();
        PullMore(peer_id, peer, now, out);
      }
      if (MayReconcile(peer, now)) idle.push_back(peer_id);
    }
    if (config_.reconcile_interval_ms <= 0) return;
    if (next_reconcile_ms_ == std::numeric_limits<int64_t>::min()) next_reconcile_ms_ = now + config_.reconcile_interval_ms;
    if (now < next_reconcile_ms_) return;
    next_reconcile_ms_ = now + config_.reconcile_interval_ms;
    if (idle.empty()) return;
    const PeerId chosen = idle[random_() % idle.size()];
    StartReconcile(chosen, peers_.at(chosen), now, out);
  }

  // ---- Liveness and dialling ----

  void CheckLiveness(int64_t now, std::vector<Action>& out) {
    std::vector<std::pair<PeerId, Drop>> dead;
    for (auto& [peer_id, peer] : peers_) {
      if (!peer.ready) {
        if (now - peer.connected_ms >= config_.hello_timeout_ms) dead.push_back({peer_id, Drop::kHelloTimeout});
        continue;
      }
      if (now - peer.last_heard_ms >= config_.peer_timeout_ms) {
        dead.push_back({peer_id, Drop::kPeerTimeout});
        continue;
      }
      if (now >= peer.next_ping_ms) {
        peer.ping_nonce = next_ping_nonce_++;
        peer.ping_sent_ms = now;
        peer.next_ping_ms = now + config_.ping_interval_ms;
        Send(peer_id, PingFrame{*peer.ping_nonce}, out);
      }
    }
    for (const auto& [peer_id, reason] : dead) {
      drops_.Add(reason);
      CloseLink(peer_id, std::string(ToString(reason)), now, out);
    }
    if (pending_dials_ == 0) return;
    for (auto& [address, dial] : dials_) {
      if (dial.pending && now - dial.pending_since_ms >= config_.hello_timeout_ms) Backoff(dial, now);
    }
  }

  // The addresses of the peers we have a link with (dialled, or advertised in their HELLO).
  std::set<std::string> LinkedAddresses() const {
    std::set<std::string> linked;
    for (const auto& [id, peer] : peers_) {
      if (!peer.dialed_address.empty()) linked.insert(peer.dialed_address);
      if (peer.ready && !peer.hello.address.empty()) linked.insert(peer.hello.address);
    }
    return linked;
  }

  void StartDial(const std::string& address, Dial& dial, int64_t now, std::vector<Action>& out) {
    SetPending(dial, true);
    dial.pending_since_ms = now;
    Emit<ConnectTo>(out, {address});
  }

  // Known addresses we may dial now: no link to them, none being dialled, backoff passed.
  std::vector<std::map<std::string, Dial>::iterator> Dialable(int64_t now) {
    const std::set<std::string> linked = LinkedAddresses();
    std::vector<std::map<std::string, Dial>::iterator> dialable;
    for (auto it = dials_.begin(); it != dials_.end(); ++it) {
      if (!it->second.pending && it->second.next_try_ms <= now && !linked.contains(it->first)) dialable.push_back(it);
    }
    return dialable;
  }

  // Picks at random among the dialable addresses: in the order of the map, every node of a network
  // whose nodes know the same addresses would dial the same few first.
  void DialMore(int64_t now, std::vector<Action>& out) {
    size_t outbound = CountLinks(Direction::kOutbound);
    if (outbound >= config_.target_outbound) return;
    auto dialable = Dialable(now);
    while (outbound < config_.target_outbound && !dialable.empty()) {
      const size_t pick = random_() % dialable.size();
      StartDial(dialable[pick]->first, dialable[pick]->second, now, out);
      dialable[pick] = dialable.back();
      dialable.pop_back();
      ++outbound;
    }
  }

  // Outbound rotation (docs/GOSSIP.md, "Peer exchange, dialling, liveness"): with the outbound
  // links at target, one of them, at random, makes way for a known address we have no link with,
  // also at random. Only links the node chose are rotated, and only into links it chooses, so
  // inbound peers gain no say over its outbound set; one link per period bounds the churn.
  void RotateOutbound(int64_t now, std::vector<Action>& out) {
    if (config_.outbound_rotation_ms <= 0) return;
    if (next_rotation_ms_ == std::numeric_limits<int64_t>::min()) next_rotation_ms_ = now + config_.outbound_rotation_ms;
    if (now < next_rotation_ms_) return;
    next_rotation_ms_ = now + config_.outbound_rotation_ms;
    if (CountLinks(Direction::kOutbound) < config_.target_outbound) return;  // DialMore fills it
    std::vector<PeerId> outbound;
    for (const auto& [peer_id, peer] : peers_) {
      if (peer.ready && peer.direction == Direction::kOutbound) outbound.push_back(peer_id);
    }
    if (outbound.empty()) return;
    const auto candidates = Dialable(now);
    if (candidates.empty()) return;
    const PeerId old = outbound[random_() % outbound.size()];
    auto chosen = candidates[random_() % candidates.size()];
    ++stats_.rotations;
    CloseLink(old, "outbound rotation", now, out);
    StartDial(chosen->first, chosen->second, now, out);
  }

  market::Identity identity_;
  GossipConfig config_;
  PeerMap<Peer> peers_;  // ordered: the same inputs give the same actions in the same order
  std::map<PublicKey, PeerId> identities_;  // ready peers by identity
  std::map<std::string, Dial> dials_;       // addresses we may dial
  mutable int64_t dial_deadline_ = 0;       // DialDeadline's kept result
  mutable bool dial_deadline_stale_ = true;
  mutable int64_t deadline_ = 0;            // NextDeadline's kept value, a lower bound
  mutable bool deadline_stale_ = true;
  size_t pending_dials_ = 0;                // dials_ entries with pending set
  std::set<std::string> self_addresses_;    // addresses that turned out to be this node
  ExpiringMap<ShortId, bool, ShortIdHash> seen_;
  ExpiringMap<ShortId, ShortId, ShortIdHash> nonces_;
  ExpiringMap<ShortId, PeerId, ShortIdHash> routes_;
  // Bids this core verified and Accepts it verified or published, by id: the BLAKE2b of their
  // envelope bytes.
  ExpiringMap<ShortId, MessageId, ShortIdHash> answered_;
  std::map<MessageId, Missing> missing_;
  std::set<std::pair<int64_t, MessageId>> graft_due_;  // (deadline, id) of every missing_ entry
  std::unordered_map<MessageId, Stored, IdHash> store_;
  // The one Offer kept per provider: (created, id) by signer, and the signer of each.
  std::unordered_map<PublicKey, std::pair<int64_t, MessageId>, IdHash> newest_offer_;
  std::unordered_map<MessageId, PublicKey, IdHash> offer_signer_;
  std::deque<std::pair<int64_t, MessageId>> store_order_;  // (evict at, id), in insertion order
  size_t stored_bytes_ = 0;
  // Anti-entropy: the reconcilable messages, by id, in (created, id) order and by eviction time.
  std::unordered_map<MessageId, RetainedEntry, IdHash> retained_;
  std::deque<reconcile::Item> retained_items_;                   // sorted, unique (InsertSorted)
  std::deque<std::pair<int64_t, MessageId>> retained_evictions_;  // sorted, unique
  size_t retained_bytes_ = 0;
  std::vector<reconcile::Item> retained_sorted_;  // retained_items_ as a vector, rebuilt when stale
  bool retained_stale_ = true;
  std::unordered_set<MessageId, IdHash> pulling_;  // every peer's to_pull and wanted ids
  int64_t next_reconcile_ms_ = std::numeric_limits<int64_t>::min();
  int64_t next_rotation_ms_ = std::numeric_limits<int64_t>::min();
  std::mt19937_64 random_;
  std::vector<std::pair<PeerId, Peer*>> lazy_scratch_;  // Broadcast's lazy peers (kept to reuse its capacity)
  IhaveFrame ihave_in_;  // HandleFrame's IHAVE (kept to reuse its capacity)
  uint64_t next_ping_nonce_ = 1;
  DropCounters drops_;
  GossipStats stats_;
};

GossipCore::GossipCore(const market::Identity& identity, GossipConfig config)
    : impl_(std::make_unique<Impl>(identity, std::move(config))) {}
GossipCore::~GossipCore() = default;
void GossipCore::AddAddress(const std::string& address) { impl_->AddAddress(address); }
void GossipCore::OnConnected(PeerId peer, Direction direction, const std::string& address, int64_t now_ms,
                             std::vector<Action>& out) {
  impl_->OnConnected(peer, direction, address, now_ms, out);
}
void GossipCore::OnDisconnected(PeerId peer, int64_t now_ms) { impl_->OnDisconnected(peer, now_ms); }
void GossipCore::OnConnectFailed(const std::string& address, int64_t now_ms) {
  impl_->OnConnectFailed(address, now_ms);
}
void GossipCore::HandleFrame(PeerId peer, std::span<const uint8_t> frame, int64_t now_ms, std::vector<Action>& out) {
  impl_->HandleFrame(peer, frame, now_ms, out);
}
void GossipCore::Tick(int64_t now_ms, std::vector<Action>& out) { impl_->Tick(now_ms, out); }
int64_t GossipCore::NextDeadline() const { return impl_->NextDeadline(); }
Status GossipCore::Publish(std::span<const uint8_t> envelope, int64_t now_ms, std::vector<Action>& out,
                           Signatures signatures) {
  return impl_->Publish(envelope, now_ms, out, signatures);
}
Status GossipCore::Retain(std::span<const uint8_t> envelope, int64_t now_ms) { return impl_->Retain(envelope, now_ms); }
const PublicKey& GossipCore::identity() const { return impl_->identity(); }
const DropCounters& GossipCore::drops() const { return impl_->drops(); }
const GossipStats& GossipCore::stats() const { return impl_->stats(); }
size_t GossipCore::ReadyPeers() const { return impl_->ReadyPeers(); }
bool GossipCore::IsEager(PeerId peer) const { return impl_->IsEager(peer); }
bool GossipCore::IsReady(PeerId peer) const { return impl_->IsReady(peer); }
bool GossipCore::HasSeen(const MessageId& id) const { return impl_->HasSeen(id); }
size_t GossipCore::RetainedCount() const { return impl_->RetainedCount(); }
size_t GossipCore::StoredCount() const { return impl_->StoredCount(); }

}  // namespace gpumart::gossip
