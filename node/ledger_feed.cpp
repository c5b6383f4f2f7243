#include "node/ledger_feed.h"

#include <spdlog/spdlog.h>

#include "ledger/ledger_actor.h"
#include "ledger/store.h"

namespace gpumart::node {

LedgerFeed::LedgerFeed(actors::ActorAddress ledger, std::shared_ptr<LedgerFeedCounters> counters)
    : ledger_(std::move(ledger)), counters_(std::move(counters)) {}

bool LedgerFeed::Records(market::MessageType type) {
  return type == market::MessageType::kLease || type == market::MessageType::kClose ||
         type == market::MessageType::kAttestation;
}

void LedgerFeed::Init(actors::Handlers& on, actors::ActorContext&) {
  on.On<DeliveredRecord>([this](DeliveredRecord& record, actors::ActorContext& ctx) { Record(record, ctx); });
  on.On<ledger::LedgerWriteDone>([this](ledger::LedgerWriteDone& done) {
    if (done.status.ok()) {
      counters_->recorded.fetch_add(1, std::memory_order_relaxed);
    } else if (done.status.code() == Status::Code::kUnavailable) {
      counters_->dropped.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_->refused.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("gossip: the ledger refused a delivered message: {}", done.status.message());
    }
  });
}

void LedgerFeed::Record(DeliveredRecord& record, actors::ActorContext& ctx) {
  const gossip::Deliver& delivery = record.delivery;
  if (!Records(delivery.type)) {
    counters_->refused.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // No signature check: the gossip core verified this message before delivering it.
  Result<ledger::LedgerWrite> write = ledger::DecodeVerifiedRecord(delivery.envelope);
  Result<ledger::PreparedWrite> prepared =
      write.ok() ? ledger::Prepare(std::move(write).value()) : Result<ledger::PreparedWrite>(write.status());
  if (!prepared.ok()) {
    counters_->refused.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("gossip: not recorded: {}", prepared.status().message());
    return;
  }
  switch (ledger::SubmitFromActor(ctx, ledger_, std::move(prepared).value(), next_tag_++)) {
    case actors::SendResult::kOk:
      counters_->submitted.fetch_add(1, std::memory_order_relaxed);
      break;
    case actors::SendResult::kDropped:
    case actors::SendResult::kStopped:
      counters_->dropped.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

void HandToFeed(const gossip::Deliver& delivery, actors::Outbox& outbox, const actors::ActorAddress& feed,
                LedgerFeedCounters& counters) {
  if (!LedgerFeed::Records(delivery.type)) return;
  if (outbox.SendOrDrop(feed, DeliveredRecord{delivery}) != actors::SendResult::kOk) {
    counters.dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace gpumart::node
