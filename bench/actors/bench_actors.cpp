// Actor runtime benchmarks. BM_RawInprocPushPull is the baseline measured in the same run:
// 8-byte messages over a bare inproc PUSH/PULL pair between two threads. BM_ActorThroughput
// sends one-way typed messages from a producer actor to a consumer actor (each allocates an
// envelope, passes its pointer, dispatches and frees it). BM_ActorPingPong counts round trips.
// Target: actor one-way >= 1,000,000 msgs/s and >= 50% of the raw baseline.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "actors/actor_system.h"
#include "actors/outbox.h"

namespace gpumart::actors {
namespace {

constexpr int kBatch = 20'000;             // messages per benchmark iteration
constexpr int kBenchMailboxHwm = 10'000;   // same queue depth for the raw baseline and actors

class Signal {
 public:
  void Notify() {
    std::lock_guard lock(mutex_);
    ++count_;
    cv_.notify_all();
  }
  void WaitFor(uint64_t count) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return count_ >= count; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

void BM_RawInprocPushPull(benchmark::State& state) {
  zmq::context_t context;
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.set(zmq::sockopt::rcvhwm, kBenchMailboxHwm / 2);
  pull.bind("inproc://bench-raw");
  zmq::socket_t push(context, zmq::socket_type::push);
  push.set(zmq::sockopt::sndhwm, kBenchMailboxHwm / 2);
  push.set(zmq::sockopt::linger, 0);
  push.connect("inproc://bench-raw");
  Signal batches;
  std::thread consumer([&] {
    uint64_t value = 0;
    for (int received = 0;;) {
      (void)pull.recv(zmq::mutable_buffer(&value, sizeof value));
      if (value == UINT64_MAX) return;
      if (++received == kBatch) {
        received = 0;
        batches.Notify();
      }
    }
  });
  uint64_t done = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < kBatch; ++i) push.send(zmq::const_buffer(&i, sizeof i));
    batches.WaitFor(++done);
  }
  const uint64_t stop = UINT64_MAX;
  push.send(zmq::const_buffer(&stop, sizeof stop));
  consumer.join();
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_RawInprocPushPull)->UseRealTime();

struct Ping {
  uint64_t sequence;
};
struct Produce {
  ActorAddress to;
  int count;
};

class Consumer final : public Actor {
 public:
  explicit Consumer(Signal& batches) : batches_(batches) {}
  void Init(Handlers& on, ActorContext&) override {
    on.On<Ping>([this](Ping& ping) {
      sum_ += ping.sequence;
      if (++received_ == kBatch) {
        received_ = 0;
        batches_.Notify();
      }
    });
  }

 private:
  Signal& batches_;
  int received_ = 0;
  uint64_t sum_ = 0;
};

class Producer final : public Actor {
 public:
  void Init(Handlers& on, ActorContext&) override {
    on.On<Produce>([](Produce& produce, ActorContext& ctx) {
      for (int i = 0; i < produce.count; ++i) ctx.Send(produce.to, Ping{static_cast<uint64_t>(i)});
    });
  }
};

ActorOptions BenchOptions(const char* name) {
  ActorOptions options;
  options.name = name;
  options.mailbox_hwm = kBenchMailboxHwm;
  return options;
}

void BM_ActorThroughput(benchmark::State& state) {
  ActorSystem system;
  Signal batches;
  ActorHandle consumer = system.Spawn(BenchOptions("consumer"), [&] { return std::make_unique<Consumer>(batches); });
  ActorHandle producer = system.Spawn(BenchOptions("producer"), [] { return std::make_unique<Producer>(); });
  {
    Outbox outbox(system);
    uint64_t done = 0;
    for (auto _ : state) {
      outbox.Send(producer.address(), Produce{consumer.address(), kBatch});
      batches.WaitFor(++done);
    }
  }
  producer.Stop();
  consumer.Stop();
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ActorThroughput)->UseRealTime();

struct Ball {
  int remaining;
};
struct Serve {
  ActorAddress partner;
  int rallies;
};

// Returns every ball to its sender; the server counts down and signals when a rally ends.
class Player final : public Actor {
 public:
  explicit Player(Signal* rally_done) : rally_done_(rally_done) {}
  void Init(Handlers& on, ActorContext&) override {
    on.On<Serve>([this](Serve& serve, ActorContext& ctx) {
      partner_ = serve.partner;
      ctx.Send(partner_, Ball{serve.rallies});
    });
    on.On<ActorAddress>([this](ActorAddress& partner) { partner_ = partner; });
    on.On<Ball>([this](Ball& ball, ActorContext& ctx) {
      if (rally_done_ == nullptr) {
        ctx.Send(partner_, ball);  // the receiver returns every ball
      } else if (--ball.remaining > 0) {
        ctx.Send(partner_, ball);
      } else {
        rally_done_->Notify();
      }
    });
  }

 private:
  Signal* rally_done_;
  ActorAddress partner_;
};

void BM_ActorPingPong(benchmark::State& state) {
  constexpr int kRallies = 2'000;
  ActorSystem system;
  Signal rallies;
  ActorHandle server = system.Spawn(BenchOptions("server"), [&] { return std::make_unique<Player>(&rallies); });
  ActorHandle receiver = system.Spawn(BenchOptions("receiver"), [] { return std::make_unique<Player>(nullptr); });
  {
    Outbox outbox(system);
    outbox.Send(receiver.address(), server.address());
    uint64_t done = 0;
    for (auto _ : state) {
      outbox.Send(server.address(), Serve{receiver.address(), kRallies});
      rallies.WaitFor(++done);
    }
  }
  server.Stop();
  receiver.Stop();
  state.SetItemsProcessed(state.iterations() * kRallies);  // round trips
}
BENCHMARK(BM_ActorPingPong)->UseRealTime();

}  // namespace
}  // namespace gpumart::actors
