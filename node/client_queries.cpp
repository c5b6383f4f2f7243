#include "node/client_queries.h"

#include <algorithm>
#include <map>
#include <string>

#include "market/match.h"
#include "node/gossip/gossip_node.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

using client::Fields;
using client::QueryContext;

// A 32-byte key or id argument; absent: nullopt.
template <size_t N>
Result<std::optional<std::array<uint8_t, N>>> OptionalId(const Fields& args, std::string_view key) {
  Result<const client::Bytes*> bytes = client::Optional<client::Bytes>(args, key);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == nullptr) return std::optional<std::array<uint8_t, N>>();
  if ((*bytes)->size() != N) {
    return Status::InvalidArgument("argument " + std::string(key) + " must be " + std::to_string(N) + " bytes");
  }
  std::array<uint8_t, N> out{};
  std::copy((*bytes)->begin(), (*bytes)->end(), out.begin());
  return std::optional<std::array<uint8_t, N>>(out);
}

Fields JsonResult(const Json& json) { return Fields{{"json", DumpJson(json)}}; }

Result<Fields> Leases(const ClientQuerySources& sources, const Fields& args, const QueryContext& context) {
  ledger::LeaseQuery query;
  auto tenant = OptionalId<market::kPublicKeyBytes>(args, "tenant");
  auto provider = OptionalId<market::kPublicKeyBytes>(args, "provider");
  auto after = OptionalId<market::kIdBytes>(args, "after");
  auto state = client::Optional<std::string>(args, "state");
  auto limit = client::Optional<uint64_t>(args, "limit");
  for (const Status* status : {&tenant.status(), &provider.status(), &after.status(), &state.status(), &limit.status()}) {
    if (!status->ok()) return *status;
  }
  query.tenant = *tenant;
  query.provider = *provider;
  query.after = *after;
  if (*state != nullptr) {
    query.state = ledger::ParseLeaseState(**state);
    if (!query.state) return Status::InvalidArgument("argument state must be active or closed");
  }
  if (*limit != nullptr) {
    if (**limit < 1 || **limit > ledger::kMaxPageSize) {
      return Status::InvalidArgument("argument limit must be 1.." + std::to_string(ledger::kMaxPageSize));
    }
    query.limit = static_cast<size_t>(**limit);
  }
  Result<ledger::LeasePage> page = sources.ledger->Leases(query);
  if (!page.ok()) return page.status();
  Json leases = Json::array();
  for (const ledger::LeaseRecord& record : page->leases) leases.push_back(ToJson(record, context.now_ms));
  Json out{{"leases", std::move(leases)}, {"next_after", nullptr}};
  if (page->next_after) out["next_after"] = market::ToHex(*page->next_after);
  return JsonResult(out);
}

Result<Fields> Lease(const ClientQuerySources& sources, const Fields& args, const QueryContext& context) {
  auto id = OptionalId<market::kIdBytes>(args, "lease");
  if (!id.ok()) return id.status();
  if (!*id) return Status::InvalidArgument("argument lease is missing");
  Result<ledger::LeaseRecord> record = sources.ledger->GetLease(**id);
  if (!record.ok()) {
    if (record.status().code() == Status::Code::kNotFound) {
      return Status::NotFound("lease " + market::ToHex(**id) + " is not in this node's ledger");
    }
    return record.status();
  }
  Fields out = JsonResult(ToJson(*record, context.now_ms));
  out["envelope"] = market::EncodeEnvelope(record->envelope);
  if (record->close_envelope) out["close_envelope"] = market::EncodeEnvelope(*record->close_envelope);
  if (Result<market::Signed<market::Order>> order = sources.ledger->GetOrder(record->lease.order_id); order.ok()) {
    out["order_envelope"] = market::EncodeEnvelope(order->envelope);
  }
  return out;
}

Json CountersJson(const ProviderCounters& c) {
  return Json{{"orders", c.orders.load()},
              {"bids", c.bids.load()},
              {"reservations_released", c.reservations_released.load()},
              {"reservations_expired", c.reservations_expired.load()},
              {"leases_made", c.leases_made.load()},
              {"leases_failed", c.leases_failed.load()},
              {"leases_closed", c.leases_closed.load()},
              {"leases_preempted", c.leases_preempted.load()},
              {"accepts_refused", c.accepts_refused.load()},
              {"orders_waiting", c.orders_waiting.load()},
              {"orders_deferred", c.orders_deferred.load()},
              {"deferred_served", c.deferred_served.load()},
              {"deferred_dropped", c.deferred_dropped.load()},
              {"offers_published", c.offers_published.load()}};
}

// Gossip traffic and what it dropped, by reason (every reason, 0 until it happens).
Json GossipJson(const gossip::GossipNodeStatus& status) {
  Json drops = Json::object();
  for (size_t i = 0; i < gossip::kDropCount; ++i) {
    drops[std::string(gossip::ToString(static_cast<gossip::Drop>(i)))] = status.core_drops.by_reason[i];
  }
  Json transport = Json::object();
  for (size_t i = 0; i < gossip::kTransportDropCount; ++i) {
    transport[std::string(gossip::ToString(static_cast<gossip::TransportDrop>(i)))] = status.transport_drops[i];
  }
  return Json{{"links", status.links},
              {"ready_inbound", status.ready_inbound},
              {"ready_outbound", status.ready_outbound},
              {"frames_in", status.frames_in},
              {"frames_out", status.frames_out},
              {"bytes_in", status.bytes_in},
              {"bytes_out", status.bytes_out},
              {"delivered", status.core_stats.delivered},
              {"bans", status.bans},
              {"drops", std::move(drops)},
              {"transport_drops", std::move(transport)}};
}

// A provider's free capacity per device type, from the offer it last published: one entry per
// (device type, CUDA version), with the free GPUs and the nodes that have them.
Json CapacityJson(const market::Offer& offer) {
  struct Free {
    uint64_t gpus = 0;
    uint64_t nodes = 0;
  };
  std::map<std::pair<market::DeviceType, std::string>, Free> free;
  uint64_t cpu_millis = 0, memory_bytes = 0, storage_bytes = 0;
  for (const market::NodeCapacity& node : offer.nodes) {
    cpu_millis += node.cpu_millis;
    memory_bytes += node.memory_bytes;
    storage_bytes += node.storage_bytes;
    for (const market::GpuDevices& gpus : node.gpus) {
      const market::DeviceType device{gpus.vendor, gpus.model, gpus.ram_bytes, gpus.interface};
      Free& entry = free[{device, gpus.cuda ? market::ToString(*gpus.cuda) : std::string()}];
      entry.gpus += gpus.count;
      entry.nodes += gpus.count > 0 ? 1 : 0;
    }
  }
  Json devices = Json::array();
  for (const auto& [key, entry] : free) {
    devices.push_back(Json{{"device", ToJson(key.first)},
                           {"cuda", key.second.empty() ? Json(nullptr) : Json(key.second)},
                           {"free_gpus", entry.gpus},
                           {"nodes", entry.nodes}});
  }
  return Json{{"gpus", std::move(devices)},
              {"cpu_millis", cpu_millis},
              {"memory_bytes", memory_bytes},
              {"storage_bytes", storage_bytes}};
}

Result<Fields> NodeStatus(const ClientQuerySources& sources, const Fields&, const QueryContext& context) {
  Json out{{"node", market::ToHex(sources.node)}, {"role", std::string(ToString(sources.role))}};
  Json peers = Json::array();
  size_t ready = 0;
  Json gossip_json = nullptr;
  if (context.gossip.valid()) {
    auto gossip = context.outbox.Request<gossip::GossipNodeStatus>(context.gossip, gossip::GetGossipStatus{},
                                                                    client::kBackendTimeout);
    if (!gossip.ok()) return Status::Unavailable("gossip: no status reply");
    for (const market::PublicKey& peer : gossip.value().peers) peers.push_back(market::ToHex(peer));
    ready = gossip.value().ready_peers;
    gossip_json = GossipJson(gossip.value());
  }
  out["peers"] = std::move(peers);
  out["ready_peers"] = ready;
  out["gossip"] = std::move(gossip_json);
  const ledger::VerifyReport& report = sources.ledger_report;
  out["ledger"] = Json{{"verified_at_start", report.ok},
                       {"verify", report.Describe()},
                       {"records", report.records},
                       {"signatures", report.signatures},
                       {"chain_entries", report.chain_entries}};
  out["offers"] = sources.offers->held.load();
  // Orders the ledger holds without a lease and not expired (a provider records those it bid on).
  Result<ledger::OrderPage> open = sources.ledger->OpenOrders(context.now_ms, ledger::kMaxPageSize);
  if (!open.ok()) return open.status();
  out["open_orders"] = open->orders.size();
  out["open_orders_partial"] = open->next_after.has_value();
  out["leases_recorded"] = sources.feed->recorded.load();
  // Gossiped records this node's ledger refused (a duplicate, a Close that breaks the rules...).
  out["records_refused"] = sources.feed->refused.load();
  out["reservations"] = nullptr;
  out["leases_active"] = nullptr;
  out["revenue_per_hour"] = nullptr;
  out["provider"] = nullptr;
  out["capacity"] = nullptr;
  out["devices"] = nullptr;
  out["gpu_health"] = nullptr;
  if (sources.provider && sources.provider_counters) {
    auto state = context.outbox.Request<ProviderStatus>(*sources.provider, GetProviderStatus{}, client::kBackendTimeout);
    if (!state.ok()) return Status::Unavailable("provider: no status reply");
    out["reservations"] = state.value().live_reservations;
    out["leases_active"] = state.value().active_leases;
    out["bidding"] = state.value().bidding;
    out["capacity"] = CapacityJson(state.value().offer);
    Json devices = Json::array();
    for (const auto& [type, usage] : state.value().usage) devices.push_back(ToJson(type, usage));
    out["devices"] = std::move(devices);
    if (state.value().health_checked) {
      Json gpus = Json::array();
      for (const bidding::GpuHealth& gpu : state.value().gpus) gpus.push_back(ToJson(gpu));
      out["gpu_health"] = Json{{"node", state.value().health_node},
                               {"checked_ms", state.value().health_checked_ms},
                               {"gpus", std::move(gpus)}};
    }
    // Revenue: the price per hour of this provider's active leases, per denom.
    std::map<std::string, uint64_t> revenue;
    ledger::LeaseQuery query;
    query.provider = sources.node;
    query.state = ledger::LeaseState::kActive;
    query.limit = ledger::kMaxPageSize;
    size_t counted = 0;
    bool partial = false;
    while (true) {
      Result<ledger::LeasePage> page = sources.ledger->Leases(query);
      if (!page.ok()) return page.status();
      for (const ledger::LeaseRecord& record : page->leases) revenue[record.lease.denom] += record.lease.price_per_hour;
      counted += page->leases.size();
      if (!page->next_after) break;
      if (counted >= kMaxStatusLeases) {
        partial = true;
        break;
      }
      query.after = page->next_after;
    }
    out["revenue_per_hour"] = revenue;
    out["revenue_partial"] = partial;
    out["provider"] = CountersJson(*sources.provider_counters);
  }
  const client::ClientPortCounters& c = *sources.client;
  out["client_port"] = Json{{"requests", c.requests.load()},   {"errors", c.errors.load()},
                            {"published", c.published.load()}, {"refused", c.refused.load()},
                            {"events", c.events.load()},       {"subscriptions", c.subscriptions.load()},
                            {"connections", c.connections.load()}};
  return JsonResult(out);
}

// An order as a match request carries it: a signed Order envelope (its signature is not needed
// for a dry run, so it is not checked) or a bare Order body.
Result<market::Order> OrderOfArgument(const client::Bytes& bytes) {
  if (Result<market::Envelope> envelope = market::DecodeEnvelope(bytes); envelope.ok()) {
    if (envelope->type != market::MessageType::kOrder) return Status::InvalidArgument("an envelope that is no Order");
    return market::DecodeOrder(envelope->body);
  }
  return market::DecodeOrder(bytes);
}

Result<Fields> Match(const ClientQuerySources& sources, const Fields& args, const QueryContext& context) {
  auto orders = client::Require<std::vector<client::Bytes>>(args, "orders");
  auto policy_name = client::Optional<std::string>(args, "policy");
  auto top = client::Optional<uint64_t>(args, "top");
  for (const Status* status : {&orders.status(), &policy_name.status(), &top.status()}) {
    if (!status->ok()) return *status;
  }
  if ((*orders)->empty() || (*orders)->size() > kMaxMatchOrders) {
    return Status::InvalidArgument("argument orders must hold 1.." + std::to_string(kMaxMatchOrders) + " orders");
  }
  market::Policy policy = market::Policy::kPreference;
  if (*policy_name != nullptr) {
    std::optional<market::Policy> parsed = market::ParsePolicy(**policy_name);
    if (!parsed) return Status::InvalidArgument("argument policy must be preference or cheapest");
    policy = *parsed;
  }
  const size_t k = *top == nullptr ? kMaxOfferQueryResults : static_cast<size_t>(std::min<uint64_t>(**top, kMaxOfferQueryResults));
  Json groups = Json::array();
  size_t providers = 0;
  for (size_t i = 0; i < (*orders)->size(); ++i) {
    Result<market::Order> order = OrderOfArgument((**orders)[i]);
    if (!order.ok()) return order.status().WithContext("orders[" + std::to_string(i) + "]");
    auto reply = context.outbox.Request<Result<OrderExplanation>>(sources.offer_book, ExplainOrder{*order, policy, k},
                                                                   client::kBackendTimeout);
    if (!reply.ok()) return Status::Unavailable("offer book: no reply");
    if (!reply.value().ok()) return reply.value().status().WithContext("orders[" + std::to_string(i) + "]");
    const OrderExplanation& answer = *reply.value();
    providers = answer.providers;
    Json candidates = Json::array();
    for (const market::Candidate& candidate : answer.candidates) candidates.push_back(ToJson(candidate));
    Json excluded = Json::object();
    Json reasons = Json::array();
    for (const auto& [key, count] : answer.excluded) {
      const std::string name(market::ToString(key.first));
      excluded[name] = excluded.value(name, size_t{0}) + count;
      reasons.push_back(Json{{"reason", name}, {"detail", key.second}, {"providers", count}});
    }
    Json excluded_providers = Json::array();
    for (const OrderExplanation::Excluded& entry : answer.excluded_providers) {
      excluded_providers.push_back(Json{{"provider", entry.provider},
                                        {"name", entry.name},
                                        {"reason", std::string(market::ToString(entry.exclusion.reason))},
                                        {"detail", entry.exclusion.detail},
                                        {"why", market::DescribeExclusion(entry.exclusion, *order)}});
    }
    groups.push_back(Json{{"name", order->group},
                          {"candidates", std::move(candidates)},
                          {"excluded", std::move(excluded)},
                          {"exclusions", std::move(reasons)},
                          {"excluded_providers", std::move(excluded_providers)},
                          {"explained", answer.explained}});
  }
  return JsonResult(Json{{"policy", std::string(market::ToString(policy))}, {"providers", providers}, {"groups", std::move(groups)}});
}

// `gpumart offers`: the live offer book searched with the offer query grammar (docs/QUERY.md).
// The book parses and bounds the query; its errors (naming the column) come back as they are.
Result<Fields> Offers(const ClientQuerySources& sources, const Fields& args, const QueryContext& context) {
  auto query = client::Optional<std::string>(args, "query");
  auto order = client::Optional<std::string>(args, "order");
  auto limit = client::Optional<uint64_t>(args, "limit");
  for (const Status* status : {&query.status(), &order.status(), &limit.status()}) {
    if (!status->ok()) return *status;
  }
  SearchOffers request;
  if (*query != nullptr) request.query = **query;
  if (*order != nullptr) request.order_by = **order;
  if (*limit != nullptr) {
    if (**limit < 1 || **limit > market::kMaxOfferSearchRows) {
      return Status::InvalidArgument("argument limit must be 1.." + std::to_string(market::kMaxOfferSearchRows));
    }
    request.limit = static_cast<size_t>(**limit);
  }
  auto reply = context.outbox.Request<Result<market::OfferSearchResult>>(sources.offer_book, std::move(request),
                                                                        client::kBackendTimeout);
  if (!reply.ok()) return Status::Unavailable("offer book: no reply");
  if (!reply.value().ok()) return reply.value().status();
  return JsonResult(ToJson(*reply.value()));
}

}  // namespace

client::QueryTable ClientQueries(ClientQuerySources sources) {
  auto shared = std::make_shared<const ClientQuerySources>(std::move(sources));
  client::QueryTable table;
  table["leases"] = [shared](const Fields& args, const QueryContext& context) { return Leases(*shared, args, context); };
  table["lease"] = [shared](const Fields& args, const QueryContext& context) { return Lease(*shared, args, context); };
  table["status"] = [shared](const Fields& args, const QueryContext& context) { return NodeStatus(*shared, args, context); };
  table["match"] = [shared](const Fields& args, const QueryContext& context) { return Match(*shared, args, context); };
  table["offers"] = [shared](const Fields& args, const QueryContext& context) { return Offers(*shared, args, context); };
  return table;
}

}  // namespace gpumart::node
