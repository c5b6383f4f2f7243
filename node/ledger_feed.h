// The ledger feed: the actor through which what gossip delivers for the ledger (Leases, Closes,
// Attestations) reaches this node's ledger (docs/LEDGER.md, "Gossip into the ledger").
//
// Gossip hands the feed each delivery without waiting (HandToFeed, a SendOrDrop from its
// on_deliver on the gossip thread). The feed decodes it without checking a signature again
// (ledger::DecodeVerifiedRecord: the gossip core verified it before delivering it), prepares the
// write on its own thread and submits it with ledger::SubmitFromActor, which never blocks; the
// ledger answers every write it took with a LedgerWriteDone message to the feed, which counts
// the outcome. A full queue on either hop (gossip -> feed, feed -> ledger) is a counted drop,
// never a blocked gossip thread: a dropped message is not lost to the network, and
// reconciliation offers it again.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "actors/actor.h"
#include "actors/outbox.h"
#include "node/gossip/gossip_core.h"

namespace gpumart::node {

// Deliveries queued towards the feed (per sender: the gossip thread) before more are dropped;
// also the ledger's answers to the feed it may have unread before the ledger waits.
constexpr int kLedgerFeedMailboxHwm = 4096;

// What became of the messages gossip delivered for the ledger. Written by the feed and the
// gossip thread, read by anyone.
struct LedgerFeedCounters {
  std::atomic<uint64_t> recorded{0};   // durable in the ledger
  std::atomic<uint64_t> refused{0};    // would not decode, or the ledger refused them (already there...)
  std::atomic<uint64_t> dropped{0};    // a full queue (the feed's or the ledger's), or a stopped ledger
  std::atomic<uint64_t> submitted{0};  // handed to the ledger; answered ones are recorded or refused
};

// The feed's only input: a message the gossip core verified and delivered.
struct DeliveredRecord {
  gossip::Deliver delivery;
};

class LedgerFeed final : public actors::Actor {
 public:
  LedgerFeed(actors::ActorAddress ledger, std::shared_ptr<LedgerFeedCounters> counters);
  void Init(actors::Handlers& on, actors::ActorContext& ctx) override;

  // The message types the feed records (Lease, Close, Attestation).
  static bool Records(market::MessageType type);

 private:
  void Record(DeliveredRecord& record, actors::ActorContext& ctx);

  const actors::ActorAddress ledger_;
  const std::shared_ptr<LedgerFeedCounters> counters_;
  uint64_t next_tag_ = 1;
};

// Hands a delivery the feed records to it from another thread (gossip's on_deliver), without
// ever blocking: a full feed queue (or a stopped feed) counts the delivery as dropped. Other
// message types are ignored.
void HandToFeed(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& feed,
                LedgerFeedCounters& counters);

}  // namespace gpumart::node
