// A node's metrics (docs/METRICS.md): the registry its HTTP server exposes at /metrics, the
// instruments the node's parts observe directly, and the collector that reports, at each
// scrape, the counters the parts already keep (node/ledger_feed.h, node/offer_book_actor.h,
// node/provider_actor.h, node/client/client_port.h, the gossip node's status, the ledger's stats), so nothing is counted
// twice.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "ledger/ledger_actor.h"
#include "node/client/client_port.h"
#include "node/ledger_feed.h"
#include "node/metrics/metrics.h"
#include "node/offer_book_actor.h"
#include "node/provider_actor.h"

namespace gpumart::node {

// How long a scrape waits for an actor's status (the gossip node, the provider); without an
// answer the scrape leaves that actor's metrics out rather than report stale or made-up values.
constexpr std::chrono::milliseconds kMetricsStatusTimeout{500};
// Device types the free-capacity gauge reports at most (an inventory has a few).
constexpr size_t kMaxMetricDeviceTypes = 256;

struct NodeMetrics {
  NodeMetrics();
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  metrics::Registry registry;
  // gpumart_ledger_commit_seconds: one ledger round's apply and durable commit (the ledger's
  // on_commit hook).
  metrics::Histogram& ledger_commit_seconds;
  // gpumart_submit_to_lease_seconds: from the client port taking a tenant's Order to the
  // node pushing that client the Lease for it. Observed by the client port (node/client/), from
  // any thread: Observe(seconds).
  metrics::Histogram& submit_to_lease_seconds;
};

// The provider's metrics per device type: free GPUs (from its last published Offer), installed,
// out of service, leased, utilisation and revenue (the bid engine's `usage`), labelled `vendor`,
// `model`, `ram`, `interface`, and `mig` (the profile) or `shared="true"` for MIG instances and
// time-slice replicas (docs/METRICS.md).
void CollectDeviceTypes(const market::Offer& offer, const std::map<market::DeviceType, bidding::DeviceUsage>& usage,
                        metrics::Scrape& scrape);

// What the node's collector reads: the NodeContext's parts. Close() (before the parts stop)
// makes later scrapes report none of them; the registry may outlive the context.
class NodeMetricSources {
 public:
  struct Parts {
    actors::ActorAddress gossip;
    std::optional<actors::ActorAddress> provider;
    const ledger::LedgerActor* ledger = nullptr;
    std::shared_ptr<const LedgerFeedCounters> feed;
    std::shared_ptr<const OfferBookCounters> offers;
    std::shared_ptr<const ProviderCounters> provider_counters;  // null: no provider
    std::shared_ptr<const client::ClientPortCounters> client;    // null: no client port
  };
  NodeMetricSources(actors::ActorSystem& system, Parts parts);
  // Adds the collector to `metrics` (once per context).
  static void Register(NodeMetrics& metrics, std::shared_ptr<NodeMetricSources> sources);
  void Close();
  void Collect(metrics::Scrape& scrape);

 private:
  std::mutex mutex_;  // scrapes run one at a time, but Close may come from another thread
  bool open_ = true;
  std::unique_ptr<actors::Outbox> outbox_;  // asks the actors; used under mutex_ only
  Parts parts_;
};

}  // namespace gpumart::node
