// The market end to end over real processes (issue 14). Target (../shared/BENCHMARKS.md):
//   BM_SubmitToLease: 1 relay + 8 providers, each a gpumartd on loopback, and tenants in this
//   process (the client library, node/client/client.h, driving the tenant's submit state machine,
//   bidding/tenant_session.h, each tenant with its own key) submitting through the relay's client
//   port. Counters:
//     p50_ms, p99_ms   submit -> verified lease at light load (one tenant, one deployment at a
//                      time): from signing the Order, through the dry run, the bids, the Accept,
//                      to the Lease verified; targets <= 10 ms and <= 50 ms;
//     leases_per_s     sustained, kSustainTenants tenants submitting back to back; >= 500/s;
//     load_p50_ms, load_p99_ms  submit -> lease under that load;
//     verifies_per_lease  Ed25519 verifications of every process (the 9 daemons and this one)
//                      during the sustained phase over the leases made: measured, by counting
//                      libsodium's crypto_sign_verify_detached calls (bench/e2e/preload/);
//     raw_verify_per_s one core's bare Ed25519 verify rate, measured in this run;
//     ceiling_ratio    leases_per_s / (raw_verify_per_s x cores / verifies_per_lease), the share
//                      of the verification-bound ceiling achieved;
//     cpu_ms_per_lease_relay, _providers, _tenants  CPU time (user + system) each side spent
//                      in the sustained phase over the leases made (the 8 providers together;
//                      the tenants: this whole process): what a lease costs, which the machine's
//                      load changes less than leases_per_s (still by up to ~25% on a saturated
//                      machine, bench/RESULTS.md); cpu_ms_per_lease their sum;
//     rss_mb_provider  the largest VmRSS of the 8 providers once they hold kOpenOrders open
//                      orders (each bid on, its reservation live); target <= 64 MB;
//                      rss_mb_relay the relay's; rss_mb_provider_idle before any order and
//                      rss_mb_provider_after_leases after the sustained phase, for comparison.
// The machine is shared: the load average is printed with the figures.
#include <benchmark/benchmark.h>
#include <sodium.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/clock.h"
#include "bench/temp_dir.h"
#include "bidding/tenant_session.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "node/client/client.h"
#include "node/json.h"
#include "tests/e2e/process_market.h"

// bench/e2e/preload/verify_counter.cpp, linked ahead of libsodium: this process's verifications.
extern "C" uint64_t gpumart_verify_count();

namespace gpumart::bench {
namespace {

using e2e::Clock;
using e2e::milliseconds;

constexpr int kProviders = 8;
// Each provider: kNodesPerProvider nodes of 64 GPUs (H100 SXM at providers 0-3, A100 80Gi SXM at
// 4-7, each at its own price), room for every lease of the run plus kOpenOrders reservations.
constexpr int kNodesPerProvider = 320;
constexpr size_t kLightSubmits = 300;
constexpr int kSustainTenants = 32;
constexpr auto kSustainDuration = std::chrono::seconds(10);
constexpr size_t kOpenOrders = 10'000;
// GPUMART_BENCH_E2E_QUICK=1: a tenth of each phase, to try the benchmark out (not for figures).
bool Quick() {
  const char* quick = std::getenv("GPUMART_BENCH_E2E_QUICK");
  return quick != nullptr && std::string(quick) == "1";
}
size_t Scaled(size_t n) { return Quick() ? std::max<size_t>(n / 10, 1) : n; }
constexpr size_t kOpenOrderTenants = 10;  // the client port subscribes one connection to 4,096 at most
constexpr int64_t kOrderTtlMs = 10 * 60 * 1000;

// Loopback, a system-picked port, and per-peer rates above what this load sends (the defaults,
// 2,000 frames/s, are a relay's for the open internet).
std::string CommonConfig() {
  return "listen: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*\nlog_level: warn\n"
         "peer_frames_per_second: 50000\npeer_bytes_per_second: 268435456\npeer_queue_messages: 100000\n";
}

std::string RelayConfig() { return "role: relay\n" + CommonConfig(); }

std::string ProviderConfig(int index) {
  const bool h100 = index < kProviders / 2;
  std::string yaml = "role: provider\n" + CommonConfig() +
                     // Reservations live as long as the orders, so the open orders stay open.
                     "bid_ttl_ms: " + std::to_string(kOrderTtlMs) + "\n" +
                     "inventory:\n  attributes: {region: us-west}\n  nodes:\n";
  for (int n = 0; n < kNodesPerProvider; ++n) {
    yaml += "    - {name: n" + std::to_string(n) + ", cpu_millis: 4096000, memory: 16Ti, storage: 100Ti, gpus: [{model: " +
            (h100 ? "h100" : "a100") + ", ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 64}]}\n";
  }
  const uint64_t rate = (h100 ? 900'000 : 450'000) + 10'000 * static_cast<uint64_t>(index);
  yaml += "pricing:\n  - {denom: uakt, gpu: {\"*\": " + std::to_string(rate) + "}, cpu: 4000, memory: 500, storage: 10}\n";
  return yaml;
}

// An LLM replica: one GPU, an H100 SXM if possible, else an 80Gi A100, else any 48Gi card.
market::Order DeploymentOrder() {
  market::Order order;
  order.group = "inference";
  order.attributes = {{"region", "us-west"}};
  market::ServiceRequest service;
  service.name = "vllm";
  service.profile = "vllm";
  service.resources.cpu_millis = 1000;
  service.resources.memory_bytes = 8 * market::kGi;
  service.resources.storage = {market::StorageVolume{"default", 20 * market::kGi, std::nullopt, false}};
  service.resources.gpu.units = 1;
  service.resources.gpu.options = {
      market::GpuOption{"nvidia", "h100", 80 * market::kGi, market::GpuInterface::kSxm},
      market::GpuOption{"nvidia", "a100", 80 * market::kGi, std::nullopt},
      market::GpuOption{"nvidia", "*", 48 * market::kGi, std::nullopt}};
  service.cuda_min = market::CudaVersion{12, 0};
  service.price_cap = market::PriceCap{"uakt", 10'000, market::PerBlockToPerHour(10'000)};
  order.services = {service};
  return order;
}

uint64_t NowMs() { return static_cast<uint64_t>(SystemClock::Instance().NowMs()); }

// VmRSS of a process, in kB (0 when unreadable).
uint64_t RssKb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

uint64_t ReadCounter(const std::string& path) {
  uint64_t count = 0;
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(&count), sizeof count);
  return in ? count : 0;
}

// CPU time (user + system) a process has used, in seconds (0 when unreadable).
double CpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces, so it is skipped to its ')'): state
  // is field 3; utime and stime are fields 14 and 15.
  const size_t end = text.rfind(')');
  if (end == std::string::npos) return 0;
  std::istringstream fields(text.substr(end + 2));
  std::string field;
  uint64_t utime = 0;
  uint64_t stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double OwnCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double LoadAverage() {
  double one = 0;
  std::ifstream("/proc/loadavg") >> one;
  return one;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())))];
}

// The relay's dry run (its `match` query, docs/CLIENT.md) for one order, as the tenant's
// session takes it: the candidates and whether the list is complete. (gpumart submit reads the
// same answer, node/cmd_submit.cpp, with the exclusions too, which only explain a failure.)
Result<bidding::DryRun> DryRunOf(client::Client& client, const market::Signed<market::Order>& order,
                                 market::Policy policy) {
  constexpr uint64_t kTop = 1'000;
  Result<client::Fields> answer =
      client.Call("match", {{"orders", std::vector<market::Bytes>{market::EncodeEnvelope(order.envelope)}},
                            {"policy", std::string(market::ToString(policy))},
                            {"top", kTop}});
  if (!answer.ok()) return answer.status();
  auto text = client::Require<std::string>(*answer, "json");
  if (!text.ok()) return text.status();
  const node::Json json = node::Json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("groups") || !json["groups"].is_array() || json["groups"].size() != 1) {
    return Status::InvalidArgument("the match answer is not one group");
  }
  bidding::DryRun dry_run;
  dry_run.providers = json.value("providers", uint64_t{0});
  for (const node::Json& entry : json["groups"][0].value("candidates", node::Json::array())) {
    market::Candidate candidate;
    candidate.provider = entry.value("provider", std::string());
    candidate.price_per_hour = entry.value("price_per_hour", uint64_t{0});
    candidate.denom = entry.value("denom", std::string());
    candidate.ranks = entry.value("ranks", std::vector<uint32_t>{});
    candidate.reputation_ppm = static_cast<uint32_t>(std::llround(entry.value("reputation", 0.0) * 1'000'000.0));
    dry_run.candidates.push_back(std::move(candidate));
  }
  dry_run.complete = dry_run.candidates.size() < kTop;
  return dry_run;
}

// A tenant: its own key and its own connection to the relay's client port.
class Tenant {
 public:
  static Result<std::unique_ptr<Tenant>> Connect(const std::string& address) {
    Result<std::unique_ptr<client::Client>> connected = client::Client::Connect(address, milliseconds(5'000));
    if (!connected.ok()) return connected.status();
    return std::unique_ptr<Tenant>(new Tenant(std::move(connected).value()));
  }

  // One deployment from its signing to its verified lease; the milliseconds it took, or why not.
  Result<double> Submit(const market::Order& body) {
    const auto start = Clock::now();
    market::Signed<market::Order> order =
        market::MakeSigned(identity_, body, static_cast<int64_t>(NowMs()), kOrderTtlMs, market::RandomNonce());
    Result<bidding::DryRun> dry_run = DryRunOf(*client_, order, market::Policy::kPreference);
    if (!dry_run.ok()) return dry_run.status().WithContext("dry run");
    bidding::TenantSessionOptions options;
    options.bid_window_ms = 2'000;
    bidding::TenantSession session(identity_, {bidding::TenantOrder{order, std::move(dry_run).value()}}, options);
    GPUMART_RETURN_IF_ERROR(PublishAll(session.Start(static_cast<int64_t>(NowMs()))));
    while (!session.outcomes()[0].settled()) {
      const int64_t now = static_cast<int64_t>(NowMs());
      const std::optional<int64_t> deadline = session.NextDeadline();
      const int64_t wait = deadline ? std::clamp<int64_t>(*deadline - now, 0, 1'000) : 1'000;
      Result<client::Event> event = client_->WaitEvent(milliseconds(wait));
      GPUMART_RETURN_IF_ERROR(PublishAll(event.ok() ? session.OnEnvelope(event->envelope, static_cast<int64_t>(NowMs()))
                                                    : session.Tick(static_cast<int64_t>(NowMs()))));
    }
    const bidding::OrderOutcome& outcome = session.outcomes()[0];
    if (!outcome.lease) return Status::Unavailable("no lease: " + outcome.failure);
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }

  // Publishes an Order and leaves it open (its bids come back as events, never accepted).
  Status PublishOpenOrder(const market::Order& body) {
    const auto order =
        market::MakeSigned(identity_, body, static_cast<int64_t>(NowMs()), kOrderTtlMs, market::RandomNonce());
    return client_->Publish(market::EncodeEnvelope(order.envelope)).status();
  }

 private:
  explicit Tenant(std::unique_ptr<client::Client> client)
      : identity_(market::Identity::Generate()), client_(std::move(client)) {}

  Status PublishAll(const bidding::TenantStep& step) {
    for (const bidding::Publish& publish : step.publish) {
      Result<market::MessageId> published = client_->Publish(publish.envelope);
      if (!published.ok()) return published.status().WithContext("publish");
    }
    return Status::Ok();
  }

  const market::Identity identity_;
  std::unique_ptr<client::Client> client_;
};

// One core's bare Ed25519 verify rate over a `duration`.
double RawVerifyRate(std::chrono::milliseconds duration) {
  const market::Identity identity = market::Identity::Generate();
  const auto signed_order = market::MakeSigned(identity, DeploymentOrder(), 1'750'000'000'000, 60'000, 1);
  const market::Bytes input = market::SigningInput(signed_order.envelope);
  const auto start = Clock::now();
  uint64_t verified = 0;
  while (Clock::now() - start < duration) {
    for (int i = 0; i < 100; ++i) {
      verified += crypto_sign_verify_detached(signed_order.envelope.signature.data(), input.data(), input.size(),
                                              signed_order.envelope.signer.data()) == 0;
    }
  }
  return static_cast<double>(verified) / std::chrono::duration<double>(Clock::now() - start).count();
}

// The last "provider orders N, bids M" line a provider printed: {N, M}.
std::pair<uint64_t, uint64_t> ProviderOrdersAndBids(const std::string& out) {
  const size_t at = out.rfind("provider orders ");
  if (at == std::string::npos) return {0, 0};
  uint64_t orders = 0;
  uint64_t bids = 0;
  std::sscanf(out.c_str() + at, "provider orders %lu, bids %lu", &orders, &bids);
  return {orders, bids};
}

void BM_SubmitToLease(benchmark::State& state) {
  for (auto _ : state) {
    TempDir dir("bench-e2e");
    if (dir.path().empty()) return state.SkipWithError("no temporary directory");
    e2e::ProcessMarket market(dir.path(), GPUMART_BIN_DIR);
    market.SetNodeEnvironment([&](const std::string& name) {
      return std::vector<std::string>{std::string("LD_PRELOAD=") + GPUMART_VERIFY_COUNTER_LIB,
                                      "GPUMART_VERIFY_COUNTER=" + dir.path() + "/" + name + ".verifies"};
    });
    const auto write = [&](const std::string& name, const std::string& text) {
      const std::string path = dir.path() + "/" + name + ".source.yaml";
      std::ofstream(path) << text;
      return path;
    };
    Result<e2e::Node*> relay = market.StartRelay(write("relay", RelayConfig()));
    if (!relay.ok()) return state.SkipWithError(relay.status().ToString().c_str());
    std::vector<e2e::Node*> providers;
    for (int i = 0; i < kProviders; ++i) {
      const std::string name = "provider" + std::to_string(i);
      Result<e2e::Node*> provider = market.StartPeer(name, write(name, ProviderConfig(i)), "", milliseconds(30'000));
      if (!provider.ok()) return state.SkipWithError(provider.status().ToString().c_str());
      providers.push_back(*provider);
    }
    if (Status linked = market.WaitLinked(kProviders, milliseconds(30'000)); !linked.ok()) {
      return state.SkipWithError((linked.ToString() + "\n" + market.Logs()).c_str());
    }
    std::string client_address = e2e::ReadWholeFile((*relay)->data_dir + "/client.address");
    while (!client_address.empty() && std::isspace(static_cast<unsigned char>(client_address.back()))) client_address.pop_back();
    // Verifications so far: {the relay, the providers together, this process (the tenants)}.
    struct Verifications {
      uint64_t relay = 0, providers = 0, tenants = 0;
      uint64_t total() const { return relay + providers + tenants; }
    };
    const auto verifications = [&] {
      Verifications counted;
      counted.tenants = gpumart_verify_count();
      for (const auto& node : market.nodes()) {
        const uint64_t count = ReadCounter(dir.path() + "/" + node->name + ".verifies");
        (node.get() == *relay ? counted.relay : counted.providers) += count;
      }
      return counted;
    };
    const market::Order order = DeploymentOrder();

    // The providers' footprint before any order: what the open orders add is the difference.
    uint64_t rss_idle_kb = 0;
    for (e2e::Node* provider : providers) rss_idle_kb = std::max(rss_idle_kb, RssKb(provider->process->pid()));

    // One core's verify rate, now, on this machine as loaded as it is.
    const double raw_verify_per_s = RawVerifyRate(milliseconds(500));

    // Light load: one tenant, one deployment at a time.
    Result<std::unique_ptr<Tenant>> light = Tenant::Connect(client_address);
    if (!light.ok()) return state.SkipWithError(light.status().ToString().c_str());
    std::vector<double> light_ms;
    for (size_t i = 0; i < Scaled(kLightSubmits); ++i) {
      Result<double> ms = (*light)->Submit(order);
      if (!ms.ok()) return state.SkipWithError(ms.status().ToString().c_str());
      light_ms.push_back(*ms);
    }

    // Sustained: kSustainTenants tenants back to back for kSustainDuration.
    std::vector<std::unique_ptr<Tenant>> tenants;
    for (int i = 0; i < kSustainTenants; ++i) {
      Result<std::unique_ptr<Tenant>> tenant = Tenant::Connect(client_address);
      if (!tenant.ok()) return state.SkipWithError(tenant.status().ToString().c_str());
      tenants.push_back(std::move(tenant).value());
    }
    std::mutex mutex;
    std::vector<double> load_ms;
    std::atomic<uint64_t> failures{0};
    std::string first_failure;
    const Verifications verifies_before = verifications();
    std::vector<uint64_t> node_verifies_before;
    for (const auto& node : market.nodes()) {
      node_verifies_before.push_back(ReadCounter(dir.path() + "/" + node->name + ".verifies"));
    }
    // CPU time so far: each node's, and this process's (the tenants').
    std::vector<double> node_cpu_before;
    for (const auto& node : market.nodes()) node_cpu_before.push_back(CpuSeconds(node->process->pid()));
    const double tenants_cpu_before = OwnCpuSeconds();
    std::fprintf(stderr, "bench_e2e: the sustained phase starts (load average %.1f)\n", LoadAverage());
    const auto sustain_start = Clock::now();
    const auto sustain_end = sustain_start + (Quick() ? kSustainDuration / 10 : kSustainDuration);
    std::vector<std::thread> threads;
    for (auto& tenant : tenants) {
      threads.emplace_back([&, tenant = tenant.get()] {
        std::vector<double> mine;
        while (Clock::now() < sustain_end) {
          Result<double> ms = tenant->Submit(order);
          if (ms.ok()) {
            mine.push_back(*ms);
          } else if (failures.fetch_add(1) == 0) {
            std::lock_guard lock(mutex);
            first_failure = ms.status().ToString();
          }
        }
        std::lock_guard lock(mutex);
        load_ms.insert(load_ms.end(), mine.begin(), mine.end());
      });
    }
    for (std::thread& thread : threads) thread.join();
    const double sustain_s = std::chrono::duration<double>(Clock::now() - sustain_start).count();
    const Verifications verifies_after = verifications();
    const double tenants_cpu = OwnCpuSeconds() - tenants_cpu_before;
    double relay_cpu = 0;
    double providers_cpu = 0;
    std::string cpu_by_node;
    for (size_t i = 0; i < market.nodes().size(); ++i) {
      const double used = CpuSeconds(market.nodes()[i]->process->pid()) - node_cpu_before[i];
      (market.nodes()[i].get() == *relay ? relay_cpu : providers_cpu) += used;
      char text[64];
      std::snprintf(text, sizeof text, " %s %.3f", market.nodes()[i]->name.c_str(),
                    load_ms.empty() ? 0.0 : 1000.0 * used / static_cast<double>(load_ms.size()));
      cpu_by_node += text;
    }
    std::fprintf(stderr, "bench_e2e: CPU ms per lease by node:%s tenants %.3f\n", cpu_by_node.c_str(),
                 load_ms.empty() ? 0.0 : 1000.0 * tenants_cpu / static_cast<double>(load_ms.size()));
    std::string by_node;
    for (size_t i = 0; i < market.nodes().size(); ++i) {
      const uint64_t after = ReadCounter(dir.path() + "/" + market.nodes()[i]->name + ".verifies");
      by_node += " " + market.nodes()[i]->name + " " +
                 std::to_string(load_ms.empty() ? 0.0 : static_cast<double>(after - node_verifies_before[i]) /
                                                         static_cast<double>(load_ms.size()));
    }
    std::fprintf(stderr, "bench_e2e: verifications per lease by node:%s\n", by_node.c_str());
    const double leases_per_s = static_cast<double>(load_ms.size()) / sustain_s;
    const auto per_lease = [&](uint64_t before, uint64_t after) {
      return load_ms.empty() ? 0.0 : static_cast<double>(after - before) / static_cast<double>(load_ms.size());
    };
    const double verifies_per_lease = per_lease(verifies_before.total(), verifies_after.total());
    const double cores = static_cast<double>(std::thread::hardware_concurrency());
    const double ceiling = verifies_per_lease > 0 ? raw_verify_per_s * cores / verifies_per_lease : 0;

    uint64_t rss_after_leases_kb = 0;
    for (e2e::Node* provider : providers) rss_after_leases_kb = std::max(rss_after_leases_kb, RssKb(provider->process->pid()));

    // kOpenOrders open orders: published, bid on by every provider, never accepted.
    std::vector<uint64_t> orders_before;
    for (e2e::Node* provider : providers) orders_before.push_back(ProviderOrdersAndBids(provider->out()).first);
    std::vector<std::thread> openers;
    std::atomic<uint64_t> open_failures{0};
    for (size_t t = 0; t < kOpenOrderTenants; ++t) {
      openers.emplace_back([&] {
        Result<std::unique_ptr<Tenant>> tenant = Tenant::Connect(client_address);
        if (!tenant.ok()) {
          open_failures += Scaled(kOpenOrders) / kOpenOrderTenants;
          return;
        }
        for (size_t i = 0; i < Scaled(kOpenOrders) / kOpenOrderTenants; ++i) {
          if (!(*tenant)->PublishOpenOrder(order).ok()) ++open_failures;
        }
      });
    }
    for (std::thread& thread : openers) thread.join();
    // Until every provider has seen them all (each prints its counts as they change).
    const bool all_seen = testing::Eventually(
        [&] {
          for (size_t i = 0; i < providers.size(); ++i) {
            if (ProviderOrdersAndBids(providers[i]->out()).first < orders_before[i] + Scaled(kOpenOrders)) return false;
          }
          return true;
        },
        milliseconds(120'000));
    uint64_t rss_provider_kb = 0;
    uint64_t min_open_bids = Scaled(kOpenOrders);
    for (e2e::Node* provider : providers) {
      rss_provider_kb = std::max(rss_provider_kb, RssKb(provider->process->pid()));
      min_open_bids = std::min(min_open_bids, ProviderOrdersAndBids(provider->out()).second);
    }
    const uint64_t rss_relay_kb = RssKb((*relay)->process->pid());

    state.counters["p50_ms"] = Percentile(light_ms, 0.50);
    state.counters["p99_ms"] = Percentile(light_ms, 0.99);
    state.counters["leases_per_s"] = leases_per_s;
    state.counters["load_p50_ms"] = Percentile(load_ms, 0.50);
    state.counters["load_p99_ms"] = Percentile(load_ms, 0.99);
    state.counters["verifies_per_lease"] = verifies_per_lease;
    state.counters["verifies_per_lease_relay"] = per_lease(verifies_before.relay, verifies_after.relay);
    state.counters["verifies_per_lease_providers"] = per_lease(verifies_before.providers, verifies_after.providers);
    state.counters["verifies_per_lease_tenant"] = per_lease(verifies_before.tenants, verifies_after.tenants);
    const auto cpu_ms_per_lease = [&](double seconds) {
      return load_ms.empty() ? 0.0 : 1000.0 * seconds / static_cast<double>(load_ms.size());
    };
    state.counters["cpu_ms_per_lease"] = cpu_ms_per_lease(relay_cpu + providers_cpu + tenants_cpu);
    state.counters["cpu_ms_per_lease_relay"] = cpu_ms_per_lease(relay_cpu);
    state.counters["cpu_ms_per_lease_providers"] = cpu_ms_per_lease(providers_cpu);
    state.counters["cpu_ms_per_lease_tenants"] = cpu_ms_per_lease(tenants_cpu);
    state.counters["raw_verify_per_s"] = raw_verify_per_s;
    state.counters["ceiling_leases_per_s"] = ceiling;
    state.counters["ceiling_ratio"] = ceiling > 0 ? leases_per_s / ceiling : 0;
    state.counters["rss_mb_provider"] = static_cast<double>(rss_provider_kb) / 1024.0;
    state.counters["rss_mb_relay"] = static_cast<double>(rss_relay_kb) / 1024.0;
    state.counters["rss_mb_provider_idle"] = static_cast<double>(rss_idle_kb) / 1024.0;
    state.counters["rss_mb_provider_after_leases"] = static_cast<double>(rss_after_leases_kb) / 1024.0;
    state.counters["sustain_failures"] = static_cast<double>(failures.load());
    state.counters["open_orders"] = all_seen ? static_cast<double>(Scaled(kOpenOrders)) : 0;
    state.counters["open_orders_min_bids"] = static_cast<double>(min_open_bids);
    state.counters["load_average"] = LoadAverage();
    state.counters["cores"] = cores;
    if (!first_failure.empty()) std::fprintf(stderr, "bench_e2e: first failed submit: %s\n", first_failure.c_str());
    if (!all_seen || open_failures > 0) {
      std::fprintf(stderr, "bench_e2e: open orders: %lu publish failures, every provider saw them all: %s\n",
                   static_cast<unsigned long>(open_failures.load()), all_seen ? "yes" : "no");
    }
    for (const auto& node : market.nodes()) node->process->Terminate(milliseconds(15'000));
  }
}
BENCHMARK(BM_SubmitToLease)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The baseline of this binary's own run, as in bench_market and bench_gossip.
void BM_RawVerify(benchmark::State& state) {
  const market::Identity identity = market::Identity::Generate();
  const auto signed_order = market::MakeSigned(identity, DeploymentOrder(), 1'750'000'000'000, 60'000, 1);
  const market::Bytes input = market::SigningInput(signed_order.envelope);
  for (auto _ : state) {
    const int rc = crypto_sign_verify_detached(signed_order.envelope.signature.data(), input.data(), input.size(),
                                               signed_order.envelope.signer.data());
    benchmark::DoNotOptimize(rc);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawVerify);

}  // namespace
}  // namespace gpumart::bench
