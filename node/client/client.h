// The client library: how a program talks to a node's client port (docs/CLIENT.md). Used by the
// CLI (`gpumart leases`, `close`, `status`, `submit`, `offers`), the e2e tests and bench_e2e's
// load generator.
//
//   auto client = Client::Connect("tcp://127.0.0.1:7701", 2s);       // pings the node
//   Result<Fields> status = (*client)->Call("status", {});            // a query
//   Result<MessageId> id = (*client)->Publish(order_envelope_bytes);   // signed Order/Accept/Close
//   Result<Event> bid = (*client)->WaitEvent(500ms);                   // what the node pushes back
//
// A Client is one ZeroMQ DEALER (and its own context); use it from one thread at a time. Every
// call is bounded by its timeout; a node that does not answer is a kTimeout, an error response is
// its Status (code and the node's message). Events that arrive while a Call waits are queued
// (at most kMaxQueuedEvents, the oldest dropped first) for WaitEvent. Events are the signed
// envelopes as gossip carried them: the client verifies them itself (market/codec.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "market/codec.h"
#include "market/status.h"
#include "node/client/protocol.h"

namespace gpumart::client {

constexpr std::chrono::milliseconds kDefaultCallTimeout{5'000};
constexpr std::chrono::milliseconds kDefaultConnectTimeout{2'000};
constexpr size_t kMaxQueuedEvents = 65'536;
// The default client port and the file a running daemon writes its address to (in its data
// dir; removed when it stops), so a CLI on the same machine finds "the local daemon".
constexpr const char* kDefaultClientListen = "tcp://127.0.0.1:7701";
constexpr const char* kClientAddressFile = "client.address";

// Something the node pushed about one of this client's orders.
struct Event {
  std::string type;             // "bid", "lease" or "close"
  market::MessageId order_id{};  // the order it answers (a close: the order of its lease)
  market::MessageId id{};       // the message's id
  Bytes envelope;               // the signed message (verify it: the node is not trusted)
};

class Client {
 public:
  // `address` is "tcp://HOST:PORT" (a loopback client port, plain) or "tcp://HOST:PORT/<the
  // node's identity, 64 hex digits>" (CURVE, required off loopback). Fails with kTimeout when
  // the node does not answer a ping within `timeout`.
  static Result<std::unique_ptr<Client>> Connect(const std::string& address,
                                                 std::chrono::milliseconds timeout = kDefaultConnectTimeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request and its response's result (or its error).
  Result<Fields> Call(const std::string& kind, Fields args, std::chrono::milliseconds timeout = kDefaultCallTimeout);
  // `publish` of a signed envelope (an Order, Accept or Close): the node checks it (signature,
  // freshness, ownership) and gossips it. Returns its message id. Publishing an Order subscribes
  // this client to the Bids for it and the Lease and Close that follow (see WaitEvent).
  Result<market::MessageId> Publish(const Bytes& envelope, std::chrono::milliseconds timeout = kDefaultCallTimeout);
  // The next pushed event, waiting at most `timeout`; kTimeout when none came.
  Result<Event> WaitEvent(std::chrono::milliseconds timeout);
  // Events dropped because the queue was full.
  uint64_t events_dropped() const;
  const std::string& address() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The node a CLI command talks to: `explicit_address` when set; else `node:` of the client
// config (~/.config/gpumart/client.yaml, or $GPUMART_CLIENT_CONFIG); else the address the local
// daemon wrote to <data_dir>/client.address. kNotFound says what was tried.
Result<std::string> ResolveNodeAddress(const std::string& explicit_address, const std::string& data_dir);
// The client config's path: $GPUMART_CLIENT_CONFIG, else $HOME/.config/gpumart/client.yaml.
std::string ClientConfigPath();

}  // namespace gpumart::client
