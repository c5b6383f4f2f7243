#include "market/types.h"

#include <gtest/gtest.h>

namespace gpumart::market {
namespace {

TEST(TypesTest, InterfaceNormalisesSxmGenerations) {
  EXPECT_EQ(ParseGpuInterface("pcie"), GpuInterface::kPcie);
  EXPECT_EQ(ParseGpuInterface("PCIe"), GpuInterface::kPcie);
  EXPECT_EQ(ParseGpuInterface("sxm"), GpuInterface::kSxm);
  EXPECT_EQ(ParseGpuInterface("sxm4"), GpuInterface::kSxm);
  EXPECT_EQ(ParseGpuInterface("SXM5"), GpuInterface::kSxm);
  EXPECT_EQ(ParseGpuInterface("nvlink"), std::nullopt);
  EXPECT_EQ(ParseGpuInterface(""), std::nullopt);
}

TEST(TypesTest, CudaVersionParsesMajorMinor) {
  EXPECT_EQ(ParseCudaVersion("12.4"), (CudaVersion{12, 4}));
  EXPECT_EQ(ParseCudaVersion("11"), (CudaVersion{11, 0}));
  EXPECT_EQ(ParseCudaVersion("12.4.1"), (CudaVersion{12, 4}));
  EXPECT_EQ(ParseCudaVersion("12."), std::nullopt);
  EXPECT_EQ(ParseCudaVersion("x"), std::nullopt);
  EXPECT_EQ(ParseCudaVersion("12.4-devel"), std::nullopt);
  EXPECT_LT((CudaVersion{11, 8}), (CudaVersion{12, 0}));
  EXPECT_EQ(ToString(CudaVersion{12, 4}), "12.4");
}

TEST(TypesTest, PerBlockToPerHourUsesIntegerDivision) {
  EXPECT_EQ(PerBlockToPerHour(250000), 147130946u);  // 250000 * 3600000 / 6117
  EXPECT_EQ(PerBlockToPerHour(0), 0u);
  EXPECT_EQ(PerBlockToPerHour(1), 588u);
}

TEST(TypesTest, OrderCapSumsCountTimesServiceCap) {
  Order order;
  ServiceRequest a;
  a.count = 2;
  a.price_cap = {"uakt", 10, 100};
  ServiceRequest b;
  b.count = 1;
  b.price_cap = {"uakt", 5, 50};
  order.services = {a, b};
  EXPECT_EQ(order.CapPerHour(), 250u);
  EXPECT_EQ(order.Denom(), "uakt");
}

TEST(TypesTest, HexRoundTripAndRejectsBadDigits) {
  std::array<uint8_t, 4> bytes{0x00, 0xab, 0x10, 0xff};
  EXPECT_EQ(ToHex(bytes), "00ab10ff");
  EXPECT_EQ(FromHex<4>("00ab10ff"), bytes);
  EXPECT_EQ(FromHex<4>("00AB10FF"), bytes);
  EXPECT_EQ(FromHex<4>("00ab10f"), std::nullopt);
  EXPECT_EQ(FromHex<4>("00ab10fg"), std::nullopt);
}

TEST(TypesTest, IsMigProfile) {
  for (const char* good : {"1g.5gb", "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
                           "1g.18gb", "7g.141gb", "1g.6gb+me+gfx"}) {
    EXPECT_TRUE(IsMigProfile(good)) << good;
  }
  for (const char* bad : {"", "g.10gb", "1g", "1g.", "1g.gb", "1g.10", "1g.10GB", "0g.10gb", "1g.010gb", "1c.3g.40gb",
                          "1g.10gb+", "1g.10gb+Me", "1g.10gb-me", "99999g.10gb", "1g.10gb\n", "mig-1g.10gb"}) {
    EXPECT_FALSE(IsMigProfile(bad)) << bad;
  }
}

TEST(TypesTest, MigProfileRamBytes) {
  EXPECT_EQ(MigProfileRamBytes("1g.10gb"), 10 * kGi);
  EXPECT_EQ(MigProfileRamBytes("1g.10gb+me"), 10 * kGi);
  EXPECT_EQ(MigProfileRamBytes("7g.141gb"), 141 * kGi);
  EXPECT_EQ(MigProfileRamBytes("1c.3g.40gb"), 0u);
  EXPECT_EQ(MigProfileRamBytes(""), 0u);
}

TEST(TypesTest, FormatGi) {
  EXPECT_EQ(FormatGi(80 * kGi), "80Gi");
  EXPECT_EQ(FormatGi(1000), "1000");
}

}  // namespace
}  // namespace gpumart::market
