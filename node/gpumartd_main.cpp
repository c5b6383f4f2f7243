// gpumartd: a gpumart node. It runs a node's identity (created on first start, mode 0600), its
// data dir and ledger (opened, locked against a second daemon, checked) and its gossip node
// (docs/GOSSIP.md), whose received Leases, Closes and Attestations go to the ledger and whose
// Offers go to the live offer book; all owned by one NodeContext. A provider with an inventory
// also runs its provider actor (node/provider_actor.h): it gossips its Offer and bids on every
// order it can serve. SIGHUP reloads the config's inventory (a bad config is refused, the old one
// kept). SIGINT/SIGTERM stop it cleanly: a provider stops bidding, waits for its lease writes in
// flight and withdraws its offer; then the client port and gossip stop, then the ledger commits
// everything acknowledged. Its client port (config client_listen, docs/CLIENT.md) serves the CLI;
// the address is in <data_dir>/client.address while it runs. Prometheus metrics are served over
// HTTP at /metrics (`metrics_listen`, docs/METRICS.md).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <utility>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>
#include <spdlog/spdlog.h>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "bidding/inventory.h"
#include "ledger/verify.h"
#include "market/boundary.h"
#include "market/crypto.h"
#include "market/offers.h"
#include "node/client/client.h"
#include "node/config.h"
#include "node/free_memory.h"
#include "node/node_context.h"
#include "node/json.h"

namespace {

using namespace gpumart;

// Exit statuses: 0 after a clean shutdown, 1 on any error (reported on stderr), 2 for a bad
// command line.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int Fail(std::string_view message) {
  std::cerr << "gpumartd: " << node::Printable(message) << "\n";
  return kExitFailure;
}
int Fail(const Status& status) { return Fail(status.message()); }

// How often the daemon looks at its gossip peers (to report changes) while it waits for a signal.
constexpr int64_t kPeerReportIntervalMs = 200;
// How long a stopping provider waits for its lease writes in flight.
constexpr std::chrono::milliseconds kProviderStopTimeout{10'000};

// SIGHUP: the config file again. The inventory and the pricing change a running provider (new
// bids use the new pricing; bids made and leases held keep their price); a config that does not
// load, or an inventory or pricing the engine refuses, is refused with the reason and the running
// one kept. Other settings take effect at the next start.
void Reload(const std::string& config_path, const std::string& data_dir, const node::NodeConfig& running,
            node::NodeContext& context) {
  if (config_path.empty() || !context.is_provider()) {
    spdlog::warn("SIGHUP: nothing to reload (no config file, or not a provider)");
    return;
  }
  Result<node::NodeConfig> loaded = node::LoadNodeConfig(config_path);
  if (loaded.ok() && !data_dir.empty()) loaded->data_dir = data_dir;
  if (loaded.ok() && (loaded->role != node::NodeRole::kProvider || !loaded->inventory)) {
    loaded = Status::InvalidArgument("the new config is no provider with an inventory");
  }
  Result<bidding::Inventory> inventory =
      loaded.ok() ? bidding::LoadInventory(*loaded->inventory) : Result<bidding::Inventory>(loaded.status());
  Status status = inventory.ok() ? context.ReloadInventory(*inventory, *loaded) : inventory.status();
  if (!status.ok()) {
    spdlog::error("SIGHUP: config refused, the running one kept: {}", status.message());
    std::cout << "config reload refused: " << node::Printable(status.message()) << std::endl;
    return;
  }
  for (const std::string& note : inventory->notes) spdlog::warn("inventory: {}", note);
  if (!(loaded->pricing_policy == running.pricing_policy)) {
    spdlog::info("SIGHUP: pricing changed; new bids use it");
  }
  std::cout << "config reloaded: inventory " << inventory->nodes.size() << " nodes " << inventory->GpuCount() << " gpus"
            << std::endl;
}

// <data_dir>/client.address while the daemon runs: written (atomically, by rename) once the port
// listens, removed when the daemon stops cleanly. A daemon killed leaves it behind; the CLI then
// gets a clear timeout from the address, and the next start replaces it.
class ClientAddressFile {
 public:
  static Result<ClientAddressFile> Write(const std::string& data_dir, const std::string& address) {
    const std::string path = data_dir + "/" + client::kClientAddressFile;
    const std::string temp = path + ".tmp";
    {
      std::ofstream out(temp, std::ios::trunc);
      out << address << "\n";
      if (!out.flush()) return Status::IoError("cannot write " + temp);
    }
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
      return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
    }
    return ClientAddressFile(path);
  }
  ClientAddressFile(ClientAddressFile&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  ClientAddressFile& operator=(ClientAddressFile&&) = delete;
  ~ClientAddressFile() {
    if (!path_.empty()) std::remove(path_.c_str());
  }

 private:
  explicit ClientAddressFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

int Run(const node::NodeConfig& config, const std::string& config_path, const std::string& data_dir) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  size_t providers = 0;
  std::optional<bidding::Inventory> inventory;
  if (config.role == node::NodeRole::kProvider && config.inventory) {
    // An impossible inventory, an unknown GPU or a failed detection stops the daemon here.
    Result<bidding::Inventory> loaded = bidding::LoadInventory(*config.inventory);
    if (!loaded.ok()) return Fail(loaded.status());
    for (const std::string& note : loaded->notes) spdlog::warn("inventory: {}", note);
    inventory = std::move(loaded).value();
  } else if (config.role == node::NodeRole::kProvider) {
    Result<std::vector<market::Offer>> offers = market::ParseOffersFile(config.offers);
    if (!offers.ok()) return Fail(offers.status());
    providers = offers->size();
  }

  // Block the shutdown signals before any thread starts, so only sigtimedwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Result<std::unique_ptr<node::NodeContext>> started =
      node::NodeContext::Start(config, inventory ? &*inventory : nullptr, config.provider);
  if (!started.ok()) return Fail(started.status());
  std::unique_ptr<node::NodeContext> context = std::move(started).value();
  const ledger::VerifyReport& verify = context->ledger_report();
  // The CLI on this machine finds the local daemon's client port here (docs/CLIENT.md).
  std::optional<ClientAddressFile> address_file;
  if (!context->client_address().empty()) {
    Result<ClientAddressFile> written = ClientAddressFile::Write(config.data_dir, context->client_address());
    if (!written.ok()) return Fail(written.status());
    address_file.emplace(std::move(written).value());
  }
  // The peer address first, so a script that waits for "ready" has it.
  if (!context->peer_address().empty()) std::cout << "gossip listening on " << context->peer_address() << "\n";
  if (!context->client_address().empty()) std::cout << "client port listening on " << context->client_address() << "\n";
  if (!context->metrics_address().empty()) {
    std::cout << "metrics listening on http://" << context->metrics_address() << "/metrics\n";
  }
  std::cout << "gpumartd ready: node " << market::ToHex(context->identity().public_key()) << " role "
            << node::ToString(config.role) << " data dir " << config.data_dir << " ledger " << verify.records
            << " records, chain head " << verify.head.seq;
  if (providers > 0) std::cout << " offers " << providers;
  if (inventory) std::cout << " inventory " << inventory->nodes.size() << " nodes " << inventory->GpuCount() << " gpus";
  std::cout << std::endl;

  size_t reported_peers = 0;
  uint64_t reported_records = 0;
  uint64_t reported_offers = 0;
  const std::shared_ptr<const node::LedgerFeedCounters> counters = context->ledger_counters();
  const std::shared_ptr<const node::OfferBookCounters> offers = context->offer_counters();
  const std::shared_ptr<const node::ProviderCounters> provider = context->provider_counters();
  uint64_t reported_bids = 0;
  uint64_t reported_leases = 0;
  uint64_t reported_offers_published = 0;
  int signal_number = 0;
  const timespec wait{.tv_sec = 0, .tv_nsec = kPeerReportIntervalMs * 1'000'000};
  int64_t next_memory_return_ms = SystemClock::Instance().MonotonicMs();
  while ((signal_number = sigtimedwait(&signals, nullptr, &wait)) < 0 || signal_number == SIGHUP) {
    if (signal_number == SIGHUP) {
      Reload(config_path, data_dir, config, *context);
      continue;
    }
    if (errno != EAGAIN && errno != EINTR) return Fail(Status::Internal(std::string("sigtimedwait: ") + std::strerror(errno)));
    // A burst's memory, freed, goes back to the system (node/free_memory.h).
    if (const int64_t now_ms = SystemClock::Instance().MonotonicMs(); now_ms >= next_memory_return_ms) {
      node::ReturnFreeMemory();
      next_memory_return_ms = now_ms + node::kReturnFreeMemoryIntervalMs;
    }
    if (provider) {
      const uint64_t bids = provider->bids.load();
      const uint64_t leases = provider->leases_made.load();
      const uint64_t published = provider->offers_published.load();
      if (bids != reported_bids || leases != reported_leases || published != reported_offers_published) {
        reported_bids = bids;
        reported_leases = leases;
        reported_offers_published = published;
        std::cout << "provider " << provider->Describe() << std::endl;
      }
    }
    Result<gossip::GossipNodeStatus> status = context->GossipStatus();
    if (status.ok() && status->ready_peers != reported_peers) {
      reported_peers = status->ready_peers;
      std::cout << "gossip peers " << reported_peers << std::endl;
    }
    if (const uint64_t records = counters->recorded.load(); records != reported_records) {
      reported_records = records;
      std::cout << "gossip recorded " << reported_records << std::endl;
    }
    if (const uint64_t held = offers->held.load(); held != reported_offers) {
      reported_offers = held;
      std::cout << "offer book " << reported_offers << " offers" << std::endl;
    }
  }
  spdlog::info("{} received, shutting down", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  address_file.reset();  // a stopping daemon takes no new clients
  if (provider) {
    // No more bids; leases being written are published; then the offer is withdrawn.
    const Status stopped = context->StopProvider(kProviderStopTimeout);
    if (!stopped.ok()) spdlog::warn("provider: {}", stopped.message());
    std::cout << "provider offer withdrawn" << (stopped.ok() ? "" : " (incomplete: " + stopped.message() + ")")
              << std::endl;
  }
  context.reset();  // gossip stops, then the ledger commits and acknowledges everything handled
  spdlog::info("gossip to ledger: {} recorded, {} refused, {} dropped", counters->recorded.load(),
               counters->refused.load(), counters->dropped.load());
  spdlog::info("offer book: {} held; {} added, {} replaced, {} stale, {} expired, {} over a limit, {} dropped",
               offers->held.load(), offers->added.load(), offers->replaced.load(), offers->stale.load(),
               offers->expired.load(), offers->over_limit.load(), offers->dropped.load());
  if (provider) std::cout << "provider " << provider->Describe() << std::endl;
  std::cout << "gpumartd stopped" << std::endl;
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"gpumartd: a gpumart node (relay or provider)", "gpumartd"};
  app.set_version_flag("--version", "gpumartd 0.1.0");
  std::string config_path;
  std::string data_dir;
  app.add_option("--config", config_path, "node config file (YAML, docs/CONFIGURATION.md)");
  app.add_option("--data-dir", data_dir, "overrides the config's data_dir");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  gpumart::node::NodeConfig config;
  if (!config_path.empty()) {
    auto loaded = gpumart::node::LoadNodeConfig(config_path);
    if (!loaded.ok()) return Fail(loaded.status());
    config = *loaded;
  }
  if (!data_dir.empty()) config.data_dir = data_dir;
  return Run(config, config_path, data_dir);
}

}  // namespace

// The daemon's boundary: errors are values below it; an exception that gets here (bad_alloc, a
// library's own) is reported and ends the daemon with exit 1 instead of std::terminate. Actor
// threads stop exceptions at their own message boundary (actors/).
int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (...) {
    return Fail(gpumart::CurrentExceptionStatus("internal error"));
  }
}
