#include "market/billing.h"

#include <algorithm>
#include <limits>
#include <string>

namespace gpumart::market {
namespace {

constexpr uint64_t kMsPerSecond = 1000;
constexpr uint64_t kSecondsPerHour = 3600;

}  // namespace

Result<Accrued> BillBetween(uint64_t price_per_hour, int64_t start_ms, int64_t end_ms) {
  if (end_ms < start_ms) {
    return Status::InvalidArgument("close time " + std::to_string(end_ms) + " is before the lease start " +
                                   std::to_string(start_ms));
  }
  // Unsigned: the distance between two int64 values always fits.
  const uint64_t elapsed_ms = static_cast<uint64_t>(end_ms) - static_cast<uint64_t>(start_ms);
  const uint64_t seconds = elapsed_ms / kMsPerSecond;
  // price * seconds / 3600 without a 128-bit type: price = q*3600 + r, so the floor is
  // q*seconds + floor(r*seconds/3600), and r < 3600 keeps r*seconds small.
  const uint64_t whole_hours_rate = price_per_hour / kSecondsPerHour;
  const uint64_t remainder_rate = price_per_hour % kSecondsPerHour;
  uint64_t whole_part = 0;
  uint64_t remainder_product = 0;
  uint64_t amount = 0;
  if (__builtin_mul_overflow(whole_hours_rate, seconds, &whole_part) ||
      __builtin_mul_overflow(remainder_rate, seconds, &remainder_product) ||
      __builtin_add_overflow(whole_part, remainder_product / kSecondsPerHour, &amount) ||
      seconds > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / kMsPerSecond) {
    return Status::LimitExceeded("amount owed overflows 64 bits");
  }
  return Accrued{static_cast<int64_t>(seconds * kMsPerSecond), amount};
}

int64_t BilledUntilMs(const Lease& lease, const Close* close, int64_t now_ms) {
  if (close != nullptr) return close->closed_ms;
  return std::max(now_ms, lease.start_ms);
}

Result<Accrued> AccruedCost(const Lease& lease, const Close* close, int64_t now_ms) {
  return BillBetween(lease.price_per_hour, lease.start_ms, BilledUntilMs(lease, close, now_ms));
}

}  // namespace gpumart::market
