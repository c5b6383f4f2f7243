// TenantSession: the tenant's side of one deployment (`gpumart submit`), as a state machine fed
// (input, now_ms) that returns what to do. No I/O, no clock of its own, one owner. The driver
// (node/cmd_submit.cpp over the client port, tests in memory) publishes what it is told to, hands
// over every envelope the node pushes, and calls Tick at NextDeadline().
//
// Per order (one placement group):
//   1. Start publishes the signed Order.
//   2. Bids are verified here (signature, freshness) and checked and ranked by a BidSelection
//      (bidding/bid_selection.h). The bid window closes at `bid_window_ms`, or early when waiting
//      cannot improve the result (see "Closing the window early" below).
//   3. The best bid is accepted (a signed Accept is published); the session waits
//      `lease_timeout_ms` for the provider's Lease. A Lease is taken only when market::OpenLease
//      accepts it (the provider's, the tenant's and the bid's signatures, the binding rules) and it
//      embeds exactly this session's Accept of that bid (so its terms are the bid's).
//   3a. A window that closes with no bid to accept (none came, or all were dropped or expired)
//      does not fail the order at once while a provider may still bid: the session waits up to
//      `late_bid_wait_ms` more (never past the order's expiry) and accepts the first bid that
//      passes the checks as soon as it comes. A provider that had no free capacity when the
//      order came bids once its capacity is freed (docs/PRICING.md, "Orders waiting for
//      capacity"). "May still bid": there is no dry run, or it was cut, or it lists a provider
//      that has not answered, or it excluded a provider for capacity alone; otherwise (every
//      provider that could take the order answered, the others cannot take it at all) the order
//      fails when the window closes.
//   4. If the provider refuses the Accept (a provider-signed Close naming the Accept,
//      docs/PROTOCOL.md "Refusing an Accept") or does not confirm in time, the next best bid is
//      accepted. An Accept given up on stays watched for `late_lease_watch_ms`: a Lease for it that
//      turns up after the order has its lease is closed at once (a signed Close), so the tenant
//      never pays twice; if it turns up before any other Lease, it is taken (and the Accept
//      outstanding then is the one given up on).
//
// Closing the window early. The dry run (the node's `match` query, run before Start) lists the
// providers whose live offers could take the order, each with its predicted bid (ranks, price,
// reputation as the node computed them). Assuming those offers do not improve within the window
// and no provider the dry run did not list bids (a provider whose offer the node has not seen),
// waiting cannot improve the result when:
//   - every listed provider has answered (sent a bid for the order, kept or dropped), the list
//     being complete (not cut to the best few); or
//   - the best bid in hand B is unbeatable: no listed provider that has not answered could rank
//     before B (market::RanksBefore) and, when the list was cut, B ranks before the last listed
//     one, since every unlisted provider ranks after it. "Could rank before" is decided on the
//     key before the tie-breaks alone (the denom's place in the order's list, then the policy's
//     ranks and price): where those tie, RanksBefore falls to reputation and provider id, and the reputation a node computes for a bid may differ from the one it
//     listed, so a tie there is counted as a possible win for the later bid (the session waits).
// An empty complete dry run (nobody could take the order) closes the window at once. Without a
// dry run the window closes only at its deadline.
//
// Reputation comes from the node (the dry run's number for the bidder's key), never from the
// bidder; a bidder the dry run did not list ranks with reputation 0.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/bid_selection.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "market/match.h"
#include "market/types.h"

namespace gpumart::bidding {

struct TenantSessionOptions {
  market::Policy policy = market::Policy::kPreference;
  int64_t bid_window_ms = 3'000;      // the longest the session collects bids for an order
  int64_t lease_timeout_ms = 2'000;   // how long an accepted provider has to publish its Lease
  // How long an Accept given up on is watched for a late Lease: a provider that got it in time
  // leases within a ledger write, so a short watch catches the usual case without keeping the
  // command waiting; an Accept still unanswered then is reported (unresolved_accepts).
  int64_t late_lease_watch_ms = 2'000;
  int64_t message_ttl_ms = 60'000;    // envelope lifetime of the Accepts and Closes it signs
  // How much longer than the bid window an order waits for its first bid (step 3a above).
  int64_t late_bid_wait_ms = 10'000;
};

// How many providers one exclusion reason (with its detail) kept from an order, per the dry run.
struct ExcludedCount {
  market::Exclusion exclusion;
  uint64_t providers = 0;
};

// The node's dry run for one order.
struct DryRun {
  // Providers whose offers could take the order, best first under the session's policy, as
  // market::Candidate with `provider` = the provider's signing key in lower-case hex (how a live
  // node files offers, market::OfferOfSigner).
  std::vector<market::Candidate> candidates;
  bool complete = true;     // false when the node listed only the best few of those that fit
  uint64_t providers = 0;   // live offers the node's book holds
  std::vector<ExcludedCount> excluded;  // why the others cannot take it
};

struct TenantOrder {
  market::Signed<market::Order> order;  // signed by the session's identity
  std::optional<DryRun> dry_run;        // nullopt: the node gave none (no early close)
};

// Why an order's bid window closed.
enum class WindowClose : uint8_t {
  kOpen = 0,        // not closed yet
  kDeadline,        // bid_window_ms passed
  kAllAnswered,     // every provider of the dry run answered
  kUnbeatable,      // the best bid in hand cannot be beaten by any bid still to come
};
std::string_view ToString(WindowClose close);

// Something that happened, for people (the table) and --json. `order` indexes the session's
// orders; `provider` is the key in hex when one is concerned.
struct TenantEvent {
  enum class Kind : uint8_t {
    kOrderPublished,
    kBidKept,          // a bid passed the checks (detail: price, ranks)
    kBidDropped,       // a verified bid broke a rule (detail: the BidProblem and why)
    kWindowClosed,     // detail: ToString(WindowClose)
    kWaitingForBid,    // the window closed with no bid to accept: waiting for a late one (detail: how long)
    kAccepted,         // an Accept was published for the provider's bid
    kRefused,          // the provider refused the Accept (detail: its note)
    kLeaseTimeout,     // the provider did not publish its Lease in time
    kLeaseRejected,    // a Lease for the order failed verification or is not of this session's Accept
    kLeased,           // the order has its lease
    kLateLeaseClosed,  // a Lease of an Accept given up on came after another; a Close was published
    kLeaseClosed,      // the provider closed the order's lease during the session (detail: note)
    kFailed,           // the order will get no lease (detail: why)
    kIgnored,          // an envelope that concerns no order of this session, or did not verify
  };
  Kind kind;
  size_t order = 0;
  std::string provider;
  std::string detail;
};
std::string_view ToString(TenantEvent::Kind kind);

// An envelope the driver must publish through the node (Orders, Accepts, Closes), its wire bytes.
struct Publish {
  market::MessageType type;
  market::Bytes envelope;
};

struct TenantStep {
  std::vector<Publish> publish;   // in this order
  std::vector<TenantEvent> events;
};

// What became of one order.
struct OrderOutcome {
  std::string group;
  market::MessageId order_id{};
  WindowClose window = WindowClose::kOpen;
  int64_t window_closed_ms = 0;
  // Every kept bid, best first, as ranked when the window closed (bids arriving later are added
  // at their rank).
  std::vector<SelectedBid> bids;
  std::array<uint64_t, kBidProblemCount> dropped{};  // bids dropped, by BidProblem
  std::optional<market::Signed<market::Lease>> lease;  // verified, of this session's Accept
  std::string failure;  // why there is no lease (empty while pending or leased)
  size_t accepts = 0;   // Accepts published for the order
  bool settled() const { return lease.has_value() || !failure.empty(); }
};

class TenantSession {
 public:
  // `orders` must be signed by `tenant` (a programmer error otherwise).
  TenantSession(market::Identity tenant, std::vector<TenantOrder> orders, TenantSessionOptions options);
  ~TenantSession();
  TenantSession(const TenantSession&) = delete;
  TenantSession& operator=(const TenantSession&) = delete;

  // Publishes every order; the windows open now. Call once, first.
  TenantStep Start(int64_t now_ms);
  // An envelope the node pushed (Bid, Lease or Close; anything else is ignored): verified here.
  TenantStep OnEnvelope(std::span<const uint8_t> envelope, int64_t now_ms);
  // Closes windows and gives up on Accepts whose time passed.
  TenantStep Tick(int64_t now_ms);
  // When Tick has something to do next; nullopt when nothing is pending.
  std::optional<int64_t> NextDeadline() const;

  // Every order settled (leased or failed) and no Accept given up on is still watched.
  bool done() const;
  // True when done and every order has its lease.
  bool succeeded() const;
  const std::vector<OrderOutcome>& outcomes() const;
  // Accepts given up on that were neither refused nor leased while watched: their providers
  // may still lease them (for the driver to warn about).
  size_t unresolved_accepts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `gpumart submit --keep-running` (docs/SUBMIT.md): a lease that ends for one of these reasons
// (preempted, provider-failure) is submitted again, at most `max_restarts` times per group, the
// n-th time after backoff_ms x 2^(n-1), at most max_backoff_ms. Pure: the CLI owns the clock.
struct KeepRunningPolicy {
  uint32_t max_restarts = 5;
  int64_t backoff_ms = 1'000;
  int64_t max_backoff_ms = 60'000;
};
bool ResubmitsAfter(market::CloseReason reason);
// The wait before restart `restart` (1 for the first); 0 for restart 0.
int64_t RestartDelayMs(const KeepRunningPolicy& policy, uint32_t restart);

}  // namespace gpumart::bidding
