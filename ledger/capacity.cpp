#include "ledger/capacity.h"

#include <limits>

#include "ledger/keys.h"
#include "market/checked_math.h"

namespace gpumart::ledger {
namespace {

using market::SaturatingSub;

void AppendString(std::string& out, std::string_view text) {
  AppendU16(out, static_cast<uint16_t>(text.size()));
  out.append(text);
}

// A bounds-checked reader over an encoded value.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool U64(uint64_t& value) {
    if (rest_.size() < 8) return false;
    value = ReadU64(rest_.data());
    rest_.remove_prefix(8);
    return true;
  }
  bool U16(uint16_t& value) {
    if (rest_.size() < 2) return false;
    value = ReadU16(rest_.data());
    rest_.remove_prefix(2);
    return true;
  }
  bool U8(uint8_t& value) {
    if (rest_.empty()) return false;
    value = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return true;
  }
  bool String(std::string& value, size_t max_bytes) {
    uint16_t size = 0;
    if (!U16(size) || size > max_bytes || rest_.size() < size) return false;
    value.assign(rest_.substr(0, size));
    rest_.remove_prefix(size);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace

Status ValidateUsage(const Usage& usage) {
  if (usage.size() > kMaxUsageNodes) {
    return Status::InvalidArgument("usage names " + std::to_string(usage.size()) + " nodes, more than the " +
                                   std::to_string(kMaxUsageNodes) + " a provider may have");
  }
  const auto name_ok = [](const std::string& name) { return name.size() <= kMaxUsageNameBytes; };
  for (const auto& [name, node] : usage) {
    if (!name_ok(name)) {
      return Status::InvalidArgument("usage node name is longer than " + std::to_string(kMaxUsageNameBytes) +
                                     " bytes");
    }
    if (node.gpus.size() > kMaxUsageGpuTypes) {
      return Status::InvalidArgument("usage of node '" + name + "' has " + std::to_string(node.gpus.size()) +
                                     " GPU types, more than the " + std::to_string(kMaxUsageGpuTypes) +
                                     " a provider node may have");
    }
    for (const auto& [device, count] : node.gpus) {
      if (!name_ok(device.vendor) || !name_ok(device.model) || !name_ok(device.mig_profile)) {
        return Status::InvalidArgument("usage of node '" + name + "' names a GPU vendor or model longer than " +
                                       std::to_string(kMaxUsageNameBytes) + " bytes");
      }
      if (device.interface > market::GpuInterface::kSxm) {
        return Status::InvalidArgument("usage of node '" + name + "' names an unknown GPU interface");
      }
    }
  }
  return Status::Ok();
}

Result<std::string> EncodeUsage(const Usage& usage) {
  GPUMART_RETURN_IF_ERROR(ValidateUsage(usage));
  std::string out;
  AppendU16(out, static_cast<uint16_t>(usage.size()));
  for (const auto& [name, node] : usage) {
    AppendString(out, name);
    AppendU64(out, node.cpu_millis);
    AppendU64(out, node.memory_bytes);
    AppendU64(out, node.storage_bytes);
    AppendU16(out, static_cast<uint16_t>(node.gpus.size()));
    for (const auto& [device, count] : node.gpus) {
      AppendString(out, device.vendor);
      AppendString(out, device.model);
      AppendU64(out, device.ram_bytes);
      // A fractional device (docs/FRACTIONAL.md) sets kFractionalFlag in the interface byte and
      // adds profile_len:2 profile shared:1 after it; a whole GPU is written as before, so usage
      // stored before fractions existed reads unchanged.
      const bool fractional = !device.mig_profile.empty() || device.shared;
      out.push_back(static_cast<char>(static_cast<uint8_t>(device.interface) | (fractional ? kFractionalFlag : 0)));
      if (fractional) {
        AppendString(out, device.mig_profile);
        out.push_back(device.shared ? 1 : 0);
      }
      AppendU64(out, count);
    }
  }
  return out;
}

Result<Usage> DecodeUsage(std::string_view bytes) {
  Reader reader(bytes);
  Usage usage;
  uint16_t node_count = 0;
  if (!reader.U16(node_count) || node_count > kMaxUsageNodes) return Status::Corruption("bad usage node count");
  for (uint16_t i = 0; i < node_count; ++i) {
    std::string name;
    NodeUsage node;
    uint16_t type_count = 0;
    if (!reader.String(name, kMaxUsageNameBytes) || !reader.U64(node.cpu_millis) ||
        !reader.U64(node.memory_bytes) || !reader.U64(node.storage_bytes) || !reader.U16(type_count) ||
        type_count > kMaxUsageGpuTypes) {
      return Status::Corruption("bad usage node entry");
    }
    for (uint16_t t = 0; t < type_count; ++t) {
      market::DeviceType device;
      uint8_t interface = 0;
      uint64_t count = 0;
      uint8_t shared = 0;
      if (!reader.String(device.vendor, kMaxUsageNameBytes) || !reader.String(device.model, kMaxUsageNameBytes) ||
          !reader.U64(device.ram_bytes) || !reader.U8(interface)) {
        return Status::Corruption("bad usage GPU entry");
      }
      if ((interface & kFractionalFlag) != 0) {
        interface &= static_cast<uint8_t>(~kFractionalFlag);
        if (!reader.String(device.mig_profile, kMaxUsageNameBytes) || !reader.U8(shared) || shared > 1 ||
            (device.mig_profile.empty() && shared == 0)) {
          return Status::Corruption("bad usage GPU entry");
        }
        device.shared = shared == 1;
      }
      if (!reader.U64(count) || interface > static_cast<uint8_t>(market::GpuInterface::kSxm)) {
        return Status::Corruption("bad usage GPU entry");
      }
      device.interface = static_cast<market::GpuInterface>(interface);
      node.gpus[device] = count;
    }
    usage[name] = std::move(node);
  }
  if (!reader.done()) return Status::Corruption("trailing bytes after usage");
  return usage;
}

std::vector<market::NodeCapacity> SubtractUsage(const std::vector<market::NodeCapacity>& inventory,
                                                const Usage& used) {
  std::vector<market::NodeCapacity> free = inventory;
  for (auto& node : free) {
    const auto it = used.find(node.name);
    if (it == used.end()) continue;
    const NodeUsage& taken = it->second;
    node.cpu_millis = SaturatingSub(node.cpu_millis, taken.cpu_millis);
    node.memory_bytes = SaturatingSub(node.memory_bytes, taken.memory_bytes);
    node.storage_bytes = SaturatingSub(node.storage_bytes, taken.storage_bytes);
    for (auto& devices : node.gpus) {
      const market::DeviceType type{devices.vendor, devices.model, devices.ram_bytes, devices.interface,
                                    devices.mig_profile, devices.shared};
      const auto gpus = taken.gpus.find(type);
      if (gpus == taken.gpus.end()) continue;
      devices.count = static_cast<uint32_t>(SaturatingSub(devices.count, gpus->second));
    }
  }
  return free;
}

}  // namespace gpumart::ledger
