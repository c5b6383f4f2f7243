#include "ledger/reputation.h"

#include <algorithm>

#include "market/checked_math.h"

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
    // A preemption the ledger applied kept the rules the tenant agreed to: the spot deal itself.
    // One that broke them is never applied; it counts as a violation instead.
    case market::CloseReason::kPreempted:
      return LeaseOutcome::kNeutral;
  }
  return LeaseOutcome::kNeutral;
}

namespace {
// a + weight * count, or UINT64_MAX when that does not fit.
uint64_t Weighted(uint64_t a, uint64_t count, uint64_t weight) {
  uint64_t weighted = 0;
  uint64_t sum = 0;
  if (!market::CheckedMul(count, weight, weighted) || !market::CheckedAdd(a, weighted, sum)) {
    return UINT64_MAX;
  }
  return sum;
}
}  // namespace

uint32_t ReputationPpm(const LeaseOutcomes& outcomes, const AuditVerdicts& verdicts) {
  uint64_t completed = Weighted(outcomes.completed, verdicts.passes, kAttestationWeight);
  uint64_t failed = Weighted(Weighted(outcomes.failed, verdicts.fails, kAttestationWeight), outcomes.violations,
                             kViolationWeight);
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

std::vector<market::PublicKey> NamedAuditors(const market::SignedBy& signed_by) {
  std::vector<market::PublicKey> keys;
  for (const auto* list : {&signed_by.all_of, &signed_by.any_of}) {
    for (const std::string& entry : *list) {
      const auto key = market::FromHex<market::kPublicKeyBytes>(entry);
      if (key && std::find(keys.begin(), keys.end(), *key) == keys.end()) keys.push_back(*key);
    }
  }
  return keys;
}

}  // namespace gpumart::ledger
