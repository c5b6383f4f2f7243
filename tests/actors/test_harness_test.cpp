#include "actors/test_harness.h"

#include <gtest/gtest.h>

#include <zmq.hpp>

#include "tests/actors/test_actors.h"

namespace gpumart::actors {
namespace {

using testing::GetValues;
using testing::LiveCounter;
using testing::Recorder;
using testing::Tracked;
using testing::Value;

// Relays work to a downstream actor on a timer: what a bid engine or gossip actor will look like.
struct SetDownstream {
  ActorAddress to;
};
struct Tick {
  int n;
};
struct PeerGossip {
  int n;
};

class Relay final : public Actor {
 public:
  void Init(Handlers& on, ActorContext& ctx) override {
    on.On<SetDownstream>([this](SetDownstream& s) { downstream_ = s.to; });
    on.On<PeerGossip>([this](PeerGossip& g, ActorContext& c) {
      results_.push_back(c.SendOrDrop(downstream_, g));
    });
    on.OnRequest<GetValues>([this](GetValues&) { return static_cast<int>(results_.size()); });
    ctx.StartPeriodicTimer(100, [this](ActorContext& c) { c.Send(downstream_, Tick{++ticks_}); });
  }
  std::vector<SendResult> results_;

 private:
  ActorAddress downstream_;
  int ticks_ = 0;
};

TEST(ActorTestHarnessTest, DeliversMessagesOneByOne) {
  ActorTestHarness harness([] { return std::make_unique<Recorder>(); });
  ASSERT_TRUE(harness.ok());
  EXPECT_EQ(harness.Deliver(Value{1}), Delivery::kHandled);
  EXPECT_EQ(harness.actor<Recorder>()->values(), std::vector<int>{1});
  EXPECT_EQ(harness.Deliver(Value{2}), Delivery::kHandled);
  auto reply = harness.Request<std::vector<int>>(GetValues{});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.value(), (std::vector<int>{1, 2}));
  EXPECT_EQ(harness.stats().processed, 3u);
}

TEST(ActorTestHarnessTest, RecordsWhatTheActorSendsAndFiresTimersByManualClock) {
  ActorTestHarness harness([] { return std::make_unique<Relay>(); });
  ASSERT_TRUE(harness.ok());
  const ActorAddress downstream = harness.FakeAddress("downstream");
  harness.Deliver(SetDownstream{downstream});

  EXPECT_EQ(harness.AdvanceTime(99), 0u);
  EXPECT_TRUE(harness.TakeSent().empty());
  EXPECT_EQ(harness.AdvanceTime(1), 1u);
  EXPECT_EQ(harness.AdvanceTime(250), 2u);  // 200 and 300

  auto sent = harness.TakeSent();
  ASSERT_EQ(sent.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sent[i].to, downstream);
    EXPECT_FALSE(sent[i].drop_if_full);
    ASSERT_NE(sent[i].As<Tick>(), nullptr);
    EXPECT_EQ(sent[i].As<Tick>()->n, i + 1);
    EXPECT_EQ(sent[i].As<Value>(), nullptr);
  }
  EXPECT_EQ(harness.stats().timers_fired, 3u);
}

TEST(ActorTestHarnessTest, SimulatesAFullPeerMailbox) {
  ActorTestHarness harness([] { return std::make_unique<Relay>(); });
  const ActorAddress downstream = harness.FakeAddress("downstream");
  harness.Deliver(SetDownstream{downstream});
  harness.SetMailboxFull(downstream, true);
  harness.Deliver(PeerGossip{1});
  harness.SetMailboxFull(downstream, false);
  harness.Deliver(PeerGossip{2});
  EXPECT_EQ(harness.actor<Relay>()->results_, (std::vector<SendResult>{SendResult::kDropped, SendResult::kOk}));
  EXPECT_EQ(downstream.stats().dropped_full, 1u);
  auto sent = harness.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].drop_if_full);
  EXPECT_EQ(sent[0].As<PeerGossip>()->n, 2);
}

TEST(ActorTestHarnessTest, ReportsInitFailure) {
  struct Failing final : Actor {
    void Init(Handlers&, ActorContext&) override { throw std::runtime_error("no config"); }
  };
  ActorTestHarness harness([] { return std::make_unique<Failing>(); });
  EXPECT_FALSE(harness.ok());
  EXPECT_NE(harness.init_error().find("no config"), std::string::npos);
  LiveCounter counter;
  EXPECT_EQ(harness.Deliver(Tracked(counter, 1)), Delivery::kActorFailed);
  EXPECT_EQ(counter.live.load(), 0);
}

TEST(ActorTestHarnessTest, FiresSocketWatchesOnDemand) {
  struct Watcher final : Actor {
    void Init(Handlers&, ActorContext& ctx) override {
      socket = zmq::socket_t(ctx.zmq_context(), zmq::socket_type::pull);
      ctx.Watch(socket, [this](ActorContext& c) {
        ++readable;
        c.Unwatch(socket);
      });
    }
    zmq::socket_t socket;
    int readable = 0;
  };
  ActorTestHarness harness([] { return std::make_unique<Watcher>(); });
  ASSERT_EQ(harness.watch_count(), 1u);
  zmq::socket_t& socket = harness.actor<Watcher>()->socket;
  EXPECT_TRUE(harness.FireReadable(socket));
  EXPECT_EQ(harness.actor<Watcher>()->readable, 1);
  EXPECT_EQ(harness.watch_count(), 0u);
  EXPECT_FALSE(harness.FireReadable(socket));
}

TEST(ActorTestHarnessTest, UnsentMessagesAreFreedWithTheHarness) {
  LiveCounter counter;
  {
    struct Sender final : Actor {
      explicit Sender(LiveCounter& c) : counter(c) {}
      void Init(Handlers& on, ActorContext&) override {
        on.On<ActorAddress>([this](ActorAddress& to, ActorContext& ctx) { ctx.Send(to, Tracked(counter, 7)); });
      }
      LiveCounter& counter;
    };
    ActorTestHarness harness([&] { return std::make_unique<Sender>(counter); });
    harness.Deliver(harness.FakeAddress("x"));
    EXPECT_EQ(counter.live.load(), 1);  // recorded, owned by the harness
  }
  EXPECT_EQ(counter.live.load(), 0);
}

}  // namespace
}  // namespace gpumart::actors
