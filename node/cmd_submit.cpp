// `gpumart submit SDL [--node ADDR] [--key FILE] [--policy preference|cheapest] [--bid-window MS]
// [--late-bid-wait MS] [--lease-timeout MS] [--json] [--strict] [--keep-running [--max-restarts N]]`: the tenant's side of the market. Reads the SDL into
// one Order per placement group, signs them with the tenant's key, asks the node for a dry run
// (its `match` query), publishes the orders over the node's client port and drives a
// bidding::TenantSession (collect and check bids, close the window early when waiting cannot
// help, accept the best, verify the Lease, fall back to the next best) until every group has its
// lease or cannot get one. docs/CLIENT.md, "Submitting a deployment". With --keep-running it
// then watches the leases and submits a group again when its lease is preempted or its provider
// fails (docs/SUBMIT.md, "Keeping a job running").
#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "actors/clock.h"
#include "bidding/tenant_session.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "market/sdl.h"
#include "node/cli.h"
#include "node/client/client.h"
#include "node/config.h"
#include "node/json.h"
#include "node/offer_book_actor.h"

namespace gpumart::node {
namespace {

using bidding::TenantEvent;

// How long the orders live: the window, a few fallbacks and the trip back, with room. A provider
// holds its reservation no longer than this (docs/PRICING.md).
constexpr int64_t kSubmitOrderTtlMs = 120'000;
constexpr int64_t kMaxWindowMs = 600'000;  // --bid-window, --late-bid-wait, --lease-timeout: at most 10 minutes
// How many candidates the dry run asks for per group: the more, the sooner the window can close.
constexpr uint64_t kDryRunTop = kMaxOfferQueryResults;
// The longest the CLI blocks in one wait for the node, so a dead node cannot hang it past its
// deadlines.
constexpr int64_t kMaxWaitMs = 200;

struct SubmitOptions {
  std::string sdl;
  std::string node;
  std::string key;
  std::string data_dir = std::string(kDefaultDataDir);
  std::string policy = "preference";
  int64_t bid_window_ms = 3'000;
  int64_t late_bid_wait_ms = bidding::TenantSessionOptions{}.late_bid_wait_ms;
  int64_t lease_timeout_ms = 2'000;
  bool json = false;
  bool strict = false;
  bool keep_running = false;
  bidding::KeepRunningPolicy keep_running_policy;
};

// --keep-running: how often each lease is looked up at the node, and the most restarts asked for.
constexpr int64_t kKeepRunningPollMs = 500;
constexpr uint32_t kMaxRestarts = 1'000;

// $XDG_CONFIG_HOME/gpumart/tenant.key, else $HOME/.config/gpumart/tenant.key.
Result<std::string> DefaultTenantKeyDir() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::string(xdg) + "/gpumart";
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] == '\0') {
    return Status::NotFound("no --key given and neither $XDG_CONFIG_HOME nor $HOME is set");
  }
  return std::string(home) + "/.config/gpumart";
}

// Creates `dir` and its missing parents, the new ones private to the user.
Status MakeDirs(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string part = dir.substr(0, slash);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::IoError("cannot create " + part + ": " + std::strerror(errno));
    }
    if (slash == std::string::npos) return Status::Ok();
  }
}

// The tenant's key: the file given, or the default one, created (mode 0600) when there is none,
// saying where on stderr.
Result<market::Identity> TenantKey(const std::string& explicit_path, std::ostream& err) {
  std::string path = explicit_path;
  if (path.empty()) {
    Result<std::string> dir = DefaultTenantKeyDir();
    if (!dir.ok()) return dir.status();
    GPUMART_RETURN_IF_ERROR(MakeDirs(*dir));
    path = *dir + "/tenant.key";
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    Result<market::Identity> loaded = market::LoadKeyFile(path);
    if (!loaded.ok()) return loaded.status().WithContext(path);
    return loaded;
  }
  const market::Identity identity = market::Identity::Generate();
  GPUMART_RETURN_IF_ERROR(market::WriteKeyFile(path, identity));
  err << "gpumart submit: created the tenant key " << path << " (mode 0600; public key "
      << market::ToHex(identity.public_key()) << "). It signs your orders and owns your leases: keep it.\n";
  return identity;
}

std::optional<market::ExclusionReason> ExclusionOfName(std::string_view name) {
  for (uint8_t r = 0; r <= static_cast<uint8_t>(market::ExclusionReason::kWorkLimit); ++r) {
    const auto reason = static_cast<market::ExclusionReason>(r);
    if (market::ToString(reason) == name) return reason;
  }
  return std::nullopt;
}

// The node's `match` answer (docs/CLIENT.md) as one DryRun per order; the node is trusted for
// its numbers (reputation is the node's to compute) but its JSON is still checked for shape.
Result<std::vector<bidding::DryRun>> ParseDryRun(const client::Fields& result, size_t orders) {
  auto text = client::Require<std::string>(result, "json");
  if (!text.ok()) return text.status();
  const Json json = Json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("groups") || !json["groups"].is_array() ||
      json["groups"].size() != orders) {
    return Status::InvalidArgument("the node's match answer is not one group per order");
  }
  const uint64_t providers = json.value("providers", uint64_t{0});
  std::vector<bidding::DryRun> dry_runs;
  for (const Json& group : json["groups"]) {
    bidding::DryRun dry_run;
    dry_run.providers = providers;
    const Json& candidates = group.contains("candidates") ? group["candidates"] : Json::array();
    if (!candidates.is_array()) return Status::InvalidArgument("match: candidates is not a list");
    for (const Json& entry : candidates) {
      market::Candidate candidate;
      try {
        candidate.provider = entry.at("provider").get<std::string>();
        candidate.price_per_hour = entry.at("price_per_hour").get<uint64_t>();
        candidate.denom = entry.at("denom").get<std::string>();
        candidate.ranks = entry.at("ranks").get<std::vector<uint32_t>>();
        const double reputation = entry.value("reputation", 0.0);
        candidate.reputation_ppm =
            static_cast<uint32_t>(std::clamp(std::llround(reputation * 1'000'000.0), 0LL, 1'000'000LL));
      } catch (const Json::exception& e) {
        return Status::InvalidArgument(std::string("match: a candidate without its terms: ") + e.what());
      }
      dry_run.candidates.push_back(std::move(candidate));
    }
    dry_run.complete = dry_run.candidates.size() < kDryRunTop;
    if (group.contains("exclusions") && group["exclusions"].is_array()) {
      for (const Json& entry : group["exclusions"]) {
        if (!entry.is_object()) continue;
        std::optional<market::ExclusionReason> reason = ExclusionOfName(entry.value("reason", std::string()));
        if (!reason) continue;  // a reason this client does not know: not worth failing the submit
        dry_run.excluded.push_back(bidding::ExcludedCount{{*reason, entry.value("detail", std::string())},
                                                          entry.value("providers", uint64_t{0})});
      }
    }
    dry_runs.push_back(std::move(dry_run));
  }
  return dry_runs;
}

std::string Short(const std::string& hex) { return hex.size() > 16 ? hex.substr(0, 16) : hex; }

std::string FormatDevice(const market::ServiceAssignment& service) {
  if (!service.device) return "-";
  return market::Describe(*service.device);
}

std::string FormatDevices(const std::vector<market::ServiceAssignment>& services) {
  std::string text;
  for (const market::ServiceAssignment& service : services) {
    if (!service.device) continue;
    if (!text.empty()) text += ", ";
    text += FormatDevice(service);
  }
  return text.empty() ? "-" : text;
}

std::string FormatRanks(const std::vector<uint32_t>& ranks) {
  std::string text;
  for (uint32_t rank : ranks) text += (text.empty() ? "" : ",") + std::to_string(rank + 1);  // 1-based, as `match`
  return text.empty() ? "-" : text;
}

// What the CLI measured per group beyond the session's outcome.
struct GroupTiming {
  int64_t submitted_ms = 0;  // the order was published
  std::optional<int64_t> leased_ms;
};

void PrintGroup(std::ostream& out, const bidding::OrderOutcome& outcome, const GroupTiming& timing) {
  out << "group " << outcome.group << ": " << outcome.bids.size() << (outcome.bids.size() == 1 ? " bid" : " bids");
  if (outcome.window != bidding::WindowClose::kOpen) {
    out << " (window closed: " << bidding::ToString(outcome.window) << ", after "
        << (outcome.window_closed_ms - timing.submitted_ms) << " ms)";
  }
  out << "\n";
  if (!outcome.bids.empty()) {
    std::vector<std::vector<std::string>> rows{{"#", "PROVIDER", "DEVICE", "PRICE/HOUR", "OPTION"}};
    for (size_t i = 0; i < outcome.bids.size(); ++i) {
      const bidding::SelectedBid& bid = outcome.bids[i];
      rows.push_back({std::to_string(i + 1), Short(market::ToHex(bid.bid.envelope.signer)),
                      FormatDevices(bid.bid.body.services),
                      std::to_string(bid.bid.body.price_per_hour) + " " + bid.bid.body.denom,
                      FormatRanks(bid.candidate.ranks)});
    }
    PrintTable(out, rows);
  }
  uint64_t dropped = 0;
  for (uint64_t count : outcome.dropped) dropped += count;
  if (dropped > 0) {
    out << "  dropped:";
    for (size_t p = 0; p < outcome.dropped.size(); ++p) {
      if (outcome.dropped[p] > 0) {
        out << " " << bidding::ToString(static_cast<bidding::BidProblem>(p)) << " (" << outcome.dropped[p] << ")";
      }
    }
    out << "\n";
  }
  if (outcome.lease) {
    const market::Lease& lease = outcome.lease->body;
    out << "  lease " << market::ToHex(outcome.lease->id) << "\n";
    out << "  provider " << market::ToHex(lease.provider) << ", " << lease.price_per_hour << " " << lease.denom
        << "/hour";
    if (timing.leased_ms) out << ", " << (*timing.leased_ms - timing.submitted_ms) << " ms after the order";
    out << "\n";
    std::vector<std::vector<std::string>> rows{{"SERVICE", "DEVICE", "PLACEMENTS"}};
    for (const market::ServiceAssignment& service : lease.services) {
      std::string placements;
      for (const market::Placement& p : service.placements) {
        placements += (placements.empty() ? "" : " ") + p.node + " x" + std::to_string(p.replicas);
      }
      rows.push_back({service.service, FormatDevice(service), placements});
    }
    PrintTable(out, rows);
  }
  if (!outcome.failure.empty()) out << "  no lease: " << Printable(outcome.failure) << "\n";
}

Json GroupJson(const bidding::OrderOutcome& outcome, const GroupTiming& timing) {
  Json bids = Json::array();
  for (const bidding::SelectedBid& bid : outcome.bids) {
    Json entry = ToJson(bid.candidate);
    entry["bid_id"] = market::ToHex(bid.bid.id);
    bids.push_back(std::move(entry));
  }
  Json dropped = Json::object();
  for (size_t p = 0; p < outcome.dropped.size(); ++p) {
    if (outcome.dropped[p] > 0) dropped[std::string(bidding::ToString(static_cast<bidding::BidProblem>(p)))] = outcome.dropped[p];
  }
  Json lease = nullptr;
  if (outcome.lease) {
    const market::Lease& body = outcome.lease->body;
    lease = Json{{"id", market::ToHex(outcome.lease->id)},
                 {"provider", market::ToHex(body.provider)},
                 {"bid_id", market::ToHex(body.bid_id)},
                 {"denom", body.denom},
                 {"price_per_hour", body.price_per_hour},
                 {"start_ms", body.start_ms},
                 {"services", ToJson(body.services)}};
  }
  return Json{{"name", outcome.group},
              {"order_id", market::ToHex(outcome.order_id)},
              {"window", std::string(bidding::ToString(outcome.window))},
              {"window_ms", outcome.window == bidding::WindowClose::kOpen
                                ? Json(nullptr)
                                : Json(outcome.window_closed_ms - timing.submitted_ms)},
              {"bids", std::move(bids)},
              {"dropped", std::move(dropped)},
              {"accepts", outcome.accepts},
              {"lease", std::move(lease)},
              {"order_to_lease_ms", timing.leased_ms ? Json(*timing.leased_ms - timing.submitted_ms) : Json(nullptr)},
              {"error", outcome.failure.empty() ? Json(nullptr) : Json(outcome.failure)}};
}

// Publishes what the session asks for; an Order or Accept the node refuses ends the submit.
Status PublishAll(client::Client& client, const std::vector<bidding::Publish>& publish, std::ostream& err) {
  for (const bidding::Publish& message : publish) {
    Result<market::MessageId> published = client.Publish(message.envelope);
    if (published.ok()) continue;
    const std::string what(market::ToString(message.type));
    if (message.type == market::MessageType::kClose) {
      // The lease stays open: say so, loudly, and go on (the other groups are not at fault).
      err << "gpumart submit: the node refused the Close of a duplicate lease: " << published.status().message()
          << "; close it with `gpumart close`\n";
      continue;
    }
    return published.status().WithContext("publishing the " + what);
  }
  return Status::Ok();
}

void ReportEvents(const bidding::TenantStep& step, const std::vector<bidding::OrderOutcome>& outcomes,
                  std::ostream& err, const SubmitOptions& options,
                  std::vector<GroupTiming>& timings, int64_t now_ms) {
  for (const TenantEvent& event : step.events) {
    if (event.kind == TenantEvent::Kind::kLeased) timings[event.order].leased_ms = now_ms;
    if (options.json) continue;
    const std::string group = event.order < outcomes.size() ? outcomes[event.order].group : "?";
    switch (event.kind) {
      case TenantEvent::Kind::kWaitingForBid:
      case TenantEvent::Kind::kLeaseTimeout:
      case TenantEvent::Kind::kRefused:
      case TenantEvent::Kind::kLeaseRejected:
      case TenantEvent::Kind::kLateLeaseClosed:
      case TenantEvent::Kind::kLeaseClosed:
        err << "gpumart submit: group " << Printable(group) << ": " << bidding::ToString(event.kind) << " "
            << Short(event.provider) << " " << Printable(event.detail) << "\n";
        break;
      default: break;
    }
  }
}

// One TenantSession over `groups` (signed now), driven to its end: what it printed aside, its
// outcomes and timings.
struct SessionResult {
  std::vector<bidding::OrderOutcome> outcomes;
  std::vector<GroupTiming> timings;
  size_t unresolved_accepts = 0;
  bool succeeded = false;
};

Result<SessionResult> RunSession(client::Client& client, const market::Identity& tenant,
                                 const std::vector<market::Order>& groups, market::Policy policy,
                                 const SubmitOptions& options, CliContext& context) {
  const Clock& clock = SystemClock::Instance();
  // One signed Order per placement group, and the node's dry run of them.
  const int64_t signed_ms = clock.NowMs();
  std::vector<market::Signed<market::Order>> orders;
  client::Fields match_args{{"policy", std::string(market::ToString(policy))}, {"top", kDryRunTop}};
  std::vector<market::Bytes> envelopes;
  for (const market::Order& order : groups) {
    orders.push_back(market::MakeSigned(tenant, order, signed_ms, kSubmitOrderTtlMs, market::RandomNonce()));
    envelopes.push_back(market::EncodeEnvelope(orders.back().envelope));
  }
  match_args["orders"] = envelopes;
  std::vector<std::optional<bidding::DryRun>> dry_runs(orders.size());
  if (Result<client::Fields> match = client.Call("match", match_args); match.ok()) {
    Result<std::vector<bidding::DryRun>> parsed = ParseDryRun(*match, orders.size());
    if (parsed.ok()) {
      for (size_t i = 0; i < orders.size(); ++i) dry_runs[i] = std::move((*parsed)[i]);
    } else {
      context.err << "gpumart submit: no dry run (" << parsed.status().message() << "): the bid window runs its full "
                  << options.bid_window_ms << " ms\n";
    }
  } else {
    context.err << "gpumart submit: no dry run (" << match.status().message() << "): the bid window runs its full "
                << options.bid_window_ms << " ms\n";
  }

  // An interruptible order gets no dry run: Offers state regular prices and the capacity a
  // regular order can get (docs/SPOT.md), so a dry run could not predict spot bids, and its bid
  // window runs its full length.
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].interruptible) dry_runs[i].reset();
  }
  std::vector<bidding::TenantOrder> inputs;
  for (size_t i = 0; i < orders.size(); ++i) inputs.push_back(bidding::TenantOrder{orders[i], dry_runs[i]});
  bidding::TenantSessionOptions session_options;
  session_options.policy = policy;
  session_options.bid_window_ms = options.bid_window_ms;
  session_options.late_bid_wait_ms = options.late_bid_wait_ms;
  session_options.lease_timeout_ms = options.lease_timeout_ms;
  bidding::TenantSession session(tenant, std::move(inputs), session_options);
  std::vector<GroupTiming> timings(orders.size());

  int64_t now_ms = clock.NowMs();
  for (GroupTiming& timing : timings) timing.submitted_ms = now_ms;
  bidding::TenantStep step = session.Start(now_ms);
  while (true) {
    if (Status status = PublishAll(client, step.publish, context.err); !status.ok()) return status;
    ReportEvents(step, session.outcomes(), context.err, options, timings, now_ms);
    if (session.done()) break;
    const std::optional<int64_t> deadline = session.NextDeadline();
    if (!deadline) return Status::Internal("the session waits on nothing");
    now_ms = clock.NowMs();
    const int64_t wait_ms = std::clamp<int64_t>(*deadline - now_ms, 0, kMaxWaitMs);
    Result<client::Event> event = client.WaitEvent(std::chrono::milliseconds(wait_ms));
    now_ms = clock.NowMs();
    if (event.ok()) {
      step = session.OnEnvelope(event->envelope, now_ms);
      if (session.NextDeadline() && *session.NextDeadline() <= now_ms) {
        bidding::TenantStep tick = session.Tick(now_ms);
        step.publish.insert(step.publish.end(), tick.publish.begin(), tick.publish.end());
        step.events.insert(step.events.end(), tick.events.begin(), tick.events.end());
      }
    } else if (event.status().code() == Status::Code::kTimeout) {
      step = session.Tick(now_ms);
    } else {
      return event.status();
    }
  }
  return SessionResult{session.outcomes(), std::move(timings), session.unresolved_accepts(), session.succeeded()};
}

// Prints a session's result (JSON, compact when more are to follow under --keep-running).
void PrintSession(const SessionResult& result, const market::Identity& tenant, const std::string& address,
                  market::Policy policy, const SubmitOptions& options, CliContext& context) {
  const std::vector<bidding::OrderOutcome>& outcomes = result.outcomes;
  if (options.json) {
    Json groups = Json::array();
    for (size_t i = 0; i < outcomes.size(); ++i) groups.push_back(GroupJson(outcomes[i], result.timings[i]));
    context.out << DumpJson(Json{{"ok", result.succeeded},
                                 {"tenant", market::ToHex(tenant.public_key())},
                                 {"node", address},
                                 {"policy", std::string(market::ToString(policy))},
                                 {"unresolved_accepts", result.unresolved_accepts},
                                 {"groups", std::move(groups)}},
                            options.keep_running ? -1 : 2)
                << "\n";
  } else {
    for (size_t i = 0; i < outcomes.size(); ++i) {
      if (i > 0) context.out << "\n";
      PrintGroup(context.out, outcomes[i], result.timings[i]);
    }
  }
  context.out.flush();
  if (result.unresolved_accepts > 0) {
    context.err << "gpumart submit: " << result.unresolved_accepts
                << " accepted bid(s) got neither a lease nor a refusal in time; their providers may still "
                   "lease them: check `gpumart leases --tenant "
                << market::ToHex(tenant.public_key()) << "`\n";
  }
}

// Why a session left groups without a lease, for the exit message.
std::string Failures(const std::vector<bidding::OrderOutcome>& outcomes, size_t& failed) {
  failed = 0;
  std::string why;
  for (const bidding::OrderOutcome& outcome : outcomes) {
    if (outcome.failure.empty()) continue;
    ++failed;
    why += "\n  group " + outcome.group + ": " + outcome.failure;
  }
  return why;
}

// --keep-running: one group's lease being watched.
struct Watched {
  size_t group = 0;                 // index into the deployment's orders
  std::optional<market::MessageId> lease;  // nullopt while a resubmission is due
  uint32_t restarts = 0;
  int64_t resubmit_at_ms = 0;       // when lease is nullopt
};

// The state and close of `lease_id` in the node's ledger; nullopt while the node does not have it.
Result<std::optional<Json>> LookUpLease(client::Client& client, const market::MessageId& lease_id) {
  Result<client::Fields> answer = client.Call("lease", {{"lease", client::Bytes(lease_id.begin(), lease_id.end())}});
  if (!answer.ok()) {
    if (answer.status().code() == Status::Code::kNotFound) return std::optional<Json>();
    return answer.status();
  }
  auto text = client::Require<std::string>(*answer, "json");
  if (!text.ok()) return text.status();
  Json json = Json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return Status::InvalidArgument("the node's lease answer is not a JSON object");
  return std::optional<Json>(std::move(json));
}

// Watches every leased group; a lease that ends preempted or with a provider failure is
// submitted again after the policy's backoff, until its restarts run out. Returns when no group
// is left to watch: kExitOk when every lease ended for a final reason (the tenant's close, its
// term), kExitFailure when a group ran out of restarts.
int KeepRunning(client::Client& client, const market::Identity& tenant, const market::Deployment& deployment,
                const SessionResult& first, const std::string& address, market::Policy policy,
                const SubmitOptions& options, CliContext& context) {
  const Clock& clock = SystemClock::Instance();
  const bidding::KeepRunningPolicy& keep = options.keep_running_policy;
  std::vector<Watched> watched;
  for (size_t i = 0; i < first.outcomes.size(); ++i) watched.push_back(Watched{i, first.outcomes[i].lease->id, 0, 0});
  context.err << "gpumart submit: keeping " << watched.size() << (watched.size() == 1 ? " group" : " groups")
              << " running (up to " << keep.max_restarts << " restarts each)\n";
  bool exhausted = false;
  while (!watched.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kKeepRunningPollMs));
    for (auto it = watched.begin(); it != watched.end();) {
      Watched& w = *it;
      const std::string& group = deployment.orders[w.group].group;
      if (w.lease) {
        Result<std::optional<Json>> lease = LookUpLease(client, *w.lease);
        if (!lease.ok()) return context.Fail(lease.status().WithContext("node " + address));
        if (!*lease || (**lease).value("state", "") != "closed") {
          ++it;
          continue;
        }
        const Json& close = (**lease)["close"];
        const std::string reason = close.is_object() ? close.value("reason", "") : "";
        std::optional<market::CloseReason> parsed;
        for (uint8_t r = 0; r <= static_cast<uint8_t>(market::CloseReason::kPreempted); ++r) {
          if (market::ToString(static_cast<market::CloseReason>(r)) == reason) parsed = static_cast<market::CloseReason>(r);
        }
        const std::string what = "gpumart submit: group " + Printable(group) + ": lease " + market::ToHex(*w.lease) +
                                 " ended (" + Printable(reason) + ", effective at " +
                                 std::to_string(close.is_object() ? close.value("closed_ms", int64_t{0}) : 0) + ")";
        if (!parsed || !bidding::ResubmitsAfter(*parsed)) {
          context.err << what << "; not resubmitted\n";
          it = watched.erase(it);
          continue;
        }
        if (w.restarts >= keep.max_restarts) {
          context.err << what << "; no restarts left (" << keep.max_restarts << " used)\n";
          exhausted = true;
          it = watched.erase(it);
          continue;
        }
        ++w.restarts;
        const int64_t delay_ms = bidding::RestartDelayMs(keep, w.restarts);
        context.err << what << "; resubmitting in " << delay_ms << " ms (restart " << w.restarts << " of "
                    << keep.max_restarts << ")\n";
        w.lease.reset();
        w.resubmit_at_ms = clock.NowMs() + delay_ms;
      }
      if (clock.NowMs() < w.resubmit_at_ms) {
        ++it;
        continue;
      }
      Result<SessionResult> again = RunSession(client, tenant, {deployment.orders[w.group]}, policy, options, context);
      if (!again.ok()) return context.Fail(again.status().WithContext("node " + address));
      PrintSession(*again, tenant, address, policy, options, context);
      if (again->succeeded) {
        w.lease = again->outcomes.front().lease->id;
        context.err << "gpumart submit: group " << Printable(group) << ": running again as lease "
                    << market::ToHex(*w.lease) << "\n";
      } else if (w.restarts < keep.max_restarts) {
        ++w.restarts;
        const int64_t delay_ms = bidding::RestartDelayMs(keep, w.restarts);
        context.err << "gpumart submit: group " << Printable(group) << ": no lease this time; trying again in "
                    << delay_ms << " ms (restart " << w.restarts << " of " << keep.max_restarts << ")\n";
        w.resubmit_at_ms = clock.NowMs() + delay_ms;
      } else {
        context.err << "gpumart submit: group " << Printable(group) << ": no lease and no restarts left\n";
        exhausted = true;
        it = watched.erase(it);
        continue;
      }
      ++it;
    }
  }
  if (exhausted) return context.Fail("a group ran out of restarts (--max-restarts " + std::to_string(keep.max_restarts) + ")", kExitFailure);
  return kExitOk;
}

int RunSubmit(const SubmitOptions& options, CliContext& context) {
  Result<market::Deployment> deployment = market::ParseSdlFile(options.sdl, market::SdlOptions{.strict = options.strict});
  if (!deployment.ok()) return context.Fail(deployment.status().WithContext(options.sdl));
  for (const market::SdlWarning& warning : deployment->warnings) {
    context.err << "gpumart submit: warning: " << Printable(options.sdl + ": " + warning.ToString()) << "\n";
  }
  if (deployment->orders.empty()) return context.Fail(options.sdl + ": no placement group has services", kExitFailure);

  Result<market::Identity> tenant = TenantKey(options.key, context.err);
  if (!tenant.ok()) return context.Fail(tenant.status());
  Result<std::string> address = client::ResolveNodeAddress(options.node, options.data_dir);
  if (!address.ok()) return context.Fail(address.status());
  Result<std::unique_ptr<client::Client>> connected = client::Client::Connect(*address);
  if (!connected.ok()) return context.Fail(connected.status().WithContext("node " + *address));
  client::Client& client = **connected;
  const market::Policy policy = market::ParsePolicy(options.policy).value_or(market::Policy::kPreference);

  Result<SessionResult> result = RunSession(client, *tenant, deployment->orders, policy, options, context);
  if (!result.ok()) {
    if (result.status().code() == Status::Code::kInternal) return context.Fail(result.status(), kExitFailure);
    return context.Fail(result.status().WithContext("node " + *address));
  }
  PrintSession(*result, *tenant, *address, policy, options, context);
  if (result->succeeded) {
    if (options.keep_running) return KeepRunning(client, *tenant, *deployment, *result, *address, policy, options, context);
    return kExitOk;
  }
  size_t failed = 0;
  const std::string why = Failures(result->outcomes, failed);
  return context.Fail(std::to_string(failed) + " of " + std::to_string(result->outcomes.size()) +
                          (result->outcomes.size() == 1 ? " group" : " groups") + " got no lease:" + why,
                      kExitFailure);
}

}  // namespace

void RegisterSubmitCommand(CLI::App& app, CliContext& context) {
  CLI::App* command = app.add_subcommand(
      "submit", "Submit a deployment: one order per placement group, collect bids, accept the best, print the leases");
  auto options = std::make_shared<SubmitOptions>();
  command->add_option("sdl", options->sdl, "the SDL file (deploy.yaml)")->required();
  command->add_option("--node", options->node,
                      "the node's client port (default: `node:` of ~/.config/gpumart/client.yaml, else the local "
                      "daemon's <data-dir>/client.address)");
  command->add_option("--data-dir,-d", options->data_dir, "the local daemon's data directory")->capture_default_str();
  command->add_option("--key", options->key,
                      "the tenant key file (default: ~/.config/gpumart/tenant.key, created on first use)");
  command->add_option("--policy", options->policy, "ranking: preference (default) or cheapest")
      ->check(CLI::IsMember({"preference", "cheapest"}));
  command->add_option("--bid-window", options->bid_window_ms, "the longest to collect bids, in ms (default 3000)")
      ->check(CLI::Range(int64_t{1}, kMaxWindowMs));
  command->add_option("--late-bid-wait", options->late_bid_wait_ms,
                      "when the window closes with no bid to accept, how much longer to wait for a first one, in ms "
                      "(default 10000; docs/SUBMIT.md)")
      ->check(CLI::Range(int64_t{0}, kMaxWindowMs));
  command->add_option("--lease-timeout", options->lease_timeout_ms,
                      "how long an accepted provider has to confirm, in ms, before the next best bid is accepted "
                      "(default 2000)")
      ->check(CLI::Range(int64_t{1}, kMaxWindowMs));
  command->add_flag("--json", options->json, "print JSON");
  command->add_flag("--strict", options->strict, "unknown SDL fields are errors; apply Akash's schema rules");
  command->add_flag("--keep-running", options->keep_running,
                    "after leasing, watch the leases and submit a group again when its lease is preempted or its "
                    "provider fails (docs/SUBMIT.md)");
  command->add_option("--max-restarts", options->keep_running_policy.max_restarts,
                      "with --keep-running: restarts per group at most (default 5)")
      ->check(CLI::Range(uint32_t{0}, kMaxRestarts));
  command->add_option("--restart-backoff", options->keep_running_policy.backoff_ms,
                      "with --keep-running: the wait before the first restart in ms, doubling each time up to 60000 "
                      "(default 1000)")
      ->check(CLI::Range(int64_t{0}, kMaxWindowMs));
  SetCommandBody(*command, context, [options, &context] { return RunSubmit(*options, context); });
}

}  // namespace gpumart::node
