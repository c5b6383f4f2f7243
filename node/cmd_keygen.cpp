// gpumart keygen: creates an Ed25519 identity key file (mode 0600, never overwritten).
#include <CLI/CLI.hpp>
#include <ostream>

#include "market/crypto.h"
#include "node/cli.h"
#include "node/json.h"

namespace gpumart::node {

void RegisterKeygenCommand(CLI::App& app, CliContext& context) {
  auto* command = app.add_subcommand("keygen", "create an identity key file (Ed25519)");
  struct Options {
    std::string path = "gpumart.key";
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--out,-o", options->path, "where to write the key file (refuses to overwrite)")
      ->capture_default_str();
  command->add_flag("--json", options->json, "print the result as JSON");
  SetCommandBody(*command, context, [options, &context] {
    const market::Identity identity = market::Identity::Generate();
    const Status status = market::WriteKeyFile(options->path, identity);
    if (!status.ok()) return context.Fail(status);
    const std::string public_key = market::ToHex(identity.public_key());
    if (options->json) {
      context.out << DumpJson(Json{{"path", options->path}, {"public_key", public_key}}) << "\n";
    } else {
      context.out << "wrote " << options->path << " (mode 0600)\npublic key " << public_key << "\n";
    }
    return kExitOk;
  });
}

}  // namespace gpumart::node
