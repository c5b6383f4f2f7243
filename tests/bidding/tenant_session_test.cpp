// TenantSession against real provider BidEngines: real signed Orders, Bids, Accepts, Leases and
// Closes on their wire bytes, a dry run computed by the matching engine from the engines' own
// offers, and a controlled clock.
#include "bidding/tenant_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>

#include "tests/bidding/engine_test_util.h"
#include "tests/test_seed.h"

namespace gpumart::bidding {
namespace {

using namespace testing;  // NOLINT: the engine test helpers
using Kind = TenantEvent::Kind;
using market::Bytes;

const market::GpuOption kWantH100{"nvidia", "h100", 80 * kGi, std::nullopt};
const market::GpuOption kWantA100{"nvidia", "a100", 40 * kGi, std::nullopt};

// One GPU, an H100 if possible, else an A100.
market::Order FallbackOrder() {
  market::Order order = GpuOrder(1);
  order.services[0].resources.gpu.options = {kWantH100, kWantA100};
  return order;
}

struct TestProvider {
  market::Identity identity;
  std::unique_ptr<BidEngine> engine;
  std::string key;  // hex, how a node files the provider
};

bool Has(const TenantStep& step, Kind kind) {
  return std::any_of(step.events.begin(), step.events.end(), [&](const TenantEvent& e) { return e.kind == kind; });
}

std::string Describe(const TenantStep& step) {
  std::string text;
  for (const TenantEvent& e : step.events) {
    text += std::string(ToString(e.kind)) + "(" + std::to_string(e.order) + ", " + e.provider.substr(0, 8) + ", " +
            e.detail + ") ";
  }
  return text;
}

// The envelopes of one type a step publishes.
std::vector<Bytes> Published(const TenantStep& step, market::MessageType type) {
  std::vector<Bytes> out;
  for (const Publish& p : step.publish) {
    if (p.type == type) out.push_back(p.envelope);
  }
  return out;
}

class TenantSessionTest : public ::testing::Test {
 protected:
  TenantSessionTest() : tenant_(market::Identity::Generate()) {}

  // A provider of `count` GPUs of `device`, priced `rate` per GPU-hour.
  TestProvider& AddProvider(const market::DeviceType& device, uint64_t rate, uint32_t count = 4,
                            const std::string& denom = "uakt") {
    market::Offer inventory = Inventory(0);
    inventory.nodes = {Node("n1", {Devices(device, count)})};
    PricingConfig pricing = TablePricing();
    pricing.tables[0].gpu = {{"*", rate}};
    pricing.tables[0].denom = denom;
    auto identity = market::Identity::Generate();
    auto engine = MakeEngine(identity, std::move(inventory), std::move(pricing));
    EXPECT_NE(engine, nullptr);
    providers_.push_back(TestProvider{identity, std::move(engine), market::ToHex(identity.public_key())});
    return providers_.back();
  }

  // What a node's `match` query answers: every provider's live offer through the matching
  // engine, filed under its key, ranked by `policy`, cut to `top` when given.
  DryRun DryRunFor(const market::Order& order, market::Policy policy, size_t top = SIZE_MAX,
                   uint32_t reputation_ppm = 500'000) {
    DryRun dry_run;
    for (TestProvider& provider : providers_) {
      market::Offer offer = provider.engine->FreeOffer();
      offer.provider = provider.key;
      offer.reputation_ppm = reputation_ppm;
      market::FitOutcome fit = market::FitProvider(order, offer);
      ++dry_run.providers;
      if (fit.candidate) {
        dry_run.candidates.push_back(*fit.candidate);
      } else {
        dry_run.excluded.push_back(ExcludedCount{fit.exclusion, 1});
      }
    }
    market::SortCandidates(dry_run.candidates, policy);
    if (dry_run.candidates.size() > top) {
      dry_run.candidates.resize(top);
      dry_run.complete = false;
    }
    return dry_run;
  }

  std::unique_ptr<TenantSession> Session(std::vector<market::Order> orders, std::vector<std::optional<DryRun>> dry_runs,
                                         market::Policy policy = market::Policy::kPreference) {
    std::vector<TenantOrder> inputs;
    for (size_t i = 0; i < orders.size(); ++i) {
      inputs.push_back(TenantOrder{SignOrder(tenant_, orders[i]), dry_runs[i]});
    }
    TenantSessionOptions options;
    options.policy = policy;
    options.bid_window_ms = kWindowMs;
    options.lease_timeout_ms = kLeaseTimeoutMs;
    options.late_lease_watch_ms = kWatchMs;
    options.late_bid_wait_ms = kLateBidWaitMs;
    return std::make_unique<TenantSession>(tenant_, std::move(inputs), options);
  }

  static Bytes BidFrom(TestProvider& provider, const Bytes& order, int64_t now_ms = kNowMs) {
    EngineStep step = provider.engine->OnOrderBytes(order, now_ms);
    EXPECT_EQ(step.bids.size(), 1u) << step.skip_detail;
    return step.bids.empty() ? Bytes{} : market::EncodeEnvelope(step.bids.front().envelope);
  }

  // The provider's answer to an Accept made durable: its Lease.
  static Bytes LeaseFrom(TestProvider& provider, const Bytes& accept, int64_t now_ms = kNowMs) {
    EngineStep step = provider.engine->OnAcceptBytes(accept, now_ms);
    EXPECT_EQ(step.record_leases.size(), 1u);
    if (step.record_leases.empty()) return {};
    EngineStep stored = provider.engine->OnLeaseStored(step.record_leases.front().bid_id, Status::Ok(), now_ms);
    EXPECT_EQ(stored.leases.size(), 1u);
    return stored.leases.empty() ? Bytes{} : market::EncodeEnvelope(stored.leases.front().envelope);
  }

  // The provider's real bid with option 0 (an H100) claimed for whatever device it gives.
  static std::optional<market::Bid> BidLie(TestProvider& provider, const Bytes& order) {
    auto bid = market::OpenSigned<market::Bid>(BidFrom(provider, order), kNowMs);
    if (!bid.ok()) return std::nullopt;
    market::Bid lie = bid->body;
    lie.services[0].option = 0;
    return lie;
  }

  static constexpr int64_t kWindowMs = 3'000;
  static constexpr int64_t kLeaseTimeoutMs = 1'000;
  static constexpr int64_t kWatchMs = 5'000;
  static constexpr int64_t kLateBidWaitMs = 10'000;

  market::Identity tenant_;
  std::deque<TestProvider> providers_;  // stable references
};

// Preference: an H100 bid (option 0) cannot be beaten by a provider the dry run predicts on an
// A100 (option 1), whatever its price, so the window closes at the first bid; the lease is
// verified and the session is done at once.
TEST_F(TenantSessionTest, PreferenceClosesEarlyOnAnUnbeatableBid) {
  TestProvider& h100 = AddProvider(kH100, 300'000);
  AddProvider(kA100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const TenantStep start = session->Start(kNowMs);
  const std::vector<Bytes> orders = Published(start, market::MessageType::kOrder);
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_FALSE(Has(start, Kind::kWindowClosed));

  const TenantStep bid = session->OnEnvelope(BidFrom(h100, orders[0]), kNowMs + 5);
  ASSERT_TRUE(Has(bid, Kind::kWindowClosed)) << Describe(bid);
  EXPECT_EQ(session->outcomes()[0].window, WindowClose::kUnbeatable);
  const std::vector<Bytes> accepts = Published(bid, market::MessageType::kAccept);
  ASSERT_EQ(accepts.size(), 1u);

  const TenantStep leased = session->OnEnvelope(LeaseFrom(h100, accepts[0]), kNowMs + 6);
  EXPECT_TRUE(Has(leased, Kind::kLeased)) << Describe(leased);
  EXPECT_TRUE(session->done());
  EXPECT_TRUE(session->succeeded());
  const OrderOutcome& outcome = session->outcomes()[0];
  ASSERT_TRUE(outcome.lease.has_value());
  EXPECT_EQ(outcome.lease->body.provider, h100.identity.public_key());
  EXPECT_EQ(outcome.lease->body.bid_id, outcome.bids.at(0).bid.id);
  EXPECT_EQ(outcome.accepts, 1u);
  EXPECT_FALSE(session->NextDeadline().has_value());
}

// The same bids under `cheapest`: the H100 bid is the dearer, and the A100 provider is predicted
// cheaper, so the window stays open; the A100 bid then closes it (every candidate answered)
// and wins.
TEST_F(TenantSessionTest, CheapestWaitsForAPredictedCheaperBid) {
  TestProvider& h100 = AddProvider(kH100, 300'000);
  TestProvider& a100 = AddProvider(kA100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kCheapest)}, market::Policy::kCheapest);
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);

  const TenantStep first = session->OnEnvelope(BidFrom(h100, order_wire), kNowMs + 5);
  EXPECT_FALSE(Has(first, Kind::kWindowClosed)) << Describe(first);
  EXPECT_EQ(session->NextDeadline(), kNowMs + kWindowMs);
  const TenantStep second = session->OnEnvelope(BidFrom(a100, order_wire), kNowMs + 7);
  ASSERT_TRUE(Has(second, Kind::kWindowClosed)) << Describe(second);
  EXPECT_EQ(session->outcomes()[0].window, WindowClose::kAllAnswered);
  const std::vector<Bytes> accepts = Published(second, market::MessageType::kAccept);
  ASSERT_EQ(accepts.size(), 1u);
  session->OnEnvelope(LeaseFrom(a100, accepts[0]), kNowMs + 8);
  ASSERT_TRUE(session->succeeded());
  EXPECT_EQ(session->outcomes()[0].lease->body.provider, a100.identity.public_key());
  ASSERT_EQ(session->outcomes()[0].bids.size(), 2u);
  EXPECT_EQ(session->outcomes()[0].bids[1].bid.envelope.signer, h100.identity.public_key());
}

// Under cheapest the cheaper bid first is unbeatable by the dearer prediction.
TEST_F(TenantSessionTest, CheapestClosesEarlyOnTheCheapestBid) {
  AddProvider(kH100, 300'000);
  TestProvider& a100 = AddProvider(kA100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kCheapest)}, market::Policy::kCheapest);
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  const TenantStep bid = session->OnEnvelope(BidFrom(a100, order_wire), kNowMs + 5);
  ASSERT_TRUE(Has(bid, Kind::kWindowClosed)) << Describe(bid);
  EXPECT_EQ(session->outcomes()[0].window, WindowClose::kUnbeatable);
}

// SDL 2.2 caps in several denoms: ranking puts the tenant's denom preference first, so a cheap
// bid in the second denom does not close the window while a provider of the first is to come.
TEST_F(TenantSessionTest, TheDenomPreferenceComesBeforePrice) {
  TestProvider& first_denom = AddProvider(kH100, 300'000, 4, "uakt");
  TestProvider& second_denom = AddProvider(kH100, 1'000, 4, "usdc");
  market::Order order = FallbackOrder();
  order.services[0].more_caps = {market::PriceCap{"usdc", 1'000'000, market::PerBlockToPerHour(1'000'000)}};
  for (const market::Policy policy : {market::Policy::kPreference, market::Policy::kCheapest}) {
    auto session = Session({order}, {DryRunFor(order, policy)}, policy);
    const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
    const TenantStep cheap = session->OnEnvelope(BidFrom(second_denom, order_wire), kNowMs + 1);
    EXPECT_TRUE(Has(cheap, Kind::kBidKept)) << Describe(cheap);
    EXPECT_FALSE(Has(cheap, Kind::kWindowClosed)) << market::ToString(policy);
    const TenantStep preferred = session->OnEnvelope(BidFrom(first_denom, order_wire), kNowMs + 2);
    const std::vector<Bytes> accepts = Published(preferred, market::MessageType::kAccept);
    ASSERT_EQ(accepts.size(), 1u) << Describe(preferred);
    auto accept = market::OpenSigned<market::Accept>(accepts[0], kNowMs + 2);
    ASSERT_TRUE(accept.ok());
    EXPECT_EQ(accept->body.provider, first_denom.identity.public_key()) << market::ToString(policy);
  }
}

// Equal ranks and price: RanksBefore would fall to reputation and provider id, which the dry run
// cannot promise, so a tie is not unbeatable: the session waits for the other provider.
TEST_F(TenantSessionTest, ATieOnRanksAndPriceKeepsTheWindowOpen) {
  TestProvider& first = AddProvider(kH100, 300'000);
  TestProvider& second = AddProvider(kH100, 300'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  EXPECT_FALSE(Has(session->OnEnvelope(BidFrom(first, order_wire), kNowMs + 1), Kind::kWindowClosed));
  const TenantStep step = session->OnEnvelope(BidFrom(second, order_wire), kNowMs + 2);
  EXPECT_TRUE(Has(step, Kind::kWindowClosed));
  EXPECT_EQ(session->outcomes()[0].window, WindowClose::kAllAnswered);
}

// A dry run cut to the best few: providers left off rank after the last listed one, so a bid
// closes the window only when it beats that one outright.
TEST_F(TenantSessionTest, ACutDryRunClosesOnlyOnABidThatBeatsItsLastEntry) {
  TestProvider& best = AddProvider(kH100, 100'000);
  AddProvider(kH100, 200'000);
  AddProvider(kH100, 300'000);
  const market::Order order = FallbackOrder();
  {
    // Cut to 1: the best bid ties its own prediction, which unlisted providers might tie too.
    auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference, 1)});
    const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
    EXPECT_FALSE(Has(session->OnEnvelope(BidFrom(best, order_wire), kNowMs + 1), Kind::kWindowClosed));
    EXPECT_FALSE(Has(session->Tick(kNowMs + kWindowMs - 1), Kind::kWindowClosed));
    const TenantStep deadline = session->Tick(kNowMs + kWindowMs);
    EXPECT_TRUE(Has(deadline, Kind::kWindowClosed)) << Describe(deadline);
    EXPECT_EQ(session->outcomes()[0].window, WindowClose::kDeadline);
    EXPECT_EQ(Published(deadline, market::MessageType::kAccept).size(), 1u);
  }
  {
    // Cut to 2: the best bid is cheaper than the second listed, hence than everyone unlisted.
    auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference, 2)});
    const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
    const TenantStep step = session->OnEnvelope(BidFrom(best, order_wire), kNowMs + 1);
    EXPECT_TRUE(Has(step, Kind::kWindowClosed)) << Describe(step);
    EXPECT_EQ(session->outcomes()[0].window, WindowClose::kUnbeatable);
  }
}

// Without a dry run nothing closes the window early: the deadline does, and the best bid wins.
TEST_F(TenantSessionTest, WithoutADryRunTheWindowClosesAtItsDeadline) {
  TestProvider& dear = AddProvider(kH100, 300'000);
  TestProvider& cheap = AddProvider(kH100, 200'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {std::nullopt});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  EXPECT_FALSE(Has(session->OnEnvelope(BidFrom(dear, order_wire), kNowMs + 1), Kind::kWindowClosed));
  EXPECT_FALSE(Has(session->OnEnvelope(BidFrom(cheap, order_wire), kNowMs + 2), Kind::kWindowClosed));
  EXPECT_EQ(session->NextDeadline(), kNowMs + kWindowMs);
  const TenantStep deadline = session->Tick(kNowMs + kWindowMs);
  const std::vector<Bytes> accepts = Published(deadline, market::MessageType::kAccept);
  ASSERT_EQ(accepts.size(), 1u);
  session->OnEnvelope(LeaseFrom(cheap, accepts[0], kNowMs + kWindowMs), kNowMs + kWindowMs + 1);
  ASSERT_TRUE(session->succeeded());
  EXPECT_EQ(session->outcomes()[0].lease->body.provider, cheap.identity.public_key());
}

// The winner does not confirm in time: the next best is accepted; when the first winner's Lease
// turns up after all, the session closes it with a signed Close the provider honours (its
// capacity comes back), so the tenant holds one lease.
TEST_F(TenantSessionTest, TimeoutFallsBackToTheNextBestAndClosesTheLateLease) {
  TestProvider& slow = AddProvider(kH100, 100'000);
  TestProvider& next = AddProvider(kH100, 200'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  // The cheaper bid first is unbeatable: the window closes on it; the other bid still counts as
  // the next best.
  const TenantStep closed = session->OnEnvelope(BidFrom(slow, order_wire), kNowMs + 2);
  const Bytes first_accept = Published(closed, market::MessageType::kAccept).at(0);
  EXPECT_TRUE(Published(session->OnEnvelope(BidFrom(next, order_wire), kNowMs + 3), market::MessageType::kAccept)
                  .empty());
  EXPECT_EQ(session->NextDeadline(), kNowMs + 2 + kLeaseTimeoutMs);

  const TenantStep timeout = session->Tick(kNowMs + 2 + kLeaseTimeoutMs);
  EXPECT_TRUE(Has(timeout, Kind::kLeaseTimeout)) << Describe(timeout);
  const std::vector<Bytes> second_accept = Published(timeout, market::MessageType::kAccept);
  ASSERT_EQ(second_accept.size(), 1u);
  const int64_t later = kNowMs + 2 + kLeaseTimeoutMs + 10;
  session->OnEnvelope(LeaseFrom(next, second_accept[0], later), later);
  ASSERT_TRUE(session->outcomes()[0].lease.has_value());
  EXPECT_EQ(session->outcomes()[0].lease->body.provider, next.identity.public_key());
  EXPECT_FALSE(session->done());  // the first Accept is still watched for a late Lease

  const uint64_t slow_free = FreeGpus(*slow.engine, kH100);
  const TenantStep late = session->OnEnvelope(LeaseFrom(slow, first_accept, later + 5), later + 6);
  ASSERT_TRUE(Has(late, Kind::kLateLeaseClosed)) << Describe(late);
  const std::vector<Bytes> closes = Published(late, market::MessageType::kClose);
  ASSERT_EQ(closes.size(), 1u);
  auto close = market::OpenSigned<market::Close>(closes[0], later + 6);
  ASSERT_TRUE(close.ok()) << close.status().ToString();
  EXPECT_EQ(close->envelope.signer, tenant_.public_key());
  EXPECT_EQ(close->body.reason, market::CloseReason::kTenantClosed);
  EXPECT_EQ(slow.engine->OnClose(*close, later + 7).capacity_changed, true);
  EXPECT_EQ(FreeGpus(*slow.engine, kH100), slow_free + 1);
  EXPECT_TRUE(session->done());
  EXPECT_TRUE(session->succeeded());
  EXPECT_EQ(session->outcomes()[0].lease->body.provider, next.identity.public_key());
  EXPECT_EQ(session->unresolved_accepts(), 0u);
}

// A late Lease of the Accept given up on, before the fallback's: it is taken, and the
// fallback's Lease, when it comes, is the one closed.
TEST_F(TenantSessionTest, ALateLeaseBeforeTheFallbacksIsTakenAndTheFallbackClosed) {
  TestProvider& slow = AddProvider(kH100, 100'000);
  TestProvider& next = AddProvider(kH100, 200'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  const Bytes first_accept = Published(session->OnEnvelope(BidFrom(slow, order_wire), kNowMs + 2),
                                       market::MessageType::kAccept).at(0);
  session->OnEnvelope(BidFrom(next, order_wire), kNowMs + 3);
  const Bytes second_accept =
      Published(session->Tick(kNowMs + 2 + kLeaseTimeoutMs), market::MessageType::kAccept).at(0);
  const int64_t later = kNowMs + 2 + kLeaseTimeoutMs + 10;
  EXPECT_TRUE(Has(session->OnEnvelope(LeaseFrom(slow, first_accept, later), later), Kind::kLeased));
  const TenantStep fallback = session->OnEnvelope(LeaseFrom(next, second_accept, later + 1), later + 1);
  EXPECT_TRUE(Has(fallback, Kind::kLateLeaseClosed)) << Describe(fallback);
  EXPECT_EQ(Published(fallback, market::MessageType::kClose).size(), 1u);
  EXPECT_TRUE(session->succeeded());
  EXPECT_EQ(session->outcomes()[0].lease->body.provider, slow.identity.public_key());
}

// A provider that refuses the Accept (its reservation expired) sends a Close naming the Accept:
// the session moves to the next best at once, without waiting for the lease timeout.
TEST_F(TenantSessionTest, ARefusalMovesToTheNextBestAtOnce) {
  TestProvider& refuses = AddProvider(kH100, 100'000);
  TestProvider& next = AddProvider(kH100, 200'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  const Bytes accept = Published(session->OnEnvelope(BidFrom(refuses, order_wire), kNowMs + 1),
                                 market::MessageType::kAccept).at(0);
  session->OnEnvelope(BidFrom(next, order_wire), kNowMs + 2);
  // The Accept reaches the provider after its reservation expired.
  EngineStep refusal = refuses.engine->OnAcceptBytes(accept, kNowMs + kBidTtlMs + 1);
  ASSERT_EQ(refusal.refusals.size(), 1u);
  const TenantStep step =
      session->OnEnvelope(market::EncodeEnvelope(refusal.refusals.front().close.envelope), kNowMs + 20);
  EXPECT_TRUE(Has(step, Kind::kRefused)) << Describe(step);
  const std::vector<Bytes> fallback = Published(step, market::MessageType::kAccept);
  ASSERT_EQ(fallback.size(), 1u);
  session->OnEnvelope(LeaseFrom(next, fallback[0], kNowMs + 21), kNowMs + 21);
  EXPECT_TRUE(session->succeeded());  // no Accept left watched: the refused one is answered
  EXPECT_EQ(session->outcomes()[0].accepts, 2u);
}

// A refusal signed by anyone but the accepted provider changes nothing.
TEST_F(TenantSessionTest, ARefusalFromAnotherKeyIsIgnored) {
  TestProvider& winner = AddProvider(kH100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  const Bytes accept = Published(session->OnEnvelope(BidFrom(winner, order_wire), kNowMs + 1),
                                 market::MessageType::kAccept).at(0);
  auto accept_id = market::ComputeId(*market::DecodeEnvelope(accept));
  const market::Close forged{accept_id, market::CloseReason::kProviderClosed, kNowMs, "accept refused: no"};
  const auto close = market::MakeSigned(market::Identity::Generate(), forged, kNowMs + 2, 60'000, 7);
  const TenantStep step = session->OnEnvelope(market::EncodeEnvelope(close.envelope), kNowMs + 2);
  EXPECT_TRUE(Has(step, Kind::kIgnored)) << Describe(step);
  EXPECT_TRUE(step.publish.empty());
  session->OnEnvelope(LeaseFrom(winner, accept, kNowMs + 3), kNowMs + 3);
  EXPECT_TRUE(session->succeeded());
}

// Nobody can take the group: the dry run says why, the window closes at once, the order fails
// with the constraint that excluded the most providers.
TEST_F(TenantSessionTest, NoBidsIsExplainedFromTheDryRun) {
  AddProvider(kH100, 100'000);
  AddProvider(kA100, 100'000);
  market::Order order = FallbackOrder();
  order.attributes = {{"region", "eu-central"}};
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const TenantStep start = session->Start(kNowMs);
  EXPECT_TRUE(Has(start, Kind::kFailed)) << Describe(start);
  EXPECT_TRUE(session->done());
  EXPECT_FALSE(session->succeeded());
  const std::string& failure = session->outcomes()[0].failure;
  EXPECT_NE(failure.find("placement attribute region=eu-central not offered (2 of 2 providers)"), std::string::npos)
      << failure;
}

// Listed providers that never bid: the window runs out, the session waits late_bid_wait_ms more
// for a first bid, then fails the order and says so.
TEST_F(TenantSessionTest, NoBidsFromListedProvidersFailsAfterTheLateBidWait) {
  AddProvider(kH100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  session->Start(kNowMs);
  EXPECT_FALSE(session->done());
  const TenantStep closed = session->Tick(kNowMs + kWindowMs);
  EXPECT_TRUE(Has(closed, Kind::kWindowClosed));
  EXPECT_TRUE(Has(closed, Kind::kWaitingForBid)) << Describe(closed);
  EXPECT_FALSE(Has(closed, Kind::kFailed));
  EXPECT_FALSE(session->done());
  EXPECT_EQ(session->NextDeadline(), kNowMs + kWindowMs + kLateBidWaitMs);
  EXPECT_TRUE(session->Tick(kNowMs + kWindowMs + kLateBidWaitMs - 1).events.empty());
  const TenantStep failed = session->Tick(kNowMs + kWindowMs + kLateBidWaitMs);
  EXPECT_TRUE(Has(failed, Kind::kFailed));
  EXPECT_TRUE(session->done());
  EXPECT_NE(session->outcomes()[0].failure.find("no bids within 13000 ms"), std::string::npos)
      << session->outcomes()[0].failure;
}

// The first bid after the window closed empty-handed is accepted at once.
TEST_F(TenantSessionTest, AFirstBidAfterTheWindowIsAcceptedAtOnce) {
  TestProvider& late = AddProvider(kH100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  EXPECT_TRUE(Has(session->Tick(kNowMs + kWindowMs), Kind::kWaitingForBid));
  const int64_t late_ms = kNowMs + kWindowMs + kLateBidWaitMs - 1;
  const TenantStep step = session->OnEnvelope(BidFrom(late, order_wire, late_ms), late_ms);
  const std::vector<Bytes> accepts = Published(step, market::MessageType::kAccept);
  ASSERT_EQ(accepts.size(), 1u) << Describe(step);
  EXPECT_TRUE(session->outcomes()[0].failure.empty());
  // The wait is over: the Accept's own timeout governs now.
  EXPECT_EQ(session->NextDeadline(), late_ms + kLeaseTimeoutMs);
  session->OnEnvelope(LeaseFrom(late, accepts[0], late_ms + 1), late_ms + 1);
  EXPECT_TRUE(session->succeeded());
}

// The market-small simulation's seed 3089356247, at the tenant: the only provider with the GPU
// had it held by a bid for another order when this one came, so the dry run excludes it for
// capacity and the window closes at once, empty. The session waits; the provider bids once that
// other order is leased elsewhere, and the bid is accepted at once.
TEST_F(TenantSessionTest, AnOrderWhoseProviderHadNoRoomYetWaitsForItsBid) {
  TestProvider& busy = AddProvider(kH100, 100'000, /*count=*/1);
  const market::Identity other_tenant = market::Identity::Generate();
  const auto other = SignOrder(other_tenant, FallbackOrder());
  ASSERT_EQ(busy.engine->OnOrder(other, kNowMs).bids.size(), 1u);
  const market::Order order = FallbackOrder();
  const DryRun dry_run = DryRunFor(order, market::Policy::kPreference);
  ASSERT_TRUE(dry_run.candidates.empty());
  auto session = Session({order}, {dry_run});
  const TenantStep start = session->Start(kNowMs);
  EXPECT_TRUE(Has(start, Kind::kWaitingForBid)) << Describe(start);
  EXPECT_FALSE(Has(start, Kind::kFailed));
  const Bytes order_wire = Published(start, market::MessageType::kOrder).at(0);
  EXPECT_TRUE(busy.engine->OnOrderBytes(order_wire, kNowMs + 1).bids.empty());  // no room: it waits

  // `other` is leased by another provider; the busy one releases its bid and bids on ours.
  auto rival = MakeEngine(market::Identity::Generate(), Inventory(8));
  const auto rival_bid = rival->OnOrder(other, kNowMs + 2).bids.at(0);
  const SignedAccept accept = Accept(other_tenant, rival_bid, kNowMs + 2);
  rival->OnAccept(accept.accept, accept.wire, kNowMs + 2);
  const auto lease = rival->OnLeaseStored(rival_bid.id, Status::Ok(), kNowMs + 2).leases.at(0);
  const EngineStep released = busy.engine->OnLease(lease, kNowMs + 300);
  ASSERT_EQ(released.bids.size(), 1u);
  const TenantStep step =
      session->OnEnvelope(market::EncodeEnvelope(released.bids[0].envelope), kNowMs + 301);
  const std::vector<Bytes> accepts = Published(step, market::MessageType::kAccept);
  ASSERT_EQ(accepts.size(), 1u) << Describe(step);
  session->OnEnvelope(LeaseFrom(busy, accepts[0], kNowMs + 302), kNowMs + 302);
  EXPECT_TRUE(session->succeeded());
}

// The wait ends early when no provider can bid any more: the only listed one sent a bid that is
// dropped, and the dry run excluded nobody for capacity.
TEST_F(TenantSessionTest, TheLateBidWaitEndsWhenTheLastPossibleBidIsDropped) {
  TestProvider& liar = AddProvider(kA100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  EXPECT_TRUE(Has(session->Tick(kNowMs + kWindowMs), Kind::kWaitingForBid));
  market::Bid lie = *BidLie(liar, order_wire);
  const auto lying = market::MakeSigned(liar.identity, lie, kNowMs + kWindowMs + 1, 10'000, 1234);
  const TenantStep step = session->OnEnvelope(market::EncodeEnvelope(lying.envelope), kNowMs + kWindowMs + 1);
  EXPECT_TRUE(Has(step, Kind::kBidDropped)) << Describe(step);
  EXPECT_TRUE(Has(step, Kind::kFailed)) << Describe(step);
  EXPECT_TRUE(session->done());
}

// The late-bid wait ends with the order's life when that is sooner; 0 turns it off.
TEST_F(TenantSessionTest, TheLateBidWaitEndsNoLaterThanTheOrder) {
  AddProvider(kH100, 100'000);
  const market::Order order = FallbackOrder();
  TenantSessionOptions options;
  options.bid_window_ms = kWindowMs;
  options.late_bid_wait_ms = kLateBidWaitMs;
  const int64_t order_ttl_ms = kWindowMs + 2'000;
  TenantSession session(tenant_, {TenantOrder{SignOrder(tenant_, order, kNowMs, order_ttl_ms),
                                              DryRunFor(order, market::Policy::kPreference)}},
                        options);
  session.Start(kNowMs);
  EXPECT_TRUE(Has(session.Tick(kNowMs + kWindowMs), Kind::kWaitingForBid));
  EXPECT_EQ(session.NextDeadline(), kNowMs + order_ttl_ms);
  EXPECT_TRUE(Has(session.Tick(kNowMs + order_ttl_ms), Kind::kFailed));

  options.late_bid_wait_ms = 0;
  TenantSession impatient(tenant_, {TenantOrder{SignOrder(tenant_, order), DryRunFor(order, market::Policy::kPreference)}},
                          options);
  impatient.Start(kNowMs);
  EXPECT_TRUE(Has(impatient.Tick(kNowMs + kWindowMs), Kind::kFailed));
}

// Bids for another order, forged bids and bids that do not verify are ignored: they neither
// count as an answer nor take part in ranking. A bid that verifies but lies is dropped, and does
// count as its provider's answer.
TEST_F(TenantSessionTest, OtherOrdersBidsAndForgeriesAreIgnored) {
  TestProvider& honest = AddProvider(kH100, 200'000);
  TestProvider& liar = AddProvider(kA100, 100'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kCheapest)}, market::Policy::kCheapest);
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);

  // Another tenant's order, answered by the same provider.
  const auto other = SignOrder(market::Identity::Generate(), order);
  const TenantStep other_bid = session->OnEnvelope(BidFrom(liar, market::EncodeEnvelope(other.envelope)), kNowMs + 1);
  EXPECT_TRUE(Has(other_bid, Kind::kIgnored)) << Describe(other_bid);

  // A real bid with a flipped bit in its signature, and one re-signed by a stranger.
  const Bytes real = BidFrom(honest, order_wire);
  Bytes flipped = real;
  flipped[flipped.size() - 1] ^= 1;
  EXPECT_TRUE(Has(session->OnEnvelope(flipped, kNowMs + 2), Kind::kIgnored));
  auto stolen = market::OpenSigned<market::Bid>(real, kNowMs);
  ASSERT_TRUE(stolen.ok());
  const auto stranger = market::MakeSigned(market::Identity::Generate(), stolen->body, kNowMs, 10'000, 99);
  const TenantStep stranger_step = session->OnEnvelope(market::EncodeEnvelope(stranger.envelope), kNowMs + 2);
  EXPECT_TRUE(Has(stranger_step, Kind::kBidKept));  // a stranger may bid: it is just not a candidate
  EXPECT_TRUE(Has(session->OnEnvelope(Bytes{0x93, 0x01}, kNowMs + 2), Kind::kIgnored));

  // The liar claims option 0 (an H100) for its A100 at its A100 price, signed by itself.
  market::Bid lie = *BidLie(liar, order_wire);
  const auto lying = market::MakeSigned(liar.identity, lie, kNowMs + 3, 10'000, 1234);
  const TenantStep lie_step = session->OnEnvelope(market::EncodeEnvelope(lying.envelope), kNowMs + 3);
  EXPECT_TRUE(Has(lie_step, Kind::kBidDropped)) << Describe(lie_step);
  EXPECT_FALSE(Has(lie_step, Kind::kWindowClosed));  // the honest candidate has not answered

  const TenantStep last = session->OnEnvelope(real, kNowMs + 4);
  ASSERT_TRUE(Has(last, Kind::kWindowClosed)) << Describe(last);
  EXPECT_EQ(session->outcomes()[0].dropped[static_cast<size_t>(BidProblem::kDeviceMismatch)], 1u);
  // The stranger's copy of the honest terms and the honest bid tie on price: the stranger (ranked
  // with reputation 0, the node computed none for it) comes second.
  const std::vector<Bytes> accepts = Published(last, market::MessageType::kAccept);
  ASSERT_EQ(accepts.size(), 1u);
  auto accept = market::OpenSigned<market::Accept>(accepts[0], kNowMs + 4);
  ASSERT_TRUE(accept.ok());
  EXPECT_EQ(accept->body.provider, honest.identity.public_key());
}

// A Lease of the order that embeds an Accept this session did not sign (the tenant's key used
// elsewhere) is not taken.
TEST_F(TenantSessionTest, ALeaseOfAnotherAcceptIsRejected) {
  TestProvider& provider = AddProvider(kH100, 100'000);
  TestProvider& other = AddProvider(kH100, 200'000);
  const market::Order order = FallbackOrder();
  auto session = Session({order}, {DryRunFor(order, market::Policy::kPreference)});
  const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
  session->OnEnvelope(BidFrom(provider, order_wire), kNowMs + 1);
  const Bytes other_bid = BidFrom(other, order_wire);
  session->OnEnvelope(other_bid, kNowMs + 2);
  auto bid = market::OpenSigned<market::Bid>(other_bid, kNowMs + 2);
  ASSERT_TRUE(bid.ok());
  const SignedAccept outside = Accept(tenant_, *bid, kNowMs + 3);
  const TenantStep step = session->OnEnvelope(LeaseFrom(other, outside.wire, kNowMs + 3), kNowMs + 3);
  EXPECT_TRUE(Has(step, Kind::kLeaseRejected)) << Describe(step);
  EXPECT_FALSE(session->outcomes()[0].lease.has_value());
}

// Two groups: one leased, one nobody can take. The session is done and not a success.
TEST_F(TenantSessionTest, OneGroupLeasedOneFailed) {
  TestProvider& h100 = AddProvider(kH100, 100'000);
  const market::Order good = FallbackOrder();
  market::Order bad = FallbackOrder();
  bad.group = "eu";
  bad.attributes = {{"region", "eu-central"}};
  auto session = Session({good, bad}, {DryRunFor(good, market::Policy::kPreference),
                                       DryRunFor(bad, market::Policy::kPreference)});
  const TenantStep start = session->Start(kNowMs);
  const std::vector<Bytes> orders = Published(start, market::MessageType::kOrder);
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_FALSE(session->done());
  const Bytes accept = Published(session->OnEnvelope(BidFrom(h100, orders[0]), kNowMs + 1),
                                 market::MessageType::kAccept).at(0);
  session->OnEnvelope(LeaseFrom(h100, accept, kNowMs + 2), kNowMs + 2);
  EXPECT_TRUE(session->done());
  EXPECT_FALSE(session->succeeded());
  EXPECT_TRUE(session->outcomes()[0].lease.has_value());
  EXPECT_FALSE(session->outcomes()[1].failure.empty());
}

// The early close never loses the best bid: with bids as the dry run predicts (real engines),
// arriving in any order, the first Accept names the bid that ranks first among all of them,
// under either policy. The session closes no later than the last bid.
TEST_F(TenantSessionTest, EarlyCloseAcceptsTheBestOfAllBidsInAnyArrivalOrder) {
  const uint32_t seed = gpumart::testing::TestSeed();
  std::mt19937 random(seed);
  const market::DeviceType devices[] = {kH100, kA100, kRtx4090};
  for (int round = 0; round < 40; ++round) {
    providers_.clear();
    const size_t count = 1 + random() % 6;
    for (size_t p = 0; p < count; ++p) {
      AddProvider(devices[random() % 3], 100'000 + 50'000 * (random() % 4));
    }
    market::Order order = FallbackOrder();
    order.services[0].resources.gpu.options.push_back(market::GpuOption{"nvidia", "*", 24 * kGi, std::nullopt});
    const market::Policy policy = random() % 2 ? market::Policy::kCheapest : market::Policy::kPreference;
    const size_t top = 1 + random() % (count + 1);
    auto session = Session({order}, {DryRunFor(order, policy, top)}, policy);
    const Bytes order_wire = Published(session->Start(kNowMs), market::MessageType::kOrder).at(0);
    std::vector<Bytes> bids;
    for (TestProvider& provider : providers_) bids.push_back(BidFrom(provider, order_wire));
    std::shuffle(bids.begin(), bids.end(), random);
    std::optional<Bytes> accept;
    for (size_t i = 0; i < bids.size() && !accept; ++i) {
      const TenantStep step = session->OnEnvelope(bids[i], kNowMs + 1 + static_cast<int64_t>(i));
      std::vector<Bytes> accepts = Published(step, market::MessageType::kAccept);
      if (!accepts.empty()) accept = accepts[0];
    }
    if (!accept) {
      // Only a cut list may keep the window open after every bid.
      ASSERT_LT(top, count) << "round " << round;
      accept = Published(session->Tick(kNowMs + kWindowMs), market::MessageType::kAccept).at(0);
    }
    // The best of every bid, ranked as the session ranks (reputation as the dry run gave it).
    std::vector<market::Candidate> ranked;
    for (const Bytes& wire : bids) {
      auto bid = market::OpenSigned<market::Bid>(wire, kNowMs);
      ASSERT_TRUE(bid.ok());
      market::Candidate candidate;
      candidate.provider = market::ToHex(bid->envelope.signer);
      candidate.price_per_hour = bid->body.price_per_hour;
      candidate.reputation_ppm = 500'000;
      candidate.ranks = OptionRanks(order, bid->body);
      candidate.denom = bid->body.denom;
      candidate.services = bid->body.services;
      ranked.push_back(candidate);
    }
    market::SortCandidates(ranked, policy);
    auto accepted = market::OpenSigned<market::Accept>(*accept, kNowMs + 10);
    ASSERT_TRUE(accepted.ok());
    EXPECT_EQ(market::ToHex(accepted->body.provider), ranked.front().provider)
        << "round " << round << " policy " << market::ToString(policy) << " top " << top << " of " << count;
  }
}

}  // namespace
}  // namespace gpumart::bidding
