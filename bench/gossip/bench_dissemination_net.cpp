// BM_Dissemination32 (issue 12; targets in ../shared/BENCHMARKS.md: p99_ms <= 20, copies_per_msg
// <= 2.0, delivered_ratio = 1): 32 GossipNodes in this process over real sockets, TCP on
// loopback with ZeroMQ CURVE, each node with its own ActorSystem (ZeroMQ context, ZAP handler and
// gossip thread). BM_Dissemination32Simulated in bench_gossip.cpp is the same measurement on the
// core alone over a fake network and clock.
//
// Topology from bootstrap lists alone (seeded): node i dials node i-1 and two random earlier
// nodes, and peer exchange adds links up to the default target_outbound (8). Once the links
// settle and 50 warm-up messages have shaped the Plumtree, each iteration publishes one signed
// Close at a rotating node and waits until the 31 others delivered it (or 1 s passed). The
// latency is from just before the publish request to the last node's delivery callback, on one
// steady clock. Copies are the MESSAGE frames that reached a node (delivered + duplicates, the
// author's own included), counted after a pause that lets late and GRAFTed copies arrive.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "node/gossip/gossip_node.h"
#include "tests/gossip/fake_network.h"

namespace gpumart::gossip {
namespace {

using Clock = std::chrono::steady_clock;

// CPU seconds this process has used (all threads).
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

constexpr size_t kNodes = 32;
constexpr size_t kRandomBootstrapLinks = 2;
constexpr size_t kWarmUp = 50;
constexpr auto kGiveUp = std::chrono::seconds(1);
constexpr auto kSettle = std::chrono::milliseconds(500);  // late and GRAFTed copies
constexpr auto kIdle = std::chrono::seconds(2);            // idle cost measured this long
// The nodes run with the product defaults: each ticks its core at the core's next deadline
// (GossipNode, kMinTickDelayMs..kMaxTickDelayMs), so 32 co-located nodes no longer cost a core
// in idle wake-ups (a fixed 10 ms tick made 3,200 a second here); ticks_per_node_s reports it.
constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr uint32_t kSeed = 32;

// When each message left its author and when its last receiver got it.
class DeliveryClock {
 public:
  void Expect(const MessageId& id, Clock::time_point start) {
    std::lock_guard lock(mutex_);
    pending_[id] = Pending{start, {}, 0};
  }
  // Runs on the gossip threads.
  void Delivered(const MessageId& id) {
    const auto now = Clock::now();
    std::lock_guard lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // a warm-up message from before Expect
    if (++it->second.receivers == kNodes - 1) {
      it->second.last = now;
      done_.notify_all();
    }
  }
  // Waits for the last receiver; returns the receivers reached and the latency in ms (the wait's
  // length when not all were reached).
  std::pair<size_t, double> Wait(const MessageId& id) {
    std::unique_lock lock(mutex_);
    const Pending& pending = pending_.at(id);
    done_.wait_until(lock, pending.start + kGiveUp, [&] { return pending.receivers == kNodes - 1; });
    const auto end = pending.receivers == kNodes - 1 ? pending.last : Clock::now();
    return {pending.receivers, std::chrono::duration<double, std::milli>(end - pending.start).count()};
  }

 private:
  struct Pending {
    Clock::time_point start;
    Clock::time_point last;
    size_t receivers = 0;
  };
  std::mutex mutex_;
  std::condition_variable done_;
  std::map<MessageId, Pending> pending_;
};

class BenchNode {
 public:
  BenchNode(size_t index, std::vector<std::string> bootstrap, DeliveryClock& clock) {
    market::Seed seed{};
    seed[0] = static_cast<uint8_t>(index + 1);
    seed[1] = 0xd3;
    identity_ = std::make_unique<market::Identity>(market::Identity::FromSeed(seed));
    GossipNodeConfig config;
    config.listen_endpoint = "tcp://127.0.0.1:*";
    config.bootstrap = std::move(bootstrap);
    config.ban_addresses = false;  // every peer is 127.0.0.1
    config.on_deliver = [&clock](const Deliver& deliver) { clock.Delivered(deliver.id); };
    handle_ = system_.Spawn({.name = "gossip"},
                            [this, config] { return std::make_unique<GossipNode>(*identity_, config); });
    outbox_ = std::make_unique<actors::Outbox>(system_);
  }
  ~BenchNode() {
    handle_.Stop();
    outbox_.reset();
  }
  void RequestStop() { handle_.RequestStop(); }
  bool ok() const { return handle_.ok(); }
  const PublicKey& identity() const { return identity_->public_key(); }
  std::optional<GossipNodeStatus> Status() {
    auto reply = outbox_->Request<GossipNodeStatus>(handle_.address(), GetGossipStatus{}, kRequestTimeout);
    if (!reply.ok()) return std::nullopt;
    return reply.value();
  }
  bool Publish(Bytes envelope) {
    auto reply = outbox_->Request<gpumart::Status>(handle_.address(), PublishMessage{std::move(envelope)},
                                                   kRequestTimeout);
    return reply.ok() && reply.value().ok();
  }

 private:
  std::unique_ptr<market::Identity> identity_;
  actors::ActorSystem system_;
  actors::ActorHandle handle_;
  std::unique_ptr<actors::Outbox> outbox_;
};

// MESSAGE frames received by every node so far, and the ready links (each counted at both ends).
struct Totals {
  uint64_t copies = 0;
  size_t link_ends = 0;
  uint64_t ticks = 0;
};
std::optional<Totals> Count(std::vector<std::unique_ptr<BenchNode>>& nodes) {
  Totals totals;
  for (auto& node : nodes) {
    auto status = node->Status();
    if (!status) return std::nullopt;
    totals.copies += status->core_stats.delivered + status->core_drops[Drop::kDuplicate];
    totals.link_ends += status->ready_peers;
    totals.ticks += status->ticks;
  }
  return totals;
}

// True when the ready links connect every node.
bool Connected(std::vector<std::unique_ptr<BenchNode>>& nodes) {
  std::map<PublicKey, size_t> index_of;
  for (size_t i = 0; i < nodes.size(); ++i) index_of[nodes[i]->identity()] = i;
  std::vector<std::set<size_t>> edges(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto status = nodes[i]->Status();
    if (!status) return false;
    for (const PublicKey& peer : status->peers) {
      const size_t j = index_of.at(peer);
      edges[i].insert(j);
      edges[j].insert(i);
    }
  }
  std::set<size_t> reached{0};
  std::vector<size_t> frontier{0};
  while (!frontier.empty()) {
    const size_t at = frontier.back();
    frontier.pop_back();
    for (size_t next : edges[at]) {
      if (reached.insert(next).second) frontier.push_back(next);
    }
  }
  return reached.size() == nodes.size();
}

void BM_Dissemination32(benchmark::State& state) {
  std::mt19937 random(kSeed);
  DeliveryClock clock;
  std::vector<std::unique_ptr<BenchNode>> nodes;
  struct StopAll {  // every exit path stops the 32 actors in parallel first
    std::vector<std::unique_ptr<BenchNode>>& nodes;
    ~StopAll() {
      for (auto& node : nodes) node->RequestStop();
    }
  } stop_all{nodes};
  for (size_t i = 0; i < kNodes; ++i) {
    std::set<size_t> targets;
    if (i > 0) targets.insert(i - 1);
    for (size_t k = 0; i > 0 && k < kRandomBootstrapLinks; ++k) targets.insert(random() % i);
    std::vector<std::string> bootstrap;
    for (size_t target : targets) {
      auto status = nodes[target]->Status();
      if (!status) return state.SkipWithError("a node did not answer");
      bootstrap.push_back(status->address);
    }
    nodes.push_back(std::make_unique<BenchNode>(i, bootstrap, clock));
    if (!nodes.back()->ok()) return state.SkipWithError("a node did not start");
  }
  // Settled: connected, and the number of links unchanged for half a second.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  size_t link_ends = 0;
  int stable_polls = 0;
  while (stable_polls < 5) {
    if (Clock::now() > deadline) return state.SkipWithError("the links did not settle");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto totals = Count(nodes);
    if (!totals) return state.SkipWithError("a node did not answer");
    stable_polls = totals->link_ends == link_ends && Connected(nodes) ? stable_polls + 1 : 0;
    link_ends = totals->link_ends;
  }

  std::vector<market::Identity> signers;
  for (uint8_t i = 1; i <= 16; ++i) {
    market::Seed seed{};
    seed[0] = i;
    seed[1] = 0xd4;
    signers.push_back(market::Identity::FromSeed(seed));
  }
  uint64_t nonce = 0;
  std::vector<double> latencies;
  uint64_t reached_total = 0;
  // Publishes one message at node `at` and waits for it to reach the others.
  auto publish_one = [&](size_t at, bool measure) {
    ++nonce;
    const Bytes envelope =
        testing::MakeClose(signers[nonce % signers.size()], SystemClock::Instance().NowMs(), 600'000, nonce);
    const MessageId id = testing::IdOf(envelope);
    clock.Expect(id, Clock::now());
    if (!nodes[at]->Publish(envelope)) return false;
    const auto [reached, latency_ms] = clock.Wait(id);
    if (measure) {
      latencies.push_back(latency_ms);
      reached_total += reached;
    }
    return true;
  };
  for (size_t i = 0; i < kWarmUp; ++i) {
    if (!publish_one(i % kNodes, false)) return state.SkipWithError("warm-up publish failed");
  }
  std::this_thread::sleep_for(kSettle);
  const auto before = Count(nodes);
  if (!before) return state.SkipWithError("a node did not answer");
  // Not a target: the copies while the tree was still forming (every link starts eager).
  state.counters["warmup_copies_per_msg"] = static_cast<double>(before->copies) / (kWarmUp * (kNodes - 1));
  state.counters["links_per_node"] = static_cast<double>(before->link_ends) / kNodes;

  size_t published = 0;
  const auto measured_from = Clock::now();
  const double cpu_from = ProcessCpuSeconds();
  for (auto _ : state) {
    if (!publish_one(published++ % kNodes, true)) return state.SkipWithError("publish failed");
  }
  std::this_thread::sleep_for(kSettle);
  const double measured_s = std::chrono::duration<double>(Clock::now() - measured_from).count();
  const double busy_cpu_s = ProcessCpuSeconds() - cpu_from;
  const auto after = Count(nodes);
  if (!after) return state.SkipWithError("a node did not answer");
  // The same 32 nodes idle for a while: what they cost with nothing to do.
  const auto idle_from = Clock::now();
  const double idle_cpu_from = ProcessCpuSeconds();
  std::this_thread::sleep_for(kIdle);
  const double idle_s = std::chrono::duration<double>(Clock::now() - idle_from).count();
  const double idle_cpu_s = ProcessCpuSeconds() - idle_cpu_from;
  const auto idle = Count(nodes);
  if (!idle) return state.SkipWithError("a node did not answer");
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * static_cast<double>(latencies.size())))];
  };
  const double receivers = static_cast<double>(published) * (kNodes - 1);
  state.counters["p50_ms"] = percentile(0.50);
  state.counters["p99_ms"] = percentile(0.99);
  state.counters["max_ms"] = latencies.back();
  state.counters["copies_per_msg"] = static_cast<double>(after->copies - before->copies) / receivers;
  state.counters["delivered_ratio"] = static_cast<double>(reached_total) / receivers;
  state.counters["seed"] = kSeed;
  // Not targets: what the timers cost (ticks per node per second; cores used by the process).
  state.counters["ticks_per_node_s"] = static_cast<double>(after->ticks - before->ticks) / (kNodes * measured_s);
  state.counters["cpu_cores"] = busy_cpu_s / measured_s;
  state.counters["idle_ticks_per_node_s"] = static_cast<double>(idle->ticks - after->ticks) / (kNodes * idle_s);
  state.counters["idle_cpu_cores"] = idle_cpu_s / idle_s;
  // Not a target: 96 threads share the machine's cores, so the latencies follow its load.
  if (double load[1]; getloadavg(load, 1) == 1) state.counters["load_avg_1m"] = load[0];
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Dissemination32)->Iterations(200)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace gpumart::gossip
