#include "node/node_context.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <spdlog/spdlog.h>

#include "actors/clock.h"
#include "ledger/store.h"

namespace gpumart::node {

namespace {

constexpr std::chrono::milliseconds kStatusTimeout{5'000};

// Runs on the gossip thread for each new verified message. Leases and Closes go to the ledger
// without waiting: SendOrDrop never blocks, and a write the full queue refuses is answered
// kUnavailable by its Acknowledgement and counted as dropped.
void RecordDelivered(const gossip::Deliver& deliver, actors::Outbox& outbox, const actors::ActorAddress& ledger,
                     const std::shared_ptr<GossipLedgerCounters>& counters) {
  if (deliver.type != market::MessageType::kLease && deliver.type != market::MessageType::kClose) return;
  Result<ledger::LedgerWrite> write = ledger::OpenRecord(deliver.envelope);
  Result<ledger::PreparedWrite> prepared =
      write.ok() ? ledger::Prepare(std::move(write).value()) : Result<ledger::PreparedWrite>(write.status());
  if (!prepared.ok()) {
    counters->refused.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("gossip: not recorded: {}", prepared.status().message());
    return;
  }
  ledger::Acknowledgement ack([counters](const Status& status) {
    if (status.ok()) {
      counters->recorded.fetch_add(1, std::memory_order_relaxed);
    } else if (status.code() == Status::Code::kUnavailable) {
      counters->dropped.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters->refused.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("gossip: ledger refused a delivered message: {}", status.message());
    }
  });
  (void)outbox.SendOrDrop(ledger, ledger::LedgerWriteMessage{std::move(prepared).value(), std::move(ack)});
}

}  // namespace

Result<std::unique_ptr<NodeContext>> NodeContext::Start(const NodeConfig& config) {
  if (::mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IoError("cannot create data dir " + config.data_dir + ": " + std::strerror(errno));
  }
  Result<market::Identity> identity = market::LoadOrCreateKeyFile(config.IdentityPath());
  if (!identity.ok()) return identity.status();
  std::unique_ptr<NodeContext> context(new NodeContext(std::move(identity).value()));
  GPUMART_RETURN_IF_ERROR(context->StartLedger(config));
  GPUMART_RETURN_IF_ERROR(context->StartGossip(config));
  return context;
}

Status NodeContext::StartLedger(const NodeConfig& config) {
  const std::string path = config.data_dir + "/ledger";
  Result<std::unique_ptr<ledger::LedgerActor>> ledger =
      ledger::LedgerActor::Open(system_, path, {}, SystemClock::Instance());
  if (!ledger.ok()) return ledger.status();
  ledger_ = std::move(ledger).value();
  ledger_report_ = ledger::VerifyLedger(ledger_->store());
  if (!ledger_report_.ok) {
    return Status::Corruption("ledger " + path + " fails verification: " + ledger_report_.Describe() +
                              " (run gpumart ledger verify --data-dir " + config.data_dir + ")");
  }
  return Status::Ok();
}

Status NodeContext::StartGossip(const NodeConfig& config) {
  gossip_to_ledger_ = std::make_unique<actors::Outbox>(system_);
  gossip::GossipNodeConfig settings = config.GossipSettings();
  settings.on_deliver = [outbox = gossip_to_ledger_.get(), ledger = ledger_->address(),
                         counters = counters_](const gossip::Deliver& deliver) {
    RecordDelivered(deliver, *outbox, ledger, counters);
  };
  gossip_ = system_.Spawn({.name = "gossip"}, [this, settings] {
    return std::make_unique<gossip::GossipNode>(identity_, settings);
  });
  if (!gossip_.ok()) return Status::IoError("gossip: cannot start: " + gossip_.error());
  outbox_ = std::make_unique<actors::Outbox>(system_);
  Result<gossip::GossipNodeStatus> status = GossipStatus();
  if (!status.ok()) return status.status();
  peer_address_ = status->address;
  return Status::Ok();
}

Result<gossip::GossipNodeStatus> NodeContext::GossipStatus() {
  auto reply = outbox_->Request<gossip::GossipNodeStatus>(gossip_.address(), gossip::GetGossipStatus{}, kStatusTimeout);
  if (!reply.ok()) return Status::Unavailable("gossip: no status reply");
  return reply.value();
}

NodeContext::~NodeContext() {
  outbox_.reset();
  gossip_.Stop();             // no more deliveries
  gossip_to_ledger_.reset();  // its writes already queued stay queued
  ledger_.reset();            // commits and answers everything queued
}

}  // namespace gpumart::node
