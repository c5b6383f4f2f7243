#include "bidding/inventory.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "market/boundary.h"
#include "market/codec.h"
#include "market/match.h"
#include "market/offers.h"

namespace gpumart::bidding {
namespace {

// A path in the config (a model table, a program): one string, bounded like the config's
// (node/config.h kMaxConfigStringBytes).
constexpr size_t kMaxPathBytes = 4096;

Status ReadPath(const market::YamlNode& value, const std::string& at, std::string& out) {
  if (!value.IsScalar() || value.Scalar().empty()) return Status::InvalidArgument(at + ": must be a path");
  if (value.Scalar().size() > kMaxPathBytes) {
    return Status::LimitExceeded(at + ": longer than " + std::to_string(kMaxPathBytes) + " bytes");
  }
  out = std::string(value.Scalar());
  return Status::Ok();
}

Result<InventoryConfig> Parse(const market::YamlNode& value, const std::string& path) {
  InventoryConfig config;
  config.path = path;
  if (value.IsScalar() && value.Scalar() == market::kDetectGpus) {
    config.detect_machine = true;
    return config;
  }
  if (!value.IsMap()) {
    return Status::InvalidArgument(path + ": must be `detect` or a map (attributes, auditors, gpu_models, "
                                          "nvidia_smi, nodes)");
  }
  GPUMART_RETURN_IF_ERROR(market::CheckOfferKeys(value, path, {"attributes", "auditors", "gpu_models", "nvidia_smi", "nodes"},
                                                 {"nodes"}));
  for (const market::YamlMapEntry& entry : value.Entries()) {
    const std::string key(entry.key.Scalar());
    const std::string at = path + "." + key;
    if (key == "attributes") {
      GPUMART_RETURN_IF_ERROR(market::ParseOfferAttributes(entry.value, at, config.attributes));
    } else if (key == "auditors") {
      GPUMART_RETURN_IF_ERROR(market::ParseOfferAuditors(entry.value, at, config.auditors));
    } else if (key == "gpu_models") {
      GPUMART_RETURN_IF_ERROR(ReadPath(entry.value, at, config.gpu_models));
    } else if (key == "nvidia_smi") {
      GPUMART_RETURN_IF_ERROR(ReadPath(entry.value, at, config.nvidia_smi));
    } else if (key == "nodes") {
      if (entry.value.IsScalar() && entry.value.Scalar() == market::kDetectGpus) {
        config.detect_machine = true;
      } else {
        GPUMART_RETURN_IF_ERROR(market::ParseOfferNodes(entry.value, at, config.nodes, &config.detect_gpus_node,
                                                         &config.physical_gpus));
      }
    }
  }
  return config;
}

std::string NodePath(const InventoryConfig& config, size_t i) { return config.path + ".nodes[" + std::to_string(i) + "]"; }

std::string Notes(const std::vector<std::string>& notes) {
  if (notes.empty()) return "nvidia-smi listed none";
  std::string text;
  for (const std::string& note : notes) text += (text.empty() ? "" : "; ") + note;
  return text;
}

Status CheckSize(uint64_t value, uint64_t max, const std::string& at, const std::string& what) {
  if (value == 0) return Status::InvalidArgument(at + ": 0 (a node has " + what + ")");
  if (value > max) {
    return Status::InvalidArgument(at + ": " + std::to_string(value) + " is not a real machine's (at most " +
                                   std::to_string(max) + ")");
  }
  return Status::Ok();
}

// A MIG instance or a time-slice replica is a fraction of a GPU: the node's limit counts whole
// GPUs; the fractions are bounded per entry (CheckConfiguredGpu).
bool IsFraction(const market::GpuDevices& gpu) { return !gpu.mig_profile.empty() || gpu.shared; }

Status CheckGpuTotal(const market::NodeCapacity& node, const std::string& at) {
  uint64_t total = 0;
  for (const market::GpuDevices& gpu : node.gpus) total += IsFraction(gpu) ? 0 : gpu.count;
  if (total > kMaxGpusPerNode) {
    return Status::InvalidArgument(at + ": " + std::to_string(total) + " GPUs on one node is not a real machine (at most " +
                                   std::to_string(kMaxGpusPerNode) + ")");
  }
  if (node.gpus.size() > market::limits::kMaxGpuTypesPerNode) {
    return Status::LimitExceeded(at + ": more than " + std::to_string(market::limits::kMaxGpuTypesPerNode) +
                                 " device types");
  }
  return Status::Ok();
}

Status CheckConfiguredGpu(const market::GpuDevices& gpu, const GpuModelTable& models, const std::string& at) {
  if (gpu.count == 0) return Status::InvalidArgument(at + ".count: 0 (list only GPUs the node has)");
  if (IsFraction(gpu) && gpu.count > kMaxGpuFractionsPerNode) {
    return Status::InvalidArgument(at + ".count: " + std::to_string(gpu.count) + " " +
                                   (gpu.shared ? "replicas" : gpu.mig_profile + " instances") +
                                   " on one node is not a real machine (at most " +
                                   std::to_string(kMaxGpuFractionsPerNode) + ")");
  }
  if (!IsFraction(gpu) && gpu.count > kMaxGpusPerNode) {
    return Status::InvalidArgument(at + ".count: " + std::to_string(gpu.count) +
                                   " GPUs on one node is not a real machine (at most " +
                                   std::to_string(kMaxGpusPerNode) + ")");
  }
  const market::DeviceType device{.vendor = gpu.vendor, .model = gpu.model, .ram_bytes = gpu.ram_bytes,
                                  .interface = gpu.interface};
  const std::string variants = models.Variants(gpu.vendor, gpu.model);
  // A MIG instance's layout was checked against its GPU's profiles when the config was read
  // (market/mig.h); its RAM is the instance's, so only the model must be known here.
  if (!gpu.mig_profile.empty() && !variants.empty()) return Status::Ok();
  if (gpu.mig_profile.empty() && models.Knows(device)) return Status::Ok();
  if (variants.empty()) {
    return Status::InvalidArgument(at + ".model: unknown GPU model '" + gpu.vendor + " " + gpu.model +
                                   "' (not in the GPU model table; add it with inventory.gpu_models)");
  }
  bool ram_known = false;
  for (const GpuModel& model : models.models()) {
    ram_known |= model.device.vendor == gpu.vendor && model.device.model == gpu.model &&
                 model.device.ram_bytes == gpu.ram_bytes;
  }
  const std::string written = market::FormatGi(gpu.ram_bytes) + " " + std::string(market::ToString(gpu.interface));
  return Status::InvalidArgument(at + (ram_known ? ".interface: " : ".ram: ") + written + " is not a known " +
                                 gpu.model + " (known: " + variants + ")");
}

Result<Inventory> Build(const InventoryConfig& config, const GpuModelTable& models, const MachineFacts* machine) {
  if (config.NeedsDetection() && machine == nullptr) {
    return Status::FailedPrecondition(config.path + ": detects, but no machine facts were given");
  }
  Inventory inventory;
  inventory.attributes = config.attributes;
  inventory.auditors = config.auditors;
  inventory.nodes = config.nodes;
  inventory.physical_gpus = config.physical_gpus;
  for (size_t i = 0; i < inventory.nodes.size(); ++i) {
    market::NodeCapacity& node = inventory.nodes[i];
    const std::string at = NodePath(config, i);
    GPUMART_RETURN_IF_ERROR(CheckSize(node.cpu_millis, kMaxInventoryCpuMillis, at + ".cpu_millis", "CPUs"));
    GPUMART_RETURN_IF_ERROR(CheckSize(node.memory_bytes, kMaxInventoryMemoryBytes, at + ".memory", "memory"));
    for (size_t j = 0; j < node.gpus.size(); ++j) {
      GPUMART_RETURN_IF_ERROR(CheckConfiguredGpu(node.gpus[j], models, at + ".gpus[" + std::to_string(j) + "]"));
    }
    if (config.detect_gpus_node == i) {
      if (machine->gpus.gpus.empty()) {
        return Status::InvalidArgument(at + ".gpus: detect found no usable GPU (" + Notes(machine->gpus.notes) + ")");
      }
      node.gpus = machine->gpus.gpus;
      inventory.physical_gpus[node.name] = machine->gpus.physical;
      inventory.notes = machine->gpus.notes;
    }
    GPUMART_RETURN_IF_ERROR(CheckGpuTotal(node, at + ".gpus"));
  }
  if (config.detect_machine) {
    market::NodeCapacity node;
    node.name = machine->hostname;
    node.cpu_millis = machine->cpu_millis;
    node.memory_bytes = machine->memory_bytes;
    node.storage_bytes = std::min(machine->storage_bytes, market::kMaxNodeStorageBytes);
    node.gpus = machine->gpus.gpus;
    if (node.name.empty() || node.name.size() > market::limits::kMaxNameBytes) {
      return Status::InvalidArgument(config.path + ": detect: the host name '" + node.name.substr(0, 64) +
                                     "' is not a node name (1.." + std::to_string(market::limits::kMaxNameBytes) +
                                     " bytes); list the node instead");
    }
    GPUMART_RETURN_IF_ERROR(CheckSize(node.cpu_millis, kMaxInventoryCpuMillis, config.path + ": detect: CPUs", "CPUs"));
    GPUMART_RETURN_IF_ERROR(
        CheckSize(node.memory_bytes, kMaxInventoryMemoryBytes, config.path + ": detect: memory", "memory"));
    if (node.gpus.empty()) {
      return Status::InvalidArgument(config.path + ": detect found no usable GPU on this machine (" +
                                     Notes(machine->gpus.notes) + ")");
    }
    GPUMART_RETURN_IF_ERROR(CheckGpuTotal(node, config.path + ": detect"));
    inventory.physical_gpus[node.name] = machine->gpus.physical;
    inventory.nodes.push_back(std::move(node));
    inventory.notes = machine->gpus.notes;
  }
  if (inventory.nodes.empty()) return Status::InvalidArgument(config.path + ".nodes: missing (at least one node)");
  // The matching engine's per-offer bounds (device types, GPU entries): the bid engine offers
  // exactly this capacity.
  GPUMART_RETURN_IF_ERROR(market::CheckOfferWork(ToOffer(inventory, {})).WithContext(config.path));
  return inventory;
}

}  // namespace

size_t Inventory::GpuCount() const {
  size_t total = 0;
  for (const market::NodeCapacity& node : nodes) {
    for (const market::GpuDevices& gpu : node.gpus) total += gpu.count;
  }
  return total;
}

market::Offer ToOffer(const Inventory& inventory, std::vector<market::PriceTable> pricing) {
  market::Offer offer;
  offer.attributes = inventory.attributes;
  offer.auditors = inventory.auditors;
  offer.nodes = inventory.nodes;
  offer.pricing = std::move(pricing);
  return offer;
}

Result<InventoryConfig> ParseInventoryConfig(const market::YamlNode& value, const std::string& path) {
  return CatchAll(path, [&] { return Parse(value, path); });
}

Result<Inventory> BuildInventory(const InventoryConfig& config, const GpuModelTable& models,
                                 const MachineFacts* machine) {
  return CatchAll(config.path, [&] { return Build(config, models, machine); });
}

Result<MachineFacts> ProbeMachine() {
  MachineFacts facts;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return Status::IoError("gethostname failed");
  facts.hostname = name;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_bytes = sysconf(_SC_PAGESIZE);
  if (cpus <= 0 || pages <= 0 || page_bytes <= 0) return Status::IoError("cannot read this machine's CPUs and memory");
  facts.cpu_millis = static_cast<uint64_t>(cpus) * 1000;
  facts.memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_bytes);
  // Containers' ephemeral storage lives on the root filesystem (a kubelet's /var/lib/kubelet
  // usually is on it); its free space is what a detected node offers.
  struct statvfs root {};
  if (statvfs("/", &root) != 0) return Status::IoError("cannot read the root filesystem's free space");
  facts.storage_bytes = static_cast<uint64_t>(root.f_bavail) * static_cast<uint64_t>(root.f_frsize);
  return facts;
}

Result<Inventory> LoadInventory(const InventoryConfig& config) {
  Result<GpuModelTable> models = GpuModelTable::Load(config.gpu_models);
  if (!models.ok()) return models.status().WithContext(config.path + ".gpu_models");
  if (!config.NeedsDetection()) return BuildInventory(config, *models, nullptr);
  Result<MachineFacts> machine = ProbeMachine();
  if (!machine.ok()) return machine.status().WithContext(config.path + ": detect");
  Result<NvidiaSmiReport> gpus = DetectNvidiaGpus(config.nvidia_smi, *models);
  if (!gpus.ok()) return gpus.status().WithContext(config.path + ": detect");
  machine->gpus = std::move(gpus).value();
  return BuildInventory(config, *models, &*machine);
}

}  // namespace gpumart::bidding
