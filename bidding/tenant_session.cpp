#include "bidding/tenant_session.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "market/checked_math.h"

namespace gpumart::bidding {

std::string_view ToString(WindowClose close) {
  switch (close) {
    case WindowClose::kOpen: return "open";
    case WindowClose::kDeadline: return "deadline";
    case WindowClose::kAllAnswered: return "all-answered";
    case WindowClose::kUnbeatable: return "unbeatable";
  }
  return "unknown";
}

std::string_view ToString(TenantEvent::Kind kind) {
  using Kind = TenantEvent::Kind;
  switch (kind) {
    case Kind::kOrderPublished: return "order-published";
    case Kind::kBidKept: return "bid-kept";
    case Kind::kBidDropped: return "bid-dropped";
    case Kind::kWindowClosed: return "window-closed";
    case Kind::kWaitingForBid: return "waiting-for-bid";
    case Kind::kAccepted: return "accepted";
    case Kind::kRefused: return "refused";
    case Kind::kLeaseTimeout: return "lease-timeout";
    case Kind::kLeaseRejected: return "lease-rejected";
    case Kind::kLeased: return "leased";
    case Kind::kLateLeaseClosed: return "late-lease-closed";
    case Kind::kLeaseClosed: return "lease-closed";
    case Kind::kFailed: return "failed";
    case Kind::kIgnored: return "ignored";
  }
  return "unknown";
}

namespace {

using Kind = TenantEvent::Kind;

// True when a bid on `predicted`'s terms could rank before `best` (market::RanksBefore): the
// predicted bid is given every tie-break (the highest reputation, the smallest id), so only the
// key before them decides (denom rank, then the policy's ranks and price), and a tie there counts
// as a possible win.
bool CouldBeat(const market::Candidate& predicted, const market::Candidate& best, market::Policy policy) {
  market::Candidate optimistic = predicted;
  optimistic.reputation_ppm = std::numeric_limits<uint32_t>::max();
  optimistic.provider.clear();
  market::Candidate pessimistic = best;
  pessimistic.reputation_ppm = 0;
  return market::RanksBefore(optimistic, pessimistic, policy);
}

}  // namespace

struct TenantSession::Impl {
  // One Accept this session signed, and what became of it.
  struct AcceptRecord {
    enum class State : uint8_t {
      kPending,    // waiting for the Lease until deadline_ms
      kWatched,    // given up on (or superseded); a Lease for it is closed, until deadline_ms
      kResolved,   // leased or refused
      kUnresolved, // the watch ended without an answer
    };
    market::MessageId accept_id{};
    market::MessageId bid_id{};
    market::PublicKey provider{};
    State state = State::kPending;
    int64_t deadline_ms = 0;
  };

  struct OrderState {
    OrderState(TenantOrder input, market::Policy policy, OrderOutcome& order_outcome)
        : order(std::move(input.order)),
          dry_run(std::move(input.dry_run)),
          selection(order, policy),
          outcome(order_outcome) {}
    market::Signed<market::Order> order;
    std::optional<DryRun> dry_run;
    BidSelection selection;
    OrderOutcome& outcome;  // in Impl::outcomes, sized once
    int64_t window_deadline_ms = 0;
    // Set while the window closed with no bid to accept and the order waits for a late first one
    // (until late_bid_deadline_ms).
    bool waiting_for_bid = false;
    int64_t late_bid_deadline_ms = 0;
    std::set<std::string> answered;           // bidders' keys in hex
    std::map<std::string, uint32_t> reputation;  // the dry run's, by provider key in hex
    std::set<market::MessageId> tried;        // bids accepted once (never accepted twice)
    std::vector<AcceptRecord> accepts;
  };

  Impl(market::Identity tenant_identity, TenantSessionOptions session_options)
      : tenant(std::move(tenant_identity)), options(session_options) {}

  market::Identity tenant;
  TenantSessionOptions options;
  std::vector<OrderState> orders;
  std::vector<OrderOutcome> outcomes;  // one per order, never resized after construction
  std::map<market::MessageId, size_t> order_index;                  // order id -> orders index
  std::map<market::MessageId, std::pair<size_t, size_t>> accept_index;  // accept id -> (order, accept)

  void Event(TenantStep& step, Kind kind, size_t order, std::string provider, std::string detail) {
    step.events.push_back(TenantEvent{kind, order, std::move(provider), std::move(detail)});
  }

  // The kept bids, best first, as ranked when the window closed (later bids at their rank).
  void SnapshotBids(OrderState& state) {
    state.outcome.bids.clear();
    for (const SelectedBid* selected : state.selection.Ranking(state.outcome.window_closed_ms)) {
      state.outcome.bids.push_back(*selected);
    }
    for (size_t p = 0; p < kBidProblemCount; ++p) {
      state.outcome.dropped[p] = state.selection.dropped(static_cast<BidProblem>(p));
    }
  }

  void HandleBid(TenantStep& step, size_t index, const market::Signed<market::Bid>& bid, int64_t now_ms) {
    OrderState& state = orders[index];
    const std::string provider = market::ToHex(bid.envelope.signer);
    auto known = state.reputation.find(provider);
    const uint32_t reputation = known == state.reputation.end() ? 0 : known->second;
    const BidCheck check = state.selection.Add(bid, now_ms, reputation);
    if (check.problem == BidProblem::kDuplicateBidder) {
      Event(step, Kind::kIgnored, index, provider, "a second bid from the same provider");
      return;
    }
    state.answered.insert(provider);
    if (!check.ok()) {
      Event(step, Kind::kBidDropped, index, provider,
            std::string(ToString(check.problem)) + ": " + check.detail);
    } else {
      Event(step, Kind::kBidKept, index, provider,
            std::to_string(bid.body.price_per_hour) + " " + bid.body.denom + "/hour");
    }
    if (state.outcome.window == WindowClose::kOpen) {
      MaybeCloseEarly(step, index, now_ms);
      return;
    }
    SnapshotBids(state);
    // A bid after the window, while nothing is pending (the order waits for a first bid, failed,
    // or is left with only Accepts given up on): better late than no lease. A dropped one may
    // have been the last a provider could send: the wait ends then (AcceptNext decides).
    const bool pending = std::any_of(state.accepts.begin(), state.accepts.end(), [](const AcceptRecord& record) {
      return record.state == AcceptRecord::State::kPending;
    });
    if ((check.ok() || state.waiting_for_bid) && !state.outcome.lease && !pending) AcceptNext(step, index, now_ms);
  }

  void MaybeCloseEarly(TenantStep& step, size_t index, int64_t now_ms) {
    OrderState& state = orders[index];
    if (!state.dry_run) return;
    const DryRun& dry_run = *state.dry_run;
    auto unanswered = [&](const market::Candidate& candidate) { return !state.answered.contains(candidate.provider); };
    if (dry_run.complete && std::none_of(dry_run.candidates.begin(), dry_run.candidates.end(), unanswered)) {
      CloseWindow(step, index, WindowClose::kAllAnswered, now_ms);
      return;
    }
    const std::vector<const SelectedBid*> ranking = state.selection.Ranking(now_ms);
    if (ranking.empty()) return;
    const market::Candidate& best = ranking.front()->candidate;
    for (const market::Candidate& candidate : dry_run.candidates) {
      if (unanswered(candidate) && CouldBeat(candidate, best, options.policy)) return;
    }
    // Providers left off a cut list rank after its last entry; `best` must beat that one outright.
    if (!dry_run.complete &&
        (dry_run.candidates.empty() || CouldBeat(dry_run.candidates.back(), best, options.policy))) {
      return;
    }
    CloseWindow(step, index, WindowClose::kUnbeatable, now_ms);
  }

  void CloseWindow(TenantStep& step, size_t index, WindowClose why, int64_t now_ms) {
    OrderState& state = orders[index];
    state.outcome.window = why;
    state.outcome.window_closed_ms = now_ms;
    state.late_bid_deadline_ms =
        std::min(market::SaturatingAddMs(now_ms, options.late_bid_wait_ms), state.order.envelope.expires_ms);
    SnapshotBids(state);
    Event(step, Kind::kWindowClosed, index, {}, std::string(ToString(why)));
    AcceptNext(step, index, now_ms);
  }

  // Accepts the best bid not accepted before, or fails the order when none is left.
  void AcceptNext(TenantStep& step, size_t index, int64_t now_ms) {
    OrderState& state = orders[index];
    if (state.outcome.lease) return;
    for (const SelectedBid* selected : state.selection.Ranking(now_ms)) {
      const market::Signed<market::Bid>& bid = selected->bid;
      if (state.tried.contains(bid.id)) continue;
      state.tried.insert(bid.id);
      const market::Accept body{state.order.id, bid.id, bid.envelope.signer};
      const auto accept = market::MakeSigned(tenant, body, now_ms, options.message_ttl_ms, market::RandomNonce());
      step.publish.push_back(Publish{market::MessageType::kAccept, market::EncodeEnvelope(accept.envelope)});
      accept_index[accept.id] = {index, state.accepts.size()};
      state.accepts.push_back(AcceptRecord{accept.id, bid.id, bid.envelope.signer, AcceptRecord::State::kPending,
                                           now_ms + options.lease_timeout_ms});
      ++state.outcome.accepts;
      state.outcome.failure.clear();
      state.waiting_for_bid = false;
      Event(step, Kind::kAccepted, index, market::ToHex(bid.envelope.signer),
            std::to_string(bid.body.price_per_hour) + " " + bid.body.denom + "/hour");
      return;
    }
    if (state.outcome.accepts == 0 && now_ms < state.late_bid_deadline_ms && MayStillBid(state)) {
      if (!state.waiting_for_bid) {
        state.waiting_for_bid = true;
        Event(step, Kind::kWaitingForBid, index, {},
              "no bid to accept yet: waiting up to " + std::to_string(state.late_bid_deadline_ms - now_ms) +
                  " ms more for one");
      }
      return;
    }
    state.waiting_for_bid = false;
    Fail(step, index, NoLeaseReason(state, now_ms));
  }

  // True when a provider may still send a first bid for the order (the header, step 3a).
  bool MayStillBid(const OrderState& state) const {
    if (!state.dry_run || !state.dry_run->complete) return true;
    const DryRun& dry_run = *state.dry_run;
    const bool unanswered = std::any_of(dry_run.candidates.begin(), dry_run.candidates.end(),
                                        [&](const market::Candidate& c) { return !state.answered.contains(c.provider); });
    const bool waiting_for_capacity = std::any_of(dry_run.excluded.begin(), dry_run.excluded.end(), [](const ExcludedCount& e) {
      return e.exclusion.reason == market::ExclusionReason::kCapacity;
    });
    return unanswered || waiting_for_capacity;
  }

  void Fail(TenantStep& step, size_t index, std::string why) {
    orders[index].outcome.failure = why;
    Event(step, Kind::kFailed, index, {}, std::move(why));
  }

  std::string NoLeaseReason(const OrderState& state, int64_t now_ms) const {
    const BidSelection& selection = state.selection;
    if (state.outcome.accepts > 0) {
      return "no provider confirmed: " + std::to_string(state.outcome.accepts) +
             (state.outcome.accepts == 1 ? " bid was" : " bids were") +
             " accepted and refused or not confirmed within " + std::to_string(options.lease_timeout_ms) +
             " ms, and no other bid is left";
    }
    if (selection.kept() > 0) {
      return std::to_string(selection.kept()) + " bids, all expired before the window closed at " +
             std::to_string(now_ms);
    }
    if (selection.dropped_total() > 0) {
      std::string why = std::to_string(selection.dropped_total()) + " bids, all dropped:";
      for (size_t p = 0; p < kBidProblemCount; ++p) {
        const uint64_t count = selection.dropped(static_cast<BidProblem>(p));
        if (count > 0) why += " " + std::string(ToString(static_cast<BidProblem>(p))) + " (" + std::to_string(count) + ")";
      }
      return why;
    }
    // Counted from the publication, which opened the window.
    const int64_t published_ms = state.window_deadline_ms - options.bid_window_ms;
    const std::string waited = "no bids within " + std::to_string(now_ms - published_ms) + " ms";
    if (!state.dry_run) return waited + " (the node gave no dry run)";
    const DryRun& dry_run = *state.dry_run;
    if (!dry_run.candidates.empty()) {
      return waited + ", though the node's offer book lists " + std::to_string(dry_run.candidates.size()) +
             (dry_run.complete ? "" : " or more") + " providers that could take it";
    }
    if (dry_run.excluded.empty()) {
      return "no provider can take this group: the node knows " + std::to_string(dry_run.providers) + " live offers";
    }
    // Merged by (reason, detail): a node may list one entry per provider.
    std::vector<ExcludedCount> ranked;
    for (const ExcludedCount& entry : dry_run.excluded) {
      auto same = std::find_if(ranked.begin(), ranked.end(), [&](const ExcludedCount& merged) {
        return merged.exclusion.reason == entry.exclusion.reason && merged.exclusion.detail == entry.exclusion.detail;
      });
      if (same == ranked.end()) {
        ranked.push_back(entry);
      } else {
        same->providers += entry.providers;
      }
    }
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const ExcludedCount& a, const ExcludedCount& b) { return a.providers > b.providers; });
    std::string why = "no provider can take this group; most were excluded by: " +
                      market::DescribeExclusion(ranked.front().exclusion, state.order.body) + " (" +
                      std::to_string(ranked.front().providers) + " of " + std::to_string(dry_run.providers) +
                      " providers)";
    for (size_t i = 1; i < ranked.size(); ++i) {
      why += "; then: " + market::DescribeExclusion(ranked[i].exclusion, state.order.body) + " (" +
             std::to_string(ranked[i].providers) + ")";
    }
    return why;
  }

  // Stops waiting on `record`: it stays watched for a late Lease until the watch ends.
  void Watch(AcceptRecord& record, int64_t now_ms) {
    record.state = AcceptRecord::State::kWatched;
    record.deadline_ms = now_ms + options.late_lease_watch_ms;
  }

  void HandleLease(TenantStep& step, const market::Signed<market::Lease>& lease, int64_t now_ms) {
    auto order_it = order_index.find(lease.body.order_id);
    if (order_it == order_index.end() || lease.body.tenant != tenant.public_key()) {
      Event(step, Kind::kIgnored, 0, market::ToHex(lease.body.provider), "a lease of another order");
      return;
    }
    const size_t index = order_it->second;
    OrderState& state = orders[index];
    const std::string provider = market::ToHex(lease.body.provider);
    // The binding rules (OpenLease) tie the embedded Accept to the embedded Bid; this session's
    // own Accept (by id) names the bid it took, so the lease's terms are that bid's.
    Result<market::Envelope> accept = market::DecodeEnvelope(lease.body.accept_envelope);
    auto accept_it = accept.ok() ? accept_index.find(market::ComputeId(*accept)) : accept_index.end();
    if (accept_it == accept_index.end() || accept_it->second.first != index) {
      Event(step, Kind::kLeaseRejected, index, provider, "the lease embeds no Accept this session signed");
      return;
    }
    AcceptRecord& record = state.accepts[accept_it->second.second];
    if (record.bid_id != lease.body.bid_id || record.provider != lease.body.provider) {
      Event(step, Kind::kLeaseRejected, index, provider, "the lease's bid is not the accepted one");
      return;
    }
    if (state.outcome.lease) {
      if (state.outcome.lease->id == lease.id) return;  // the same lease again
      const market::Close body{lease.id, market::CloseReason::kTenantClosed, now_ms,
                               "the order already has lease " + market::ToHex(state.outcome.lease->id)};
      const auto close = market::MakeSigned(tenant, body, now_ms, options.message_ttl_ms, market::RandomNonce());
      step.publish.push_back(Publish{market::MessageType::kClose, market::EncodeEnvelope(close.envelope)});
      record.state = AcceptRecord::State::kResolved;
      Event(step, Kind::kLateLeaseClosed, index, provider, market::ToHex(lease.id));
      return;
    }
    state.outcome.lease = lease;
    state.outcome.failure.clear();
    record.state = AcceptRecord::State::kResolved;
    for (AcceptRecord& other : state.accepts) {
      if (other.state == AcceptRecord::State::kPending) Watch(other, now_ms);
    }
    Event(step, Kind::kLeased, index, provider, market::ToHex(lease.id));
  }

  void HandleClose(TenantStep& step, const market::Signed<market::Close>& close, int64_t now_ms) {
    const std::string signer = market::ToHex(close.envelope.signer);
    if (auto it = accept_index.find(close.body.lease_id); it != accept_index.end()) {
      const auto [index, a] = it->second;
      AcceptRecord& record = orders[index].accepts[a];
      if (close.envelope.signer != record.provider) {
        Event(step, Kind::kIgnored, index, signer, "a refusal not signed by the accepted provider");
        return;
      }
      if (record.state == AcceptRecord::State::kResolved) return;
      const bool was_pending = record.state == AcceptRecord::State::kPending;
      record.state = AcceptRecord::State::kResolved;
      Event(step, Kind::kRefused, index, signer, close.body.note);
      if (was_pending) AcceptNext(step, index, now_ms);
      return;
    }
    for (size_t index = 0; index < orders.size(); ++index) {
      OrderOutcome& outcome = orders[index].outcome;
      if (!outcome.lease || outcome.lease->id != close.body.lease_id) continue;
      if (close.envelope.signer != outcome.lease->body.provider) break;
      if (outcome.failure.empty()) {
        outcome.failure = "provider " + signer + " closed lease " + market::ToHex(close.body.lease_id) + " (" +
                          std::string(market::ToString(close.body.reason)) + "): " + close.body.note;
        Event(step, Kind::kLeaseClosed, index, signer, close.body.note);
      }
      return;
    }
    Event(step, Kind::kIgnored, 0, signer, "a close that concerns no accept or lease of this session");
  }
};

TenantSession::TenantSession(market::Identity tenant, std::vector<TenantOrder> orders, TenantSessionOptions options)
    : impl_(std::make_unique<Impl>(std::move(tenant), options)) {
  impl_->orders.reserve(orders.size());
  impl_->outcomes.resize(orders.size());
  for (TenantOrder& input : orders) {
    assert(input.order.envelope.signer == impl_->tenant.public_key());
    const size_t index = impl_->orders.size();
    impl_->order_index[input.order.id] = index;
    Impl::OrderState& state = impl_->orders.emplace_back(std::move(input), options.policy, impl_->outcomes[index]);
    state.outcome.group = state.order.body.group;
    state.outcome.order_id = state.order.id;
    if (state.dry_run) {
      for (market::Candidate& candidate : state.dry_run->candidates) {
        state.reputation[candidate.provider] = candidate.reputation_ppm;
        // Ranking compares the denom's place in the order's list first (market::RanksBefore); a
        // candidate in a denom the order does not list could not bid validly: it ranks last.
        candidate.denom_rank = static_cast<uint32_t>(
            state.order.body.DenomRank(candidate.denom).value_or(std::numeric_limits<uint32_t>::max()));
      }
    }
  }
}

TenantSession::~TenantSession() = default;

TenantStep TenantSession::Start(int64_t now_ms) {
  TenantStep step;
  for (size_t index = 0; index < impl_->orders.size(); ++index) {
    Impl::OrderState& state = impl_->orders[index];
    state.window_deadline_ms = now_ms + impl_->options.bid_window_ms;
    step.publish.push_back(Publish{market::MessageType::kOrder, market::EncodeEnvelope(state.order.envelope)});
    impl_->Event(step, Kind::kOrderPublished, index, {}, market::ToHex(state.order.id));
  }
  // A dry run that lists nobody is answered already.
  for (size_t index = 0; index < impl_->orders.size(); ++index) impl_->MaybeCloseEarly(step, index, now_ms);
  return step;
}

TenantStep TenantSession::OnEnvelope(std::span<const uint8_t> envelope, int64_t now_ms) {
  TenantStep step;
  Result<market::Envelope> decoded =
      envelope.size() > market::limits::kMaxMessageBytes
          ? Result<market::Envelope>(Status::LimitExceeded("envelope over kMaxMessageBytes"))
          : market::DecodeEnvelope(envelope);
  if (!decoded.ok()) {
    impl_->Event(step, Kind::kIgnored, 0, {}, "undecodable envelope: " + decoded.status().ToString());
    return step;
  }
  switch (decoded->type) {
    case market::MessageType::kBid: {
      Result<market::Signed<market::Bid>> bid = market::OpenSigned<market::Bid>(envelope, now_ms);
      if (!bid.ok()) {
        impl_->Event(step, Kind::kIgnored, 0, market::ToHex(decoded->signer), "bid: " + bid.status().ToString());
        break;
      }
      auto it = impl_->order_index.find(bid->body.order_id);
      if (it == impl_->order_index.end()) {
        impl_->Event(step, Kind::kIgnored, 0, market::ToHex(bid->envelope.signer), "a bid for another order");
        break;
      }
      impl_->HandleBid(step, it->second, *bid, now_ms);
      break;
    }
    case market::MessageType::kLease: {
      // A lease stays valid after its messages expire (docs/PROTOCOL.md): no freshness check.
      Result<market::Signed<market::Lease>> lease = market::OpenLease(envelope);
      if (!lease.ok()) {
        impl_->Event(step, Kind::kLeaseRejected, 0, market::ToHex(decoded->signer),
                     "lease: " + lease.status().ToString());
        break;
      }
      impl_->HandleLease(step, *lease, now_ms);
      break;
    }
    case market::MessageType::kClose: {
      Result<market::Signed<market::Close>> close = market::OpenSigned<market::Close>(envelope, now_ms);
      if (!close.ok()) {
        impl_->Event(step, Kind::kIgnored, 0, market::ToHex(decoded->signer), "close: " + close.status().ToString());
        break;
      }
      impl_->HandleClose(step, *close, now_ms);
      break;
    }
    default:
      impl_->Event(step, Kind::kIgnored, 0, market::ToHex(decoded->signer),
                   "a " + std::string(market::ToString(decoded->type)) + " message");
      break;
  }
  return step;
}

TenantStep TenantSession::Tick(int64_t now_ms) {
  TenantStep step;
  using State = Impl::AcceptRecord::State;
  for (size_t index = 0; index < impl_->orders.size(); ++index) {
    Impl::OrderState& state = impl_->orders[index];
    if (state.outcome.window == WindowClose::kOpen && now_ms >= state.window_deadline_ms) {
      impl_->CloseWindow(step, index, WindowClose::kDeadline, now_ms);
    } else if (state.waiting_for_bid && now_ms >= state.late_bid_deadline_ms) {
      impl_->AcceptNext(step, index, now_ms);  // nothing to accept: fails it
    }
    // AcceptNext may append to accepts: index, never iterate by reference.
    for (size_t a = 0; a < state.accepts.size(); ++a) {
      Impl::AcceptRecord& record = state.accepts[a];
      if (now_ms < record.deadline_ms) continue;
      if (record.state == State::kPending) {
        impl_->Watch(record, now_ms);
        impl_->Event(step, Kind::kLeaseTimeout, index, market::ToHex(record.provider),
                     "no lease within " + std::to_string(impl_->options.lease_timeout_ms) + " ms");
        impl_->AcceptNext(step, index, now_ms);
      } else if (record.state == State::kWatched) {
        record.state = State::kUnresolved;
      }
    }
  }
  return step;
}

std::optional<int64_t> TenantSession::NextDeadline() const {
  std::optional<int64_t> next;
  auto consider = [&](int64_t at) { next = next ? std::min(*next, at) : at; };
  for (const Impl::OrderState& state : impl_->orders) {
    if (state.outcome.window == WindowClose::kOpen) consider(state.window_deadline_ms);
    if (state.waiting_for_bid) consider(state.late_bid_deadline_ms);
    for (const Impl::AcceptRecord& record : state.accepts) {
      if (record.state == Impl::AcceptRecord::State::kPending || record.state == Impl::AcceptRecord::State::kWatched) {
        consider(record.deadline_ms);
      }
    }
  }
  return next;
}

bool TenantSession::done() const {
  for (const Impl::OrderState& state : impl_->orders) {
    if (!state.outcome.settled()) return false;
    for (const Impl::AcceptRecord& record : state.accepts) {
      if (record.state == Impl::AcceptRecord::State::kPending || record.state == Impl::AcceptRecord::State::kWatched) {
        return false;
      }
    }
  }
  return true;
}

bool TenantSession::succeeded() const {
  if (!done()) return false;
  return std::all_of(impl_->orders.begin(), impl_->orders.end(), [](const Impl::OrderState& state) {
    return state.outcome.lease.has_value() && state.outcome.failure.empty();
  });
}

const std::vector<OrderOutcome>& TenantSession::outcomes() const { return impl_->outcomes; }

size_t TenantSession::unresolved_accepts() const {
  size_t unresolved = 0;
  for (const Impl::OrderState& state : impl_->orders) {
    for (const Impl::AcceptRecord& record : state.accepts) {
      unresolved += record.state == Impl::AcceptRecord::State::kUnresolved ? 1 : 0;
    }
  }
  return unresolved;
}

bool ResubmitsAfter(market::CloseReason reason) {
  // The tenant's own doing (tenant-closed, insufficient-funds), the term's end (expired) and a
  // provider that closed on purpose (provider-closed: say so, do not chase it) are final.
  return reason == market::CloseReason::kPreempted || reason == market::CloseReason::kProviderFailure;
}

int64_t RestartDelayMs(const KeepRunningPolicy& policy, uint32_t restart) {
  if (restart == 0) return 0;
  int64_t delay = policy.backoff_ms;
  for (uint32_t i = 1; i < restart && delay < policy.max_backoff_ms; ++i) delay *= 2;
  return std::min(delay, policy.max_backoff_ms);
}

}  // namespace gpumart::bidding
