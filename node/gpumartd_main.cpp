// gpumartd: a gpumart node. This build runs a node's local part: its identity (created on first
// start, mode 0600), its data dir and ledger (opened, locked against a second daemon, checked),
// and a clean shutdown on SIGINT/SIGTERM that commits everything acknowledged. Peer networking
// (gossip, the provider's bid engine, the client port) arrives with the later issues, on this
// same startup path.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <spdlog/spdlog.h>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "ledger/ledger_actor.h"
#include "ledger/verify.h"
#include "market/boundary.h"
#include "market/crypto.h"
#include "market/offers.h"
#include "node/config.h"
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

int Run(const node::NodeConfig& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  if (::mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail(Status::IoError("cannot create data dir " + config.data_dir + ": " + std::strerror(errno)));
  }
  Result<market::Identity> identity = market::LoadOrCreateKeyFile(config.IdentityPath());
  if (!identity.ok()) return Fail(identity.status());
  size_t providers = 0;
  if (config.role == node::NodeRole::kProvider) {
    Result<std::vector<market::Offer>> offers = market::ParseOffersFile(config.offers);
    if (!offers.ok()) return Fail(offers.status());
    providers = offers->size();
  }

  // Block the shutdown signals before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  actors::ActorSystem system;
  const std::string ledger_path = config.data_dir + "/ledger";
  Result<std::unique_ptr<ledger::LedgerActor>> ledger =
      ledger::LedgerActor::Open(system, ledger_path, {}, SystemClock::Instance());
  if (!ledger.ok()) return Fail(ledger.status());
  const ledger::VerifyReport verify = ledger::VerifyLedger((*ledger)->store());
  if (!verify.ok) {
    return Fail(Status::Corruption("ledger " + ledger_path + " fails verification: " + verify.Describe() +
                                   " (run gpumart ledger verify --data-dir " + config.data_dir + ")"));
  }
  // One line a script can wait for.
  std::cout << "gpumartd ready: node " << market::ToHex(identity->public_key()) << " role "
            << node::ToString(config.role) << " data dir " << config.data_dir << " ledger " << verify.records
            << " records, chain head " << verify.head.seq;
  if (providers > 0) std::cout << " offers " << providers;
  std::cout << "; peer networking is not in this build" << std::endl;

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("{} received, shutting down", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  ledger->reset();  // commits and acknowledges everything already handled
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
  return Run(config);
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
