// A whole market in one process, for `gpumart demo` and end-to-end tests: a tenant, the providers
// of an offers file, and one node's ledger. Every step is the real one (signed and verified
// messages on their wire bytes, the matching engine, reservations and durable leases in LevelDB,
// a full ledger verify at the end); only the network is missing: messages pass as bytes in
// memory instead of over ZeroMQ.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "actors/clock.h"
#include "market/match.h"
#include "market/status.h"
#include "market/types.h"

namespace gpumart::node {

// How long a tenant's order and a provider's bid stay valid; bids hold capacity that long.
constexpr int64_t kDemoOrderTtlMs = 60'000;
constexpr int64_t kDemoBidTtlMs = 30'000;

struct LocalMarketOptions {
  std::string sdl_path;
  std::string offers_path;
  std::string data_dir;  // the ledger goes to <data_dir>/ledger
  market::Policy policy = market::Policy::kPreference;
};

// One provider's answer to a group.
struct DemoBid {
  std::string provider;  // offer id, e.g. prov-a
  market::MessageId bid_id{};
  uint64_t price_per_hour = 0;
  std::vector<uint32_t> ranks;
  std::vector<market::ServiceAssignment> services;
};

// What happened to one placement group.
struct DemoGroup {
  std::string group;
  market::MessageId order_id{};
  std::string denom;
  uint64_t cap_per_hour = 0;
  std::vector<DemoBid> bids;        // in rank order under the policy, best first
  std::vector<std::string> declined;  // providers that could not or would not bid, with why
  bool leased = false;
  market::MessageId lease_id{};
  std::string provider;              // the winner
  std::string provider_key;          // its public key, hex
  uint64_t price_per_hour = 0;
  std::vector<market::ServiceAssignment> services;
  double order_to_lease_ms = 0;      // tenant signs the order .. every node verified the lease
  size_t signatures_verified = 0;
};

struct LocalMarketReport {
  std::string tenant_key;  // hex
  std::string ledger_path;
  size_t providers = 0;
  std::vector<DemoGroup> groups;
  bool ledger_ok = false;
  std::string ledger_verify;   // "ok" or the first inconsistency
  uint64_t ledger_records = 0;
  uint64_t ledger_chain_entries = 0;
};

// Runs the market once over every group of the SDL. Errors: unreadable inputs, a ledger that
// cannot be opened, or a step that failed where it must not (a bug, reported, not hidden).
Result<LocalMarketReport> RunLocalMarket(const LocalMarketOptions& options, const Clock& clock);

}  // namespace gpumart::node
