// What the CLI commands that talk to a node share: the --node / --data-dir options and the rule
// that picks the node (docs/CLIENT.md, "Addresses"):
//   --node ADDR                   that node's client port;
//   --data-dir D (given)          the local daemon of D (D/client.address), else, for commands
//                                 that can, D's ledger read directly (the daemon is stopped);
//   neither                       node: of the client config, else the local daemon of
//                                 ./gpumart-data, else (where possible) its ledger directly.
#pragma once

#include <memory>
#include <string>

#include "market/status.h"
#include "node/client/client.h"
#include "node/json.h"

namespace CLI {
class App;
}

namespace gpumart::node {

constexpr const char* kDefaultCliDataDir = "./gpumart-data";

struct NodeFlags {
  std::string node;
  std::string data_dir = kDefaultCliDataDir;
  bool offline = false;  // --offline: read the ledger directly, never a daemon
};

// Adds --node, --data-dir (and, with `offline_reader`, --offline) to `command`.
void AddNodeOptions(CLI::App& command, NodeFlags& flags, bool offline_reader);

// The node to talk to: its address, or empty for "read <data_dir>/ledger directly" (only when
// `offline_reader`). kNotFound with what was tried when there is none.
struct NodeChoice {
  std::string address;
  bool from_local_daemon = false;  // found in <data_dir>/client.address (possibly stale)
};
Result<NodeChoice> ChooseNode(const CLI::App& command, const NodeFlags& flags, bool offline_reader);

// The `json` document of a query's result (a node's answer: parsed with care).
Result<Json> ParseJsonResult(const client::Fields& result);

// The --help text that says which node the command uses.
std::string NodeRuleHelp(bool offline_reader);

}  // namespace gpumart::node
