// Ledger benchmarks. Targets (shared/BENCHMARKS.md): durable leases/s through group commit from
// 64 writers >= 50% of bare LevelDB sync WriteBatches of the same records, and >= 20x one sync
// Put per record; lease lookup by id >= 200,000/s. items_per_second counts records.
#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <latch>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "bench/temp_dir.h"
#include "ledger/ledger_actor.h"
#include "tests/ledger/test_leases.h"

namespace gpumart::ledger {
namespace {

constexpr int kWriters = 64;
constexpr int kLeasesPerWriter = 400;  // fixed iterations: the leases are signed beforehand
constexpr size_t kLookupLeases = 10'000;

using bench::TempDir;

// `count` signed leases (two Ed25519 signatures each), made on every core.
std::vector<market::Signed<market::Lease>> SignLeases(size_t count) {
  const size_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<market::Signed<market::Lease>>> parts(threads);
  std::vector<std::thread> signers;
  for (size_t t = 0; t < threads; ++t) {
    signers.emplace_back([&, t] {
      testing::Parties parties;
      for (size_t i = t; i < count; i += threads) parts[t].push_back(parties.FreshLease());
    });
  }
  for (auto& signer : signers) signer.join();
  std::vector<market::Signed<market::Lease>> leases;
  for (auto& part : parts) std::move(part.begin(), part.end(), std::back_inserter(leases));
  return leases;
}

std::string RecordBytes(const market::Signed<market::Lease>& lease) {
  const auto bytes = market::EncodeEnvelope(lease.envelope);
  return std::string(bytes.begin(), bytes.end());
}

// A key shaped like the ledger's lease keys: the prefix and a 32-byte id. Ids are hashes, so
// random bytes give the same key distribution (sequential keys would flatter the baseline:
// LevelDB appends them cheaply at the end of its memtable).
std::string RandomLeaseKey(std::mt19937_64& random) {
  std::string key("lease/");
  for (size_t i = 0; i < market::kIdBytes / sizeof(uint64_t); ++i) {
    const uint64_t word = random();
    key.append(reinterpret_cast<const char*>(&word), sizeof word);
  }
  return key;
}

std::unique_ptr<leveldb::DB> OpenRaw(const std::string& path) {
  leveldb::Options options;
  options.create_if_missing = true;
  leveldb::DB* raw = nullptr;
  if (!leveldb::DB::Open(options, path, &raw).ok()) return nullptr;
  return std::unique_ptr<leveldb::DB>(raw);
}

void BM_RawLevelDbSyncPut(benchmark::State& state) {
  TempDir dir{"gpumart-bench-ledger"};
  auto db = OpenRaw(dir.path() + "/raw");
  const std::string value = RecordBytes(SignLeases(1).front());
  leveldb::WriteOptions sync;
  sync.sync = true;
  std::mt19937_64 random(1);
  uint64_t n = 0;
  for (auto _ : state) {
    if (!db->Put(sync, RandomLeaseKey(random), value).ok()) state.SkipWithError("put failed");
    ++n;
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
  state.counters["record_bytes"] = static_cast<double>(value.size());
}
BENCHMARK(BM_RawLevelDbSyncPut)->UseRealTime();

// One sync WriteBatch of kWriters lease records (the real envelope bytes under lease-shaped
// keys) per iteration: what group commit of 64 writers can at best amount to.
void BM_RawLevelDbSyncBatch(benchmark::State& state) {
  TempDir dir{"gpumart-bench-ledger"};
  auto db = OpenRaw(dir.path() + "/raw");
  const std::string value = RecordBytes(SignLeases(1).front());
  leveldb::WriteOptions sync;
  sync.sync = true;
  std::mt19937_64 random(2);
  uint64_t n = 0;
  for (auto _ : state) {
    leveldb::WriteBatch batch;
    for (int i = 0; i < kWriters; ++i, ++n) batch.Put(RandomLeaseKey(random), value);
    if (!db->Write(sync, &batch).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
  state.counters["batch_records"] = kWriters;
}
BENCHMARK(BM_RawLevelDbSyncBatch)->UseRealTime();

// Not a target, an explanation: the same batches with what the ledger writes per lease besides
// the record (four index entries: by tenant, provider, state, order) and one chain entry per
// batch, in bare LevelDB. The gap between this and BM_LedgerDurableLeases is the ledger's own
// overhead (queueing, validation, acknowledgements).
void BM_RawLevelDbSyncBatchIndexed(benchmark::State& state) {
  TempDir dir{"gpumart-bench-ledger"};
  auto db = OpenRaw(dir.path() + "/raw");
  const std::string value = RecordBytes(SignLeases(1).front());
  constexpr size_t kChainBytesPerLease = 75;  // op, key length, key, value hash
  const std::string chain_entry(kWriters * kChainBytesPerLease, 'c');
  leveldb::WriteOptions sync;
  sync.sync = true;
  std::mt19937_64 random(3);
  uint64_t n = 0;
  for (auto _ : state) {
    leveldb::WriteBatch batch;
    for (int i = 0; i < kWriters; ++i, ++n) {
      const std::string key = RandomLeaseKey(random);
      const std::string id = key.substr(6);
      batch.Put(key, value);
      batch.Put("ix/lt/" + RandomLeaseKey(random).substr(6) + id, {});
      batch.Put("ix/lp/" + RandomLeaseKey(random).substr(6) + id, {});
      batch.Put("ix/ls/\x01" + id, {});
      batch.Put("ix/lo/" + RandomLeaseKey(random).substr(6) + id, {});
    }
    batch.Put("chain/" + std::to_string(n), chain_entry);
    if (!db->Write(sync, &batch).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
}
BENCHMARK(BM_RawLevelDbSyncBatchIndexed)->UseRealTime();

// Not a target, a ceiling: the least a durable group commit from kWriters blocking writers can
// cost on this machine. Each of 64 threads hands one record (the real lease envelope bytes under
// a lease-shaped key) to one committer thread and sleeps on its own futex word until the record
// is durable; the committer writes everything waiting as one sync WriteBatch, then wakes each
// writer (the ledger's acknowledgement path). No actor runtime, no validation, no indexes, no
// hash chain: BM_LedgerDurableLeases does all of that on top of this.
struct GroupCommitFixture {
  explicit GroupCommitFixture(int threads) : writers_done(threads) {}
  struct Waiter {
    std::atomic<uint32_t> durable{0};
    std::string key;
  };
  TempDir dir{"gpumart-bench-ledger"};
  std::unique_ptr<leveldb::DB> db;
  std::string value;
  std::mutex mutex;
  std::condition_variable work;
  // Shared: a writer may return (its record durable) while the committer is still in its wake call.
  std::vector<std::shared_ptr<Waiter>> queue;  // guarded by mutex
  bool stopping = false;       // guarded by mutex
  uint64_t batches = 0;        // the committer's
  uint64_t records = 0;        // the committer's
  std::atomic<int64_t> failures{0};
  std::thread committer;
  std::latch writers_done;

  void CommitLoop() {
    std::vector<std::shared_ptr<Waiter>> batch_waiters;
    leveldb::WriteOptions sync;
    sync.sync = true;
    for (;;) {
      {
        std::unique_lock lock(mutex);
        work.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        batch_waiters.swap(queue);
      }
      leveldb::WriteBatch batch;
      for (const auto& waiter : batch_waiters) batch.Put(waiter->key, value);
      if (!db->Write(sync, &batch).ok()) failures.fetch_add(1);
      ++batches;
      records += batch_waiters.size();
      for (const auto& waiter : batch_waiters) {
        waiter->durable.store(1, std::memory_order_release);
        syscall(SYS_futex, reinterpret_cast<uint32_t*>(&waiter->durable), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
      }
      batch_waiters.clear();
    }
  }
};
std::atomic<GroupCommitFixture*> group_commit{nullptr};

void BM_RawLevelDbGroupCommit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    auto* fixture = new GroupCommitFixture(state.threads());
    fixture->db = OpenRaw(fixture->dir.path() + "/raw");
    fixture->value = RecordBytes(SignLeases(1).front());
    fixture->committer = std::thread([fixture] { fixture->CommitLoop(); });
    group_commit.store(fixture);
  }
  while (group_commit.load() == nullptr) std::this_thread::yield();
  GroupCommitFixture& fixture = *group_commit.load();
  std::mt19937_64 random(100 + static_cast<uint64_t>(state.thread_index()));
  for (auto _ : state) {
    auto waiter = std::make_shared<GroupCommitFixture::Waiter>();
    waiter->key = RandomLeaseKey(random);
    {
      std::lock_guard lock(fixture.mutex);
      fixture.queue.push_back(waiter);
      if (fixture.queue.size() == 1) fixture.work.notify_one();
    }
    while (waiter->durable.load(std::memory_order_acquire) == 0) {
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&waiter->durable), FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    }
  }
  state.SetItemsProcessed(state.iterations());
  fixture.writers_done.count_down();
  if (state.thread_index() == 0) {
    fixture.writers_done.wait();
    {
      std::lock_guard lock(fixture.mutex);
      fixture.stopping = true;
      fixture.work.notify_one();
    }
    fixture.committer.join();
    if (fixture.failures.load() > 0) state.SkipWithError("a sync write failed");
    state.counters["records_per_batch"] =
        fixture.batches == 0 ? 0.0 : static_cast<double>(fixture.records) / static_cast<double>(fixture.batches);
    group_commit.store(nullptr);
    delete &fixture;
  }
}
BENCHMARK(BM_RawLevelDbGroupCommit)->Threads(kWriters)->Iterations(kLeasesPerWriter)->UseRealTime();

// 64 threads each write leases one at a time, each waiting for its durable acknowledgement.
// The leases are signed before the timed loop; each thread hands its own over (moved, as a
// provider hands over the lease it just signed).
struct DurableFixture {
  explicit DurableFixture(int threads) : outboxes_gone(threads) {}
  TempDir dir{"gpumart-bench-ledger"};
  actors::ActorSystem system;
  std::unique_ptr<LedgerActor> actor;
  std::vector<market::Signed<market::Lease>> leases;
  std::latch outboxes_gone;  // every Outbox must be gone before the ActorSystem
};
std::atomic<DurableFixture*> durable{nullptr};

void BM_LedgerDurableLeases(benchmark::State& state) {
  if (state.thread_index() == 0) {
    auto* fixture = new DurableFixture(state.threads());
    fixture->leases = SignLeases(static_cast<size_t>(state.threads()) * kLeasesPerWriter);
    auto actor = LedgerActor::Open(fixture->system, fixture->dir.path() + "/ledger", {}, SystemClock::Instance());
    if (actor.ok()) fixture->actor = std::move(actor).value();
    durable.store(fixture);
  }
  // Each thread needs its own Outbox before the timed loop, so it waits for the fixture here
  // (the library's own barrier is at the start of the loop).
  while (durable.load() == nullptr) std::this_thread::yield();
  DurableFixture& fixture = *durable.load();
  auto outbox = std::make_unique<actors::Outbox>(fixture.system);
  size_t next = static_cast<size_t>(state.thread_index()) * kLeasesPerWriter;
  int64_t failures = 0;
  for (auto _ : state) {
    if (!fixture.actor->Write(*outbox, RecordLease{std::move(fixture.leases[next++])}).ok()) ++failures;
  }
  if (failures > 0) state.SkipWithError("a durable write failed");
  state.SetItemsProcessed(state.iterations());
  outbox.reset();
  fixture.outboxes_gone.count_down();
  if (state.thread_index() == 0) {
    fixture.outboxes_gone.wait();
    const auto stats = fixture.actor->stats();
    state.counters["rounds"] = static_cast<double>(stats.rounds);
    state.counters["leases_per_round"] =
        stats.rounds == 0 ? 0.0 : static_cast<double>(stats.writes) / static_cast<double>(stats.rounds);
    durable.store(nullptr);
    delete &fixture;
  }
}
BENCHMARK(BM_LedgerDurableLeases)->Threads(kWriters)->Iterations(kLeasesPerWriter)->UseRealTime();

// The cost per gossiped lease on its way into the ledger, as the node pays it: the gossip core's
// OpenLease (three signature checks), then the ledger's decode and Prepare. Before the ledger
// feed, the ledger re-verified with OpenRecord (three more); now it takes DecodeVerifiedRecord
// (none). docs/LEDGER.md quotes the two side by side.
template <bool kVerifyTwice>
void GossipedLeaseIntoTheLedger(benchmark::State& state) {
  static const std::vector<market::Bytes> leases = [] {
    std::vector<market::Bytes> out;
    for (const auto& lease : SignLeases(256)) out.push_back(market::EncodeEnvelope(lease.envelope));
    return out;
  }();
  size_t next = 0;
  for (auto _ : state) {
    const market::Bytes& bytes = leases[next];
    next = (next + 1) % leases.size();
    if (!market::OpenLease(bytes).ok()) state.SkipWithError("a sample lease does not open");
    auto write = kVerifyTwice ? OpenRecord(bytes) : DecodeVerifiedRecord(bytes);
    if (!write.ok() || !Prepare(std::move(write).value()).ok()) state.SkipWithError("a sample lease was refused");
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_GossipedLeaseVerifyTwice(benchmark::State& state) { GossipedLeaseIntoTheLedger<true>(state); }
void BM_GossipedLeaseVerifyOnce(benchmark::State& state) { GossipedLeaseIntoTheLedger<false>(state); }
BENCHMARK(BM_GossipedLeaseVerifyTwice);
BENCHMARK(BM_GossipedLeaseVerifyOnce);

void BM_LedgerGetLease(benchmark::State& state) {
  TempDir dir{"gpumart-bench-ledger"};
  actors::ActorSystem system;
  auto actor = LedgerActor::Open(system, dir.path() + "/ledger", {}, SystemClock::Instance());
  if (!actor.ok()) {
    state.SkipWithError(actor.status().ToString().c_str());
    return;
  }
  const auto leases = SignLeases(kLookupLeases);
  {
    actors::Outbox outbox(system);
    std::vector<std::future<Status>> pending;
    for (size_t i = 0; i < kLookupLeases; ++i) pending.push_back((*actor)->Submit(outbox, RecordLease{leases[i]}));
    for (auto& future : pending) {
      if (!future.get().ok()) state.SkipWithError("setup write failed");
    }
  }
  std::mt19937 random(42);
  std::uniform_int_distribution<size_t> pick(0, kLookupLeases - 1);
  const LedgerStore& store = (*actor)->store();
  for (auto _ : state) {
    auto record = store.GetLease(leases[pick(random)].id);
    if (!record.ok()) state.SkipWithError("lookup failed");
    benchmark::DoNotOptimize(record);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LedgerGetLease);

}  // namespace
}  // namespace gpumart::ledger
