#include "ledger/capacity.h"

#include <gtest/gtest.h>

#include "tests/market/test_messages.h"

namespace gpumart::ledger {
namespace {

using market::kGi;
using market::kMi;

TEST(CapacityTest, UsageIsReplicasTimesPerReplicaResources) {
  auto usage = ComputeUsage(market::testing::SampleOrder(), market::testing::SampleAssignments());
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  ASSERT_EQ(usage->size(), 1u);
  const NodeUsage& node = usage->at("n1");
  EXPECT_EQ(node.cpu_millis, 16'000u + 2 * 500u);
  EXPECT_EQ(node.memory_bytes, 64 * kGi + 2 * 512 * kMi);
  EXPECT_EQ(node.storage_bytes, 220 * kGi + 2 * kGi);
  const market::DeviceType h100{"nvidia", "h100", 80 * kGi, market::GpuInterface::kSxm};
  EXPECT_EQ(node.gpus.at(h100), 2u);
}

TEST(CapacityTest, AssignmentsMustMatchTheOrder) {
  auto assignments = market::testing::SampleAssignments();
  assignments[0].service = "missing";
  EXPECT_EQ(ComputeUsage(market::testing::SampleOrder(), assignments).status().code(),
            Status::Code::kInvalidArgument);
  assignments = market::testing::SampleAssignments();
  assignments[0].device.reset();
  EXPECT_EQ(ComputeUsage(market::testing::SampleOrder(), assignments).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(CapacityTest, UsageEncodingRoundTripsAndRejectsDamage) {
  auto usage = ComputeUsage(market::testing::SampleOrder(), market::testing::SampleAssignments());
  ASSERT_TRUE(usage.ok());
  (*usage)["n2"].cpu_millis = 7;
  const std::string encoded = EncodeUsage(*usage);
  auto decoded = DecodeUsage(encoded);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, *usage);
  for (size_t cut = 0; cut < encoded.size(); ++cut) EXPECT_FALSE(DecodeUsage(encoded.substr(0, cut)).ok()) << cut;
  EXPECT_FALSE(DecodeUsage(encoded + "x").ok());
  EXPECT_TRUE(DecodeUsage(EncodeUsage({}))->empty());
}

TEST(CapacityTest, FreeCapacityNeverGoesBelowZero) {
  const auto inventory = market::testing::SampleOffer().nodes;
  auto usage = ComputeUsage(market::testing::SampleOrder(), market::testing::SampleAssignments());
  ASSERT_TRUE(usage.ok());
  Usage total;
  for (int i = 0; i < 5; ++i) AddUsage(total, *usage);  // 10 GPUs wanted, 8 exist
  const auto free = SubtractUsage(inventory, total);
  EXPECT_EQ(free[0].gpus[0].count, 0u);
  EXPECT_EQ(free[0].cpu_millis, 0u);  // 85 cores wanted, 64 exist
  EXPECT_EQ(SubtractUsage(inventory, {}), inventory);
}

}  // namespace
}  // namespace gpumart::ledger
