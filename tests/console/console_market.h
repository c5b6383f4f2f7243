// The console's test market (tests/console/): real gpumartd processes on loopback
// (tests/e2e/process_market.h), a relay and two providers of configs/demo/ (8 H100 SXM 80Gi at
// 900,000 uakt per GPU-hour; 4 A100 SXM 80Gi at 450,000 and 4 A100 PCIe 40Gi at 280,000), with
// one lease made by `gpumart submit` through the relay, and the relay's console address.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/e2e/process_market.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart::console_test {

using Json = nlohmann::json;
using e2e::milliseconds;

inline const std::string kDemo = std::string(GPUMART_SOURCE_DIR) + "/configs/demo/";
// An LLM with fallbacks: H100 SXM, else A100 80Gi, else anything with 48Gi. The preference
// policy leases (and a dry run ranks first) the H100 provider.
inline const std::string kLlmFallbacks = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/llm-fallbacks.yaml";

// "http://127.0.0.1:PORT", from the daemon's "metrics listening on http://HOST:PORT/metrics".
inline std::string ConsoleUrl(const e2e::Node& node) {
  const std::string metrics = e2e::LineAfter(node.out(), "metrics listening on ");
  const size_t path = metrics.find("/metrics");
  return path == std::string::npos ? "" : metrics.substr(0, path);
}

class ConsoleMarket {
 public:
  // Starts the relay alone (`providers` false) or the relay and both providers, linked, with
  // one lease (the H100s, leased by `tenant`). Check ok() after.
  explicit ConsoleMarket(bool providers) { error_ = Start(providers); }

  bool ok() const { return error_.empty(); }
  std::string error() const { return error_ + "\n" + market_.Logs(); }
  const std::string& url() const { return url_; }       // the relay's console
  const Json& lease() const { return lease_; }          // as `gpumart submit --json` printed it
  e2e::Node& node(const std::string& name) { return *market_.node(name); }
  std::string Logs() const { return market_.Logs(); }

 private:
  // Empty, or what failed.
  std::string Start(bool providers) {
    Result<e2e::Node*> relay = market_.StartRelay(kDemo + "relay.yaml");
    if (!relay.ok()) return (relay.status().ToString());
    url_ = ConsoleUrl(**relay);
    if (url_.empty()) return ("the relay printed no metrics address");
    if (!providers) return "";
    for (const char* name : {"h100", "a100"}) {
      Result<e2e::Node*> provider = market_.StartPeer(name, kDemo + "provider-" + name + ".yaml");
      if (!provider.ok()) return (provider.status().ToString());
    }
    if (Status linked = market_.WaitLinked(2); !linked.ok()) return (linked.ToString());
    const testing::ProcessResult submit = testing::RunProcess(
        {testing::GpumartBinary(), "submit", kLlmFallbacks, "--node", market_.relay()->client_address, "--key",
         temp_.Sub("tenant.key"), "--bid-window", "500", "--json"},
        15'000);
    const Json answer = Json::parse(submit.out, nullptr, /*allow_exceptions=*/false);
    if (submit.exit_code != 0 || !answer.is_object() || !answer["groups"][0]["lease"].is_object()) {
      return ("gpumart submit failed (exit " + std::to_string(submit.exit_code) + "):\n" + submit.out + submit.err);
    }
    lease_ = answer["groups"][0]["lease"];
    // The Lease reaches the relay's ledger by gossip.
    const bool recorded = testing::Eventually(
        [&] {
          httplib::Client client(url_);
          auto got = client.Get("/api/v1/leases");
          return got && got->status == 200 && got->body.find(lease_["id"].get<std::string>()) != std::string::npos;
        },
        milliseconds(5'000));
    if (!recorded) return ("the relay's ledger never recorded lease " + lease_["id"].get<std::string>());
    return "";
  }

  testing::TempDir temp_{"gpumart-console"};
  e2e::ProcessMarket market_{temp_.path(), GPUMART_BIN_DIR};
  std::string url_;
  Json lease_;
  std::string error_;
};

}  // namespace gpumart::console_test
