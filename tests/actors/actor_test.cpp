// Dispatch and supervision (actors/actor.cpp), driven deterministically through the harness.
#include "actors/actor.h"

#include <gtest/gtest.h>

#include "actors/test_harness.h"
#include "tests/actors/test_actors.h"

namespace gpumart::actors {
namespace {

using testing::Break;
using testing::BreakViaContext;
using testing::GetValues;
using testing::LiveCounter;
using testing::Recorder;
using testing::RecorderFactory;
using testing::Throw;
using testing::Tracked;
using testing::Unknown;
using testing::Value;

std::vector<int> Values(ActorTestHarness& harness) {
  auto reply = harness.Request<std::vector<int>>(GetValues{});
  EXPECT_TRUE(reply.ok()) << ToString(reply.error());
  return reply.ok() ? reply.value() : std::vector<int>{};
}

TEST(ActorTest, UnknownMessageTypeIsCountedNotFatal) {
  ActorTestHarness harness(RecorderFactory());
  EXPECT_EQ(harness.Deliver(Unknown{}), Delivery::kUnknownType);
  EXPECT_EQ(harness.Deliver(Value{5}), Delivery::kHandled);
  EXPECT_EQ(harness.stats().unknown_type, 1u);
  EXPECT_EQ(Values(harness), std::vector<int>{5});
}

TEST(ActorTest, RequestWithWrongReplyTypeIsUnhandled) {
  ActorTestHarness harness(RecorderFactory());
  auto reply = harness.Request<int>(GetValues{});  // the handler replies std::vector<int>
  EXPECT_FALSE(reply.ok());
  EXPECT_EQ(reply.error(), RequestError::kUnhandled);
  EXPECT_EQ(harness.stats().unknown_type, 1u);
}

TEST(ActorTest, ExceptionIsCaughtAtTheMessageBoundaryAndTheActorCarriesOn) {
  ActorTestHarness harness(RecorderFactory());
  harness.Deliver(Value{1});
  EXPECT_EQ(harness.Deliver(Throw{}), Delivery::kHandlerFailed);
  auto reply = harness.Request<int>(Throw{});
  EXPECT_EQ(reply.error(), RequestError::kHandlerFailed);
  harness.Deliver(Value{2});
  EXPECT_EQ(Values(harness), (std::vector<int>{1, 2}));  // state kept
  EXPECT_EQ(harness.stats().handler_failures, 2u);
  EXPECT_EQ(harness.stats().restarts, 0u);
}

TEST(ActorTest, BrokenStateIsRebuiltFromTheFactory) {
  ActorTestHarness harness(RecorderFactory());
  harness.Deliver(Value{1});
  const Recorder* before = harness.actor<Recorder>();
  EXPECT_EQ(harness.Deliver(Break{}), Delivery::kHandlerFailed);
  EXPECT_EQ(harness.stats().restarts, 1u);
  EXPECT_TRUE(Values(harness).empty());  // fresh state
  harness.Deliver(Value{2});
  EXPECT_EQ(harness.Deliver(BreakViaContext{}), Delivery::kHandled);
  EXPECT_EQ(harness.stats().restarts, 2u);
  EXPECT_TRUE(Values(harness).empty());
  EXPECT_NE(harness.actor<Recorder>(), nullptr);
  (void)before;
}

TEST(ActorTest, RestartDropsTheOldStatesTimers) {
  struct Ticker final : Actor {
    explicit Ticker(int& fired) : fired_(fired) {}
    void Init(Handlers& on, ActorContext& ctx) override {
      on.On<Break>([](Break&) { throw BrokenStateError("x"); });
      on.On<Value>([](Value&, ActorContext& c) { c.StartTimer(50, [](ActorContext&) {}); });
      ctx.StartPeriodicTimer(10, [this](ActorContext&) { ++fired_; });
    }
    int& fired_;
  };
  int fired = 0;
  ActorTestHarness harness([&] { return std::make_unique<Ticker>(fired); });
  harness.Deliver(Value{0});  // one extra one-shot timer owned by this state
  EXPECT_EQ(harness.AdvanceTime(10), 1u);
  harness.Deliver(Break{});
  // Only the new state's periodic timer remains: 2 ticks in 20 ms, and no stale one-shot at 50.
  EXPECT_EQ(harness.AdvanceTime(40), 4u);
  EXPECT_EQ(fired, 5);
}

TEST(ActorTest, RestartLimitMarksTheActorFailedAndDiscardsMessages) {
  ActorOptions options;
  options.max_restarts = 1;
  ActorTestHarness harness(RecorderFactory(), options);
  harness.Deliver(Break{});
  EXPECT_FALSE(harness.stats().failed);
  harness.Deliver(Break{});
  EXPECT_TRUE(harness.stats().failed);
  EXPECT_EQ(harness.actor<Recorder>(), nullptr);

  LiveCounter counter;
  EXPECT_EQ(harness.Deliver(Tracked(counter, 1)), Delivery::kActorFailed);
  EXPECT_EQ(counter.live.load(), 0);
  auto reply = harness.Request<std::vector<int>>(GetValues{});
  EXPECT_EQ(reply.error(), RequestError::kFailed);
  EXPECT_EQ(harness.stats().discarded, 2u);
}

TEST(ActorTest, ExceptionInTimerIsCaught) {
  struct Flaky final : Actor {
    void Init(Handlers& on, ActorContext& ctx) override {
      on.OnRequest<GetValues>([this](GetValues&) { return ticks; });
      ctx.StartPeriodicTimer(10, [this](ActorContext&) {
        if (++ticks == 1) throw std::runtime_error("first tick fails");
      });
    }
    int ticks = 0;
  };
  ActorTestHarness harness([] { return std::make_unique<Flaky>(); });
  EXPECT_EQ(harness.AdvanceTime(30), 3u);
  EXPECT_EQ(harness.stats().handler_failures, 1u);
  EXPECT_EQ(harness.Request<int>(GetValues{}).value(), 3);
}

TEST(ActorTest, ContextTimersOneShotPeriodicAndCancel) {
  struct Timed final : Actor {
    void Init(Handlers& on, ActorContext& ctx) override {
      on.On<Value>([this](Value& v, ActorContext& c) {
        if (v.value == 0) c.CancelTimer(periodic);
        if (v.value == 1) cancelled_ok = c.CancelTimer(one_shot_cancelled);
      });
      ctx.StartTimer(25, [this](ActorContext&) { log.push_back("once"); });
      one_shot_cancelled = ctx.StartTimer(5, [this](ActorContext&) { log.push_back("cancelled"); });
      periodic = ctx.StartPeriodicTimer(10, [this](ActorContext&) { log.push_back("tick"); });
    }
    TimerId one_shot_cancelled = 0, periodic = 0;
    bool cancelled_ok = false;
    std::vector<std::string> log;
  };
  ActorTestHarness harness([] { return std::make_unique<Timed>(); });
  harness.Deliver(Value{1});
  EXPECT_TRUE(harness.actor<Timed>()->cancelled_ok);
  harness.AdvanceTime(30);
  harness.Deliver(Value{0});
  harness.AdvanceTime(100);
  EXPECT_EQ(harness.actor<Timed>()->log, (std::vector<std::string>{"tick", "tick", "once", "tick"}));
}

TEST(ActorTest, NamesForResults) {
  EXPECT_STREQ(ToString(SendResult::kDropped), "dropped (mailbox full)");
  EXPECT_STREQ(ToString(RequestError::kTimeout), "timeout");
  EXPECT_STREQ(ToString(Delivery::kUnknownType), "unknown type");
  ActorAddress none;
  EXPECT_FALSE(none.valid());
  EXPECT_TRUE(none.stopped());
  EXPECT_EQ(none.name(), "(none)");
}

}  // namespace
}  // namespace gpumart::actors
