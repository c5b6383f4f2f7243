#include "ledger/ledger_actor.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace gpumart::ledger {

Acknowledgement& Acknowledgement::operator=(Acknowledgement&& other) noexcept {
  if (this != &other) {
    if (done_) done_(Status::Unavailable("the ledger write was replaced before it was answered"));
    done_ = std::exchange(other.done_, nullptr);
  }
  return *this;
}

Acknowledgement::~Acknowledgement() {
  if (done_) done_(Status::Unavailable("the ledger stopped before this write was committed"));
}

void Acknowledgement::operator()(const Status& status) {
  if (auto done = std::exchange(done_, nullptr)) done(status);
}

namespace {

// The actor's state: its handler collects writes; its OnDrained hook applies them to the open
// round (validation, lookups, staging, encoding); a committer thread takes the open round as
// soon as it is idle, writes it (one sync WriteBatch) and then answers its writes.
//
// Why two threads: building a round costs CPU (lookups, staging, encoding) and writing it costs
// more (memtable inserts, the log write, fsync, the acknowledgements). With one thread the two
// alternate; here writes go on being applied to the next round while the previous one is being
// written. And the committer takes everything gathered while it was busy, so with a slow fsync
// a round still covers every writer that is waiting (a fixed two-stage pipeline would split
// them into two alternating halves and fsync twice as often).
//
// Order and failure: rounds are written and answered in the order they were opened, and the
// open round reads through the round being written (LedgerStore::StartRound's base), so the
// result is that of applying the writes one after the other. If a round fails, the open round
// (built assuming it) is built again from its writes on what the DB really holds. Every answer,
// even a failed validation that needs no disk, comes after the round before it is durable: a
// write is never answered "already exists" for a record that is not durable yet.
class LedgerWriter final : public actors::Actor {
 public:
  LedgerWriter(std::shared_ptr<LedgerStore> store, std::shared_ptr<LedgerActor::Counters> counters,
               const Clock& clock, const LedgerActorOptions& options)
      : store_(std::move(store)), counters_(std::move(counters)), clock_(clock), options_(options),
        committer_([this] { CommitLoop(); }) {}

  ~LedgerWriter() override {
    // Everything applied is written and answered before the state goes.
    {
      std::unique_lock lock(mutex_);
      stopping_ = true;
      changed_.notify_all();
    }
    committer_.join();
    // Only a state rebuilt after a failure can get here with writes pending; answer them.
    for (auto& pending : pending_) pending.ack(Status::Unavailable("the ledger writer restarted before committing"));
  }

  void Init(actors::Handlers& on, actors::ActorContext& ctx) override {
    on.On<LedgerWriteMessage>([this](LedgerWriteMessage& message) {
      pending_.push_back(std::move(message));
      if (pending_.size() >= options_.max_round) Apply();
    });
    on.OnDrained([this](actors::ActorContext&) { Apply(); });
    if (options_.compaction_interval_ms > 0) {
      ctx.StartPeriodicTimer(options_.compaction_interval_ms, [this](actors::ActorContext&) {
        pending_.push_back(LedgerWriteMessage{PreparedWrite{Compact{}, {}, {}}, Acknowledgement()});
        Apply();
      });
    }
  }

 private:
  // A round and the writes it answers (messages[i] gets results[i]).
  struct Batch {
    RoundPtr round;
    std::vector<LedgerWriteMessage> messages;
    std::vector<Status> results;
  };

  // Applies the pending writes to the open round (opening one if needed) and tells the
  // committer. Holds the lock while applying: the committer only needs it between rounds.
  void Apply() {
    if (pending_.empty()) return;
    std::unique_lock lock(mutex_);
    // A full round waits for the committer to take it.
    changed_.wait(lock, [&] { return !open_ || open_->messages.size() < options_.max_round; });
    if (!open_) {
      open_ = std::make_unique<Batch>();
      open_->round = store_->StartRound(clock_.NowMs(), writing_ ? writing_->round.get() : nullptr);
    }
    writes_.clear();
    for (const auto& pending : pending_) writes_.push_back(&pending.write);
    store_->ApplyToRound(*open_->round, writes_, open_->results);
    std::move(pending_.begin(), pending_.end(), std::back_inserter(open_->messages));
    pending_.clear();
    changed_.notify_all();
  }

  void CommitLoop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stopping_ || open_; });
      if (!open_) return;  // stopping, and everything applied is written
      LedgerStore::CloseRound(*open_->round);
      writing_ = std::move(open_);
      changed_.notify_all();  // a full round's Apply may go on
      lock.unlock();

      Batch& batch = *writing_;
      const Status committed = store_->CommitRound(*batch.round, batch.results);
      size_t answered = 0;
      for (const auto& message : batch.messages) answered += message.ack ? 1 : 0;
      // Counted before the acknowledgements, so a caller that saw its ack also sees it counted.
      counters_->rounds.fetch_add(1, std::memory_order_relaxed);
      counters_->writes.fetch_add(answered, std::memory_order_relaxed);
      if (!committed.ok()) counters_->failed_rounds.fetch_add(1, std::memory_order_relaxed);
      if (answered > counters_->largest_round.load(std::memory_order_relaxed)) {
        counters_->largest_round.store(answered, std::memory_order_relaxed);
      }
      for (size_t i = 0; i < batch.messages.size(); ++i) batch.messages[i].ack(batch.results[i]);

      lock.lock();
      if (open_) {
        if (committed.ok()) {
          LedgerStore::BaseWritten(*open_->round);
        } else {
          // Built on a round that never reached the disk: apply its writes again.
          open_->round = store_->StartRound(clock_.NowMs(), nullptr);
          open_->results.clear();
          writes_again_.clear();
          for (const auto& message : open_->messages) writes_again_.push_back(&message.write);
          store_->ApplyToRound(*open_->round, writes_again_, open_->results);
        }
      }
      writing_.reset();
    }
  }

  std::shared_ptr<LedgerStore> store_;
  std::shared_ptr<LedgerActor::Counters> counters_;
  const Clock& clock_;
  const LedgerActorOptions options_;
  std::vector<LedgerWriteMessage> pending_;   // the actor's: received, not yet applied
  std::vector<const PreparedWrite*> writes_;  // the actor's, reused

  std::mutex mutex_;
  std::condition_variable changed_;
  std::unique_ptr<Batch> open_;     // being applied to; taken by the committer when idle
  std::unique_ptr<Batch> writing_;  // being written (the committer's; open_'s base while set)
  std::vector<const PreparedWrite*> writes_again_;  // the committer's, reused
  bool stopping_ = false;
  std::thread committer_;  // last: starts once everything above exists
};

}  // namespace

Result<std::unique_ptr<LedgerActor>> LedgerActor::Open(actors::ActorSystem& system, const std::string& path,
                                                       const LedgerOptions& options, const Clock& clock,
                                                       const LedgerActorOptions& actor_options) {
  auto store = LedgerStore::Open(path, options);
  if (!store.ok()) return store.status();
  return Start(system, std::move(store).value(), clock, actor_options);
}

Result<std::unique_ptr<LedgerActor>> LedgerActor::Start(actors::ActorSystem& system,
                                                        std::unique_ptr<LedgerStore> store, const Clock& clock,
                                                        const LedgerActorOptions& actor_options) {
  std::shared_ptr<LedgerStore> shared_store(std::move(store));
  auto counters = std::make_shared<Counters>();
  actors::ActorOptions options;
  options.name = "ledger";
  options.mailbox_hwm = actor_options.mailbox_hwm;
  options.clock = &clock;
  actors::ActorHandle handle = system.Spawn(options, [shared_store, counters, &clock, actor_options] {
    return std::make_unique<LedgerWriter>(shared_store, counters, clock, actor_options);
  });
  if (!handle.ok()) return Status::Internal("cannot start the ledger actor: " + handle.error());
  return std::unique_ptr<LedgerActor>(new LedgerActor(std::move(shared_store), std::move(counters), std::move(handle)));
}

LedgerActor::LedgerActor(std::shared_ptr<LedgerStore> store, std::shared_ptr<Counters> counters,
                         actors::ActorHandle handle)
    : store_(std::move(store)), counters_(std::move(counters)), handle_(std::move(handle)) {}

LedgerActor::~LedgerActor() { handle_.Stop(); }

void LedgerActor::Submit(actors::Outbox& outbox, LedgerWrite write, Done done) {
  auto prepared = Prepare(std::move(write));
  if (!prepared.ok()) {
    done(prepared.status());
    return;
  }
  // Refused (the ledger stopped): the message is freed and its Acknowledgement answers.
  (void)outbox.Send(handle_.address(), LedgerWriteMessage{std::move(prepared).value(), Acknowledgement(std::move(done))});
}

std::future<Status> LedgerActor::Submit(actors::Outbox& outbox, LedgerWrite write) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  Submit(outbox, std::move(write), [promise](const Status& status) { promise->set_value(status); });
  return future;
}

Status LedgerActor::Write(actors::Outbox& outbox, LedgerWrite write) {
  // One futex word per waiting writer: the ledger's thread publishes the Status and wakes this
  // thread with a single FUTEX_WAKE, and the woken thread returns at once. A mutex and
  // condition variable cost the notifier a lock round trip per write and often a second
  // context switch (the woken thread blocking again on the mutex the notifier still holds);
  // std::atomic::wait is avoided because libstdc++ spins with sched_yield first, which 64
  // waiting threads on 2 cores turn into a yield storm. Shared, because the writer may still be
  // in its wake call when this thread returns.
  struct Waiter {
    std::atomic<uint32_t> answered{0};
    Status status;
  };
  static_assert(std::atomic<uint32_t>::is_always_lock_free && sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  auto waiter = std::make_shared<Waiter>();
  Submit(outbox, std::move(write), [waiter](const Status& status) {
    waiter->status = status;
    waiter->answered.store(1, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&waiter->answered), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  });
  while (waiter->answered.load(std::memory_order_acquire) == 0) {
    // Returns at once if already answered (the word is no longer 0); EINTR and spurious wakes
    // just loop.
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&waiter->answered), FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  }
  return waiter->status;
}

LedgerActor::Stats LedgerActor::stats() const {
  Stats stats;
  stats.rounds = counters_->rounds.load(std::memory_order_relaxed);
  stats.writes = counters_->writes.load(std::memory_order_relaxed);
  stats.failed_rounds = counters_->failed_rounds.load(std::memory_order_relaxed);
  stats.largest_round = counters_->largest_round.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace gpumart::ledger
