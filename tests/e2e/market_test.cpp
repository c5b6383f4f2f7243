// The market end to end, as real processes on loopback (tests/e2e/process_market.h): a relay and
// three providers of configs/demo/.
#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/process_market.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using e2e::milliseconds;

const std::string kDemo = std::string(GPUMART_SOURCE_DIR) + "/configs/demo/";

class MarketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<e2e::Node*> relay = market_.StartRelay(kDemo + "relay.yaml");
    ASSERT_TRUE(relay.ok()) << relay.status().ToString();
    for (const char* name : {"h100", "a100", "l40s"}) {
      Result<e2e::Node*> provider = market_.StartPeer(name, kDemo + "provider-" + name + ".yaml");
      ASSERT_TRUE(provider.ok()) << provider.status().ToString();
    }
    const Status linked = market_.WaitLinked(3);
    ASSERT_TRUE(linked.ok()) << linked.ToString() << "\n" << market_.Logs();
  }

  testing::TempDir temp_{"gpumart-e2e"};
  e2e::ProcessMarket market_{temp_.path(), GPUMART_BIN_DIR};
};

// The harness itself: every provider's Offer reaches the relay's book, and every daemon stops
// cleanly on SIGTERM (a provider withdraws its Offer first).
TEST_F(MarketTest, ProvidersOffersReachTheRelayAndEveryNodeStopsCleanly) {
  for (const auto& node : market_.nodes()) {
    if (node.get() == market_.relay()) continue;
    EXPECT_EQ(node->process->Terminate(milliseconds(10'000)), 0) << node->Logs();
    EXPECT_NE(node->out().find("provider offer withdrawn\n"), std::string::npos) << node->Logs();
  }
  EXPECT_EQ(market_.relay()->process->Terminate(milliseconds(10'000)), 0) << market_.relay()->Logs();
}

}  // namespace
}  // namespace gpumart
