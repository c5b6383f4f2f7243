// The provider's bid engine: a state machine without I/O. It owns the provider's capacity and
// turns what the provider hears (Orders, Accepts, Leases and Closes of others, ledger
// acknowledgements, price answers, the passing of time) into what it must send and store. An
// actor (node/) drives it with sockets and the ledger; the demo (node/local_market.cpp) and
// tests drive it in memory; a simulator can drive thousands in virtual time.
//
// Capacity: free = inventory - active leases - live reservations, kept as a running total that
// every reserve, release, lease and close adjusts (no scan of leases or reservations). One order
// gets at most one bid; a reservation is taken only after the order passed every check and was
// priced, and released on every way a bid can end (docs/PRICING.md, "Reservations"):
// the Order's lease goes to another bid, the bid's TTL or the order's expiry passes, or pricing
// fails. A closed lease frees its capacity at once.
//
// Orders waiting for capacity: an order skipped for capacity alone (free capacity too small
// now, or taken while its price program ran) is kept, bounded, and tried again, oldest first,
// through every check of OnOrder whenever capacity is freed (a reservation released, a lease
// closed, capacity back from preempted leases, a new inventory, GPUs back in service), in the
// step of the input that freed it (docs/PRICING.md, "Orders waiting for capacity").
//
// Bids leave before their reservation is durable (the output asks for the write, nobody waits
// on it): a lease is made only after the re-check at Accept time, and the Lease is published
// only once the ledger acknowledged it durable (OnLeaseStored).
//
// Not thread-safe: one owner feeds it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/pricing.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "market/match.h"
#include "market/status.h"
#include "market/types.h"
#include "market/usage.h"

namespace gpumart::bidding {

// What a reservation or a lease takes from the provider's nodes: the market's Usage, the type the
// ledger stores (market/usage.h computes it, market::UsageOf).
using Allocation = market::Usage;

// Why an order got no bid. Each is counted (BidEngine::Counters::skipped).
enum class SkipReason : uint8_t {
  kMalformed = 0,     // bytes that do not decode, or a bad signature
  kOversized,         // over limits::kMaxMessageBytes
  kExpired,           // expired, or created too far ahead
  kDuplicate,         // this provider already bid on the order
  kDeniedOwner,       // the tenant is on the deny list, or not on a non-empty allow list
  kAttributes,        // placement attributes the provider lacks
  kSignedBy,          // auditor requirements the provider does not meet
  kDenom,             // no price in the order's denom
  kNoDevice,          // no device satisfies a GPU option (model, RAM, interface, CUDA, rate)
  kCapacity,          // not enough free capacity
  kPriceCap,          // the price is over the order's cap
  kTooComplex,        // over the matching engine's work bounds
  kTooManyReservations,  // BidEngineOptions::max_reservations reached
  kPricingBusy,       // command: max_concurrent programs already running
  kPricingFailed,     // command: the program failed, timed out or printed garbage
  kNoSpotPricing,     // an interruptible order, and this provider sells no spot capacity
};
constexpr size_t kSkipReasons = 16;
std::string_view ToString(SkipReason reason);

// Heap one live reservation costs the engine at most: its entry (the bid's order, tenant, expiry
// and wire bytes), its allocation and its indexes (BidEngineTest.ALiveReservationCostsAtMostItsBound).
constexpr size_t kMaxReservationBytes = 1'280;

struct BidEngineOptions {
  // How long a bid (and its reservation) stays valid; never past the order's own expiry.
  int64_t bid_ttl_ms = 30'000;
  // Envelope lifetime of a Lease message (how long it may take to reach every node) and of a
  // refusal.
  int64_t lease_message_ttl_ms = 60'000;
  // Tenants (order signers): when allow is non-empty only those are served; deny always wins.
  std::vector<market::PublicKey> allow_tenants;
  std::vector<market::PublicKey> deny_tenants;
  // Live reservations at most (a flood of orders cannot grow the engine without bound).
  size_t max_reservations = 100'000;
  // How long a bid that ended (expired, released, lost) is remembered, past its expiry, so a late
  // Accept for it is answered with a refusal rather than ignored.
  int64_t ended_memory_ms = 60'000;
  size_t max_ended = 100'000;
  // Orders skipped for capacity alone kept to be tried again once capacity is freed: at most
  // this many (each retry is one fit, so this bounds the work one freeing input does) and this
  // many bytes of their bodies (so large orders cannot hold much memory). When either is
  // reached the oldest is dropped first. 0 orders: none is kept.
  size_t max_deferred_orders = 256;
  size_t max_deferred_bytes = 4 << 20;
  // The nonces of the messages the engine signs (bids, leases, refusals). Empty:
  // market::RandomNonce. A simulator sets a seeded source so one seed gives one run (bench/sim).
  std::function<uint64_t()> nonce_source;
};

// Ask the ledger to hold a reservation for `bid` (ledger::Reserve).
struct StoreReservation {
  market::Signed<market::Bid> bid;
  int64_t expires_ms = 0;
  Allocation allocation;
};
// Ask the ledger to record the lease durably (ledger::RecordLease); answer with OnLeaseStored.
struct StoreLease {
  market::MessageId bid_id{};
  market::Signed<market::Lease> lease;
};
// Ask the price command runner to price an allocation; answer with OnPriceAnswer by deadline_ms
// (the engine gives up at the deadline by itself, on Tick).
struct PriceRequest {
  uint64_t id = 0;
  std::string json;  // PriceRequestJson
  int64_t deadline_ms = 0;
};
// Refusing an Accept: a Close whose lease_id is the Accept's message id, signed by this provider,
// reason provider-closed, the why in its note (docs/PROTOCOL.md, "Refusing an Accept"). It goes
// back to the tenant on the Accept's path; no ledger records it (no lease has that id).
struct Refusal {
  market::Signed<market::Close> close;
  market::PublicKey tenant{};
};

// What one input asks the driver to do, in this order: store, then send.
struct EngineStep {
  // Orders this step bids on or asks a price for the first time (ledger::RecordOrder, before the
  // reservations): a restart computes what a lease holds from its order. An order retried once
  // capacity is freed is here too, in the step of the input that freed it.
  std::vector<market::Signed<market::Order>> orders;
  std::vector<StoreReservation> reserve;
  std::vector<market::MessageId> release;      // ledger::Release of these bids' reservations
  std::vector<StoreLease> record_leases;
  std::vector<market::Signed<market::Bid>> bids;      // to their orders' tenants
  std::vector<market::Signed<market::Lease>> leases;  // durable: publish to every node
  std::vector<Refusal> refusals;
  // Preemption Closes (reason preempted) of spot leases, made once the non-interruptible lease
  // they make room for is durable (it is in `leases` of the same step, published first): record
  // each in the ledger, publish it to every node, stop the lease's workload by its closed_ms.
  std::vector<market::Signed<market::Close>> preemptions;
  std::vector<PriceRequest> price_requests;
  std::vector<std::string> log;  // one line per decision worth a log line (skips, refusals)
  bool capacity_changed = false;  // the offer should be re-signed and gossiped
  std::optional<SkipReason> skipped;  // set when the order given got no bid (and none is pending)
  std::string skip_detail;  // with `skipped`: what exactly, e.g. "gpu-model (web)", for people
};

// A live reservation and an active lease as the ledger has them, for Restore.
struct RestoredReservation {
  market::Signed<market::Bid> bid;
  int64_t expires_ms = 0;
  Allocation allocation;
};
struct RestoredLease {
  market::MessageId lease_id{};
  market::PublicKey tenant{};
  market::MessageId order_id{};
  market::MessageId bid_id{};
  Allocation allocation;
  std::optional<market::SpotTerms> spot;  // the lease's bid's: set for a spot lease
  std::string denom;            // the lease's price, for revenue (ProviderUsage)
  uint64_t price_per_hour = 0;
};

// Per device type (over all nodes): what the provider has, what is out of service (unhealthy
// GPUs, SetOutOfService), what its active leases hold, and their revenue. A lease's whole price
// counts for the device type of its first GPU service (GPU leases have one device type in
// practice); leases without GPUs count under no device type.
struct DeviceUsage {
  uint64_t installed = 0;
  uint64_t out_of_service = 0;
  uint64_t leased = 0;
  std::map<std::string, uint64_t> revenue_per_hour;  // by denom, micro-units
  // Leased GPUs per mille of those offered (installed minus out of service); 0 when none are.
  uint64_t UtilisationPermille() const {
    const uint64_t offered = installed > out_of_service ? installed - out_of_service : 0;
    return offered == 0 ? 0 : (leased < offered ? leased : offered) * 1000 / offered;
  }
  bool operator==(const DeviceUsage&) const = default;
};

class BidEngine {
 public:
  struct Counters {
    uint64_t orders = 0;                       // orders given to the engine
    uint64_t bids = 0;                         // bids made
    std::array<uint64_t, kSkipReasons> skipped{};  // by SkipReason
    uint64_t reservations_released = 0;        // released before their expiry (lost, closed, failed)
    uint64_t reservations_expired = 0;         // released at their expiry
    uint64_t leases = 0;                       // leases made (durable)
    uint64_t leases_failed = 0;                // the ledger refused the write
    uint64_t leases_closed = 0;
    uint64_t leases_preempted = 0;             // spot leases this provider preempted
    uint64_t accepts_refused = 0;              // answered with a refusal
    uint64_t accepts_ignored = 0;              // another's bid, another provider, a repeat, wrong signer
    uint64_t price_requests = 0;
    uint64_t price_failures = 0;
    // Orders waiting for capacity. A retry that finds no room again is not counted in `skipped`
    // (the order was counted once, when it arrived).
    uint64_t orders_deferred = 0;   // capacity skips kept to be tried again
    uint64_t deferred_retries = 0;  // tries of waiting orders (one fit each)
    uint64_t deferred_served = 0;   // waiting orders that got a bid or a price request on a retry
    uint64_t deferred_dropped = 0;  // dropped unserved: list full, expired, leased elsewhere, or
                                    // skipped on a retry for a reason other than capacity
    uint64_t skipped_total() const;
  };

  // `inventory`: the provider's whole capacity (nodes as the config or detection has them; the
  // counts are totals, not free), its attributes and the auditors that vouch for it (lower-case hex
  // keys). Its pricing is ignored: prices come from `pricing`. Fails on an invalid pricing config
  // or an inventory the matching engine refuses (market::CheckOfferWork).
  static Result<std::unique_ptr<BidEngine>> Create(market::Identity identity, market::Offer inventory,
                                                   PricingConfig pricing, BidEngineOptions options);
  ~BidEngine();
  BidEngine(const BidEngine&) = delete;
  BidEngine& operator=(const BidEngine&) = delete;

  // An Order from untrusted bytes: checks size, decodes and verifies its signature, then
  // OnVerifiedOrder.
  EngineStep OnOrderBytes(std::span<const uint8_t> bytes, int64_t now_ms);
  // An Order whose signature this process already checked (a gossip delivery, decoded with
  // market::DecodeVerified): checks its time window (market::CheckFreshness), then OnOrder. No
  // signature check: never for bytes that did not come through a verifying path.
  EngineStep OnVerifiedOrder(const market::Signed<market::Order>& order, int64_t now_ms);
  // A verified Order: tenant lists, then fit and price (market::FitProvider on free capacity),
  // then reserve and sign a bid. With the command policy, the bid comes later (OnPriceAnswer).
  // An interruptible order is priced with the spot tables (PricingConfig::spot) and its bid
  // states the spot notice. A non-interruptible order that does not fit on free capacity, but
  // would with some spot leases gone, gets a bid that holds those leases' capacity (the fewest,
  // in lease id order, table prices only); once its lease is durable they are preempted
  // (EngineStep::preemptions) and the lease starts when the longest notice ends (docs/SPOT.md).
  // An order skipped for capacity alone waits for capacity (see the top of this file); orders
  // already waiting are tried first when capacity was freed since.
  EngineStep OnOrder(const market::Signed<market::Order>& order, int64_t now_ms);
  // The price command's answer (a price or why there is none) to request `id`.
  EngineStep OnPriceAnswer(uint64_t id, Result<uint64_t> price, int64_t now_ms);
  // An Accept from the network: decodes and verifies it (signature and time), then OnAccept. One
  // that does not verify is ignored (counted).
  EngineStep OnAcceptBytes(std::span<const uint8_t> bytes, int64_t now_ms);
  // An Accept (verified) and its exact wire bytes (the Lease embeds them).
  EngineStep OnAccept(const market::Signed<market::Accept>& accept, std::span<const uint8_t> accept_bytes,
                      int64_t now_ms);
  // The ledger's answer to StoreLease: the Lease is published only when `stored` is ok; when it is
  // not, the reservation is released and the tenant gets a refusal.
  EngineStep OnLeaseStored(const market::MessageId& bid_id, const Status& stored, int64_t now_ms);
  // A verified Lease seen on the network: when it leases an order this provider bid on with
  // another bid, that bid's reservation is released at once (and the orders waiting for
  // capacity are tried); an order waiting for capacity that it leases waits no more.
  EngineStep OnLease(const market::Signed<market::Lease>& lease, int64_t now_ms);
  // A verified Close: when it closes one of this provider's leases (signed by its tenant or by
  // this provider), the lease's capacity is free at once.
  EngineStep OnClose(const market::Signed<market::Close>& close, int64_t now_ms);
  // Releases reservations whose time passed, gives up on price requests past their deadline,
  // forgets ended bids, tries the orders waiting for capacity when some was freed.
  EngineStep Tick(int64_t now_ms);
  // A new inventory (config reload, detection): free capacity becomes the new inventory minus what
  // is held. What is held stays held even if the new inventory is smaller (it was promised).
  // Orders waiting for capacity are tried again at the next input or Tick (NextDeadline is then
  // 0: at once).
  Status SetInventory(market::Offer inventory);
  // A new pricing (config reload): new bids, and the Offer's tables, use it; bids made and leases
  // held keep the price they were made at. A price program already running still answers with
  // the old one's price. Refused (nothing changes) when invalid for this engine's inventory.
  Status SetPricing(PricingConfig pricing);
  // After a restart: the ledger's reservations and active leases of this provider. Expired
  // reservations are released (the step asks the ledger to drop them). Call before any input.
  EngineStep Restore(std::vector<RestoredReservation> reservations, std::vector<RestoredLease> leases,
                     int64_t now_ms);

  // GPUs out of service on `node` (unhealthy: docs/HEALTH.md), by device type, replacing what
  // was set for the node before (empty: all in service again). Free capacity leaves them out,
  // so they are neither offered nor bid; reservations already held stay. When the node's active
  // leases hold more GPUs of a type than it has in service, the newest of those leases are
  // returned, as few as make the rest fit: the caller closes them (provider-failure). Which
  // lease runs on which GPU is the executor's choice, so the engine cannot name it exactly. Like
  // SetInventory, the orders waiting for capacity are tried again at the next input or Tick.
  std::vector<market::MessageId> SetOutOfService(const std::string& node, std::map<market::DeviceType, uint64_t> gpus);
  std::map<market::DeviceType, DeviceUsage> Usage() const;

  // The provider's Offer now: its attributes, the pricing tables it bids with, and the capacity
  // a regular order can get: free capacity plus what spot leases hold (it would preempt them).
  market::Offer FreeOffer();
  const market::PublicKey& provider() const;
  const Counters& counters() const;
  size_t live_reservations() const;
  size_t active_leases() const;
  // True when `bid_id` holds a reservation (live or being committed).
  bool Holds(const market::MessageId& bid_id) const;
  // Orders waiting for capacity (some may have expired since: they are dropped when next tried).
  size_t deferred_orders() const;
  // The next time Tick has something to do (nullopt when nothing is pending; 0, at once, when
  // orders wait for capacity that SetInventory or SetOutOfService freed).
  std::optional<int64_t> NextDeadline() const;

 private:
  struct Impl;
  explicit BidEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpumart::bidding
