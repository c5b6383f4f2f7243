// One actor's timers: one-shot and periodic, cancellable, ordered by deadline then creation.
// Pure bookkeeping on monotonic milliseconds; the actor loop turns NextDeadline() into its poll
// timeout (never a sleep), and the test harness fires timers by advancing a ManualClock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>

namespace gpumart::actors {

using TimerId = uint64_t;

class TimerQueue {
 public:
  using Callback = std::function<void()>;

  // period_ms == 0 makes a one-shot timer. Ids are never reused.
  TimerId Add(int64_t deadline_ms, int64_t period_ms, Callback callback);
  // False when the id is unknown, already fired (one-shot) or already cancelled.
  bool Cancel(TimerId id);
  void Clear();

  std::optional<int64_t> NextDeadline() const;
  size_t size() const { return deadlines_.size(); }

  // Runs every timer due at now_ms, earliest first. A periodic timer is rescheduled at
  // deadline + period before its callback runs (so the callback may cancel it), and fires again
  // in the same call if that is still due: simulated time that jumps fires every period.
  // Callbacks may add and cancel timers. Returns how many callbacks ran.
  size_t FireDue(int64_t now_ms);
  // Like FireDue, but wraps each callback (the actor uses it for supervision).
  size_t FireDue(int64_t now_ms, const std::function<void(const Callback&)>& invoke);

 private:
  struct Entry {
    int64_t period_ms;
    std::shared_ptr<Callback> callback;  // shared so a callback survives cancelling itself
  };
  std::map<std::pair<int64_t, TimerId>, Entry> queue_;
  std::unordered_map<TimerId, int64_t> deadlines_;
  TimerId next_id_ = 1;
};

}  // namespace gpumart::actors
