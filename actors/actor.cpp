#include "actors/actor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <exception>
#include <zmq.hpp>

#include "actors/actor_cell.h"

namespace gpumart::actors {

const char* ToString(SendResult result) {
  switch (result) {
    case SendResult::kOk: return "ok";
    case SendResult::kDropped: return "dropped (mailbox full)";
    case SendResult::kStopped: return "stopped";
  }
  return "?";
}

const char* ToString(RequestError error) {
  switch (error) {
    case RequestError::kNone: return "none";
    case RequestError::kTimeout: return "timeout";
    case RequestError::kStopped: return "stopped";
    case RequestError::kUnhandled: return "unhandled";
    case RequestError::kHandlerFailed: return "handler failed";
    case RequestError::kFailed: return "actor failed";
  }
  return "?";
}

const char* ToString(Delivery delivery) {
  switch (delivery) {
    case Delivery::kHandled: return "handled";
    case Delivery::kUnknownType: return "unknown type";
    case Delivery::kHandlerFailed: return "handler failed";
    case Delivery::kActorFailed: return "actor failed";
  }
  return "?";
}

const std::string& ActorAddress::name() const {
  static const std::string kNone = "(none)";
  return core_ ? core_->name : kNone;
}

ActorStats ActorAddress::stats() const {
  ActorStats s;
  if (!core_) return s;
  constexpr auto kRelaxed = std::memory_order_relaxed;
  s.processed = core_->processed.load(kRelaxed);
  s.unknown_type = core_->unknown_type.load(kRelaxed);
  s.handler_failures = core_->handler_failures.load(kRelaxed);
  s.restarts = core_->restarts.load(kRelaxed);
  s.dropped_full = core_->dropped_full.load(kRelaxed);
  s.discarded = core_->discarded.load(kRelaxed);
  s.timers_fired = core_->timers_fired.load(kRelaxed);
  s.failed = core_->failed.load(kRelaxed);
  return s;
}

// --- ActorContext: forwards to the cell that owns it ---

const ActorAddress& ActorContext::self() const { return cell_.self_; }
const std::string& ActorContext::name() const { return cell_.core_->name; }
const Clock& ActorContext::clock() const { return cell_.clock_; }

TimerId ActorContext::StartTimer(int64_t delay_ms, Callback callback) {
  assert(delay_ms >= 0);
  return cell_.timers_.Add(cell_.clock_.MonotonicMs() + delay_ms, 0,
                           [this, cb = std::move(callback)] { cb(*this); });
}

TimerId ActorContext::StartPeriodicTimer(int64_t interval_ms, Callback callback) {
  assert(interval_ms > 0);
  return cell_.timers_.Add(cell_.clock_.MonotonicMs() + interval_ms, interval_ms,
                           [this, cb = std::move(callback)] { cb(*this); });
}

bool ActorContext::CancelTimer(TimerId id) { return cell_.timers_.Cancel(id); }

detail::MessageSink& ActorContext::sink() { return cell_.sink_; }

SendResult ActorContext::Post(const ActorAddress& to, std::unique_ptr<Message> message, detail::SendPolicy policy) {
  return cell_.sink_.Post(to, std::move(message), policy);
}

void ActorContext::Watch(zmq::socket_t& socket, Callback on_readable) {
  Unwatch(socket);
  cell_.watches_.push_back({&socket, std::move(on_readable)});
  ++cell_.watches_version_;
}

bool ActorContext::Unwatch(zmq::socket_t& socket) {
  auto& watches = cell_.watches_;
  auto it = std::find_if(watches.begin(), watches.end(), [&](const auto& w) { return w.socket == &socket; });
  if (it == watches.end()) return false;
  watches.erase(it);
  ++cell_.watches_version_;
  return true;
}

zmq::context_t& ActorContext::zmq_context() { return cell_.zmq_context_; }

void ActorContext::DeclareStateBroken() { cell_.broken_ = true; }

// --- ActorCell ---

namespace detail {

ActorCell::ActorCell(std::shared_ptr<MailboxCore> core, ActorFactory factory, const Clock& clock, int max_restarts,
                     MessageSink& sink, zmq::context_t& zmq_context)
    : core_(std::move(core)),
      self_(core_),
      factory_(std::move(factory)),
      clock_(clock),
      max_restarts_(max_restarts),
      sink_(sink),
      zmq_context_(zmq_context),
      context_(*this) {}

ActorCell::~ActorCell() { Shutdown(); }

std::optional<std::string> ActorCell::BuildState() {
  try {
    actor_ = factory_();
    if (!actor_) return std::string("factory returned no actor");
    actor_->Init(handlers_, context_);
    return std::nullopt;
  } catch (const std::exception& e) {
    DropState();
    return std::string("init threw: ") + e.what();
  } catch (...) {
    DropState();
    return std::string("init threw a non-standard exception");
  }
}

std::optional<std::string> ActorCell::Start() {
  assert(!started_);
  auto error = BuildState();
  if (error) spdlog::error("actor {}: {}", core_->name, *error);
  started_ = !error;
  return error;
}

void ActorCell::DropState() {
  // Timers and watches capture the old state; none may outlive it.
  timers_.Clear();
  watches_.clear();
  ++watches_version_;
  handlers_.Clear();
  actor_.reset();
  broken_ = false;
}

void ActorCell::Shutdown() {
  if (actor_) DropState();
}

template <typename F>
bool ActorCell::Supervise(const char* what, const char* detail, F&& body) {
  try {
    body();
    return true;
  } catch (const BrokenStateError& e) {
    spdlog::error("actor {}: {} {} declared its state broken: {}", core_->name, what, detail, e.what());
    broken_ = true;
  } catch (const std::exception& e) {
    spdlog::error("actor {}: {} {} threw: {}", core_->name, what, detail, e.what());
  } catch (...) {
    spdlog::error("actor {}: {} {} threw a non-standard exception", core_->name, what, detail);
  }
  core_->handler_failures.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void ActorCell::RestartIfBroken() {
  if (!broken_ || !actor_) return;
  DropState();
  const auto restarts = core_->restarts.fetch_add(1, std::memory_order_relaxed) + 1;
  if (restarts > static_cast<uint64_t>(max_restarts_)) {
    spdlog::error("actor {}: restart limit ({}) exceeded; actor failed", core_->name, max_restarts_);
    core_->failed.store(true, std::memory_order_relaxed);
    return;
  }
  spdlog::warn("actor {}: rebuilding its state (restart {})", core_->name, restarts);
  if (auto error = BuildState()) {
    spdlog::error("actor {}: restart failed ({}); actor failed", core_->name, *error);
    core_->failed.store(true, std::memory_order_relaxed);
  }
}

void ActorCell::Discard(std::unique_ptr<Message> message, RequestError reason) {
  message->Abandon(reason);
  core_->discarded.fetch_add(1, std::memory_order_relaxed);
}

Delivery ActorCell::Dispatch(Message& message) {
  if (!actor_) {
    message.Abandon(RequestError::kFailed);
    core_->discarded.fetch_add(1, std::memory_order_relaxed);
    return Delivery::kActorFailed;
  }
  Handlers::Handler* handler = handlers_.Find(message.type_id());
  if (handler == nullptr) {
    spdlog::warn("actor {}: no handler for message type {}", core_->name, message.type_name());
    core_->unknown_type.fetch_add(1, std::memory_order_relaxed);
    message.Abandon(RequestError::kUnhandled);
    return Delivery::kUnknownType;
  }
  if (!Supervise("handler for", message.type_name(), [&] { (*handler)(message, context_); })) {
    message.Abandon(RequestError::kHandlerFailed);
    return Delivery::kHandlerFailed;
  }
  // Only this thread writes the counter: a plain load+store is enough and cheaper than an RMW.
  core_->processed.store(core_->processed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return Delivery::kHandled;
}

Delivery ActorCell::Deliver(std::unique_ptr<Message> message) {
  const Delivery delivery = Dispatch(*message);
  message.reset();  // the payload may refer into the state: free it before a rebuild
  RestartIfBroken();
  return delivery;
}

void ActorCell::DeliverBorrowed(Message& message) {
  Dispatch(message);
  RestartIfBroken();
}

void ActorCell::CountDiscarded() { core_->discarded.fetch_add(1, std::memory_order_relaxed); }

size_t ActorCell::FireDueTimers() {
  if (!actor_) return 0;
  size_t fired = timers_.FireDue(clock_.MonotonicMs(), [this](const TimerQueue::Callback& callback) {
    if (!actor_) return;  // an earlier timer in this round broke the state
    Supervise("timer", "callback", callback);
    RestartIfBroken();
  });
  core_->timers_fired.fetch_add(fired, std::memory_order_relaxed);
  return fired;
}

void ActorCell::HandleDrained() {
  if (!actor_ || !handlers_.drained()) return;
  auto hook = handlers_.drained();  // a copy: a restart inside it clears the handlers
  Supervise("drained", "hook", [&] { hook(context_); });
  RestartIfBroken();
}

void ActorCell::HandleReadable(const zmq::socket_t* socket) {
  auto it = std::find_if(watches_.begin(), watches_.end(), [&](const Watch& w) { return w.socket == socket; });
  if (it == watches_.end()) return;
  auto callback = it->on_readable;  // a copy: the callback may unwatch itself
  Supervise("socket", "callback", [&] { callback(context_); });
  RestartIfBroken();
}

}  // namespace detail
}  // namespace gpumart::actors
