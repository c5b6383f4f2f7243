// The simulator (bench/sim): a run is a function of its seed, and the protocol delivers every
// message to every node in the small scenario; and the core's signature hook (the one the
// simulator uses) is what decides a message's signature.
#include "bench/sim/sim.h"

#include <gtest/gtest.h>

#include "tests/gossip/fake_network.h"
#include "tests/test_seed.h"

namespace gpumart::sim {
namespace {

Scenario Small(uint64_t seed) {
  Scenario scenario = *Preset("small");
  scenario.seed = seed;
  return scenario;
}

TEST(SimTest, OneSeedGivesOneRunAndEveryNodeGetsEveryMessage) {
  const uint32_t seed = testing::TestSeed();
  const Results first = sim::Run(Small(seed), nullptr);
  const Results second = sim::Run(Small(seed), nullptr);
  EXPECT_EQ(ToJson(first, false), ToJson(second, false));
  EXPECT_EQ(first.nodes, 100u);
  EXPECT_EQ(first.messages_incomplete, 0u) << ToTable(first);
  EXPECT_EQ(first.deliveries_missing, 0u);
  EXPECT_GT(first.to100.max, 0);
  EXPECT_GE(first.copies_per_delivery, 1.0);
  // The seed matters: another one draws other regions, latencies and publishers.
  EXPECT_NE(ToJson(first, false), ToJson(sim::Run(Small(seed + 1), nullptr), false));
}

TEST(SimTest, CrashedNodesDoNotKeepLiveOnesFromAnyMessage) {
  Scenario scenario = Small(testing::TestSeed());
  scenario.crash_fraction = 0.1;
  const Results results = sim::Run(scenario, nullptr);
  EXPECT_EQ(results.crashed, 10u);
  // A message whose author crashed before any live node had it is counted apart, not as incomplete.
  EXPECT_EQ(results.messages_incomplete, 0u) << ToTable(results);
}

TEST(SimTest, TraceFollowsOneMessageFromPublishToEveryNode) {
  Scenario scenario = Small(7);
  scenario.trace_message = 3;
  std::string trace;
  const Results results = sim::Run(scenario, &trace);
  EXPECT_NE(trace.find("publish msg 3"), std::string::npos);
  size_t deliveries = 0;
  for (size_t at = trace.find("deliver at node"); at != std::string::npos; at = trace.find("deliver at node", at + 1)) {
    ++deliveries;
  }
  EXPECT_EQ(deliveries, results.nodes - 1);  // every node but the publisher
}

// GossipConfig::verify_signature decides the signature check in place of market::VerifySignature.
TEST(SimTest, CoreAsksTheSignatureHook) {
  using gossip::testing::FakeNetwork;
  int calls = 0;
  bool accept = true;
  gossip::GossipConfig config;
  config.verify_signature = [&](const market::Envelope&) {
    ++calls;
    return accept ? Status::Ok() : Status::BadSignature("hook says no");
  };
  FakeNetwork network;
  network.AddNode(config);
  network.AddNode(config);
  network.Connect(0, 1);
  network.RunFor(100);
  const market::Identity author = market::Identity::FromSeed(market::Seed{9});
  const market::Bytes first = gossip::testing::MakeClose(author, network.now(), 60'000, 1);
  ASSERT_TRUE(network.Publish(0, first).ok());
  network.RunFor(100);
  EXPECT_TRUE(network.DeliveredAt(1, gossip::testing::IdOf(first)));
  EXPECT_EQ(calls, 2);  // once at the publisher, once at the receiver
  accept = false;
  const market::Bytes second = gossip::testing::MakeClose(author, network.now(), 60'000, 2);
  EXPECT_EQ(network.Publish(0, second).code(), Status::Code::kBadSignature);
}

}  // namespace
}  // namespace gpumart::sim
