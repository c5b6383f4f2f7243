#include "node/local_market.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <memory>

#include "bidding/bid_engine.h"
#include "bidding/bid_selection.h"
#include "ledger/capacity.h"
#include "ledger/ledger_actor.h"
#include "ledger/reputation.h"
#include "ledger/verify.h"
#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "market/offers.h"
#include "market/replay_guard.h"
#include "market/sdl.h"
#include "node/provider_actor.h"

namespace gpumart::node {

namespace {

using market::Bytes;
using market::Identity;
using market::MessageId;

// A provider as the demo runs it: its identity and the one bid engine a provider daemon runs
// (bidding/bid_engine.h), which owns its capacity. The engine has no I/O: this file is its
// driver, carrying its ledger writes to the node's ledger and its messages to the tenant.
struct Provider {
  std::string name;  // the offers file's id
  Identity identity;
  std::unique_ptr<bidding::BidEngine> engine;
};

// Keys live in <data_dir>/keys so that a kept data dir is the same market next time: the same
// providers, whose earlier leases still hold their capacity.
using market::LoadOrCreateKeyFile;

// A provider id comes from the offers file: use it as a file name only when it is plainly safe
// (no "/", no leading dot), else a name derived from its hash.
std::string KeyFileName(const std::string& provider) {
  bool safe = !provider.empty() && provider[0] != '.';
  for (char c : provider) {
    safe = safe && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  }
  if (safe) return provider + ".key";
  const MessageId hash = market::Blake2b256(reinterpret_cast<const uint8_t*>(provider.data()), provider.size());
  return "provider-" + market::ToHex(hash).substr(0, 32) + ".key";
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// This node's ledger, and the outbox this thread writes to it through.
struct LedgerHandle {
  ledger::LedgerActor& actor;
  actors::Outbox& outbox;
  Status Write(ledger::LedgerWrite write) { return actor.Write(outbox, std::move(write)); }
  std::future<Status> Submit(ledger::LedgerWrite write) { return actor.Submit(outbox, std::move(write)); }
  const ledger::LedgerStore& store() const { return actor.store(); }
};

// The provider's side of an order: the engine verifies, fits, prices, reserves and signs; the
// reservation goes to the ledger.
struct BidOutcome {
  std::optional<Bytes> bid_wire;
  std::string declined_because;
};

BidOutcome ProviderBids(Provider& provider, const Bytes& order_wire, LedgerHandle& ledger, int64_t now_ms,
                        std::vector<std::future<Status>>& reservations) {
  bidding::EngineStep step = provider.engine->OnOrderBytes(order_wire, now_ms);
  for (bidding::StoreReservation& reserve : step.reserve) {
    ledger::Reservation reservation{reserve.bid.id, provider.identity.public_key(), reserve.expires_ms,
                                    std::move(reserve.allocation)};
    reservations.push_back(ledger.Submit(ledger::Reserve{std::move(reservation)}));
  }
  if (step.bids.empty()) return BidOutcome{std::nullopt, step.skipped ? step.skip_detail : std::string("no bid")};
  return BidOutcome{market::EncodeEnvelope(step.bids.front().envelope), {}};
}

// The winning provider's side of an accept: the engine re-checks the reservation and builds the
// lease; the lease is written durably, and only then does the engine publish it.
Result<Bytes> ProviderCountersigns(Provider& provider, const Bytes& accept_wire, LedgerHandle& ledger,
                                   int64_t now_ms) {
  bidding::EngineStep step = provider.engine->OnAcceptBytes(accept_wire, now_ms);
  if (!step.refusals.empty()) {
    return Status::FailedPrecondition("provider " + provider.name + " refused the accept: " +
                                      step.refusals.front().close.body.note);
  }
  if (step.record_leases.empty()) {
    return Status::InvalidArgument("provider " + provider.name + " ignored the accept" +
                                   (step.log.empty() ? std::string() : ": " + step.log.front()));
  }
  const bidding::StoreLease& record = step.record_leases.front();
  // Acknowledged only once durable (group commit).
  const Status stored = ledger.Write(ledger::RecordLease{record.lease});
  bidding::EngineStep published = provider.engine->OnLeaseStored(record.bid_id, stored, now_ms);
  GPUMART_RETURN_IF_ERROR(stored);
  if (published.leases.empty()) return Status::Internal("provider " + provider.name + " did not publish its lease");
  return market::EncodeEnvelope(published.leases.front().envelope);
}

}  // namespace

Result<LocalMarketReport> RunLocalMarket(const LocalMarketOptions& options, const Clock& clock) {
  Result<market::Deployment> deployment = market::ParseSdlFile(options.sdl_path);
  if (!deployment.ok()) return deployment.status().WithContext(options.sdl_path);
  Result<std::vector<market::Offer>> offers = market::ParseOffersFile(options.offers_path);
  if (!offers.ok()) return offers.status().WithContext(options.offers_path);

  LocalMarketReport report;
  report.ledger_path = options.data_dir + "/ledger";
  actors::ActorSystem system;
  Result<std::unique_ptr<ledger::LedgerActor>> opened = ledger::LedgerActor::Open(system, report.ledger_path, {}, clock);
  if (!opened.ok()) return opened.status();
  actors::Outbox outbox(system);
  LedgerHandle ledger{**opened, outbox};

  const std::string keys_dir = options.data_dir + "/keys";
  if (::mkdir(keys_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IoError("cannot create " + keys_dir + ": " + std::strerror(errno));
  }
  Result<Identity> tenant_key = LoadOrCreateKeyFile(keys_dir + "/tenant.key");
  if (!tenant_key.ok()) return tenant_key.status();
  const Identity tenant = *tenant_key;
  market::ReplayGuard tenant_guard;
  report.tenant_key = market::ToHex(tenant.public_key());
  std::vector<Provider> providers;
  providers.reserve(offers->size());
  for (auto& offer : *offers) {
    Result<Identity> key = LoadOrCreateKeyFile(keys_dir + "/" + KeyFileName(offer.provider));
    if (!key.ok()) return key.status().WithContext("provider " + offer.provider);
    // The offers file's prices are a `table` pricing policy.
    bidding::PricingConfig pricing;
    pricing.tables = offer.pricing;
    bidding::BidEngineOptions engine_options;
    engine_options.bid_ttl_ms = kDemoBidTtlMs;
    engine_options.lease_message_ttl_ms = kDemoOrderTtlMs;
    // Each group is settled before the next is submitted, so an order skipped for capacity has
    // no later chance here: a retry would reserve for a group that already ended.
    engine_options.max_deferred_orders = 0;
    std::string name = offer.provider;
    Result<std::unique_ptr<bidding::BidEngine>> engine =
        bidding::BidEngine::Create(*key, std::move(offer), std::move(pricing), std::move(engine_options));
    if (!engine.ok()) return engine.status().WithContext("provider " + name);
    // What the kept data dir's ledger still holds of this provider's capacity.
    Result<std::vector<bidding::RestoredLease>> leases = ActiveLeasesOf(ledger.store(), key->public_key());
    if (!leases.ok()) return leases.status().WithContext("provider " + name);
    (*engine)->Restore({}, std::move(*leases), clock.NowMs());
    providers.push_back(Provider{std::move(name), *key, std::move(*engine)});
  }
  report.providers = providers.size();

  for (const market::Order& order : deployment->orders) {
    DemoGroup group;
    group.group = order.group;
    group.denom = order.Denom();
    group.cap_per_hour = order.CapPerHour();
    const auto started = std::chrono::steady_clock::now();
    int64_t now_ms = clock.NowMs();

    // 1. The tenant signs the order; every node records it.
    const auto signed_order = market::MakeSigned(tenant, order, now_ms, kDemoOrderTtlMs, market::RandomNonce());
    group.order_id = signed_order.id;
    const Bytes order_wire = market::EncodeEnvelope(signed_order.envelope);
    // Records nobody waits on go to the ledger asynchronously; the group's end checks them all.
    std::vector<std::future<Status>> background;
    background.push_back(ledger.Submit(ledger::RecordOrder{signed_order}));

    // 2. Every provider verifies it and bids if it can. Providers reserve in parallel, so their
    //    reservations share one group commit; the demo waits for them before the tenant goes on
    //    (so the ledger holds each reservation before a lease or a release ends it), a daemon
    //    need not: a lease is only made after the re-check at Accept time.
    std::vector<std::pair<size_t, Bytes>> bid_wires;  // provider index, signed bid
    std::vector<std::future<Status>> reservations;
    for (size_t p = 0; p < providers.size(); ++p) {
      BidOutcome outcome = ProviderBids(providers[p], order_wire, ledger, now_ms, reservations);
      ++group.signatures_verified;
      if (outcome.bid_wire) {
        bid_wires.emplace_back(p, std::move(*outcome.bid_wire));
      } else {
        group.declined.push_back(providers[p].name + ": " + outcome.declined_because);
      }
    }
    for (auto& reserved : reservations) GPUMART_RETURN_IF_ERROR(reserved.get().WithContext("reservation"));

    // 3. The tenant verifies every bid, checks it against the order (a bid that lies is dropped
    //    and counted) and ranks the rest by its policy.
    bidding::BidSelection selection(signed_order, options.policy);
    const std::vector<market::PublicKey> auditors = ledger::NamedAuditors(order.signed_by);
    std::map<MessageId, size_t> bidder;  // bid id -> provider index, for every bid received
    for (const auto& [p, wire] : bid_wires) {
      Result<market::Signed<market::Bid>> bid = market::OpenSigned<market::Bid>(wire, now_ms);
      if (!bid.ok()) return bid.status().WithContext("tenant rejected a bid");
      Result<market::ReplayGuard::Verdict> seen =
          tenant_guard.Check(bid->envelope.signer, bid->envelope.nonce, bid->id, bid->envelope.expires_ms, now_ms);
      if (!seen.ok()) return seen.status();
      if (*seen == market::ReplayGuard::Verdict::kDuplicate) continue;  // the same bid again: nothing new
      ++group.signatures_verified;
      // Every node records the bids it relays.
      background.push_back(ledger.Submit(ledger::RecordBid{*bid}));
      bidder.emplace(bid->id, p);
      // What this node's ledger says of the bidder's key (its lease outcomes, and the attestations
      // of the auditors this order names), never what the offers file claims.
      Result<uint32_t> reputation = ledger.store().Reputation(bid->envelope.signer, auditors);
      if (!reputation.ok()) return reputation.status();
      const bidding::BidCheck check = selection.Add(*bid, now_ms, *reputation, providers[p].name);
      if (!check.ok()) {
        group.declined.push_back(providers[p].name + ": bid dropped (" +
                                 std::string(bidding::ToString(check.problem)) + "): " + check.detail);
      }
    }
    const std::vector<const bidding::SelectedBid*> ranking = selection.Ranking(now_ms);
    for (const bidding::SelectedBid* selected : ranking) {
      const market::Candidate& candidate = selected->candidate;
      group.bids.push_back(DemoBid{candidate.provider, selected->bid.id, candidate.price_per_hour, candidate.ranks,
                                   candidate.services});
    }
    if (ranking.empty()) {
      for (auto& pending : background) GPUMART_RETURN_IF_ERROR(pending.get());
      report.groups.push_back(std::move(group));
      continue;
    }

    // 4. The tenant accepts the best bid; the winner countersigns a durable lease.
    const market::Signed<market::Bid>& winning_bid = ranking.front()->bid;
    Provider& winner = providers[bidder.at(winning_bid.id)];
    market::Accept accept{signed_order.id, winning_bid.id, winner.identity.public_key()};
    const auto signed_accept = market::MakeSigned(tenant, accept, now_ms, kDemoOrderTtlMs, market::RandomNonce());
    Result<Bytes> lease_wire =
        ProviderCountersigns(winner, market::EncodeEnvelope(signed_accept.envelope), ledger, now_ms);
    if (!lease_wire.ok()) return lease_wire.status();
    group.signatures_verified += 1;

    // 5. Any node can check the lease: the provider's signature, the embedded bid's and accept's,
    //    and that the lease is exactly the accepted bid.
    Result<market::Signed<market::Lease>> lease = market::OpenLease(*lease_wire);
    if (!lease.ok()) return lease.status().WithContext("lease check");
    group.signatures_verified += 3;

    // 6. Losing providers (and those whose bids were dropped) see the lease and release their
    //    reservations at once (Akash users wait 15-25 minutes).
    for (Provider& provider : providers) {
      for (const MessageId& released : provider.engine->OnLease(*lease, now_ms).release) {
        background.push_back(ledger.Submit(ledger::Release{released}));
      }
    }
    group.order_to_lease_ms = MillisSince(started);
    for (auto& pending : background) GPUMART_RETURN_IF_ERROR(pending.get());
    group.leased = true;
    group.lease_id = lease->id;
    group.provider = winner.name;
    group.provider_key = market::ToHex(winner.identity.public_key());
    group.price_per_hour = lease->body.price_per_hour;
    group.services = lease->body.services;
    report.groups.push_back(std::move(group));
  }

  const ledger::VerifyReport verify = ledger::VerifyLedger(ledger.store());
  report.ledger_ok = verify.ok;
  report.ledger_verify = verify.Describe();
  report.ledger_records = verify.records;
  report.ledger_chain_entries = verify.chain_entries;
  return report;
}

}  // namespace gpumart::node
