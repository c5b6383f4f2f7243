// BM_CatchUp (shared/BENCHMARKS.md): a node joins a peer that holds 10,000 open orders, 1,000
// offers and 50,000 leases; the benchmark times from the link opening until the joiner has every
// one of them verified and delivered and every lease durable in its LevelDB ledger. Target:
// verify_ratio = catch-up time / time of the bare Ed25519 checks of the same signatures (one per
// order and offer, three per lease: lease, embedded bid, embedded accept) <= 1.25, both measured in
// the same iteration.
//
// The two nodes are real GossipCores driven by this loop on one thread (frames pass in memory, so
// the figure is the protocol's and the node's, without ZeroMQ/CURVE costs); the joiner's leases go
// through the node's real ledger path (node::LedgerFeed -> ledger::LedgerActor, a real LevelDB on
// disk, fdatasync'd group commits), on the actor threads, as gpumartd wires them.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "bench/temp_dir.h"
#include "ledger/ledger_actor.h"
#include "market/codec.h"
#include "node/gossip/gossip_core.h"
#include "node/ledger_feed.h"
#include "node/offer_book_actor.h"
#include "tests/ledger/test_leases.h"
#include "tests/market/test_messages.h"

namespace gpumart::gossip {
namespace {

constexpr size_t kOrders = 10'000;
constexpr size_t kOffers = 1'000;
constexpr size_t kLeases = 50'000;
constexpr size_t kTenants = 1'000;          // each signs kOrders / kTenants orders
constexpr size_t kLeasesPerParties = 100;   // leases per tenant/provider pair

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

struct Holdings {
  std::vector<Bytes> envelopes;  // orders, offers, leases
  // What a bare check verifies: (signer, signature, signing input), one per signature.
  struct Check {
    PublicKey signer;
    Signature signature;
    Bytes signing_input;
  };
  std::vector<Check> checks;
};

void AddChecks(const market::Envelope& envelope, Holdings& holdings) {
  holdings.checks.push_back({envelope.signer, envelope.signature, market::SigningInput(envelope)});
}

// Signed on every core, once per process; created now with an hour to live, so every run of the
// benchmark (seconds each) finds them open.
const Holdings& MakeHoldings() {
  static const Holdings holdings = [] {
    const int64_t now = WallMs();
    const size_t threads = std::max(2u, std::thread::hardware_concurrency());
    std::vector<std::vector<Bytes>> parts(threads);
    std::vector<std::thread> signers;
    for (size_t t = 0; t < threads; ++t) {
      signers.emplace_back([&, t] {
        std::vector<Bytes>& out = parts[t];
        for (size_t tenant = t; tenant < kTenants; tenant += threads) {
          const market::Identity identity = market::Identity::Generate();
          for (size_t n = 0; n < kOrders / kTenants; ++n) {
            out.push_back(market::EncodeEnvelope(
                market::MakeSigned(identity, market::testing::SampleOrder(), now, 3'600'000, n + 1).envelope));
          }
        }
        for (size_t provider = t; provider < kOffers; provider += threads) {
          const market::Identity identity = market::Identity::Generate();
          out.push_back(market::EncodeEnvelope(
              market::MakeSigned(identity, market::testing::SampleOffer(), now, 3'600'000, 1).envelope));
        }
        for (size_t pair = t; pair < kLeases / kLeasesPerParties; pair += threads) {
          ledger::testing::Parties parties;
          for (size_t n = 0; n < kLeasesPerParties; ++n) {
            out.push_back(market::EncodeEnvelope(parties.FreshLease(now).envelope));
          }
        }
      });
    }
    for (auto& signer : signers) signer.join();
    Holdings made;
    for (auto& part : parts) std::move(part.begin(), part.end(), std::back_inserter(made.envelopes));
    for (const Bytes& wire : made.envelopes) {
      const market::Envelope envelope = *market::DecodeEnvelope(wire);
      AddChecks(envelope, made);
      if (envelope.type == market::MessageType::kLease) {
        const market::Lease lease = *market::DecodeLease(envelope.body);
        AddChecks(*market::DecodeEnvelope(lease.bid_envelope), made);
        AddChecks(*market::DecodeEnvelope(lease.accept_envelope), made);
      }
    }
    return made;
  }();
  return holdings;
}

// The joiner's node: its own actor system, ledger, ledger feed and offer book, as NodeContext
// starts them.
struct JoinerNode {
  bench::TempDir dir{"gpumart-bench-catchup"};
  actors::ActorSystem system;
  std::unique_ptr<ledger::LedgerActor> ledger;
  std::shared_ptr<node::LedgerFeedCounters> counters = std::make_shared<node::LedgerFeedCounters>();
  actors::ActorHandle feed;
  std::shared_ptr<node::OfferBookCounters> book_counters = std::make_shared<node::OfferBookCounters>();
  actors::ActorHandle book;
  std::unique_ptr<actors::Outbox> outbox;

  bool Start() {
    if (dir.path().empty()) return false;
    auto opened = ledger::LedgerActor::Open(system, dir.path() + "/ledger", {}, SystemClock::Instance());
    if (!opened.ok()) return false;
    ledger = std::move(opened).value();
    feed = system.Spawn({.name = "ledger-feed", .mailbox_hwm = node::kLedgerFeedMailboxHwm},
                        [address = ledger->address(), counters = counters] {
                          return std::make_unique<node::LedgerFeed>(address, counters);
                        });
    if (!feed.ok()) return false;
    book = system.Spawn({.name = "offer-book", .mailbox_hwm = node::kOfferBookMailboxHwm},
                        [store = &ledger->store(), counters = book_counters] {
                          return std::make_unique<node::OfferBookActor>(*store, counters);
                        });
    if (!book.ok()) return false;
    outbox = std::make_unique<actors::Outbox>(system);
    return true;
  }
  ~JoinerNode() {
    book.Stop();
    feed.Stop();
    ledger.reset();
  }
};

GossipConfig Config(const std::string& address) {
  GossipConfig config;
  config.advertised_address = address;
  return config;
}

// Runs the two cores until the joiner has delivered `expected` messages (or nothing moves any
// more); the joiner's deliveries go to its ledger feed. Returns the joiner's deliveries.
uint64_t CatchUp(GossipCore& holder, GossipCore& joiner, JoinerNode& node, size_t expected, int64_t deadline_ms) {
  constexpr PeerId kLink = 1;
  std::deque<Bytes> to_holder, to_joiner;
  std::vector<Action> out;
  uint64_t delivered = 0;
  auto apply = [&](std::vector<Action>& actions, bool at_joiner) {
    for (Action& action : actions) {
      if (auto* send = std::get_if<SendFrame>(&action)) {
        (at_joiner ? to_holder : to_joiner).push_back(std::move(send->frame));
      } else if (auto* deliver = std::get_if<Deliver>(&action); deliver != nullptr && at_joiner) {
        ++delivered;
        node::HandToFeed(*deliver, *node.outbox, node.feed.address(), *node.counters);
        node::HandToOfferBook(*deliver, *node.outbox, node.book.address(), *node.book_counters);
      }
    }
    actions.clear();
  };
  int64_t now = WallMs();
  holder.OnConnected(kLink, Direction::kInbound, "", now, out);
  apply(out, false);
  joiner.OnConnected(kLink, Direction::kOutbound, "holder", now, out);
  apply(out, true);
  while (delivered < expected && now < deadline_ms) {
    now = WallMs();
    if (to_holder.empty() && to_joiner.empty()) {
      holder.Tick(now, out);
      apply(out, false);
      joiner.Tick(now, out);
      apply(out, true);
      if (to_holder.empty() && to_joiner.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    while (!to_joiner.empty()) {
      joiner.HandleFrame(kLink, to_joiner.front(), now, out);
      to_joiner.pop_front();
      apply(out, true);
    }
    while (!to_holder.empty()) {
      holder.HandleFrame(kLink, to_holder.front(), now, out);
      to_holder.pop_front();
      apply(out, false);
    }
  }
  return delivered;
}

// Every signature of the holdings checked with libsodium alone, on this thread.
bool BareVerify(const Holdings& holdings, double& seconds) {
  const auto start = std::chrono::steady_clock::now();
  size_t good = 0;
  for (const Holdings::Check& check : holdings.checks) {
    good += crypto_sign_verify_detached(check.signature.data(), check.signing_input.data(),
                                        check.signing_input.size(), check.signer.data()) == 0;
  }
  seconds = Seconds(start);
  return good == holdings.checks.size();
}

void BM_CatchUp(benchmark::State& state) {
  const Holdings& holdings = MakeHoldings();
  const size_t total = holdings.envelopes.size();
  double catch_up_s = 0, verify_s = 0;
  uint64_t recorded = 0, dropped = 0, refused = 0, delivered = 0, offers_held = 0;
  uint64_t runs_done = 0;
  for (auto _ : state) {
    // The bare checks of the same signatures, on one core, as a baseline in this iteration: before
    // the catch-up in even iterations, after it in odd ones, so a drift in machine load does not
    // favour either side.
    const bool verify_first = runs_done++ % 2 == 0;
    double verify = 0;
    if (verify_first && !BareVerify(holdings, verify)) {
      state.SkipWithError("a sample signature does not verify");
      return;
    }
    state.PauseTiming();
    const market::Identity holder_identity = market::Identity::Generate();
    const market::Identity joiner_identity = market::Identity::Generate();
    GossipCore holder(holder_identity, Config("holder"));
    GossipCore joiner(joiner_identity, Config("joiner"));
    const int64_t seeded_at = WallMs();
    for (const Bytes& envelope : holdings.envelopes) {
      if (!holder.Retain(envelope, seeded_at).ok()) {
        state.SkipWithError("the holder refused to retain a sample message");
        return;
      }
    }
    auto node = std::make_unique<JoinerNode>();
    if (!node->Start()) {
      state.SkipWithError("cannot start the joiner's ledger");
      return;
    }
    state.ResumeTiming();

    const auto start = std::chrono::steady_clock::now();
    const uint64_t got = CatchUp(holder, joiner, *node, total, WallMs() + 120'000);
    // Then every lease durable (or counted as refused or dropped: each would be a failure below).
    while (node->counters->recorded + node->counters->refused + node->counters->dropped < kLeases &&
           Seconds(start) < 120) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const double catch_up = Seconds(start);
    if (!verify_first && !BareVerify(holdings, verify)) {
      state.SkipWithError("a sample signature does not verify");
      return;
    }

    state.PauseTiming();
    delivered += got;
    recorded += node->counters->recorded;
    refused += node->counters->refused;
    dropped += node->counters->dropped;
    catch_up_s += catch_up;
    verify_s += verify;
    offers_held += node->book_counters->held;
    const bool complete = got == total && node->counters->recorded == kLeases;
    node.reset();
    state.ResumeTiming();
    if (!complete) {
      state.SkipWithError("the joiner did not get everything verified and recorded");
      return;
    }
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["items"] = static_cast<double>(total);
  state.counters["signatures"] = static_cast<double>(holdings.checks.size());
  state.counters["catch_up_s"] = catch_up_s / runs;
  state.counters["bare_verify_s"] = verify_s / runs;
  state.counters["verify_ratio"] = catch_up_s / verify_s;
  state.counters["delivered"] = static_cast<double>(delivered) / runs;
  state.counters["leases_recorded"] = static_cast<double>(recorded) / runs;
  state.counters["leases_refused"] = static_cast<double>(refused) / runs;
  state.counters["offers_in_book"] = static_cast<double>(offers_held) / runs;
  state.counters["leases_dropped"] = static_cast<double>(dropped) / runs;
}
// Each iteration signs nothing (the holdings are made once) but checks ~161,000 signatures twice;
// two iterations, one with the baseline first and one with it last.
BENCHMARK(BM_CatchUp)->Iterations(2)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
}  // namespace gpumart::gossip
