// gpumart-sim: runs a named scenario (docs/SIMULATION.md) and prints a table or JSON.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "bench/sim/sim.h"

int main(int argc, char** argv) {
  using gpumart::sim::Scenario;
  CLI::App app{"gpumart-sim: the gossip protocol at scale, in virtual time"};
  std::string name = "small";
  std::optional<uint64_t> seed;
  std::optional<uint32_t> nodes, messages, trace;
  std::optional<double> rate, loss, upload_mbps, crash;
  std::optional<size_t> max_inbound;
  std::optional<uint32_t> prune_after;
  std::optional<size_t> max_eager, lazy_fanout;
  std::optional<uint32_t> hop_limit, threads;
  std::optional<int64_t> graft_timeout_ms, bid_window_ms;
  bool json = false, list = false;
  app.add_option("scenario", name, "preset name (--list shows them)");
  app.add_option("--seed", seed, "random seed (default 1)");
  app.add_option("--nodes", nodes, "override the number of nodes");
  app.add_option("--messages", messages, "override the number of messages");
  app.add_option("--rate", rate, "override messages per second");
  app.add_option("--loss", loss, "override the frame loss probability");
  app.add_option("--upload-mbps", upload_mbps, "override each node's upload bandwidth (Mbit/s)");
  app.add_option("--crash", crash, "override the fraction of nodes that crash in the publishing window");
  app.add_option("--max-inbound", max_inbound, "override the cores' max_inbound (links a node accepts)");
  app.add_option("--prune-after", prune_after, "override the cores' prune_after_duplicates");
  app.add_option("--max-eager", max_eager, "override the cores' max_eager (eager links a node aims to keep)");
  app.add_option("--lazy-fanout", lazy_fanout, "override the cores' lazy_fanout (IHAVE peers per message; 0: all)");
  app.add_option("--hop-limit", hop_limit, "override the cores' hop_limit (at most 32)");
  app.add_option("--graft-timeout-ms", graft_timeout_ms, "override the cores' graft_timeout_ms");
  app.add_option("--bid-window-ms", bid_window_ms, "market: override the tenants' bid window");
  app.add_option("--threads", threads, "threads that run the nodes (default: 2 from 2,000 nodes on a machine with 2 free cores, else 1; same result for any count)");
  app.add_option("--trace", trace, "print the path of this message (index in publish order)");
  app.add_flag("--json", json, "print JSON instead of a table");
  app.add_flag("--list", list, "list the presets");
  CLI11_PARSE(app, argc, argv);
  if (list) {
    for (const auto& preset : gpumart::sim::PresetNames()) std::cout << preset << "\n";
    return 0;
  }
  std::optional<Scenario> scenario = gpumart::sim::Preset(name);
  if (!scenario) {
    std::cerr << "unknown scenario '" << name << "' (--list shows them)\n";
    return 2;
  }
  if (seed) scenario->seed = *seed;
  if (nodes) scenario->nodes = *nodes;
  if (messages) scenario->messages = *messages;
  if (rate) scenario->messages_per_second = *rate;
  if (loss) scenario->net.loss = *loss;
  if (crash) scenario->crash_fraction = *crash;
  if (upload_mbps) scenario->net.upload_bytes_per_second = static_cast<uint64_t>(*upload_mbps * 125'000);
  if (max_inbound) scenario->gossip.max_inbound = *max_inbound;
  if (prune_after) scenario->gossip.prune_after_duplicates = *prune_after;
  if (max_eager) scenario->gossip.max_eager = *max_eager;
  if (lazy_fanout) scenario->gossip.lazy_fanout = *lazy_fanout;
  if (hop_limit) scenario->gossip.hop_limit = *hop_limit;
  if (graft_timeout_ms) scenario->gossip.graft_timeout_ms = *graft_timeout_ms;
  if (bid_window_ms) scenario->market.bid_window_ms = *bid_window_ms;
  scenario->trace_message = trace;
  if (threads) scenario->threads = *threads;
  std::cerr << "gpumart-sim: scenario " << scenario->name << ", seed " << scenario->seed << "\n";
  std::string trace_text;
  const gpumart::sim::Results results = gpumart::sim::Run(*scenario, trace ? &trace_text : nullptr,
                                                               gpumart::sim::Teardown::kLeaveToExit);
  std::cout << trace_text;
  std::cout << (json ? gpumart::sim::ToJson(results, true) + "\n" : gpumart::sim::ToTable(results));
  return 0;
}
