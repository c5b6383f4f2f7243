// gpumart demo: the local market end to end (node/local_market.h), printed for a person or as
// JSON. By default it reads the example deployment and offers from configs/ and keeps its ledger
// in a temporary directory that it removes afterwards; --data-dir keeps the ledger so that
// `gpumart leases --data-dir D` and `gpumart ledger verify --data-dir D` can read it.
#include <CLI/CLI.hpp>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "actors/clock.h"
#include "node/cli.h"
#include "node/json.h"
#include "node/local_market.h"

namespace gpumart::node {

namespace {

namespace fs = std::filesystem;

// configs/<name> from the working directory, else next to the build tree the binary sits in
// (<repo>/build/bin/gpumart -> <repo>/configs).
std::string DefaultConfig(const std::string& name) {
  const fs::path local = fs::path("configs") / name;
  if (fs::exists(local)) return local.string();
  char exe[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    const fs::path beside = fs::path(std::string(exe, static_cast<size_t>(n))).parent_path() / ".." / ".." / "configs" / name;
    if (fs::exists(beside)) return fs::weakly_canonical(beside).string();
  }
  return local.string();
}

std::string Short(const std::string& hex) { return hex.substr(0, 12) + "…"; }

std::string Describe(const market::ServiceAssignment& service) {
  std::ostringstream out;
  out << service.service << ": ";
  if (service.device) {
    out << "option " << (*service.option + 1) << " " << market::Describe(*service.device) << ", ";
  }
  for (size_t i = 0; i < service.placements.size(); ++i) {
    out << (i ? ", " : "") << service.placements[i].node << " x" << service.placements[i].replicas;
  }
  return out.str();
}

Json ReportJson(const LocalMarketReport& report, const LocalMarketOptions& options) {
  Json json{{"tenant", report.tenant_key},
                      {"providers", report.providers},
                      {"policy", market::ToString(options.policy)},
                      {"ledger", {{"path", report.ledger_path},
                                  {"verify", report.ledger_verify},
                                  {"ok", report.ledger_ok},
                                  {"records", report.ledger_records},
                                  {"chain_entries", report.ledger_chain_entries}}}};
  json["groups"] = Json::array();
  for (const auto& group : report.groups) {
    Json g{{"name", group.group},
                     {"order_id", market::ToHex(group.order_id)},
                     {"denom", group.denom},
                     {"cap_per_hour", group.cap_per_hour},
                     {"declined", group.declined},
                     {"lease", nullptr}};
    g["bids"] = Json::array();
    for (const auto& bid : group.bids) {
      g["bids"].push_back({{"provider", bid.provider},
                           {"bid_id", market::ToHex(bid.bid_id)},
                           {"price_per_hour", bid.price_per_hour},
                           {"ranks", bid.ranks},
                           {"services", ToJson(bid.services)}});
    }
    if (group.leased) {
      g["lease"] = {{"id", market::ToHex(group.lease_id)},
                    {"provider", group.provider},
                    {"provider_key", group.provider_key},
                    {"price_per_hour", group.price_per_hour},
                    {"services", ToJson(group.services)},
                    {"order_to_lease_ms", group.order_to_lease_ms},
                    {"signatures_verified", group.signatures_verified}};
    }
    json["groups"].push_back(std::move(g));
  }
  return json;
}

void PrintReport(std::ostream& out, const LocalMarketReport& report, const LocalMarketOptions& options) {
  out << "gpumart demo: a local market in one process\n"
      << "  deployment " << options.sdl_path << "\n"
      << "  offers     " << options.offers_path << " (" << report.providers << " providers)\n"
      << "  tenant     " << Short(report.tenant_key) << "\n"
      << "  ledger     " << report.ledger_path << "\n"
      << "  policy     " << market::ToString(options.policy) << "\n";
  for (const auto& group : report.groups) {
    out << "\ngroup " << group.group << ": order " << Short(market::ToHex(group.order_id)) << " signed by the tenant, cap "
        << group.cap_per_hour << " " << group.denom << "/hour\n";
    for (size_t i = 0; i < group.bids.size(); ++i) {
      const auto& bid = group.bids[i];
      out << "  bid " << (i + 1) << "  " << std::left << std::setw(10) << bid.provider << std::right << std::setw(12)
          << bid.price_per_hour << " " << group.denom << "/h";
      for (const auto& service : bid.services) {
        if (service.device) out << "  " << Describe(service);
      }
      out << "\n";
    }
    for (const auto& declined : group.declined) out << "  no bid   " << declined << "\n";
    if (!group.leased) {
      out << "  no provider can take this group: no lease\n";
      continue;
    }
    out << "  accepted " << group.provider << "; lease " << Short(market::ToHex(group.lease_id))
        << " countersigned and durable in the ledger\n";
    for (const auto& service : group.services) out << "    " << Describe(service) << "\n";
    out << "  order -> lease in " << std::fixed << std::setprecision(2) << group.order_to_lease_ms << " ms ("
        << group.signatures_verified << " signatures verified; losing bids released at once)\n";
  }
  out << "\nledger verify: " << report.ledger_verify << " (" << report.ledger_records << " signed records, "
      << report.ledger_chain_entries << " chain entries)\n";
}

}  // namespace

void RegisterDemoCommand(CLI::App& app, CliContext& context) {
  // The market as real processes (a relay, providers, `gpumart submit`) is scripts/demo; this is
  // its quick in-process look, hence --local.
  auto* command =
      app.add_subcommand("demo", "--local: run a whole market in this process: order, bids, accept, lease, ledger");
  struct Options {
    std::string sdl;
    std::string offers;
    std::string data_dir;
    std::string policy = "preference";
    bool json = false;
    bool local = false;
  };
  auto options = std::make_shared<Options>();
  command->add_flag("--local", options->local, "in this process (required; scripts/demo runs real processes)");
  command->add_option("--sdl", options->sdl, "deployment (default configs/sdl/inference-and-web.yaml)");
  command->add_option("--offers", options->offers, "providers (default configs/offers-example.yaml)");
  command->add_option("--data-dir", options->data_dir, "keep the ledger here (default: a temporary directory)");
  command->add_option("--policy", options->policy, "bid ranking: preference or cheapest")->capture_default_str();
  command->add_flag("--json", options->json, "print the result as JSON");
  SetCommandBody(*command, context, [options, &context] {
    if (!options->local) {
      return context.Fail("the in-process market is `gpumart demo --local`; scripts/demo runs the market as real "
                          "processes (a relay, providers, gpumart submit)",
                          kExitUsage);
    }
    LocalMarketOptions run;
    run.sdl_path = options->sdl.empty() ? DefaultConfig("sdl/inference-and-web.yaml") : options->sdl;
    run.offers_path = options->offers.empty() ? DefaultConfig("offers-example.yaml") : options->offers;
    const auto policy = market::ParsePolicy(options->policy);
    if (!policy) return context.Fail("--policy must be preference or cheapest, not " + options->policy, kExitUsage);
    run.policy = *policy;
    std::string temporary;
    if (options->data_dir.empty()) {
      std::error_code error;
      const fs::path base = fs::temp_directory_path(error);
      if (error) return context.Fail("no temporary directory (TMPDIR): " + error.message(), kExitFailure);
      std::string pattern = (base / "gpumart-demo-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) {
        return context.Fail("cannot create a temporary directory in " + base.string() + ": " + std::strerror(errno),
                            kExitFailure);
      }
      temporary = pattern;
      run.data_dir = temporary;
    } else {
      run.data_dir = options->data_dir;
      std::error_code ignored;
      fs::create_directories(run.data_dir, ignored);
    }
    Result<LocalMarketReport> report = RunLocalMarket(run, SystemClock::Instance());
    if (!temporary.empty()) {
      std::error_code ignored;
      fs::remove_all(temporary, ignored);
    }
    if (!report.ok()) return context.Fail(report.status());
    if (options->json) {
      Json json = ReportJson(*report, run);
      if (!temporary.empty()) json["ledger"]["path"] = nullptr;  // removed
      context.out << DumpJson(json, 2) << "\n";
    } else {
      PrintReport(context.out, *report, run);
      if (!temporary.empty()) context.out << "(the ledger was temporary; pass --data-dir to keep it)\n";
    }
    return report->ledger_ok ? kExitOk : kExitFailure;
  });
}

}  // namespace gpumart::node
