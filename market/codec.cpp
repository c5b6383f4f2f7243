#include "market/codec.h"

#include "market/checked_math.h"
#include "market/msgpack_reader.h"
#include "market/msgpack_writer.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

namespace gpumart::market {

std::string_view ToString(MessageType type) {
  switch (type) {
    case MessageType::kOrder: return "order";
    case MessageType::kOffer: return "offer";
    case MessageType::kBid: return "bid";
    case MessageType::kAccept: return "accept";
    case MessageType::kLease: return "lease";
    case MessageType::kClose: return "close";
    case MessageType::kAttestation: return "attestation";
  }
  return "unknown";
}

namespace {

// ---------------------------------------------------------------------------------------------
// Encoding: the canonical writer (market/msgpack_writer.h) plus the one composite the bodies share.

class Encoder : public MsgpackWriter {
 public:
  using MsgpackWriter::MsgpackWriter;
  void Cuda(const std::optional<CudaVersion>& cuda) {
    if (!cuda) return Nil();
    Array(2);
    Uint(cuda->major);
    Uint(cuda->minor);
  }
};

void EncodePriceCap(Encoder& e, const PriceCap& cap) {
  e.Array(3);
  e.Str(cap.denom);
  e.Uint(cap.amount);
  e.Uint(cap.per_hour);
}

void EncodeOrderTo(Encoder& e, const Order& order) {
  // `interruptible` is written only when true, so a regular order keeps its bytes.
  e.Array(order.interruptible ? 5 : 4);
  e.Str(order.group);
  e.StrMap(order.attributes);
  e.Array(2);
  e.StrList(order.signed_by.all_of);
  e.StrList(order.signed_by.any_of);
  e.Array(order.services.size());
  for (const auto& service : order.services) {
    // The list of further caps is written only when there is one, so a single-denom order has
    // the bytes it had before several denoms existed (and one encoding either way).
    e.Array(service.more_caps.empty() ? 6 : 7);
    e.Str(service.name);
    e.Str(service.profile);
    e.Uint(service.count);
    const Resources& r = service.resources;
    e.Array(4);
    e.Uint(r.cpu_millis);
    e.Uint(r.memory_bytes);
    e.Array(r.storage.size());
    for (const auto& volume : r.storage) {
      e.Array(4);
      e.Str(volume.name);
      e.Uint(volume.bytes);
      if (volume.storage_class) e.Str(*volume.storage_class); else e.Nil();
      e.Bool(volume.persistent);
    }
    e.Array(2);
    e.Uint(r.gpu.units);
    e.Array(r.gpu.options.size());
    for (const auto& option : r.gpu.options) {
      // The fractional fields are written only when one is set, so a whole-GPU option has the
      // bytes it had before they existed (and one encoding either way).
      const bool fractional = option.mig || option.mig_min_ram_bytes > 0 || option.shared_ok;
      e.Array(fractional ? 7 : 4);
      e.Str(option.vendor);
      e.Str(option.model);
      if (option.ram_min_bytes) e.Uint(*option.ram_min_bytes); else e.Nil();
      if (option.interface) e.Uint(static_cast<uint8_t>(*option.interface)); else e.Nil();
      if (fractional) {
        if (option.mig) e.Str(*option.mig); else e.Nil();
        e.Uint(option.mig_min_ram_bytes);
        e.Bool(option.shared_ok);
      }
    }
    e.Cuda(service.cuda_min);
    EncodePriceCap(e, service.price_cap);
    if (!service.more_caps.empty()) {
      e.Array(service.more_caps.size());
      for (const PriceCap& cap : service.more_caps) EncodePriceCap(e, cap);
    }
  }
  if (order.interruptible) e.Bool(true);
}

void EncodeDevice(Encoder& e, const DeviceType& device) {
  // As for GPU options: the fractional fields only when one is set.
  const bool fractional = !device.mig_profile.empty() || device.shared;
  e.Array(fractional ? 6 : 4);
  e.Str(device.vendor);
  e.Str(device.model);
  e.Uint(device.ram_bytes);
  e.Uint(static_cast<uint8_t>(device.interface));
  if (fractional) {
    e.Str(device.mig_profile);
    e.Bool(device.shared);
  }
}

void EncodeAssignments(Encoder& e, const std::vector<ServiceAssignment>& services) {
  e.Array(services.size());
  for (const auto& service : services) {
    e.Array(4);
    e.Str(service.service);
    if (service.option) e.Uint(*service.option); else e.Nil();
    if (service.device) EncodeDevice(e, *service.device); else e.Nil();
    e.Array(service.placements.size());
    for (const auto& placement : service.placements) {
      e.Array(2);
      e.Str(placement.node);
      e.Uint(placement.replicas);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding: schema-driven over MsgpackReader (see msgpack_reader.h for why), every list and
// string bounded by a named limit. Errors name the field.

using Reader = MsgpackReader;

Status ReadInterface(Reader& r, const char* field, GpuInterface& out) {
  uint64_t value = 0;
  GPUMART_RETURN_IF_ERROR(r.Uint(field, 1, value));
  out = static_cast<GpuInterface>(value);
  return Status::Ok();
}

template <size_t N>
Status ReadFixed(Reader& r, const char* field, std::array<uint8_t, N>& out) {
  return r.FixedBin(field, out.data(), N);
}

Status ReadStrMap(Reader& r, const char* field, size_t max, std::map<std::string, std::string>& out) {
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(r.Map(field, max, size));
  out.clear();
  std::string_view previous;
  for (size_t i = 0; i < size; ++i) {
    std::string_view key, value;
    GPUMART_RETURN_IF_ERROR(r.MapKey(field, limits::kMaxNameBytes, i == 0 ? nullptr : &previous, key));
    GPUMART_RETURN_IF_ERROR(r.Str(field, limits::kMaxNameBytes, value));
    // Keys arrive strictly increasing (MapKey checked), so every insert is an append.
    out.emplace_hint(out.end(), key, value);
    previous = key;
  }
  return Status::Ok();
}

Status ReadStrList(Reader& r, const char* field, size_t max, std::vector<std::string>& out) {
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(r.List(field, max, size));
  out.resize(size);
  for (size_t i = 0; i < size; ++i) GPUMART_RETURN_IF_ERROR(r.Str(field, limits::kMaxNameBytes, out[i]));
  return Status::Ok();
}

Status ReadCuda(Reader& r, const char* field, std::optional<CudaVersion>& out) {
  if (r.Nil()) {
    out.reset();
    return Status::Ok();
  }
  GPUMART_RETURN_IF_ERROR(r.Struct(field, 2));
  CudaVersion version;
  GPUMART_RETURN_IF_ERROR(r.UintAs(field, 0xffff, version.major));
  GPUMART_RETURN_IF_ERROR(r.UintAs(field, 0xffff, version.minor));
  out = version;
  return Status::Ok();
}

Status ReadOptionalUint(Reader& r, const char* field, std::optional<uint64_t>& out) {
  if (r.Nil()) {
    out.reset();
    return Status::Ok();
  }
  uint64_t value = 0;
  GPUMART_RETURN_IF_ERROR(r.Uint(field, UINT64_MAX, value));
  out = value;
  return Status::Ok();
}

Status ReadPriceCap(Reader& r, PriceCap& cap) {
  GPUMART_RETURN_IF_ERROR(r.Struct("service.price_cap", 3));
  GPUMART_RETURN_IF_ERROR(r.Str("price_cap.denom", limits::kMaxNameBytes, cap.denom));
  GPUMART_RETURN_IF_ERROR(r.Uint("price_cap.amount", UINT64_MAX, cap.amount));
  return r.Uint("price_cap.per_hour", UINT64_MAX, cap.per_hour);
}

Status ReadOrder(Reader& r, Order& order) {
  size_t order_fields = 0;
  GPUMART_RETURN_IF_ERROR(r.StructWithOptional("order", 4, order_fields));
  GPUMART_RETURN_IF_ERROR(r.Str("order.group", limits::kMaxNameBytes, order.group));
  GPUMART_RETURN_IF_ERROR(ReadStrMap(r, "order.attributes", limits::kMaxAttributes, order.attributes));
  GPUMART_RETURN_IF_ERROR(r.Struct("order.signed_by", 2));
  GPUMART_RETURN_IF_ERROR(ReadStrList(r, "order.signed_by.all_of", limits::kMaxAuditors, order.signed_by.all_of));
  GPUMART_RETURN_IF_ERROR(ReadStrList(r, "order.signed_by.any_of", limits::kMaxAuditors, order.signed_by.any_of));
  size_t service_count = 0;
  GPUMART_RETURN_IF_ERROR(r.List("order.services", limits::kMaxServices, service_count));
  order.services.resize(service_count);
  for (ServiceRequest& service : order.services) {
    size_t field_count = 0;
    GPUMART_RETURN_IF_ERROR(r.List("order.services[]", 7, field_count));
    if (field_count != 6 && field_count != 7) {
      return Status::InvalidArgument("order.services[]: expected 6 or 7 fields, got " + std::to_string(field_count));
    }
    GPUMART_RETURN_IF_ERROR(r.Str("service.name", limits::kMaxNameBytes, service.name));
    GPUMART_RETURN_IF_ERROR(r.Str("service.profile", limits::kMaxNameBytes, service.profile));
    GPUMART_RETURN_IF_ERROR(r.UintAs("service.count", limits::kMaxReplicas, service.count));
    Resources& resources = service.resources;
    GPUMART_RETURN_IF_ERROR(r.Struct("service.resources", 4));
    GPUMART_RETURN_IF_ERROR(r.Uint("resources.cpu_millis", UINT64_MAX, resources.cpu_millis));
    GPUMART_RETURN_IF_ERROR(r.Uint("resources.memory_bytes", UINT64_MAX, resources.memory_bytes));
    size_t volume_count = 0;
    GPUMART_RETURN_IF_ERROR(r.List("resources.storage", limits::kMaxVolumes, volume_count));
    resources.storage.resize(volume_count);
    for (StorageVolume& volume : resources.storage) {
      GPUMART_RETURN_IF_ERROR(r.Struct("resources.storage[]", 4));
      GPUMART_RETURN_IF_ERROR(r.Str("storage.name", limits::kMaxNameBytes, volume.name));
      GPUMART_RETURN_IF_ERROR(r.Uint("storage.bytes", UINT64_MAX, volume.bytes));
      if (r.Nil()) {
        volume.storage_class.reset();
      } else {
        volume.storage_class.emplace();
        GPUMART_RETURN_IF_ERROR(r.Str("storage.class", limits::kMaxNameBytes, *volume.storage_class));
      }
      GPUMART_RETURN_IF_ERROR(r.Bool("storage.persistent", volume.persistent));
    }
    GPUMART_RETURN_IF_ERROR(r.Struct("resources.gpu", 2));
    GPUMART_RETURN_IF_ERROR(r.UintAs("gpu.units", limits::kMaxGpuUnits, resources.gpu.units));
    size_t option_count = 0;
    GPUMART_RETURN_IF_ERROR(r.List("gpu.options", limits::kMaxGpuOptions, option_count));
    resources.gpu.options.resize(option_count);
    for (GpuOption& option : resources.gpu.options) {
      size_t option_fields = 0;
      GPUMART_RETURN_IF_ERROR(r.List("gpu.options[]", 7, option_fields));
      if (option_fields != 4 && option_fields != 7) {
        return Status::InvalidArgument("gpu.options[]: expected 4 or 7 fields, got " + std::to_string(option_fields));
      }
      GPUMART_RETURN_IF_ERROR(r.Str("option.vendor", limits::kMaxNameBytes, option.vendor));
      GPUMART_RETURN_IF_ERROR(r.Str("option.model", limits::kMaxNameBytes, option.model));
      GPUMART_RETURN_IF_ERROR(ReadOptionalUint(r, "option.ram_min", option.ram_min_bytes));
      if (r.Nil()) {
        option.interface.reset();
      } else {
        GpuInterface interface{};
        GPUMART_RETURN_IF_ERROR(ReadInterface(r, "option.interface", interface));
        option.interface = interface;
      }
      option.mig.reset();
      option.mig_min_ram_bytes = 0;
      option.shared_ok = false;
      if (option_fields == 7) {
        if (!r.Nil()) {
          option.mig.emplace();
          GPUMART_RETURN_IF_ERROR(r.Str("option.mig", limits::kMaxNameBytes, *option.mig));
        }
        GPUMART_RETURN_IF_ERROR(r.Uint("option.mig_min_ram", UINT64_MAX, option.mig_min_ram_bytes));
        GPUMART_RETURN_IF_ERROR(r.Bool("option.shared_ok", option.shared_ok));
        // Written only when one is set: all defaults would be a second encoding of the 4 fields.
        if (!option.mig && option.mig_min_ram_bytes == 0 && !option.shared_ok) {
          return Status::Corruption("gpu.options[]: non-canonical: fractional fields all unset (omit them)");
        }
      }
    }
    GPUMART_RETURN_IF_ERROR(ReadCuda(r, "service.cuda_min", service.cuda_min));
    GPUMART_RETURN_IF_ERROR(ReadPriceCap(r, service.price_cap));
    service.more_caps.clear();
    if (field_count == 7) {
      size_t cap_count = 0;
      GPUMART_RETURN_IF_ERROR(r.List("service.more_caps", limits::kMaxPriceCaps - 1, cap_count));
      // Absent when empty: an empty list would be a second encoding of a single-denom service.
      if (cap_count == 0) return Status::InvalidArgument("service.more_caps: empty (omit the field instead)");
      service.more_caps.resize(cap_count);
      for (PriceCap& cap : service.more_caps) GPUMART_RETURN_IF_ERROR(ReadPriceCap(r, cap));
    }
  }
  order.interruptible = false;
  if (order_fields == 5) {
    GPUMART_RETURN_IF_ERROR(r.Bool("order.interruptible", order.interruptible));
    // Absent when false: an explicit false would be a second encoding of a regular order.
    if (!order.interruptible) return Status::InvalidArgument("order.interruptible: false (omit the field instead)");
  }
  return Status::Ok();
}

// The fractional tail of a device (GpuDevices, DeviceType): [mig_profile:str, shared:bool],
// present only when one of them is set.
Status ReadFractional(Reader& r, const char* where, std::string& mig_profile, bool& shared) {
  GPUMART_RETURN_IF_ERROR(r.Str("device.mig_profile", limits::kMaxNameBytes, mig_profile));
  GPUMART_RETURN_IF_ERROR(r.Bool("device.shared", shared));
  if (mig_profile.empty() && !shared) {
    return Status::Corruption(std::string(where) + ": non-canonical: fractional fields all unset (omit them)");
  }
  return Status::Ok();
}

Status ReadDevice(Reader& r, DeviceType& device) {
  size_t fields = 0;
  GPUMART_RETURN_IF_ERROR(r.List("device", 6, fields));
  if (fields != 4 && fields != 6) {
    return Status::InvalidArgument("device: expected 4 or 6 fields, got " + std::to_string(fields));
  }
  GPUMART_RETURN_IF_ERROR(r.Str("device.vendor", limits::kMaxNameBytes, device.vendor));
  GPUMART_RETURN_IF_ERROR(r.Str("device.model", limits::kMaxNameBytes, device.model));
  GPUMART_RETURN_IF_ERROR(r.Uint("device.ram_bytes", UINT64_MAX, device.ram_bytes));
  GPUMART_RETURN_IF_ERROR(ReadInterface(r, "device.interface", device.interface));
  device.mig_profile.clear();
  device.shared = false;
  if (fields == 6) return ReadFractional(r, "device", device.mig_profile, device.shared);
  return Status::Ok();
}

Status ReadAssignments(Reader& r, std::vector<ServiceAssignment>& out) {
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(r.List("services", limits::kMaxServices, size));
  out.resize(size);
  for (ServiceAssignment& service : out) {
    GPUMART_RETURN_IF_ERROR(r.Struct("services[]", 4));
    GPUMART_RETURN_IF_ERROR(r.Str("assignment.service", limits::kMaxNameBytes, service.service));
    if (r.Nil()) {
      service.option.reset();
    } else {
      uint32_t option = 0;
      GPUMART_RETURN_IF_ERROR(r.UintAs("assignment.option", limits::kMaxGpuOptions - 1, option));
      service.option = option;
    }
    if (r.Nil()) {
      service.device.reset();
    } else {
      service.device.emplace();
      GPUMART_RETURN_IF_ERROR(ReadDevice(r, *service.device));
    }
    size_t placement_count = 0;
    GPUMART_RETURN_IF_ERROR(r.List("assignment.placements", limits::kMaxPlacements, placement_count));
    service.placements.resize(placement_count);
    for (Placement& placement : service.placements) {
      GPUMART_RETURN_IF_ERROR(r.Struct("placement", 2));
      GPUMART_RETURN_IF_ERROR(r.Str("placement.node", limits::kMaxNameBytes, placement.node));
      GPUMART_RETURN_IF_ERROR(r.UintAs("placement.replicas", limits::kMaxReplicas, placement.replicas));
    }
  }
  return Status::Ok();
}

Status ReadOffer(Reader& r, Offer& offer) {
  GPUMART_RETURN_IF_ERROR(r.Struct("offer", 4));
  GPUMART_RETURN_IF_ERROR(r.Str("offer.name", limits::kMaxNameBytes, offer.name));
  GPUMART_RETURN_IF_ERROR(ReadStrMap(r, "offer.attributes", limits::kMaxAttributes, offer.attributes));
  size_t table_count = 0;
  GPUMART_RETURN_IF_ERROR(r.List("offer.pricing", limits::kMaxPriceTables, table_count));
  offer.pricing.resize(table_count);
  for (PriceTable& table : offer.pricing) {
    GPUMART_RETURN_IF_ERROR(r.Struct("pricing[]", 5));
    GPUMART_RETURN_IF_ERROR(r.Str("pricing.denom", limits::kMaxNameBytes, table.denom));
    size_t rate_count = 0;
    GPUMART_RETURN_IF_ERROR(r.Map("pricing.gpu", limits::kMaxPriceKeys, rate_count));
    table.gpu.clear();
    std::string_view previous;
    for (size_t k = 0; k < rate_count; ++k) {
      std::string_view key;
      uint64_t rate = 0;
      GPUMART_RETURN_IF_ERROR(r.MapKey("pricing.gpu key", limits::kMaxNameBytes, k == 0 ? nullptr : &previous, key));
      GPUMART_RETURN_IF_ERROR(r.Uint("pricing.gpu rate", UINT64_MAX, rate));
      table.gpu.emplace_hint(table.gpu.end(), key, rate);
      previous = key;
    }
    GPUMART_RETURN_IF_ERROR(r.Uint("pricing.cpu", UINT64_MAX, table.cpu));
    GPUMART_RETURN_IF_ERROR(r.Uint("pricing.memory", UINT64_MAX, table.memory));
    GPUMART_RETURN_IF_ERROR(r.Uint("pricing.storage", UINT64_MAX, table.storage));
  }
  size_t node_count = 0;
  GPUMART_RETURN_IF_ERROR(r.List("offer.nodes", limits::kMaxNodes, node_count));
  offer.nodes.resize(node_count);
  for (NodeCapacity& node : offer.nodes) {
    GPUMART_RETURN_IF_ERROR(r.Struct("nodes[]", 5));
    GPUMART_RETURN_IF_ERROR(r.Str("node.name", limits::kMaxNameBytes, node.name));
    GPUMART_RETURN_IF_ERROR(r.Uint("node.cpu_millis", UINT64_MAX, node.cpu_millis));
    GPUMART_RETURN_IF_ERROR(r.Uint("node.memory_bytes", UINT64_MAX, node.memory_bytes));
    GPUMART_RETURN_IF_ERROR(r.Uint("node.storage_bytes", UINT64_MAX, node.storage_bytes));
    size_t gpu_count = 0;
    GPUMART_RETURN_IF_ERROR(r.List("node.gpus", limits::kMaxGpuTypesPerNode, gpu_count));
    node.gpus.resize(gpu_count);
    for (GpuDevices& devices : node.gpus) {
      size_t fields = 0;
      GPUMART_RETURN_IF_ERROR(r.List("gpus[]", 8, fields));
      if (fields != 6 && fields != 8) {
        return Status::InvalidArgument("gpus[]: expected 6 or 8 fields, got " + std::to_string(fields));
      }
      GPUMART_RETURN_IF_ERROR(r.Str("gpu.vendor", limits::kMaxNameBytes, devices.vendor));
      GPUMART_RETURN_IF_ERROR(r.Str("gpu.model", limits::kMaxNameBytes, devices.model));
      GPUMART_RETURN_IF_ERROR(r.Uint("gpu.ram_bytes", UINT64_MAX, devices.ram_bytes));
      GPUMART_RETURN_IF_ERROR(ReadInterface(r, "gpu.interface", devices.interface));
      GPUMART_RETURN_IF_ERROR(ReadCuda(r, "gpu.cuda", devices.cuda));
      GPUMART_RETURN_IF_ERROR(r.UintAs("gpu.count", limits::kMaxGpusPerType, devices.count));
      devices.mig_profile.clear();
      devices.shared = false;
      if (fields == 8) GPUMART_RETURN_IF_ERROR(ReadFractional(r, "gpus[]", devices.mig_profile, devices.shared));
    }
  }
  return Status::Ok();
}

Status ReadBid(Reader& r, Bid& bid) {
  size_t bid_fields = 0;
  GPUMART_RETURN_IF_ERROR(r.StructWithOptional("bid", 7, bid_fields));
  GPUMART_RETURN_IF_ERROR(ReadFixed(r, "bid.order_id", bid.order_id));
  GPUMART_RETURN_IF_ERROR(ReadFixed(r, "bid.tenant", bid.tenant));
  GPUMART_RETURN_IF_ERROR(r.Str("bid.group", limits::kMaxNameBytes, bid.group));
  GPUMART_RETURN_IF_ERROR(r.Str("bid.denom", limits::kMaxNameBytes, bid.denom));
  GPUMART_RETURN_IF_ERROR(r.Uint("bid.price_per_hour", UINT64_MAX, bid.price_per_hour));
  GPUMART_RETURN_IF_ERROR(ReadAssignments(r, bid.services));
  GPUMART_RETURN_IF_ERROR(r.Int("bid.reservation_expires_ms", bid.reservation_expires_ms));
  bid.spot.reset();
  if (bid_fields == 8) {
    SpotTerms spot;
    GPUMART_RETURN_IF_ERROR(r.Uint("bid.spot_notice_ms", limits::kMaxPreemptionNoticeMs, spot.notice_ms));
    bid.spot = spot;
  }
  return Status::Ok();
}

Status ReadAccept(Reader& r, Accept& accept) {
  GPUMART_RETURN_IF_ERROR(r.Struct("accept", 3));
  GPUMART_RETURN_IF_ERROR(ReadFixed(r, "accept.order_id", accept.order_id));
  GPUMART_RETURN_IF_ERROR(ReadFixed(r, "accept.bid_id", accept.bid_id));
  return ReadFixed(r, "accept.provider", accept.provider);
}

// The Lease's wire fields, pointing into the bytes being decoded; BuildLease derives the rest.
struct LeaseWire {
  std::span<const uint8_t> accept;
  std::span<const uint8_t> bid;
  int64_t start_ms = 0;
};

Status ReadLease(Reader& r, LeaseWire& lease) {
  GPUMART_RETURN_IF_ERROR(r.Struct("lease", 3));
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(r.Bin("lease.accept", limits::kMaxAcceptEnvelopeBytes, bytes, size));
  lease.accept = {bytes, size};
  GPUMART_RETURN_IF_ERROR(r.Bin("lease.bid", limits::kMaxBidEnvelopeBytes, bytes, size));
  lease.bid = {bytes, size};
  return r.Int("lease.start_ms", lease.start_ms);
}

Status ReadClose(Reader& r, Close& close) {
  size_t close_fields = 0;
  GPUMART_RETURN_IF_ERROR(r.StructWithOptional("close", 4, close_fields));
  GPUMART_RETURN_IF_ERROR(ReadFixed(r, "close.lease_id", close.lease_id));
  uint64_t reason = 0;
  GPUMART_RETURN_IF_ERROR(r.Uint("close.reason", static_cast<uint64_t>(CloseReason::kPreempted), reason));
  close.reason = static_cast<CloseReason>(reason);
  GPUMART_RETURN_IF_ERROR(r.Int("close.closed_ms", close.closed_ms));
  GPUMART_RETURN_IF_ERROR(r.Str("close.note", limits::kMaxTextBytes, close.note));
  close.preemptor_lease.clear();
  if (close_fields == 5) {
    const uint8_t* bytes = nullptr;
    size_t size = 0;
    GPUMART_RETURN_IF_ERROR(r.Bin("close.preemptor_lease", limits::kMaxPreemptorLeaseBytes, bytes, size));
    if (size == 0) return Status::InvalidArgument("close.preemptor_lease: empty (omit the field instead)");
    close.preemptor_lease.assign(bytes, bytes + size);
  }
  return Status::Ok();
}

Status ReadAttestation(Reader& r, Attestation& attestation) {
  GPUMART_RETURN_IF_ERROR(r.Struct("attestation", 4));
  GPUMART_RETURN_IF_ERROR(ReadFixed(r, "attestation.provider", attestation.provider));
  uint64_t verdict = 0;
  GPUMART_RETURN_IF_ERROR(r.Uint("attestation.verdict", static_cast<uint64_t>(AuditVerdict::kFail), verdict));
  attestation.verdict = static_cast<AuditVerdict>(verdict);
  GPUMART_RETURN_IF_ERROR(r.Int("attestation.attested_ms", attestation.attested_ms));
  return r.Str("attestation.note", limits::kMaxTextBytes, attestation.note);
}

// Reads exactly one value from `bytes` (no trailing bytes) with `read`.
template <typename Read>
Status ReadWhole(std::span<const uint8_t> bytes, size_t max_bytes, const char* what, Read&& read) {
  if (bytes.size() > max_bytes) {
    return Status::LimitExceeded(std::string(what) + ": " + std::to_string(bytes.size()) +
                                 " bytes exceed the limit of " + std::to_string(max_bytes));
  }
  if (bytes.empty()) return Status::Corruption(std::string(what) + ": empty input");
  Reader reader(bytes.data(), bytes.size());
  GPUMART_RETURN_IF_ERROR(read(reader));
  if (!reader.AtEnd()) {
    return Status::Corruption(std::string(what) + ": " + std::to_string(reader.Remaining()) + " trailing bytes");
  }
  return Status::Ok();
}

template <typename T, typename Read, typename Validate>
Result<T> DecodeBody(std::span<const uint8_t> bytes, const char* what, Read read, Validate validate) {
  T value;
  GPUMART_RETURN_IF_ERROR(ReadWhole(bytes, limits::kMaxBodyBytes, what, [&](Reader& r) { return read(r, value); }));
  GPUMART_RETURN_IF_ERROR(validate(value));
  return value;
}

bool NameValid(const std::string& name) { return !name.empty() && name.size() <= limits::kMaxNameBytes; }

Status BadName(const std::string& what, const std::string& name) {
  return name.empty() ? Status::InvalidArgument(what + " is empty") : Status::LimitExceeded(what + " is too long");
}

// per_hour = amount * 3600000 / 6117 exactly, without a 128-bit type: with amount = q * 6117 + r
// it is q * 3600000 + r * 3600000 / 6117, and r < 6117 keeps the second product small.
Status CheckPerHour(const PriceCap& cap, const std::string& where) {
  uint64_t per_hour = 0;
  if (!CheckedMul(cap.amount / kAkashBlockMs, kMsPerHour, per_hour) ||
      !CheckedAdd(per_hour, cap.amount % kAkashBlockMs * kMsPerHour / kAkashBlockMs, per_hour)) {
    return Status::LimitExceeded(where + ": price cap " + std::to_string(cap.amount) +
                                 " per block overflows 64 bits per hour");
  }
  if (cap.per_hour != per_hour) {
    return Status::InvalidArgument(where + ": price cap per_hour " + std::to_string(cap.per_hour) + " is not amount * " +
                                   std::to_string(kMsPerHour) + " / " + std::to_string(kAkashBlockMs) + " = " +
                                   std::to_string(per_hour));
  }
  return Status::Ok();
}

// A decimal number as std::to_string writes it: digits, no sign, no leading zero (but "0").
bool PlainDecimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    if (!CheckedMul(value, 10, value) || !CheckedAdd(value, static_cast<uint64_t>(c - '0'), value)) return false;
  }
  return true;
}

// A GPU rate key exactly as matching looks it up: "*", "model", "model.<ram>" or
// "model.<ram>.<interface>", where <ram> is FormatGi's spelling ("80Gi" for whole GiB, else the
// byte count) and <interface> is "pcie" or "sxm". Any other spelling could never be found, and
// two spellings of one key would be one price twice.
bool ValidPriceKey(std::string_view key) {
  if (key == "*") return true;
  // Fractional devices (docs/PRICING.md): "model.mig-<profile>" prices one MIG instance; a
  // whole-GPU key other than "*" followed by ".shared" prices one time-slice replica.
  const size_t mig = key.find(".mig-");
  if (mig != std::string_view::npos) {
    const std::string_view model = key.substr(0, mig);
    return !model.empty() && model != "*" && model.find('.') == std::string_view::npos &&
           IsMigProfile(key.substr(mig + 5));
  }
  constexpr std::string_view kShared = ".shared";
  if (key.size() > kShared.size() && key.substr(key.size() - kShared.size()) == kShared) {
    key.remove_suffix(kShared.size());
    if (key == "*") return false;
  }
  const size_t first = key.find('.');
  const std::string_view model = key.substr(0, first);
  if (model.empty() || model == "*") return false;
  if (first == std::string_view::npos) return true;
  const std::string_view rest = key.substr(first + 1);
  const size_t second = rest.find('.');
  const std::string_view ram = rest.substr(0, second);
  uint64_t number = 0;
  if (ram.size() > 2 && ram.substr(ram.size() - 2) == "Gi") {
    if (!PlainDecimal(ram.substr(0, ram.size() - 2), number) || number > UINT64_MAX / kGi) return false;
  } else if (!PlainDecimal(ram, number) || number % kGi == 0) {
    return false;
  }
  if (second == std::string_view::npos) return true;
  const std::string_view interface = rest.substr(second + 1);
  return interface == ToString(GpuInterface::kPcie) || interface == ToString(GpuInterface::kSxm);
}

// A device is a whole GPU, a MIG instance of a well-formed profile, or a time-slice replica.
Status ValidateFractional(const std::string& mig_profile, bool shared, uint64_t ram_bytes, const std::string& where) {
  if (!mig_profile.empty() && !IsMigProfile(mig_profile)) {
    return Status::InvalidArgument(where + ": '" + mig_profile + "' is not a MIG profile such as 1g.10gb");
  }
  if (!mig_profile.empty() && ram_bytes != MigProfileRamBytes(mig_profile)) {
    return Status::InvalidArgument(where + ": a " + mig_profile + " instance has " +
                                   FormatGi(MigProfileRamBytes(mig_profile)) + ", not " + FormatGi(ram_bytes));
  }
  if (!mig_profile.empty() && shared) {
    return Status::InvalidArgument(where + ": a MIG instance cannot also be a time-slice replica");
  }
  return Status::Ok();
}

Status ValidateAssignments(const std::vector<ServiceAssignment>& services, const char* what) {
  if (services.empty()) return Status::InvalidArgument(std::string(what) + " has no services");
  for (const auto& service : services) {
    if (!NameValid(service.service)) return BadName(std::string(what) + " service name", service.service);
    if (service.option.has_value() != service.device.has_value()) {
      return Status::InvalidArgument(std::string(what) + " service " + service.service +
                                     ": option and device must be given together");
    }
    if (service.device && (!NameValid(service.device->vendor) || !NameValid(service.device->model))) {
      return Status::InvalidArgument(std::string(what) + " service " + service.service + ": device without a vendor or model");
    }
    if (service.device) {
      GPUMART_RETURN_IF_ERROR(ValidateFractional(service.device->mig_profile, service.device->shared, service.device->ram_bytes,
                                                 std::string(what) + " service " + service.service + " device"));
    }
    if (service.placements.empty()) {
      return Status::InvalidArgument(std::string(what) + " service " + service.service + " has no placements");
    }
    for (const auto& placement : service.placements) {
      if (!NameValid(placement.node)) return BadName(std::string(what) + " placement node", placement.node);
      if (placement.replicas == 0) {
        return Status::InvalidArgument(std::string(what) + " service " + service.service + ": placement with 0 replicas");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Bytes EncodeBody(const Order& order) {
  Bytes out;
  out.reserve(256);
  Encoder e(out);
  EncodeOrderTo(e, order);
  return out;
}

Bytes EncodeBody(const Offer& offer) {
  Bytes out;
  Encoder e(out);
  e.Array(4);
  e.Str(offer.name);
  e.StrMap(offer.attributes);
  e.Array(offer.pricing.size());
  for (const auto& table : offer.pricing) {
    e.Array(5);
    e.Str(table.denom);
    e.Map(table.gpu.size());
    for (const auto& [key, rate] : table.gpu) {
      e.Str(key);
      e.Uint(rate);
    }
    e.Uint(table.cpu);
    e.Uint(table.memory);
    e.Uint(table.storage);
  }
  e.Array(offer.nodes.size());
  for (const auto& node : offer.nodes) {
    e.Array(5);
    e.Str(node.name);
    e.Uint(node.cpu_millis);
    e.Uint(node.memory_bytes);
    e.Uint(node.storage_bytes);
    e.Array(node.gpus.size());
    for (const auto& devices : node.gpus) {
      const bool fractional = !devices.mig_profile.empty() || devices.shared;
      e.Array(fractional ? 8 : 6);
      e.Str(devices.vendor);
      e.Str(devices.model);
      e.Uint(devices.ram_bytes);
      e.Uint(static_cast<uint8_t>(devices.interface));
      e.Cuda(devices.cuda);
      e.Uint(devices.count);
      if (fractional) {
        e.Str(devices.mig_profile);
        e.Bool(devices.shared);
      }
    }
  }
  return out;
}

Bytes EncodeBody(const Bid& bid) {
  Bytes out;
  Encoder e(out);
  // `spot` is written only when set, so a regular bid keeps its bytes.
  e.Array(bid.spot ? 8 : 7);
  e.Bin(bid.order_id);
  e.Bin(bid.tenant);
  e.Str(bid.group);
  e.Str(bid.denom);
  e.Uint(bid.price_per_hour);
  EncodeAssignments(e, bid.services);
  e.Int(bid.reservation_expires_ms);
  if (bid.spot) e.Uint(bid.spot->notice_ms);
  return out;
}

Bytes EncodeBody(const Accept& accept) {
  Bytes out;
  Encoder e(out);
  e.Array(3);
  e.Bin(accept.order_id);
  e.Bin(accept.bid_id);
  e.Bin(accept.provider);
  return out;
}

Bytes EncodeBody(const Lease& lease) {
  Bytes out;
  Encoder e(out);
  e.Array(3);
  e.Bin(lease.accept_envelope.data(), lease.accept_envelope.size());
  e.Bin(lease.bid_envelope.data(), lease.bid_envelope.size());
  e.Int(lease.start_ms);
  return out;
}

Bytes EncodeBody(const Close& close) {
  Bytes out;
  Encoder e(out);
  e.Array(close.preemptor_lease.empty() ? 4 : 5);
  e.Bin(close.lease_id);
  e.Uint(static_cast<uint8_t>(close.reason));
  e.Int(close.closed_ms);
  e.Str(close.note);
  if (!close.preemptor_lease.empty()) e.Bin(close.preemptor_lease.data(), close.preemptor_lease.size());
  return out;
}

Bytes EncodeBody(const Attestation& attestation) {
  Bytes out;
  Encoder e(out);
  e.Array(4);
  e.Bin(attestation.provider);
  e.Uint(static_cast<uint8_t>(attestation.verdict));
  e.Int(attestation.attested_ms);
  e.Str(attestation.note);
  return out;
}

Status ValidateOrder(const Order& order) {
  if (!NameValid(order.group)) return BadName("order group name", order.group);
  if (order.services.empty()) return Status::InvalidArgument("order " + order.group + " has no services");
  if (order.services.size() > limits::kMaxServices) return Status::LimitExceeded("order has too many services");
  if (order.attributes.size() > limits::kMaxAttributes) return Status::LimitExceeded("order has too many attributes");
  const std::string& denom = order.services.front().price_cap.denom;
  // Messages are built only on failure: validation runs on every decoded order.
  auto where = [](const ServiceRequest& service) { return "order service " + service.name; };
  uint64_t group_cpu = 0, group_memory = 0, group_storage = 0;
  for (size_t i = 0; i < order.services.size(); ++i) {
    const ServiceRequest& service = order.services[i];
    if (!NameValid(service.name)) return BadName("order service name", service.name);
    for (size_t j = 0; j < i; ++j) {
      if (order.services[j].name == service.name) return Status::InvalidArgument(where(service) + " appears twice");
    }
    if (service.count < 1) return Status::InvalidArgument(where(service) + ": count must be >= 1");
    if (service.count > limits::kMaxReplicas) return Status::LimitExceeded(where(service) + ": count exceeds the limit");
    const GpuRequest& gpu = service.resources.gpu;
    if (gpu.units > limits::kMaxGpuUnits) return Status::LimitExceeded(where(service) + ": too many GPU units");
    if (gpu.units > 0 && gpu.options.empty()) {
      return Status::InvalidArgument(where(service) + ": GPU units without any acceptable GPU option");
    }
    if (gpu.options.size() > limits::kMaxGpuOptions) return Status::LimitExceeded(where(service) + ": too many GPU options");
    for (const auto& option : gpu.options) {
      if (!NameValid(option.vendor)) return BadName(where(service) + " GPU vendor", option.vendor);
      if (!NameValid(option.model)) return BadName(where(service) + " GPU model", option.model);
      if (option.mig && !IsMigProfile(*option.mig)) {
        return Status::InvalidArgument(where(service) + ": '" + *option.mig + "' is not a MIG profile such as 1g.10gb");
      }
      if (option.IsMig() && option.shared_ok) {
        return Status::InvalidArgument(where(service) + ": a GPU option cannot ask for a MIG instance and a shared GPU");
      }
    }
    if (service.resources.storage.size() > limits::kMaxVolumes) {
      return Status::LimitExceeded(where(service) + ": too many volumes");
    }
    uint64_t storage = 0;
    for (const auto& volume : service.resources.storage) {
      if (!NameValid(volume.name)) return BadName(where(service) + " volume name", volume.name);
      if (!CheckedAdd(storage, volume.bytes, storage)) {
        return Status::LimitExceeded(where(service) + ": storage size overflows 64 bits");
      }
    }
    // What the whole service and group need fits in 64 bits, so sums and products over a valid
    // order (matching, capacity accounting) never overflow.
    const Resources& r = service.resources;
    uint64_t service_cpu = 0, service_memory = 0, service_storage = 0;
    if (!CheckedMul(service.count, r.cpu_millis, service_cpu) || !CheckedAdd(group_cpu, service_cpu, group_cpu)) {
      return Status::LimitExceeded(where(service) + ": cpu times count overflows 64 bits");
    }
    if (!CheckedMul(service.count, r.memory_bytes, service_memory) ||
        !CheckedAdd(group_memory, service_memory, group_memory)) {
      return Status::LimitExceeded(where(service) + ": memory times count overflows 64 bits");
    }
    if (!CheckedMul(service.count, storage, service_storage) ||
        !CheckedAdd(group_storage, service_storage, group_storage)) {
      return Status::LimitExceeded(where(service) + ": storage times count overflows 64 bits");
    }
    GPUMART_RETURN_IF_ERROR(CheckPerHour(service.price_cap, where(service)));
    if (!NameValid(service.price_cap.denom)) return BadName(where(service) + " price denom", service.price_cap.denom);
    if (service.price_cap.denom != denom) {
      return Status::InvalidArgument(where(service) + ": price denom " + service.price_cap.denom +
                                     " differs from the group's " + denom);
    }
    // Several denoms: every service caps in the same denoms, in the same order (the tenant's
    // preference), each once; so a group's cap in a denom is defined for every listed denom.
    const ServiceRequest& first = order.services.front();
    if (service.more_caps.size() + 1 > limits::kMaxPriceCaps) {
      return Status::LimitExceeded(where(service) + ": too many price caps");
    }
    if (service.more_caps.size() != first.more_caps.size()) {
      return Status::InvalidArgument(where(service) + ": caps in " + std::to_string(service.more_caps.size() + 1) +
                                     " denoms, the group's first service in " +
                                     std::to_string(first.more_caps.size() + 1));
    }
    for (size_t c = 0; c < service.more_caps.size(); ++c) {
      const PriceCap& cap = service.more_caps[c];
      GPUMART_RETURN_IF_ERROR(CheckPerHour(cap, where(service)));
      if (cap.denom != first.more_caps[c].denom) {
        return Status::InvalidArgument(where(service) + ": price denom " + cap.denom + " differs from the group's " +
                                       first.more_caps[c].denom + " at position " + std::to_string(c + 2));
      }
      if (i == 0) {
        if (!NameValid(cap.denom)) return BadName(where(service) + " price denom", cap.denom);
        if (cap.denom == denom) return Status::InvalidArgument(where(service) + ": caps in " + cap.denom + " twice");
        for (size_t d = 0; d < c; ++d) {
          if (service.more_caps[d].denom == cap.denom) {
            return Status::InvalidArgument(where(service) + ": caps in " + cap.denom + " twice");
          }
        }
      }
    }
  }
  return Status::Ok();
}

Status ValidateOffer(const Offer& offer) {
  // The name is a label (it may be empty); the provider's identity is the signer's key.
  if (offer.name.size() > limits::kMaxNameBytes) return Status::LimitExceeded("offer name is too long");
  std::set<std::string_view> denoms;
  for (const auto& table : offer.pricing) {
    if (!NameValid(table.denom)) return BadName("offer price denom", table.denom);
    if (!denoms.insert(table.denom).second) return Status::InvalidArgument("offer prices denom " + table.denom + " twice");
    for (const auto& [key, rate] : table.gpu) {
      if (!ValidPriceKey(key)) {
        return Status::InvalidArgument("offer price key '" + key +
                                       "' is not '*', 'model', 'model.<n>Gi', 'model.<n>Gi.<pcie|sxm>', one of "
                                       "those but '*' with '.shared', or 'model.mig-<profile>'");
      }
    }
  }
  std::set<std::string_view> names;
  for (const auto& node : offer.nodes) {
    if (!NameValid(node.name)) return BadName("offer node name", node.name);
    if (!names.insert(node.name).second) return Status::InvalidArgument("offer lists node " + node.name + " twice");
    for (const auto& devices : node.gpus) {
      if (!NameValid(devices.vendor)) return BadName("node " + node.name + " GPU vendor", devices.vendor);
      if (!NameValid(devices.model)) return BadName("node " + node.name + " GPU model", devices.model);
      GPUMART_RETURN_IF_ERROR(ValidateFractional(devices.mig_profile, devices.shared, devices.ram_bytes, "node " + node.name + " GPU"));
    }
  }
  return Status::Ok();
}

Status ValidateBid(const Bid& bid) {
  if (!NameValid(bid.group)) return BadName("bid group", bid.group);
  if (!NameValid(bid.denom)) return BadName("bid denom", bid.denom);
  if (bid.spot && bid.spot->notice_ms > limits::kMaxPreemptionNoticeMs) {
    return Status::LimitExceeded("bid spot notice exceeds " + std::to_string(limits::kMaxPreemptionNoticeMs) + " ms");
  }
  return ValidateAssignments(bid.services, "bid");
}

Status ValidateClose(const Close& close) {
  const bool preempted = close.reason == CloseReason::kPreempted;
  if (preempted && close.preemptor_lease.empty()) {
    return Status::InvalidArgument("a preemption close must carry the preemptor lease");
  }
  if (!preempted && !close.preemptor_lease.empty()) {
    return Status::InvalidArgument("only a preemption close carries a preemptor lease");
  }
  if (close.preemptor_lease.size() > limits::kMaxPreemptorLeaseBytes) {
    return Status::LimitExceeded("close's preemptor lease exceeds " + std::to_string(limits::kMaxPreemptorLeaseBytes) +
                                 " bytes");
  }
  return Status::Ok();
}

Result<Order> DecodeOrder(std::span<const uint8_t> bytes) {
  return DecodeBody<Order>(bytes, "order", ReadOrder, ValidateOrder);
}
Result<Offer> DecodeOffer(std::span<const uint8_t> bytes) {
  return DecodeBody<Offer>(bytes, "offer", ReadOffer, ValidateOffer);
}
Result<Bid> DecodeBid(std::span<const uint8_t> bytes) {
  return DecodeBody<Bid>(bytes, "bid", ReadBid, ValidateBid);
}
Result<Accept> DecodeAccept(std::span<const uint8_t> bytes) {
  return DecodeBody<Accept>(bytes, "accept", ReadAccept, [](const Accept&) { return Status::Ok(); });
}
Result<Lease> DecodeLease(std::span<const uint8_t> bytes) {
  LeaseWire wire;
  GPUMART_RETURN_IF_ERROR(ReadWhole(bytes, limits::kMaxBodyBytes, "lease", [&](Reader& r) { return ReadLease(r, wire); }));
  return BuildLease(wire.accept, wire.bid, wire.start_ms);
}
Result<Close> DecodeClose(std::span<const uint8_t> bytes) {
  return DecodeBody<Close>(bytes, "close", ReadClose, ValidateClose);
}
Result<Attestation> DecodeAttestation(std::span<const uint8_t> bytes) {
  return DecodeBody<Attestation>(bytes, "attestation", ReadAttestation,
                                 [](const Attestation&) { return Status::Ok(); });
}

// ---------------------------------------------------------------------------------------------
// Envelope

namespace {
void EncodeUnsignedFields(Encoder& e, const Envelope& envelope) {
  e.Uint(envelope.version);
  e.Uint(static_cast<uint8_t>(envelope.type));
  e.Bin(envelope.signer);
  e.Int(envelope.created_ms);
  e.Int(envelope.expires_ms);
  e.Uint(envelope.nonce);
  e.Bin(envelope.body.data(), envelope.body.size());
}
}  // namespace

Bytes EncodeEnvelope(const Envelope& envelope) {
  Bytes out;
  out.reserve(envelope.body.size() + 128);
  Encoder e(out);
  e.Array(8);
  EncodeUnsignedFields(e, envelope);
  e.Bin(envelope.signature);
  return out;
}

Result<Envelope> DecodeEnvelope(std::span<const uint8_t> bytes) {
  Envelope envelope;
  GPUMART_RETURN_IF_ERROR(ReadWhole(bytes, limits::kMaxMessageBytes, "envelope", [&](Reader& r) -> Status {
    GPUMART_RETURN_IF_ERROR(r.Struct("envelope", 8));
    GPUMART_RETURN_IF_ERROR(r.UintAs("envelope.version", 0xff, envelope.version));
    if (envelope.version != kProtocolVersion) {
      return Status::InvalidArgument("envelope.version: unsupported protocol version " + std::to_string(envelope.version) +
                                     " (this node speaks " + std::to_string(kProtocolVersion) + ")");
    }
    uint64_t type = 0;
    GPUMART_RETURN_IF_ERROR(r.Uint("envelope.type", 0xff, type));
    if (type < static_cast<uint8_t>(MessageType::kOrder) || type > static_cast<uint8_t>(MessageType::kAttestation)) {
      return Status::InvalidArgument("envelope.type: unknown message type " + std::to_string(type));
    }
    envelope.type = static_cast<MessageType>(type);
    const uint8_t* key = nullptr;
    size_t key_size = 0;
    GPUMART_RETURN_IF_ERROR(r.Bin("envelope.signer", limits::kMaxNameBytes, key, key_size));
    if (key_size != kPublicKeyBytes) {
      return Status::BadSignature("envelope.signer: public key must be 32 bytes, got " + std::to_string(key_size));
    }
    std::memcpy(envelope.signer.data(), key, kPublicKeyBytes);
    GPUMART_RETURN_IF_ERROR(r.Int("envelope.created_ms", envelope.created_ms));
    GPUMART_RETURN_IF_ERROR(r.Int("envelope.expires_ms", envelope.expires_ms));
    GPUMART_RETURN_IF_ERROR(r.Uint("envelope.nonce", UINT64_MAX, envelope.nonce));
    const uint8_t* body = nullptr;
    size_t body_size = 0;
    GPUMART_RETURN_IF_ERROR(r.Bin("envelope.body", limits::kMaxBodyBytes, body, body_size));
    envelope.body.assign(body, body + body_size);
    const uint8_t* signature = nullptr;
    size_t signature_size = 0;
    GPUMART_RETURN_IF_ERROR(r.Bin("envelope.signature", limits::kMaxNameBytes, signature, signature_size));
    if (signature_size != kSignatureBytes) {
      return Status::BadSignature("envelope.signature: must be 64 bytes, got " + std::to_string(signature_size));
    }
    std::memcpy(envelope.signature.data(), signature, kSignatureBytes);
    return Status::Ok();
  }));
  return envelope;
}

Bytes SigningInput(const Envelope& envelope) {
  Bytes out;
  out.reserve(kSigningDomain.size() + envelope.body.size() + 64);
  out.resize(kSigningDomain.size());
  std::memcpy(out.data(), kSigningDomain.data(), kSigningDomain.size());
  Encoder e(out);
  e.Array(7);
  EncodeUnsignedFields(e, envelope);
  return out;
}

MessageId ComputeId(const Envelope& envelope) {
  const Bytes input = SigningInput(envelope);
  return Blake2b256(input.data(), input.size());
}

Envelope SignEnvelope(const Identity& identity, MessageType type, Bytes body, int64_t created_ms, int64_t ttl_ms,
                      uint64_t nonce) {
  Envelope envelope;
  envelope.type = type;
  envelope.signer = identity.public_key();
  envelope.created_ms = created_ms;
  envelope.expires_ms = SaturatingAddMs(created_ms, ttl_ms);
  envelope.nonce = nonce;
  envelope.body = std::move(body);
  const Bytes input = SigningInput(envelope);
  envelope.signature = identity.Sign(input.data(), input.size());
  return envelope;
}

Status VerifySignature(const Envelope& envelope) {
  const Bytes input = SigningInput(envelope);
  if (!VerifyDetached(envelope.signer, envelope.signature, input.data(), input.size())) {
    return Status::BadSignature(std::string(ToString(envelope.type)) + " from " + ToHex(envelope.signer).substr(0, 16) +
                                "…: signature does not verify");
  }
  return Status::Ok();
}

Status CheckFreshness(const Envelope& envelope, int64_t now_ms) {
  // Every time here may be a peer's: differences are taken as exact unsigned distances once their
  // order is known, and "now + skew" saturates (checked_math.h), so no check can overflow.
  if (envelope.expires_ms <= envelope.created_ms) return Status::InvalidArgument("message expires before it was created");
  if (MsBetween(envelope.created_ms, envelope.expires_ms) > static_cast<uint64_t>(limits::kMaxTtlMs)) {
    return Status::LimitExceeded("message lifetime exceeds " + std::to_string(limits::kMaxTtlMs) + " ms");
  }
  if (envelope.created_ms > SaturatingAddMs(now_ms, limits::kMaxClockSkewMs)) {
    return Status::FromFuture("message created " + std::to_string(MsBetween(now_ms, envelope.created_ms)) +
                              " ms in the future (clock skew limit " + std::to_string(limits::kMaxClockSkewMs) + " ms)");
  }
  if (envelope.expires_ms <= now_ms) {
    return Status::Expired("message expired " + std::to_string(MsBetween(envelope.expires_ms, now_ms)) + " ms ago");
  }
  return Status::Ok();
}

Status VerifyEnvelope(const Envelope& envelope, int64_t now_ms) {
  // Time first: it is cheap, and an expired message is not worth a signature check.
  GPUMART_RETURN_IF_ERROR(CheckFreshness(envelope, now_ms));
  return VerifySignature(envelope);
}

namespace {
template <typename Body>
Result<Body> DecodeTyped(std::span<const uint8_t> bytes);
template <> Result<Order> DecodeTyped<Order>(std::span<const uint8_t> b) { return DecodeOrder(b); }
template <> Result<Offer> DecodeTyped<Offer>(std::span<const uint8_t> b) { return DecodeOffer(b); }
template <> Result<Bid> DecodeTyped<Bid>(std::span<const uint8_t> b) { return DecodeBid(b); }
template <> Result<Accept> DecodeTyped<Accept>(std::span<const uint8_t> b) { return DecodeAccept(b); }
template <> Result<Lease> DecodeTyped<Lease>(std::span<const uint8_t> b) { return DecodeLease(b); }
template <> Result<Close> DecodeTyped<Close>(std::span<const uint8_t> b) { return DecodeClose(b); }
template <> Result<Attestation> DecodeTyped<Attestation>(std::span<const uint8_t> b) { return DecodeAttestation(b); }
}  // namespace

template <typename Body>
Result<Signed<Body>> OpenSigned(std::span<const uint8_t> bytes, int64_t now_ms, Freshness freshness) {
  constexpr size_t kMaxBytes = MaxEnvelopeBytes(BodyTraits<Body>::kType);
  if (bytes.size() > kMaxBytes) {
    return Status::LimitExceeded(std::string(ToString(BodyTraits<Body>::kType)) + ": " + std::to_string(bytes.size()) +
                                 " bytes exceed the limit of " + std::to_string(kMaxBytes));
  }
  Result<Envelope> envelope = DecodeEnvelope(bytes);
  if (!envelope.ok()) return envelope.status();
  if (envelope->type != BodyTraits<Body>::kType) {
    return Status::InvalidArgument(std::string("expected a ") + std::string(ToString(BodyTraits<Body>::kType)) +
                                   " message, got " + std::string(ToString(envelope->type)));
  }
  if (freshness == Freshness::kCheck) GPUMART_RETURN_IF_ERROR(CheckFreshness(*envelope, now_ms));
  // Decode the body before the signature check: a malformed body is rejected without paying for
  // a verify, and the signature covers the body bytes either way.
  Result<Body> body = DecodeTyped<Body>(envelope->body);
  if (!body.ok()) return body.status();
  const Bytes input = SigningInput(*envelope);
  if (!VerifyDetached(envelope->signer, envelope->signature, input.data(), input.size())) {
    return Status::BadSignature(std::string(ToString(envelope->type)) + ": signature does not verify");
  }
  Signed<Body> message;
  message.id = Blake2b256(input.data(), input.size());
  message.envelope = std::move(*envelope);
  message.body = std::move(*body);
  return message;
}

template Result<Signed<Order>> OpenSigned<Order>(std::span<const uint8_t>, int64_t, Freshness);
template Result<Signed<Offer>> OpenSigned<Offer>(std::span<const uint8_t>, int64_t, Freshness);
template Result<Signed<Bid>> OpenSigned<Bid>(std::span<const uint8_t>, int64_t, Freshness);
template Result<Signed<Accept>> OpenSigned<Accept>(std::span<const uint8_t>, int64_t, Freshness);
template Result<Signed<Lease>> OpenSigned<Lease>(std::span<const uint8_t>, int64_t, Freshness);
template Result<Signed<Close>> OpenSigned<Close>(std::span<const uint8_t>, int64_t, Freshness);
template Result<Signed<Attestation>> OpenSigned<Attestation>(std::span<const uint8_t>, int64_t, Freshness);

template <typename Body>
Result<Signed<Body>> DecodeVerified(std::span<const uint8_t> bytes) {
  if (bytes.size() > MaxEnvelopeBytes(BodyTraits<Body>::kType)) {
    return Status::LimitExceeded(std::to_string(bytes.size()) + " bytes exceed the limit");
  }
  Result<Envelope> envelope = DecodeEnvelope(bytes);
  if (!envelope.ok()) return envelope.status();
  if (envelope->type != BodyTraits<Body>::kType) {
    return Status::InvalidArgument("a " + std::string(ToString(envelope->type)) + " message, not a " +
                                   std::string(ToString(BodyTraits<Body>::kType)));
  }
  Result<Body> body = DecodeTyped<Body>(envelope->body);
  if (!body.ok()) return body.status();
  Signed<Body> message;
  message.id = ComputeId(*envelope);
  message.envelope = std::move(*envelope);
  message.body = std::move(*body);
  return message;
}

template Result<Signed<Order>> DecodeVerified<Order>(std::span<const uint8_t>);
template Result<Signed<Offer>> DecodeVerified<Offer>(std::span<const uint8_t>);
template Result<Signed<Bid>> DecodeVerified<Bid>(std::span<const uint8_t>);
template Result<Signed<Accept>> DecodeVerified<Accept>(std::span<const uint8_t>);
template Result<Signed<Lease>> DecodeVerified<Lease>(std::span<const uint8_t>);
template Result<Signed<Close>> DecodeVerified<Close>(std::span<const uint8_t>);
template Result<Signed<Attestation>> DecodeVerified<Attestation>(std::span<const uint8_t>);

namespace {
// An embedded message: its envelope and body decoded, its signature not checked.
template <typename Body>
Result<Signed<Body>> DecodeEmbedded(std::span<const uint8_t> bytes, const char* what) {
  Result<Signed<Body>> message = DecodeVerified<Body>(bytes);
  if (!message.ok()) return message.status().WithContext(what);
  return message;
}

// The provider countersigns its own bid: nobody else can turn it into a lease.
Status CheckSignedByBidder(const Signed<Lease>& lease) {
  if (lease.envelope.signer == lease.body.provider) return Status::Ok();
  return Status::BadSignature("lease is signed by " + ToHex(lease.envelope.signer).substr(0, 16) +
                              "…, not by the provider of the bid it embeds");
}
}  // namespace

Result<Lease> BuildLease(std::span<const uint8_t> accept_envelope, std::span<const uint8_t> bid_envelope,
                         int64_t start_ms) {
  Result<Signed<Accept>> accept = DecodeEmbedded<Accept>(accept_envelope, "lease's embedded accept");
  if (!accept.ok()) return accept.status();
  Result<Signed<Bid>> bid = DecodeEmbedded<Bid>(bid_envelope, "lease's embedded bid");
  if (!bid.ok()) return bid.status();
  if (accept->body.bid_id != bid->id) {
    return Status::InvalidArgument("lease's accept takes bid " + ToHex(accept->body.bid_id) +
                                   ", not the embedded bid " + ToHex(bid->id));
  }
  if (accept->body.order_id != bid->body.order_id) {
    return Status::InvalidArgument("lease's accept and embedded bid name different orders");
  }
  if (accept->body.provider != bid->envelope.signer) {
    return Status::BadSignature("lease's accept names a provider other than the signer of the embedded bid");
  }
  if (accept->envelope.signer != bid->body.tenant) {
    return Status::BadSignature("lease's accept is not signed by the tenant the embedded bid answers");
  }
  Lease lease;
  lease.accept_envelope.assign(accept_envelope.begin(), accept_envelope.end());
  lease.bid_envelope.assign(bid_envelope.begin(), bid_envelope.end());
  lease.start_ms = start_ms;
  lease.order_id = bid->body.order_id;
  lease.bid_id = bid->id;
  lease.tenant = accept->envelope.signer;
  lease.provider = bid->envelope.signer;
  lease.denom = std::move(bid->body.denom);
  lease.price_per_hour = bid->body.price_per_hour;
  lease.services = std::move(bid->body.services);
  lease.spot = bid->body.spot;
  return lease;
}

Status CheckLeaseBinding(const Signed<Lease>& lease) {
  Result<Lease> derived = BuildLease(lease.body.accept_envelope, lease.body.bid_envelope, lease.body.start_ms);
  if (!derived.ok()) return derived.status();
  if (!(*derived == lease.body)) {
    return Status::InvalidArgument("lease's terms differ from the bid its tenant accepted");
  }
  return CheckSignedByBidder(lease);
}

Result<Signed<Lease>> OpenLease(std::span<const uint8_t> bytes) {
  // Decoding the body applies BuildLease's rules; what is left is signatures and the signer.
  Result<Signed<Lease>> lease = OpenSigned<Lease>(bytes, 0, Freshness::kIgnore);
  if (!lease.ok()) return lease.status();
  Result<Signed<Accept>> accept = OpenSigned<Accept>(lease->body.accept_envelope, 0, Freshness::kIgnore);
  if (!accept.ok()) return accept.status().WithContext("lease's embedded accept");
  Result<Signed<Bid>> bid = OpenSigned<Bid>(lease->body.bid_envelope, 0, Freshness::kIgnore);
  if (!bid.ok()) return bid.status().WithContext("lease's embedded bid");
  GPUMART_RETURN_IF_ERROR(CheckSignedByBidder(*lease));
  return lease;
}

Offer OfferOfSigner(const Signed<Offer>& offer, uint32_t reputation_ppm,
                    std::vector<std::string> attested_auditors) {
  Offer indexed = offer.body;
  indexed.provider = ToHex(offer.envelope.signer);
  indexed.reputation_ppm = reputation_ppm;
  indexed.auditors = std::move(attested_auditors);
  return indexed;
}

}  // namespace gpumart::market
