// A gossip node inside the test process, for tests of a node's gossip side: it dials a node under
// test as a tenant, publishes what the test hands it and keeps every message gossip delivers.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "market/status.h"
#include "node/gossip/gossip_node.h"
#include "tests/eventually.h"

namespace gpumart::testing {

class GossipPeer {
 public:
  // `bootstrap`: the peer address of the node under test. The peer runs in its own actor system.
  explicit GossipPeer(const std::string& bootstrap) {
    gossip::GossipNodeConfig config;
    config.bootstrap = {bootstrap};
    config.core.role = gossip::Role::kTenant;
    config.on_deliver = [this](const gossip::Deliver& deliver) {
      std::lock_guard lock(mutex_);
      delivered_.push_back(deliver);
    };
    handle_ = system_.Spawn({.name = "gossip"}, [this, config] {
      return std::make_unique<gossip::GossipNode>(identity_, config);
    });
    outbox_ = std::make_unique<actors::Outbox>(system_);
  }
  ~GossipPeer() {
    handle_.Stop();
    outbox_.reset();
  }
  GossipPeer(const GossipPeer&) = delete;
  GossipPeer& operator=(const GossipPeer&) = delete;

  bool ok() const { return handle_.ok(); }
  const market::Identity& identity() const { return identity_; }

  size_t ReadyPeers() {
    auto reply = outbox_->Request<gossip::GossipNodeStatus>(handle_.address(), gossip::GetGossipStatus{},
                                                            std::chrono::seconds(5));
    return reply.ok() ? reply.value().ready_peers : 0;
  }
  // Until the handshake with the node under test is done, a publish reaches nobody.
  bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return Eventually([&] { return ReadyPeers() > 0; }, timeout);
  }

  Status Publish(market::Bytes envelope) {
    auto reply = outbox_->Request<Status>(handle_.address(), gossip::PublishMessage{std::move(envelope)},
                                          std::chrono::seconds(5));
    return reply.ok() ? reply.value() : Status::Unavailable("no reply from the gossip node");
  }
  Status Publish(const market::Envelope& envelope) { return Publish(market::EncodeEnvelope(envelope)); }

  // The first delivered message of `type` that `accept` takes, waiting at most `timeout`.
  template <typename F>
  std::optional<gossip::Deliver> WaitFor(market::MessageType type, F accept,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::optional<gossip::Deliver> found;
    Eventually(
        [&] {
          std::lock_guard lock(mutex_);
          for (const gossip::Deliver& deliver : delivered_) {
            if (deliver.type == type && accept(deliver)) {
              found = deliver;
              return true;
            }
          }
          return false;
        },
        timeout);
    return found;
  }

 private:
  const market::Identity identity_ = market::Identity::Generate();
  std::mutex mutex_;
  std::vector<gossip::Deliver> delivered_;
  actors::ActorSystem system_;
  actors::ActorHandle handle_;
  std::unique_ptr<actors::Outbox> outbox_;
};

}  // namespace gpumart::testing
