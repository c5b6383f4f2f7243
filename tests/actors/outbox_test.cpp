// Sending policies at the high-water mark, requests with timeouts, ownership of refused messages.
#include "actors/outbox.h"

#include <gtest/gtest.h>

#include <thread>

#include "actors/actor_system.h"
#include "tests/actors/test_actors.h"

namespace gpumart::actors {
namespace {

using namespace testing;  // NOLINT: test helpers

constexpr int kHwm = 100;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ActorOptions options;
    options.name = "recorder";
    options.mailbox_hwm = kHwm;
    handle_ = system_.Spawn(options, [] { return std::make_unique<Recorder>(); });
    ASSERT_TRUE(handle_.ok());
  }
  // Parks the actor inside a handler so its mailbox fills up.
  void Hold() {
    ASSERT_EQ(outbox_.Send(address(), testing::Hold{&gate_}), SendResult::kOk);
    ASSERT_TRUE(gate_.entered.WaitFor());
  }
  std::vector<int> Values() {
    auto reply = outbox_.Request<std::vector<int>>(address(), GetValues{}, kWaitLimit);
    EXPECT_TRUE(reply.ok()) << ToString(reply.error());
    return reply.ok() ? reply.value() : std::vector<int>{};
  }
  const ActorAddress& address() const { return handle_.address(); }

  ActorSystem system_;
  ActorHandle handle_;
  Outbox outbox_{system_};
  Gate gate_;
};

TEST_F(OutboxTest, DropPolicyDropsCountsAndFreesAtTheHighWaterMark) {
  Hold();
  LiveCounter counter;
  constexpr int kOffered = 20 * kHwm;
  int queued = 0, dropped = 0;
  for (int i = 0; i < kOffered; ++i) {
    switch (outbox_.SendOrDrop(address(), Tracked(counter, i))) {
      case SendResult::kOk: ++queued; break;
      case SendResult::kDropped: ++dropped; break;
      case SendResult::kStopped: FAIL();
    }
  }
  EXPECT_GE(queued, kHwm / 2);
  EXPECT_LE(queued, 2 * kHwm + 1);  // ZeroMQ counts in batches: about hwm, never unbounded
  EXPECT_EQ(dropped, kOffered - queued);
  EXPECT_EQ(address().stats().dropped_full, static_cast<uint64_t>(dropped));
  EXPECT_EQ(counter.live.load(), queued);  // dropped ones are already freed

  gate_.open.CountDown();
  const std::vector<int> values = Values();
  ASSERT_EQ(values.size(), static_cast<size_t>(queued));
  for (int i = 0; i < queued; ++i) EXPECT_EQ(values[i], i);  // the first ones got in
  EXPECT_EQ(counter.live.load(), 0);
}

TEST_F(OutboxTest, BlockPolicyMakesTheTrustedSenderWaitForRoom) {
  Hold();
  constexpr int kCount = 10 * kHwm;
  Latch sender_done;
  std::thread sender([&] {
    Outbox own(system_);
    for (int i = 0; i < kCount; ++i) ASSERT_EQ(own.Send(address(), Value{i}), SendResult::kOk);
    sender_done.CountDown();
  });
  // A bounded check, not an ordering sleep: the sender cannot finish while the actor is held.
  EXPECT_FALSE(sender_done.WaitFor(milliseconds(200)));
  gate_.open.CountDown();
  ASSERT_TRUE(sender_done.WaitFor());
  sender.join();
  // Order holds per sender only: our GetValues request travels on another pipe and may overtake
  // the sender's last messages, so ask until all of them have been handled (bounded).
  std::vector<int> values = Values();
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (values.size() < static_cast<size_t>(kCount) && std::chrono::steady_clock::now() < deadline) {
    values = Values();
  }
  ASSERT_EQ(values.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(values[i], i);
  EXPECT_EQ(address().stats().dropped_full, 0u);
}

TEST_F(OutboxTest, RequestTimesOutAndTheLateReplyIsDiscarded) {
  Hold();
  auto reply = outbox_.Request<std::vector<int>>(address(), GetValues{}, milliseconds(50));
  EXPECT_FALSE(reply.ok());
  EXPECT_EQ(reply.error(), RequestError::kTimeout);
  gate_.open.CountDown();
  EXPECT_TRUE(Values().empty());  // the timed-out request was still handled; its reply went nowhere
  EXPECT_GE(address().stats().processed, 2u);  // counted after the reply is sent
}

TEST_F(OutboxTest, RequestTimesOutWhileTheMailboxStaysFull) {
  Hold();
  while (outbox_.SendOrDrop(address(), Value{0}) == SendResult::kOk) {
  }
  auto reply = outbox_.Request<std::vector<int>>(address(), GetValues{}, milliseconds(50));
  EXPECT_EQ(reply.error(), RequestError::kTimeout);
  gate_.open.CountDown();
}

TEST_F(OutboxTest, QueuedMessagesOutliveTheirSendersOutbox) {
  Hold();
  LiveCounter counter;
  constexpr int kCount = kHwm / 2;
  {
    Outbox short_lived(system_);
    for (int i = 0; i < kCount; ++i) ASSERT_EQ(short_lived.Send(address(), Tracked(counter, i)), SendResult::kOk);
    for (int i = 0; i < kCount; ++i) ASSERT_EQ(short_lived.Send(address(), Value{kCount + i}), SendResult::kOk);
  }
  gate_.open.CountDown();
  // Another sender's pipe is not ordered with the closed one: wait (bounded) for the count.
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (address().stats().processed < 1 + 2 * kCount && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  const std::vector<int> values = Values();
  ASSERT_EQ(values.size(), static_cast<size_t>(2 * kCount));
  for (int i = 0; i < 2 * kCount; ++i) EXPECT_EQ(values[i], i);
  EXPECT_EQ(counter.live.load(), 0);
}

TEST_F(OutboxTest, OneOutboxTalksToManyActors) {
  ActorHandle other = system_.Spawn(ActorOptions{}, [] { return std::make_unique<Recorder>(); });
  for (int i = 0; i < 100; ++i) {
    outbox_.Send(address(), Value{i});
    outbox_.Send(other.address(), Value{-i});
  }
  EXPECT_EQ(Values().size(), 100u);
  auto reply = outbox_.Request<std::vector<int>>(other.address(), GetValues{}, kWaitLimit);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.value().back(), -99);
  other.Stop();
  EXPECT_EQ(outbox_.Send(other.address(), Value{1}), SendResult::kStopped);
  EXPECT_EQ(outbox_.Send(address(), Value{1}), SendResult::kOk);
}

TEST_F(OutboxTest, AddressesWithoutAMailboxAreUnreachable) {
  LiveCounter counter;
  EXPECT_EQ(outbox_.Send(ActorAddress(), Tracked(counter, 1)), SendResult::kStopped);
  auto reply = outbox_.Request<std::vector<int>>(ActorAddress(), GetValues{}, milliseconds(10));
  EXPECT_EQ(reply.error(), RequestError::kStopped);
  EXPECT_EQ(counter.live.load(), 0);
}

}  // namespace
}  // namespace gpumart::actors
