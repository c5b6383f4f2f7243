#include "node/node_context.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <spdlog/spdlog.h>

#include "actors/clock.h"
#include "ledger/store.h"
#include "node/client_queries.h"
#include "node/console/console.h"

namespace gpumart::node {

namespace {

constexpr std::chrono::milliseconds kStatusTimeout{5'000};

}  // namespace

Result<std::unique_ptr<NodeContext>> NodeContext::Start(const NodeConfig& config, const bidding::Inventory* inventory,
                                                       ProviderOptions provider_options) {
  if (::mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IoError("cannot create data dir " + config.data_dir + ": " + std::strerror(errno));
  }
  Result<market::Identity> identity = market::LoadOrCreateKeyFile(config.IdentityPath());
  if (!identity.ok()) return identity.status();
  std::unique_ptr<NodeContext> context(new NodeContext(std::move(identity).value()));
  GPUMART_RETURN_IF_ERROR(context->StartLedger(config));
  GPUMART_RETURN_IF_ERROR(context->StartFeedAndOfferBook());
  if (config.role == NodeRole::kProvider && inventory != nullptr) {
    GPUMART_RETURN_IF_ERROR(context->StartProvider(config, *inventory, std::move(provider_options)));
  }
  GPUMART_RETURN_IF_ERROR(context->StartClientPort(config));
  GPUMART_RETURN_IF_ERROR(context->StartGossip(config));
  GPUMART_RETURN_IF_ERROR(context->StartMetrics(config));
  return context;
}

Status NodeContext::StartLedger(const NodeConfig& config) {
  const std::string path = config.data_dir + "/ledger";
  Result<std::unique_ptr<ledger::LedgerActor>> ledger =
      ledger::LedgerActor::Open(system_, path, {}, SystemClock::Instance(),
                                {.on_commit = [commit = &metrics_->ledger_commit_seconds](std::chrono::nanoseconds took) {
                                  commit->Observe(std::chrono::duration<double>(took).count());
                                }});
  if (!ledger.ok()) return ledger.status();
  ledger_ = std::move(ledger).value();
  ledger_report_ = ledger::VerifyLedger(ledger_->store());
  if (!ledger_report_.ok) {
    return Status::Corruption("ledger " + path + " fails verification: " + ledger_report_.Describe() +
                              " (run gpumart ledger verify --data-dir " + config.data_dir + ")");
  }
  return Status::Ok();
}

Status NodeContext::StartFeedAndOfferBook() {
  feed_ = system_.Spawn({.name = "ledger-feed", .mailbox_hwm = kLedgerFeedMailboxHwm},
                        [ledger = ledger_->address(), counters = feed_counters_] {
                          return std::make_unique<LedgerFeed>(ledger, counters);
                        });
  if (!feed_.ok()) return Status::Internal("ledger feed: cannot start: " + feed_.error());
  offer_book_ = system_.Spawn({.name = "offer-book", .mailbox_hwm = kOfferBookMailboxHwm},
                              [store = &ledger_->store(), counters = offer_counters_] {
                                return std::make_unique<OfferBookActor>(*store, counters);
                              });
  if (!offer_book_.ok()) return Status::Internal("offer book: cannot start: " + offer_book_.error());
  return Status::Ok();
}

namespace {

// The provider's engine, restored from the ledger (what this provider already promised, before
// it hears anything).
Result<std::pair<std::unique_ptr<bidding::BidEngine>, bidding::EngineStep>> RestoredEngine(
    const market::Identity& identity, const market::Offer& inventory, const NodeConfig& config,
    const ledger::LedgerStore& store) {
  Result<std::unique_ptr<bidding::BidEngine>> engine =
      bidding::BidEngine::Create(identity, inventory, config.pricing_policy, config.bidding);
  if (!engine.ok()) return engine.status().WithContext("provider");
  Result<bidding::EngineStep> restored =
      RestoreFromLedger(**engine, store, config.bidding.max_reservations, SystemClock::Instance().NowMs());
  if (!restored.ok()) return restored.status();
  return std::make_pair(std::move(engine).value(), std::move(restored).value());
}

// Fills in what the health checks need: the node whose GPUs nvidia-smi reports (health.node,
// else the node that detects its GPUs, else the only node) and the GPU model table.
Status ResolveHealth(const NodeConfig& config, const bidding::Inventory& inventory, ProviderOptions& options) {
  if (!options.health.enabled) return Status::Ok();
  std::string& node = options.health.node;
  if (node.empty() && config.inventory && config.inventory->detect_gpus_node &&
      *config.inventory->detect_gpus_node < config.inventory->nodes.size()) {
    node = config.inventory->nodes[*config.inventory->detect_gpus_node].name;
  }
  if (node.empty() && inventory.nodes.size() == 1) node = inventory.nodes[0].name;
  if (node.empty()) {
    return Status::InvalidArgument("health.node: name the inventory node whose GPUs nvidia-smi reports (the inventory has " +
                                   std::to_string(inventory.nodes.size()) + " nodes)");
  }
  if (std::none_of(inventory.nodes.begin(), inventory.nodes.end(), [&](const auto& n) { return n.name == node; })) {
    return Status::InvalidArgument("health.node: '" + node + "' is not a node of the inventory");
  }
  Result<bidding::GpuModelTable> models = bidding::GpuModelTable::Load(config.inventory ? config.inventory->gpu_models : "");
  if (!models.ok()) return models.status().WithContext("health");
  options.gpu_models = std::move(models).value();
  options.physical_gpus = inventory.physical_gpus;
  return Status::Ok();
}

}  // namespace

Status NodeContext::StartProvider(const NodeConfig& config, const bidding::Inventory& inventory,
                                  ProviderOptions options) {
  GPUMART_RETURN_IF_ERROR(ResolveHealth(config, inventory, options));
  const market::Offer offer = bidding::ToOffer(inventory, config.pricing_policy.tables);
  auto first = RestoredEngine(identity_, offer, config, ledger_->store());
  if (!first.ok()) return first.status();
  provider_counters_ = std::make_shared<ProviderCounters>();
  // The factory takes the engine built here; should the actor's state ever be rebuilt (actors/
  // supervision), it builds a new one the same way, from the start's inventory and the ledger.
  auto prebuilt = std::make_shared<std::optional<std::pair<std::unique_ptr<bidding::BidEngine>, bidding::EngineStep>>>(
      std::move(first).value());
  provider_ = system_.Spawn(
      {.name = "provider", .mailbox_hwm = kProviderMailboxHwm},
      [this, prebuilt, offer, config, options = std::move(options)]() -> std::unique_ptr<actors::Actor> {
        auto parts = std::move(*prebuilt);
        prebuilt->reset();
        if (!parts) {
          auto rebuilt = RestoredEngine(identity_, offer, config, ledger_->store());
          if (!rebuilt.ok()) {
            spdlog::error("provider: cannot rebuild: {}", rebuilt.status().message());
            return nullptr;
          }
          parts = std::move(rebuilt).value();
        }
        return std::make_unique<ProviderActor>(system_, identity_, std::move(parts->first), std::move(parts->second),
                                               config.pricing_policy, ledger_->address(), ledger_->store(), options,
                                               provider_counters_);
      });
  if (!provider_.ok()) return Status::Internal("provider: cannot start: " + provider_.error());
  return Status::Ok();
}

ClientQuerySources NodeContext::QuerySources(const NodeConfig& config) const {
  ClientQuerySources sources;
  sources.ledger = &ledger_->store();
  sources.node = identity_.public_key();
  sources.role = config.role;
  sources.offer_book = offer_book_.address();
  if (provider_.ok()) sources.provider = provider_.address();
  sources.feed = feed_counters_;
  sources.offers = offer_counters_;
  sources.provider_counters = provider_counters_;
  sources.client = client_counters_;
  sources.ledger_report = ledger_report_;
  return sources;
}

Status NodeContext::StartClientPort(const NodeConfig& config) {
  if (config.client_listen.empty()) return Status::Ok();
  client::ClientPortConfig port;
  port.listen = config.client_listen;
  port.curve = !client::IsLoopbackEndpoint(config.client_listen);  // docs/CLIENT.md, "Addresses"
  port.ledger = &ledger_->store();
  port.queries = ClientQueries(QuerySources(config));
  port.on_submit_to_lease = [metrics = metrics_](std::chrono::nanoseconds took) {
    metrics->submit_to_lease_seconds.Observe(std::chrono::duration<double>(took).count());
  };
  client_port_ = system_.Spawn({.name = "client-port", .mailbox_hwm = client::kClientPortMailboxHwm},
                               [this, port, counters = client_counters_] {
                                 return std::make_unique<client::ClientPort>(identity_, port, counters);
                               });
  if (!client_port_.ok()) {
    return Status::IoError("client port: cannot listen on " + config.client_listen + ": " + client_port_.error());
  }
  return Status::Ok();
}

namespace {

// The Leases and Closes this node's ledger holds that are still within the gossip retention
// window, as envelope bytes for GossipNodeConfig::retain: after a restart the node serves them to
// peers that reconcile with it, as it did before. The ledger has no index by time, so this pages
// through every lease once at start (bounded by what the core can retain).
Result<std::vector<market::Bytes>> ReconcilableRecords(const ledger::LedgerStore& store, int64_t retention_ms,
                                                int64_t now_ms) {
  std::vector<market::Bytes> out;
  ledger::LeaseQuery query;
  query.limit = ledger::kMaxPageSize;
  auto keep = [&](const market::Envelope& envelope) {
    if (envelope.expires_ms > now_ms && envelope.created_ms > now_ms - retention_ms &&
        out.size() < gossip::limits::kMaxRetainedItems) {
      out.push_back(market::EncodeEnvelope(envelope));
    }
  };
  while (true) {
    Result<ledger::LeasePage> page = store.Leases(query);
    if (!page.ok()) return page.status();
    for (const ledger::LeaseRecord& record : page->leases) {
      keep(record.envelope);
      if (record.close_envelope) keep(*record.close_envelope);
    }
    if (!page->next_after || out.size() >= gossip::limits::kMaxRetainedItems) break;
    query.after = page->next_after;
  }
  return out;
}

}  // namespace

Status NodeContext::StartGossip(const NodeConfig& config) {
  gossip_outbox_ = std::make_unique<actors::Outbox>(system_);
  gossip::GossipNodeConfig settings = config.GossipSettings();
  if (settings.core.reconcile_interval_ms >= 0) {
    Result<std::vector<market::Bytes>> records = ReconcilableRecords(ledger_->store(), settings.core.reconcile_retention_ms,
                                                             SystemClock::Instance().NowMs());
    if (!records.ok()) return Status::IoError("ledger: cannot read leases to reconcile: " + records.status().message());
    settings.retain = std::move(records).value();
  }
  // On the gossip thread, for each new verified message: never blocks (a full queue is a
  // counted drop).
  std::optional<actors::ActorAddress> provider;
  if (provider_.ok()) provider = provider_.address();
  std::optional<actors::ActorAddress> port;
  if (client_port_.ok()) port = client_port_.address();
  settings.on_deliver = [outbox = gossip_outbox_.get(), feed = feed_.address(), book = offer_book_.address(),
                         feed_counters = feed_counters_, offer_counters = offer_counters_, provider,
                         provider_counters = provider_counters_, port,
                         client_counters = client_counters_](const gossip::Deliver& deliver) {
    HandToFeed(deliver, *outbox, feed, *feed_counters);
    HandToOfferBook(deliver, *outbox, book, *offer_counters);
    if (provider) HandToProvider(deliver, *outbox, *provider, *provider_counters);
    if (port) client::HandToClientPort(deliver, *outbox, *port, *client_counters);
  };
  // The core does not deliver what this node publishes. What a client published here reaches
  // this node's own parts as if a peer had sent it (a tenant may use a provider's node: the
  // provider must see its Order and Accept, the ledger its Close). The node's own messages
  // (the provider's Offer, Bids, Leases and Closes, which it already applied) go only to the
  // offer book (so a provider's node lists itself) and the client port (a tenant following an
  // order here gets this provider's bid and lease).
  settings.on_publish = [deliver = settings.on_deliver, outbox = gossip_outbox_.get(), book = offer_book_.address(),
                         offer_counters = offer_counters_, port, client_counters = client_counters_,
                         self = identity_.public_key()](const gossip::Deliver& published) {
    Result<market::Envelope> envelope = market::DecodeEnvelope(published.envelope);
    const bool own = envelope.ok() && envelope->signer == self;
    if (!own) return deliver(published);
    HandToOfferBook(published, *outbox, book, *offer_counters);
    if (port) client::HandToClientPort(published, *outbox, *port, *client_counters);
  };
  gossip_ = system_.Spawn({.name = "gossip"}, [this, settings] {
    return std::make_unique<gossip::GossipNode>(identity_, settings);
  });
  if (!gossip_.ok()) return Status::IoError("gossip: cannot start: " + gossip_.error());
  outbox_ = std::make_unique<actors::Outbox>(system_);
  Result<gossip::GossipNodeStatus> status = GossipStatus();
  if (!status.ok()) return status.status();
  peer_address_ = status->address;
  if (client_port_.ok()) {
    if (outbox_->Send(client_port_.address(), client::ClientPortStart{gossip_.address()}) != actors::SendResult::kOk) {
      return Status::Internal("client port: stopped before gossip started");
    }
    auto address = outbox_->Request<std::string>(client_port_.address(), client::GetClientAddress{}, kStatusTimeout);
    if (!address.ok()) return Status::Unavailable("client port: no address reply");
    client_address_ = address.value();
  }
  // The provider publishes from now on (its first Offer leaves at once).
  if (provider_.ok() && outbox_->Send(provider_.address(), ProviderStart{gossip_.address()}) != actors::SendResult::kOk) {
    return Status::Internal("provider: stopped before gossip started");
  }
  return Status::Ok();
}

Status NodeContext::StartMetrics(const NodeConfig& config) {
  std::optional<actors::ActorAddress> provider;
  if (provider_.ok()) provider = provider_.address();
  std::shared_ptr<const client::ClientPortCounters> client;
  if (client_port_.ok()) client = client_counters_;
  metric_sources_ = std::make_shared<NodeMetricSources>(
      system_, NodeMetricSources::Parts{gossip_.address(), provider, ledger_.get(), feed_counters_, offer_counters_,
                                        provider_counters_, client});
  NodeMetricSources::Register(*metrics_, metric_sources_);
  if (config.metrics_listen.empty()) return Status::Ok();
  Result<metrics::ListenAddress> address = metrics::ParseListenAddress(config.metrics_listen);
  if (!address.ok()) return address.status().WithContext("metrics_listen");
  // The node's HTTP routes: /metrics, and the console with its read-only /api/v1/ (docs/API.md).
  std::vector<metrics::HttpRoute> routes = console::ConsoleRoutes({&system_, gossip_.address(), ClientQueries(QuerySources(config))});
  routes.push_back({"GET", "/metrics", [metrics = metrics_](const metrics::HttpRequest&) {
                      return metrics::HttpResponse{200, std::string(metrics::kContentType), metrics->registry.Expose(), {}};
                    }});
  metrics::HttpServerOptions options;
  options.max_body_bytes = console::kMaxRequestBodyBytes;
  options.headers = console::SecurityHeaders();
  options.error_body = console::ErrorBody;
  Result<std::unique_ptr<metrics::HttpServer>> server =
      metrics::HttpServer::Start(*address, std::move(routes), std::move(options));
  if (!server.ok()) {
    if (config.metrics_listen_given) return server.status().WithContext("metrics_listen");
    spdlog::warn("metrics: {}; serving none (set metrics_listen to another address, or to 0)",
                 server.status().message());
    return Status::Ok();
  }
  metrics_server_ = std::move(server).value();
  return Status::Ok();
}

Status NodeContext::ReloadInventory(const bidding::Inventory& inventory, const NodeConfig& config) {
  if (!provider_.ok()) return Status::FailedPrecondition("this node is no provider");
  auto reply = outbox_->Request<Status>(
      provider_.address(),
      node::ReloadInventory{bidding::ToOffer(inventory, config.pricing_policy.tables), config.pricing_policy,
                            inventory.physical_gpus},
      kStatusTimeout);
  if (!reply.ok()) return Status::Unavailable("provider: no reply");
  return reply.value();
}

Result<ProviderStatus> NodeContext::ProviderState() {
  if (!provider_.ok()) return Status::FailedPrecondition("this node is no provider");
  auto reply = outbox_->Request<ProviderStatus>(provider_.address(), GetProviderStatus{}, kStatusTimeout);
  if (!reply.ok()) return Status::Unavailable("provider: no status reply");
  return reply.value();
}

Status NodeContext::StopProvider(std::chrono::milliseconds timeout) {
  if (!provider_.ok()) return Status::Ok();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto stopped = outbox_->Request<bool>(provider_.address(), StopBidding{}, kStatusTimeout);
  if (!stopped.ok()) return Status::Unavailable("provider: no reply to stop bidding");
  // Leases whose write is in flight are published once durable, before the offer goes.
  while (true) {
    Result<ProviderStatus> state = ProviderState();
    if (!state.ok()) return state.status();
    if (state->pending_lease_writes == 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Timeout(std::to_string(state->pending_lease_writes) + " lease writes still in flight");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto withdrawal = outbox_->Request<market::Bytes>(provider_.address(), WithdrawOffer{}, kStatusTimeout);
  if (!withdrawal.ok()) return Status::Unavailable("provider: no withdrawal offer");
  auto published = outbox_->Request<Status>(gossip_.address(), gossip::PublishMessage{std::move(withdrawal.value())},
                                            kStatusTimeout);
  if (!published.ok()) return Status::Unavailable("gossip: no reply to the withdrawal");
  return published.value().WithContext("withdrawing the offer");
}

Result<gossip::GossipNodeStatus> NodeContext::GossipStatus() {
  auto reply = outbox_->Request<gossip::GossipNodeStatus>(gossip_.address(), gossip::GetGossipStatus{}, kStatusTimeout);
  if (!reply.ok()) return Status::Unavailable("gossip: no status reply");
  return reply.value();
}

Result<OfferBookStatus> NodeContext::OfferStatus() {
  auto reply = outbox_->Request<OfferBookStatus>(offer_book_.address(), GetOfferBookStatus{}, kStatusTimeout);
  if (!reply.ok()) return Status::Unavailable("offer book: no status reply");
  return reply.value();
}

Result<std::vector<market::Candidate>> NodeContext::FindOffers(const market::Order& order, market::Policy policy,
                                                               size_t k) {
  auto reply = outbox_->Request<Result<std::vector<market::Candidate>>>(
      offer_book_.address(), node::FindOffers{order, policy, k}, kStatusTimeout);
  if (!reply.ok()) return Status::Unavailable("offer book: no reply");
  return std::move(reply.value());
}

NodeContext::~NodeContext() {
  metrics_server_.reset();  // no scrape in progress or to come
  if (metric_sources_) metric_sources_->Close();
  outbox_.reset();
  client_port_.Stop();     // no more client publishes
  gossip_.Stop();          // no more deliveries
  gossip_outbox_.reset();  // what it queued stays queued
  provider_.Stop();  // its ledger writes already queued are still committed
  offer_book_.Stop();
  // The feed's writes already queued at the ledger are still committed (their answers to the
  // stopped feed are not needed).
  feed_.Stop();
  ledger_.reset();  // commits everything queued
}

}  // namespace gpumart::node
