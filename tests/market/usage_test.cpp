#include "market/usage.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "tests/market/test_messages.h"

namespace gpumart::market {
namespace {

const DeviceType kH100{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm};

TEST(UsageTest, UsageIsReplicasTimesPerReplicaResources) {
  auto usage = UsageOf(testing::SampleOrder(), testing::SampleAssignments());
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  ASSERT_EQ(usage->size(), 1u);
  const NodeUsage& node = usage->at("n1");
  EXPECT_EQ(node.cpu_millis, 16'000u + 2 * 500u);
  EXPECT_EQ(node.memory_bytes, 64 * kGi + 2 * 512 * kMi);
  EXPECT_EQ(node.storage_bytes, 220 * kGi + 2 * kGi);
  EXPECT_EQ(node.gpus.at(kH100), 2u);
}

TEST(UsageTest, AssignmentsMustMatchTheOrder) {
  auto assignments = testing::SampleAssignments();
  assignments[0].service = "missing";
  EXPECT_EQ(UsageOf(testing::SampleOrder(), assignments).status().code(), Status::Code::kInvalidArgument);
  assignments = testing::SampleAssignments();
  assignments[0].device.reset();
  EXPECT_EQ(UsageOf(testing::SampleOrder(), assignments).status().code(), Status::Code::kInvalidArgument);
}

TEST(UsageTest, AddThenRemoveLeavesNothing) {
  const Usage one = UsageOf(testing::SampleOrder(), testing::SampleAssignments()).value();
  Usage total;
  AddUsage(total, one);
  AddUsage(total, one);
  EXPECT_EQ(total.at("n1").gpus.at(kH100), 4u);
  RemoveUsage(total, one);
  EXPECT_EQ(total, one);
  RemoveUsage(total, one);
  // Emptied nodes and GPU types are erased, so "nothing in use" has one representation.
  EXPECT_TRUE(total.empty());
}

TEST(UsageTest, ArithmeticSaturatesInsteadOfWrapping) {
  Usage big;
  big["n"].cpu_millis = UINT64_MAX - 1;
  big["n"].gpus[kH100] = UINT64_MAX;
  Usage total = big;
  AddUsage(total, big);
  EXPECT_EQ(total.at("n").cpu_millis, UINT64_MAX);
  EXPECT_EQ(total.at("n").gpus.at(kH100), UINT64_MAX);

  // Taking out more than is there stops at zero, per resource; what is not there is ignored.
  Usage small;
  small["n"].cpu_millis = 3;
  small["n"].memory_bytes = 5;
  Usage more;
  more["n"].cpu_millis = 10;
  more["n"].gpus[kH100] = 1;
  more["other"].cpu_millis = 1;
  RemoveUsage(small, more);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small.at("n").cpu_millis, 0u);
  EXPECT_EQ(small.at("n").memory_bytes, 5u);
  EXPECT_TRUE(small.at("n").gpus.empty());
}

}  // namespace
}  // namespace gpumart::market
