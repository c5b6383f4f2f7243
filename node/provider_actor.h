// The provider actor: what makes a `role: provider` gpumartd earn. It drives the provider's bid
// engine (bidding/bid_engine.h, a state machine without I/O) with what gossip delivers and
// carries out what the engine asks:
//
// - Orders -> engine -> signed Bids, published on gossip (they route back along the Order's
//   path); the reservation and the Order go to the ledger without anyone waiting (a lease is
//   only made after the re-check at Accept time).
// - Accepts -> engine -> RecordLease through the ledger's actor path (ledger::SubmitFromActor);
//   only after the durable LedgerWriteDone is the signed Lease published. Refusals (a Close
//   naming the Accept, docs/PROTOCOL.md "Refusing an Accept") are published too.
// - Leases and Closes of others -> engine (reservations of orders leased elsewhere are released
//   at once; a closed lease frees its capacity).
// - `command` pricing runs on threads of its own (the engine bounds how many at once), whose
//   answers come back as messages; the engine's own deadlines drive a one-shot timer.
// - The provider's Offer (its free capacity) is signed and published at start, after every
//   capacity change (debounced), and before it expires; Withdraw publishes an Offer with no
//   nodes and a short lifetime (docs/PROTOCOL.md, "Withdrawing an Offer").
// - Leases that start and stop go to the lease executor (bidding/executor.h, docs/EXECUTOR.md),
//   whose threads post each outcome back as a message. A start that failed (or that the executor
//   refused) closes the lease with reason provider-failure, signed by the provider, through the
//   same path as any Close: capacity freed at once, the Close gossiped and recorded.
// - GPU health (docs/HEALTH.md), when configured: every health.interval_ms a thread runs
//   nvidia-smi (and the kernel-log command) and posts the readings back; the health state
//   machine (bidding/gpu_health.h) decides which GPUs are out of service; the engine withdraws
//   the units each carries, whole or its MIG instances or replicas (bidding::UnitsOutOfService,
//   BidEngine::SetOutOfService), the Offer is re-published at once, and the leases over
//   what is left in service are closed with reason provider-failure and the health in the note.
//
// Deliveries arrive through HandToProvider from the gossip thread (never blocking: a full queue
// is a counted drop). The actor learns the gossip node's address from ProviderStart, sent once
// the gossip node is spawned (gossip needs the provider's address for its callback first).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "actors/actor.h"
#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "bidding/bid_engine.h"
#include "bidding/executor.h"
#include "bidding/gpu_health.h"
#include "bidding/gpu_models.h"
#include "bidding/pricing.h"
#include "ledger/store.h"
#include "market/crypto.h"
#include "market/offers.h"
#include "market/status.h"
#include "market/types.h"
#include "node/gossip/gossip_core.h"

namespace gpumart::node {

// Deliveries queued towards the provider actor before more are dropped.
constexpr int kProviderMailboxHwm = 4096;
// How long a withdrawing Offer lives: long enough to reach every node, short so that it leaves
// every offer book soon after.
constexpr int64_t kOfferWithdrawTtlMs = 30'000;
// Envelope lifetime of a Close the provider signs (a lease its executor could not start).
constexpr int64_t kProviderCloseTtlMs = 60'000;

struct ProviderOptions {
  int64_t offer_ttl_ms = 10 * 60'000;     // envelope lifetime of a published Offer
  int64_t offer_refresh_ms = 5 * 60'000;  // republished this often (before it expires)
  int64_t offer_debounce_ms = 500;        // capacity changes within this are one new Offer
  std::string offer_name;                 // the Offer's label (docs/PROTOCOL.md: the signer is the provider)
  bidding::ExecutorConfig executor;       // run on lease start and stop (the config's `executor`)
  // GPU health checks (the config's `health`); health.node is the inventory node they watch
  // (the daemon fills it in) and gpu_models maps nvidia-smi's product names to device types.
  bidding::GpuHealthConfig health;
  bidding::GpuModelTable gpu_models;
  // The inventory's physical GPUs (bidding::Inventory::physical_gpus): which units a failed GPU
  // of health.node takes out of the offer (bidding::UnitsOutOfService).
  market::PhysicalGpuLayout physical_gpus;
};

// Counters of the provider, written by its actor (and the gossip thread for drops), read by
// anyone (the daemon's status line and shutdown report).
struct ProviderCounters {
  std::atomic<uint64_t> orders{0};
  std::atomic<uint64_t> bids{0};
  std::array<std::atomic<uint64_t>, bidding::kSkipReasons> skipped{};
  std::atomic<uint64_t> reservations_held{0};  // live now
  std::atomic<uint64_t> reservations_released{0};
  std::atomic<uint64_t> reservations_expired{0};
  std::atomic<uint64_t> leases_active{0};  // now
  std::atomic<uint64_t> leases_made{0};
  std::atomic<uint64_t> leases_failed{0};
  std::atomic<uint64_t> leases_closed{0};
  std::atomic<uint64_t> leases_preempted{0};  // spot leases this provider preempted
  std::atomic<uint64_t> accepts_refused{0};
  std::atomic<uint64_t> accepts_ignored{0};
  // Orders skipped for lack of capacity and kept to be tried again (docs/PRICING.md, "Orders
  // waiting for capacity"): waiting now, kept in all, and how the waits ended.
  std::atomic<uint64_t> orders_waiting{0};
  std::atomic<uint64_t> orders_deferred{0};
  std::atomic<uint64_t> deferred_served{0};
  std::atomic<uint64_t> deferred_dropped{0};
  std::atomic<uint64_t> offers_published{0};
  std::atomic<uint64_t> publish_dropped{0};   // the gossip node's queue was full
  std::atomic<uint64_t> ledger_dropped{0};    // the ledger's queue was full, or a write failed
  std::atomic<uint64_t> deliveries_dropped{0};  // the provider's own queue was full
  std::atomic<uint64_t> pending_lease_writes{0};
  // Lease executor outcomes by event (a refused Submit counts as a failed run).
  std::atomic<uint64_t> executor_starts{0};
  std::atomic<uint64_t> executor_starts_failed{0};
  std::atomic<uint64_t> executor_stops{0};
  std::atomic<uint64_t> executor_stops_failed{0};
  // One line for people: bids, skips by reason, reservations, leases by outcome.
  std::string Describe() const;
};

// The provider's bridges between the engine and the ledger, used by the daemon and by the demo
// (node/local_market.cpp) alike.
// `provider`'s active leases as `store` has them, for BidEngine::Restore (what a kept data dir
// still promises, so nothing is double-booked across restarts).
Result<std::vector<bidding::RestoredLease>> ActiveLeasesOf(const ledger::LedgerStore& store,
                                                           const market::PublicKey& provider);
// `provider`'s reservations whose bid the ledger has, for BidEngine::Restore (which releases the
// expired ones); `orphans` gets those whose bid it lacks (to be released).
Result<std::vector<bidding::RestoredReservation>> ReservationsOf(const ledger::LedgerStore& store,
                                                                 const market::PublicKey& provider, size_t max,
                                                                 std::vector<market::MessageId>& orphans);

// A message gossip delivered: an Order, Accept, Lease or Close. Only the gossip core's verified
// deliveries (on_deliver, or on_publish after its Publish verified): the actor decodes Orders
// and Leases without checking their signatures again.
struct ProviderDelivery {
  gossip::Deliver delivery;
};
// Sent once, after the gossip node is spawned: where to publish. The first Offer leaves then.
struct ProviderStart {
  actors::ActorAddress gossip;
};
// A reloaded inventory and pricing (SIGHUP). Reply: Status (both kept as they were unless Ok).
// New bids use the new pricing; bids made and leases held keep their price.
struct ReloadInventory {
  market::Offer inventory;
  std::optional<bidding::PricingConfig> pricing;  // unset: the running one stays
  market::PhysicalGpuLayout physical_gpus;        // the new inventory's (ProviderOptions)
};
// SIGTERM: no more bids; accepts still honoured so leases in flight finish. Reply: bool.
struct StopBidding {};
// Signs the withdrawing Offer and stops refreshing the offer. Reply: market::Bytes, its
// envelope, which the caller publishes and waits on (gossip stops right after).
struct WithdrawOffer {};
// Reply: ProviderStatus.
struct GetProviderStatus {};
struct ProviderStatus {
  size_t live_reservations = 0;
  size_t active_leases = 0;
  uint64_t pending_lease_writes = 0;
  bool bidding = true;
  market::Offer offer;  // the last one published
  // Per device type: installed, out of service, leased, revenue (the engine's figures).
  std::map<market::DeviceType, bidding::DeviceUsage> usage;
  bool health_checked = false;           // health checks are configured
  std::string health_node;               // the inventory node they watch
  std::vector<bidding::GpuHealth> gpus;  // each GPU's health, as of the last check
  int64_t health_checked_ms = 0;         // when the last check's readings arrived (0: none yet)
};
// A health check's readings (from its thread).
struct HealthReadings {
  Result<bidding::GpuHealthReadings> readings;
  std::optional<Result<bidding::XidCounts>> xids;  // unset: no kernel-log command configured
};
// A lease executor's outcome (from its thread).
struct ExecutorDone {
  bidding::ExecutorOutcome outcome;
};
// A `command` price program's answer (from its thread).
struct PriceAnswer {
  uint64_t id = 0;
  Result<uint64_t> price;
};

// Restores `engine` (before any input) from the ledger: the provider's active leases and its
// reservations. The step holds the ledger writes this asks for (expired reservations, and those
// whose bid the ledger lacks, released): the actor applies it first. An unreadable ledger is an
// error, so that a provider never sells capacity it already promised.
Result<bidding::EngineStep> RestoreFromLedger(bidding::BidEngine& engine, const ledger::LedgerStore& store,
                                              size_t max_reservations, int64_t now_ms);

class ProviderActor final : public actors::Actor {
 public:
  // `engine` holds the inventory and pricing, restored (RestoreFromLedger gave `restored`);
  // `pricing` is the policy it was made with (its command settings run the price program).
  // `system` makes the price and executor threads' outboxes. `store` is the ledger's (read for
  // the lease a stop event hands the executor; it outlives the actor).
  ProviderActor(actors::ActorSystem& system, market::Identity identity, std::unique_ptr<bidding::BidEngine> engine,
                bidding::EngineStep restored, bidding::PricingConfig pricing, actors::ActorAddress ledger,
                const ledger::LedgerStore& store, ProviderOptions options,
                std::shared_ptr<ProviderCounters> counters);
  ~ProviderActor() override;
  void Init(actors::Handlers& on, actors::ActorContext& ctx) override;

  static bool Takes(market::MessageType type);

 private:
  enum class WriteKind : uint8_t { kBackground, kLease };
  void OnDelivery(const gossip::Deliver& delivery, actors::ActorContext& ctx);
  void Apply(bidding::EngineStep step, actors::ActorContext& ctx);
  void Submit(ledger::LedgerWrite write, WriteKind kind, const market::MessageId& bid_id, actors::ActorContext& ctx);
  void Publish(const market::Envelope& envelope, actors::ActorContext& ctx);
  market::Bytes PublishOffer(int64_t ttl_ms, bool withdraw, actors::ActorContext& ctx);
  void ScheduleOffer(actors::ActorContext& ctx);
  void ArmDeadline(actors::ActorContext& ctx);
  void RunPricing(const bidding::PriceRequest& request, actors::ActorContext& ctx);
  void SyncCounters();
  // Every Close of one of this provider's leases: the engine frees it; the executor stops it.
  // True when it closed an active lease.
  bool OnLeaseClose(const market::Signed<market::Close>& close, actors::ActorContext& ctx);
  // Tells the executor to stop the lease `close` ends (its closed_ms says by when).
  void StopLease(const market::Signed<market::Close>& close);
  void StartLease(const market::Signed<market::Lease>& lease, actors::ActorContext& ctx);
  void OnExecutorDone(bidding::ExecutorOutcome outcome, actors::ActorContext& ctx);
  void RunHealthCheck(actors::ActorContext& ctx);
  void OnHealthReadings(HealthReadings readings, actors::ActorContext& ctx);
  // Takes the units of the GPUs out of service now out of the offer (and closes the leases over
  // what is left); nothing when that did not change.
  void ApplyHealth(actors::ActorContext& ctx);
  // Signs, gossips, records and applies a provider-failure Close of `lease_id`.
  void FailLease(const market::MessageId& lease_id, const std::string& why, actors::ActorContext& ctx);

  actors::ActorSystem& system_;
  const market::Identity identity_;
  std::unique_ptr<bidding::BidEngine> engine_;
  bidding::EngineStep restored_;
  bidding::PricingConfig pricing_;  // replaced on reload
  const actors::ActorAddress ledger_;
  const ledger::LedgerStore& store_;
  const ProviderOptions options_;
  const std::shared_ptr<ProviderCounters> counters_;
  std::optional<actors::ActorAddress> gossip_;
  bool bidding_ = true;
  bool withdrawn_ = false;
  market::Offer last_offer_;
  std::optional<actors::TimerId> deadline_timer_;
  int64_t deadline_at_ = 0;
  bool offer_scheduled_ = false;
  uint64_t next_tag_ = 1;
  struct PendingWrite {
    WriteKind kind;
    market::MessageId bid_id;
  };
  std::map<uint64_t, PendingWrite> writes_;
  // Price programs in flight; joined on destruction (each is bounded by its timeout).
  struct PricingThread {
    std::shared_ptr<std::atomic<bool>> done;
    std::jthread thread;
  };
  std::vector<PricingThread> pricing_threads_;
  std::optional<bidding::GpuHealthMonitor> health_;
  std::optional<PricingThread> health_thread_;  // the check in flight (one at a time)
  std::map<market::DeviceType, uint64_t> out_of_service_;  // on options_.health.node
  // options_.physical_gpus, as the last inventory reload set it.
  market::PhysicalGpuLayout physical_gpus_;
  int64_t health_checked_ms_ = 0;
  // Last, so destroyed first: its threads post to this actor's mailbox and must be gone before
  // the rest of the actor (the destructor also resets it first).
  std::unique_ptr<bidding::Executor> executor_;
};

// Hands a delivery the provider takes to it from the gossip thread, never blocking.
void HandToProvider(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& provider,
                    ProviderCounters& counters);

}  // namespace gpumart::node
