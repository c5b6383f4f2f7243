// The one clock interface (header-only, in the lowest layer so every actor can take one). Everything that needs the time (message creation and expiry,
// reservation TTLs, lease billing, timers) takes a Clock so tests can control it. Pure functions
// in market/ take `now_ms` parameters instead, so they stay deterministic.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace gpumart {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch (what goes on the wire).
  virtual int64_t NowMs() const = 0;
  // Monotonic milliseconds, for durations and timers; never goes backwards.
  virtual int64_t MonotonicMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static SystemClock& Instance() {
    static SystemClock clock;
    return clock;
  }
};

// A clock that moves only when told to. Thread-safe so a test can advance it while actors read it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  int64_t MonotonicMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  void Set(int64_t ms) { now_ms_.store(ms, std::memory_order_relaxed); }
  void Advance(int64_t ms) { now_ms_.fetch_add(ms, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace gpumart
