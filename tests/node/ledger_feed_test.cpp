// The ledger feed: gossip's Leases, Closes and Attestations into the ledger, with every write
// answered to the feed as a message and every full queue a counted drop, never a wait.
#include "node/ledger_feed.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "actors/test_harness.h"
#include "ledger/ledger_actor.h"
#include "tests/eventually.h"
#include "tests/ledger/ledger_test_util.h"

namespace gpumart::node {
namespace {

using gpumart::testing::Eventually;
using ledger::testing::kStartMs;
using ledger::testing::Parties;

template <typename Body>
gossip::Deliver Delivered(const market::Signed<Body>& message) {
  return gossip::Deliver{message.id, message.envelope.type, market::EncodeEnvelope(message.envelope), 1};
}

class LedgerFeedHarnessTest : public ::testing::Test {
 protected:
  LedgerFeedHarnessTest()
      : addresses_([] { return std::make_unique<LedgerFeed>(actors::ActorAddress(), nullptr); }),
        ledger_(addresses_.FakeAddress("ledger")),
        feed_([this] { return std::make_unique<LedgerFeed>(ledger_, counters_); }) {}

  std::shared_ptr<LedgerFeedCounters> counters_ = std::make_shared<LedgerFeedCounters>();
  actors::ActorTestHarness addresses_;  // only to make the fake ledger's address
  const actors::ActorAddress ledger_;
  actors::ActorTestHarness feed_;
  Parties parties_;
};

// A delivered lease goes to the ledger as a write that needs no second signature check, sent
// with SendOrDrop and answered to the feed; the answer is counted.
TEST_F(LedgerFeedHarnessTest, SubmitsWithoutBlockingAndCountsTheAnswers) {
  ASSERT_TRUE(feed_.ok());
  const auto lease = parties_.FreshLease();
  ASSERT_EQ(feed_.Deliver(DeliveredRecord{Delivered(lease)}), actors::Delivery::kHandled);
  auto sent = feed_.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, ledger_);
  EXPECT_TRUE(sent[0].drop_if_full);
  auto* write = sent[0].As<ledger::LedgerWriteMessage>();
  ASSERT_NE(write, nullptr);
  ASSERT_TRUE(std::holds_alternative<ledger::RecordLease>(write->write.write));
  EXPECT_EQ(std::get<ledger::RecordLease>(write->write.write).lease.id, lease.id);
  ASSERT_TRUE(write->reply_to.has_value());
  EXPECT_EQ(write->reply_to->to, feed_.self());
  EXPECT_EQ(counters_->submitted.load(), 1u);

  feed_.Deliver(ledger::LedgerWriteDone{write->reply_to->tag, Status::Ok()});
  feed_.Deliver(ledger::LedgerWriteDone{write->reply_to->tag + 1, Status::AlreadyExists("lease already recorded")});
  feed_.Deliver(ledger::LedgerWriteDone{write->reply_to->tag + 2, Status::Unavailable("the ledger stopped")});
  EXPECT_EQ(counters_->recorded.load(), 1u);
  EXPECT_EQ(counters_->refused.load(), 1u);
  EXPECT_EQ(counters_->dropped.load(), 1u);
}

// Issue 12: "a full ledger queue is a counted drop ... not a blocked gossip thread".
TEST_F(LedgerFeedHarnessTest, AFullLedgerQueueIsACountedDrop) {
  ASSERT_TRUE(feed_.ok());
  feed_.SetMailboxFull(ledger_, true);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(feed_.Deliver(DeliveredRecord{Delivered(parties_.FreshLease())}), actors::Delivery::kHandled);
  }
  EXPECT_TRUE(feed_.TakeSent().empty());
  EXPECT_EQ(counters_->dropped.load(), 3u);
  EXPECT_EQ(counters_->submitted.load(), 0u);
  EXPECT_EQ(ledger_.stats().dropped_full, 3u);
}

TEST_F(LedgerFeedHarnessTest, WhatTheLedgerCannotRecordIsRefusedAndCounted) {
  ASSERT_TRUE(feed_.ok());
  // Not a ledger record (an Order is not recorded from gossip; an Offer goes to the offer book).
  feed_.Deliver(DeliveredRecord{Delivered(parties_.Order())});
  // Garbage under a Lease's type.
  gossip::Deliver garbage{{}, market::MessageType::kLease, market::Bytes{0x93, 0x01}, 1};
  feed_.Deliver(DeliveredRecord{garbage});
  // A lease not signed by its bid's provider: refused before it reaches the ledger.
  feed_.Deliver(DeliveredRecord{
      Delivered(market::MakeSigned(parties_.tenant(), parties_.FreshLease().body, kStartMs, 60'000, 99))});
  EXPECT_EQ(counters_->refused.load(), 3u);
  EXPECT_TRUE(feed_.TakeSent().empty());
}

// With the real ledger actor: leases, a close and an attestation become durable, a duplicate is
// refused, and every answer came back to the feed.
TEST(LedgerFeedTest, RecordsDeliveriesInTheLedger) {
  ledger::testing::TempDir dir;
  ManualClock clock(kStartMs);
  actors::ActorSystem system;
  auto ledger = ledger::LedgerActor::Open(system, dir.Sub("ledger"), {}, clock);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  auto counters = std::make_shared<LedgerFeedCounters>();
  actors::ActorHandle feed = system.Spawn({.name = "ledger-feed", .mailbox_hwm = kLedgerFeedMailboxHwm},
                                          [address = (*ledger)->address(), counters] {
                                            return std::make_unique<LedgerFeed>(address, counters);
                                          });
  ASSERT_TRUE(feed.ok());
  Parties parties;
  std::vector<market::Signed<market::Lease>> leases;
  for (int i = 0; i < 30; ++i) leases.push_back(parties.FreshLease());
  const auto close = parties.Close(leases[0].id, parties.tenant(), market::CloseReason::kTenantClosed, kStartMs + 1);
  const market::Identity auditor = market::Identity::Generate();
  const auto attestation = market::MakeSigned(
      auditor, market::Attestation{parties.provider().public_key(), market::AuditVerdict::kPass, kStartMs, "ok"},
      kStartMs, 60'000, 1);
  {
    actors::Outbox outbox(system);
    for (const auto& lease : leases) HandToFeed(Delivered(lease), outbox, feed.address(), *counters);
    HandToFeed(Delivered(leases[1]), outbox, feed.address(), *counters);  // again
    HandToFeed(Delivered(attestation), outbox, feed.address(), *counters);
    HandToFeed(Delivered(parties.Order()), outbox, feed.address(), *counters);  // not the feed's: ignored
    ASSERT_TRUE(Eventually([&] { return counters->recorded.load() + counters->refused.load() == 32; }));
    // A close after its lease is durable (the ledger needs the lease first).
    HandToFeed(Delivered(close), outbox, feed.address(), *counters);
    ASSERT_TRUE(Eventually([&] { return counters->recorded.load() + counters->refused.load() == 33; }));
  }
  EXPECT_EQ(counters->recorded.load(), 32u);
  EXPECT_EQ(counters->refused.load(), 1u);  // the lease again
  EXPECT_EQ(counters->dropped.load(), 0u);
  EXPECT_EQ(counters->submitted.load(), 33u);
  for (const auto& lease : leases) EXPECT_TRUE((*ledger)->store().GetLease(lease.id).ok());
  EXPECT_TRUE((*ledger)->store().GetLease(leases[0].id)->close.has_value());
  auto passing = (*ledger)->store().PassingAuditors(parties.provider().public_key());
  ASSERT_TRUE(passing.ok());
  EXPECT_EQ(*passing, std::vector<std::string>{market::ToHex(auditor.public_key())});
  feed.Stop();
}

// An actor whose handler waits until released: a mailbox that stays full.
struct Hold {
  std::shared_future<void> until;
};
class Stuck final : public actors::Actor {
 public:
  void Init(actors::Handlers& on, actors::ActorContext&) override {
    on.On<Hold>([](Hold& hold) { hold.until.wait(); });
    on.On<DeliveredRecord>([](DeliveredRecord&) {});
  }
};

// The gossip side: handing a delivery to a feed that does not keep up never waits; what does not
// fit is counted as dropped.
TEST(LedgerFeedTest, HandingToAFullFeedNeverBlocks) {
  actors::ActorSystem system;
  actors::ActorHandle feed = system.Spawn({.name = "stuck", .mailbox_hwm = 8}, [] { return std::make_unique<Stuck>(); });
  ASSERT_TRUE(feed.ok());
  std::promise<void> release;
  actors::Outbox outbox(system);
  ASSERT_EQ(outbox.Send(feed.address(), Hold{release.get_future().share()}), actors::SendResult::kOk);
  LedgerFeedCounters counters;
  Parties parties;
  const gossip::Deliver lease = Delivered(parties.FreshLease());
  constexpr int kDeliveries = 2'000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kDeliveries; ++i) HandToFeed(lease, outbox, feed.address(), counters);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GT(counters.dropped.load(), 0u);
  EXPECT_LT(counters.dropped.load(), static_cast<uint64_t>(kDeliveries));  // the queue did take some
  EXPECT_EQ(feed.address().stats().dropped_full, counters.dropped.load());
  EXPECT_LT(took, std::chrono::seconds(5));  // it returned; a blocking send would wait forever
  release.set_value();
  feed.Stop();
}

}  // namespace
}  // namespace gpumart::node
