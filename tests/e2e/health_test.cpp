// GPU health end to end, as real processes on loopback: a provider whose nvidia-smi is a script
// printing recorded outputs (tests/fixtures/nvidia-smi-health/, switched mid-test) leases both
// of its H100s; one turns unhealthy mid-lease (uncorrected ECC errors): the lease is closed with
// reason provider-failure and the health in its note on the tenant's node (the relay it
// submitted through), the GPU leaves the provider's Offer at once, and comes back only after
// the hold-down of healthy checks. The same with a GPU cut into MIG instances: all of them leave
// the offer, and the lease on one of them is closed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/e2e/process_market.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using e2e::milliseconds;
using Json = nlohmann::json;

const std::string kFixtures = std::string(GPUMART_FIXTURE_DIR) + "/nvidia-smi-health/";
const std::string kLlmFallbacks = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/llm-fallbacks.yaml";
const std::string kMigSdl = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/mig-inference.yaml";
// The provider's GPUs and their prices: two whole H100s, or one whole beside one cut into seven
// 1g.10gb instances (GPU 1, the one the ECC fixture fails).
constexpr char kWholeGpus[] = "[{model: h100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 2}]";
constexpr char kWholePrices[] = "{h100.80Gi.sxm: 900000}";
constexpr char kMigGpus[] =
    "[{model: h100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 1},\n"
    "             {model: h100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 1, mig: {1g.10gb: 7}}]";
constexpr char kMigPrices[] = "{h100.80Gi.sxm: 900000, h100.mig-1g.10gb: 110000}";
constexpr int64_t kHoldDownMs = 2'000;

testing::ProcessResult Gpumart(std::vector<std::string> args, int timeout_ms = 15'000) {
  args.insert(args.begin(), testing::GpumartBinary());
  return testing::RunProcess(args, timeout_ms);
}

Json ParseJson(const std::string& text) { return Json::parse(text, nullptr, /*allow_exceptions=*/false); }

class GpuHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The provider's nvidia-smi: prints the fixture the control file names, whatever it is asked.
    const std::string script = temp_.Sub("nvidia-smi");
    std::ofstream(script) << "#!/bin/sh\nexec cat \"$(cat '" << temp_.Sub("fixture") << "')\"\n";
    ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
    UseFixture("h100-2x-healthy.csv");
    Result<e2e::Node*> relay = market_.StartRelay(std::string(GPUMART_SOURCE_DIR) + "/configs/demo/relay.yaml");
    ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  }

  void StartProvider(const std::string& gpus, const std::string& prices) {
    const std::string config =
        "role: provider\nlisten: tcp://127.0.0.1:*\nclient_listen: tcp://127.0.0.1:*\nmetrics_listen: \"\"\n"
        "inventory:\n  attributes: {region: us-west}\n  nodes:\n    - name: gpu-01\n      cpu_millis: 64000\n"
        "      memory: 512Gi\n      storage: 4Ti\n"
        "      gpus: " + gpus + "\n"
        "pricing:\n  - denom: uakt\n    gpu: " + prices + "\n    cpu: 4000\n    memory: 500\n    storage: 10\n"
        "offer_debounce_ms: 100\n"
        "health:\n  nvidia_smi: " + temp_.Sub("nvidia-smi") + "\n  interval_ms: 200\n  timeout_ms: 200\n  hold_down_ms: " +
        std::to_string(kHoldDownMs) + "\n";
    Result<e2e::Node*> provider = market_.StartPeerFromText("provider", config);
    ASSERT_TRUE(provider.ok()) << provider.status().ToString();
    const Status linked = market_.WaitLinked(1);
    ASSERT_TRUE(linked.ok()) << linked.ToString() << "\n" << market_.Logs();
  }

  void UseFixture(const std::string& name) { std::ofstream(temp_.Sub("fixture")) << kFixtures + name; }

  // The provider's free H100s in the relay's offer book (gpumart offers): whole ones, or MIG
  // instances of `mig_profile`.
  uint64_t FreeAtRelay(const std::string& mig_profile = "") {
    const auto result = Gpumart({"offers", "--node", market_.relay()->client_address, "--json"});
    const Json json = ParseJson(result.out);
    uint64_t free = 0;
    if (!json.is_object()) return 0;
    for (const Json& row : json.value("offers", Json::array())) {
      if (row.value("provider", "") != market_.node("provider")->key_hex) continue;
      if (row["device"].value("mig_profile", "") == mig_profile) free += row.value("num_gpus", uint64_t{0});
    }
    return free;
  }
  bool FreeBecomes(uint64_t gpus, milliseconds within, const std::string& mig_profile = "") {
    return testing::Eventually([&] { return FreeAtRelay(mig_profile) == gpus; }, within);
  }
  // The lease as `gpumart leases` at the relay lists it (null when absent).
  Json LeaseAtRelay(const std::string& id) {
    const auto result = Gpumart({"leases", "--node", market_.relay()->client_address, "--json"});
    const Json json = ParseJson(result.out);
    if (!json.is_object()) return nullptr;
    for (const Json& lease : json.value("leases", Json::array())) {
      if (lease.value("id", "") == id) return lease;
    }
    return nullptr;
  }
  // The lease once the relay has it closed (waiting up to 5 s); null when it never closes.
  Json ClosedAtRelay(const std::string& id) {
    Json closed;
    const bool done = testing::Eventually(
        [&] {
          closed = LeaseAtRelay(id);
          return closed.is_object() && closed.value("state", "") == "closed";
        },
        milliseconds(5'000));
    return done ? closed : Json(nullptr);
  }
  Json ProviderStatus() {
    return ParseJson(Gpumart({"status", "--node", market_.node("provider")->client_address, "--json"}).out);
  }

  testing::TempDir temp_{"gpumart-e2e-health"};
  e2e::ProcessMarket market_{temp_.path(), GPUMART_BIN_DIR};
};

TEST_F(GpuHealthTest, AGpuFailingMidLeaseClosesTheLeaseAndLeavesTheOfferUntilHealthyForTheHoldDown) {
  StartProvider(kWholeGpus, kWholePrices);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(FreeBecomes(2, milliseconds(5'000))) << market_.Logs();
  const auto submitted = Gpumart({"submit", kLlmFallbacks, "--node", market_.relay()->client_address, "--key",
                                  temp_.Sub("tenant.key"), "--bid-window", "1000", "--json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err << market_.Logs();
  const Json lease = ParseJson(submitted.out)["groups"][0]["lease"];
  ASSERT_TRUE(lease.is_object()) << submitted.out;
  const std::string id = lease["id"];
  ASSERT_TRUE(FreeBecomes(0, milliseconds(5'000))) << market_.Logs();
  // While it runs, the lease accrues cost at its rate.
  ASSERT_TRUE(testing::Eventually([&] { return LeaseAtRelay(id).is_object(); }, milliseconds(5'000)));
  const Json running = LeaseAtRelay(id);
  EXPECT_EQ(running["state"], "active");
  EXPECT_TRUE(running["accrued"].is_object()) << running.dump();

  UseFixture("h100-2x-ecc.csv");
  const Json closed = ClosedAtRelay(id);
  ASSERT_TRUE(closed.is_object()) << market_.Logs();
  EXPECT_EQ(closed["close"]["reason"], "provider-failure") << closed.dump();
  const std::string note = closed["close"]["note"];
  EXPECT_NE(note.find("GPU health: GPU 1"), std::string::npos) << note;
  EXPECT_NE(note.find("2 uncorrected ECC errors"), std::string::npos) << note;
  EXPECT_EQ(closed["close"]["closed_by"], market_.node("provider")->key_hex);
  // The lease's GPUs are free again, but the failed one stays out of the offer.
  ASSERT_TRUE(FreeBecomes(1, milliseconds(5'000))) << market_.Logs();
  const Json status = ProviderStatus();
  ASSERT_TRUE(status["gpu_health"].is_object()) << status.dump();
  bool unhealthy = false;
  for (const Json& gpu : status["gpu_health"]["gpus"]) unhealthy = unhealthy || gpu["state"] == "unhealthy";
  EXPECT_TRUE(unhealthy) << status.dump();
  EXPECT_EQ(status["devices"][0]["out_of_service"], 1) << status.dump();

  // Healthy again: back in the offer only after the hold-down.
  UseFixture("h100-2x-healthy.csv");
  const auto healthy_from = e2e::Clock::now();
  ASSERT_TRUE(FreeBecomes(2, milliseconds(kHoldDownMs + 5'000))) << market_.Logs();
  EXPECT_GE(std::chrono::duration_cast<milliseconds>(e2e::Clock::now() - healthy_from).count(), kHoldDownMs - 300);
}

// GPU 1 is cut into seven 1g.10gb instances beside the whole GPU 0. When GPU 1 fails, all seven
// leave the offer (the whole H100 stays), the lease on one of them is closed with the health in
// its note, and they come back after the hold-down.
TEST_F(GpuHealthTest, AMigGpuFailingMidLeaseClosesTheLeaseAndWithdrawsAllItsInstances) {
  StartProvider(kMigGpus, kMigPrices);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(FreeBecomes(7, milliseconds(5'000), "1g.10gb")) << market_.Logs();
  const auto submitted = Gpumart({"submit", kMigSdl, "--node", market_.relay()->client_address, "--key",
                                  temp_.Sub("tenant.key"), "--bid-window", "1000", "--json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err << market_.Logs();
  const Json lease = ParseJson(submitted.out)["groups"][0]["lease"];
  ASSERT_TRUE(lease.is_object()) << submitted.out;
  EXPECT_EQ(lease["services"][0]["device"]["mig_profile"], "1g.10gb") << submitted.out;
  const std::string id = lease["id"];
  ASSERT_TRUE(FreeBecomes(6, milliseconds(5'000), "1g.10gb")) << market_.Logs();

  UseFixture("h100-2x-ecc.csv");
  const Json closed = ClosedAtRelay(id);
  ASSERT_TRUE(closed.is_object()) << market_.Logs();
  EXPECT_EQ(closed["close"]["reason"], "provider-failure") << closed.dump();
  const std::string note = closed["close"]["note"];
  EXPECT_NE(note.find("GPU health: GPU 1"), std::string::npos) << note;
  ASSERT_TRUE(FreeBecomes(0, milliseconds(5'000), "1g.10gb")) << market_.Logs();
  EXPECT_EQ(FreeAtRelay(), 1u);  // the whole H100 is still offered
  const Json status = ProviderStatus();
  bool counted = false;
  for (const Json& devices : status.value("devices", Json::array())) {
    if (devices["device"].value("mig_profile", "") != "1g.10gb") continue;
    counted = true;
    EXPECT_EQ(devices["out_of_service"], 7) << status.dump();
  }
  EXPECT_TRUE(counted) << status.dump();

  UseFixture("h100-2x-healthy.csv");
  const auto healthy_from = e2e::Clock::now();
  ASSERT_TRUE(FreeBecomes(7, milliseconds(kHoldDownMs + 5'000), "1g.10gb")) << market_.Logs();
  EXPECT_GE(std::chrono::duration_cast<milliseconds>(e2e::Clock::now() - healthy_from).count(), kHoldDownMs - 300);
}

}  // namespace
}  // namespace gpumart
