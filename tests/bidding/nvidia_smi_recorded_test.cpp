// The nvidia-smi parsers against outputs recorded by third parties on real NVIDIA machines
// (tests/bidding/testdata/nvidia-smi/recorded/ and tests/fixtures/nvidia-smi-health/recorded/;
// each file's source, GPU and driver are in the folder's README.md). The hand-written fixtures
// beside them cover what no public recording shows (ECC errors, pending retirements, a GPU that
// needs a reset).
//
// The `*.query-gpu.csv` recordings are `nvidia-smi --query-gpu=<every field> --format=csv`: a
// header line, then one line per GPU, values with their units. gpumart asks for fewer fields,
// without header or units (`--format=csv,noheader,nounits`); SelectQueryFields derives that
// output from the recording by the header's field names, dropping the unit the header names, as
// nvidia-smi does for `nounits`. The values themselves are the machine's.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bidding/gpu_health.h"
#include "bidding/nvidia_smi.h"
#include "tests/bidding/builtin_gpu_models.h"

namespace gpumart::bidding {
namespace {

using market::GpuInterface;
using market::kGi;

std::string ReadRecorded(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file) << "missing recording " << path;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string Inventory(const std::string& name) {
  return ReadRecorded(std::string(GPUMART_SOURCE_DIR) + "/tests/bidding/testdata/nvidia-smi/recorded/" + name);
}

std::string Health(const std::string& name) {
  return ReadRecorded(std::string(GPUMART_FIXTURE_DIR) + "/nvidia-smi-health/recorded/" + name);
}

std::vector<std::string> SplitOn(const std::string& text, const std::string& separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at = text.find(separator); at != std::string::npos; at = text.find(separator, start)) {
    parts.push_back(text.substr(start, at - start));
    start = at + separator.size();
  }
  parts.push_back(text.substr(start));
  return parts;
}

// `--format=csv` output (header "index, name, memory.total [MiB], ...") -> what
// `--query-gpu=<fields> --format=csv,noheader,nounits` prints for the same GPUs.
std::string SelectQueryFields(const std::string& csv, std::string_view fields) {
  std::vector<std::string> lines = SplitOn(csv, "\n");
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  EXPECT_GE(lines.size(), 2u) << "a header and a GPU";
  if (lines.size() < 2) return "";
  std::vector<std::string> names, units;
  for (const std::string& column : SplitOn(lines[0], ", ")) {
    const size_t bracket = column.find(" [");
    names.push_back(column.substr(0, bracket));
    units.push_back(bracket == std::string::npos ? "" : column.substr(bracket + 2, column.size() - bracket - 3));
  }
  std::string out;
  for (size_t n = 1; n < lines.size(); ++n) {
    const std::vector<std::string> values = SplitOn(lines[n], ", ");
    EXPECT_EQ(values.size(), names.size()) << "line " << n + 1 << " does not match the header";
    if (values.size() != names.size()) return "";
    std::string row;
    for (const std::string& field : SplitOn(std::string(fields), ",")) {
      const auto column = std::find(names.begin(), names.end(), field);
      EXPECT_NE(column, names.end()) << "the recording has no field " << field;
      if (column == names.end()) return "";
      const size_t i = static_cast<size_t>(column - names.begin());
      std::string value = values[i];
      const std::string unit = " " + units[i];
      if (!units[i].empty() && value.size() > unit.size() && value.ends_with(unit)) value.resize(value.size() - unit.size());
      row += (row.empty() ? "" : ", ") + value;
    }
    out += row + "\n";
  }
  return out;
}

// Detection as gpumartd runs it: the query, plain nvidia-smi, and `-L` when given.
NvidiaSmiReport Detect(const std::string& machine, const std::string& list = "") {
  Result<NvidiaSmiReport> report =
      ParseNvidiaSmi(SelectQueryFields(Inventory(machine + ".query-gpu.csv"), kNvidiaSmiQueryFields),
                     Inventory(machine + ".smi.txt"), gpumart::testing::BuiltinGpuModels(), list.empty() ? "" : Inventory(list));
  EXPECT_TRUE(report.ok()) << machine << ": " << report.status().ToString();
  return report.ok() ? *report : NvidiaSmiReport();
}

std::string AllNotes(const NvidiaSmiReport& report) {
  std::string text;
  for (const std::string& line : report.notes) text += line + "\n";
  return text;
}

const market::GpuDevices* FindProfile(const NvidiaSmiReport& report, const std::string& profile) {
  for (const market::GpuDevices& gpu : report.gpus) {
    if (gpu.mig_profile == profile) return &gpu;
  }
  return nullptr;
}

TEST(NvidiaSmiRecordedTest, TheQueryFieldsAreInTheRecordings) {
  EXPECT_EQ(SelectQueryFields(Inventory("h100-sxm-590.query-gpu.csv"), kNvidiaSmiQueryFields),
            "0, NVIDIA H100 80GB HBM3, 81559, 00000000:00:09.0, 0x233010DE, Disabled\n");
  EXPECT_EQ(SelectQueryFields(Inventory("h100-mig-590.query-gpu.csv"), kNvidiaSmiHealthFields),
            "0, GPU-00000000-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 00000000:00:09.0, 42, 0, 0, [N/A], "
            "[N/A], [N/A]\n");
}

TEST(NvidiaSmiRecordedTest, H100Sxm) {
  const NvidiaSmiReport report = Detect("h100-sxm-590");
  ASSERT_EQ(report.gpus.size(), 1u) << AllNotes(report);
  const market::GpuDevices expected{.vendor = "nvidia", .model = "h100", .ram_bytes = 80 * kGi,
                                    .interface = GpuInterface::kSxm, .cuda = market::CudaVersion{13, 1}, .count = 1};
  EXPECT_EQ(report.gpus[0], expected);
  EXPECT_TRUE(report.notes.empty()) << AllNotes(report);
}

TEST(NvidiaSmiRecordedTest, H200AndL40S) {
  const NvidiaSmiReport h200 = Detect("h200-590");  // 143771 MiB of a 141Gi GPU
  ASSERT_EQ(h200.gpus.size(), 1u) << AllNotes(h200);
  EXPECT_EQ(h200.gpus[0].model, "h200");
  EXPECT_EQ(h200.gpus[0].ram_bytes, 141 * kGi);
  EXPECT_EQ(h200.gpus[0].interface, GpuInterface::kSxm);
  EXPECT_EQ(h200.gpus[0].cuda, (market::CudaVersion{13, 1}));
  EXPECT_EQ(h200.gpus[0].count, 1u);
  EXPECT_TRUE(h200.notes.empty()) << AllNotes(h200);

  const NvidiaSmiReport l40s = Detect("l40s-595");  // 46068 MiB of a 48Gi GPU
  ASSERT_EQ(l40s.gpus.size(), 1u) << AllNotes(l40s);
  EXPECT_EQ(l40s.gpus[0].model, "l40s");
  EXPECT_EQ(l40s.gpus[0].ram_bytes, 48 * kGi);
  EXPECT_EQ(l40s.gpus[0].interface, GpuInterface::kPcie);
  EXPECT_EQ(l40s.gpus[0].cuda, (market::CudaVersion{13, 2}));
  EXPECT_TRUE(l40s.notes.empty()) << AllNotes(l40s);
}

// GeForce boards the built-in table does not list are left out with the product and PCI id.
TEST(NvidiaSmiRecordedTest, GeForceNotInTheTableIsNoted) {
  const NvidiaSmiReport report = Detect("rtx2080super-610");
  EXPECT_TRUE(report.gpus.empty());
  ASSERT_EQ(report.notes.size(), 1u) << AllNotes(report);
  EXPECT_EQ(report.notes[0],
            "GPU 0 (00000000:0C:00.0) left out: unknown product 'NVIDIA GeForce RTX 2080 SUPER', PCI device 0x1E8110DE "
            "(add it to a GPU model table: inventory.gpu_models)");
}

// Driver 610 renamed the header's "CUDA Version" to "CUDA UMD Version".
TEST(NvidiaSmiRecordedTest, CudaVersionOfEachDriver) {
  EXPECT_EQ(ParseDriverCudaVersion(Inventory("h100-sxm-590.smi.txt")), (market::CudaVersion{13, 1}));
  EXPECT_EQ(ParseDriverCudaVersion(Inventory("rtx4080super-595.smi.txt")), (market::CudaVersion{13, 2}));
  EXPECT_EQ(ParseDriverCudaVersion(Inventory("a100-40gb-450-mig.smi.txt")), (market::CudaVersion{11, 0}));
  EXPECT_EQ(ParseDriverCudaVersion(Inventory("rtx2080super-610.smi.txt")), (market::CudaVersion{13, 3}));
  // The lost GPU's line comes first (stderr); the table of the others still names the version.
  EXPECT_EQ(ParseDriverCudaVersion(Inventory("rtxpro6000-610-gpu1-lost.smi.txt")), (market::CudaVersion{13, 3}));
}

// An H100 in MIG mode as 3g.40gb + 2g.20gb + 2 x 1g.10gb: offered as those instances.
TEST(NvidiaSmiRecordedTest, H100MigInstances) {
  const NvidiaSmiReport report = Detect("h100-mig-590", "h100-mig-590.list.txt");
  EXPECT_TRUE(report.notes.empty()) << AllNotes(report);
  ASSERT_EQ(report.gpus.size(), 3u) << AllNotes(report);
  EXPECT_EQ(FindProfile(report, ""), nullptr);  // never offered whole as well
  struct Expected {
    const char* profile;
    uint64_t ram_gi;
    uint32_t count;
  };
  for (const Expected& e : {Expected{"3g.40gb", 40, 1}, Expected{"2g.20gb", 20, 1}, Expected{"1g.10gb", 10, 2}}) {
    const market::GpuDevices* gpu = FindProfile(report, e.profile);
    ASSERT_NE(gpu, nullptr) << e.profile;
    EXPECT_EQ(gpu->model, "h100");
    EXPECT_EQ(gpu->interface, GpuInterface::kSxm);
    EXPECT_EQ(gpu->ram_bytes, e.ram_gi * kGi) << e.profile;
    EXPECT_EQ(gpu->count, e.count) << e.profile;
    EXPECT_EQ(gpu->cuda, (market::CudaVersion{13, 1}));
  }
  // Without the list the GPU is left out, not offered whole.
  const NvidiaSmiReport unlisted = Detect("h100-mig-590");
  EXPECT_TRUE(unlisted.gpus.empty());
  ASSERT_EQ(unlisted.notes.size(), 1u);
  EXPECT_NE(unlisted.notes[0].find("GPU 0 (00000000:00:09.0) left out: MIG mode is on but it has no MIG instances"),
            std::string::npos);
}

// NVIDIA's GPU Operator documentation's `nvidia-smi -L` of an H100 (CRLF line ends, as published):
// 7 x 1g.10gb and the mixed layout. The query is the H100 recording above (same product, GPU 0).
TEST(NvidiaSmiRecordedTest, H100MigListsFromNvidiaDocs) {
  const NvidiaSmiReport seven = Detect("h100-mig-590", "h100-mig-7x1g.list.txt");
  EXPECT_TRUE(seven.notes.empty()) << AllNotes(seven);
  ASSERT_EQ(seven.gpus.size(), 1u);
  EXPECT_EQ(seven.gpus[0].mig_profile, "1g.10gb");
  EXPECT_EQ(seven.gpus[0].count, 7u);
  EXPECT_EQ(seven.gpus[0].ram_bytes, 10 * kGi);

  const NvidiaSmiReport mixed = Detect("h100-mig-590", "h100-mig-mixed.list.txt");
  EXPECT_TRUE(mixed.notes.empty()) << AllNotes(mixed);
  ASSERT_EQ(mixed.gpus.size(), 3u);
  ASSERT_NE(FindProfile(mixed, "1g.10gb"), nullptr);
  EXPECT_EQ(FindProfile(mixed, "1g.10gb")->count, 2u);
  ASSERT_NE(FindProfile(mixed, "3g.40gb"), nullptr);
  EXPECT_EQ(FindProfile(mixed, "3g.40gb")->count, 1u);
}

// An H200 whose 3g.71gb instance is split into compute instances (1c.3g.71gb, 2c.3g.71gb): such
// a GPU is not offered (docs/FRACTIONAL.md), and the note names the profile.
TEST(NvidiaSmiRecordedTest, H200WithComputeInstancesIsNoted) {
  const NvidiaSmiReport report = Detect("h200-mig-590", "h200-mig-590.list.txt");
  EXPECT_TRUE(report.gpus.empty());
  ASSERT_EQ(report.notes.size(), 1u) << AllNotes(report);
  EXPECT_NE(report.notes[0].find("GPU 0 (00000000:83:00.0) left out: its MIG instances are not offered: h200 141Gi "
                                 "has no MIG profile 1c.3g.71gb"),
            std::string::npos)
      << report.notes[0];
}

// Driver R450 (the first with MIG) named the A100 without "NVIDIA " ("A100-SXM4-40GB"; R470 and
// later print "NVIDIA A100-SXM4-40GB"), and its `-L` wrote "MIG 1g.5gb Device 0:" with one space
// and "MIG-GPU-<uuid>/<gi>/<ci>" UUIDs. The query line below is assembled from the recorded
// table's values (product, 40537 MiB, bus id, MIG Enabled); the PCI id is the A100 SXM4's.
TEST(NvidiaSmiRecordedTest, A100OnTheFirstMigDriver) {
  const std::string list = Inventory("a100-40gb-450-mig-7x1g.list.txt");
  const std::string product = list.substr(7, list.find(" (UUID") - 7);
  ASSERT_EQ(product, "A100-SXM4-40GB");
  const GpuModel* model = gpumart::testing::BuiltinGpuModels().FindProduct(product);
  ASSERT_NE(model, nullptr) << "an R450 driver's A100 is not recognized";
  EXPECT_EQ(model->device.model, "a100");
  EXPECT_EQ(model->device.ram_bytes, 40 * kGi);

  const std::string query = "0, " + product + ", 40537, 00000000:00:04.0, 0x20B010DE, Enabled\n";
  Result<NvidiaSmiReport> seven =
      ParseNvidiaSmi(query, Inventory("a100-40gb-450-mig.smi.txt"), gpumart::testing::BuiltinGpuModels(), list);
  ASSERT_TRUE(seven.ok()) << seven.status().ToString();
  EXPECT_TRUE(seven->notes.empty()) << AllNotes(*seven);
  ASSERT_EQ(seven->gpus.size(), 1u);
  EXPECT_EQ(seven->gpus[0].mig_profile, "1g.5gb");
  EXPECT_EQ(seven->gpus[0].count, 7u);
  EXPECT_EQ(seven->gpus[0].ram_bytes, 5 * kGi);
  EXPECT_EQ(seven->gpus[0].cuda, (market::CudaVersion{11, 0}));

  Result<NvidiaSmiReport> mixed = ParseNvidiaSmi(query, Inventory("a100-40gb-450-mig.smi.txt"), gpumart::testing::BuiltinGpuModels(),
                                                 Inventory("a100-40gb-450-mig-mixed.list.txt"));
  ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
  EXPECT_TRUE(mixed->notes.empty()) << AllNotes(*mixed);
  ASSERT_EQ(mixed->gpus.size(), 3u);
  for (const char* profile : {"3g.20gb", "2g.10gb", "1g.5gb"}) {
    ASSERT_NE(FindProfile(*mixed, profile), nullptr) << profile;
    EXPECT_EQ(FindProfile(*mixed, profile)->count, 1u) << profile;
  }
}

// The line nvidia-smi prints for a GPU the driver lost, in the forms real drivers print.
TEST(NvidiaSmiRecordedTest, LostGpuLines) {
  const std::string gtx = Health("gtx1650ti-lost.txt");  // "... for GPU 0000:01:00.0: Unknown Error"
  Result<GpuHealthReadings> old_form = ParseNvidiaSmiHealth(gtx);
  ASSERT_TRUE(old_form.ok()) << old_form.status().ToString();
  EXPECT_TRUE(old_form->gpus.empty());
  EXPECT_EQ(old_form->lost, std::vector<std::string>{"0000:01:00"});

  // Driver 610: "... for GPU1: 0000:34:00.0: Unknown Error" (the index, then the bus id).
  const std::string pro = Health("rtxpro6000-610-gpu1-lost.txt");
  Result<GpuHealthReadings> new_form = ParseNvidiaSmiHealth(pro);
  ASSERT_TRUE(new_form.ok()) << new_form.status().ToString();
  EXPECT_EQ(new_form->lost, std::vector<std::string>{"0000:34:00"});

  // Detection leaves such a GPU out with the line quoted.
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(pro, "", gpumart::testing::BuiltinGpuModels());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->gpus.empty());
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_EQ(report->notes[0],
            "'GPU1: 0000:34:00.0: Unknown Error' left out: nvidia-smi cannot reach this GPU (it needs a reset or a "
            "reboot)");

  // The monitor takes the GPU it knew at that bus out of service.
  GpuHealthMonitor monitor(GpuHealthConfig{.enabled = true});
  GpuHealthReadings before;
  before.gpus.push_back(GpuReading{.index = 1, .uuid = "GPU-1", .bus_id = "0000:34:00"});
  monitor.Observe(before, nullptr, 0);
  const std::vector<GpuHealthMonitor::Change> changes = monitor.Observe(*new_form, nullptr, 1000);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].id, "GPU-1");
  EXPECT_FALSE(changes[0].in_service);
}

struct HealthCase {
  const char* machine;
  const char* name;
  const char* bus_id;
  int64_t temperature_c;
  bool has_ecc;                               // [N/A] on GeForce
  std::optional<bool> remapped_rows_pending;  // [N/A] on GeForce, and on an H100 in MIG mode
};

// The health query's fields on each recorded machine: all healthy, and [N/A] only where the GPU
// has no such reading.
TEST(NvidiaSmiRecordedTest, HealthFieldsOfEachMachine) {
  const HealthCase cases[] = {
      {"h100-sxm-590", "NVIDIA H100 80GB HBM3", "0000:00:09", 41, true, false},
      {"h100-mig-590", "NVIDIA H100 80GB HBM3", "0000:00:09", 42, true, std::nullopt},
      {"h200-590", "NVIDIA H200", "0000:83:00", 28, true, false},
      {"h200-mig-590", "NVIDIA H200", "0000:83:00", 28, true, std::nullopt},
      {"l40s-595", "NVIDIA L40S", "0000:01:00", 63, true, false},
      {"rtx4080super-595", "NVIDIA GeForce RTX 4080 SUPER", "0000:01:00", 43, false, std::nullopt},
      {"rtx2080super-610", "NVIDIA GeForce RTX 2080 SUPER", "0000:0c:00", 33, false, std::nullopt},
  };
  for (const HealthCase& c : cases) {
    SCOPED_TRACE(c.machine);
    const std::string csv = SelectQueryFields(Inventory(std::string(c.machine) + ".query-gpu.csv"), kNvidiaSmiHealthFields);
    Result<GpuHealthReadings> readings = ParseNvidiaSmiHealth(csv);
    ASSERT_TRUE(readings.ok()) << readings.status().ToString();
    ASSERT_EQ(readings->gpus.size(), 1u);
    EXPECT_TRUE(readings->lost.empty());
    const GpuReading& gpu = readings->gpus[0];
    EXPECT_EQ(gpu.index, 0u);
    EXPECT_EQ(gpu.uuid, "GPU-00000000-0000-0000-0000-000000000000");  // masked by the recorder
    EXPECT_EQ(gpu.name, c.name);
    EXPECT_EQ(gpu.bus_id, c.bus_id);
    EXPECT_EQ(gpu.temperature_c, c.temperature_c);
    EXPECT_EQ(gpu.ecc_volatile_uncorrected, c.has_ecc ? std::optional<uint64_t>(0) : std::nullopt);
    EXPECT_EQ(gpu.ecc_aggregate_uncorrected, c.has_ecc ? std::optional<uint64_t>(0) : std::nullopt);
    EXPECT_EQ(gpu.retired_pages_pending, std::nullopt);  // no page retirement on Ada/Hopper/Turing GeForce
    EXPECT_EQ(gpu.remapped_rows_pending, c.remapped_rows_pending);
    EXPECT_EQ(gpu.remapped_rows_failed, c.remapped_rows_pending);  // both read No, or both [N/A]
    EXPECT_TRUE(gpu.error.empty()) << gpu.error;

    GpuHealthMonitor monitor(GpuHealthConfig{.enabled = true});
    EXPECT_TRUE(monitor.Observe(*readings, nullptr, 0).empty());
    ASSERT_EQ(monitor.gpus().size(), 1u);
    EXPECT_TRUE(monitor.gpus().begin()->second.InService()) << monitor.gpus().begin()->second.reason;
  }
}

// Kernel log lines of an Xid 79 as real machines logged them (syslog's prefix; pid='<unknown>').
TEST(NvidiaSmiRecordedTest, XidLinesOfRealKernelLogs) {
  Result<XidCounts> laptop = ParseXidLog(Health("gtx1650ti-xid79.log"));
  ASSERT_TRUE(laptop.ok()) << laptop.status().ToString();
  EXPECT_EQ(*laptop, (XidCounts{{"0000:01:00", {{79, 1}}}}));  // "NVRM: GPU ...: GPU has fallen off the bus." is not an Xid line

  Result<XidCounts> operator_docs = ParseXidLog(Health("gpu-operator-xid79.log"));
  ASSERT_TRUE(operator_docs.ok()) << operator_docs.status().ToString();
  EXPECT_EQ(*operator_docs, (XidCounts{{"0000:ca:00", {{79, 1}}}}));

  // With the laptop's GPU seen healthy first, the Xid takes it out of service.
  GpuHealthMonitor monitor(GpuHealthConfig{.enabled = true});
  GpuHealthReadings readings;
  readings.gpus.push_back(GpuReading{.index = 0, .uuid = "GPU-laptop", .bus_id = "0000:01:00"});
  const XidCounts none;
  monitor.Observe(readings, &none, 0);
  const std::vector<GpuHealthMonitor::Change> changes = monitor.Observe(readings, &*laptop, 1000);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].in_service);
  EXPECT_EQ(monitor.gpus().at("GPU-laptop").reason, "Xid 79");
  EXPECT_EQ(monitor.gpus().at("GPU-laptop").last_xid, 79u);
}

}  // namespace
}  // namespace gpumart::bidding
