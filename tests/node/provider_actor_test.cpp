// The provider actor in process: a NodeContext in role provider and a tenant's gossip node on
// loopback. The tenant sees the provider's Offer, publishes a signed Order, gets the Bid back
// along the Order's path, accepts it and receives a Lease that verifies and is in the
// provider's ledger; a restarted provider still holds the lease's capacity.
#include "node/provider_actor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <mutex>
#include <thread>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "node/gossip/gossip_node.h"
#include "node/node_context.h"
#include "tests/eventually.h"
#include "tests/market/test_messages.h"
#include "tests/node/gossip_peer.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

using gpumart::testing::Eventually;
using gpumart::testing::GossipPeer;

bidding::Inventory EightH100() {
  const market::Offer sample = market::testing::SampleOffer();
  bidding::Inventory inventory;
  inventory.attributes = sample.attributes;
  inventory.nodes = sample.nodes;
  return inventory;
}

NodeConfig ProviderConfig(const std::string& data_dir) {
  NodeConfig config;
  config.role = NodeRole::kProvider;
  config.data_dir = data_dir;
  config.listen = "tcp://127.0.0.1:*";
  config.client_listen = "tcp://127.0.0.1:*";
  config.pricing_policy.tables = market::testing::SampleOffer().pricing;
  return config;
}

uint64_t GpusOf(const market::Offer& offer) {
  uint64_t gpus = 0;
  for (const auto& node : offer.nodes) {
    for (const auto& devices : node.gpus) gpus += devices.count;
  }
  return gpus;
}

TEST(ProviderActorTest, OrderBidAcceptLeaseOverGossip) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  ASSERT_TRUE(context->is_provider());
  const market::PublicKey provider = context->identity().public_key();

  GossipPeer tenant(context->peer_address());
  // The provider's Offer: all 8 GPUs free.
  const auto offer_of_provider = [&](uint64_t gpus) {
    return [&, gpus](const gossip::Deliver& deliver) {
      auto offer = market::OpenSigned<market::Offer>(deliver.envelope, SystemClock::Instance().NowMs());
      return offer.ok() && offer->envelope.signer == provider && GpusOf(offer->body) == gpus;
    };
  };
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, offer_of_provider(8)));

  // The tenant's Order (2 H100 for vllm, 2 small web replicas) reaches the provider; its Bid
  // comes back.
  const int64_t now = SystemClock::Instance().NowMs();
  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  const auto signed_order = market::MakeSigned(tenant.identity(), order, now, 60'000, market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(signed_order.envelope).ok());
  std::optional<gossip::Deliver> bid_delivery = tenant.WaitFor(market::MessageType::kBid, [](const auto&) { return true; });
  ASSERT_TRUE(bid_delivery.has_value());
  auto bid = market::OpenSigned<market::Bid>(bid_delivery->envelope, SystemClock::Instance().NowMs());
  ASSERT_TRUE(bid.ok()) << bid.status().ToString();
  EXPECT_EQ(bid->envelope.signer, provider);
  EXPECT_EQ(bid->body.order_id, signed_order.id);
  ASSERT_TRUE(Eventually([&] { return context->provider_counters()->reservations_held.load() == 1; }));
  // The reservation lowers the free capacity the provider gossips.
  EXPECT_TRUE(tenant.WaitFor(market::MessageType::kOffer, offer_of_provider(6)));

  // The Accept: the provider writes the lease durably, then publishes it.
  const market::Accept accept{signed_order.id, bid->id, provider};
  const auto signed_accept = market::MakeSigned(tenant.identity(), accept, SystemClock::Instance().NowMs(), 60'000,
                                                market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(signed_accept.envelope).ok());
  std::optional<gossip::Deliver> lease_delivery =
      tenant.WaitFor(market::MessageType::kLease, [](const auto&) { return true; });
  ASSERT_TRUE(lease_delivery.has_value());
  auto lease = market::OpenLease(lease_delivery->envelope);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->body.bid_id, bid->id);
  EXPECT_EQ(lease->body.tenant, tenant.identity().public_key());
  EXPECT_TRUE(context->ledger().store().GetLease(lease->id).ok());
  auto state = context->ProviderState();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->active_leases, 1u);
  EXPECT_EQ(state->live_reservations, 0u);
  EXPECT_EQ(context->provider_counters()->leases_made.load(), 1u);
  EXPECT_EQ(context->provider_counters()->bids.load(), 1u);

  // The same Accept again changes nothing (the gossip layer drops the duplicate; the engine
  // would ignore it).
  EXPECT_EQ(context->provider_counters()->leases_made.load(), 1u);

  // Shutdown: the withdrawing Offer (no nodes) reaches the tenant.
  ASSERT_TRUE(context->StopProvider(std::chrono::seconds(5)).ok());
  EXPECT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [&](const gossip::Deliver& deliver) {
    auto offer = market::OpenSigned<market::Offer>(deliver.envelope, SystemClock::Instance().NowMs());
    return offer.ok() && offer->envelope.signer == provider && offer->body.nodes.empty();
  }));
  context.reset();

  // Restarted on the same data dir: the lease still holds its 2 GPUs.
  auto again = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto restored = (*again)->ProviderState();
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->active_leases, 1u);
  EXPECT_EQ(GpusOf(restored->offer), 6u);
}

// The gossip core verifies each delivered message once; the provider decodes what it delivers
// without verifying again (an Order used to be verified 3 times, a foreign Lease 6 times).
// Counted in-process: the tenant's node runs here too, so its own checks are part of the count.
TEST(ProviderActorTest, DeliveredMessagesAreVerifiedOnceByTheCore) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  // No new Offer while counting: a reservation would otherwise publish one (more checks).
  auto started = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 600'000});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));

  // A Lease between the tenant and another provider, for another order.
  const int64_t now = SystemClock::Instance().NowMs();
  const market::Identity rival = market::Identity::Generate();
  market::Bid rival_bid;
  rival_bid.order_id = market::Blake2b256(reinterpret_cast<const uint8_t*>("other"), 5);
  rival_bid.tenant = tenant.identity().public_key();
  rival_bid.group = "default";
  rival_bid.denom = "usd";
  rival_bid.price_per_hour = 100;
  rival_bid.services = market::testing::SampleAssignments();
  rival_bid.reservation_expires_ms = now + 60'000;
  const auto signed_rival_bid = market::MakeSigned(rival, rival_bid, now, 60'000, market::RandomNonce());
  const market::Accept rival_accept{rival_bid.order_id, signed_rival_bid.id, rival.public_key()};
  const auto signed_rival_accept =
      market::MakeSigned(tenant.identity(), rival_accept, now, 60'000, market::RandomNonce());
  Result<market::Lease> rival_lease = market::BuildLease(market::EncodeEnvelope(signed_rival_accept.envelope),
                                                         market::EncodeEnvelope(signed_rival_bid.envelope), now);
  ASSERT_TRUE(rival_lease.ok()) << rival_lease.status().ToString();
  const auto signed_rival_lease = market::MakeSigned(rival, *rival_lease, now, 60'000, market::RandomNonce());
  ASSERT_TRUE(market::OpenLease(market::EncodeEnvelope(signed_rival_lease.envelope)).ok());

  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  const auto signed_order = market::MakeSigned(tenant.identity(), order, now, 60'000, market::RandomNonce());

  const uint64_t before = market::SignatureVerificationCount();
  // Lease first: the provider handles its deliveries in order, so once the Order's Bid is back
  // both have been handled.
  ASSERT_TRUE(tenant.Publish(signed_rival_lease.envelope).ok());
  ASSERT_TRUE(tenant.Publish(signed_order.envelope).ok());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kBid, [](const auto&) { return true; }));
  ASSERT_TRUE(Eventually([&] { return context->ledger().store().GetLease(signed_rival_lease.id).ok(); }));
  EXPECT_EQ(context->provider_counters()->bids.load(), 1u);
  // Anything verified late would show up here.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const uint64_t verified = market::SignatureVerificationCount() - before;
  // The tenant's node: its own Lease (3: the Lease, its Accept, its Bid) and Order (1) when it
  // publishes them, the provider's Bid (1) when it arrives. The provider's node: the Lease (3)
  // and the Order (1) at its gossip core, none in the provider actor or the bid engine, and none
  // for its own Bid when it publishes it (TheWinnerChecksOnlyWhatOthersSigned).
  EXPECT_EQ(verified, (3 + 1 + 1) + (3 + 1));
}

// An Order the provider cannot serve (a GPU it lacks) gets no bid, costs no reservation and is
// counted by its reason.
TEST(ProviderActorTest, AnOrderItCannotServeIsSkippedAndCounted) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));
  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  order.services[0].resources.gpu.options = {market::GpuOption{"nvidia", "h200", std::nullopt, std::nullopt}};
  const auto signed_order =
      market::MakeSigned(tenant.identity(), order, SystemClock::Instance().NowMs(), 60'000, market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(signed_order.envelope).ok());
  const auto& counters = *context->provider_counters();
  ASSERT_TRUE(Eventually([&] { return counters.orders.load() == 1; }));
  EXPECT_EQ(counters.skipped[static_cast<size_t>(bidding::SkipReason::kNoDevice)].load(), 1u);
  EXPECT_EQ(counters.bids.load(), 0u);
  EXPECT_EQ(counters.reservations_held.load(), 0u);
  EXPECT_NE(counters.Describe().find("no-device=1"), std::string::npos) << counters.Describe();
}

market::Signed<market::Order> ServableOrder(const market::Identity& tenant) {
  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  return market::MakeSigned(tenant, order, SystemClock::Instance().NowMs(), 60'000, market::RandomNonce());
}

// The bid (from the tenant's deliveries) that answers `order`.
std::optional<market::Signed<market::Bid>> BidFor(GossipPeer& tenant, const market::MessageId& order) {
  std::optional<gossip::Deliver> delivery = tenant.WaitFor(market::MessageType::kBid, [&](const gossip::Deliver& d) {
    auto bid = market::OpenSigned<market::Bid>(d.envelope, SystemClock::Instance().NowMs());
    return bid.ok() && bid->body.order_id == order;
  });
  if (!delivery) return std::nullopt;
  auto bid = market::OpenSigned<market::Bid>(delivery->envelope, SystemClock::Instance().NowMs());
  if (!bid.ok()) return std::nullopt;
  return *bid;
}

// `command` pricing: the program runs off the actor thread and its price is the bid's.
TEST(ProviderActorTest, CommandPricingPricesTheBid) {
  gpumart::testing::TempDir dir("provider-actor-test");
  NodeConfig config = ProviderConfig(dir.Sub("data"));
  config.pricing_policy.kind = bidding::PricingKind::kCommand;
  config.pricing_policy.tables.clear();
  config.pricing_policy.command = {"/bin/sh", "-c", "cat >/dev/null; echo 4242"};
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));
  const auto order = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(order.envelope).ok());
  std::optional<market::Signed<market::Bid>> bid = BidFor(tenant, order.id);
  ASSERT_TRUE(bid.has_value());
  EXPECT_EQ(bid->body.price_per_hour, 4242u);
}

// An Accept that comes after the bid's reservation expired is refused with a provider-signed
// Close naming the Accept; a lease the tenant closes frees its capacity at once.
TEST(ProviderActorTest, LateAcceptIsRefusedAndAClosedLeaseFreesItsCapacity) {
  gpumart::testing::TempDir dir("provider-actor-test");
  NodeConfig config = ProviderConfig(dir.Sub("data"));
  config.bidding.bid_ttl_ms = 300;
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  const market::PublicKey provider = context->identity().public_key();
  const ProviderCounters& counters = *context->provider_counters();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));

  const auto late_order = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(late_order.envelope).ok());
  std::optional<market::Signed<market::Bid>> late_bid = BidFor(tenant, late_order.id);
  ASSERT_TRUE(late_bid.has_value());
  // The engine's own timer releases the reservation at the bid's expiry.
  ASSERT_TRUE(Eventually([&] { return counters.reservations_expired.load() == 1; }));
  EXPECT_EQ(counters.reservations_held.load(), 0u);
  const auto late_accept = market::MakeSigned(tenant.identity(), market::Accept{late_order.id, late_bid->id, provider},
                                              SystemClock::Instance().NowMs(), 60'000, market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(late_accept.envelope).ok());
  std::optional<gossip::Deliver> refusal = tenant.WaitFor(market::MessageType::kClose, [&](const gossip::Deliver& d) {
    auto close = market::OpenSigned<market::Close>(d.envelope, SystemClock::Instance().NowMs());
    return close.ok() && close->envelope.signer == provider && close->body.lease_id == late_accept.id;
  });
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(counters.accepts_refused.load(), 1u);
  EXPECT_EQ(counters.leases_made.load(), 0u);

  const auto order = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(order.envelope).ok());
  std::optional<market::Signed<market::Bid>> bid = BidFor(tenant, order.id);
  ASSERT_TRUE(bid.has_value());
  const auto accept = market::MakeSigned(tenant.identity(), market::Accept{order.id, bid->id, provider},
                                         SystemClock::Instance().NowMs(), 60'000, market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(accept.envelope).ok());
  std::optional<gossip::Deliver> lease_delivery =
      tenant.WaitFor(market::MessageType::kLease, [](const auto&) { return true; });
  ASSERT_TRUE(lease_delivery.has_value());
  auto lease = market::OpenLease(lease_delivery->envelope);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(counters.leases_active.load(), 1u);
  const int64_t now = SystemClock::Instance().NowMs();
  const auto close = market::MakeSigned(tenant.identity(), market::Close{lease->id, market::CloseReason::kTenantClosed, now, ""},
                                        now, 60'000, market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(close.envelope).ok());
  ASSERT_TRUE(Eventually([&] { return counters.leases_closed.load() == 1; }));
  EXPECT_EQ(counters.leases_active.load(), 0u);
  // The debounced offer after the close: all free again.
  EXPECT_TRUE(Eventually([&] {
    auto state = context->ProviderState();
    return state.ok() && GpusOf(state->offer) == 8u;
  }));
}

// A restart restores the live reservation of a bid from the ledger: its GPUs stay held.
TEST(ProviderActorTest, RestartRestoresALiveReservation) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  {
    auto started = NodeContext::Start(config, &inventory);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    std::unique_ptr<NodeContext> context = std::move(started).value();
    GossipPeer tenant(context->peer_address());
    ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));
    const auto order = ServableOrder(tenant.identity());
    ASSERT_TRUE(tenant.Publish(order.envelope).ok());
    ASSERT_TRUE(BidFor(tenant, order.id).has_value());
  }  // stops; the reservation and its bid were written
  auto again = NodeContext::Start(config, &inventory);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto state = (*again)->ProviderState();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->live_reservations, 1u);
  EXPECT_EQ(GpusOf(state->offer), 6u);
}

// The lease (from the tenant's deliveries) made for an order: its Order, Bid, Accept done here.
std::optional<market::Signed<market::Lease>> LeaseOrder(GossipPeer& tenant, const market::PublicKey& provider) {
  const auto order = ServableOrder(tenant.identity());
  if (!tenant.Publish(order.envelope).ok()) return std::nullopt;
  std::optional<market::Signed<market::Bid>> bid = BidFor(tenant, order.id);
  if (!bid) return std::nullopt;
  const auto accept = market::MakeSigned(tenant.identity(), market::Accept{order.id, bid->id, provider},
                                         SystemClock::Instance().NowMs(), 60'000, market::RandomNonce());
  if (!tenant.Publish(accept.envelope).ok()) return std::nullopt;
  std::optional<gossip::Deliver> delivery = tenant.WaitFor(market::MessageType::kLease, [&](const gossip::Deliver& d) {
    auto lease = market::OpenLease(d.envelope);
    return lease.ok() && lease->body.bid_id == bid->id;
  });
  if (!delivery) return std::nullopt;
  auto lease = market::OpenLease(delivery->envelope);
  if (!lease.ok()) return std::nullopt;
  return *lease;
}

// An order that came while every GPU was held waits; when a lease closes it gets its bid, and
// its Order is in the ledger (as for a bid made on arrival) so a restart can restore the lease.
TEST(ProviderActorTest, AnOrderThatWaitedForCapacityIsBidAndRecordedWhenALeaseCloses) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  const market::PublicKey provider = context->identity().public_key();
  const ProviderCounters& counters = *context->provider_counters();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));

  // One order leased and two bid on hold 51 of the 64 CPUs (17 each): a fourth does not fit.
  std::optional<market::Signed<market::Lease>> lease = LeaseOrder(tenant, provider);
  ASSERT_TRUE(lease.has_value());
  for (int i = 0; i < 2; ++i) {
    const auto order = ServableOrder(tenant.identity());
    ASSERT_TRUE(tenant.Publish(order.envelope).ok());
    ASSERT_TRUE(BidFor(tenant, order.id).has_value());
  }
  const auto waiting = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(waiting.envelope).ok());
  const size_t capacity = static_cast<size_t>(bidding::SkipReason::kCapacity);
  ASSERT_TRUE(Eventually([&] { return counters.skipped[capacity].load() == 1; }));
  EXPECT_FALSE(context->ledger().store().GetOrder(waiting.id).ok());
  EXPECT_EQ(counters.orders_waiting.load(), 1u);
  EXPECT_EQ(counters.orders_deferred.load(), 1u);

  const int64_t now = SystemClock::Instance().NowMs();
  const auto close = market::MakeSigned(
      tenant.identity(), market::Close{lease->id, market::CloseReason::kTenantClosed, now, ""}, now, 60'000,
      market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(close.envelope).ok());
  std::optional<market::Signed<market::Bid>> bid = BidFor(tenant, waiting.id);
  ASSERT_TRUE(bid.has_value());
  EXPECT_EQ(counters.skipped[capacity].load(), 1u);  // the retry is no second skip
  ASSERT_TRUE(Eventually([&] { return counters.deferred_served.load() == 1; }));
  EXPECT_EQ(counters.orders_waiting.load(), 0u);
  EXPECT_EQ(counters.deferred_dropped.load(), 0u);
  ASSERT_TRUE(Eventually([&] {
    return context->ledger().store().GetOrder(waiting.id).ok() &&
           context->ledger().store().GetReservation(bid->id).ok();
  }));
}

// The winning provider's node verifies what others signed, once each (the Order and the Accept,
// at its gossip core), and neither its own Bid and Lease when it publishes them nor the Accept
// again in the bid engine (it used to: 1 + 1 + 2 + 3 = 7).
TEST(ProviderActorTest, TheWinnerChecksOnlyWhatOthersSigned) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  // No new Offer while counting: a reservation would otherwise publish one (more checks).
  auto started = NodeContext::Start(config, &inventory, ProviderOptions{.offer_debounce_ms = 600'000});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  const market::PublicKey provider = context->identity().public_key();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));

  // Decoded here without checks, so that only the nodes' checks are counted.
  const uint64_t before = market::SignatureVerificationCount();
  const auto order = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(order.envelope).ok());
  std::optional<gossip::Deliver> bid_delivery = tenant.WaitFor(market::MessageType::kBid, [](const auto&) { return true; });
  ASSERT_TRUE(bid_delivery.has_value());
  auto bid = market::DecodeVerified<market::Bid>(bid_delivery->envelope);
  ASSERT_TRUE(bid.ok());
  const auto accept = market::MakeSigned(tenant.identity(), market::Accept{order.id, bid->id, provider},
                                         SystemClock::Instance().NowMs(), 60'000, market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(accept.envelope).ok());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kLease, [](const auto&) { return true; }));
  EXPECT_EQ(context->provider_counters()->leases_made.load(), 1u);
  // Anything verified late would show up here.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const uint64_t verified = market::SignatureVerificationCount() - before;
  // The tenant's node: its Order (1) and Accept (1) when it publishes them, the Bid (1) and the
  // Lease (1: its embedded Accept and Bid are the ones the node holds) when they arrive. The
  // provider's node: the Order (1) and the Accept (1).
  EXPECT_EQ(verified, (1 + 1 + 1 + 1) + (1 + 1));
}

std::string ReadWhole(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The exec executor runs on lease start with the lease as JSON on stdin, and on its close again
// (event stop); each outcome is counted.
TEST(ProviderActorTest, ExecutorRunsOnLeaseStartAndStop) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  const std::string seen = dir.Sub("seen");
  ProviderOptions options{.offer_debounce_ms = 20};
  options.executor.kind = bidding::ExecutorKind::kExec;
  options.executor.command = {"/bin/sh", "-c", "cat >>" + seen + "; echo >>" + seen};
  options.executor.timeout_ms = 5'000;
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory, options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  const market::PublicKey provider = context->identity().public_key();
  const ProviderCounters& counters = *context->provider_counters();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));

  std::optional<market::Signed<market::Lease>> lease = LeaseOrder(tenant, provider);
  ASSERT_TRUE(lease.has_value());
  ASSERT_TRUE(Eventually([&] { return counters.executor_starts.load() == 1; }));
  const std::string start = ReadWhole(seen);
  EXPECT_NE(start.find("\"event\":\"start\""), std::string::npos) << start;
  EXPECT_NE(start.find(market::ToHex(lease->id)), std::string::npos) << start;
  EXPECT_EQ(counters.leases_active.load(), 1u);

  const int64_t now = SystemClock::Instance().NowMs();
  const auto close = market::MakeSigned(
      tenant.identity(), market::Close{lease->id, market::CloseReason::kTenantClosed, now, ""}, now, 60'000,
      market::RandomNonce());
  ASSERT_TRUE(tenant.Publish(close.envelope).ok());
  ASSERT_TRUE(Eventually([&] { return counters.executor_stops.load() == 1; }));
  EXPECT_NE(ReadWhole(seen).find("\"event\":\"stop\""), std::string::npos);
  EXPECT_EQ(counters.executor_starts_failed.load(), 0u);
  EXPECT_EQ(counters.executor_stops_failed.load(), 0u);
}

// A start that fails (exit 1) closes the lease with reason provider-failure: the provider signs
// the Close, gossips it, records it, and the lease's GPUs are free again at once.
TEST(ProviderActorTest, AFailedExecutorStartClosesTheLeaseAndFreesIt) {
  gpumart::testing::TempDir dir("provider-actor-test");
  const NodeConfig config = ProviderConfig(dir.Sub("data"));
  ProviderOptions options{.offer_debounce_ms = 20};
  options.executor.kind = bidding::ExecutorKind::kExec;
  options.executor.command = {"/bin/sh", "-c", "cat >/dev/null; echo no cluster >&2; exit 1"};
  options.executor.timeout_ms = 5'000;
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory, options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  const market::PublicKey provider = context->identity().public_key();
  const ProviderCounters& counters = *context->provider_counters();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));

  std::optional<market::Signed<market::Lease>> lease = LeaseOrder(tenant, provider);
  ASSERT_TRUE(lease.has_value());
  std::optional<gossip::Deliver> closed = tenant.WaitFor(market::MessageType::kClose, [&](const gossip::Deliver& d) {
    auto close = market::OpenSigned<market::Close>(d.envelope, SystemClock::Instance().NowMs());
    return close.ok() && close->envelope.signer == provider && close->body.lease_id == lease->id &&
           close->body.reason == market::CloseReason::kProviderFailure;
  });
  ASSERT_TRUE(closed.has_value());
  EXPECT_TRUE(Eventually([&] { return counters.leases_closed.load() == 1; }));
  EXPECT_EQ(counters.leases_active.load(), 0u);
  EXPECT_EQ(counters.executor_starts_failed.load(), 1u);
  EXPECT_EQ(counters.executor_starts.load(), 0u);
  EXPECT_TRUE(Eventually([&] {
    auto state = context->ProviderState();
    return state.ok() && GpusOf(state->offer) == 8u;
  }));
  EXPECT_TRUE(Eventually([&] {
    auto record = context->ledger().store().GetLease(lease->id);
    return record.ok() && record->state == ledger::LeaseState::kClosed;
  }));
}

// SIGHUP's reload replaces the pricing of the running provider: the next bid has the new price.
TEST(ProviderActorTest, ReloadReplacesThePricingForNewBids) {
  gpumart::testing::TempDir dir("provider-actor-test");
  NodeConfig config = ProviderConfig(dir.Sub("data"));
  const bidding::Inventory inventory = EightH100();
  auto started = NodeContext::Start(config, &inventory);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<NodeContext> context = std::move(started).value();
  GossipPeer tenant(context->peer_address());
  ASSERT_TRUE(tenant.WaitFor(market::MessageType::kOffer, [](const auto&) { return true; }));
  const auto first = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(first.envelope).ok());
  std::optional<market::Signed<market::Bid>> first_bid = BidFor(tenant, first.id);
  ASSERT_TRUE(first_bid.has_value());

  for (market::PriceTable& table : config.pricing_policy.tables) {
    for (auto& [key, rate] : table.gpu) rate *= 2;
  }
  ASSERT_TRUE(context->ReloadInventory(inventory, config).ok());
  const auto second = ServableOrder(tenant.identity());
  ASSERT_TRUE(tenant.Publish(second.envelope).ok());
  std::optional<market::Signed<market::Bid>> second_bid = BidFor(tenant, second.id);
  ASSERT_TRUE(second_bid.has_value());
  EXPECT_GT(second_bid->body.price_per_hour, first_bid->body.price_per_hour);
}

}  // namespace
}  // namespace gpumart::node
