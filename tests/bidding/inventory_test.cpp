#include "bidding/inventory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "market/codec.h"
#include "market/match.h"
#include "market/offers.h"
#include "tests/alloc_failure.h"
#include "tests/bidding/builtin_gpu_models.h"
#include "tests/temp_dir.h"

namespace gpumart::bidding {
namespace {

using market::GpuDevices;
using market::GpuInterface;
using market::kGi;
using market::kTi;

const std::string kTestData = std::string(GPUMART_SOURCE_DIR) + "/tests/bidding/testdata/nvidia-smi/";

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file) << path;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The `inventory` section of a config document, parsed.
Result<InventoryConfig> ParseSection(std::string_view yaml) {
  Result<market::YamlTree> tree = market::YamlTree::Parse(yaml, {.max_nodes = 1 << 16, .max_depth = 16});
  if (!tree.ok()) return tree.status();
  return ParseInventoryConfig(tree->Root().Find("inventory"));
}

// Parses and builds (no detection); the error message, or "" when it is a valid inventory.
std::string ErrorOf(std::string_view yaml) {
  Result<InventoryConfig> config = ParseSection(yaml);
  if (!config.ok()) return config.status().message();
  Result<Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), nullptr);
  return inventory.ok() ? "" : inventory.status().message();
}

bool StartsWith(const std::string& text, const std::string& prefix) { return text.starts_with(prefix); }

std::string WithGpu(std::string_view gpu) {
  return "inventory:\n  nodes:\n    - name: n1\n      cpu_millis: 64000\n      memory: 512Gi\n      gpus:\n        - " +
         std::string(gpu) + "\n";
}
std::string WithNode(std::string_view node) { return "inventory:\n  nodes:\n    - " + std::string(node) + "\n"; }

TEST(InventoryTest, ShippedProviderConfig) {
  const std::string text = ReadFile(std::string(GPUMART_SOURCE_DIR) + "/configs/provider.yaml");
  Result<market::YamlTree> tree = market::YamlTree::Parse(text, {.max_nodes = 1 << 16, .max_depth = 16});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  Result<InventoryConfig> config = ParseInventoryConfig(tree->Root().Find("inventory"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->NeedsDetection());
  Result<Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), nullptr);
  ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
  EXPECT_EQ(inventory->attributes.at("region"), "us-west");
  ASSERT_EQ(inventory->nodes.size(), 4u);
  EXPECT_EQ(inventory->GpuCount(), 16u);
  const market::NodeCapacity h100{
      .name = "hgx-h100-01", .cpu_millis = 224000, .memory_bytes = 2 * kTi, .storage_bytes = 28 * kTi,
      .gpus = {{.vendor = "nvidia", .model = "h100", .ram_bytes = 80 * kGi, .interface = GpuInterface::kSxm,
                .cuda = market::CudaVersion{12, 4}, .count = 8}}};
  EXPECT_EQ(inventory->nodes[0], h100);
  EXPECT_EQ(inventory->nodes[1].gpus[0].model, "a100");
  EXPECT_EQ(inventory->nodes[1].gpus[0].interface, GpuInterface::kPcie);
  EXPECT_EQ(inventory->nodes[1].gpus[0].count, 4u);
  EXPECT_EQ(inventory->nodes[2].gpus[0].model, "rtx4090");
  EXPECT_EQ(inventory->nodes[3].name, "rtx4090-02");

  // It is an Offer's capacity as the matching engine reads it: with the config's prices, 8 H100s
  // on one node are found and priced.
  std::vector<market::PriceTable> pricing;
  ASSERT_TRUE(market::ParseOfferPricing(tree->Root().Find("pricing"), "pricing", pricing).ok());
  market::Offer offer = ToOffer(*inventory, pricing);
  offer.provider = "p";
  EXPECT_EQ(offer.nodes, inventory->nodes);
  EXPECT_EQ(offer.attributes, inventory->attributes);
  EXPECT_EQ(offer.pricing, pricing);
  EXPECT_TRUE(market::ValidateOffer(offer).ok());
  EXPECT_TRUE(market::CheckOfferWork(offer).ok());
  market::Order order;
  order.group = "train";
  market::ServiceRequest service;
  service.name = "trainer";
  service.resources.cpu_millis = 32000;
  service.resources.memory_bytes = 256 * kGi;
  service.resources.gpu = {.units = 8, .options = {{.model = "h100", .ram_min_bytes = 80 * kGi}}};
  service.price_cap = {.denom = "uakt", .amount = 0, .per_hour = 10'000'000};
  order.services.push_back(service);
  const market::FitOutcome fit = market::FitProvider(order, offer);
  ASSERT_TRUE(fit.candidate.has_value()) << market::ToString(fit.exclusion.reason) << " " << fit.exclusion.detail;
  EXPECT_EQ(fit.candidate->services[0].placements[0].node, "hgx-h100-01");
  EXPECT_EQ(fit.candidate->price_per_hour, 8 * 650000 + 32 * 4000 + 256 * 500);
}

// The shipped fractional examples (docs/FRACTIONAL.md) load, and each fraction is priced by its
// own key: every device type of the inventory has a rate in the config's table.
TEST(InventoryTest, ShippedFractionalProviderConfigs) {
  struct Case {
    const char* file;
    uint64_t fractions;  // MIG instances or replicas
  };
  for (const Case& c : {Case{"provider-mig.yaml", 4 * 7 + 2 * 2 + 2 * 4}, Case{"provider-timeslice.yaml", 16 + 16}}) {
    SCOPED_TRACE(c.file);
    const std::string text = ReadFile(std::string(GPUMART_SOURCE_DIR) + "/configs/" + c.file);
    Result<market::YamlTree> tree = market::YamlTree::Parse(text, {.max_nodes = 1 << 16, .max_depth = 16});
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    Result<InventoryConfig> config = ParseInventoryConfig(tree->Root().Find("inventory"));
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    Result<Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), nullptr);
    ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
    std::vector<market::PriceTable> pricing;
    ASSERT_TRUE(market::ParseOfferPricing(tree->Root().Find("pricing"), "pricing", pricing).ok());
    const market::Offer offer = ToOffer(*inventory, pricing);
    EXPECT_TRUE(market::ValidateOffer(offer).ok()) << market::ValidateOffer(offer).ToString();
    uint64_t fractions = 0;
    for (const auto& node : offer.nodes) {
      for (const auto& gpus : node.gpus) {
        if (!gpus.mig_profile.empty() || gpus.shared) fractions += gpus.count;
        const market::DeviceType type{gpus.vendor, gpus.model, gpus.ram_bytes, gpus.interface, gpus.mig_profile,
                                      gpus.shared};
        EXPECT_TRUE(market::LookupGpuRate(offer.pricing[0], type).has_value()) << market::Describe(type);
      }
    }
    EXPECT_EQ(fractions, c.fractions);
  }
}

TEST(InventoryTest, DetectForms) {
  Result<InventoryConfig> whole = ParseSection("inventory: detect\n");
  ASSERT_TRUE(whole.ok());
  EXPECT_TRUE(whole->detect_machine);
  Result<InventoryConfig> nodes = ParseSection("inventory:\n  attributes: {region: eu}\n  nodes: detect\n");
  ASSERT_TRUE(nodes.ok());
  EXPECT_TRUE(nodes->detect_machine);
  EXPECT_EQ(nodes->attributes.at("region"), "eu");
  Result<InventoryConfig> one = ParseSection(
      "inventory:\n  nvidia_smi: /opt/nvidia/bin/nvidia-smi\n  nodes:\n"
      "    - {name: a, cpu_millis: 1000, memory: 1Gi, gpus: [{model: l4, ram: 24Gi, count: 1}]}\n"
      "    - {name: b, cpu_millis: 48000, memory: 256Gi, storage: 2Ti, gpus: detect}\n");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_FALSE(one->detect_machine);
  EXPECT_EQ(one->detect_gpus_node, 1u);
  EXPECT_EQ(one->nvidia_smi, "/opt/nvidia/bin/nvidia-smi");
  EXPECT_EQ(ErrorOf("inventory:\n  nodes:\n    - {name: a, cpu_millis: 1, memory: 1, gpus: detect}\n"
                    "    - {name: b, cpu_millis: 1, memory: 1, gpus: detect}\n"),
            "inventory.nodes[1].gpus: detect: only one node is this machine (inventory.nodes[0] detects its GPUs already)");
  // Detecting needs the machine's facts.
  EXPECT_EQ(BuildInventory(*whole, gpumart::testing::BuiltinGpuModels(), nullptr).status().code(), Status::Code::kFailedPrecondition);
}

// The "Bad input": a config with unknown keys or an impossible inventory names the
// exact key and problem.
TEST(InventoryTest, ImpossibleInventoryNamesTheKey) {
  // Unknown keys, at every level.
  EXPECT_PRED2(StartsWith, ErrorOf("inventory:\n  nodes: []\n  region: us\n"), "inventory.region: unknown key");
  EXPECT_PRED2(StartsWith, ErrorOf(WithNode("{name: n, cpu_millis: 1000, memory: 1Gi, gpu: []}")), "inventory.nodes[0].gpu: unknown key");
  EXPECT_PRED2(StartsWith, ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 8, colour: green}")), "inventory.nodes[0].gpus[0].colour: unknown key");
  // Zero and absurd counts.
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 0}")),
            "inventory.nodes[0].gpus[0].count: 0 (list only GPUs the node has)");
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 800}")),
            "inventory.nodes[0].gpus[0].count: 800 GPUs on one node is not a real machine (at most 64)");
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: -8}")),
            "inventory.nodes[0].gpus[0].count: -8 is negative");
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 40}\n        - {model: h100, ram: 80Gi, "
                            "interface: pcie, count: 40}")),
            "inventory.nodes[0].gpus: 80 GPUs on one node is not a real machine (at most 64)");
  EXPECT_EQ(ErrorOf(WithNode("{name: n, cpu_millis: 0, memory: 1Gi}")), "inventory.nodes[0].cpu_millis: 0 (a node has CPUs)");
  EXPECT_EQ(ErrorOf(WithNode("{name: n, cpu_millis: 1000, memory: 0}")), "inventory.nodes[0].memory: 0 (a node has memory)");
  EXPECT_EQ(ErrorOf(WithNode("{name: n, cpu_millis: 5000000, memory: 1Gi}")),
            "inventory.nodes[0].cpu_millis: 5000000 is not a real machine's (at most 4096000)");
  EXPECT_EQ(ErrorOf(WithNode("{name: n, cpu_millis: 1000, memory: 100Ti}")),
            "inventory.nodes[0].memory: 109951162777600 is not a real machine's (at most 70368744177664)");
  EXPECT_EQ(ErrorOf(WithNode("{name: n, memory: 1Gi}")), "inventory.nodes[0].cpu_millis: missing");
  // RAM, interface or model that no known GPU has.
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 40Gi, interface: sxm, count: 8}")),
            "inventory.nodes[0].gpus[0].ram: 40Gi sxm is not a known h100 (known: 80Gi pcie, 80Gi sxm, 94Gi pcie)");
  EXPECT_EQ(ErrorOf(WithGpu("{model: RTX4090, ram: 24Gi, interface: sxm, count: 2}")),
            "inventory.nodes[0].gpus[0].interface: 24Gi sxm is not a known rtx4090 (known: 24Gi pcie)");
  EXPECT_EQ(ErrorOf(WithGpu("{model: h900, ram: 80Gi, count: 2}")),
            "inventory.nodes[0].gpus[0].model: unknown GPU model 'nvidia h900' (not in the GPU model table; add it with "
            "inventory.gpu_models)");
  EXPECT_PRED2(StartsWith, ErrorOf(WithGpu("{vendor: amd, model: h100, ram: 80Gi, interface: sxm, count: 2}")), "inventory.nodes[0].gpus[0].model: unknown GPU model 'amd h100'");
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 4}\n        - {model: H100, ram: 80GiB, "
                            "interface: sxm5, count: 4}")),
            "inventory.nodes[0].gpus[1]: device type h100.80Gi.sxm is listed twice on this node");
  // Duplicate node names, no nodes, a section that is not one.
  EXPECT_EQ(ErrorOf("inventory:\n  nodes:\n    - {name: n, cpu_millis: 1000, memory: 1Gi}\n"
                    "    - {name: n, cpu_millis: 1000, memory: 1Gi}\n"),
            "inventory.nodes[1].name: n is used by another node");
  EXPECT_EQ(ErrorOf("inventory:\n  nodes: []\n"), "inventory.nodes: missing (a provider has at least one node)");
  EXPECT_EQ(ErrorOf("inventory:\n  attributes: {region: us}\n"), "inventory.nodes: missing");
  EXPECT_EQ(ErrorOf("inventory: [a]\n"),
            "inventory: must be `detect` or a map (attributes, auditors, gpu_models, nvidia_smi, nodes)");
  EXPECT_EQ(ErrorOf("inventory: autodetect\n"),
            "inventory: must be `detect` or a map (attributes, auditors, gpu_models, nvidia_smi, nodes)");
  EXPECT_EQ(ErrorOf("inventory:\n  attributes: {region: us, region: eu}\n  nodes: []\n"),
            "inventory.attributes.region: given twice");
  EXPECT_EQ(ErrorOf("inventory:\n  gpu_models: [a]\n  nodes: []\n"), "inventory.gpu_models: must be a path");
  EXPECT_EQ(ErrorOf(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 8}")), "");
}

// Fractional GPUs (docs/FRACTIONAL.md): a MIG layout per GPU, checked against the model's
// profiles, offers the instances only; `replicas` offers N time slices of each GPU.
Inventory BuildOk(std::string_view yaml) {
  Result<InventoryConfig> config = ParseSection(yaml);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  if (!config.ok()) return Inventory();
  Result<Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), nullptr);
  EXPECT_TRUE(inventory.ok()) << inventory.status().ToString();
  return inventory.ok() ? *inventory : Inventory();
}

TEST(InventoryTest, MigLayoutsAndTimeSlicing) {
  const Inventory mig = BuildOk(WithGpu("{model: a100, ram: 80Gi, interface: sxm, cuda: \"12.4\", count: 2, "
                                        "mig: {1g.10gb: 3, 3g.40gb: 1}}"));
  ASSERT_EQ(mig.nodes.size(), 1u);
  const auto& gpus = mig.nodes[0].gpus;
  ASSERT_EQ(gpus.size(), 2u);
  GpuDevices small{"nvidia", "a100", 10 * kGi, GpuInterface::kSxm, market::CudaVersion{12, 4}, 6};
  small.mig_profile = "1g.10gb";
  GpuDevices big{"nvidia", "a100", 40 * kGi, GpuInterface::kSxm, market::CudaVersion{12, 4}, 2};
  big.mig_profile = "3g.40gb";
  EXPECT_EQ(gpus[0], small);
  EXPECT_EQ(gpus[1], big);
  // The offer it makes is a valid one, and no whole A100 is in it.
  const market::Offer offer = ToOffer(mig, {});
  EXPECT_TRUE(market::ValidateOffer(offer).ok()) << market::ValidateOffer(offer).ToString();

  const Inventory sliced = BuildOk(WithGpu("{model: a10, ram: 24Gi, count: 2, replicas: 4}"));
  ASSERT_EQ(sliced.nodes[0].gpus.size(), 1u);
  EXPECT_TRUE(sliced.nodes[0].gpus[0].shared);
  EXPECT_EQ(sliced.nodes[0].gpus[0].count, 8u);
  EXPECT_EQ(sliced.nodes[0].gpus[0].ram_bytes, 24 * kGi);
  // A whole GPU and its fractions are different device types on one node.
  const Inventory mixed = BuildOk(WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 4}\n"
                                          "        - {model: h100, ram: 80Gi, interface: sxm, count: 4, mig: {7g.80gb: 1}}\n"
                                          "        - {model: h100, ram: 80Gi, interface: sxm, count: 2, replicas: 8}"));
  ASSERT_EQ(mixed.nodes[0].gpus.size(), 3u);
  // Past the node's 64 whole GPUs, fractions count by their own bound.
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, interface: sxm, count: 64, mig: {1g.10gb: 7}}")), "");
}

TEST(InventoryTest, ImpossibleMigLayoutsNameTheKey) {
  const std::string at = "inventory.nodes[0].gpus[0]";
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, count: 1, mig: {1g.10gb: 8}}")),
            at + ".mig: 8 x 1g.10gb: one a100 80Gi holds at most 7");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, count: 1, mig: {3g.40gb: 2, 2g.20gb: 1}}")),
            at + ".mig: the layout takes 8 compute slices, a100 80Gi has 7");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 1, mig: {1g.10gb: 2, 3g.20gb: 1, 1g.5gb: 1}}")),
            at + ".mig: the layout takes 9 memory slices, a100 40Gi has 8");
  EXPECT_PRED2(StartsWith, ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 1, mig: {1g.20gb: 1}}")),
               at + ".mig: a100 40Gi has no MIG profile 1g.20gb (known: 1g.5gb, ");
  EXPECT_PRED2(StartsWith, ErrorOf(WithGpu("{model: l40s, ram: 48Gi, count: 1, mig: {1g.10gb: 1}}")),
               at + ".mig: l40s 48Gi has no MIG mode (MIG GPUs: a100 40Gi, ");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, count: 1, mig: {1c.3g.40gb: 1}}")),
            at + ".mig.1c.3g.40gb: '1c.3g.40gb' is not a MIG profile such as 1g.10gb");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, count: 1, mig: {1g.10gb: 0}}")),
            at + ".mig: 1g.10gb: 0 instances (leave the profile out)");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, count: 1, mig: [1g.10gb]}")),
            at + ".mig: must be a map of MIG profile to instances per GPU, e.g. {1g.10gb: 7}");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 80Gi, count: 1, mig: {1g.10gb: 1}, replicas: 2}")),
            at + ": a GPU is either cut into MIG instances (mig) or time-sliced (replicas), not both");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a10, ram: 24Gi, count: 1, replicas: 1}")),
            at + ".replicas: a time-sliced GPU has at least 2 replicas (leave it out for whole GPUs)");
  EXPECT_PRED2(StartsWith, ErrorOf(WithGpu("{model: a10, ram: 24Gi, count: 1, replicas: 65}")), at + ".replicas: ");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a10, ram: 24Gi, count: 2, replicas: 4}\n        - {model: a10, ram: 24Gi, "
                            "count: 1, replicas: 2}")),
            "inventory.nodes[0].gpus[1]: device type a10.24Gi.pcie shared is listed twice on this node");
}

// An inventory is an offer the matching engine must take: its per-offer bounds hold.
TEST(InventoryTest, MatchingEngineBoundsHold) {
  std::string table = "gpu_models:\n";
  std::string yaml = "inventory:\n  nodes:\n";
  for (size_t i = 0; i <= market::kMaxOfferDeviceTypes; ++i) {
    table += "  - {model: m" + std::to_string(i) + ", ram: 8Gi, interface: pcie}\n";
    yaml += "    - {name: n" + std::to_string(i) + ", cpu_millis: 1000, memory: 1Gi, gpus: [{model: m" + std::to_string(i) +
            ", ram: 8Gi, count: 1}]}\n";
  }
  Result<GpuModelTable> models = GpuModelTable::Parse(table);
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  Result<InventoryConfig> config = ParseSection(yaml);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  Result<Inventory> inventory = BuildInventory(*config, *models, nullptr);
  EXPECT_EQ(inventory.status().code(), Status::Code::kLimitExceeded);
  EXPECT_TRUE(inventory.status().message().starts_with("inventory: ")) << inventory.status().message();
  config->nodes.pop_back();
  EXPECT_TRUE(BuildInventory(*config, *models, nullptr).ok());
}

MachineFacts Machine(const std::string& query_file) {
  MachineFacts facts{.hostname = "gpu-box", .cpu_millis = 96000, .memory_bytes = 1 * kTi, .storage_bytes = 3 * kTi,
                     .gpus = {}};
  Result<NvidiaSmiReport> gpus =
      ParseNvidiaSmi(ReadFile(kTestData + query_file), ReadFile(kTestData + "h100-8x-sxm.smi.txt"), gpumart::testing::BuiltinGpuModels());
  EXPECT_TRUE(gpus.ok()) << gpus.status().ToString();
  if (gpus.ok()) facts.gpus = *gpus;
  return facts;
}

TEST(InventoryTest, DetectedMachineIsOneNode) {
  Result<InventoryConfig> config = ParseSection("inventory:\n  attributes: {tier: community}\n  nodes: detect\n");
  ASSERT_TRUE(config.ok());
  const MachineFacts machine = Machine("h100-lost.query.csv");
  Result<Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), &machine);
  ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
  ASSERT_EQ(inventory->nodes.size(), 1u);
  EXPECT_EQ(inventory->nodes[0].name, "gpu-box");
  EXPECT_EQ(inventory->nodes[0].cpu_millis, 96000u);
  EXPECT_EQ(inventory->nodes[0].memory_bytes, kTi);
  EXPECT_EQ(inventory->nodes[0].storage_bytes, 3 * kTi);
  const GpuDevices five{.vendor = "nvidia", .model = "h100", .ram_bytes = 80 * kGi, .interface = GpuInterface::kSxm,
                        .cuda = market::CudaVersion{12, 4}, .count = 5};
  EXPECT_EQ(inventory->nodes[0].gpus, std::vector<GpuDevices>{five});
  EXPECT_EQ(inventory->notes.size(), 3u);  // the lost GPU, the one needing a reset, the one answering an error
  // Each detected GPU by bus id, for the health check (docs/HEALTH.md).
  ASSERT_EQ(inventory->physical_gpus.at("gpu-box").size(), 5u);
  EXPECT_FALSE(inventory->physical_gpus.at("gpu-box")[0].bus_id.empty());
  EXPECT_EQ(inventory->attributes.at("tier"), "community");
}

TEST(InventoryTest, DetectedGpusOnAListedNode) {
  Result<InventoryConfig> config =
      ParseSection("inventory:\n  nodes:\n    - {name: big, cpu_millis: 64000, memory: 512Gi, storage: 2Ti, gpus: detect}\n"
                   "    - {name: small, cpu_millis: 8000, memory: 64Gi, gpus: [{model: l4, ram: 24Gi, count: 1}]}\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const MachineFacts machine = Machine("a100-mig.query.csv");
  Result<Inventory> inventory = BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), &machine);
  ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
  EXPECT_EQ(inventory->nodes[0].name, "big");
  EXPECT_EQ(inventory->nodes[0].storage_bytes, 2 * kTi);  // the config's, not the machine's
  ASSERT_EQ(inventory->nodes[0].gpus.size(), 1u);
  EXPECT_EQ(inventory->nodes[0].gpus[0].count, 2u);      // two of four have MIG on
  EXPECT_EQ(inventory->notes.size(), 2u);
  EXPECT_EQ(inventory->nodes[1].gpus[0].model, "l4");
  EXPECT_EQ(inventory->physical_gpus.at("big").size(), 2u);  // the detected GPUs offered
  ASSERT_EQ(inventory->physical_gpus.at("small").size(), 1u);  // the listed entry
  EXPECT_EQ(inventory->physical_gpus.at("small")[0].count, 1u);
  EXPECT_TRUE(inventory->physical_gpus.at("small")[0].bus_id.empty());
}

TEST(InventoryTest, DetectingNoUsableGpuIsAnError) {
  Result<InventoryConfig> config = ParseSection("inventory: detect\n");
  ASSERT_TRUE(config.ok());
  MachineFacts machine = Machine("unknown-product.query.csv");
  machine.gpus.gpus.clear();  // as if the L40S were not there either
  EXPECT_EQ(BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), &machine).status().message(),
            "inventory: detect found no usable GPU on this machine (GPU 0 (00000009:01:00.0) left out: unknown product 'NVIDIA "
            "GH200 480GB', PCI device 0x234210DE (add it to a GPU model table: inventory.gpu_models))");
  machine.gpus.notes.clear();
  EXPECT_EQ(BuildInventory(*config, gpumart::testing::BuiltinGpuModels(), &machine).status().message(),
            "inventory: detect found no usable GPU on this machine (nvidia-smi listed none)");
  Result<InventoryConfig> listed =
      ParseSection("inventory:\n  nodes:\n    - {name: b, cpu_millis: 1000, memory: 1Gi, gpus: detect}\n");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(BuildInventory(*listed, gpumart::testing::BuiltinGpuModels(), &machine).status().message(),
            "inventory.nodes[0].gpus: detect found no usable GPU (nvidia-smi listed none)");
}

// LoadInventory as the daemon calls it: the user's model table, this machine's facts, and a
// stand-in for nvidia-smi that prints a recorded output (no GPU machine here).
TEST(InventoryTest, LoadInventoryDetectsWithTheUsersModelTable) {
  testing::TempDir dir("gpumart-inventory");
  const std::string program = dir.Sub("nvidia-smi");
  std::ofstream(program) << "#!/bin/sh\n[ $# -eq 0 ] && exec cat '" << kTestData << "h100-8x-sxm.smi.txt'\n"
                         << "exec cat '" << kTestData << "unknown-product.query.csv'\n";
  ASSERT_EQ(chmod(program.c_str(), 0700), 0);
  const std::string models = dir.Sub("gpu_models.yaml");
  std::ofstream(models) << "gpu_models:\n  - {product: NVIDIA GH200 480GB, model: gh200, ram: 96Gi, interface: sxm}\n";
  Result<InventoryConfig> config = ParseSection("inventory:\n  gpu_models: " + models + "\n  nvidia_smi: " + program +
                                                "\n  nodes: detect\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  Result<Inventory> inventory = LoadInventory(*config);
  ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
  ASSERT_EQ(inventory->nodes.size(), 1u);
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  EXPECT_EQ(inventory->nodes[0].name, hostname);
  EXPECT_GE(inventory->nodes[0].cpu_millis, 1000u);
  EXPECT_GT(inventory->nodes[0].memory_bytes, 0u);
  EXPECT_GT(inventory->nodes[0].storage_bytes, 0u);
  EXPECT_EQ(inventory->GpuCount(), 2u);
  EXPECT_EQ(inventory->nodes[0].gpus[0].model, "gh200");
  EXPECT_EQ(inventory->nodes[0].gpus[1].model, "l40s");

  // Configured GPUs are checked against the user's table too.
  Result<InventoryConfig> listed = ParseSection("inventory:\n  gpu_models: " + models +
                                                "\n  nodes:\n    - {name: a, cpu_millis: 1000, memory: 1Gi, gpus: "
                                                "[{model: gh200, ram: 96Gi, interface: sxm, count: 1}]}\n");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(LoadInventory(*listed).ok());
  listed->gpu_models = dir.Sub("missing.yaml");
  EXPECT_EQ(LoadInventory(*listed).status().message(), "inventory.gpu_models: " + dir.Sub("missing.yaml") + ": cannot open");
  // A program that is not there is named.
  config->nvidia_smi = dir.Sub("no-such-nvidia-smi");
  EXPECT_EQ(LoadInventory(*config).status().message(),
            "inventory: detect: " + dir.Sub("no-such-nvidia-smi") + ": cannot run (No such file or directory)");
}

// Exceptions stop at the boundary: whichever allocation fails while a section is parsed and
// built, or a table is read, the result is a Status.
TEST(InventoryTest, AnAllocationFailureAnywhereIsAStatus) {
  if (!GPUMART_ALLOC_FAILURE_INJECTION) GTEST_SKIP() << "allocation failures cannot be injected under a sanitizer";
  const GpuModelTable& models = gpumart::testing::BuiltinGpuModels();
  const std::string yaml = WithGpu("{model: h100, ram: 80Gi, interface: sxm, count: 8}");
  Result<market::YamlTree> tree = market::YamlTree::Parse(yaml, {.max_nodes = 1 << 16, .max_depth = 16});
  ASSERT_TRUE(tree.ok());
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("inventory", [&]() -> Result<Inventory> {
              Result<InventoryConfig> config = ParseInventoryConfig(tree->Root().Find("inventory"));
              if (!config.ok()) return config.status();
              return BuildInventory(*config, models, nullptr);
            }),
            10);
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("GpuModelTable::Builtin", [] { return GpuModelTable::Builtin(); }),
            10);
  const std::string query = ReadFile(kTestData + "h100-lost.query.csv");
  const std::string status = ReadFile(kTestData + "h100-8x-sxm.smi.txt");
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("ParseNvidiaSmi",
                                                           [&] { return ParseNvidiaSmi(query, status, models); }),
            10);
}

}  // namespace
}  // namespace gpumart::bidding
