// The gossip actor over real sockets: ZeroMQ CURVE on loopback, one ActorSystem (one ZeroMQ
// context, one ZAP handler) per node, all in this process. Every wait is bounded.
#include "node/gossip/gossip_node.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "node/gossip/curve_keys.h"
#include "node/gossip/zap_handler.h"
#include "tests/gossip/fake_network.h"

namespace gpumart::gossip {
namespace {

using market::Identity;
using std::chrono::milliseconds;

constexpr auto kWait = std::chrono::seconds(15);       // bound on every wait for the network
constexpr auto kQuiet = milliseconds(500);              // "nothing arrives" is checked this long
constexpr int64_t kTtlMs = 600'000;

Identity MakeIdentity(uint8_t tag) {
  market::Seed seed{};
  seed[0] = tag;
  seed[1] = 0x51;
  return Identity::FromSeed(seed);
}

int64_t WallNowMs() { return SystemClock::Instance().NowMs(); }

template <typename Predicate>
bool WaitUntil(Predicate predicate, std::chrono::steady_clock::duration limit = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return predicate();
}

// One node: its own ActorSystem (ZeroMQ context, hence its own ZAP endpoint) and a GossipNode.
class TestNode {
 public:
  TestNode(uint8_t tag, std::vector<std::string> bootstrap, std::function<void(GossipNodeConfig&)> tweak = {})
      : identity_(MakeIdentity(tag)) {
    GossipNodeConfig config;
    config.listen_endpoint = "tcp://127.0.0.1:*";
    config.bootstrap = std::move(bootstrap);
    config.core.reconnect_min_ms = 100;
    config.ban_addresses = false;  // every peer here is 127.0.0.1
    config.on_deliver = [this](const Deliver& deliver) {
      std::lock_guard lock(mutex_);
      delivered_.insert(deliver.id);
    };
    if (tweak) tweak(config);
    handle_ = system_.Spawn({.name = "gossip"}, [this, config] {
      return std::make_unique<GossipNode>(identity_, config);
    });
    outbox_ = std::make_unique<actors::Outbox>(system_);
  }
  ~TestNode() {
    handle_.Stop();
    outbox_.reset();
  }

  bool ok() const { return handle_.ok(); }
  const Identity& identity() const { return identity_; }
  GossipNodeStatus Status() {
    auto reply = outbox_->Request<GossipNodeStatus>(handle_.address(), GetGossipStatus{}, std::chrono::seconds(5));
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? reply.value() : GossipNodeStatus{};
  }
  gpumart::Status Publish(Bytes envelope) {
    auto reply = outbox_->Request<gpumart::Status>(handle_.address(), PublishMessage{std::move(envelope)},
                                                   std::chrono::seconds(5));
    return reply.ok() ? reply.value() : gpumart::Status::InvalidArgument("no reply");
  }
  gpumart::Status Deny(std::vector<PublicKey> identities) {
    auto reply = outbox_->Request<gpumart::Status>(handle_.address(), SetDenyList{std::move(identities)},
                                                   std::chrono::seconds(5));
    return reply.ok() ? reply.value() : gpumart::Status::InvalidArgument("no reply");
  }
  bool HasDelivered(const MessageId& id) {
    std::lock_guard lock(mutex_);
    return delivered_.contains(id);
  }

 private:
  const Identity identity_;
  std::mutex mutex_;
  std::set<MessageId> delivered_;
  actors::ActorSystem system_;
  actors::ActorHandle handle_;
  std::unique_ptr<actors::Outbox> outbox_;
};

// A hand-made peer: a DEALER in its own context, CURVE with `keys` unless null, speaking raw
// frames to a node. What a hostile or foreign implementation would do.
class RawPeer {
 public:
  RawPeer(const std::string& node_address, const CurveKeys* keys) : socket_(context_, zmq::socket_type::dealer) {
    auto parsed = ParsePeerAddress(node_address);
    EXPECT_TRUE(parsed.ok());
    socket_.set(zmq::sockopt::linger, 0);
    if (keys) {
      socket_.set(zmq::sockopt::curve_serverkey, Z85(*CurveKeyOf(parsed->identity)));
      socket_.set(zmq::sockopt::curve_publickey, keys->public_z85());
      socket_.set(zmq::sockopt::curve_secretkey, keys->secret_z85());
    }
    socket_.connect(parsed->endpoint);
  }
  void Send(const Bytes& frame) { socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait); }
  // The next frame the node sends within `limit`, if any.
  std::optional<Bytes> Receive(milliseconds limit) {
    zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, limit) <= 0) return std::nullopt;
    zmq::message_t message;
    if (!socket_.recv(message, zmq::recv_flags::dontwait)) return std::nullopt;
    const auto* data = static_cast<const uint8_t*>(message.data());
    return Bytes(data, data + message.size());
  }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
};

Bytes HelloFrame(const Identity& identity) {
  return EncodeFrame(SignHello(identity, "", Role::kTenant, WallNowMs()));
}

TEST(CurveKeysTest, DerivedFromTheIdentityAndMatchTheConversionOfItsPublicKey) {
  const Identity identity = MakeIdentity(1);
  const CurveKeys keys = CurveKeys::Derive(identity);
  EXPECT_EQ(keys.public_key(), *CurveKeyOf(identity.public_key()));
  EXPECT_EQ(keys.public_z85().size(), 40u);
  EXPECT_NE(keys.public_z85(), keys.secret_z85());
  // libzmq agrees that the secret key belongs to the public key.
  char derived_public[41] = {};
  ASSERT_EQ(zmq_curve_public(derived_public, keys.secret_z85().c_str()), 0);
  EXPECT_EQ(std::string(derived_public), keys.public_z85());
  EXPECT_NE(CurveKeys::Derive(MakeIdentity(2)).public_key(), keys.public_key());
}

TEST(CurveKeysTest, PeerAddressesRoundTripAndRejectWhatIsNotOne) {
  const Identity identity = MakeIdentity(1);
  const std::string address = FormatPeerAddress("tcp://127.0.0.1:7700", identity.public_key());
  auto parsed = ParsePeerAddress(address);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->endpoint, "tcp://127.0.0.1:7700");
  EXPECT_EQ(parsed->identity, identity.public_key());
  EXPECT_FALSE(ParsePeerAddress("tcp://127.0.0.1:7700").ok());
  EXPECT_FALSE(ParsePeerAddress("ipc://x/" + market::ToHex(identity.public_key())).ok());
  EXPECT_FALSE(ParsePeerAddress("tcp://127.0.0.1:7700/" + std::string(64, 'g')).ok());
  EXPECT_FALSE(ParsePeerAddress(std::string(300, 'a') + "/" + market::ToHex(identity.public_key())).ok());
}

TEST(ZapHandlerTest, SecondHandlerInOneContextFailsToStart) {
  zmq::context_t context;
  ZapHandler first(context, [](const CurveKey&, const std::string&) { return true; });
  EXPECT_THROW(ZapHandler(context, [](const CurveKey&, const std::string&) { return true; }), zmq::error_t);
}

TEST(GossipNodeTest, TwoNodesFindEachOtherFromABootstrapAddressAndDeliver) {
  TestNode a(1, {});
  ASSERT_TRUE(a.ok());
  const std::string a_address = a.Status().address;
  EXPECT_EQ(ParsePeerAddress(a_address)->identity, a.identity().public_key());
  TestNode b(2, {a_address});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 1 && b.Status().ready_peers == 1; }));
  EXPECT_EQ(a.Status().peers, std::vector<PublicKey>{b.identity().public_key()});
  EXPECT_EQ(b.Status().peers, std::vector<PublicKey>{a.identity().public_key()});

  const Identity author = MakeIdentity(100);
  const Bytes from_a = testing::MakeClose(author, WallNowMs(), kTtlMs, 1);
  const Bytes from_b = testing::MakeClose(author, WallNowMs(), kTtlMs, 2);
  ASSERT_TRUE(a.Publish(from_a).ok());
  ASSERT_TRUE(b.Publish(from_b).ok());
  EXPECT_TRUE(WaitUntil([&] { return b.HasDelivered(testing::IdOf(from_a)) && a.HasDelivered(testing::IdOf(from_b)); }));
  EXPECT_FALSE(a.HasDelivered(testing::IdOf(from_a)));  // a node's own message is not delivered back
  EXPECT_EQ(a.Status().zap_admitted, 1u);
}

// What a restarted node read back from its ledger (GossipNodeConfig::retain) it serves to a
// peer that reconciles with it, without sending or delivering it itself; what the core will not
// keep (here an expired message) is counted, not seeded.
TEST(GossipNodeTest, SeededMessagesAreServedByReconciliation) {
  const Identity author = MakeIdentity(101);
  const Bytes kept = testing::MakeClose(author, WallNowMs(), kTtlMs, 1);
  const Bytes expired = testing::MakeClose(author, WallNowMs() - 2 * kTtlMs, kTtlMs, 2);
  TestNode a(1, {}, [&](GossipNodeConfig& config) { config.retain = {kept, expired}; });
  ASSERT_TRUE(a.ok());
  const GossipNodeStatus seeded = a.Status();
  EXPECT_EQ(seeded.retained_seeded, 1u);
  EXPECT_EQ(seeded.retain_refused, 1u);
  EXPECT_FALSE(a.HasDelivered(testing::IdOf(kept)));
  TestNode b(2, {seeded.address});
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(WaitUntil([&] { return b.HasDelivered(testing::IdOf(kept)); }));
  EXPECT_FALSE(b.HasDelivered(testing::IdOf(expired)));
}

// The actor ticks its core at the core's next deadline, not on a fixed period: two linked, idle
// nodes wake a few times a second at most (a 10 ms period was 100 wake-ups a second each), and a
// message still crosses at once.
TEST(GossipNodeTest, AnIdleNodeWakesRarely) {
  TestNode a(3, {});
  ASSERT_TRUE(a.ok());
  TestNode b(4, {a.Status().address});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 1 && b.Status().ready_peers == 1; }));
  std::this_thread::sleep_for(milliseconds(100));  // the handshake's and reconciliation's frames settle
  const uint64_t a_before = a.Status().ticks, b_before = b.Status().ticks;
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(kQuiet);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t a_ticks = a.Status().ticks - a_before, b_ticks = b.Status().ticks - b_before;
  // Bound: one tick per kMaxTickDelayMs, plus slack for a ping falling in the window.
  const double bound = seconds * 1'000.0 / kMaxTickDelayMs + 3;
  EXPECT_LE(static_cast<double>(a_ticks), bound) << a_ticks << " ticks in " << seconds << " s";
  EXPECT_LE(static_cast<double>(b_ticks), bound) << b_ticks << " ticks in " << seconds << " s";

  const Bytes envelope = testing::MakeClose(MakeIdentity(102), WallNowMs(), kTtlMs, 1);
  const auto published = std::chrono::steady_clock::now();
  ASSERT_TRUE(a.Publish(envelope).ok());
  ASSERT_TRUE(WaitUntil([&] { return b.HasDelivered(testing::IdOf(envelope)); }));
  EXPECT_LT(std::chrono::steady_clock::now() - published, milliseconds(500));
}

TEST(GossipNodeTest, EightNodesInALineAllReceiveEveryMessage) {
  constexpr int kNodes = 8;
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (int i = 0; i < kNodes; ++i) {
    std::vector<std::string> bootstrap;
    if (i > 0) bootstrap.push_back(nodes.back()->Status().address);
    nodes.push_back(std::make_unique<TestNode>(static_cast<uint8_t>(10 + i), bootstrap));
    ASSERT_TRUE(nodes.back()->ok());
  }
  ASSERT_TRUE(WaitUntil([&] {
    for (auto& node : nodes) {
      if (node->Status().ready_peers == 0) return false;
    }
    return true;
  }));
  const Identity author = MakeIdentity(101);
  std::vector<MessageId> ids;
  for (int i = 0; i < kNodes; ++i) {
    const Bytes envelope = testing::MakeClose(author, WallNowMs(), kTtlMs, 100 + i);
    ids.push_back(testing::IdOf(envelope));
    ASSERT_TRUE(nodes[i]->Publish(envelope).ok());
  }
  EXPECT_TRUE(WaitUntil([&] {
    for (int n = 0; n < kNodes; ++n) {
      for (int m = 0; m < kNodes; ++m) {
        if (n != m && !nodes[n]->HasDelivered(ids[m])) return false;
      }
    }
    return true;
  })) << "not every message reached every node";
  // Peer exchange found more than the line's links.
  size_t links = 0;
  for (auto& node : nodes) links += node->Status().ready_peers;
  EXPECT_GT(links, 2u * (kNodes - 1));
}

TEST(GossipNodeTest, ClientKeyRefusedByZapCannotConnect) {
  const Identity refused = MakeIdentity(40);
  const CurveKey refused_key = CurveKeys::Derive(refused).public_key();
  TestNode node(3, {}, [&](GossipNodeConfig& config) {
    config.admit = [refused_key](const CurveKey& key) { return key != refused_key; };
  });
  ASSERT_TRUE(node.ok());
  const std::string address = node.Status().address;

  const CurveKeys refused_keys = CurveKeys::Derive(refused);
  RawPeer peer(address, &refused_keys);
  peer.Send(HelloFrame(refused));
  EXPECT_FALSE(peer.Receive(kQuiet).has_value());
  ASSERT_TRUE(WaitUntil([&] { return node.Status().zap_refused >= 1; }));
  EXPECT_EQ(node.Status().frames_in, 0u);

  // The same exchange with an admitted key works, so the refusal above was the policy's.
  const Identity admitted = MakeIdentity(41);
  const CurveKeys admitted_keys = CurveKeys::Derive(admitted);
  RawPeer good(address, &admitted_keys);
  good.Send(HelloFrame(admitted));
  auto hello = good.Receive(kWait / 3);
  ASSERT_TRUE(hello.has_value());
  auto frame = DecodeFrame(*hello);
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(std::holds_alternative<Hello>(*frame));
  EXPECT_EQ(std::get<Hello>(*frame).identity, node.identity().public_key());
  EXPECT_TRUE(WaitUntil([&] { return node.Status().ready_peers == 1; }));
}

TEST(GossipNodeTest, SocketWithoutCurveCannotTalkToTheNode) {
  TestNode node(4, {});
  ASSERT_TRUE(node.ok());
  RawPeer plain(node.Status().address, nullptr);
  plain.Send(HelloFrame(MakeIdentity(42)));
  EXPECT_FALSE(plain.Receive(kQuiet).has_value());
  const GossipNodeStatus status = node.Status();
  EXPECT_EQ(status.frames_in, 0u);
  EXPECT_EQ(status.links, 0u);
  EXPECT_EQ(status.zap_admitted, 0u);
}

TEST(GossipNodeTest, HelloClaimingAnotherIdentityThanTheLinkKeyIsRefused) {
  TestNode node(5, {});
  ASSERT_TRUE(node.ok());
  const std::string address = node.Status().address;
  const Identity link_identity = MakeIdentity(43);
  const Identity claimed = MakeIdentity(44);  // e.g. a well-known node's identity
  const CurveKeys keys = CurveKeys::Derive(link_identity);
  RawPeer liar(address, &keys);
  liar.Send(HelloFrame(claimed));  // validly signed, but by an identity the link is not
  ASSERT_TRUE(WaitUntil([&] { return node.Status()[TransportDrop::kIdentityMismatch] == 1; }));
  GossipNodeStatus status = node.Status();
  EXPECT_EQ(status.ready_peers, 0u);
  EXPECT_EQ(status.links, 0u);
  // Its further frames reach nobody.
  liar.Send(EncodeFrame(PingFrame{7}));
  ASSERT_TRUE(WaitUntil([&] { return node.Status()[TransportDrop::kClosedLink] >= 1; }));
  EXPECT_EQ(node.Status().ready_peers, 0u);
}

TEST(GossipNodeTest, HostilePeerSendingGarbageIsBannedAndTheNodeKeepsServing) {
  TestNode a(6, {});
  ASSERT_TRUE(a.ok());
  const std::string a_address = a.Status().address;
  TestNode b(7, {a_address});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 1 && b.Status().ready_peers == 1; }));

  const Identity hostile = MakeIdentity(45);
  const CurveKeys hostile_keys = CurveKeys::Derive(hostile);
  {
    RawPeer peer(a_address, &hostile_keys);
    peer.Send(HelloFrame(hostile));
    ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 2; }));
    const Bytes garbage{0xc1, 0xc1, 0xc1};  // 0xc1 is never valid msgpack
    const Bytes huge_header{0xdd, 0xff, 0xff, 0xff, 0xff};  // an array32 of 4 billion elements
    for (int i = 0; i < 20; ++i) peer.Send(i % 2 ? garbage : huge_header);
    ASSERT_TRUE(WaitUntil([&] { return a.Status().bans >= 1; }));
  }
  GossipNodeStatus status = a.Status();
  EXPECT_GE(status.core_drops[Drop::kMalformedFrame], 5u);
  EXPECT_EQ(status.ready_peers, 1u);

  // A banned key is refused at the CURVE handshake from then on.
  RawPeer again(a_address, &hostile_keys);
  again.Send(HelloFrame(hostile));
  EXPECT_FALSE(again.Receive(kQuiet).has_value());
  EXPECT_TRUE(WaitUntil([&] { return a.Status().zap_refused >= 1; }));

  // And the honest link still carries messages both ways.
  const Identity author = MakeIdentity(102);
  const Bytes from_a = testing::MakeClose(author, WallNowMs(), kTtlMs, 200);
  const Bytes from_b = testing::MakeClose(author, WallNowMs(), kTtlMs, 201);
  ASSERT_TRUE(a.Publish(from_a).ok());
  ASSERT_TRUE(b.Publish(from_b).ok());
  EXPECT_TRUE(WaitUntil([&] { return b.HasDelivered(testing::IdOf(from_a)) && a.HasDelivered(testing::IdOf(from_b)); }));
}

TEST(GossipNodeTest, ForgedMessagesAndFloodsOverRealLinksAreCountedAndBanned) {
  TestNode node(13, {});
  ASSERT_TRUE(node.ok());
  const std::string address = node.Status().address;
  const Identity forger = MakeIdentity(48);
  const CurveKeys forger_keys = CurveKeys::Derive(forger);
  RawPeer forging(address, &forger_keys);
  forging.Send(HelloFrame(forger));
  ASSERT_TRUE(WaitUntil([&] { return node.Status().ready_peers == 1; }));
  for (uint64_t nonce = 1; nonce <= 2; ++nonce) {
    auto forged = *market::DecodeEnvelope(testing::MakeClose(forger, WallNowMs(), kTtlMs, nonce));
    forged.signature[0] ^= 1;
    forging.Send(EncodeMessageFrame(1, market::EncodeEnvelope(forged)));
  }
  ASSERT_TRUE(WaitUntil([&] { return node.Status().bans == 1; }));
  EXPECT_EQ(node.Status().core_drops[Drop::kBadSignature], 2u);

  const Identity flooder = MakeIdentity(49);
  const CurveKeys flooder_keys = CurveKeys::Derive(flooder);
  RawPeer flooding(address, &flooder_keys);
  flooding.Send(HelloFrame(flooder));
  ASSERT_TRUE(WaitUntil([&] { return node.Status().ready_peers == 1; }));
  // More PINGs than two seconds' worth of the frame rate: the bucket runs dry, each frame over it
  // is a flood verdict (10 points), and ten of them ban.
  const Bytes ping = EncodeFrame(PingFrame{3});
  EXPECT_TRUE(WaitUntil([&] {
    for (int i = 0; i < 1000; ++i) flooding.Send(ping);
    return node.Status().bans == 2;
  }));
  const GossipNodeStatus status = node.Status();
  EXPECT_GE(status.core_drops[Drop::kRateLimited], 10u);
  EXPECT_EQ(status.ready_peers, 0u);
}

TEST(GossipNodeTest, MessageOverTheFrameLimitNeverReachesTheCore) {
  TestNode node(14, {});
  ASSERT_TRUE(node.ok());
  const Identity sender = MakeIdentity(50);
  const CurveKeys keys = CurveKeys::Derive(sender);
  RawPeer peer(node.Status().address, &keys);
  peer.Send(HelloFrame(sender));
  ASSERT_TRUE(WaitUntil([&] { return node.Status().ready_peers == 1; }));
  peer.Send(Bytes(limits::kMaxFrameBytes + 1, 0x90));  // ZMQ_MAXMSGSIZE: libzmq drops the connection
  EXPECT_FALSE(WaitUntil([&] { return node.Status().frames_in > 1; }, kQuiet));
  EXPECT_EQ(node.Status().core_drops[Drop::kOversizedFrame], 0u);
}

TEST(GossipNodeTest, BanByAddressRefusesOtherKeysFromThatAddress) {
  TestNode node(12, {}, [](GossipNodeConfig& config) { config.ban_addresses = true; });
  ASSERT_TRUE(node.ok());
  const std::string address = node.Status().address;
  const Identity hostile = MakeIdentity(46);
  const CurveKeys hostile_keys = CurveKeys::Derive(hostile);
  {
    RawPeer peer(address, &hostile_keys);
    peer.Send(EncodeFrame(PingFrame{1}));  // anything but HELLO first: 50 points to key and address
    ASSERT_TRUE(WaitUntil([&] { return node.Status().verdicts == 1; }));
  }
  {
    RawPeer peer(address, &hostile_keys);
    peer.Send(EncodeFrame(PingFrame{2}));
    ASSERT_TRUE(WaitUntil([&] { return node.Status().bans == 2; }));  // the key and the address
  }
  const Identity other = MakeIdentity(47);
  const CurveKeys other_keys = CurveKeys::Derive(other);
  RawPeer newcomer(address, &other_keys);
  newcomer.Send(HelloFrame(other));
  EXPECT_FALSE(newcomer.Receive(kQuiet).has_value());
  EXPECT_TRUE(WaitUntil([&] { return node.Status().zap_refused >= 1; }));
  EXPECT_EQ(node.Status().ready_peers, 0u);
}

TEST(GossipNodeTest, LostAndFailedOutboundLinksAreNoticedAtOnce) {
  auto a = std::make_unique<TestNode>(20, std::vector<std::string>{});
  const std::string a_address = a->Status().address;
  // A dead address first: nothing listens on its port, so its dial fails.
  const std::string dead = FormatPeerAddress("tcp://127.0.0.1:1", MakeIdentity(21).public_key());
  // peer_timeout and hello_timeout are far beyond the wait: only the socket events can be fast.
  TestNode b(22, {dead, a_address}, [](GossipNodeConfig& config) {
    config.core.peer_timeout_ms = 60'000;
    config.core.hello_timeout_ms = 60'000;
  });
  ASSERT_TRUE(WaitUntil([&] { return b.Status().ready_peers == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return b.Status().links_lost >= 1; }, std::chrono::seconds(3)));
  a.reset();
  EXPECT_TRUE(WaitUntil([&] { return b.Status().ready_peers == 0; }, std::chrono::seconds(3)));
}

TEST(GossipNodeTest, RestartedPeerRelinksAndReceives) {
  // Timeouts far beyond the wait: the old links must end by socket events and send errors.
  const auto slow_timeouts = [](GossipNodeConfig& config) {
    config.core.peer_timeout_ms = 60'000;
    config.core.hello_timeout_ms = 60'000;
  };
  TestNode a(23, {}, slow_timeouts);
  const std::string a_address = a.Status().address;
  auto b = std::make_unique<TestNode>(24, std::vector<std::string>{a_address}, slow_timeouts);
  ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 1 && b->Status().ready_peers == 1; }));
  b.reset();
  const auto start = std::chrono::steady_clock::now();
  b = std::make_unique<TestNode>(24, std::vector<std::string>{a_address}, slow_timeouts);  // same identity, new port
  const Identity author = MakeIdentity(103);
  uint64_t nonce = 300;
  // Publish until one gets through: a message sent before the new link is ready is not resent.
  EXPECT_TRUE(WaitUntil([&] {
    const Bytes envelope = testing::MakeClose(author, WallNowMs(), kTtlMs, nonce++);
    EXPECT_TRUE(a.Publish(envelope).ok());
    return WaitUntil([&] { return b->HasDelivered(testing::IdOf(envelope)); }, milliseconds(200));
  }, std::chrono::seconds(5)));
  std::printf("relinked and delivering after %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count()));
}

// Fast liveness, so the denied side's view of a link the other side closed ends within a second.
void FastLiveness(GossipNodeConfig& config) {
  config.core.ping_interval_ms = 200;
  config.core.peer_timeout_ms = 1'000;
}

TEST(GossipNodeTest, DenyListClosesLinksRefusesBothWaysAndLiftingItRelinks) {
  TestNode a(25, {}, FastLiveness);
  const std::string a_address = a.Status().address;
  TestNode b(26, {a_address}, FastLiveness);
  ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 1 && b.Status().ready_peers == 1; }));

  ASSERT_TRUE(a.Deny({b.identity().public_key()}).ok());
  GossipNodeStatus status = a.Status();  // the request is answered after the links closed
  EXPECT_EQ(status.denied, 1u);
  EXPECT_EQ(status.links, 0u);
  EXPECT_EQ(status.ready_peers, 0u);
  // a redials b's address (known from its HELLO) and refuses its own dial; b, once its side of
  // the link timed out, redials a and is refused by ZAP.
  EXPECT_TRUE(WaitUntil([&] {
    status = a.Status();
    return status[TransportDrop::kDeniedPeer] >= 1 && status.zap_refused >= 1;
  }));
  EXPECT_EQ(a.Status().ready_peers, 0u);
  const Identity author = MakeIdentity(104);
  const Bytes from_a = testing::MakeClose(author, WallNowMs(), kTtlMs, 400);
  const Bytes from_b = testing::MakeClose(author, WallNowMs(), kTtlMs, 401);
  ASSERT_TRUE(a.Publish(from_a).ok());
  ASSERT_TRUE(b.Publish(from_b).ok());
  EXPECT_FALSE(WaitUntil([&] { return b.HasDelivered(testing::IdOf(from_a)) || a.HasDelivered(testing::IdOf(from_b)); },
                         kQuiet));

  // Lifting the denial: the links come back through the normal redialling, and carry messages.
  ASSERT_TRUE(a.Deny({}).ok());
  EXPECT_EQ(a.Status().denied, 0u);
  ASSERT_TRUE(WaitUntil([&] { return a.Status().ready_peers == 1 && b.Status().ready_peers == 1; }));
  const Bytes after_a = testing::MakeClose(author, WallNowMs(), kTtlMs, 402);
  const Bytes after_b = testing::MakeClose(author, WallNowMs(), kTtlMs, 403);
  ASSERT_TRUE(a.Publish(after_a).ok());
  ASSERT_TRUE(b.Publish(after_b).ok());
  EXPECT_TRUE(WaitUntil([&] { return b.HasDelivered(testing::IdOf(after_a)) && a.HasDelivered(testing::IdOf(after_b)); }));
}

TEST(GossipNodeTest, DenyListFromConfigAndInvalidListsAreRefusedWhole) {
  const Identity denied = MakeIdentity(27);
  TestNode a(28, {}, [&](GossipNodeConfig& config) { config.deny = {denied.public_key()}; });
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.Status().denied, 1u);
  TestNode b(27, {a.Status().address});
  EXPECT_TRUE(WaitUntil([&] { return a.Status().zap_refused >= 1; }));
  EXPECT_EQ(a.Status().ready_peers, 0u);
  EXPECT_EQ(b.Status().ready_peers, 0u);

  const PublicKey not_a_point{};  // all zeros: a point of small order, which has no CURVE key
  ASSERT_FALSE(CurveKeyOf(not_a_point).has_value());
  EXPECT_EQ(a.Deny({MakeIdentity(29).public_key(), not_a_point}).code(), gpumart::Status::Code::kInvalidArgument);
  EXPECT_EQ(a.Deny(std::vector<PublicKey>(kMaxDeniedIdentities + 1, denied.public_key())).code(),
            gpumart::Status::Code::kLimitExceeded);
  EXPECT_EQ(a.Status().denied, 1u);  // unchanged: still denied
  EXPECT_EQ(a.Status().ready_peers, 0u);

  TestNode bad(30, {}, [&](GossipNodeConfig& config) { config.deny = {not_a_point}; });
  EXPECT_FALSE(bad.ok());
}

TEST(GossipNodeTest, StopsCleanlyWithLinksOpen) {
  auto a = std::make_unique<TestNode>(8, std::vector<std::string>{});
  const std::string a_address = a->Status().address;
  auto b = std::make_unique<TestNode>(9, std::vector<std::string>{a_address});
  ASSERT_TRUE(WaitUntil([&] { return b->Status().ready_peers == 1; }));
  const auto start = std::chrono::steady_clock::now();
  a.reset();  // stops the actor, closes its sockets and its context with a link open
  b.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace gpumart::gossip
