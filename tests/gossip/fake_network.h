// An in-process network of gossip cores for deterministic tests: a fake transport (frames move
// between cores through one event queue, each link with its own latency) and a fake clock. No
// sockets, no threads: the same inputs give the same run. Each core is ticked as GossipNode ticks
// it: at its NextDeadline, no sooner than 1 ms after the input that set it (set_fixed_tick ticks
// every core on a fixed period instead, as a reference).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "market/codec.h"
#include "market/crypto.h"
#include "node/gossip/gossip_core.h"
#include "node/gossip/peer_scorer.h"

namespace gpumart::gossip::testing {

using market::Identity;

// Signed sample messages (Close bodies are the smallest complete messages).
inline Bytes MakeClose(const Identity& signer, int64_t created_ms, int64_t ttl_ms, uint64_t nonce,
                       std::string note = "done") {
  market::Close close;
  close.lease_id[0] = static_cast<uint8_t>(nonce);
  close.closed_ms = created_ms;
  close.note = std::move(note);
  return market::EncodeEnvelope(market::MakeSigned(signer, close, created_ms, ttl_ms, nonce).envelope);
}

inline MessageId IdOf(const Bytes& envelope) { return market::ComputeId(*market::DecodeEnvelope(envelope)); }

class FakeNetwork {
 public:
  struct Node {
    std::unique_ptr<Identity> identity;
    std::unique_ptr<GossipCore> core;
    std::string address;
    std::vector<Deliver> delivered;
    std::vector<PeerVerdict> verdicts;
    std::vector<DisconnectPeer> disconnects;
    uint64_t message_frames_in = 0;  // MESSAGE frames received (copies, duplicates included)
    uint64_t trace = 0;              // a hash of every action and when it came (FNV-1a)
    PeerId next_peer = 1;
  };

  explicit FakeNetwork(int64_t start_ms = 1'750'000'000'000) : now_(start_ms) {}

  size_t AddNode(GossipConfig config = {}) {
    const size_t index = nodes_.size();
    market::Seed seed{};
    seed[0] = static_cast<uint8_t>(index + 1);
    seed[1] = static_cast<uint8_t>((index + 1) >> 8);
    seed[2] = 0x60;
    auto node = std::make_unique<Node>();
    node->identity = std::make_unique<Identity>(Identity::FromSeed(seed));
    node->address = "node" + std::to_string(index);
    config.advertised_address = node->address;
    node->core = std::make_unique<GossipCore>(*node->identity, config);
    nodes_.push_back(std::move(node));
    return index;
  }

  Node& node(size_t index) { return *nodes_[index]; }
  GossipCore& core(size_t index) { return *nodes_[index]->core; }
  size_t size() const { return nodes_.size(); }
  int64_t now() const { return now_; }
  void set_default_latency(int64_t ms) { default_latency_ms_ = ms; }
  // Verdicts go to this scorer, keyed by the peer's identity when known; a ban closes the link.
  void set_scorer(PeerScorer* scorer) { scorer_ = scorer; }

  // `from` dials `to`: an outbound link at `from`, inbound at `to`.
  void Connect(size_t from, size_t to, int64_t latency_ms = -1) {
    const PeerId a = nodes_[from]->next_peer++;
    const PeerId b = nodes_[to]->next_peer++;
    const int64_t latency = latency_ms >= 0 ? latency_ms : default_latency_ms_;
    links_[{from, a}] = Link{to, b, latency, true};
    links_[{to, b}] = Link{from, a, latency, false};
    std::vector<Action> out;
    core(from).OnConnected(a, Direction::kOutbound, nodes_[to]->address, now_, out);
    Apply(from, out);
    out.clear();
    core(to).OnConnected(b, Direction::kInbound, "", now_, out);
    Apply(to, out);
  }

  // Ticks every core every `ms` instead of at its deadlines (0: back to deadlines).
  void set_fixed_tick(int64_t ms) { fixed_tick_ms_ = ms; }
  uint64_t ticks() const { return ticks_; }
  // Ticks at deadlines after which the core's NextDeadline was not in the future (a driver would
  // spin).
  uint64_t stale_deadlines() const { return stale_deadlines_; }
  // A partition: links between nodes of different groups are cut and dials across fail, until
  // Heal. `group` maps a node index to its group.
  void Partition(std::function<int(size_t)> group) {
    group_ = std::move(group);
    for (size_t x = 0; x < nodes_.size(); ++x) {
      for (size_t y = x + 1; y < nodes_.size(); ++y) {
        if (group_(x) != group_(y)) Cut(x, y);
      }
    }
  }
  void Heal() { group_ = nullptr; }
  // Open links the node dialled (at the transport: ready or not).
  size_t OutboundLinks(size_t at) const {
    size_t count = 0;
    for (const auto& [key, link] : links_) count += key.first == at && link.outbound;
    return count;
  }
  // Links between nodes of different groups.
  size_t LinksAcross(std::function<int(size_t)> group) const {
    size_t count = 0;
    for (const auto& [key, link] : links_) count += group(key.first) != group(link.node);
    return count / 2;
  }

  // The link between the two nodes dies; both transports notice at once.
  void Cut(size_t x, size_t y) {
    for (auto it = links_.begin(); it != links_.end();) {
      if (it->first.first == x && it->second.node == y) {
        const auto other = std::make_pair(y, it->second.peer);
        core(x).OnDisconnected(it->first.second, now_);
        core(y).OnDisconnected(other.second, now_);
        Touch(x);
        Touch(y);
        links_.erase(other);
        it = links_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Frames on the link vanish silently (a dead peer that never closes): only timeouts notice.
  void Blackhole(size_t x, size_t y) { blackholed_.insert({std::min(x, y), std::max(x, y)}); }

  PeerId PeerIdAt(size_t at, size_t of) const {
    for (const auto& [key, link] : links_) {
      if (key.first == at && link.node == of) return key.second;
    }
    return kLocalPeer;
  }

  Status Publish(size_t at, const Bytes& envelope, Signatures signatures = Signatures::kVerify) {
    std::vector<Action> out;
    Status status = core(at).Publish(envelope, now_, out, signatures);
    Apply(at, out);
    return status;
  }

  // Injects raw bytes into `at` as if sent on its link `peer`.
  void Inject(size_t at, PeerId peer, const Bytes& frame) {
    std::vector<Action> out;
    core(at).HandleFrame(peer, frame, now_, out);
    Apply(at, out);
  }

  // Runs frames and ticks until `until_ms`. Ticks go before frames due at the same time.
  void RunUntil(int64_t until_ms) {
    // The test may have called a core directly since the last run.
    tick_at_.resize(nodes_.size());
    for (size_t i = 0; i < nodes_.size(); ++i) tick_at_[i] = std::max(core(i).NextDeadline(), now_);
    while (true) {
      const int64_t next_frame = queue_.empty() ? INT64_MAX : queue_.top().at;
      size_t due = 0;
      int64_t next_tick = INT64_MAX;
      if (fixed_tick_ms_ > 0) {
        next_tick = next_fixed_tick_;
      } else {
        for (size_t i = 0; i < nodes_.size(); ++i) {
          if (tick_at_[i] < next_tick) {
            next_tick = tick_at_[i];
            due = i;
          }
        }
      }
      const int64_t next = std::min(next_frame, next_tick);
      if (next > until_ms) break;
      now_ = std::max(now_, next);
      if (next == next_tick) {
        if (fixed_tick_ms_ > 0) {
          next_fixed_tick_ = now_ + fixed_tick_ms_;
          for (size_t i = 0; i < nodes_.size(); ++i) TickNode(i);
        } else {
          TickNode(due);
        }
        continue;
      }
      InFlight frame = queue_.top();
      queue_.pop();
      if (!links_.contains({frame.to, frame.peer})) continue;  // the link died in flight
      if (frame.bytes.size() > 1 && frame.bytes[1] == static_cast<uint8_t>(FrameType::kMessage)) {
        ++nodes_[frame.to]->message_frames_in;
      }
      std::vector<Action> out;
      core(frame.to).HandleFrame(frame.peer, frame.bytes, now_, out);
      Apply(frame.to, out);
    }
    now_ = until_ms;
  }
  void RunFor(int64_t ms) { RunUntil(now_ + ms); }

  bool DeliveredAt(size_t at, const MessageId& id) const {
    for (const auto& d : nodes_[at]->delivered) {
      if (d.id == id) return true;
    }
    return false;
  }

  std::vector<std::string> dials;  // ConnectTo addresses, in order
  // Fulfil ConnectTo by linking to the named node. Off by default, so a test's topology stays the
  // one it built (peer exchange would otherwise mesh every node with every other).
  bool auto_dial = false;

 private:
  struct Link {
    size_t node;
    PeerId peer;
    int64_t latency_ms;
    bool outbound;  // dialled by this end
  };
  struct InFlight {
    int64_t at;
    uint64_t seq;
    size_t to;
    PeerId peer;
    Bytes bytes;
    bool operator>(const InFlight& other) const { return std::tie(at, seq) > std::tie(other.at, other.seq); }
  };

  void TickNode(size_t i) {
    ++ticks_;
    std::vector<Action> out;
    core(i).Tick(now_, out);
    if (fixed_tick_ms_ == 0 && core(i).NextDeadline() <= now_) ++stale_deadlines_;
    if (i < tick_at_.size()) tick_at_[i] = INT64_MAX;  // ran; Apply's Touch sets the next
    Apply(i, out);
  }

  // After an input to node `at`: its tick is due at its deadline, 1 ms from now at the soonest
  // (a tick already due now, not yet run, stays).
  void Touch(size_t at) {
    if (fixed_tick_ms_ == 0 && at < tick_at_.size() && tick_at_[at] > now_) tick_at_[at] = std::max(core(at).NextDeadline(), now_ + 1);
  }

  void Apply(size_t at, std::vector<Action>& actions) {
    ApplyActions(at, actions);
    Touch(at);
  }

  static void Mix(uint64_t& hash, std::span<const uint8_t> bytes) {
    for (uint8_t byte : bytes) hash = (hash ^ byte) * 0x100000001b3ULL;
  }
  template <typename T>
  static void MixValue(uint64_t& hash, const T& value) {
    Mix(hash, {reinterpret_cast<const uint8_t*>(&value), sizeof value});
  }

  void ApplyActions(size_t at, std::vector<Action>& actions) {
    for (auto& action : actions) {
      uint64_t& trace = nodes_[at]->trace;
      MixValue(trace, now_);
      MixValue(trace, action.index());
      if (const auto* send = std::get_if<SendFrame>(&action)) {
        MixValue(trace, send->peer);
        Mix(trace, send->frame);
      } else if (const auto* connect = std::get_if<ConnectTo>(&action)) {
        Mix(trace, {reinterpret_cast<const uint8_t*>(connect->address.data()), connect->address.size()});
      } else if (const auto* disconnect = std::get_if<DisconnectPeer>(&action)) {
        MixValue(trace, disconnect->peer);
      } else if (const auto* deliver = std::get_if<Deliver>(&action)) {
        Mix(trace, deliver->id);
      }
      if (auto* send = std::get_if<SendFrame>(&action)) {
        auto link = links_.find({at, send->peer});
        if (link == links_.end()) continue;
        if (blackholed_.contains({std::min(at, link->second.node), std::max(at, link->second.node)})) continue;
        queue_.push(InFlight{now_ + link->second.latency_ms, seq_++, link->second.node, link->second.peer,
                             std::move(send->frame)});
      } else if (auto* deliver = std::get_if<Deliver>(&action)) {
        nodes_[at]->delivered.push_back(std::move(*deliver));
      } else if (auto* verdict = std::get_if<PeerVerdict>(&action)) {
        nodes_[at]->verdicts.push_back(*verdict);
        if (scorer_ && verdict->identity) {
          const std::string key(verdict->identity->begin(), verdict->identity->end());
          if (scorer_->Penalize(key, verdict->reason, now_)) CloseLink(at, verdict->peer);
        }
      } else if (auto* disconnect = std::get_if<DisconnectPeer>(&action)) {
        nodes_[at]->disconnects.push_back(*disconnect);
        CloseLink(at, disconnect->peer);
      } else if (auto* connect = std::get_if<ConnectTo>(&action)) {
        dials.push_back(connect->address);
        if (!auto_dial) continue;
        size_t target = nodes_.size();
        for (size_t i = 0; i < nodes_.size(); ++i) {
          if (nodes_[i]->address == connect->address) target = i;
        }
        if (target == nodes_.size() || (group_ && group_(at) != group_(target))) {
          core(at).OnConnectFailed(connect->address, now_);
        } else {
          Connect(at, target);
        }
      }
    }
  }

  // Closes one link from `at`'s side: the other side's transport sees it close.
  void CloseLink(size_t at, PeerId peer) {
    auto it = links_.find({at, peer});
    if (it == links_.end()) return;
    const Link other = it->second;
    links_.erase(it);
    core(at).OnDisconnected(peer, now_);
    Touch(at);
    if (links_.erase({other.node, other.peer})) {
      core(other.node).OnDisconnected(other.peer, now_);
      Touch(other.node);
    }
  }

  int64_t now_;
  int64_t fixed_tick_ms_ = 0;
  int64_t next_fixed_tick_ = 0;
  std::vector<int64_t> tick_at_;  // per node: when it is ticked next (deadline mode)
  uint64_t ticks_ = 0;
  uint64_t stale_deadlines_ = 0;
  std::function<int(size_t)> group_;
  int64_t default_latency_ms_ = 1;
  uint64_t seq_ = 0;
  PeerScorer* scorer_ = nullptr;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::pair<size_t, PeerId>, Link> links_;
  std::set<std::pair<size_t, size_t>> blackholed_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> queue_;
};

}  // namespace gpumart::gossip::testing
