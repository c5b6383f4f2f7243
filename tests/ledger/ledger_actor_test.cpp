#include "ledger/ledger_actor.h"

#include <gtest/gtest.h>
#include <leveldb/env.h>

#include <atomic>
#include <thread>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "actors/test_harness.h"
#include "ledger/verify.h"
#include "tests/ledger/ledger_test_util.h"

namespace gpumart::ledger {
namespace {

using testing::kStartMs;
using testing::Parties;
using testing::TempDir;

std::unique_ptr<LedgerActor> OpenActor(actors::ActorSystem& system, const std::string& path, const Clock& clock,
                                       const LedgerOptions& options = {}) {
  auto actor = LedgerActor::Open(system, path, options, clock);
  EXPECT_TRUE(actor.ok()) << actor.status().ToString();
  return actor.ok() ? std::move(actor).value() : nullptr;
}

TEST(LedgerActorTest, ConcurrentWritersAreAllDurableAndGroupCommitted) {
  TempDir dir;
  ManualClock clock(kStartMs);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::vector<std::vector<market::Signed<market::Lease>>> leases(kThreads);
  for (auto& batch : leases) {
    Parties parties;
    for (int i = 0; i < kPerThread; ++i) batch.push_back(parties.FreshLease());
  }
  {
    actors::ActorSystem system;
    auto actor = OpenActor(system, dir.Sub("ledger"), clock);
    std::vector<std::thread> writers;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        actors::Outbox outbox(system);
        for (const auto& lease : leases[t]) {
          if (!actor->Write(outbox, RecordLease{lease}).ok()) ++failures;
          // Acknowledged means readable now.
          if (!actor->store().GetLease(lease.id).ok()) ++failures;
        }
      });
    }
    for (auto& writer : writers) writer.join();
    EXPECT_EQ(failures.load(), 0);
    const auto stats = actor->stats();
    EXPECT_EQ(stats.writes, static_cast<uint64_t>(kThreads * kPerThread));
    EXPECT_LT(stats.rounds, stats.writes);  // some rounds carried several writes
    EXPECT_GT(stats.largest_round, 1u);
  }
  auto store = testing::OpenOrDie(dir.Sub("ledger"));
  for (const auto& batch : leases) {
    for (const auto& lease : batch) EXPECT_TRUE(store->GetLease(lease.id).ok());
  }
  const VerifyReport report = VerifyLedger(*store);
  EXPECT_TRUE(report.ok) << report.Describe();
}

// The commit hook (metrics' ledger commit latency) sees every round, with its duration, before
// the round's writes are acknowledged.
TEST(LedgerActorTest, OnCommitReportsEveryRoundBeforeItsAcknowledgements) {
  TempDir dir;
  ManualClock clock(kStartMs);
  std::atomic<uint64_t> commits{0};
  std::atomic<int64_t> total_ns{0};
  LedgerActorOptions options;
  options.compaction_interval_ms = 0;
  options.on_commit = [&](std::chrono::nanoseconds took) {
    commits.fetch_add(1);
    total_ns.fetch_add(took.count());
  };
  actors::ActorSystem system;
  auto store = LedgerStore::Open(dir.Sub("ledger"), {});
  ASSERT_TRUE(store.ok());
  auto actor = LedgerActor::Start(system, std::move(store).value(), clock, options);
  ASSERT_TRUE(actor.ok());
  actors::Outbox outbox(system);
  Parties parties;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*actor)->Write(outbox, RecordLease{parties.FreshLease()}).ok());
    EXPECT_EQ(commits.load(), (*actor)->stats().rounds);
  }
  EXPECT_GE(commits.load(), 3u);  // each Write waited for its own round
  EXPECT_GT(total_ns.load(), 0);  // a durable write takes time
}

TEST(LedgerActorTest, ReadsProceedWhileWritesAreInFlight) {
  TempDir dir;
  ManualClock clock(kStartMs);
  actors::ActorSystem system;
  auto actor = OpenActor(system, dir.Sub("ledger"), clock);
  actors::Outbox outbox(system);
  Parties parties;
  const auto first = parties.FreshLease();
  ASSERT_TRUE(actor->Write(outbox, RecordLease{first}).ok());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> bad_reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      if (actor->store().GetLease(first.id).ok()) {
        ++reads;
      } else {
        ++bad_reads;
      }
    }
  });
  std::vector<std::future<Status>> pending;
  for (int i = 0; i < 200; ++i) pending.push_back(actor->Submit(outbox, RecordLease{parties.FreshLease()}));
  for (auto& future : pending) EXPECT_TRUE(future.get().ok());
  done = true;
  reader.join();
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(bad_reads.load(), 0u);
}

TEST(LedgerActorTest, ValidationFailuresAreReportedPerWrite) {
  TempDir dir;
  ManualClock clock(kStartMs);
  actors::ActorSystem system;
  auto actor = OpenActor(system, dir.Sub("ledger"), clock);
  actors::Outbox outbox(system);
  Parties parties;
  const auto lease = parties.FreshLease();
  auto first = actor->Submit(outbox, RecordLease{lease});
  auto duplicate = actor->Submit(outbox, RecordLease{lease});
  EXPECT_TRUE(first.get().ok());
  EXPECT_EQ(duplicate.get().code(), Status::Code::kAlreadyExists);
  auto bad = lease;
  bad.id[5] ^= 1;
  EXPECT_EQ(actor->Write(outbox, RecordLease{bad}).code(), Status::Code::kInvalidArgument);
}

TEST(LedgerActorTest, StopAnswersEveryWriteOnceAndKeepsWhatItAcknowledged) {
  TempDir dir;
  ManualClock clock(kStartMs);
  Parties parties;
  std::vector<MessageId> ids;
  std::vector<std::atomic<int>> answers(300);
  std::vector<std::atomic<bool>> durable(300);
  {
    actors::ActorSystem system;
    auto actor = OpenActor(system, dir.Sub("ledger"), clock);
    {
      actors::Outbox outbox(system);
      for (size_t i = 0; i < answers.size(); ++i) {
        const auto lease = parties.FreshLease();
        ids.push_back(lease.id);
        actor->Submit(outbox, RecordLease{lease}, [&, i](const Status& status) {
          ++answers[i];
          durable[i] = status.ok();
          if (!status.ok()) {
            EXPECT_EQ(status.code(), Status::Code::kUnavailable) << status.ToString();
          }
        });
      }
    }
    actor.reset();  // stop while writes may still be queued
  }
  auto store = testing::OpenOrDie(dir.Sub("ledger"));
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_EQ(answers[i].load(), 1) << i;
    if (durable[i]) {
      EXPECT_TRUE(store->GetLease(ids[i]).ok()) << i;
    }
  }
  EXPECT_TRUE(VerifyLedger(*store).ok);
}

TEST(LedgerActorTest, AcknowledgementAnswersExactlyOnce) {
  std::vector<Status> answers;
  {
    Acknowledgement ack([&](const Status& status) { answers.push_back(status); });
    ack(Status::Ok());
    ack(Status::Internal("ignored: already answered"));
  }
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_TRUE(answers[0].ok());
  { Acknowledgement dropped([&](const Status& status) { answers.push_back(status); }); }
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[1].code(), Status::Code::kUnavailable);
  {
    Acknowledgement first([&](const Status& status) { answers.push_back(status); });
    Acknowledgement moved(std::move(first));
  }
  EXPECT_EQ(answers.size(), 3u);  // once, by the one that owned it last
}

TEST(LedgerActorTest, RunsRetentionOnItsOwnTimer) {
  TempDir dir;
  ManualClock clock(kStartMs);
  LedgerOptions options;
  options.retention_ms = 1'000;
  LedgerActorOptions actor_options;
  actor_options.compaction_interval_ms = 10'000;
  actors::ActorSystem system;
  auto actor = LedgerActor::Open(system, dir.Sub("ledger"), options, clock, actor_options);
  ASSERT_TRUE(actor.ok());
  actors::Outbox outbox(system);
  Parties parties;
  const auto order = parties.Order(kStartMs, 1'000);
  ASSERT_TRUE((*actor)->Write(outbox, RecordOrder{order}).ok());
  clock.Advance(20'000);
  // The actor's poll timeout was computed from the manual clock before it moved: any message
  // wakes it, and the due timer fires after that message's round.
  ASSERT_TRUE((*actor)->Write(outbox, RecordLease{parties.FreshLease()}).ok());
  for (int i = 0; i < 300 && (*actor)->store().GetOrder(order.id).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ((*actor)->store().GetOrder(order.id).status().code(), Status::Code::kNotFound);
}

// A LevelDB Env whose files start failing writes or syncs on demand: a full disk, a dying one.
class FaultyEnv : public leveldb::EnvWrapper {
 public:
  FaultyEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}
  std::atomic<bool> fail_append{false};
  std::atomic<bool> fail_sync{false};

  leveldb::Status NewWritableFile(const std::string& name, leveldb::WritableFile** result) override {
    leveldb::WritableFile* file = nullptr;
    leveldb::Status status = target()->NewWritableFile(name, &file);
    if (status.ok()) *result = new FaultyFile(file, *this);
    return status;
  }
  leveldb::Status NewAppendableFile(const std::string& name, leveldb::WritableFile** result) override {
    leveldb::WritableFile* file = nullptr;
    leveldb::Status status = target()->NewAppendableFile(name, &file);
    if (status.ok()) *result = new FaultyFile(file, *this);
    return status;
  }

 private:
  class FaultyFile : public leveldb::WritableFile {
   public:
    FaultyFile(leveldb::WritableFile* file, const FaultyEnv& env) : file_(file), env_(env) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      if (env_.fail_append) return leveldb::Status::IOError("injected", "No space left on device");
      return file_->Append(data);
    }
    leveldb::Status Close() override { return file_->Close(); }
    leveldb::Status Flush() override {
      if (env_.fail_append) return leveldb::Status::IOError("injected", "No space left on device");
      return file_->Flush();
    }
    leveldb::Status Sync() override {
      if (env_.fail_sync) return leveldb::Status::IOError("injected", "fsync failed: Input/output error");
      return file_->Sync();
    }

   private:
    std::unique_ptr<leveldb::WritableFile> file_;
    const FaultyEnv& env_;
  };
};

TEST(LedgerActorTest, DiskFullFailsTheWriteClearlyAndKeepsServingReads) {
  TempDir dir;
  ManualClock clock(kStartMs);
  FaultyEnv env;
  LedgerOptions options;
  options.env = &env;
  Parties parties;
  std::vector<MessageId> kept;
  {
    actors::ActorSystem system;
    auto actor = OpenActor(system, dir.Sub("ledger"), clock, options);
    actors::Outbox outbox(system);
    for (int i = 0; i < 10; ++i) {
      const auto lease = parties.FreshLease();
      ASSERT_TRUE(actor->Write(outbox, RecordLease{lease}).ok());
      kept.push_back(lease.id);
    }
    env.fail_append = true;
    const Status status = actor->Write(outbox, RecordLease{parties.FreshLease()});
    EXPECT_EQ(status.code(), Status::Code::kIoError) << status.ToString();
    EXPECT_NE(status.message().find("No space left on device"), std::string::npos) << status.ToString();
    EXPECT_NE(status.message().find("not acknowledged"), std::string::npos) << status.ToString();
    for (const auto& id : kept) EXPECT_TRUE(actor->store().GetLease(id).ok());
    // Once space is back, writing resumes and the chain continues from the last durable entry.
    env.fail_append = false;
    const auto later = parties.FreshLease();
    EXPECT_TRUE(actor->Write(outbox, RecordLease{later}).ok());
    kept.push_back(later.id);
    const VerifyReport report = VerifyLedger(actor->store());
    EXPECT_TRUE(report.ok) << report.Describe();
  }
  auto store = testing::OpenOrDie(dir.Sub("ledger"));
  for (const auto& id : kept) EXPECT_TRUE(store->GetLease(id).ok());
  EXPECT_TRUE(VerifyLedger(*store).ok);
}

TEST(LedgerActorTest, FailedSyncFailsThisAndLaterWritesButNotReads) {
  TempDir dir;
  ManualClock clock(kStartMs);
  FaultyEnv env;
  LedgerOptions options;
  options.env = &env;
  Parties parties;
  std::vector<MessageId> kept;
  {
    actors::ActorSystem system;
    auto actor = OpenActor(system, dir.Sub("ledger"), clock, options);
    actors::Outbox outbox(system);
    for (int i = 0; i < 5; ++i) {
      const auto lease = parties.FreshLease();
      ASSERT_TRUE(actor->Write(outbox, RecordLease{lease}).ok());
      kept.push_back(lease.id);
    }
    env.fail_sync = true;
    Status status = actor->Write(outbox, RecordLease{parties.FreshLease()});
    EXPECT_EQ(status.code(), Status::Code::kIoError) << status.ToString();
    EXPECT_NE(status.message().find("Input/output error"), std::string::npos) << status.ToString();
    // LevelDB cannot tell whether that record reached the disk, so it refuses further writes
    // until reopened; the ledger says so and keeps serving reads.
    env.fail_sync = false;
    status = actor->Write(outbox, RecordLease{parties.FreshLease()});
    EXPECT_FALSE(status.ok());
    for (const auto& id : kept) EXPECT_TRUE(actor->store().GetLease(id).ok());
    LeaseQuery query;
    EXPECT_GE(actor->store().Leases(query)->leases.size(), kept.size());
  }
  auto store = testing::OpenOrDie(dir.Sub("ledger"));
  for (const auto& id : kept) EXPECT_TRUE(store->GetLease(id).ok());
  const VerifyReport report = VerifyLedger(*store);
  EXPECT_TRUE(report.ok) << report.Describe();
}


// An actor that submits leases to the ledger and keeps the answers it gets as messages.
struct SubmitLeases {
  std::vector<market::Signed<market::Lease>> leases;
};
struct GetAnswers {};  // reply: Answers
struct Answers {
  std::vector<LedgerWriteDone> done;
  std::vector<actors::SendResult> sent;  // what SubmitFromActor returned, per lease
};

class Submitter final : public actors::Actor {
 public:
  explicit Submitter(actors::ActorAddress ledger) : ledger_(std::move(ledger)) {}
  void Init(actors::Handlers& on, actors::ActorContext&) override {
    on.On<SubmitLeases>([this](SubmitLeases& submit, actors::ActorContext& ctx) {
      for (auto& lease : submit.leases) {
        auto prepared = Prepare(RecordLease{std::move(lease)});
        ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
        answers_.sent.push_back(SubmitFromActor(ctx, ledger_, std::move(prepared).value(), answers_.sent.size()));
      }
    });
    on.On<LedgerWriteDone>([this](LedgerWriteDone& done) { answers_.done.push_back(std::move(done)); });
    on.OnRequest<GetAnswers>([this](GetAnswers&) { return answers_; });
  }

 private:
  const actors::ActorAddress ledger_;
  Answers answers_;
};

// Issue 12: "writes submitted from an actor are acknowledged to that actor as messages". Each
// write the ledger took is answered exactly once, on the submitter's own thread, with its tag
// and Status: ok once durable, kAlreadyExists for the same lease again.
TEST(LedgerActorTest, AnActorsWritesAreAnsweredToItAsMessages) {
  TempDir dir;
  ManualClock clock(kStartMs);
  actors::ActorSystem system;
  auto ledger = OpenActor(system, dir.Sub("ledger"), clock);
  actors::ActorHandle submitter =
      system.Spawn({.name = "submitter"}, [address = ledger->address()] { return std::make_unique<Submitter>(address); });
  ASSERT_TRUE(submitter.ok());
  Parties parties;
  SubmitLeases submit;
  for (int i = 0; i < 20; ++i) submit.leases.push_back(parties.FreshLease());
  submit.leases.push_back(submit.leases.front());  // tag 20: a duplicate
  const std::vector<market::Signed<market::Lease>> leases = submit.leases;
  actors::Outbox outbox(system);
  ASSERT_EQ(outbox.Send(submitter.address(), std::move(submit)), actors::SendResult::kOk);

  Answers answers;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (answers.done.size() < leases.size() && std::chrono::steady_clock::now() < deadline) {
    auto reply = outbox.Request<Answers>(submitter.address(), GetAnswers{}, std::chrono::seconds(5));
    ASSERT_TRUE(reply.ok());
    answers = reply.value();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(answers.done.size(), leases.size());
  for (const auto sent : answers.sent) EXPECT_EQ(sent, actors::SendResult::kOk);
  std::vector<bool> answered(leases.size(), false);
  for (const LedgerWriteDone& done : answers.done) {
    ASSERT_LT(done.tag, leases.size());
    EXPECT_FALSE(answered[done.tag]) << "tag " << done.tag << " answered twice";
    answered[done.tag] = true;
    if (done.tag == leases.size() - 1) {
      EXPECT_EQ(done.status.code(), Status::Code::kAlreadyExists) << done.status.ToString();
    } else {
      EXPECT_TRUE(done.status.ok()) << done.status.ToString();
      EXPECT_TRUE(ledger->store().GetLease(leases[done.tag].id).ok());  // answered ok = durable and readable
    }
  }
  submitter.Stop();
}

// A full ledger queue refuses an actor's write at once (kDropped, counted on the ledger's
// mailbox): SubmitFromActor always sends with SendOrDrop, so the submitter never waits.
TEST(LedgerActorTest, AFullLedgerQueueRefusesAnActorsWriteWithoutBlockingIt) {
  // The fake ledger's address comes from a harness of its own (the submitter needs it when built).
  actors::ActorTestHarness addresses([] { return std::make_unique<Submitter>(actors::ActorAddress()); });
  const actors::ActorAddress ledger = addresses.FakeAddress("ledger");
  actors::ActorTestHarness submitter([ledger] { return std::make_unique<Submitter>(ledger); });
  ASSERT_TRUE(submitter.ok());
  submitter.SetMailboxFull(ledger, true);
  Parties parties;
  ASSERT_EQ(submitter.Deliver(SubmitLeases{{parties.FreshLease(), parties.FreshLease()}}), actors::Delivery::kHandled);
  auto answers = submitter.Request<Answers>(GetAnswers{});
  ASSERT_TRUE(answers.ok());
  EXPECT_EQ(answers.value().sent, (std::vector<actors::SendResult>{actors::SendResult::kDropped,
                                                                    actors::SendResult::kDropped}));
  EXPECT_EQ(ledger.stats().dropped_full, 2u);

  // With room, the write goes out as a SendOrDrop carrying where to answer.
  submitter.SetMailboxFull(ledger, false);
  ASSERT_EQ(submitter.Deliver(SubmitLeases{{parties.FreshLease()}}), actors::Delivery::kHandled);
  auto sent = submitter.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].drop_if_full);
  auto* write = sent[0].As<LedgerWriteMessage>();
  ASSERT_NE(write, nullptr);
  ASSERT_TRUE(write->reply_to.has_value());
  EXPECT_EQ(write->reply_to->to, submitter.self());
  EXPECT_EQ(write->reply_to->tag, 2u);
}

}  // namespace
}  // namespace gpumart::ledger
