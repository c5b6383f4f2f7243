// Overflow-safe arithmetic for numbers a peer chose (times, amounts, sizes). Signed overflow is
// undefined behaviour and unsigned overflow silently wraps, so code that touches a peer's numbers
// uses these instead of + - * (one place, so every such check is done the same way).
#pragma once

#include <cstdint>
#include <limits>

namespace gpumart::market {

// a + b, clamped to [INT64_MIN, INT64_MAX]. For times: "now + skew" near the end of time stays
// the end of time instead of wrapping into the past.
inline int64_t SaturatingAddMs(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

// later - earlier for earlier <= later, exact: the distance between two int64 values always fits
// in uint64 even when it does not fit in int64 (INT64_MAX - INT64_MIN).
inline uint64_t MsBetween(int64_t earlier, int64_t later) {
  return static_cast<uint64_t>(later) - static_cast<uint64_t>(earlier);
}

// a + b and a * b, or false when the result does not fit in 64 bits.
inline bool CheckedAdd(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }
inline bool CheckedMul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

// a + b, a * b and a - b clamped to [0, UINT64_MAX]: for totals of a peer's sizes and counts,
// where "more than can be counted" is the right answer (it fits nowhere and costs too much).
inline uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? std::numeric_limits<uint64_t>::max() : sum;
}
inline uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  uint64_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? std::numeric_limits<uint64_t>::max() : product;
}
inline uint64_t SaturatingSub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

}  // namespace gpumart::market
