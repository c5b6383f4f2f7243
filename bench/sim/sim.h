// A deterministic discrete-event simulator of a gpumart network: N real gossip cores
// (gossip::GossipCore, the protocol code gpumartd runs) in one process, on a virtual clock, over a
// modelled WAN (per-link latency by region, loss, per-node upload bandwidth, link failures), with
// churn (joins, graceful leaves, crashes, restarts) and partitions. One seed gives the same run,
// bit for bit. docs/SIMULATION.md describes the model, the scenarios and the output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "node/gossip/gossip_core.h"

namespace gpumart::sim {

// The network between nodes. Times in microseconds.
struct NetworkModel {
  uint32_t regions = 5;
  // One-way latency of a link, fixed per link, uniform in [min, max] by whether its ends share a region.
  int64_t same_region_min_us = 5'000;
  int64_t same_region_max_us = 20'000;
  int64_t cross_region_min_us = 60'000;
  int64_t cross_region_max_us = 150'000;
  double loss = 0.0;                              // probability that a frame is lost
  uint64_t upload_bytes_per_second = 2'500'000;   // per node (20 Mbit/s): frames queue behind each other
  uint32_t frame_overhead_bytes = 66;             // TCP/IP and ZMTP framing added to each frame's bytes
  double link_failures_per_link_hour = 0.0;       // links cut at random (both ends see the close)
  int64_t connect_timeout_us = 3'000'000;         // a dial to a node that is down or cut off fails after this
};

// The market on top of the network (docs/SIMULATION.md, "The market"): the first `providers`
// nodes each run a real bidding::BidEngine; `tenants` attach to random nodes and submit the
// scenario's messages as Orders (one each, from a random tenant), choose with a real
// bidding::BidSelection over a fixed bid window, and accept the best bid; the winner's Lease is
// flooded. 0 providers: no market, the messages are Closes.
struct MarketModel {
  uint32_t providers = 0;
  uint32_t tenants = 0;
  uint32_t gpu_models = 8;          // each provider has 8 GPUs of one model; each order wants 1-2 of one
  int64_t bid_window_ms = 500;      // from submit; the real client may close it early (see the doc)
  int64_t tenant_link_ms = 5;       // one way between a tenant and its node
  int64_t ledger_commit_ms = 5;     // a provider's durable lease write before it publishes the Lease
  int64_t order_ttl_ms = 60'000;
  int64_t bid_ttl_ms = 30'000;
};

// A named experiment. Times are virtual milliseconds from the start of the run.
struct Scenario {
  std::string name;
  uint32_t nodes = 100;
  uint32_t bootstrap = 4;                // random addresses each node starts with (peer exchange adds more)
  int64_t warmup_ms = 10'000;            // links form before the first message
  uint32_t messages = 100;
  double messages_per_second = 20.0;     // publish rate (each from a random live node)
  int64_t drain_ms = 10'000;             // run on after the last publish
  int64_t message_ttl_ms = 120'000;
  uint32_t message_bytes = 300;          // approximate envelope size (a Close with a padded note)
  NetworkModel net;
  gossip::GossipConfig gossip;           // advertised_address is set per node

  // Churn during the publishing window [warmup_ms, warmup_ms + messages / rate).
  double crash_fraction = 0.0;           // of nodes, crashed (silent: peers notice by timeout)
  double leave_fraction = 0.0;           // of nodes, leaving gracefully (links closed)
  double restart_fraction = 0.0;         // of the crashed nodes, restarted 10-30 s later (fresh state)
  double join_fraction = 0.0;            // of nodes, absent at the start and joining in the window

  // A partition into two halves (by node index parity, so both halves span every region).
  std::optional<int64_t> partition_at_ms;
  int64_t partition_heal_after_ms = 30'000;

  // Nodes that go offline at rejoin_offline_at_ms and come back rejoin_offline_ms later, while the
  // messages are published; the run measures how long they take to get every live message.
  uint32_t rejoiners = 0;
  int64_t rejoin_offline_at_ms = 0;
  int64_t rejoin_offline_ms = 0;

  MarketModel market;

  uint64_t seed = 1;
  std::optional<uint32_t> trace_message;
  // Threads that run the nodes (docs/SIMULATION.md, "Threads"); 0: 1 below 2,000 nodes or on a
  // busy machine, else up to 2 as the hardware allows.
  // The result is the same for any count; the market and tracing run on one.
  uint32_t threads = 0;  // print this message's path (index in publish order)
};

// Nearest-rank percentiles over messages; -1 where not every message got that far.
struct Distribution {
  int64_t p50 = -1;
  int64_t p99 = -1;
  int64_t max = -1;
};

struct Results {
  std::string scenario;
  uint64_t seed = 0;
  uint32_t nodes = 0;
  uint32_t messages = 0;
  int64_t virtual_ms = 0;
  // Delivery time (ms from publish) to 50/99/99.9/100% of the nodes eligible for a message (up
  // from its publish to the end of the run), as p50/p99/max over the messages that got there.
  Distribution to50, to99, to999, to100;
  uint32_t messages_incomplete = 0;     // messages some eligible node never got
  uint32_t messages_died_with_author = 0;  // no live node got it: its author crashed first (not counted above)
  uint64_t deliveries_missing = 0;      // (message, eligible node) pairs never delivered
  double copies_per_delivery = 0;       // MESSAGE frames received per message delivered
  double upload_mean_bps = 0;           // bytes sent per node per second in the publishing window + drain
  double upload_max_bps = 0;
  double links_mean = 0;                // open links per node at the end (inbound + outbound)
  uint32_t links_max = 0;
  double eager_mean = 0;                // of those, in the core's eager (push) set, at the end
  uint32_t eager_max = 0;
  // The node that sent the most bytes: its links and eager links at the end.
  uint32_t busiest_links = 0, busiest_inbound = 0, busiest_eager = 0;
  gossip::GossipStats stats;            // the cores' counters, summed over the nodes up at the end
  uint64_t frames_sent = 0;
  uint64_t frames_lost = 0;             // by the loss model, a partition, or a dead receiver
  uint64_t link_failures = 0;
  uint32_t crashed = 0, left = 0, restarted = 0, joined = 0;
  // Partition: ms from the heal to the last delivery of a message published during the split
  // (-1: not every such message reached every node by the end).
  int64_t partition_convergence_ms = -1;
  uint64_t partition_missing = 0;
  // Rejoin: ms from the comeback to the last live message delivered to a rejoiner (-1: some never
  // came), and bytes the rejoiners sent and received in that time.
  int64_t rejoin_convergence_ms = -1;
  uint64_t rejoin_missing = 0;
  uint64_t rejoin_bytes = 0;
  // Market: orders submitted, leased, left without any bid in the window or after it, accepts
  // refused by the provider; virtual ms from a tenant's submit to the Lease reaching it, as p50/p99
  // over every submitted order (one never leased counts as infinitely late, -1), and its parts.
  uint32_t market_orders = 0, market_leased = 0, market_no_bid = 0, market_refused = 0;
  Distribution submit_to_lease, submit_to_first_bid, accept_to_lease;
  double bids_per_order = 0;            // reaching the tenant's node, window or not
  double bids_in_window_per_order = 0;  // the ones the tenant ranked
  uint64_t bids_made = 0;               // by all the bid engines
  std::vector<std::pair<std::string, uint64_t>> market_skips;  // orders the engines did not bid on, by reason
  std::vector<std::pair<std::string, uint64_t>> drops;  // the cores' drop counters, summed, nonzero
  uint64_t events = 0;
  // Cost of the run itself (not part of the deterministic result).
  double wall_seconds = 0;
  double cpu_seconds = 0;  // user + system of the process (the wall time counts other load too)
  uint32_t threads = 0;    // that ran the nodes
  uint64_t peak_rss_bytes = 0;
};

// What becomes of the simulated network once its results are taken.
enum class Teardown : uint8_t {
  kFree,         // every core and event freed before Run returns
  kLeaveToExit,  // left for the process's exit to reclaim (gpumart-sim: freeing a 10,000-node
                 // run's millions of small objects one by one took seconds of CPU for nothing)
};

// Runs the scenario to the end. Trace lines (if asked) go to `trace`.
Results Run(const Scenario& scenario, std::string* trace, Teardown teardown = Teardown::kFree);

// The named presets (docs/SIMULATION.md); nullopt for an unknown name.
std::optional<Scenario> Preset(const std::string& name);
std::vector<std::string> PresetNames();

// The deterministic part of the results as JSON (with_cost adds wall time and memory).
std::string ToJson(const Results& results, bool with_cost);
std::string ToTable(const Results& results);

}  // namespace gpumart::sim
