// The client port over real loopback sockets against real NodeContexts: every request kind,
// bad frames answered (or dropped) while the port keeps serving, ownership of Accepts and
// Closes, and the events a subscriber gets from a provider linked by gossip.
#include "node/client/client_port.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/actor_system.h"
#include "actors/outbox.h"
#include "node/client/client.h"
#include "tests/client/client_test_util.h"
#include "tests/eventually.h"
#include "tests/temp_dir.h"

namespace gpumart::client {
namespace {

using namespace std::chrono_literals;
using gpumart::testing::Eventually;
using testing::Now;
using testing::Signed;

nlohmann::json JsonOf(const Result<Fields>& result) {
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  if (!result.ok()) return {};
  auto json = Require<std::string>(*result, "json");
  EXPECT_TRUE(json.ok());
  return nlohmann::json::parse(**json);
}

// A raw DEALER, to send what the client library never would.
class RawSocket {
 public:
  explicit RawSocket(const std::string& address) : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(address);
  }
  void Send(const Bytes& frame) { socket_.send(zmq::buffer(frame.data(), frame.size())); }
  void SendParts(const Bytes& a, const Bytes& b) {
    socket_.send(zmq::buffer(a.data(), a.size()), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(b.data(), b.size()));
  }
  std::optional<Response> Receive(std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
    zmq::message_t message;
    if (!socket_.recv(message)) return std::nullopt;
    auto response = DecodeResponse({static_cast<const uint8_t*>(message.data()), message.size()});
    if (!response.ok()) return std::nullopt;
    return *response;
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

class ClientPortTest : public ::testing::Test {
 protected:
  void StartRelay() {
    auto started = node::NodeContext::Start(testing::LoopbackConfig(dir_.Sub("relay")));
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    relay_ = std::move(started).value();
    ASSERT_FALSE(relay_->client_address().empty());
    auto client = Client::Connect(relay_->client_address(), 5s);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
  }

  gpumart::testing::TempDir dir_{"client-port-test"};
  std::unique_ptr<node::NodeContext> relay_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientPortTest, QueriesAnswerOnAFreshRelay) {
  ASSERT_NO_FATAL_FAILURE(StartRelay());
  EXPECT_TRUE(IsLoopbackEndpoint(relay_->client_address()));

  auto pong = client_->Call("ping", {});
  ASSERT_TRUE(pong.ok());
  EXPECT_EQ(std::get<uint64_t>(pong->at("version")), kClientProtocolVersion);
  EXPECT_EQ(std::get<Bytes>(pong->at("node")),
            Bytes(relay_->identity().public_key().begin(), relay_->identity().public_key().end()));

  const nlohmann::json status = JsonOf(client_->Call("status", {}));
  EXPECT_EQ(status["node"], market::ToHex(relay_->identity().public_key()));
  EXPECT_EQ(status["role"], "relay");
  EXPECT_EQ(status["offers"], 0);
  EXPECT_EQ(status["open_orders"], 0);
  EXPECT_TRUE(status["revenue_per_hour"].is_null());
  EXPECT_EQ(status["client_port"]["connections"], 1);

  const nlohmann::json leases = JsonOf(client_->Call("leases", {{"state", std::string("active")}}));
  EXPECT_TRUE(leases["leases"].empty());
  EXPECT_TRUE(leases["next_after"].is_null());

  const Bytes order = market::EncodeBody(testing::ServableOrder());
  const nlohmann::json match = JsonOf(client_->Call("match", {{"orders", std::vector<Bytes>{order}}}));
  EXPECT_EQ(match["providers"], 0);
  ASSERT_EQ(match["groups"].size(), 1u);
  EXPECT_TRUE(match["groups"][0]["candidates"].empty());

  // Wrong arguments are errors that name them.
  auto bad_state = client_->Call("leases", {{"state", std::string("sleeping")}});
  EXPECT_EQ(bad_state.status().code(), Status::Code::kInvalidArgument);
  auto bad_type = client_->Call("leases", {{"limit", std::string("ten")}});
  EXPECT_NE(bad_type.status().message().find("limit"), std::string::npos);
  auto missing = client_->Call("lease", {{"lease", Bytes(32, 7)}});
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  auto unknown = client_->Call("frobnicate", {});
  EXPECT_EQ(unknown.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("leases"), std::string::npos) << unknown.status().message();
  auto bad_order = client_->Call("match", {{"orders", std::vector<Bytes>{Bytes{1, 2, 3}}}});
  EXPECT_EQ(bad_order.status().code(), Status::Code::kCorruption) << bad_order.status().ToString();
}

TEST_F(ClientPortTest, BadFramesGetAnAnswerOrNothingAndThePortKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(StartRelay());
  RawSocket raw(relay_->client_address());
  // Garbage without an id: dropped, no answer.
  raw.Send(Bytes{0xc1, 0x00, 0xff});
  EXPECT_FALSE(raw.Receive(200ms).has_value());
  // An id but a broken body: answered with the reason.
  Bytes broken = EncodeRequest({5, "status", {}});
  broken.back() = 0xc1;
  raw.Send(broken);
  std::optional<Response> answer = raw.Receive(2s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->id, 5u);
  EXPECT_NE(answer->code, Status::Code::kOk);
  EXPECT_NE(answer->message.find("bad request"), std::string::npos) << answer->message;
  // Over the frame limit: refused by size, id still answered.
  raw.Send(EncodeRequest({6, "publish", {{"envelope", Bytes(limits::kMaxFrameBytes, 0)}}}));
  answer = raw.Receive(5s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->id, 6u);
  EXPECT_EQ(answer->code, Status::Code::kLimitExceeded);
  // Two parts: answered as malformed.
  raw.SendParts(EncodeRequest({7, "status", {}}), Bytes{1});
  answer = raw.Receive(2s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->id, 7u);
  EXPECT_EQ(answer->code, Status::Code::kInvalidArgument);
  // A publish of garbage, and of a message type clients may not publish.
  EXPECT_EQ(client_->Publish(Bytes{1, 2, 3}).status().code(), Status::Code::kCorruption);
  const market::Identity provider = market::Identity::Generate();
  const Bytes offer = Signed(provider, market::testing::SampleOffer());
  EXPECT_EQ(client_->Publish(offer).status().code(), Status::Code::kInvalidArgument);
  // An expired order, and one whose signature was tampered with.
  const market::Identity tenant = market::Identity::Generate();
  const Bytes expired = market::EncodeEnvelope(
      market::MakeSigned(tenant, testing::ServableOrder(), Now() - 120'000, 60'000, market::RandomNonce()).envelope);
  EXPECT_EQ(client_->Publish(expired).status().code(), Status::Code::kExpired);
  Bytes tampered = Signed(tenant, testing::ServableOrder());
  tampered.back() ^= 1;
  EXPECT_EQ(client_->Publish(tampered).status().code(), Status::Code::kBadSignature);
  // Still serving, the raw socket too.
  EXPECT_TRUE(client_->Call("ping", {}).ok());
  raw.Send(EncodeRequest({8, "ping", {}}));
  answer = raw.Receive(2s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code, Status::Code::kOk);
  EXPECT_GE(relay_->client_counters()->undecodable.load(), 1u);
  EXPECT_EQ(relay_->client_counters()->refused.load(), 4u);
}

TEST_F(ClientPortTest, ARequestFloodIsRateLimitedPerConnection) {
  gpumart::testing::TempDir dir("client-port-test");
  auto started = node::NodeContext::Start(testing::LoopbackConfig(dir.Sub("relay")));
  ASSERT_TRUE(started.ok());
  RawSocket raw((*started)->client_address());
  // Requests faster than the rate, in batches whose answers are read before the next (so no queue
  // overflows): once the burst (twice the rate) is spent, some are refused, each with an answer.
  // Batches, not one timed flood, so a slow build (sanitizers, a loaded machine) still outruns the
  // refill: it only has to answer pings faster than kRequestsPerSecond.
  constexpr size_t kBatch = 500;
  const size_t max_sent = 40 * limits::kRequestsPerSecond;
  size_t sent = 0, answered = 0, limited = 0;
  while (limited == 0 && sent < max_sent) {
    for (size_t i = 0; i < kBatch; ++i) raw.Send(EncodeRequest({++sent, "ping", {}}));
    while (answered < sent) {
      std::optional<Response> answer = raw.Receive(2s);
      ASSERT_TRUE(answer.has_value()) << "request " << answered + 1 << " of " << sent << " got no answer";
      ++answered;
      if (answer->code == Status::Code::kUnavailable) ++limited;
    }
  }
  EXPECT_GT(limited, 0u);
  EXPECT_EQ((*started)->client_counters()->rate_limited.load(), limited);
}

// A tenant on a relay: its order reaches the provider by gossip, the bid comes back to the relay
// and is pushed to the tenant; Accepts and Closes are checked against their owners.
TEST_F(ClientPortTest, ASubscriberGetsItsBidsLeaseAndCloseAndOwnershipIsChecked) {
  const bidding::Inventory inventory = testing::EightH100();
  auto provider_started = node::NodeContext::Start(testing::ProviderConfig(dir_.Sub("provider")), &inventory,
                                                   node::ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(provider_started.ok()) << provider_started.status().ToString();
  std::unique_ptr<node::NodeContext> provider = std::move(provider_started).value();
  node::NodeConfig relay_config = testing::LoopbackConfig(dir_.Sub("relay"));
  relay_config.bootstrap = {provider->peer_address()};
  auto relay = node::NodeContext::Start(relay_config);
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  relay_ = std::move(relay).value();
  auto connected = Client::Connect(relay_->client_address(), 5s);
  ASSERT_TRUE(connected.ok());
  client_ = std::move(connected).value();
  // The relay has the provider's offer: the dry run names it.
  const market::Order order = testing::ServableOrder();
  ASSERT_TRUE(Eventually([&] { return relay_->offer_counters()->held.load() == 1; }));
  const nlohmann::json match = JsonOf(client_->Call("match", {{"orders", std::vector<Bytes>{market::EncodeBody(order)}},
                                                               {"policy", std::string("cheapest")}}));
  ASSERT_EQ(match["groups"][0]["candidates"].size(), 1u) << match.dump();
  EXPECT_EQ(match["groups"][0]["candidates"][0]["provider"], market::ToHex(provider->identity().public_key()));

  const market::Identity tenant = market::Identity::Generate();
  const auto signed_order = market::MakeSigned(tenant, order, Now(), 60'000, market::RandomNonce());
  auto order_id = client_->Publish(market::EncodeEnvelope(signed_order.envelope));
  ASSERT_TRUE(order_id.ok()) << order_id.status().ToString();
  EXPECT_EQ(*order_id, signed_order.id);
  // Someone else publishing the same order bytes again (gossip shows them to all) is harmless
  // and takes nothing from the tenant's connection.
  auto other = Client::Connect(relay_->client_address(), 5s);
  ASSERT_TRUE(other.ok());
  auto again = (*other)->Call("publish", {{"envelope", market::EncodeEnvelope(signed_order.envelope)}});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(std::get<bool>(again->at("duplicate")));
  auto bid_event = client_->WaitEvent(5s);
  ASSERT_TRUE(bid_event.ok()) << bid_event.status().ToString();
  EXPECT_EQ(bid_event->type, "bid");
  EXPECT_EQ(bid_event->order_id, signed_order.id);
  auto bid = market::OpenSigned<market::Bid>(bid_event->envelope, Now());
  ASSERT_TRUE(bid.ok());
  EXPECT_EQ(bid->envelope.signer, provider->identity().public_key());

  // An Accept signed by someone else than the order's tenant is refused, and nothing is gossiped.
  const market::Accept accept{signed_order.id, bid->id, provider->identity().public_key()};
  const market::Identity stranger = market::Identity::Generate();
  auto stolen = client_->Publish(Signed(stranger, accept));
  EXPECT_EQ(stolen.status().code(), Status::Code::kPermissionDenied) << stolen.status().ToString();
  // An Accept of a bid this node never saw.
  market::Accept unknown = accept;
  unknown.bid_id[0] ^= 1;
  EXPECT_EQ(client_->Publish(Signed(tenant, unknown)).status().code(), Status::Code::kNotFound);

  ASSERT_TRUE(client_->Publish(Signed(tenant, accept)).ok());
  auto lease_event = client_->WaitEvent(5s);
  ASSERT_TRUE(lease_event.ok()) << lease_event.status().ToString();
  EXPECT_EQ(lease_event->type, "lease");
  auto lease = market::OpenLease(lease_event->envelope);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(Eventually([&] { return relay_->ledger().store().GetLease(lease->id).ok(); }));
  // Pushing the Lease observed the order's submit-to-lease time once, on the node it was
  // submitted to (the order's second publisher adds no observation).
  const metrics::HistogramSnapshot submit_to_lease = relay_->metrics()->submit_to_lease_seconds.Read();
  EXPECT_EQ(submit_to_lease.count, 1u);
  EXPECT_GT(submit_to_lease.sum, 0.0);
  EXPECT_EQ(provider->metrics()->submit_to_lease_seconds.Read().count, 0u);

  // The lease query carries the record and its order, for `gpumart lease manifest`.
  auto record = client_->Call("lease", {{"lease", Bytes(lease->id.begin(), lease->id.end())}});
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(JsonOf(record)["state"], "active");
  EXPECT_TRUE(record->contains("envelope"));

  // A Close of someone else's lease: refused with a clear error.
  const market::Close close{lease->id, market::CloseReason::kTenantClosed, Now(), "done"};
  auto foreign = client_->Publish(Signed(stranger, close));
  EXPECT_EQ(foreign.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(foreign.status().message().find("neither the tenant"), std::string::npos) << foreign.status().message();
  // The tenant's own Close: gossiped, recorded by both nodes, pushed back as an event.
  ASSERT_TRUE(client_->Publish(Signed(tenant, close)).ok());
  auto close_event = client_->WaitEvent(5s);
  ASSERT_TRUE(close_event.ok()) << close_event.status().ToString();
  EXPECT_EQ(close_event->type, "close");
  EXPECT_EQ(close_event->order_id, signed_order.id);
  ASSERT_TRUE(Eventually([&] {
    auto on_relay = relay_->ledger().store().GetLease(lease->id);
    auto on_provider = provider->ledger().store().GetLease(lease->id);
    return on_relay.ok() && on_relay->state == ledger::LeaseState::kClosed && on_provider.ok() &&
           on_provider->state == ledger::LeaseState::kClosed;
  }));
  EXPECT_EQ(client_->Publish(Signed(tenant, close)).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(relay_->metrics()->submit_to_lease_seconds.Read().count, 1u);
  // The port's counters are the node's gpumart_client_ metrics (docs/METRICS.md): the Order
  // (twice), the Accept and the Close published; two Accepts and two Closes refused.
  const std::string exposed = relay_->metrics()->registry.Expose();
  for (const char* line : {"gpumart_client_publishes_total{outcome=\"published\"} 4\n",
                           "gpumart_client_publishes_total{outcome=\"refused\"} 4\n",
                           "gpumart_client_connections 2\n", "gpumart_client_subscriptions 1\n",
                           "gpumart_client_frames_refused_total{reason=\"rate_limited\"} 0\n"}) {
    EXPECT_NE(exposed.find(line), std::string::npos) << line << " not in\n" << exposed;
  }
  client_.reset();
  relay_.reset();
}

// A tenant may use a provider's own node: the provider sees the order published there, its own
// bid and lease are pushed to the tenant, and its status shows the revenue.
TEST_F(ClientPortTest, ATenantOnTheProvidersOwnNode) {
  const bidding::Inventory inventory = testing::EightH100();
  auto started = node::NodeContext::Start(testing::ProviderConfig(dir_.Sub("provider")), &inventory,
                                          node::ProviderOptions{.offer_debounce_ms = 20});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<node::NodeContext> provider = std::move(started).value();
  auto connected = Client::Connect(provider->client_address(), 5s);
  ASSERT_TRUE(connected.ok());
  std::unique_ptr<Client> client = std::move(connected).value();
  // The provider's node lists its own offer.
  ASSERT_TRUE(Eventually([&] { return provider->offer_counters()->held.load() == 1; }));

  const market::Identity tenant = market::Identity::Generate();
  const auto signed_order = market::MakeSigned(tenant, testing::ServableOrder(), Now(), 60'000, market::RandomNonce());
  ASSERT_TRUE(client->Publish(market::EncodeEnvelope(signed_order.envelope)).ok());
  auto bid_event = client->WaitEvent(5s);
  ASSERT_TRUE(bid_event.ok()) << bid_event.status().ToString();
  ASSERT_EQ(bid_event->type, "bid");
  auto bid = market::OpenSigned<market::Bid>(bid_event->envelope, Now());
  ASSERT_TRUE(bid.ok());
  const market::Accept accept{signed_order.id, bid->id, provider->identity().public_key()};
  ASSERT_TRUE(client->Publish(Signed(tenant, accept)).ok());
  auto lease_event = client->WaitEvent(5s);
  ASSERT_TRUE(lease_event.ok()) << lease_event.status().ToString();
  EXPECT_EQ(lease_event->type, "lease");

  const nlohmann::json status = JsonOf(client->Call("status", {}));
  EXPECT_EQ(status["role"], "provider");
  EXPECT_EQ(status["leases_active"], 1);
  EXPECT_EQ(status["revenue_per_hour"][bid->body.denom], bid->body.price_per_hour) << status.dump();
}

}  // namespace
}  // namespace gpumart::client

namespace gpumart::client {
namespace {

TEST(ClientPortRulesTest, LoopbackEndpoints) {
  EXPECT_TRUE(IsLoopbackEndpoint("tcp://127.0.0.1:7701"));
  EXPECT_TRUE(IsLoopbackEndpoint("tcp://127.3.2.1:*"));
  EXPECT_TRUE(IsLoopbackEndpoint("tcp://localhost:7701"));
  EXPECT_TRUE(IsLoopbackEndpoint("tcp://[::1]:7701"));
  EXPECT_FALSE(IsLoopbackEndpoint("tcp://0.0.0.0:7701"));
  EXPECT_FALSE(IsLoopbackEndpoint("tcp://*:7701"));
  EXPECT_FALSE(IsLoopbackEndpoint("tcp://10.0.0.1:7701"));
  EXPECT_FALSE(IsLoopbackEndpoint("tcp://127.0.0.1.example.org:7701"));
}

// Off loopback the port speaks CURVE with the node's identity: a client that knows the identity
// connects; a plain client gets nothing (the handshake never completes), and a client naming
// another identity neither.
TEST(ClientPortCurveTest, OnlyClientsThatKnowTheNodesIdentityConnect) {
  actors::ActorSystem system;
  const market::Identity identity = market::Identity::Generate();
  ClientPortConfig config;
  config.listen = "tcp://127.0.0.1:*";
  config.curve = true;
  auto counters = std::make_shared<ClientPortCounters>();
  actors::ActorHandle port = system.Spawn({.name = "client-port"}, [&identity, config, counters] {
    return std::make_unique<ClientPort>(identity, config, counters);
  });
  ASSERT_TRUE(port.ok()) << port.error();
  std::string address;
  {
    actors::Outbox outbox(system);
    auto reply = outbox.Request<std::string>(port.address(), GetClientAddress{}, std::chrono::seconds(5));
    ASSERT_TRUE(reply.ok());
    address = reply.value();
  }
  ASSERT_NE(address.find("/" + market::ToHex(identity.public_key())), std::string::npos) << address;
  auto client = Client::Connect(address, 5s);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE((*client)->Call("ping", {}).ok());
  const std::string endpoint = address.substr(0, address.rfind('/'));
  EXPECT_EQ(Client::Connect(endpoint, 300ms).status().code(), Status::Code::kTimeout);
  const std::string impostor = endpoint + "/" + market::ToHex(market::Identity::Generate().public_key());
  EXPECT_EQ(Client::Connect(impostor, 300ms).status().code(), Status::Code::kTimeout);
  client->reset();
  port.Stop();
}

}  // namespace
}  // namespace gpumart::client
