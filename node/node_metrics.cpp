#include "node/node_metrics.h"

#include <map>

#include "market/types.h"
#include "node/gossip/gossip_node.h"

namespace gpumart::node {

namespace {

using metrics::Labels;
using metrics::Scrape;

uint64_t Load(const std::atomic<uint64_t>& counter) { return counter.load(std::memory_order_relaxed); }

void CollectFeed(const LedgerFeedCounters& feed, Scrape& scrape) {
  constexpr std::string_view kName = "gpumart_ledger_feed_messages_total";
  constexpr std::string_view kHelp =
      "Leases, Closes and Attestations gossip delivered for the ledger, by outcome: recorded (durable), refused "
      "(would not decode, or the ledger refused them), dropped (a full queue).";
  scrape.Counter(kName, kHelp, {{"outcome", "recorded"}}, Load(feed.recorded));
  scrape.Counter(kName, kHelp, {{"outcome", "refused"}}, Load(feed.refused));
  scrape.Counter(kName, kHelp, {{"outcome", "dropped"}}, Load(feed.dropped));
}

void CollectOfferBook(const OfferBookCounters& offers, Scrape& scrape) {
  scrape.Gauge("gpumart_offer_book_offers", "Providers whose Offer the live offer book holds now.", {},
               static_cast<double>(Load(offers.held)));
  constexpr std::string_view kName = "gpumart_offer_book_received_total";
  constexpr std::string_view kHelp =
      "Offers gossip delivered to the offer book, by outcome: added (a new provider), replaced (a newer offer of its "
      "provider), stale, over_limit, malformed, ledger_error (its reputation could not be read), dropped (a full "
      "queue).";
  const std::pair<std::string_view, const std::atomic<uint64_t>*> outcomes[] = {
      {"added", &offers.added},         {"replaced", &offers.replaced},       {"stale", &offers.stale},
      {"over_limit", &offers.over_limit}, {"malformed", &offers.malformed}, {"ledger_error", &offers.ledger_errors},
      {"dropped", &offers.dropped}};
  for (const auto& [outcome, counter] : outcomes) {
    scrape.Counter(kName, kHelp, {{"outcome", std::string(outcome)}}, Load(*counter));
  }
  scrape.Counter("gpumart_offer_book_expired_total", "Offers that left the book on expiry, or arrived expired.", {},
                 Load(offers.expired));
}

void CollectLedger(const ledger::LedgerActor& ledger, Scrape& scrape) {
  const ledger::LedgerActor::Stats stats = ledger.stats();
  constexpr std::string_view kRounds = "gpumart_ledger_commits_total";
  constexpr std::string_view kRoundsHelp = "Ledger rounds (one durable WriteBatch each), by outcome: ok or failed.";
  scrape.Counter(kRounds, kRoundsHelp, {{"outcome", "ok"}}, stats.rounds - stats.failed_rounds);
  scrape.Counter(kRounds, kRoundsHelp, {{"outcome", "failed"}}, stats.failed_rounds);
  scrape.Counter("gpumart_ledger_writes_total", "Writes the ledger answered (each with its own status).", {},
                 stats.writes);
}

void CollectProvider(const ProviderCounters& p, Scrape& scrape) {
  scrape.Counter("gpumart_provider_orders_total", "Orders the provider's bid engine considered.", {}, Load(p.orders));
  scrape.Counter("gpumart_provider_bids_total", "Signed Bids the provider published.", {}, Load(p.bids));
  for (size_t reason = 0; reason < bidding::kSkipReasons; ++reason) {
    scrape.Counter("gpumart_provider_order_skips_total", "Orders the provider did not bid on, by reason.",
                   {{"reason", std::string(bidding::ToString(static_cast<bidding::SkipReason>(reason)))}},
                   Load(p.skipped[reason]));
  }
  scrape.Gauge("gpumart_provider_orders_waiting", "Orders skipped for lack of capacity, waiting for capacity now.", {},
               static_cast<double>(Load(p.orders_waiting)));
  scrape.Counter("gpumart_provider_orders_deferred_total", "Orders skipped for lack of capacity and kept to be tried again.",
                 {}, Load(p.orders_deferred));
  constexpr std::string_view kWaited = "gpumart_provider_order_waits_ended_total";
  constexpr std::string_view kWaitedHelp =
      "Orders that stopped waiting for capacity, by outcome: served (bid or priced once capacity was freed) or dropped.";
  scrape.Counter(kWaited, kWaitedHelp, {{"outcome", "served"}}, Load(p.deferred_served));
  scrape.Counter(kWaited, kWaitedHelp, {{"outcome", "dropped"}}, Load(p.deferred_dropped));
  scrape.Gauge("gpumart_provider_reservations", "Live reservations (capacity held for a bid) now.", {},
               static_cast<double>(Load(p.reservations_held)));
  constexpr std::string_view kEnded = "gpumart_provider_reservations_ended_total";
  constexpr std::string_view kEndedHelp =
      "Reservations that ended without a lease, by outcome: released (lost, closed, failed) or expired.";
  scrape.Counter(kEnded, kEndedHelp, {{"outcome", "released"}}, Load(p.reservations_released));
  scrape.Counter(kEnded, kEndedHelp, {{"outcome", "expired"}}, Load(p.reservations_expired));
  scrape.Gauge("gpumart_provider_leases", "Active leases of this provider now.", {},
               static_cast<double>(Load(p.leases_active)));
  constexpr std::string_view kLeases = "gpumart_provider_leases_total";
  constexpr std::string_view kLeasesHelp =
      "Accepts that became leases, by outcome: made (durable and published) or failed (the ledger refused the write).";
  scrape.Counter(kLeases, kLeasesHelp, {{"outcome", "made"}}, Load(p.leases_made));
  scrape.Counter(kLeases, kLeasesHelp, {{"outcome", "failed"}}, Load(p.leases_failed));
  scrape.Counter("gpumart_provider_leases_closed_total", "Leases of this provider that closed.", {},
                 Load(p.leases_closed));
  scrape.Counter("gpumart_provider_leases_preempted_total", "Spot leases this provider preempted.", {},
                 Load(p.leases_preempted));
  constexpr std::string_view kAccepts = "gpumart_provider_accepts_rejected_total";
  constexpr std::string_view kAcceptsHelp =
      "Accepts that made no lease, by outcome: refused (answered with a refusal) or ignored (another's bid, a "
      "repeat, a wrong signer).";
  scrape.Counter(kAccepts, kAcceptsHelp, {{"outcome", "refused"}}, Load(p.accepts_refused));
  scrape.Counter(kAccepts, kAcceptsHelp, {{"outcome", "ignored"}}, Load(p.accepts_ignored));
  scrape.Counter("gpumart_provider_offers_published_total", "Offers (free capacity) the provider published.", {},
                 Load(p.offers_published));
  scrape.Gauge("gpumart_provider_pending_lease_writes", "Lease writes in flight to the ledger now.", {},
               static_cast<double>(Load(p.pending_lease_writes)));
  constexpr std::string_view kDrops = "gpumart_provider_queue_drops_total";
  constexpr std::string_view kDropsHelp =
      "Messages the provider dropped at a full queue, by queue: publish (to gossip), ledger, deliveries (its own).";
  scrape.Counter(kDrops, kDropsHelp, {{"queue", "publish"}}, Load(p.publish_dropped));
  scrape.Counter(kDrops, kDropsHelp, {{"queue", "ledger"}}, Load(p.ledger_dropped));
  scrape.Counter(kDrops, kDropsHelp, {{"queue", "deliveries"}}, Load(p.deliveries_dropped));
  constexpr std::string_view kRuns = "gpumart_provider_executor_runs_total";
  constexpr std::string_view kRunsHelp = "Lease executor runs, by event (start, stop) and outcome (ok, failed).";
  scrape.Counter(kRuns, kRunsHelp, {{"event", "start"}, {"outcome", "ok"}}, Load(p.executor_starts));
  scrape.Counter(kRuns, kRunsHelp, {{"event", "start"}, {"outcome", "failed"}}, Load(p.executor_starts_failed));
  scrape.Counter(kRuns, kRunsHelp, {{"event", "stop"}, {"outcome", "ok"}}, Load(p.executor_stops));
  scrape.Counter(kRuns, kRunsHelp, {{"event", "stop"}, {"outcome", "failed"}}, Load(p.executor_stops_failed));
}

void CollectClientPort(const client::ClientPortCounters& c, Scrape& scrape) {
  scrape.Counter("gpumart_client_requests_total", "Client requests decoded and dispatched (ping, publish, queries).",
                 {}, Load(c.requests));
  scrape.Counter("gpumart_client_error_replies_total",
                 "Replies to clients that carry an error (a refused publish, a bad request, rate limited).", {},
                 Load(c.errors));
  constexpr std::string_view kFrames = "gpumart_client_frames_refused_total";
  constexpr std::string_view kFramesHelp =
      "Client frames not served, by reason: rate_limited (over the connection's request rate) or undecodable (no "
      "request id to answer).";
  scrape.Counter(kFrames, kFramesHelp, {{"reason", "rate_limited"}}, Load(c.rate_limited));
  scrape.Counter(kFrames, kFramesHelp, {{"reason", "undecodable"}}, Load(c.undecodable));
  constexpr std::string_view kPublishes = "gpumart_client_publishes_total";
  constexpr std::string_view kPublishesHelp =
      "Orders, Accepts and Closes clients published, by outcome: published (gossiped, a retry included) or refused "
      "(signature, freshness, owner, limits).";
  scrape.Counter(kPublishes, kPublishesHelp, {{"outcome", "published"}}, Load(c.published));
  scrape.Counter(kPublishes, kPublishesHelp, {{"outcome", "refused"}}, Load(c.refused));
  scrape.Counter("gpumart_client_events_total", "Events (bid, lease, close) pushed to subscribed clients.", {},
                 Load(c.events));
  constexpr std::string_view kDrops = "gpumart_client_queue_drops_total";
  constexpr std::string_view kDropsHelp =
      "What the client port dropped at a full queue, by queue: send (a client's replies and events) or deliveries "
      "(the port's own mailbox).";
  scrape.Counter(kDrops, kDropsHelp, {{"queue", "send"}}, Load(c.send_dropped));
  scrape.Counter(kDrops, kDropsHelp, {{"queue", "deliveries"}}, Load(c.deliveries_dropped));
  scrape.Gauge("gpumart_client_connections", "Client connections the port tracks now.", {},
               static_cast<double>(Load(c.connections)));
  scrape.Gauge("gpumart_client_subscriptions", "Orders whose events the port pushes to clients now.", {},
               static_cast<double>(Load(c.subscriptions)));
}

// A device type's labels: a MIG instance or a time-slice replica has the whole GPU's model and
// may have its RAM (a 7g.80gb instance, a replica), so `mig` and `shared` tell them apart. They
// are left out for a whole GPU, which keeps its series as before.
metrics::Labels DeviceLabels(const market::DeviceType& type) {
  metrics::Labels labels{{"vendor", type.vendor},
                         {"model", type.model},
                         {"ram", market::FormatGi(type.ram_bytes)},
                         {"interface", std::string(market::ToString(type.interface))}};
  if (!type.mig_profile.empty()) labels.emplace_back("mig", type.mig_profile);
  if (type.shared) labels.emplace_back("shared", "true");
  return labels;
}

// Free GPUs per device type, from the Offer the provider last published (its free capacity).
void CollectFreeCapacity(const market::Offer& offer, Scrape& scrape) {
  std::map<market::DeviceType, uint64_t> free;
  for (const market::NodeCapacity& node : offer.nodes) {
    for (const market::GpuDevices& gpus : node.gpus) {
      const market::DeviceType key{.vendor = gpus.vendor, .model = gpus.model, .ram_bytes = gpus.ram_bytes,
                                   .interface = gpus.interface, .mig_profile = gpus.mig_profile, .shared = gpus.shared};
      if (free.size() >= kMaxMetricDeviceTypes && !free.contains(key)) continue;
      free[key] += gpus.count;
    }
  }
  for (const auto& [type, count] : free) {
    scrape.Gauge("gpumart_provider_free_gpus",
                 "GPUs free now (in the provider's last published Offer), by device type.", DeviceLabels(type),
                 static_cast<double>(count));
  }
}

// Per device type: GPUs installed, out of service, leased; utilisation; revenue (the engine's
// figures, the same as `gpumart status`).
void CollectUsage(const std::map<market::DeviceType, bidding::DeviceUsage>& usage, Scrape& scrape) {
  size_t types = 0;
  for (const auto& [type, use] : usage) {
    if (++types > kMaxMetricDeviceTypes) break;
    const metrics::Labels labels = DeviceLabels(type);
    scrape.Gauge("gpumart_provider_gpus_installed", "GPUs the provider's inventory has, by device type.", labels,
                 static_cast<double>(use.installed));
    scrape.Gauge("gpumart_provider_gpus_out_of_service",
                 "GPUs taken out of service by the health checks (not offered), by device type.", labels,
                 static_cast<double>(use.out_of_service));
    scrape.Gauge("gpumart_provider_gpus_leased", "GPUs the provider's active leases hold, by device type.", labels,
                 static_cast<double>(use.leased));
    scrape.Gauge("gpumart_provider_gpu_utilisation_ratio",
                 "Leased GPUs over offered GPUs (installed minus out of service), 0 to 1, by device type.", labels,
                 static_cast<double>(use.UtilisationPermille()) / 1000.0);
    for (const auto& [denom, amount] : use.revenue_per_hour) {
      metrics::Labels with_denom = labels;
      with_denom.emplace_back("denom", denom);
      scrape.Gauge("gpumart_provider_revenue_per_hour",
                   "Price per hour of the provider's active leases, in micro-units of the denom, by device type "
                   "(a lease counts for its first GPU service's device type).",
                   with_denom, static_cast<double>(amount));
    }
  }
}

// Each GPU's health (DCGM-like names, base units), labelled by GPU UUID, index and node.
void CollectGpuHealth(const ProviderStatus& status, Scrape& scrape) {
  for (const bidding::GpuHealth& gpu : status.gpus) {
    const metrics::Labels labels{{"gpu", std::to_string(gpu.index)}, {"uuid", gpu.id}, {"node", status.health_node}};
    scrape.Gauge("gpumart_gpu_healthy", "1 when the GPU is in service, 0 when unhealthy or in its hold-down.", labels,
                 gpu.InService() ? 1.0 : 0.0);
    if (gpu.temperature_c) {
      scrape.Gauge("gpumart_gpu_temperature_celsius", "GPU temperature (nvidia-smi temperature.gpu).", labels,
                   static_cast<double>(*gpu.temperature_c));
    }
    metrics::Labels volatile_labels = labels;
    volatile_labels.emplace_back("scope", "volatile");
    metrics::Labels aggregate_labels = labels;
    aggregate_labels.emplace_back("scope", "aggregate");
    constexpr std::string_view kEccHelp =
        "Uncorrected ECC errors (nvidia-smi ecc.errors.uncorrected.*.total): volatile since the driver loaded, "
        "aggregate over the GPU's life.";
    scrape.Counter("gpumart_gpu_ecc_uncorrected_errors_total", kEccHelp, volatile_labels, gpu.ecc_volatile_uncorrected);
    scrape.Counter("gpumart_gpu_ecc_uncorrected_errors_total", kEccHelp, aggregate_labels, gpu.ecc_aggregate_uncorrected);
    scrape.Counter("gpumart_gpu_xid_errors_total", "Xid errors the kernel log showed for the GPU since the daemon started.",
                   labels, gpu.xid_errors);
    scrape.Gauge("gpumart_gpu_last_xid", "The code of the GPU's last Xid error (0: none seen).", labels,
                 static_cast<double>(gpu.last_xid));
  }
}

void CollectGossip(const gossip::GossipNodeStatus& s, Scrape& scrape) {
  constexpr std::string_view kPeers = "gpumart_gossip_peers";
  constexpr std::string_view kPeersHelp = "Ready gossip peers now, by direction: inbound (they dialled) or outbound.";
  scrape.Gauge(kPeers, kPeersHelp, {{"direction", "inbound"}}, static_cast<double>(s.ready_inbound));
  scrape.Gauge(kPeers, kPeersHelp, {{"direction", "outbound"}}, static_cast<double>(s.ready_outbound));
  scrape.Gauge("gpumart_gossip_links", "Open gossip links now, ready or still in their handshake.", {},
               static_cast<double>(s.links));
  constexpr std::string_view kFrames = "gpumart_gossip_frames_total";
  constexpr std::string_view kFramesHelp = "Gossip frames received (in) and sent (out).";
  scrape.Counter(kFrames, kFramesHelp, {{"direction", "in"}}, s.frames_in);
  scrape.Counter(kFrames, kFramesHelp, {{"direction", "out"}}, s.frames_out);
  constexpr std::string_view kBytes = "gpumart_gossip_bytes_total";
  constexpr std::string_view kBytesHelp = "Payload bytes of the gossip frames received (in) and sent (out).";
  scrape.Counter(kBytes, kBytesHelp, {{"direction", "in"}}, s.bytes_in);
  scrape.Counter(kBytes, kBytesHelp, {{"direction", "out"}}, s.bytes_out);
  for (size_t reason = 0; reason < gossip::kDropCount; ++reason) {
    scrape.Counter("gpumart_gossip_drops_total",
                   "Frames, messages and links the gossip protocol dropped, by reason (docs/GOSSIP.md).",
                   {{"reason", std::string(gossip::ToString(static_cast<gossip::Drop>(reason)))}},
                   s.core_drops.by_reason[reason]);
  }
  for (size_t reason = 0; reason < gossip::kTransportDropCount; ++reason) {
    scrape.Counter("gpumart_gossip_transport_drops_total",
                   "Frames, dials and links the gossip transport dropped, by reason (docs/GOSSIP.md).",
                   {{"reason", std::string(gossip::ToString(static_cast<gossip::TransportDrop>(reason)))}},
                   s.transport_drops[reason]);
  }
  scrape.Counter("gpumart_gossip_delivered_total", "New verified messages gossip delivered to this node.", {},
                 s.core_stats.delivered);
  scrape.Counter("gpumart_gossip_misbehaviour_total", "Misbehaviour verdicts against peers.", {}, s.verdicts);
  scrape.Counter("gpumart_gossip_bans_total", "Peers banned.", {}, s.bans);
}

}  // namespace

NodeMetrics::NodeMetrics()
    : ledger_commit_seconds(registry.AddHistogram(
          "gpumart_ledger_commit_seconds",
          "Time to apply one ledger round and commit it durably (what a lease waits for).",
          metrics::LatencyBuckets())),
      submit_to_lease_seconds(registry.AddHistogram(
          "gpumart_submit_to_lease_seconds",
          "Time from the client port taking a tenant's Order to pushing the tenant the Lease for it.",
          metrics::LatencyBuckets())) {}

NodeMetricSources::NodeMetricSources(actors::ActorSystem& system, Parts parts)
    : outbox_(std::make_unique<actors::Outbox>(system)), parts_(std::move(parts)) {}

void NodeMetricSources::Register(NodeMetrics& metrics, std::shared_ptr<NodeMetricSources> sources) {
  metrics.registry.AddCollector([sources = std::move(sources), registry = &metrics.registry](Scrape& scrape) {
    sources->Collect(scrape);
    scrape.Counter("gpumart_metrics_series_refused_total",
                   "Series left out of earlier scrapes (an invalid name, a type clash, over the limit).", {},
                   registry->refused_series());
  });
}

void NodeMetricSources::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  open_ = false;
  outbox_.reset();
}

void NodeMetricSources::Collect(Scrape& scrape) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!open_) return;
  if (parts_.feed) CollectFeed(*parts_.feed, scrape);
  if (parts_.offers) CollectOfferBook(*parts_.offers, scrape);
  if (parts_.ledger) CollectLedger(*parts_.ledger, scrape);
  if (parts_.provider_counters) CollectProvider(*parts_.provider_counters, scrape);
  if (parts_.client) CollectClientPort(*parts_.client, scrape);
  if (parts_.provider) {
    auto status = outbox_->Request<ProviderStatus>(*parts_.provider, GetProviderStatus{}, kMetricsStatusTimeout);
    if (status.ok()) {
      CollectDeviceTypes(status.value().offer, status.value().usage, scrape);
      CollectGpuHealth(status.value(), scrape);
    }
  }
  auto gossip = outbox_->Request<gossip::GossipNodeStatus>(parts_.gossip, gossip::GetGossipStatus{},
                                                          kMetricsStatusTimeout);
  if (gossip.ok()) CollectGossip(gossip.value(), scrape);
}

void CollectDeviceTypes(const market::Offer& offer, const std::map<market::DeviceType, bidding::DeviceUsage>& usage,
                        metrics::Scrape& scrape) {
  CollectFreeCapacity(offer, scrape);
  CollectUsage(usage, scrape);
}

}  // namespace gpumart::node
