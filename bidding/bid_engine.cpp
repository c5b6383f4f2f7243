#include "bidding/bid_engine.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <unordered_map>

#include "market/checked_math.h"

namespace gpumart::bidding {

using market::MessageId;
using market::PublicKey;

std::string_view ToString(SkipReason reason) {
  switch (reason) {
    case SkipReason::kMalformed: return "malformed";
    case SkipReason::kOversized: return "oversized";
    case SkipReason::kExpired: return "expired";
    case SkipReason::kDuplicate: return "duplicate";
    case SkipReason::kDeniedOwner: return "denied-owner";
    case SkipReason::kAttributes: return "attributes";
    case SkipReason::kSignedBy: return "signed-by";
    case SkipReason::kDenom: return "denom";
    case SkipReason::kNoDevice: return "no-device";
    case SkipReason::kCapacity: return "capacity";
    case SkipReason::kPriceCap: return "price-cap";
    case SkipReason::kTooComplex: return "too-complex";
    case SkipReason::kTooManyReservations: return "too-many-reservations";
    case SkipReason::kPricingBusy: return "pricing-busy";
    case SkipReason::kPricingFailed: return "pricing-failed";
    case SkipReason::kNoSpotPricing: return "no-spot-pricing";
  }
  return "unknown";
}

uint64_t BidEngine::Counters::skipped_total() const {
  uint64_t total = 0;
  for (uint64_t count : skipped) total += count;
  return total;
}

namespace {

struct IdHash {
  size_t operator()(const MessageId& id) const {
    size_t hash;  // ids are BLAKE2b outputs: any 8 of their bytes are a fine hash
    std::memcpy(&hash, id.data(), sizeof hash);
    return hash;
  }
};

market::DeviceType TypeOf(const market::GpuDevices& devices) {
  return {market::ToLower(devices.vendor), market::ToLower(devices.model), devices.ram_bytes, devices.interface,
          devices.mig_profile, devices.shared};
}

SkipReason SkipOf(market::ExclusionReason reason) {
  using market::ExclusionReason;
  switch (reason) {
    case ExclusionReason::kAttributes: return SkipReason::kAttributes;
    case ExclusionReason::kSignedBy: return SkipReason::kSignedBy;
    case ExclusionReason::kDenom: return SkipReason::kDenom;
    case ExclusionReason::kCapacity: return SkipReason::kCapacity;
    case ExclusionReason::kPriceCap: return SkipReason::kPriceCap;
    case ExclusionReason::kOfferTooLarge:
    case ExclusionReason::kWorkLimit: return SkipReason::kTooComplex;
    case ExclusionReason::kNone:
    case ExclusionReason::kGpuModel:
    case ExclusionReason::kGpuRam:
    case ExclusionReason::kGpuInterface:
    case ExclusionReason::kGpuCuda:
    case ExclusionReason::kGpuRate: break;
  }
  return SkipReason::kNoDevice;
}

std::string Short(const MessageId& id) { return market::ToHex(id).substr(0, 16); }

// What of `need` `covered` does not cover, per node and resource (never below zero).
Allocation Uncovered(const Allocation& need, const Allocation& covered) {
  Allocation left = need;
  market::RemoveUsage(left, covered);
  return left;
}

}  // namespace

struct BidEngine::Impl {
  // A bid this provider made whose capacity it holds, keyed by the bid's id. Only what later
  // steps read (kMaxReservationBytes): the decoded bid is not kept, its wire bytes are, for the
  // Lease that embeds them.
  struct Held {
    MessageId order_id{};
    PublicKey tenant{};
    int64_t expires_ms = 0;
    Allocation allocation;
    market::Bytes bid_envelope;
    std::optional<market::SpotTerms> spot;  // an interruptible order's bid: the notice it states
    // From the Accept until the ledger answers: the lease being written.
    struct Commit {
      MessageId accept_id{};
      market::Signed<market::Lease> lease;
    };
    std::unique_ptr<Commit> commit;
    // A bid that preempts: the spot leases whose capacity it holds, and what it holds beyond
    // them (what it took from free capacity, and the capacity of victims that ended first).
    // Null for the usual bid, which holds `allocation` from free capacity.
    struct Preemption {
      std::vector<MessageId> victims;
      Allocation extra;
    };
    std::unique_ptr<Preemption> preemption;
  };
  struct ActiveLease {
    MessageId order_id{};
    MessageId bid_id{};
    PublicKey tenant{};
    Allocation allocation;
    std::optional<market::SpotTerms> spot;  // a spot lease
    std::optional<MessageId> preempted_by;  // the held bid that will preempt it
    std::string denom;
    uint64_t price_per_hour = 0;
    uint64_t sequence = 0;  // order of making (SetOutOfService closes the newest first)
  };
  // A bid that ended without a lease, remembered for a while to refuse a late Accept.
  struct Ended {
    MessageId order_id{};
    PublicKey tenant{};
    std::string why;
    int64_t forget_ms = 0;
  };
  struct PendingPrice {
    market::Signed<market::Order> order;
    market::Candidate candidate;
    Allocation allocation;
    int64_t deadline_ms = 0;
  };

  market::Identity identity;
  market::Offer inventory;
  market::Offer free;  // inventory - used; its pricing is the effective tables (when fresh)
  PricingConfig pricing;
  BidEngineOptions options;
  std::map<std::string, size_t> node_index;  // into inventory.nodes and free.nodes
  Allocation used;                           // running total of live reservations and leases
  std::map<std::string, std::map<market::DeviceType, uint64_t>> out_of_service;  // by node
  uint64_t next_lease_sequence = 1;
  bool tables_fresh = false;

  std::unordered_map<MessageId, Held, IdHash> held;
  // Orders this provider bid on whose bid is held or leased (one bid per order).
  std::unordered_map<MessageId, MessageId, IdHash> bid_of_order;
  std::set<std::pair<int64_t, MessageId>> expiry;                 // uncommitted reservations
  std::unordered_map<MessageId, ActiveLease, IdHash> leases;
  std::unordered_map<MessageId, MessageId, IdHash> lease_of_bid;
  std::unordered_map<MessageId, Ended, IdHash> ended;
  std::set<std::pair<int64_t, MessageId>> ended_order;  // by forget_ms
  std::map<uint64_t, PendingPrice> pending;
  std::unordered_map<MessageId, uint64_t, IdHash> pending_of_order;
  uint64_t next_request = 1;
  // Orders waiting for capacity, by arrival (oldest first).
  struct Deferred {
    market::Signed<market::Order> order;
    bool recorded = false;  // handed out for RecordOrder already (at its first price request)
  };
  std::map<uint64_t, Deferred> deferred;
  std::unordered_map<MessageId, uint64_t, IdHash> deferred_of_order;
  size_t deferred_bytes = 0;  // of their bodies
  uint64_t next_deferred = 1;
  bool capacity_freed = false;  // since the waiting orders were last tried
  // While waiting orders are tried: a skip is neither counted nor logged, only noted here.
  bool retrying = false;
  std::optional<SkipReason> retry_skip;
  Counters counters;

  Impl(market::Identity id, PricingConfig prices, BidEngineOptions opts)
      : identity(std::move(id)), pricing(std::move(prices)), options(std::move(opts)) {}

  const PublicKey& me() const { return identity.public_key(); }

  void IndexInventory() {
    node_index.clear();
    for (size_t i = 0; i < inventory.nodes.size(); ++i) node_index[inventory.nodes[i].name] = i;
    free = inventory;
    free.pricing.clear();
    for (const auto& [node, share] : used) RecomputeNode(node);
    for (const auto& [node, gpus] : out_of_service) RecomputeNode(node);
    tables_fresh = false;
  }

  // free node = inventory node - used on it; GPUs of a type are taken from its entries in order.
  void RecomputeNode(const std::string& node) {
    const auto index = node_index.find(node);
    if (index == node_index.end()) return;  // a node the inventory no longer has
    const market::NodeCapacity& total = inventory.nodes[index->second];
    market::NodeCapacity& left = free.nodes[index->second];
    const auto share = used.find(node);
    const auto unhealthy = out_of_service.find(node);
    if (share == used.end() && unhealthy == out_of_service.end()) {
      left = total;
      return;
    }
    const market::NodeUsage none;
    const market::NodeUsage& in_use = share == used.end() ? none : share->second;
    left.cpu_millis = market::SaturatingSub(total.cpu_millis, in_use.cpu_millis);
    left.memory_bytes = market::SaturatingSub(total.memory_bytes, in_use.memory_bytes);
    left.storage_bytes = market::SaturatingSub(total.storage_bytes, in_use.storage_bytes);
    // Held and out-of-service GPUs both leave the free count (a lease may sit on a failed GPU).
    std::map<market::DeviceType, uint64_t> to_take = in_use.gpus;
    if (unhealthy != out_of_service.end()) {
      for (const auto& [type, count] : unhealthy->second) to_take[type] = market::SaturatingAdd(to_take[type], count);
    }
    for (size_t g = 0; g < total.gpus.size(); ++g) {
      const auto want = to_take.find(TypeOf(total.gpus[g]));
      uint64_t taken = 0;
      if (want != to_take.end()) {
        taken = std::min<uint64_t>(want->second, total.gpus[g].count);
        want->second -= taken;
      }
      left.gpus[g].count = static_cast<uint32_t>(total.gpus[g].count - taken);
    }
  }

  void Take(const Allocation& allocation) {
    market::AddUsage(used, allocation);
    for (const auto& [node, share] : allocation) RecomputeNode(node);
    tables_fresh = tables_fresh && pricing.kind != PricingKind::kUtilization;
  }

  void Give(const Allocation& allocation) {
    market::RemoveUsage(used, allocation);
    for (const auto& [node, share] : allocation) RecomputeNode(node);
    tables_fresh = tables_fresh && pricing.kind != PricingKind::kUtilization;
  }

  // True when every node of `allocation` has that much free now.
  bool Fits(const Allocation& allocation) const {
    for (const auto& [node, share] : allocation) {
      const auto index = node_index.find(node);
      if (index == node_index.end()) return false;
      const market::NodeCapacity& left = free.nodes[index->second];
      if (share.cpu_millis > left.cpu_millis || share.memory_bytes > left.memory_bytes ||
          share.storage_bytes > left.storage_bytes) {
        return false;
      }
      for (const auto& [type, count] : share.gpus) {
        uint64_t available = 0;
        for (const auto& devices : left.gpus) {
          if (TypeOf(devices) == type) available += devices.count;
        }
        if (count > available) return false;
      }
    }
    return true;
  }

  void RefreshTables(const std::string& denom) {
    if (pricing.kind == PricingKind::kCommand && pricing.tables.empty()) {
      // The zero table is per denom: any denom is accepted, the program prices it.
      if (free.pricing.size() != 1 || free.pricing.front().denom != denom) {
        free.pricing = EffectiveTables(pricing, inventory.nodes, free.nodes, denom);
      }
      return;
    }
    if (tables_fresh) return;
    free.pricing = EffectiveTables(pricing, inventory.nodes, free.nodes, denom);
    tables_fresh = true;
  }

  bool TenantServed(const PublicKey& tenant) const {
    if (std::find(options.deny_tenants.begin(), options.deny_tenants.end(), tenant) != options.deny_tenants.end()) {
      return false;
    }
    return options.allow_tenants.empty() ||
           std::find(options.allow_tenants.begin(), options.allow_tenants.end(), tenant) != options.allow_tenants.end();
  }

  void Skip(EngineStep& step, SkipReason reason, const MessageId& order_id, const std::string& detail) {
    if (retrying) {
      retry_skip = reason;
      return;
    }
    ++counters.skipped[static_cast<size_t>(reason)];
    step.skipped = reason;
    step.skip_detail = detail.empty() ? std::string(ToString(reason)) : detail;
    std::string line = "order " + Short(order_id) + " skipped: " + std::string(ToString(reason));
    if (!detail.empty() && detail != ToString(reason)) line += " (" + detail + ")";
    step.log.push_back(std::move(line));
  }

  void Remember(const MessageId& bid_id, const Held& bid, std::string why, int64_t now_ms) {
    if (ended.size() >= options.max_ended && !ended_order.empty()) {
      ended.erase(ended_order.begin()->second);
      ended_order.erase(ended_order.begin());
    }
    if (options.max_ended == 0) return;
    const int64_t forget_ms = market::SaturatingAddMs(std::max(bid.expires_ms, now_ms), options.ended_memory_ms);
    ended[bid_id] = Ended{bid.order_id, bid.tenant, std::move(why), forget_ms};
    ended_order.emplace(forget_ms, bid_id);
  }

  // Ends an uncommitted reservation: capacity back, the ledger told, the bid remembered.
  void Release(EngineStep& step, std::unordered_map<MessageId, Held, IdHash>::iterator it, std::string why,
               bool expired, int64_t now_ms) {
    const MessageId& bid_id = it->first;
    Held& bid = it->second;
    Give(bid.preemption ? bid.preemption->extra : bid.allocation);
    if (bid.preemption) {
      for (const MessageId& victim : bid.preemption->victims) leases.at(victim).preempted_by.reset();
    }
    expiry.erase({bid.expires_ms, bid_id});
    bid_of_order.erase(bid.order_id);
    step.release.push_back(bid_id);
    step.capacity_changed = true;
    capacity_freed = true;
    ++(expired ? counters.reservations_expired : counters.reservations_released);
    Remember(bid_id, bid, std::move(why), now_ms);
    held.erase(it);
  }

  uint64_t Nonce() const { return options.nonce_source ? options.nonce_source() : market::RandomNonce(); }

  Refusal Refuse(const MessageId& accept_id, const PublicKey& tenant, const std::string& why, int64_t now_ms) {
    ++counters.accepts_refused;
    market::Close close{accept_id, market::CloseReason::kProviderClosed, now_ms,
                        ("accept refused: " + why).substr(0, market::limits::kMaxTextBytes)};
    return Refusal{market::MakeSigned(identity, close, now_ms, options.lease_message_ttl_ms, Nonce()),
                   tenant};
  }

  // Reserves `allocation` for the order and signs the bid.
  void MakeBid(EngineStep& step, const market::Signed<market::Order>& order, const market::Candidate& candidate,
               uint64_t price_per_hour, Allocation allocation, int64_t now_ms,
               std::optional<market::SpotTerms> spot = std::nullopt, std::vector<MessageId> victims = {}) {
    const int64_t ttl_ms = std::min(options.bid_ttl_ms, order.envelope.expires_ms - now_ms);
    market::Bid bid;
    bid.order_id = order.id;
    bid.tenant = order.envelope.signer;
    bid.group = order.body.group;
    bid.denom = candidate.denom;
    bid.price_per_hour = price_per_hour;
    bid.services = candidate.services;
    bid.reservation_expires_ms = now_ms + ttl_ms;
    bid.spot = spot;
    market::Signed<market::Bid> signed_bid = market::MakeSigned(identity, bid, now_ms, ttl_ms, Nonce());
    const MessageId bid_id = signed_bid.id;
    Held entry;
    entry.order_id = order.id;
    entry.tenant = order.envelope.signer;
    entry.expires_ms = bid.reservation_expires_ms;
    entry.allocation = std::move(allocation);
    entry.spot = spot;
    entry.bid_envelope = market::EncodeEnvelope(signed_bid.envelope);
    entry.bid_envelope.shrink_to_fit();  // kept for the bid's life: no spare capacity
    if (victims.empty()) {
      Take(entry.allocation);
    } else {
      Allocation covered;
      for (const MessageId& victim : victims) {
        ActiveLease& lease = leases.at(victim);
        market::AddUsage(covered, lease.allocation);
        lease.preempted_by = bid_id;
      }
      entry.preemption = std::make_unique<Held::Preemption>(
          Held::Preemption{std::move(victims), Uncovered(entry.allocation, covered)});
      Take(entry.preemption->extra);
    }
    ++counters.bids;
    step.capacity_changed = true;
    step.reserve.push_back(StoreReservation{signed_bid, entry.expires_ms, entry.allocation});
    step.bids.push_back(std::move(signed_bid));
    expiry.emplace(entry.expires_ms, bid_id);
    bid_of_order.emplace(order.id, bid_id);
    held.emplace(bid_id, std::move(entry));
    Undefer(order.id);
  }

  // An order past the cheap checks: tenant lists, fit and price on free capacity, then a bid (or,
  // with the command policy, a price request). Every way it can fail is a Skip.
  void Consider(EngineStep& step, const market::Signed<market::Order>& order, int64_t now_ms) {
    if (order.envelope.expires_ms <= now_ms) {
      Skip(step, SkipReason::kExpired, order.id, "");
      return;
    }
    if (bid_of_order.contains(order.id) || pending_of_order.contains(order.id)) {
      Skip(step, SkipReason::kDuplicate, order.id, "");
      return;
    }
    if (!TenantServed(order.envelope.signer)) {
      Skip(step, SkipReason::kDeniedOwner, order.id, "tenant " + market::ToHex(order.envelope.signer));
      return;
    }
    if (held.size() + pending.size() >= options.max_reservations) {
      Skip(step, SkipReason::kTooManyReservations, order.id, "");
      return;
    }
    if (order.body.interruptible) {
      BidSpot(step, order, now_ms);
      return;
    }
    RefreshTables(order.body.Denom());
    const market::FitOutcome fit = market::FitProvider(order.body, free);
    if (!fit.candidate && fit.exclusion.reason == market::ExclusionReason::kCapacity && TryPreempt(step, order, now_ms)) {
      return;
    }
    if (!fit.candidate) {
      std::string detail(market::ToString(fit.exclusion.reason));
      if (!fit.exclusion.detail.empty()) detail += " (" + fit.exclusion.detail + ")";
      Skip(step, SkipOf(fit.exclusion.reason), order.id, detail);
      return;
    }
    Result<Allocation> allocation = market::UsageOf(order.body, fit.candidate->services);
    if (!allocation.ok() || !Fits(*allocation)) {
      // FitProvider placed it on free capacity, so this is a bug; still, never over-promise.
      Skip(step, SkipReason::kCapacity, order.id, allocation.ok() ? "allocation does not fit" : allocation.status().ToString());
      return;
    }
    if (pricing.kind != PricingKind::kCommand) {
      MakeBid(step, order, *fit.candidate, fit.candidate->price_per_hour, std::move(*allocation), now_ms);
      return;
    }
    if (pending.size() >= pricing.command_max_concurrent) {
      Skip(step, SkipReason::kPricingBusy, order.id, std::to_string(pending.size()) + " price programs running");
      return;
    }
    // Nothing is reserved while the program runs: its answer is checked against the capacity
    // free then (OnPriceAnswer), so a program that fails or never answers holds nothing.
    const uint64_t id = next_request++;
    const int64_t deadline_ms = std::min(market::SaturatingAddMs(now_ms, pricing.command_timeout_ms), order.envelope.expires_ms);
    step.price_requests.push_back(PriceRequest{id, PriceRequestJson(order, *fit.candidate), deadline_ms});
    pending.emplace(id, PendingPrice{order, *fit.candidate, std::move(*allocation), deadline_ms});
    pending_of_order.emplace(order.id, id);
    ++counters.price_requests;
    Undefer(order.id);
  }

  // Consider, and hand the order out for recording when it got a bid or a price request.
  // True when it did.
  bool Serve(EngineStep& step, const market::Signed<market::Order>& order, bool recorded, int64_t now_ms) {
    const size_t bids = step.bids.size();
    const size_t prices = step.price_requests.size();
    Consider(step, order, now_ms);
    const bool served = step.bids.size() > bids || step.price_requests.size() > prices;
    if (served && !recorded) step.orders.push_back(order);
    return served;
  }

  // --- Orders waiting for capacity ---

  void Defer(const market::Signed<market::Order>& order, bool recorded) {
    if (options.max_deferred_orders == 0 || deferred_of_order.contains(order.id)) return;
    const size_t bytes = order.envelope.body.size();
    if (bytes > options.max_deferred_bytes) return;
    while (!deferred.empty() &&
           (deferred.size() >= options.max_deferred_orders || deferred_bytes + bytes > options.max_deferred_bytes)) {
      ++counters.deferred_dropped;
      const MessageId oldest = deferred.begin()->second.order.id;
      Undefer(oldest);
    }
    const uint64_t sequence = next_deferred++;
    deferred.emplace(sequence, Deferred{order, recorded});
    deferred_of_order.emplace(order.id, sequence);
    deferred_bytes += bytes;
    ++counters.orders_deferred;
  }

  // Forgets a waiting order (served, leased elsewhere, dropped). True when it was waiting.
  bool Undefer(const MessageId& order_id) {
    const auto found = deferred_of_order.find(order_id);
    if (found == deferred_of_order.end()) return false;
    const auto entry = deferred.find(found->second);
    deferred_bytes -= entry->second.order.envelope.body.size();
    deferred.erase(entry);
    deferred_of_order.erase(found);
    return true;
  }

  // True when no order could get a bid or a price request now, whatever capacity is free.
  bool RetryBlocked() const {
    return held.size() + pending.size() >= options.max_reservations ||
           (pricing.kind == PricingKind::kCommand && pending.size() >= pricing.command_max_concurrent);
  }

  // When capacity was freed: tries every waiting order, oldest first, with Consider (one fit
  // each, so at most max_deferred_orders fits). What it bids or prices joins `step`; a retry
  // that finds no room again keeps the order waiting and is not counted as a skip; any other
  // skip (expired, now over its cap...) drops it.
  void RetryDeferred(EngineStep& step, int64_t now_ms) {
    if (!capacity_freed) return;
    capacity_freed = false;
    if (deferred.empty()) return;
    retrying = true;
    for (auto it = deferred.begin(); it != deferred.end();) {
      if (RetryBlocked()) {
        capacity_freed = true;  // the rest are tried once a reservation ends or a program answers
        break;
      }
      // Out of the list while it is considered: a bid or a price request forgets it, and a
      // skip for capacity puts it back where it was.
      const uint64_t sequence = it->first;
      Deferred waiting = std::move(it->second);
      deferred_of_order.erase(waiting.order.id);
      deferred_bytes -= waiting.order.envelope.body.size();
      it = deferred.erase(it);
      ++counters.deferred_retries;
      retry_skip.reset();
      if (Serve(step, waiting.order, waiting.recorded, now_ms)) {
        ++counters.deferred_served;
        step.log.push_back("order " + Short(waiting.order.id) + " served once capacity was freed");
      } else if (retry_skip == SkipReason::kCapacity) {
        deferred_of_order.emplace(waiting.order.id, sequence);
        deferred_bytes += waiting.order.envelope.body.size();
        deferred.emplace_hint(it, sequence, std::move(waiting));
      } else {
        ++counters.deferred_dropped;
        step.log.push_back("order " + Short(waiting.order.id) + " no longer waits for capacity: " +
                           std::string(ToString(retry_skip.value_or(SkipReason::kCapacity))));
      }
    }
    retrying = false;
  }

  // The price program's answer to `request`: a bid when the price is within the cap and the
  // allocation still fits (when it does not, the order waits for capacity).
  void AnswerPrice(EngineStep& step, PendingPrice request, Result<uint64_t> price, int64_t now_ms) {
    if (!price.ok()) {
      ++counters.price_failures;
      Skip(step, SkipReason::kPricingFailed, request.order.id, price.status().ToString());
      return;
    }
    if (request.order.envelope.expires_ms <= now_ms) {
      Skip(step, SkipReason::kExpired, request.order.id, "expired while being priced");
      return;
    }
    // Held to the cap in the denom the bid will be in (several denoms: the one matching chose).
    const uint64_t cap = request.order.body.CapPerHourIn(request.candidate.denom).value_or(0);
    if (*price > cap) {
      Skip(step, SkipReason::kPriceCap, request.order.id, std::to_string(*price) + " > cap " + std::to_string(cap));
      return;
    }
    if (held.size() >= options.max_reservations) {
      Skip(step, SkipReason::kTooManyReservations, request.order.id, "");
      return;
    }
    if (!Fits(request.allocation)) {
      Skip(step, SkipReason::kCapacity, request.order.id, "taken while being priced");
      Defer(request.order, /*recorded=*/true);  // recorded at its price request
      return;
    }
    MakeBid(step, request.order, request.candidate, *price, std::move(request.allocation), now_ms);
  }

  // --- Interruptible (spot) leases ---

  // An interruptible order: priced with the spot tables alone, on free capacity.
  void BidSpot(EngineStep& step, const market::Signed<market::Order>& order, int64_t now_ms) {
    if (!pricing.spot) {
      Skip(step, SkipReason::kNoSpotPricing, order.id, "");
      return;
    }
    market::Offer spot_offer = free;
    spot_offer.pricing = pricing.spot->tables;
    const market::FitOutcome fit = market::FitProvider(order.body, spot_offer);
    if (!fit.candidate) {
      Skip(step, SkipOf(fit.exclusion.reason), order.id, std::string(market::ToString(fit.exclusion.reason)));
      return;
    }
    Result<Allocation> allocation = market::UsageOf(order.body, fit.candidate->services);
    if (!allocation.ok() || !Fits(*allocation)) {
      Skip(step, SkipReason::kCapacity, order.id, "allocation does not fit");
      return;
    }
    MakeBid(step, order, *fit.candidate, fit.candidate->price_per_hour, std::move(*allocation), now_ms,
            market::SpotTerms{pricing.spot->notice_ms});
  }

  // A non-interruptible order that does not fit on free capacity: bids when it would fit with
  // some spot leases preempted (the fewest, in lease id order, that make the rest fit). Table
  // prices only (a price program is not asked). True when it bid.
  bool TryPreempt(EngineStep& step, const market::Signed<market::Order>& order, int64_t now_ms) {
    if (pricing.kind == PricingKind::kCommand) return false;
    std::vector<MessageId> spot_leases;
    Allocation spot_total;
    for (const auto& [id, lease] : leases) {
      if (!lease.spot || lease.preempted_by) continue;
      spot_leases.push_back(id);
      market::AddUsage(spot_total, lease.allocation);
    }
    if (spot_leases.empty()) return false;
    std::sort(spot_leases.begin(), spot_leases.end());
    // Fit as if every spot lease were gone, then put them back.
    Give(spot_total);
    RefreshTables(order.body.Denom());
    const market::FitOutcome fit = market::FitProvider(order.body, free);
    std::optional<Allocation> allocation;
    if (fit.candidate) {
      if (Result<Allocation> computed = market::UsageOf(order.body, fit.candidate->services); computed.ok()) {
        allocation = std::move(computed).value();
      }
    }
    Take(spot_total);
    if (!allocation) return false;
    std::vector<MessageId> victims;
    Allocation covered;
    for (const MessageId& id : spot_leases) {
      if (Fits(Uncovered(*allocation, covered))) break;
      const Allocation& held_by_lease = leases.at(id).allocation;
      const bool shares_a_node = std::any_of(held_by_lease.begin(), held_by_lease.end(),
                                             [&](const auto& entry) { return allocation->contains(entry.first); });
      if (!shares_a_node) continue;
      victims.push_back(id);
      market::AddUsage(covered, held_by_lease);
    }
    if (victims.empty() || !Fits(Uncovered(*allocation, covered))) return false;
    step.log.push_back("order " + Short(order.id) + ": bid holds the capacity of " + std::to_string(victims.size()) +
                       " spot lease(s), preempted if it is accepted");
    MakeBid(step, order, *fit.candidate, fit.candidate->price_per_hour, std::move(*allocation), now_ms, std::nullopt,
            std::move(victims));
    return true;
  }

  // The longest notice of `bid`'s victims: its lease starts when they have all ended.
  uint64_t LongestNotice(const Held& bid) const {
    uint64_t longest = 0;
    if (!bid.preemption) return 0;
    for (const MessageId& victim : bid.preemption->victims) {
      longest = std::max(longest, leases.at(victim).spot->notice_ms);
    }
    return longest;
  }

  // `bid`'s lease is durable: its victims end by signed Closes citing it, their capacity becomes
  // the lease's (with `extra`, exactly its allocation).
  void Preempt(EngineStep& step, Held& bid) {
    const market::Signed<market::Lease>& lease = bid.commit->lease;
    const market::Bytes preemptor = market::EncodeEnvelope(lease.envelope);
    // Signed as of the lease, so the longest notice ends exactly when the lease starts.
    const int64_t signed_ms = lease.envelope.created_ms;
    for (const MessageId& victim_id : bid.preemption->victims) {
      const auto victim = leases.find(victim_id);
      market::Close close{victim_id, market::CloseReason::kPreempted,
                          signed_ms + static_cast<int64_t>(victim->second.spot->notice_ms),
                          "preempted for lease " + market::ToHex(lease.id), preemptor};
      step.preemptions.push_back(market::MakeSigned(identity, close, signed_ms, options.lease_message_ttl_ms, Nonce()));
      Give(victim->second.allocation);
      lease_of_bid.erase(victim->second.bid_id);
      const auto order = bid_of_order.find(victim->second.order_id);
      if (order != bid_of_order.end() && order->second == victim->second.bid_id) bid_of_order.erase(order);
      leases.erase(victim);
      ++counters.leases_preempted;
    }
    Give(bid.preemption->extra);
    Take(bid.allocation);
    capacity_freed = true;  // the victims may have held more than the lease takes
    step.log.push_back("lease " + Short(lease.id) + " preempts " + std::to_string(bid.preemption->victims.size()) + " spot lease(s)");
  }
};

BidEngine::BidEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BidEngine::~BidEngine() = default;

Result<std::unique_ptr<BidEngine>> BidEngine::Create(market::Identity identity, market::Offer inventory,
                                                     PricingConfig pricing, BidEngineOptions options) {
  GPUMART_RETURN_IF_ERROR(ValidatePricing(pricing));
  if (options.bid_ttl_ms <= 0 || options.bid_ttl_ms > market::limits::kMaxTtlMs) {
    return Status::InvalidArgument("bid ttl " + std::to_string(options.bid_ttl_ms) + " ms is outside (0, a week]");
  }
  if (options.lease_message_ttl_ms <= 0 || options.lease_message_ttl_ms > market::limits::kMaxTtlMs) {
    return Status::InvalidArgument("lease message ttl is outside (0, a week]");
  }
  auto impl = std::make_unique<Impl>(std::move(identity), std::move(pricing), std::move(options));
  std::unique_ptr<BidEngine> engine(new BidEngine(std::move(impl)));
  GPUMART_RETURN_IF_ERROR(engine->SetInventory(std::move(inventory)));
  return engine;
}

Status BidEngine::SetInventory(market::Offer inventory) {
  inventory.pricing = impl_->pricing.tables;
  GPUMART_RETURN_IF_ERROR(market::ValidateOffer(inventory));
  GPUMART_RETURN_IF_ERROR(market::CheckOfferWork(inventory));
  for (auto& node : inventory.nodes) {
    for (auto& devices : node.gpus) {
      devices.vendor = market::ToLower(devices.vendor);
      devices.model = market::ToLower(devices.model);
    }
  }
  inventory.provider = market::ToHex(impl_->me());
  impl_->inventory = std::move(inventory);
  impl_->IndexInventory();
  impl_->capacity_freed = true;  // waiting orders are tried at the next input or Tick
  return Status::Ok();
}

Status BidEngine::SetPricing(PricingConfig pricing) {
  GPUMART_RETURN_IF_ERROR(ValidatePricing(pricing));
  market::Offer inventory = impl_->inventory;
  inventory.pricing = pricing.tables;
  GPUMART_RETURN_IF_ERROR(market::ValidateOffer(inventory));
  impl_->pricing = std::move(pricing);
  impl_->inventory.pricing = impl_->pricing.tables;
  impl_->free.pricing.clear();
  impl_->tables_fresh = false;  // the effective tables are recomputed from the new pricing
  return Status::Ok();
}

EngineStep BidEngine::OnOrderBytes(std::span<const uint8_t> bytes, int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  if (bytes.size() > market::limits::kMaxMessageBytes) {
    ++s.counters.orders;
    s.Skip(step, SkipReason::kOversized, MessageId{}, std::to_string(bytes.size()) + " bytes");
    return step;
  }
  Result<market::Signed<market::Order>> order =
      market::OpenSigned<market::Order>(bytes, now_ms, market::Freshness::kIgnore);
  if (!order.ok()) {
    ++s.counters.orders;
    s.Skip(step, SkipReason::kMalformed, MessageId{}, order.status().ToString());
    return step;
  }
  return OnVerifiedOrder(*order, now_ms);
}

EngineStep BidEngine::OnVerifiedOrder(const market::Signed<market::Order>& order, int64_t now_ms) {
  if (Status fresh = market::CheckFreshness(order.envelope, now_ms); !fresh.ok()) {
    EngineStep step;
    ++impl_->counters.orders;
    impl_->Skip(step, SkipReason::kExpired, order.id, fresh.ToString());
    return step;
  }
  return OnOrder(order, now_ms);
}

EngineStep BidEngine::OnOrder(const market::Signed<market::Order>& order, int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  // Orders waiting for capacity a new inventory or GPUs back in service freed come first: they
  // are older.
  s.RetryDeferred(step, now_ms);
  ++s.counters.orders;
  s.Serve(step, order, /*recorded=*/false, now_ms);
  if (step.skipped == SkipReason::kCapacity) s.Defer(order, /*recorded=*/false);
  return step;
}

EngineStep BidEngine::OnPriceAnswer(uint64_t id, Result<uint64_t> price, int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  const auto it = s.pending.find(id);
  if (it == s.pending.end()) return step;  // answered after its deadline: already given up
  Impl::PendingPrice request = std::move(it->second);
  s.pending.erase(it);
  s.pending_of_order.erase(request.order.id);
  s.AnswerPrice(step, std::move(request), std::move(price), now_ms);
  // A retry that stopped for want of a free program slot goes on now that one is free.
  s.RetryDeferred(step, now_ms);
  return step;
}

EngineStep BidEngine::OnAcceptBytes(std::span<const uint8_t> bytes, int64_t now_ms) {
  Result<market::Signed<market::Accept>> accept = market::OpenSigned<market::Accept>(bytes, now_ms);
  if (!accept.ok()) {
    EngineStep step;
    ++impl_->counters.accepts_ignored;
    step.log.push_back("accept ignored: " + accept.status().ToString());
    return step;
  }
  return OnAccept(*accept, bytes, now_ms);
}

EngineStep BidEngine::OnAccept(const market::Signed<market::Accept>& accept, std::span<const uint8_t> accept_bytes,
                               int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  const market::Accept& body = accept.body;
  auto ignore = [&](const std::string& why) {
    ++s.counters.accepts_ignored;
    step.log.push_back("accept " + Short(accept.id) + " ignored: " + why);
    return step;
  };
  if (body.provider != s.me()) return ignore("names another provider");
  if (s.lease_of_bid.contains(body.bid_id)) return ignore("its bid is leased already");
  const auto it = s.held.find(body.bid_id);
  if (it == s.held.end()) {
    const auto gone = s.ended.find(body.bid_id);
    if (gone == s.ended.end()) return ignore("names no bid of this provider");
    if (gone->second.tenant != accept.envelope.signer || gone->second.order_id != body.order_id) {
      return ignore("not the tenant's accept of that bid");
    }
    step.refusals.push_back(s.Refuse(accept.id, accept.envelope.signer, gone->second.why, now_ms));
    step.log.push_back("accept " + Short(accept.id) + " refused: " + gone->second.why);
    return step;
  }
  Impl::Held& bid = it->second;
  if (bid.order_id != body.order_id || bid.tenant != accept.envelope.signer) {
    return ignore("not the tenant's accept of that bid");
  }
  if (bid.commit) return ignore("its bid is being leased already");
  if (bid.expires_ms <= now_ms) {
    s.Release(step, it, "the reservation expired", /*expired=*/true, now_ms);
    step.refusals.push_back(s.Refuse(accept.id, accept.envelope.signer, "the reservation expired", now_ms));
    step.log.push_back("accept " + Short(accept.id) + " refused: the reservation expired");
    s.RetryDeferred(step, now_ms);
    return step;
  }
  // A preempting bid's lease starts once its victims' notice has passed.
  const int64_t start_ms = now_ms + static_cast<int64_t>(s.LongestNotice(bid));
  Result<market::Lease> lease = market::BuildLease(accept_bytes, bid.bid_envelope, start_ms);
  if (!lease.ok()) return ignore(lease.status().ToString());
  // Held until the ledger answers: the reservation can no longer expire under the lease.
  s.expiry.erase({bid.expires_ms, body.bid_id});
  bid.commit = std::make_unique<Impl::Held::Commit>(Impl::Held::Commit{
      accept.id, market::MakeSigned(s.identity, *lease, now_ms, s.options.lease_message_ttl_ms, s.Nonce())});
  step.record_leases.push_back(StoreLease{body.bid_id, bid.commit->lease});
  return step;
}

EngineStep BidEngine::OnLeaseStored(const MessageId& bid_id, const Status& stored, int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  const auto it = s.held.find(bid_id);
  if (it == s.held.end() || !it->second.commit) return step;
  Impl::Held& bid = it->second;
  if (!stored.ok()) {
    ++s.counters.leases_failed;
    const std::string why = "the lease could not be recorded: " + stored.ToString();
    step.refusals.push_back(s.Refuse(bid.commit->accept_id, bid.tenant, why, now_ms));
    step.log.push_back("bid " + Short(bid_id) + ": " + why);
    s.Release(step, it, why, /*expired=*/false, now_ms);
    s.RetryDeferred(step, now_ms);
    return step;
  }
  ++s.counters.leases;
  if (bid.preemption) s.Preempt(step, bid);
  // A spot lease's capacity is in the Offer again (a regular order may preempt it).
  if (bid.preemption || bid.spot) step.capacity_changed = true;
  const market::Signed<market::Lease>& lease = bid.commit->lease;
  s.leases.emplace(lease.id, Impl::ActiveLease{bid.order_id, bid_id, bid.tenant, std::move(bid.allocation),
                                               bid.spot, std::nullopt, lease.body.denom,
                                               lease.body.price_per_hour, s.next_lease_sequence++});
  s.lease_of_bid.emplace(bid_id, lease.id);  // bid_of_order keeps the order: it is served
  step.leases.push_back(lease);
  s.held.erase(it);  // its capacity stays taken, now by the lease
  s.RetryDeferred(step, now_ms);  // preempted leases may have held more than it takes
  return step;
}

EngineStep BidEngine::OnLease(const market::Signed<market::Lease>& lease, int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  if (lease.envelope.signer == s.me()) return step;
  if (s.Undefer(lease.body.order_id)) ++s.counters.deferred_dropped;  // it waits for nothing now
  const auto order = s.bid_of_order.find(lease.body.order_id);
  if (order == s.bid_of_order.end()) return step;
  const auto it = s.held.find(order->second);
  if (it == s.held.end() || it->second.commit) return step;
  s.Release(step, it, "the order was leased to another provider", /*expired=*/false, now_ms);
  s.RetryDeferred(step, now_ms);
  return step;
}

EngineStep BidEngine::OnClose(const market::Signed<market::Close>& close, int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  const auto it = s.leases.find(close.body.lease_id);
  if (it == s.leases.end()) return step;
  if (close.envelope.signer != it->second.tenant && close.envelope.signer != s.me()) return step;
  if (it->second.preempted_by) {
    // Ended before its preemption: its capacity stays held, now by the preempting bid itself.
    Impl::Held& preempting = s.held.at(*it->second.preempted_by);
    std::erase(preempting.preemption->victims, close.body.lease_id);
    market::AddUsage(preempting.preemption->extra, it->second.allocation);
  } else {
    s.Give(it->second.allocation);
    s.capacity_freed = true;
  }
  s.lease_of_bid.erase(it->second.bid_id);
  const auto order = s.bid_of_order.find(it->second.order_id);
  if (order != s.bid_of_order.end() && order->second == it->second.bid_id) s.bid_of_order.erase(order);
  s.leases.erase(it);
  ++s.counters.leases_closed;
  step.capacity_changed = true;
  s.RetryDeferred(step, now_ms);
  return step;
}

EngineStep BidEngine::Tick(int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  while (!s.expiry.empty() && s.expiry.begin()->first <= now_ms) {
    const auto it = s.held.find(s.expiry.begin()->second);
    if (it == s.held.end()) {
      s.expiry.erase(s.expiry.begin());
      continue;
    }
    s.Release(step, it, "the reservation expired", /*expired=*/true, now_ms);
  }
  for (auto it = s.pending.begin(); it != s.pending.end();) {
    if (it->second.deadline_ms > now_ms) {
      ++it;
      continue;
    }
    ++s.counters.price_failures;
    s.Skip(step, SkipReason::kPricingFailed, it->second.order.id, "the price program did not answer in time");
    s.pending_of_order.erase(it->second.order.id);
    it = s.pending.erase(it);
  }
  step.skipped.reset();  // Tick answers no one order
  while (!s.ended_order.empty() && s.ended_order.begin()->first <= now_ms) {
    s.ended.erase(s.ended_order.begin()->second);
    s.ended_order.erase(s.ended_order.begin());
  }
  s.RetryDeferred(step, now_ms);
  return step;
}

EngineStep BidEngine::Restore(std::vector<RestoredReservation> reservations, std::vector<RestoredLease> leases,
                              int64_t now_ms) {
  EngineStep step;
  Impl& s = *impl_;
  for (auto& lease : leases) {
    if (s.leases.contains(lease.lease_id)) continue;
    s.Take(lease.allocation);
    s.lease_of_bid.emplace(lease.bid_id, lease.lease_id);
    s.bid_of_order.emplace(lease.order_id, lease.bid_id);
    s.leases.emplace(lease.lease_id,
                     Impl::ActiveLease{lease.order_id, lease.bid_id, lease.tenant, std::move(lease.allocation),
                                       lease.spot, std::nullopt, std::move(lease.denom), lease.price_per_hour,
                                       s.next_lease_sequence++});
  }
  for (auto& reservation : reservations) {
    const MessageId bid_id = reservation.bid.id;
    if (s.held.contains(bid_id) || s.lease_of_bid.contains(bid_id)) continue;
    if (reservation.expires_ms <= now_ms || s.bid_of_order.contains(reservation.bid.body.order_id)) {
      step.release.push_back(bid_id);
      ++s.counters.reservations_expired;
      continue;
    }
    Impl::Held entry;
    entry.order_id = reservation.bid.body.order_id;
    entry.tenant = reservation.bid.body.tenant;
    entry.expires_ms = reservation.expires_ms;
    entry.allocation = std::move(reservation.allocation);
    entry.bid_envelope = market::EncodeEnvelope(reservation.bid.envelope);
    entry.spot = reservation.bid.body.spot;
    s.Take(entry.allocation);
    s.expiry.emplace(entry.expires_ms, bid_id);
    s.bid_of_order.emplace(entry.order_id, bid_id);
    s.held.emplace(bid_id, std::move(entry));
  }
  step.capacity_changed = true;
  s.RetryDeferred(step, now_ms);  // nothing waits before the first input; kept for any order of calls
  return step;
}

std::vector<MessageId> BidEngine::SetOutOfService(const std::string& node,
                                                 std::map<market::DeviceType, uint64_t> gpus) {
  Impl& s = *impl_;
  std::erase_if(gpus, [](const auto& entry) { return entry.second == 0; });
  if (gpus.empty()) {
    s.out_of_service.erase(node);
  } else {
    s.out_of_service[node] = gpus;
  }
  s.RecomputeNode(node);
  s.tables_fresh = s.tables_fresh && s.pricing.kind != PricingKind::kUtilization;
  s.capacity_freed = true;  // GPUs may be back in service: waiting orders are tried at the next input or Tick
  std::vector<MessageId> to_close;
  const auto index = s.node_index.find(node);
  if (index == s.node_index.end()) return to_close;
  for (const auto& [type, unhealthy] : gpus) {
    uint64_t installed = 0;
    for (const auto& devices : s.inventory.nodes[index->second].gpus) {
      if (TypeOf(devices) == type) installed += devices.count;
    }
    const uint64_t in_service = market::SaturatingSub(installed, unhealthy);
    // The node's leases holding this type, newest first.
    std::vector<std::pair<uint64_t, std::pair<MessageId, uint64_t>>> holding;
    uint64_t leased = 0;
    for (const auto& [id, lease] : s.leases) {
      const auto share = lease.allocation.find(node);
      if (share == lease.allocation.end()) continue;
      const auto count = share->second.gpus.find(type);
      if (count == share->second.gpus.end() || count->second == 0) continue;
      holding.push_back({lease.sequence, {id, count->second}});
      leased += count->second;
    }
    std::sort(holding.begin(), holding.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [sequence, lease] : holding) {
      if (leased <= in_service) break;
      if (std::find(to_close.begin(), to_close.end(), lease.first) == to_close.end()) to_close.push_back(lease.first);
      leased -= lease.second;
    }
  }
  return to_close;
}

std::map<market::DeviceType, DeviceUsage> BidEngine::Usage() const {
  const Impl& s = *impl_;
  std::map<market::DeviceType, DeviceUsage> usage;
  for (const market::NodeCapacity& node : s.inventory.nodes) {
    for (const auto& devices : node.gpus) usage[TypeOf(devices)].installed += devices.count;
    const auto unhealthy = s.out_of_service.find(node.name);
    if (unhealthy == s.out_of_service.end()) continue;
    for (const auto& [type, count] : unhealthy->second) {
      DeviceUsage& entry = usage[type];
      entry.out_of_service = std::min(entry.installed, market::SaturatingAdd(entry.out_of_service, count));
    }
  }
  for (const auto& [id, lease] : s.leases) {
    std::optional<market::DeviceType> first;
    for (const auto& [node, share] : lease.allocation) {
      for (const auto& [type, count] : share.gpus) {
        if (!first) first = type;
        usage[type].leased = market::SaturatingAdd(usage[type].leased, count);
      }
    }
    if (first) {
      uint64_t& revenue = usage[*first].revenue_per_hour[lease.denom];
      revenue = market::SaturatingAdd(revenue, lease.price_per_hour);
    }
  }
  return usage;
}

market::Offer BidEngine::FreeOffer() {
  Impl& s = *impl_;
  // Spot leases' capacity is available to a regular order (it would preempt them), so the
  // Offer, which tenants' dry runs read for regular orders, counts it as free (docs/SPOT.md).
  Allocation spot_held;
  for (const auto& [id, lease] : s.leases) {
    if (lease.spot && !lease.preempted_by) market::AddUsage(spot_held, lease.allocation);
  }
  s.Give(spot_held);
  market::Offer offer = s.free;
  s.Take(spot_held);
  offer.pricing = s.pricing.kind == PricingKind::kCommand && s.pricing.tables.empty()
                      ? std::vector<market::PriceTable>{}
                      : EffectiveTables(s.pricing, s.inventory.nodes, s.free.nodes, "");
  return offer;
}

const PublicKey& BidEngine::provider() const { return impl_->me(); }
const BidEngine::Counters& BidEngine::counters() const { return impl_->counters; }
size_t BidEngine::live_reservations() const { return impl_->held.size(); }
size_t BidEngine::active_leases() const { return impl_->leases.size(); }
bool BidEngine::Holds(const MessageId& bid_id) const { return impl_->held.contains(bid_id); }
size_t BidEngine::deferred_orders() const { return impl_->deferred.size(); }

std::optional<int64_t> BidEngine::NextDeadline() const {
  const Impl& s = *impl_;
  std::optional<int64_t> next;
  auto consider = [&](int64_t at) { next = next ? std::min(*next, at) : at; };
  if (!s.expiry.empty()) consider(s.expiry.begin()->first);
  for (const auto& [id, request] : s.pending) consider(request.deadline_ms);
  if (!s.ended_order.empty()) consider(s.ended_order.begin()->first);
  if (s.capacity_freed && !s.deferred.empty() && !s.RetryBlocked()) consider(0);  // at once
  return next;
}

}  // namespace gpumart::bidding
