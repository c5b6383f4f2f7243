// The ledger's single writer, with group commit.
//
// Any number of threads Submit writes. The writer thread takes everything queued (up to
// kMaxRoundWrites), applies it to the store as one round, commits one sync=true WriteBatch, and
// only then acknowledges each write with its own Status. So a write is acknowledged ok only once
// it is durable, and under load one fsync covers many writes. A write that fails validation
// (illegal transition, duplicate...) fails alone; a failed batch write (disk full, I/O error)
// fails every write of its round and leaves earlier data intact.
//
// Reads go straight to the store (LevelDB is safe for concurrent reads) and never wait for the
// writer. The expensive, state-independent part of a write (encoding, hashing, id check) runs
// on the submitting thread, so the writer does only what must be serial.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "actors/clock.h"
#include "ledger/store.h"

namespace gpumart::ledger {

constexpr size_t kMaxQueuedWrites = 1 << 16;  // beyond this Submit refuses (kUnavailable)
constexpr size_t kMaxRoundWrites = 4096;      // writes in one WriteBatch
constexpr int64_t kDefaultCompactionIntervalMs = 60'000;

struct LedgerActorOptions {
  size_t max_queued = kMaxQueuedWrites;
  size_t max_round = kMaxRoundWrites;
  // How often the writer runs retention (a Compact round) on its own; 0 = never.
  int64_t compaction_interval_ms = kDefaultCompactionIntervalMs;
};

class LedgerActor {
 public:
  using Done = std::function<void(const Status&)>;

  // Opens the store and starts the writer.
  static Result<std::unique_ptr<LedgerActor>> Open(const std::string& path, const LedgerOptions& options,
                                                   const Clock& clock, const LedgerActorOptions& actor_options = {});
  LedgerActor(std::unique_ptr<LedgerStore> store, const Clock& clock, const LedgerActorOptions& options = {});
  // Commits and acknowledges everything already queued, then stops the writer.
  ~LedgerActor();
  LedgerActor(const LedgerActor&) = delete;
  LedgerActor& operator=(const LedgerActor&) = delete;

  // Queues `write`; `done` runs (on the writer thread) once its batch is durable or has failed.
  // Never blocks: a write refused up front (bad id, queue full, stopping) runs `done` at once on
  // this thread. `done` should be quick: it delays the rest of its round's acknowledgements.
  void Submit(LedgerWrite write, Done done);
  std::future<Status> Submit(LedgerWrite write);
  // Submits and waits for the acknowledgement.
  Status Write(LedgerWrite write);

  // Reads: any thread, any time.
  const LedgerStore& store() const { return *store_; }

  struct Stats {
    uint64_t rounds = 0;       // WriteBatches committed (or attempted)
    uint64_t writes = 0;       // writes acknowledged
    uint64_t failed_rounds = 0;
    size_t largest_round = 0;
  };
  Stats stats() const;

 private:
  struct Pending {
    PreparedWrite write;
    Done done;
  };
  // Submitted writes wait in a lock-free stack (newest first): submitting threads never contend
  // on a lock, and the writer takes everything at once with one exchange.
  struct Node {
    Pending pending;
    Node* next = nullptr;
  };
  void Run();
  void CommitRound(std::vector<Pending>& round, bool compact);

  std::unique_ptr<LedgerStore> store_;
  const Clock& clock_;
  const LedgerActorOptions options_;
  std::atomic<Node*> inbox_{nullptr};
  std::atomic<size_t> queued_{0};
  std::atomic<bool> stopping_{false};
  // Only for putting the writer to sleep and waking it, and for stats.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool writer_sleeping_ = false;
  Stats stats_;
  std::thread writer_;  // last: starts after everything above exists
};

}  // namespace gpumart::ledger
