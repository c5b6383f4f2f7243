// gpumart ledger verify: re-checks a node's ledger (signatures, hash chain, indexes).
// gpumart leases: lists leases from a node's ledger, filtered and paged.
// Both open <data-dir>/ledger directly, so they need the daemon stopped (LevelDB allows one
// process); a running daemon serves the same queries on its client port.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <ostream>

#include "ledger/store.h"
#include "ledger/verify.h"
#include "market/types.h"
#include "node/cli.h"

namespace gpumart::node {
namespace {

constexpr const char* kDefaultDataDir = "./gpumart-data";
constexpr const char* kLedgerSubdir = "/ledger";

Result<std::unique_ptr<ledger::LedgerStore>> OpenExisting(const std::string& data_dir) {
  ledger::LedgerOptions options;
  options.create_if_missing = false;
  return ledger::LedgerStore::Open(data_dir + kLedgerSubdir, options);
}

nlohmann::json ServicesJson(const std::vector<market::ServiceAssignment>& services) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& service : services) {
    nlohmann::json item{{"service", service.service}};
    if (service.device) {
      item["device"] = {{"vendor", service.device->vendor},
                        {"model", service.device->model},
                        {"ram", market::FormatGi(service.device->ram_bytes)},
                        {"interface", market::ToString(service.device->interface)}};
    }
    nlohmann::json placements = nlohmann::json::array();
    for (const auto& placement : service.placements) {
      placements.push_back({{"node", placement.node}, {"replicas", placement.replicas}});
    }
    item["placements"] = placements;
    out.push_back(item);
  }
  return out;
}

nlohmann::json LeaseJson(const ledger::LeaseRecord& record) {
  nlohmann::json out{
      {"id", market::ToHex(record.id)},
      {"state", ledger::ToString(record.state)},
      {"provider", market::ToHex(record.provider())},
      {"tenant", market::ToHex(record.lease.tenant)},
      {"order_id", market::ToHex(record.lease.order_id)},
      {"bid_id", market::ToHex(record.lease.bid_id)},
      {"denom", record.lease.denom},
      {"price_per_hour", record.lease.price_per_hour},
      {"start_ms", record.lease.start_ms},
      {"services", ServicesJson(record.lease.services)},
  };
  if (record.close && record.close_envelope) {
    out["close"] = {{"reason", market::ToString(record.close->reason)},
                    {"closed_ms", record.close->closed_ms},
                    {"closed_by", market::ToHex(record.close_envelope->signer)},
                    {"note", record.close->note}};
  }
  if (record.billing) {
    out["billing"] = {{"duration_ms", record.billing->duration_ms}, {"amount_owed", record.billing->amount_owed}};
  }
  return out;
}

void RegisterVerify(CLI::App& ledger_command, CliContext& context) {
  auto* command = ledger_command.add_subcommand(
      "verify", "re-check every signature, index entry and the hash chain; exit 1 at the first inconsistency");
  struct Options {
    std::string data_dir = kDefaultDataDir;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--data-dir,-d", options->data_dir, "the node's data directory")->capture_default_str();
  command->add_flag("--json", options->json, "print the report as JSON");
  command->callback([options, &context] {
    auto store = OpenExisting(options->data_dir);
    if (!store.ok()) {
      context.err << "gpumart ledger verify: " << store.status().ToString() << "\n";
      context.exit_code = kExitFailure;
      return;
    }
    const ledger::VerifyReport report = ledger::VerifyLedger(**store);
    if (options->json) {
      nlohmann::json out{{"ok", report.ok},
                         {"ledger", (*store)->path()},
                         {"records", report.records},
                         {"signatures", report.signatures},
                         {"derived_values", report.derived_values},
                         {"index_entries", report.index_entries},
                         {"chain_entries", report.chain_entries}};
      if (report.ok) {
        out["head"] = {{"seq", report.head.seq}, {"hash", market::ToHex(report.head.hash)}};
      } else {
        out["key"] = report.key;
        out["problem"] = report.problem;
      }
      context.out << out.dump() << "\n";
    } else if (report.ok) {
      context.out << "ledger " << (*store)->path() << ": ok\n"
                  << "  " << report.records << " records, " << report.signatures << " signatures, "
                  << report.derived_values << " derived values, " << report.index_entries << " index entries, "
                  << report.chain_entries << " chain entries\n"
                  << "  chain head " << report.head.seq << " " << market::ToHex(report.head.hash) << "\n";
    }
    if (!report.ok) {
      context.err << "gpumart ledger verify: " << (*store)->path() << " is inconsistent at " << report.key << ": "
                  << report.problem << "\n";
      context.exit_code = kExitFailure;
    }
  });
}

void RegisterLeases(CLI::App& app, CliContext& context) {
  auto* command = app.add_subcommand("leases", "list leases from this node's ledger");
  struct Options {
    std::string data_dir = kDefaultDataDir;
    std::string tenant;
    std::string provider;
    std::string state;
    std::string after;
    size_t limit = ledger::kDefaultPageSize;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--data-dir,-d", options->data_dir, "the node's data directory")->capture_default_str();
  command->add_option("--tenant", options->tenant, "only leases of this tenant (public key, hex)");
  command->add_option("--provider", options->provider, "only leases of this provider (public key, hex)");
  command->add_option("--state", options->state, "only leases in this state")->check(CLI::IsMember({"active", "closed"}));
  command->add_option("--limit", options->limit, "at most this many leases")
      ->check(CLI::Range(size_t{1}, ledger::kMaxPageSize))
      ->capture_default_str();
  command->add_option("--after", options->after, "continue after this lease id (the previous page's next_after)");
  command->add_flag("--json", options->json, "print JSON");
  command->callback([options, &context] {
    ledger::LeaseQuery query;
    query.limit = options->limit;
    auto parse_key = [&](const std::string& hex, const char* what) -> std::optional<market::PublicKey> {
      auto key = market::FromHex<market::kPublicKeyBytes>(hex);
      if (!key) {
        context.err << "gpumart leases: --" << what << " must be 64 hex digits\n";
        context.exit_code = kExitUsage;
      }
      return key;
    };
    if (!options->tenant.empty() && !(query.tenant = parse_key(options->tenant, "tenant"))) return;
    if (!options->provider.empty() && !(query.provider = parse_key(options->provider, "provider"))) return;
    if (!options->after.empty() && !(query.after = parse_key(options->after, "after"))) return;
    if (!options->state.empty()) query.state = ledger::ParseLeaseState(options->state);

    auto store = OpenExisting(options->data_dir);
    if (!store.ok()) {
      context.err << "gpumart leases: " << store.status().ToString() << "\n";
      context.exit_code = kExitFailure;
      return;
    }
    auto page = (*store)->Leases(query);
    if (!page.ok()) {
      context.err << "gpumart leases: " << page.status().ToString() << "\n";
      context.exit_code = kExitFailure;
      return;
    }
    if (options->json) {
      nlohmann::json leases = nlohmann::json::array();
      for (const auto& record : page->leases) leases.push_back(LeaseJson(record));
      nlohmann::json out{{"leases", leases}, {"next_after", nullptr}};
      if (page->next_after) out["next_after"] = market::ToHex(*page->next_after);
      context.out << out.dump() << "\n";
      return;
    }
    if (page->leases.empty()) context.out << "no leases\n";
    for (const auto& record : page->leases) {
      context.out << market::ToHex(record.id) << "  " << ledger::ToString(record.state) << "  "
                  << record.lease.price_per_hour << " " << record.lease.denom << "/h  provider "
                  << market::ToHex(record.provider()).substr(0, 16) << "…  tenant "
                  << market::ToHex(record.lease.tenant).substr(0, 16) << "…";
      if (record.billing) {
        context.out << "  ran " << record.billing->duration_ms / 1000 << " s, owes " << record.billing->amount_owed
                    << " " << record.lease.denom;
      }
      context.out << "\n";
    }
    if (page->next_after) context.out << "more: --after " << market::ToHex(*page->next_after) << "\n";
  });
}

}  // namespace

void RegisterLedgerCommands(CLI::App& app, CliContext& context) {
  auto* ledger_command = app.add_subcommand("ledger", "inspect this node's ledger");
  ledger_command->require_subcommand(1);
  RegisterVerify(*ledger_command, context);
  RegisterLeases(app, context);
}

}  // namespace gpumart::node
