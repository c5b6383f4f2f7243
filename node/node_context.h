// What a running gpumartd owns, in the order it starts them: its identity (the one key file),
// its actor system, its ledger (opened, locked and re-verified), the ledger feed (gossip's
// Leases, Closes and Attestations into the ledger, node/ledger_feed.h), the live offer book
// (gossip's Offers, node/offer_book_actor.h), its client port (node/client/client_port.h) and its
// gossip node. They stop in the reverse order: the metrics endpoint first (node/node_metrics.h; it
// reads the others), the client port (no new publishes), gossip (no new deliveries), then the
// provider, the offer book and the feed, then the ledger (committing what it took), then the actor
// system. No globals: the daemon's main holds one NodeContext.
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
#include "node/client_queries.h"
#include "node/config.h"
#include "node/ledger_feed.h"
#include "node/metrics/http_server.h"
#include "node/node_metrics.h"
#include "node/offer_book_actor.h"
#include "node/provider_actor.h"
#include "node/client/client_port.h"
#include "node/gossip/gossip_node.h"

namespace gpumart::node {

class NodeContext {
 public:
  // Creates the data dir and identity if missing, opens and verifies the ledger, starts gossip.
  // A provider (config.role) with an inventory (bidding::LoadInventory of config.inventory) also
  // runs the provider actor, priced by config.pricing_policy.
  static Result<std::unique_ptr<NodeContext>> Start(const NodeConfig& config,
                                                    const bidding::Inventory* inventory = nullptr,
                                                    ProviderOptions provider_options = {});
  ~NodeContext();
  NodeContext(const NodeContext&) = delete;
  NodeContext& operator=(const NodeContext&) = delete;

  const market::Identity& identity() const { return identity_; }
  const ledger::VerifyReport& ledger_report() const { return ledger_report_; }
  const ledger::LedgerActor& ledger() const { return *ledger_; }
  // Our peer address (tcp://host:port/<identity hex>), what another node puts in its bootstrap;
  // empty for a node that accepts no links.
  const std::string& peer_address() const { return peer_address_; }
  // Where clients reach this node's client port (docs/CLIENT.md, "Addresses"); empty when the
  // config has no client_listen.
  const std::string& client_address() const { return client_address_; }
  std::shared_ptr<const client::ClientPortCounters> client_counters() const { return client_counters_; }
  // Asks the gossip actor (from the thread that started this context only).
  Result<gossip::GossipNodeStatus> GossipStatus();
  // Asks the offer book (from the thread that started this context only).
  Result<OfferBookStatus> OfferStatus();
  // The best k bids for `order` in the live offer book (from the starting thread only).
  Result<std::vector<market::Candidate>> FindOffers(const market::Order& order, market::Policy policy, size_t k);
  const actors::ActorAddress& offer_book() const { return offer_book_.address(); }
  std::shared_ptr<const LedgerFeedCounters> ledger_counters() const { return feed_counters_; }
  std::shared_ptr<const OfferBookCounters> offer_counters() const { return offer_counters_; }
  // The provider actor's counters; null when this node is no provider.
  std::shared_ptr<const ProviderCounters> provider_counters() const { return provider_counters_; }
  bool is_provider() const { return provider_.ok(); }
  // The node's metrics (docs/METRICS.md); its instruments may be observed from any thread, and
  // outlive the context (a scrape after it stops reports only the instruments).
  const std::shared_ptr<NodeMetrics>& metrics() const { return metrics_; }
  // Where /metrics, the console and /api/v1/ are served, "HOST:PORT"; empty when nowhere
  // (config.metrics_listen).
  std::string metrics_address() const { return metrics_server_ ? metrics_server_->address() : std::string(); }
  // A reloaded inventory (SIGHUP): the offer follows the new capacity. Refused (the old one
  // kept) with the reason when the engine refuses it. From the starting thread only.
  Status ReloadInventory(const bidding::Inventory& inventory, const NodeConfig& config);
  Result<ProviderStatus> ProviderState();
  // SIGTERM for a provider: stops bidding, waits (at most `timeout`) for the lease writes in
  // flight to be durable and their Leases published, then withdraws the offer.
  Status StopProvider(std::chrono::milliseconds timeout);

 private:
  explicit NodeContext(market::Identity identity) : identity_(std::move(identity)) {}
  Status StartLedger(const NodeConfig& config);
  Status StartFeedAndOfferBook();
  Status StartProvider(const NodeConfig& config, const bidding::Inventory& inventory, ProviderOptions options);
  Status StartClientPort(const NodeConfig& config);
  Status StartGossip(const NodeConfig& config);
  Status StartMetrics(const NodeConfig& config);
  // What the client port's queries and the console's API read (one table, node/client_queries.h).
  ClientQuerySources QuerySources(const NodeConfig& config) const;

  const market::Identity identity_;
  // Before the actor system: the ledger and the client port observe its histograms until they stop.
  const std::shared_ptr<NodeMetrics> metrics_ = std::make_shared<NodeMetrics>();
  actors::ActorSystem system_;
  std::unique_ptr<ledger::LedgerActor> ledger_;
  ledger::VerifyReport ledger_report_;
  std::shared_ptr<LedgerFeedCounters> feed_counters_ = std::make_shared<LedgerFeedCounters>();
  actors::ActorHandle feed_;
  std::shared_ptr<OfferBookCounters> offer_counters_ = std::make_shared<OfferBookCounters>();
  actors::ActorHandle offer_book_;
  std::shared_ptr<ProviderCounters> provider_counters_;
  actors::ActorHandle provider_;
  std::shared_ptr<client::ClientPortCounters> client_counters_ = std::make_shared<client::ClientPortCounters>();
  actors::ActorHandle client_port_;
  std::string client_address_;
  // Used only on the gossip actor's thread (by its on_deliver), to hand deliveries on.
  std::unique_ptr<actors::Outbox> gossip_outbox_;
  actors::ActorHandle gossip_;
  std::string peer_address_;
  std::unique_ptr<actors::Outbox> outbox_;  // the starting thread's
  std::shared_ptr<NodeMetricSources> metric_sources_;
  std::unique_ptr<metrics::HttpServer> metrics_server_;
};

}  // namespace gpumart::node
