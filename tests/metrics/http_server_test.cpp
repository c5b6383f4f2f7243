#include "node/metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "node/metrics/metrics.h"

namespace gpumart::metrics {
namespace {

// A raw loopback connection, so tests can send what no HTTP client library would.
class RawConnection {
 public:
  static bool Complete(const std::string& response) {
    const size_t end = response.find("\r\n\r\n");
    const size_t length = response.find("Content-Length: ");
    if (end == std::string::npos || length == std::string::npos || length > end) return false;
    return response.size() >= end + 4 + std::stoul(response.substr(length + 16));
  }

  explicit RawConnection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }

  // Sends all of `bytes` unless the server closes first (a server may answer and close before a
  // huge request is all sent).
  void Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }
  // What the server sends until it closes the connection, a whole response with a
  // Content-Length is in (a server may keep the connection open), or `timeout` passes.
  std::string ReadAll(std::chrono::milliseconds timeout = std::chrono::milliseconds(5'000)) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
      if (Complete(out)) break;
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

std::string Exchange(uint16_t port, const std::string& request) {
  RawConnection connection(port);
  if (!connection.connected()) return "(no connection)";
  connection.Send(request);
  return connection.ReadAll();
}

std::string Get(uint16_t port, const std::string& path) {
  return Exchange(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<HttpRoute> routes;
    routes.push_back({"GET", "/metrics", [](const HttpRequest&) {
                        return HttpResponse{200, std::string(kContentType), "# metrics\n"};
                      }});
    routes.push_back({"GET", "/fails", [](const HttpRequest&) -> HttpResponse {
                        throw std::runtime_error("handler bug");
                      }});
    HttpServerOptions options;
    options.read_timeout = std::chrono::milliseconds(300);
    options.keep_alive_timeout = std::chrono::seconds(1);
    auto started = HttpServer::Start(ListenAddress{"127.0.0.1", 0}, std::move(routes), options);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server_ = std::move(started).value();
  }
  uint16_t port() const { return server_->port(); }
  bool Serves() { return Get(port(), "/metrics").starts_with("HTTP/1.1 200"); }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, ServesItsRoute) {
  EXPECT_NE(port(), 0);
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(port()));
  const std::string response = Get(port(), "/metrics?name[]=x");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << response;
  EXPECT_TRUE(response.ends_with("\r\n\r\n# metrics\n")) << response;
  const std::string head = Exchange(port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;  // no body
}

TEST_F(HttpServerTest, OtherPathsAre404AndOtherMethods405) {
  const std::string missing = Get(port(), "/metricsx");
  EXPECT_TRUE(missing.starts_with("HTTP/1.1 404 Not Found\r\n")) << missing;
  EXPECT_TRUE(missing.ends_with("404 not found\n")) << missing;
  EXPECT_TRUE(Get(port(), "/").starts_with("HTTP/1.1 404"));
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    const std::string answer = Exchange(port(), std::string(method) +
                                                    " /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                                    "Connection: close\r\n\r\nhi");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << method << ": " << answer;
    EXPECT_NE(answer.find("Allow: GET, HEAD\r\n"), std::string::npos) << answer;
  }
  EXPECT_TRUE(Serves());
}

TEST_F(HttpServerTest, BadRequestsAreAnsweredAndTheServerKeepsServing) {
  // A path over cpp-httplib's request-line limit.
  const std::string long_path = Get(port(), "/" + std::string(64 * 1024, 'a'));
  EXPECT_TRUE(long_path.starts_with("HTTP/1.1 414")) << long_path.substr(0, 100);
  EXPECT_TRUE(Serves());
  // Huge headers: answered with an error or closed, never served, never a hang.
  std::string huge = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 64; ++i) huge += "X-Filler-" + std::to_string(i) + ": " + std::string(16 * 1024, 'b') + "\r\n";
  huge += "\r\n";
  const std::string answer = Exchange(port(), huge);
  EXPECT_FALSE(answer.starts_with("HTTP/1.1 200")) << answer.substr(0, 100);
  EXPECT_TRUE(Serves());
  // A body over the limit on a route that takes none, garbage, and an unknown method.
  EXPECT_TRUE(Exchange(port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
                  .starts_with("HTTP/1.1 405"));
  EXPECT_FALSE(Exchange(port(), "\x01\x02 garbage\r\n\r\n").starts_with("HTTP/1.1 200"));
  EXPECT_TRUE(Exchange(port(), "BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(Serves());
}

TEST_F(HttpServerTest, AHandlerThatThrowsIs500) {
  const std::string answer = Get(port(), "/fails");
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 500")) << answer;
  EXPECT_TRUE(Serves());
}

TEST_F(HttpServerTest, IdleConnectionsDoNotStopServingForLong) {
  // More silent connections than worker threads: cpp-httplib drops each that sends nothing within
  // the keep-alive timeout (1 s here), so a scrape queued behind them is answered soon.
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (size_t i = 0; i < kHttpThreads + 1; ++i) idle.push_back(std::make_unique<RawConnection>(port()));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Serves());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(HttpServerTest, APortInUseIsAnErrorNotShared) {
  auto second = HttpServer::Start(ListenAddress{"127.0.0.1", port()}, {});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:" + std::to_string(port())), std::string::npos)
      << second.status().message();
  EXPECT_TRUE(Serves());
}

// What the console builds on: a handler sees the query's parameters (every value of a repeated
// name) and the Content-Type, sets headers of its own; the options' headers are on every answer,
// errors included, and error_body writes the errors the server makes itself.
TEST(HttpServerOptionsTest, ParamsHeadersAndErrorBodies) {
  std::vector<HttpRoute> routes;
  routes.push_back({"POST", "/echo", [](const HttpRequest& request) {
                      std::string body = request.content_type + "|" + request.body;
                      for (const auto& [name, value] : request.params) body += "|" + name + "=" + value;
                      return HttpResponse{201, "text/plain", body, {{"X-Echo", "yes"}}};
                    }});
  HttpServerOptions options;
  options.max_body_bytes = 16;
  options.headers = {{"Content-Security-Policy", "default-src 'self'"}};
  options.error_body = [](int status, std::string_view reason, const HttpRequest& request) {
    return HttpResponse{status, "application/json", "{\"error\":\"" + std::string(reason) + " " + request.path + "\"}", {}};
  };
  auto server = HttpServer::Start(ListenAddress{"127.0.0.1", 0}, std::move(routes), options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const uint16_t port = (*server)->port();
  const std::string echo = Exchange(port, "POST /echo?a=1&b=x%20y&a=2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/yaml\r\n"
                                          "Content-Length: 2\r\nConnection: close\r\n\r\nhi");
  EXPECT_TRUE(echo.starts_with("HTTP/1.1 201")) << echo;
  EXPECT_TRUE(echo.ends_with("text/yaml|hi|a=1|a=2|b=x y")) << echo;
  EXPECT_NE(echo.find("X-Echo: yes\r\n"), std::string::npos) << echo;
  EXPECT_NE(echo.find("Content-Security-Policy: default-src 'self'\r\n"), std::string::npos) << echo;
  const std::string missing = Get(port, "/nothing");
  EXPECT_TRUE(missing.starts_with("HTTP/1.1 404")) << missing;
  EXPECT_TRUE(missing.ends_with("{\"error\":\"not found /nothing\"}")) << missing;
  EXPECT_NE(missing.find("Content-Security-Policy: default-src 'self'\r\n"), std::string::npos) << missing;
  const std::string wrong = Get(port, "/echo");
  EXPECT_TRUE(wrong.starts_with("HTTP/1.1 405")) << wrong;
  EXPECT_NE(wrong.find("Allow: POST\r\n"), std::string::npos) << wrong;
  EXPECT_TRUE(wrong.ends_with("{\"error\":\"method not allowed /echo\"}")) << wrong;
  const std::string large = Exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/yaml\r\n"
                                           "Content-Length: 17\r\nConnection: close\r\n\r\n" + std::string(17, 'a'));
  EXPECT_TRUE(large.starts_with("HTTP/1.1 413")) << large;
  EXPECT_TRUE(large.ends_with("{\"error\":\"payload too large /echo\"}")) << large;
}

TEST(HttpServerStartTest, UnknownMethodInARouteIsRefused) {
  std::vector<HttpRoute> routes{{"BREW", "/coffee", [](const HttpRequest&) { return HttpResponse{}; }}};
  EXPECT_FALSE(HttpServer::Start(ListenAddress{"127.0.0.1", 0}, std::move(routes)).ok());
}

TEST(ListenAddressTest, Parses) {
  auto plain = ParseListenAddress("127.0.0.1:7702");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 7702);
  EXPECT_EQ(ParseListenAddress("localhost:*")->port, 0);
  EXPECT_EQ(ParseListenAddress("0.0.0.0:0")->port, 0);
  auto v6 = ParseListenAddress("[::1]:9");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"", "7702", ":7702", "host:", "host:65536", "host:-1", "host:12x", "::1:80", "[::1:80",
                          "ho st:80", "tcp://127.0.0.1:80"}) {
    EXPECT_FALSE(ParseListenAddress(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace gpumart::metrics
