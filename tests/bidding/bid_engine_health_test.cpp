// The bid engine's side of GPU health (docs/HEALTH.md): out-of-service GPUs leave the free
// capacity, leases over what is left in service are named for closing, and usage per device type;
// a failed GPU takes out exactly the units it carries (a whole GPU, its MIG instances, its
// time-slice replicas: UnitsOutOfService).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "bidding/bid_engine.h"
#include "bidding/gpu_health.h"
#include "bidding/inventory.h"
#include "market/yaml_tree.h"
#include "tests/bidding/builtin_gpu_models.h"
#include "tests/bidding/engine_test_util.h"

namespace gpumart::bidding {
namespace {

using namespace gpumart::bidding::testing;  // NOLINT
using testing::Inventory;                   // the test inventory; bidding::Inventory is the type

class BidEngineHealthTest : public ::testing::Test {
 protected:
  BidEngineHealthTest() : provider_(market::Identity::Generate()), tenant_(market::Identity::Generate()) {}

  // Leases `units` GPUs on `engine`; returns the lease id.
  market::MessageId Lease(BidEngine& engine, uint32_t units, int64_t now_ms) {
    const EngineStep bid = engine.OnOrder(SignOrder(tenant_, GpuOrder(units), now_ms), now_ms);
    EXPECT_EQ(bid.bids.size(), 1u);
    if (bid.bids.empty()) return {};
    const SignedAccept accept = Accept(tenant_, bid.bids[0], now_ms);
    engine.OnAccept(accept.accept, accept.wire, now_ms);
    const EngineStep stored = engine.OnLeaseStored(bid.bids[0].id, Status::Ok(), now_ms);
    EXPECT_EQ(stored.leases.size(), 1u);
    return stored.leases.empty() ? market::MessageId{} : stored.leases[0].id;
  }

  market::Identity provider_;
  market::Identity tenant_;
};

TEST_F(BidEngineHealthTest, OutOfServiceGpusLeaveTheOfferAndComeBack) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(engine->SetOutOfService("n1", {{kH100, 3}}).empty());
  EXPECT_EQ(FreeGpus(*engine, kH100), 1u);
  // Two GPUs no longer fit; one does.
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, GpuOrder(2)), kNowMs).bids.empty());
  const market::MessageId lease = Lease(*engine, 1, kNowMs);
  EXPECT_EQ(FreeGpus(*engine, kH100), 0u);
  const auto usage = engine->Usage();
  EXPECT_EQ(usage.at(kH100).installed, 4u);
  EXPECT_EQ(usage.at(kH100).out_of_service, 3u);
  EXPECT_EQ(usage.at(kH100).leased, 1u);
  EXPECT_EQ(usage.at(kH100).revenue_per_hour.at("uakt"), TablePrice(1, 300000));
  // Back in service: free again, the lease untouched.
  EXPECT_TRUE(engine->SetOutOfService("n1", {}).empty());
  EXPECT_EQ(FreeGpus(*engine, kH100), 3u);
  EXPECT_EQ(engine->active_leases(), 1u);
  (void)lease;
}

TEST_F(BidEngineHealthTest, LeasesOverWhatIsLeftInServiceAreNamedNewestFirst) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  const market::MessageId first = Lease(*engine, 2, kNowMs);
  const market::MessageId second = Lease(*engine, 1, kNowMs + 1);
  const market::MessageId third = Lease(*engine, 1, kNowMs + 2);
  // One GPU fails: 3 in service, 4 leased: the newest lease goes.
  EXPECT_EQ(engine->SetOutOfService("n1", {{kH100, 1}}), std::vector<market::MessageId>{third});
  // Three fail: 1 in service; closing the newest two leaves 2 leased, so the first goes too.
  EXPECT_EQ(engine->SetOutOfService("n1", {{kH100, 3}}), (std::vector<market::MessageId>{third, second, first}));
  EXPECT_TRUE(engine->SetOutOfService("n9", {{kH100, 1}}).empty());  // no such node
  // Closing is the caller's: until then the leases hold their GPUs and nothing is free.
  EXPECT_EQ(FreeGpus(*engine, kH100), 0u);
}

// A reloaded inventory (SIGHUP) does not bring a failed GPU back: health decides that.
TEST_F(BidEngineHealthTest, AReloadKeepsGpusOutOfService) {
  auto engine = MakeEngine(provider_, Inventory(4));
  ASSERT_NE(engine, nullptr);
  engine->SetOutOfService("n1", {{kH100, 1}});
  ASSERT_TRUE(engine->SetInventory(Inventory(8)).ok());
  EXPECT_EQ(FreeGpus(*engine, kH100), 7u);
  EXPECT_EQ(engine->Usage().at(kH100).out_of_service, 1u);
}


// ---- A failed GPU's units (docs/HEALTH.md, docs/FRACTIONAL.md) ----

// A listed inventory of one node "n1" with these GPU entries (YAML flow maps).
bidding::Inventory ListedInventory(const std::vector<std::string>& gpus) {
  std::string yaml = "inventory:\n  nodes:\n    - name: n1\n      cpu_millis: 64000\n      memory: 512Gi\n"
                     "      storage: 2Ti\n      gpus:\n";
  for (const std::string& gpu : gpus) yaml += "        - " + gpu + "\n";
  Result<market::YamlTree> tree = market::YamlTree::Parse(yaml, {.max_nodes = 1 << 12, .max_depth = 16});
  EXPECT_TRUE(tree.ok()) << tree.status().ToString();
  if (!tree.ok()) return {};
  Result<InventoryConfig> config = ParseInventoryConfig(tree->Root().Find("inventory"));
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  if (!config.ok()) return {};
  Result<bidding::Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), nullptr);
  EXPECT_TRUE(inventory.ok()) << inventory.status().ToString();
  return inventory.ok() ? *inventory : bidding::Inventory();
}

// A health check's output for GPUs 0..n-1 of `product` (GPU 0 at bus 18, GPU 1 at 2A as in
// tests/bidding/testdata/nvidia-smi/h100-mig.query.csv); those in `failed` read 2 uncorrected
// ECC errors.
GpuHealthReadings HealthCheck(const std::string& product, size_t n, const std::set<size_t>& failed = {}) {
  std::string csv;
  for (size_t i = 0; i < n; ++i) {
    char bus[8];
    std::snprintf(bus, sizeof(bus), "%02X", i == 0 ? 0x18 : i == 1 ? 0x2A : static_cast<int>(0x40 + i));
    csv += std::to_string(i) + ", GPU-0000000" + std::to_string(i) + ", " + product + ", 00000000:" + bus + ":00.0, 35, " +
           (failed.contains(i) ? "2" : "0") + ", 0, No, No, No\n";
  }
  Result<GpuHealthReadings> readings = ParseNvidiaSmiHealth(csv);
  EXPECT_TRUE(readings.ok()) << readings.status().ToString();
  return readings.ok() ? *readings : GpuHealthReadings();
}

GpuHealthMonitor Monitor() {
  GpuHealthConfig config;
  config.enabled = true;
  config.hold_down_ms = 60'000;
  return GpuHealthMonitor(config);
}

market::DeviceType Mig(market::DeviceType gpu, const std::string& profile, uint64_t ram_gi) {
  gpu.mig_profile = profile;
  gpu.ram_bytes = ram_gi * kGi;
  return gpu;
}
market::DeviceType Shared(market::DeviceType gpu) {
  gpu.shared = true;
  return gpu;
}

const market::DeviceType kA100Sxm{"nvidia", "a100", 80 * kGi, GpuInterface::kSxm};
const market::DeviceType kA10{"nvidia", "a10", 24 * kGi, GpuInterface::kPcie};
constexpr char kA100Product[] = "NVIDIA A100-SXM4-80GB";

market::Order MigOrder(uint32_t units, const std::string& profile) {
  market::Order order = GpuOrder(units);
  order.services[0].resources.gpu.options[0].mig = profile;
  order.services[0].resources.gpu.options[0].ram_min_bytes.reset();
  return order;
}
market::Order SharedOrder(uint32_t units) {
  market::Order order = GpuOrder(units, "a10");
  order.services[0].resources.gpu.options[0].shared_ok = true;
  return order;
}

PricingConfig FractionPricing() {
  PricingConfig pricing = TablePricing();
  pricing.tables[0].gpu["a100.mig-1g.10gb"] = 40'000;
  pricing.tables[0].gpu["a100.mig-3g.40gb"] = 120'000;
  pricing.tables[0].gpu["a10.shared"] = 20'000;
  return pricing;
}

uint64_t Free(BidEngine& engine, const market::DeviceType& type) {
  uint64_t free = 0;
  for (const auto& node : engine.FreeOffer().nodes) {
    for (const auto& devices : node.gpus) {
      const market::DeviceType of{devices.vendor, devices.model, devices.ram_bytes, devices.interface,
                                  devices.mig_profile, devices.shared};
      if (of == type) free += devices.count;
    }
  }
  return free;
}

// The brief's case end to end through the engine: an A100 cut into 7 x 1g.10gb fails; all seven
// instances leave the offer at once (not one, not the whole A100 beside it), the lease on one of
// them is named for closing with the GPU's health as its note, and they come back only when the
// monitor has the GPU healthy again for the hold-down.
TEST_F(BidEngineHealthTest, AFailedMigGpuTakesAllItsInstancesOutAndClosesTheirLease) {
  const bidding::Inventory inventory = ListedInventory({"{model: a100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 1}",
                                               "{model: a100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 1, "
                                               "mig: {1g.10gb: 7}}"});
  const market::DeviceType small = Mig(kA100Sxm, "1g.10gb", 10);
  auto engine = MakeEngine(provider_, ToOffer(inventory, {}), FractionPricing());
  ASSERT_NE(engine, nullptr);
  ASSERT_EQ(Free(*engine, small), 7u);
  const EngineStep bid = engine->OnOrder(SignOrder(tenant_, MigOrder(1, "1g.10gb")), kNowMs);
  ASSERT_EQ(bid.bids.size(), 1u) << bid.skip_detail;
  const SignedAccept accept = Accept(tenant_, bid.bids[0], kNowMs);
  engine->OnAccept(accept.accept, accept.wire, kNowMs);
  const EngineStep stored = engine->OnLeaseStored(bid.bids[0].id, Status::Ok(), kNowMs);
  ASSERT_EQ(stored.leases.size(), 1u);
  const market::MessageId lease = stored.leases[0].id;
  ASSERT_EQ(Free(*engine, small), 6u);

  GpuHealthMonitor monitor = Monitor();
  const std::vector<market::PhysicalGpus>& layout = inventory.physical_gpus.at("n1");
  monitor.Observe(HealthCheck(kA100Product, 2), nullptr, 1'000);
  EXPECT_TRUE(UnitsOutOfService(monitor.gpus(), layout, gpumart::testing::BuiltinGpuModels()).units.empty());
  monitor.Observe(HealthCheck(kA100Product, 2, {1}), nullptr, 2'000);  // GPU 1: the second entry, in MIG mode
  const GpuUnitsOutOfService out = UnitsOutOfService(monitor.gpus(), layout, gpumart::testing::BuiltinGpuModels());
  EXPECT_EQ(out.units, (std::map<market::DeviceType, uint64_t>{{small, 7}}));
  ASSERT_EQ(out.notes.count(small), 1u);
  EXPECT_EQ(out.notes.at(small).rfind("GPU health: GPU 1 (GPU-00000001) unhealthy: 2 uncorrected ECC errors", 0), 0u)
      << out.notes.at(small);
  EXPECT_EQ(engine->SetOutOfService("n1", out.units), std::vector<market::MessageId>{lease});
  EXPECT_EQ(Free(*engine, small), 0u);
  EXPECT_EQ(Free(*engine, kA100Sxm), 1u);  // the whole A100 beside it is still sold
  EXPECT_TRUE(engine->OnOrder(SignOrder(tenant_, MigOrder(1, "1g.10gb")), kNowMs + 1).bids.empty());
  EXPECT_EQ(engine->Usage().at(small).out_of_service, 7u);
  // The caller closes the lease (provider-failure); its instance stays out with the others.
  market::Close close{lease, market::CloseReason::kProviderFailure, kNowMs + 2, out.notes.at(small)};
  engine->OnClose(market::MakeSigned(provider_, close, kNowMs + 2, 60'000, market::RandomNonce()), kNowMs + 2);
  EXPECT_EQ(engine->active_leases(), 0u);
  EXPECT_EQ(Free(*engine, small), 0u);

  // Healthy again: still out until the hold-down of healthy checks has passed.
  monitor.Observe(HealthCheck(kA100Product, 2), nullptr, 3'000);
  EXPECT_EQ(UnitsOutOfService(monitor.gpus(), layout, gpumart::testing::BuiltinGpuModels()).units, out.units);
  monitor.Observe(HealthCheck(kA100Product, 2), nullptr, 63'000);
  const GpuUnitsOutOfService back = UnitsOutOfService(monitor.gpus(), layout, gpumart::testing::BuiltinGpuModels());
  EXPECT_TRUE(back.units.empty());
  EXPECT_TRUE(engine->SetOutOfService("n1", back.units).empty());
  EXPECT_EQ(Free(*engine, small), 7u);
}

// A time-sliced A10 that fails takes all its replicas out; leases over the replicas left are
// named, newest first (the executor, not the engine, knows which GPU a replica runs on).
TEST_F(BidEngineHealthTest, AFailedTimeSlicedGpuTakesAllItsReplicasOut) {
  const bidding::Inventory inventory = ListedInventory({"{model: a10, ram: 24Gi, cuda: \"12.4\", count: 2, replicas: 4}"});
  const market::DeviceType slice = Shared(kA10);
  auto engine = MakeEngine(provider_, ToOffer(inventory, {}), FractionPricing());
  ASSERT_NE(engine, nullptr);
  ASSERT_EQ(Free(*engine, slice), 8u);
  std::vector<market::MessageId> leases;
  for (int i = 0; i < 5; ++i) {
    const int64_t now = kNowMs + i;
    const EngineStep bid = engine->OnOrder(SignOrder(tenant_, SharedOrder(1), now), now);
    ASSERT_EQ(bid.bids.size(), 1u) << bid.skip_detail;
    const SignedAccept accept = Accept(tenant_, bid.bids[0], now);
    engine->OnAccept(accept.accept, accept.wire, now);
    const EngineStep stored = engine->OnLeaseStored(bid.bids[0].id, Status::Ok(), now);
    ASSERT_EQ(stored.leases.size(), 1u);
    leases.push_back(stored.leases[0].id);
  }
  GpuHealthMonitor monitor = Monitor();
  monitor.Observe(HealthCheck("NVIDIA A10", 2, {0}), nullptr, 1'000);
  const GpuUnitsOutOfService out = UnitsOutOfService(monitor.gpus(), inventory.physical_gpus.at("n1"), gpumart::testing::BuiltinGpuModels());
  EXPECT_EQ(out.units, (std::map<market::DeviceType, uint64_t>{{slice, 4}}));
  // 4 replicas left in service, 5 leased: the newest lease goes.
  EXPECT_EQ(engine->SetOutOfService("n1", out.units), std::vector<market::MessageId>{leases[4]});
  EXPECT_EQ(Free(*engine, slice), 0u);
  monitor.Observe(HealthCheck("NVIDIA A10", 2, {0, 1}), nullptr, 2'000);
  EXPECT_EQ(UnitsOutOfService(monitor.gpus(), inventory.physical_gpus.at("n1"), gpumart::testing::BuiltinGpuModels()).units,
            (std::map<market::DeviceType, uint64_t>{{slice, 8}}));
}

// Listed entries of one model take its GPUs in index order: with 2 whole A100s listed before an
// A100 cut 3g.40gb + 4 x 1g.10gb, GPUs 0 and 1 are whole and GPU 2 is the cut one; GPUs past the
// listed ones count as the last entry's (withdrawing too much beats selling a failed GPU).
TEST(GpuUnitsOutOfServiceTest, ListedEntriesOfAModelTakeItsGpusInIndexOrder) {
  const bidding::Inventory inventory =
      ListedInventory({"{model: a100, ram: 80Gi, interface: sxm, count: 2}",
                       "{model: a100, ram: 80Gi, interface: sxm, count: 1, mig: {3g.40gb: 1, 1g.10gb: 4}}"});
  const std::vector<market::PhysicalGpus>& layout = inventory.physical_gpus.at("n1");
  ASSERT_EQ(layout.size(), 2u);
  EXPECT_EQ(layout[0].count, 2u);
  EXPECT_EQ(layout[0].units, (std::map<market::DeviceType, uint32_t>{{kA100Sxm, 1}}));
  EXPECT_EQ(layout[1].units,
            (std::map<market::DeviceType, uint32_t>{{Mig(kA100Sxm, "1g.10gb", 10), 4}, {Mig(kA100Sxm, "3g.40gb", 40), 1}}));
  auto out_with = [&](size_t gpus, std::set<size_t> failed) {
    GpuHealthMonitor monitor = Monitor();
    monitor.Observe(HealthCheck(kA100Product, gpus, failed), nullptr, 1'000);
    return UnitsOutOfService(monitor.gpus(), layout, gpumart::testing::BuiltinGpuModels()).units;
  };
  using Units = std::map<market::DeviceType, uint64_t>;
  EXPECT_EQ(out_with(3, {1}), (Units{{kA100Sxm, 1}}));
  EXPECT_EQ(out_with(3, {2}), (Units{{Mig(kA100Sxm, "1g.10gb", 10), 4}, {Mig(kA100Sxm, "3g.40gb", 40), 1}}));
  EXPECT_EQ(out_with(3, {0, 1, 2}), (Units{{kA100Sxm, 2}, {Mig(kA100Sxm, "1g.10gb", 10), 4}, {Mig(kA100Sxm, "3g.40gb", 40), 1}}));
  EXPECT_EQ(out_with(4, {3}), (Units{{Mig(kA100Sxm, "1g.10gb", 10), 4}, {Mig(kA100Sxm, "3g.40gb", 40), 1}}));
  // A GPU of a model the node does not list takes nothing from it.
  GpuHealthMonitor monitor = Monitor();
  monitor.Observe(HealthCheck("NVIDIA A10", 1, {0}), nullptr, 1'000);
  EXPECT_TRUE(UnitsOutOfService(monitor.gpus(), layout, gpumart::testing::BuiltinGpuModels()).units.empty());
}

// As before fractions existed: a node with one whole-GPU entry takes every failed GPU as one of
// its own, whatever nvidia-smi names it.
TEST(GpuUnitsOutOfServiceTest, ANodeWithOneEntryTakesEveryGpu) {
  const bidding::Inventory inventory = ListedInventory({"{model: h100, ram: 80Gi, interface: sxm, count: 4}"});
  GpuHealthMonitor monitor = Monitor();
  monitor.Observe(HealthCheck("NVIDIA Some Future GPU", 2, {0, 1}), nullptr, 1'000);
  const GpuUnitsOutOfService out = UnitsOutOfService(monitor.gpus(), inventory.physical_gpus.at("n1"), gpumart::testing::BuiltinGpuModels());
  EXPECT_EQ(out.units, (std::map<market::DeviceType, uint64_t>{{kH100, 2}}));
  EXPECT_NE(out.notes.at(kH100).find("GPU 0 (GPU-00000000)"), std::string::npos) << out.notes.at(kH100);
}

std::string TestData(const std::string& name) {
  std::ifstream file(std::string(GPUMART_SOURCE_DIR) + "/tests/bidding/testdata/nvidia-smi/" + name, std::ios::binary);
  EXPECT_TRUE(file) << name;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Detected GPUs are known by PCI bus id: the H100 in MIG mode (bus 18: 3 x 1g.10gb and a
// 3g.40gb) takes out its four instances, the whole one (bus 2A) itself; a GPU detection left out
// (no entry with its bus id) takes nothing, even of its model.
TEST(GpuUnitsOutOfServiceTest, DetectedGpusAreKnownByBusId) {
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(TestData("h100-mig.query.csv"), TestData("h100-8x-sxm.smi.txt"),
                                                  gpumart::testing::BuiltinGpuModels(), TestData("h100-mig.list.txt"));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->physical.size(), 2u);
  EXPECT_EQ(report->physical[0].bus_id, "0000:18:00");
  EXPECT_EQ(report->physical[0].count, 1u);
  const market::DeviceType small = Mig(kH100, "1g.10gb", 10), big = Mig(kH100, "3g.40gb", 40);
  EXPECT_EQ(report->physical[0].units, (std::map<market::DeviceType, uint32_t>{{small, 3}, {big, 1}}));
  EXPECT_EQ(report->physical[1].units, (std::map<market::DeviceType, uint32_t>{{kH100, 1}}));
  using Units = std::map<market::DeviceType, uint64_t>;
  auto out_with = [&](size_t gpus, std::set<size_t> failed) {
    GpuHealthMonitor monitor = Monitor();
    monitor.Observe(HealthCheck("NVIDIA H100 80GB HBM3", gpus, failed), nullptr, 1'000);
    return UnitsOutOfService(monitor.gpus(), report->physical, gpumart::testing::BuiltinGpuModels()).units;
  };
  EXPECT_EQ(out_with(2, {0}), (Units{{small, 3}, {big, 1}}));
  EXPECT_EQ(out_with(2, {1}), (Units{{kH100, 1}}));
  EXPECT_TRUE(out_with(3, {2}).empty());
}

}  // namespace
}  // namespace gpumart::bidding
