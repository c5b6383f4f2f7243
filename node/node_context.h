// What a running gpumartd owns, in the order it starts them: its identity (the one key file),
// its actor system, its ledger (opened, locked and re-verified) and its gossip node. They stop in
// the reverse order: gossip first (no new deliveries), then the ledger (committing what it
// acknowledged), then the actor system. No globals: the daemon's main holds one NodeContext.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "ledger/ledger_actor.h"
#include "ledger/verify.h"
#include "market/crypto.h"
#include "market/status.h"
#include "node/config.h"
#include "node/gossip/gossip_node.h"

namespace gpumart::node {

// What became of the messages gossip delivered for the ledger (Leases and Closes).
struct GossipLedgerCounters {
  std::atomic<uint64_t> recorded{0};  // durable in the ledger
  std::atomic<uint64_t> refused{0};   // the ledger refused them (already there, unknown order...)
  std::atomic<uint64_t> dropped{0};   // the ledger's queue was full, or it stopped
};

class NodeContext {
 public:
  // Creates the data dir and identity if missing, opens and verifies the ledger, starts gossip.
  static Result<std::unique_ptr<NodeContext>> Start(const NodeConfig& config);
  ~NodeContext();
  NodeContext(const NodeContext&) = delete;
  NodeContext& operator=(const NodeContext&) = delete;

  const market::Identity& identity() const { return identity_; }
  const ledger::VerifyReport& ledger_report() const { return ledger_report_; }
  const ledger::LedgerActor& ledger() const { return *ledger_; }
  // Our peer address (tcp://host:port/<identity hex>), what another node puts in its bootstrap;
  // empty for a node that accepts no links.
  const std::string& peer_address() const { return peer_address_; }
  // Asks the gossip actor (from the thread that started this context only).
  Result<gossip::GossipNodeStatus> GossipStatus();
  std::shared_ptr<const GossipLedgerCounters> ledger_counters() const { return counters_; }

 private:
  explicit NodeContext(market::Identity identity) : identity_(std::move(identity)) {}
  Status StartLedger(const NodeConfig& config);
  Status StartGossip(const NodeConfig& config);

  const market::Identity identity_;
  actors::ActorSystem system_;
  std::unique_ptr<ledger::LedgerActor> ledger_;
  ledger::VerifyReport ledger_report_;
  std::shared_ptr<GossipLedgerCounters> counters_ = std::make_shared<GossipLedgerCounters>();
  // Used only on the gossip actor's thread (by its on_deliver), to hand writes to the ledger.
  std::unique_ptr<actors::Outbox> gossip_to_ledger_;
  actors::ActorHandle gossip_;
  std::string peer_address_;
  std::unique_ptr<actors::Outbox> outbox_;  // the starting thread's
};

}  // namespace gpumart::node
