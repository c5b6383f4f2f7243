#include "node/offer_book_actor.h"

#include <algorithm>
#include <tuple>
#include <spdlog/spdlog.h>

#include "market/codec.h"

namespace gpumart::node {

namespace {

// The delivered bytes as the Signed<Offer> the gossip core verified (no signature check again).
Result<market::Signed<market::Offer>> DecodeDeliveredOffer(const gossip::Deliver& delivery) {
  auto envelope = market::DecodeEnvelope(delivery.envelope);
  if (!envelope.ok()) return envelope.status();
  if (envelope->type != market::MessageType::kOffer) {
    return Status::InvalidArgument("a " + std::string(market::ToString(envelope->type)) + " is not an offer");
  }
  auto body = market::DecodeOffer(envelope->body);
  if (!body.ok()) return body.status();
  market::Signed<market::Offer> offer;
  offer.id = market::ComputeId(*envelope);
  offer.envelope = std::move(envelope).value();
  offer.body = std::move(body).value();
  return offer;
}

void Bump(std::atomic<uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

OfferBookActor::OfferBookActor(const ledger::LedgerStore& ledger, std::shared_ptr<OfferBookCounters> counters,
                               OfferBookOptions options)
    : ledger_(ledger), counters_(std::move(counters)), options_(options) {}

void OfferBookActor::Init(actors::Handlers& on, actors::ActorContext& ctx) {
  on.On<DeliveredOffer>([this](DeliveredOffer& offer, actors::ActorContext& self) {
    Take(offer.delivery, self.clock().NowMs());
  });
  on.OnRequest<FindOffers>([this](FindOffers& query) { return Find(query); });
  on.OnRequest<ExplainOrder>([this](ExplainOrder& query) { return Explain(query); });
  on.OnRequest<GetOfferBookStatus>([this](GetOfferBookStatus&) {
    return OfferBookStatus{held_.size(), bytes_, book_.stats()};
  });
  on.OnRequest<SearchOffers>([this](SearchOffers& request) { return Search(request); });
  ctx.StartPeriodicTimer(options_.expiry_check_ms, [this](actors::ActorContext& self) { Expire(self.clock().NowMs()); });
}

void OfferBookActor::Take(const gossip::Deliver& delivery, int64_t now_ms) {
  Result<market::Signed<market::Offer>> offer = DecodeDeliveredOffer(delivery);
  if (!offer.ok()) {
    Bump(counters_->malformed);
    spdlog::debug("offer book: not an offer: {}", offer.status().message());
    return;
  }
  const market::Envelope& envelope = offer->envelope;
  if (envelope.expires_ms <= now_ms) {
    Bump(counters_->expired);
    return;
  }
  const std::string provider = market::ToHex(envelope.signer);
  const auto found = held_.find(provider);
  if (found != held_.end()) {
    const Held& held = found->second;
    if (std::tie(envelope.created_ms, offer->id) <= std::tie(held.created_ms, held.id)) {
      Bump(counters_->stale);
      return;
    }
  }
  const size_t bytes = delivery.envelope.size();
  const size_t replaced_bytes = found == held_.end() ? 0 : found->second.bytes;
  const bool room = found != held_.end() || held_.size() < options_.max_offers;
  if (!room || bytes_ - replaced_bytes + bytes > options_.max_bytes) {
    Bump(counters_->over_limit);
    spdlog::debug("offer book: full ({} offers, {} bytes); offer of {} refused", held_.size(), bytes_, provider);
    return;
  }
  Result<uint32_t> reputation = ledger_.Reputation(envelope.signer, {});
  Result<std::vector<std::string>> auditors =
      reputation.ok() ? ledger_.PassingAuditors(envelope.signer) : Result<std::vector<std::string>>(reputation.status());
  if (!auditors.ok()) {
    Bump(counters_->ledger_errors);
    spdlog::warn("offer book: offer of {} refused: cannot read its reputation: {}", provider,
                 auditors.status().message());
    return;
  }
  market::Offer indexed = market::OfferOfSigner(*offer, *reputation, std::move(auditors).value());
  const Status upserted = book_.Upsert(indexed);
  if (!upserted.ok()) {
    // The provider's own newer word is unusable; the offer it replaces no longer says what the
    // provider has, so it goes too.
    Bump(counters_->over_limit);
    spdlog::debug("offer book: offer of {} refused: {}", provider, upserted.message());
    if (found != held_.end()) Forget(provider);
    return;
  }
  if (found != held_.end()) {
    by_expiry_.erase({found->second.expires_ms, provider});
    bytes_ -= found->second.bytes;
    Bump(counters_->replaced);
  } else {
    Bump(counters_->added);
  }
  held_[provider] = Held{envelope.created_ms, offer->id, envelope.expires_ms, bytes, std::move(indexed)};
  by_expiry_.insert({envelope.expires_ms, provider});
  bytes_ += bytes;
  counters_->held.store(held_.size(), std::memory_order_relaxed);
}

void OfferBookActor::Forget(const std::string& provider) {
  const auto found = held_.find(provider);
  if (found == held_.end()) return;
  by_expiry_.erase({found->second.expires_ms, provider});
  bytes_ -= found->second.bytes;
  book_.Remove(provider);
  held_.erase(found);
  counters_->held.store(held_.size(), std::memory_order_relaxed);
}

void OfferBookActor::Expire(int64_t now_ms) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now_ms) {
    const std::string provider = by_expiry_.begin()->second;
    Forget(provider);
    Bump(counters_->expired);
  }
}

Result<market::OfferSearchResult> OfferBookActor::Search(const SearchOffers& request) const {
  Result<market::OfferQuery> query = market::ParseOfferQuery(request.query);
  if (!query.ok()) return query.status();
  Result<std::vector<market::OfferOrderKey>> order = market::ParseOfferOrder(request.order_by);
  if (!order.ok()) return order.status();
  market::OfferSearch search(*query, *order, request.limit);
  for (const auto& [provider, held] : held_) search.Add(held.offer);
  return search.Finish();
}

Result<std::vector<market::Candidate>> OfferBookActor::Find(const FindOffers& query) {
  GPUMART_RETURN_IF_ERROR(market::ValidateOrder(query.order));
  return book_.TopK(query.order, query.policy, std::min(query.k, kMaxOfferQueryResults));
}

Result<OrderExplanation> OfferBookActor::Explain(const ExplainOrder& query) {
  GPUMART_RETURN_IF_ERROR(market::ValidateOrder(query.order));
  OrderExplanation out;
  out.candidates = book_.TopK(query.order, query.policy, std::min(query.k, kMaxOfferQueryResults));
  out.providers = held_.size();
  for (const auto& [provider, held] : held_) {
    if (out.explained == kMaxExplainedOffers) break;
    ++out.explained;
    const market::FitOutcome outcome = market::FitProvider(query.order, held.offer);
    if (outcome.candidate) continue;
    ++out.excluded[{outcome.exclusion.reason, outcome.exclusion.detail}];
    out.excluded_providers.push_back({provider, held.offer.name, outcome.exclusion});
  }
  std::sort(out.excluded_providers.begin(), out.excluded_providers.end(),
            [](const auto& a, const auto& b) { return a.provider < b.provider; });
  return out;
}

void HandToOfferBook(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& book,
                     OfferBookCounters& counters) {
  if (delivery.type != market::MessageType::kOffer) return;
  if (outbox.SendOrDrop(book, DeliveredOffer{delivery}) != actors::SendResult::kOk) {
    counters.dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace gpumart::node
