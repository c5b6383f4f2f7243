#include "market/codec.h"

#include <msgpack.hpp>

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
  }
  return "unknown";
}

namespace {

// ---------------------------------------------------------------------------------------------
// Encoding. msgpack-c's packer always picks the shortest form for integers and lengths, so the
// same value gives the same bytes; we add fixed field order and sorted map keys.

class ByteSink {
 public:
  explicit ByteSink(Bytes& out) : out_(out) {}
  void write(const char* data, size_t size) {
    out_.insert(out_.end(), reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + size);
  }

 private:
  Bytes& out_;
};

class Encoder {
 public:
  explicit Encoder(Bytes& out) : sink_(out), packer_(sink_) {}
  void Array(size_t size) { packer_.pack_array(static_cast<uint32_t>(size)); }
  void Map(size_t size) { packer_.pack_map(static_cast<uint32_t>(size)); }
  void Str(std::string_view text) {
    packer_.pack_str(static_cast<uint32_t>(text.size()));
    packer_.pack_str_body(text.data(), static_cast<uint32_t>(text.size()));
  }
  void Bin(const uint8_t* data, size_t size) {
    packer_.pack_bin(static_cast<uint32_t>(size));
    packer_.pack_bin_body(reinterpret_cast<const char*>(data), static_cast<uint32_t>(size));
  }
  template <size_t N>
  void Bin(const std::array<uint8_t, N>& bytes) { Bin(bytes.data(), N); }
  void Uint(uint64_t value) { packer_.pack_uint64(value); }
  void Int(int64_t value) { packer_.pack_int64(value); }
  void Bool(bool value) { value ? packer_.pack_true() : packer_.pack_false(); }
  void Nil() { packer_.pack_nil(); }

  void StrMap(const std::map<std::string, std::string>& map) {
    Map(map.size());  // std::map iterates in bytewise key order: canonical
    for (const auto& [key, value] : map) {
      Str(key);
      Str(value);
    }
  }
  void StrList(const std::vector<std::string>& list) {
    Array(list.size());
    for (const auto& item : list) Str(item);
  }
  void Cuda(const std::optional<CudaVersion>& cuda) {
    if (!cuda) return Nil();
    Array(2);
    Uint(cuda->major);
    Uint(cuda->minor);
  }

 private:
  ByteSink sink_;
  msgpack::packer<ByteSink> packer_;
};

void EncodeOrderTo(Encoder& e, const Order& order) {
  e.Array(4);
  e.Str(order.group);
  e.StrMap(order.attributes);
  e.Array(2);
  e.StrList(order.signed_by.all_of);
  e.StrList(order.signed_by.any_of);
  e.Array(order.services.size());
  for (const auto& service : order.services) {
    e.Array(6);
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
      e.Array(4);
      e.Str(option.vendor);
      e.Str(option.model);
      if (option.ram_min_bytes) e.Uint(*option.ram_min_bytes); else e.Nil();
      if (option.interface) e.Uint(static_cast<uint8_t>(*option.interface)); else e.Nil();
    }
    e.Cuda(service.cuda_min);
    e.Array(3);
    e.Str(service.price_cap.denom);
    e.Uint(service.price_cap.amount);
    e.Uint(service.price_cap.per_hour);
  }
}

void EncodeDevice(Encoder& e, const DeviceType& device) {
  e.Array(4);
  e.Str(device.vendor);
  e.Str(device.model);
  e.Uint(device.ram_bytes);
  e.Uint(static_cast<uint8_t>(device.interface));
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
// Decoding. The input is unpacked once with unpack_limit bounds (no container larger than
// kMaxContainerItems, no string or bin larger than the message, depth <= kMaxDepth), then walked
// with typed accessors that enforce the per-field limits. Errors name the field.

using Obj = msgpack::object;

Status TypeError(const char* field, const char* expected) {
  return Status::Corruption(std::string(field) + ": expected " + expected);
}

Status ReadArray(const Obj& o, const char* field, size_t exact, const Obj*& items) {
  if (o.type != msgpack::type::ARRAY) return TypeError(field, "array");
  if (o.via.array.size != exact) {
    return Status::Corruption(std::string(field) + ": expected " + std::to_string(exact) + " fields, got " +
                              std::to_string(o.via.array.size));
  }
  items = o.via.array.ptr;
  return Status::Ok();
}

Status ReadList(const Obj& o, const char* field, size_t max, const Obj*& items, size_t& size) {
  if (o.type != msgpack::type::ARRAY) return TypeError(field, "array");
  if (o.via.array.size > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(o.via.array.size) +
                                 " items exceed the limit of " + std::to_string(max));
  }
  items = o.via.array.ptr;
  size = o.via.array.size;
  return Status::Ok();
}

Status ReadStr(const Obj& o, const char* field, size_t max, std::string& out) {
  if (o.type != msgpack::type::STR) return TypeError(field, "string");
  if (o.via.str.size > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(o.via.str.size) +
                                 " bytes exceed the limit of " + std::to_string(max));
  }
  out.assign(o.via.str.ptr, o.via.str.size);
  return Status::Ok();
}

Status ReadUint(const Obj& o, const char* field, uint64_t max, uint64_t& out) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return TypeError(field, "unsigned integer");
  if (o.via.u64 > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(o.via.u64) + " exceeds " + std::to_string(max));
  }
  out = o.via.u64;
  return Status::Ok();
}

template <typename T>
Status ReadUintAs(const Obj& o, const char* field, uint64_t max, T& out) {
  uint64_t value = 0;
  GPUMART_RETURN_IF_ERROR(ReadUint(o, field, std::min<uint64_t>(max, std::numeric_limits<T>::max()), value));
  out = static_cast<T>(value);
  return Status::Ok();
}

Status ReadInt(const Obj& o, const char* field, int64_t& out) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    out = o.via.i64;
    return Status::Ok();
  }
  if (o.type != msgpack::type::POSITIVE_INTEGER) return TypeError(field, "integer");
  if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Status::LimitExceeded(std::string(field) + ": integer out of range");
  }
  out = static_cast<int64_t>(o.via.u64);
  return Status::Ok();
}

Status ReadBool(const Obj& o, const char* field, bool& out) {
  if (o.type != msgpack::type::BOOLEAN) return TypeError(field, "boolean");
  out = o.via.boolean;
  return Status::Ok();
}

template <size_t N>
Status ReadFixedBin(const Obj& o, const char* field, std::array<uint8_t, N>& out) {
  if (o.type != msgpack::type::BIN) return TypeError(field, "bytes");
  if (o.via.bin.size != N) {
    return Status::Corruption(std::string(field) + ": expected " + std::to_string(N) + " bytes, got " +
                              std::to_string(o.via.bin.size));
  }
  std::memcpy(out.data(), o.via.bin.ptr, N);
  return Status::Ok();
}

Status ReadBin(const Obj& o, const char* field, size_t max, Bytes& out) {
  if (o.type != msgpack::type::BIN) return TypeError(field, "bytes");
  if (o.via.bin.size > max) return Status::LimitExceeded(std::string(field) + ": too many bytes");
  out.assign(reinterpret_cast<const uint8_t*>(o.via.bin.ptr), reinterpret_cast<const uint8_t*>(o.via.bin.ptr) + o.via.bin.size);
  return Status::Ok();
}

Status ReadInterface(const Obj& o, const char* field, GpuInterface& out) {
  uint64_t value = 0;
  GPUMART_RETURN_IF_ERROR(ReadUint(o, field, 1, value));
  out = static_cast<GpuInterface>(value);
  return Status::Ok();
}

Status ReadStrMap(const Obj& o, const char* field, size_t max, std::map<std::string, std::string>& out) {
  if (o.type != msgpack::type::MAP) return TypeError(field, "map");
  if (o.via.map.size > max) return Status::LimitExceeded(std::string(field) + ": too many entries");
  out.clear();
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    std::string key, value;
    GPUMART_RETURN_IF_ERROR(ReadStr(o.via.map.ptr[i].key, field, limits::kMaxNameBytes, key));
    GPUMART_RETURN_IF_ERROR(ReadStr(o.via.map.ptr[i].val, field, limits::kMaxNameBytes, value));
    if (!out.emplace(std::move(key), std::move(value)).second) {
      return Status::Corruption(std::string(field) + ": duplicate key");
    }
  }
  return Status::Ok();
}

Status ReadStrList(const Obj& o, const char* field, size_t max, std::vector<std::string>& out) {
  const Obj* items = nullptr;
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(ReadList(o, field, max, items, size));
  out.resize(size);
  for (size_t i = 0; i < size; ++i) GPUMART_RETURN_IF_ERROR(ReadStr(items[i], field, limits::kMaxNameBytes, out[i]));
  return Status::Ok();
}

Status ReadCuda(const Obj& o, const char* field, std::optional<CudaVersion>& out) {
  if (o.is_nil()) {
    out.reset();
    return Status::Ok();
  }
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, field, 2, f));
  CudaVersion version;
  GPUMART_RETURN_IF_ERROR(ReadUintAs(f[0], field, 0xffff, version.major));
  GPUMART_RETURN_IF_ERROR(ReadUintAs(f[1], field, 0xffff, version.minor));
  out = version;
  return Status::Ok();
}

Status ReadOrder(const Obj& o, Order& order) {
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "order", 4, f));
  GPUMART_RETURN_IF_ERROR(ReadStr(f[0], "order.group", limits::kMaxNameBytes, order.group));
  GPUMART_RETURN_IF_ERROR(ReadStrMap(f[1], "order.attributes", limits::kMaxAttributes, order.attributes));
  const Obj* signed_by = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(f[2], "order.signed_by", 2, signed_by));
  GPUMART_RETURN_IF_ERROR(ReadStrList(signed_by[0], "order.signed_by.all_of", limits::kMaxAuditors, order.signed_by.all_of));
  GPUMART_RETURN_IF_ERROR(ReadStrList(signed_by[1], "order.signed_by.any_of", limits::kMaxAuditors, order.signed_by.any_of));
  const Obj* services = nullptr;
  size_t service_count = 0;
  GPUMART_RETURN_IF_ERROR(ReadList(f[3], "order.services", limits::kMaxServices, services, service_count));
  order.services.resize(service_count);
  for (size_t i = 0; i < service_count; ++i) {
    ServiceRequest& service = order.services[i];
    const Obj* s = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(services[i], "order.services[]", 6, s));
    GPUMART_RETURN_IF_ERROR(ReadStr(s[0], "service.name", limits::kMaxNameBytes, service.name));
    GPUMART_RETURN_IF_ERROR(ReadStr(s[1], "service.profile", limits::kMaxNameBytes, service.profile));
    GPUMART_RETURN_IF_ERROR(ReadUintAs(s[2], "service.count", limits::kMaxReplicas, service.count));
    const Obj* r = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(s[3], "service.resources", 4, r));
    Resources& resources = service.resources;
    GPUMART_RETURN_IF_ERROR(ReadUint(r[0], "resources.cpu_millis", UINT64_MAX, resources.cpu_millis));
    GPUMART_RETURN_IF_ERROR(ReadUint(r[1], "resources.memory_bytes", UINT64_MAX, resources.memory_bytes));
    const Obj* volumes = nullptr;
    size_t volume_count = 0;
    GPUMART_RETURN_IF_ERROR(ReadList(r[2], "resources.storage", limits::kMaxVolumes, volumes, volume_count));
    resources.storage.resize(volume_count);
    for (size_t v = 0; v < volume_count; ++v) {
      StorageVolume& volume = resources.storage[v];
      const Obj* vf = nullptr;
      GPUMART_RETURN_IF_ERROR(ReadArray(volumes[v], "resources.storage[]", 4, vf));
      GPUMART_RETURN_IF_ERROR(ReadStr(vf[0], "storage.name", limits::kMaxNameBytes, volume.name));
      GPUMART_RETURN_IF_ERROR(ReadUint(vf[1], "storage.bytes", UINT64_MAX, volume.bytes));
      if (vf[2].is_nil()) {
        volume.storage_class.reset();
      } else {
        volume.storage_class.emplace();
        GPUMART_RETURN_IF_ERROR(ReadStr(vf[2], "storage.class", limits::kMaxNameBytes, *volume.storage_class));
      }
      GPUMART_RETURN_IF_ERROR(ReadBool(vf[3], "storage.persistent", volume.persistent));
    }
    const Obj* g = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(r[3], "resources.gpu", 2, g));
    GPUMART_RETURN_IF_ERROR(ReadUintAs(g[0], "gpu.units", limits::kMaxGpuUnits, resources.gpu.units));
    const Obj* options = nullptr;
    size_t option_count = 0;
    GPUMART_RETURN_IF_ERROR(ReadList(g[1], "gpu.options", limits::kMaxGpuOptions, options, option_count));
    resources.gpu.options.resize(option_count);
    for (size_t k = 0; k < option_count; ++k) {
      GpuOption& option = resources.gpu.options[k];
      const Obj* of = nullptr;
      GPUMART_RETURN_IF_ERROR(ReadArray(options[k], "gpu.options[]", 4, of));
      GPUMART_RETURN_IF_ERROR(ReadStr(of[0], "option.vendor", limits::kMaxNameBytes, option.vendor));
      GPUMART_RETURN_IF_ERROR(ReadStr(of[1], "option.model", limits::kMaxNameBytes, option.model));
      if (of[2].is_nil()) {
        option.ram_min_bytes.reset();
      } else {
        uint64_t ram = 0;
        GPUMART_RETURN_IF_ERROR(ReadUint(of[2], "option.ram_min", UINT64_MAX, ram));
        option.ram_min_bytes = ram;
      }
      if (of[3].is_nil()) {
        option.interface.reset();
      } else {
        GpuInterface interface{};
        GPUMART_RETURN_IF_ERROR(ReadInterface(of[3], "option.interface", interface));
        option.interface = interface;
      }
    }
    GPUMART_RETURN_IF_ERROR(ReadCuda(s[4], "service.cuda_min", service.cuda_min));
    const Obj* cap = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(s[5], "service.price_cap", 3, cap));
    GPUMART_RETURN_IF_ERROR(ReadStr(cap[0], "price_cap.denom", limits::kMaxNameBytes, service.price_cap.denom));
    GPUMART_RETURN_IF_ERROR(ReadUint(cap[1], "price_cap.amount", UINT64_MAX, service.price_cap.amount));
    GPUMART_RETURN_IF_ERROR(ReadUint(cap[2], "price_cap.per_hour", UINT64_MAX, service.price_cap.per_hour));
  }
  return Status::Ok();
}

Status ReadDevice(const Obj& o, DeviceType& device) {
  const Obj* d = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "device", 4, d));
  GPUMART_RETURN_IF_ERROR(ReadStr(d[0], "device.vendor", limits::kMaxNameBytes, device.vendor));
  GPUMART_RETURN_IF_ERROR(ReadStr(d[1], "device.model", limits::kMaxNameBytes, device.model));
  GPUMART_RETURN_IF_ERROR(ReadUint(d[2], "device.ram_bytes", UINT64_MAX, device.ram_bytes));
  return ReadInterface(d[3], "device.interface", device.interface);
}

Status ReadAssignments(const Obj& o, std::vector<ServiceAssignment>& out) {
  const Obj* items = nullptr;
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(ReadList(o, "services", limits::kMaxServices, items, size));
  out.resize(size);
  for (size_t i = 0; i < size; ++i) {
    ServiceAssignment& service = out[i];
    const Obj* a = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(items[i], "services[]", 4, a));
    GPUMART_RETURN_IF_ERROR(ReadStr(a[0], "assignment.service", limits::kMaxNameBytes, service.service));
    if (a[1].is_nil()) {
      service.option.reset();
    } else {
      uint32_t option = 0;
      GPUMART_RETURN_IF_ERROR(ReadUintAs(a[1], "assignment.option", limits::kMaxGpuOptions - 1, option));
      service.option = option;
    }
    if (a[2].is_nil()) {
      service.device.reset();
    } else {
      service.device.emplace();
      GPUMART_RETURN_IF_ERROR(ReadDevice(a[2], *service.device));
    }
    const Obj* placements = nullptr;
    size_t placement_count = 0;
    GPUMART_RETURN_IF_ERROR(ReadList(a[3], "assignment.placements", limits::kMaxPlacements, placements, placement_count));
    service.placements.resize(placement_count);
    for (size_t p = 0; p < placement_count; ++p) {
      const Obj* pf = nullptr;
      GPUMART_RETURN_IF_ERROR(ReadArray(placements[p], "placement", 2, pf));
      GPUMART_RETURN_IF_ERROR(ReadStr(pf[0], "placement.node", limits::kMaxNameBytes, service.placements[p].node));
      GPUMART_RETURN_IF_ERROR(ReadUintAs(pf[1], "placement.replicas", limits::kMaxReplicas, service.placements[p].replicas));
    }
  }
  return Status::Ok();
}

Status ReadOffer(const Obj& o, Offer& offer) {
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "offer", 6, f));
  GPUMART_RETURN_IF_ERROR(ReadStr(f[0], "offer.provider", limits::kMaxNameBytes, offer.provider));
  GPUMART_RETURN_IF_ERROR(ReadStrMap(f[1], "offer.attributes", limits::kMaxAttributes, offer.attributes));
  GPUMART_RETURN_IF_ERROR(ReadStrList(f[2], "offer.auditors", limits::kMaxAuditors, offer.auditors));
  GPUMART_RETURN_IF_ERROR(ReadUintAs(f[3], "offer.reputation_ppm", 1'000'000, offer.reputation_ppm));
  const Obj* tables = nullptr;
  size_t table_count = 0;
  GPUMART_RETURN_IF_ERROR(ReadList(f[4], "offer.pricing", limits::kMaxPriceTables, tables, table_count));
  offer.pricing.resize(table_count);
  for (size_t i = 0; i < table_count; ++i) {
    PriceTable& table = offer.pricing[i];
    const Obj* t = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(tables[i], "pricing[]", 5, t));
    GPUMART_RETURN_IF_ERROR(ReadStr(t[0], "pricing.denom", limits::kMaxNameBytes, table.denom));
    if (t[1].type != msgpack::type::MAP) return TypeError("pricing.gpu", "map");
    if (t[1].via.map.size > limits::kMaxPriceKeys) return Status::LimitExceeded("pricing.gpu: too many rates");
    table.gpu.clear();
    for (uint32_t k = 0; k < t[1].via.map.size; ++k) {
      std::string key;
      uint64_t rate = 0;
      GPUMART_RETURN_IF_ERROR(ReadStr(t[1].via.map.ptr[k].key, "pricing.gpu key", limits::kMaxNameBytes, key));
      GPUMART_RETURN_IF_ERROR(ReadUint(t[1].via.map.ptr[k].val, "pricing.gpu rate", UINT64_MAX, rate));
      if (!table.gpu.emplace(std::move(key), rate).second) return Status::Corruption("pricing.gpu: duplicate key");
    }
    GPUMART_RETURN_IF_ERROR(ReadUint(t[2], "pricing.cpu", UINT64_MAX, table.cpu));
    GPUMART_RETURN_IF_ERROR(ReadUint(t[3], "pricing.memory", UINT64_MAX, table.memory));
    GPUMART_RETURN_IF_ERROR(ReadUint(t[4], "pricing.storage", UINT64_MAX, table.storage));
  }
  const Obj* nodes = nullptr;
  size_t node_count = 0;
  GPUMART_RETURN_IF_ERROR(ReadList(f[5], "offer.nodes", limits::kMaxNodes, nodes, node_count));
  offer.nodes.resize(node_count);
  for (size_t i = 0; i < node_count; ++i) {
    NodeCapacity& node = offer.nodes[i];
    const Obj* n = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(nodes[i], "nodes[]", 5, n));
    GPUMART_RETURN_IF_ERROR(ReadStr(n[0], "node.name", limits::kMaxNameBytes, node.name));
    GPUMART_RETURN_IF_ERROR(ReadUint(n[1], "node.cpu_millis", UINT64_MAX, node.cpu_millis));
    GPUMART_RETURN_IF_ERROR(ReadUint(n[2], "node.memory_bytes", UINT64_MAX, node.memory_bytes));
    GPUMART_RETURN_IF_ERROR(ReadUint(n[3], "node.storage_bytes", UINT64_MAX, node.storage_bytes));
    const Obj* gpus = nullptr;
    size_t gpu_count = 0;
    GPUMART_RETURN_IF_ERROR(ReadList(n[4], "node.gpus", limits::kMaxGpuTypesPerNode, gpus, gpu_count));
    node.gpus.resize(gpu_count);
    for (size_t g = 0; g < gpu_count; ++g) {
      GpuDevices& devices = node.gpus[g];
      const Obj* d = nullptr;
      GPUMART_RETURN_IF_ERROR(ReadArray(gpus[g], "gpus[]", 6, d));
      GPUMART_RETURN_IF_ERROR(ReadStr(d[0], "gpu.vendor", limits::kMaxNameBytes, devices.vendor));
      GPUMART_RETURN_IF_ERROR(ReadStr(d[1], "gpu.model", limits::kMaxNameBytes, devices.model));
      GPUMART_RETURN_IF_ERROR(ReadUint(d[2], "gpu.ram_bytes", UINT64_MAX, devices.ram_bytes));
      GPUMART_RETURN_IF_ERROR(ReadInterface(d[3], "gpu.interface", devices.interface));
      GPUMART_RETURN_IF_ERROR(ReadCuda(d[4], "gpu.cuda", devices.cuda));
      GPUMART_RETURN_IF_ERROR(ReadUintAs(d[5], "gpu.count", limits::kMaxGpusPerType, devices.count));
    }
  }
  return Status::Ok();
}

Status ReadBid(const Obj& o, Bid& bid) {
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "bid", 7, f));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[0], "bid.order_id", bid.order_id));
  GPUMART_RETURN_IF_ERROR(ReadStr(f[1], "bid.group", limits::kMaxNameBytes, bid.group));
  GPUMART_RETURN_IF_ERROR(ReadStr(f[2], "bid.denom", limits::kMaxNameBytes, bid.denom));
  GPUMART_RETURN_IF_ERROR(ReadUint(f[3], "bid.price_per_hour", UINT64_MAX, bid.price_per_hour));
  GPUMART_RETURN_IF_ERROR(ReadUintAs(f[4], "bid.reputation_ppm", 1'000'000, bid.reputation_ppm));
  GPUMART_RETURN_IF_ERROR(ReadAssignments(f[5], bid.services));
  return ReadInt(f[6], "bid.reservation_expires_ms", bid.reservation_expires_ms);
}

Status ReadAccept(const Obj& o, Accept& accept) {
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "accept", 3, f));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[0], "accept.order_id", accept.order_id));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[1], "accept.bid_id", accept.bid_id));
  return ReadFixedBin(f[2], "accept.provider", accept.provider);
}

// An Accept envelope is small: ids and a key, plus the envelope's own fields.
constexpr size_t kMaxAcceptEnvelopeBytes = 1024;

Status ReadLease(const Obj& o, Lease& lease) {
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "lease", 8, f));
  GPUMART_RETURN_IF_ERROR(ReadBin(f[0], "lease.accept", kMaxAcceptEnvelopeBytes, lease.accept_envelope));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[1], "lease.order_id", lease.order_id));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[2], "lease.bid_id", lease.bid_id));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[3], "lease.tenant", lease.tenant));
  GPUMART_RETURN_IF_ERROR(ReadStr(f[4], "lease.denom", limits::kMaxNameBytes, lease.denom));
  GPUMART_RETURN_IF_ERROR(ReadUint(f[5], "lease.price_per_hour", UINT64_MAX, lease.price_per_hour));
  GPUMART_RETURN_IF_ERROR(ReadInt(f[6], "lease.start_ms", lease.start_ms));
  return ReadAssignments(f[7], lease.services);
}

Status ReadClose(const Obj& o, Close& close) {
  const Obj* f = nullptr;
  GPUMART_RETURN_IF_ERROR(ReadArray(o, "close", 4, f));
  GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[0], "close.lease_id", close.lease_id));
  uint64_t reason = 0;
  GPUMART_RETURN_IF_ERROR(ReadUint(f[1], "close.reason", static_cast<uint64_t>(CloseReason::kExpired), reason));
  close.reason = static_cast<CloseReason>(reason);
  GPUMART_RETURN_IF_ERROR(ReadInt(f[2], "close.closed_ms", close.closed_ms));
  return ReadStr(f[3], "close.note", limits::kMaxTextBytes, close.note);
}

// Strings and bins point into the input instead of being copied into the zone.
bool ReferenceInput(msgpack::type::object_type, std::size_t, void*) { return true; }

// Unpacks exactly one msgpack value from `bytes` (no trailing bytes) under the protocol limits and
// hands it to `read`. Every msgpack-c exception stops here.
template <typename Reader>
Status UnpackWith(std::span<const uint8_t> bytes, size_t max_bytes, const char* what, Reader&& read) {
  if (bytes.size() > max_bytes) {
    return Status::LimitExceeded(std::string(what) + ": " + std::to_string(bytes.size()) +
                                 " bytes exceed the limit of " + std::to_string(max_bytes));
  }
  if (bytes.empty()) return Status::Corruption(std::string(what) + ": empty input");
  const msgpack::unpack_limit limit(limits::kMaxContainerItems, limits::kMaxContainerItems, max_bytes, max_bytes,
                                    0, limits::kMaxDepth);
  try {
    msgpack::zone zone;
    size_t offset = 0;
    const Obj object = msgpack::unpack(zone, reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset,
                                       ReferenceInput, nullptr, limit);
    if (offset != bytes.size()) {
      return Status::Corruption(std::string(what) + ": " + std::to_string(bytes.size() - offset) + " trailing bytes");
    }
    return read(object);
  } catch (const msgpack::depth_size_overflow&) {
    return Status::LimitExceeded(std::string(what) + ": nesting deeper than " + std::to_string(limits::kMaxDepth));
  } catch (const msgpack::size_overflow& e) {
    return Status::LimitExceeded(std::string(what) + ": a length exceeds its limit (" + e.what() + ")");
  } catch (const msgpack::insufficient_bytes&) {
    return Status::Corruption(std::string(what) + ": truncated");
  } catch (const std::bad_alloc&) {
    return Status::LimitExceeded(std::string(what) + ": out of memory while decoding");
  } catch (const std::exception& e) {
    return Status::Corruption(std::string(what) + ": malformed msgpack (" + e.what() + ")");
  }
}

template <typename T, typename Read, typename Validate>
Result<T> DecodeBody(std::span<const uint8_t> bytes, const char* what, Read read, Validate validate) {
  T value;
  GPUMART_RETURN_IF_ERROR(UnpackWith(bytes, limits::kMaxBodyBytes, what, [&](const Obj& o) { return read(o, value); }));
  GPUMART_RETURN_IF_ERROR(validate(value));
  return value;
}

Status NameOk(const std::string& name, const std::string& what) {
  if (name.empty()) return Status::InvalidArgument(what + " is empty");
  if (name.size() > limits::kMaxNameBytes) return Status::LimitExceeded(what + " is too long");
  return Status::Ok();
}

Status ValidateAssignments(const std::vector<ServiceAssignment>& services, const char* what) {
  if (services.empty()) return Status::InvalidArgument(std::string(what) + " has no services");
  for (const auto& service : services) {
    GPUMART_RETURN_IF_ERROR(NameOk(service.service, std::string(what) + " service name"));
    if (service.option.has_value() != service.device.has_value()) {
      return Status::InvalidArgument(std::string(what) + " service " + service.service +
                                     ": option and device must be given together");
    }
    if (service.placements.empty()) {
      return Status::InvalidArgument(std::string(what) + " service " + service.service + " has no placements");
    }
    for (const auto& placement : service.placements) {
      GPUMART_RETURN_IF_ERROR(NameOk(placement.node, std::string(what) + " placement node"));
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
  e.Array(6);
  e.Str(offer.provider);
  e.StrMap(offer.attributes);
  e.StrList(offer.auditors);
  e.Uint(offer.reputation_ppm);
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
      e.Array(6);
      e.Str(devices.vendor);
      e.Str(devices.model);
      e.Uint(devices.ram_bytes);
      e.Uint(static_cast<uint8_t>(devices.interface));
      e.Cuda(devices.cuda);
      e.Uint(devices.count);
    }
  }
  return out;
}

Bytes EncodeBody(const Bid& bid) {
  Bytes out;
  Encoder e(out);
  e.Array(7);
  e.Bin(bid.order_id);
  e.Str(bid.group);
  e.Str(bid.denom);
  e.Uint(bid.price_per_hour);
  e.Uint(bid.reputation_ppm);
  EncodeAssignments(e, bid.services);
  e.Int(bid.reservation_expires_ms);
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
  e.Array(8);
  e.Bin(lease.accept_envelope.data(), lease.accept_envelope.size());
  e.Bin(lease.order_id);
  e.Bin(lease.bid_id);
  e.Bin(lease.tenant);
  e.Str(lease.denom);
  e.Uint(lease.price_per_hour);
  e.Int(lease.start_ms);
  EncodeAssignments(e, lease.services);
  return out;
}

Bytes EncodeBody(const Close& close) {
  Bytes out;
  Encoder e(out);
  e.Array(4);
  e.Bin(close.lease_id);
  e.Uint(static_cast<uint8_t>(close.reason));
  e.Int(close.closed_ms);
  e.Str(close.note);
  return out;
}

Status ValidateOrder(const Order& order) {
  GPUMART_RETURN_IF_ERROR(NameOk(order.group, "order group name"));
  if (order.services.empty()) return Status::InvalidArgument("order " + order.group + " has no services");
  if (order.services.size() > limits::kMaxServices) return Status::LimitExceeded("order has too many services");
  if (order.attributes.size() > limits::kMaxAttributes) return Status::LimitExceeded("order has too many attributes");
  const std::string& denom = order.services.front().price_cap.denom;
  for (size_t i = 0; i < order.services.size(); ++i) {
    const ServiceRequest& service = order.services[i];
    const std::string where = "order service " + service.name;
    GPUMART_RETURN_IF_ERROR(NameOk(service.name, "order service name"));
    for (size_t j = 0; j < i; ++j) {
      if (order.services[j].name == service.name) return Status::InvalidArgument(where + " appears twice");
    }
    if (service.count < 1) return Status::InvalidArgument(where + ": count must be >= 1");
    if (service.count > limits::kMaxReplicas) return Status::LimitExceeded(where + ": count exceeds the limit");
    const GpuRequest& gpu = service.resources.gpu;
    if (gpu.units > limits::kMaxGpuUnits) return Status::LimitExceeded(where + ": too many GPU units");
    if (gpu.units > 0 && gpu.options.empty()) {
      return Status::InvalidArgument(where + ": GPU units without any acceptable GPU option");
    }
    if (gpu.options.size() > limits::kMaxGpuOptions) return Status::LimitExceeded(where + ": too many GPU options");
    for (const auto& option : gpu.options) {
      GPUMART_RETURN_IF_ERROR(NameOk(option.vendor, where + " GPU vendor"));
      GPUMART_RETURN_IF_ERROR(NameOk(option.model, where + " GPU model"));
    }
    if (service.resources.storage.size() > limits::kMaxVolumes) return Status::LimitExceeded(where + ": too many volumes");
    uint64_t storage = 0;
    for (const auto& volume : service.resources.storage) {
      GPUMART_RETURN_IF_ERROR(NameOk(volume.name, where + " volume name"));
      if (__builtin_add_overflow(storage, volume.bytes, &storage)) {
        return Status::InvalidArgument(where + ": storage size overflows");
      }
    }
    GPUMART_RETURN_IF_ERROR(NameOk(service.price_cap.denom, where + " price denom"));
    if (service.price_cap.denom != denom) {
      return Status::InvalidArgument(where + ": price denom " + service.price_cap.denom + " differs from the group's " + denom);
    }
  }
  return Status::Ok();
}

Status ValidateOffer(const Offer& offer) {
  GPUMART_RETURN_IF_ERROR(NameOk(offer.provider, "offer provider id"));
  if (offer.reputation_ppm > 1'000'000) return Status::InvalidArgument("offer reputation above 1.0");
  std::set<std::string_view> denoms;
  for (const auto& table : offer.pricing) {
    GPUMART_RETURN_IF_ERROR(NameOk(table.denom, "offer price denom"));
    if (!denoms.insert(table.denom).second) return Status::InvalidArgument("offer prices denom " + table.denom + " twice");
  }
  std::set<std::string_view> names;
  for (const auto& node : offer.nodes) {
    GPUMART_RETURN_IF_ERROR(NameOk(node.name, "offer node name"));
    if (!names.insert(node.name).second) return Status::InvalidArgument("offer lists node " + node.name + " twice");
    for (const auto& devices : node.gpus) GPUMART_RETURN_IF_ERROR(NameOk(devices.model, "node " + node.name + " GPU model"));
  }
  return Status::Ok();
}

Status ValidateBid(const Bid& bid) {
  GPUMART_RETURN_IF_ERROR(NameOk(bid.group, "bid group"));
  GPUMART_RETURN_IF_ERROR(NameOk(bid.denom, "bid denom"));
  return ValidateAssignments(bid.services, "bid");
}

Status ValidateLease(const Lease& lease) {
  if (lease.accept_envelope.empty()) return Status::InvalidArgument("lease carries no accept");
  GPUMART_RETURN_IF_ERROR(NameOk(lease.denom, "lease denom"));
  return ValidateAssignments(lease.services, "lease");
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
  return DecodeBody<Lease>(bytes, "lease", ReadLease, ValidateLease);
}
Result<Close> DecodeClose(std::span<const uint8_t> bytes) {
  return DecodeBody<Close>(bytes, "close", ReadClose, [](const Close&) { return Status::Ok(); });
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
  Status status = UnpackWith(bytes, limits::kMaxMessageBytes, "envelope", [&](const Obj& o) -> Status {
    const Obj* f = nullptr;
    GPUMART_RETURN_IF_ERROR(ReadArray(o, "envelope", 8, f));
    GPUMART_RETURN_IF_ERROR(ReadUintAs(f[0], "envelope.version", 0xff, envelope.version));
    if (envelope.version != kProtocolVersion) {
      return Status::InvalidArgument("envelope.version: unsupported protocol version " + std::to_string(envelope.version) +
                                     " (this node speaks " + std::to_string(kProtocolVersion) + ")");
    }
    uint64_t type = 0;
    GPUMART_RETURN_IF_ERROR(ReadUint(f[1], "envelope.type", 0xff, type));
    if (type < static_cast<uint8_t>(MessageType::kOrder) || type > static_cast<uint8_t>(MessageType::kClose)) {
      return Status::InvalidArgument("envelope.type: unknown message type " + std::to_string(type));
    }
    envelope.type = static_cast<MessageType>(type);
    if (f[2].type == msgpack::type::BIN && f[2].via.bin.size != kPublicKeyBytes) {
      return Status::BadSignature("envelope.signer: public key must be 32 bytes, got " + std::to_string(f[2].via.bin.size));
    }
    GPUMART_RETURN_IF_ERROR(ReadFixedBin(f[2], "envelope.signer", envelope.signer));
    GPUMART_RETURN_IF_ERROR(ReadInt(f[3], "envelope.created_ms", envelope.created_ms));
    GPUMART_RETURN_IF_ERROR(ReadInt(f[4], "envelope.expires_ms", envelope.expires_ms));
    GPUMART_RETURN_IF_ERROR(ReadUint(f[5], "envelope.nonce", UINT64_MAX, envelope.nonce));
    GPUMART_RETURN_IF_ERROR(ReadBin(f[6], "envelope.body", limits::kMaxBodyBytes, envelope.body));
    if (f[7].type == msgpack::type::BIN && f[7].via.bin.size != kSignatureBytes) {
      return Status::BadSignature("envelope.signature: must be 64 bytes, got " + std::to_string(f[7].via.bin.size));
    }
    return ReadFixedBin(f[7], "envelope.signature", envelope.signature);
  });
  if (!status.ok()) return status;
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
  envelope.expires_ms = created_ms + ttl_ms;
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
  if (envelope.expires_ms <= envelope.created_ms) return Status::InvalidArgument("message expires before it was created");
  if (envelope.expires_ms - envelope.created_ms > limits::kMaxTtlMs) {
    return Status::LimitExceeded("message lifetime exceeds " + std::to_string(limits::kMaxTtlMs) + " ms");
  }
  if (envelope.created_ms > now_ms + limits::kMaxClockSkewMs) {
    return Status::FromFuture("message created " + std::to_string(envelope.created_ms - now_ms) +
                              " ms in the future (clock skew limit " + std::to_string(limits::kMaxClockSkewMs) + " ms)");
  }
  if (envelope.expires_ms <= now_ms) {
    return Status::Expired("message expired " + std::to_string(now_ms - envelope.expires_ms) + " ms ago");
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
}  // namespace

template <typename Body>
Result<Signed<Body>> OpenSigned(std::span<const uint8_t> bytes, int64_t now_ms, Freshness freshness) {
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

Result<Signed<Lease>> OpenLease(std::span<const uint8_t> bytes) {
  Result<Signed<Lease>> lease = OpenSigned<Lease>(bytes, 0, Freshness::kIgnore);
  if (!lease.ok()) return lease.status();
  Result<Signed<Accept>> accept = OpenSigned<Accept>(lease->body.accept_envelope, 0, Freshness::kIgnore);
  if (!accept.ok()) return accept.status().WithContext("lease's embedded accept");
  if (accept->body.provider != lease->envelope.signer) {
    return Status::BadSignature("lease is signed by a provider other than the one the tenant accepted");
  }
  if (accept->envelope.signer != lease->body.tenant) {
    return Status::BadSignature("lease names a tenant other than the signer of its accept");
  }
  if (accept->body.order_id != lease->body.order_id || accept->body.bid_id != lease->body.bid_id) {
    return Status::InvalidArgument("lease and its accept name different orders or bids");
  }
  return lease;
}

// ---------------------------------------------------------------------------------------------
// Replay guard

size_t ReplayGuard::KeyHash::operator()(const Key& key) const {
  uint64_t prefix = 0;
  std::memcpy(&prefix, key.signer.data(), sizeof prefix);
  return static_cast<size_t>(prefix ^ (key.nonce * 0x9e3779b97f4a7c15ULL));
}

void ReplayGuard::Prune(int64_t now_ms) {
  std::erase_if(seen_, [now_ms](const auto& entry) { return entry.second <= now_ms; });
  // Prune at most once a second under load, but always when full.
  next_prune_ms_ = now_ms + 1000;
}

Status ReplayGuard::CheckAndRemember(const PublicKey& signer, uint64_t nonce, int64_t expires_ms, int64_t now_ms) {
  if (now_ms >= next_prune_ms_ || seen_.size() >= capacity_) Prune(now_ms);
  const Key key{signer, nonce};
  auto it = seen_.find(key);
  if (it != seen_.end() && it->second > now_ms) {
    return Status::Replay("nonce " + std::to_string(nonce) + " from " + ToHex(signer).substr(0, 16) + "… seen before");
  }
  if (it == seen_.end() && seen_.size() >= capacity_) {
    return Status::LimitExceeded("replay guard full (" + std::to_string(capacity_) + " unexpired messages)");
  }
  seen_[key] = expires_ms;
  return Status::Ok();
}

}  // namespace gpumart::market
