#include "bidding/gpu_health.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "market/yaml_tree.h"
#include "tests/test_seed.h"

namespace gpumart::bidding {
namespace {

std::string Fixture(const std::string& name) {
  std::ifstream file(std::string(GPUMART_FIXTURE_DIR) + "/nvidia-smi-health/" + name, std::ios::binary);
  EXPECT_TRUE(file) << "missing fixture " << name;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

GpuHealthReadings Readings(const std::string& name) {
  Result<GpuHealthReadings> readings = ParseNvidiaSmiHealth(Fixture(name));
  EXPECT_TRUE(readings.ok()) << name << ": " << readings.status().ToString();
  return readings.ok() ? *readings : GpuHealthReadings();
}

constexpr char kGpu0[] = "GPU-5f2c8a1e-3b7d-4c9e-a1f0-2d6b8e4c7a91";
constexpr char kGpu1[] = "GPU-9a7e4b2c-1d3f-4e8a-b5c6-7f0e9d2a1b38";

TEST(NvidiaSmiHealthTest, ParsesTheDocumentedFields) {
  const GpuHealthReadings healthy = Readings("h100-2x-healthy.csv");
  ASSERT_EQ(healthy.gpus.size(), 2u);
  EXPECT_EQ(healthy.gpus[1].index, 1u);
  EXPECT_EQ(healthy.gpus[1].uuid, kGpu1);
  EXPECT_EQ(healthy.gpus[1].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(healthy.gpus[1].bus_id, "0000:2a:00");
  EXPECT_EQ(healthy.gpus[1].temperature_c, 36);
  EXPECT_EQ(healthy.gpus[1].ecc_volatile_uncorrected, 0u);
  EXPECT_EQ(healthy.gpus[1].remapped_rows_pending, false);
  EXPECT_TRUE(healthy.gpus[1].error.empty());

  const GpuHealthReadings ecc = Readings("h100-2x-ecc.csv");
  EXPECT_EQ(ecc.gpus[1].ecc_volatile_uncorrected, 2u);
  EXPECT_EQ(ecc.gpus[1].remapped_rows_pending, true);

  // Before Ampere and on GeForce, [N/A] means "no such reading", not an error.
  const GpuHealthReadings v100 = Readings("v100-retired.csv");
  EXPECT_EQ(v100.gpus[0].retired_pages_pending, true);
  EXPECT_FALSE(v100.gpus[0].remapped_rows_pending.has_value());
  EXPECT_TRUE(v100.gpus[0].error.empty());
  const GpuHealthReadings geforce = Readings("rtx4090-no-ecc.csv");
  EXPECT_FALSE(geforce.gpus[0].ecc_volatile_uncorrected.has_value());
  EXPECT_TRUE(geforce.gpus[0].error.empty());

  EXPECT_EQ(Readings("h100-reset.csv").gpus[0].error, "[GPU requires reset]");
  const GpuHealthReadings lost = Readings("h100-2x-lost.csv");
  ASSERT_EQ(lost.lost.size(), 1u);
  EXPECT_EQ(lost.lost[0], "0000:2a:00");
}

TEST(NvidiaSmiHealthTest, RejectsOutputOfAnotherShape) {
  EXPECT_FALSE(ParseNvidiaSmiHealth("0, GPU-x, NVIDIA H100, 00000000:18:00.0, 34, 0, 0, No, No\n").ok());  // 9 fields
  EXPECT_FALSE(ParseNvidiaSmiHealth("0, GPU-x, H100, 00000000:18:00.0, hot, 0, 0, No, No, No\n").ok());
  EXPECT_FALSE(ParseNvidiaSmiHealth("0, GPU-x, H100, 00000000:18:00.0, 34, 0, 0, Maybe, No, No\n").ok());
  EXPECT_FALSE(ParseNvidiaSmiHealth("0, GPU-x, H100, not-a-bus, 34, 0, 0, No, No, No\n").ok());
  EXPECT_FALSE(ParseNvidiaSmiHealth("0, GPU-x, H100, 00000000:18:00.0, 34, 0, 0, No, No, No\n"
                                    "0, GPU-y, H100, 00000000:19:00.0, 34, 0, 0, No, No, No\n")
                   .ok());  // index twice
  EXPECT_FALSE(ParseNvidiaSmiHealth(std::string(kMaxNvidiaSmiOutputBytes + 1, '\n')).ok());
  std::string many;
  for (size_t i = 0; i <= kMaxNvidiaSmiGpus; ++i) many += "Unable to determine the device handle for GPU0000:01:00.0: x\n";
  EXPECT_EQ(ParseNvidiaSmiHealth(many).status().code(), Status::Code::kLimitExceeded);
  EXPECT_TRUE(ParseNvidiaSmiHealth("No devices were found\n").ok());
}

TEST(NvidiaSmiHealthTest, NormalizesBusIdsOfBothSources) {
  EXPECT_EQ(NormalizeBusId("00000000:3B:00.0"), "0000:3b:00");
  EXPECT_EQ(NormalizeBusId("0000:3b:00"), "0000:3b:00");
  EXPECT_EQ(NormalizeBusId("00010000:3B:00.0"), "");  // domain past 16 bits
  EXPECT_EQ(NormalizeBusId("3B:00.0"), "");
  EXPECT_EQ(NormalizeBusId("0000:3g:00"), "");
}

TEST(NvidiaSmiHealthTest, CountsXidLinesPerBusAndCode) {
  Result<XidCounts> xids = ParseXidLog(Fixture("kern-xid.log"));
  ASSERT_TRUE(xids.ok()) << xids.status().ToString();
  ASSERT_EQ(xids->size(), 1u);
  const auto& codes = xids->at("0000:2a:00");
  EXPECT_EQ(codes.at(13), 1u);
  EXPECT_EQ(codes.at(79), 1u);
  EXPECT_TRUE(ParseXidLog("NVRM: Xid (PCI:0000:2a:00): 99999999999, x\nNVRM: Xid (PCI:zz): 79, x\n")->empty());
}

// Random bytes and mutated fixtures: an output or an error, never a crash (the fuzz target
// tests/fuzz/fuzz_nvidia_smi.cpp does this at scale).
TEST(NvidiaSmiHealthTest, MutatedOutputIsAnErrorNotACrash) {
  const uint32_t seed = testing::TestSeed();
  std::mt19937_64 random(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::string base = Fixture("h100-2x-ecc.csv") + Fixture("h100-2x-lost.csv");
  for (int round = 0; round < 2000; ++round) {
    std::string text = base;
    for (int edits = 1 + static_cast<int>(random() % 4); edits > 0; --edits) {
      text[random() % text.size()] = static_cast<char>(random() % 256);
    }
    Result<GpuHealthReadings> readings = ParseNvidiaSmiHealth(text);
    if (readings.ok()) {
      EXPECT_LE(readings->gpus.size() + readings->lost.size(), kMaxNvidiaSmiGpus);
    }
    (void)ParseXidLog(text);
  }
}

GpuHealthConfig Config() {
  GpuHealthConfig config;
  config.enabled = true;
  config.hold_down_ms = 60'000;
  return config;
}

TEST(GpuHealthMonitorTest, AnUnhealthyGpuLeavesAtOnceAndReturnsAfterTheHoldDown) {
  GpuHealthMonitor monitor(Config());
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 1000).empty());
  ASSERT_EQ(monitor.gpus().size(), 2u);
  EXPECT_TRUE(monitor.gpus().at(kGpu1).InService());

  const auto failed = monitor.Observe(Readings("h100-2x-ecc.csv"), nullptr, 2000);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].id, kGpu1);
  EXPECT_FALSE(failed[0].in_service);
  const GpuHealth& gpu = monitor.gpus().at(kGpu1);
  EXPECT_EQ(gpu.state, GpuHealthState::kUnhealthy);
  EXPECT_NE(gpu.reason.find("2 uncorrected ECC errors"), std::string::npos) << gpu.reason;
  EXPECT_NE(gpu.reason.find("remapped rows pending"), std::string::npos) << gpu.reason;
  EXPECT_EQ(gpu.ecc_volatile_uncorrected, 2u);

  // Healthy again: recovering, out of service until a hold-down of healthy checks.
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 3000).empty());
  EXPECT_EQ(monitor.gpus().at(kGpu1).state, GpuHealthState::kRecovering);
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 62'999).empty());
  // A relapse restarts the hold-down.
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-ecc.csv"), nullptr, 63'000).empty());
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 64'000).empty());
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 123'999).empty());
  const auto back = monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 124'000);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(back[0].in_service);
  EXPECT_EQ(monitor.gpus().at(kGpu1).state, GpuHealthState::kHealthy);
}

TEST(GpuHealthMonitorTest, EachProblemMakesAGpuUnhealthy) {
  struct Case {
    const char* fixture;
    const char* id;
    const char* reason;
  };
  const Case cases[] = {
      {"h100-2x-hot.csv", kGpu0, "temperature 94 C over 90 C"},
      {"h100-2x-lost.csv", kGpu1, "cannot reach it"},
      {"h100-2x-missing.csv", kGpu1, "missing from nvidia-smi's output"},
      {"h100-reset.csv", kGpu0, "[GPU requires reset]"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fixture);
    GpuHealthMonitor monitor(Config());
    monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 0);
    const auto changes = monitor.Observe(Readings(c.fixture), nullptr, 1000);
    // h100-reset lists only GPU 0: GPU 1 is missing too.
    ASSERT_EQ(changes.size(), std::string(c.fixture) == "h100-reset.csv" ? 2u : 1u);
    EXPECT_EQ(changes[0].id, c.id);
    EXPECT_FALSE(changes[0].in_service);
    EXPECT_NE(monitor.gpus().at(c.id).reason.find(c.reason), std::string::npos) << monitor.gpus().at(c.id).reason;
  }
  GpuHealthMonitor v100(Config());
  v100.Observe(Readings("v100-retired.csv"), nullptr, 0);
  EXPECT_EQ(v100.gpus().begin()->second.state, GpuHealthState::kUnhealthy);
  GpuHealthMonitor geforce(Config());
  geforce.Observe(Readings("rtx4090-no-ecc.csv"), nullptr, 0);
  EXPECT_TRUE(geforce.gpus().begin()->second.InService());
}

TEST(GpuHealthMonitorTest, OnlyNewXidsOfTheConfiguredCodesCount) {
  GpuHealthConfig config = Config();
  GpuHealthMonitor monitor(config);
  Result<XidCounts> log = ParseXidLog(Fixture("kern-xid.log"));
  ASSERT_TRUE(log.ok());
  XidCounts app_fault;
  app_fault["0000:2a:00"][13] = 1;
  EXPECT_TRUE(monitor.Observe(Readings("h100-2x-healthy.csv"), &app_fault, 0).empty());  // 13: only counted
  EXPECT_EQ(monitor.gpus().at(kGpu1).xid_errors, 1u);
  const auto changes = monitor.Observe(Readings("h100-2x-healthy.csv"), &*log, 1000);  // 79 is new
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(monitor.gpus().at(kGpu1).reason, "Xid 79");
  EXPECT_EQ(monitor.gpus().at(kGpu1).xid_errors, 2u);
  EXPECT_EQ(monitor.gpus().at(kGpu1).last_xid, 79u);
  // The same log again: nothing new, so the GPU recovers.
  monitor.Observe(Readings("h100-2x-healthy.csv"), &*log, 2000);
  EXPECT_EQ(monitor.gpus().at(kGpu1).state, GpuHealthState::kRecovering);
  EXPECT_EQ(monitor.gpus().at(kGpu1).xid_errors, 2u);
}

TEST(GpuHealthMonitorTest, AFailedCheckTakesEveryGpuOut) {
  GpuHealthMonitor monitor(Config());
  monitor.Observe(Readings("h100-2x-healthy.csv"), nullptr, 0);
  EXPECT_EQ(monitor.ObserveFailure("nvidia-smi timed out", 1000).size(), 2u);
  EXPECT_NE(monitor.gpus().at(kGpu0).reason.find("nvidia-smi timed out"), std::string::npos);
}

Result<GpuHealthConfig> ParseConfig(const std::string& yaml) {
  Result<market::YamlTree> tree = market::YamlTree::Parse(yaml, {.max_nodes = 1024, .max_depth = 8});
  if (!tree.ok()) return tree.status();
  return ParseGpuHealthConfig(tree->Root().Find("health"));
}

TEST(GpuHealthConfigTest, ReadsTheSectionAndRefusesMistakes) {
  Result<GpuHealthConfig> config = ParseConfig(
      "health:\n  nvidia_smi: /usr/bin/nvidia-smi\n  xid_command: [journalctl, -k, -b]\n  interval_ms: 10000\n"
      "  hold_down_ms: 300000\n  max_temperature_c: 85\n  max_ecc_aggregate_uncorrected: 10\n  xid_codes: [79, 48]\n"
      "  node: gpu-01\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->enabled);
  EXPECT_EQ(config->nvidia_smi, "/usr/bin/nvidia-smi");
  EXPECT_EQ(config->xid_command.size(), 3u);
  EXPECT_EQ(config->interval_ms, 10000);
  EXPECT_EQ(config->hold_down_ms, 300000);
  EXPECT_EQ(config->max_temperature_c, 85);
  EXPECT_EQ(config->max_ecc_aggregate_uncorrected, 10u);
  EXPECT_EQ(config->xid_codes, (std::vector<uint32_t>{79, 48}));
  EXPECT_EQ(config->node, "gpu-01");
  EXPECT_FALSE(ParseConfig("other: 1\n")->enabled);
  EXPECT_FALSE(ParseConfig("health:\n  enabled: false\n")->enabled);
  EXPECT_FALSE(ParseConfig("health:\n  interval: 5\n").ok());
  EXPECT_FALSE(ParseConfig("health:\n  interval_ms: 0\n").ok());
  EXPECT_FALSE(ParseConfig("health:\n  interval_ms: 1000\n  timeout_ms: 2000\n").ok());
  EXPECT_FALSE(ParseConfig("health:\n  max_temperature_c: hot\n").ok());
  EXPECT_FALSE(ParseConfig("health:\n  xid_codes: 79\n").ok());
  EXPECT_FALSE(ParseConfig("health:\n  node: a\n  node: b\n").ok());
}

}  // namespace
}  // namespace gpumart::bidding
