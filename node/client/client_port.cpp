#include "node/client/client_port.h"

#include <arpa/inet.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <optional>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "actors/clock.h"
#include "market/boundary.h"
#include "market/codec.h"
#include "node/gossip/curve_keys.h"
#include "node/gossip/gossip_node.h"

namespace gpumart::client {
namespace {

using market::MessageId;
using market::MessageType;
using market::PublicKey;

void Bump(std::atomic<uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

Bytes IdBytes(const MessageId& id) { return Bytes(id.begin(), id.end()); }

std::string Short(const PublicKey& key) { return market::ToHex(key).substr(0, 16) + "…"; }

}  // namespace

bool IsLoopbackEndpoint(std::string_view endpoint) {
  constexpr std::string_view kTcp = "tcp://";
  if (endpoint.substr(0, kTcp.size()) != kTcp) return false;
  std::string_view host = endpoint.substr(kTcp.size());
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return close != std::string_view::npos && host.substr(1, close - 1) == "::1";
  }
  host = host.substr(0, host.rfind(':'));
  if (host == "localhost") return true;
  // An IPv4 address in 127.0.0.0/8, not a name that merely starts with "127." (it could resolve
  // anywhere).
  in_addr address{};
  const std::string text(host);
  return inet_pton(AF_INET, text.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

class ClientPort::Impl {
 public:
  Impl(const market::Identity& identity, ClientPortConfig config, std::shared_ptr<ClientPortCounters> counters)
      : identity_(identity), config_(std::move(config)), counters_(std::move(counters)) {}

  void Init(actors::Handlers& on, actors::ActorContext& ctx) {
    outbox_ = std::make_unique<actors::Outbox>(ctx.zmq_context());
    router_ = std::make_unique<zmq::socket_t>(ctx.zmq_context(), zmq::socket_type::router);
    router_->set(zmq::sockopt::linger, 0);
    router_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits::kMaxTransportBytes));
    router_->set(zmq::sockopt::sndhwm, kClientSendHwm);
    const bool curve = config_.curve;
    if (curve) {
      // Off loopback every link is encrypted and the node authenticated by its identity key
      // (clients are anonymous: what they may change is decided by the signatures they send).
      const gossip::CurveKeys keys = gossip::CurveKeys::Derive(identity_);
      router_->set(zmq::sockopt::curve_server, 1);
      router_->set(zmq::sockopt::curve_secretkey, keys.secret_z85());
      router_->set(zmq::sockopt::zap_domain, "gpumart-client");
    }
    router_->bind(config_.listen);  // throws: the spawn fails with the reason
    const std::string bound = router_->get(zmq::sockopt::last_endpoint);
    address_ = curve ? gossip::FormatPeerAddress(bound, identity_.public_key()) : bound;
    ctx.Watch(*router_, [this](actors::ActorContext& self) { OnReadable(self); });
    ctx.StartPeriodicTimer(kClientExpiryCheckMs, [this](actors::ActorContext&) { Expire(Now()); });
    on.On<ClientPortStart>([this](ClientPortStart& start) { gossip_ = start.gossip; });
    on.On<ClientDelivery>([this](ClientDelivery& delivery) { OnDelivery(delivery.delivery); });
    on.OnRequest<GetClientAddress>([this](GetClientAddress&) { return address_; });
  }

  ~Impl() {
    router_.reset();
    outbox_.reset();
  }

 private:
  struct Connection {
    int64_t last_heard_ms = 0;
    double tokens = 0;
    int64_t refilled_ms = 0;
    std::set<MessageId> orders;  // subscribed
  };
  struct Subscription {
    // Routing ids. Several: anyone can publish an Order's bytes again (gossip shows them to
    // everyone), which must not take its events away from the tenant's own connection.
    std::vector<std::string> connections;
    int64_t expires_ms = 0;
    // When the port first took the Order, for submit-to-lease; observed once, at its first Lease.
    std::chrono::steady_clock::time_point taken;
    bool lease_pushed = false;
  };
  struct KnownBid {
    MessageId order_id{};
    PublicKey tenant{};
    PublicKey provider{};
    int64_t expires_ms = 0;
  };

  static int64_t Now() { return SystemClock::Instance().NowMs(); }

  // ---- Transport ----

  void OnReadable(actors::ActorContext&) {
    for (int i = 0; i < kMaxFramesPerWake; ++i) {
      zmq::message_t routing;
      if (!router_->recv(routing, zmq::recv_flags::dontwait)) return;
      std::vector<zmq::message_t> parts;
      while (router_->get(zmq::sockopt::rcvmore)) {
        zmq::message_t part;
        if (!router_->recv(part, zmq::recv_flags::dontwait)) break;
        // More parts than one frame are malformed; only the first is kept (to read its id).
        if (parts.size() < 2) parts.push_back(std::move(part));
      }
      const std::string connection(static_cast<const char*>(routing.data()), routing.size());
      if (parts.empty()) {
        Bump(counters_->undecodable);
        continue;
      }
      const std::span<const uint8_t> frame(static_cast<const uint8_t*>(parts[0].data()), parts[0].size());
      OnFrame(connection, frame, parts.size() > 1);
    }
  }

  void Send(const std::string& connection, const Response& response) {
    const Bytes frame = EncodeResponse(response);
    try {
      if (!router_->send(zmq::buffer(connection), zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !router_->send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait)) {
        Bump(counters_->send_dropped);
      }
    } catch (const zmq::error_t&) {
      Bump(counters_->send_dropped);
    }
  }

  void OnFrame(const std::string& connection, std::span<const uint8_t> frame, bool multipart) {
    const int64_t now = Now();
    Connection& conn = Track(connection, now);
    if (!TakeToken(conn, now)) {
      Bump(counters_->rate_limited);
      if (std::optional<uint64_t> id = PeekRequestId(frame)) {
        Reply(connection, ErrorResponse(*id, Status::Unavailable("rate limited: at most " +
                                                                 std::to_string(config_.requests_per_second) +
                                                                 " requests per second per connection")));
      }
      return;
    }
    Result<Request> request = multipart ? Result<Request>(Status::InvalidArgument("a request is one message part"))
                                        : DecodeRequest(frame);
    if (!request.ok()) {
      if (std::optional<uint64_t> id = PeekRequestId(frame)) {
        Reply(connection, ErrorResponse(*id, request.status().WithContext("bad request")));
      } else {
        Bump(counters_->undecodable);
      }
      return;
    }
    Bump(counters_->requests);
    Result<Fields> result = Status::Internal("unanswered");
    // The message boundary: a handler's exception (bad_alloc, a library's) is an error reply.
    try {
      result = Dispatch(connection, *request, now);
    } catch (...) {
      result = CurrentExceptionStatus("internal error");
    }
    if (!result.ok()) {
      Reply(connection, ErrorResponse(request->id, result.status()));
      return;
    }
    Response response;
    response.id = request->id;
    response.result = std::move(result).value();
    Reply(connection, response);
  }

  void Reply(const std::string& connection, const Response& response) {
    if (response.code != Status::Code::kOk) Bump(counters_->errors);
    Send(connection, response);
  }

  // ---- Connections ----

  Connection& Track(const std::string& connection, int64_t now) {
    auto it = connections_.find(connection);
    if (it == connections_.end()) {
      if (connections_.size() >= limits::kMaxConnections) {
        auto oldest = std::min_element(connections_.begin(), connections_.end(), [](const auto& a, const auto& b) {
          return a.second.last_heard_ms < b.second.last_heard_ms;
        });
        Forget(oldest);
      }
      it = connections_.emplace(connection, Connection{}).first;
      it->second.tokens = static_cast<double>(2 * config_.requests_per_second);
      it->second.refilled_ms = now;
      counters_->connections.store(connections_.size(), std::memory_order_relaxed);
    }
    it->second.last_heard_ms = now;
    return it->second;
  }

  bool TakeToken(Connection& conn, int64_t now) {
    const double burst = static_cast<double>(2 * config_.requests_per_second);
    if (now > conn.refilled_ms) {
      conn.tokens = std::min(burst, conn.tokens + static_cast<double>(now - conn.refilled_ms) *
                                                      static_cast<double>(config_.requests_per_second) / 1000.0);
      conn.refilled_ms = now;
    }
    if (conn.tokens < 1.0) return false;
    conn.tokens -= 1.0;
    return true;
  }

  void Forget(std::unordered_map<std::string, Connection>::iterator it) {
    for (const MessageId& order : it->second.orders) Unsubscribe(order, it->first);
    connections_.erase(it);
    counters_->connections.store(connections_.size(), std::memory_order_relaxed);
    counters_->subscriptions.store(subscriptions_.size(), std::memory_order_relaxed);
  }

  void Expire(int64_t now) {
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if (it->second.last_heard_ms + config_.idle_ms <= now) Forget(it);
      it = next;
    }
    for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
      if (it->second.expires_ms <= now) {
        for (const std::string& connection : it->second.connections) {
          if (auto conn = connections_.find(connection); conn != connections_.end()) conn->second.orders.erase(it->first);
        }
        it = subscriptions_.erase(it);
      } else {
        ++it;
      }
    }
    counters_->subscriptions.store(subscriptions_.size(), std::memory_order_relaxed);
    while (!bid_expiry_.empty() && bid_expiry_.begin()->first <= now) {
      bids_.erase(bid_expiry_.begin()->second);
      bid_expiry_.erase(bid_expiry_.begin());
    }
    while (!lease_expiry_.empty() && lease_expiry_.front().first <= now) {
      leases_.erase(lease_expiry_.front().second);
      lease_expiry_.pop_front();
    }
  }

  // ---- Requests ----

  Result<Fields> Dispatch(const std::string& connection, const Request& request, int64_t now) {
    if (request.kind == "ping") {
      return Fields{{"version", kClientProtocolVersion}, {"node", IdBytes(identity_.public_key())}};
    }
    if (request.kind == "publish") return Publish(connection, request.args, now);
    auto query = config_.queries.find(request.kind);
    if (query == config_.queries.end()) {
      std::string known = "ping, publish";
      for (const auto& [kind, handler] : config_.queries) known += ", " + kind;
      return Status::InvalidArgument("unknown request kind \"" + request.kind + "\" (this node knows " + known + ")");
    }
    return query->second(request.args, QueryContext{*outbox_, gossip_, now});
  }

  Result<Fields> Publish(const std::string& connection, const Fields& args, int64_t now) {
    Result<const Bytes*> bytes = Require<Bytes>(args, "envelope");
    if (!bytes.ok()) return bytes.status();
    const Bytes& envelope = **bytes;
    Result<Fields> result = CheckAndPublish(connection, envelope, now);
    if (!result.ok()) Bump(counters_->refused);
    return result;
  }

  Result<Fields> CheckAndPublish(const std::string& connection, const Bytes& bytes, int64_t now) {
    Result<market::Envelope> envelope = market::DecodeEnvelope(bytes);
    if (!envelope.ok()) return envelope.status().WithContext("envelope");
    if (bytes.size() > market::MaxEnvelopeBytes(envelope->type)) {
      return Status::LimitExceeded("a " + std::string(market::ToString(envelope->type)) + " envelope of " +
                                   std::to_string(bytes.size()) + " bytes is over its limit");
    }
    std::optional<Subscription> subscribe;
    MessageId id{};
    switch (envelope->type) {
      case MessageType::kOrder: {
        auto order = market::OpenSigned<market::Order>(bytes, now);
        if (!order.ok()) return order.status().WithContext("order");
        id = order->id;
        if (!subscriptions_.contains(id)) {
          const Connection& conn = connections_.at(connection);
          if (conn.orders.size() >= limits::kMaxSubscriptionsPerConnection) {
            return Status::LimitExceeded("this connection already follows " + std::to_string(conn.orders.size()) +
                                         " open orders (the limit)");
          }
          if (subscriptions_.size() >= limits::kMaxSubscriptions) {
            return Status::Unavailable("this node follows too many open orders; try another node or later");
          }
        }
        subscribe = Subscription{{connection}, order->envelope.expires_ms, std::chrono::steady_clock::now()};
        break;
      }
      case MessageType::kAccept: {
        auto accept = market::OpenSigned<market::Accept>(bytes, now);
        if (!accept.ok()) return accept.status().WithContext("accept");
        GPUMART_RETURN_IF_ERROR(CheckAcceptOwner(*accept));
        id = accept->id;
        break;
      }
      case MessageType::kClose: {
        auto close = market::OpenSigned<market::Close>(bytes, now);
        if (!close.ok()) return close.status().WithContext("close");
        GPUMART_RETURN_IF_ERROR(CheckCloseOwner(*close));
        id = close->id;
        break;
      }
      default:
        return Status::InvalidArgument("a " + std::string(market::ToString(envelope->type)) +
                                       " cannot be published through the client port (only Orders, Accepts and Closes)");
    }
    bool duplicate = false;
    if (!gossip_.valid()) return Status::Unavailable("the node's gossip is not running yet");
    // Verified above (OpenSigned), so gossip checks all but the signature.
    auto published = outbox_->Request<Status>(gossip_, gossip::PublishMessage{bytes, gossip::Signatures::kCheckedByCaller},
                                              kBackendTimeout);
    if (!published.ok()) return Status::Unavailable("gossip did not answer");
    if (published.value().code() == Status::Code::kAlreadyExists) {
      duplicate = true;  // a client's retry: the message is out already
    } else if (!published.value().ok()) {
      return published.value();
    }
    Bump(counters_->published);
    if (subscribe) Subscribe(id, *subscribe);
    return Fields{{"id", IdBytes(id)}, {"duplicate", duplicate}};
  }

  Status CheckAcceptOwner(const market::Signed<market::Accept>& accept) const {
    const std::string bid_hex = market::ToHex(accept.body.bid_id);
    auto bid = bids_.find(accept.body.bid_id);
    if (bid == bids_.end()) {
      return Status::NotFound("bid " + bid_hex +
                              " is unknown to this node (expired, or never seen here): publish an Accept through the "
                              "node that published its Order");
    }
    if (bid->second.tenant != accept.envelope.signer) {
      return Status::PermissionDenied("the Accept is signed by " + Short(accept.envelope.signer) + ", but bid " + bid_hex +
                                      " answers an order of tenant " + Short(bid->second.tenant));
    }
    if (bid->second.order_id != accept.body.order_id || bid->second.provider != accept.body.provider) {
      return Status::InvalidArgument("the Accept names another order or provider than bid " + bid_hex);
    }
    return Status::Ok();
  }

  Status CheckCloseOwner(const market::Signed<market::Close>& close) const {
    const std::string lease_hex = market::ToHex(close.body.lease_id);
    if (config_.ledger == nullptr) return Status::Unavailable("this node has no ledger to check the lease in");
    Result<ledger::LeaseRecord> lease = config_.ledger->GetLease(close.body.lease_id);
    if (!lease.ok()) {
      if (lease.status().code() == Status::Code::kNotFound) {
        return Status::NotFound("lease " + lease_hex + " is not in this node's ledger");
      }
      return lease.status();
    }
    const PublicKey& signer = close.envelope.signer;
    if (signer != lease->lease.tenant && signer != lease->provider()) {
      return Status::PermissionDenied("the Close is signed by " + Short(signer) + ", which is neither the tenant (" +
                                      Short(lease->lease.tenant) + ") nor the provider (" + Short(lease->provider()) +
                                      ") of lease " + lease_hex);
    }
    if (lease->state != ledger::LeaseState::kActive) {
      return Status::FailedPrecondition("lease " + lease_hex + " is " + std::string(ledger::ToString(lease->state)) +
                                        " already");
    }
    return Status::Ok();
  }

  void Subscribe(const MessageId& order, Subscription subscription) {
    const std::string& connection = subscription.connections.front();
    auto [it, inserted] = subscriptions_.try_emplace(order, subscription);
    if (!inserted) {
      std::vector<std::string>& connections = it->second.connections;
      if (std::find(connections.begin(), connections.end(), connection) != connections.end()) return;
      if (connections.size() >= kMaxSubscribersPerOrder) return;  // the first ones keep it
      connections.push_back(connection);
    }
    connections_.at(connection).orders.insert(order);
    counters_->subscriptions.store(subscriptions_.size(), std::memory_order_relaxed);
  }

  void Unsubscribe(const MessageId& order, const std::string& connection) {
    auto it = subscriptions_.find(order);
    if (it == subscriptions_.end()) return;
    std::erase(it->second.connections, connection);
    if (it->second.connections.empty()) subscriptions_.erase(it);
  }

  // ---- Deliveries ----

  void OnDelivery(const gossip::Deliver& delivery) {
    // The gossip core verified these bytes; they are only decoded here.
    Result<market::Envelope> envelope = market::DecodeEnvelope(delivery.envelope);
    if (!envelope.ok()) return;
    switch (envelope->type) {
      case MessageType::kBid: {
        Result<market::Bid> bid = market::DecodeBid(envelope->body);
        if (!bid.ok()) return;
        // Only the bids of orders published here: an Accept is published where its Order was.
        if (subscriptions_.contains(bid->order_id)) Remember(delivery.id, *bid, envelope->signer, envelope->expires_ms);
        Push("bid", bid->order_id, delivery);
        break;
      }
      case MessageType::kLease: {
        Result<market::Lease> lease = market::DecodeLease(envelope->body);
        if (!lease.ok()) return;
        if (subscriptions_.contains(lease->order_id) && leases_.size() < limits::kMaxSubscriptions) {
          if (leases_.emplace(delivery.id, lease->order_id).second) {
            lease_expiry_.emplace_back(subscriptions_.at(lease->order_id).expires_ms, delivery.id);
          }
        }
        ObserveSubmitToLease(lease->order_id);
        Push("lease", lease->order_id, delivery);
        break;
      }
      case MessageType::kClose: {
        Result<market::Close> close = market::DecodeClose(envelope->body);
        if (!close.ok()) return;
        auto lease = leases_.find(close->lease_id);
        if (lease != leases_.end()) Push("close", lease->second, delivery);
        break;
      }
      default: break;
    }
  }

  void Remember(const MessageId& id, const market::Bid& bid, const PublicKey& provider, int64_t expires_ms) {
    if (bids_.contains(id)) return;
    if (bids_.size() >= limits::kMaxKnownBids) {
      bids_.erase(bid_expiry_.begin()->second);
      bid_expiry_.erase(bid_expiry_.begin());
    }
    bids_.emplace(id, KnownBid{bid.order_id, bid.tenant, provider, expires_ms});
    bid_expiry_.emplace(expires_ms, id);
  }

  void ObserveSubmitToLease(const MessageId& order) {
    auto it = subscriptions_.find(order);
    if (it == subscriptions_.end() || it->second.lease_pushed) return;
    it->second.lease_pushed = true;
    if (config_.on_submit_to_lease) config_.on_submit_to_lease(std::chrono::steady_clock::now() - it->second.taken);
  }

  void Push(const char* type, const MessageId& order, const gossip::Deliver& delivery) {
    auto it = subscriptions_.find(order);
    if (it == subscriptions_.end()) return;
    const Response event =
        EventResponse(type, Fields{{"order", IdBytes(order)}, {"id", IdBytes(delivery.id)}, {"envelope", delivery.envelope}});
    for (const std::string& connection : it->second.connections) {
      Bump(counters_->events);
      Send(connection, event);
    }
  }

  const market::Identity& identity_;
  const ClientPortConfig config_;
  const std::shared_ptr<ClientPortCounters> counters_;
  std::unique_ptr<actors::Outbox> outbox_;
  std::unique_ptr<zmq::socket_t> router_;
  std::string address_;
  actors::ActorAddress gossip_;
  std::unordered_map<std::string, Connection> connections_;
  std::map<MessageId, Subscription> subscriptions_;
  std::map<MessageId, KnownBid> bids_;
  std::set<std::pair<int64_t, MessageId>> bid_expiry_;
  std::map<MessageId, MessageId> leases_;  // lease id -> order id, for the lease's Close
  std::deque<std::pair<int64_t, MessageId>> lease_expiry_;
};

ClientPort::ClientPort(const market::Identity& identity, ClientPortConfig config,
                       std::shared_ptr<ClientPortCounters> counters)
    : impl_(std::make_unique<Impl>(identity, std::move(config), std::move(counters))) {}
ClientPort::~ClientPort() = default;
void ClientPort::Init(actors::Handlers& on, actors::ActorContext& ctx) { impl_->Init(on, ctx); }

void HandToClientPort(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& port,
                      ClientPortCounters& counters) {
  if (delivery.type != MessageType::kBid && delivery.type != MessageType::kLease &&
      delivery.type != MessageType::kClose) {
    return;
  }
  if (outbox.SendOrDrop(port, ClientDelivery{delivery}) != actors::SendResult::kOk) Bump(counters.deliveries_dropped);
}

}  // namespace gpumart::client
