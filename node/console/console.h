// The node's web console (docs/CONSOLE.md) and its JSON API under /api/v1/ (docs/API.md): routes
// for the node's HTTP server (node/metrics/http_server.h), next to /metrics.
//
// Read-only by construction: every API route runs one of the client port's queries
// (node/client_queries.h: the same functions `gpumart offers`, `leases`, `lease`, `status` and
// `submit`'s dry run use), which only read the ledger and ask the actors for their state. Nothing
// a query answers holds a secret (no key, no key file's path).
//
// The page (HTML, CSS, JavaScript in node/console/assets/) is compiled into the binary
// (node/console/assets.h); it loads nothing from anywhere but this server, and every answer
// carries a Content-Security-Policy that allows nothing else.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actors/actor_system.h"
#include "market/offer_query.h"
#include "market/sdl.h"
#include "node/client/client_port.h"
#include "node/metrics/http_server.h"

namespace gpumart::console {

// Limits of the API, one constant each (docs/API.md, "Limits"):
// - a request body (a dry run's SDL) is at most what the SDL parser reads from a file; larger is
//   413 before it is read;
constexpr size_t kMaxRequestBodyBytes = market::kSdlMaxFileBytes;
// - an offer query (`q`) is at most market::kMaxOfferQueryBytes, checked by the query's parser
//   (400), inside cpp-httplib's 8 KiB request line (414);
// - a parameter other than `q` is at most this long (ids are 64 hex digits; 400 beyond);
constexpr size_t kMaxParamBytes = 256;
// - each request waits at most client::kBackendTimeout for each of the node's actors it asks
//   (503 when one does not answer), and the HTTP server's read and write timeouts
//   (metrics::kHttpReadTimeout, kHttpWriteTimeout) bound the transfer.

// What the console reads: the node's query table (node::ClientQueries) and where to ask.
struct ConsoleSources {
  actors::ActorSystem* system = nullptr;  // for an outbox per request; outlives the server
  actors::ActorAddress gossip;            // the gossip node (the status query asks it)
  client::QueryTable queries;
};

// The console's routes: GET / and the page's assets, GET /api/v1/{offers,leases,lease,status},
// POST /api/v1/dryrun.
std::vector<metrics::HttpRoute> ConsoleRoutes(ConsoleSources sources);

// Headers for every answer of the server the console is on (Content-Security-Policy and
// friends): HttpServerOptions::headers.
std::vector<std::pair<std::string, std::string>> SecurityHeaders();

// The body of an error the server answers itself (404, 405, 413, ...): {"error": "..."} under
// /api/, text elsewhere. HttpServerOptions::error_body.
metrics::HttpResponse ErrorBody(int status, std::string_view reason, const metrics::HttpRequest& request);

}  // namespace gpumart::console
