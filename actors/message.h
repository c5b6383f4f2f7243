// Typed, move-only messages passed between actors of one process without serialisation.
//
// Small trivially copyable payloads (kMaxInlinePayload bytes or less) skip the heap: their bytes
// travel inside the ZeroMQ frame after a pointer to the per-type function that rebuilds them on
// the receiving actor's stack. Inproc frames never leave the process, so that pointer is trusted.
//
// Ownership: a message is a heap object (an Envelope) owned by exactly one party at a time.
// Send/SendOrDrop/Request take their payload by value and always consume it: on success the
// envelope's pointer travels over an inproc socket (8 bytes) and the receiving actor owns and
// frees it after its handler returns; on any failure (mailbox full, actor stopped) the runtime
// frees it before returning. Envelopes still queued when an actor stops are drained and freed by
// the stopping actor. Nobody ever frees a message twice or loses one (tests run under ASan).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace gpumart::actors {

// Identifies a message type without hashing type names: the address of a per-type constant.
using MessageTypeId = const void*;

namespace detail {
template <typename T>
struct TypeTag {
  static constexpr char kTag = 0;
};
}  // namespace detail

template <typename T>
MessageTypeId MessageTypeIdOf() {
  return &detail::TypeTag<T>::kTag;
}

// What happened to a one-way message.
enum class SendResult {
  kOk,       // queued in the target's mailbox; the target now owns it
  kDropped,  // mailbox at its high-water mark (SendOrDrop only); freed and counted by the target
  kStopped,  // the target has stopped (or never ran); freed
};
const char* ToString(SendResult result);

// Why a request got no reply.
enum class RequestError {
  kNone,
  kTimeout,        // no reply within the timeout (a late reply is discarded)
  kStopped,        // the target stopped, or was stopped before handling the request
  kUnhandled,      // the target has no handler for this request/reply type pair
  kHandlerFailed,  // the handler threw
  kFailed,         // the target's state is broken beyond its restart limit
};
const char* ToString(RequestError error);

// Base of every envelope. The runtime dispatches on type_id() and casts to the concrete envelope.
class Message {
 public:
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  virtual ~Message() = default;

  MessageTypeId type_id() const { return type_id_; }
  // Demangled-enough name for logs (typeid name of the payload).
  const char* type_name() const { return type_name_; }
  // Called before a message is freed without having been handled, so a waiting requester learns
  // why at once instead of timing out.
  virtual void Abandon(RequestError /*reason*/) {}

  // Publishes the envelope to the receiving thread. ZeroMQ's own synchronisation is invisible to
  // ThreadSanitizer (libzmq is not instrumented), so the pointer hand-off is paired with an
  // explicit release/acquire on the envelope itself; on x86 both are plain moves.
  void PublishForHandoff() { handoff_.store(true, std::memory_order_release); }
  void AcquireAfterHandoff() const { (void)handoff_.load(std::memory_order_acquire); }

 protected:
  Message(MessageTypeId type_id, const char* type_name) : type_id_(type_id), type_name_(type_name) {}

 private:
  MessageTypeId type_id_;
  const char* type_name_;
  std::atomic<bool> handoff_{false};
};

// A one-way message carrying a T.
template <typename T>
class Envelope final : public Message {
 public:
  explicit Envelope(T payload)
      : Message(MessageTypeIdOf<Envelope<T>>(), typeid(T).name()), payload_(std::move(payload)) {}
  T& payload() { return payload_; }

 private:
  T payload_;
};


// Frames on an actor's mailbox socket: exactly 8 bytes = an owned Message*; longer = an
// InlineDecoder followed by the payload bytes. ZeroMQ stores frames of up to 33 bytes inside the
// message itself (no allocation), which bounds inline payloads.
constexpr size_t kMaxInlinePayload = 24;
constexpr size_t kMaxFrameSize = sizeof(void*) + kMaxInlinePayload;

template <typename T>
constexpr bool kSendsInline = std::is_trivially_copyable_v<T> && sizeof(T) <= kMaxInlinePayload;

namespace detail {

// Receives a message that lives on the caller's stack (inline frames).
class BorrowedDelivery {
 public:
  virtual void DeliverBorrowed(Message& message) = 0;

 protected:
  ~BorrowedDelivery() = default;
};

using InlineDecoder = void (*)(const std::byte* payload, BorrowedDelivery& target);

// Rebuilds the payload on the stack and delivers it: the receiving end of EncodeInline.
template <typename T>
void DecodeInline(const std::byte* payload, BorrowedDelivery& target) {
  std::array<std::byte, sizeof(T)> bytes;
  std::memcpy(bytes.data(), payload, sizeof(T));
  Envelope<T> envelope(std::bit_cast<T>(bytes));
  target.DeliverBorrowed(envelope);
}

// Builds the frame for an inline payload; returns its size.
template <typename T>
size_t EncodeInline(const T& payload, std::array<std::byte, kMaxFrameSize>& frame) {
  static_assert(kSendsInline<T>);
  const InlineDecoder decoder = &DecodeInline<T>;
  std::memcpy(frame.data(), &decoder, sizeof decoder);
  std::memcpy(frame.data() + sizeof decoder, &payload, sizeof(T));
  return sizeof decoder + sizeof(T);
}

// Where a reply lands. Shared by the requester (who may give up on timeout) and the envelope.
template <typename R>
class ReplySlot {
 public:
  void Fulfil(R value) {
    std::lock_guard lock(mutex_);
    if (done_) return;
    value_.emplace(std::move(value));
    done_ = true;
    cv_.notify_all();
  }
  void Fail(RequestError error) {
    std::lock_guard lock(mutex_);
    if (done_) return;
    error_ = error;
    done_ = true;
    cv_.notify_all();
  }
  // Waits until a reply or failure arrives or the timeout passes.
  template <typename Duration>
  std::pair<std::optional<R>, RequestError> Wait(Duration timeout) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return done_; })) return {std::nullopt, RequestError::kTimeout};
    if (value_) return {std::move(value_), RequestError::kNone};
    return {std::nullopt, error_};
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::optional<R> value_;
  RequestError error_ = RequestError::kNone;
};

}  // namespace detail

// A request carrying a T that expects an R. The dispatch key includes R, so a requester and a
// handler that disagree on the reply type never meet (the request is "unhandled").
template <typename T, typename R>
class RequestEnvelope final : public Message {
 public:
  RequestEnvelope(T payload, std::shared_ptr<detail::ReplySlot<R>> slot)
      : Message(MessageTypeIdOf<RequestEnvelope<T, R>>(), typeid(T).name()),
        payload_(std::move(payload)),
        slot_(std::move(slot)) {}
  ~RequestEnvelope() override { slot_->Fail(RequestError::kStopped); }  // no-op once replied

  T& payload() { return payload_; }
  void Reply(R value) { slot_->Fulfil(std::move(value)); }
  void Abandon(RequestError reason) override { slot_->Fail(reason); }

 private:
  T payload_;
  std::shared_ptr<detail::ReplySlot<R>> slot_;
};

// The outcome of a request: a reply, or the reason there is none.
template <typename R>
class RequestResult {
 public:
  RequestResult(std::optional<R> value, RequestError error) : value_(std::move(value)), error_(error) {}
  bool ok() const { return value_.has_value(); }
  RequestError error() const { return error_; }
  R& value() { return *value_; }
  const R& value() const { return *value_; }

 private:
  std::optional<R> value_;
  RequestError error_;
};

}  // namespace gpumart::actors
