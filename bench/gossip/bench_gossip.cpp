// Gossip benchmarks (issue 12). Targets (../shared/BENCHMARKS.md):
//   BM_DropDuplicates >= 1,000,000 duplicates dropped per second, none reaching the verifier;
//   BM_IngestUnique >= 80% of BM_RawVerify (bare Ed25519 verifies of the same messages, same run);
//   BM_Dissemination32: p99_ms <= 20, copies_per_msg <= 2.0, delivered_ratio = 1;
//   BM_Reconcile: bytes_ratio <= 0.05 (100,000-id sets differing in 100), in few round trips.
//
// The cores are driven through tests/gossip/fake_network.h (in-process transport, fake clock), so
// these figures are the protocol core's, without ZeroMQ/CURVE costs.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "node/gossip/frames.h"
#include "node/gossip/gossip_core.h"
#include "node/gossip/reconcile.h"
#include "tests/gossip/fake_network.h"

namespace gpumart::gossip {
namespace {

using testing::FakeNetwork;

constexpr size_t kSigners = 16;
constexpr size_t kPoolSize = 20'000;

// The per-peer rate limit would (rightly) cut a single peer off long before these rates: the
// benchmarks measure the paths behind it, so it is opened up here.
GossipConfig Unthrottled() {
  GossipConfig config;
  config.frames_per_second = 1'000'000'000;
  config.bytes_per_second = uint64_t{1} << 40;
  return config;
}

const std::vector<market::Identity>& Signers() {
  static const std::vector<market::Identity> signers = [] {
    std::vector<market::Identity> out;
    for (size_t i = 0; i < kSigners; ++i) {
      market::Seed seed{};
      seed[0] = static_cast<uint8_t>(i + 1);
      seed[1] = 0xb7;
      out.push_back(market::Identity::FromSeed(seed));
    }
    return out;
  }();
  return signers;
}

// Varied signed messages (signer, lease id, note length), signed once for the whole run.
const std::vector<Bytes>& Pool(int64_t created_ms) {
  static const std::vector<Bytes> pool = [created_ms] {
    std::vector<Bytes> out;
    out.reserve(kPoolSize);
    for (size_t i = 0; i < kPoolSize; ++i) {
      out.push_back(testing::MakeClose(Signers()[i % kSigners], created_ms, 600'000, i + 1,
                                       std::string(8 + i % 120, static_cast<char>('a' + i % 26))));
    }
    return out;
  }();
  return pool;
}

// Node 0 linked (handshake done) to node 1, which feeds it, and node 2, to which it relays.
std::unique_ptr<FakeNetwork> ThreeNodes() {
  auto network = std::make_unique<FakeNetwork>();
  for (int i = 0; i < 3; ++i) network->AddNode(Unthrottled());
  network->Connect(1, 0);
  network->Connect(0, 2);
  network->RunFor(100);
  return network;
}

// A duplicate: node 0 has the message, node 1 sends it again. The first duplicate PRUNEs the link;
// every later one is dropped on the dedup path.
void BM_DropDuplicates(benchmark::State& state) {
  auto network = ThreeNodes();
  const Bytes& envelope = Pool(network->now())[0];
  const Bytes frame = EncodeMessageFrame(1, envelope);
  const PeerId from = network->PeerIdAt(0, 1);
  network->Inject(0, from, frame);
  GossipCore& core = network->core(0);
  const uint64_t delivered_before = core.stats().delivered;
  const uint64_t dropped_before = core.drops()[Drop::kDuplicate];
  std::vector<Action> out;
  const int64_t now = network->now();
  for (auto _ : state) {
    core.HandleFrame(from, frame, now, out);
    out.clear();
  }
  const uint64_t dropped = core.drops()[Drop::kDuplicate] - dropped_before;
  const auto iterations = static_cast<uint64_t>(state.iterations());
  if (dropped != iterations || core.stats().delivered != delivered_before) {
    state.SkipWithError("a duplicate was not dropped on the dedup path");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DropDuplicates);

// The floor for ingest: bare Ed25519 verifies of the same pool of messages.
void BM_RawVerify(benchmark::State& state) {
  struct Input {
    market::Envelope envelope;
    Bytes signing_input;
  };
  std::vector<Input> inputs;
  for (const Bytes& wire : Pool(FakeNetwork().now())) {
    market::Envelope envelope = *market::DecodeEnvelope(wire);
    Bytes signing_input = market::SigningInput(envelope);
    inputs.push_back({std::move(envelope), std::move(signing_input)});
  }
  size_t next = 0;
  for (auto _ : state) {
    const Input& input = inputs[next];
    next = (next + 1) % inputs.size();
    const int rc = crypto_sign_verify_detached(input.envelope.signature.data(), input.signing_input.data(),
                                               input.signing_input.size(), input.envelope.signer.data());
    benchmark::DoNotOptimize(rc);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawVerify);

// Unique messages from one peer: node 0 decodes, dedups, verifies, records and relays each (the
// relay is the SendFrame it emits; the fake transport's queue is not timed). When the pool runs
// out, a fresh network (untimed) starts over with it.
void BM_IngestUnique(benchmark::State& state) {
  std::unique_ptr<FakeNetwork> network = ThreeNodes();
  const std::vector<Bytes>& pool = Pool(network->now());
  std::vector<Bytes> frames;
  frames.reserve(pool.size());
  for (const Bytes& envelope : pool) frames.push_back(EncodeMessageFrame(1, envelope));
  PeerId from = network->PeerIdAt(0, 1);
  std::vector<Action> out;
  size_t next = 0;
  uint64_t delivered = 0;
  uint64_t relayed = 0;
  for (auto _ : state) {
    if (next == frames.size()) {
      state.PauseTiming();
      delivered += network->core(0).stats().delivered;
      relayed += network->core(0).stats().eager_sent;
      network = ThreeNodes();
      from = network->PeerIdAt(0, 1);
      next = 0;
      state.ResumeTiming();
    }
    network->core(0).HandleFrame(from, frames[next++], network->now(), out);
    out.clear();
  }
  delivered += network->core(0).stats().delivered;
  relayed += network->core(0).stats().eager_sent;
  const auto iterations = static_cast<uint64_t>(state.iterations());
  if (delivered != iterations || relayed < iterations) {
    state.SkipWithError("not every unique message was delivered and relayed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IngestUnique);

// 32 cores on the fake network (tests/gossip/fake_network.h), not ZeroMQ: each link has a fixed
// latency drawn uniformly from 1..3 ms (seeded), a loopback-to-LAN model; processing time is not
// modelled (the fake clock does not move while a core works; BM_IngestUnique gives that cost,
// tens of microseconds per hop). Topology: a ring plus 3 random links per node (seeded), so about
// 8 links per node, like target_outbound. After links settle and 50 warm-up messages shape the
// Plumtree, each iteration publishes one message from a rotating node and steps the clock 1 ms at
// a time until every other node delivered it (or 1 s passed), then lets lazy announcements run
// for 300 ms, so their GRAFTed copies are counted too.
void BM_Dissemination32Simulated(benchmark::State& state) {
  constexpr size_t kNodes = 32;
  constexpr int64_t kGiveUpMs = 1'000;
  const uint64_t seed = 12;
  std::mt19937_64 random(seed);
  FakeNetwork network;
  for (size_t i = 0; i < kNodes; ++i) network.AddNode();
  std::uniform_int_distribution<int64_t> latency(1, 3);
  std::uniform_int_distribution<size_t> pick(0, kNodes - 1);
  for (size_t i = 0; i < kNodes; ++i) network.Connect(i, (i + 1) % kNodes, latency(random));
  for (size_t i = 0; i < kNodes; ++i) {
    for (int k = 0; k < 3; ++k) {
      const size_t j = pick(random);
      if (j != i && network.PeerIdAt(i, j) == kLocalPeer) network.Connect(i, j, latency(random));
    }
  }
  network.RunFor(1'000);

  uint64_t nonce = 0;
  auto publish_one = [&](size_t at, std::vector<int64_t>* latencies, uint64_t* delivered) {
    for (size_t i = 0; i < kNodes; ++i) network.node(i).delivered.clear();
    ++nonce;
    const Bytes envelope = testing::MakeClose(Signers()[nonce % kSigners], network.now(), 600'000, 1'000'000 + nonce);
    const int64_t start = network.now();
    if (!network.Publish(at, envelope).ok()) return false;
    size_t reached = 0;
    while (network.now() - start < kGiveUpMs) {
      network.RunFor(1);
      reached = 0;
      for (size_t i = 0; i < kNodes; ++i) reached += !network.node(i).delivered.empty();
      if (reached == kNodes - 1) break;
    }
    if (latencies) latencies->push_back(network.now() - start);
    if (delivered) *delivered += reached;
    network.RunFor(300);
    return true;
  };
  constexpr size_t kWarmUp = 50;
  for (size_t i = 0; i < kWarmUp; ++i) {
    if (!publish_one(i % kNodes, nullptr, nullptr)) return state.SkipWithError("warm-up publish failed");
  }

  uint64_t copies_before = 0;
  for (size_t i = 0; i < kNodes; ++i) copies_before += network.node(i).message_frames_in;
  // Not a target: the copies while the tree was still forming (every link starts eager).
  state.counters["warmup_copies_per_msg"] = static_cast<double>(copies_before) / (kWarmUp * (kNodes - 1));
  std::vector<int64_t> latencies;
  uint64_t delivered = 0;
  size_t published = 0;
  for (auto _ : state) {
    if (!publish_one(published++ % kNodes, &latencies, &delivered)) return state.SkipWithError("publish failed");
  }
  uint64_t copies = 0;
  for (size_t i = 0; i < kNodes; ++i) copies += network.node(i).message_frames_in;
  copies -= copies_before;
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    return static_cast<double>(latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))]);
  };
  const double receivers = static_cast<double>(published) * (kNodes - 1);
  state.counters["p50_ms"] = percentile(0.50);
  state.counters["p99_ms"] = percentile(0.99);
  state.counters["copies_per_msg"] = static_cast<double>(copies) / receivers;
  state.counters["delivered_ratio"] = static_cast<double>(delivered) / receivers;
  state.counters["seed"] = static_cast<double>(seed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Dissemination32Simulated)->Iterations(200)->Unit(benchmark::kMillisecond);

// Anti-entropy between two sets of 100,000 message ids that differ in 100 (50 only on each side),
// created over an hour: one whole session per iteration, every message through its frame bytes,
// plus the RECONCILE_ITEMS frames in which the initiator asks for the 50 it lacks. bytes_ratio is
// all of that over 100,000 x 32 (sending every id); round_trips counts request-reply pairs.
void BM_Reconcile(benchmark::State& state) {
  constexpr size_t kItems = 100'000;
  constexpr size_t kOnlyEach = 50;
  const uint64_t seed = 17;
  std::mt19937_64 random(seed);
  auto item = [&] {
    reconcile::Item out;
    out.timestamp_ms = 1'750'000'000'000 + random() % 3'600'000;
    for (auto& byte : out.id) byte = static_cast<uint8_t>(random());
    return out;
  };
  std::vector<reconcile::Item> a;
  for (size_t i = 0; i < kItems - kOnlyEach; ++i) a.push_back(item());
  std::vector<reconcile::Item> b = a;
  for (size_t i = 0; i < kOnlyEach; ++i) a.push_back(item());
  for (size_t i = 0; i < kOnlyEach; ++i) b.push_back(item());
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());

  size_t bytes = 0;
  uint32_t frames = 0;
  size_t have = 0;
  size_t need = 0;
  for (auto _ : state) {
    bytes = 0;
    frames = 0;
    have = 0;
    need = 0;
    uint32_t round = 0;
    Bytes wire = EncodeFrame(ReconcileFrame{round, reconcile::Initiate(a)});
    while (true) {
      bytes += wire.size();
      ++frames;
      auto request = DecodeFrame(wire);
      if (!request.ok()) return state.SkipWithError("a RECONCILE frame did not decode");
      const auto reply = reconcile::Reconcile(b, std::get<ReconcileFrame>(*request).ranges, reconcile::Role::kResponder);
      wire = EncodeFrame(ReconcileFrame{++round, reply.ranges});
      bytes += wire.size();
      ++frames;
      if (reply.ranges.empty()) break;
      auto answer = DecodeFrame(wire);
      if (!answer.ok()) return state.SkipWithError("a RECONCILE frame did not decode");
      auto next = reconcile::Reconcile(a, std::get<ReconcileFrame>(*answer).ranges, reconcile::Role::kInitiator);
      have += next.have.size();
      need += next.need.size();
      for (size_t i = 0; i < next.need.size(); i += limits::kMaxReconcileWantIds) {
        const size_t end = std::min(next.need.size(), i + limits::kMaxReconcileWantIds);
        bytes += EncodeFrame(ReconcileItemsFrame{{next.need.begin() + i, next.need.begin() + end}, {}, false}).size();
      }
      if (next.ranges.empty()) break;
      if (round + 1 >= limits::kMaxReconcileRounds) return state.SkipWithError("too many rounds");
      wire = EncodeFrame(ReconcileFrame{++round, next.ranges});
    }
  }
  if (have != kOnlyEach || need != kOnlyEach) return state.SkipWithError("the differences found are not the real ones");
  state.counters["bytes_ratio"] = static_cast<double>(bytes) / (kItems * sizeof(MessageId));
  state.counters["bytes"] = static_cast<double>(bytes);
  state.counters["round_trips"] = static_cast<double>((frames + 1) / 2);
  state.counters["seed"] = static_cast<double>(seed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Reconcile)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gpumart::gossip
