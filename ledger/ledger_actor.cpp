#include "ledger/ledger_actor.h"

#include <atomic>
#include <chrono>
#include <vector>

namespace gpumart::ledger {

Result<std::unique_ptr<LedgerActor>> LedgerActor::Open(const std::string& path, const LedgerOptions& options,
                                                       const Clock& clock, const LedgerActorOptions& actor_options) {
  auto store = LedgerStore::Open(path, options);
  if (!store.ok()) return store.status();
  return std::make_unique<LedgerActor>(std::move(store).value(), clock, actor_options);
}

LedgerActor::LedgerActor(std::unique_ptr<LedgerStore> store, const Clock& clock, const LedgerActorOptions& options)
    : store_(std::move(store)), clock_(clock), options_(options), writer_([this] { Run(); }) {}

LedgerActor::~LedgerActor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

void LedgerActor::Submit(LedgerWrite write, Done done) {
  auto prepared = Prepare(std::move(write));
  if (!prepared.ok()) {
    done(prepared.status());
    return;
  }
  {
    std::unique_lock lock(mutex_);
    if (stopping_) {
      lock.unlock();
      done(Status::Unavailable("the ledger is shutting down"));
      return;
    }
    if (queue_.size() >= options_.max_queued) {
      lock.unlock();
      done(Status::Unavailable("the ledger write queue is full (" + std::to_string(options_.max_queued) + ")"));
      return;
    }
    queue_.push_back(Pending{std::move(prepared).value(), std::move(done)});
  }
  wake_.notify_one();
}

std::future<Status> LedgerActor::Submit(LedgerWrite write) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  Submit(std::move(write), [promise](const Status& status) { promise->set_value(status); });
  return future;
}

Status LedgerActor::Write(LedgerWrite write) {
  // A futex-backed flag rather than a promise: no mutex per write, which matters when many
  // threads each wait for their own acknowledgement. Shared, because the writer may still be
  // inside notify_one when this thread wakes and returns.
  struct Waiter {
    Status status;
    std::atomic<bool> done{false};
  };
  auto waiter = std::make_shared<Waiter>();
  Submit(std::move(write), [waiter](const Status& status) {
    waiter->status = status;
    waiter->done.store(true, std::memory_order_release);
    waiter->done.notify_one();
  });
  waiter->done.wait(false, std::memory_order_acquire);
  return waiter->status;
}

LedgerActor::Stats LedgerActor::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void LedgerActor::Run() {
  std::vector<Pending> round;
  std::vector<const PreparedWrite*> writes;
  std::vector<Status> results;
  int64_t next_compaction_ms =
      options_.compaction_interval_ms > 0 ? clock_.MonotonicMs() + options_.compaction_interval_ms : INT64_MAX;
  for (;;) {
    bool compact = false;
    {
      std::unique_lock lock(mutex_);
      // The timer comes from the wait's timeout; a manual clock in tests only moves when told.
      while (queue_.empty() && !stopping_) {
        const int64_t now = clock_.MonotonicMs();
        if (now >= next_compaction_ms) break;
        wake_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(next_compaction_ms - now, 1000)));
      }
      if (queue_.empty() && stopping_) return;
      const size_t take = std::min(queue_.size(), options_.max_round);
      for (size_t i = 0; i < take; ++i) {
        round.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (clock_.MonotonicMs() >= next_compaction_ms) {
        compact = true;
        next_compaction_ms = clock_.MonotonicMs() + options_.compaction_interval_ms;
      }
    }
    PreparedWrite compaction{Compact{}, {}, {}};
    writes.clear();
    for (const auto& pending : round) writes.push_back(&pending.write);
    if (compact) writes.push_back(&compaction);

    const Status committed = store_->ApplyRound(writes, clock_.NowMs(), results);
    {
      // Before the acknowledgements, so a caller that saw its ack also sees it counted.
      std::lock_guard lock(mutex_);
      ++stats_.rounds;
      stats_.writes += round.size();
      if (!committed.ok()) ++stats_.failed_rounds;
      stats_.largest_round = std::max(stats_.largest_round, round.size());
    }
    for (size_t i = 0; i < round.size(); ++i) round[i].done(results[i]);
    round.clear();
  }
}

}  // namespace gpumart::ledger
