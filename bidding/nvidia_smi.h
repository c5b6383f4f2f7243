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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/gpu_models.h"
#include "bidding/run_program.h"
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
// A detected GPU's memory must be this share of its product's nominal RAM (the driver reserves
// some: an 80Gi H100 reports 81559 MiB, a 48Gi L40S 46068 MiB), in per mille.
constexpr uint64_t kMinReportedRamPermille = 880;
constexpr uint64_t kMaxReportedRamPermille = 1020;

struct NvidiaSmiReport {
  // The usable GPUs, one entry per device type (in order of first appearance), with the
  // driver's CUDA version when known.
  std::vector<market::GpuDevices> gpus;
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

}  // namespace gpumart::bidding
