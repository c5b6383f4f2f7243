// The live offer book: the actor that keeps every provider's current Offer, as gossip delivers
// them, in the matching engine's OfferBook (market/match.h), and answers queries on it (the best
// k bids for an order; a search with the offer query grammar, market/offer_query.h; its size and
// counters). The client port (`gpumart offers`, `gpumart match`) and the console ask it.
//
// - An Offer is keyed by its signer (market::OfferOfSigner): a provider has at most one entry,
//   and only a newer offer of its own replaces it (larger created_ms, then larger id); an older
//   or equal one is stale and ignored.
// - What the wire does not carry comes from this node's ledger when the offer arrives: the
//   provider's reputation from its lease outcomes (LedgerStore::Reputation with no auditors
//   named: per-order auditor weighting is the bid search's) and the auditors whose latest
//   attestation about it is a pass (LedgerStore::PassingAuditors), which signedBy counts.
// - An offer leaves the book when it expires (checked every kOfferExpiryCheckMs) or when the
//   provider's newer offer is refused.
// - Bounded: at most max_offers providers and max_bytes of offer envelopes, and the book's own
//   limits (OfferBook::Upsert refuses an offer over a work bound or one that would take the book
//   past kMaxBookDeviceTypes / kMaxBookDenoms). Every offer not taken is counted by reason.
// - Each held Offer is also kept as decoded (with this node's reputation and auditors), for
//   searches: the matching engine's index does not keep what a search shows (labels, attributes).
//   A search reads every held offer once (linear in the book, which the limits above bound) and
//   keeps at most kMaxOfferSearchRows rows.
//
// No signature is checked here: the only input is a gossip::Deliver, which the gossip core
// emits only after verifying the message.
#pragma once

#include <atomic>
#include <map>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/actor.h"
#include "actors/outbox.h"
#include "ledger/store.h"
#include "market/match.h"
#include "market/offer_query.h"
#include "node/gossip/gossip_core.h"

namespace gpumart::node {

// Offers queued towards the book (per sender) before more are dropped.
constexpr int kOfferBookMailboxHwm = 4096;
// Providers the book holds at once, and the offer envelope bytes they may add up to: a node
// keeps every live offer of the network, so these bound its memory, not an honest market
// (thousands of providers, offers of a few KiB).
constexpr size_t kMaxBookOffers = 100'000;
constexpr size_t kMaxBookOfferBytes = size_t{512} << 20;
// How often expired offers are taken out.
constexpr int64_t kOfferExpiryCheckMs = 1'000;
// The most bids one query returns.
constexpr size_t kMaxOfferQueryResults = 1'000;

struct OfferBookOptions {
  size_t max_offers = kMaxBookOffers;
  size_t max_bytes = kMaxBookOfferBytes;
  int64_t expiry_check_ms = kOfferExpiryCheckMs;
};

// Written by the book's actor (and, for dropped, the gossip thread); read by anyone.
struct OfferBookCounters {
  std::atomic<uint64_t> held{0};          // providers in the book now
  std::atomic<uint64_t> added{0};         // offers of a provider not in the book
  std::atomic<uint64_t> replaced{0};      // newer offers that replaced their provider's
  std::atomic<uint64_t> stale{0};         // not newer than the provider's offer in the book
  std::atomic<uint64_t> expired{0};       // taken out on expiry, or expired on arrival
  std::atomic<uint64_t> over_limit{0};    // refused: the book's limits or an offer's work bounds
  std::atomic<uint64_t> malformed{0};     // not an Offer that decodes (never from a sound gossip core)
  std::atomic<uint64_t> ledger_errors{0}; // refused: the ledger could not be read for its reputation
  std::atomic<uint64_t> dropped{0};       // the book's queue was full, or it stopped
};

// The book's input: an Offer the gossip core verified and delivered.
struct DeliveredOffer {
  gossip::Deliver delivery;
};

// The best k bids for an order, best first (OfferBook::TopK). Reply: Result<std::vector<Candidate>>;
// kInvalidArgument for an order that does not validate. k is capped at kMaxOfferQueryResults.
struct FindOffers {
  market::Order order;
  market::Policy policy = market::Policy::kPreference;
  size_t k = 10;
};

// A dry run (the client port's `match`): the best k bids for `order` and, for every provider in
// the book that cannot take it, why (market::FitProvider's exclusion), counted by (reason,
// detail). The reasons cost one evaluation per provider, so at most kMaxExplainedOffers are
// explained (`explained` says how many were). Reply: Result<OrderExplanation>; kInvalidArgument
// for an order that does not validate.
constexpr size_t kMaxExplainedOffers = 10'000;
struct ExplainOrder {
  market::Order order;
  market::Policy policy = market::Policy::kPreference;
  size_t k = 10;
};
struct OrderExplanation {
  std::vector<market::Candidate> candidates;
  std::map<std::pair<market::ExclusionReason, std::string>, size_t> excluded;
  // The same per provider (its key in hex, its label), in key order: the console's dry run
  // names who would not bid and why.
  struct Excluded {
    std::string provider;
    std::string name;
    market::Exclusion exclusion;
  };
  std::vector<Excluded> excluded_providers;
  size_t providers = 0;  // in the book
  size_t explained = 0;  // of which were evaluated for a reason
};

// Reply: OfferBookStatus.
struct GetOfferBookStatus {};
struct OfferBookStatus {
  size_t offers = 0;
  size_t offer_bytes = 0;
  market::OfferBook::Stats book;
};

// Searches the book with vast.ai's `search offers` grammar (market/offer_query.h, docs/QUERY.md):
// `query` like "gpu_name=h100 num_gpus>=2", `order_by` like "dph,reliability-" (empty: dph
// ascending). Reply: Result<market::OfferSearchResult>, the first min(limit,
// market::kMaxOfferSearchRows) rows and how many matched; kInvalidArgument or kLimitExceeded,
// naming the column, for a query or order that does not parse.
struct SearchOffers {
  std::string query;
  std::string order_by;
  size_t limit = market::kDefaultOfferSearchRows;
};

class OfferBookActor final : public actors::Actor {
 public:
  // `ledger` must outlive the actor (the node stops the book before the ledger).
  OfferBookActor(const ledger::LedgerStore& ledger, std::shared_ptr<OfferBookCounters> counters,
                 OfferBookOptions options = {});
  void Init(actors::Handlers& on, actors::ActorContext& ctx) override;

 private:
  struct Held {
    int64_t created_ms = 0;
    market::MessageId id{};
    int64_t expires_ms = 0;
    size_t bytes = 0;
    market::Offer offer;  // as indexed (keyed by signer, this node's reputation), for ExplainOrder and SearchOffers
  };
  void Take(const gossip::Deliver& delivery, int64_t now_ms);
  void Forget(const std::string& provider);
  Result<market::OfferSearchResult> Search(const SearchOffers& request) const;
  void Expire(int64_t now_ms);
  Result<std::vector<market::Candidate>> Find(const FindOffers& query);
  Result<OrderExplanation> Explain(const ExplainOrder& query);

  const ledger::LedgerStore& ledger_;
  const std::shared_ptr<OfferBookCounters> counters_;
  const OfferBookOptions options_;
  market::OfferBook book_;
  std::unordered_map<std::string, Held> held_;          // by provider (signer hex)
  std::set<std::pair<int64_t, std::string>> by_expiry_;  // (expires_ms, provider)
  size_t bytes_ = 0;
};

// Hands an Offer delivery to the book from another thread (gossip's on_deliver) without ever
// blocking: a full queue (or a stopped book) counts it as dropped. Other types are ignored.
void HandToOfferBook(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& book,
                     OfferBookCounters& counters);

}  // namespace gpumart::node
