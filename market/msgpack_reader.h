// A bounds-checked, schema-driven msgpack reader for untrusted bytes.
//
// Why not msgpack::unpack: it materialises a generic object tree first (about 550 ns for an
// Order here), which alone would exceed the 1 us decode budget; and its unpack_limit is one bound
// per container kind for the whole document. This reader walks the bytes once, in the order the
// schema expects, and every length is checked against the caller's named limit AND the bytes
// left before anything is allocated, so a 5-byte array32 header claiming 2^32 elements costs one
// comparison. There is no generic "skip" and no recursion of its own: nesting can never go deeper
// than the schema. It never throws and never reads past the end.
//
// Format bytes handled (msgpack spec): fixint/uint8-64/int8-64, nil, bool, fixstr/str8-32,
// bin8-32, fixarray/array16/32, fixmap/map16/32. Anything else (floats, ext) is a type error.
//
// Strict: only the canonical encoding of each value is accepted (docs/PROTOCOL.md, "Canonical
// encoding"), so one value has exactly one byte string and a signed body one id. Integers and
// every length header must use the shortest form that holds them (a non-negative integer never
// uses a signed form), strings must be valid UTF-8, and map keys (MapKey) must be strictly
// increasing bytewise. A non-canonical encoding is kCorruption with "non-canonical" in the text.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "market/status.h"

namespace gpumart::market {

// True when `text` is well-formed UTF-8 (Unicode 15, table 3-7): no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence.
bool IsValidUtf8(std::string_view text);

class MsgpackReader {
 public:
  MsgpackReader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  bool AtEnd() const { return p_ == end_; }
  size_t Remaining() const { return static_cast<size_t>(end_ - p_); }

  // The common one-byte forms (fixarray, fixstr, positive fixint) are handled inline; everything
  // else, and every error, goes to the out-of-line *Slow functions.

  // An array header whose element count must be exactly `fields` (a struct).
  Status Struct(const char* field, size_t fields) {
    if (fields <= 0x0f && p_ < end_ && *p_ == 0x90 + fields) {
      ++p_;
      return Status::Ok();
    }
    return StructSlow(field, fields);
  }
  // An array header of `fields` or `fields + 1` elements: a struct whose last field is optional
  // (written only when set, so every value keeps one encoding). `size` says which.
  Status StructWithOptional(const char* field, size_t fields, size_t& size);
  // An array header with at most `max` elements (a list). Also bounded by the bytes left, since
  // every element takes at least one byte.
  Status List(const char* field, size_t max, size_t& size) {
    if (p_ < end_ && (*p_ & 0xf0) == 0x90) {
      const size_t count = *p_ & 0x0f;
      if (count <= max && count < Remaining()) {
        ++p_;
        size = count;
        return Status::Ok();
      }
    }
    return ListSlow(field, max, size);
  }
  // A map header with at most `max` entries (each at least two bytes).
  Status Map(const char* field, size_t max, size_t& size);
  // The key of a map entry: a string of at most `max` bytes that sorts strictly after
  // `*previous` (the entry before; nullptr for the first): bytewise, a prefix before its
  // extensions. So a map has one encoding and no key twice.
  Status MapKey(const char* field, size_t max, const std::string_view* previous, std::string_view& key);
  // A UTF-8 string of at most `max` bytes; the view points into the input.
  Status Str(const char* field, size_t max, std::string_view& out) {
    if (p_ < end_ && (*p_ & 0xe0) == 0xa0) {
      const size_t length = *p_ & 0x1f;
      if (length <= max && length < Remaining() && IsAscii(p_ + 1, length)) {
        out = std::string_view(reinterpret_cast<const char*>(p_ + 1), length);
        p_ += 1 + length;
        return Status::Ok();
      }
    }
    return StrSlow(field, max, out);
  }
  Status Str(const char* field, size_t max, std::string& out) {
    std::string_view view;
    GPUMART_RETURN_IF_ERROR(Str(field, max, view));
    out.assign(view.data(), view.size());
    return Status::Ok();
  }
  // Bytes of at most `max` length; the pointer points into the input.
  Status Bin(const char* field, size_t max, const uint8_t*& data, size_t& size);
  // Bytes of exactly `size` length.
  Status FixedBin(const char* field, uint8_t* out, size_t size);
  // A non-negative integer no larger than `max`.
  Status Uint(const char* field, uint64_t max, uint64_t& out) {
    if (p_ < end_ && *p_ <= 0x7f && *p_ <= max) {
      out = *p_++;
      return Status::Ok();
    }
    return UintSlow(field, max, out);
  }
  template <typename T>
  Status UintAs(const char* field, uint64_t max, T& out) {
    uint64_t value = 0;
    GPUMART_RETURN_IF_ERROR(Uint(field, max, value));
    out = static_cast<T>(value);
    return Status::Ok();
  }
  Status Int(const char* field, int64_t& out);
  Status Bool(const char* field, bool& out);
  // Consumes a nil and returns true if the next value is nil.
  bool Nil() {
    if (p_ < end_ && *p_ == 0xc0) {
      ++p_;
      return true;
    }
    return false;
  }

 private:
  Status StructSlow(const char* field, size_t fields);
  Status ListSlow(const char* field, size_t max, size_t& size);
  Status StrSlow(const char* field, size_t max, std::string_view& out);
  Status UintSlow(const char* field, uint64_t max, uint64_t& out);
  // Reads the big-endian body of uint8..64 (format byte `b`, already consumed) and checks it
  // needed that width.
  Status UintBody(const char* field, uint8_t b, uint64_t& out);
  Status NonCanonical(const char* field, const char* what) const;
  static bool IsAscii(const uint8_t* data, size_t size) {
    uint8_t any = 0;
    for (size_t i = 0; i < size; ++i) any |= data[i];
    return any < 0x80;
  }
  Status Truncated(const char* field) const { return Status::Corruption(std::string(field) + ": truncated"); }
  Status TypeError(const char* field, const char* expected) const;
  // Reads a big-endian length or integer of `bytes` bytes.
  bool ReadBigEndian(size_t bytes, uint64_t& out);
  // Reads an array or map header; `is_map` selects which.
  Status ContainerHeader(const char* field, bool is_map, size_t& size);

  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace gpumart::market
