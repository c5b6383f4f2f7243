#include "ledger/store.h"

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "ledger/keys.h"
#include "ledger/verify.h"
#include "tests/ledger/ledger_test_util.h"

namespace gpumart::ledger {
namespace {

using market::CloseReason;
using testing::kPricePerHour;
using testing::kStartMs;
using testing::OpenOrDie;
using testing::Parties;
using testing::TempDir;
using testing::WriteOne;

void ExpectVerifies(const LedgerStore& store) {
  const VerifyReport report = VerifyLedger(store);
  EXPECT_TRUE(report.ok) << report.Describe();
}

bool HasKey(const LedgerStore& store, const std::string& key) {
  std::string value;
  return store.db()->Get(leveldb::ReadOptions(), key, &value).ok();
}

TEST(LedgerStoreTest, CreatesWritesSchemaAndReopens) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.Sub("ledger"));
    ASSERT_TRUE(store);
    EXPECT_EQ(store->head().seq, 0u);
    ExpectVerifies(*store);
  }
  auto store = OpenOrDie(dir.Sub("ledger"));
  ASSERT_TRUE(store);
  std::string version;
  ASSERT_TRUE(store->db()->Get(leveldb::ReadOptions(), std::string(keys::kSchemaKey), &version).ok());
  EXPECT_EQ(ReadU32(version.data()), kSchemaVersion);
}

TEST(LedgerStoreTest, MissingLedgerWithoutCreateIsNotFound) {
  TempDir dir;
  LedgerOptions options;
  options.create_if_missing = false;
  auto store = LedgerStore::Open(dir.Sub("absent"), options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kNotFound) << store.status().ToString();
}

// A bare LevelDB at `path` whose meta/schema says `version`, as another gpumart would leave it.
void WriteSchemaVersion(const std::string& path, uint32_t version) {
  leveldb::DB* raw = nullptr;
  leveldb::Options options;
  options.create_if_missing = true;
  ASSERT_TRUE(leveldb::DB::Open(options, path, &raw).ok());
  std::string value;
  AppendU32(value, version);
  ASSERT_TRUE(raw->Put(leveldb::WriteOptions(), std::string(keys::kSchemaKey), value).ok());
  delete raw;
}

TEST(LedgerStoreTest, NewerSchemaIsRefusedClearly) {
  TempDir dir;
  WriteSchemaVersion(dir.Sub("ledger"), kSchemaVersion + 1);
  auto store = LedgerStore::Open(dir.Sub("ledger"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer"), std::string::npos) << store.status().ToString();
}

// Schema 1 held leases that repeated their terms instead of embedding the signed bid, and bids
// and offers with a reputation field: none of it decodes today, so such a ledger is refused at
// open with what to do, not later by verify with a decoding error.
TEST(LedgerStoreTest, OlderSchemaIsRefusedClearly) {
  TempDir dir;
  WriteSchemaVersion(dir.Sub("ledger"), 1);
  auto store = LedgerStore::Open(dir.Sub("ledger"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kFailedPrecondition) << store.status().ToString();
  EXPECT_NE(store.status().message().find("older"), std::string::npos) << store.status().ToString();
}

TEST(LedgerStoreTest, ForeignDatabaseIsRefused) {
  TempDir dir;
  {
    leveldb::DB* raw = nullptr;
    leveldb::Options options;
    options.create_if_missing = true;
    ASSERT_TRUE(leveldb::DB::Open(options, dir.Sub("ledger"), &raw).ok());
    ASSERT_TRUE(raw->Put(leveldb::WriteOptions(), "something", "else").ok());
    delete raw;
  }
  auto store = LedgerStore::Open(dir.Sub("ledger"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kCorruption) << store.status().ToString();
}

TEST(LedgerStoreTest, CorruptDatabaseIsAClearErrorNotACrash) {
  TempDir dir;
  { ASSERT_TRUE(OpenOrDie(dir.Sub("ledger"))); }
  {
    std::ofstream current(dir.Sub("ledger") + "/CURRENT", std::ios::trunc);
    current << "MANIFEST-garbage";  // no trailing newline: LevelDB calls this corrupt
  }
  auto store = LedgerStore::Open(dir.Sub("ledger"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kCorruption) << store.status().ToString();
  EXPECT_NE(store.status().message().find(dir.Sub("ledger")), std::string::npos);
}

TEST(LedgerStoreTest, CorruptTableFileIsReportedByParanoidChecks) {
  TempDir dir;
  Parties parties;
  {
    auto store = OpenOrDie(dir.Sub("ledger"));
    ASSERT_TRUE(store);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(WriteOne(*store, RecordLease{parties.FreshLease()}).ok());
    store->db()->CompactRange(nullptr, nullptr);  // move everything into .ldb table files
  }
  bool damaged = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir.Sub("ledger"))) {
    if (entry.path().extension() != ".ldb") continue;
    std::fstream file(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    for (std::streamoff at = 100; at < 4000; at += 97) {  // scribble over several data blocks
      file.seekp(at);
      file.put('\x5a');
    }
    damaged = true;
  }
  ASSERT_TRUE(damaged);
  auto store = LedgerStore::Open(dir.Sub("ledger"));
  if (!store.ok()) {
    EXPECT_EQ(store.status().code(), Status::Code::kCorruption) << store.status().ToString();
    return;
  }
  const VerifyReport report = VerifyLedger(**store);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("orruption"), std::string::npos) << report.Describe();
}

TEST(LedgerStoreTest, SecondOpenInAnotherProcessIsUnavailable) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("ledger"));
  ASSERT_TRUE(store);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto second = LedgerStore::Open(dir.Sub("ledger"));
    const bool clear = !second.ok() && second.status().code() == Status::Code::kUnavailable &&
                       second.status().message().find("in use by another process") != std::string::npos;
    _exit(clear ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // And in this process too.
  auto again = LedgerStore::Open(dir.Sub("ledger"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kUnavailable) << again.status().ToString();
}

// Failing-first (issue 11, item 4): a lease whose price is above the bid the tenant accepted is
// refused before anything is written.
// LevelDB's memory (its live and flushing memtables and its block cache) stays within
// LedgerMemoryBound however much is written and read; the defaults are held to
// kMaxLedgerMemoryBytes at compile time (store.h). Small options so the test writes little.
TEST(LedgerStoreTest, MemoryStaysWithinItsBound) {
  TempDir dir("ledger-memory");
  LedgerOptions options;
  options.write_buffer_bytes = 64 << 10;  // LevelDB's minimum
  options.block_cache_bytes = 16 << 10;
  auto store = OpenOrDie(dir.path() + "/db", options);
  ASSERT_NE(store, nullptr);
  const auto memory = [&] {
    std::string value;
    EXPECT_TRUE(store->db()->GetProperty("leveldb.approximate-memory-usage", &value));
    return std::stoull(value);
  };
  Parties parties;
  constexpr size_t kRounds = 24;
  constexpr size_t kOrdersPerRound = 32;
  std::vector<MessageId> ids;
  size_t round_bytes = 0;
  size_t slack = 0;
  for (size_t round = 0; round < kRounds; ++round) {
    std::vector<PreparedWrite> writes;
    for (size_t i = 0; i < kOrdersPerRound; ++i) {
      market::Signed<market::Order> order = parties.Order();
      ids.push_back(order.id);
      writes.push_back(testing::Prepared(RecordOrder{std::move(order)}));
      round_bytes = std::max(round_bytes, writes.back().record.size() * kOrdersPerRound);
    }
    slack = 8 * round_bytes;
    std::vector<const PreparedWrite*> pointers;
    for (const PreparedWrite& write : writes) pointers.push_back(&write);
    std::vector<Status> results;
    ASSERT_TRUE(store->ApplyRound(pointers, kStartMs, results).ok());
    // A memtable switches only once it is over its size: each of the two may pass it by a round
    // (whose keys, indexes and chain entry take about as much again as its records), and the
    // block cache by the blocks a read has pinned.
    ASSERT_LE(memory(), LedgerMemoryBound(options) + slack) << "round " << round;
  }
  ASSERT_GT(kRounds * round_bytes, 2 * LedgerMemoryBound(options));  // wrote well past it
  for (const MessageId& id : ids) ASSERT_TRUE(store->GetOrder(id).ok());  // fills the block cache
  EXPECT_LE(memory(), LedgerMemoryBound(options) + slack);
}

// Table files are read with pread, never mapped: LevelDB's default maps up to 1,000 of them, and
// every page a compaction or a read touched then counted in the daemon's resident memory (13 MB
// of a provider's in bench_e2e's memory phase). Reads go through the block cache and the kernel's
// page cache instead.
TEST(LedgerStoreTest, TablesAreReadWithoutMappingThem) {
  TempDir dir("ledger-pread");
  LedgerOptions options;
  options.write_buffer_bytes = 64 << 10;  // LevelDB's minimum: a few tables from little data
  const std::string path = dir.path() + "/db";
  auto store = OpenOrDie(path, options);
  ASSERT_NE(store, nullptr);
  Parties parties;
  std::vector<MessageId> ids;
  for (int round = 0; round < 12; ++round) {
    std::vector<PreparedWrite> writes;
    for (int i = 0; i < 32; ++i) {
      market::Signed<market::Order> order = parties.Order();
      ids.push_back(order.id);
      writes.push_back(testing::Prepared(RecordOrder{std::move(order)}));
    }
    std::vector<const PreparedWrite*> pointers;
    for (const PreparedWrite& write : writes) pointers.push_back(&write);
    std::vector<Status> results;
    ASSERT_TRUE(store->ApplyRound(pointers, kStartMs, results).ok());
  }
  store->db()->CompactRange(nullptr, nullptr);
  for (const MessageId& id : ids) ASSERT_TRUE(store->GetOrder(id).ok());
  std::ifstream maps("/proc/self/maps");
  std::string line;
  size_t tables = 0;
  while (std::getline(maps, line)) tables += line.find(path) != std::string::npos && line.find(".ldb") != std::string::npos;
  EXPECT_EQ(tables, 0u);
  size_t table_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path)) table_files += entry.path().extension() == ".ldb";
  EXPECT_GT(table_files, 0u);  // there were tables to read
}

TEST(LedgerStoreTest, LeaseAboveItsBidsPriceIsRefused) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto order = parties.Order();
  const auto bid = parties.Bid(order.id);
  ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordBid{bid}).ok());
  const auto head = store->head();
  market::Lease dearer = parties.Lease(bid).body;
  dearer.price_per_hour = kPricePerHour * 2;
  const auto lease = market::MakeSigned(parties.provider(), dearer, kStartMs, testing::kTtlMs, 99);
  const Status refused = WriteOne(*store, RecordLease{lease});
  EXPECT_EQ(refused.code(), Status::Code::kInvalidArgument) << refused.ToString();
  EXPECT_NE(refused.message().find("differ from the bid"), std::string::npos) << refused.ToString();
  EXPECT_EQ(store->head(), head);
  EXPECT_FALSE(store->GetLease(lease.id).ok());
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, LeaseNotSignedByItsBidderIsRefused) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const market::Lease body = parties.FreshLease().body;
  const auto lease = market::MakeSigned(parties.tenant(), body, kStartMs, testing::kTtlMs, 99);
  EXPECT_EQ(WriteOne(*store, RecordLease{lease}).code(), Status::Code::kBadSignature);
  EXPECT_EQ(store->head().seq, 0u);
}

// Issue 12: what gossip verified is not verified again. DecodeVerifiedRecord runs no Ed25519
// (a forged signature gets through it; OpenRecord refuses it), but everything else is still
// checked: strict decoding, the type, and in Prepare and the write path the id, the lease's
// binding (signed by its bid's signer) and the state.
TEST(LedgerStoreTest, DecodeVerifiedRecordChecksEverythingButSignatures) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto lease = parties.FreshLease();
  market::Envelope forged = lease.envelope;
  forged.signature[0] ^= 1;
  const market::Bytes forged_bytes = market::EncodeEnvelope(forged);
  EXPECT_EQ(OpenRecord(forged_bytes).status().code(), Status::Code::kBadSignature);
  auto decoded = DecodeVerifiedRecord(forged_bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(std::holds_alternative<RecordLease>(*decoded));
  EXPECT_EQ(std::get<RecordLease>(*decoded).lease.id, lease.id);  // the signature is not in the id

  // The same record as OpenRecord makes of the genuine bytes.
  const market::Bytes bytes = market::EncodeEnvelope(lease.envelope);
  auto opened = OpenRecord(bytes);
  auto trusted = DecodeVerifiedRecord(bytes);
  ASSERT_TRUE(opened.ok() && trusted.ok());
  EXPECT_EQ(std::get<RecordLease>(*opened).lease.envelope, std::get<RecordLease>(*trusted).lease.envelope);
  EXPECT_EQ(std::get<RecordLease>(*opened).lease.body, std::get<RecordLease>(*trusted).lease.body);
  ASSERT_TRUE(WriteOne(*store, std::move(trusted).value()).ok());
  EXPECT_TRUE(store->GetLease(lease.id).ok());
  // The state is still checked: the same lease again is refused.
  EXPECT_EQ(WriteOne(*store, std::move(DecodeVerifiedRecord(bytes)).value()).code(), Status::Code::kAlreadyExists);

  // The binding is still checked: a lease signed by the tenant instead of its bid's provider.
  const auto misbound = market::MakeSigned(parties.tenant(), parties.FreshLease().body, kStartMs, testing::kTtlMs, 99);
  auto misbound_write = DecodeVerifiedRecord(market::EncodeEnvelope(misbound.envelope));
  ASSERT_TRUE(misbound_write.ok());
  EXPECT_FALSE(Prepare(std::move(misbound_write).value()).ok());

  // Closes and attestations too; nothing the ledger does not record from gossip; no garbage.
  const auto close = parties.Close(lease.id, parties.tenant(), CloseReason::kTenantClosed, kStartMs + 1000);
  auto close_write = DecodeVerifiedRecord(market::EncodeEnvelope(close.envelope));
  ASSERT_TRUE(close_write.ok());
  EXPECT_TRUE(std::holds_alternative<RecordClose>(*close_write));
  const auto order = parties.Order();
  EXPECT_EQ(DecodeVerifiedRecord(market::EncodeEnvelope(order.envelope)).status().code(),
            Status::Code::kInvalidArgument);
  const auto offer = market::MakeSigned(parties.provider(), market::testing::SampleOffer(), kStartMs, testing::kTtlMs, 7);
  EXPECT_FALSE(DecodeVerifiedRecord(market::EncodeEnvelope(offer.envelope)).ok());
  market::Bytes truncated = bytes;
  truncated.resize(truncated.size() / 2);
  EXPECT_FALSE(DecodeVerifiedRecord(truncated).ok());
  market::Envelope wrong_body = close.envelope;
  wrong_body.type = market::MessageType::kLease;
  EXPECT_FALSE(DecodeVerifiedRecord(market::EncodeEnvelope(wrong_body)).ok());
}

TEST(LedgerStoreTest, RecordsLeaseWithIndexesAndReadsItBack) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto order = parties.Order();
  const auto bid = parties.Bid(order.id);
  const auto lease = parties.Lease(bid);
  ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordBid{bid}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordLease{lease}).ok());

  auto record = store->GetLease(lease.id);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(record->lease, lease.body);
  EXPECT_EQ(record->envelope, lease.envelope);
  EXPECT_EQ(record->provider(), parties.provider().public_key());
  EXPECT_EQ(record->state, LeaseState::kActive);
  EXPECT_FALSE(record->billing);

  EXPECT_TRUE(HasKey(*store, keys::Pair(keys::kLeaseByTenant, parties.tenant().public_key(), lease.id)));
  EXPECT_TRUE(HasKey(*store, keys::Pair(keys::kLeaseByProvider, parties.provider().public_key(), lease.id)));
  EXPECT_TRUE(HasKey(*store, keys::StateId(keys::kLeaseByState, 1, lease.id)));
  EXPECT_TRUE(HasKey(*store, keys::Pair(keys::kLeaseByOrder, order.id, lease.id)));
  EXPECT_TRUE(HasKey(*store, keys::Id(keys::kUsage, lease.id)));
  EXPECT_FALSE(HasKey(*store, keys::Id(keys::kOpenOrder, order.id)));  // leased: no longer open
  // Records are the signed wire messages, byte for byte.
  std::string stored;
  ASSERT_TRUE(store->db()->Get(leveldb::ReadOptions(), keys::Id(keys::kLease, lease.id), &stored).ok());
  const auto wire = market::EncodeEnvelope(lease.envelope);
  EXPECT_EQ(stored, std::string(wire.begin(), wire.end()));
  EXPECT_EQ(store->head().seq, 3u);  // one chain entry per committed batch
  ExpectVerifies(*store);
  EXPECT_EQ(store->GetLease(parties.FreshLease().id).status().code(), Status::Code::kNotFound);
}

TEST(LedgerStoreTest, LeaseIdMustMatchItsEnvelope) {
  Parties parties;
  auto lease = parties.FreshLease();
  lease.id[0] ^= 1;
  auto prepared = Prepare(RecordLease{lease});
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), Status::Code::kInvalidArgument);
}

TEST(LedgerStoreTest, OpenRecordVerifiesWireBytes) {
  Parties parties;
  const auto lease = parties.FreshLease();
  auto bytes = market::EncodeEnvelope(lease.envelope);
  auto opened = OpenRecord(bytes);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(std::get<RecordLease>(*opened).lease.id, lease.id);
  bytes[bytes.size() - 3] ^= 0x01;  // inside the signature
  auto forged = OpenRecord(bytes);
  ASSERT_FALSE(forged.ok());
  EXPECT_EQ(forged.status().code(), Status::Code::kBadSignature);
}

TEST(LedgerStoreTest, StateMachineRejectsIllegalTransitions) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto lease = parties.FreshLease();
  // Closing what is not recorded.
  Status status = WriteOne(*store, RecordClose{parties.Close(lease.id, parties.tenant(), CloseReason::kTenantClosed,
                                                             kStartMs + 1000)});
  EXPECT_EQ(status.code(), Status::Code::kFailedPrecondition) << status.ToString();
  EXPECT_NE(status.message().find("not recorded"), std::string::npos);

  ASSERT_TRUE(WriteOne(*store, RecordLease{lease}).ok());
  status = WriteOne(*store, RecordLease{lease});
  EXPECT_EQ(status.code(), Status::Code::kAlreadyExists) << status.ToString();

  // A stranger, or the provider claiming the tenant closed, may not close it.
  const auto stranger = market::Identity::Generate();
  status = WriteOne(*store, RecordClose{parties.Close(lease.id, stranger, CloseReason::kExpired, kStartMs + 1000)});
  EXPECT_EQ(status.code(), Status::Code::kPermissionDenied) << status.ToString();
  status = WriteOne(*store, RecordClose{parties.Close(lease.id, parties.provider(), CloseReason::kTenantClosed,
                                                      kStartMs + 1000)});
  EXPECT_EQ(status.code(), Status::Code::kPermissionDenied) << status.ToString();
  // Closed before it started.
  status = WriteOne(*store, RecordClose{parties.Close(lease.id, parties.tenant(), CloseReason::kTenantClosed,
                                                      kStartMs - 1)});
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument) << status.ToString();

  ASSERT_TRUE(WriteOne(*store, RecordClose{parties.Close(lease.id, parties.provider(), CloseReason::kProviderClosed,
                                                         kStartMs + 90'500)})
                  .ok());
  auto record = store->GetLease(lease.id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, LeaseState::kClosed);
  ASSERT_TRUE(record->billing);
  EXPECT_EQ(record->billing->duration_ms, 90'000);  // rounded down to whole seconds
  EXPECT_EQ(record->billing->amount_owed, 90'000u);  // 1000 per second
  EXPECT_EQ(record->close->reason, CloseReason::kProviderClosed);

  status = WriteOne(*store, RecordClose{parties.Close(lease.id, parties.tenant(), CloseReason::kTenantClosed,
                                                      kStartMs + 100'000)});
  EXPECT_EQ(status.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(status.message().find("already closed"), std::string::npos) << status.ToString();
  status = WriteOne(*store, RecordLease{lease});
  EXPECT_EQ(status.code(), Status::Code::kFailedPrecondition) << status.ToString();
  EXPECT_FALSE(HasKey(*store, keys::StateId(keys::kLeaseByState, 1, lease.id)));
  EXPECT_TRUE(HasKey(*store, keys::StateId(keys::kLeaseByState, 2, lease.id)));
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, OneRoundKeepsGoodWritesAndRejectsBadOnesAlone) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto lease = parties.FreshLease();
  const auto close = parties.Close(lease.id, parties.tenant(), CloseReason::kTenantClosed, kStartMs + 5000);
  const auto other = parties.FreshLease();
  std::vector<PreparedWrite> writes;
  writes.push_back(testing::Prepared(RecordLease{lease}));
  writes.push_back(testing::Prepared(RecordLease{lease}));  // duplicate within the round
  writes.push_back(testing::Prepared(RecordClose{close}));  // sees the lease written just before
  writes.push_back(testing::Prepared(RecordLease{other}));
  std::vector<const PreparedWrite*> pointers;
  for (const auto& write : writes) pointers.push_back(&write);
  std::vector<Status> results;
  ASSERT_TRUE(store->ApplyRound(pointers, kStartMs, results).ok());
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].code(), Status::Code::kAlreadyExists);
  EXPECT_TRUE(results[2].ok()) << results[2].ToString();
  EXPECT_TRUE(results[3].ok());
  EXPECT_EQ(store->GetLease(lease.id)->state, LeaseState::kClosed);
  EXPECT_EQ(store->GetLease(other.id)->state, LeaseState::kActive);
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, PagesThroughLeasesByTenantProviderAndState) {
  TempDir dir;
  Parties alice;
  Parties bob;
  auto store = OpenOrDie(dir.Sub("ledger"));
  std::set<MessageId> alice_leases;
  for (int i = 0; i < 25; ++i) {
    const auto lease = alice.FreshLease();
    alice_leases.insert(lease.id);
    ASSERT_TRUE(WriteOne(*store, RecordLease{lease}).ok());
    if (i % 5 == 0) {
      ASSERT_TRUE(WriteOne(*store, RecordClose{alice.Close(lease.id, alice.tenant(), CloseReason::kTenantClosed,
                                                           kStartMs + 1000)})
                      .ok());
    }
  }
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(WriteOne(*store, RecordLease{bob.FreshLease()}).ok());

  LeaseQuery query;
  query.tenant = alice.tenant().public_key();
  query.limit = 10;
  std::set<MessageId> seen;
  int pages = 0;
  for (;;) {
    auto page = store->Leases(query);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    ++pages;
    for (const auto& record : page->leases) {
      EXPECT_EQ(record.lease.tenant, alice.tenant().public_key());
      EXPECT_TRUE(seen.insert(record.id).second) << "lease listed twice";
    }
    if (!page->next_after) break;
    query.after = page->next_after;
  }
  EXPECT_EQ(seen, alice_leases);
  EXPECT_EQ(pages, 3);

  LeaseQuery closed;
  closed.state = LeaseState::kClosed;
  auto closed_page = store->Leases(closed);
  ASSERT_TRUE(closed_page.ok());
  EXPECT_EQ(closed_page->leases.size(), 5u);
  for (const auto& record : closed_page->leases) EXPECT_TRUE(record.billing.has_value());

  LeaseQuery bob_active;
  bob_active.provider = bob.provider().public_key();
  bob_active.state = LeaseState::kActive;
  EXPECT_EQ(store->Leases(bob_active)->leases.size(), 7u);

  LeaseQuery everything;
  everything.limit = kMaxPageSize + 5;  // clamped
  EXPECT_EQ(store->Leases(everything)->leases.size(), 32u);
}

TEST(LedgerStoreTest, OpenOrdersExcludeLeasedAndExpired) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto open = parties.Order(kStartMs, 60'000);
  const auto leased = parties.Order(kStartMs, 60'000);
  const auto short_lived = parties.Order(kStartMs, 1'000);
  for (const auto& order : {open, leased, short_lived}) ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  EXPECT_EQ(WriteOne(*store, RecordOrder{open}).code(), Status::Code::kAlreadyExists);
  const auto bid = parties.Bid(leased.id);
  ASSERT_TRUE(WriteOne(*store, RecordBid{bid}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordLease{parties.Lease(bid, kStartMs + 500)}).ok());

  auto page = store->OpenOrders(kStartMs + 2'000);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0].id, open.id);
  EXPECT_EQ(page->orders[0].body, open.body);
  EXPECT_EQ(store->OpenOrders(kStartMs)->orders.size(), 2u);
  EXPECT_EQ(store->OpenOrders(kStartMs + 60'000)->orders.size(), 0u);
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, LeaseArrivingBeforeItsOrderStillClosesTheOrder) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto order = parties.Order();
  const auto bid = parties.Bid(order.id);
  ASSERT_TRUE(WriteOne(*store, RecordLease{parties.Lease(bid, kStartMs + 10)}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordBid{bid}).ok());
  EXPECT_EQ(store->OpenOrders(kStartMs)->orders.size(), 0u);
  EXPECT_TRUE(HasKey(*store, keys::TimeId(keys::kOrderByExpiry, order.envelope.expires_ms, order.id)));
  EXPECT_TRUE(HasKey(*store, keys::TimeId(keys::kBidByExpiry, bid.envelope.expires_ms, bid.id)));
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, RetentionCompactsClosedOrdersAndBidsButKeepsLeases) {
  TempDir dir;
  Parties parties;
  LedgerOptions options;
  options.retention_ms = 10'000;
  auto store = OpenOrDie(dir.Sub("ledger"), options);
  const auto leased = parties.Order(kStartMs, 2'000);
  const auto expired = parties.Order(kStartMs, 1'000);
  const auto fresh = parties.Order(kStartMs + 50'000, 3'600'000);
  const auto bid = parties.Bid(leased.id, kStartMs, 2'000);
  const auto lease = parties.Lease(bid, kStartMs + 100);
  for (const auto& order : {leased, expired, fresh}) ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordBid{bid}).ok());
  ASSERT_TRUE(WriteOne(*store, RecordLease{lease}).ok());

  // Not closed long enough yet.
  ASSERT_TRUE(WriteOne(*store, Compact{}, kStartMs + 5'000).ok());
  EXPECT_TRUE(store->GetOrder(expired.id).ok());
  // Expired more than 10 s ago: both old orders and the bid go; the fresh order and the lease
  // stay.
  ASSERT_TRUE(WriteOne(*store, Compact{}, kStartMs + 20'000).ok());
  EXPECT_EQ(store->GetOrder(leased.id).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store->GetOrder(expired.id).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store->GetBid(bid.id).status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(store->GetOrder(fresh.id).ok());
  EXPECT_TRUE(store->GetLease(lease.id).ok());
  EXPECT_FALSE(HasKey(*store, keys::Pair(keys::kBidByOrder, leased.id, bid.id)));
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, ReservationsAndLeasesDetermineFreeCapacity) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto inventory = market::testing::SampleOffer().nodes;  // n1: 8 x h100, 64 cores
  const auto& provider = parties.provider().public_key();
  const auto order = parties.Order();
  ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  const auto bid = parties.Bid(order.id);
  auto usage = market::UsageOf(order.body, bid.body.services);
  ASSERT_TRUE(usage.ok());
  ASSERT_TRUE(WriteOne(*store, Reserve{Reservation{bid.id, provider, kStartMs + 30'000, *usage}}).ok());
  EXPECT_EQ(WriteOne(*store, Reserve{Reservation{bid.id, provider, kStartMs + 30'000, *usage}}).code(),
            Status::Code::kAlreadyExists);

  auto free = store->FreeCapacity(provider, inventory, kStartMs);
  ASSERT_TRUE(free.ok());
  EXPECT_EQ(free->at(0).gpus.at(0).count, 6u);           // 2 GPUs reserved
  EXPECT_EQ(free->at(0).cpu_millis, 64'000u - 17'000u);  // 16 cores + 2 x 0.5
  // An expired reservation holds nothing.
  EXPECT_EQ(store->FreeCapacity(provider, inventory, kStartMs + 30'000)->at(0).gpus.at(0).count, 8u);

  // The lease replaces the reservation; closing the lease frees the GPUs.
  const auto lease = parties.Lease(bid);
  ASSERT_TRUE(WriteOne(*store, RecordLease{lease}).ok());
  EXPECT_EQ(store->GetReservation(bid.id).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store->FreeCapacity(provider, inventory, kStartMs + 60'000)->at(0).gpus.at(0).count, 6u);
  ASSERT_TRUE(WriteOne(*store, RecordClose{parties.Close(lease.id, parties.tenant(), CloseReason::kTenantClosed,
                                                         kStartMs + 60'000)})
                  .ok());
  EXPECT_EQ(store->FreeCapacity(provider, inventory, kStartMs + 60'000)->at(0).gpus.at(0).count, 8u);

  // Release and expiry compaction of reservations.
  const MessageId lost_bid = parties.Bid(order.id, kStartMs + 1).id;
  ASSERT_TRUE(WriteOne(*store, Reserve{Reservation{lost_bid, provider, kStartMs + 30'000, *usage}}).ok());
  ASSERT_TRUE(WriteOne(*store, Release{lost_bid}).ok());
  EXPECT_EQ(WriteOne(*store, Release{lost_bid}).code(), Status::Code::kNotFound);
  const MessageId stale_bid = parties.Bid(order.id, kStartMs + 2).id;
  ASSERT_TRUE(WriteOne(*store, Reserve{Reservation{stale_bid, provider, kStartMs + 30'000, *usage}}).ok());
  ASSERT_TRUE(WriteOne(*store, Compact{}, kStartMs + 31'000).ok());
  EXPECT_EQ(store->GetReservation(stale_bid).status().code(), Status::Code::kNotFound);
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, ReopenContinuesTheChain) {
  TempDir dir;
  Parties parties;
  ChainHead head;
  {
    auto store = OpenOrDie(dir.Sub("ledger"));
    ASSERT_TRUE(WriteOne(*store, RecordLease{parties.FreshLease()}).ok());
    head = store->head();
  }
  auto store = OpenOrDie(dir.Sub("ledger"));
  EXPECT_EQ(store->head(), head);
  ASSERT_TRUE(WriteOne(*store, RecordLease{parties.FreshLease()}).ok());
  EXPECT_EQ(store->head().seq, head.seq + 1);
  ExpectVerifies(*store);
}

TEST(LedgerStoreTest, ChainEntryRoundTrips) {
  ChainEntry entry;
  entry.seq = 42;
  entry.prev_hash[3] = 7;
  entry.recorded_ms = kStartMs;
  MessageId hash{};
  hash[0] = 9;
  entry.changes = {ChainChange{ChainOp::kPut, keys::Id(keys::kLease, hash), hash},
                   ChainChange{ChainOp::kDelete, keys::Id(keys::kOrder, MessageId{}), MessageId{}}};
  const std::string encoded = EncodeChainEntry(entry);
  auto decoded = DecodeChainEntry(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, entry);
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    EXPECT_FALSE(DecodeChainEntry(encoded.substr(0, cut)).ok()) << cut;
  }
  EXPECT_FALSE(DecodeChainEntry(encoded + "x").ok());
}


// ---------------------------------------------------------------------------------------------
// Nothing is stored that the node's own decoders and verifier would not accept again: each of
// these was once stored, after which `gpumart ledger verify` failed and gpumartd refused to start.

// Asserts the write is refused with a reason, leaves no trace, and the ledger still verifies.
void ExpectRefusedCleanly(LedgerStore& store, LedgerWrite write, std::string_view reason) {
  const ChainHead before = store.head();
  const Status status = WriteOne(store, std::move(write));
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find(reason), std::string::npos) << status.ToString();
  EXPECT_EQ(store.head(), before);
  ExpectVerifies(store);
}

TEST(LedgerStoreTest, LeaseOnMoreNodesThanUsageMayNameIsRefusedBeforeItIsStored) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto order = parties.Order();
  ASSERT_TRUE(WriteOne(*store, RecordOrder{order}).ok());
  // Each service stays within its own placement limit; together they name more nodes than
  // any provider has (and than a usage value may name).
  auto services = market::testing::SampleAssignments();
  services[0].placements.clear();
  services[1].placements.clear();
  for (size_t i = 0; i <= kMaxUsageNodes / 2; ++i) {
    services[0].placements.push_back(market::Placement{"a" + std::to_string(i), 1});
    services[1].placements.push_back(market::Placement{"b" + std::to_string(i), 1});
  }
  const auto lease = parties.Lease(parties.Bid(order.id, services));
  ExpectRefusedCleanly(*store, RecordLease{lease}, "nodes");
  EXPECT_EQ(store->GetLease(lease.id).status().code(), Status::Code::kNotFound);
}

TEST(LedgerStoreTest, LeaseWithMoreGpuTypesPerNodeThanUsageMayNameIsRefused) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  // One GPU service per device model, all placed on node n1.
  market::Order order = market::testing::SampleOrder();
  order.services.resize(1);
  std::vector<market::ServiceAssignment> services;
  for (size_t i = 0; i <= kMaxUsageGpuTypes; ++i) {
    market::ServiceRequest service = market::testing::SampleOrder().services[0];
    service.name = "s" + std::to_string(i);
    order.services.push_back(service);
    market::ServiceAssignment assignment = market::testing::SampleAssignments()[0];
    assignment.service = service.name;
    assignment.device->model = "model" + std::to_string(i);
    services.push_back(assignment);
  }
  order.services.erase(order.services.begin());
  const auto signed_order = parties.Order(order);
  ASSERT_TRUE(WriteOne(*store, RecordOrder{signed_order}).ok());
  const auto lease = parties.Lease(parties.Bid(signed_order.id, services));
  ExpectRefusedCleanly(*store, RecordLease{lease}, "GPU types");
}

TEST(LedgerStoreTest, ReservationTheDecoderWouldRefuseIsNotStored) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  Usage usage;
  for (size_t i = 0; i <= kMaxUsageNodes; ++i) usage["n" + std::to_string(i)].cpu_millis = 1;
  const MessageId bid_id = parties.Bid(parties.Order().id).id;
  ExpectRefusedCleanly(*store, Reserve{Reservation{bid_id, parties.provider().public_key(), kStartMs + 1'000, usage}},
                       "nodes");
  EXPECT_EQ(store->GetReservation(bid_id).status().code(), Status::Code::kNotFound);
  // Keys clamp times before the epoch to 0, so such an expiry would read back as another one.
  ExpectRefusedCleanly(*store, Reserve{Reservation{bid_id, parties.provider().public_key(), -1, {}}}, "epoch");
}

TEST(LedgerStoreTest, SignedRecordTheDecoderWouldRefuseIsNotStored) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  // Signed as it is by a buggy local caller: an order with no services, a bid on no node.
  market::Order empty_order = market::testing::SampleOrder();
  empty_order.services.clear();
  const auto order = parties.Order(empty_order);
  ExpectRefusedCleanly(*store, RecordOrder{order}, "no services");
  EXPECT_EQ(store->GetOrder(order.id).status().code(), Status::Code::kNotFound);
  auto bid = parties.Bid(parties.Order().id);
  bid.body.services[0].placements.clear();
  bid = market::MakeSigned(parties.provider(), bid.body, kStartMs, testing::kTtlMs, 77);
  ExpectRefusedCleanly(*store, RecordBid{bid}, "no placements");
}

}  // namespace
}  // namespace gpumart::ledger
