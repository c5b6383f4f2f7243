// A provider's inventory: its nodes (CPU, memory, storage, GPUs by device type), its attributes
// (region, tier, ...) and the auditors that vouch for it, from the `inventory` section of its
// config or detected on this machine (docs/CONFIGURATION.md, "Provider inventory").
//
// Two steps, so parsing stays pure: ParseInventoryConfig reads the section (the offers format's
// node, attribute and auditor parsers, market/offers.h: one parser per notation); BuildInventory
// checks what it says against the GPU model table and fills in what was to be detected. Either
// refuses an impossible inventory with the exact key and problem, e.g.
// `inventory.nodes[1].gpus[0].ram: 40Gi is not a known h100 (known: 80Gi sxm, 80Gi pcie, 94Gi pcie)`.
//
// The nodes are the market's types (market::NodeCapacity, as in an Offer): `count` is the
// devices installed, not the free ones; the bid engine subtracts what leases and reservations
// hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bidding/gpu_models.h"
#include "bidding/nvidia_smi.h"
#include "market/offers.h"
#include "market/status.h"
#include "market/types.h"
#include "market/yaml_tree.h"

namespace gpumart::bidding {

// Past these a node is not a real machine (a typo, an extra digit): the largest servers have 16
// GPUs, a few hundred cores and a few dozen TiB of memory.
constexpr uint32_t kMaxGpusPerNode = 64;
// MIG instances or time-slice replicas of one device type on one node: every GPU cut as finely
// as the offers format allows (market/offers.h, kMaxTimeSliceReplicas).
constexpr uint32_t kMaxGpuFractionsPerNode = kMaxGpusPerNode * 64;
constexpr uint64_t kMaxInventoryCpuMillis = 4096 * 1000;
constexpr uint64_t kMaxInventoryMemoryBytes = 64 * market::kTi;

// What the config's `inventory` section says.
struct InventoryConfig {
  std::string path = "inventory";  // the section's key path, for messages
  std::map<std::string, std::string> attributes;
  std::vector<std::string> auditors;
  std::string gpu_models;          // a table file extending the built-in one; "" = none
  std::string nvidia_smi = std::string(kDefaultNvidiaSmi);
  // `inventory: detect`: this machine is the one node (its host name, CPUs, memory, the root
  // filesystem's free space, GPUs).
  bool detect_machine = false;
  std::vector<market::NodeCapacity> nodes;
  // The listed nodes' GPU entries, one GPU at a time (what each GPU is sold as).
  market::PhysicalGpuLayout physical_gpus;
  // The node whose `gpus: detect` makes its GPUs this machine's; its gpus are empty here.
  std::optional<size_t> detect_gpus_node;
  bool NeedsDetection() const { return detect_machine || detect_gpus_node.has_value(); }
  bool operator==(const InventoryConfig&) const = default;
};

// Reads the section at `value` (`detect`, or a map of attributes, auditors, gpu_models,
// nvidia_smi and nodes). `path` names it in errors. Unknown keys, duplicates and malformed
// values are errors; the model table is not consulted yet.
Result<InventoryConfig> ParseInventoryConfig(const market::YamlNode& value, const std::string& path = "inventory");

// What a detecting inventory learns about this machine.
struct MachineFacts {
  std::string hostname;
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;  // free on the root filesystem
  NvidiaSmiReport gpus;
};

struct Inventory {
  std::map<std::string, std::string> attributes;
  std::vector<std::string> auditors;
  std::vector<market::NodeCapacity> nodes;
  // Each node's GPUs as physical GPUs (listed entries, or detected GPUs with their bus ids):
  // which units one GPU carries, for the health check (docs/HEALTH.md).
  market::PhysicalGpuLayout physical_gpus;
  // What detection left out and why (MIG mode, lost GPUs, unknown products): the daemon logs it.
  std::vector<std::string> notes;
  size_t GpuCount() const;
  bool operator==(const Inventory&) const = default;
};

// The provider's whole capacity as the bid engine and the matching engine take it: an Offer with
// the inventory's nodes, attributes and auditors, priced by `pricing` (the config's price tables);
// its provider and name are the daemon's to set.
market::Offer ToOffer(const Inventory& inventory, std::vector<market::PriceTable> pricing);

// Checks `config` against `models` (every GPU a known model, RAM and interface; counts from 1 to
// kMaxGpusPerNode per node; CPU and memory present and below the limits above) and, where it
// detects, takes the machine's facts (`machine` must then be given). A detecting node with no
// usable GPU is an error that lists why each was left out.
Result<Inventory> BuildInventory(const InventoryConfig& config, const GpuModelTable& models,
                                 const MachineFacts* machine);

// This machine's host name, online CPUs, physical memory and the root filesystem's free space
// (no GPUs).
Result<MachineFacts> ProbeMachine();

// What the daemon calls at start and on reload: loads the model table (the built-in one
// extended by config.gpu_models), probes the machine and runs nvidia-smi when the config
// detects, and builds the inventory.
Result<Inventory> LoadInventory(const InventoryConfig& config);

}  // namespace gpumart::bidding
