#include "node/json.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ledger/lease_state.h"
#include "market/crypto.h"
#include "market/billing.h"

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
    Json json = {{"vendor", option.vendor},
                 {"model", option.model},
                 {"ram_min_bytes", OptionalJson(option.ram_min_bytes)},
                 {"interface", option.interface ? Json(std::string(market::ToString(*option.interface))) : Json(nullptr)}};
    // Fractional options only (docs/FRACTIONAL.md): a whole-GPU option's object is as before.
    if (option.mig) json["mig"] = *option.mig;
    if (option.mig_min_ram_bytes > 0) json["mig_min_ram_bytes"] = option.mig_min_ram_bytes;
    if (option.shared_ok) json["shared"] = true;
    options.push_back(std::move(json));
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
  Json json = {{"vendor", device.vendor},
               {"model", device.model},
               {"ram_bytes", device.ram_bytes},
               {"interface", std::string(market::ToString(device.interface))}};
  // Fractional devices only (docs/FRACTIONAL.md), so a whole GPU's object is as before.
  if (!device.mig_profile.empty()) json["mig_profile"] = device.mig_profile;
  if (device.shared) json["shared"] = true;
  return json;
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

Json ToJson(const ledger::LeaseRecord& record, int64_t now_ms) {
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
           {"spot", record.lease.spot ? Json{{"notice_ms", record.lease.spot->notice_ms}} : Json(nullptr)},
           {"close", nullptr},
           {"billing", nullptr},
           {"accrued", nullptr}};
  if (record.close && record.close_envelope) {
    out["close"] = {{"reason", market::ToString(record.close->reason)},
                    {"closed_ms", record.close->closed_ms},
                    {"closed_by", market::ToHex(record.close_envelope->signer)},
                    {"note", record.close->note}};
    if (!record.close->preemptor_lease.empty()) {
      // The lease the preemption made room for (its id: the hash of the embedded envelope).
      Result<market::Envelope> preemptor = market::DecodeEnvelope(record.close->preemptor_lease);
      out["close"]["preemptor_lease"] = preemptor.ok() ? Json(market::ToHex(market::ComputeId(*preemptor))) : Json(nullptr);
    }
  }
  if (record.billing) {
    out["billing"] = {{"duration_ms", record.billing->duration_ms}, {"amount_owed", record.billing->amount_owed}};
  }
  // The cost so far (the rate is price_per_hour); null only for an amount past 64 bits.
  const market::Close* close = record.close && record.state == ledger::LeaseState::kClosed ? &*record.close : nullptr;
  if (Result<market::Accrued> accrued = market::AccruedCost(record.lease, close, now_ms); accrued.ok()) {
    out["accrued"] = {{"until_ms", market::BilledUntilMs(record.lease, close, now_ms)},
                      {"duration_ms", accrued->duration_ms},
                      {"cost", accrued->amount}};
  }
  return out;
}

Json ToJson(const market::DeviceType& type, const bidding::DeviceUsage& usage) {
  return {{"device", ToJson(type)},
          {"installed", usage.installed},
          {"out_of_service", usage.out_of_service},
          {"leased", usage.leased},
          {"utilisation_permille", usage.UtilisationPermille()},
          {"revenue_per_hour", usage.revenue_per_hour}};
}

std::string DeviceLabel(const Json& device) {
  if (!device.is_object()) return "?";
  const Json& ram = device.value("ram_bytes", Json());
  return device.value("model", "?") + " " + (ram.is_number_unsigned() ? market::FormatGi(ram.get<uint64_t>()) : "?") +
         " " + device.value("interface", "?");
}

Json ToJson(const bidding::GpuHealth& gpu) {
  return {{"id", gpu.id},
          {"index", gpu.index},
          {"name", gpu.name},
          {"bus_id", gpu.bus_id},
          {"state", bidding::ToString(gpu.state)},
          {"reason", gpu.reason},
          {"unhealthy_since_ms", gpu.unhealthy_since_ms},
          {"healthy_since_ms", gpu.healthy_since_ms},
          {"temperature_c", gpu.temperature_c ? Json(*gpu.temperature_c) : Json(nullptr)},
          {"ecc_volatile_uncorrected", gpu.ecc_volatile_uncorrected},
          {"ecc_aggregate_uncorrected", gpu.ecc_aggregate_uncorrected},
          {"xid_errors", gpu.xid_errors},
          {"last_xid", gpu.last_xid}};
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

Json ToJson(const market::OfferRow& row) {
  return {{"provider", row.provider},
          {"name", row.name},
          {"node", row.node},
          {"device", ToJson(row.device)},
          {"cuda", row.cuda ? Json(market::ToString(*row.cuda)) : Json(nullptr)},
          {"num_gpus", row.num_gpus},
          {"denom", row.denom},
          {"dph_per_gpu", row.dph_per_gpu},
          {"dph", row.dph},
          {"reliability", row.reliability_ppm / kPpmPerUnit},
          {"verified", row.verified},
          {"attributes", row.attributes},
          {"cpu_millis", row.cpu_millis},
          {"memory_bytes", row.memory_bytes},
          {"storage_bytes", row.storage_bytes}};
}

Json ToJson(const market::OfferSearchResult& result) {
  Json rows = Json::array();
  for (const market::OfferRow& row : result.rows) rows.push_back(ToJson(row));
  return {{"offers", std::move(rows)}, {"matched", result.matched}};
}

namespace {

// Readers for OfferSearchResultFromJson: each names the key it could not read.
Status NotRead(const std::string& key, const char* what) {
  return Status::InvalidArgument("offer search answer: " + key + " is not " + what);
}
Status ReadText(const Json& object, const std::string& key, std::string& out) {
  const auto found = object.find(key);
  if (found == object.end() || !found->is_string()) return NotRead(key, "a string");
  out = found->get<std::string>();
  return Status::Ok();
}
template <typename T>
Status ReadUnsigned(const Json& object, const std::string& key, T& out) {
  const auto found = object.find(key);
  if (found == object.end() || !found->is_number_unsigned() || found->get<uint64_t>() > std::numeric_limits<T>::max()) {
    return NotRead(key, "a whole number in range");
  }
  out = static_cast<T>(found->get<uint64_t>());
  return Status::Ok();
}

Result<market::OfferRow> OfferRowFromJson(const Json& json) {
  if (!json.is_object()) return NotRead("an offer", "an object");
  market::OfferRow row;
  GPUMART_RETURN_IF_ERROR(ReadText(json, "provider", row.provider));
  GPUMART_RETURN_IF_ERROR(ReadText(json, "name", row.name));
  GPUMART_RETURN_IF_ERROR(ReadText(json, "node", row.node));
  const auto device = json.find("device");
  if (device == json.end() || !device->is_object()) return NotRead("device", "an object");
  GPUMART_RETURN_IF_ERROR(ReadText(*device, "vendor", row.device.vendor));
  GPUMART_RETURN_IF_ERROR(ReadText(*device, "model", row.device.model));
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(*device, "ram_bytes", row.device.ram_bytes));
  std::string interface;
  GPUMART_RETURN_IF_ERROR(ReadText(*device, "interface", interface));
  const auto parsed_interface = market::ParseGpuInterface(interface);
  if (!parsed_interface) return NotRead("device.interface", "pcie or sxm");
  row.device.interface = *parsed_interface;
  if (const auto mig = device->find("mig_profile"); mig != device->end()) {
    if (!mig->is_string() || !market::IsMigProfile(mig->get<std::string>())) {
      return NotRead("device.mig_profile", "a MIG profile such as 1g.10gb");
    }
    row.device.mig_profile = mig->get<std::string>();
  }
  if (const auto shared = device->find("shared"); shared != device->end()) {
    if (!shared->is_boolean()) return NotRead("device.shared", "true or false");
    row.device.shared = shared->get<bool>();
  }
  const auto cuda = json.find("cuda");
  if (cuda == json.end()) return NotRead("cuda", "a version or null");
  if (!cuda->is_null()) {
    if (!cuda->is_string()) return NotRead("cuda", "a version or null");
    row.cuda = market::ParseCudaVersion(cuda->get<std::string>());
    if (!row.cuda) return NotRead("cuda", "a version or null");
  }
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "num_gpus", row.num_gpus));
  GPUMART_RETURN_IF_ERROR(ReadText(json, "denom", row.denom));
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "dph_per_gpu", row.dph_per_gpu));
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "dph", row.dph));
  const auto reliability = json.find("reliability");
  if (reliability == json.end() || !reliability->is_number()) return NotRead("reliability", "a number");
  const double units = reliability->get<double>();
  if (!(units >= 0 && units <= 1)) return NotRead("reliability", "a number from 0 to 1");
  row.reliability_ppm = static_cast<uint32_t>(std::llround(units * kPpmPerUnit));
  const auto verified = json.find("verified");
  if (verified == json.end() || !verified->is_boolean()) return NotRead("verified", "true or false");
  row.verified = verified->get<bool>();
  const auto attributes = json.find("attributes");
  if (attributes == json.end() || !attributes->is_object()) return NotRead("attributes", "an object");
  for (const auto& [key, value] : attributes->items()) {
    if (!value.is_string()) return NotRead("attributes." + key, "a string");
    row.attributes[key] = value.get<std::string>();
  }
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "cpu_millis", row.cpu_millis));
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "memory_bytes", row.memory_bytes));
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "storage_bytes", row.storage_bytes));
  return row;
}

}  // namespace

Result<market::OfferSearchResult> OfferSearchResultFromJson(const Json& json) {
  if (!json.is_object()) return NotRead("the answer", "an object");
  market::OfferSearchResult result;
  GPUMART_RETURN_IF_ERROR(ReadUnsigned(json, "matched", result.matched));
  const auto offers = json.find("offers");
  if (offers == json.end() || !offers->is_array()) return NotRead("offers", "a list");
  for (const Json& item : *offers) {
    Result<market::OfferRow> row = OfferRowFromJson(item);
    if (!row.ok()) return row.status();
    result.rows.push_back(std::move(row).value());
  }
  return result;
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
