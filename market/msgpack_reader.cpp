#include "market/msgpack_reader.h"

namespace gpumart::market {

namespace {
const char* FormatName(uint8_t b) {
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return "integer";
  if (b <= 0x8f || b == 0xde || b == 0xdf) return "map";
  if (b <= 0x9f || b == 0xdc || b == 0xdd) return "array";
  if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return "string";
  if (b == 0xc0) return "nil";
  if (b == 0xc2 || b == 0xc3) return "boolean";
  if (b >= 0xc4 && b <= 0xc6) return "bytes";
  if (b == 0xca || b == 0xcb) return "float";
  if (b == 0xc1) return "reserved byte 0xc1";
  return "extension";
}
}  // namespace

Status MsgpackReader::TypeError(const char* field, const char* expected) const {
  if (p_ >= end_) return Truncated(field);
  return Status::Corruption(std::string(field) + ": expected " + expected + ", got " + FormatName(*p_));
}

bool MsgpackReader::ReadBigEndian(size_t bytes, uint64_t& out) {
  if (Remaining() < bytes) return false;
  out = 0;
  for (size_t i = 0; i < bytes; ++i) out = out << 8 | p_[i];
  p_ += bytes;
  return true;
}

Status MsgpackReader::ContainerHeader(const char* field, bool is_map, size_t& size) {
  if (p_ >= end_) return Truncated(field);
  const uint8_t b = *p_;
  const uint8_t fix_base = is_map ? 0x80 : 0x90;
  const uint8_t code16 = is_map ? 0xde : 0xdc;
  uint64_t count = 0;
  if (b >= fix_base && b <= fix_base + 0x0f) {
    ++p_;
    count = b & 0x0f;
  } else if (b == code16 || b == code16 + 1) {
    ++p_;
    if (!ReadBigEndian(b == code16 ? 2 : 4, count)) return Truncated(field);
  } else {
    return TypeError(field, is_map ? "map" : "array");
  }
  size = static_cast<size_t>(count);
  return Status::Ok();
}

Status MsgpackReader::StructSlow(const char* field, size_t fields) {
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(ContainerHeader(field, false, size));
  if (size != fields) {
    return Status::Corruption(std::string(field) + ": expected " + std::to_string(fields) + " fields, got " +
                              std::to_string(size));
  }
  return Status::Ok();
}

Status MsgpackReader::ListSlow(const char* field, size_t max, size_t& size) {
  GPUMART_RETURN_IF_ERROR(ContainerHeader(field, false, size));
  if (size > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(size) + " items exceed the limit of " +
                                 std::to_string(max));
  }
  if (size > Remaining()) return Truncated(field);
  return Status::Ok();
}

Status MsgpackReader::Map(const char* field, size_t max, size_t& size) {
  GPUMART_RETURN_IF_ERROR(ContainerHeader(field, true, size));
  if (size > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(size) + " entries exceed the limit of " +
                                 std::to_string(max));
  }
  if (size > Remaining() / 2) return Truncated(field);
  return Status::Ok();
}

Status MsgpackReader::StrSlow(const char* field, size_t max, std::string_view& out) {
  if (p_ >= end_) return Truncated(field);
  const uint8_t b = *p_;
  uint64_t length = 0;
  if (b >= 0xa0 && b <= 0xbf) {
    ++p_;
    length = b & 0x1f;
  } else if (b >= 0xd9 && b <= 0xdb) {
    ++p_;
    if (!ReadBigEndian(size_t{1} << (b - 0xd9), length)) return Truncated(field);
  } else {
    return TypeError(field, "string");
  }
  if (length > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(length) + " bytes exceed the limit of " +
                                 std::to_string(max));
  }
  if (length > Remaining()) return Truncated(field);
  out = std::string_view(reinterpret_cast<const char*>(p_), static_cast<size_t>(length));
  p_ += length;
  return Status::Ok();
}

Status MsgpackReader::Bin(const char* field, size_t max, const uint8_t*& data, size_t& size) {
  if (p_ >= end_) return Truncated(field);
  const uint8_t b = *p_;
  if (b < 0xc4 || b > 0xc6) return TypeError(field, "bytes");
  ++p_;
  uint64_t length = 0;
  if (!ReadBigEndian(size_t{1} << (b - 0xc4), length)) return Truncated(field);
  if (length > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(length) + " bytes exceed the limit of " +
                                 std::to_string(max));
  }
  if (length > Remaining()) return Truncated(field);
  data = p_;
  size = static_cast<size_t>(length);
  p_ += length;
  return Status::Ok();
}

Status MsgpackReader::FixedBin(const char* field, uint8_t* out, size_t size) {
  const uint8_t* data = nullptr;
  size_t got = 0;
  GPUMART_RETURN_IF_ERROR(Bin(field, UINT32_MAX, data, got));
  if (got != size) {
    return Status::Corruption(std::string(field) + ": expected " + std::to_string(size) + " bytes, got " +
                              std::to_string(got));
  }
  std::memcpy(out, data, size);
  return Status::Ok();
}

Status MsgpackReader::UintSlow(const char* field, uint64_t max, uint64_t& out) {
  if (p_ >= end_) return Truncated(field);
  const uint8_t b = *p_;
  uint64_t value = 0;
  if (b <= 0x7f) {
    ++p_;
    value = b;
  } else if (b >= 0xcc && b <= 0xcf) {
    ++p_;
    if (!ReadBigEndian(size_t{1} << (b - 0xcc), value)) return Truncated(field);
  } else if (b >= 0xd0 && b <= 0xd3) {
    // A signed encoding is accepted when its value is non-negative (lenient on input, canonical
    // on output).
    int64_t signed_value = 0;
    GPUMART_RETURN_IF_ERROR(Int(field, signed_value));
    if (signed_value < 0) return Status::Corruption(std::string(field) + ": expected unsigned integer, got negative");
    value = static_cast<uint64_t>(signed_value);
  } else if (b >= 0xe0) {
    return Status::Corruption(std::string(field) + ": expected unsigned integer, got negative");
  } else {
    return TypeError(field, "unsigned integer");
  }
  if (value > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(value) + " exceeds the limit of " +
                                 std::to_string(max));
  }
  out = value;
  return Status::Ok();
}

Status MsgpackReader::Int(const char* field, int64_t& out) {
  if (p_ >= end_) return Truncated(field);
  const uint8_t b = *p_;
  if (b <= 0x7f) {
    ++p_;
    out = b;
  } else if (b >= 0xe0) {
    ++p_;
    out = static_cast<int8_t>(b);
  } else if (b >= 0xcc && b <= 0xcf) {
    ++p_;
    uint64_t value = 0;
    if (!ReadBigEndian(size_t{1} << (b - 0xcc), value)) return Truncated(field);
    if (value > static_cast<uint64_t>(INT64_MAX)) return Status::LimitExceeded(std::string(field) + ": integer out of range");
    out = static_cast<int64_t>(value);
  } else if (b >= 0xd0 && b <= 0xd3) {
    ++p_;
    const size_t bytes = size_t{1} << (b - 0xd0);
    uint64_t raw = 0;
    if (!ReadBigEndian(bytes, raw)) return Truncated(field);
    // Sign-extend from the encoded width.
    const unsigned shift = static_cast<unsigned>(64 - 8 * bytes);
    out = static_cast<int64_t>(raw << shift) >> shift;
  } else {
    return TypeError(field, "integer");
  }
  return Status::Ok();
}

Status MsgpackReader::Bool(const char* field, bool& out) {
  if (p_ >= end_) return Truncated(field);
  if (*p_ != 0xc2 && *p_ != 0xc3) return TypeError(field, "boolean");
  out = *p_ == 0xc3;
  ++p_;
  return Status::Ok();
}

}  // namespace gpumart::market
