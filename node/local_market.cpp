#include "node/local_market.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <map>

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

namespace gpumart::node {

namespace {

using market::Bytes;
using market::Identity;
using market::MessageId;

// A provider as the demo runs it: its identity, its full inventory (what it owns) and its prices.
// Free capacity is never kept here: it is derived from the ledger (inventory - leases -
// reservations) each time, exactly as a provider daemon must, so nothing can be double-booked.
struct Provider {
  Identity identity;
  market::Offer inventory;
  market::ReplayGuard replay_guard;
  std::map<MessageId, market::Signed<market::Bid>> outstanding_bids;  // bids it may still be held to
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

// The provider's side of an order: verify it, price it against free capacity, and if it fits,
// reserve the capacity durably and sign a bid.
struct BidOutcome {
  std::optional<Bytes> bid_wire;
  std::string declined_because;
  std::future<Status> reserved;  // the bid may leave only once this is durable and ok
};

// This node's ledger, and the outbox this thread writes to it through.
struct LedgerHandle {
  ledger::LedgerActor& actor;
  actors::Outbox& outbox;
  Status Write(ledger::LedgerWrite write) { return actor.Write(outbox, std::move(write)); }
  std::future<Status> Submit(ledger::LedgerWrite write) { return actor.Submit(outbox, std::move(write)); }
  const ledger::LedgerStore& store() const { return actor.store(); }
};

Result<BidOutcome> ProviderBids(Provider& provider, const Bytes& order_wire, LedgerHandle& ledger, int64_t now_ms) {
  Result<market::Signed<market::Order>> order = market::OpenSigned<market::Order>(order_wire, now_ms);
  if (!order.ok()) return order.status().WithContext("provider " + provider.inventory.provider + " rejected the order");
  Result<market::ReplayGuard::Verdict> seen = provider.replay_guard.Check(
      order->envelope.signer, order->envelope.nonce, order->id, order->envelope.expires_ms, now_ms);
  if (!seen.ok()) return seen.status();
  if (*seen == market::ReplayGuard::Verdict::kDuplicate) return BidOutcome{std::nullopt, "order seen before"};
  Result<std::vector<market::NodeCapacity>> free_nodes =
      ledger.store().FreeCapacity(provider.identity.public_key(), provider.inventory.nodes, now_ms);
  if (!free_nodes.ok()) return free_nodes.status();
  market::Offer offer = provider.inventory;
  offer.nodes = std::move(*free_nodes);
  const market::FitOutcome fit = market::FitProvider(order->body, offer);
  if (!fit.candidate) {
    std::string why(market::ToString(fit.exclusion.reason));
    if (!fit.exclusion.detail.empty()) why += " (" + fit.exclusion.detail + ")";
    return BidOutcome{std::nullopt, why};
  }
  market::Bid bid;
  bid.order_id = order->id;
  bid.tenant = order->envelope.signer;
  bid.group = order->body.group;
  bid.denom = fit.candidate->denom;
  bid.price_per_hour = fit.candidate->price_per_hour;
  bid.services = fit.candidate->services;
  bid.reservation_expires_ms = now_ms + kDemoBidTtlMs;
  const auto signed_bid = market::MakeSigned(provider.identity, bid, now_ms, kDemoBidTtlMs, market::RandomNonce());
  Result<ledger::Usage> usage = ledger::ComputeUsage(order->body, bid.services);
  if (!usage.ok()) return usage.status();
  // Hold the capacity before the bid leaves: a bid is a promise. Providers reserve in parallel,
  // so their reservations share one group commit.
  ledger::Reservation reservation{signed_bid.id, provider.identity.public_key(), bid.reservation_expires_ms, *usage};
  BidOutcome outcome{market::EncodeEnvelope(signed_bid.envelope), {}, ledger.Submit(ledger::Reserve{reservation})};
  provider.outstanding_bids.emplace(signed_bid.id, signed_bid);
  return outcome;
}

// The winning provider's side of an accept: verify it, check it names a bid this provider still
// holds, countersign the lease and make it durable before answering.
Result<Bytes> ProviderCountersigns(Provider& provider, const Bytes& accept_wire, LedgerHandle& ledger,
                                   int64_t now_ms) {
  Result<market::Signed<market::Accept>> accept = market::OpenSigned<market::Accept>(accept_wire, now_ms);
  if (!accept.ok()) return accept.status().WithContext("provider " + provider.inventory.provider + " rejected the accept");
  if (accept->body.provider != provider.identity.public_key()) {
    return Status::InvalidArgument("accept names another provider");
  }
  const auto own = provider.outstanding_bids.find(accept->body.bid_id);
  if (own == provider.outstanding_bids.end() || own->second.body.order_id != accept->body.order_id) {
    return Status::InvalidArgument("accept names a bid this provider did not make for that order");
  }
  if (accept->envelope.signer != own->second.body.tenant) {
    return Status::PermissionDenied("accept is not signed by the tenant whose order the bid answers");
  }
  Result<ledger::Reservation> reservation = ledger.store().GetReservation(accept->body.bid_id);
  if (!reservation.ok() || reservation->expires_ms <= now_ms) {
    return Status::FailedPrecondition("the accepted bid's reservation has expired");
  }
  // The lease embeds the bid and the accept byte for byte; its terms are the bid's.
  Result<market::Lease> lease = market::BuildLease(accept_wire, market::EncodeEnvelope(own->second.envelope), now_ms);
  if (!lease.ok()) return lease.status();
  // A lease does not expire as a message; its envelope expiry only bounds how long it may take
  // to reach the other nodes.
  const auto signed_lease = market::MakeSigned(provider.identity, *lease, now_ms, kDemoOrderTtlMs, market::RandomNonce());
  // Acknowledged only once durable (group commit).
  GPUMART_RETURN_IF_ERROR(ledger.Write(ledger::RecordLease{signed_lease}));
  provider.outstanding_bids.erase(own);
  return market::EncodeEnvelope(signed_lease.envelope);
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
    providers.push_back(Provider{*key, std::move(offer), market::ReplayGuard(), {}});
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

    // 2. Every provider verifies it and bids if it can; a bid leaves once its reservation is
    //    durable.
    std::vector<std::pair<size_t, BidOutcome>> outcomes;
    for (size_t p = 0; p < providers.size(); ++p) {
      Result<BidOutcome> outcome = ProviderBids(providers[p], order_wire, ledger, now_ms);
      if (!outcome.ok()) return outcome.status();
      ++group.signatures_verified;
      if (outcome->bid_wire) {
        outcomes.emplace_back(p, std::move(*outcome));
      } else {
        group.declined.push_back(providers[p].inventory.provider + ": " + outcome->declined_because);
      }
    }
    std::vector<std::pair<size_t, Bytes>> bid_wires;  // provider index, signed bid
    for (auto& [p, outcome] : outcomes) {
      const Status reserved = outcome.reserved.get();
      if (!reserved.ok()) return reserved.WithContext("provider " + providers[p].inventory.provider + " reservation");
      bid_wires.emplace_back(p, std::move(*outcome.bid_wire));
    }

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
      const bidding::BidCheck check = selection.Add(*bid, now_ms, *reputation, providers[p].inventory.provider);
      if (!check.ok()) {
        group.declined.push_back(providers[p].inventory.provider + ": bid dropped (" +
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

    // 5. Losing providers (and those whose bids were dropped) release their reservations at once
    //    (Akash users wait 15-25 minutes).
    for (const auto& [bid_id, p] : bidder) {
      if (bid_id == winning_bid.id) continue;
      providers[p].outstanding_bids.erase(bid_id);
      background.push_back(ledger.Submit(ledger::Release{bid_id}));
    }

    // 6. Any node can check the lease: the provider's signature, the embedded bid's and accept's,
    //    and that the lease is exactly the accepted bid.
    Result<market::Signed<market::Lease>> lease = market::OpenLease(*lease_wire);
    if (!lease.ok()) return lease.status().WithContext("lease check");
    group.signatures_verified += 3;
    group.order_to_lease_ms = MillisSince(started);
    for (auto& pending : background) GPUMART_RETURN_IF_ERROR(pending.get());
    group.leased = true;
    group.lease_id = lease->id;
    group.provider = winner.inventory.provider;
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
