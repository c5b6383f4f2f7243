// Sending to actors from one thread. An Outbox owns one inproc PUSH socket per target it has
// talked to, so it must be used by one thread at a time (each actor has its own, behind its
// ActorContext; other threads make their own). Destroy every Outbox before its ActorSystem.
//
// High-water mark policy (per sender, see ActorOptions::mailbox_hwm):
//   Send        trusted local senders: blocks while the target's mailbox is full.
//   SendOrDrop  peer-fed traffic: never blocks; drops the message and counts it on the target.
//   Request     blocks at most `timeout` in total, for queueing and for the reply.
// Every call consumes its payload: queued, or freed before returning (see message.h).
#pragma once

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "actors/actor.h"

namespace gpumart::actors {

class ActorSystem;

class Outbox final : public detail::MessageSink {
 public:
  explicit Outbox(ActorSystem& system);
  explicit Outbox(zmq::context_t& zmq_context);
  ~Outbox() override;
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  template <typename T>
  SendResult Send(const ActorAddress& to, T message) {
    return detail::SendTyped(*this, to, std::move(message), detail::SendPolicy::kBlockWhileFull);
  }
  template <typename T>
  SendResult SendOrDrop(const ActorAddress& to, T message) {
    return detail::SendTyped(*this, to, std::move(message), detail::SendPolicy::kDropIfFull);
  }
  // Asks `to` and waits for the reply of type R (the return type of the target's OnRequest
  // handler for T). A reply arriving after the timeout is discarded.
  template <typename R, typename T>
  RequestResult<R> Request(const ActorAddress& to, T message, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto slot = std::make_shared<detail::ReplySlot<R>>();
    auto envelope = std::make_unique<RequestEnvelope<T, R>>(std::move(message), slot);
    switch (PostUntil(to, std::move(envelope), deadline)) {
      case SendResult::kOk: break;
      case SendResult::kDropped: return {std::nullopt, RequestError::kTimeout};
      case SendResult::kStopped: return {std::nullopt, RequestError::kStopped};
    }
    auto [value, error] = slot->Wait(deadline - std::chrono::steady_clock::now());
    return {std::move(value), error};
  }

  SendResult Post(const ActorAddress& to, std::unique_ptr<Message> message, detail::SendPolicy policy) override;
  bool takes_inline_frames() const override { return true; }
  SendResult PostFrame(const ActorAddress& to, const std::byte* frame, size_t size, detail::SendPolicy policy) override;

 private:
  struct Link;
  // Queues unless the mailbox stays full until the deadline (then kDropped, not counted).
  SendResult PostUntil(const ActorAddress& to, std::unique_ptr<Message> message,
                       std::chrono::steady_clock::time_point deadline);
  // Queues one frame under the stop protocol and the policy; counts drops.
  SendResult SendFrame(const std::shared_ptr<detail::MailboxCore>& core, const void* frame, size_t size,
                       detail::SendPolicy policy);
  Link* LinkTo(const std::shared_ptr<detail::MailboxCore>& core);
  void Unlink(const detail::MailboxCore* core);

  zmq::context_t& zmq_context_;
  std::vector<std::unique_ptr<Link>> links_;
  Link* last_ = nullptr;  // most senders talk to one target in a row
};

}  // namespace gpumart::actors
