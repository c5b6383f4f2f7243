// gpumart ledger verify: re-checks a node's ledger (signatures, hash chain, indexes).
// gpumart leases: lists leases from a node's ledger, filtered and paged.
// Both open <data-dir>/ledger directly, so they need the daemon stopped (LevelDB allows one
// process); a running daemon serves the same queries on its client port.
#include <CLI/CLI.hpp>
#include <ostream>

#include "ledger/store.h"
#include "ledger/verify.h"
#include "market/types.h"
#include "node/cli.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

constexpr const char* kDefaultDataDir = "./gpumart-data";
constexpr const char* kLedgerSubdir = "/ledger";

Result<std::unique_ptr<ledger::LedgerStore>> OpenExisting(const std::string& data_dir) {
  ledger::LedgerOptions options;
  options.create_if_missing = false;
  return ledger::LedgerStore::Open(data_dir + kLedgerSubdir, options);
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
  SetCommandBody(*command, context, [options, &context] {
    auto store = OpenExisting(options->data_dir);
    if (!store.ok()) return context.Fail(store.status());
    const ledger::VerifyReport report = ledger::VerifyLedger(**store);
    if (options->json) {
      context.out << DumpJson(ToJson(report, (*store)->path())) << "\n";
    } else if (report.ok) {
      context.out << "ledger " << (*store)->path() << ": ok\n"
                  << "  " << report.records << " records, " << report.signatures << " signatures, "
                  << report.derived_values << " derived values, " << report.index_entries << " index entries, "
                  << report.chain_entries << " chain entries\n"
                  << "  chain head " << report.head.seq << " " << market::ToHex(report.head.hash) << "\n";
    }
    if (!report.ok) {
      return context.Fail((*store)->path() + " is inconsistent at " + report.key + ": " + report.problem, kExitFailure);
    }
    return kExitOk;
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
  SetCommandBody(*command, context, [options, &context] {
    ledger::LeaseQuery query;
    query.limit = options->limit;
    auto parse_key = [](const std::string& hex) { return market::FromHex<market::kPublicKeyBytes>(hex); };
    const auto bad_key = [&](const char* what) { return context.Fail(std::string("--") + what + " must be 64 hex digits", kExitUsage); };
    if (!options->tenant.empty() && !(query.tenant = parse_key(options->tenant))) return bad_key("tenant");
    if (!options->provider.empty() && !(query.provider = parse_key(options->provider))) return bad_key("provider");
    if (!options->after.empty() && !(query.after = parse_key(options->after))) return bad_key("after");
    if (!options->state.empty()) query.state = ledger::ParseLeaseState(options->state);

    auto store = OpenExisting(options->data_dir);
    if (!store.ok()) return context.Fail(store.status());
    auto page = (*store)->Leases(query);
    if (!page.ok()) return context.Fail(page.status());
    if (options->json) {
      Json leases = Json::array();
      for (const auto& record : page->leases) leases.push_back(ToJson(record));
      Json out{{"leases", std::move(leases)}, {"next_after", nullptr}};
      if (page->next_after) out["next_after"] = market::ToHex(*page->next_after);
      context.out << DumpJson(out) << "\n";
      return kExitOk;
    }
    if (page->leases.empty()) context.out << "no leases\n";
    for (const auto& record : page->leases) {
      context.out << market::ToHex(record.id) << "  " << ledger::ToString(record.state) << "  "
                  << record.lease.price_per_hour << " " << Printable(record.lease.denom) << "/h  provider "
                  << market::ToHex(record.provider()).substr(0, 16) << "…  tenant "
                  << market::ToHex(record.lease.tenant).substr(0, 16) << "…";
      if (record.billing) {
        context.out << "  ran " << record.billing->duration_ms / 1000 << " s, owes " << record.billing->amount_owed
                    << " " << Printable(record.lease.denom);
      }
      context.out << "\n";
    }
    if (page->next_after) context.out << "more: --after " << market::ToHex(*page->next_after) << "\n";
    return kExitOk;
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
