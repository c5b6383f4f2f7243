// The named scenarios (docs/SIMULATION.md) and the output formats.
#include <cstdio>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "bench/sim/sim.h"

namespace gpumart::sim {

namespace {

Scenario Dissemination(const char* name, uint32_t nodes) {
  Scenario s;
  s.name = name;
  s.nodes = nodes;
  s.messages = 1'000;
  s.messages_per_second = 20;
  return s;
}

const std::map<std::string, std::function<Scenario()>>& Presets() {
  static const std::map<std::string, std::function<Scenario()>> presets = {
      // The ctest scenario: 100 nodes, 50 messages.
      {"small", [] {
         Scenario s;
         s.name = "small";
         s.nodes = 100;
         s.messages = 50;
         s.messages_per_second = 50;
         s.warmup_ms = 5'000;
         s.drain_ms = 5'000;
         return s;
       }},
      {"dissemination-1k", [] { return Dissemination("dissemination-1k", 1'000); }},
      {"dissemination-10k", [] { return Dissemination("dissemination-10k", 10'000); }},
      // 10% of the nodes crash (silently) at random moments while the messages spread.
      {"crash-10pct", [] {
         Scenario s = Dissemination("crash-10pct", 1'000);
         s.crash_fraction = 0.10;
         return s;
       }},
      // Two halves for 30 s, messages published on both sides meanwhile, then healed; messages
      // go on for 15 s after the heal (they show whether the mesh has joined up again).
      {"partition", [] {
         Scenario s;
         s.name = "partition";
         s.nodes = 1'000;
         s.messages = 450;
         s.messages_per_second = 10;
         s.partition_at_ms = s.warmup_ms;
         s.partition_heal_after_ms = 30'000;
         s.drain_ms = 60'000;
         return s;
       }},
      // One node offline for an hour while a message a minute is published (each live 2 h).
      {"rejoin", [] {
         Scenario s;
         s.name = "rejoin";
         s.nodes = 300;
         s.messages = 62;
         s.messages_per_second = 1.0 / 60;
         s.message_ttl_ms = 2 * 3'600'000;
         s.gossip.store_retention_ms = 60'000;
         s.rejoiners = 1;
         s.rejoin_offline_at_ms = s.warmup_ms - 1'000;
         s.rejoin_offline_ms = 3'600'000;
         s.drain_ms = 60'000;
         return s;
       }},
      // 1,000 providers (one per node, each a real bidding::BidEngine) and 10,000 tenants
      // attached to random nodes; 1,000 orders at 20/s, each from a random tenant, choosing with a
      // real bidding::BidSelection over a 500 ms bid window; submit-to-lease in virtual time.
      {"market", [] {
         Scenario s = Dissemination("market", 1'000);
         s.market.providers = 1'000;
         s.market.tenants = 10'000;
         return s;
       }},
      // The ctest market: 100 nodes, 50 providers, 500 tenants, 30 orders.
      {"market-small", [] {
         Scenario s = *Preset("small");
         s.name = "market-small";
         s.messages = 30;
         s.messages_per_second = 20;
         s.market.providers = 50;
         s.market.tenants = 500;
         return s;
       }},
      // Everything at once: joins, graceful leaves, crashes with restarts, loss, link failures.
      {"churn", [] {
         Scenario s = Dissemination("churn", 1'000);
         s.join_fraction = 0.05;
         s.leave_fraction = 0.05;
         s.crash_fraction = 0.05;
         s.restart_fraction = 0.5;
         s.net.loss = 0.001;
         s.net.link_failures_per_link_hour = 6;
         s.drain_ms = 30'000;
         return s;
       }},
  };
  return presets;
}

nlohmann::json ToJson(const Distribution& d) { return {{"p50", d.p50}, {"p99", d.p99}, {"max", d.max}}; }

std::string Ms(int64_t ms) { return ms < 0 ? std::string("never") : std::to_string(ms) + " ms"; }

}  // namespace

std::optional<Scenario> Preset(const std::string& name) {
  auto it = Presets().find(name);
  if (it == Presets().end()) return std::nullopt;
  return it->second();
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const auto& [name, make] : Presets()) names.push_back(name);
  return names;
}

std::string ToJson(const Results& r, bool with_cost) {
  nlohmann::json drops = nlohmann::json::object();
  for (const auto& [name, count] : r.drops) drops[name] = count;
  nlohmann::json j = {
      {"scenario", r.scenario},
      {"seed", r.seed},
      {"nodes", r.nodes},
      {"messages", r.messages},
      {"virtual_ms", r.virtual_ms},
      {"delivery_ms", {{"to_50pct", ToJson(r.to50)}, {"to_99pct", ToJson(r.to99)},
                       {"to_99_9pct", ToJson(r.to999)}, {"to_100pct", ToJson(r.to100)}}},
      {"messages_incomplete", r.messages_incomplete},
      {"messages_died_with_author", r.messages_died_with_author},
      {"deliveries_missing", r.deliveries_missing},
      {"copies_per_delivery", r.copies_per_delivery},
      {"upload_bytes_per_node_second", {{"mean", r.upload_mean_bps}, {"max", r.upload_max_bps}}},
      {"links_per_node", {{"mean", r.links_mean}, {"max", r.links_max}}},
      {"eager_links_per_node", {{"mean", r.eager_mean}, {"max", r.eager_max}}},
      {"core_stats", {{"eager_sent", r.stats.eager_sent}, {"grafts_sent", r.stats.grafts_sent},
                      {"prunes_sent", r.stats.prunes_sent}, {"ihave_ids_sent", r.stats.ihave_ids_sent},
                      {"reconciled", r.stats.reconciled}}},
      {"busiest_uploader", {{"links", r.busiest_links}, {"inbound", r.busiest_inbound}, {"eager", r.busiest_eager}}},
      {"frames_sent", r.frames_sent},
      {"frames_lost", r.frames_lost},
      {"link_failures", r.link_failures},
      {"churn", {{"crashed", r.crashed}, {"left", r.left}, {"restarted", r.restarted}, {"joined", r.joined}}},
      {"partition", {{"convergence_ms", r.partition_convergence_ms}, {"missing", r.partition_missing}}},
      {"rejoin", {{"convergence_ms", r.rejoin_convergence_ms}, {"missing", r.rejoin_missing}, {"bytes", r.rejoin_bytes}}},
      {"drops", drops},
      {"events", r.events},
  };
  if (r.market_orders) {
    j["market"] = {{"orders", r.market_orders}, {"leased", r.market_leased}, {"no_bid", r.market_no_bid},
                   {"accepts_refused", r.market_refused}, {"bids_made", r.bids_made},
                   {"bids_per_order", r.bids_per_order}, {"bids_in_window_per_order", r.bids_in_window_per_order},
                   {"submit_to_lease_ms", ToJson(r.submit_to_lease)},
                   {"submit_to_first_bid_ms", ToJson(r.submit_to_first_bid)},
                   {"accept_to_lease_ms", ToJson(r.accept_to_lease)},
                   {"signatures", "each message's checked once per run (shared memo), not at every node"}};
    nlohmann::json skips = nlohmann::json::object();
    for (const auto& [name, count] : r.market_skips) skips[name] = count;
    j["market"]["engine_skips"] = skips;
  }
  if (with_cost) j["run"] = {{"wall_seconds", r.wall_seconds}, {"cpu_seconds", r.cpu_seconds}, {"peak_rss_bytes", r.peak_rss_bytes},
                          {"threads", r.threads}};
  return j.dump(2);
}

std::string ToTable(const Results& r) {
  std::string out;
  char line[256];
  auto row = [&](const char* name, const std::string& value) {
    std::snprintf(line, sizeof line, "  %-38s %s\n", name, value.c_str());
    out += line;
  };
  auto dist = [&](const Distribution& d) { return "p50 " + Ms(d.p50) + ", p99 " + Ms(d.p99) + ", max " + Ms(d.max); };
  std::snprintf(line, sizeof line, "scenario %s  seed %llu  nodes %u  messages %u  virtual %.1f s\n", r.scenario.c_str(),
                static_cast<unsigned long long>(r.seed), r.nodes, r.messages, static_cast<double>(r.virtual_ms) / 1e3);
  out += line;
  row("delivery to 50% of nodes", dist(r.to50));
  row("delivery to 99% of nodes", dist(r.to99));
  row("delivery to 99.9% of nodes", dist(r.to999));
  row("delivery to 100% of nodes", dist(r.to100));
  row("messages incomplete (some node missed)", std::to_string(r.messages_incomplete) + " (" +
                                                   std::to_string(r.deliveries_missing) + " deliveries missing)");
  if (r.messages_died_with_author) row("messages whose author crashed first", std::to_string(r.messages_died_with_author));
  std::snprintf(line, sizeof line, "%.3f", r.copies_per_delivery);
  row("copies received per node per message", line);
  std::snprintf(line, sizeof line, "mean %.0f B/s, max %.0f B/s (max/mean %.2f)", r.upload_mean_bps, r.upload_max_bps,
                r.upload_mean_bps > 0 ? r.upload_max_bps / r.upload_mean_bps : 0.0);
  row("upload per node", line);
  std::snprintf(line, sizeof line, "mean %.1f, max %u", r.links_mean, r.links_max);
  row("links per node at the end", line);
  std::snprintf(line, sizeof line, "mean %.1f, max %u", r.eager_mean, r.eager_max);
  row("eager links per node at the end", line);
  std::snprintf(line, sizeof line, "%u links (%u inbound), %u eager", r.busiest_links, r.busiest_inbound, r.busiest_eager);
  row("busiest uploader at the end", line);
  row("cores: eager sent / grafts / prunes", std::to_string(r.stats.eager_sent) + " / " + std::to_string(r.stats.grafts_sent) +
                                                 " / " + std::to_string(r.stats.prunes_sent) + " (reconciled " +
                                                 std::to_string(r.stats.reconciled) + ")");
  row("frames sent / lost", std::to_string(r.frames_sent) + " / " + std::to_string(r.frames_lost));
  if (r.link_failures) row("link failures", std::to_string(r.link_failures));
  if (r.crashed || r.left || r.restarted || r.joined) {
    row("churn", "crashed " + std::to_string(r.crashed) + ", left " + std::to_string(r.left) + ", restarted " +
                     std::to_string(r.restarted) + ", joined " + std::to_string(r.joined));
  }
  if (r.scenario == "partition" || r.partition_missing || r.partition_convergence_ms >= 0) {
    row("partition: convergence after heal", Ms(r.partition_convergence_ms) + " (" +
                                                 std::to_string(r.partition_missing) + " deliveries missing)");
  }
  if (r.rejoin_bytes || r.rejoin_missing || r.rejoin_convergence_ms >= 0) {
    row("rejoin: convergence after comeback", Ms(r.rejoin_convergence_ms) + " (" + std::to_string(r.rejoin_missing) +
                                                  " missing, " + std::to_string(r.rejoin_bytes) + " bytes)");
  }
  if (r.market_orders) {
    row("market: orders / leased / never a bid", std::to_string(r.market_orders) + " / " + std::to_string(r.market_leased) +
                                                     " / " + std::to_string(r.market_no_bid) + " (accepts refused " +
                                                     std::to_string(r.market_refused) + ")");
    row("market: submit to lease", dist(r.submit_to_lease));
    row("market: submit to first bid", dist(r.submit_to_first_bid));
    row("market: accept to lease", dist(r.accept_to_lease));
    std::snprintf(line, sizeof line, "%.1f reach the tenant, %.1f in the window (%llu made)", r.bids_per_order,
                  r.bids_in_window_per_order, static_cast<unsigned long long>(r.bids_made));
    row("market: bids per order", line);
    std::string skips;
    for (const auto& [name, count] : r.market_skips) skips += (skips.empty() ? "" : ", ") + name + " " + std::to_string(count);
    row("market: engines' skips (no bid)", skips.empty() ? "none" : skips);
    row("market: signatures", "each message's checked once per run (shared memo), not at every node");
  }
  std::string drops;
  for (const auto& [name, count] : r.drops) drops += (drops.empty() ? "" : ", ") + name + " " + std::to_string(count);
  row("core drops", drops.empty() ? "none" : drops);
  row("events", std::to_string(r.events));
  std::snprintf(line, sizeof line, "%.1f s wall, %.1f s CPU, peak RSS %.0f MiB, %u thread%s", r.wall_seconds,
                r.cpu_seconds, static_cast<double>(r.peak_rss_bytes) / (1 << 20), r.threads, r.threads == 1 ? "" : "s");
  row("run cost", line);
  return out;
}

}  // namespace gpumart::sim
