#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using testing::GpumartBinary;
using testing::RunProcess;

TEST(DemoCommandTest, RunsTheLocalMarketFromTheExampleConfigs) {
  // Run from the source tree, as scripts/demo does.
  const std::string sdl = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/inference-and-web.yaml";
  const std::string offers = std::string(GPUMART_SOURCE_DIR) + "/configs/offers-example.yaml";
  auto result = RunProcess({GpumartBinary(), "demo", "--local", "--sdl", sdl, "--offers", offers, "--json"}, 60'000);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json["groups"].size(), 2u);
  EXPECT_EQ(json["groups"][0]["lease"]["provider"], "prov-a");
  EXPECT_EQ(json["groups"][0]["lease"]["services"][0]["device"]["model"], "h100");
  EXPECT_EQ(json["groups"][1]["lease"]["provider"], "prov-e");
  EXPECT_EQ(json["ledger"]["verify"], "ok");
  EXPECT_TRUE(json["ledger"]["path"].is_null());  // temporary, removed
}

TEST(DemoCommandTest, DefaultsFindTheConfigsBesideTheBuild) {
  // No --sdl/--offers, run from an unrelated directory: the binary finds <repo>/configs.
  auto result = RunProcess({"/bin/sh", "-c", "cd / && exec " + GpumartBinary() + " demo --local"}, 60'000);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("accepted prov-a"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("ledger verify: ok"), std::string::npos) << result.out;
}

TEST(DemoCommandTest, KeptDataDirIsReadableByTheLedgerCommands) {
  testing::TempDir temp("gpumart-demo-test");
  const std::string& dir = temp.path();
  auto demo = RunProcess({GpumartBinary(), "demo", "--local", "--data-dir", dir}, 60'000);
  ASSERT_EQ(demo.exit_code, 0) << demo.err;
  auto leases = RunProcess({GpumartBinary(), "leases", "--data-dir", dir, "--json"});
  ASSERT_EQ(leases.exit_code, 0) << leases.err;
  EXPECT_NE(leases.out.find("active"), std::string::npos);
  auto verify = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", dir});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// std::filesystem throws where TMPDIR is not a directory; that used to end in std::terminate.
TEST(DemoCommandTest, UnusableTempDirIsAClearError) {
  for (const std::string tmpdir : {"/nonexistent-gpumart-tmp", "/dev/null"}) {
    auto result = RunProcess({"/bin/sh", "-c", "TMPDIR=" + tmpdir + " exec " + GpumartBinary() + " demo --local"}, 60'000);
    EXPECT_EQ(result.exit_code, 1) << "(-1: killed by a signal)\n" << result.err;
    EXPECT_TRUE(result.err.starts_with("gpumart demo: ")) << result.err;
    EXPECT_NE(result.err.find("TMPDIR"), std::string::npos) << result.err;
    EXPECT_EQ(result.out, "");
  }
}

TEST(DemoCommandTest, BadArgumentsFail) {
  auto policy = RunProcess({GpumartBinary(), "demo", "--local", "--policy", "random"});
  EXPECT_EQ(policy.exit_code, 2);
  EXPECT_NE(policy.err.find("--policy must be preference or cheapest"), std::string::npos);
  auto missing = RunProcess({GpumartBinary(), "demo", "--local", "--sdl", "/nonexistent.yaml"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent.yaml"), std::string::npos) << missing.err;
}

// The in-process market is asked for by name; without --local the command says where the
// multi-process demo is.
TEST(DemoCommandTest, WithoutLocalPointsToBothDemos) {
  auto result = RunProcess({GpumartBinary(), "demo"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("gpumart demo --local"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("scripts/demo"), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "");
}

}  // namespace
}  // namespace gpumart
