// The threaded runtime: spawn/ready, stop/terminate, ordering, timers for real, sockets.
#include "actors/actor_system.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <thread>
#include <zmq.hpp>

#include "actors/outbox.h"
#include "tests/actors/test_actors.h"

namespace gpumart::actors {
namespace {

using namespace testing;  // NOLINT: test helpers

ActorOptions Named(const std::string& name, int hwm = kDefaultMailboxHwm) {
  ActorOptions options;
  options.name = name;
  options.mailbox_hwm = hwm;
  return options;
}

TEST(ActorSystemTest, SpawnReturnsOnlyAfterInitSignalledReady) {
  ActorSystem system;
  std::atomic<bool> initialised{false};
  std::atomic<std::thread::id> actor_thread;
  struct Probe final : Actor {
    Probe(std::atomic<bool>& i, std::atomic<std::thread::id>& t) : init(i), thread(t) {}
    void Init(Handlers&, ActorContext&) override {
      thread = std::this_thread::get_id();
      init = true;
    }
    std::atomic<bool>& init;
    std::atomic<std::thread::id>& thread;
  };
  ActorHandle handle = system.Spawn(Named("probe"), [&] { return std::make_unique<Probe>(initialised, actor_thread); });
  ASSERT_TRUE(handle.ok()) << handle.error();
  EXPECT_TRUE(initialised.load());
  EXPECT_NE(actor_thread.load(), std::this_thread::get_id());
  EXPECT_EQ(handle.address().name(), "probe");
  EXPECT_FALSE(handle.address().stopped());
}

TEST(ActorSystemTest, ActorThreadCarriesTheActorName) {
  ActorSystem system;
  // Atomic: the runtime's ready signal goes through libzmq, which the sanitizers do not see.
  std::atomic<bool> named{false};
  struct Probe final : Actor {
    explicit Probe(std::atomic<bool>& named) : named_(named) {}
    void Init(Handlers&, ActorContext&) override {
      char buffer[16] = {};
      pthread_getname_np(pthread_self(), buffer, sizeof buffer);
      // Linux keeps 15 bytes of a thread name; a longer actor name is cut, not refused.
      named_ = std::string(buffer) == "ledger-writer-f";
    }
    std::atomic<bool>& named_;
  };
  ActorHandle handle = system.Spawn(Named("ledger-writer-for-tests"), [&] { return std::make_unique<Probe>(named); });
  ASSERT_TRUE(handle.ok()) << handle.error();
  EXPECT_TRUE(named.load());
}

TEST(ActorSystemTest, SpawnReportsInitFailure) {
  ActorSystem system;
  struct Failing final : Actor {
    void Init(Handlers&, ActorContext&) override { throw std::runtime_error("bad config"); }
  };
  ActorHandle handle = system.Spawn(Named("failing"), [] { return std::make_unique<Failing>(); });
  EXPECT_FALSE(handle.ok());
  EXPECT_NE(handle.error().find("bad config"), std::string::npos);
  EXPECT_TRUE(handle.address().stopped());
  EXPECT_EQ(handle.Stop(), StopResult::kAlreadyStopped);
  Outbox outbox(system);
  EXPECT_EQ(outbox.Send(handle.address(), Value{1}), SendResult::kStopped);
}

TEST(ActorSystemTest, MessagesFromOneSenderArriveInOrder) {
  ActorSystem system;
  ActorHandle handle = system.Spawn(Named("recorder"), RecorderFactory());
  Outbox outbox(system);
  constexpr int kCount = 20'000;  // many times the high-water mark: the sender blocks and resumes
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(outbox.Send(handle.address(), Value{i}), SendResult::kOk);
  auto reply = outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit);
  ASSERT_TRUE(reply.ok()) << ToString(reply.error());
  ASSERT_EQ(reply.value().size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(reply.value()[i], i);
  EXPECT_EQ(handle.address().stats().dropped_full, 0u);
}

TEST(ActorSystemTest, ManySendersEachKeepTheirOrder) {
  ActorSystem system;
  ActorHandle handle = system.Spawn(Named("recorder", 64), RecorderFactory());
  constexpr int kPerSender = 3'000;
  auto send = [&](int base) {
    Outbox outbox(system);
    for (int i = 0; i < kPerSender; ++i) outbox.Send(handle.address(), Value{base + i});
    // Order holds per sender only: a reply on this sender's pipe proves its messages were handled.
    EXPECT_TRUE(outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).ok());
  };
  std::thread a(send, 0), b(send, 1'000'000);
  a.join();
  b.join();
  Outbox outbox(system);
  auto values = outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).value();
  ASSERT_EQ(values.size(), 2u * kPerSender);
  int next_a = 0, next_b = 1'000'000;
  for (int v : values) {
    if (v < 1'000'000) EXPECT_EQ(v, next_a++);
    else EXPECT_EQ(v, next_b++);
  }
}

TEST(ActorSystemTest, StopTwiceAndSendAfterStop) {
  ActorSystem system;
  ActorHandle handle = system.Spawn(Named("recorder"), RecorderFactory());
  Outbox outbox(system);
  ASSERT_EQ(outbox.Send(handle.address(), Value{1}), SendResult::kOk);
  EXPECT_EQ(handle.Stop(), StopResult::kStopped);
  EXPECT_EQ(handle.Stop(), StopResult::kAlreadyStopped);
  EXPECT_TRUE(handle.address().stopped());

  LiveCounter counter;
  EXPECT_EQ(outbox.Send(handle.address(), Tracked(counter, 1)), SendResult::kStopped);
  EXPECT_EQ(outbox.SendOrDrop(handle.address(), Tracked(counter, 2)), SendResult::kStopped);
  auto reply = outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit);
  EXPECT_EQ(reply.error(), RequestError::kStopped);
  EXPECT_EQ(counter.live.load(), 0);
}

class StopTest : public ::testing::TestWithParam<bool> {};

// Parameter: whether the stop handshake may use membarrier(2) (else senders pay a fence).
TEST_P(StopTest, StopWithAFullMailboxFreesEveryQueuedMessage) {
  ActorSystem system(/*allow_membarrier=*/GetParam());
  constexpr int kHwm = 2000;  // well above the 256 messages an actor handles per poll
  ActorHandle handle = system.Spawn(Named("held", kHwm), RecorderFactory());
  const ActorAddress address = handle.address();
  Outbox outbox(system);
  Gate gate;
  ASSERT_EQ(outbox.Send(address, Hold{&gate}), SendResult::kOk);
  ASSERT_TRUE(gate.entered.WaitFor());

  LiveCounter counter;
  int queued = 0;
  for (int i = 0; i < 20 * kHwm; ++i) {  // heap envelopes and inline frames, interleaved
    const SendResult r = i % 2 ? outbox.SendOrDrop(address, Tracked(counter, i)) : outbox.SendOrDrop(address, Value{i});
    if (r == SendResult::kOk) ++queued;
  }
  ASSERT_GT(queued, 0);
  EXPECT_EQ(address.stats().dropped_full, static_cast<uint64_t>(20 * kHwm - queued));

  // A pending request and a trusted sender blocked on the full mailbox, on other threads.
  RequestResult<std::vector<int>> pending({}, RequestError::kNone);
  std::thread requester([&] {
    Outbox own(system);
    pending = own.Request<std::vector<int>>(address, GetValues{}, kWaitLimit);
  });
  std::atomic<int> blocked_result{-1};
  std::thread blocked_sender([&] {
    Outbox own(system);
    for (int i = 0; i < 4 * kHwm; ++i) {
      const SendResult r = own.Send(address, Tracked(counter, -1));
      if (r != SendResult::kOk) {
        blocked_result = static_cast<int>(r);
        return;
      }
    }
    blocked_result = static_cast<int>(SendResult::kOk);
  });
  handle.RequestStop();   // terminate is queued on the control pipe, ahead of the mailbox
  gate.open.CountDown();  // the held handler returns, one batch runs, then the rest is freed
  EXPECT_EQ(handle.Stop(), StopResult::kStopped);
  requester.join();
  blocked_sender.join();

  EXPECT_EQ(counter.live.load(), 0);
  const ActorStats stats = address.stats();
  EXPECT_GT(stats.discarded, 0u);
  EXPECT_GE(stats.processed + stats.discarded, static_cast<uint64_t>(queued) + 1);
  EXPECT_TRUE(pending.ok() || pending.error() == RequestError::kStopped) << ToString(pending.error());
  EXPECT_NE(blocked_result.load(), -1);
}

INSTANTIATE_TEST_SUITE_P(Fences, StopTest, ::testing::Bool());

TEST(ActorSystemTest, RealTimersOneShotPeriodicAndCancel) {
  ActorSystem system;
  Latch done;
  struct Timed final : Actor {
    explicit Timed(Latch& d) : done(d) {}
    void Init(Handlers& on, ActorContext& ctx) override {
      on.OnRequest<GetValues>([this](GetValues&) { return std::vector<int>{ticks, once, cancelled}; });
      const TimerId doomed = ctx.StartTimer(2, [this](ActorContext&) { ++cancelled; });
      ctx.CancelTimer(doomed);
      ctx.StartTimer(5, [this](ActorContext&) { ++once; });
      periodic = ctx.StartPeriodicTimer(3, [this](ActorContext& c) {
        if (++ticks == 5) {
          c.CancelTimer(periodic);
          done.CountDown();
        }
      });
    }
    Latch& done;
    TimerId periodic = 0;
    int ticks = 0, once = 0, cancelled = 0;
  };
  ActorHandle handle = system.Spawn(Named("timed"), [&] { return std::make_unique<Timed>(done); });
  ASSERT_TRUE(done.WaitFor());
  Outbox outbox(system);
  auto values = outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).value();
  EXPECT_EQ(values, (std::vector<int>{5, 1, 0}));  // the 15 ms periodic outlived the 5 ms one-shot
  EXPECT_EQ(handle.address().stats().timers_fired, 6u);
}

TEST(ActorSystemTest, ExceptionsNeverTakeDownTheProcess) {
  ActorSystem system;
  ActorOptions options = Named("flaky");
  options.max_restarts = 2;
  ActorHandle handle = system.Spawn(options, RecorderFactory());
  Outbox outbox(system);
  outbox.Send(handle.address(), Value{1});
  outbox.Send(handle.address(), Throw{});
  outbox.Send(handle.address(), testing::Unknown{});
  outbox.Send(handle.address(), Value{2});
  EXPECT_EQ(outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).value(),
            (std::vector<int>{1, 2}));
  EXPECT_EQ(outbox.Request<int>(handle.address(), Throw{}, kWaitLimit).error(), RequestError::kHandlerFailed);
  outbox.Send(handle.address(), Break{});
  EXPECT_TRUE(outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).value().empty());
  outbox.Send(handle.address(), Break{});
  outbox.Send(handle.address(), Break{});  // third rebuild exceeds the limit of 2
  EXPECT_EQ(outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).error(), RequestError::kFailed);
  const ActorStats stats = handle.address().stats();
  EXPECT_EQ(stats.handler_failures, 5u);
  EXPECT_EQ(stats.unknown_type, 1u);
  EXPECT_EQ(stats.restarts, 3u);
  EXPECT_TRUE(stats.failed);
  EXPECT_EQ(handle.Stop(), StopResult::kStopped);
}

// An actor that owns a network-facing socket and polls it in the same loop as its mailbox.
struct GetEndpoint {};
class TcpListener final : public Actor {
 public:
  explicit TcpListener(Latch& got_three) : got_three_(got_three) {}
  void Init(Handlers& on, ActorContext& ctx) override {
    socket_ = zmq::socket_t(ctx.zmq_context(), zmq::socket_type::pull);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    ctx.Watch(socket_, [this](ActorContext&) {
      zmq::message_t frame;
      while (socket_.recv(frame, zmq::recv_flags::dontwait)) {
        received_.push_back(std::stoi(frame.to_string()));
        if (received_.size() == 3) got_three_.CountDown();
      }
    });
    on.OnRequest<GetEndpoint>([this](GetEndpoint&) { return socket_.get(zmq::sockopt::last_endpoint); });
    on.OnRequest<GetValues>([this](GetValues&) { return received_; });
  }

 private:
  Latch& got_three_;
  zmq::socket_t socket_;
  std::vector<int> received_;
};

TEST(ActorSystemTest, ActorPollsItsOwnTcpSocketBesideTheMailbox) {
  ActorSystem system;
  Latch got_three;
  ActorHandle handle = system.Spawn(Named("listener"), [&] { return std::make_unique<TcpListener>(got_three); });
  Outbox outbox(system);
  auto endpoint = outbox.Request<std::string>(handle.address(), GetEndpoint{}, kWaitLimit);
  ASSERT_TRUE(endpoint.ok());
  ASSERT_EQ(endpoint.value().rfind("tcp://127.0.0.1:", 0), 0u) << endpoint.value();

  zmq::context_t peer_context;
  zmq::socket_t peer(peer_context, zmq::socket_type::push);
  peer.set(zmq::sockopt::linger, 0);
  peer.connect(endpoint.value());
  for (int i = 1; i <= 3; ++i) peer.send(zmq::buffer(std::to_string(i)), zmq::send_flags::none);
  ASSERT_TRUE(got_three.WaitFor());
  EXPECT_EQ(outbox.Request<std::vector<int>>(handle.address(), GetValues{}, kWaitLimit).value(),
            (std::vector<int>{1, 2, 3}));
}

TEST(ActorSystemTest, SystemStopsActorsStillRunningWhenItGoes) {
  LiveCounter counter;
  ActorHandle outliving;  // a handle may outlive its system: the system stops the actor first
  {
    ActorSystem system;
    ActorHandle handle = system.Spawn(Named("recorder"), RecorderFactory());
    {
      Outbox outbox(system);
      outbox.Send(handle.address(), Tracked(counter, 1));
    }
    outliving = std::move(handle);
    EXPECT_EQ(handle.Stop(), StopResult::kAlreadyStopped);  // NOLINT: a moved-from handle is empty
    EXPECT_FALSE(outliving.address().stopped());
  }
  EXPECT_TRUE(outliving.address().stopped());
  EXPECT_EQ(outliving.Stop(), StopResult::kAlreadyStopped);
  EXPECT_EQ(counter.live.load(), 0);
}

}  // namespace
}  // namespace gpumart::actors
