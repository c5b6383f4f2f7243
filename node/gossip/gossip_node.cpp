#include "node/gossip/gossip_node.h"

#include <zmq.h>

#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include "node/gossip/zap_handler.h"

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer's annotation interface (no public header declares these two).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#endif

namespace gpumart::gossip {

std::string_view ToString(TransportDrop reason) {
  switch (reason) {
    case TransportDrop::kSendQueueFull: return "send_queue_full";
    case TransportDrop::kPeerUnreachable: return "peer_unreachable";
    case TransportDrop::kClosedLink: return "closed_link";
    case TransportDrop::kIdentityMismatch: return "identity_mismatch";
    case TransportDrop::kBadAddress: return "bad_address";
    case TransportDrop::kBannedPeer: return "banned_peer";
    case TransportDrop::kNoUserId: return "no_user_id";
    case TransportDrop::kMultipart: return "multipart";
    case TransportDrop::kDeniedPeer: return "denied_peer";
  }
  return "unknown";
}

namespace {
// ZMQ_ZAP_ENFORCE_DOMAIN is draft API in Debian's zmq.h; libzmq 4.3.4 takes the option number. With
// it a CURVE server refuses every client when no ZAP handler answers, instead of admitting all.
constexpr int kZmqZapEnforceDomain = 93;
// The DEALER socket events that end an outbound link.
constexpr int kLinkLostEvents = ZMQ_EVENT_CLOSED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

// The bytes of a received frame, for the core. libzmq's I/O thread decrypted them (CURVE) and
// handed them over through its own lock-free queue, which ThreadSanitizer cannot see: each read
// here would be a race report (suppressed, but each one costs TSan a search that grows with the
// number of reports, which slowed a 32-node test thirty-fold). So under TSan the frame is copied
// out with that one hand-off's reads ignored; elsewhere it is read in place. `copy` holds it.
std::span<const uint8_t> FrameBytes(const zmq::message_t& payload, bool multipart, [[maybe_unused]] Bytes& copy) {
  // A multi-part message is not a frame: the core sees empty bytes and calls it malformed.
  if (multipart) return {};
  const auto* data = static_cast<const uint8_t*>(payload.data());
#if defined(__SANITIZE_THREAD__)
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  copy.assign(data, data + payload.size());
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  return copy;
#else
  return {data, payload.size()};
#endif
}

void SetCommonOptions(zmq::socket_t& socket, const GossipNodeConfig& config) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits::kMaxFrameBytes));
  socket.set(zmq::sockopt::handshake_ivl, config.handshake_ivl_ms);
  socket.set(zmq::sockopt::sndhwm, config.peer_hwm);
  socket.set(zmq::sockopt::rcvhwm, config.peer_hwm);
}
}  // namespace

class GossipNode::Impl {
 public:
  Impl(const market::Identity& identity, GossipNodeConfig config)
      : identity_(identity), config_(std::move(config)), curve_(CurveKeys::Derive(identity)), scorer_(config_.score) {}

  void Init(actors::Handlers& on, actors::ActorContext& ctx) {
    ctx_ = &ctx;
    if (Status status = ParseDenyList(config_.deny, denied_); !status.ok()) {
      throw std::invalid_argument("gossip: " + status.message());
    }
    // The ZAP handler first: a CURVE server bound without one would admit every key.
    zap_ = std::make_unique<ZapHandler>(ctx.zmq_context(), [this](const CurveKey& key, const std::string& ip) {
      if (denied_.contains(key) || IsBanned(key, ip)) return false;
      return !config_.admit || config_.admit(key);
    });
    ctx.Watch(zap_->socket(), [this](actors::ActorContext&) { zap_->HandleRequests(); });

    std::string advertised;
    if (!config_.listen_endpoint.empty()) {
      router_ = std::make_unique<zmq::socket_t>(ctx.zmq_context(), zmq::socket_type::router);
      SetCommonOptions(*router_, config_);
      const int one = 1;
      if (zmq_setsockopt(router_->handle(), kZmqZapEnforceDomain, &one, sizeof one) != 0) {
        throw std::runtime_error("gossip: libzmq refuses ZMQ_ZAP_ENFORCE_DOMAIN");
      }
      router_->set(zmq::sockopt::router_mandatory, 1);  // unroutable and full: errors, not silence
      router_->set(zmq::sockopt::curve_server, 1);
      router_->set(zmq::sockopt::curve_secretkey, curve_.secret_z85());
      router_->set(zmq::sockopt::zap_domain, "gpumart");
      router_->bind(config_.listen_endpoint);
      advertised = config_.advertised_endpoint.empty() ? router_->get(zmq::sockopt::last_endpoint)
                                                       : config_.advertised_endpoint;
      ctx.Watch(*router_, [this](actors::ActorContext&) {
        OnRouterReadable();
        ArmTick();
      });
    }
    address_ = advertised.empty() ? std::string() : FormatPeerAddress(advertised, identity_.public_key());
    GossipConfig core_config = config_.core;
    core_config.advertised_address = address_;
    core_ = std::make_unique<GossipCore>(identity_, core_config);
    for (const auto& address : config_.bootstrap) core_->AddAddress(address);
    for (const Bytes& envelope : config_.retain) {
      ++(core_->Retain(envelope, Now()).ok() ? retained_seeded_ : retain_refused_);
    }
    config_.retain.clear();
    config_.retain.shrink_to_fit();

    on.OnRequest<PublishMessage>([this](PublishMessage& publish) {
      Status status = core_->Publish(publish.envelope, Now(), actions_, publish.signatures);
      Execute();
      if (status.ok() && config_.on_publish) RunPublished(publish.envelope);
      ArmTick();
      return status;
    });
    on.OnRequest<GetGossipStatus>([this](GetGossipStatus&) { return Snapshot(); });
    on.OnRequest<SetDenyList>([this](SetDenyList& request) {
      Status status = SetDenied(request.identities);
      ArmTick();
      return status;
    });
    ArmTick();  // the first tick dials the bootstrap addresses
  }

  ~Impl() {
    // Watches die with the state; close every socket before the ZAP handler goes.
    links_.clear();
    router_.reset();
  }

 private:
  struct Link {
    Direction direction = Direction::kInbound;
    std::string routing_id;                 // inbound: the ROUTER's id of the connection
    std::unique_ptr<zmq::socket_t> dealer;   // outbound
    std::unique_ptr<zmq::socket_t> monitor;  // outbound: the DEALER's socket events
    std::string address;                     // outbound: the dialled peer address
    CurveKey key{};                          // the CURVE key the link authenticated
    std::optional<PublicKey> identity;       // once its HELLO checked against `key`
    std::string ip;                          // the peer's IP (inbound), the dialled host (outbound)
  };

  // Scorer keys: a CURVE key as 64 hex digits, an address as "ip:" + address.
  static std::string AddressScoreKey(const std::string& ip) { return "ip:" + ip; }
  bool IsBanned(const CurveKey& key, const std::string& ip) const {
    if (scorer_.IsBanned(market::ToHex(key), Now())) return true;
    return config_.ban_addresses && !ip.empty() && scorer_.IsBanned(AddressScoreKey(ip), Now());
  }
  // Scores a verdict against the key and the address; a ban closes every link of either.
  void Penalize(const CurveKey& key, const std::string& ip, Misbehaviour reason) {
    const bool key_banned = scorer_.Penalize(market::ToHex(key), reason, Now());
    const bool ip_banned = config_.ban_addresses && !ip.empty() && scorer_.Penalize(AddressScoreKey(ip), reason, Now());
    bans_ += key_banned + ip_banned;
    if (!key_banned && !ip_banned) return;
    std::vector<PeerId> peers;
    for (const auto& [peer, link] : links_) {
      if ((key_banned && link.key == key) || (ip_banned && link.ip == ip)) peers.push_back(peer);
    }
    for (PeerId peer : peers) {
      core_->OnDisconnected(peer, Now());
      CloseLink(peer);
    }
  }

  // The CURVE keys of `identities` (a link's key is its identity's, see Run(PeerReady)).
  static Status ParseDenyList(const std::vector<PublicKey>& identities, std::set<CurveKey>& keys) {
    if (identities.size() > kMaxDeniedIdentities) {
      return Status::LimitExceeded("deny list: more than " + std::to_string(kMaxDeniedIdentities) + " identities");
    }
    std::set<CurveKey> parsed;
    for (const PublicKey& identity : identities) {
      const auto key = CurveKeyOf(identity);
      if (!key) return Status::InvalidArgument("deny list: not an Ed25519 public key: " + market::ToHex(identity));
      parsed.insert(*key);
    }
    keys = std::move(parsed);
    return Status::Ok();
  }

  // Lifted denials need nothing more: the core redials known addresses after its backoff, and the
  // other side may dial us as soon as ZAP admits it again.
  Status SetDenied(const std::vector<PublicKey>& identities) {
    GPUMART_RETURN_IF_ERROR(ParseDenyList(identities, denied_));
    std::vector<PeerId> peers;
    for (const auto& [peer, link] : links_) {
      if (denied_.contains(link.key)) peers.push_back(peer);
    }
    for (PeerId peer : peers) {
      core_->OnDisconnected(peer, Now());
      CloseLink(peer);
    }
    return Status::Ok();
  }

  int64_t Now() const { return ctx_->clock().NowMs(); }

  // Arms the one tick timer for the core's next deadline; called after every input to the core.
  // A timer already armed for sooner is kept (its tick finds nothing due and re-arms).
  void ArmTick() {
    const int64_t now = Now();
    const int64_t deadline = core_->NextDeadline();
    int64_t delay = kMaxTickDelayMs;
    if (deadline <= now + kMinTickDelayMs) {
      delay = kMinTickDelayMs;
    } else if (deadline < now + kMaxTickDelayMs) {
      delay = deadline - now;
    }
    const int64_t due = ctx_->clock().MonotonicMs() + delay;
    if (tick_timer_ && tick_due_ <= due) return;
    if (tick_timer_) ctx_->CancelTimer(*tick_timer_);
    tick_due_ = due;
    tick_timer_ = ctx_->StartTimer(delay, [this](actors::ActorContext&) {
      tick_timer_.reset();
      ++ticks_;
      core_->Tick(Now(), actions_);
      Execute();
      ArmTick();
    });
  }

  void CountDrop(TransportDrop reason) { ++drops_[static_cast<size_t>(reason)]; }

  GossipNodeStatus Snapshot() const {
    GossipNodeStatus s;
    s.address = address_;
    s.ready_peers = core_->ReadyPeers();
    for (const auto& [peer, link] : links_) {
      if (!core_->IsReady(peer)) continue;
      if (link.identity) s.peers.push_back(*link.identity);
      ++(link.direction == Direction::kInbound ? s.ready_inbound : s.ready_outbound);
    }
    s.links = links_.size();
    s.core_drops = core_->drops();
    s.core_stats = core_->stats();
    s.transport_drops = drops_;
    s.frames_in = frames_in_;
    s.frames_out = frames_out_;
    s.bytes_in = bytes_in_;
    s.bytes_out = bytes_out_;
    s.verdicts = verdicts_;
    s.bans = bans_;
    s.links_lost = links_lost_;
    s.ticks = ticks_;
    s.zap_admitted = zap_->admitted();
    s.zap_refused = zap_->refused();
    s.zap_malformed = zap_->malformed();
    s.denied = denied_.size();
    s.retained_seeded = retained_seeded_;
    s.retain_refused = retain_refused_;
    return s;
  }

  // Receives the rest of a multi-part message; true when there was more than one part.
  static bool DrainMore(zmq::socket_t& socket, const zmq::message_t& first) {
    bool more = first.more();
    bool had_more = more;
    while (more) {
      zmq::message_t part;
      if (!socket.recv(part, zmq::recv_flags::dontwait)) break;
      more = part.more();
    }
    return had_more;
  }

  void OnRouterReadable() {
    for (int i = 0; i < kMaxFramesPerWake; ++i) {
      zmq::message_t routing_id;
      if (!router_->recv(routing_id, zmq::recv_flags::dontwait)) return;
      if (!routing_id.more()) continue;  // libzmq always sends the id with a payload
      zmq::message_t payload;
      if (!router_->recv(payload, zmq::recv_flags::dontwait)) return;
      const bool multipart = DrainMore(*router_, payload);
      ++frames_in_;
      bytes_in_ += payload.size();
      const std::string id = routing_id.to_string();
      PeerId peer = kLocalPeer;
      if (auto it = inbound_.find(id); it != inbound_.end()) {
        peer = it->second;
      } else if (closed_set_.contains(id)) {
        CountDrop(TransportDrop::kClosedLink);
        continue;
      } else {
        // A new connection. Its key is what ZAP returned as User-Id (read from the payload
        // frame: libzmq 4.3.4 can lose the routing-id frame's metadata).
        const char* user_id = zmq_msg_gets(payload.handle(), "User-Id");
        auto key = user_id ? market::FromHex<kCurveKeyBytes>(user_id) : std::nullopt;
        if (!key) {
          CountDrop(TransportDrop::kNoUserId);
          RememberClosed(id);
          continue;
        }
        const char* peer_address = zmq_msg_gets(payload.handle(), "Peer-Address");
        const std::string ip = peer_address ? peer_address : "";
        if (denied_.contains(*key)) {  // ZAP admitted it just before the deny list changed
          CountDrop(TransportDrop::kDeniedPeer);
          RememberClosed(id);
          continue;
        }
        if (IsBanned(*key, ip)) {
          CountDrop(TransportDrop::kClosedLink);
          RememberClosed(id);
          continue;
        }
        peer = next_peer_++;
        Link link;
        link.direction = Direction::kInbound;
        link.routing_id = id;
        link.key = *key;
        link.ip = ip;
        links_.emplace(peer, std::move(link));
        inbound_.emplace(id, peer);
        core_->OnConnected(peer, Direction::kInbound, std::string(), Now(), actions_);
      }
      if (multipart) CountDrop(TransportDrop::kMultipart);
      Bytes copy;
      core_->HandleFrame(peer, FrameBytes(payload, multipart, copy), Now(), actions_);
      Execute();
    }
  }

  void OnDealerReadable(PeerId peer) {
    for (int i = 0; i < kMaxFramesPerWake; ++i) {
      auto it = links_.find(peer);
      if (it == links_.end()) return;  // closed by the previous frame's actions
      zmq::message_t payload;
      if (!it->second.dealer->recv(payload, zmq::recv_flags::dontwait)) return;
      const bool multipart = DrainMore(*it->second.dealer, payload);
      ++frames_in_;
      bytes_in_ += payload.size();
      if (multipart) CountDrop(TransportDrop::kMultipart);
      Bytes copy;
      core_->HandleFrame(peer, FrameBytes(payload, multipart, copy), Now(), actions_);
      Execute();
    }
  }

  // Runs the core's actions, including those that running them adds.
  void Execute() {
    while (!actions_.empty()) {
      std::vector<Action> batch;
      batch.swap(actions_);
      for (auto& action : batch) std::visit([this](auto& a) { Run(a); }, action);
    }
  }

  void Run(SendFrame& send) {
    auto it = links_.find(send.peer);
    if (it == links_.end()) return;
    Link& link = it->second;
    try {
      if (link.direction == Direction::kOutbound) {
        if (!link.dealer->send(zmq::buffer(send.frame), zmq::send_flags::dontwait)) {
          CountDrop(TransportDrop::kSendQueueFull);
          return;
        }
      } else {
        // With ROUTER_MANDATORY a full queue is EAGAIN on the id frame, a lost link EHOSTUNREACH.
        if (!router_->send(zmq::buffer(link.routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
          CountDrop(TransportDrop::kSendQueueFull);
          return;
        }
        router_->send(zmq::buffer(send.frame), zmq::send_flags::dontwait);
      }
      ++frames_out_;
      bytes_out_ += send.frame.size();
    } catch (const zmq::error_t& error) {
      if (error.num() != EHOSTUNREACH) throw;
      CountDrop(TransportDrop::kPeerUnreachable);
      core_->OnDisconnected(send.peer, Now());
      CloseLink(send.peer);
    }
  }

  // The core accepted (decoded and verified) these bytes, so they decode here.
  void RunPublished(const Bytes& envelope) {
    Result<market::Envelope> decoded = market::DecodeEnvelope(envelope);
    if (!decoded.ok()) return;
    config_.on_publish(Deliver{market::ComputeId(*decoded), decoded->type, envelope, kLocalPeer});
  }

  void Run(Deliver& deliver) {
    if (config_.on_deliver) config_.on_deliver(deliver);
  }

  void Run(PeerVerdict& verdict) {
    ++verdicts_;
    std::optional<CurveKey> key;
    std::string ip;
    if (auto it = links_.find(verdict.peer); it != links_.end()) {
      key = it->second.key;
      ip = it->second.ip;
    }
    if (!key && verdict.identity) key = CurveKeyOf(*verdict.identity);
    if (key) Penalize(*key, ip, verdict.reason);
  }

  void Run(ConnectTo& connect) {
    const int64_t now = Now();
    auto parsed = ParsePeerAddress(connect.address);
    std::optional<CurveKey> server_key;
    if (parsed.ok()) server_key = CurveKeyOf(parsed->identity);
    if (!server_key) {
      CountDrop(TransportDrop::kBadAddress);
      core_->OnConnectFailed(connect.address, now);
      return;
    }
    // A failed dial for the core: it backs the address off and tries again later, which is how
    // the link comes back once the denial is lifted.
    if (denied_.contains(*server_key)) {
      CountDrop(TransportDrop::kDeniedPeer);
      core_->OnConnectFailed(connect.address, now);
      return;
    }
    // The host of "tcp://host:port" (an IPv6 host is bracketed and keeps its colons).
    const std::string host = parsed->endpoint.substr(6, parsed->endpoint.rfind(':') - 6);
    if (IsBanned(*server_key, host)) {
      CountDrop(TransportDrop::kBannedPeer);
      core_->OnConnectFailed(connect.address, now);
      return;
    }
    auto dealer = std::make_unique<zmq::socket_t>(ctx_->zmq_context(), zmq::socket_type::dealer);
    try {
      SetCommonOptions(*dealer, config_);
      dealer->set(zmq::sockopt::reconnect_ivl, -1);  // the core redials, with its own backoff
      dealer->set(zmq::sockopt::curve_serverkey, Z85(*server_key));
      dealer->set(zmq::sockopt::curve_publickey, curve_.public_z85());
      dealer->set(zmq::sockopt::curve_secretkey, curve_.secret_z85());
    } catch (const zmq::error_t&) {
      CountDrop(TransportDrop::kBadAddress);
      core_->OnConnectFailed(connect.address, now);
      return;
    }
    const PeerId peer = next_peer_++;
    // The DEALER's socket events tell at once when its connection fails or is lost (a ROUTER's
    // events cannot be tied to one link; inbound losses show as EHOSTUNREACH on the next send).
    const std::string monitor_endpoint = "inproc://gossip-link-monitor-" + std::to_string(peer);
    auto monitor = std::make_unique<zmq::socket_t>(ctx_->zmq_context(), zmq::socket_type::pair);
    try {
      if (zmq_socket_monitor(dealer->handle(), monitor_endpoint.c_str(), kLinkLostEvents) != 0) throw zmq::error_t();
      monitor->set(zmq::sockopt::linger, 0);
      monitor->connect(monitor_endpoint);
      dealer->connect(parsed->endpoint);
    } catch (const zmq::error_t&) {
      zmq_socket_monitor(dealer->handle(), nullptr, 0);
      CountDrop(TransportDrop::kBadAddress);
      core_->OnConnectFailed(connect.address, now);
      return;
    }
    ctx_->Watch(*dealer, [this, peer](actors::ActorContext&) {
      OnDealerReadable(peer);
      ArmTick();
    });
    ctx_->Watch(*monitor, [this, peer](actors::ActorContext&) {
      OnMonitorEvent(peer);
      ArmTick();
    });
    Link link;
    link.direction = Direction::kOutbound;
    link.dealer = std::move(dealer);
    link.monitor = std::move(monitor);
    link.address = connect.address;
    link.key = *server_key;
    link.ip = host;
    links_.emplace(peer, std::move(link));
    // Connecting is asynchronous: the HELLO waits in the DEALER's queue until the link is up, and
    // the core's hello timeout ends a dial that never completes.
    core_->OnConnected(peer, Direction::kOutbound, connect.address, now, actions_);
  }

  void Run(DisconnectPeer& disconnect) { CloseLink(disconnect.peer); }

  // The core accepted a HELLO: it must come from the identity whose key the link authenticated.
  void Run(PeerReady& ready) {
    auto it = links_.find(ready.peer);
    if (it == links_.end()) return;
    const auto claimed = CurveKeyOf(ready.hello.identity);
    if (claimed && *claimed == it->second.key) {
      it->second.identity = ready.hello.identity;
      return;
    }
    CountDrop(TransportDrop::kIdentityMismatch);
    const CurveKey key = it->second.key;
    const std::string ip = it->second.ip;
    core_->OnDisconnected(ready.peer, Now());
    CloseLink(ready.peer);
    Penalize(key, ip, Misbehaviour::kBadHello);
  }

  // An outbound link's connection failed, closed, or its CURVE handshake failed (e.g. the server
  // refused our key): the core forgets it and, if it never got ready, backs its address off.
  void OnMonitorEvent(PeerId peer) {
    auto it = links_.find(peer);
    if (it == links_.end()) return;
    bool lost = false;
    for (int i = 0; i < kMaxFramesPerWake; ++i) {
      zmq::message_t event;
      if (!it->second.monitor->recv(event, zmq::recv_flags::dontwait)) break;
      DrainMore(*it->second.monitor, event);  // the second part is the endpoint
      uint16_t number = 0;
      if (event.size() >= sizeof number) std::memcpy(&number, event.data(), sizeof number);
      if (number & kLinkLostEvents) lost = true;
    }
    if (!lost) return;
    ++links_lost_;
    const bool was_ready = core_->IsReady(peer);
    const std::string address = it->second.address;
    core_->OnDisconnected(peer, Now());
    if (!was_ready) core_->OnConnectFailed(address, Now());
    CloseLink(peer);
  }

  void CloseLink(PeerId peer) {
    auto it = links_.find(peer);
    if (it == links_.end()) return;
    if (it->second.dealer) {
      ctx_->Unwatch(*it->second.dealer);
      ctx_->Unwatch(*it->second.monitor);
      zmq_socket_monitor(it->second.dealer->handle(), nullptr, 0);
    } else {
      inbound_.erase(it->second.routing_id);
      RememberClosed(it->second.routing_id);
    }
    links_.erase(it);
  }

  void RememberClosed(const std::string& routing_id) {
    if (!closed_set_.insert(routing_id).second) return;
    closed_order_.push_back(routing_id);
    if (closed_order_.size() > kMaxClosedLinks) {
      closed_set_.erase(closed_order_.front());
      closed_order_.pop_front();
    }
  }

  const market::Identity identity_;
  GossipNodeConfig config_;  // retain is emptied once seeded; the rest never changes
  const CurveKeys curve_;
  PeerScorer scorer_;
  std::set<CurveKey> denied_;  // the deny list, as CURVE keys
  actors::ActorContext* ctx_ = nullptr;
  std::unique_ptr<ZapHandler> zap_;  // declared before the sockets: closed last
  std::unique_ptr<zmq::socket_t> router_;
  std::unique_ptr<GossipCore> core_;
  std::string address_;
  std::map<PeerId, Link> links_;
  std::unordered_map<std::string, PeerId> inbound_;  // routing id -> link
  std::unordered_set<std::string> closed_set_;
  std::deque<std::string> closed_order_;
  PeerId next_peer_ = 1;
  std::vector<Action> actions_;
  std::array<uint64_t, kTransportDropCount> drops_{};
  uint64_t bytes_in_ = 0, bytes_out_ = 0;  // frame payloads (after CURVE), as frames_in_/frames_out_ count them
  uint64_t frames_in_ = 0, frames_out_ = 0, verdicts_ = 0, bans_ = 0, links_lost_ = 0, ticks_ = 0;
  uint64_t retained_seeded_ = 0, retain_refused_ = 0;
  std::optional<actors::TimerId> tick_timer_;  // armed by ArmTick
  int64_t tick_due_ = 0;                       // when it fires (monotonic ms)
};

GossipNode::GossipNode(const market::Identity& identity, GossipNodeConfig config)
    : impl_(std::make_unique<Impl>(identity, std::move(config))) {}
GossipNode::~GossipNode() = default;
void GossipNode::Init(actors::Handlers& on, actors::ActorContext& ctx) { impl_->Init(on, ctx); }

}  // namespace gpumart::gossip
