#include "bidding/bid_check.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "market/match.h"
#include "tests/market/test_messages.h"

namespace gpumart::bidding {
namespace {

using market::GpuInterface;
using market::kGi;

// An honest bid for SampleOrder: vllm on an 80Gi H100 SXM (option 0), web on n1, at the cap.
market::Bid HonestBid(const market::Order& order) {
  market::Bid bid;
  bid.group = order.group;
  bid.denom = order.Denom();
  bid.price_per_hour = order.CapPerHour();
  bid.services = market::testing::SampleAssignments();
  return bid;
}

TEST(BidCheckTest, HonestBidPasses) {
  const market::Order order = market::testing::SampleOrder();
  const BidCheck check = CheckBidAgainstOrder(order, HonestBid(order));
  EXPECT_TRUE(check.ok()) << ToString(check.problem) << ": " << check.detail;
  EXPECT_EQ(OptionRanks(order, HonestBid(order)), std::vector<uint32_t>{0});
}

// Several denoms: a bid may be in any of them, held to the cap in its own denom.
TEST(BidCheckTest, ABidInAnyListedDenomIsHeldToThatDenomsCap) {
  market::Order order = market::testing::SampleOrder();
  for (market::ServiceRequest& service : order.services) {
    service.more_caps = {market::PriceCap{"uact", 10, market::PerBlockToPerHour(10)}};
  }
  const uint64_t uact_cap = *order.CapPerHourIn("uact");
  market::Bid bid = HonestBid(order);
  bid.denom = "uact";
  bid.price_per_hour = uact_cap;
  EXPECT_TRUE(CheckBidAgainstOrder(order, bid).ok());
  bid.price_per_hour = uact_cap + 1;  // far under the uakt cap, over the uact one
  EXPECT_EQ(CheckBidAgainstOrder(order, bid).problem, BidProblem::kOverCap);
  bid.denom = "usdc";
  const BidCheck wrong = CheckBidAgainstOrder(order, bid);
  EXPECT_EQ(wrong.problem, BidProblem::kWrongDenom);
  EXPECT_EQ(wrong.detail, "bid in 'usdc', order caps in 'uakt', 'uact'");
}

TEST(BidCheckTest, EveryFallbackOptionAcceptsTheDevicesItDescribes) {
  const market::Order order = market::testing::SampleOrder();
  struct Case {
    uint32_t option;
    market::DeviceType device;
  };
  const Case cases[] = {
      {0, {"nvidia", "H100", 80 * kGi, GpuInterface::kSxm}},    // model compared case-insensitively
      {0, {"NVIDIA", "h100", 94 * kGi, GpuInterface::kSxm}},    // RAM is a minimum
      {1, {"nvidia", "a100", 80 * kGi, GpuInterface::kPcie}},   // no interface asked
      {1, {"nvidia", "a100", 80 * kGi, GpuInterface::kSxm}},
      {2, {"nvidia", "l40s", 48 * kGi, GpuInterface::kPcie}},   // "*": any model with the RAM
      {2, {"nvidia", "h100", 80 * kGi, GpuInterface::kSxm}},    // a worse rank than it could claim is no lie
  };
  for (const Case& c : cases) {
    market::Bid bid = HonestBid(order);
    bid.services[0].option = c.option;
    bid.services[0].device = c.device;
    const BidCheck check = CheckBidAgainstOrder(order, bid);
    EXPECT_TRUE(check.ok()) << c.option << " " << c.device.model << ": " << ToString(check.problem) << " "
                            << check.detail;
    EXPECT_EQ(OptionRanks(order, bid), std::vector<uint32_t>{c.option});
  }
}

// One lie per reason; each is caught, and by its own reason.
TEST(BidCheckTest, EachLieIsCaughtByItsReason) {
  const market::Order order = market::testing::SampleOrder();
  struct Lie {
    const char* what;
    BidProblem expected;
    std::function<void(market::Bid&)> tell;
  };
  const std::vector<Lie> lies = {
      {"other group", BidProblem::kWrongGroup, [](market::Bid& b) { b.group = "other"; }},
      {"other denom", BidProblem::kWrongDenom, [](market::Bid& b) { b.denom = "uusdc"; }},
      {"over the cap", BidProblem::kOverCap, [&](market::Bid& b) { b.price_per_hour = order.CapPerHour() + 1; }},
      {"service the order lacks", BidProblem::kUnknownService, [](market::Bid& b) { b.services[1].service = "db"; }},
      {"service twice", BidProblem::kDuplicateService,
       [](market::Bid& b) { b.services.push_back(b.services[1]); }},
      {"service left out", BidProblem::kMissingService, [](market::Bid& b) { b.services.pop_back(); }},
      {"GPU service without a device", BidProblem::kGpuAssignment,
       [](market::Bid& b) {
         b.services[0].option.reset();
         b.services[0].device.reset();
       }},
      {"GPUs for a service without GPUs", BidProblem::kGpuAssignment,
       [](market::Bid& b) {
         b.services[1].option = 0;
         b.services[1].device = b.services[0].device;
       }},
      {"option past the last", BidProblem::kOptionOutOfRange, [](market::Bid& b) { b.services[0].option = 3; }},
      {"rank 0 with an A100", BidProblem::kDeviceMismatch, [](market::Bid& b) { b.services[0].device->model = "a100"; }},
      {"rank 0 with less RAM", BidProblem::kDeviceMismatch,
       [](market::Bid& b) { b.services[0].device->ram_bytes = 40 * kGi; }},
      {"rank 0 over PCIe", BidProblem::kDeviceMismatch,
       [](market::Bid& b) { b.services[0].device->interface = GpuInterface::kPcie; }},
      {"rank 0 from another vendor", BidProblem::kDeviceMismatch,
       [](market::Bid& b) { b.services[0].device->vendor = "amd"; }},
      {"rank 2 with too little RAM", BidProblem::kDeviceMismatch,
       [](market::Bid& b) {
         b.services[0].option = 2;
         b.services[0].device = market::DeviceType{"nvidia", "t4", 16 * kGi, GpuInterface::kPcie};
       }},
      {"fewer replicas than count", BidProblem::kReplicaCount,
       [](market::Bid& b) { b.services[1].placements[0].replicas = 1; }},
      {"more replicas than count", BidProblem::kReplicaCount,
       [](market::Bid& b) { b.services[1].placements.push_back(market::Placement{"n2", 1}); }},
      {"one node named twice", BidProblem::kDuplicateNode,
       [](market::Bid& b) {
         b.services[1].placements = {market::Placement{"n1", 1}, market::Placement{"n1", 1}};
       }},
  };
  for (const Lie& lie : lies) {
    market::Bid bid = HonestBid(order);
    lie.tell(bid);
    const BidCheck check = CheckBidAgainstOrder(order, bid);
    EXPECT_EQ(check.problem, lie.expected) << lie.what << ": got " << ToString(check.problem) << " (" << check.detail
                                           << ")";
    EXPECT_FALSE(check.detail.empty()) << lie.what;
  }
}

// Fractional GPUs (docs/FRACTIONAL.md): a tenant refuses a time slice or a MIG instance for an
// option that did not ask for one, and a whole GPU or another profile for a MIG option.
TEST(BidCheckTest, FractionsOnlyForOptionsThatAskForThem) {
  const market::Order order = market::testing::SampleOrder();  // option 0: an 80Gi H100 SXM
  market::Bid shared = HonestBid(order);
  shared.services[0].device->shared = true;
  EXPECT_EQ(CheckBidAgainstOrder(order, shared).problem, BidProblem::kDeviceMismatch);
  market::Bid mig = HonestBid(order);
  mig.services[0].device = market::DeviceType{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm, "7g.80gb", false};
  EXPECT_EQ(CheckBidAgainstOrder(order, mig).problem, BidProblem::kDeviceMismatch);

  market::Order fractional = order;
  market::GpuOption& option = fractional.services[0].resources.gpu.options[0];
  option.ram_min_bytes.reset();
  option.mig = "1g.10gb";
  market::Bid instance = HonestBid(fractional);
  instance.services[0].device = market::DeviceType{"nvidia", "h100", 10 * kGi, GpuInterface::kSxm, "1g.10gb", false};
  EXPECT_TRUE(CheckBidAgainstOrder(fractional, instance).ok());
  instance.services[0].device->mig_profile = "2g.20gb";
  instance.services[0].device->ram_bytes = 20 * kGi;
  EXPECT_EQ(CheckBidAgainstOrder(fractional, instance).problem, BidProblem::kDeviceMismatch);
  EXPECT_EQ(CheckBidAgainstOrder(fractional, HonestBid(fractional)).problem, BidProblem::kDeviceMismatch);
  option.mig.reset();
  option.shared_ok = true;
  EXPECT_TRUE(CheckBidAgainstOrder(fractional, shared).ok());
  EXPECT_TRUE(CheckBidAgainstOrder(fractional, HonestBid(fractional)).ok());
}

TEST(BidCheckTest, ReasonsHaveDistinctNames) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kBidProblemCount; ++i) names.insert(ToString(static_cast<BidProblem>(i)));
  EXPECT_EQ(names.size(), kBidProblemCount);
  EXPECT_EQ(names.count("unknown"), 0u);
}

// "Satisfies" has one definition: the matching engine's.
TEST(BidCheckTest, SatisfiesIsTheMatchingEnginesDefinition) {
  const market::GpuOption option{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm};
  EXPECT_TRUE(market::DeviceSatisfies(option, {"nvidia", "H100", 80 * kGi, GpuInterface::kSxm}));
  EXPECT_FALSE(market::DeviceSatisfies(option, {"nvidia", "h100", 80 * kGi, GpuInterface::kPcie}));
  EXPECT_FALSE(market::DeviceSatisfies(option, {"nvidia", "h100", 79 * kGi, GpuInterface::kSxm}));
  EXPECT_TRUE(market::DeviceSatisfies({"nvidia", "*", std::nullopt, std::nullopt},
                                      {"nvidia", "t4", 16 * kGi, GpuInterface::kPcie}));
}

}  // namespace
}  // namespace gpumart::bidding
