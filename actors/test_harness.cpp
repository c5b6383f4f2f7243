#include "actors/test_harness.h"

#include <algorithm>
#include <zmq.hpp>

#include "actors/actor_cell.h"

namespace gpumart::actors {

ActorTestHarness::ActorTestHarness(ActorFactory factory, ActorOptions options, int64_t start_ms)
    : clock_(start_ms), zmq_context_(std::make_unique<zmq::context_t>()) {
  auto core = std::make_shared<detail::MailboxCore>(0, options.name, std::string(), options.mailbox_hwm);
  cell_ = std::make_unique<detail::ActorCell>(std::move(core), std::move(factory), clock_, options.max_restarts,
                                              static_cast<detail::MessageSink&>(*this), *zmq_context_);
  if (auto error = cell_->Start()) init_error_ = *error;
}

ActorTestHarness::~ActorTestHarness() {
  sent_.clear();
  cell_.reset();  // destroy the state (and any sockets it owns) before the context
}

Delivery ActorTestHarness::DeliverMessage(std::unique_ptr<Message> message) {
  return cell_->Deliver(std::move(message));
}

void ActorTestHarness::Drained() { cell_->HandleDrained(); }

size_t ActorTestHarness::AdvanceTime(int64_t ms) {
  clock_.Advance(ms);
  return cell_->FireDueTimers();
}

ActorAddress ActorTestHarness::FakeAddress(const std::string& name) {
  return ActorAddress(std::make_shared<detail::MailboxCore>(next_fake_id_++, name, std::string(), kDefaultMailboxHwm));
}

std::vector<SentMessage> ActorTestHarness::TakeSent() {
  std::vector<SentMessage> out(std::make_move_iterator(sent_.begin()), std::make_move_iterator(sent_.end()));
  sent_.clear();
  return out;
}

void ActorTestHarness::SetMailboxFull(const ActorAddress& to, bool full) {
  std::erase(full_, to);
  if (full) full_.push_back(to);
}

SendResult ActorTestHarness::Post(const ActorAddress& to, std::unique_ptr<Message> message, detail::SendPolicy policy) {
  if (to.stopped() && to.core() && !to.core()->endpoint.empty()) {
    message->Abandon(RequestError::kStopped);
    return SendResult::kStopped;
  }
  const bool drop = policy == detail::SendPolicy::kDropIfFull;
  if (drop && std::find(full_.begin(), full_.end(), to) != full_.end()) {
    if (to.core()) to.core()->dropped_full.fetch_add(1, std::memory_order_relaxed);
    return SendResult::kDropped;
  }
  sent_.push_back(SentMessage{to, std::move(message), drop});
  return SendResult::kOk;
}

bool ActorTestHarness::FireReadable(const zmq::socket_t& socket) {
  const auto& watches = cell_->watches();
  if (std::none_of(watches.begin(), watches.end(), [&](const auto& w) { return w.socket == &socket; })) return false;
  cell_->HandleReadable(&socket);
  return true;
}

size_t ActorTestHarness::watch_count() const { return cell_->watches().size(); }

const ActorAddress& ActorTestHarness::self() const { return cell_->context().self(); }

Actor* ActorTestHarness::current_actor() { return cell_->actor(); }

}  // namespace gpumart::actors
