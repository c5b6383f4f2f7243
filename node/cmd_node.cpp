// gpumart status: what a running node says about itself (peers, offers, open orders,
// reservations, leases, revenue per hour for a provider), over its client port.
// gpumart close LEASE: signs a Close of one of the signer's leases and publishes it through a
// node, which checks that the key is the lease's tenant or provider (docs/CLIENT.md, "publish").
#include <CLI/CLI.hpp>
#include <ostream>

#include "actors/clock.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "node/cli.h"
#include "node/client_cli.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

// Envelope lifetime of a Close the CLI signs: long enough to reach every node.
constexpr int64_t kCloseTtlMs = 60'000;

Result<std::unique_ptr<client::Client>> Connect(const CLI::App& command, const NodeFlags& flags) {
  Result<NodeChoice> choice = ChooseNode(command, flags, /*offline_reader=*/false);
  if (!choice.ok()) return choice.status();
  return client::Client::Connect(choice->address);
}

std::string Short(const std::string& hex) { return hex.substr(0, 16) + "…"; }

void PrintStatus(std::ostream& out, const Json& status) {
  out << "node       " << status.value("node", "") << " (" << status.value("role", "") << ")\n";
  out << "peers      " << status.value("ready_peers", uint64_t{0});
  for (const Json& peer : status.value("peers", Json::array())) out << " " << Short(peer.get<std::string>());
  out << "\n";
  out << "offers     " << status.value("offers", uint64_t{0}) << " providers in the offer book\n";
  out << "orders     " << status.value("open_orders", uint64_t{0}) << (status.value("open_orders_partial", false) ? "+" : "")
      << " open\n";
  if (status.contains("leases_active") && !status["leases_active"].is_null()) {
    out << "reserved   " << status.value("reservations", uint64_t{0}) << " reservations\n";
    out << "leases     " << status["leases_active"].get<uint64_t>() << " active\n";
    out << "revenue   ";
    const Json revenue = status.value("revenue_per_hour", Json::object());
    if (revenue.empty()) out << " 0";
    for (const auto& [denom, amount] : revenue.items()) out << " " << amount.get<uint64_t>() << " " << Printable(denom) << "/h";
    out << (status.value("revenue_partial", false) ? " (partial)" : "") << "\n";
  }
  for (const Json& entry : status.value("devices", Json::array())) {
    out << "device     " << Printable(DeviceLabel(entry.value("device", Json()))) << ": " << entry.value("leased", uint64_t{0}) << " of "
        << entry.value("installed", uint64_t{0}) - entry.value("out_of_service", uint64_t{0}) << " leased ("
        << entry.value("utilisation_permille", uint64_t{0}) / 10 << "%)";
    if (const uint64_t out_of_service = entry.value("out_of_service", uint64_t{0}); out_of_service > 0) {
      out << ", " << out_of_service << " out of service";
    }
    const Json revenue = entry.value("revenue_per_hour", Json::object());
    for (const auto& [denom, amount] : revenue.items()) {
      out << ", " << amount.get<uint64_t>() << " " << Printable(denom) << "/h";
    }
    out << "\n";
  }
  if (const auto health = status.find("gpu_health"); health != status.end() && health->is_object()) {
    for (const Json& gpu : health->value("gpus", Json::array())) {
      out << "gpu " << gpu.value("index", uint64_t{0}) << "      " << Printable(gpu.value("id", "")) << " "
          << Printable(gpu.value("state", ""));
      if (gpu.contains("temperature_c") && gpu["temperature_c"].is_number()) out << " " << gpu["temperature_c"] << " C";
      if (gpu.value("state", "") != "healthy") out << ": " << Printable(gpu.value("reason", ""));
      out << "\n";
    }
  }
  out << "recorded   " << status.value("leases_recorded", uint64_t{0}) << " leases, closes and attestations from gossip\n";
}

void RegisterStatus(CLI::App& app, CliContext& context) {
  auto* command = app.add_subcommand("status", "what a running node says: peers, offers, orders, reservations, leases, revenue");
  struct Options {
    NodeFlags node;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  AddNodeOptions(*command, options->node, /*offline_reader=*/false);
  command->add_flag("--json", options->json, "print JSON (docs/CLIENT.md, \"status\")");
  SetCommandBody(*command, context, [command, options, &context] {
    auto client = Connect(*command, options->node);
    if (!client.ok()) return context.Fail(client.status());
    auto result = (*client)->Call("status", {});
    if (!result.ok()) return context.Fail(result.status());
    Result<Json> status = ParseJsonResult(*result);
    if (!status.ok()) return context.Fail(status.status());
    if (options->json) {
      context.out << DumpJson(*status) << "\n";
    } else {
      PrintStatus(context.out, *status);
    }
    return kExitOk;
  });
}

std::optional<market::CloseReason> ParseCloseReason(std::string_view text) {
  for (auto reason : {market::CloseReason::kTenantClosed, market::CloseReason::kProviderClosed,
                      market::CloseReason::kInsufficientFunds, market::CloseReason::kProviderFailure,
                      market::CloseReason::kExpired}) {
    if (market::ToString(reason) == text) return reason;
  }
  return std::nullopt;
}

void RegisterClose(CLI::App& app, CliContext& context) {
  auto* command = app.add_subcommand("close", "close one of your leases (signed with your key, checked by the node)");
  struct Options {
    std::string lease;
    std::string reason;
    std::string note;
    std::string key;
    NodeFlags node;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("LEASE", options->lease, "the lease id (64 hex digits)")->required();
  command
      ->add_option("--reason", options->reason,
                   "why: tenant-closed (default for the tenant), provider-closed (default for the provider), "
                   "insufficient-funds, provider-failure, expired")
      ->check(CLI::IsMember({"tenant-closed", "provider-closed", "insufficient-funds", "provider-failure", "expired"}));
  command->add_option("--note", options->note, "free text recorded with the close")
      ->check(CLI::Validator([](std::string& text) { return text.size() <= market::limits::kMaxTextBytes ? "" : "too long"; },
                             "TEXT"));
  command->add_option("--key", options->key,
                      "the key file that signs (the lease's tenant or provider); default " + client::DefaultTenantKeyPath());
  AddNodeOptions(*command, options->node, /*offline_reader=*/false);
  command->add_flag("--json", options->json, "print JSON: {\"lease\", \"close_id\", \"reason\", \"signer\"}");
  SetCommandBody(*command, context, [command, options, &context] {
    const std::optional<market::MessageId> lease_id = market::FromHex<market::kIdBytes>(options->lease);
    if (!lease_id) return context.Fail("LEASE must be 64 hex digits", kExitUsage);
    const std::string key_path = options->key.empty() ? client::DefaultTenantKeyPath() : options->key;
    Result<market::Identity> key = market::LoadKeyFile(key_path);
    if (!key.ok()) {
      return context.Fail(key.status().WithContext("the signing key " + key_path +
                                                   " (create one with gpumart keygen -o FILE, or pass --key FILE)"));
    }
    auto client = Connect(*command, options->node);
    if (!client.ok()) return context.Fail(client.status());
    const std::string signer = market::ToHex(key->public_key());
    std::optional<market::CloseReason> reason = ParseCloseReason(options->reason);
    if (!reason) {
      // The default says who closes; the node's ledger knows which party this key is.
      reason = market::CloseReason::kTenantClosed;
      auto record = (*client)->Call("lease", {{"lease", client::Bytes(lease_id->begin(), lease_id->end())}});
      if (record.ok()) {
        Result<Json> lease = ParseJsonResult(*record);
        if (lease.ok() && lease->value("provider", "") == signer) reason = market::CloseReason::kProviderClosed;
      }
    }
    const int64_t now = SystemClock::Instance().NowMs();
    const market::Close close{*lease_id, *reason, now, options->note};
    const auto signed_close = market::MakeSigned(*key, close, now, kCloseTtlMs, market::RandomNonce());
    auto published = (*client)->Publish(market::EncodeEnvelope(signed_close.envelope));
    if (!published.ok()) return context.Fail(published.status().WithContext("close refused by the node"));
    if (options->json) {
      context.out << DumpJson(Json{{"lease", options->lease},
                                   {"close_id", market::ToHex(*published)},
                                   {"reason", std::string(market::ToString(*reason))},
                                   {"signer", signer}})
                  << "\n";
    } else {
      context.out << "closed lease " << options->lease << " (" << market::ToString(*reason) << ", signed by "
                  << Short(signer) << "); close " << market::ToHex(*published) << "\n";
    }
    return kExitOk;
  });
}

}  // namespace

void RegisterNodeCommands(CLI::App& app, CliContext& context) {
  RegisterStatus(app, context);
  RegisterClose(app, context);
}

}  // namespace gpumart::node
