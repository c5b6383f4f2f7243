#include "ledger/ledger_actor.h"

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
    wake_.notify_one();
  }
  writer_.join();  // it commits and acknowledges everything submitted before stopping_
}

void LedgerActor::Submit(LedgerWrite write, Done done) {
  auto prepared = Prepare(std::move(write));
  if (!prepared.ok()) {
    done(prepared.status());
    return;
  }
  if (stopping_.load(std::memory_order_acquire)) {
    done(Status::Unavailable("the ledger is shutting down"));
    return;
  }
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= options_.max_queued) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    done(Status::Unavailable("the ledger write queue is full (" + std::to_string(options_.max_queued) + ")"));
    return;
  }
  auto* node = new Node{Pending{std::move(prepared).value(), std::move(done)}, nullptr};
  Node* head = inbox_.load(std::memory_order_relaxed);
  do {
    node->next = head;
  } while (!inbox_.compare_exchange_weak(head, node, std::memory_order_release, std::memory_order_relaxed));
  // Only the write that found the inbox empty can have to wake the writer: the writer looks at
  // the inbox again, under the mutex, after saying it will sleep.
  if (head == nullptr) {
    std::lock_guard lock(mutex_);
    if (writer_sleeping_) wake_.notify_one();
  }
}

std::future<Status> LedgerActor::Submit(LedgerWrite write) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  Submit(std::move(write), [promise](const Status& status) { promise->set_value(status); });
  return future;
}

Status LedgerActor::Write(LedgerWrite write) {
  // A mutex and condition variable rather than a promise (no extra shared state machinery) or
  // an atomic wait (libstdc++ spins with sched_yield first, which many waiting threads turn into
  // a yield storm). Shared, because the writer may still be notifying when this thread returns.
  struct Waiter {
    std::mutex mutex;
    std::condition_variable woken;
    bool done = false;
    Status status;
  };
  auto waiter = std::make_shared<Waiter>();
  Submit(std::move(write), [waiter](const Status& status) {
    std::lock_guard lock(waiter->mutex);
    waiter->status = status;
    waiter->done = true;
    waiter->woken.notify_one();
  });
  std::unique_lock lock(waiter->mutex);
  waiter->woken.wait(lock, [&] { return waiter->done; });
  return waiter->status;
}

LedgerActor::Stats LedgerActor::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void LedgerActor::Run() {
  std::vector<Pending> round;
  int64_t next_compaction_ms =
      options_.compaction_interval_ms > 0 ? clock_.MonotonicMs() + options_.compaction_interval_ms : INT64_MAX;
  for (;;) {
    Node* taken = inbox_.exchange(nullptr, std::memory_order_acquire);
    const bool compact = clock_.MonotonicMs() >= next_compaction_ms;
    if (compact) next_compaction_ms = clock_.MonotonicMs() + options_.compaction_interval_ms;
    if (taken == nullptr && !compact) {
      std::unique_lock lock(mutex_);
      writer_sleeping_ = true;
      // The timer comes from the wait's timeout; a manual clock in tests only moves when told.
      while (inbox_.load(std::memory_order_acquire) == nullptr && !stopping_) {
        const int64_t now = clock_.MonotonicMs();
        if (now >= next_compaction_ms) break;
        wake_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(next_compaction_ms - now, 1000)));
      }
      writer_sleeping_ = false;
      if (inbox_.load(std::memory_order_acquire) == nullptr && stopping_) return;
      continue;
    }
    // The stack is newest first: reverse it so writes apply in submission order.
    size_t count = 0;
    Node* oldest_first = nullptr;
    while (taken != nullptr) {
      Node* next = taken->next;
      taken->next = oldest_first;
      oldest_first = taken;
      taken = next;
      ++count;
    }
    queued_.fetch_sub(count, std::memory_order_relaxed);
    bool compact_now = compact;
    while (oldest_first != nullptr || compact_now) {
      while (oldest_first != nullptr && round.size() < options_.max_round) {
        std::unique_ptr<Node> node(oldest_first);
        oldest_first = node->next;
        round.push_back(std::move(node->pending));
      }
      CommitRound(round, compact_now);
      compact_now = false;
      round.clear();
    }
  }
}

void LedgerActor::CommitRound(std::vector<Pending>& round, bool compact) {
  std::vector<const PreparedWrite*> writes;
  writes.reserve(round.size() + 1);
  for (const auto& pending : round) writes.push_back(&pending.write);
  const PreparedWrite compaction{Compact{}, {}, {}};
  if (compact) writes.push_back(&compaction);
  std::vector<Status> results;
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
}

}  // namespace gpumart::ledger
