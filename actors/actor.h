// An actor is a state object plus one handler per message type. It runs on its own thread (see
// actor_system.h) or, for tests, message by message in an ActorTestHarness (test_harness.h).
// The only way to reach its state is a message; handlers, timers and socket callbacks all run on
// the actor's thread, so the state needs no locks.
//
//   class Counter final : public Actor {
//     void Init(Handlers& on, ActorContext& ctx) override {
//       on.On<Add>([this](Add& add) { total_ += add.n; });
//       on.OnRequest<GetTotal>([this](GetTotal&) { return total_; });  // reply type: int64_t
//       ctx.StartPeriodicTimer(1000, [this](ActorContext&) { Report(); });
//     }
//     int64_t total_ = 0;
//   };
//
// Supervision: an exception escaping a handler, timer or socket callback is caught at that
// boundary, logged (spdlog) and counted, and the actor carries on with its next message. If the
// handler threw BrokenStateError or called ctx.DeclareStateBroken(), the state is thrown away and
// rebuilt from the factory (timers and socket watches of the old state are dropped) - at most
// max_restarts times; after that the actor is "failed": it keeps draining and freeing its
// mailbox, counts every message as discarded, and fails requests with RequestError::kFailed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/clock.h"
#include "actors/message.h"
#include "actors/timer_queue.h"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace gpumart::actors {

// Messages one sender may have queued in an actor's mailbox before the sender's policy applies
// (ZeroMQ high-water marks are per sender pipe and approximate: ZeroMQ counts in batches).
constexpr int kDefaultMailboxHwm = 1000;
// State rebuilds allowed over an actor's lifetime before it is marked failed.
constexpr int kDefaultMaxRestarts = 10;

struct ActorOptions {
  std::string name = "actor";
  int mailbox_hwm = kDefaultMailboxHwm;  // > 0; give each actor kind a named constant
  const Clock* clock = nullptr;          // timers' time source; nullptr = SystemClock
  int max_restarts = kDefaultMaxRestarts;
};

// A snapshot of an actor's counters (readable from any thread).
struct ActorStats {
  uint64_t processed = 0;          // messages handled without an exception
  uint64_t unknown_type = 0;       // messages with no handler (logged, freed)
  uint64_t handler_failures = 0;   // exceptions caught at the message/timer/socket boundary
  uint64_t restarts = 0;           // state rebuilds after BrokenStateError / DeclareStateBroken
  uint64_t dropped_full = 0;       // SendOrDrop messages refused because the mailbox was full
  uint64_t discarded = 0;          // freed unhandled: queued at stop, or sent to a failed actor
  uint64_t timers_fired = 0;
  bool failed = false;             // restart limit exceeded
};

// Throw from a handler to say the actor's state can no longer be trusted: it gets rebuilt.
class BrokenStateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a single delivery did (the test harness returns it; the runtime counts it).
enum class Delivery { kHandled, kUnknownType, kHandlerFailed, kActorFailed };
const char* ToString(Delivery delivery);

namespace detail {

// Shared, thread-safe part of an actor: identity, mailbox endpoint, lifecycle flags, counters.
struct MailboxCore {
  MailboxCore(uint64_t id_in, std::string name_in, std::string endpoint_in, int hwm_in,
              bool asymmetric_fences_in = false)
      : id(id_in),
        name(std::move(name_in)),
        endpoint(std::move(endpoint_in)),
        hwm(hwm_in),
        asymmetric_fences(asymmetric_fences_in) {}
  const uint64_t id;
  const std::string name;
  const std::string endpoint;  // inproc endpoint of the mailbox; empty for harness addresses
  const int hwm;
  // How senders and the stopping actor agree that no message is stranded in a closed mailbox:
  // a sender raises its own busy flag (registered in `senders`), then checks `stopped`; the
  // stopping actor sets `stopped`, then drains until no busy flag is up. That is Dekker's
  // pattern, which needs a store-load fence on both sides; with asymmetric_fences the actor pays
  // for both with membarrier(2) once per stop and senders need only a compiler barrier (a full
  // fence per message costs about half the message rate).
  const bool asymmetric_fences;
  // Read by senders; the counters below are written by the actor, so they live on another cache
  // line.
  alignas(64) std::atomic<bool> stopped{false};
  std::atomic<bool> stop_requested{false};  // set by Stop; the actor checks it between messages
  std::atomic<uint64_t> dropped_full{0};
  std::mutex senders_mutex;
  std::vector<const std::atomic<bool>*> senders;  // busy flags of the connected senders
  alignas(64) std::atomic<bool> failed{false};
  std::atomic<uint64_t> processed{0}, unknown_type{0}, handler_failures{0}, restarts{0}, discarded{0},
      timers_fired{0};
};

enum class SendPolicy { kBlockWhileFull, kDropIfFull };

}  // namespace detail

// A copyable, thread-safe name for an actor's mailbox. It cannot send by itself: sending needs a
// socket, which belongs to one thread (an Outbox, or an actor's own ActorContext).
class ActorAddress {
 public:
  ActorAddress() = default;
  explicit ActorAddress(std::shared_ptr<detail::MailboxCore> core) : core_(std::move(core)) {}

  bool valid() const { return core_ != nullptr; }
  uint64_t id() const { return core_ ? core_->id : 0; }
  const std::string& name() const;
  bool stopped() const { return !core_ || core_->stopped.load(std::memory_order_acquire); }
  ActorStats stats() const;
  const std::shared_ptr<detail::MailboxCore>& core() const { return core_; }
  friend bool operator==(const ActorAddress& a, const ActorAddress& b) { return a.core_ == b.core_; }

 private:
  std::shared_ptr<detail::MailboxCore> core_;
};

namespace detail {
// Where an actor's outgoing messages go: an Outbox in the threaded runtime, a recorder in tests.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // Always consumes the message (frees it unless it was queued).
  virtual SendResult Post(const ActorAddress& to, std::unique_ptr<Message> message, SendPolicy policy) = 0;
  // Inline frames (see message.h), for sinks that take them.
  virtual bool takes_inline_frames() const { return false; }
  virtual SendResult PostFrame(const ActorAddress& /*to*/, const std::byte* /*frame*/, size_t /*size*/,
                               SendPolicy /*policy*/) {
    return SendResult::kStopped;
  }
};

// Sends a typed payload through a sink: inline when the payload and the sink allow it.
template <typename T>
SendResult SendTyped(MessageSink& sink, const ActorAddress& to, T&& message, SendPolicy policy) {
  using Payload = std::decay_t<T>;
  if constexpr (kSendsInline<Payload>) {
    if (sink.takes_inline_frames()) {
      std::array<std::byte, kMaxFrameSize> frame;
      const size_t size = EncodeInline(message, frame);
      return sink.PostFrame(to, frame.data(), size, policy);
    }
  }
  return sink.Post(to, std::make_unique<Envelope<Payload>>(std::forward<T>(message)), policy);
}
class ActorCell;
}  // namespace detail

// The actor's view of the runtime, passed to every handler and callback.
class ActorContext {
 public:
  using Callback = std::function<void(ActorContext&)>;

  const ActorAddress& self() const;
  const std::string& name() const;
  const Clock& clock() const;
  int64_t MonotonicMs() const { return clock().MonotonicMs(); }

  // Timers fire on the actor's thread; the loop's poll timeout is the next deadline.
  TimerId StartTimer(int64_t delay_ms, Callback callback);
  TimerId StartPeriodicTimer(int64_t interval_ms, Callback callback);
  bool CancelTimer(TimerId id);  // false if unknown, fired (one-shot) or cancelled

  // Trusted local send: blocks while the target's mailbox is full. Never use it to send to
  // yourself or around a cycle of actors (deadlock); use SendOrDrop there.
  template <typename T>
  SendResult Send(const ActorAddress& to, T message) {
    return detail::SendTyped(sink(), to, std::move(message), detail::SendPolicy::kBlockWhileFull);
  }
  // Peer-fed traffic: never blocks; a full mailbox drops the message and counts it on the target.
  template <typename T>
  SendResult SendOrDrop(const ActorAddress& to, T message) {
    return detail::SendTyped(sink(), to, std::move(message), detail::SendPolicy::kDropIfFull);
  }
  SendResult Post(const ActorAddress& to, std::unique_ptr<Message> message, detail::SendPolicy policy);

  // Polls a ZeroMQ socket (owned by the actor's state, created from zmq_context()) in the same
  // loop as the mailbox; on_readable runs when it has input. Watches die with the state.
  void Watch(zmq::socket_t& socket, Callback on_readable);
  bool Unwatch(zmq::socket_t& socket);
  zmq::context_t& zmq_context();

  // The state is beyond repair: rebuild it from the factory after the current handler returns.
  void DeclareStateBroken();

 private:
  friend class detail::ActorCell;
  explicit ActorContext(detail::ActorCell& cell) : cell_(cell) {}
  detail::MessageSink& sink();
  detail::ActorCell& cell_;
};

// Registers one handler per message type. A handler takes (T&, ActorContext&) or (T&).
class Handlers {
 public:
  using Handler = std::function<void(Message&, ActorContext&)>;

  template <typename T, typename F>
  void On(F handler) {
    table_[MessageTypeIdOf<Envelope<T>>()] = [h = std::move(handler)](Message& m, ActorContext& ctx) mutable {
      Call(h, static_cast<Envelope<T>&>(m).payload(), ctx);
    };
  }

  // A request handler returns the reply; the requester must ask for exactly that type.
  template <typename T, typename F>
  void OnRequest(F handler) {
    using R = std::decay_t<decltype(Call(handler, std::declval<T&>(), std::declval<ActorContext&>()))>;
    static_assert(!std::is_void_v<R>, "a request handler returns its reply");
    table_[MessageTypeIdOf<RequestEnvelope<T, R>>()] = [h = std::move(handler)](Message& m, ActorContext& ctx) mutable {
      auto& request = static_cast<RequestEnvelope<T, R>&>(m);
      request.Reply(Call(h, request.payload(), ctx));
    };
  }

  // Runs after the actor has handled a batch of messages and found its mailbox empty (or hit the
  // batch limit): the place for work that should cover many messages at once, such as one
  // group commit for every write queued. At most one; it runs under the same supervision as a
  // handler.
  void OnDrained(std::function<void(ActorContext&)> hook) { drained_ = std::move(hook); }
  const std::function<void(ActorContext&)>& drained() const { return drained_; }

  Handler* Find(MessageTypeId id) {
    // Streams of one message type are common; skipping the hash lookup is measurable.
    if (id == last_id_) return last_handler_;
    auto it = table_.find(id);
    if (it == table_.end()) return nullptr;
    last_id_ = id;
    last_handler_ = &it->second;  // stable: unordered_map nodes do not move
    return last_handler_;
  }
  void Clear() {
    table_.clear();
    drained_ = nullptr;
    last_id_ = nullptr;
    last_handler_ = nullptr;
  }

 private:
  template <typename F, typename T>
  static decltype(auto) Call(F& f, T& payload, ActorContext& ctx) {
    if constexpr (std::is_invocable_v<F&, T&, ActorContext&>) {
      return f(payload, ctx);
    } else {
      return f(payload);
    }
  }
  std::unordered_map<MessageTypeId, Handler> table_;
  std::function<void(ActorContext&)> drained_;
  MessageTypeId last_id_ = nullptr;
  Handler* last_handler_ = nullptr;
};

// The state object. Init runs on the actor's thread before it is reported ready; throwing from
// Init makes the spawn fail. The destructor also runs on the actor's thread.
class Actor {
 public:
  virtual ~Actor() = default;
  virtual void Init(Handlers& on, ActorContext& ctx) = 0;
};

using ActorFactory = std::function<std::unique_ptr<Actor>()>;

}  // namespace gpumart::actors
