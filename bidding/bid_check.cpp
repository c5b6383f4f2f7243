#include "bidding/bid_check.h"

#include <set>

#include "market/match.h"

namespace gpumart::bidding {

std::string_view ToString(BidProblem problem) {
  switch (problem) {
    case BidProblem::kNone: return "none";
    case BidProblem::kWrongOrder: return "wrong-order";
    case BidProblem::kWrongGroup: return "wrong-group";
    case BidProblem::kWrongDenom: return "wrong-denom";
    case BidProblem::kInterruptibility: return "interruptibility";
    case BidProblem::kOverCap: return "over-cap";
    case BidProblem::kUnknownService: return "unknown-service";
    case BidProblem::kDuplicateService: return "duplicate-service";
    case BidProblem::kMissingService: return "missing-service";
    case BidProblem::kGpuAssignment: return "gpu-assignment";
    case BidProblem::kOptionOutOfRange: return "option-out-of-range";
    case BidProblem::kDeviceMismatch: return "device-mismatch";
    case BidProblem::kReplicaCount: return "replica-count";
    case BidProblem::kDuplicateNode: return "duplicate-node";
    case BidProblem::kExpired: return "expired";
    case BidProblem::kDuplicateBidder: return "duplicate-bidder";
  }
  return "unknown";
}

namespace {

BidCheck Problem(BidProblem problem, std::string detail) { return BidCheck{problem, std::move(detail)}; }

// The order's service `name` is assigned to, or nullptr.
const market::ServiceRequest* FindService(const market::Order& order, std::string_view name) {
  for (const auto& service : order.services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

// The bid's assignment of `service`, or nullptr.
const market::ServiceAssignment* FindAssignment(const market::Bid& bid, std::string_view service) {
  for (const auto& assignment : bid.services) {
    if (assignment.service == service) return &assignment;
  }
  return nullptr;
}

BidCheck CheckAssignment(const market::ServiceRequest& service, const market::ServiceAssignment& assignment) {
  const std::string& name = service.name;
  const market::GpuRequest& gpu = service.resources.gpu;
  if (assignment.option.has_value() != assignment.device.has_value() ||
      assignment.option.has_value() != (gpu.units > 0)) {
    return Problem(BidProblem::kGpuAssignment,
                   "service '" + name + "' asks for " + std::to_string(gpu.units) +
                       " GPUs per replica; the bid gives " + (assignment.device ? "a device" : "no device") +
                       (assignment.option ? " and an option" : " and no option"));
  }
  if (assignment.option) {
    const uint32_t option = *assignment.option;
    if (option >= gpu.options.size()) {
      return Problem(BidProblem::kOptionOutOfRange, "service '" + name + "' has " + std::to_string(gpu.options.size()) +
                                                        " GPU options; the bid claims option " + std::to_string(option));
    }
    const market::DeviceType& device = *assignment.device;
    if (!market::DeviceSatisfies(gpu.options[option], device)) {
      return Problem(BidProblem::kDeviceMismatch, "service '" + name + "': " + device.vendor + " " + device.model +
                                                      " " + std::to_string(device.ram_bytes) + " bytes " +
                                                      std::string(market::ToString(device.interface)) +
                                                      " does not satisfy option " + std::to_string(option));
    }
  }
  uint64_t replicas = 0;
  std::set<std::string_view> nodes;
  for (const auto& placement : assignment.placements) {
    if (!nodes.insert(placement.node).second) {
      return Problem(BidProblem::kDuplicateNode, "service '" + name + "' names node '" + placement.node + "' twice");
    }
    replicas += placement.replicas;  // at most kMaxPlacements x 2^32: no overflow
  }
  if (replicas != service.count) {
    return Problem(BidProblem::kReplicaCount, "service '" + name + "' has count " + std::to_string(service.count) +
                                                  "; the bid places " + std::to_string(replicas) + " replicas");
  }
  return {};
}

}  // namespace

BidCheck CheckBidAgainstOrder(const market::Order& order, const market::Bid& bid) {
  if (bid.group != order.group) {
    return Problem(BidProblem::kWrongGroup, "bid for group '" + bid.group + "', order group '" + order.group + "'");
  }
  // A bid may be in any denom the order caps in, and is held to the cap in that denom.
  const std::optional<uint64_t> cap = order.CapPerHourIn(bid.denom);
  if (!cap) {
    std::string denoms;
    for (const std::string& denom : order.Denoms()) denoms += (denoms.empty() ? "'" : ", '") + denom + "'";
    return Problem(BidProblem::kWrongDenom, "bid in '" + bid.denom + "', order caps in " + denoms);
  }
  // A spot lease may be preempted: only a tenant that asked for one may get it, and its cap is
  // then the spot cap.
  if (bid.spot.has_value() != order.interruptible) {
    return Problem(BidProblem::kInterruptibility, order.interruptible ? "a regular bid for an interruptible order"
                                                                      : "a spot bid for a regular order");
  }
  if (bid.price_per_hour > *cap) {
    return Problem(BidProblem::kOverCap, "price " + std::to_string(bid.price_per_hour) + " " + bid.denom +
                                             " per hour is over the cap " + std::to_string(*cap));
  }
  std::set<std::string_view> assigned;
  for (const auto& assignment : bid.services) {
    const market::ServiceRequest* service = FindService(order, assignment.service);
    if (service == nullptr) {
      return Problem(BidProblem::kUnknownService, "the order has no service '" + assignment.service + "'");
    }
    if (!assigned.insert(assignment.service).second) {
      return Problem(BidProblem::kDuplicateService, "service '" + assignment.service + "' is assigned twice");
    }
    if (BidCheck check = CheckAssignment(*service, assignment); !check.ok()) return check;
  }
  for (const auto& service : order.services) {
    if (!assigned.contains(service.name)) {
      return Problem(BidProblem::kMissingService, "service '" + service.name + "' is not assigned");
    }
  }
  return {};
}

std::vector<uint32_t> OptionRanks(const market::Order& order, const market::Bid& bid) {
  std::vector<uint32_t> ranks;
  for (const auto& service : order.services) {
    if (service.resources.gpu.units == 0) continue;
    const market::ServiceAssignment* assignment = FindAssignment(bid, service.name);
    if (assignment != nullptr && assignment->option) ranks.push_back(*assignment->option);
  }
  return ranks;
}

}  // namespace gpumart::bidding
