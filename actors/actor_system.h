// Runs actors on their own threads, CZMQ zactor style:
//   Spawn  starts the thread, which builds the state and runs Init, then signals ready on a
//          control pipe; Spawn returns only after that signal (or the Init failure).
//   Stop   raises a stop flag and sends an explicit terminate message on the control pipe
//          (never blocked by a full mailbox); returns only after the thread has finished: the
//          current handler completes, every message still queued is freed (requests fail with
//          kStopped) and counted as discarded, the state is destroyed, the thread is joined.
// One ActorSystem per process owns the ZeroMQ context; no globals.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/actor.h"

namespace gpumart::actors {

namespace detail {
struct ActorThread;
}

enum class StopResult {
  kStopped,         // this call stopped the actor
  kAlreadyStopped,  // stopped before (or never started): nothing to do
};

// Owns a running actor; stopping it on destruction. Move-only. Stop is thread-safe but must not
// be called from the actor's own thread.
class ActorHandle {
 public:
  ActorHandle() = default;
  ActorHandle(ActorHandle&&) noexcept = default;
  ActorHandle& operator=(ActorHandle&& other) noexcept;
  ~ActorHandle();

  // True when the actor was spawned and signalled ready.
  bool ok() const { return error_.empty() && thread_ != nullptr; }
  // Why Spawn failed (Init threw, or the factory returned nothing).
  const std::string& error() const { return error_; }
  const ActorAddress& address() const { return address_; }
  StopResult Stop();
  // Sends the terminate message without waiting (to stop many actors in parallel); the actor
  // finishes its current handler, then frees the rest. Stop() still joins.
  void RequestStop();

 private:
  friend class ActorSystem;
  std::shared_ptr<detail::ActorThread> thread_;
  ActorAddress address_;
  std::string error_;
};

class ActorSystem {
 public:
  // allow_membarrier=false makes every send pay a fence instead (see detail::MailboxCore); the
  // runtime also falls back to that where the kernel lacks membarrier(2).
  explicit ActorSystem(bool allow_membarrier = true);
  // Stops every actor still running, then closes the context. Outboxes must be gone by then.
  ~ActorSystem();
  ActorSystem(const ActorSystem&) = delete;
  ActorSystem& operator=(const ActorSystem&) = delete;

  ActorHandle Spawn(ActorOptions options, ActorFactory factory);
  zmq::context_t& zmq_context();

 private:
  std::unique_ptr<zmq::context_t> zmq_context_;
  const bool asymmetric_fences_;  // membarrier(2) registered; see detail::MailboxCore
  std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::vector<std::weak_ptr<detail::ActorThread>> threads_;
};

}  // namespace gpumart::actors
