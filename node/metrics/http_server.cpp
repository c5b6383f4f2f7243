#include "node/metrics/http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

// The Debian package builds its library with the macros pkg-config gives (TLS, zlib, brotli);
// they change the library's class layouts, so CMake adds the same to this file.
#include <httplib.h>

namespace gpumart::metrics {

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::InvalidArgument("\"" + std::string(text) + "\" is not HOST:PORT");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return Status::InvalidArgument("\"" + std::string(text) + "\": an IPv6 host is written [ADDRESS]");
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Status::InvalidArgument("\"" + std::string(text) + "\": write an IPv6 host in brackets, [ADDRESS]:PORT");
  }
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == ':';
    if (!ok) return Status::InvalidArgument("\"" + std::string(text) + "\": the host has a character it cannot have");
  }
  ListenAddress address;
  address.host = std::string(host);
  if (port == "*") return address;
  unsigned value = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || value > 65535) {
    return Status::InvalidArgument("\"" + std::string(text) + "\": the port is not 0-65535 or *");
  }
  address.port = static_cast<uint16_t>(value);
  return address;
}

namespace {

// Connections accepted and waiting for a worker, at most `capacity`; when the queue is full the
// accepting thread serves the connection itself, so it stops accepting until then (clients
// wait in the kernel's listen backlog) rather than queueing without bound.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t capacity) : capacity_(capacity) {
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~BoundedPool() override { shutdown(); }

  void enqueue(std::function<void()> job) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (jobs_.size() < capacity_ && !workers_.empty()) {
        jobs_.push_back(std::move(job));
        ready_.notify_one();
        return;
      }
    }
    job();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (std::thread& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
  }

 private:
  void Work() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every accepted connection served
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// cpp-httplib's patterns are regular expressions; a route's path is matched exactly.
std::string ExactPattern(const std::string& path) {
  std::string pattern;
  for (char c : path) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) pattern += '\\';
    pattern += c;
  }
  return pattern;
}

std::string_view Reason(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 408: return "request timeout";
    case 413: return "payload too large";
    case 414: return "URI too long";
    case 415: return "unsupported media type";
    case 431: return "request header fields too large";
    case 500: return "internal error";
    default: return "error";
  }
}

}  // namespace

class HttpServer::Impl {
 public:
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listened{false};  // listen_after_bind returned
  std::string address;
  uint16_t port = 0;
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ListenAddress& listen, std::vector<HttpRoute> routes,
                                                      HttpServerOptions options) {
  auto impl = std::make_unique<Impl>();
  httplib::Server& server = impl->server;
  const size_t threads = std::max<size_t>(1, options.threads);
  const size_t queued = options.queued_connections;
  server.new_task_queue = [threads, queued] { return new BoundedPool(threads, queued); };
  // cpp-httplib's default adds SO_REUSEPORT, which lets a second process listen on the same
  // port (the kernel would split the scrapes between two nodes). SO_REUSEADDR only: a restart
  // can rebind at once, a second listener fails.
  server.set_socket_options([](socket_t socket) {
    int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_read_timeout(options.read_timeout);
  server.set_write_timeout(options.write_timeout);
  server.set_keep_alive_max_count(options.keep_alive_requests);
  server.set_keep_alive_timeout(options.keep_alive_timeout.count());
  server.set_payload_max_length(options.max_body_bytes);

  // 404 and 405 before a body is read; a matching request goes on to cpp-httplib's routing.
  server.set_pre_routing_handler([routes](const httplib::Request& request, httplib::Response& response) {
    std::string allow;
    for (const HttpRoute& route : routes) {
      if (route.path != request.path) continue;
      if (route.method == request.method || (route.method == "GET" && request.method == "HEAD")) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      allow += (allow.empty() ? "" : ", ") + route.method + (route.method == "GET" ? ", HEAD" : "");
    }
    response.status = allow.empty() ? 404 : 405;
    if (!allow.empty()) response.set_header("Allow", allow);
    return httplib::Server::HandlerResponse::Handled;
  });
  for (const HttpRoute& route : routes) {
    httplib::Server::Handler handler = [handle = route.handler](const httplib::Request& request,
                                                                httplib::Response& response) {
      HttpRequest asked{request.method, request.path, request.body, {}, request.get_header_value("Content-Type")};
      for (const auto& [name, value] : request.params) asked.params.emplace(name, value);
      const HttpResponse answer = handle(asked);
      response.status = answer.status;
      for (const auto& [name, value] : answer.headers) response.set_header(name, value);
      response.set_content(answer.body, answer.content_type.c_str());
    };
    const std::string pattern = ExactPattern(route.path);
    if (route.method == "GET") server.Get(pattern, handler);
    else if (route.method == "POST") server.Post(pattern, handler);
    else if (route.method == "PUT") server.Put(pattern, handler);
    else if (route.method == "PATCH") server.Patch(pattern, handler);
    else if (route.method == "DELETE") server.Delete(pattern, handler);
    else return Status::InvalidArgument("http route " + route.path + ": unknown method " + route.method);
  }
  // Every error answer says what it is (cpp-httplib's own have no body).
  server.set_error_handler([error_body = options.error_body](const httplib::Request& request,
                                                              httplib::Response& response) {
    if (!response.body.empty()) return;
    if (error_body) {
      const HttpResponse answer = error_body(response.status, Reason(response.status),
                                             HttpRequest{request.method, request.path, {}, {}, {}});
      response.set_content(answer.body, answer.content_type.c_str());
      return;
    }
    response.set_content(std::to_string(response.status) + " " + std::string(Reason(response.status)) + "\n",
                         "text/plain; charset=utf-8");
  });
  if (!options.headers.empty()) {
    httplib::Headers headers;
    for (const auto& [name, value] : options.headers) headers.emplace(name, value);
    server.set_default_headers(std::move(headers));
  }
  server.set_exception_handler([error_body = options.error_body](const httplib::Request& request,
                                                                  httplib::Response& response, std::exception_ptr) {
    response.status = 500;
    if (error_body) {
      const HttpResponse answer = error_body(500, Reason(500), HttpRequest{request.method, request.path, {}, {}, {}});
      response.set_content(answer.body, answer.content_type.c_str());
      return;
    }
    response.set_content("500 internal error\n", "text/plain; charset=utf-8");
  });

  const std::string shown = listen.host.find(':') != std::string::npos ? "[" + listen.host + "]" : listen.host;
  int port = listen.port;
  if (listen.port == 0) {
    port = server.bind_to_any_port(listen.host);
  } else if (!server.bind_to_port(listen.host, listen.port)) {
    port = -1;
  }
  if (port <= 0) {
    return Status::IoError("cannot listen on " + shown + ":" + (listen.port == 0 ? "*" : std::to_string(listen.port)) +
                           " (the port is in use, or the host is not an address of this machine)");
  }
  impl->port = static_cast<uint16_t>(port);
  impl->address = shown + ":" + std::to_string(port);
  impl->thread = std::thread([&server, &listened = impl->listened] {
    server.listen_after_bind();
    listened = true;
  });
  // stop() only works once the server runs; wait for that (it is bound already, so at once).
  while (!server.is_running() && !impl->listened) std::this_thread::sleep_for(std::chrono::microseconds(100));
  if (impl->listened) {
    impl->thread.join();
    return Status::IoError("cannot serve on " + impl->address);
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& HttpServer::address() const { return impl_->address; }
uint16_t HttpServer::port() const { return impl_->port; }

}  // namespace gpumart::metrics
