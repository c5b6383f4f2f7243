// Tenant-side bid checking: a bid is a provider's signed claim about what it will give for an
// order (which option of each service, which device, on which nodes, at what price). The
// signature proves who claims it, not that it is true; ranking trusts the claim, so every bid is
// checked against its order before it is ranked (DESIGN.md, "Matching semantics"), and a bid
// that lies is dropped and counted by reason. docs/MATCHING.md lists the rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "market/types.h"

namespace gpumart::bidding {

// Why a bid was dropped. Every reason is a rule an honest bid never breaks.
enum class BidProblem : uint8_t {
  kNone = 0,
  kWrongOrder,          // answers another order
  kWrongGroup,          // names another group than the order's
  kWrongDenom,          // priced in another denom than the order's caps
  kOverCap,             // price_per_hour above the order's cap (CapPerHour)
  kUnknownService,      // assigns a service the order does not have
  kDuplicateService,    // assigns one service twice
  kMissingService,      // leaves a service of the order unassigned
  kGpuAssignment,       // a GPU service without option and device, or a service without GPUs with one
  kOptionOutOfRange,    // claims an option index the service does not have
  kDeviceMismatch,      // its device does not satisfy the option it claims
  kReplicaCount,        // replicas over the service's placements differ from its count
  kDuplicateNode,       // one service's placements name a node twice
  kExpired,             // the bid or its reservation has expired
  kDuplicateBidder,     // a second bid from the same provider key for the order
  kInterruptibility,    // a spot bid for a regular order, or a regular bid for an interruptible one
};
inline constexpr size_t kBidProblemCount = static_cast<size_t>(BidProblem::kInterruptibility) + 1;
std::string_view ToString(BidProblem problem);

struct BidCheck {
  BidProblem problem = BidProblem::kNone;
  std::string detail;  // which service, node, option...
  bool ok() const { return problem == BidProblem::kNone; }
};

// Checks what a bid claims against the order it answers (the order's id and time are the
// caller's: see BidSelection). Pure: no I/O, no clock. CUDA is not checked: a bid's device
// states no CUDA version, so the provider's promise of the order's cuda_min cannot be checked
// from the bid alone.
BidCheck CheckBidAgainstOrder(const market::Order& order, const market::Bid& bid);

// The option ranks a checked bid stands for: per GPU service of the order, in the order's
// service order, the option index the bid assigns it (what market::Candidate::ranks holds).
std::vector<uint32_t> OptionRanks(const market::Order& order, const market::Bid& bid);

}  // namespace gpumart::bidding
