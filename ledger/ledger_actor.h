// The ledger's single writer, an actor (actors/) with group commit.
//
// Any thread Submits writes through its own actors::Outbox; they queue in the actor's mailbox.
// The actor's handler only collects them; its OnDrained hook, which the runtime runs after each
// batch of messages (up to the runtime's batch limit), applies everything collected to the store
// as one round and commits it as one sync=true WriteBatch, then acknowledges each write with its
// own Status. So a write is acknowledged ok only once it is durable, and under load one fsync
// covers many writes. A write that fails validation (illegal transition, duplicate...) fails
// alone; a failed batch write (disk full, I/O error) fails every write of its round and leaves
// earlier data intact.
//
// Reads go straight to the store (LevelDB is safe for concurrent reads) and never wait for the
// writer. The expensive, state-independent part of a write (encoding, hashing, id check) runs on
// the submitting thread, so the actor does only what must be serial.
//
// Every write is answered exactly once: with its Status, or kUnavailable when the ledger stopped
// (or the mailbox refused it) before the write was handled.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>

#include "actors/actor.h"
#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "ledger/store.h"

namespace gpumart::ledger {

// Writes one sender may have queued before Send blocks (the mailbox's high-water mark).
constexpr int kLedgerMailboxHwm = 4096;
constexpr size_t kMaxRoundWrites = 4096;  // writes in one WriteBatch
constexpr int64_t kDefaultCompactionIntervalMs = 60'000;

struct LedgerActorOptions {
  int mailbox_hwm = kLedgerMailboxHwm;
  size_t max_round = kMaxRoundWrites;
  // How often the actor runs retention (a Compact round) on its own timer; 0 = never.
  int64_t compaction_interval_ms = kDefaultCompactionIntervalMs;
};

using LedgerDone = std::function<void(const Status&)>;

// Runs its callback exactly once: with the write's Status, or with kUnavailable when destroyed
// unanswered (the message was dropped or discarded at stop).
class Acknowledgement {
 public:
  Acknowledgement() = default;
  explicit Acknowledgement(LedgerDone done) : done_(std::move(done)) {}
  Acknowledgement(Acknowledgement&& other) noexcept : done_(std::exchange(other.done_, nullptr)) {}
  Acknowledgement& operator=(Acknowledgement&& other) noexcept;
  Acknowledgement(const Acknowledgement&) = delete;
  Acknowledgement& operator=(const Acknowledgement&) = delete;
  ~Acknowledgement();
  void operator()(const Status& status);

 private:
  LedgerDone done_;
};

// The message a write travels in.
struct LedgerWriteMessage {
  PreparedWrite write;
  Acknowledgement ack;
};

class LedgerActor {
 public:
  using Done = LedgerDone;

  // Opens the store at `path` and spawns the writer actor in `system`.
  static Result<std::unique_ptr<LedgerActor>> Open(actors::ActorSystem& system, const std::string& path,
                                                   const LedgerOptions& options, const Clock& clock,
                                                   const LedgerActorOptions& actor_options = {});
  static Result<std::unique_ptr<LedgerActor>> Start(actors::ActorSystem& system, std::unique_ptr<LedgerStore> store,
                                                    const Clock& clock, const LedgerActorOptions& actor_options = {});
  // Stops the actor: writes it has handled are committed and answered, writes still queued are
  // answered kUnavailable.
  ~LedgerActor();
  LedgerActor(const LedgerActor&) = delete;
  LedgerActor& operator=(const LedgerActor&) = delete;

  // Queues `write` through `outbox` (the calling thread's); `done` runs on the ledger's thread
  // once its batch is durable or has failed. A write refused up front (bad id) runs `done` at
  // once on this thread. Blocks only while the mailbox is full.
  void Submit(actors::Outbox& outbox, LedgerWrite write, Done done);
  std::future<Status> Submit(actors::Outbox& outbox, LedgerWrite write);
  // Submits and waits for the acknowledgement.
  Status Write(actors::Outbox& outbox, LedgerWrite write);

  // Reads: any thread, any time.
  const LedgerStore& store() const { return *store_; }
  const actors::ActorAddress& address() const { return handle_.address(); }

  struct Stats {
    uint64_t rounds = 0;       // WriteBatches committed (or attempted)
    uint64_t writes = 0;       // writes answered by a round
    uint64_t failed_rounds = 0;
    uint64_t largest_round = 0;
  };
  Stats stats() const;

  // Counters the actor's state updates and anyone reads.
  struct Counters {
    std::atomic<uint64_t> rounds{0}, writes{0}, failed_rounds{0}, largest_round{0};
  };

 private:
  LedgerActor(std::shared_ptr<LedgerStore> store, std::shared_ptr<Counters> counters, actors::ActorHandle handle);

  std::shared_ptr<LedgerStore> store_;
  std::shared_ptr<Counters> counters_;
  actors::ActorHandle handle_;
};

}  // namespace gpumart::ledger
