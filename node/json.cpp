#include "node/json.h"

#include "ledger/lease_state.h"
#include "market/crypto.h"

namespace gpumart::node {
namespace {

constexpr double kPpmPerUnit = 1'000'000.0;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

Json OptionalJson(const auto& value) {
  if (!value) return nullptr;
  return Json(*value);
}

Json ToJson(const market::GpuRequest& gpu) {
  Json options = Json::array();
  for (const auto& option : gpu.options) {
    options.push_back({{"vendor", option.vendor},
                       {"model", option.model},
                       {"ram_min_bytes", OptionalJson(option.ram_min_bytes)},
                       {"interface", option.interface ? Json(std::string(market::ToString(*option.interface)))
                                                      : Json(nullptr)}});
  }
  return {{"units", gpu.units}, {"options", std::move(options)}};
}

Json ToJson(const market::ServiceRequest& service, const market::Deployment& deployment) {
  Json storage = Json::array();
  for (const auto& volume : service.resources.storage) {
    storage.push_back({{"name", volume.name},
                       {"bytes", volume.bytes},
                       {"class", OptionalJson(volume.storage_class)},
                       {"persistent", volume.persistent}});
  }
  const auto& cap = service.price_cap;
  Json out = {{"name", service.name},
              {"profile", service.profile},
              {"count", service.count},
              {"cpu_millis", service.resources.cpu_millis},
              {"memory_bytes", service.resources.memory_bytes},
              {"storage", std::move(storage)},
              {"gpu", ToJson(service.resources.gpu)},
              {"cuda_min", service.cuda_min ? Json(market::ToString(*service.cuda_min)) : Json(nullptr)},
              {"price_cap", {{"denom", cap.denom}, {"amount", cap.amount}, {"per", "block"}, {"per_hour", cap.per_hour}}}};
  // Several denoms (SDL 2.2): the caps after price_cap, in the tenant's order of preference.
  Json more_caps = Json::array();
  for (const auto& more : service.more_caps) {
    more_caps.push_back({{"denom", more.denom}, {"amount", more.amount}, {"per", "block"}, {"per_hour", more.per_hour}});
  }
  out["more_caps"] = std::move(more_caps);
  if (auto spec = deployment.services.find(service.name); spec != deployment.services.end()) {
    out["image"] = spec->second.image;
  }
  return out;
}

// Length of the valid UTF-8 sequence starting at text[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
size_t Utf8SequenceLength(std::string_view text, size_t i, uint32_t& code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  size_t length = 0;
  uint32_t min = 0;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, min = 0x80, code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min = 0x800, code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

Json ToJson(const market::DeviceType& device) {
  return {{"vendor", device.vendor},
          {"model", device.model},
          {"ram_bytes", device.ram_bytes},
          {"interface", std::string(market::ToString(device.interface))}};
}

Json ToJson(const market::Placement& placement) {
  return {{"node", placement.node}, {"replicas", placement.replicas}};
}

Json ToJson(const market::ServiceAssignment& service) {
  Json placements = Json::array();
  for (const auto& placement : service.placements) placements.push_back(ToJson(placement));
  return {{"name", service.service},
          {"option", OptionalJson(service.option)},
          {"device", service.device ? ToJson(*service.device) : Json(nullptr)},
          {"placements", std::move(placements)}};
}

Json ToJson(const std::vector<market::ServiceAssignment>& services) {
  Json out = Json::array();
  for (const auto& service : services) out.push_back(ToJson(service));
  return out;
}

Json ToJson(const ledger::LeaseRecord& record) {
  Json out{{"id", market::ToHex(record.id)},
           {"state", ledger::ToString(record.state)},
           {"provider", market::ToHex(record.provider())},
           {"tenant", market::ToHex(record.lease.tenant)},
           {"order_id", market::ToHex(record.lease.order_id)},
           {"bid_id", market::ToHex(record.lease.bid_id)},
           {"denom", record.lease.denom},
           {"price_per_hour", record.lease.price_per_hour},
           {"start_ms", record.lease.start_ms},
           {"services", ToJson(record.lease.services)},
           {"close", nullptr},
           {"billing", nullptr}};
  if (record.close && record.close_envelope) {
    out["close"] = {{"reason", market::ToString(record.close->reason)},
                    {"closed_ms", record.close->closed_ms},
                    {"closed_by", market::ToHex(record.close_envelope->signer)},
                    {"note", record.close->note}};
  }
  if (record.billing) {
    out["billing"] = {{"duration_ms", record.billing->duration_ms}, {"amount_owed", record.billing->amount_owed}};
  }
  return out;
}

Json ToJson(const market::Signed<market::Attestation>& attestation) {
  return {{"id", market::ToHex(attestation.id)},
          {"auditor", market::ToHex(attestation.envelope.signer)},
          {"provider", market::ToHex(attestation.body.provider)},
          {"verdict", market::ToString(attestation.body.verdict)},
          {"attested_ms", attestation.body.attested_ms},
          {"note", attestation.body.note}};
}

Json ToJson(const market::Candidate& candidate) {
  return {{"provider", candidate.provider},
          {"price_per_hour", candidate.price_per_hour},
          {"denom", candidate.denom},
          {"denom_rank", candidate.denom_rank},
          {"reputation", candidate.reputation_ppm / kPpmPerUnit},
          {"ranks", candidate.ranks},
          {"services", ToJson(candidate.services)}};
}

Json ToJson(const market::Deployment& deployment) {
  Json groups = Json::array();
  for (const auto& order : deployment.orders) {
    Json services = Json::array();
    for (const auto& service : order.services) services.push_back(ToJson(service, deployment));
    Json caps = Json::array();  // every denom the group may be paid in, most preferred first
    for (const std::string& denom : order.Denoms()) {
      caps.push_back({{"denom", denom}, {"cap_per_hour", order.CapPerHourIn(denom).value_or(0)}});
    }
    groups.push_back({{"name", order.group},
                      {"attributes", order.attributes},
                      {"signed_by", {{"all_of", order.signed_by.all_of}, {"any_of", order.signed_by.any_of}}},
                      {"services", std::move(services)},
                      {"denom", order.Denom()},
                      {"cap_per_hour", order.CapPerHour()},
                      {"caps", std::move(caps)}});
  }
  Json warnings = Json::array();
  for (const auto& warning : deployment.warnings) {
    warnings.push_back({{"path", warning.path}, {"message", warning.message}});
  }
  return {{"version", deployment.version}, {"groups", std::move(groups)}, {"warnings", std::move(warnings)}};
}

Json ToJson(const ledger::VerifyReport& report, const std::string& ledger_path) {
  Json out{{"ok", report.ok},
           {"ledger", ledger_path},
           {"records", report.records},
           {"signatures", report.signatures},
           {"derived_values", report.derived_values},
           {"index_entries", report.index_entries},
           {"chain_entries", report.chain_entries}};
  if (report.ok) {
    out["head"] = {{"seq", report.head.seq}, {"hash", market::ToHex(report.head.hash)}};
  } else {
    out["key"] = report.key;
    out["problem"] = report.problem;
  }
  return out;
}

std::string DumpJson(const Json& json, int indent) {
  return json.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    uint32_t code_point = 0;
    const size_t length = Utf8SequenceLength(text, i, code_point);
    const bool control = code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
    if (length == 0 || control) {
      out += kReplacement;
      i += length == 0 ? 1 : length;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

}  // namespace gpumart::node
