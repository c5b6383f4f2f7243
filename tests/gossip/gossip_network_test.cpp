// 32 gossip nodes over real sockets in one process: ZeroMQ CURVE on loopback, each node with its
// own ActorSystem (one ZeroMQ context, hence its own ZAP handler). The topology comes from the
// bootstrap lists alone: node i dials node i-1 and up to two random earlier nodes (a line plus
// random links), and peer exchange adds the rest. Randomized by a printed seed
// (GPUMART_TEST_SEED replays one); every wait is bounded.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "node/gossip/gossip_node.h"
#include "tests/ledger/test_leases.h"
#include "tests/market/test_messages.h"
#include "tests/test_seed.h"

namespace gpumart::gossip {
namespace {

using market::Identity;
using market::MessageType;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kNodes = 32;
constexpr size_t kRandomBootstrapLinks = 2;       // per node, besides the line's
constexpr auto kWait = std::chrono::seconds(15);  // bound on every wait for the network
constexpr auto kQuiet = milliseconds(300);        // time for a late duplicate delivery to show
constexpr int64_t kTtlMs = 600'000;
constexpr MessageType kFloodedTypes[] = {MessageType::kOrder, MessageType::kOffer, MessageType::kLease,
                                         MessageType::kClose};

Identity NodeIdentity(size_t index) {
  market::Seed seed{};
  seed[0] = static_cast<uint8_t>(index + 1);
  seed[1] = 0x32;
  return Identity::FromSeed(seed);
}

Identity OfferSigner(uint64_t n) {
  market::Seed seed{};
  std::memcpy(seed.data(), &n, sizeof n);
  seed[sizeof n] = 0x0f;
  return Identity::FromSeed(seed);
}

int64_t WallNowMs() { return SystemClock::Instance().NowMs(); }

long long MsSince(Clock::time_point start) {
  return static_cast<long long>(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
}

template <typename Predicate>
bool WaitUntil(Predicate predicate, Clock::duration limit = kWait) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return predicate();
}

// One node: its own ActorSystem and a GossipNode; counts every delivery by message id.
class NetNode {
 public:
  NetNode(size_t index, std::vector<std::string> bootstrap) : identity_(NodeIdentity(index)) {
    GossipNodeConfig config;
    config.listen_endpoint = "tcp://127.0.0.1:*";
    config.bootstrap = std::move(bootstrap);
    config.core.reconnect_min_ms = 100;
    // A link to a stopped node is found on the next send; pings make that within half a second.
    config.core.ping_interval_ms = 500;
    config.ban_addresses = false;  // every peer here is 127.0.0.1
    config.on_deliver = [this](const Deliver& deliver) {
      std::lock_guard lock(mutex_);
      Delivery& delivery = delivered_[deliver.id];
      ++delivery.count;
      delivery.type = deliver.type;
    };
    handle_ = system_.Spawn({.name = "gossip"}, [this, config] { return std::make_unique<GossipNode>(identity_, config); });
    outbox_ = std::make_unique<actors::Outbox>(system_);
  }
  ~NetNode() {
    handle_.Stop();
    outbox_.reset();
  }
  void RequestStop() { handle_.RequestStop(); }

  bool ok() const { return handle_.ok(); }
  const PublicKey& identity() const { return identity_.public_key(); }
  GossipNodeStatus Status() {
    auto reply = outbox_->Request<GossipNodeStatus>(handle_.address(), GetGossipStatus{}, std::chrono::seconds(5));
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? reply.value() : GossipNodeStatus{};
  }
  gpumart::Status Publish(Bytes envelope) {
    auto reply = outbox_->Request<gpumart::Status>(handle_.address(), PublishMessage{std::move(envelope)},
                                                   std::chrono::seconds(5));
    return reply.ok() ? reply.value() : gpumart::Status::Timeout("no reply");
  }
  gpumart::Status Deny(std::vector<PublicKey> identities) {
    auto reply = outbox_->Request<gpumart::Status>(handle_.address(), SetDenyList{std::move(identities)},
                                                   std::chrono::seconds(5));
    return reply.ok() ? reply.value() : gpumart::Status::Timeout("no reply");
  }
  // How often the message was delivered here, and as what type.
  std::pair<int, MessageType> Delivered(const MessageId& id) {
    std::lock_guard lock(mutex_);
    auto it = delivered_.find(id);
    return it == delivered_.end() ? std::pair(0, MessageType::kOrder) : std::pair(it->second.count, it->second.type);
  }

 private:
  struct Delivery {
    int count = 0;
    MessageType type = MessageType::kOrder;
  };
  const Identity identity_;
  std::mutex mutex_;
  std::map<MessageId, Delivery> delivered_;
  actors::ActorSystem system_;
  actors::ActorHandle handle_;
  std::unique_ptr<actors::Outbox> outbox_;
};

struct Published {
  MessageId id{};
  MessageType type = MessageType::kOrder;
  size_t author = 0;  // the node it was published at (which does not deliver it to itself)
};

// Signed messages of each flooded type, from one tenant and one provider.
class MessageMaker {
 public:
  Bytes Make(MessageType type) {
    const int64_t now = WallNowMs();
    switch (type) {
      case MessageType::kOrder:
        return market::EncodeEnvelope(parties_.Order(now, kTtlMs).envelope);
      case MessageType::kOffer:
        // Each by a provider of its own: a provider's newer Offer replaces its older ones, which
        // are then neither kept nor reconciled (docs/GOSSIP.md), and every message here must arrive.
        return market::EncodeEnvelope(
            market::MakeSigned(OfferSigner(++offers_), market::testing::SampleOffer(), now, kTtlMs, 1).envelope);
      case MessageType::kLease:
        return market::EncodeEnvelope(parties_.Lease(parties_.Bid(parties_.Order(now).id, now, kTtlMs), now).envelope);
      case MessageType::kClose: {
        MessageId lease_id{};
        lease_id[0] = static_cast<uint8_t>(++closes_);
        return market::EncodeEnvelope(
            parties_.Close(lease_id, parties_.tenant(), market::CloseReason::kTenantClosed, now).envelope);
      }
      default:
        ADD_FAILURE() << "not a flooded type";
        return {};
    }
  }

 private:
  ledger::testing::Parties parties_;
  uint64_t offers_ = 0;
  uint64_t closes_ = 0;
};

class Network {
 public:
  explicit Network(uint32_t seed) : random_(seed) {}
  ~Network() {
    for (auto& node : nodes_) {
      if (node) node->RequestStop();  // stop all in parallel, then join each
    }
  }

  // Adds a node that bootstraps to the previous node and up to kRandomBootstrapLinks random
  // earlier ones (only to live nodes), or, with `only_to`, to that one node alone.
  size_t Add(std::optional<size_t> only_to = std::nullopt) {
    const size_t index = nodes_.size();
    std::set<size_t> targets;
    if (only_to) {
      targets.insert(*only_to);
    } else if (index > 0) {
      targets.insert(index - 1);
      for (size_t k = 0; k < kRandomBootstrapLinks; ++k) targets.insert(random_() % index);
    }
    std::vector<std::string> bootstrap;
    for (size_t target : targets) {
      if (!nodes_[target]) continue;
      bootstrap.push_back(nodes_[target]->Status().address);
      bootstrap_edges_.emplace_back(index, target);
    }
    nodes_.push_back(std::make_unique<NetNode>(index, bootstrap));
    EXPECT_TRUE(nodes_.back()->ok());
    return index;
  }
  void Start(size_t count) {
    for (size_t i = 0; i < count; ++i) Add();
  }

  NetNode& node(size_t index) { return *nodes_[index]; }
  std::vector<size_t> Live() const {
    std::vector<size_t> live;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]) live.push_back(i);
    }
    return live;
  }
  std::mt19937& random() { return random_; }

  void Stop(const std::vector<size_t>& victims) {
    for (size_t victim : victims) nodes_[victim]->RequestStop();
    for (size_t victim : victims) nodes_[victim].reset();
  }

  // True when the bootstrap links among `members` alone connect them (what the network is known
  // to have without peer exchange).
  bool BootstrapConnected(const std::vector<size_t>& members) const {
    std::map<size_t, std::set<size_t>> edges;
    for (const auto& [a, b] : bootstrap_edges_) {
      edges[a].insert(b);
      edges[b].insert(a);
    }
    return Spans(members, edges);
  }

  // The ready links among `members`, by node index (either end's view counts).
  std::map<size_t, std::set<size_t>> ReadyLinks(const std::vector<size_t>& members) {
    std::map<PublicKey, size_t> index_of;
    for (size_t i : Live()) index_of[nodes_[i]->identity()] = i;
    std::map<size_t, std::set<size_t>> edges;
    for (size_t i : members) {
      for (const PublicKey& peer : nodes_[i]->Status().peers) {
        auto it = index_of.find(peer);
        if (it == index_of.end()) continue;
        edges[i].insert(it->second);
        edges[it->second].insert(i);
      }
    }
    return edges;
  }
  bool Connected(const std::vector<size_t>& members) { return Spans(members, ReadyLinks(members)); }
  // True when no ready link joins a node of `a` to a node of `b`.
  bool Apart(const std::vector<size_t>& a, const std::vector<size_t>& b) {
    std::vector<size_t> all = a;
    all.insert(all.end(), b.begin(), b.end());
    const auto edges = ReadyLinks(all);
    const std::set<size_t> in_b(b.begin(), b.end());
    for (size_t i : a) {
      auto it = edges.find(i);
      if (it == edges.end()) continue;
      for (size_t j : it->second) {
        if (in_b.contains(j)) return false;
      }
    }
    return true;
  }
  // True when no live node still has a ready link to an identity in `gone`.
  bool Forgotten(const std::vector<PublicKey>& gone) {
    for (size_t i : Live()) {
      for (const PublicKey& peer : nodes_[i]->Status().peers) {
        if (std::find(gone.begin(), gone.end(), peer) != gone.end()) return false;
      }
    }
    return true;
  }

  // Publishes one message of `type` at node `at`.
  Published Publish(size_t at, MessageType type) {
    const Bytes envelope = maker_.Make(type);
    Published published{market::ComputeId(*market::DecodeEnvelope(envelope)), type, at};
    const gpumart::Status status = nodes_[at]->Publish(envelope);
    EXPECT_TRUE(status.ok()) << status.message();
    return published;
  }
  // One message of each flooded type per round, each at another random node of `at` (while
  // `at` has nodes not used yet).
  std::vector<Published> PublishEveryType(std::vector<size_t> at, size_t rounds) {
    std::shuffle(at.begin(), at.end(), random_);
    std::vector<Published> published;
    for (size_t round = 0; round < rounds; ++round) {
      for (MessageType type : kFloodedTypes) published.push_back(Publish(at[published.size() % at.size()], type));
    }
    return published;
  }

  // True when every node of `members` but its author has delivered each message.
  bool Reached(const std::vector<Published>& messages, const std::vector<size_t>& members) {
    for (size_t i : members) {
      for (const Published& m : messages) {
        if (i != m.author && nodes_[i]->Delivered(m.id).first == 0) return false;
      }
    }
    return true;
  }
  // True when no node of `members` has delivered any of the messages.
  bool NoneReached(const std::vector<Published>& messages, const std::vector<size_t>& members) {
    for (size_t i : members) {
      for (const Published& m : messages) {
        if (nodes_[i]->Delivered(m.id).first != 0) return false;
      }
    }
    return true;
  }
  // Each node of `members` delivered each message exactly once (never its own), as its type.
  void ExpectDeliveredExactlyOnce(const std::vector<Published>& messages, const std::vector<size_t>& members) {
    for (size_t i : members) {
      for (const Published& m : messages) {
        const auto [count, type] = nodes_[i]->Delivered(m.id);
        EXPECT_EQ(count, i == m.author ? 0 : 1) << "node " << i << ", message from node " << m.author;
        if (count > 0) {
          EXPECT_EQ(type, m.type) << "node " << i;
        }
      }
    }
  }

 private:
  static bool Spans(const std::vector<size_t>& members, const std::map<size_t, std::set<size_t>>& edges) {
    if (members.empty()) return true;
    const std::set<size_t> in(members.begin(), members.end());
    std::set<size_t> reached{members.front()};
    std::vector<size_t> frontier{members.front()};
    while (!frontier.empty()) {
      const size_t at = frontier.back();
      frontier.pop_back();
      auto it = edges.find(at);
      if (it == edges.end()) continue;
      for (size_t next : it->second) {
        if (in.contains(next) && reached.insert(next).second) frontier.push_back(next);
      }
    }
    return reached.size() == in.size();
  }

  std::mt19937 random_;
  MessageMaker maker_;
  std::vector<std::unique_ptr<NetNode>> nodes_;  // null once stopped
  std::vector<std::pair<size_t, size_t>> bootstrap_edges_;
};

std::vector<size_t> Range(size_t begin, size_t end) {
  std::vector<size_t> range;
  for (size_t i = begin; i < end; ++i) range.push_back(i);
  return range;
}

// Starts `count` nodes and waits until their ready links connect them all.
void Form(Network& net, size_t count) {
  const auto start = Clock::now();
  net.Start(count);
  ASSERT_TRUE(WaitUntil([&] { return net.Connected(net.Live()); })) << "the network never connected";
  std::printf("%zu nodes linked up in %lld ms\n", count, MsSince(start));
}

TEST(GossipNetworkTest, EveryFloodedTypePublishedAnywhereReachesAll32ExactlyOnce) {
  Network net(gpumart::testing::TestSeed());
  Form(net, kNodes);
  if (HasFatalFailure()) return;
  const std::vector<size_t> all = net.Live();
  // Two of each type, at random nodes: the first ones spread while the Plumtree is still all eager.
  const auto start = Clock::now();
  const std::vector<Published> messages = net.PublishEveryType(all, 2);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(messages, all); })) << "not every message reached every node";
  std::printf("%zu messages reached all %zu nodes in %lld ms\n", messages.size(), all.size(), MsSince(start));
  std::this_thread::sleep_for(kQuiet);
  net.ExpectDeliveredExactlyOnce(messages, all);
}

TEST(GossipNetworkTest, StoppingEightNodesLeavesTheOther24ConnectedAndDelivering) {
  Network net(gpumart::testing::TestSeed());
  Form(net, kNodes);
  if (HasFatalFailure()) return;
  // Shape the tree first, so stopping nodes breaks eager links that the survivors must repair.
  const std::vector<Published> warm_up = net.PublishEveryType(net.Live(), 1);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(warm_up, net.Live()); }));

  // Eight victims whose loss keeps the bootstrap links of the other 24 connected: the survivors
  // need not rely on addresses learnt by peer exchange (they may, and do, also use those).
  std::vector<size_t> order = net.Live();
  std::vector<size_t> victims, survivors;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::shuffle(order.begin(), order.end(), net.random());
    victims.assign(order.begin(), order.begin() + 8);
    survivors.assign(order.begin() + 8, order.end());
    std::sort(survivors.begin(), survivors.end());
    if (net.BootstrapConnected(survivors)) break;
  }
  ASSERT_TRUE(net.BootstrapConnected(survivors));
  std::vector<PublicKey> gone;
  for (size_t victim : victims) gone.push_back(net.node(victim).identity());
  const auto stopped = Clock::now();
  net.Stop(victims);
  ASSERT_TRUE(WaitUntil([&] { return net.Forgotten(gone) && net.Connected(survivors); }))
      << "the survivors kept links to stopped nodes or fell apart";
  std::printf("survivors dropped every link to the stopped nodes in %lld ms\n", MsSince(stopped));

  const auto start = Clock::now();
  const std::vector<Published> messages = net.PublishEveryType(survivors, 2);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(messages, survivors); })) << "not every survivor got every message";
  std::printf("%zu messages reached all %zu survivors in %lld ms\n", messages.size(), survivors.size(),
              MsSince(start));
  std::this_thread::sleep_for(kQuiet);
  net.ExpectDeliveredExactlyOnce(messages, survivors);
}

TEST(GossipNetworkTest, LateJoinerCatchesUpByReconciliation) {
  Network net(gpumart::testing::TestSeed());
  Form(net, kNodes - 1);
  if (HasFatalFailure()) return;
  const std::vector<size_t> early = net.Live();
  const std::vector<Published> before = net.PublishEveryType(early, 2);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(before, early); }));

  // The newcomer knows one node; what was published before it came only reconciliation brings.
  const auto joined = Clock::now();
  const size_t late = net.Add(early[net.random()() % early.size()]);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(before, {late}); })) << "the late node did not catch up";
  std::printf("the late node caught up on %zu messages in %lld ms\n", before.size(), MsSince(joined));
  // And it takes part in dissemination from then on, both ways.
  std::vector<Published> after = net.PublishEveryType(early, 1);
  after.push_back(net.Publish(late, MessageType::kOffer));
  const std::vector<size_t> all = net.Live();
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(after, all); }));
  std::this_thread::sleep_for(kQuiet);
  net.ExpectDeliveredExactlyOnce(before, all);
  net.ExpectDeliveredExactlyOnce(after, all);
}

TEST(GossipNetworkTest, HalvesCutApartAndRejoinedConverge) {
  Network net(gpumart::testing::TestSeed());
  Form(net, kNodes);
  if (HasFatalFailure()) return;
  const std::vector<size_t> all = net.Live();
  const std::vector<size_t> left = Range(0, kNodes / 2);
  const std::vector<size_t> right = Range(kNodes / 2, kNodes);
  auto identities = [&](const std::vector<size_t>& half) {
    std::vector<PublicKey> keys;
    for (size_t i : half) keys.push_back(net.node(i).identity());
    return keys;
  };
  // The cut: every node denies the other half (GossipNodeConfig::deny, at run time).
  for (size_t i : left) ASSERT_TRUE(net.node(i).Deny(identities(right)).ok());
  for (size_t i : right) ASSERT_TRUE(net.node(i).Deny(identities(left)).ok());
  ASSERT_TRUE(WaitUntil([&] { return net.Apart(left, right) && net.Connected(left) && net.Connected(right); }))
      << "the halves did not come apart, each still connected";

  const std::vector<Published> in_left = net.PublishEveryType(left, 1);
  const std::vector<Published> in_right = net.PublishEveryType(right, 1);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(in_left, left) && net.Reached(in_right, right); }));
  std::this_thread::sleep_for(kQuiet);
  EXPECT_TRUE(net.NoneReached(in_left, right));
  EXPECT_TRUE(net.NoneReached(in_right, left));

  // Rejoined: links come back by normal redialling, and reconciliation brings each half what the
  // other published while apart.
  const auto healed = Clock::now();
  for (size_t i : all) ASSERT_TRUE(net.node(i).Deny({}).ok());
  std::vector<Published> apart = in_left;
  apart.insert(apart.end(), in_right.begin(), in_right.end());
  ASSERT_TRUE(WaitUntil([&] { return net.Connected(all); })) << "the halves did not relink";
  std::printf("the halves relinked %lld ms after the cut was lifted\n", MsSince(healed));
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(apart, all); })) << "the halves did not converge";
  std::printf("the halves converged %lld ms after the cut was lifted\n", MsSince(healed));
  const std::vector<Published> after = net.PublishEveryType(all, 1);
  ASSERT_TRUE(WaitUntil([&] { return net.Reached(after, all); }));
  std::this_thread::sleep_for(kQuiet);
  net.ExpectDeliveredExactlyOnce(apart, all);
  net.ExpectDeliveredExactlyOnce(after, all);
}

}  // namespace
}  // namespace gpumart::gossip
