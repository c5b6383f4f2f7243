#include "actors/timer_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace gpumart::actors {
namespace {

TEST(TimerQueueTest, EmptyQueueHasNoDeadline) {
  TimerQueue timers;
  EXPECT_FALSE(timers.NextDeadline().has_value());
  EXPECT_EQ(timers.FireDue(1'000'000), 0u);
}

TEST(TimerQueueTest, OneShotFiresOnceAtItsDeadline) {
  TimerQueue timers;
  int fired = 0;
  const TimerId id = timers.Add(100, 0, [&] { ++fired; });
  EXPECT_EQ(timers.NextDeadline(), 100);
  EXPECT_EQ(timers.FireDue(99), 0u);
  EXPECT_EQ(timers.FireDue(100), 1u);
  EXPECT_EQ(timers.FireDue(1000), 0u);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(timers.Cancel(id));  // already fired
  EXPECT_EQ(timers.size(), 0u);
}

TEST(TimerQueueTest, FiresInDeadlineOrderThenCreationOrder) {
  TimerQueue timers;
  std::vector<int> order;
  timers.Add(30, 0, [&] { order.push_back(3); });
  timers.Add(10, 0, [&] { order.push_back(1); });
  timers.Add(20, 0, [&] { order.push_back(2); });
  timers.Add(20, 0, [&] { order.push_back(22); });
  EXPECT_EQ(timers.FireDue(30), 4u);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 22, 3}));
}

TEST(TimerQueueTest, PeriodicFiresEveryPeriodWhenTimeJumps) {
  TimerQueue timers;
  int fired = 0;
  timers.Add(100, 100, [&] { ++fired; });
  EXPECT_EQ(timers.FireDue(350), 3u);  // 100, 200, 300
  EXPECT_EQ(timers.NextDeadline(), 400);
  EXPECT_EQ(fired, 3);
}

TEST(TimerQueueTest, CancelStopsAPendingTimer) {
  TimerQueue timers;
  int fired = 0;
  const TimerId id = timers.Add(100, 50, [&] { ++fired; });
  EXPECT_TRUE(timers.Cancel(id));
  EXPECT_FALSE(timers.Cancel(id));
  EXPECT_FALSE(timers.Cancel(12345));
  EXPECT_EQ(timers.FireDue(1000), 0u);
  EXPECT_EQ(fired, 0);
}

TEST(TimerQueueTest, PeriodicCallbackMayCancelItself) {
  TimerQueue timers;
  int fired = 0;
  TimerId id = 0;
  id = timers.Add(10, 10, [&] {
    if (++fired == 2) timers.Cancel(id);
  });
  EXPECT_EQ(timers.FireDue(100), 2u);
  EXPECT_EQ(timers.size(), 0u);
}

TEST(TimerQueueTest, CallbackMayAddTimersThatAreAlreadyDue) {
  TimerQueue timers;
  std::vector<int> order;
  timers.Add(10, 0, [&] {
    order.push_back(1);
    timers.Add(5, 0, [&] { order.push_back(2); });
  });
  EXPECT_EQ(timers.FireDue(10), 2u);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(TimerQueueTest, ClearDropsEverything) {
  TimerQueue timers;
  timers.Add(1, 0, [] {});
  timers.Add(2, 2, [] {});
  timers.Clear();
  EXPECT_EQ(timers.size(), 0u);
  EXPECT_FALSE(timers.NextDeadline().has_value());
}

}  // namespace
}  // namespace gpumart::actors
