// Power-loss test: the ledger writes rounds of leases and closes through PowerLossEnv, the power
// goes at a random file operation (inside a ledger write, a memtable flush or a compaction), and
// everything not synced is thrown away. The ledger must then open, verify, and hold every lease
// and close it acknowledged. The control cases show the env catches a missing fsync, which the
// SIGKILL crash test cannot.
#include <leveldb/db.h>

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "ledger/verify.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/ledger/power_loss_env.h"
#include "tests/test_seed.h"

namespace gpumart::ledger {
namespace {

using market::CloseReason;
using testing::kStartMs;
using testing::Parties;
using testing::PowerLossEnv;
using testing::TempDir;

constexpr int kPowerCuts = 20;
constexpr int kCutsPerLedger = 5;             // then a fresh ledger, so verify stays quick
constexpr int kMaxRoundsPerCut = 150;
constexpr int kMaxWritesPerRound = 8;
constexpr uint64_t kMaxOperationsBeforeCut = 300;
constexpr size_t kSmallMemtableBytes = 16 << 10;  // flushes and compactions every few rounds

// lease id -> whether its close was acknowledged too.
using Acknowledged = std::map<MessageId, bool>;

LedgerOptions PowerLossOptions(PowerLossEnv& env) {
  LedgerOptions options;
  options.env = &env;
  options.write_buffer_bytes = kSmallMemtableBytes;
  return options;
}

// Random rounds of new leases and closes of acknowledged ones until `rounds` are done or the
// power is gone; records what each successful round acknowledged.
void WriteRounds(LedgerStore& store, PowerLossEnv& env, Parties& parties, std::mt19937& random, int rounds,
                 Acknowledged& acknowledged) {
  std::uniform_int_distribution<int> writes_per_round(1, kMaxWritesPerRound);
  std::bernoulli_distribution close_one(0.25);
  for (int round = 0; round < rounds && env.powered(); ++round) {
    std::vector<PreparedWrite> prepared;
    std::vector<std::pair<MessageId, bool>> effects;  // lease id, closes it
    std::vector<MessageId> open;
    for (const auto& [id, closed] : acknowledged) {
      if (!closed) open.push_back(id);
    }
    const int count = writes_per_round(random);
    for (int i = 0; i < count; ++i) {
      if (!open.empty() && close_one(random)) {
        const size_t pick = std::uniform_int_distribution<size_t>(0, open.size() - 1)(random);
        const MessageId lease_id = open[pick];
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(pick));
        prepared.push_back(testing::Prepared(RecordClose{
            parties.Close(lease_id, parties.tenant(), CloseReason::kTenantClosed, kStartMs + 60'000)}));
        effects.emplace_back(lease_id, true);
      } else {
        const auto lease = parties.FreshLease();
        prepared.push_back(testing::Prepared(RecordLease{lease}));
        effects.emplace_back(lease.id, false);
      }
    }
    std::vector<const PreparedWrite*> pointers;
    for (const auto& write : prepared) pointers.push_back(&write);
    std::vector<Status> results;
    if (!store.ApplyRound(pointers, kStartMs + round, results).ok()) continue;  // not acknowledged
    for (size_t i = 0; i < effects.size(); ++i) {
      ASSERT_TRUE(results[i].ok()) << results[i].ToString();
      acknowledged[effects[i].first] = effects[i].second;
    }
  }
}

// How many acknowledged leases (or closes) the reopened ledger lacks.
size_t CountMissing(const LedgerStore& store, const Acknowledged& acknowledged) {
  size_t missing = 0;
  for (const auto& [id, closed] : acknowledged) {
    auto lease = store.GetLease(id);
    if (!lease.ok() || (closed && lease->state != LeaseState::kClosed)) ++missing;
  }
  return missing;
}

TEST(LedgerPowerLossTest, EveryAcknowledgedWriteSurvivesLosingWhatWasNotSynced) {
  std::mt19937 random(gpumart::testing::TestSeed());
  std::uniform_int_distribution<uint64_t> operations(1, kMaxOperationsBeforeCut);
  TempDir dir;
  PowerLossEnv env;
  Parties parties;
  Acknowledged acknowledged;
  PowerLossEnv::Loss lost;
  size_t cuts_at_an_operation = 0;
  for (int cut = 0; cut < kPowerCuts; ++cut) {
    if (cut % kCutsPerLedger == 0) acknowledged.clear();
    const std::string path = dir.Sub("ledger-" + std::to_string(cut / kCutsPerLedger));
    {
      auto store = LedgerStore::Open(path, PowerLossOptions(env));
      ASSERT_TRUE(store.ok()) << "cut " << cut << ": " << store.status().ToString();
      env.CutPowerAfter(operations(random));
      WriteRounds(**store, env, parties, random, kMaxRoundsPerCut, acknowledged);
      if (!env.powered()) ++cuts_at_an_operation;
      env.CutPower();
    }
    const PowerLossEnv::Loss loss = env.LoseUnsyncedData();
    lost.bytes += loss.bytes;
    lost.files += loss.files;

    auto store = LedgerStore::Open(path, PowerLossOptions(env));
    ASSERT_TRUE(store.ok()) << "cut " << cut << ": " << store.status().ToString();
    const VerifyReport report = VerifyLedger(**store);
    ASSERT_TRUE(report.ok) << "cut " << cut << ": " << report.Describe();
    ASSERT_EQ(CountMissing(**store, acknowledged), 0u) << "cut " << cut << ": acknowledged writes were lost";
  }
  std::printf("power loss: %d cuts (%zu at a random file operation), %zu writes acknowledged in the last ledger, "
              "%llu unsynced bytes and %llu unsynced files thrown away\n",
              kPowerCuts, cuts_at_an_operation, acknowledged.size(), static_cast<unsigned long long>(lost.bytes),
              static_cast<unsigned long long>(lost.files));
  // The cuts must really have thrown data away, or the test proves nothing.
  EXPECT_GT(lost.bytes, 0u);
  EXPECT_GT(cuts_at_an_operation, static_cast<size_t>(kPowerCuts / 2));
}

// Control: the env loses exactly what was not synced, in plain LevelDB.
TEST(LedgerPowerLossTest, EnvLosesUnsyncedWritesAndKeepsSyncedOnes) {
  TempDir dir;
  PowerLossEnv env;
  leveldb::Options options;
  options.create_if_missing = true;
  options.env = &env;
  leveldb::WriteOptions synced;
  synced.sync = true;
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(options, dir.Sub("db"), &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Put(synced, "synced", "1").ok());
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), "unsynced", "2").ok());
    env.CutPower();
  }
  EXPECT_GT(env.LoseUnsyncedData().bytes, 0u);
  leveldb::DB* raw = nullptr;
  ASSERT_TRUE(leveldb::DB::Open(options, dir.Sub("db"), &raw).ok());
  std::unique_ptr<leveldb::DB> db(raw);
  std::string value;
  EXPECT_TRUE(db->Get(leveldb::ReadOptions(), "synced", &value).ok());
  EXPECT_TRUE(db->Get(leveldb::ReadOptions(), "unsynced", &value).IsNotFound());
}

// Control: a ledger whose fsyncs do nothing (as with sync=false) loses acknowledged leases at a
// power cut, and the check above sees it; what was synced before that survives.
TEST(LedgerPowerLossTest, MissingFsyncIsCaught) {
  std::mt19937 random(gpumart::testing::TestSeed());
  TempDir dir;
  PowerLossEnv env;
  Parties parties;
  Acknowledged durable;
  Acknowledged not_synced;
  // The default memtable: no flush or compaction runs, so what is lost is exactly the log
  // records written since fsyncs stopped (a compaction on such a disk could lose older data too).
  LedgerOptions options;
  options.env = &env;
  {
    auto store = LedgerStore::Open(dir.Sub("ledger"), options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    WriteRounds(**store, env, parties, random, 20, durable);
    env.IgnoreSyncs(true);
    WriteRounds(**store, env, parties, random, 5, not_synced);
    env.CutPower();
  }
  ASSERT_FALSE(not_synced.empty());
  env.LoseUnsyncedData();
  env.IgnoreSyncs(false);
  auto store = LedgerStore::Open(dir.Sub("ledger"), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE(VerifyLedger(**store).ok);
  EXPECT_EQ(CountMissing(**store, durable), 0u);
  std::erase_if(not_synced, [&](const auto& entry) { return durable.contains(entry.first); });
  EXPECT_GT(CountMissing(**store, not_synced), 0u) << "a missing fsync went unnoticed";
}

}  // namespace
}  // namespace gpumart::ledger
