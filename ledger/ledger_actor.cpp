#include "ledger/ledger_actor.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
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

// The actor's state: collects writes in its handler, commits them in OnDrained.
class LedgerWriter final : public actors::Actor {
 public:
  LedgerWriter(std::shared_ptr<LedgerStore> store, std::shared_ptr<LedgerActor::Counters> counters,
               const Clock& clock, const LedgerActorOptions& options)
      : store_(std::move(store)), counters_(std::move(counters)), clock_(clock), options_(options) {}

  ~LedgerWriter() override {
    // Only a state rebuilt after a failure can get here with writes pending; answer them.
    // (A write with reply_to is not answered here: the state has no context to send with.)
    for (auto& pending : pending_) pending.ack(Status::Unavailable("the ledger writer restarted before committing"));
  }

  void Init(actors::Handlers& on, actors::ActorContext& ctx) override {
    on.On<LedgerWriteMessage>([this](LedgerWriteMessage& message, actors::ActorContext& self) {
      pending_.push_back(std::move(message));
      if (pending_.size() >= options_.max_round) Commit(self, false);
    });
    on.OnDrained([this](actors::ActorContext& self) { Commit(self, false); });
    if (options_.compaction_interval_ms > 0) {
      ctx.StartPeriodicTimer(options_.compaction_interval_ms, [this](actors::ActorContext& self) { Commit(self, true); });
    }
  }

 private:
  void Commit(actors::ActorContext& ctx, bool compact) {
    if (pending_.empty() && !compact) return;
    writes_.clear();
    for (const auto& pending : pending_) writes_.push_back(&pending.write);
    const PreparedWrite compaction{Compact{}, {}, {}};
    if (compact) writes_.push_back(&compaction);
    const auto started = std::chrono::steady_clock::now();
    const Status committed = store_->ApplyRound(writes_, clock_.NowMs(), results_);
    if (options_.on_commit) options_.on_commit(std::chrono::steady_clock::now() - started);
    // Counted before the acknowledgements, so a caller that saw its ack also sees it counted.
    counters_->rounds.fetch_add(1, std::memory_order_relaxed);
    counters_->writes.fetch_add(pending_.size(), std::memory_order_relaxed);
    if (!committed.ok()) counters_->failed_rounds.fetch_add(1, std::memory_order_relaxed);
    if (pending_.size() > counters_->largest_round.load(std::memory_order_relaxed)) {
      counters_->largest_round.store(pending_.size(), std::memory_order_relaxed);
    }
    for (size_t i = 0; i < pending_.size(); ++i) {
      LedgerWriteMessage& pending = pending_[i];
      if (pending.reply_to) {
        // A stopped submitter (kStopped) no longer waits for it.
        (void)ctx.Send(pending.reply_to->to, LedgerWriteDone{pending.reply_to->tag, results_[i]});
      } else {
        pending.ack(results_[i]);
      }
    }
    pending_.clear();
  }

  std::shared_ptr<LedgerStore> store_;
  std::shared_ptr<LedgerActor::Counters> counters_;
  const Clock& clock_;
  const LedgerActorOptions options_;
  std::vector<LedgerWriteMessage> pending_;
  std::vector<const PreparedWrite*> writes_;  // reused each round
  std::vector<Status> results_;
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
  (void)outbox.Send(handle_.address(), LedgerWriteMessage{std::move(prepared).value(), Acknowledgement(std::move(done)), std::nullopt});
}

actors::SendResult SubmitFromActor(actors::ActorContext& ctx, const actors::ActorAddress& ledger,
                                   PreparedWrite write, uint64_t tag) {
  return ctx.SendOrDrop(ledger, LedgerWriteMessage{std::move(write), Acknowledgement(), LedgerReplyTo{ctx.self(), tag}});
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
