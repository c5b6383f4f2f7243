// The `gpumart` command line. Each command group lives in its own node/cmd_*.cpp and registers
// its subcommands here; RunCli parses, runs the chosen command and returns its exit status.
// Commands print human output by default and JSON with --json (node/json.h); errors go to
// stderr with a non-zero exit status.
//
// One error idiom at this boundary: a command's body returns its exit status, and reports a
// failure with `return context.Fail(status)` (or Fail(message, exit)), which prints
// "gpumart <command>: <message>". Errors are values below this line; an exception that reaches
// a command (bad_alloc, a library's own) is caught by SetCommandBody and becomes a clear error
// and exit 1, never std::terminate.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"

namespace CLI {
class App;
}

namespace gpumart::market {
struct Deployment;
}

namespace gpumart::node {

// Where a command writes and the exit status it leaves. Passed to every command's callback so
// commands are testable in-process as well as through the real executable.
struct CliContext {
  std::ostream& out;
  std::ostream& err;
  int exit_code = 0;
  std::string command;  // the running command's path, e.g. "ledger verify"

  // Prints "gpumart <command>: <message>" on err and returns `exit`, for `return Fail(...)`.
  int Fail(std::string_view message, int exit);
  int Fail(const Status& status, int exit);
  int Fail(const Status& status);  // kExitFailure
};

// Prints each of the SDL reader's warnings on err as "gpumart <command>: <file>: warning: <path>:
// <message>" (node/cmd_sdl.cpp); every command that reads an SDL does.
void PrintSdlWarnings(CliContext& context, const std::string& file, const market::Deployment& deployment);

// Exit statuses shared by every command.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;     // the command ran and found a problem (bad file, failed check)
constexpr int kExitUsage = 2;       // bad command line

// Prints `rows` (the first a header) as left-aligned columns, two spaces in, one between: the
// human tables of `gpumart match`, `gpumart offers` and `gpumart submit`. Each cell is escaped
// (Printable) before it is measured, so a peer's text can neither move the columns nor reach the
// terminal raw.
void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

// Makes `body` the callback of `command`: runs it with context.command set to the command's path,
// stores its exit status, and turns any exception it throws into Fail(what, kExitFailure).
void SetCommandBody(CLI::App& command, CliContext& context, std::function<int()> body);

void RegisterKeygenCommand(CLI::App& app, CliContext& context);  // node/cmd_keygen.cpp
void RegisterSdlCommands(CLI::App& app, CliContext& context);    // node/cmd_sdl.cpp
void RegisterMatchCommand(CLI::App& app, CliContext& context);   // node/cmd_match.cpp
void RegisterLedgerCommands(CLI::App& app, CliContext& context); // node/cmd_ledger.cpp
void RegisterLeaseCommands(CLI::App& app, CliContext& context);  // node/cmd_lease.cpp
void RegisterSubmitCommand(CLI::App& app, CliContext& context);  // node/cmd_submit.cpp
void RegisterNodeCommands(CLI::App& app, CliContext& context);   // node/cmd_node.cpp (status, close)
void RegisterOffersCommand(CLI::App& app, CliContext& context);  // node/cmd_offers.cpp

void RegisterDemoCommand(CLI::App& app, CliContext& context);     // node/cmd_demo.cpp

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace gpumart::node
