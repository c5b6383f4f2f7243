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
//
// Actors submit with SubmitFromActor: it never blocks (a full ledger queue refuses the write at
// once, and the caller counts it), and the answer comes back to the actor as a LedgerWriteDone
// message, handled on its own thread like any other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>

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
  // Called on the ledger's thread after each round is applied and committed, with how long that
  // took (the durable write a lease waits for); for metrics, so it must be cheap. Measured with
  // the steady clock: Clock's milliseconds are too coarse for an fsync.
  std::function<void(std::chrono::nanoseconds)> on_commit;
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

// Where the answer to an actor's write goes: a LedgerWriteDone to `to`, carrying `tag`.
struct LedgerReplyTo {
  actors::ActorAddress to;
  uint64_t tag = 0;
};

// The answer to a write submitted with SubmitFromActor.
struct LedgerWriteDone {
  uint64_t tag = 0;  // the submitter's, to tell its writes apart
  Status status;     // ok once durable; else why the write or its round failed
};

// The message a write travels in. Answered through `ack`, or, when reply_to is set, by a
// LedgerWriteDone message.
struct LedgerWriteMessage {
  PreparedWrite write;
  Acknowledgement ack;
  std::optional<LedgerReplyTo> reply_to;
};

// Queues `write` from the actor whose context `ctx` is, to the ledger at `ledger`, without ever
// blocking: kDropped when the ledger's queue is full (counted on the ledger's ActorStats as
// dropped_full; the caller counts it too and may try later), kStopped when the ledger is gone;
// nothing is answered then. On kOk exactly one LedgerWriteDone{tag, status} comes back to
// ctx.self() once the write is durable or has failed, unless the ledger stops first (its
// submitters are stopped before it, so none is waiting then).
//
// The ledger sends that answer with a blocking Send on its own pipe to the submitter, so a
// submitter must never block on the ledger itself (this function cannot) and must handle its
// LedgerWriteDone messages promptly: the ledger waits only while the submitter has more than
// its mailbox's high-water mark of answers unread.
actors::SendResult SubmitFromActor(actors::ActorContext& ctx, const actors::ActorAddress& ledger,
                                   PreparedWrite write, uint64_t tag);

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
