// Real signed messages (real codec, real Ed25519 keys) for orders, bids, leases and closes.
// No GoogleTest here: the crash-test child uses it too.
#pragma once

#include <cstdlib>
#include <cstring>

#include "market/codec.h"
#include "market/crypto.h"
#include "tests/market/test_messages.h"

namespace gpumart::ledger::testing {

using market::MessageId;

constexpr int64_t kStartMs = 1'700'000'000'000;
constexpr int64_t kTtlMs = 3'600'000;
constexpr uint64_t kPricePerHour = 3'600'000;  // 1000 per second: easy billing arithmetic

// A tenant and a provider with real keys, and factories for the messages between them.
class Parties {
 public:
  Parties() : tenant_(market::Identity::Generate()), provider_(market::Identity::Generate()) {}

  const market::Identity& tenant() const { return tenant_; }
  const market::Identity& provider() const { return provider_; }

  market::Signed<market::Order> Order(int64_t created_ms = kStartMs, int64_t ttl_ms = kTtlMs) {
    return Order(market::testing::SampleOrder(), created_ms, ttl_ms);
  }
  // Signs `order` as it is: no validation, like any buggy or hostile signer.
  market::Signed<market::Order> Order(const market::Order& order, int64_t created_ms = kStartMs,
                                      int64_t ttl_ms = kTtlMs) {
    return market::MakeSigned(tenant_, order, created_ms, ttl_ms, ++nonce_);
  }

  market::Signed<market::Bid> Bid(const MessageId& order_id, int64_t created_ms = kStartMs, int64_t ttl_ms = kTtlMs,
                                  uint64_t price_per_hour = kPricePerHour) {
    market::Bid bid;
    bid.order_id = order_id;
    bid.tenant = tenant_.public_key();
    bid.group = "dcloud";
    bid.denom = "uakt";
    bid.price_per_hour = price_per_hour;
    bid.services = market::testing::SampleAssignments();
    bid.reservation_expires_ms = created_ms + ttl_ms;
    return market::MakeSigned(provider_, bid, created_ms, ttl_ms, ++nonce_);
  }

  // A bid with `services` as they are: no validation, like any buggy or hostile provider.
  market::Signed<market::Bid> Bid(const MessageId& order_id, std::vector<market::ServiceAssignment> services) {
    market::Signed<market::Bid> bid = Bid(order_id);
    bid.body.services = std::move(services);
    return market::MakeSigned(provider_, bid.body, kStartMs, kTtlMs, ++nonce_);
  }

  // The tenant accepts `bid`; the provider countersigns the lease (which embeds both).
  market::Signed<market::Lease> Lease(const market::Signed<market::Bid>& bid, int64_t start_ms = kStartMs) {
    market::Accept accept{bid.body.order_id, bid.id, provider_.public_key()};
    const auto signed_accept = market::MakeSigned(tenant_, accept, start_ms, kTtlMs, ++nonce_);
    auto lease = market::BuildLease(market::EncodeEnvelope(signed_accept.envelope),
                                    market::EncodeEnvelope(bid.envelope), start_ms);
    if (!lease.ok()) std::abort();  // the parts above always bind; a failure is a bug in the codec
    return market::MakeSigned(provider_, *lease, start_ms, kTtlMs, ++nonce_);
  }

  // A lease for a fresh (unrecorded) order and bid.
  market::Signed<market::Lease> FreshLease(int64_t start_ms = kStartMs) {
    MessageId order_id{};
    const uint64_t n = ++nonce_;
    std::memcpy(order_id.data(), &n, sizeof n);
    return Lease(Bid(order_id, start_ms), start_ms);
  }

  market::Signed<market::Close> Close(const MessageId& lease_id, const market::Identity& signer,
                                      market::CloseReason reason, int64_t closed_ms) {
    market::Close close{lease_id, reason, closed_ms, "done"};
    return market::MakeSigned(signer, close, closed_ms, kTtlMs, ++nonce_);
  }

 private:
  market::Identity tenant_;
  market::Identity provider_;
  uint64_t nonce_ = 0;
};

}  // namespace gpumart::ledger::testing
