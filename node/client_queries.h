// The read-only requests a node serves on its client port (docs/CLIENT.md, "Queries"): one entry
// per kind in the table ClientQueries returns; each runs on the client port's thread and reads the
// ledger (LevelDB reads are thread-safe) or asks the node's actors through the port's outbox.
//
// The console's /api/v1/ (node/console/console.h) runs the same table on the HTTP server's threads,
// so every query is safe to run on several threads at once (it reads the ledger, atomics and
// what it asks the actors for, through the outbox of the context it is given).
//
//   leases  the ledger's leases, filtered and paged (`gpumart leases`)
//   lease   one lease record, with its order (`gpumart lease manifest`)
//   status  peers, offers, open orders, reservations, leases, revenue per hour (`gpumart status`)
//   match   a dry run of orders against the live offer book (`gpumart submit`'s first step)
//   offers  the live offer book searched with vast.ai's grammar (`gpumart offers`, docs/QUERY.md)
#pragma once

#include <memory>
#include <optional>

#include "actors/actor.h"
#include "ledger/store.h"
#include "ledger/verify.h"
#include "market/crypto.h"
#include "node/client/client_port.h"
#include "node/config.h"
#include "node/ledger_feed.h"
#include "node/offer_book_actor.h"
#include "node/provider_actor.h"

namespace gpumart::node {

// Active leases a provider's status adds up for its revenue, at most (more: "revenue_partial").
constexpr size_t kMaxStatusLeases = 10'000;
// Orders a `match` request may carry (each is one group).
constexpr size_t kMaxMatchOrders = client::limits::kMaxListItems;

struct ClientQuerySources {
  const ledger::LedgerStore* ledger = nullptr;
  market::PublicKey node{};
  NodeRole role = NodeRole::kRelay;
  actors::ActorAddress offer_book;
  std::optional<actors::ActorAddress> provider;
  std::shared_ptr<const LedgerFeedCounters> feed;
  std::shared_ptr<const OfferBookCounters> offers;
  std::shared_ptr<const ProviderCounters> provider_counters;  // null: no provider
  std::shared_ptr<const client::ClientPortCounters> client;
  ledger::VerifyReport ledger_report;  // the verification the node ran on its ledger at start
};

client::QueryTable ClientQueries(ClientQuerySources sources);

}  // namespace gpumart::node
