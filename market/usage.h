// What a lease or a reservation takes from a provider's nodes, and its arithmetic. One type for
// the bid engine (its running total of what is in use) and the ledger (what a stored lease or
// reservation holds), so both compute it the same way.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

// What one provider node gives to one lease or reservation.
struct NodeUsage {
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;
  std::map<DeviceType, uint64_t> gpus;  // device type -> GPUs
  bool operator==(const NodeUsage&) const = default;
};
// Keyed by provider node name.
using Usage = std::map<std::string, NodeUsage>;

// What `services` (a bid's or lease's assignments) take, given the order they answer: per
// placement, replicas x the service's cpu, memory, storage and GPU units of its device.
// kInvalidArgument when an assignment names a service the order lacks, or a GPU service names no
// device.
Result<Usage> UsageOf(const Order& order, const std::vector<ServiceAssignment>& services);

// Adds `more` into `total` (saturating).
void AddUsage(Usage& total, const Usage& more);

// Takes `less` out of `total`, never below zero, per node and resource; a GPU type or a node left
// with nothing is erased, so an emptied total compares equal to Usage{}.
void RemoveUsage(Usage& total, const Usage& less);

}  // namespace gpumart::market
