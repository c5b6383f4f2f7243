// Drives one actor deterministically, without threads or sockets: the test delivers messages one
// by one, moves a ManualClock to fire timers, and inspects what the actor sent. The actor runs the
// same dispatch and supervision code as in the threaded runtime (detail::ActorCell).
//
//   ActorTestHarness h([] { return std::make_unique<BidEngine>(...); });
//   ASSERT_TRUE(h.ok());
//   h.Deliver(OrderSeen{...});
//   h.AdvanceTime(500);                      // fires every timer due in the next 500 ms
//   for (auto& sent : h.TakeSent()) if (auto* bid = sent.As<Bid>()) ...
//
// Sends made by the actor never block and are recorded, in order, with their target; addresses
// of other actors for the test come from FakeAddress(). Socket watches are recorded but not
// polled (call FireReadable to run a watch callback).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "actors/actor.h"
#include "actors/clock.h"

namespace gpumart::actors {

namespace detail {
class ActorCell;
}

// One message the actor under test sent.
struct SentMessage {
  ActorAddress to;
  std::unique_ptr<Message> message;
  bool drop_if_full = false;  // sent with SendOrDrop

  // The payload if this is a one-way message of type T, else nullptr.
  template <typename T>
  T* As() const {
    if (message->type_id() != MessageTypeIdOf<Envelope<T>>()) return nullptr;
    return &static_cast<Envelope<T>&>(*message).payload();
  }
};

class ActorTestHarness final : private detail::MessageSink {
 public:
  explicit ActorTestHarness(ActorFactory factory, ActorOptions options = {},
                            int64_t start_ms = ManualClock().MonotonicMs());
  ~ActorTestHarness() override;
  ActorTestHarness(const ActorTestHarness&) = delete;
  ActorTestHarness& operator=(const ActorTestHarness&) = delete;

  bool ok() const { return init_error_.empty(); }
  const std::string& init_error() const { return init_error_; }

  template <typename T>
  Delivery Deliver(T message) {
    return DeliverMessage(std::make_unique<Envelope<T>>(std::move(message)));
  }
  template <typename R, typename T>
  RequestResult<R> Request(T message) {
    auto slot = std::make_shared<detail::ReplySlot<R>>();
    DeliverMessage(std::make_unique<RequestEnvelope<T, R>>(std::move(message), slot));
    auto [value, error] = slot->Wait(std::chrono::milliseconds(0));  // answered (or failed) already
    return {std::move(value), error};
  }
  Delivery DeliverMessage(std::unique_ptr<Message> message);
  // Runs the OnDrained hook, as the runtime does after handling a batch of messages.
  void Drained();

  // Advances the clock by ms and fires the due timers in deadline order; returns how many fired.
  size_t AdvanceTime(int64_t ms);
  ManualClock& clock() { return clock_; }

  // An address the actor can send to; what it sends there is recorded.
  ActorAddress FakeAddress(const std::string& name);
  // Messages the actor sent since the last call, oldest first.
  std::vector<SentMessage> TakeSent();
  // Makes SendOrDrop to `to` report a full mailbox (and count the drop on it) while `full`.
  void SetMailboxFull(const ActorAddress& to, bool full);

  // Runs the watch callback registered for socket, as if it had become readable.
  bool FireReadable(const zmq::socket_t& socket);
  size_t watch_count() const;

  const ActorAddress& self() const;
  ActorStats stats() const { return self().stats(); }
  // The current state object (rebuilt after a restart; nullptr once failed).
  template <typename A>
  A* actor() {
    return dynamic_cast<A*>(current_actor());
  }
  zmq::context_t& zmq_context() { return *zmq_context_; }

 private:
  SendResult Post(const ActorAddress& to, std::unique_ptr<Message> message, detail::SendPolicy policy) override;
  Actor* current_actor();

  ManualClock clock_;
  std::unique_ptr<zmq::context_t> zmq_context_;
  std::unique_ptr<detail::ActorCell> cell_;
  std::string init_error_;
  std::deque<SentMessage> sent_;
  std::vector<ActorAddress> full_;
  uint64_t next_fake_id_ = 1'000'000'000;
};

}  // namespace gpumart::actors
