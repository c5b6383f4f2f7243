// The console's JSON API (node/console/console.h, docs/API.md) against real gpumartd processes on
// loopback (tests/console/console_market.h), with cpp-httplib's client.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tests/console/console_market.h"

namespace gpumart::console_test {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A JSON answer: its status and parsed body (discarded when the body is no JSON).
struct Answer {
  int status = 0;
  Json body;
  std::string content_type;
  std::string allow;
  std::string csp;
};

Answer Read(const httplib::Result& result) {
  Answer answer;
  if (!result) return answer;
  answer.status = result->status;
  answer.body = Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  answer.content_type = result->get_header_value("Content-Type");
  answer.allow = result->get_header_value("Allow");
  answer.csp = result->get_header_value("Content-Security-Policy");
  return answer;
}

class ConsoleApiTest : public ::testing::Test {
 protected:
  Answer Get(const std::string& path) { return Read(Client().Get(path)); }
  Answer GetWith(const std::string& path, const httplib::Params& params) {
    return Read(Client().Get(path, params, httplib::Headers{}));
  }
  Answer Post(const std::string& path, const std::string& body, const std::string& type) {
    return Read(Client().Post(path, body, type));
  }
  httplib::Client Client() {
    httplib::Client client(market_->url());
    client.set_read_timeout(std::chrono::seconds(10));
    return client;
  }
  // An error answer: status, JSON content type, and an "error" message.
  static void ExpectError(const Answer& answer, int status, const std::string& says) {
    EXPECT_EQ(answer.status, status) << answer.body;
    EXPECT_EQ(answer.content_type, "application/json; charset=utf-8");
    ASSERT_TRUE(answer.body.is_object() && answer.body["error"].is_string()) << answer.body;
    EXPECT_NE(answer.body["error"].get<std::string>().find(says), std::string::npos) << answer.body;
  }

  std::unique_ptr<ConsoleMarket> market_;
};

// Every endpoint, against a relay whose book holds two providers and whose ledger holds a lease.
TEST_F(ConsoleApiTest, EveryEndpointAnswersFromALiveMarket) {
  market_ = std::make_unique<ConsoleMarket>(/*providers=*/true);
  ASSERT_TRUE(market_->ok()) << market_->error();
  const std::string h100 = market_->node("h100").key_hex;
  const std::string a100 = market_->node("a100").key_hex;

  // Offers: the whole book (3 device types), then narrowed by the query grammar.
  const Answer all = Get("/api/v1/offers");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(all.body["matched"], 3) << all.body;
  ASSERT_EQ(all.body["offers"].size(), 3u);
  const Answer narrowed = GetWith("/api/v1/offers", {{"q", "gpu_name=a100 num_gpus>=4"}, {"order", "-dph_per_gpu"}});
  ASSERT_EQ(narrowed.status, 200) << narrowed.body;
  ASSERT_EQ(narrowed.body["offers"].size(), 2u) << narrowed.body;
  EXPECT_EQ(narrowed.body["offers"][0]["provider"], a100);
  EXPECT_EQ(narrowed.body["offers"][0]["dph_per_gpu"], 450'000);  // sorted by price, descending
  EXPECT_EQ(narrowed.body["offers"][1]["dph_per_gpu"], 280'000);
  EXPECT_EQ(GetWith("/api/v1/offers", {{"limit", "1"}}).body["offers"].size(), 1u);

  // Leases: the one lease, with its parties, device, price and accrued cost; filters.
  const std::string lease_id = market_->lease()["id"];
  const Answer leases = Get("/api/v1/leases");
  ASSERT_EQ(leases.status, 200) << leases.body;
  ASSERT_EQ(leases.body["leases"].size(), 1u) << leases.body;
  const Json& lease = leases.body["leases"][0];
  EXPECT_EQ(lease["id"], lease_id);
  EXPECT_EQ(lease["state"], "active");
  EXPECT_EQ(lease["provider"], h100);
  EXPECT_EQ(lease["services"][0]["device"]["model"], "h100");
  EXPECT_EQ(lease["denom"], "uakt");
  EXPECT_EQ(lease["price_per_hour"], market_->lease()["price_per_hour"]);
  ASSERT_TRUE(lease["accrued"].is_object()) << lease;
  EXPECT_GE(lease["accrued"]["until_ms"].get<int64_t>(), lease["start_ms"].get<int64_t>());
  EXPECT_LE(lease["accrued"]["cost"].get<uint64_t>(), lease["price_per_hour"].get<uint64_t>());  // < 1 h old
  EXPECT_EQ(GetWith("/api/v1/leases", {{"provider", h100}, {"state", "active"}}).body["leases"].size(), 1u);
  EXPECT_EQ(GetWith("/api/v1/leases", {{"provider", a100}}).body["leases"].size(), 0u);
  EXPECT_EQ(GetWith("/api/v1/leases", {{"state", "closed"}}).body["leases"].size(), 0u);
  EXPECT_EQ(GetWith("/api/v1/leases", {{"tenant", lease["tenant"]}}).body["leases"].size(), 1u);
  const Answer one = GetWith("/api/v1/lease", {{"id", lease_id}});
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.body["id"], lease_id);
  EXPECT_EQ(one.body["provider"], h100);

  // Status: role, peers, gossip traffic and drops, ledger, no capacity on a relay.
  const Answer status = Get("/api/v1/status");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(status.body["role"], "relay");
  EXPECT_EQ(status.body["node"], market_->node("relay").key_hex);
  EXPECT_EQ(status.body["ready_peers"], 2);
  EXPECT_GT(status.body["gossip"]["frames_in"].get<uint64_t>(), 0u);
  EXPECT_TRUE(status.body["gossip"]["drops"].contains("bad_signature")) << status.body;
  EXPECT_EQ(status.body["ledger"]["verified_at_start"], true);
  EXPECT_EQ(status.body["offers"], 2);
  EXPECT_TRUE(status.body["capacity"].is_null());

  // A provider's status: its free capacity per device type (8 H100s, 2 of them leased; the
  // offer that says so leaves 100 ms after the lease, offer_debounce_ms).
  Json provider;
  testing::Eventually(
      [&] {
        auto got = httplib::Client(ConsoleUrl(market_->node("h100"))).Get("/api/v1/status");
        provider = got ? Json::parse(got->body, nullptr, false) : Json();
        return provider.is_object() && provider["capacity"]["gpus"][0]["free_gpus"] == 6;
      },
      milliseconds(5'000));
  EXPECT_EQ(provider["role"], "provider");
  ASSERT_EQ(provider["capacity"]["gpus"].size(), 1u) << provider;
  EXPECT_EQ(provider["capacity"]["gpus"][0]["device"]["model"], "h100");
  EXPECT_EQ(provider["capacity"]["gpus"][0]["free_gpus"], 6) << provider;
  EXPECT_EQ(provider["leases_active"], 1);
  EXPECT_EQ(provider["revenue_per_hour"]["uakt"], lease["price_per_hour"]);

  // Dry run: the H100 provider first (the most preferred option), the A100 second; the SDL's
  // cap is over both.
  const Answer dry = Post("/api/v1/dryrun", ReadFile(kLlmFallbacks), "application/yaml");
  ASSERT_EQ(dry.status, 200) << dry.body;
  ASSERT_EQ(dry.body["groups"].size(), 1u) << dry.body;
  const Json& group = dry.body["groups"][0];
  ASSERT_GE(group["candidates"].size(), 1u) << dry.body;
  EXPECT_EQ(group["candidates"][0]["provider"], h100);
  EXPECT_EQ(group["candidates"][0]["ranks"][0], 0);
  EXPECT_EQ(dry.body["policy"], "preference");
  EXPECT_TRUE(dry.body["warnings"].is_array());
  // The cheapest policy, and an SDL nobody can serve: each provider named with its reason.
  const Answer cheapest = Read(Client().Post("/api/v1/dryrun?policy=cheapest&top=1", ReadFile(kLlmFallbacks), "text/yaml"));
  ASSERT_EQ(cheapest.status, 200) << cheapest.body;
  EXPECT_EQ(cheapest.body["policy"], "cheapest");
  EXPECT_EQ(cheapest.body["groups"][0]["candidates"].size(), 1u);
  const Answer none = Post("/api/v1/dryrun", ReadFile(std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/unservable.yaml"),
                           "text/plain; charset=utf-8");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.body["groups"][0]["candidates"].size(), 0u);
  ASSERT_EQ(none.body["groups"][0]["excluded_providers"].size(), 2u) << none.body;
  for (const Json& excluded : none.body["groups"][0]["excluded_providers"]) {
    EXPECT_TRUE(excluded["provider"] == h100 || excluded["provider"] == a100) << excluded;
    EXPECT_FALSE(excluded["why"].get<std::string>().empty()) << excluded;
  }

  // No answer carries a secret: no key file, no path of the node's files.
  for (const Answer& answer : {all, leases, one, status, dry}) {
    const std::string text = answer.body.dump();
    EXPECT_EQ(text.find("identity.key"), std::string::npos) << text;
    EXPECT_EQ(text.find(market_->node("relay").data_dir), std::string::npos) << text;
    EXPECT_EQ(text.find(".key"), std::string::npos) << text;
  }
}

// Bad input is a JSON error with the status that says what kind: 400 (bad query, parameter, id or
// SDL), 404 (no such endpoint or lease), 405 with Allow, 413 (body over the limit), 415 (a
// POST that is not YAML); the node keeps serving.
TEST_F(ConsoleApiTest, BadRequestsAreJsonErrorsWithTheirStatus) {
  market_ = std::make_unique<ConsoleMarket>(/*providers=*/false);
  ASSERT_TRUE(market_->ok()) << market_->error();
  ExpectError(GetWith("/api/v1/offers", {{"q", "bogus>3"}}), 400, "unknown field 'bogus'");
  ExpectError(GetWith("/api/v1/offers", {{"q", "num_gpus>="}}), 400, "");
  ExpectError(GetWith("/api/v1/offers", {{"q", std::string(5000, 'x')}}), 400, "longer than");
  ExpectError(GetWith("/api/v1/offers", {{"order", "nope"}}), 400, "");
  ExpectError(GetWith("/api/v1/offers", {{"limit", "0"}}), 400, "limit");
  ExpectError(GetWith("/api/v1/offers", {{"limit", "ten"}}), 400, "not a number");
  ExpectError(GetWith("/api/v1/offers", {{"color", "red"}}), 400, "unknown parameter \"color\"");
  ExpectError(Get("/api/v1/offers?q=a&q=b"), 400, "given twice");
  ExpectError(GetWith("/api/v1/leases", {{"state", "sleeping"}}), 400, "active or closed");
  ExpectError(GetWith("/api/v1/leases", {{"tenant", "abc"}}), 400, "64 hex digits");
  ExpectError(GetWith("/api/v1/leases", {{"limit", "100000"}}), 400, "limit");
  ExpectError(Get("/api/v1/lease"), 400, "id");
  ExpectError(GetWith("/api/v1/lease", {{"id", std::string(64, 'g')}}), 400, "hex");
  ExpectError(GetWith("/api/v1/lease", {{"id", std::string(64, '0')}}), 404, "not in this node's ledger");
  ExpectError(Get("/api/v1/status?verbose=1"), 400, "takes none");
  ExpectError(Get("/api/v1/nothing"), 404, "no endpoint /api/v1/nothing");

  // Methods: the API never changes state, so only the dry run takes a POST.
  for (const char* path : {"/api/v1/offers", "/api/v1/leases", "/api/v1/lease", "/api/v1/status"}) {
    const Answer post = Post(path, "x", "text/plain");
    ExpectError(post, 405, "not allowed");
    EXPECT_EQ(post.allow, "GET, HEAD") << path;
    const Answer removed = Read(Client().Delete(path));
    EXPECT_EQ(removed.status, 405) << path;
  }
  const Answer get_dry = Get("/api/v1/dryrun");
  ExpectError(get_dry, 405, "not allowed");
  EXPECT_EQ(get_dry.allow, "POST");

  // Dry runs: malformed, empty, not an SDL, the wrong type, over the size limit.
  ExpectError(Post("/api/v1/dryrun", "version: \"2.0\"\nservices: [", "application/yaml"), 400, "SDL: invalid YAML");
  ExpectError(Post("/api/v1/dryrun", "", "application/yaml"), 400, "empty");
  ExpectError(Post("/api/v1/dryrun", "just: text\n", "application/yaml"), 400, "SDL:");
  ExpectError(Post("/api/v1/dryrun", "{\"version\": \"2.0\"}", "application/json"), 415, "Content-Type");
  ExpectError(Post("/api/v1/dryrun", ReadFile(kLlmFallbacks), "application/x-www-form-urlencoded"), 415, "");
  ExpectError(Read(Client().Post("/api/v1/dryrun?policy=richest", ReadFile(kLlmFallbacks), "application/yaml")), 400,
              "policy");
  ExpectError(Post("/api/v1/dryrun", std::string((size_t{1} << 20) + 1, 'a'), "application/yaml"), 413, "larger than");

  // Still serving.
  EXPECT_EQ(Get("/api/v1/status").status, 200);
  EXPECT_EQ(Get("/api/v1/offers").body["offers"].size(), 0u);
}

// The page: its files, each with its type, every answer (errors too) with a Content-Security-
// Policy that allows nothing from elsewhere, and no inline script or style the policy would block.
TEST_F(ConsoleApiTest, ThePageIsServedUnderAPolicyThatAllowsNothingElse) {
  market_ = std::make_unique<ConsoleMarket>(/*providers=*/false);
  ASSERT_TRUE(market_->ok()) << market_->error();
  const std::string policy = "default-src 'self'";
  struct File {
    const char* path;
    const char* type;
  };
  std::string page;
  for (const File& file : {File{"/", "text/html; charset=utf-8"}, File{"/index.html", "text/html; charset=utf-8"},
                           File{"/console.js", "text/javascript; charset=utf-8"},
                           File{"/console.css", "text/css; charset=utf-8"}, File{"/favicon.svg", "image/svg+xml"}}) {
    auto got = Client().Get(file.path);
    ASSERT_TRUE(got) << file.path;
    EXPECT_EQ(got->status, 200) << file.path;
    EXPECT_EQ(got->get_header_value("Content-Type"), file.type) << file.path;
    EXPECT_TRUE(got->get_header_value("Content-Security-Policy").starts_with(policy)) << file.path;
    EXPECT_EQ(got->get_header_value("X-Content-Type-Options"), "nosniff");
    if (std::string(file.path) == "/") page = got->body;
    // Exactly the file in the repository (embedded at build time).
    const std::string name = std::string(file.path) == "/" ? "/index.html" : file.path;
    EXPECT_EQ(got->body, ReadFile(std::string(GPUMART_SOURCE_DIR) + "/node/console/assets" + name)) << file.path;
  }
  EXPECT_EQ(Get("/api/v1/nothing").csp.substr(0, policy.size()), policy);
  EXPECT_EQ(Get("/api/v1/status").csp.substr(0, policy.size()), policy);
  // Nothing inline (the policy would block it), nothing from another origin.
  EXPECT_FALSE(std::regex_search(page, std::regex("<script(?![^>]*\\bsrc=)"))) << page;
  EXPECT_FALSE(std::regex_search(page, std::regex("\\son[a-z]+\\s*=", std::regex::icase)));
  EXPECT_FALSE(std::regex_search(page, std::regex("style\\s*=|<style", std::regex::icase)));
  EXPECT_FALSE(std::regex_search(page, std::regex("(src|href)\\s*=\\s*\"(https?:)?//")));
  // /metrics is still there, as text.
  auto metrics = Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("# TYPE"), std::string::npos);
  // Outside /api/ an unknown path is text, as before.
  auto missing = Client().Get("/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, "404 not found\n");
}

}  // namespace
}  // namespace gpumart::console_test
