// The `gpumart` command line. Each command group lives in its own node/cmd_*.cpp and registers
// its subcommands here; RunCli parses, runs the chosen command and returns its exit status.
// Commands print human output by default and JSON with --json; errors go to stderr with a
// non-zero exit status.
#pragma once

#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace gpumart::node {

// Where a command writes and the exit status it leaves. Passed to every command's callback so
// commands are testable in-process as well as through the real executable.
struct CliContext {
  std::ostream& out;
  std::ostream& err;
  int exit_code = 0;
};

// Exit statuses shared by every command.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;     // the command ran and found a problem (bad file, failed check)
constexpr int kExitUsage = 2;       // bad command line


void RegisterKeygenCommand(CLI::App& app, CliContext& context);  // node/cmd_keygen.cpp
void RegisterSdlCommands(CLI::App& app, CliContext& context);    // node/cmd_sdl.cpp
void RegisterMatchCommand(CLI::App& app, CliContext& context);   // node/cmd_match.cpp
void RegisterLedgerCommands(CLI::App& app, CliContext& context); // node/cmd_ledger.cpp

void RegisterDemoCommand(CLI::App& app, CliContext& context);     // node/cmd_demo.cpp

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace gpumart::node
