#include "market/usage.h"

#include <algorithm>

#include "market/checked_math.h"

namespace gpumart::market {

Result<Usage> UsageOf(const Order& order, const std::vector<ServiceAssignment>& services) {
  Usage usage;
  for (const ServiceAssignment& assignment : services) {
    const auto service = std::find_if(order.services.begin(), order.services.end(),
                                      [&](const ServiceRequest& s) { return s.name == assignment.service; });
    if (service == order.services.end()) {
      return Status::InvalidArgument("assignment names service '" + assignment.service + "', which the order lacks");
    }
    const Resources& resources = service->resources;
    if (resources.gpu.units > 0 && !assignment.device) {
      return Status::InvalidArgument("service '" + assignment.service + "' needs GPUs but names no device");
    }
    for (const auto& placement : assignment.placements) {
      NodeUsage& node = usage[placement.node];
      node.cpu_millis = SaturatingAdd(node.cpu_millis, SaturatingMul(placement.replicas, resources.cpu_millis));
      node.memory_bytes = SaturatingAdd(node.memory_bytes, SaturatingMul(placement.replicas, resources.memory_bytes));
      node.storage_bytes =
          SaturatingAdd(node.storage_bytes, SaturatingMul(placement.replicas, resources.StorageBytes()));
      if (resources.gpu.units > 0) {
        uint64_t& gpus = node.gpus[*assignment.device];
        gpus = SaturatingAdd(gpus, SaturatingMul(placement.replicas, resources.gpu.units));
      }
    }
  }
  return usage;
}

void AddUsage(Usage& total, const Usage& more) {
  for (const auto& [name, node] : more) {
    NodeUsage& into = total[name];
    into.cpu_millis = SaturatingAdd(into.cpu_millis, node.cpu_millis);
    into.memory_bytes = SaturatingAdd(into.memory_bytes, node.memory_bytes);
    into.storage_bytes = SaturatingAdd(into.storage_bytes, node.storage_bytes);
    for (const auto& [device, count] : node.gpus) into.gpus[device] = SaturatingAdd(into.gpus[device], count);
  }
}

void RemoveUsage(Usage& total, const Usage& less) {
  for (const auto& [name, node] : less) {
    const auto it = total.find(name);
    if (it == total.end()) continue;
    NodeUsage& from = it->second;
    from.cpu_millis = SaturatingSub(from.cpu_millis, node.cpu_millis);
    from.memory_bytes = SaturatingSub(from.memory_bytes, node.memory_bytes);
    from.storage_bytes = SaturatingSub(from.storage_bytes, node.storage_bytes);
    for (const auto& [device, count] : node.gpus) {
      const auto gpus = from.gpus.find(device);
      if (gpus == from.gpus.end()) continue;
      gpus->second = SaturatingSub(gpus->second, count);
      if (gpus->second == 0) from.gpus.erase(gpus);
    }
    if (from == NodeUsage{}) total.erase(it);
  }
}

}  // namespace gpumart::market
