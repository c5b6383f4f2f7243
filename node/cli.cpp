#include "node/cli.h"

#include <CLI/CLI.hpp>
#include <ostream>

namespace gpumart::node {

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"gpumart: a peer-to-peer marketplace for GPU compute", "gpumart"};
  app.set_version_flag("--version", "gpumart 0.1.0");
  app.require_subcommand(1);
  CliContext context{out, err};
  RegisterSdlCommands(app, context);
  RegisterMatchCommand(app, context);

  RegisterKeygenCommand(app, context);
  RegisterDemoCommand(app, context);
  RegisterLedgerCommands(app, context);


  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0.
    const int code = app.exit(e, out, err);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return context.exit_code;
}

}  // namespace gpumart::node
