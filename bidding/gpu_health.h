// GPU health: a state machine without I/O that turns what nvidia-smi (and the kernel's Xid
// lines) say about each GPU into whether the provider may sell it (docs/HEALTH.md).
//
// A GPU is unhealthy when a check shows any of: an Xid error of a configured code that was not
// in the previous check's log, uncorrected ECC errors over the thresholds (volatile: since the
// driver loaded; aggregate: over the GPU's life, only when configured), retired pages or
// remapped rows pending (the GPU needs a reset to retire them) or a row remapping failure, a
// temperature over the threshold, an error in place of a reading ("[GPU requires reset]"),
// nvidia-smi's "Unable to determine the device handle" line for it, or its absence from the
// output after it was seen (it fell off the bus). A check that fails as a whole (nvidia-smi
// does not run, times out or prints garbage) makes every known GPU unhealthy: nothing it says
// can be trusted then.
//
// An unhealthy GPU is out of service at once. It is back in service only after every check for
// `hold_down_ms` was healthy (a GPU that overheats under load and cools when idle would
// otherwise be sold, fail and be sold again).
//
// GPUs are known by UUID (by PCI bus id while nvidia-smi cannot read the UUID). At most
// kMaxNvidiaSmiGpus are tracked.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/gpu_models.h"
#include "bidding/nvidia_smi.h"
#include "market/offers.h"
#include "market/status.h"
#include "market/types.h"
#include "market/yaml_tree.h"

namespace gpumart::bidding {

constexpr int64_t kDefaultHealthIntervalMs = 30'000;
constexpr int64_t kDefaultHealthHoldDownMs = 600'000;
constexpr int64_t kMaxHealthTimerMs = 24 * 3600 * 1000;
constexpr size_t kMaxHealthXidCodes = 256;

// The provider config's `health:` section (docs/CONFIGURATION.md, "GPU health").
struct GpuHealthConfig {
  bool enabled = false;
  // nvidia-smi (a name on PATH or a path); the health query's arguments are appended.
  std::string nvidia_smi = std::string(kDefaultNvidiaSmi);
  // A command printing the kernel log (argv, e.g. [journalctl, -k, -b, --no-pager]); empty: no
  // Xid errors are read.
  std::vector<std::string> xid_command;
  int64_t interval_ms = kDefaultHealthIntervalMs;
  int64_t timeout_ms = kNvidiaSmiTimeoutMs;
  int64_t hold_down_ms = kDefaultHealthHoldDownMs;
  int64_t max_temperature_c = 90;              // hotter: unhealthy
  uint64_t max_ecc_volatile_uncorrected = 0;   // more: unhealthy
  std::optional<uint64_t> max_ecc_aggregate_uncorrected;  // unset: not checked
  // Xid codes that take a GPU out of service (NVIDIA's "Xid Errors": 48 double-bit ECC, 79
  // fell off the bus, 94/95 contained/uncontained ECC, ...). Others are only counted.
  std::vector<uint32_t> xid_codes = {48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120};
  // The inventory node these GPUs belong to; "" = the node that detects its GPUs, or the only one.
  std::string node;
  bool operator==(const GpuHealthConfig&) const = default;
};

// The section at `node` (undefined or null: health checks off). Unknown or repeated keys and
// values out of range are errors naming `key` and the line.
Result<GpuHealthConfig> ParseGpuHealthConfig(const market::YamlNode& node, const std::string& key = "health");

enum class GpuHealthState : uint8_t {
  kHealthy = 0,     // in service
  kUnhealthy = 1,   // the last check found a problem
  kRecovering = 2,  // healthy checks since `healthy_since_ms`, not yet for the hold-down
};
std::string_view ToString(GpuHealthState state);  // "healthy", "unhealthy", "recovering"

struct GpuHealth {
  std::string id;      // UUID, or "pci:<bus id>" while the UUID is unknown
  uint32_t index = 0;
  std::string name;    // the product, as nvidia-smi names it ("" when unknown)
  std::string bus_id;  // normalized
  GpuHealthState state = GpuHealthState::kHealthy;
  std::string reason;  // why it is (or last was) unhealthy, for people and Close notes
  int64_t unhealthy_since_ms = 0;
  int64_t healthy_since_ms = 0;  // recovering: since when
  std::optional<int64_t> temperature_c;
  uint64_t ecc_volatile_uncorrected = 0;
  uint64_t ecc_aggregate_uncorrected = 0;
  uint64_t xid_errors = 0;  // Xid lines seen for it, every code (a counter: it never decreases)
  uint32_t last_xid = 0;
  bool InService() const { return state == GpuHealthState::kHealthy; }
};

class GpuHealthMonitor {
 public:
  explicit GpuHealthMonitor(GpuHealthConfig config);

  // A GPU whose service changed in this check.
  struct Change {
    std::string id;
    bool in_service = false;
  };
  // One check: the health query's readings and the kernel log's Xid counts (nullptr: not read),
  // at `now_ms`.
  std::vector<Change> Observe(const GpuHealthReadings& readings, const XidCounts* xids, int64_t now_ms);
  // A check that failed as a whole, and why.
  std::vector<Change> ObserveFailure(std::string_view why, int64_t now_ms);

  // Every GPU known, by id.
  const std::map<std::string, GpuHealth>& gpus() const { return gpus_; }
  const GpuHealthConfig& config() const { return config_; }

 private:
  void MarkUnhealthy(GpuHealth& gpu, std::string reason, int64_t now_ms);
  void MarkHealthy(GpuHealth& gpu, int64_t now_ms);
  GpuHealth* Find(std::string_view uuid, std::string_view bus_id);

  GpuHealthConfig config_;
  std::map<std::string, GpuHealth> gpus_;
  // The previous check's Xid counts per bus and code: only an increase is a new error.
  XidCounts last_xids_;
};

// What the GPUs out of service take from a node's offer: every GPU of `gpus` not in service
// takes out all the units its entry of `layout` (the node's physical GPUs, bidding/inventory.h)
// says one GPU carries: a whole GPU, each of its MIG instances, or each of its time-slice
// replicas. A GPU is one of `layout`'s entries
//   - by PCI bus id, where the entry was detected (it has one);
//   - else by model (nvidia-smi's product name through `models`): the entries listing that
//     model in their order take the GPUs of that model in index order (the first `count` GPUs
//     are the first entry's, ...; GPUs past them count as the last entry's);
//   - else, when `layout` is one listed entry, that entry (a node with one GPU entry takes every
//     GPU as its own, whatever its product name says).
// A GPU that is none of them (not sold here, or left out by detection) takes nothing. Device
// types are lower-cased as the bid engine keys them.
struct GpuUnitsOutOfService {
  std::map<market::DeviceType, uint64_t> units;
  // Per device type, why: the first failed GPU's "GPU health: GPU 1 (GPU-...) unhealthy: ...".
  std::map<market::DeviceType, std::string> notes;
};
GpuUnitsOutOfService UnitsOutOfService(const std::map<std::string, GpuHealth>& gpus,
                                       const std::vector<market::PhysicalGpus>& layout, const GpuModelTable& models);

}  // namespace gpumart::bidding
