// libFuzzer target for the nvidia-smi parser (`inventory: detect`, bidding/nvidia_smi.h): any
// bytes nvidia-smi prints give a report or a Status, never a crash, and every GPU a report offers
// is a device type of the model table, counted at least once, within the output's bounds. The
// same bytes go to the health parsers (the health query, the kernel log's Xid lines) and the
// health state machine: readings within the bounds, every GPU's bus id normalized.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bidding/gpu_health.h"
#include "bidding/nvidia_smi.h"
#include "market/types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const gpumart::bidding::GpuModelTable models = [] {
    auto builtin = gpumart::bidding::GpuModelTable::Builtin();
    if (!builtin.ok()) __builtin_trap();
    return *builtin;
  }();
  // The query's output, then (after the first NUL byte, if any) plain nvidia-smi's, then (after
  // the second) `nvidia-smi -L`'s with the MIG devices.
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view query = input.substr(0, split);
  const std::string_view rest = split == std::string_view::npos ? input : input.substr(split + 1);
  const size_t second = rest.find('\0');
  const std::string_view status = rest.substr(0, second);
  const std::string_view list = second == std::string_view::npos ? rest : rest.substr(second + 1);
  auto report = gpumart::bidding::ParseNvidiaSmi(query, status, models, list);
  if (report.ok()) {
    // A MIG instance counts one of up to seven per GPU.
    if (report->UsableGpus() > 7 * gpumart::bidding::kMaxNvidiaSmiGpus) __builtin_trap();
    for (const auto& gpu : report->gpus) {
      if (gpu.count == 0 || gpu.cuda != report->cuda) __builtin_trap();
      if (gpu.mig_profile.empty()) {
        const gpumart::market::DeviceType type{gpu.vendor, gpu.model, gpu.ram_bytes, gpu.interface};
        if (!models.Knows(type)) __builtin_trap();
      } else if (gpu.ram_bytes != gpumart::market::MigProfileRamBytes(gpu.mig_profile)) {
        __builtin_trap();
      }
    }
  }
  auto readings = gpumart::bidding::ParseNvidiaSmiHealth(query);
  auto xids = gpumart::bidding::ParseXidLog(status);
  if (readings.ok()) {
    if (readings->gpus.size() + readings->lost.size() > gpumart::bidding::kMaxNvidiaSmiGpus) __builtin_trap();
    for (const auto& gpu : readings->gpus) {
      if (gpumart::bidding::NormalizeBusId(gpu.bus_id) != gpu.bus_id) __builtin_trap();
    }
    gpumart::bidding::GpuHealthMonitor monitor(gpumart::bidding::GpuHealthConfig{});
    monitor.Observe(*readings, xids.ok() ? &*xids : nullptr, 0);
    monitor.Observe(*readings, xids.ok() ? &*xids : nullptr, 1);
    if (monitor.gpus().size() > gpumart::bidding::kMaxNvidiaSmiGpus) __builtin_trap();
  }
  if (xids.ok() && xids->size() > gpumart::bidding::kMaxNvidiaSmiGpus) __builtin_trap();
  return 0;
}
