#include "node/console/console.h"

#include <memory>
#include <set>

#include "actors/clock.h"
#include "actors/outbox.h"
#include "market/codec.h"
#include "node/client_queries.h"
#include "node/console/assets.h"
#include "node/json.h"

namespace gpumart::console {
namespace {

using metrics::HttpRequest;
using metrics::HttpResponse;

constexpr std::string_view kJsonType = "application/json; charset=utf-8";

HttpResponse JsonAnswer(int status, std::string body) {
  return HttpResponse{status, std::string(kJsonType), std::move(body) + "\n", {}};
}

HttpResponse JsonError(int status, std::string_view message) {
  return JsonAnswer(status, node::DumpJson(node::Json{{"error", message}}));
}

// The HTTP status of a query's error (docs/API.md, "Errors").
int HttpStatusOf(const Status& status) {
  switch (status.code()) {
    case Status::Code::kInvalidArgument:
    case Status::Code::kLimitExceeded:
    case Status::Code::kCorruption: return 400;
    case Status::Code::kNotFound: return 404;
    case Status::Code::kUnavailable:
    case Status::Code::kTimeout: return 503;
    default: return 500;
  }
}

// A request's parameters as query args: only the `allowed` names, each at most once and within
// its length limit (`q`: the offer query's; others kMaxParamBytes).
Result<std::map<std::string, std::string>> Params(const HttpRequest& request, const std::set<std::string>& allowed) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : request.params) {
    if (!allowed.contains(name)) {
      std::string known;
      for (const std::string& each : allowed) known += (known.empty() ? "" : ", ") + each;
      return Status::InvalidArgument("unknown parameter \"" + node::Printable(name.substr(0, kMaxParamBytes)) + "\"" +
                                     (known.empty() ? " (this endpoint takes none)" : " (it takes " + known + ")"));
    }
    const size_t limit = name == "q" ? market::kMaxOfferQueryBytes : kMaxParamBytes;
    if (value.size() > limit) {
      return Status::InvalidArgument("parameter " + name + " is longer than " + std::to_string(limit) + " bytes");
    }
    if (!out.emplace(name, value).second) return Status::InvalidArgument("parameter " + name + " is given twice");
  }
  return out;
}

Result<uint64_t> Number(const std::string& name, const std::string& text) {
  uint64_t value = 0;
  if (text.empty() || text.size() > 19) return Status::InvalidArgument("parameter " + name + " is not a number");
  for (char c : text) {
    if (c < '0' || c > '9') return Status::InvalidArgument("parameter " + name + " is not a number");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

template <size_t N>
Result<client::Bytes> HexId(const std::string& name, const std::string& text) {
  std::optional<std::array<uint8_t, N>> bytes = market::FromHex<N>(text);
  if (!bytes) {
    return Status::InvalidArgument("parameter " + name + " must be " + std::to_string(2 * N) + " hex digits");
  }
  return client::Bytes(bytes->begin(), bytes->end());
}

// A content type without its parameters, lower-case ("text/yaml; charset=utf-8" -> "text/yaml").
std::string MediaType(std::string_view content_type) {
  std::string out;
  for (char c : content_type.substr(0, content_type.find(';'))) {
    if (c == ' ' || c == '\t') continue;
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return out;
}

class Api {
 public:
  explicit Api(ConsoleSources sources) : sources_(std::move(sources)) {}

  // Runs query `kind` with `args` on this thread (an outbox of its own: HTTP workers are not
  // actors) and answers its JSON, or its error.
  HttpResponse Query(const std::string& kind, const client::Fields& args) const {
    Result<std::string> json = QueryJson(kind, args);
    if (!json.ok()) return JsonError(HttpStatusOf(json.status()), json.status().message());
    return JsonAnswer(200, std::move(json).value());
  }

  Result<std::string> QueryJson(const std::string& kind, const client::Fields& args) const {
    const auto handler = sources_.queries.find(kind);
    if (handler == sources_.queries.end()) return Status::Internal("the node has no query " + kind);
    actors::Outbox outbox(*sources_.system);
    const client::QueryContext context{outbox, sources_.gossip, SystemClock::Instance().NowMs()};
    Result<client::Fields> result = handler->second(args, context);
    if (!result.ok()) return result.status();
    Result<const std::string*> json = client::Require<std::string>(*result, "json");
    if (!json.ok()) return Status::Internal("query " + kind + " answered no JSON");
    return **json;
  }

  HttpResponse Offers(const HttpRequest& request) const {
    auto params = Params(request, {"q", "order", "limit"});
    if (!params.ok()) return JsonError(400, params.status().message());
    client::Fields args;
    if (auto q = params->find("q"); q != params->end()) args["query"] = q->second;
    if (auto order = params->find("order"); order != params->end()) args["order"] = order->second;
    if (auto limit = params->find("limit"); limit != params->end()) {
      Result<uint64_t> value = Number("limit", limit->second);
      if (!value.ok()) return JsonError(400, value.status().message());
      args["limit"] = *value;
    }
    return Query("offers", args);
  }

  HttpResponse Leases(const HttpRequest& request) const {
    auto params = Params(request, {"state", "tenant", "provider", "after", "limit"});
    if (!params.ok()) return JsonError(400, params.status().message());
    client::Fields args;
    for (const auto& [name, value] : *params) {
      if (name == "state") {
        args[name] = value;
      } else if (name == "limit") {
        Result<uint64_t> number = Number(name, value);
        if (!number.ok()) return JsonError(400, number.status().message());
        args[name] = *number;
      } else {
        Result<client::Bytes> id = name == "after" ? HexId<market::kIdBytes>(name, value)
                                                   : HexId<market::kPublicKeyBytes>(name, value);
        if (!id.ok()) return JsonError(400, id.status().message());
        args[name] = std::move(id).value();
      }
    }
    return Query("leases", args);
  }

  HttpResponse Lease(const HttpRequest& request) const {
    auto params = Params(request, {"id"});
    if (!params.ok()) return JsonError(400, params.status().message());
    const auto id = params->find("id");
    if (id == params->end()) return JsonError(400, "parameter id (the lease's id) is missing");
    Result<client::Bytes> bytes = HexId<market::kIdBytes>("id", id->second);
    if (!bytes.ok()) return JsonError(400, bytes.status().message());
    return Query("lease", client::Fields{{"lease", std::move(bytes).value()}});
  }

  HttpResponse NodeStatus(const HttpRequest& request) const {
    auto params = Params(request, {});
    if (!params.ok()) return JsonError(400, params.status().message());
    return Query("status", {});
  }

  // POST an SDL: the dry run of each of its placement groups against the live offer book.
  HttpResponse DryRun(const HttpRequest& request) const {
    static const std::set<std::string> kSdlTypes{"application/yaml", "application/x-yaml", "text/yaml",
                                                 "text/x-yaml", "text/plain"};
    if (!kSdlTypes.contains(MediaType(request.content_type))) {
      return JsonError(415, "post the SDL as Content-Type application/yaml (or text/yaml, text/plain), not \"" +
                                node::Printable(request.content_type.substr(0, kMaxParamBytes)) + "\"");
    }
    auto params = Params(request, {"policy", "top"});
    if (!params.ok()) return JsonError(400, params.status().message());
    if (request.body.empty()) return JsonError(400, "the body is empty: post an SDL (deploy.yaml)");
    Result<market::Deployment> deployment = market::ParseSdl(request.body);
    if (!deployment.ok()) return JsonError(400, "SDL: " + deployment.status().message());
    if (deployment->orders.empty()) return JsonError(400, "SDL: no placement group has services to place");
    if (deployment->orders.size() > node::kMaxMatchOrders) {
      return JsonError(400, "SDL: more than " + std::to_string(node::kMaxMatchOrders) + " placement groups");
    }
    client::Fields args;
    std::vector<client::Bytes> orders;
    for (const market::Order& order : deployment->orders) orders.push_back(market::EncodeBody(order));
    args["orders"] = std::move(orders);
    if (auto policy = params->find("policy"); policy != params->end()) args["policy"] = policy->second;
    if (auto top = params->find("top"); top != params->end()) {
      Result<uint64_t> value = Number("top", top->second);
      if (!value.ok()) return JsonError(400, value.status().message());
      args["top"] = *value;
    }
    Result<std::string> json = QueryJson("match", args);
    if (!json.ok()) return JsonError(HttpStatusOf(json.status()), json.status().message());
    node::Json answer = node::Json::parse(*json, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded()) return JsonError(500, "the dry run answered JSON that does not parse");
    answer["warnings"] = node::ToJson(*deployment)["warnings"];
    return JsonAnswer(200, node::DumpJson(answer));
  }

 private:
  const ConsoleSources sources_;
};

}  // namespace

std::vector<metrics::HttpRoute> ConsoleRoutes(ConsoleSources sources) {
  auto api = std::make_shared<const Api>(std::move(sources));
  std::vector<metrics::HttpRoute> routes;
  for (const Asset& asset : Assets()) {
    HttpResponse answer{200, std::string(asset.content_type), std::string(asset.body), {}};
    const auto serve = [answer](const HttpRequest&) { return answer; };
    routes.push_back({"GET", std::string(asset.path), serve});
    if (asset.path == "/index.html") routes.push_back({"GET", "/", serve});
  }
  routes.push_back({"GET", "/api/v1/offers", [api](const HttpRequest& request) { return api->Offers(request); }});
  routes.push_back({"GET", "/api/v1/leases", [api](const HttpRequest& request) { return api->Leases(request); }});
  routes.push_back({"GET", "/api/v1/lease", [api](const HttpRequest& request) { return api->Lease(request); }});
  routes.push_back({"GET", "/api/v1/status", [api](const HttpRequest& request) { return api->NodeStatus(request); }});
  routes.push_back({"POST", "/api/v1/dryrun", [api](const HttpRequest& request) { return api->DryRun(request); }});
  return routes;
}

std::vector<std::pair<std::string, std::string>> SecurityHeaders() {
  return {{"Content-Security-Policy",
           "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"},
          {"X-Content-Type-Options", "nosniff"},
          {"X-Frame-Options", "DENY"},
          {"Referrer-Policy", "no-referrer"},
          {"Cache-Control", "no-store"}};
}

HttpResponse ErrorBody(int status, std::string_view reason, const HttpRequest& request) {
  if (request.path.starts_with("/api/")) {
    std::string message(reason);
    if (status == 404) message = "no endpoint " + node::Printable(request.path.substr(0, kMaxParamBytes)) + " (docs/API.md)";
    if (status == 405) message = "method " + node::Printable(request.method.substr(0, kMaxParamBytes)) + " is not allowed on " +
                                 node::Printable(request.path.substr(0, kMaxParamBytes)) + " (see the Allow header)";
    if (status == 413) message = "the body is larger than " + std::to_string(kMaxRequestBodyBytes) + " bytes";
    return JsonError(status, message);
  }
  return HttpResponse{status, "text/plain; charset=utf-8", std::to_string(status) + " " + std::string(reason) + "\n", {}};
}

}  // namespace gpumart::console
