#include "node/client_cli.h"

#include <CLI/CLI.hpp>

namespace gpumart::node {

std::string NodeRuleHelp(bool offline_reader) {
  std::string text =
      "The node: --node ADDR; else, with --data-dir D, the daemon running on D (D/client.address); else node: in " +
      client::ClientConfigPath() + "; else the daemon running on " + kDefaultCliDataDir + ".";
  if (offline_reader) {
    text += " When no daemon runs there (or with --offline), the data dir's ledger is read directly.";
  }
  return text;
}

void AddNodeOptions(CLI::App& command, NodeFlags& flags, bool offline_reader) {
  command.add_option("--node", flags.node,
                     "the node's client port: tcp://HOST:PORT, or tcp://HOST:PORT/IDENTITY off loopback (docs/CLIENT.md)");
  command.add_option("--data-dir,-d", flags.data_dir, "the local node's data directory")->capture_default_str();
  if (offline_reader) {
    command.add_flag("--offline", flags.offline, "read the data dir's ledger directly (the daemon must be stopped)");
  }
  command.footer(NodeRuleHelp(offline_reader));
}

Result<Json> ParseJsonResult(const client::Fields& result) {
  Result<const std::string*> text = client::Require<std::string>(result, "json");
  if (!text.ok()) return text.status().WithContext("the node's answer");
  Json json = Json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return Status::Corruption("the node's answer is not a JSON object");
  return json;
}

Result<NodeChoice> ChooseNode(const CLI::App& command, const NodeFlags& flags, bool offline_reader) {
  if (flags.offline) return NodeChoice{};
  if (!flags.node.empty()) return NodeChoice{flags.node, false};
  const bool data_dir_given = command.count("--data-dir") > 0;
  if (!data_dir_given) {
    Result<std::string> configured = client::ResolveNodeAddress("", flags.data_dir);
    if (configured.ok()) {
      const bool local = client::LocalDaemonAddress(flags.data_dir).ok() &&
                         *client::LocalDaemonAddress(flags.data_dir) == *configured;
      return NodeChoice{*configured, local};
    }
    if (configured.status().code() != Status::Code::kNotFound) return configured.status();
  } else if (Result<std::string> local = client::LocalDaemonAddress(flags.data_dir); local.ok()) {
    return NodeChoice{*local, true};
  }
  if (offline_reader) return NodeChoice{};
  return Status::NotFound("no node to talk to: no --node, no node: in " + client::ClientConfigPath() +
                          ", and no daemon running on " + flags.data_dir + " (no " + flags.data_dir + "/" +
                          client::kClientAddressFile + "); start gpumartd or pass --node ADDR");
}

}  // namespace gpumart::node
