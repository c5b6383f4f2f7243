#include "actors/timer_queue.h"

#include <cassert>

namespace gpumart::actors {

TimerId TimerQueue::Add(int64_t deadline_ms, int64_t period_ms, Callback callback) {
  assert(period_ms >= 0);
  const TimerId id = next_id_++;
  queue_.emplace(std::make_pair(deadline_ms, id),
                 Entry{period_ms, std::make_shared<Callback>(std::move(callback))});
  deadlines_.emplace(id, deadline_ms);
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  auto it = deadlines_.find(id);
  if (it == deadlines_.end()) return false;
  queue_.erase({it->second, id});
  deadlines_.erase(it);
  return true;
}

void TimerQueue::Clear() {
  queue_.clear();
  deadlines_.clear();
}

std::optional<int64_t> TimerQueue::NextDeadline() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.begin()->first.first;
}

size_t TimerQueue::FireDue(int64_t now_ms) {
  return FireDue(now_ms, [](const Callback& callback) { callback(); });
}

size_t TimerQueue::FireDue(int64_t now_ms, const std::function<void(const Callback&)>& invoke) {
  size_t fired = 0;
  while (!queue_.empty() && queue_.begin()->first.first <= now_ms) {
    auto node = queue_.extract(queue_.begin());
    const auto [deadline, id] = node.key();
    std::shared_ptr<Callback> callback = node.mapped().callback;
    if (node.mapped().period_ms > 0) {
      node.key().first = deadline + node.mapped().period_ms;
      deadlines_[id] = node.key().first;
      queue_.insert(std::move(node));
    } else {
      deadlines_.erase(id);
    }
    invoke(*callback);
    ++fired;
  }
  return fired;
}

}  // namespace gpumart::actors
