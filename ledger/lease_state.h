// The lease state machine and the billing rule. Pure functions: the store applies them inside
// its write path, verify re-applies them to what is stored.
//
//   (none) --record--> active --close(tenant|provider, reason)--> closed
//
// Every other (state, event) pair is illegal and rejected with a Status saying which.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "market/codec.h"
#include "market/status.h"
#include "market/types.h"

namespace gpumart::ledger {

// Stored as one byte in ix/ls/ keys: never renumber.
enum class LeaseState : uint8_t { kActive = 1, kClosed = 2 };
enum class LeaseEvent : uint8_t { kRecord, kClose };

std::string_view ToString(LeaseState state);
std::optional<LeaseState> ParseLeaseState(std::string_view text);
std::string_view ToString(LeaseEvent event);

// The state after `event` from `from` (nullopt = no such lease yet), or why it is illegal:
// kAlreadyExists for recording a lease twice, kFailedPrecondition for anything else illegal.
Result<LeaseState> NextLeaseState(std::optional<LeaseState> from, LeaseEvent event);

// Who may close a lease for which reason: kTenantClosed only by the tenant, kProviderClosed,
// kProviderFailure and kPreempted only by the provider, the others by either. A signer that is neither party
// is refused (kPermissionDenied).
Status CheckCloser(const market::PublicKey& signer, const market::PublicKey& tenant,
                   const market::PublicKey& provider, market::CloseReason reason);

// A preemption Close (reason kPreempted) may cite a preemptor Lease signed at most this long
// before the Close itself: the preemption answers a lease just made, not an old one.
constexpr int64_t kMaxPreemptionLeadMs = 10 * 60 * 1000;

// The rules of a preemption every node checks from signed data alone (docs/SPOT.md, "What every
// node checks"), for `close` (reason kPreempted, signed by the lease's provider: CheckCloser)
// of the lease `lease_provider` signed with the bid terms `lease_spot`:
//   1. the lease is interruptible (its bid states SpotTerms);
//   2. the notice is honoured: closed_ms >= the Close's envelope created_ms + notice_ms;
//   3. the preemptor lease verifies completely (market::OpenLease: all three signatures);
//   4. it is signed by the same provider, and is not interruptible;
//   5. it was signed within [created_ms - kMaxPreemptionLeadMs, created_ms] of the Close, and it
//      starts no sooner than the preemption takes effect (start_ms >= closed_ms).
// kFailedPrecondition naming the rule broken. What no other node can check (that the preemptor
// would not otherwise have fit) is the provider's word.
Status CheckPreemption(const market::Signed<market::Close>& close, const market::PublicKey& lease_provider,
                       const std::optional<market::SpotTerms>& lease_spot);

// What a closed lease owes: the duration rounded down to whole seconds, times the hourly price,
// rounded down to an integer amount.
struct Billing {
  int64_t duration_ms = 0;   // a multiple of 1000
  uint64_t amount_owed = 0;  // micro-units of the lease's denom
  bool operator==(const Billing&) const = default;
};
constexpr int64_t kMsPerSecond = 1000;
constexpr uint64_t kSecondsPerHour = 3600;
// market::BillBetween (the one billing formula) as the ledger stores it: kInvalidArgument when
// closed before it started, kLimitExceeded when the amount overflows 64 bits (only for absurd
// prices or durations).
Result<Billing> ComputeBilling(uint64_t price_per_hour, int64_t start_ms, int64_t closed_ms);

// bill/<lease_id> value: duration_ms:8 amount_owed:8 (big-endian).
constexpr size_t kBillingBytes = 16;
std::string EncodeBilling(const Billing& billing);
Result<Billing> DecodeBilling(std::string_view bytes);

}  // namespace gpumart::ledger
