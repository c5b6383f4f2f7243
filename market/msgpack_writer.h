// The canonical msgpack writer: the encoding side of market/msgpack_reader.h, for every byte
// string gpumart signs or sends (message bodies, envelopes, gossip frames).
//
// msgpack-c's packer always picks the shortest form for integers and lengths, so the same value
// gives the same bytes; callers add a fixed field order, and maps are written from std::map,
// which iterates in bytewise key order (docs/PROTOCOL.md, "Canonical encoding").
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

namespace gpumart::market {

class MsgpackWriter {
 public:
  explicit MsgpackWriter(std::vector<uint8_t>& out) : sink_(out), packer_(sink_) {}
  MsgpackWriter(const MsgpackWriter&) = delete;
  MsgpackWriter& operator=(const MsgpackWriter&) = delete;

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

 private:
  class ByteSink {
   public:
    explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
    void write(const char* data, size_t size) {
      out_.insert(out_.end(), reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + size);
    }

   private:
    std::vector<uint8_t>& out_;
  };
  ByteSink sink_;
  msgpack::packer<ByteSink> packer_;
};

}  // namespace gpumart::market
