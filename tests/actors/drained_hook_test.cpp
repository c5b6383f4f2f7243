// The OnDrained hook: runs after each batch of deliveries, on the actor's thread, and covers
// every message of the batch (what group commit in the ledger relies on).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "actors/test_harness.h"

namespace gpumart::actors {
namespace {

struct Item {
  int value = 0;
};

// Collects items in its handler; the hook "commits" them all at once.
class Batcher final : public Actor {
 public:
  Batcher(std::atomic<int>& committed, std::atomic<int>& batches) : committed_(committed), batches_(batches) {}
  void Init(Handlers& on, ActorContext&) override {
    on.On<Item>([this](Item& item) { pending_.push_back(item.value); });
    on.OnDrained([this](ActorContext&) {
      if (pending_.empty()) return;
      committed_ += static_cast<int>(pending_.size());
      ++batches_;
      pending_.clear();
    });
  }

 private:
  std::vector<int> pending_;
  std::atomic<int>& committed_;
  std::atomic<int>& batches_;
};

TEST(DrainedHookTest, RunsAfterEveryBatchAndCoversAllMessages) {
  std::atomic<int> committed{0};
  std::atomic<int> batches{0};
  ActorSystem system;
  ActorOptions options;
  options.name = "batcher";
  ActorHandle handle = system.Spawn(options, [&] { return std::make_unique<Batcher>(committed, batches); });
  ASSERT_TRUE(handle.ok());
  constexpr int kSenders = 4;
  constexpr int kPerSender = 2000;
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&] {
      Outbox outbox(system);
      for (int i = 0; i < kPerSender; ++i) ASSERT_EQ(outbox.Send(handle.address(), Item{i}), SendResult::kOk);
    });
  }
  for (auto& sender : senders) sender.join();
  for (int i = 0; i < 2000 && committed.load() < kSenders * kPerSender; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(committed.load(), kSenders * kPerSender);
  EXPECT_GE(batches.load(), 1);
  EXPECT_LE(batches.load(), kSenders * kPerSender);
}

TEST(DrainedHookTest, HarnessRunsItOnDemand) {
  std::atomic<int> committed{0};
  std::atomic<int> batches{0};
  ActorTestHarness harness([&] { return std::make_unique<Batcher>(committed, batches); });
  harness.Deliver(Item{1});
  harness.Deliver(Item{2});
  EXPECT_EQ(committed.load(), 0);
  harness.Drained();
  EXPECT_EQ(committed.load(), 2);
  EXPECT_EQ(batches.load(), 1);
  harness.Drained();  // nothing new
  EXPECT_EQ(batches.load(), 1);
}

}  // namespace
}  // namespace gpumart::actors
