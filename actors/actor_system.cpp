#include "actors/actor_system.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cassert>
#include <cstring>
#include <thread>
#include <zmq.hpp>

#include "actors/actor_cell.h"
#include "actors/outbox.h"
#include "actors/sanitizer.h"

namespace gpumart::actors {

namespace {

// Messages handled between two looks at timers and watched sockets: large enough to amortise a
// poll, small enough that a due timer or a readable socket waits for at most this many handlers.
constexpr int kMaxMailboxBatch = 256;

constexpr char kSignalReady = 'R';
constexpr char kSignalFailed = 'F';
constexpr char kSignalTerminate = 'T';

std::string MailboxEndpoint(uint64_t id) { return "inproc://gpumart-actor-" + std::to_string(id); }
std::string ControlEndpoint(uint64_t id) { return MailboxEndpoint(id) + "-control"; }

enum class OnReceive { kDeliver, kDiscard };

// Receives one frame and delivers or discards it; false when the mailbox is empty.
bool ReceiveOne(zmq::socket_t& mailbox, const detail::MailboxCore& core, detail::ActorCell& cell, OnReceive what) {
  alignas(std::max_align_t) std::array<std::byte, kMaxFrameSize> frame;
  auto received = mailbox.recv(zmq::mutable_buffer(frame.data(), frame.size()), zmq::recv_flags::dontwait);
  if (!received) return false;
  detail::AnnotateFrameReceived(&core);
  // Only Outboxes of this process can reach an inproc mailbox, so frames are well formed.
  assert(!received->truncated() && received->size >= sizeof(Message*));
  if (received->size == sizeof(Message*)) {
    Message* raw = nullptr;
    std::memcpy(&raw, frame.data(), sizeof raw);
    raw->AcquireAfterHandoff();
    std::unique_ptr<Message> message(raw);
    if (what == OnReceive::kDeliver) {
      cell.Deliver(std::move(message));
    } else {
      cell.Discard(std::move(message), RequestError::kStopped);
    }
  } else if (what == OnReceive::kDeliver) {
    detail::InlineDecoder decode = nullptr;
    std::memcpy(&decode, frame.data(), sizeof decode);
    decode(frame.data() + sizeof decode, cell);
  } else {
    cell.CountDiscarded();
  }
  return true;
}

// The stopping side of the Dekker handshake in MailboxCore, after `stopped` was stored (seq_cst):
// makes every sender's busy flag visible here, or `stopped` visible to that sender. Without
// asymmetric fences the senders' seq_cst exchange and our seq_cst loads already do that.
void HeavyFence(const detail::MailboxCore& core) {
  if (!core.asymmetric_fences) return;
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0) {
    spdlog::critical("actor {}: membarrier failed after registration succeeded", core.name);
  }
}

bool AnySenderBusy(detail::MailboxCore& core) {
  std::lock_guard lock(core.senders_mutex);
  return std::any_of(core.senders.begin(), core.senders.end(),
                     [](const std::atomic<bool>* busy) { return busy->load(std::memory_order_seq_cst); });
}

// Called once `stopped` is set: frees everything queued, including messages from senders that
// were mid-send when the flag went up (a trusted sender may be blocked on our full mailbox).
void DrainOnStop(zmq::socket_t& mailbox, detail::ActorCell& cell, detail::MailboxCore& core) {
  HeavyFence(core);
  for (;;) {
    while (ReceiveOne(mailbox, core, cell, OnReceive::kDiscard)) {
    }
    if (!AnySenderBusy(core)) break;
    zmq_pollitem_t item{mailbox.handle(), 0, ZMQ_POLLIN, 0};
    zmq_poll(&item, 1, 1);  // a sender is about to deliver
  }
  while (ReceiveOne(mailbox, core, cell, OnReceive::kDiscard)) {
  }
}

// Lets senders skip their per-message fence (see MailboxCore). Registration is per process and
// idempotent; false where the kernel lacks membarrier(2) or a sandbox forbids it.
bool EnableAsymmetricFences() {
  const long supported = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

struct ThreadArgs {
  zmq::context_t* zmq_context;
  std::shared_ptr<detail::MailboxCore> core;
  ActorFactory factory;
  const Clock* clock;
  int max_restarts;
  std::string* init_error;  // written before kSignalFailed; read by Spawn after join
};

void RunActorLoop(ThreadArgs& args, zmq::socket_t& control, bool& signalled) {
  auto& core = *args.core;
  zmq::socket_t mailbox(*args.zmq_context, zmq::socket_type::pull);
  mailbox.set(zmq::sockopt::rcvhwm, std::max(1, core.hwm - core.hwm / 2));
  mailbox.set(zmq::sockopt::linger, 0);
  mailbox.bind(core.endpoint);

  Outbox outbox(*args.zmq_context);
  detail::ActorCell cell(args.core, std::move(args.factory), *args.clock, args.max_restarts, outbox,
                         *args.zmq_context);
  if (auto error = cell.Start()) {
    *args.init_error = *error;
    core.stopped.store(true);
    signalled = true;
    control.send(zmq::const_buffer(&kSignalFailed, 1));
    return;
  }
  signalled = true;
  control.send(zmq::const_buffer(&kSignalReady, 1));

  std::vector<zmq_pollitem_t> items;
  std::vector<const zmq::socket_t*> watched;  // parallel to items[2..]
  uint64_t built_version = cell.watches_version() + 1;
  bool mailbox_busy = false;  // the last drain hit the batch limit: more is waiting
  const auto stop_requested = [&] { return core.stop_requested.load(std::memory_order_relaxed); };
  for (;;) {
    if (built_version != cell.watches_version()) {
      items.assign({{control.handle(), 0, ZMQ_POLLIN, 0}, {mailbox.handle(), 0, ZMQ_POLLIN, 0}});
      watched.clear();
      for (const auto& watch : cell.watches()) {
        items.push_back({watch.socket->handle(), 0, ZMQ_POLLIN, 0});
        watched.push_back(watch.socket);
      }
      built_version = cell.watches_version();
    }
    // zmq_poll costs several system calls, so a busy mailbox with nothing else to watch is not
    // polled at all: terminate is then seen through core.stop_requested.
    const bool poll = !mailbox_busy || !watched.empty();
    if (poll) {
      long timeout_ms = -1;
      if (mailbox_busy) {
        timeout_ms = 0;
      } else if (auto deadline = cell.NextTimerDeadline()) {
        timeout_ms = static_cast<long>(std::max<int64_t>(0, *deadline - args.clock->MonotonicMs()));
      }
      if (zmq_poll(items.data(), static_cast<int>(items.size()), timeout_ms) < 0) {
        if (zmq_errno() == EINTR) continue;
        spdlog::error("actor {}: poll failed: {}", core.name, zmq_strerror(zmq_errno()));
        break;  // ETERM: the context is going away
      }
    }
    if (stop_requested()) break;
    if (poll && (items[0].revents & ZMQ_POLLIN)) {
      char signal = 0;
      if (control.recv(zmq::mutable_buffer(&signal, 1), zmq::recv_flags::dontwait) && signal == kSignalTerminate) break;
    }
    int handled = 0;
    if (!poll || mailbox_busy || (items[1].revents & ZMQ_POLLIN)) {
      while (handled < kMaxMailboxBatch && !stop_requested() &&
             ReceiveOne(mailbox, core, cell, OnReceive::kDeliver)) {
        ++handled;
      }
    }
    // Even when a stop is pending: what the handlers accepted is finished before the stop.
    if (handled > 0) cell.HandleDrained();
    mailbox_busy = handled == kMaxMailboxBatch;
    for (size_t i = 0; poll && i < watched.size() && built_version == cell.watches_version(); ++i) {
      if (items[i + 2].revents & ZMQ_POLLIN) cell.HandleReadable(watched[i]);
    }
    cell.FireDueTimers();
  }

  core.stopped.store(true);
  DrainOnStop(mailbox, cell, core);
  cell.Shutdown();
}

// The thread body. Handler exceptions never get here (the cell catches them); this catches
// runtime failures (a socket error, a context torn down under a running actor) so that they end
// the actor, not the process.
void RunActor(ThreadArgs args) {
  // The actor's name on its thread (top -H, perf, gdb); Linux keeps at most 15 bytes.
  pthread_setname_np(pthread_self(), args.core->name.substr(0, 15).c_str());
  zmq::socket_t control(*args.zmq_context, zmq::socket_type::pair);
  control.set(zmq::sockopt::linger, 0);
  control.connect(ControlEndpoint(args.core->id));
  bool signalled = false;
  try {
    RunActorLoop(args, control, signalled);
    return;
  } catch (const std::exception& e) {
    spdlog::critical("actor {}: runtime failure: {}", args.core->name, e.what());
    if (!signalled) *args.init_error = std::string("runtime failure: ") + e.what();
  }
  args.core->stopped.store(true);
  if (!signalled) {
    try {
      control.send(zmq::const_buffer(&kSignalFailed, 1));
    } catch (const zmq::error_t&) {
    }
  }
}

}  // namespace

namespace detail {

struct ActorThread {
  std::shared_ptr<MailboxCore> core;
  std::mutex mutex;  // serialises Stop callers
  zmq::socket_t control;
  std::thread thread;

  bool terminate_sent = false;

  // Caller holds mutex.
  void SendTerminate() {
    if (terminate_sent) return;
    terminate_sent = true;
    core->stop_requested.store(true, std::memory_order_relaxed);  // seen between two messages
    try {
      // Never blocks: the pipe holds one message; if the thread already ended (a runtime
      // failure), there is no peer and the send is refused, and join returns at once.
      (void)control.send(zmq::const_buffer(&kSignalTerminate, 1), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
      // ETERM: the actor's poll fails the same way and it exits on its own.
    }
  }

  void RequestStop() {
    std::lock_guard lock(mutex);
    if (thread.joinable()) SendTerminate();
  }

  StopResult Stop() {
    std::lock_guard lock(mutex);
    if (!thread.joinable()) return StopResult::kAlreadyStopped;
    assert(thread.get_id() != std::this_thread::get_id() && "an actor cannot stop itself");
    SendTerminate();
    thread.join();
    control.close();
    return StopResult::kStopped;
  }
};

}  // namespace detail

ActorHandle& ActorHandle::operator=(ActorHandle&& other) noexcept {
  if (this != &other) {
    Stop();
    thread_ = std::move(other.thread_);
    address_ = std::move(other.address_);
    error_ = std::move(other.error_);
  }
  return *this;
}

ActorHandle::~ActorHandle() { Stop(); }

StopResult ActorHandle::Stop() { return thread_ ? thread_->Stop() : StopResult::kAlreadyStopped; }

void ActorHandle::RequestStop() {
  if (thread_) thread_->RequestStop();
}

ActorSystem::ActorSystem(bool allow_membarrier)
    : zmq_context_(std::make_unique<zmq::context_t>()),
      asymmetric_fences_(allow_membarrier && EnableAsymmetricFences()) {}

ActorSystem::~ActorSystem() {
  std::vector<std::weak_ptr<detail::ActorThread>> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  // Ask every actor first so they wind down in parallel, then wait for each.
  for (auto& weak : threads) {
    if (auto thread = weak.lock()) thread->RequestStop();
  }
  for (auto& weak : threads) {
    if (auto thread = weak.lock()) thread->Stop();
  }
  zmq_context_.reset();
}

zmq::context_t& ActorSystem::zmq_context() { return *zmq_context_; }

ActorHandle ActorSystem::Spawn(ActorOptions options, ActorFactory factory) {
  assert(options.mailbox_hwm > 0 && factory);
  uint64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    id = next_id_++;
  }
  auto core = std::make_shared<detail::MailboxCore>(id, options.name, MailboxEndpoint(id), options.mailbox_hwm,
                                                    asymmetric_fences_);
  auto thread = std::make_shared<detail::ActorThread>();
  thread->core = core;
  thread->control = zmq::socket_t(*zmq_context_, zmq::socket_type::pair);
  thread->control.set(zmq::sockopt::linger, 0);
  thread->control.bind(ControlEndpoint(id));

  std::string init_error;
  const Clock* clock = options.clock != nullptr ? options.clock : &SystemClock::Instance();
  thread->thread = std::thread(RunActor, ThreadArgs{zmq_context_.get(), core, std::move(factory), clock,
                                                    options.max_restarts, &init_error});
  char signal = 0;
  (void)thread->control.recv(zmq::mutable_buffer(&signal, 1));  // blocks until ready or failed

  ActorHandle handle;
  handle.address_ = ActorAddress(core);
  if (signal != kSignalReady) {
    thread->thread.join();
    thread->control.close();
    handle.error_ = init_error.empty() ? "actor did not signal ready" : init_error;
    return handle;
  }
  {
    std::lock_guard lock(mutex_);
    std::erase_if(threads_, [](const auto& weak) { return weak.expired(); });
    threads_.push_back(thread);
  }
  handle.thread_ = std::move(thread);
  return handle;
}

}  // namespace gpumart::actors

#if defined(__SANITIZE_THREAD__)
// libzmq is not instrumented, so ThreadSanitizer cannot see the lock-free queues it hands memory
// across threads with, and reports its internal allocate-here/free-there as races. Ignore what
// libzmq itself does; our own hand-off is made visible by Message::PublishForHandoff. The same
// queues carry what libzmq's I/O thread wrote for a message (its metadata, e.g. the ZAP User-Id
// the gossip transport reads), so a race with a libzmq frame on the other side is ignored too.
// Linked into every binary that uses the runtime, so sanitizer runs need no environment settings.
extern "C" __attribute__((visibility("default"), used)) const char* __tsan_default_suppressions() {
  return "called_from_lib:libzmq.so\nrace:libzmq.so\n";
}
#endif
