// What a lease costs: the one billing formula, for everyone who records, checks, shows or sums
// it (the ledger's bill/ records and `gpumart ledger verify`, `gpumart leases`, a provider's
// status and metrics), so they never disagree (docs/LEDGER.md, "Billing").
#pragma once

#include <cstdint>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

struct Accrued {
  int64_t duration_ms = 0;  // billed time: whole seconds, rounded down (a multiple of 1000)
  uint64_t amount = 0;      // micro-units of the lease's denom
  bool operator==(const Accrued&) const = default;
};

// price_per_hour for the time from start_ms to end_ms: floor(price_per_hour x seconds / 3600)
// with seconds = floor((end_ms - start_ms) / 1000). Integers only. kInvalidArgument when
// end_ms < start_ms; kLimitExceeded when the amount does not fit in 64 bits.
Result<Accrued> BillBetween(uint64_t price_per_hour, int64_t start_ms, int64_t end_ms);

// When billing of `lease` ends: at its close (`close` non-null: closed_ms), else at now_ms, and
// never before the lease started.
int64_t BilledUntilMs(const Lease& lease, const Close* close, int64_t now_ms);

// The lease's cost from its start until BilledUntilMs. A close dated before the lease's start
// is kInvalidArgument (the ledger refuses such a close); an open lease before its start costs 0.
Result<Accrued> AccruedCost(const Lease& lease, const Close* close, int64_t now_ms);

}  // namespace gpumart::market
