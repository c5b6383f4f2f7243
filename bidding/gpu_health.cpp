#include "bidding/gpu_health.h"

#include <algorithm>
#include <set>

#include "market/checked_math.h"

namespace gpumart::bidding {
namespace {

std::string At(const market::YamlNode& node) { return " at line " + std::to_string(node.Line()); }

Result<uint64_t> WholeNumber(const market::YamlNode& node, const std::string& name, uint64_t min, uint64_t max) {
  const std::string_view text = node.Scalar();
  bool ok = node.IsScalar() && !text.empty() && text.size() <= 12;
  for (const char c : text) ok = ok && c >= '0' && c <= '9';
  uint64_t value = 0;
  if (ok) {
    for (const char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || value < min || value > max) {
    return Status::InvalidArgument(name + " must be a whole number in " + std::to_string(min) + ".." +
                                   std::to_string(max) + At(node));
  }
  return value;
}

Result<std::vector<std::string>> Argv(const market::YamlNode& node, const std::string& name) {
  if (!node.IsSequence()) return Status::InvalidArgument(name + " must be a list: the program and its arguments" + At(node));
  std::vector<std::string> argv;
  for (const market::YamlNode& arg : node.Items()) {
    if (!arg.IsScalar() || arg.Scalar().empty()) return Status::InvalidArgument(name + " items must be non-empty strings" + At(arg));
    argv.emplace_back(arg.Scalar());
  }
  return argv;
}

constexpr std::string_view kKnownKeys =
    "enabled, nvidia_smi, xid_command, interval_ms, timeout_ms, hold_down_ms, max_temperature_c, "
    "max_ecc_volatile_uncorrected, max_ecc_aggregate_uncorrected, xid_codes, node";

}  // namespace

std::string_view ToString(GpuHealthState state) {
  switch (state) {
    case GpuHealthState::kHealthy: return "healthy";
    case GpuHealthState::kUnhealthy: return "unhealthy";
    case GpuHealthState::kRecovering: return "recovering";
  }
  return "unhealthy";
}

Result<GpuHealthConfig> ParseGpuHealthConfig(const market::YamlNode& node, const std::string& key) {
  GpuHealthConfig config;
  if (!node.IsDefined() || node.IsNull()) return config;
  if (!node.IsMap()) return Status::InvalidArgument(key + " must be a mapping" + At(node));
  config.enabled = true;
  std::set<std::string_view> seen;
  for (const market::YamlMapEntry& entry : node.Entries()) {
    const std::string_view field = entry.key.Scalar();
    const std::string name = key + "." + std::string(field);
    if (!seen.insert(field).second) return Status::InvalidArgument(name + " is given twice" + At(entry.key));
    const market::YamlNode& value = entry.value;
    if (field == "enabled") {
      if (value.Scalar() != "true" && value.Scalar() != "false") {
        return Status::InvalidArgument(name + " must be true or false" + At(value));
      }
      config.enabled = value.Scalar() == "true";
    } else if (field == "nvidia_smi" || field == "node") {
      if (!value.IsScalar() || value.Scalar().empty() || value.Scalar().size() > 4096) {
        return Status::InvalidArgument(name + " must be a non-empty string" + At(value));
      }
      (field == "node" ? config.node : config.nvidia_smi) = std::string(value.Scalar());
    } else if (field == "xid_command") {
      Result<std::vector<std::string>> argv = Argv(value, name);
      if (!argv.ok()) return argv.status();
      config.xid_command = std::move(argv).value();
    } else if (field == "interval_ms" || field == "timeout_ms" || field == "hold_down_ms") {
      Result<uint64_t> ms = WholeNumber(value, name, field == "hold_down_ms" ? 0 : 1, kMaxHealthTimerMs);
      if (!ms.ok()) return ms.status();
      (field == "interval_ms" ? config.interval_ms : field == "timeout_ms" ? config.timeout_ms : config.hold_down_ms) =
          static_cast<int64_t>(*ms);
    } else if (field == "max_temperature_c") {
      Result<uint64_t> celsius = WholeNumber(value, name, 1, kMaxGpuTemperatureC);
      if (!celsius.ok()) return celsius.status();
      config.max_temperature_c = static_cast<int64_t>(*celsius);
    } else if (field == "max_ecc_volatile_uncorrected" || field == "max_ecc_aggregate_uncorrected") {
      Result<uint64_t> count = WholeNumber(value, name, 0, uint64_t{1} << 32);
      if (!count.ok()) return count.status();
      if (field == "max_ecc_volatile_uncorrected") {
        config.max_ecc_volatile_uncorrected = *count;
      } else {
        config.max_ecc_aggregate_uncorrected = *count;
      }
    } else if (field == "xid_codes") {
      if (!value.IsSequence() || value.size() > kMaxHealthXidCodes) {
        return Status::InvalidArgument(name + " must be a list of at most " + std::to_string(kMaxHealthXidCodes) +
                                       " Xid codes" + At(value));
      }
      config.xid_codes.clear();
      for (const market::YamlNode& code : value.Items()) {
        Result<uint64_t> xid = WholeNumber(code, name, 1, kMaxXidCode);
        if (!xid.ok()) return xid.status();
        config.xid_codes.push_back(static_cast<uint32_t>(*xid));
      }
    } else {
      return Status::InvalidArgument(key + " has unknown key '" + std::string(field) + "' (known: " +
                                     std::string(kKnownKeys) + ")" + At(entry.key));
    }
  }
  if (config.timeout_ms > config.interval_ms) {
    return Status::InvalidArgument(key + ".timeout_ms must not exceed " + key + ".interval_ms" + At(node));
  }
  return config;
}

GpuHealthMonitor::GpuHealthMonitor(GpuHealthConfig config) : config_(std::move(config)) {}

GpuHealth* GpuHealthMonitor::Find(std::string_view uuid, std::string_view bus_id) {
  if (!uuid.empty()) {
    const auto found = gpus_.find(std::string(uuid));
    if (found != gpus_.end()) return &found->second;
  }
  for (auto& [id, gpu] : gpus_) {
    if (gpu.bus_id == bus_id) return &gpu;
  }
  return nullptr;
}

void GpuHealthMonitor::MarkUnhealthy(GpuHealth& gpu, std::string reason, int64_t now_ms) {
  if (gpu.state != GpuHealthState::kUnhealthy) gpu.unhealthy_since_ms = now_ms;
  gpu.state = GpuHealthState::kUnhealthy;
  gpu.reason = std::move(reason);
  gpu.healthy_since_ms = 0;
}

void GpuHealthMonitor::MarkHealthy(GpuHealth& gpu, int64_t now_ms) {
  if (gpu.state == GpuHealthState::kHealthy) return;
  if (gpu.state == GpuHealthState::kUnhealthy) {
    gpu.state = GpuHealthState::kRecovering;
    gpu.healthy_since_ms = now_ms;
  }
  if (now_ms - gpu.healthy_since_ms >= config_.hold_down_ms) gpu.state = GpuHealthState::kHealthy;
}

std::vector<GpuHealthMonitor::Change> GpuHealthMonitor::Observe(const GpuHealthReadings& readings,
                                                                const XidCounts* xids, int64_t now_ms) {
  std::map<std::string, bool> before;
  for (const auto& [id, gpu] : gpus_) before[id] = gpu.InService();
  // New Xid errors per bus (a counted code is a reason; every code is counted).
  std::map<std::string, std::string> xid_reasons;
  std::map<std::string, std::pair<uint64_t, uint32_t>> xid_fresh;  // count, last code
  if (xids != nullptr) {
    for (const auto& [bus, codes] : *xids) {
      const auto last_bus = last_xids_.find(bus);
      for (const auto& [code, count] : codes) {
        uint64_t last = 0;
        if (last_bus != last_xids_.end()) {
          const auto found = last_bus->second.find(code);
          if (found != last_bus->second.end()) last = found->second;
        }
        // Fewer than before: the log rotated or the machine rebooted; all of them are new.
        const uint64_t fresh = count >= last ? count - last : count;
        if (fresh == 0) continue;
        xid_fresh[bus].first += fresh;
        xid_fresh[bus].second = code;
        if (std::find(config_.xid_codes.begin(), config_.xid_codes.end(), code) != config_.xid_codes.end()) {
          std::string& why = xid_reasons[bus];
          why += (why.empty() ? "Xid " : ", Xid ") + std::to_string(code);
        }
      }
    }
    last_xids_ = *xids;
  }
  std::set<std::string> seen;
  for (const GpuReading& reading : readings.gpus) {
    GpuHealth* gpu = Find(reading.uuid, reading.bus_id);
    const std::string id = reading.uuid.empty() ? "pci:" + reading.bus_id : reading.uuid;
    if (gpu != nullptr && gpu->id != id && !reading.uuid.empty()) {
      // Known by bus id until now: from now on by its UUID.
      GpuHealth moved = std::move(*gpu);
      gpus_.erase(moved.id);
      moved.id = id;
      gpu = &gpus_.emplace(id, std::move(moved)).first->second;
    }
    if (gpu == nullptr) {
      if (gpus_.size() >= kMaxNvidiaSmiGpus) continue;
      gpu = &gpus_.emplace(id, GpuHealth{.id = id}).first->second;
    }
    seen.insert(gpu->id);
    gpu->index = reading.index;
    if (!reading.name.empty()) gpu->name = reading.name;
    gpu->bus_id = reading.bus_id;
    gpu->temperature_c = reading.temperature_c;
    gpu->ecc_volatile_uncorrected = reading.ecc_volatile_uncorrected.value_or(0);
    gpu->ecc_aggregate_uncorrected = reading.ecc_aggregate_uncorrected.value_or(0);
    std::string reason;
    auto add = [&reason](const std::string& why) { reason += (reason.empty() ? "" : "; ") + why; };
    if (const auto fresh = xid_fresh.find(reading.bus_id); fresh != xid_fresh.end()) {
      gpu->xid_errors += fresh->second.first;
      gpu->last_xid = fresh->second.second;
    }
    if (const auto xid = xid_reasons.find(reading.bus_id); xid != xid_reasons.end()) add(xid->second);
    if (!reading.error.empty()) add("nvidia-smi reads " + reading.error);
    if (reading.temperature_c && *reading.temperature_c > config_.max_temperature_c) {
      add("temperature " + std::to_string(*reading.temperature_c) + " C over " + std::to_string(config_.max_temperature_c) +
          " C");
    }
    if (gpu->ecc_volatile_uncorrected > config_.max_ecc_volatile_uncorrected) {
      add(std::to_string(gpu->ecc_volatile_uncorrected) + " uncorrected ECC errors (volatile)");
    }
    if (config_.max_ecc_aggregate_uncorrected && gpu->ecc_aggregate_uncorrected > *config_.max_ecc_aggregate_uncorrected) {
      add(std::to_string(gpu->ecc_aggregate_uncorrected) + " uncorrected ECC errors (aggregate)");
    }
    if (reading.retired_pages_pending.value_or(false)) add("retired pages pending (needs a reset)");
    if (reading.remapped_rows_pending.value_or(false)) add("remapped rows pending (needs a reset)");
    if (reading.remapped_rows_failed.value_or(false)) add("row remapping failed");
    if (reason.empty()) {
      MarkHealthy(*gpu, now_ms);
    } else {
      MarkUnhealthy(*gpu, reason, now_ms);
    }
  }
  for (const std::string& bus : readings.lost) {
    GpuHealth* gpu = Find("", bus);
    if (gpu == nullptr) {
      if (gpus_.size() >= kMaxNvidiaSmiGpus) continue;
      const std::string id = "pci:" + bus;
      gpu = &gpus_.emplace(id, GpuHealth{.id = id, .bus_id = bus}).first->second;
    }
    seen.insert(gpu->id);
    MarkUnhealthy(*gpu, "nvidia-smi cannot reach it (GPU is lost; it needs a reset or a reboot)", now_ms);
  }
  for (auto& [id, gpu] : gpus_) {
    if (!seen.contains(id)) MarkUnhealthy(gpu, "missing from nvidia-smi's output (fell off the bus?)", now_ms);
  }
  std::vector<Change> changes;
  for (const auto& [id, gpu] : gpus_) {
    const auto was = before.find(id);
    const bool in_service = gpu.InService();
    // A GPU seen for the first time counts as having been in service.
    if ((was == before.end() ? true : was->second) != in_service) changes.push_back(Change{id, in_service});
  }
  return changes;
}

std::vector<GpuHealthMonitor::Change> GpuHealthMonitor::ObserveFailure(std::string_view why, int64_t now_ms) {
  std::vector<Change> changes;
  for (auto& [id, gpu] : gpus_) {
    const bool was = gpu.InService();
    MarkUnhealthy(gpu, "the health check failed: " + std::string(why.substr(0, 200)), now_ms);
    if (was) changes.push_back(Change{id, false});
  }
  return changes;
}

GpuUnitsOutOfService UnitsOutOfService(const std::map<std::string, GpuHealth>& gpus,
                                       const std::vector<market::PhysicalGpus>& layout, const GpuModelTable& models) {
  auto lower = [](market::DeviceType type) {
    type.vendor = market::ToLower(type.vendor);
    type.model = market::ToLower(type.model);
    return type;
  };
  // In index order, so the n-th GPU of a model is the same one in every check (a lost GPU keeps
  // its place: the monitor remembers it).
  std::vector<const GpuHealth*> by_index;
  for (const auto& [id, gpu] : gpus) by_index.push_back(&gpu);
  std::sort(by_index.begin(), by_index.end(), [](const GpuHealth* a, const GpuHealth* b) {
    return a->index != b->index ? a->index < b->index : a->id < b->id;
  });
  std::map<market::DeviceType, uint64_t> seen_of_model;  // GPUs of each model matched by model so far
  GpuUnitsOutOfService out;
  for (const GpuHealth* gpu : by_index) {
    const market::PhysicalGpus* entry = nullptr;
    for (const market::PhysicalGpus& candidate : layout) {
      if (!candidate.bus_id.empty() && !gpu->bus_id.empty() && candidate.bus_id == gpu->bus_id) entry = &candidate;
    }
    if (entry == nullptr) {
      if (const GpuModel* model = models.FindProduct(gpu->name); model != nullptr) {
        const market::DeviceType type = lower(model->device);
        const uint64_t rank = seen_of_model[type]++;
        uint64_t before = 0;
        for (const market::PhysicalGpus& candidate : layout) {
          if (!candidate.bus_id.empty() || lower(candidate.gpu) != type) continue;
          entry = &candidate;
          before += candidate.count;
          if (rank < before) break;
        }
      }
    }
    if (entry == nullptr && layout.size() == 1 && layout[0].bus_id.empty()) entry = &layout[0];
    if (entry == nullptr || gpu->InService()) continue;
    for (const auto& [unit, count] : entry->units) {
      const market::DeviceType type = lower(unit);
      out.units[type] = market::SaturatingAdd(out.units[type], count);
      std::string& note = out.notes[type];
      if (note.empty()) {
        note = "GPU health: GPU " + std::to_string(gpu->index) + " (" + gpu->id + ") " +
               std::string(ToString(gpu->state)) + ": " + gpu->reason;
      }
    }
  }
  return out;
}

}  // namespace gpumart::bidding
