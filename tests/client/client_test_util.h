// Nodes for the client port's tests: a provider NodeContext (8 H100 of the sample offer, priced
// by its tables) and a relay, each with its client port on a free loopback port.
#pragma once

#include <chrono>
#include <thread>

#include "actors/clock.h"
#include "market/codec.h"
#include "node/client/client.h"
#include "node/node_context.h"
#include "tests/market/test_messages.h"

namespace gpumart::client::testing {

inline node::NodeConfig LoopbackConfig(const std::string& data_dir) {
  node::NodeConfig config;
  config.data_dir = data_dir;
  config.listen = "tcp://127.0.0.1:*";
  config.client_listen = "tcp://127.0.0.1:*";
  return config;
}

inline node::NodeConfig ProviderConfig(const std::string& data_dir) {
  node::NodeConfig config = LoopbackConfig(data_dir);
  config.role = node::NodeRole::kProvider;
  config.pricing_policy.tables = market::testing::SampleOffer().pricing;
  return config;
}

inline bidding::Inventory EightH100() {
  const market::Offer sample = market::testing::SampleOffer();
  bidding::Inventory inventory;
  inventory.attributes = sample.attributes;
  inventory.nodes = sample.nodes;
  return inventory;
}

// The sample order the sample provider can serve (2 H100 and 2 small web replicas).
inline market::Order ServableOrder() {
  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  return order;
}

inline int64_t Now() { return SystemClock::Instance().NowMs(); }

template <typename Body>
Bytes Signed(const market::Identity& signer, const Body& body, int64_t ttl_ms = 60'000) {
  return market::EncodeEnvelope(market::MakeSigned(signer, body, Now(), ttl_ms, market::RandomNonce()).envelope);
}

}  // namespace gpumart::client::testing
