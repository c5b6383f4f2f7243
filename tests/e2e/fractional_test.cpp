// Fractional GPUs end to end, as real processes on loopback (tests/e2e/process_market.h;
// docs/FRACTIONAL.md): a relay, the demo's MIG provider (2 H100 SXM cut into 7 x 1g.10gb each)
// and its whole-H100 provider; a tenant runs `gpumart submit` on configs/sdl/mig-inference.yaml
// and leases one 1g.10gb instance from the MIG provider, which every ledger records with the
// concrete profile, and whose Kubernetes manifest requests nvidia.com/mig-1g.10gb.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "market/types.h"
#include "tests/e2e/process_market.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using e2e::milliseconds;
using Json = nlohmann::json;

const std::string kDemo = std::string(GPUMART_SOURCE_DIR) + "/configs/demo/";
const std::string kMigSdl = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/mig-inference.yaml";

testing::ProcessResult Gpumart(std::vector<std::string> args, int timeout_ms = 15'000) {
  args.insert(args.begin(), testing::GpumartBinary());
  return testing::RunProcess(args, timeout_ms);
}

Json ParseJson(const std::string& text) { return Json::parse(text, nullptr, /*allow_exceptions=*/false); }

TEST(FractionalMarketTest, SubmitLeasesAMigInstanceAcrossProcesses) {
  testing::TempDir temp("gpumart-e2e-mig");
  e2e::ProcessMarket market(temp.path(), GPUMART_BIN_DIR);
  Result<e2e::Node*> relay = market.StartRelay(kDemo + "relay.yaml");
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  for (const char* name : {"mig", "h100"}) {
    Result<e2e::Node*> provider = market.StartPeer(name, kDemo + "provider-" + name + ".yaml");
    ASSERT_TRUE(provider.ok()) << provider.status().ToString();
  }
  const Status linked = market.WaitLinked(2);
  ASSERT_TRUE(linked.ok()) << linked.ToString() << "\n" << market.Logs();

  const auto submitted = Gpumart({"submit", kMigSdl, "--node", market.relay()->client_address, "--key",
                                  temp.Sub("tenant.key"), "--policy", "cheapest", "--bid-window", "2000", "--json"});
  const std::string context = "stdout:\n" + submitted.out + "\nstderr:\n" + submitted.err + "\n" + market.Logs();
  ASSERT_EQ(submitted.exit_code, 0) << context;
  const Json result = ParseJson(submitted.out);
  ASSERT_TRUE(result.is_object()) << context;
  const Json& lease = result["groups"][0]["lease"];
  ASSERT_TRUE(lease.is_object()) << context;
  // The MIG provider, and the bid names the concrete instance: the whole H100s cannot serve a
  // MIG option.
  EXPECT_EQ(lease["provider"], market.node("mig")->key_hex) << context;
  const Json& device = lease["services"][0]["device"];
  EXPECT_EQ(device["model"], "h100") << context;
  EXPECT_EQ(device["mig_profile"], "1g.10gb") << context;
  EXPECT_EQ(device["ram_bytes"].get<uint64_t>(), 10 * market::kGi) << context;
  EXPECT_EQ(device.contains("shared"), false) << context;

  // Every node's ledger has the lease, with its instance.
  for (const char* name : {"relay", "mig", "h100"}) {
    const bool recorded = testing::Eventually(
        [&] {
          const auto listed = Gpumart({"leases", "--node", market.node(name)->client_address, "--json"});
          const Json leases = ParseJson(listed.out);
          if (!leases.is_object()) return false;
          for (const Json& entry : leases.value("leases", Json::array())) {
            if (entry.value("id", "") != lease["id"]) continue;
            const Json services = entry.value("services", Json::array());
            if (!services.empty() && services[0].value("device", Json::object()).value("mig_profile", "") == "1g.10gb") {
              return true;
            }
          }
          return false;
        },
        milliseconds(5'000));
    EXPECT_TRUE(recorded) << name << "\n" << market.Logs();
  }

  // The hand-off: the manifest requests the MIG instance's own resource, never a whole GPU.
  const auto manifest = Gpumart({"lease", "manifest", lease["id"], "--k8s", "--sdl", kMigSdl, "--node",
                                 market.node("mig")->client_address});
  ASSERT_EQ(manifest.exit_code, 0) << manifest.out << manifest.err;
  EXPECT_NE(manifest.out.find("nvidia.com/mig-1g.10gb:"), std::string::npos) << manifest.out;
  EXPECT_EQ(manifest.out.find("nvidia.com/gpu: "), std::string::npos) << manifest.out;
}

}  // namespace
}  // namespace gpumart
