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
  const std::string encoded = EncodeUsage(*usage).value();
  auto decoded = DecodeUsage(encoded);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, *usage);
  for (size_t cut = 0; cut < encoded.size(); ++cut) EXPECT_FALSE(DecodeUsage(encoded.substr(0, cut)).ok()) << cut;
  EXPECT_FALSE(DecodeUsage(encoded + "x").ok());
  EXPECT_TRUE(DecodeUsage(EncodeUsage({}).value())->empty());
}

// EncodeUsage once wrote counts as u16 with no limit, so what it wrote DecodeUsage refused:
// the encoder now enforces the decoder's limits, and everything it accepts decodes again.
TEST(CapacityTest, EncodeUsageRefusesWhatDecodeUsageWouldRefuse) {
  const market::DeviceType h100{"nvidia", "h100", 80 * kGi, market::GpuInterface::kSxm};
  Usage at_limits;
  for (size_t i = 0; i < kMaxUsageNodes; ++i) at_limits["n" + std::to_string(i)].cpu_millis = i;
  for (size_t t = 0; t < kMaxUsageGpuTypes; ++t) {
    market::DeviceType device = h100;
    device.model = std::string(kMaxUsageNameBytes - 4, 'm') + std::to_string(1000 + t);
    at_limits["n0"].gpus[device] = t + 1;
  }
  auto encoded = EncodeUsage(at_limits);
  ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
  EXPECT_EQ(DecodeUsage(*encoded).value(), at_limits);

  Usage too_many_nodes = at_limits;
  too_many_nodes["one-more"].cpu_millis = 1;
  EXPECT_EQ(EncodeUsage(too_many_nodes).status().code(), Status::Code::kInvalidArgument);
  // 65536 nodes once wrapped to a count of 0.
  Usage wrapping;
  for (size_t i = 0; i < 65536; ++i) wrapping["n" + std::to_string(i)];
  EXPECT_FALSE(EncodeUsage(wrapping).ok());

  Usage too_many_types = at_limits;
  market::DeviceType extra = h100;
  extra.model = "one-more";
  too_many_types["n0"].gpus[extra] = 1;
  EXPECT_NE(EncodeUsage(too_many_types).status().message().find("GPU types"), std::string::npos);

  Usage long_name;
  long_name[std::string(kMaxUsageNameBytes + 1, 'n')].cpu_millis = 1;
  EXPECT_FALSE(EncodeUsage(long_name).ok());
  Usage long_model;
  market::DeviceType long_device = h100;
  long_device.model = std::string(kMaxUsageNameBytes + 1, 'm');
  long_model["n"].gpus[long_device] = 1;
  EXPECT_FALSE(EncodeUsage(long_model).ok());
  Usage bad_interface;
  market::DeviceType odd = h100;
  odd.interface = static_cast<market::GpuInterface>(7);
  bad_interface["n"].gpus[odd] = 1;
  EXPECT_FALSE(EncodeUsage(bad_interface).ok());
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
