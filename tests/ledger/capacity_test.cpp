#include "ledger/capacity.h"

#include <gtest/gtest.h>

#include "tests/market/test_messages.h"

namespace gpumart::ledger {
namespace {

using market::kGi;

TEST(CapacityTest, UsageEncodingRoundTripsAndRejectsDamage) {
  auto usage = market::UsageOf(market::testing::SampleOrder(), market::testing::SampleAssignments());
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

// Fractional GPUs (docs/FRACTIONAL.md): a MIG instance or a time slice is a device type of its
// own. Usage once dropped mig_profile and shared (encoding, and the free-capacity lookup), so a
// lease of a slice took nothing from the slices, or took from the whole GPUs of the same type.
TEST(CapacityTest, FractionalDevicesKeepTheirOwnType) {
  const market::DeviceType whole{"nvidia", "a10", 24 * kGi, market::GpuInterface::kPcie};
  market::DeviceType slice = whole;
  slice.shared = true;
  const market::DeviceType mig{"nvidia", "h100", 10 * kGi, market::GpuInterface::kSxm, "1g.10gb", false};
  Usage usage;
  usage["n"].gpus[slice] = 3;
  usage["n"].gpus[mig] = 2;
  usage["n"].gpus[whole] = 1;
  const std::string encoded = EncodeUsage(usage).value();
  auto decoded = DecodeUsage(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, usage);
  for (size_t cut = 0; cut < encoded.size(); ++cut) EXPECT_FALSE(DecodeUsage(encoded.substr(0, cut)).ok()) << cut;

  market::NodeCapacity node{"n", 1000, kGi, kGi, {}};
  auto devices = [](const market::DeviceType& type, uint32_t count) {
    market::GpuDevices d{type.vendor, type.model, type.ram_bytes, type.interface, std::nullopt, count};
    d.mig_profile = type.mig_profile;
    d.shared = type.shared;
    return d;
  };
  node.gpus = {devices(whole, 4), devices(slice, 8), devices(mig, 7)};
  const auto free = SubtractUsage({node}, *decoded);
  EXPECT_EQ(free[0].gpus[0].count, 3u);
  EXPECT_EQ(free[0].gpus[1].count, 5u);
  EXPECT_EQ(free[0].gpus[2].count, 5u);
  // Usage written before fractional devices existed still decodes (interface byte 0 or 1).
  Usage old;
  old["n"].gpus[whole] = 1;
  EXPECT_EQ(DecodeUsage(EncodeUsage(old).value()).value(), old);
  Usage bad;
  market::DeviceType odd = mig;
  odd.mig_profile = std::string(kMaxUsageNameBytes + 1, 'g');
  bad["n"].gpus[odd] = 1;
  EXPECT_FALSE(EncodeUsage(bad).ok());
}

TEST(CapacityTest, FreeCapacityNeverGoesBelowZero) {
  const auto inventory = market::testing::SampleOffer().nodes;
  auto usage = market::UsageOf(market::testing::SampleOrder(), market::testing::SampleAssignments());
  ASSERT_TRUE(usage.ok());
  Usage total;
  for (int i = 0; i < 5; ++i) market::AddUsage(total, *usage);  // 10 GPUs wanted, 8 exist
  const auto free = SubtractUsage(inventory, total);
  EXPECT_EQ(free[0].gpus[0].count, 0u);
  EXPECT_EQ(free[0].cpu_millis, 0u);  // 85 cores wanted, 64 exist
  EXPECT_EQ(SubtractUsage(inventory, {}), inventory);
}

}  // namespace
}  // namespace gpumart::ledger
