// The demo market's files (configs/demo/, configs/sdl/) stay what scripts/demo and the
// end-to-end tests rely on: every node config loads and its inventory is possible, all on
// loopback with a system-picked port and no bootstrap (the demo appends the relay's address, and
// a key given twice is an error); every SDL reads.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "bidding/inventory.h"
#include "node/config.h"
#include "tests/node/run_process.h"

namespace gpumart {
namespace {

const std::string kDemoDir = std::string(GPUMART_SOURCE_DIR) + "/configs/demo";

TEST(DemoConfigsTest, RelayAndFiveProvidersLoad) {
  size_t providers = 0;
  size_t relays = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kDemoDir)) {
    const std::string path = entry.path().string();
    SCOPED_TRACE(path);
    Result<node::NodeConfig> config = node::LoadNodeConfig(path);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EXPECT_EQ(config->listen, "tcp://127.0.0.1:*");
    EXPECT_EQ(config->client_listen, "tcp://127.0.0.1:*");
    EXPECT_EQ(config->metrics_listen, "127.0.0.1:*");
    EXPECT_TRUE(config->bootstrap.empty());
    if (config->role == node::NodeRole::kRelay) {
      ++relays;
      continue;
    }
    ASSERT_EQ(config->role, node::NodeRole::kProvider);
    ASSERT_TRUE(config->inventory.has_value());
    Result<bidding::Inventory> inventory = bidding::LoadInventory(*config->inventory);
    ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
    EXPECT_GT(inventory->GpuCount(), 0u);
    EXPECT_EQ(inventory->attributes.at("region"), "us-west");
    ++providers;
  }
  EXPECT_EQ(relays, 1u);
  EXPECT_EQ(providers, 5u);  // h100, a100, l40s, rtx4090 and mig (MIG instances)
}

TEST(DemoConfigsTest, EverySdlReads) {
  size_t sdls = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(GPUMART_SOURCE_DIR) + "/configs/sdl")) {
    const auto result = testing::RunProcess({testing::GpumartBinary(), "sdl", "check", entry.path().string()});
    EXPECT_EQ(result.exit_code, 0) << entry.path() << "\n" << result.out << result.err;
    ++sdls;
  }
  EXPECT_GE(sdls, 3u);
}

}  // namespace
}  // namespace gpumart
