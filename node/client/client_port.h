// The client port: the actor through which a node serves clients (docs/CLIENT.md). One ZeroMQ
// ROUTER, plain on loopback and CURVE (the node's identity key) anywhere else; one DEALER per
// client. It answers each request with a response naming the request's id; a frame that is not a
// request is answered with the reason when its id can be read, and dropped otherwise.
//
// - publish: a signed Order, Accept or Close. The port checks the signature and freshness and
//   who owns the object (an Accept must be signed by the tenant its bid answers, for a bid this
//   node has seen; a Close by the tenant or the provider of a lease in this node's ledger), then
//   gossips it (gossip::PublishMessage). Publishing an Order subscribes the connection to it.
// - Subscriptions: the Bids for a subscribed order, its Lease and that lease's Close are pushed
//   to the connections that published it (the first kMaxSubscribersPerOrder) as events, as gossip delivers them (or the node itself publishes them: a
//   provider's own bid, when a tenant uses the provider's node). A subscription ends when its
//   order expires or its connection falls silent for idle_ms; both tables are bounded.
// - Queries: a table of read-only request kinds (QueryTable) the node fills; they run on this
//   actor's thread. Adding a query is one entry there.
//
// Bounds: frames over limits::kMaxFrameBytes are refused, every connection has a request rate,
// at most limits::kMaxConnections are tracked, and replies and events are sent without ever
// blocking (a client that does not read loses them, counted).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>

#include "actors/actor.h"
#include "actors/outbox.h"
#include "ledger/store.h"
#include "market/crypto.h"
#include "node/client/protocol.h"
#include "node/gossip/gossip_core.h"

namespace zmq {
class socket_t;
}

namespace gpumart::client {

// Deliveries queued towards the port before more are dropped.
constexpr int kClientPortMailboxHwm = 4096;
// A connection silent this long is forgotten, with its subscriptions.
constexpr int64_t kClientIdleMs = 300'000;
// The longest a request waits for another actor of the node (gossip, offer book, provider).
constexpr std::chrono::milliseconds kBackendTimeout{2'000};
// Frames taken from the socket per wake-up, so the mailbox (deliveries) is not starved.
constexpr int kMaxFramesPerWake = 256;
// Replies and events queued towards one client before more are dropped.
constexpr int kClientSendHwm = 10'000;
// Connections one order's events go to (its publisher first; anyone may publish it again).
constexpr size_t kMaxSubscribersPerOrder = 4;
// How often subscriptions, connections and remembered bids are expired.
constexpr int64_t kClientExpiryCheckMs = 1'000;

// What a query may use besides its args, on the port's thread: the port's outbox (to ask the
// node's actors, each request bounded by kBackendTimeout) and the gossip node's address (invalid
// until the node sent ClientPortStart).
struct QueryContext {
  actors::Outbox& outbox;
  const actors::ActorAddress& gossip;
  int64_t now_ms = 0;
};
// A read-only request kind: runs on the port's thread with the request's args.
using QueryHandler = std::function<Result<Fields>(const Fields& args, const QueryContext& context)>;
using QueryTable = std::map<std::string, QueryHandler, std::less<>>;

struct ClientPortConfig {
  std::string listen = "tcp://127.0.0.1:7701";  // "*" as the port picks a free one
  // CURVE with the node's identity key (clients must know it: their address carries it). The
  // node's rule (NodeContext): on unless `listen` is a loopback endpoint.
  bool curve = false;
  const ledger::LedgerStore* ledger = nullptr;  // Close ownership; must outlive the actor
  QueryTable queries;
  int64_t idle_ms = kClientIdleMs;
  uint64_t requests_per_second = limits::kRequestsPerSecond;
  // Called on the port's thread when it pushes an order's first Lease, with the time since the
  // port took that Order (steady clock): the node's gpumart_submit_to_lease_seconds.
  std::function<void(std::chrono::nanoseconds)> on_submit_to_lease;
};

// Written by the port's actor (deliveries_dropped: the gossip thread); read by anyone.
struct ClientPortCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};          // requests answered with an error
  std::atomic<uint64_t> undecodable{0};     // frames dropped without an answer (no id to answer)
  std::atomic<uint64_t> rate_limited{0};
  std::atomic<uint64_t> published{0};       // envelopes gossiped for clients
  std::atomic<uint64_t> refused{0};         // publishes refused (signature, freshness, owner)
  std::atomic<uint64_t> events{0};          // events pushed to clients
  std::atomic<uint64_t> send_dropped{0};    // replies and events a client's queue refused
  std::atomic<uint64_t> subscriptions{0};   // live now
  std::atomic<uint64_t> connections{0};     // tracked now
  std::atomic<uint64_t> deliveries_dropped{0};  // the port's mailbox was full
};

// Sent once, after the gossip node is spawned: where to publish.
struct ClientPortStart {
  actors::ActorAddress gossip;
};
// A Bid, Lease or Close gossip delivered, or this node published.
struct ClientDelivery {
  gossip::Deliver delivery;
};
// Reply: std::string, the address clients use (docs/CLIENT.md, "Addresses").
struct GetClientAddress {};

// True for an endpoint whose host is a loopback address (127.0.0.0/8, ::1, localhost).
bool IsLoopbackEndpoint(std::string_view endpoint);

class ClientPort final : public actors::Actor {
 public:
  ClientPort(const market::Identity& identity, ClientPortConfig config, std::shared_ptr<ClientPortCounters> counters);
  ~ClientPort() override;
  void Init(actors::Handlers& on, actors::ActorContext& ctx) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Hands a Bid, Lease or Close to the port from another thread (gossip's callbacks), never
// blocking: a full mailbox counts it as dropped. Other types are ignored.
void HandToClientPort(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& port,
                      ClientPortCounters& counters);

}  // namespace gpumart::client
