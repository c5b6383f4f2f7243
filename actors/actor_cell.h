// Internal: one actor's state, handler table, timers, socket watches and supervision - everything
// except where messages come from. The threaded runtime feeds it from a ZeroMQ mailbox; the test
// harness feeds it directly, so both run exactly the same dispatch and supervision code.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/actor.h"

namespace gpumart::actors::detail {

class ActorCell final : public BorrowedDelivery {
 public:
  struct Watch {
    zmq::socket_t* socket;
    ActorContext::Callback on_readable;
  };

  ActorCell(std::shared_ptr<MailboxCore> core, ActorFactory factory, const Clock& clock, int max_restarts,
            MessageSink& sink, zmq::context_t& zmq_context);
  virtual ~ActorCell();
  ActorCell(const ActorCell&) = delete;
  ActorCell& operator=(const ActorCell&) = delete;

  // Builds the state and runs its Init. Returns the reason on failure.
  std::optional<std::string> Start();
  // Runs the message's handler under supervision, then frees the message.
  Delivery Deliver(std::unique_ptr<Message> message);
  // The same for a message the caller owns (an inline frame rebuilt on the stack).
  void DeliverBorrowed(Message& message) override;
  // Counts an inline frame freed unhandled at stop.
  void CountDiscarded();
  // Frees a message that will never be handled, telling a waiting requester why.
  void Discard(std::unique_ptr<Message> message, RequestError reason);
  // Fires timers due at the clock's current time; returns how many fired.
  size_t FireDueTimers();
  std::optional<int64_t> NextTimerDeadline() const { return timers_.NextDeadline(); }
  // Runs the state's OnDrained hook (if any) under supervision; after a batch of deliveries.
  void HandleDrained();
  // Runs the watch callback for socket (if still watched) under supervision.
  void HandleReadable(const zmq::socket_t* socket);
  // Destroys the state (on the caller's thread, which should be the actor's).
  void Shutdown();

  const std::vector<Watch>& watches() const { return watches_; }
  uint64_t watches_version() const { return watches_version_; }
  bool failed() const { return actor_ == nullptr && started_; }
  Actor* actor() { return actor_.get(); }
  ActorContext& context() { return context_; }

 private:
  friend class gpumart::actors::ActorContext;
  template <typename F>
  bool Supervise(const char* what, const char* detail, F&& body);
  Delivery Dispatch(Message& message);
  void RestartIfBroken();
  std::optional<std::string> BuildState();
  void DropState();

  std::shared_ptr<MailboxCore> core_;
  ActorAddress self_;
  ActorFactory factory_;
  const Clock& clock_;
  const int max_restarts_;
  MessageSink& sink_;
  zmq::context_t& zmq_context_;
  ActorContext context_;
  Handlers handlers_;
  TimerQueue timers_;
  std::vector<Watch> watches_;
  uint64_t watches_version_ = 0;
  std::unique_ptr<Actor> actor_;
  bool started_ = false;
  bool broken_ = false;
};

}  // namespace gpumart::actors::detail
