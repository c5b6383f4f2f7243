// `inventory: detect`: what GPUs this machine has, from nvidia-smi (docs/CONFIGURATION.md,
// "Detecting GPUs"). gpumart runs
//
//   nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id,pci.device_id,mig.mode.current
//              --format=csv,noheader,nounits
//
// (one line per GPU: `0, NVIDIA H100 80GB HBM3, 81559, 00000000:18:00.0, 0x233010DE, Disabled`,
// memory in MiB) and plain `nvidia-smi`, whose header names the driver's CUDA version
// (`CUDA Version: 12.4`; `nvidia-smi -q`'s `CUDA Version : 12.4` reads the same). Products map
// to market device types through the GPU model table (bidding/gpu_models.h).
//
// Parsing is pure (text in, report or error out) and separate from running the program, so
// recorded outputs test it (tests/bidding/testdata/nvidia-smi/). The output is untrusted text:
// sizes are bounded, and bad text is an error, never a crash.
//
// A GPU with MIG mode on is offered as its MIG instances only (docs/FRACTIONAL.md): when the
// query reports one, gpumart also runs `nvidia-smi -L`, which lists each GPU and below it its MIG
// devices (`  MIG 1g.10gb     Device  0: (UUID: MIG-...)`); the instances of each GPU must be a
// layout its model supports (market/mig.h).
//
// What is not offered, and why, is in the report's `notes` (the daemon logs them): a GPU with
// MIG mode on but no instances or an unsupported layout, a GPU nvidia-smi
// cannot reach ("Unable to determine the device handle", "[GPU requires reset]" or another
// bracketed field such as "[Unknown Error]"), an unknown product, and a GPU whose memory is not
// its product's. A line that is not the query's format (garbage, truncated output) is an error:
// the whole output is suspect then.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/gpu_models.h"
#include "bidding/run_program.h"
#include "market/offers.h"
#include "market/status.h"
#include "market/types.h"

namespace gpumart::bidding {

constexpr std::string_view kNvidiaSmiQueryFields = "index,name,memory.total,pci.bus_id,pci.device_id,mig.mode.current";
constexpr size_t kNvidiaSmiQueryFieldCount = 6;
// Bounds on nvidia-smi's output: far past a real machine's (a line is under 150 bytes; the
// largest servers have 16 GPUs), small enough that odd output costs nothing.
constexpr size_t kMaxNvidiaSmiOutputBytes = 1 << 20;
constexpr size_t kMaxNvidiaSmiLines = 1024;
constexpr size_t kMaxNvidiaSmiGpus = 256;
constexpr uint32_t kMaxNvidiaSmiIndex = 4095;
constexpr size_t kMaxNvidiaSmiMigDevices = 7 * kMaxNvidiaSmiGpus;  // seven instances at most per GPU
constexpr int64_t kNvidiaSmiTimeoutMs = 10'000;
constexpr std::string_view kDefaultNvidiaSmi = "nvidia-smi";
// A detected GPU's memory must be this share of its product's nominal RAM (the driver reserves
// some: an 80Gi H100 reports 81559 MiB, a 48Gi L40S 46068 MiB), in per mille.
constexpr uint64_t kMinReportedRamPermille = 880;
constexpr uint64_t kMaxReportedRamPermille = 1020;

struct NvidiaSmiReport {
  // The usable GPUs, one entry per device type (in order of first appearance), with the
  // driver's CUDA version when known.
  std::vector<market::GpuDevices> gpus;
  // The same GPUs one by one (count 1, with the PCI bus id), in nvidia-smi's order: what each
  // is sold as, so the health check withdraws exactly a failed GPU's units (docs/HEALTH.md).
  std::vector<market::PhysicalGpus> physical;
  // One line per GPU left out, e.g. "GPU 3 (00000000:3B:00.0) left out: MIG mode is on ...",
  // and one when the CUDA version is unknown.
  std::vector<std::string> notes;
  std::optional<market::CudaVersion> cuda;
  size_t UsableGpus() const {
    size_t total = 0;
    for (const auto& gpu : gpus) total += gpu.count;
    return total;
  }
};

// Parses the query's output (`query_csv`), plain nvidia-smi's (`status_text`, for the CUDA
// version; "" when not available: the GPUs then have no CUDA version, and a note says so) and
// `nvidia-smi -L`'s (`list_text`, for MIG instances; "" when no GPU is in MIG mode).
Result<NvidiaSmiReport> ParseNvidiaSmi(std::string_view query_csv, std::string_view status_text,
                                       const GpuModelTable& models, std::string_view list_text = {});
// The driver's CUDA version from nvidia-smi's or `nvidia-smi -q`'s text; nullopt when absent.
std::optional<market::CudaVersion> ParseDriverCudaVersion(std::string_view status_text);

// Runs `program` (nvidia-smi, or a path to it) twice (three times with a GPU in MIG mode) (bidding/run_program.h: stdout and stderr
// together, bounded by kMaxNvidiaSmiOutputBytes), and parses its output. A program
// that cannot run, fails without output, or times out is an error naming it.
Result<NvidiaSmiReport> DetectNvidiaGpus(const std::string& program, const GpuModelTable& models,
                                         int64_t timeout_ms = kNvidiaSmiTimeoutMs);


// GPU health (docs/HEALTH.md). gpumartd runs, every `health.interval_ms`,
//
//   nvidia-smi --query-gpu=index,uuid,name,pci.bus_id,temperature.gpu,ecc.errors.uncorrected.volatile.total,
//              ecc.errors.uncorrected.aggregate.total,retired_pages.pending,remapped_rows.pending,
//              remapped_rows.failure --format=csv,noheader,nounits
//
// (one line per GPU; field names as `nvidia-smi --help-query-gpu` documents them; a value the
// GPU cannot give is bracketed, e.g. `[N/A]` for remapped rows before Ampere or ECC on a
// GeForce), and, when configured, a kernel-log command (`journalctl -k`, `dmesg`) whose
// `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus.` lines are the driver's
// Xid errors (NVIDIA's "Xid Errors" document; nvidia-smi's query does not report them).
constexpr std::string_view kNvidiaSmiHealthFields =
    "index,uuid,name,pci.bus_id,temperature.gpu,ecc.errors.uncorrected.volatile.total,"
    "ecc.errors.uncorrected.aggregate.total,retired_pages.pending,remapped_rows.pending,remapped_rows.failure";
constexpr size_t kNvidiaSmiHealthFieldCount = 10;
constexpr size_t kMaxGpuIdBytes = 128;      // a UUID ("GPU-" and 36 characters) or a PCI bus id
constexpr size_t kMaxXidLogLines = 1 << 16;  // of the kernel log, the last ones are read
constexpr uint32_t kMaxXidCode = 1'000'000;  // codes are below 200 today
constexpr int64_t kMaxGpuTemperatureC = 1000;

// One GPU's readings from one health query. A field nvidia-smi could not give is nullopt.
struct GpuReading {
  uint32_t index = 0;
  std::string uuid;    // "GPU-..."
  std::string name;    // the product, e.g. "NVIDIA H100 80GB HBM3"
  std::string bus_id;  // NormalizeBusId'd: "0000:3b:00"
  std::optional<int64_t> temperature_c;
  std::optional<uint64_t> ecc_volatile_uncorrected;
  std::optional<uint64_t> ecc_aggregate_uncorrected;
  std::optional<bool> retired_pages_pending;
  std::optional<bool> remapped_rows_pending;
  std::optional<bool> remapped_rows_failed;
  // Set when nvidia-smi answered the GPU's identity or a field with an error ("[GPU requires
  // reset]", "[Unknown Error]"; not [N/A] or [Not Supported], which only mean "no such reading").
  std::string error;
};

struct GpuHealthReadings {
  std::vector<GpuReading> gpus;
  // Bus ids (normalized) of GPUs nvidia-smi cannot reach: "Unable to determine the device
  // handle for GPU0000:3B:00.0: Unknown Error", "...: GPU is lost. Reboot the system ..." or
  // (driver 610) "... for GPU1: 0000:34:00.0: Unknown Error".
  std::vector<std::string> lost;
};

// "00000000:3B:00.0" (nvidia-smi), "0000:3b:00" (the kernel's Xid lines) -> "0000:3b:00": the
// PCI domain as 4 hex digits, bus and device, lower case, no function. "" when not a bus id.
std::string NormalizeBusId(std::string_view text);

// Parses the health query's output. Lines of another shape, or more than kMaxNvidiaSmiGpus GPUs,
// make the whole output an error (it is suspect then).
Result<GpuHealthReadings> ParseNvidiaSmiHealth(std::string_view query_csv);

// Xid errors in kernel log text, counted per normalized bus id and code. Lines that are not Xid
// lines are skipped; only the last kMaxXidLogLines lines are read.
using XidCounts = std::map<std::string, std::map<uint32_t, uint64_t>>;
Result<XidCounts> ParseXidLog(std::string_view kernel_log);

// Runs `program` with the health query (bidding/run_program.h, bounded like DetectNvidiaGpus)
// and parses its output; a program that cannot run, or fails without output, is an error.
Result<GpuHealthReadings> QueryGpuHealth(const std::string& program, int64_t timeout_ms = kNvidiaSmiTimeoutMs);
// Runs `argv` (a kernel-log command) and counts its Xid lines.
Result<XidCounts> ReadXidLog(const std::vector<std::string>& argv, int64_t timeout_ms = kNvidiaSmiTimeoutMs);

}  // namespace gpumart::bidding
