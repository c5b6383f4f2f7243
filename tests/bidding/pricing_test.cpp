#include "bidding/pricing.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bidding/bid_engine.h"
#include "tests/bidding/engine_test_util.h"

namespace gpumart::bidding {
namespace {

using namespace gpumart::bidding::testing;  // NOLINT

class PricingTest : public ::testing::Test {
 protected:
  PricingTest() : provider_(market::Identity::Generate()), tenant_(market::Identity::Generate()) {}

  // A node of each model: H100 SXM 80Gi, A100 PCIe 40Gi, RTX 4090 24Gi, 4 of each.
  static market::Offer MixedInventory() {
    market::Offer offer = Inventory(4);
    offer.nodes.push_back(Node("n2", {Devices(kA100, 4)}));
    offer.nodes.push_back(Node("n3", {Devices(kRtx4090, 4)}));
    return offer;
  }

  market::Identity provider_;
  market::Identity tenant_;
};

// Each device is priced by the contract's lookup of its own key (Akash support#139: priced by
// the first model listed; #166: `model: *` priced at the highest rate).
TEST_F(PricingTest, TablePricesEachDeviceByItsOwnKeyNeverTheFirstOrHighestListed) {
  auto engine = MakeEngine(provider_, MixedInventory());
  ASSERT_NE(engine, nullptr);
  struct Case {
    std::string model;
    uint64_t ram_min_gi;
    market::DeviceType device;
    uint64_t rate;
  };
  for (const Case& c : {Case{"h100", 80, kH100, 300'000}, Case{"a100", 40, kA100, 200'000},
                        Case{"rtx4090", 24, kRtx4090, 90'000},
                        // Any model: the cheapest device that satisfies it, at that device's rate.
                        Case{"*", 24, kRtx4090, 90'000}, Case{"*", 40, kA100, 200'000}}) {
    const EngineStep step = engine->OnOrder(SignOrder(tenant_, GpuOrder(1, c.model, c.ram_min_gi)), kNowMs);
    ASSERT_EQ(step.bids.size(), 1u) << c.model;
    EXPECT_EQ(step.bids[0].body.services[0].device, c.device) << c.model;
    EXPECT_EQ(step.bids[0].body.price_per_hour, TablePrice(1, c.rate)) << c.model;
  }
}

TEST_F(PricingTest, UtilizationRaisesTheRateAsTheDeviceTypeFillsUpToItsCap) {
  PricingConfig config = TablePricing();
  config.kind = PricingKind::kUtilization;
  config.utilization_max_percent = 300;
  auto engine = MakeEngine(provider_, MixedInventory(), config);
  ASSERT_NE(engine, nullptr);
  // H100s: 4. Each bid takes one; the rate is 300000 x (100 + 200 x used / 4) / 100.
  const uint64_t rates[] = {300'000, 450'000, 600'000, 750'000};
  for (uint64_t rate : rates) {
    const EngineStep step = engine->OnOrder(SignOrder(tenant_, GpuOrder(1, "h100", 80)), kNowMs);
    ASSERT_EQ(step.bids.size(), 1u);
    EXPECT_EQ(step.bids[0].body.price_per_hour, TablePrice(1, rate));
  }
  // Other device types are not affected by the H100s filling up.
  const EngineStep a100 = engine->OnOrder(SignOrder(tenant_, GpuOrder(1, "a100", 40)), kNowMs);
  ASSERT_EQ(a100.bids.size(), 1u);
  EXPECT_EQ(a100.bids[0].body.price_per_hour, TablePrice(1, 200'000));
  // The rate comes back down as capacity is released.
  engine->Tick(kNowMs + kBidTtlMs);
  const EngineStep again = engine->OnOrder(SignOrder(tenant_, GpuOrder(1, "h100", 80), kNowMs + kBidTtlMs), kNowMs + kBidTtlMs);
  ASSERT_EQ(again.bids.size(), 1u);
  EXPECT_EQ(again.bids[0].body.price_per_hour, TablePrice(1, 300'000));
}

TEST_F(PricingTest, UtilizationAtFullUseIsTheCapAndNeverMore) {
  PricingConfig config = TablePricing();
  config.kind = PricingKind::kUtilization;
  config.utilization_max_percent = 250;
  std::vector<market::NodeCapacity> inventory = Inventory(4).nodes;
  std::vector<market::NodeCapacity> none_free = inventory;
  none_free[0].gpus[0].count = 0;
  const auto tables = EffectiveTables(config, inventory, none_free, "uakt");
  ASSERT_EQ(tables.size(), 1u);
  EXPECT_EQ(market::LookupGpuRate(tables[0], kH100), 750'000u);
  EXPECT_EQ(market::LookupGpuRate(tables[0], kA100), 200'000u);  // not in the inventory: unchanged
}

// Fractional GPUs (docs/FRACTIONAL.md): an A100 80Gi node cut into 7 x 1g.10gb and an A10 node
// time-sliced 4 ways. Each fraction is its own device type with its own rate; the GPUs are never
// offered whole, and capacity counts instances and replicas.
market::GpuDevices Fraction(const market::DeviceType& type, uint32_t count) {
  market::GpuDevices devices = Devices(type, count);
  devices.mig_profile = type.mig_profile;
  devices.shared = type.shared;
  return devices;
}
const market::DeviceType kMig1g{"nvidia", "a100", 10 * kGi, GpuInterface::kSxm, "1g.10gb", false};
const market::DeviceType kA10Slice{"nvidia", "a10", 24 * kGi, GpuInterface::kPcie, "", true};

market::Order FractionOrder(market::GpuOption option) {
  market::Order order = GpuOrder(1);
  order.services[0].resources.gpu.options = {std::move(option)};
  return order;
}

TEST_F(PricingTest, MigInstancesAndTimeSlicesAreDeviceTypesOfTheirOwn) {
  market::Offer offer = Inventory(0);
  offer.nodes = {Node("mig", {Fraction(kMig1g, 7)}), Node("sliced", {Fraction(kA10Slice, 4)})};
  PricingConfig config = TablePricing();
  config.tables[0].gpu = {{"a100.mig-1g.10gb", 40'000}, {"a10.shared", 20'000}, {"*", 90'000}};
  auto engine = MakeEngine(provider_, offer, config);
  ASSERT_NE(engine, nullptr);

  market::GpuOption mig{"nvidia", "a100", std::nullopt, std::nullopt};
  mig.mig = "1g.10gb";
  market::GpuOption shared{"nvidia", "a10", std::nullopt, std::nullopt};
  shared.shared_ok = true;
  // A whole GPU is asked for: the provider has none (its GPUs are cut or shared).
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, GpuOrder(1, "*", 8)), kNowMs).bids.empty());
  // A time slice only for an option that accepts sharing.
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, GpuOrder(1, "a10", 8)), kNowMs).bids.empty());
  const EngineStep slice = engine->OnOrder(SignOrder(tenant_, FractionOrder(shared)), kNowMs);
  ASSERT_EQ(slice.bids.size(), 1u);
  EXPECT_EQ(slice.bids[0].body.services[0].device, kA10Slice);
  EXPECT_EQ(slice.bids[0].body.price_per_hour, TablePrice(1, 20'000));
  // The bid names the concrete profile, at its own rate; 7 instances, then no more.
  for (int i = 0; i < 7; ++i) {
    const EngineStep step = engine->OnOrder(SignOrder(tenant_, FractionOrder(mig)), kNowMs);
    ASSERT_EQ(step.bids.size(), 1u) << i;
    EXPECT_EQ(step.bids[0].body.services[0].device, kMig1g);
    EXPECT_EQ(step.bids[0].body.price_per_hour, TablePrice(1, 40'000));
  }
  EXPECT_EQ(FreeGpus(*engine, kMig1g), 0u);
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, FractionOrder(mig)), kNowMs).bids.empty());
  // A minimum instead of a profile: 1g.10gb has 10Gi, so 20Gi finds none.
  market::GpuOption at_least{"nvidia", "*", std::nullopt, std::nullopt};
  at_least.mig_min_ram_bytes = 20 * kGi;
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, FractionOrder(at_least)), kNowMs).bids.empty());
}

TEST_F(PricingTest, UtilizationScalesFractionsByTheirOwnKey) {
  PricingConfig config = TablePricing();
  config.kind = PricingKind::kUtilization;
  config.utilization_max_percent = 200;
  config.tables[0].gpu = {{"a100.mig-1g.10gb", 40'000}, {"a10.shared", 20'000}};
  const std::vector<market::NodeCapacity> inventory = {Node("mig", {Fraction(kMig1g, 4)}),
                                                       Node("sliced", {Fraction(kA10Slice, 4)})};
  std::vector<market::NodeCapacity> free = inventory;
  free[0].gpus[0].count = 2;  // half the instances leased
  const auto tables = EffectiveTables(config, inventory, free, "uakt");
  ASSERT_EQ(tables.size(), 1u);
  EXPECT_EQ(market::LookupGpuRate(tables[0], kMig1g), 60'000u);
  EXPECT_EQ(market::LookupGpuRate(tables[0], kA10Slice), 20'000u);
  EXPECT_TRUE(tables[0].gpu.contains("a10.24Gi.pcie.shared"));
}

class CommandPricingTest : public PricingTest {
 protected:
  static PricingConfig Command(uint32_t max_concurrent = 2) {
    PricingConfig config;
    config.kind = PricingKind::kCommand;
    config.command = {"/bin/price"};
    config.command_timeout_ms = 500;
    config.command_max_concurrent = max_concurrent;
    return config;
  }
};

TEST_F(CommandPricingTest, TheProgramsPriceMakesTheBidAndNothingIsReservedWhileItRuns) {
  auto engine = MakeEngine(provider_, Inventory(1), Command());
  ASSERT_NE(engine, nullptr);
  const auto order = SignOrder(tenant_, GpuOrder(1, "h100", 80));
  const EngineStep asked = engine->OnOrder(order, kNowMs);
  ASSERT_EQ(asked.price_requests.size(), 1u);
  EXPECT_TRUE(asked.bids.empty());
  EXPECT_TRUE(asked.reserve.empty());
  EXPECT_FALSE(asked.skipped.has_value());
  EXPECT_EQ(engine->live_reservations(), 0u);
  const PriceRequest& request = asked.price_requests[0];
  EXPECT_EQ(request.deadline_ms, kNowMs + 500);
  // The program sees the order and the concrete allocation.
  EXPECT_NE(request.json.find("\"order_id\":\"" + market::ToHex(order.id) + "\""), std::string::npos) << request.json;
  EXPECT_NE(request.json.find("\"model\":\"h100\""), std::string::npos) << request.json;
  EXPECT_NE(request.json.find("\"placements\":[{\"node\":\"n1\",\"replicas\":1}]"), std::string::npos) << request.json;
  EXPECT_EQ(engine->OnOrder(order, kNowMs).skipped, SkipReason::kDuplicate);  // while it is priced

  const EngineStep answered = engine->OnPriceAnswer(request.id, uint64_t{123'456}, kNowMs + 10);
  ASSERT_EQ(answered.bids.size(), 1u);
  EXPECT_EQ(answered.bids[0].body.price_per_hour, 123'456u);
  EXPECT_EQ(answered.bids[0].body.services[0].device, kH100);
  EXPECT_EQ(answered.reserve.size(), 1u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 0u);
}

TEST_F(CommandPricingTest, AFailingSlowOrOverCapProgramMeansNoBidAndNoReservation) {
  auto engine = MakeEngine(provider_, Inventory(4), Command(/*max_concurrent=*/3));
  ASSERT_NE(engine, nullptr);
  const uint64_t failing = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).price_requests.at(0).id;
  const uint64_t slow = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).price_requests.at(0).id;
  const uint64_t greedy = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).price_requests.at(0).id;
  // Bounded concurrency: a fourth order while three run is skipped, not queued.
  EXPECT_EQ(engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).skipped, SkipReason::kPricingBusy);

  EXPECT_EQ(engine->OnPriceAnswer(failing, Status::InvalidArgument("exited with status 1"), kNowMs).skipped,
            SkipReason::kPricingFailed);
  EXPECT_EQ(engine->OnPriceAnswer(greedy, uint64_t{1} << 60, kNowMs).skipped, SkipReason::kPriceCap);
  EXPECT_EQ(engine->NextDeadline(), kNowMs + 500);
  const EngineStep timed_out = engine->Tick(kNowMs + 500);
  EXPECT_TRUE(timed_out.bids.empty());
  EXPECT_EQ(Skipped(*engine, SkipReason::kPricingFailed), 2u);
  // Its late answer changes nothing.
  EXPECT_TRUE(engine->OnPriceAnswer(slow, uint64_t{1}, kNowMs + 600).bids.empty());
  EXPECT_EQ(engine->live_reservations(), 0u);
  EXPECT_EQ(FreeGpus(*engine, kH100), 4u);
  EXPECT_EQ(engine->counters().price_failures, 2u);
  EXPECT_EQ(engine->counters().price_requests, 3u);
}

TEST_F(CommandPricingTest, CapacityTakenWhileAProgramRunsIsRecheckedBeforeBidding) {
  auto engine = MakeEngine(provider_, Inventory(1), Command());
  ASSERT_NE(engine, nullptr);
  const uint64_t first = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).price_requests.at(0).id;
  const uint64_t second = engine->OnOrder(SignOrder(tenant_, GpuOrder(1)), kNowMs).price_requests.at(0).id;
  EXPECT_EQ(engine->OnPriceAnswer(second, uint64_t{1'000}, kNowMs).bids.size(), 1u);
  EXPECT_EQ(engine->OnPriceAnswer(first, uint64_t{1'000}, kNowMs).skipped, SkipReason::kCapacity);
  EXPECT_EQ(engine->live_reservations(), 1u);
}

TEST(PriceAnswerTest, OneWholeNumberOrNothing) {
  EXPECT_EQ(*ParsePriceAnswer("1234\n"), 1234u);
  EXPECT_EQ(*ParsePriceAnswer("  0 "), 0u);
  EXPECT_EQ(*ParsePriceAnswer("18446744073709551615"), UINT64_MAX);
  for (const char* garbage : {"", "\n", "12.5", "-3", "1e6", "12 34", "price: 5", "18446744073709551616", "0x10"}) {
    EXPECT_FALSE(ParsePriceAnswer(garbage).ok()) << garbage;
  }
  EXPECT_FALSE(ParsePriceAnswer(std::string(kMaxPriceAnswerBytes + 1, '1')).ok());
}

TEST(ValidatePricingTest, NamesTheProblem) {
  EXPECT_TRUE(ValidatePricing(TablePricing()).ok());
  PricingConfig none;
  EXPECT_NE(ValidatePricing(none).message().find("needs at least one price table"), std::string::npos);
  PricingConfig bad_key = TablePricing();
  bad_key.tables[0].gpu["h100.80GB"] = 1;  // a RAM no lookup spells
  EXPECT_FALSE(ValidatePricing(bad_key).ok());
  PricingConfig twice = TablePricing();
  twice.tables.push_back(Table());
  EXPECT_FALSE(ValidatePricing(twice).ok());
  PricingConfig utilization = TablePricing();
  utilization.kind = PricingKind::kUtilization;
  utilization.utilization_max_percent = 99;
  EXPECT_FALSE(ValidatePricing(utilization).ok());
  PricingConfig command;
  command.kind = PricingKind::kCommand;
  EXPECT_NE(ValidatePricing(command).message().find("needs a program"), std::string::npos);
  command.command = {"/bin/true"};
  EXPECT_TRUE(ValidatePricing(command).ok());
  command.command_timeout_ms = 0;
  EXPECT_FALSE(ValidatePricing(command).ok());
  command.command_timeout_ms = 1000;
  command.command_max_concurrent = 0;
  EXPECT_FALSE(ValidatePricing(command).ok());
  EXPECT_EQ(ParsePricingKind("utilization"), PricingKind::kUtilization);
  EXPECT_EQ(ParsePricingKind("cheapest"), std::nullopt);
}

}  // namespace
}  // namespace gpumart::bidding

namespace gpumart::bidding {
namespace {

Result<PricingConfig> ParsePolicy(std::string_view yaml, std::vector<market::PriceTable> tables = {testing::Table()}) {
  Result<market::YamlTree> tree = market::YamlTree::Parse(yaml, market::YamlLimits{1000, 16});
  if (!tree.ok()) return tree.status();
  return ParsePricingPolicy(tree->Root().Find("pricing_policy"), std::move(tables));
}

TEST(ParsePricingPolicyTest, EachKindAndItsKeys) {
  Result<PricingConfig> absent = ParsePolicy("other: 1\n");
  ASSERT_TRUE(absent.ok()) << absent.status().ToString();
  EXPECT_EQ(absent->kind, PricingKind::kTable);
  Result<PricingConfig> utilization = ParsePolicy("pricing_policy: {kind: utilization, max_percent: 250}\n");
  ASSERT_TRUE(utilization.ok()) << utilization.status().ToString();
  EXPECT_EQ(utilization->kind, PricingKind::kUtilization);
  EXPECT_EQ(utilization->utilization_max_percent, 250u);
  Result<PricingConfig> command = ParsePolicy(
      "pricing_policy:\n  kind: command\n  command: [/bin/price, --margin, '15']\n  timeout_ms: 1500\n"
      "  max_concurrent: 2\n",
      {});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->command, (std::vector<std::string>{"/bin/price", "--margin", "15"}));
  EXPECT_EQ(command->command_timeout_ms, 1500);
  EXPECT_EQ(command->command_max_concurrent, 2u);
}

TEST(ParsePricingPolicyTest, ErrorsNameTheKeyAndLine) {
  auto error = [](std::string_view yaml) {
    Result<PricingConfig> config = ParsePolicy(yaml);
    return config.ok() ? std::string("ok") : config.status().message();
  };
  EXPECT_NE(error("pricing_policy: {kind: cheapest}\n").find("'cheapest' is not"), std::string::npos);
  EXPECT_NE(error("pricing_policy: {kind: table, colour: red}\n").find("unknown key 'colour' at line 1"),
            std::string::npos);
  EXPECT_NE(error("pricing_policy: {kind: table, max_percent: 200}\n").find("applies only to kind utilization"),
            std::string::npos);
  EXPECT_NE(error("pricing_policy: {kind: utilization, max_percent: -5}\n").find("whole number"), std::string::npos);
  EXPECT_NE(error("pricing_policy: {kind: utilization, max_percent: 5000}\n").find("outside"), std::string::npos);
  EXPECT_NE(error("pricing_policy: {kind: command, command: /bin/price}\n").find("must be a list"), std::string::npos);
  EXPECT_NE(error("pricing_policy: {kind: command}\n").find("needs a program"), std::string::npos);
  EXPECT_NE(error("pricing_policy:\n  kind: utilization\n  max_percent: 150\n  max_percent: 160\n").find("twice at line 4"),
            std::string::npos);
  EXPECT_NE(error("pricing_policy: [table]\n").find("must be a mapping"), std::string::npos);
  Result<PricingConfig> no_tables = ParsePolicy("pricing_policy: {kind: table}\n", {});
  ASSERT_FALSE(no_tables.ok());
  EXPECT_NE(no_tables.status().message().find("needs at least one price table"), std::string::npos);
}

}  // namespace
}  // namespace gpumart::bidding

namespace gpumart::bidding {
namespace {

// Every example in configs/pricing-examples.yaml is a policy the daemon accepts.
TEST(ParsePricingPolicyTest, TheDocumentedExamplesParse) {
  std::ifstream file(std::string(GPUMART_SOURCE_DIR) + "/configs/pricing-examples.yaml");
  ASSERT_TRUE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  const std::string all = text.str();
  std::vector<PricingKind> kinds;
  size_t start = 0;
  while (start <= all.size()) {
    size_t end = all.find("\n---\n", start);
    if (end == std::string::npos) end = all.size();
    Result<PricingConfig> config = ParsePolicy(std::string_view(all).substr(start, end - start));
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    kinds.push_back(config->kind);
    start = end + 5;
  }
  EXPECT_EQ(kinds, (std::vector<PricingKind>{PricingKind::kTable, PricingKind::kUtilization, PricingKind::kCommand}));
}

}  // namespace
}  // namespace gpumart::bidding
