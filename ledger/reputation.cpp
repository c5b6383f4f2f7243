#include "ledger/reputation.h"

namespace gpumart::ledger {

LeaseOutcome OutcomeOf(market::CloseReason reason) {
  switch (reason) {
    case market::CloseReason::kTenantClosed:
    case market::CloseReason::kExpired:
      return LeaseOutcome::kCompleted;
    case market::CloseReason::kProviderClosed:
    case market::CloseReason::kProviderFailure:
      return LeaseOutcome::kFailed;
    case market::CloseReason::kInsufficientFunds:
      return LeaseOutcome::kNeutral;
  }
  return LeaseOutcome::kNeutral;
}

uint32_t ReputationPpm(const LeaseOutcomes& outcomes) {
  uint64_t completed = outcomes.completed;
  uint64_t failed = outcomes.failed;
  // completed + failed cannot overflow once each is below 2^63; halve first if either is not.
  while (completed > kMaxCountedOutcomes || failed > kMaxCountedOutcomes ||
         completed + failed > kMaxCountedOutcomes) {
    completed /= 2;
    failed /= 2;
  }
  const uint64_t numerator = (completed + kPriorCompleted) * kReputationScalePpm;
  const uint64_t denominator = completed + failed + kPriorCompleted + kPriorFailed;
  return static_cast<uint32_t>(numerator / denominator);
}

}  // namespace gpumart::ledger
