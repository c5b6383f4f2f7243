#include "bench/sim/sim.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include "bidding/bid_engine.h"
#include "bidding/bid_selection.h"
#include "bidding/tenant_session.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "node/gossip/frames.h"

namespace gpumart::sim {

namespace {

using gossip::Action;
using gossip::Direction;
using gossip::GossipCore;
using gossip::PeerId;
using market::Bytes;
using market::MessageId;

constexpr int64_t kUs = 1'000;                        // microseconds per millisecond
constexpr uint32_t kUnknownNode = UINT32_MAX;
constexpr int64_t kEpochMs = 1'750'000'000'000;        // virtual time 0, as the cores see it

// splitmix64: a small generator whose sequence is the same on every platform and library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  int64_t Uniform(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo + 1))); }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

uint64_t Mix(uint64_t a, uint64_t b) { return Rng(a * 0x9e3779b97f4a7c15ULL ^ b).Next(); }

struct IdHash {
  size_t operator()(const MessageId& id) const {
    uint64_t prefix = 0;
    std::memcpy(&prefix, id.data(), sizeof prefix);
    return static_cast<size_t>(prefix);
  }
};

// One shared memo of signature checks for every core (GossipConfig::verify_signature): the first
// node to see a message runs the real Ed25519 check; the others compare the whole envelope with
// the one checked, which is as strong and costs a memcmp.
class SignatureMemo {
 public:
  Status Verify(const market::Envelope& envelope) {
    std::lock_guard<std::mutex> lock(mutex_);  // the cores of every thread share it
    const market::Signature& key = envelope.signature;
    auto it = checked_.find(key);
    if (it != checked_.end() && it->second == envelope) return Status::Ok();
    if (envelope.type == market::MessageType::kLease) {
      GPUMART_RETURN_IF_ERROR(market::OpenLease(market::EncodeEnvelope(envelope)).status());
    } else {
      GPUMART_RETURN_IF_ERROR(market::VerifySignature(envelope));
    }
    ++real_checks_;
    if (it == checked_.end()) checked_.emplace(key, envelope);
    return Status::Ok();
  }
  uint64_t real_checks() const { return real_checks_; }

 private:
  struct SignatureHash {
    size_t operator()(const market::Signature& signature) const {
      uint64_t prefix = 0;  // signatures are uniform bytes
      std::memcpy(&prefix, signature.data(), sizeof prefix);
      return static_cast<size_t>(prefix);
    }
  };
  std::mutex mutex_;
  std::unordered_map<market::Signature, market::Envelope, SignatureHash> checked_;
  uint64_t real_checks_ = 0;
};

// One copy of each envelope for every core (GossipConfig::keep_envelope): the cores' stores and
// retained sets share it instead of holding one copy per node.
class EnvelopePool {
 public:
  gossip::SharedBytes Keep(const MessageId& id, std::span<const uint8_t> bytes) {
    std::lock_guard<std::mutex> lock(mutex_);  // the cores of every thread share it
    std::weak_ptr<const Bytes>& slot = kept_[id];
    if (auto shared = slot.lock(); shared && std::equal(shared->begin(), shared->end(), bytes.begin(), bytes.end())) {
      return shared;
    }
    auto fresh = std::make_shared<const Bytes>(bytes.begin(), bytes.end());
    slot = fresh;
    if (kept_.size() > 2 * swept_size_ + 1024) Sweep();
    return fresh;
  }

 private:
  void Sweep() {
    std::erase_if(kept_, [](const auto& entry) { return entry.second.expired(); });
    swept_size_ = kept_.size();
  }
  std::mutex mutex_;
  std::unordered_map<MessageId, std::weak_ptr<const Bytes>, IdHash> kept_;
  size_t swept_size_ = 0;
};

// A transport link between two nodes; side 0 dialled side 1.
struct Link {
  uint32_t node[2];
  PeerId peer[2];
  bool open[2];
  int64_t latency_us;
};

// The links, one store per thread, each appended to only by its own thread (a dial is made by
// the dialling node's thread, in a step) and never moved: a link made in a window is read by
// another thread only from the next window on (its accept and frames are a latency away), and
// the other threads' reads of older links never meet a reallocation. Link index: local * threads
// + thread.
class LinkStore {
 public:
  static constexpr size_t kChunk = 4096;
  static constexpr size_t kChunks = 4096;  // 16.7 million links per thread

  uint32_t Add(const Link& link, uint32_t thread, uint32_t threads) {
    assert(size_ < kChunk * kChunks);
    std::unique_ptr<Link[]>& chunk = chunks_[size_ / kChunk];
    if (!chunk) chunk = std::make_unique<Link[]>(kChunk);
    chunk[size_ % kChunk] = link;
    return static_cast<uint32_t>(size_++ * threads + thread);
  }
  Link& At(size_t local) { return chunks_[local / kChunk][local % kChunk]; }

 private:
  std::array<std::unique_ptr<Link[]>, kChunks> chunks_{};
  size_t size_ = 0;
};

// A node's open links by its peer id. Peer ids are handed out in order per node, so a vector
// indexed by id is a map with O(1) lookups (a frame's link is looked up on every send).
class PeerLinks {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t Find(PeerId peer) const { return peer < by_peer_.size() ? by_peer_[peer] : kNone; }
  void Set(PeerId peer, uint32_t link) {
    if (peer >= by_peer_.size()) by_peer_.resize(peer + 1, kNone);
    count_ += by_peer_[peer] == kNone;
    by_peer_[peer] = link;
  }
  void Erase(PeerId peer) {
    if (Find(peer) == kNone) return;
    by_peer_[peer] = kNone;
    --count_;
  }
  void Clear() {
    by_peer_.clear();
    count_ = 0;
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // (peer, link) in peer order.
  std::vector<std::pair<PeerId, uint32_t>> All() const {
    std::vector<std::pair<PeerId, uint32_t>> all;
    for (PeerId peer = 0; peer < by_peer_.size(); ++peer) {
      if (by_peer_[peer] != kNone) all.emplace_back(peer, by_peer_[peer]);
    }
    return all;
  }

 private:
  std::vector<uint32_t> by_peer_;
  size_t count_ = 0;
};

struct Node {
  std::unique_ptr<market::Identity> identity;
  std::string address;
  uint32_t region = 0;
  uint32_t side = 0;  // partition half
  std::unique_ptr<GossipCore> core;
  bool up = false;
  int64_t up_since_us = 0;       // start of the current up period
  PeerLinks links;               // this node's peer ids -> link index
  PeerId next_peer = 1;
  int64_t uplink_free_us = 0;    // when the upload queue is empty
  int64_t next_tick_us = -1;     // the tick event that counts (others are stale)
  uint64_t bytes_sent = 0;       // in the measured window
  uint64_t bytes_received = 0;
  uint64_t events_made = 0;      // the tie-break key of the events it makes (Event::key)
  Rng loss{0};                   // its frames' loss draws: its own stream, whatever thread runs it
};

enum class EventKind : uint8_t { kFrame, kTick, kAccept, kConnectFailed, kClosed, kScript };

struct Event {
  int64_t at_us;
  // Ties at one microsecond are broken by who made the event: (maker node + 1) << 40 | the
  // maker's count of events made (0 << 40 | a count for the scripts). Unlike one global sequence,
  // this order does not depend on how the nodes are split between threads.
  uint64_t key;
  EventKind kind;
  uint32_t node;      // receiver / ticking node / scripted event index
  uint32_t link;      // kFrame, kAccept, kClosed; kConnectFailed: the dialled node
  uint8_t side;       // kFrame, kClosed: the receiving side of the link
  std::shared_ptr<const Bytes> bytes;  // kFrame
  bool operator>(const Event& other) const {
    return at_us != other.at_us ? at_us > other.at_us : key > other.key;
  }
};

using EventHeap = std::priority_queue<Event, std::vector<Event>, std::greater<>>;

// One thread's pending events, taken one virtual ms at a time in (time, key) order: a calendar
// of one bucket per ms for the next kSlots ms (almost every event: frames, ticks, accepts) and a
// heap for anything further ahead (timeouts). A bucket is sorted once when its ms is run (cheaper
// than a heap push and pop per event: at 10,000 nodes a ms holds ~1,500 events). Nothing is
// pushed for the ms being run: every event a node makes is at least 1 ms ahead (a tick) or one
// link latency (a frame), which is what lets each thread run one ms of its nodes alone.
class Calendar {
 public:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  void Push(Event event) {
    const int64_t ms = event.at_us / kUs;
    assert(ms > taken_ms_);
    if (ms < taken_ms_ + kSlots) {
      calendar_[static_cast<size_t>(ms % kSlots)].push_back(std::move(event));
      ++in_calendar_;
    } else {
      later_.push(std::move(event));
    }
  }

  // The earliest ms with an event, kNever if none.
  int64_t NextMs() const {
    int64_t next = later_.empty() ? kNever : later_.top().at_us / kUs;
    if (in_calendar_ > 0) {
      for (int64_t ms = taken_ms_ + 1; ms < taken_ms_ + kSlots && ms < next; ++ms) {
        if (!calendar_[static_cast<size_t>(ms % kSlots)].empty()) return ms;
      }
    }
    return next;
  }

  // The events of `ms`, in order; no earlier event may be pending.
  std::vector<Event>& Take(int64_t ms) {
    std::vector<Event>& slot = calendar_[static_cast<size_t>(ms % kSlots)];
    taken_ms_ = ms;
    in_calendar_ -= slot.size();  // the slot holds only this ms's events: none earlier is pending
    run_ = std::move(slot);
    slot = std::vector<Event>();  // a slot's capacity is not kept for 4 s: memory follows live events
    while (!later_.empty() && later_.top().at_us / kUs == ms) {
      run_.push_back(std::move(const_cast<Event&>(later_.top())));
      later_.pop();
    }
    std::sort(run_.begin(), run_.end(), [](const Event& a, const Event& b) { return b > a; });
    return run_;
  }

 private:
  static constexpr int64_t kSlots = 4096;

  std::vector<std::vector<Event>> calendar_ = std::vector<std::vector<Event>>(kSlots);
  size_t in_calendar_ = 0;
  int64_t taken_ms_ = -1;
  std::vector<Event> run_;
  EventHeap later_;
};

// One thread of a run: its nodes' events and what they make, and counters summed at the end.
struct Worker {
  uint32_t index = 0;
  int64_t now_us = 0;
  uint32_t node = UINT32_MAX;  // whose event runs (the maker of the events it makes); none: a script
  Calendar calendar;
  // Events made for other workers' nodes, by step parity and receiving worker: drained by the
  // receiver at the start of the next step while this one fills the other parity.
  std::array<std::vector<std::vector<Event>>, 2> outbox;
  std::array<int64_t, 2> outbox_min_ms{Calendar::kNever, Calendar::kNever};
  LinkStore links;  // the links its nodes dialled
  std::vector<Action> actions;  // of the outermost call into a core, reused
  uint64_t events = 0, frames_sent = 0, frames_lost = 0, message_frames_in = 0, deliveries = 0;
};

thread_local Worker* t_worker = nullptr;

// The threads of a run meet twice per window (about 28,000 times in dissemination-10k), mostly
// within microseconds of each other: a waiter spins a while before it sleeps (std::barrier slept
// at once, which cost more than the work of a small run's step).
class SpinBarrier {
 public:
  explicit SpinBarrier(uint32_t threads) : threads_(threads) {}
  void ArriveAndWait() {
    if (threads_ == 1) return;
    const uint32_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == threads_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      generation_.notify_all();
      return;
    }
    for (int spin = 0; spin < kSpins; ++spin) {
      if (generation_.load(std::memory_order_acquire) != generation) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    while (generation_.load(std::memory_order_acquire) == generation) generation_.wait(generation, std::memory_order_acquire);
  }

 private:
  static constexpr int kSpins = 200;  // about a microsecond: on a busy machine the other thread may be off its core
  const uint32_t threads_;
  std::atomic<uint32_t> arrived_{0};
  std::atomic<uint32_t> generation_{0};
};

Worker& W() { return *t_worker; }

uint8_t FrameType(const Bytes& bytes) { return bytes.size() > 1 ? bytes[1] : 0; }

constexpr uint8_t kMessageFrame = static_cast<uint8_t>(gossip::FrameType::kMessage);

std::string Hex(const MessageId& id, size_t bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    out.push_back(digits[id[i] >> 4]);
    out.push_back(digits[id[i] & 15]);
  }
  return out;
}

struct Message {
  MessageId id{};
  int64_t published_us = 0;
  uint32_t publisher = 0;
  std::vector<int32_t> delivered_ms;  // per node; -1: not yet
};

// A tenant's order in the market scenario, from its submit to its lease.
struct MarketOrder {
  uint32_t tenant = 0;
  uint32_t node = 0;                 // the tenant's node, which publishes for it
  int64_t submit_us = 0;
  int64_t close_us = 0;              // the bid window closes at the tenant
  market::Signed<market::Order> order;
  std::unique_ptr<bidding::BidSelection> selection;
  std::vector<market::MessageId> refused;  // bids whose accept the provider refused
  market::MessageId accept_id{};
  market::MessageId accepted_bid{};
  bool waiting = false;              // the window closed without a bid: accept the first one
  int64_t give_up_us = 0;            // ... that comes by then (the real client's late-bid wait)
  int64_t first_bid_us = -1, accept_us = -1, lease_us = -1;
  uint32_t bids = 0, bids_in_window = 0;
};

// GPU models of the market's providers and orders (one per provider; orders ask for one).
const char* const kMarketModels[] = {"h100", "h200", "a100", "l40s", "l4", "rtx4090", "a6000", "a10"};

class Simulator {
 public:
  Simulator(const Scenario& scenario, std::string* trace)
      : s_(scenario), rng_(scenario.seed), trace_(trace) {
    nodes_.resize(s_.nodes);
    Rng keys(Mix(s_.seed, 0x6b657973));
    for (uint32_t i = 0; i < s_.nodes; ++i) {
      Node& node = nodes_[i];
      market::Seed seed{};
      for (size_t b = 0; b < seed.size(); b += 8) {
        const uint64_t word = keys.Next();
        std::memcpy(seed.data() + b, &word, 8);
      }
      node.identity = std::make_unique<market::Identity>(market::Identity::FromSeed(seed));
      // Shaped like a real peer address (endpoint / identity): the core dials in address order.
      node.address = "tcp://sim:7700/" + Hex(node.identity->public_key(), node.identity->public_key().size());
      node.region = static_cast<uint32_t>(rng_.Below(std::max<uint32_t>(1, s_.net.regions)));
      node.side = i % 2;
      node.loss = Rng(Mix(s_.seed ^ 0x6c6f7373ULL, i));
      by_address_.emplace(node.address, i);
    }
    if (s_.market.providers > 0) SetUpMarket();
  }

  Results Run() {
    const auto wall_start = std::chrono::steady_clock::now();
    threads_ = ThreadCount();
    workers_ = std::vector<Worker>(threads_);
    for (uint32_t w = 0; w < threads_; ++w) {
      workers_[w].index = w;
      for (auto& boxes : workers_[w].outbox) boxes.resize(threads_);
    }
    block_ = std::max<uint32_t>(1, (s_.nodes + threads_ - 1) / threads_);
    // The market's events start scripts (a tenant's window) from inside a step: one ms per step.
    window_ms_ = market_ ? 1 : std::max<int64_t>(1, std::min(s_.net.same_region_min_us, s_.net.cross_region_min_us) / kUs);
    t_worker = &workers_[0];
    serial_ = true;
    Plan();
    // Conservative parallel simulation (docs/SIMULATION.md, "Threads"): each step runs a window
    // of up to the lookahead; the scripts, which touch several nodes, run on this thread between
    // steps (Serial), and each thread runs its own nodes' events of the window (Step).
    SpinBarrier sync(threads_);
    std::vector<std::thread> helpers;
    for (uint32_t w = 1; w < threads_; ++w) {
      helpers.emplace_back([this, w, &sync] {
        t_worker = &workers_[w];
        while (true) {
          sync.ArriveAndWait();
          if (stop_) break;
          Step(w);
          sync.ArriveAndWait();
        }
      });
    }
    while (true) {
      stop_ = !Serial();
      sync.ArriveAndWait();
      if (stop_) break;
      Step(0);
      sync.ArriveAndWait();
    }
    for (std::thread& helper : helpers) helper.join();
    serial_ = true;
    W().now_us = end_us_;
    W().node = kUnknownNode;
    for (const Worker& worker : workers_) {
      results_.events += worker.events;
      results_.frames_sent += worker.frames_sent;
      results_.frames_lost += worker.frames_lost;
      message_frames_in_ += worker.message_frames_in;
      deliveries_ += worker.deliveries;
    }
    Summarize();
    results_.threads = threads_;
    results_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    results_.peak_rss_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;
    results_.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    t_worker = nullptr;
    return std::move(results_);
  }

 private:
  int64_t NowMs() const { return kEpochMs + W().now_us / kUs; }

  // The market and tracing touch shared state from any node's event: they run on one thread.
  uint32_t ThreadCount() const {
    if (s_.market.providers > 0 || (trace_ && s_.trace_message)) return 1;
    uint32_t threads = s_.threads;
    if (threads == 0) threads = AutoThreads();
    // A step needs every event a node makes for another to land in a later ms (Calendar).
    if (std::min(s_.net.same_region_min_us, s_.net.cross_region_min_us) < kUs) threads = 1;
    return std::clamp<uint32_t>(threads, 1, std::max<uint32_t>(1, s_.nodes));
  }

  // The threads meet at every window (up to 5 ms), which pays only where a window holds enough
  // events (a few thousand nodes). Not chosen by the machine's load, so that one command runs the
  // same way each time: on a busy machine a thread waits at each meeting for the other to be
  // scheduled and `--threads 1` can be faster (3,000 nodes at load 5: 44 s wall on one, 51 s on
  // two; at load 1.4: 30 s on one, 22 s on two). The output is the same either way.
  uint32_t AutoThreads() const {
    if (s_.nodes < 2'000) return 1;
    return std::min<uint32_t>(std::max<uint32_t>(1, std::thread::hardware_concurrency()), 2);
  }

  uint32_t Owner(uint32_t node) const { return node / block_; }

  // Between steps, on the first thread alone: the scripts of the next ms with events, then the
  // window the next step runs: up to the lookahead (the smallest link latency: nothing a node
  // makes for another lands sooner) or the next script. False when the run is over.
  bool Serial() {
    serial_ = true;
    int64_t ms = scripts_due_.empty() ? Calendar::kNever : scripts_due_.top().at_us / kUs;
    for (const Worker& worker : workers_) {
      ms = std::min({ms, worker.calendar.NextMs(), worker.outbox_min_ms[parity_]});
    }
    // After the last ms ran, what is left is later than the end (in that ms or after).
    if (ms == Calendar::kNever || ms > end_us_ / kUs || ran_last_ms_) return false;
    Worker& me = W();
    while (!scripts_due_.empty() && scripts_due_.top().at_us / kUs == ms && scripts_due_.top().at_us <= end_us_) {
      const Event event = scripts_due_.top();
      scripts_due_.pop();
      me.now_us = event.at_us;
      me.node = kUnknownNode;
      ++me.events;
      scripts_[event.node]();
    }
    step_to_ms_ = std::min(ms + window_ms_, end_us_ / kUs + 1);
    // The next script that runs ends the window (one in this ms is past the end and never runs).
    if (!scripts_due_.empty() && scripts_due_.top().at_us <= end_us_) {
      step_to_ms_ = std::min(step_to_ms_, scripts_due_.top().at_us / kUs);
    }
    assert(step_to_ms_ > ms);
    ran_last_ms_ = step_to_ms_ > end_us_ / kUs;
    parity_ ^= 1;
    serial_ = false;
    return true;
  }

  // One window of worker w's nodes, ms by ms. Nodes of one window do not meet: what one makes
  // for another lands at least the lookahead later, in a later window.
  void Step(uint32_t w) {
    Worker& me = workers_[w];
    for (Worker& from : workers_) {
      std::vector<Event>& box = from.outbox[parity_ ^ 1][w];
      for (Event& event : box) me.calendar.Push(std::move(event));
      box.clear();
    }
    me.outbox_min_ms[parity_] = Calendar::kNever;
    for (int64_t ms = me.calendar.NextMs(); ms < step_to_ms_; ms = me.calendar.NextMs()) {
      std::vector<Event>& events = me.calendar.Take(ms);
      for (const Event& event : events) {
        if (event.at_us > end_us_) break;
        me.now_us = event.at_us;
        me.node = event.node;
        ++me.events;
        switch (event.kind) {
          case EventKind::kFrame: OnFrame(event); break;
          case EventKind::kTick: OnTick(event.node); break;
          case EventKind::kAccept: OnAccept(event.link); break;
          case EventKind::kConnectFailed: OnConnectFailed(event.node, event.link); break;
          case EventKind::kClosed: OnClosed(event); break;
          case EventKind::kScript: assert(false); break;
        }
      }
      events.clear();  // the frames' bytes go now
    }
  }

  void Push(Event event) {
    Worker& me = W();
    event.key = me.node == kUnknownNode ? script_events_made_++
                                        : (uint64_t{me.node} + 1) << 40 | nodes_[me.node].events_made++;
    if (event.kind == EventKind::kScript) {
      assert(serial_ || threads_ == 1);
      scripts_due_.push(std::move(event));
      return;
    }
    const uint32_t owner = Owner(event.node);
    if (serial_ || owner == me.index) {
      workers_[owner].calendar.Push(std::move(event));
      return;
    }
    int64_t& min_ms = me.outbox_min_ms[parity_];
    min_ms = std::min(min_ms, event.at_us / kUs);
    me.outbox[parity_][owner].push_back(std::move(event));
  }
  void At(int64_t at_us, std::function<void()> script) {
    scripts_.push_back(std::move(script));
    Push(Event{at_us, 0, EventKind::kScript, static_cast<uint32_t>(scripts_.size() - 1), 0, 0, nullptr});
  }

  // ---- The plan of a run: who starts, what is published, churn, partitions ----

  void Plan() {
    const int64_t publish_start_us = s_.warmup_ms * kUs;
    const int64_t spacing_us = static_cast<int64_t>(1e6 / s_.messages_per_second);
    const int64_t publish_end_us = publish_start_us + spacing_us * s_.messages;
    window_start_us_ = publish_start_us;
    end_us_ = publish_end_us + s_.drain_ms * kUs;
    if (s_.partition_at_ms) {
      end_us_ = std::max(end_us_, (*s_.partition_at_ms + s_.partition_heal_after_ms) * kUs + s_.drain_ms * kUs);
    }
    if (s_.rejoiners) {
      end_us_ = std::max(end_us_, (s_.rejoin_offline_at_ms + s_.rejoin_offline_ms) * kUs + s_.drain_ms * kUs);
    }

    // Late joiners are drawn first so the rest of the plan can avoid them.
    std::vector<uint32_t> order(s_.nodes);
    for (uint32_t i = 0; i < s_.nodes; ++i) order[i] = i;
    for (uint32_t i = s_.nodes; i > 1; --i) std::swap(order[i - 1], order[rng_.Below(i)]);
    size_t cursor = 0;
    auto take = [&](double fraction) {
      std::vector<uint32_t> chosen;
      const size_t count = static_cast<size_t>(std::llround(fraction * s_.nodes));
      while (chosen.size() < count && cursor < order.size()) chosen.push_back(order[cursor++]);
      return chosen;
    };
    const std::vector<uint32_t> joiners = take(s_.join_fraction);
    std::vector<bool> late(s_.nodes, false);
    for (uint32_t j : joiners) late[j] = true;
    for (uint32_t i = 0; i < s_.nodes; ++i) {
      // Starts are spread over the first second so the handshakes do not all land at once.
      if (!late[i]) At(static_cast<int64_t>(rng_.Below(1'000'000)), [this, i] { Start(i); });
    }
    const int64_t window_us = std::max<int64_t>(1, publish_end_us - publish_start_us);
    auto in_window = [&] { return publish_start_us + static_cast<int64_t>(rng_.Below(static_cast<uint64_t>(window_us))); };
    for (uint32_t j : joiners) {
      At(in_window(), [this, j] {
        ++results_.joined;
        Start(j);
      });
    }
    const std::vector<uint32_t> crashers = take(s_.crash_fraction);
    const size_t restarts = static_cast<size_t>(std::llround(s_.restart_fraction * crashers.size()));
    for (size_t k = 0; k < crashers.size(); ++k) {
      const uint32_t c = crashers[k];
      const int64_t at = in_window();
      At(at, [this, c] { Crash(c); });
      if (k < restarts) {
        At(at + rng_.Uniform(10'000, 30'000) * kUs, [this, c] {
          ++results_.restarted;
          Start(c);
        });
      }
    }
    for (uint32_t l : take(s_.leave_fraction)) At(in_window(), [this, l] { Leave(l); });
    std::vector<uint32_t> rejoiners;
    for (uint32_t r = 0; r < s_.rejoiners && cursor < order.size(); ++r) rejoiners.push_back(order[cursor++]);
    for (uint32_t r : rejoiners) {
      rejoiners_.push_back(r);
      At(s_.rejoin_offline_at_ms * kUs, [this, r] { Crash(r); });
      At((s_.rejoin_offline_at_ms + s_.rejoin_offline_ms) * kUs, [this, r] {
        ++results_.restarted;
        Start(r);
      });
    }
    rejoin_at_us_ = (s_.rejoin_offline_at_ms + s_.rejoin_offline_ms) * kUs;

    if (s_.partition_at_ms) {
      partition_from_us_ = *s_.partition_at_ms * kUs;
      partition_to_us_ = partition_from_us_ + s_.partition_heal_after_ms * kUs;
      At(partition_from_us_, [this] { Partition(); });
      At(partition_to_us_, [this] { partitioned_ = false; });
    }

    if (s_.net.link_failures_per_link_hour > 0) ScheduleLinkFailure();

    messages_.resize(s_.messages);
    for (uint32_t m = 0; m < s_.messages; ++m) {
      At(publish_start_us + spacing_us * m, [this, m] { PublishMessage(m); });
    }
  }

  // ---- Churn ----

  void Start(uint32_t i) {
    Node& node = nodes_[i];
    if (node.up) return;
    gossip::GossipConfig config = s_.gossip;
    config.advertised_address = node.address;
    config.verify_signature = [this](const market::Envelope& envelope) { return memo_.Verify(envelope); };
    config.keep_envelope = [this](const MessageId& id, std::span<const uint8_t> bytes) { return pool_.Keep(id, bytes); };
    node.core = std::make_unique<GossipCore>(*node.identity, config);
    node.up = true;
    node.up_since_us = W().now_us;
    node.uplink_free_us = W().now_us;
    for (uint32_t b = 0; b < s_.bootstrap && s_.nodes > 1; ++b) {
      uint32_t other = static_cast<uint32_t>(rng_.Below(s_.nodes - 1));
      if (other >= i) ++other;
      node.core->AddAddress(nodes_[other].address);
    }
    ScheduleTick(i, W().now_us);
  }

  // Silent failure: the node's links stay open at its peers, which notice by their peer timeout.
  void Crash(uint32_t i) {
    Node& node = nodes_[i];
    if (!node.up) return;
    ++results_.crashed;
    for (const auto& [peer, index] : node.links.All()) {
      Link& link = LinkAt(index);
      link.open[link.node[0] == i && link.peer[0] == peer ? 0 : 1] = false;
    }
    Stop(i);
  }

  // Graceful: every link is closed, and its peers see the close.
  void Leave(uint32_t i) {
    Node& node = nodes_[i];
    if (!node.up) return;
    ++results_.left;
    for (const auto& [peer, index] : node.links.All()) CloseLink(i, peer, /*tell_self=*/false);
    Stop(i);
  }

  void Stop(uint32_t i) {
    Node& node = nodes_[i];
    node.links.Clear();
    node.core.reset();
    node.up = false;
    node.next_tick_us = -1;
    went_down_.push_back({i, W().now_us});
  }

  void Partition() {
    partitioned_ = true;
    // Links across the cut stay open and carry nothing; the cores' peer timeouts close them.
  }

  bool Reachable(uint32_t a, uint32_t b) const {
    return !partitioned_ || nodes_[a].side == nodes_[b].side;
  }

  void ScheduleLinkFailure() {
    // Poisson arrivals over the links open at each moment, approximated with the expected count.
    const double per_us = s_.net.link_failures_per_link_hour / 3.6e9;
    const double open = std::max<double>(1.0, static_cast<double>(s_.nodes) * s_.gossip.target_outbound);
    const double rate = per_us * open;
    const int64_t gap = static_cast<int64_t>(-std::log(1.0 - rng_.Unit()) / rate) + 1;
    At(W().now_us + gap, [this] {
      // A random link of a random node (in the node's peer order: link numbers depend on the
      // threads).
      for (int attempt = 0; attempt < 16; ++attempt) {
        const uint32_t i = static_cast<uint32_t>(rng_.Below(s_.nodes));
        if (!nodes_[i].up || nodes_[i].links.empty()) continue;
        const auto all = nodes_[i].links.All();
        const auto [peer, index] = all[rng_.Below(all.size())];
        const Link& link = LinkAt(index);
        if (link.open[0] && link.open[1]) {
          ++results_.link_failures;
          CloseLink(i, peer, /*tell_self=*/true);
          break;
        }
      }
      ScheduleLinkFailure();
    });
  }

  // ---- Links ----

  int64_t LatencyUs(uint32_t a, uint32_t b) const {
    const uint64_t h = Mix(s_.seed ^ 0x6c696e6bULL, (static_cast<uint64_t>(std::min(a, b)) << 32) | std::max(a, b));
    const bool same = nodes_[a].region == nodes_[b].region;
    const int64_t lo = same ? s_.net.same_region_min_us : s_.net.cross_region_min_us;
    const int64_t hi = same ? s_.net.same_region_max_us : s_.net.cross_region_max_us;
    return lo + static_cast<int64_t>(h % static_cast<uint64_t>(hi - lo + 1));
  }

  Link& LinkAt(uint32_t index) { return workers_[index % threads_].links.At(index / threads_); }

  // Closes a link from node i's side; the other side hears of it one latency later (the TCP
  // close travels like a frame), if it still has the link then.
  void CloseLink(uint32_t i, PeerId peer, bool tell_self) {
    const uint32_t index = nodes_[i].links.Find(peer);
    if (index == PeerLinks::kNone) return;
    nodes_[i].links.Erase(peer);
    Link& link = LinkAt(index);
    const int mine = link.node[0] == i && link.peer[0] == peer ? 0 : 1;
    link.open[mine] = false;
    if (tell_self && nodes_[i].up) {
      nodes_[i].core->OnDisconnected(peer, NowMs());
      Reschedule(i);
    }
    const int other = 1 - mine;
    Push(Event{W().now_us + link.latency_us, 0, EventKind::kClosed, link.node[other], index, static_cast<uint8_t>(other), nullptr});
  }

  // The far side's close reaches this side. An accept always comes before it: it left first.
  void OnClosed(const Event& event) {
    Link& link = LinkAt(event.link);
    if (!link.open[event.side]) return;  // closed here too, or this node went down
    link.open[event.side] = false;
    Node& node = nodes_[event.node];
    const PeerId peer = link.peer[event.side];
    if (node.links.Find(peer) == event.link) node.links.Erase(peer);
    if (node.up) {
      node.core->OnDisconnected(peer, NowMs());
      Reschedule(event.node);
    }
  }

  void Dial(uint32_t i, const std::string& address) {
    auto target = by_address_.find(address);
    if (target == by_address_.end() || !nodes_[target->second].up || !Reachable(i, target->second)) {
      const uint32_t to = target == by_address_.end() ? kUnknownNode : target->second;
      Push(Event{W().now_us + s_.net.connect_timeout_us, 0, EventKind::kConnectFailed, i, to, 0, nullptr});
      return;
    }
    const uint32_t j = target->second;
    Node& node = nodes_[i];
    const PeerId peer = node.next_peer++;
    const int64_t latency_us = LatencyUs(i, j);
    const uint32_t index = W().links.Add(Link{{i, j}, {peer, 0}, {true, false}, latency_us}, W().index, threads_);
    node.links.Set(peer, index);
    // The far side accepts when the connection reaches it, before the HELLO we send now.
    Push(Event{W().now_us + latency_us, 0, EventKind::kAccept, j, index, 0, nullptr});
    std::vector<Action> out;
    node.core->OnConnected(peer, Direction::kOutbound, address, NowMs(), out);
    Apply(i, out);
    Reschedule(i);
  }

  void OnAccept(uint32_t index) {
    // Accepted even if the dialler has closed its side since (reading that would race with its
    // thread): its close comes after, as on TCP.
    Link& link = LinkAt(index);
    const uint32_t j = link.node[1];
    if (!nodes_[j].up || !Reachable(link.node[0], j)) {  // refused: the dialler hears it a latency later
      Push(Event{W().now_us + link.latency_us, 0, EventKind::kClosed, link.node[0], index, 0, nullptr});
      return;
    }
    Node& node = nodes_[j];
    const PeerId peer = node.next_peer++;
    link.peer[1] = peer;
    link.open[1] = true;
    node.links.Set(peer, index);
    std::vector<Action> out;
    node.core->OnConnected(peer, Direction::kInbound, "", NowMs(), out);
    Apply(j, out);
    Reschedule(j);
  }

  void OnConnectFailed(uint32_t i, uint32_t to) {
    if (!nodes_[i].up || to == kUnknownNode) return;
    nodes_[i].core->OnConnectFailed(nodes_[to].address, NowMs());
    Reschedule(i);
  }

  // ---- Frames ----

  void Send(uint32_t i, PeerId peer, std::shared_ptr<const Bytes> bytes) {
    Node& node = nodes_[i];
    const uint32_t index = node.links.Find(peer);
    if (index == PeerLinks::kNone) return;
    const Link& link = LinkAt(index);
    const int mine = link.node[0] == i && link.peer[0] == peer ? 0 : 1;
    const uint64_t wire = bytes->size() + s_.net.frame_overhead_bytes;
    if (W().now_us >= window_start_us_) node.bytes_sent += wire;
    ++W().frames_sent;
    const int64_t serialize_us = static_cast<int64_t>(wire * 1'000'000 / std::max<uint64_t>(1, s_.net.upload_bytes_per_second));
    node.uplink_free_us = std::max(node.uplink_free_us, W().now_us) + serialize_us;
    if (Tracing()) TraceFrame("send", i, link.node[1 - mine], *bytes, node.uplink_free_us + link.latency_us);
    if (s_.net.loss > 0 && node.loss.Unit() < s_.net.loss) {
      ++W().frames_lost;
      return;
    }
    Push(Event{node.uplink_free_us + link.latency_us, 0, EventKind::kFrame, link.node[1 - mine], index,
               static_cast<uint8_t>(1 - mine), std::move(bytes)});
  }

  void OnFrame(const Event& event) {
    const Link& link = LinkAt(event.link);
    Node& node = nodes_[event.node];
    if (!link.open[event.side] || !node.up || node.links.Find(link.peer[event.side]) != event.link ||
        !Reachable(link.node[0], link.node[1])) {
      ++W().frames_lost;
      return;
    }
    const uint8_t type = FrameType(*event.bytes);
    if (W().now_us >= window_start_us_) node.bytes_received += event.bytes->size() + s_.net.frame_overhead_bytes;
    if (type == kMessageFrame) ++W().message_frames_in;
    if (Tracing()) TraceFrame("recv", link.node[1 - event.side], event.node, *event.bytes, W().now_us);
    std::vector<Action>& out = TopLevelActions();
    node.core->HandleFrame(link.peer[event.side], *event.bytes, NowMs(), out);
    Apply(event.node, out);
    Reschedule(event.node);
  }

  // ---- Ticks ----

  // After every input a node's next tick is where its core says it has work,
  // max(NextDeadline(), now + 1 ms), as gpumartd's driver does; an input only ever brings the tick
  // forward (a tick that finds nothing due costs one NextDeadline and is rescheduled).
  void Reschedule(uint32_t i) {
    Node& node = nodes_[i];
    if (!node.up) return;
    const int64_t at_us = TickAtUs(node);
    if (node.next_tick_us < 0 || at_us < node.next_tick_us) ScheduleTick(i, at_us);
  }

  int64_t TickAtUs(const Node& node) const {
    const int64_t deadline_ms = node.core->NextDeadline();
    const int64_t soonest_us = W().now_us + kUs;
    if (deadline_ms == std::numeric_limits<int64_t>::max()) return end_us_ + kUs;  // nothing pending
    if (deadline_ms <= NowMs()) return soonest_us;
    return std::max(soonest_us, (deadline_ms - kEpochMs) * kUs);
  }

  void ScheduleTick(uint32_t i, int64_t at_us) {
    nodes_[i].next_tick_us = at_us;
    Push(Event{at_us, 0, EventKind::kTick, i, 0, 0, nullptr});
  }

  void OnTick(uint32_t i) {
    Node& node = nodes_[i];
    if (!node.up || node.next_tick_us != W().now_us) return;  // stale
    std::vector<Action>& out = TopLevelActions();
    node.core->Tick(NowMs(), out);
    Apply(i, out);
    if (node.up) ScheduleTick(i, TickAtUs(node));
  }

  // ---- Actions ----

  // The action list of a frame or a tick event, the outermost calls into a core (the calls they
  // lead to, e.g. a dial, use their own): one buffer reused instead of one allocated per event.
  std::vector<Action>& TopLevelActions() {
    W().actions.clear();
    return W().actions;
  }

  void Apply(uint32_t i, std::vector<Action>& actions) {
    // A broadcast emits the same frame to each eager peer: those share one buffer in flight.
    std::shared_ptr<const Bytes> last;
    for (auto& action : actions) {
      if (!nodes_[i].up) return;
      if (auto* send = std::get_if<gossip::SendFrame>(&action)) {
        if (!last || *last != send->frame) last = std::make_shared<const Bytes>(std::move(send->frame));
        Send(i, send->peer, last);
      } else if (auto* deliver = std::get_if<gossip::Deliver>(&action)) {
        OnDeliver(i, deliver->id);
        if (market_) OnMarketMessage(i, deliver->id, deliver->envelope);
      } else if (auto* disconnect = std::get_if<gossip::DisconnectPeer>(&action)) {
        CloseLink(i, disconnect->peer, /*tell_self=*/false);
      } else if (auto* connect = std::get_if<gossip::ConnectTo>(&action)) {
        Dial(i, connect->address);
      }
      // PeerVerdict: honest nodes only; the drop counters record the reasons. PeerReady: the
      // simulated transport binds identities by construction.
    }
  }

  // ---- Messages ----

  void PublishMessage(uint32_t m) {
    if (market_) return SubmitOrder(m);
    // A random live node publishes; skip nodes that are down.
    uint32_t publisher = static_cast<uint32_t>(rng_.Below(s_.nodes));
    for (uint32_t k = 0; k < s_.nodes && !nodes_[publisher].up; ++k) publisher = (publisher + 1) % s_.nodes;
    Node& node = nodes_[publisher];
    market::Close close;
    const uint64_t tag = rng_.Next();
    std::memcpy(close.lease_id.data(), &tag, sizeof tag);
    close.closed_ms = NowMs();
    const size_t pad = s_.message_bytes > 180 ? s_.message_bytes - 180 : 0;
    close.note = std::string(std::min<size_t>(pad, market::limits::kMaxTextBytes), 'x');
    const Bytes envelope = market::EncodeEnvelope(
        market::MakeSigned(*node.identity, close, NowMs(), s_.message_ttl_ms, (static_cast<uint64_t>(m) << 20) | publisher).envelope);
    PublishTracked(m, publisher, envelope);
  }

  // Publishes message m (in publish order) at `publisher` and tracks its deliveries.
  void PublishTracked(uint32_t m, uint32_t publisher, const Bytes& envelope) {
    Node& node = nodes_[publisher];
    Message& message = messages_[m];
    message.id = gossip::WireMessageId(envelope).value();
    message.published_us = W().now_us;
    message.publisher = publisher;
    message.delivered_ms.assign(s_.nodes, -1);
    message.delivered_ms[publisher] = 0;
    by_id_.emplace(message.id, m);
    if (s_.trace_message == m) {
      Trace("publish msg " + std::to_string(m) + " id " + Hex(message.id, 8) + " at node " + std::to_string(publisher) +
            " (" + std::to_string(envelope.size()) + " bytes)");
    }
    std::vector<Action> out;
    Status status = node.core->Publish(envelope, NowMs(), out);
    if (!status.ok()) Trace("publish failed: " + status.ToString());
    Apply(publisher, out);
    Reschedule(publisher);
  }

  void OnDeliver(uint32_t i, const MessageId& id) {
    ++W().deliveries;  // every message, tracked or not (Bids, Accepts, Leases): copies are per delivery
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    Message& message = messages_[it->second];
    if (message.delivered_ms[i] < 0) {
      message.delivered_ms[i] = static_cast<int32_t>((W().now_us - message.published_us) / kUs);
      if (s_.trace_message == it->second) Trace("deliver at node " + std::to_string(i));
    }
  }

  // ---- The market (docs/SIMULATION.md, "The market") ----

  void SetUpMarket() {
    const MarketModel& m = s_.market;
    market_ = true;
    nonces_ = Rng(Mix(s_.seed, 0x6e6f6e6365ULL));
    Rng prices(Mix(s_.seed, 0x6d61726b6574ULL));
    engines_.resize(s_.nodes);
    for (uint32_t p = 0; p < std::min(m.providers, s_.nodes); ++p) {
      const char* model = kMarketModels[p % std::max<uint32_t>(1, std::min<uint32_t>(m.gpu_models, 8))];
      market::Offer inventory;
      inventory.name = "sim provider " + std::to_string(p);
      inventory.attributes = {{"region", "r" + std::to_string(nodes_[p].region)}};
      inventory.nodes = {market::NodeCapacity{"n1", 64'000, 512 * market::kGi, 2 * market::kTi,
                                              {market::GpuDevices{"nvidia", model, 80 * market::kGi,
                                                                  market::GpuInterface::kPcie,
                                                                  market::CudaVersion{12, 4}, 8}}}};
      market::PriceTable table;
      table.denom = "uakt";
      table.gpu = {{"*", 60'000 + prices.Below(80'000)}};
      table.cpu = 1'000;
      table.memory = 200;
      table.storage = 10;
      bidding::PricingConfig pricing;
      pricing.tables = {table};
      bidding::BidEngineOptions options;
      options.bid_ttl_ms = m.bid_ttl_ms;
      options.lease_message_ttl_ms = m.order_ttl_ms;
      // Seeded nonces: the engine's signed messages, and so the whole run, repeat with the seed.
      options.nonce_source = [this] { return nonces_.Next(); };
      auto engine = bidding::BidEngine::Create(*nodes_[p].identity, std::move(inventory), std::move(pricing), options);
      if (!engine.ok()) {
        Trace("provider " + std::to_string(p) + ": " + engine.status().ToString());
        continue;
      }
      engines_[p] = std::move(*engine);
      provider_node_.emplace(nodes_[p].identity->public_key(), p);
    }
    tenant_node_.resize(m.tenants);
    for (uint32_t t = 0; t < m.tenants; ++t) tenant_node_[t] = static_cast<uint32_t>(Mix(s_.seed ^ 0x74656e616e74ULL, t) % s_.nodes);
  }

  const market::Identity& Tenant(uint32_t t) {
    auto it = tenants_.find(t);
    if (it != tenants_.end()) return it->second;
    market::Seed seed{};
    Rng keys(Mix(s_.seed ^ 0x7465ULL, t));
    for (size_t b = 0; b < seed.size(); b += 8) {
      const uint64_t word = keys.Next();
      std::memcpy(seed.data() + b, &word, 8);
    }
    return tenants_.emplace(t, market::Identity::FromSeed(seed)).first->second;
  }

  int64_t TenantLinkUs() const { return s_.market.tenant_link_ms * kUs; }

  // Message m is an Order of a random tenant: signed at the tenant now, published by its node one
  // tenant link later; the tenant's bid window closes bid_window_ms after the submit.
  void SubmitOrder(uint32_t m) {
    const uint32_t t = static_cast<uint32_t>(rng_.Below(std::max<uint32_t>(1, s_.market.tenants)));
    const uint32_t node = tenant_node_.empty() ? 0 : tenant_node_[t];
    market::Order order;
    order.group = "job";
    market::ServiceRequest service;
    service.name = "worker";
    service.profile = "worker";
    service.resources.cpu_millis = 4'000;
    service.resources.memory_bytes = 16 * market::kGi;
    service.resources.storage = {market::StorageVolume{"default", 10 * market::kGi, std::nullopt, false}};
    service.resources.gpu.units = 1 + static_cast<uint32_t>(rng_.Below(2));
    const uint32_t models = std::max<uint32_t>(1, std::min<uint32_t>(s_.market.gpu_models, 8));
    service.resources.gpu.options = {market::GpuOption{"nvidia", kMarketModels[rng_.Below(models)], 24 * market::kGi, std::nullopt}};
    service.price_cap = market::PriceCap{"uakt", 1'000'000, market::PerBlockToPerHour(1'000'000)};
    order.services = {service};
    const uint64_t nonce = rng_.Next();
    const int64_t submit_us = W().now_us;
    auto signed_order = market::MakeSigned(Tenant(t), order, NowMs(), s_.market.order_ttl_ms, nonce);
    const uint32_t index = static_cast<uint32_t>(orders_.size());
    MarketOrder& state = orders_.emplace_back();
    state.tenant = t;
    state.node = node;
    state.submit_us = submit_us;
    state.close_us = submit_us + s_.market.bid_window_ms * kUs;
    // As bidding::TenantSession: the first bid after an empty window is accepted until the
    // late-bid wait ends, never after the order's expiry.
    state.give_up_us = std::min(state.close_us + bidding::TenantSessionOptions{}.late_bid_wait_ms * kUs,
                                submit_us + s_.market.order_ttl_ms * kUs);
    state.selection = std::make_unique<bidding::BidSelection>(signed_order, market::Policy::kPreference);
    state.order = std::move(signed_order);
    order_index_.emplace(state.order.id, index);
    At(W().now_us + TenantLinkUs(), [this, m, index] {
      MarketOrder& o = orders_[index];
      if (!nodes_[o.node].up) return;
      const Bytes wire = market::EncodeEnvelope(o.order.envelope);
      PublishTracked(m, o.node, wire);
      OnMarketMessage(o.node, o.order.id, wire);  // the node's own provider sees it too
    });
    At(state.close_us, [this, index] { CloseWindow(index); });
  }

  // A message published by node i for its provider or tenant: sent by the core, and seen by the
  // node's own provider and tenants, to which the core does not deliver what the node publishes.
  void PublishLocal(uint32_t i, const Bytes& wire) {
    if (!nodes_[i].up) return;
    std::vector<Action> out;
    Status status = nodes_[i].core->Publish(wire, NowMs(), out);
    if (!status.ok()) Trace("market publish at node " + std::to_string(i) + " failed: " + status.ToString());
    Apply(i, out);
    Reschedule(i);
    if (status.ok()) OnMarketMessage(i, gossip::WireMessageId(wire).value(), wire);
  }

  // A verified message at node i (the core checked it): the node's provider and tenants act on it.
  // Bodies are decoded here without a second signature check, as gpumartd hands the core's
  // verified deliveries to its engine.
  void OnMarketMessage(uint32_t i, const MessageId& id, const Bytes& wire) {
    if (wire.size() < 3) return;
    const auto type = static_cast<market::MessageType>(wire[2]);  // canonical envelope: byte 2
    switch (type) {
      case market::MessageType::kOrder: {
        if (!engines_[i]) return;
        auto order_it = order_index_.find(id);
        if (order_it == order_index_.end()) return;
        RunEngine(i, engines_[i]->OnOrder(orders_[order_it->second].order, NowMs()));
        return;
      }
      case market::MessageType::kBid: {
        auto bid = Decode<market::Bid>(id, wire);
        if (!bid) return;
        auto order_it = order_index_.find(bid->body.order_id);
        if (order_it == order_index_.end() || orders_[order_it->second].node != i) return;
        OnBidAtTenant(order_it->second, *bid);
        return;
      }
      case market::MessageType::kAccept: {
        if (!engines_[i]) return;
        auto accept = Decode<market::Accept>(id, wire);
        if (!accept || accept->body.provider != nodes_[i].identity->public_key()) return;
        RunEngine(i, engines_[i]->OnAccept(*accept, wire, NowMs()));
        return;
      }
      case market::MessageType::kLease: {
        auto lease = Decode<market::Lease>(id, wire);
        if (!lease) return;
        if (engines_[i]) RunEngine(i, engines_[i]->OnLease(*lease, NowMs()));
        auto order_it = order_index_.find(lease->body.order_id);
        if (order_it == order_index_.end()) return;
        MarketOrder& o = orders_[order_it->second];
        if (o.node == i && o.lease_us < 0 && lease->body.bid_id == o.accepted_bid) {
          o.lease_us = W().now_us + TenantLinkUs();
        }
        return;
      }
      case market::MessageType::kClose: {
        // A refusal of an accept: a Close whose lease id is the Accept's id.
        auto close = Decode<market::Close>(id, wire);
        if (!close) return;
        auto accept_it = accept_index_.find(close->body.lease_id);
        if (accept_it == accept_index_.end()) return;
        MarketOrder& o = orders_[accept_it->second];
        if (o.node != i || o.lease_us >= 0 || o.accept_id != close->body.lease_id) return;
        ++results_.market_refused;
        o.refused.push_back(o.accepted_bid);
        const int64_t at = W().now_us + TenantLinkUs();
        const uint32_t index = accept_it->second;
        At(at, [this, index] { AcceptBest(index); });
        return;
      }
      default: return;
    }
  }

  template <typename Body>
  static Result<Body> DecodeBodyOf(std::span<const uint8_t> body) {
    if constexpr (std::is_same_v<Body, market::Bid>) return market::DecodeBid(body);
    else if constexpr (std::is_same_v<Body, market::Accept>) return market::DecodeAccept(body);
    else if constexpr (std::is_same_v<Body, market::Lease>) return market::DecodeLease(body);
    else return market::DecodeClose(body);
  }

  template <typename Body>
  std::optional<market::Signed<Body>> Decode(const MessageId& id, const Bytes& wire) {
    Result<market::Envelope> envelope = market::DecodeEnvelope(wire);
    if (!envelope.ok()) return std::nullopt;
    Result<Body> body = DecodeBodyOf<Body>(envelope->body);
    if (!body.ok()) return std::nullopt;
    return market::Signed<Body>{std::move(*envelope), id, std::move(*body)};
  }

  // Carries out what a provider's engine asked: reservations need no ledger here; a lease is
  // durable ledger_commit_ms later (then the engine publishes it); bids, leases and refusals go
  // out through the node's core.
  void RunEngine(uint32_t i, bidding::EngineStep step) {
    bidding::BidEngine& engine = *engines_[i];
    if (auto due = engine.NextDeadline(); due && *due <= NowMs()) {
      bidding::EngineStep ticked = engine.Tick(NowMs());
      for (auto& bid : ticked.bids) step.bids.push_back(std::move(bid));
    }
    for (const auto& bid : step.bids) {
      ++results_.bids_made;
      PublishLocal(i, market::EncodeEnvelope(bid.envelope));
    }
    for (const auto& record : step.record_leases) {
      const MessageId bid_id = record.bid_id;
      At(W().now_us + s_.market.ledger_commit_ms * kUs, [this, i, bid_id] {
        if (!nodes_[i].up) return;
        RunEngine(i, engines_[i]->OnLeaseStored(bid_id, Status::Ok(), NowMs()));
      });
    }
    for (const auto& lease : step.leases) PublishLocal(i, market::EncodeEnvelope(lease.envelope));
    for (const auto& refusal : step.refusals) PublishLocal(i, market::EncodeEnvelope(refusal.close.envelope));
  }

  void OnBidAtTenant(uint32_t index, const market::Signed<market::Bid>& bid) {
    MarketOrder& o = orders_[index];
    const int64_t seen_us = W().now_us + TenantLinkUs();
    ++o.bids;
    if (o.first_bid_us < 0) o.first_bid_us = seen_us;
    // The tenant keeps every bid (a refused accept falls back on the next); it ranks at the close.
    const bidding::BidCheck check = o.selection->Add(bid, (kEpochMs * kUs + seen_us) / kUs, /*reputation_ppm=*/0);
    if (seen_us <= o.close_us) ++o.bids_in_window;
    if (check.ok() && o.waiting && seen_us <= o.give_up_us) {
      o.waiting = false;
      At(seen_us, [this, index] { AcceptBest(index); });
    }
  }

  void CloseWindow(uint32_t index) {
    MarketOrder& o = orders_[index];
    if (o.accept_us >= 0) return;
    AcceptBest(index);
  }

  // The tenant accepts its best bid not refused yet (none: it waits for the next bid); the Accept
  // reaches its node one tenant link later and is routed back along the bid's path.
  void AcceptBest(uint32_t index) {
    MarketOrder& o = orders_[index];
    if (o.lease_us >= 0) return;
    const market::Signed<market::Bid>* best = nullptr;
    for (const bidding::SelectedBid* selected : o.selection->Ranking(NowMs())) {
      if (std::find(o.refused.begin(), o.refused.end(), selected->bid.id) == o.refused.end()) {
        best = &selected->bid;
        break;
      }
    }
    if (!best) {
      o.waiting = true;
      return;
    }
    market::Accept accept{o.order.id, best->id, best->envelope.signer};
    auto signed_accept = market::MakeSigned(Tenant(o.tenant), accept, NowMs(), s_.market.order_ttl_ms, rng_.Next());
    if (o.accept_us < 0) o.accept_us = W().now_us;
    o.accept_id = signed_accept.id;
    o.accepted_bid = best->id;
    accept_index_[signed_accept.id] = index;
    Bytes wire = market::EncodeEnvelope(signed_accept.envelope);
    const uint32_t node = o.node;
    At(W().now_us + TenantLinkUs(), [this, node, wire = std::move(wire)] { PublishLocal(node, wire); });
  }

  void SummarizeMarket() {
    Results& r = results_;
    r.market_orders = static_cast<uint32_t>(orders_.size());
    std::vector<int64_t> to_lease, to_bid, accept_to_lease;
    uint64_t bids = 0, in_window = 0;
    for (const MarketOrder& o : orders_) {
      bids += o.bids;
      in_window += o.bids_in_window;
      if (o.first_bid_us < 0) ++r.market_no_bid;
      else to_bid.push_back((o.first_bid_us - o.submit_us) / kUs);
      if (o.lease_us < 0 || o.lease_us > end_us_) continue;
      ++r.market_leased;
      to_lease.push_back((o.lease_us - o.submit_us) / kUs);
      accept_to_lease.push_back((o.lease_us - o.accept_us) / kUs);
    }
    std::array<uint64_t, bidding::kSkipReasons> skipped{};
    for (const auto& engine : engines_) {
      if (!engine) continue;
      for (size_t k = 0; k < bidding::kSkipReasons; ++k) skipped[k] += engine->counters().skipped[k];
    }
    for (size_t k = 0; k < bidding::kSkipReasons; ++k) {
      if (skipped[k]) r.market_skips.emplace_back(std::string(bidding::ToString(static_cast<bidding::SkipReason>(k))), skipped[k]);
    }
    r.submit_to_lease = Percentiles(to_lease, r.market_orders);
    r.submit_to_first_bid = Percentiles(to_bid, r.market_orders);
    r.accept_to_lease = Percentiles(accept_to_lease, r.market_leased);
    if (r.market_orders) {
      r.bids_per_order = static_cast<double>(bids) / r.market_orders;
      r.bids_in_window_per_order = static_cast<double>(in_window) / r.market_orders;
    }
  }

  // ---- Tracing ----

  bool Tracing() const { return trace_ && s_.trace_message && *s_.trace_message < messages_.size() &&
                                 messages_[*s_.trace_message].published_us > 0; }

  void Trace(const std::string& line) {
    if (!trace_) return;
    char time[32];
    std::snprintf(time, sizeof time, "%10.3f ms  ", static_cast<double>(W().now_us) / kUs);
    *trace_ += time + line + "\n";
  }

  // Prints frames that carry or name the traced message (decoding every frame only while tracing).
  void TraceFrame(const char* what, uint32_t from, uint32_t to, const Bytes& bytes, int64_t at_us) {
    const MessageId& id = messages_[*s_.trace_message].id;
    Result<gossip::Frame> frame = gossip::DecodeFrame(bytes);
    if (!frame.ok()) return;
    std::string kind;
    if (auto* message = std::get_if<gossip::MessageFrame>(&*frame)) {
      if (gossip::WireMessageId(message->envelope) == id) kind = "MESSAGE hops " + std::to_string(message->hops);
    } else if (auto* ihave = std::get_if<gossip::IhaveFrame>(&*frame)) {
      if (std::find(ihave->ids.begin(), ihave->ids.end(), id) != ihave->ids.end()) kind = "IHAVE";
    } else if (auto* graft = std::get_if<gossip::GraftFrame>(&*frame)) {
      if (std::find(graft->ids.begin(), graft->ids.end(), id) != graft->ids.end()) kind = "GRAFT";
    }
    if (kind.empty()) return;
    Trace(std::string(what) + " " + kind + " " + std::to_string(from) + " -> " + std::to_string(to) +
          (std::string(what) == "send" ? " (arrives " + std::to_string(static_cast<double>(at_us) / kUs) + " ms)" : ""));
  }

  // ---- Results ----

  // Was node i up from `from_us` to the end of the run without a break?
  bool UpThroughout(uint32_t i, int64_t from_us) const {
    return nodes_[i].up && nodes_[i].up_since_us <= from_us;
  }

  // Nearest rank over `total` messages; a message that never got there counts as infinitely late
  // (so a percentile it falls in is -1).
  static Distribution Percentiles(std::vector<int64_t> values, uint32_t total) {
    Distribution d;
    std::sort(values.begin(), values.end());
    auto rank = [&](double q) -> int64_t {
      const size_t r = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * total)));
      return r <= values.size() ? values[r - 1] : -1;
    };
    d.p50 = rank(0.5);
    d.p99 = rank(0.99);
    d.max = values.size() == total && !values.empty() ? values.back() : -1;
    return d;
  }

  void Summarize() {
    Results& r = results_;
    r.scenario = s_.name;
    r.seed = s_.seed;
    r.nodes = s_.nodes;
    r.messages = s_.messages;
    r.virtual_ms = end_us_ / kUs;
    std::vector<int64_t> t50, t99, t999, t100;
    int64_t partition_last_us = -1;
    bool partition_all = true;
    std::vector<int32_t> times;
    for (uint32_t m = 0; m < messages_.size(); ++m) {
      const Message& message = messages_[m];
      if (message.delivered_ms.empty()) continue;
      times.clear();
      uint32_t eligible = 0;
      for (uint32_t i = 0; i < s_.nodes; ++i) {
        if (!UpThroughout(i, message.published_us)) continue;
        ++eligible;
        if (message.delivered_ms[i] >= 0) times.push_back(message.delivered_ms[i]);
      }
      if (times.empty() && !UpThroughout(message.publisher, message.published_us)) {
        ++r.messages_died_with_author;  // the author crashed before any live node had it
        continue;
      }
      std::sort(times.begin(), times.end());
      auto reach = [&](double q, std::vector<int64_t>& into) {
        const size_t need = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * eligible)));
        if (times.size() >= need) into.push_back(times[need - 1]);
      };
      reach(0.5, t50);
      reach(0.99, t99);
      reach(0.999, t999);
      reach(1.0, t100);
      if (times.size() < eligible) {
        ++r.messages_incomplete;
        r.deliveries_missing += eligible - times.size();
      }
      const bool in_partition = s_.partition_at_ms && message.published_us >= partition_from_us_ &&
                                message.published_us < partition_to_us_;
      if (in_partition) {
        if (times.size() < eligible) {
          partition_all = false;
          r.partition_missing += eligible - times.size();
        } else if (!times.empty()) {
          partition_last_us = std::max(partition_last_us, message.published_us + int64_t{times.back()} * kUs);
        }
      }
    }
    const uint32_t count = static_cast<uint32_t>(std::count_if(messages_.begin(), messages_.end(),
                                                               [](const Message& m) { return !m.delivered_ms.empty(); })) -
                           r.messages_died_with_author;
    r.to50 = Percentiles(t50, count);
    r.to99 = Percentiles(t99, count);
    r.to999 = Percentiles(t999, count);
    r.to100 = Percentiles(t100, count);
    if (s_.partition_at_ms && partition_all) {
      r.partition_convergence_ms = std::max<int64_t>(0, partition_last_us - partition_to_us_) / kUs;
    }
    // Rejoiners: every message still live at the comeback (published before it, not expired).
    if (!rejoiners_.empty()) {
      int64_t last_us = rejoin_at_us_;
      bool all = true;
      for (const Message& message : messages_) {
        if (message.delivered_ms.empty() || message.published_us >= rejoin_at_us_) continue;
        if (message.published_us + s_.message_ttl_ms * kUs <= rejoin_at_us_) continue;
        for (uint32_t i : rejoiners_) {
          if (!nodes_[i].up) continue;
          const int32_t at = message.delivered_ms[i];
          if (at < 0) {
            all = false;
            ++r.rejoin_missing;
          } else {
            last_us = std::max(last_us, message.published_us + int64_t{at} * kUs);
          }
        }
      }
      if (all) r.rejoin_convergence_ms = (last_us - rejoin_at_us_) / kUs;
      for (uint32_t i : rejoiners_) r.rejoin_bytes += nodes_[i].bytes_sent + nodes_[i].bytes_received;
    }
    if (market_) SummarizeMarket();
    r.copies_per_delivery = deliveries_ ? static_cast<double>(message_frames_in_) / static_cast<double>(deliveries_) : 0;
    // Upload per node per second over the measured window, among nodes up at its end.
    const double seconds = std::max<double>(1e-3, static_cast<double>(end_us_ - window_start_us_) / 1e6);
    double sum = 0;
    uint32_t up = 0;
    for (const Node& node : nodes_) {
      if (!node.up) continue;
      ++up;
      const double rate = static_cast<double>(node.bytes_sent) / seconds;
      sum += rate;
      r.upload_max_bps = std::max(r.upload_max_bps, rate);
    }
    r.upload_mean_bps = up ? sum / up : 0;
    size_t link_ends = 0, eager_ends = 0;
    uint64_t busiest_bytes = 0;
    for (uint32_t i = 0; i < s_.nodes; ++i) {
      const Node& node = nodes_[i];
      if (!node.up) continue;
      link_ends += node.links.size();
      r.links_max = std::max<uint32_t>(r.links_max, static_cast<uint32_t>(node.links.size()));
      uint32_t eager = 0, inbound = 0;
      for (const auto& [peer, index] : node.links.All()) {
        eager += node.core->IsEager(peer);
        inbound += LinkAt(index).node[1] == i;
      }
      eager_ends += eager;
      const gossip::GossipStats& stats = node.core->stats();
      r.stats.eager_sent += stats.eager_sent;
      r.stats.grafts_sent += stats.grafts_sent;
      r.stats.prunes_sent += stats.prunes_sent;
      r.stats.ihave_ids_sent += stats.ihave_ids_sent;
      r.stats.reconciled += stats.reconciled;
      r.eager_max = std::max(r.eager_max, eager);
      if (node.bytes_sent > busiest_bytes) {
        busiest_bytes = node.bytes_sent;
        r.busiest_links = static_cast<uint32_t>(node.links.size());
        r.busiest_inbound = inbound;
        r.busiest_eager = eager;
      }
    }
    r.links_mean = up ? static_cast<double>(link_ends) / up : 0;
    r.eager_mean = up ? static_cast<double>(eager_ends) / up : 0;
    gossip::DropCounters drops;
    for (const Node& node : nodes_) {
      if (!node.up) continue;
      for (size_t k = 0; k < gossip::kDropCount; ++k) drops.by_reason[k] += node.core->drops().by_reason[k];
    }
    for (size_t k = 0; k < gossip::kDropCount; ++k) {
      if (drops.by_reason[k]) r.drops.emplace_back(std::string(gossip::ToString(static_cast<gossip::Drop>(k))), drops.by_reason[k]);
    }
  }

  const Scenario& s_;
  Rng rng_;
  std::string* trace_;
  int64_t end_us_ = 0;
  int64_t window_start_us_ = 0;
  uint32_t threads_ = 1;
  uint32_t block_ = 1;              // nodes per thread: node i runs on thread i / block_
  std::vector<Worker> workers_;
  bool serial_ = true;              // in the serial phase (or before or after the steps)
  bool stop_ = false;
  bool ran_last_ms_ = false;
  int parity_ = 0;                  // of the step: which outboxes are filled, which drained
  int64_t window_ms_ = 1;           // the most ms a step runs: the lookahead
  int64_t step_to_ms_ = 0;          // the step runs the ms before this
  EventHeap scripts_due_;
  uint64_t script_events_made_ = 0;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, uint32_t> by_address_;
  std::vector<std::function<void()>> scripts_;
  SignatureMemo memo_;
  EnvelopePool pool_;
  std::vector<Message> messages_;
  std::unordered_map<MessageId, uint32_t, IdHash> by_id_;
  uint64_t message_frames_in_ = 0;
  uint64_t deliveries_ = 0;
  bool partitioned_ = false;
  int64_t partition_from_us_ = 0, partition_to_us_ = 0;
  std::vector<uint32_t> rejoiners_;
  int64_t rejoin_at_us_ = 0;
  std::vector<std::pair<uint32_t, int64_t>> went_down_;
  // The market scenario.
  bool market_ = false;
  Rng nonces_{0};
  std::vector<std::unique_ptr<bidding::BidEngine>> engines_;  // per node; empty: not a provider
  std::map<market::PublicKey, uint32_t> provider_node_;
  std::vector<uint32_t> tenant_node_;
  std::map<uint32_t, market::Identity> tenants_;
  std::vector<MarketOrder> orders_;
  std::unordered_map<MessageId, uint32_t, IdHash> order_index_;
  std::unordered_map<MessageId, uint32_t, IdHash> accept_index_;
  Results results_;
};

}  // namespace

Results Run(const Scenario& scenario, std::string* trace, Teardown teardown) {
  auto simulator = std::make_unique<Simulator>(scenario, trace);
  Results results = simulator->Run();
  if (teardown == Teardown::kLeaveToExit) static_cast<void>(simulator.release());  // reclaimed by the exit
  return results;
}

}  // namespace gpumart::sim
