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

// The smallest value each wider form may hold: anything smaller has a shorter encoding.
constexpr uint64_t kMinForWidth[4] = {0x80, 0x100, 0x10000, uint64_t{1} << 32};          // uint8..64
constexpr uint64_t kMinLengthForWidth[3] = {0, 0x100, 0x10000};                           // 8/16/32-bit lengths
}  // namespace

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* const end = p + text.size();
  while (p < end) {
    const uint8_t b = *p;
    if (b < 0x80) {
      ++p;
      continue;
    }
    // Lead byte: how many continuation bytes follow, and the allowed range of the first one
    // (narrowed for E0/ED/F0/F4 to exclude overlong forms, surrogates and > U+10FFFF).
    size_t follow = 0;
    uint8_t low = 0x80, high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      follow = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      follow = 2;
      if (b == 0xe0) low = 0xa0;
      if (b == 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      follow = 3;
      if (b == 0xf0) low = 0x90;
      if (b == 0xf4) high = 0x8f;
    } else {
      return false;  // a continuation byte, C0/C1 (always overlong) or F5..FF
    }
    if (static_cast<size_t>(end - p) <= follow) return false;
    if (p[1] < low || p[1] > high) return false;
    for (size_t i = 2; i <= follow; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
    }
    p += 1 + follow;
  }
  return true;
}

Status MsgpackReader::NonCanonical(const char* field, const char* what) const {
  return Status::Corruption(std::string(field) + ": non-canonical encoding (" + what + ")");
}

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
    if (count < (b == code16 ? 0x10 : 0x10000)) {
      return NonCanonical(field, is_map ? "map header longer than needed" : "array header longer than needed");
    }
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

Status MsgpackReader::StructWithOptional(const char* field, size_t fields, size_t& size) {
  GPUMART_RETURN_IF_ERROR(ContainerHeader(field, false, size));
  if (size != fields && size != fields + 1) {
    return Status::Corruption(std::string(field) + ": expected " + std::to_string(fields) + " or " +
                              std::to_string(fields + 1) + " fields, got " + std::to_string(size));
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

Status MsgpackReader::MapKey(const char* field, size_t max, const std::string_view* previous, std::string_view& key) {
  GPUMART_RETURN_IF_ERROR(Str(field, max, key));
  // std::string_view compares like memcmp (unsigned bytes), then a prefix before its extensions.
  if (previous != nullptr && key <= *previous) {
    if (key == *previous) return Status::Corruption(std::string(field) + ": duplicate key " + std::string(key));
    return NonCanonical(field, "map keys not sorted");
  }
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
    // str8 starts where fixstr (up to 31 bytes) ends.
    const uint64_t shortest = b == 0xd9 ? 0x20 : kMinLengthForWidth[b - 0xd9];
    if (length < shortest) return NonCanonical(field, "string header longer than needed");
  } else {
    return TypeError(field, "string");
  }
  if (length > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(length) + " bytes exceed the limit of " +
                                 std::to_string(max));
  }
  if (length > Remaining()) return Truncated(field);
  const std::string_view text(reinterpret_cast<const char*>(p_), static_cast<size_t>(length));
  if (!IsValidUtf8(text)) return Status::Corruption(std::string(field) + ": not valid UTF-8");
  out = text;
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
  if (length < kMinLengthForWidth[b - 0xc4]) return NonCanonical(field, "bytes header longer than needed");
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

Status MsgpackReader::UintBody(const char* field, uint8_t b, uint64_t& out) {
  if (!ReadBigEndian(size_t{1} << (b - 0xcc), out)) return Truncated(field);
  if (out < kMinForWidth[b - 0xcc]) return NonCanonical(field, "integer wider than needed");
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
    GPUMART_RETURN_IF_ERROR(UintBody(field, b, value));
  } else if ((b >= 0xd0 && b <= 0xd3) || b >= 0xe0) {
    // A signed form holds either a negative value or a non-canonical non-negative one.
    int64_t signed_value = 0;
    GPUMART_RETURN_IF_ERROR(Int(field, signed_value));
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
    GPUMART_RETURN_IF_ERROR(UintBody(field, b, value));
    if (value > static_cast<uint64_t>(INT64_MAX)) return Status::LimitExceeded(std::string(field) + ": integer out of range");
    out = static_cast<int64_t>(value);
  } else if (b >= 0xd0 && b <= 0xd3) {
    ++p_;
    const size_t bytes = size_t{1} << (b - 0xd0);
    uint64_t raw = 0;
    if (!ReadBigEndian(bytes, raw)) return Truncated(field);
    // Sign-extend from the encoded width.
    const unsigned shift = static_cast<unsigned>(64 - 8 * bytes);
    const int64_t value = static_cast<int64_t>(raw << shift) >> shift;
    // Canonical: non-negative values use the unsigned forms, and a negative value uses int8..64
    // only when it does not fit the next narrower form (negative fixint holds -32..-1).
    constexpr int64_t kMinNarrower[4] = {-32, INT8_MIN, INT16_MIN, INT32_MIN};
    if (value >= 0) return NonCanonical(field, "non-negative integer in a signed form");
    if (value >= kMinNarrower[b - 0xd0]) return NonCanonical(field, "integer wider than needed");
    out = value;
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
