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

// The actor's state: collects writes in its handler, builds them into a round in OnDrained and
// hands the round to its committer thread, which writes it (sync) and then answers its writes.
//
// Why two threads: a round costs the writer CPU to build (lookups, staging, encoding) and then
// a sync write (memtable inserts, the log write, fsync, the acknowledgements). With one thread
// the two alternate; here round N+1 is built while round N is being written, one round in
// flight at most. Rounds are written and answered in the order they were built, and round N+1
// reads through round N's changes (LedgerStore::BuildRound's base), so the result is the same as
// applying them one after the other. If round N fails, round N+1 (built assuming N) is thrown
// away and built again on what is really in the DB. Every answer of round N+1, even a failed
// validation that does not need the disk, comes after round N is durable: a write is never
// answered "already exists" for a record that is not durable yet.
class LedgerWriter final : public actors::Actor {
 public:
  LedgerWriter(std::shared_ptr<LedgerStore> store, std::shared_ptr<LedgerActor::Counters> counters,
               const Clock& clock, const LedgerActorOptions& options)
      : store_(std::move(store)), counters_(std::move(counters)), clock_(clock), options_(options),
        committer_([this] { CommitLoop(); }) {}

  ~LedgerWriter() override {
    // What was handed to the committer is written and answered before the state goes.
    (void)WaitForInFlight();
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    committer_.join();
    // Only a state rebuilt after a failure can get here with writes pending; answer them.
    for (auto& pending : pending_) pending.ack(Status::Unavailable("the ledger writer restarted before committing"));
  }

  void Init(actors::Handlers& on, actors::ActorContext& ctx) override {
    on.On<LedgerWriteMessage>([this](LedgerWriteMessage& message) {
      pending_.push_back(std::move(message));
      if (pending_.size() >= options_.max_round) Commit(false);
    });
    on.OnDrained([this](actors::ActorContext&) { Commit(false); });
    if (options_.compaction_interval_ms > 0) {
      ctx.StartPeriodicTimer(options_.compaction_interval_ms, [this](actors::ActorContext&) { Commit(true); });
    }
  }

 private:
  // A round handed to the committer, with the writes it answers.
  struct InFlight {
    std::vector<LedgerWriteMessage> messages;
    RoundPtr round;
    std::vector<Status> results;
    bool done = false;    // written (or failed) and answered; guarded by mutex_
    bool failed = false;  // guarded by mutex_
  };

  void Commit(bool compact) {
    if (pending_.empty() && !compact) return;
    writes_.clear();
    for (const auto& pending : pending_) writes_.push_back(&pending.write);
    const PreparedWrite compaction{Compact{}, {}, {}};
    if (compact) writes_.push_back(&compaction);
    const int64_t now_ms = clock_.NowMs();
    auto next = std::make_unique<InFlight>();
    const detail::Round* base = RunningRound();
    next->round = store_->BuildRound(writes_, now_ms, next->results, base);
    if (!WaitForInFlight() && base != nullptr) {
      // Built on a round that failed: build it again on what the DB really holds.
      next->round = store_->BuildRound(writes_, now_ms, next->results, nullptr);
    }
    next->results.resize(pending_.size());  // the compaction's own Status is not answered
    next->messages = std::move(pending_);
    pending_.clear();
    {
      std::lock_guard lock(mutex_);
      in_flight_ = std::move(next);
    }
    changed_.notify_all();
  }

  // The round the committer is still writing (the base for the next one), or nullptr; reaps a
  // finished one.
  const detail::Round* RunningRound() {
    std::lock_guard lock(mutex_);
    if (in_flight_ && in_flight_->done) in_flight_.reset();
    return in_flight_ ? in_flight_->round.get() : nullptr;
  }

  // Waits until the round in flight (if any) is written and answered, and reaps it; false if
  // its write failed.
  bool WaitForInFlight() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !in_flight_ || in_flight_->done; });
    const bool ok = !in_flight_ || !in_flight_->failed;
    in_flight_.reset();
    return ok;
  }

  void CommitLoop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stopping_ || (in_flight_ && !in_flight_->done); });
      if (!in_flight_ || in_flight_->done) return;  // stopping, nothing left to write
      InFlight& round = *in_flight_;
      lock.unlock();
      const Status committed = store_->CommitRound(*round.round, round.results);
      const size_t writes = round.messages.size();
      // Counted before the acknowledgements, so a caller that saw its ack also sees it counted.
      counters_->rounds.fetch_add(1, std::memory_order_relaxed);
      counters_->writes.fetch_add(writes, std::memory_order_relaxed);
      if (!committed.ok()) counters_->failed_rounds.fetch_add(1, std::memory_order_relaxed);
      if (writes > counters_->largest_round.load(std::memory_order_relaxed)) {
        counters_->largest_round.store(writes, std::memory_order_relaxed);
      }
      for (size_t i = 0; i < writes; ++i) round.messages[i].ack(round.results[i]);
      lock.lock();
      round.failed = !committed.ok();
      round.done = true;
      changed_.notify_all();
    }
  }

  std::shared_ptr<LedgerStore> store_;
  std::shared_ptr<LedgerActor::Counters> counters_;
  const Clock& clock_;
  const LedgerActorOptions options_;
  std::vector<LedgerWriteMessage> pending_;
  std::vector<const PreparedWrite*> writes_;  // reused each round

  std::mutex mutex_;
  std::condition_variable changed_;
  std::unique_ptr<InFlight> in_flight_;  // set by the actor, written and marked done by the committer
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
