#include "node/provider_actor.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "actors/message.h"
#include "bidding/price_command.h"
#include "ledger/ledger_actor.h"
#include "market/codec.h"
#include "node/json.h"
#include "node/gossip/gossip_node.h"

namespace gpumart::node {

namespace {

void Store(std::atomic<uint64_t>& counter, uint64_t value) { counter.store(value, std::memory_order_relaxed); }
uint64_t Load(const std::atomic<uint64_t>& counter) { return counter.load(std::memory_order_relaxed); }

}  // namespace

std::string ProviderCounters::Describe() const {
  std::string line = "orders " + std::to_string(Load(orders)) + ", bids " + std::to_string(Load(bids)) + ", skipped";
  bool any = false;
  for (size_t reason = 0; reason < bidding::kSkipReasons; ++reason) {
    if (const uint64_t count = Load(skipped[reason]); count > 0) {
      line += " " + std::string(bidding::ToString(static_cast<bidding::SkipReason>(reason))) + "=" +
              std::to_string(count);
      any = true;
    }
  }
  if (!any) line += " none";
  line += "; reservations held " + std::to_string(Load(reservations_held)) + ", released " +
          std::to_string(Load(reservations_released)) + ", expired " + std::to_string(Load(reservations_expired));
  line += "; leases active " + std::to_string(Load(leases_active)) + ", made " + std::to_string(Load(leases_made)) +
          ", failed " + std::to_string(Load(leases_failed)) + ", closed " + std::to_string(Load(leases_closed));
  line += "; accepts refused " + std::to_string(Load(accepts_refused)) + ", ignored " +
          std::to_string(Load(accepts_ignored));
  line += "; orders waiting for capacity " + std::to_string(Load(orders_waiting)) + " (served " +
          std::to_string(Load(deferred_served)) + ", dropped " + std::to_string(Load(deferred_dropped)) + ")";
  line += "; offers published " + std::to_string(Load(offers_published));
  line += "; executor starts " + std::to_string(Load(executor_starts)) + " (failed " +
          std::to_string(Load(executor_starts_failed)) + "), stops " + std::to_string(Load(executor_stops)) +
          " (failed " + std::to_string(Load(executor_stops_failed)) + ")";
  const uint64_t dropped = Load(publish_dropped) + Load(ledger_dropped) + Load(deliveries_dropped);
  if (dropped > 0) {
    line += "; dropped: publish " + std::to_string(Load(publish_dropped)) + ", ledger " +
            std::to_string(Load(ledger_dropped)) + ", deliveries " + std::to_string(Load(deliveries_dropped));
  }
  return line;
}

Result<std::vector<bidding::RestoredReservation>> ReservationsOf(const ledger::LedgerStore& store,
                                                                 const market::PublicKey& provider, size_t max,
                                                                 std::vector<market::MessageId>& orphans) {
  Result<std::vector<ledger::Reservation>> held = store.ReservationsOf(provider, max);
  if (!held.ok()) return held.status();
  std::vector<bidding::RestoredReservation> restored;
  for (const ledger::Reservation& reservation : *held) {
    Result<market::Signed<market::Bid>> bid = store.GetBid(reservation.bid_id);
    if (bid.status().code() == Status::Code::kNotFound) {
      orphans.push_back(reservation.bid_id);
      continue;
    }
    if (!bid.ok()) return bid.status().WithContext("the bid of reservation " + market::ToHex(reservation.bid_id));
    restored.push_back(
        bidding::RestoredReservation{std::move(bid).value(), reservation.expires_ms, reservation.usage});
  }
  return restored;
}

Result<std::vector<bidding::RestoredLease>> ActiveLeasesOf(const ledger::LedgerStore& store,
                                                           const market::PublicKey& provider) {
  std::vector<bidding::RestoredLease> restored;
  ledger::LeaseQuery query;
  query.provider = provider;
  query.state = ledger::LeaseState::kActive;
  query.limit = ledger::kMaxPageSize;
  while (true) {
    Result<ledger::LeasePage> page = store.Leases(query);
    if (!page.ok()) return page.status();
    for (const ledger::LeaseRecord& record : page->leases) {
      Result<market::Signed<market::Order>> order = store.GetOrder(record.lease.order_id);
      if (!order.ok()) return order.status().WithContext("the order of lease " + market::ToHex(record.id));
      Result<bidding::Allocation> allocation = market::UsageOf(order->body, record.lease.services);
      if (!allocation.ok()) return allocation.status().WithContext("lease " + market::ToHex(record.id));
      restored.push_back(bidding::RestoredLease{record.id, record.lease.tenant, record.lease.order_id,
                                                record.lease.bid_id, std::move(*allocation), record.lease.spot,
                                                record.lease.denom, record.lease.price_per_hour});
    }
    if (!page->next_after) break;
    query.after = page->next_after;
  }
  return restored;
}

bool ProviderActor::Takes(market::MessageType type) {
  return type == market::MessageType::kOrder || type == market::MessageType::kAccept ||
         type == market::MessageType::kLease || type == market::MessageType::kClose;
}

ProviderActor::ProviderActor(actors::ActorSystem& system, market::Identity identity,
                             std::unique_ptr<bidding::BidEngine> engine, bidding::EngineStep restored,
                             bidding::PricingConfig pricing, actors::ActorAddress ledger,
                             const ledger::LedgerStore& store, ProviderOptions options,
                             std::shared_ptr<ProviderCounters> counters)
    : system_(system),
      identity_(std::move(identity)),
      engine_(std::move(engine)),
      restored_(std::move(restored)),
      pricing_(std::move(pricing)),
      ledger_(std::move(ledger)),
      store_(store),
      options_(std::move(options)),
      counters_(std::move(counters)),
      physical_gpus_(options_.physical_gpus) {}

ProviderActor::~ProviderActor() {
  // First: kills running programs and joins the executor's threads, which post to this actor.
  executor_.reset();
  // Then the members, joining the price threads (each bounded by its timeout).
}

void ProviderActor::Init(actors::Handlers& on, actors::ActorContext& ctx) {
  // The outcome only travels to the mailbox: the executor's threads never touch the actor.
  executor_ = std::make_unique<bidding::Executor>(
      options_.executor, [system = &system_, self = ctx.self(), counters = counters_](bidding::ExecutorOutcome outcome) {
        actors::Outbox outbox(*system);
        if (outbox.SendOrDrop(self, ExecutorDone{std::move(outcome)}) != actors::SendResult::kOk) {
          counters->deliveries_dropped.fetch_add(1, std::memory_order_relaxed);
        }
      });
  Apply(std::move(restored_), ctx);  // the ledger writes the restore asks for
  on.On<ProviderDelivery>([this](ProviderDelivery& message, actors::ActorContext& self) {
    OnDelivery(message.delivery, self);
  });
  on.On<ProviderStart>([this](ProviderStart& start, actors::ActorContext& self) {
    gossip_ = start.gossip;
    PublishOffer(options_.offer_ttl_ms, /*withdraw=*/false, self);
  });
  on.On<ledger::LedgerWriteDone>([this](ledger::LedgerWriteDone& done, actors::ActorContext& self) {
    const auto found = writes_.find(done.tag);
    if (found == writes_.end()) return;
    const PendingWrite write = found->second;
    writes_.erase(found);
    if (write.kind == WriteKind::kLease) {
      counters_->pending_lease_writes.fetch_sub(1, std::memory_order_relaxed);
      Apply(engine_->OnLeaseStored(write.bid_id, done.status, self.clock().NowMs()), self);
    } else if (!done.status.ok()) {
      counters_->ledger_dropped.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("provider: a ledger write failed: {}", done.status.message());
    }
  });
  on.On<ExecutorDone>([this](ExecutorDone& done, actors::ActorContext& self) {
    OnExecutorDone(std::move(done.outcome), self);
  });
  on.On<PriceAnswer>([this](PriceAnswer& answer, actors::ActorContext& self) {
    Apply(engine_->OnPriceAnswer(answer.id, std::move(answer.price), self.clock().NowMs()), self);
  });
  on.OnRequest<ReloadInventory>([this](ReloadInventory& reload, actors::ActorContext& self) {
    if (reload.pricing) GPUMART_RETURN_IF_ERROR(engine_->SetPricing(*reload.pricing));
    Status status = engine_->SetInventory(std::move(reload.inventory));
    if (!status.ok()) {
      // Both or neither: the running pricing was valid with the running inventory.
      if (reload.pricing) (void)engine_->SetPricing(pricing_);
      return status;
    }
    if (reload.pricing) pricing_ = std::move(*reload.pricing);
    // What a GPU carries may have changed (a GPU cut into MIG instances, detected again).
    physical_gpus_ = std::move(reload.physical_gpus);
    ApplyHealth(self);
    ScheduleOffer(self);
    ArmDeadline(self);  // orders waiting for capacity are tried on the engine's next Tick
    return status;
  });
  on.OnRequest<StopBidding>([this](StopBidding&) {
    bidding_ = false;
    return true;
  });
  on.OnRequest<WithdrawOffer>([this](WithdrawOffer&, actors::ActorContext& self) {
    return PublishOffer(kOfferWithdrawTtlMs, /*withdraw=*/true, self);
  });
  on.OnRequest<GetProviderStatus>([this](GetProviderStatus&) {
    ProviderStatus status{engine_->live_reservations(), engine_->active_leases(),
                          Load(counters_->pending_lease_writes), bidding_, last_offer_};
    status.usage = engine_->Usage();
    status.health_checked = health_.has_value();
    status.health_node = options_.health.node;
    status.health_checked_ms = health_checked_ms_;
    if (health_) {
      for (const auto& [id, gpu] : health_->gpus()) status.gpus.push_back(gpu);
    }
    return status;
  });
  on.On<HealthReadings>([this](HealthReadings& readings, actors::ActorContext& self) {
    OnHealthReadings(std::move(readings), self);
  });
  if (options_.health.enabled) {
    health_.emplace(options_.health);
    RunHealthCheck(ctx);
    ctx.StartPeriodicTimer(options_.health.interval_ms, [this](actors::ActorContext& self) { RunHealthCheck(self); });
  }
  ctx.StartPeriodicTimer(options_.offer_refresh_ms, [this](actors::ActorContext& self) {
    if (!withdrawn_) PublishOffer(options_.offer_ttl_ms, /*withdraw=*/false, self);
  });
}

Result<bidding::EngineStep> RestoreFromLedger(bidding::BidEngine& engine, const ledger::LedgerStore& store,
                                              size_t max_reservations, int64_t now_ms) {
  const market::PublicKey& provider = engine.provider();
  Result<std::vector<bidding::RestoredLease>> leases = ActiveLeasesOf(store, provider);
  if (!leases.ok()) return leases.status().WithContext("restoring the provider's leases from the ledger");
  std::vector<market::MessageId> orphans;
  Result<std::vector<bidding::RestoredReservation>> reservations =
      ReservationsOf(store, provider, max_reservations, orphans);
  if (!reservations.ok()) {
    return reservations.status().WithContext("restoring the provider's reservations from the ledger");
  }
  const size_t lease_count = leases->size();
  const size_t reservation_count = reservations->size();
  bidding::EngineStep step = engine.Restore(std::move(reservations).value(), std::move(leases).value(), now_ms);
  // A reservation whose bid the ledger lacks cannot be honoured: it is released.
  step.release.insert(step.release.end(), orphans.begin(), orphans.end());
  step.capacity_changed = false;  // the first Offer already has it
  if (lease_count + reservation_count + orphans.size() > 0) {
    spdlog::info("provider: restored from the ledger: {} active leases, {} reservations ({} without a bid released)",
                 lease_count, reservation_count, orphans.size());
  }
  return step;
}

void ProviderActor::OnDelivery(const gossip::Deliver& delivery, actors::ActorContext& ctx) {
  const int64_t now_ms = ctx.clock().NowMs();
  switch (delivery.type) {
    // Deliveries come from the gossip core, which verified every signature before delivering:
    // decoded here, not verified again (the ledger feed does the same).
    case market::MessageType::kOrder: {
      if (!bidding_) return;
      Result<market::Signed<market::Order>> order = market::DecodeVerified<market::Order>(delivery.envelope);
      if (!order.ok()) return;  // the core decoded it before delivering; cannot happen
      Apply(engine_->OnVerifiedOrder(*order, now_ms), ctx);
      return;
    }
    case market::MessageType::kAccept: {
      Result<market::Signed<market::Accept>> accept = market::DecodeVerified<market::Accept>(delivery.envelope);
      if (accept.ok()) Apply(engine_->OnAccept(*accept, delivery.envelope, now_ms), ctx);
      return;
    }
    case market::MessageType::kLease: {
      // The core checked it completely (market::OpenLease: its signature and its embedded ones).
      Result<market::Signed<market::Lease>> lease = market::DecodeVerified<market::Lease>(delivery.envelope);
      if (lease.ok()) Apply(engine_->OnLease(*lease, now_ms), ctx);
      return;
    }
    case market::MessageType::kClose: {
      Result<market::Signed<market::Close>> close =
          market::OpenSigned<market::Close>(delivery.envelope, now_ms, market::Freshness::kIgnore);
      if (close.ok()) OnLeaseClose(*close, ctx);
      return;
    }
    default:
      return;
  }
}

void ProviderActor::Apply(bidding::EngineStep step, actors::ActorContext& ctx) {
  // Store, then send (bidding/bid_engine.h).
  // The orders of possible leases, so a restart can compute what a lease holds. Any input may
  // bid on one (an order that waited for capacity gets its bid when a lease ends, say).
  for (market::Signed<market::Order>& order : step.orders) {
    Submit(ledger::RecordOrder{std::move(order)}, WriteKind::kBackground, {}, ctx);
  }
  for (bidding::StoreReservation& reserve : step.reserve) {
    ledger::Reservation reservation{reserve.bid.id, identity_.public_key(), reserve.expires_ms,
                                    std::move(reserve.allocation)};
    Submit(ledger::Reserve{std::move(reservation)}, WriteKind::kBackground, {}, ctx);
  }
  for (const market::MessageId& bid_id : step.release) {
    Submit(ledger::Release{bid_id}, WriteKind::kBackground, {}, ctx);
  }
  for (bidding::StoreLease& record : step.record_leases) {
    Submit(ledger::RecordLease{std::move(record.lease)}, WriteKind::kLease, record.bid_id, ctx);
  }
  // Counters first: whoever sees a message this step publishes (a tenant, a test) must find them
  // already counting it.
  SyncCounters();
  for (const auto& bid : step.bids) {
    // Recorded so that a restart can restore the bid's reservation.
    Submit(ledger::RecordBid{bid}, WriteKind::kBackground, {}, ctx);
    Publish(bid.envelope, ctx);
  }
  for (const auto& lease : step.leases) {
    Publish(lease.envelope, ctx);
    spdlog::info("provider: lease {} active (tenant {}, {} per hour {})", market::ToHex(lease.id),
                 market::ToHex(lease.body.tenant), lease.body.price_per_hour, lease.body.denom);
  }
  // After the step's own effects: a start that fails at once closes its lease through Apply.
  for (const auto& lease : step.leases) StartLease(lease, ctx);
  for (const bidding::Refusal& refusal : step.refusals) Publish(refusal.close.envelope, ctx);
  // Spot leases preempted for a lease of this step (published above, so every node can check
  // each Close against it).
  for (const auto& close : step.preemptions) {
    spdlog::info("provider: spot lease {} preempted, effective at {}", market::ToHex(close.body.lease_id),
                 close.body.closed_ms);
    StopLease(close);
    Submit(ledger::RecordClose{close}, WriteKind::kBackground, {}, ctx);
    Publish(close.envelope, ctx);
  }
  for (const bidding::PriceRequest& request : step.price_requests) RunPricing(request, ctx);
  for (const std::string& line : step.log) spdlog::debug("provider: {}", line);
  if (step.capacity_changed) ScheduleOffer(ctx);
  SyncCounters();
  ArmDeadline(ctx);
}

bool ProviderActor::OnLeaseClose(const market::Signed<market::Close>& close, actors::ActorContext& ctx) {
  const size_t active = engine_->active_leases();
  bidding::EngineStep step = engine_->OnClose(close, ctx.clock().NowMs());
  const bool closed = engine_->active_leases() < active;
  if (closed) {
    spdlog::info("provider: lease {} closed ({})", market::ToHex(close.body.lease_id),
                 market::ToString(close.body.reason));
    StopLease(close);
  }
  Apply(std::move(step), ctx);
  return closed;
}

void ProviderActor::StopLease(const market::Signed<market::Close>& close) {
  {
    // The lease as the ledger has it, with this close (the ledger may not have recorded it yet).
    Result<ledger::LeaseRecord> record = store_.GetLease(close.body.lease_id);
    if (record.ok()) {
      record->state = ledger::LeaseState::kClosed;
      record->close = close.body;
      record->close_envelope = close.envelope;
      const std::string lease_id = market::ToHex(close.body.lease_id);
      Status submitted =
          executor_->Submit(bidding::ExecutorJob{lease_id, bidding::LeaseEvent::kStop,
                                                DumpJson(ToJson(*record, close.body.closed_ms))});  // closed: accrued until the close
      if (!submitted.ok()) {
        counters_->executor_stops_failed.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("provider: lease {} stop not run: {}", lease_id, submitted.message());
      }
    } else {
      counters_->executor_stops_failed.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("provider: lease {} stop not run: the ledger has no lease: {}", market::ToHex(close.body.lease_id),
                   record.status().message());
    }
  }
}

void ProviderActor::StartLease(const market::Signed<market::Lease>& lease, actors::ActorContext& ctx) {
  ledger::LeaseRecord record;
  record.id = lease.id;
  record.envelope = lease.envelope;
  record.lease = lease.body;
  record.state = ledger::LeaseState::kActive;
  const std::string lease_id = market::ToHex(lease.id);
  Status submitted = executor_->Submit(
      bidding::ExecutorJob{lease_id, bidding::LeaseEvent::kStart, DumpJson(ToJson(record, ctx.clock().NowMs()))});
  if (submitted.ok()) return;
  counters_->executor_starts_failed.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("provider: lease {} start not run: {}", lease_id, submitted.message());
  FailLease(lease.id, "executor refused the start: " + submitted.message(), ctx);
}

void ProviderActor::OnExecutorDone(bidding::ExecutorOutcome outcome, actors::ActorContext& ctx) {
  const bool start = outcome.event == bidding::LeaseEvent::kStart;
  if (outcome.status.ok()) {
    (start ? counters_->executor_starts : counters_->executor_stops).fetch_add(1, std::memory_order_relaxed);
    spdlog::info("provider: executor {} {} of lease {} ok ({} ms){}{}", bidding::ToString(outcome.kind),
                 bidding::ToString(outcome.event), outcome.lease_id, outcome.took_ms,
                 outcome.output_tail.empty() ? "" : ": ", outcome.output_tail);
  } else {
    (start ? counters_->executor_starts_failed : counters_->executor_stops_failed)
        .fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("provider: executor {} {} of lease {} failed ({} ms): {}{}{}", bidding::ToString(outcome.kind),
                 bidding::ToString(outcome.event), outcome.lease_id, outcome.took_ms, outcome.status.message(),
                 outcome.output_tail.empty() ? "" : "; output: ", outcome.output_tail);
  }
  if (!outcome.close_lease) return;
  const std::optional<market::MessageId> lease_id =
      outcome.lease_id.size() == 64 ? market::FromHex<32>(outcome.lease_id) : std::nullopt;
  if (lease_id) FailLease(*lease_id, "executor start failed: " + outcome.status.message(), ctx);
}

void ProviderActor::FailLease(const market::MessageId& lease_id, const std::string& why, actors::ActorContext& ctx) {
  const int64_t now_ms = ctx.clock().NowMs();
  // The note is for people: cut to the codec's text limit, on a UTF-8 character boundary.
  size_t note_bytes = std::min(why.size(), market::limits::kMaxTextBytes);
  while (note_bytes > 0 && note_bytes < why.size() && (static_cast<uint8_t>(why[note_bytes]) & 0xC0) == 0x80) {
    --note_bytes;
  }
  market::Close close{lease_id, market::CloseReason::kProviderFailure, now_ms, why.substr(0, note_bytes)};
  const auto signed_close = market::MakeSigned(identity_, close, now_ms, kProviderCloseTtlMs, market::RandomNonce());
  // A lease its tenant closed meanwhile needs no second Close.
  if (!OnLeaseClose(signed_close, ctx)) return;
  Submit(ledger::RecordClose{signed_close}, WriteKind::kBackground, {}, ctx);
  Publish(signed_close.envelope, ctx);
}

void ProviderActor::Submit(ledger::LedgerWrite write, WriteKind kind, const market::MessageId& bid_id,
                           actors::ActorContext& ctx) {
  Result<ledger::PreparedWrite> prepared = ledger::Prepare(std::move(write));
  Status failed = Status::Ok();
  if (!prepared.ok()) {
    failed = prepared.status();
  } else {
    const uint64_t tag = next_tag_++;
    if (ledger::SubmitFromActor(ctx, ledger_, std::move(prepared).value(), tag) == actors::SendResult::kOk) {
      writes_.emplace(tag, PendingWrite{kind, bid_id});
      if (kind == WriteKind::kLease) counters_->pending_lease_writes.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    failed = Status::Unavailable("the ledger's queue is full");
  }
  counters_->ledger_dropped.fetch_add(1, std::memory_order_relaxed);
  // A lease that cannot be written is never published: the engine frees its reservation and
  // refuses the Accept.
  if (kind == WriteKind::kLease) Apply(engine_->OnLeaseStored(bid_id, failed, ctx.clock().NowMs()), ctx);
}

void ProviderActor::Publish(const market::Envelope& envelope, actors::ActorContext& ctx) {
  if (!gossip_) {
    counters_->publish_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Fire and forget: the gossip node answers a PublishMessage with a Status nobody waits for (an
  // actor must not block on another), so the reply slot is a fresh one that is dropped.
  auto message = std::make_unique<actors::RequestEnvelope<gossip::PublishMessage, Status>>(
      // Signed here; a Lease embeds the Accept the gossip core verified and this provider's Bid.
      gossip::PublishMessage{market::EncodeEnvelope(envelope), gossip::Signatures::kCheckedByCaller},
      std::make_shared<actors::detail::ReplySlot<Status>>());
  if (ctx.Post(*gossip_, std::move(message), actors::detail::SendPolicy::kDropIfFull) != actors::SendResult::kOk) {
    counters_->publish_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

market::Bytes ProviderActor::PublishOffer(int64_t ttl_ms, bool withdraw, actors::ActorContext& ctx) {
  market::Offer offer = engine_->FreeOffer();
  offer.name = options_.offer_name;
  // A withdrawal: the same provider's newer Offer, with no nodes (nothing free) and a short life
  // (docs/PROTOCOL.md, "Withdrawing an Offer").
  if (withdraw) offer.nodes.clear();
  const auto signed_offer =
      market::MakeSigned(identity_, offer, ctx.clock().NowMs(), ttl_ms, market::RandomNonce());
  last_offer_ = std::move(offer);
  if (withdraw) {
    withdrawn_ = true;  // the caller publishes it
    counters_->offers_published.fetch_add(1, std::memory_order_relaxed);
    return market::EncodeEnvelope(signed_offer.envelope);
  }
  if (!gossip_) return {};
  Publish(signed_offer.envelope, ctx);
  counters_->offers_published.fetch_add(1, std::memory_order_relaxed);
  return {};
}

void ProviderActor::ScheduleOffer(actors::ActorContext& ctx) {
  if (offer_scheduled_ || withdrawn_) return;
  offer_scheduled_ = true;
  ctx.StartTimer(options_.offer_debounce_ms, [this](actors::ActorContext& self) {
    offer_scheduled_ = false;
    if (!withdrawn_) PublishOffer(options_.offer_ttl_ms, /*withdraw=*/false, self);
  });
}

void ProviderActor::ArmDeadline(actors::ActorContext& ctx) {
  const std::optional<int64_t> next = engine_->NextDeadline();
  if (!next) return;
  if (deadline_timer_ && deadline_at_ <= *next) return;  // an earlier (or the same) wake-up is set
  if (deadline_timer_) ctx.CancelTimer(*deadline_timer_);
  deadline_at_ = *next;
  // At least 1 ms: a deadline the engine leaves in the past never spins the actor.
  const int64_t delay = std::max<int64_t>(1, *next - ctx.clock().NowMs());
  deadline_timer_ = ctx.StartTimer(delay, [this](actors::ActorContext& self) {
    deadline_timer_.reset();
    Apply(engine_->Tick(self.clock().NowMs()), self);
  });
}

void ProviderActor::RunPricing(const bidding::PriceRequest& request, actors::ActorContext& ctx) {
  // The engine bounds how many run at once (command_max_concurrent); threads that finished are
  // joined here so the list stays that short.
  std::erase_if(pricing_threads_, [](const PricingThread& running) { return running.done->load(); });
  const int64_t timeout_ms = std::min(pricing_.command_timeout_ms,
                                      std::max<int64_t>(1, request.deadline_ms - ctx.clock().NowMs()));
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::jthread thread([system = &system_, self = ctx.self(), argv = pricing_.command, json = request.json,
                       id = request.id, timeout_ms, done] {
    Result<uint64_t> price = bidding::RunPriceCommand(argv, json, timeout_ms);
    {
      actors::Outbox outbox(*system);
      // A full queue or a stopped provider: the engine gives up on the request at its deadline.
      outbox.SendOrDrop(self, PriceAnswer{id, std::move(price)});
    }
    done->store(true);
  });
  pricing_threads_.push_back(PricingThread{std::move(done), std::move(thread)});
}

void ProviderActor::RunHealthCheck(actors::ActorContext& ctx) {
  if (health_thread_ && !health_thread_->done->load()) return;  // the last one is still running
  health_thread_.reset();  // joins the finished one
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::jthread thread([system = &system_, self = ctx.self(), config = options_.health, done] {
    HealthReadings readings{bidding::QueryGpuHealth(config.nvidia_smi, config.timeout_ms), std::nullopt};
    if (!config.xid_command.empty()) readings.xids = bidding::ReadXidLog(config.xid_command, config.timeout_ms);
    {
      actors::Outbox outbox(*system);
      outbox.SendOrDrop(self, std::move(readings));  // dropped: the next check comes
    }
    done->store(true);
  });
  health_thread_.emplace(PricingThread{std::move(done), std::move(thread)});
}

void ProviderActor::OnHealthReadings(HealthReadings readings, actors::ActorContext& ctx) {
  const int64_t now_ms = ctx.clock().NowMs();
  health_checked_ms_ = now_ms;
  if (readings.xids && !readings.xids->ok()) {
    spdlog::warn("provider: GPU health: kernel log not read: {}", readings.xids->status().message());
  }
  const bidding::XidCounts* xids = readings.xids && readings.xids->ok() ? &readings.xids->value() : nullptr;
  const std::vector<bidding::GpuHealthMonitor::Change> changes =
      readings.readings.ok() ? health_->Observe(*readings.readings, xids, now_ms)
                             : health_->ObserveFailure(readings.readings.status().message(), now_ms);
  if (!readings.readings.ok()) {
    spdlog::warn("provider: GPU health check failed: {}", readings.readings.status().message());
  }
  for (const auto& change : changes) {
    const bidding::GpuHealth& gpu = health_->gpus().at(change.id);
    if (change.in_service) {
      spdlog::info("provider: GPU {} ({}) healthy again, back in service", gpu.index, gpu.id);
    } else {
      spdlog::warn("provider: GPU {} ({}) out of service: {}", gpu.index, gpu.id, gpu.reason);
    }
  }
  ApplyHealth(ctx);
}

void ProviderActor::ApplyHealth(actors::ActorContext& ctx) {
  if (!health_) return;
  const auto layout = physical_gpus_.find(options_.health.node);
  const bidding::GpuUnitsOutOfService out = bidding::UnitsOutOfService(
      health_->gpus(), layout == physical_gpus_.end() ? std::vector<market::PhysicalGpus>{} : layout->second,
      options_.gpu_models);
  if (out.units == out_of_service_) return;
  out_of_service_ = out.units;
  const std::vector<market::MessageId> to_close = engine_->SetOutOfService(options_.health.node, out.units);
  // At once, not debounced: nobody should lease an unhealthy GPU in the meantime.
  if (gossip_ && !withdrawn_) PublishOffer(options_.offer_ttl_ms, /*withdraw=*/false, ctx);
  for (const market::MessageId& lease_id : to_close) {
    std::string note;
    for (const auto& [type, line] : out.notes) {
      if (note.find(line) == std::string::npos) note += (note.empty() ? "" : "; ") + line;
    }
    spdlog::warn("provider: lease {} closed: {}", market::ToHex(lease_id), note);
    FailLease(lease_id, note, ctx);
  }
  ArmDeadline(ctx);  // GPUs back in service: orders waiting for capacity are tried on the next Tick
}

void ProviderActor::SyncCounters() {
  const bidding::BidEngine::Counters& engine = engine_->counters();
  Store(counters_->orders, engine.orders);
  Store(counters_->bids, engine.bids);
  for (size_t reason = 0; reason < bidding::kSkipReasons; ++reason) Store(counters_->skipped[reason], engine.skipped[reason]);
  Store(counters_->reservations_held, engine_->live_reservations());
  Store(counters_->reservations_released, engine.reservations_released);
  Store(counters_->reservations_expired, engine.reservations_expired);
  Store(counters_->leases_active, engine_->active_leases());
  Store(counters_->leases_made, engine.leases);
  Store(counters_->leases_failed, engine.leases_failed);
  Store(counters_->leases_closed, engine.leases_closed);
  Store(counters_->leases_preempted, engine.leases_preempted);
  Store(counters_->accepts_refused, engine.accepts_refused);
  Store(counters_->accepts_ignored, engine.accepts_ignored);
  Store(counters_->orders_waiting, engine_->deferred_orders());
  Store(counters_->orders_deferred, engine.orders_deferred);
  Store(counters_->deferred_served, engine.deferred_served);
  Store(counters_->deferred_dropped, engine.deferred_dropped);
}

void HandToProvider(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& provider,
                    ProviderCounters& counters) {
  if (!ProviderActor::Takes(delivery.type)) return;
  if (outbox.SendOrDrop(provider, ProviderDelivery{delivery}) != actors::SendResult::kOk) {
    counters.deliveries_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace gpumart::node
