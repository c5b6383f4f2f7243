// The ZAP handler (ZeroMQ RFC 27) that decides which CURVE client keys may link to this node.
// libzmq asks it, over a REP socket bound at inproc://zeromq.zap.01 in the node's own context,
// about every CURVE handshake on a server socket. Without a handler bound there libzmq 4.3.4
// accepts every key, so ZapHandler must be constructed before any CURVE server socket is bound,
// and the constructor fails (throws zmq::error_t) when the endpoint is taken. The reply's
// User-Id is the lowercase hex of the client's CURVE key; it comes back on every message from
// that link as the message property "User-Id".
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <zmq.hpp>

#include "node/gossip/curve_keys.h"

namespace gpumart::gossip {

inline constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

class ZapHandler {
 public:
  // True admits the client key connecting from peer_address (its IP, as libzmq gives it); the
  // driver refuses banned keys and addresses here.
  using Policy = std::function<bool(const CurveKey& client_key, const std::string& peer_address)>;

  ZapHandler(zmq::context_t& context, Policy policy);
  zmq::socket_t& socket() { return socket_; }
  // Answers every request waiting on the socket; never blocks.
  void HandleRequests();

  uint64_t admitted() const { return admitted_; }
  uint64_t refused() const { return refused_; }    // the policy said no
  uint64_t malformed() const { return malformed_; }  // not a CURVE request we understand (answered 400)

 private:
  zmq::socket_t socket_;
  Policy policy_;
  uint64_t admitted_ = 0, refused_ = 0, malformed_ = 0;
};

}  // namespace gpumart::gossip
