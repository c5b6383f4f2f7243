// A small, bounded HTTP/1.1 server for a node's local HTTP endpoints (GET /metrics, and the
// console with its /api/v1/, node/console/console.h): a route table of (method, exact path, handler).
// A path no route has is 404; a method the path does not take is 405 with an Allow header (GET
// routes also answer HEAD). Built on cpp-httplib (the Debian package libcpp-httplib-dev).
//
// Bounded in every way a client controls: a fixed pool of worker threads, a bounded queue of
// accepted connections (when it is full the accepting thread serves the connection itself, so
// further clients wait in the kernel's backlog instead of growing a queue), read and write
// timeouts, keep-alive limits, a request-line limit (longer is 414, cpp-httplib's) and a body
// limit (larger is 413). Handlers run on the worker threads: they must not block on actors for
// long (read atomics, or ask with a short timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"

namespace gpumart::metrics {

// Worker threads, queued connections and limits of HttpServerOptions' defaults.
constexpr size_t kHttpThreads = 2;
constexpr size_t kHttpQueuedConnections = 16;
// A scrape has no body; the node raises it for the console's dry run (console::kMaxRequestBodyBytes).
constexpr size_t kMaxHttpBodyBytes = 4096;
constexpr std::chrono::milliseconds kHttpReadTimeout{2'000};
constexpr std::chrono::milliseconds kHttpWriteTimeout{2'000};
constexpr size_t kHttpKeepAliveRequests = 16;  // requests on one connection, then it is closed
constexpr std::chrono::seconds kHttpKeepAliveTimeout{2};

// Where to listen: "HOST:PORT"; HOST an IPv4 address, a name ("localhost") or an IPv6 address
// in brackets ("[::1]:7702"); PORT 1-65535, or 0 or "*" for one the system picks.
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};
Result<ListenAddress> ParseListenAddress(std::string_view text);

struct HttpRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // decoded, without the query
  std::string body;
  // The query string's parameters, decoded; a name given twice keeps every value, in order.
  std::multimap<std::string, std::string> params;
  std::string content_type;  // the Content-Type header as sent; empty when absent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more headers (name, value)
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpRoute {
  std::string method;  // "GET" (also answers HEAD), "POST", ...
  std::string path;    // exact, e.g. "/metrics"
  HttpHandler handler;
};

struct HttpServerOptions {
  size_t threads = kHttpThreads;
  size_t queued_connections = kHttpQueuedConnections;
  size_t max_body_bytes = kMaxHttpBodyBytes;
  std::chrono::milliseconds read_timeout = kHttpReadTimeout;
  std::chrono::milliseconds write_timeout = kHttpWriteTimeout;
  size_t keep_alive_requests = kHttpKeepAliveRequests;
  std::chrono::seconds keep_alive_timeout = kHttpKeepAliveTimeout;
  // Headers on every answer, errors included (the console's Content-Security-Policy).
  std::vector<std::pair<std::string, std::string>> headers;
  // The body of an error answer the server makes itself (404, 405, 413, 414, 400 ...): null
  // is "<status> <reason>\n" as text; else this is called with the status, its reason and the
  // request as far as it was read (method and path), and its content type and body are sent.
  std::function<HttpResponse(int status, std::string_view reason, const HttpRequest& request)> error_body;
};

class HttpServer {
 public:
  // Binds `listen` (exclusively: a port another process listens on is an error, never shared)
  // and serves `routes` on a thread of its own until destroyed.
  static Result<std::unique_ptr<HttpServer>> Start(const ListenAddress& listen, std::vector<HttpRoute> routes,
                                                   HttpServerOptions options = {});
  // Stops accepting, finishes the requests in progress (bounded by the timeouts) and joins.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The address actually bound, "HOST:PORT" (the port the system picked for 0).
  const std::string& address() const;
  uint16_t port() const;

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpumart::metrics
