// Shared helpers for the actor runtime tests: bounded waits, a gate to hold an actor inside a
// handler (so its mailbox fills), payloads that count how many copies are alive (leak checks).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/actor.h"

namespace gpumart::actors::testing {

using std::chrono::milliseconds;
// Every wait in these tests is bounded by this; none is used to order events.
constexpr milliseconds kWaitLimit{10'000};

class Latch {
 public:
  explicit Latch(int count = 1) : count_(count) {}
  void CountDown() {
    std::lock_guard lock(mutex_);
    if (count_ > 0 && --count_ == 0) cv_.notify_all();
  }
  bool WaitFor(milliseconds limit = kWaitLimit) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, [&] { return count_ == 0; });
  }
  bool done() {
    std::lock_guard lock(mutex_);
    return count_ == 0;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_;
};

// Holds an actor inside a handler until the test opens it.
struct Gate {
  Latch entered;
  Latch open;
};

struct LiveCounter {
  std::atomic<int> live{0};
};

// A move-only payload that counts live instances, to prove dropped and discarded messages are freed.
class Tracked {
 public:
  Tracked(LiveCounter& counter, int value) : counter_(&counter), value_(value) { counter_->live.fetch_add(1); }
  Tracked(Tracked&& other) noexcept : counter_(std::exchange(other.counter_, nullptr)), value_(other.value_) {}
  Tracked& operator=(Tracked&&) = delete;
  ~Tracked() {
    if (counter_ != nullptr) counter_->live.fetch_sub(1);
  }
  int value() const { return value_; }

 private:
  LiveCounter* counter_;
  int value_;
};

// Messages understood by Recorder.
struct Value {
  int value;
};
struct GetValues {};
struct Hold {
  Gate* gate;
};
struct Throw {};
struct Break {};
struct BreakViaContext {};
struct Unknown {};

// Records Value and Tracked payloads; misbehaves on request.
class Recorder final : public Actor {
 public:
  void Init(Handlers& on, ActorContext&) override {
    on.On<Value>([this](Value& v) { values_.push_back(v.value); });
    on.On<Tracked>([this](Tracked& t) { values_.push_back(t.value()); });
    on.OnRequest<GetValues>([this](GetValues&) { return values_; });
    on.On<Hold>([](Hold& hold) {
      hold.gate->entered.CountDown();
      hold.gate->open.WaitFor();
    });
    on.On<Throw>([](Throw&) { throw std::runtime_error("boom"); });
    on.OnRequest<Throw>([](Throw&) -> int { throw std::runtime_error("request boom"); });
    on.On<Break>([](Break&) { throw BrokenStateError("invariant violated"); });
    on.On<BreakViaContext>([](BreakViaContext&, ActorContext& ctx) { ctx.DeclareStateBroken(); });
  }
  const std::vector<int>& values() const { return values_; }

 private:
  std::vector<int> values_;
};

inline ActorFactory RecorderFactory() {
  return [] { return std::make_unique<Recorder>(); };
}

}  // namespace gpumart::actors::testing
