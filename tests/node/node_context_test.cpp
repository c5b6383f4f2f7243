// NodeContext in process: the daemon's parts wired together. What gossip delivers reaches the
// offer book (queried through the context) and the ledger, and the context stops cleanly.
#include "node/node_context.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "node/gossip/gossip_node.h"
#include "tests/eventually.h"
#include "tests/ledger/test_leases.h"
#include "tests/market/test_messages.h"
#include "tests/node/gossip_peer.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

using gpumart::testing::Eventually;
using gpumart::testing::GossipPeer;

TEST(NodeContextTest, GossipedOffersAndLeasesReachTheBookAndTheLedger) {
  gpumart::testing::TempDir dir("node-context-test");
  NodeConfig config;
  config.data_dir = dir.Sub("data");
  config.listen = "tcp://127.0.0.1:*";
  config.client_listen = "tcp://127.0.0.1:*";
  auto started = NodeContext::Start(config);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  ASSERT_FALSE(context->peer_address().empty());

  GossipPeer publisher(context->peer_address());
  ASSERT_TRUE(publisher.WaitReady());
  const int64_t now = SystemClock::Instance().NowMs();
  const market::Identity provider = market::Identity::Generate();
  const auto offer = market::MakeSigned(provider, market::testing::SampleOffer(), now, 60'000, 1);
  ASSERT_TRUE(publisher.Publish(offer.envelope).ok());
  ledger::testing::Parties parties;
  const auto lease = parties.FreshLease(now);
  ASSERT_TRUE(publisher.Publish(lease.envelope).ok());

  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  std::vector<market::Candidate> found;
  ASSERT_TRUE(Eventually([&] {
    auto result = context->FindOffers(order, market::Policy::kPreference, 5);
    if (result.ok()) found = *result;
    return !found.empty();
  }));
  EXPECT_EQ(found[0].provider, market::ToHex(provider.public_key()));
  auto status = context->OfferStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->offers, 1u);
  EXPECT_EQ(context->offer_counters()->held.load(), 1u);

  ASSERT_TRUE(Eventually([&] { return context->ledger_counters()->recorded.load() == 1; }));
  EXPECT_TRUE(context->ledger().store().GetLease(lease.id).ok());
  EXPECT_EQ(context->ledger_counters()->dropped.load(), 0u);

  market::Order invalid = order;
  invalid.services.clear();
  EXPECT_EQ(context->FindOffers(invalid, market::Policy::kPreference, 5).status().code(),
            Status::Code::kInvalidArgument);
  context.reset();  // stops gossip, the book, the feed, then the ledger
}

// A restarted node seeds gossip's reconcilable set from its ledger, so a node that joins it later
// still gets, by reconciliation, the leases it recorded before the restart.
TEST(NodeContextTest, ARestartedNodeServesTheLeasesOfItsLedgerToANewPeer) {
  gpumart::testing::TempDir dir("node-context-test");
  NodeConfig config;
  config.data_dir = dir.Sub("data");
  config.listen = "tcp://127.0.0.1:*";
  config.client_listen = "tcp://127.0.0.1:*";
  const int64_t now = SystemClock::Instance().NowMs();
  ledger::testing::Parties parties;
  const auto lease = parties.FreshLease(now);
  {
    auto first = NodeContext::Start(config);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    GossipPeer publisher((*first)->peer_address());
    ASSERT_TRUE(publisher.WaitReady());
    ASSERT_TRUE(publisher.Publish(lease.envelope).ok());
    ASSERT_TRUE(Eventually([&] { return (*first)->ledger_counters()->recorded.load() == 1; }));
  }
  auto restarted = NodeContext::Start(config);
  ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
  auto status = (*restarted)->GossipStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->retained_seeded, 1u);

  NodeConfig joiner_config;
  joiner_config.data_dir = dir.Sub("joiner");
  joiner_config.client_listen = "tcp://127.0.0.1:*";
  joiner_config.bootstrap = {(*restarted)->peer_address()};
  auto joiner = NodeContext::Start(joiner_config);
  ASSERT_TRUE(joiner.ok()) << joiner.status().ToString();
  ASSERT_TRUE(Eventually([&] { return (*joiner)->ledger_counters()->recorded.load() == 1; }));
  EXPECT_TRUE((*joiner)->ledger().store().GetLease(lease.id).ok());
}

}  // namespace
}  // namespace gpumart::node
