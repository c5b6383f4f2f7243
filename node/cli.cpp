#include "node/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <ostream>

#include "market/boundary.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

// "ledger verify" for the verify subcommand of ledger (the root app's name is left out).
std::string CommandPath(const CLI::App& command) {
  std::string path = command.get_name();
  for (const CLI::App* parent = command.get_parent(); parent != nullptr && parent->get_parent() != nullptr;
       parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  return path;
}

}  // namespace

int CliContext::Fail(std::string_view message, int exit) {
  err << "gpumart";
  if (!command.empty()) err << " " << command;
  err << ": ";
  // A message may quote a peer's string: each line is made printable, the line breaks are kept.
  for (size_t start = 0; start <= message.size();) {
    const size_t end = std::min(message.find('\n', start), message.size());
    err << Printable(message.substr(start, end - start)) << (end < message.size() ? "\n" : "");
    start = end + 1;
  }
  err << "\n";
  return exit;
}

int CliContext::Fail(const Status& status, int exit) { return Fail(status.message(), exit); }

int CliContext::Fail(const Status& status) { return Fail(status, kExitFailure); }

void SetCommandBody(CLI::App& command, CliContext& context, std::function<int()> body) {
  command.callback([&command, &context, body = std::move(body)] {
    context.command = CommandPath(command);
    try {
      context.exit_code = body();
    } catch (...) {
      context.exit_code = context.Fail(CurrentExceptionStatus("internal error"));
    }
  });
}

void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& raw_rows) {
  // Cells may hold what peers said (names, denoms): escaped before they are measured and printed.
  std::vector<std::vector<std::string>> rows;
  rows.reserve(raw_rows.size());
  for (const auto& raw : raw_rows) {
    std::vector<std::string>& row = rows.emplace_back();
    for (const std::string& cell : raw) row.push_back(Printable(cell));
  }
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t c = 0; c < row.size(); ++c) {
      line += " " + row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 1, ' ');
    }
    out << line << "\n";
  }
}

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CliContext context{out, err};
  // Everything, parsing and registration included, inside one catch-all: nothing escapes main().
  try {
    CLI::App app{"gpumart: a peer-to-peer marketplace for GPU compute", "gpumart"};
    app.set_version_flag("--version", "gpumart 0.1.0");
    app.require_subcommand(1);
    RegisterSdlCommands(app, context);
    RegisterMatchCommand(app, context);
    RegisterKeygenCommand(app, context);
    RegisterDemoCommand(app, context);
    RegisterLedgerCommands(app, context);
    RegisterLeaseCommands(app, context);
    RegisterSubmitCommand(app, context);
    RegisterNodeCommands(app, context);
    RegisterOffersCommand(app, context);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      // --help and --version arrive as "errors" with exit code 0.
      const int code = app.exit(e, out, err);
      return code == 0 ? kExitOk : kExitUsage;
    }
    return context.exit_code;
  } catch (...) {
    return context.Fail(CurrentExceptionStatus("internal error"));
  }
}

}  // namespace gpumart::node
