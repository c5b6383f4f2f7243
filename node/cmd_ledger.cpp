// gpumart ledger verify: re-checks a node's ledger (signatures, hash chain, indexes).
// gpumart leases: lists leases from a node's ledger, filtered and paged: over the node's client
// port (docs/CLIENT.md), or, for a stopped daemon, from <data-dir>/ledger directly (LevelDB allows
// one process). `ledger verify` always reads the ledger directly.
#include <CLI/CLI.hpp>
#include <ostream>

#include "actors/clock.h"
#include "ledger/store.h"
#include "ledger/verify.h"
#include "market/types.h"
#include "node/cli.h"
#include "node/client_cli.h"
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

// The leases page as `gpumart leases --json` prints it (the client port's `leases` result).
Result<Json> OfflineLeases(const std::string& data_dir, const ledger::LeaseQuery& query) {
  auto store = OpenExisting(data_dir);
  if (!store.ok()) return store.status();
  auto page = (*store)->Leases(query);
  if (!page.ok()) return page.status();
  Json leases = Json::array();
  const int64_t now_ms = SystemClock::Instance().NowMs();
  for (const auto& record : page->leases) leases.push_back(ToJson(record, now_ms));
  Json out{{"leases", std::move(leases)}, {"next_after", nullptr}};
  if (page->next_after) out["next_after"] = market::ToHex(*page->next_after);
  return out;
}

Result<Json> RemoteLeases(const std::string& address, const ledger::LeaseQuery& query) {
  auto connected = client::Client::Connect(address);
  if (!connected.ok()) return connected.status();
  client::Fields args{{"limit", uint64_t{query.limit}}};
  auto key = [](const auto& bytes) { return client::Bytes(bytes.begin(), bytes.end()); };
  if (query.tenant) args["tenant"] = key(*query.tenant);
  if (query.provider) args["provider"] = key(*query.provider);
  if (query.after) args["after"] = key(*query.after);
  if (query.state) args["state"] = std::string(ledger::ToString(*query.state));
  auto result = (*connected)->Call("leases", std::move(args));
  if (!result.ok()) return result.status().WithContext("node " + address);
  return ParseJsonResult(*result);
}

void PrintLeases(std::ostream& out, const Json& page) {
  const Json& leases = page.at("leases");
  if (leases.empty()) out << "no leases\n";
  for (const Json& lease : leases) {
    out << lease.value("id", "") << "  " << lease.value("state", "") << "  " << lease.value("price_per_hour", uint64_t{0})
        << " " << Printable(lease.value("denom", "")) << "/h  provider " << lease.value("provider", "").substr(0, 16)
        << "…  tenant " << lease.value("tenant", "").substr(0, 16) << "…";
    if (const auto billing = lease.find("billing"); billing != lease.end() && billing->is_object()) {
      out << "  ran " << billing->value("duration_ms", uint64_t{0}) / 1000 << " s, owes "
          << billing->value("amount_owed", uint64_t{0}) << " " << Printable(lease.value("denom", ""));
    } else if (const auto accrued = lease.find("accrued"); accrued != lease.end() && accrued->is_object()) {
      out << "  accrued " << accrued->value("cost", uint64_t{0}) << " " << Printable(lease.value("denom", ""))
          << " in " << accrued->value("duration_ms", int64_t{0}) / 1000 << " s";
    }
    out << "\n";
  }
  if (page.contains("next_after") && page["next_after"].is_string()) {
    out << "more: --after " << page["next_after"].get<std::string>() << "\n";
  }
}

void RegisterLeases(CLI::App& app, CliContext& context) {
  auto* command = app.add_subcommand("leases", "list the leases in a node's ledger (over its client port, or read directly)");
  struct Options {
    NodeFlags node;
    std::string tenant;
    std::string provider;
    std::string state;
    std::string after;
    size_t limit = ledger::kDefaultPageSize;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  AddNodeOptions(*command, options->node, /*offline_reader=*/true);
  command->add_option("--tenant", options->tenant, "only leases of this tenant (public key, hex)");
  command->add_option("--provider", options->provider, "only leases of this provider (public key, hex)");
  command->add_option("--state", options->state, "only leases in this state")->check(CLI::IsMember({"active", "closed"}));
  command->add_option("--limit", options->limit, "at most this many leases")
      ->check(CLI::Range(size_t{1}, ledger::kMaxPageSize))
      ->capture_default_str();
  command->add_option("--after", options->after, "continue after this lease id (the previous page's next_after)");
  command->add_flag("--json", options->json, "print JSON");
  SetCommandBody(*command, context, [command, options, &context] {
    ledger::LeaseQuery query;
    query.limit = options->limit;
    auto parse_key = [](const std::string& hex) { return market::FromHex<market::kPublicKeyBytes>(hex); };
    const auto bad_key = [&](const char* what) { return context.Fail(std::string("--") + what + " must be 64 hex digits", kExitUsage); };
    if (!options->tenant.empty() && !(query.tenant = parse_key(options->tenant))) return bad_key("tenant");
    if (!options->provider.empty() && !(query.provider = parse_key(options->provider))) return bad_key("provider");
    if (!options->after.empty() && !(query.after = parse_key(options->after))) return bad_key("after");
    if (!options->state.empty()) query.state = ledger::ParseLeaseState(options->state);

    Result<NodeChoice> choice = ChooseNode(*command, options->node, /*offline_reader=*/true);
    if (!choice.ok()) return context.Fail(choice.status());
    Result<Json> page = choice->address.empty() ? OfflineLeases(options->node.data_dir, query)
                                                : RemoteLeases(choice->address, query);
    // A daemon killed without cleaning up leaves its address behind: its ledger is free to read.
    if (!page.ok() && choice->from_local_daemon && page.status().code() == Status::Code::kTimeout) {
      if (Result<Json> offline = OfflineLeases(options->node.data_dir, query); offline.ok()) page = std::move(offline);
    }
    if (!page.ok()) return context.Fail(page.status());
    if (options->json) {
      context.out << DumpJson(*page) << "\n";
    } else {
      PrintLeases(context.out, *page);
    }
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
