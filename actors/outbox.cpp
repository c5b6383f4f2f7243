#include "actors/outbox.h"

#include <algorithm>
#include <cassert>
#include <zmq.hpp>

#include "actors/actor_system.h"
#include "actors/sanitizer.h"

namespace gpumart::actors {

struct Outbox::Link {
  Link(std::shared_ptr<detail::MailboxCore> core_in, zmq::socket_t socket_in)
      : core(std::move(core_in)), socket(std::move(socket_in)) {
    std::lock_guard lock(core->senders_mutex);
    core->senders.push_back(&sending);
  }
  ~Link() {
    std::lock_guard lock(core->senders_mutex);
    std::erase(core->senders, &sending);
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  std::shared_ptr<detail::MailboxCore> core;
  zmq::socket_t socket;
  std::atomic<bool> sending{false};  // up while a frame is being queued (see MailboxCore)
};

namespace {

// Holds a link's busy flag up for one send.
class SendingFlag {
 public:
  explicit SendingFlag(std::atomic<bool>& flag, const detail::MailboxCore& core) : flag_(flag) {
    if (core.asymmetric_fences) {
      flag_.store(true, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the actor's membarrier does the rest
    } else {
      flag_.exchange(true, std::memory_order_seq_cst);  // a full fence on its own
    }
  }
  ~SendingFlag() { flag_.store(false, std::memory_order_release); }
  SendingFlag(const SendingFlag&) = delete;
  SendingFlag& operator=(const SendingFlag&) = delete;

 private:
  std::atomic<bool>& flag_;
};

}  // namespace

Outbox::Outbox(ActorSystem& system) : Outbox(system.zmq_context()) {}
Outbox::Outbox(zmq::context_t& zmq_context) : zmq_context_(zmq_context) {}
Outbox::~Outbox() = default;

Outbox::Link* Outbox::LinkTo(const std::shared_ptr<detail::MailboxCore>& core) {
  if (last_ != nullptr && last_->core == core) return last_;
  for (auto& link : links_) {
    if (link->core == core) return last_ = link.get();
  }
  auto link = std::make_unique<Link>(core, zmq::socket_t(zmq_context_, zmq::socket_type::push));
  // Inproc pipes hold the sender's SNDHWM plus the receiver's RCVHWM; the actor's mailbox uses
  // the other half, so one sender can queue about mailbox_hwm messages.
  link->socket.set(zmq::sockopt::sndhwm, std::max(1, core->hwm / 2));
  link->socket.set(zmq::sockopt::linger, 0);
  link->socket.connect(core->endpoint);
  links_.push_back(std::move(link));
  return last_ = links_.back().get();
}

void Outbox::Unlink(const detail::MailboxCore* core) {
  auto it = std::find_if(links_.begin(), links_.end(), [&](const auto& l) { return l->core.get() == core; });
  if (it == links_.end()) return;
  if (last_ == it->get()) last_ = nullptr;
  links_.erase(it);
}

SendResult Outbox::SendFrame(const std::shared_ptr<detail::MailboxCore>& core, const void* frame, size_t size,
                             detail::SendPolicy policy) {
  if (!core || core->endpoint.empty()) return SendResult::kStopped;
  SendResult result = SendResult::kStopped;
  if (!core->stopped.load(std::memory_order_relaxed)) {
    Link* link = LinkTo(core);
    SendingFlag sending(link->sending, *core);
    if (!core->stopped.load(std::memory_order_seq_cst)) {
      const auto flags =
          policy == detail::SendPolicy::kDropIfFull ? zmq::send_flags::dontwait : zmq::send_flags::none;
      detail::AnnotateFrameSent(core.get());
      try {
        result = link->socket.send(zmq::const_buffer(frame, size), flags) ? SendResult::kOk : SendResult::kDropped;
      } catch (const zmq::error_t&) {
        // the context is shutting down: kStopped
      }
    }
  }
  if (result == SendResult::kDropped) core->dropped_full.fetch_add(1, std::memory_order_relaxed);
  if (result == SendResult::kStopped) Unlink(core.get());
  return result;
}

SendResult Outbox::Post(const ActorAddress& to, std::unique_ptr<Message> message, detail::SendPolicy policy) {
  assert(message != nullptr);
  Message* raw = message.get();
  raw->PublishForHandoff();
  const SendResult result = SendFrame(to.core(), &raw, sizeof raw, policy);
  if (result == SendResult::kOk) {
    (void)message.release();  // the receiving actor owns it now
  } else {
    message->Abandon(RequestError::kStopped);  // freed here
  }
  return result;
}

SendResult Outbox::PostFrame(const ActorAddress& to, const std::byte* frame, size_t size, detail::SendPolicy policy) {
  assert(size > sizeof(Message*) && size <= kMaxFrameSize);
  return SendFrame(to.core(), frame, size, policy);
}

SendResult Outbox::PostUntil(const ActorAddress& to, std::unique_ptr<Message> message,
                             std::chrono::steady_clock::time_point deadline) {
  assert(message != nullptr);
  const auto& core = to.core();
  if (!core || core->endpoint.empty() || core->stopped.load(std::memory_order_relaxed)) return SendResult::kStopped;
  Link* link = LinkTo(core);
  Message* raw = message.get();
  raw->PublishForHandoff();
  {
    SendingFlag sending(link->sending, *core);
    if (core->stopped.load(std::memory_order_seq_cst)) return SendResult::kStopped;
    detail::AnnotateFrameSent(core.get());
    try {
      for (;;) {
        if (link->socket.send(zmq::const_buffer(&raw, sizeof raw), zmq::send_flags::dontwait)) {
          (void)message.release();
          return SendResult::kOk;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return SendResult::kDropped;
        zmq_pollitem_t item{link->socket.handle(), 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&item, 1, static_cast<long>(left.count())) < 0 && zmq_errno() == ETERM) {
          return SendResult::kStopped;
        }
      }
    } catch (const zmq::error_t&) {
      return SendResult::kStopped;
    }
  }
}

}  // namespace gpumart::actors
