#include "bidding/nvidia_smi.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/bidding/builtin_gpu_models.h"
#include "tests/temp_dir.h"
#include "tests/test_seed.h"

namespace gpumart::bidding {
namespace {

using market::GpuInterface;
using market::kGi;

const std::string kTestData = std::string(GPUMART_SOURCE_DIR) + "/tests/bidding/testdata/nvidia-smi/";

std::string Recorded(const std::string& name) {
  std::ifstream file(kTestData + name, std::ios::binary);
  EXPECT_TRUE(file) << "missing test data " << name;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

NvidiaSmiReport ParseRecorded(const std::string& query, const std::string& status = "") {
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(Recorded(query), status.empty() ? "" : Recorded(status), gpumart::testing::BuiltinGpuModels());
  EXPECT_TRUE(report.ok()) << query << ": " << report.status().ToString();
  return report.ok() ? *report : NvidiaSmiReport();
}

std::string Notes(const NvidiaSmiReport& report) {
  std::string text;
  for (const std::string& line : report.notes) text += line + "\n";
  return text;
}

// The products the issue names, and what the market calls them.
TEST(GpuModelTableTest, BuiltinTableMapsTheCommonProducts) {
  struct Case {
    const char* product;
    const char* model;
    uint64_t ram_gi;
    GpuInterface interface;
  };
  const Case cases[] = {
      {"NVIDIA H100 80GB HBM3", "h100", 80, GpuInterface::kSxm},
      {"NVIDIA A100-SXM4-40GB", "a100", 40, GpuInterface::kSxm},
      {"NVIDIA A100-PCIE-40GB", "a100", 40, GpuInterface::kPcie},
      {"NVIDIA GeForce RTX 4090", "rtx4090", 24, GpuInterface::kPcie},
      {"NVIDIA H200", "h200", 141, GpuInterface::kSxm},
      {"NVIDIA L40S", "l40s", 48, GpuInterface::kPcie},
      {"nvidia  h100 80gb   hbm3 ", "h100", 80, GpuInterface::kSxm},  // case and spaces do not matter
      {"A100-SXM4-80GB", "a100", 80, GpuInterface::kSxm},              // nor "NVIDIA " (drivers before R470)
  };
  for (const Case& c : cases) {
    const GpuModel* model = gpumart::testing::BuiltinGpuModels().FindProduct(c.product);
    ASSERT_NE(model, nullptr) << c.product;
    EXPECT_EQ(model->device.vendor, "nvidia");
    EXPECT_EQ(model->device.model, c.model) << c.product;
    EXPECT_EQ(model->device.ram_bytes, c.ram_gi * kGi) << c.product;
    EXPECT_EQ(model->device.interface, c.interface) << c.product;
  }
  EXPECT_EQ(gpumart::testing::BuiltinGpuModels().FindProduct("NVIDIA H100"), nullptr);  // a prefix is not the product
  EXPECT_EQ(gpumart::testing::BuiltinGpuModels().FindProduct(""), nullptr);
  EXPECT_EQ(gpumart::testing::BuiltinGpuModels().Variants("nvidia", "H100"), "80Gi pcie, 80Gi sxm, 94Gi pcie");
}

TEST(GpuModelTableTest, UserEntriesAddAndWin) {
  Result<GpuModelTable> extra = GpuModelTable::Parse(
      "gpu_models:\n"
      "  - {product: \"NVIDIA GH200 480GB\", model: gh200, ram: 96Gi, interface: sxm}\n"
      "  - {product: \"NVIDIA L40S\", model: l40s-custom, ram: 48Gi, interface: pcie}\n"
      "  - {vendor: AMD, model: MI300X, ram: 192Gi, interface: sxm}\n");
  ASSERT_TRUE(extra.ok()) << extra.status().ToString();
  GpuModelTable table = gpumart::testing::BuiltinGpuModels();
  const size_t builtin = table.models().size();
  table.Extend(*extra);
  EXPECT_EQ(table.models().size(), builtin + 2);
  EXPECT_EQ(table.FindProduct("NVIDIA GH200 480GB")->device.model, "gh200");
  EXPECT_EQ(table.FindProduct("NVIDIA L40S")->device.model, "l40s-custom");
  EXPECT_TRUE(table.Knows({.vendor = "amd", .model = "mi300x", .ram_bytes = 192 * kGi, .interface = GpuInterface::kSxm}));
}

TEST(GpuModelTableTest, BadTablesNameTheEntry) {
  auto error = [](std::string_view text) { return GpuModelTable::Parse(text).status().message(); };
  EXPECT_EQ(error("gpu_models:\n  - {model: h100, ram: 80Gi, interface: sxm, colour: red}\n").substr(0, 32),
            "gpu_models[0].colour: unknown ke");
  EXPECT_EQ(error("gpu_models:\n  - {model: h100, interface: sxm}\n"), "gpu_models[0].ram: missing");
  EXPECT_EQ(error("gpu_models:\n  - {model: h100, ram: 0, interface: sxm}\n"), "gpu_models[0].ram: a GPU has memory");
  EXPECT_EQ(error("gpu_models:\n  - {model: h100, ram: 80Gi, interface: nvlink}\n"),
            "gpu_models[0].interface: 'nvlink' is not pcie or sxm");
  EXPECT_EQ(error("gpu_models:\n  - {product: X, model: a, ram: 1Gi, interface: sxm}\n  - {product: x, model: b, ram: 1Gi, "
                  "interface: sxm}\n"),
            "gpu_models[1].product: 'x' is listed twice");
  // Drivers before R470 print products without "NVIDIA ": both spellings are one product.
  EXPECT_EQ(error("gpu_models:\n  - {product: NVIDIA A1, model: a, ram: 1Gi, interface: sxm}\n  - {product: A1, model: b, "
                  "ram: 1Gi, interface: sxm}\n"),
            "gpu_models[1].product: 'A1' is listed twice");
  EXPECT_EQ(error("gpu_models: 3\n"), "gpu_models: must be a list");
  EXPECT_NE(error("models: []\n").find("unknown key"), std::string::npos);
  EXPECT_EQ(GpuModelTable::Parse(std::string(kMaxGpuModelsFileBytes + 1, ' ')).status().code(),
            Status::Code::kLimitExceeded);
  EXPECT_EQ(GpuModelTable::Load("/nonexistent/gpu_models.yaml").status().message(),
            "/nonexistent/gpu_models.yaml: cannot open");
}

TEST(NvidiaSmiTest, EightH100Sxm) {
  const NvidiaSmiReport report = ParseRecorded("h100-8x-sxm.query.csv", "h100-8x-sxm.smi.txt");
  ASSERT_EQ(report.gpus.size(), 1u);
  const market::GpuDevices expected{.vendor = "nvidia", .model = "h100", .ram_bytes = 80 * kGi,
                                    .interface = GpuInterface::kSxm, .cuda = market::CudaVersion{12, 4}, .count = 8};
  EXPECT_EQ(report.gpus[0], expected);
  EXPECT_TRUE(report.notes.empty()) << Notes(report);
}

TEST(NvidiaSmiTest, FourA100PcieWithCudaFromQueryMode) {
  const NvidiaSmiReport report = ParseRecorded("a100-4x-pcie.query.csv", "a100-4x-pcie.smi-q.txt");
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].model, "a100");
  EXPECT_EQ(report.gpus[0].ram_bytes, 40 * kGi);
  EXPECT_EQ(report.gpus[0].interface, GpuInterface::kPcie);
  EXPECT_EQ(report.gpus[0].cuda, (market::CudaVersion{12, 2}));
  EXPECT_EQ(report.gpus[0].count, 4u);
  EXPECT_TRUE(report.notes.empty()) << Notes(report);
}

TEST(NvidiaSmiTest, Rtx4090WithoutMigSupport) {
  const NvidiaSmiReport report = ParseRecorded("rtx4090.query.csv", "rtx4090.smi.txt");
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].model, "rtx4090");
  EXPECT_EQ(report.gpus[0].ram_bytes, 24 * kGi);
  EXPECT_EQ(report.gpus[0].cuda, (market::CudaVersion{12, 3}));
  EXPECT_EQ(report.gpus[0].count, 1u);
}

// MIG slices are not whole GPUs: a GPU with MIG on is left out, with the reason and the fix.
// Without `nvidia-smi -L`'s list a GPU in MIG mode has no known instances: it is left out, never
// offered whole.
TEST(NvidiaSmiTest, MigModeOnWithoutInstancesLeavesThoseGpusOut) {
  const NvidiaSmiReport report = ParseRecorded("a100-mig.query.csv", "h100-8x-sxm.smi.txt");
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].model, "a100");
  EXPECT_EQ(report.gpus[0].ram_bytes, 80 * kGi);
  EXPECT_EQ(report.gpus[0].interface, GpuInterface::kSxm);
  EXPECT_EQ(report.gpus[0].count, 2u);
  EXPECT_EQ(report.gpus[0].mig_profile, "");
  ASSERT_EQ(report.notes.size(), 2u) << Notes(report);
  EXPECT_EQ(report.notes[0],
            "GPU 0 (00000000:07:00.0) left out: MIG mode is on but it has no MIG instances (create them with `nvidia-smi "
            "mig -cgi <profiles> -C -i 0`, or `nvidia-smi -i 0 -mig 0` to offer it whole)");
  EXPECT_NE(report.notes[1].find("GPU 1 (00000000:0F:00.0) left out: MIG mode is on"), std::string::npos);
}

// With the list, a GPU in MIG mode is offered as its instances, one device type per profile.
TEST(NvidiaSmiTest, MigInstancesFromTheDeviceList) {
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(Recorded("a100-mig.query.csv"), Recorded("h100-8x-sxm.smi.txt"),
                                                  gpumart::testing::BuiltinGpuModels(), Recorded("a100-mig.list.txt"));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->notes.empty()) << Notes(*report);
  auto find = [&](const std::string& profile) -> const market::GpuDevices* {
    for (const auto& gpu : report->gpus) {
      if (gpu.mig_profile == profile) return &gpu;
    }
    return nullptr;
  };
  ASSERT_EQ(report->gpus.size(), 4u);
  ASSERT_NE(find(""), nullptr);
  EXPECT_EQ(find("")->count, 2u);
  EXPECT_EQ(find("")->ram_bytes, 80 * kGi);
  ASSERT_NE(find("1g.10gb"), nullptr);
  EXPECT_EQ(find("1g.10gb")->count, 7u);
  EXPECT_EQ(find("1g.10gb")->ram_bytes, 10 * kGi);
  EXPECT_EQ(find("1g.10gb")->model, "a100");
  EXPECT_EQ(find("1g.10gb")->interface, GpuInterface::kSxm);
  EXPECT_EQ(find("1g.10gb")->cuda, (market::CudaVersion{12, 4}));
  ASSERT_NE(find("3g.40gb"), nullptr);
  EXPECT_EQ(find("3g.40gb")->count, 1u);
  ASSERT_NE(find("2g.20gb"), nullptr);
  EXPECT_EQ(find("2g.20gb")->count, 2u);

  Result<NvidiaSmiReport> h100 =
      ParseNvidiaSmi(Recorded("h100-mig.query.csv"), "", gpumart::testing::BuiltinGpuModels(), Recorded("h100-mig.list.txt"));
  ASSERT_TRUE(h100.ok()) << h100.status().ToString();
  ASSERT_EQ(h100->gpus.size(), 3u);
  EXPECT_EQ(h100->gpus[0].mig_profile, "1g.10gb");
  EXPECT_EQ(h100->gpus[0].count, 3u);
}

// Compute-instance splits are not GPU instances, and a layout the model cannot hold is refused:
// the GPU is left out with the reason.
TEST(NvidiaSmiTest, MigLayoutsThatAreNotOfferedAreNoted) {
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(Recorded("a100-mig.query.csv"), "", gpumart::testing::BuiltinGpuModels(),
                                                  Recorded("a100-mig-ci.list.txt"));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->gpus.size(), 1u);
  EXPECT_EQ(report->gpus[0].count, 2u);
  ASSERT_GE(report->notes.size(), 2u) << Notes(*report);
  EXPECT_NE(report->notes[0].find("GPU 0 (00000000:07:00.0) left out: its MIG instances are not offered: a100 80Gi has "
                                  "no MIG profile 1c.3g.40gb"),
            std::string::npos)
      << report->notes[0];
  EXPECT_NE(report->notes[1].find("GPU 1 (00000000:0F:00.0) left out: MIG mode is on but it has no MIG instances"),
            std::string::npos);
  // Eight 1g.10gb on one A100 cannot be: not offered.
  std::string eight = "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-x)\n";
  for (int i = 0; i < 8; ++i) eight += "  MIG 1g.10gb Device " + std::to_string(i) + ": (UUID: MIG-x)\n";
  report = ParseNvidiaSmi("0, NVIDIA A100-SXM4-80GB, 81920, 00000000:07:00.0, 0x20B210DE, Enabled\n", "", gpumart::testing::BuiltinGpuModels(), eight);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->gpus.empty());
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_NE(report->notes[0].find("8 x 1g.10gb: one a100 80Gi holds at most 7"), std::string::npos) << report->notes[0];
}

TEST(NvidiaSmiTest, MalformedDeviceListIsAnError) {
  const std::string query = "0, NVIDIA A100-SXM4-80GB, 81920, 00000000:07:00.0, 0x20B210DE, Enabled\n";
  for (const std::string list : {"  MIG 1g.10gb Device 0: (UUID: MIG-x)\n",            // no GPU line before it
                                 "GPU x: A100\n", "GPU 0: a\nGPU 0: a\n",              // bad or repeated index
                                 "GPU 0: a\n  MIG 1g.10gb\n", "GPU 0: a\n  garbage here now\n"}) {
    EXPECT_EQ(ParseNvidiaSmi(query, "", gpumart::testing::BuiltinGpuModels(), list).status().code(), Status::Code::kInvalidArgument) << list;
  }
  std::string many = "GPU 0: a\n";
  for (size_t i = 0; i <= kMaxNvidiaSmiMigDevices; ++i) many += "  MIG 1g.10gb Device 0: x\n";
  EXPECT_EQ(ParseNvidiaSmi(query, "", gpumart::testing::BuiltinGpuModels(), many).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(ParseNvidiaSmi(query, "", gpumart::testing::BuiltinGpuModels(), std::string(kMaxNvidiaSmiOutputBytes + 1, ' ')).status().code(),
            Status::Code::kLimitExceeded);
}

// A GPU that fell off the bus, one that needs a reset and one that answers [Unknown Error] are
// left out; the other five are offered. Plain nvidia-smi printed only the error, so no CUDA.
TEST(NvidiaSmiTest, GpusOffTheBusAreLeftOut) {
  const NvidiaSmiReport report = ParseRecorded("h100-lost.query.csv", "h100-lost.smi.txt");
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].count, 5u);
  EXPECT_EQ(report.gpus[0].cuda, std::nullopt);
  ASSERT_EQ(report.notes.size(), 4u) << Notes(report);
  EXPECT_EQ(report.notes[0], "'GPU0000:5D:00.0: Unknown Error' left out: nvidia-smi cannot reach this GPU (it needs a reset or a reboot)");
  EXPECT_EQ(report.notes[1], "GPU 4 (00000000:9A:00.0) left out: its memory is '[GPU requires reset]' (the GPU needs attention)");
  EXPECT_EQ(report.notes[2], "GPU 6 (00000000:BA:00.0) left out: its name is '[Unknown Error]' (the GPU needs attention)");
  EXPECT_NE(report.notes[3].find("CUDA version is unknown"), std::string::npos);
}

TEST(NvidiaSmiTest, UnknownProductIsLeftOutWithHowToAddIt) {
  const NvidiaSmiReport report = ParseRecorded("unknown-product.query.csv", "h100-8x-sxm.smi.txt");
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].model, "l40s");
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_EQ(report.notes[0],
            "GPU 0 (00000009:01:00.0) left out: unknown product 'NVIDIA GH200 480GB', PCI device 0x234210DE (add it to a GPU "
            "model table: inventory.gpu_models)");
  // With the product in a user's table it is offered.
  GpuModelTable table = gpumart::testing::BuiltinGpuModels();
  Result<GpuModelTable> extra =
      GpuModelTable::Parse("gpu_models: [{product: NVIDIA GH200 480GB, model: gh200, ram: 96Gi, interface: sxm}]\n");
  ASSERT_TRUE(extra.ok()) << extra.status().ToString();
  table.Extend(*extra);
  Result<NvidiaSmiReport> extended = ParseNvidiaSmi(Recorded("unknown-product.query.csv"), "", table);
  ASSERT_TRUE(extended.ok());
  EXPECT_EQ(extended->UsableGpus(), 2u);
  EXPECT_EQ(extended->gpus[0].model, "gh200");
}

TEST(NvidiaSmiTest, TruncatedOrForeignOutputIsAnError) {
  EXPECT_EQ(ParseNvidiaSmi(Recorded("truncated.query.csv"), "", gpumart::testing::BuiltinGpuModels()).status().message(),
            "nvidia-smi output line 3: '2, NVIDIA H100 80GB HB' is not 6 comma-separated fields "
            "(index,name,memory.total,pci.bus_id,pci.device_id,mig.mode.current)");
  EXPECT_NE(ParseNvidiaSmi(Recorded("no-driver.query.csv"), "", gpumart::testing::BuiltinGpuModels())
                .status()
                .message()
                .find("line 1: 'NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Ma...' is "
                      "not 6"),
            std::string::npos);
}

TEST(NvidiaSmiTest, BadFieldsNameTheLine) {
  auto error = [](std::string_view csv) { return ParseNvidiaSmi(csv, "", gpumart::testing::BuiltinGpuModels()).status().message(); };
  EXPECT_EQ(error("x, NVIDIA L40S, 46068, 0:1, 0x26B910DE, [N/A]\n"),
            "nvidia-smi output line 1: index 'x' is not a GPU index (0..4095)");
  EXPECT_EQ(error("0, NVIDIA L40S, 46068, a, b, [N/A]\n0, NVIDIA L40S, 46068, c, d, [N/A]\n"),
            "nvidia-smi output line 2: GPU index 0 is listed twice");
  EXPECT_EQ(error("0, NVIDIA L40S, 45 GiB, a, b, [N/A]\n"),
            "nvidia-smi output line 1: memory.total '45 GiB' is not a number of MiB");
  EXPECT_EQ(error("0, NVIDIA L40S, 99999999999999999999999, a, b, [N/A]\n"),
            "nvidia-smi output line 1: memory.total '99999999999999999999999' is not a number of MiB");
  EXPECT_EQ(error("0, NVIDIA L40S, 46068, a, b, Maybe\n"),
            "nvidia-smi output line 1: mig.mode.current 'Maybe' is not Enabled, Disabled or [...]");
  // Control bytes in a message are shown as '?'.
  EXPECT_EQ(error(std::string("\x01\x1b[31m", 6)), "nvidia-smi output line 1: '??[31m' is not 6 comma-separated fields "
                                                    "(index,name,memory.total,pci.bus_id,pci.device_id,mig.mode.current)");
  // Memory that is not the product's: a mislabelled table entry or a mismatched name.
  Result<NvidiaSmiReport> small = ParseNvidiaSmi("0, NVIDIA H100 80GB HBM3, 40960, a, b, Disabled\n", "", gpumart::testing::BuiltinGpuModels());
  ASSERT_TRUE(small.ok());
  EXPECT_TRUE(small->gpus.empty());
  EXPECT_EQ(small->notes[0], "GPU 0 (a) left out: 'NVIDIA H100 80GB HBM3' reports 40960 MiB, which is not the GPU model "
                               "table's 80Gi");
  Result<NvidiaSmiReport> huge = ParseNvidiaSmi("0, NVIDIA H100 80GB HBM3, 18446744073709551615, a, b, Disabled\n", "", gpumart::testing::BuiltinGpuModels());
  ASSERT_TRUE(huge.ok());
  EXPECT_TRUE(huge->gpus.empty());
  // Empty output, or "No devices were found", is no GPUs (the inventory decides what that means).
  EXPECT_TRUE(ParseNvidiaSmi("", "", gpumart::testing::BuiltinGpuModels()).ok());
  EXPECT_EQ(ParseNvidiaSmi("No devices were found\n", "", gpumart::testing::BuiltinGpuModels())->UsableGpus(), 0u);
}

TEST(NvidiaSmiTest, SizesAreBounded) {
  EXPECT_EQ(ParseNvidiaSmi(std::string(kMaxNvidiaSmiOutputBytes + 1, 'a'), "", gpumart::testing::BuiltinGpuModels()).status().code(),
            Status::Code::kLimitExceeded);
  EXPECT_EQ(ParseNvidiaSmi(std::string(kMaxNvidiaSmiLines + 1, '\n'), "", gpumart::testing::BuiltinGpuModels()).status().code(),
            Status::Code::kLimitExceeded);
  std::string many;
  for (size_t i = 0; i <= kMaxNvidiaSmiGpus; ++i) {
    many += std::to_string(i) + ", NVIDIA L40S, 46068, a, b, [N/A]\n";
  }
  EXPECT_EQ(ParseNvidiaSmi(many, "", gpumart::testing::BuiltinGpuModels()).status().message(), "nvidia-smi output: more than 256 GPUs");
}

TEST(NvidiaSmiTest, DriverCudaVersion) {
  EXPECT_EQ(ParseDriverCudaVersion(Recorded("h100-8x-sxm.smi.txt")), (market::CudaVersion{12, 4}));
  EXPECT_EQ(ParseDriverCudaVersion(Recorded("a100-4x-pcie.smi-q.txt")), (market::CudaVersion{12, 2}));
  EXPECT_EQ(ParseDriverCudaVersion("| NVIDIA-SMI 560.35.03  Driver Version: 560.35.03  CUDA Version: 12.6  |"),
            (market::CudaVersion{12, 6}));
  EXPECT_EQ(ParseDriverCudaVersion(Recorded("h100-lost.smi.txt")), std::nullopt);
  EXPECT_EQ(ParseDriverCudaVersion("CUDA Version: N/A"), std::nullopt);
  EXPECT_EQ(ParseDriverCudaVersion("CUDA Version 11.4.0"), std::nullopt);  // a container banner, not the driver's
  EXPECT_EQ(ParseDriverCudaVersion("CUDA Version:"), std::nullopt);
}

// Whatever bytes nvidia-smi prints give a report or an error, never a crash (the fuzz target
// fuzz_nvidia_smi does this at length).
TEST(NvidiaSmiTest, RandomMutationsOfRecordedOutputs) {
  std::mt19937 random(testing::TestSeed());
  const std::vector<std::string> seeds = {Recorded("h100-8x-sxm.query.csv"), Recorded("h100-lost.query.csv"),
                                          Recorded("a100-mig.query.csv")};
  const std::string list = Recorded("a100-mig.list.txt");
  for (int round = 0; round < 2000; ++round) {
    std::string text = seeds[random() % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 8);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = random() % text.size();
      switch (random() % 3) {
        case 0: text[at] = static_cast<char>(random()); break;
        case 1: text.erase(at, 1 + random() % 20); break;
        default: text.insert(at, std::string(1 + random() % 4, ",[]\n 0"[random() % 7])); break;
      }
    }
    Result<NvidiaSmiReport> report = ParseNvidiaSmi(text, text, gpumart::testing::BuiltinGpuModels());
    if (report.ok()) {
      EXPECT_LE(report->UsableGpus(), kMaxNvidiaSmiGpus);
    }
    // The MIG device list, mutated the same way, beside the MIG machine's query.
    std::string mutated = list;
    for (int e = 0; e < edits && !mutated.empty(); ++e) {
      const size_t at = random() % mutated.size();
      switch (random() % 3) {
        case 0: mutated[at] = static_cast<char>(random()); break;
        case 1: mutated.erase(at, 1 + random() % 20); break;
        default: mutated.insert(at, std::string(1 + random() % 4, "MIG\n .g"[random() % 8])); break;
      }
    }
    report = ParseNvidiaSmi(seeds[2], "", gpumart::testing::BuiltinGpuModels(), mutated);
    if (report.ok()) {
      for (const auto& gpu : report->gpus) {
        EXPECT_TRUE(gpu.mig_profile.empty() || gpu.ram_bytes == market::MigProfileRamBytes(gpu.mig_profile));
      }
    }
  }
}

// The whole detection path on a stand-in for nvidia-smi that prints a recorded output (no GPU
// machine here): the arguments gpumart passes, the exit status of a machine with a lost GPU.
TEST(DetectNvidiaGpusTest, RunsTheQueryAndTheStatus) {
  testing::TempDir dir("gpumart-nvidia-smi");
  const std::string program = dir.Sub("nvidia-smi");
  std::ofstream(program) << "#!/bin/sh\n"
                            "if [ \"$1\" = \"--query-gpu=" << kNvidiaSmiQueryFields << "\" ] && "
                            "[ \"$2\" = --format=csv,noheader,nounits ]; then cat '" << kTestData
                         << "h100-lost.query.csv'; exit 15; fi\n"
                            "[ $# -eq 0 ] && cat '" << kTestData << "h100-8x-sxm.smi.txt'\n";
  ASSERT_EQ(chmod(program.c_str(), 0700), 0);
  Result<NvidiaSmiReport> report = DetectNvidiaGpus(program, gpumart::testing::BuiltinGpuModels());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->UsableGpus(), 5u);
  EXPECT_EQ(report->gpus[0].cuda, (market::CudaVersion{12, 4}));
  EXPECT_EQ(report->notes.size(), 3u) << Notes(*report);


  // A GPU in MIG mode: `nvidia-smi -L` is run too, and its instances offered.
  std::ofstream(program, std::ios::trunc) << "#!/bin/sh\n"
                                             "case \"$1\" in --query-gpu=*) cat '" << kTestData << "a100-mig.query.csv';;\n"
                                             "-L) cat '" << kTestData << "a100-mig.list.txt';; esac\n";
  report = DetectNvidiaGpus(program, gpumart::testing::BuiltinGpuModels());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->UsableGpus(), 2u + 7u + 1u + 2u);

  std::ofstream(program, std::ios::trunc) << "#!/bin/sh\nexit 9\n";
  EXPECT_EQ(DetectNvidiaGpus(program, gpumart::testing::BuiltinGpuModels()).status().message(), program + " exited with status 9 and printed nothing");
  std::ofstream(program, std::ios::trunc) << "#!/bin/sh\nsleep 30\n";
  EXPECT_EQ(DetectNvidiaGpus(program, gpumart::testing::BuiltinGpuModels(), 200).status().code(), Status::Code::kTimeout);
  std::ofstream(program, std::ios::trunc) << "#!/bin/sh\ncat '" << kTestData << "no-driver.query.csv'; exit 9\n";
  EXPECT_NE(DetectNvidiaGpus(program, gpumart::testing::BuiltinGpuModels()).status().message().find(program + ": nvidia-smi output line 1"),
            std::string::npos);
}

}  // namespace
}  // namespace gpumart::bidding
