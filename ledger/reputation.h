// A provider's reputation as this node can check it: the outcomes of the provider's leases in
// this node's ledger, and the attestations about it signed by auditors the tenant names. Never
// what a provider says about itself (no message carries a reputation).
// The formula is in docs/MATCHING.md, "Reputation"; keep the two in step.
#pragma once

#include <cstdint>
#include <vector>

#include "market/types.h"

namespace gpumart::ledger {

// What one closed lease says about its provider.
enum class LeaseOutcome : uint8_t {
  kCompleted,  // ran until the tenant ended it or it expired
  kFailed,     // the provider ended it (provider-failure, provider-closed)
  kNeutral,    // ended for the tenant's doing (insufficient-funds): says nothing about the provider
};
LeaseOutcome OutcomeOf(market::CloseReason reason);

// A provider's leases in one ledger, by outcome.
struct LeaseOutcomes {
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t neutral = 0;
  uint64_t active = 0;  // not closed yet: no outcome
  // Preemption Closes the provider signed that broke the rules (ledger::CheckPreemption): each is
  // refused and kept as evidence (keys::kViolation).
  uint64_t violations = 0;
  bool operator==(const LeaseOutcomes&) const = default;
};

constexpr uint32_t kReputationScalePpm = 1'000'000;
// The prior: every provider starts as if it had completed one lease and failed one, so a
// newcomer is 500'000 (neither trusted nor condemned); no count reaches 1'000'000, and 0 only
// after about a million failures without one completion.
constexpr uint64_t kPriorCompleted = 1;
constexpr uint64_t kPriorFailed = 1;
// Above this many counted outcomes both counts are halved (keeping their ratio) until they fit,
// so the arithmetic stays within 64 bits. Far beyond any real ledger.
constexpr uint64_t kMaxCountedOutcomes = 1ull << 40;

// The verdicts of the attestations that count for one tenant: the latest of each auditor the
// tenant names, no other (LedgerStore::Attestations).
struct AuditVerdicts {
  uint64_t passes = 0;
  uint64_t fails = 0;
  bool operator==(const AuditVerdicts&) const = default;
};
// Each counted attestation weighs as much as this many lease outcomes: one auditor the tenant
// trusts outweighs a handful of leases a provider could have dealt to itself.
constexpr uint64_t kAttestationWeight = 10;

// A broken preemption rule weighs as much as this many failed leases: it is signed proof of
// misconduct, not a failure that may have been bad luck.
constexpr uint64_t kViolationWeight = 10;

// With completed' = completed + kAttestationWeight * passes and failed' = failed +
// kAttestationWeight * fails + kViolationWeight * violations (each saturating at 2^64 - 1):
// floor((completed' + kPriorCompleted) * 1'000'000 / (completed' + failed' + kPriorCompleted +
// kPriorFailed)). Integer arithmetic only; neutral and active leases do not count.
uint32_t ReputationPpm(const LeaseOutcomes& outcomes, const AuditVerdicts& verdicts = {});

// The auditors an order names (its signedBy all_of and any_of): every entry that is an Ed25519
// public key written as 64 hex digits, each key once, in order of first appearance. Entries that
// are not keys are ignored for reputation (they still take part in matching's signedBy check).
std::vector<market::PublicKey> NamedAuditors(const market::SignedBy& signed_by);

}  // namespace gpumart::ledger
