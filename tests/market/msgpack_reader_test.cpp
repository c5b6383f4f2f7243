// The reader accepts exactly the canonical encoding of each value (docs/PROTOCOL.md, "Canonical
// encoding"): one value, one byte string, so inside a signed body one content has one id.
#include "market/msgpack_reader.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace gpumart::market {
namespace {

using Bytes = std::vector<uint8_t>;

Status ReadUint(const Bytes& bytes, uint64_t& out) {
  MsgpackReader r(bytes.data(), bytes.size());
  GPUMART_RETURN_IF_ERROR(r.Uint("u", UINT64_MAX, out));
  return r.AtEnd() ? Status::Ok() : Status::Corruption("trailing");
}

Status ReadInt(const Bytes& bytes, int64_t& out) {
  MsgpackReader r(bytes.data(), bytes.size());
  GPUMART_RETURN_IF_ERROR(r.Int("i", out));
  return r.AtEnd() ? Status::Ok() : Status::Corruption("trailing");
}

Status ReadStr(const Bytes& bytes, std::string& out) {
  MsgpackReader r(bytes.data(), bytes.size());
  GPUMART_RETURN_IF_ERROR(r.Str("s", 1 << 20, out));
  return r.AtEnd() ? Status::Ok() : Status::Corruption("trailing");
}

Bytes StrBytes(Bytes header, const std::string& body) {
  header.insert(header.end(), body.begin(), body.end());
  return header;
}

TEST(MsgpackReaderTest, UintOnlyInItsShortestForm) {
  uint64_t v = 0;
  // Canonical forms at every width boundary.
  EXPECT_TRUE(ReadUint({0x7f}, v).ok() && v == 127);
  EXPECT_TRUE(ReadUint({0xcc, 0x80}, v).ok() && v == 128);
  EXPECT_TRUE(ReadUint({0xcd, 0x01, 0x00}, v).ok() && v == 256);
  EXPECT_TRUE(ReadUint({0xce, 0x00, 0x01, 0x00, 0x00}, v).ok() && v == 65536);
  EXPECT_TRUE(ReadUint({0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, v).ok() && v == 1ULL << 32);
  EXPECT_TRUE(ReadUint({0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, v).ok() && v == UINT64_MAX);
  // The same values one width too wide, and a non-negative value in a signed form.
  for (const Bytes& wide : {Bytes{0xcc, 0x7f}, Bytes{0xcc, 0x00}, Bytes{0xcd, 0x00, 0xff},
                            Bytes{0xce, 0x00, 0x00, 0xff, 0xff}, Bytes{0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
                            Bytes{0xd0, 0x05}, Bytes{0xd1, 0x01, 0x00}, Bytes{0xd3, 0, 0, 0, 0, 0, 0, 0, 1}}) {
    const Status status = ReadUint(wide, v);
    EXPECT_EQ(status.code(), Status::Code::kCorruption) << std::hex << int(wide[0]) << " " << status.ToString();
    EXPECT_NE(status.message().find("non-canonical"), std::string::npos) << status.message();
  }
  EXPECT_FALSE(ReadUint({0xff}, v).ok());  // negative fixint
}

TEST(MsgpackReaderTest, IntOnlyInItsShortestForm) {
  int64_t v = 0;
  EXPECT_TRUE(ReadInt({0x00}, v).ok() && v == 0);
  EXPECT_TRUE(ReadInt({0xe0}, v).ok() && v == -32);
  EXPECT_TRUE(ReadInt({0xd0, 0xdf}, v).ok() && v == -33);
  EXPECT_TRUE(ReadInt({0xd0, 0x80}, v).ok() && v == -128);
  EXPECT_TRUE(ReadInt({0xd1, 0xff, 0x7f}, v).ok() && v == -129);
  EXPECT_TRUE(ReadInt({0xd2, 0xff, 0xff, 0x7f, 0xff}, v).ok() && v == -32769);
  EXPECT_TRUE(ReadInt({0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}, v).ok() && v == -(1LL << 31) - 1);
  EXPECT_TRUE(ReadInt({0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, v).ok() && v == std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(ReadInt({0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, v).ok() && v == INT64_MAX);
  for (const Bytes& wide : {Bytes{0xd0, 0xe0}, Bytes{0xd0, 0x00}, Bytes{0xd1, 0xff, 0x80},
                            Bytes{0xd2, 0xff, 0xff, 0x80, 0x00}, Bytes{0xd3, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0},
                            Bytes{0xd3, 0, 0, 0, 0, 0, 0, 0, 5}, Bytes{0xcc, 0x05}, Bytes{0xd1, 0x00, 0x80}}) {
    const Status status = ReadInt(wide, v);
    EXPECT_EQ(status.code(), Status::Code::kCorruption) << std::hex << int(wide[0]) << " " << status.ToString();
    EXPECT_NE(status.message().find("non-canonical"), std::string::npos) << status.message();
  }
  // Out of range for int64.
  EXPECT_EQ(ReadInt({0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, v).code(), Status::Code::kLimitExceeded);
}

TEST(MsgpackReaderTest, StrBinAndContainerHeadersOnlyInTheirShortestForm) {
  std::string s;
  EXPECT_TRUE(ReadStr(StrBytes({0xbf}, std::string(31, 'a')), s).ok());
  EXPECT_TRUE(ReadStr(StrBytes({0xd9, 32}, std::string(32, 'a')), s).ok());
  EXPECT_TRUE(ReadStr(StrBytes({0xda, 0x01, 0x00}, std::string(256, 'a')), s).ok());
  EXPECT_TRUE(ReadStr(StrBytes({0xdb, 0x00, 0x01, 0x00, 0x00}, std::string(65536, 'a')), s).ok());
  for (const Bytes& wide : {StrBytes({0xd9, 1}, "g"), StrBytes({0xd9, 31}, std::string(31, 'a')),
                            StrBytes({0xda, 0x00, 0xff}, std::string(255, 'a')),
                            StrBytes({0xdb, 0x00, 0x00, 0xff, 0xff}, std::string(65535, 'a'))}) {
    const Status status = ReadStr(wide, s);
    EXPECT_NE(status.message().find("non-canonical"), std::string::npos) << status.ToString();
  }

  auto bin = [](const Bytes& bytes) {
    MsgpackReader r(bytes.data(), bytes.size());
    const uint8_t* data = nullptr;
    size_t size = 0;
    return r.Bin("b", 1 << 20, data, size);
  };
  EXPECT_TRUE(bin(StrBytes({0xc4, 0}, "")).ok());
  EXPECT_TRUE(bin(StrBytes({0xc4, 255}, std::string(255, 'x'))).ok());
  EXPECT_TRUE(bin(StrBytes({0xc5, 0x01, 0x00}, std::string(256, 'x'))).ok());
  EXPECT_NE(bin(StrBytes({0xc5, 0x00, 0x01}, "x")).message().find("non-canonical"), std::string::npos);
  EXPECT_NE(bin(StrBytes({0xc6, 0x00, 0x00, 0x01, 0x00}, std::string(256, 'x'))).message().find("non-canonical"),
            std::string::npos);

  auto list = [](const Bytes& bytes) {
    MsgpackReader r(bytes.data(), bytes.size());
    size_t size = 0;
    return r.List("l", 1 << 20, size);
  };
  auto map = [](const Bytes& bytes) {
    MsgpackReader r(bytes.data(), bytes.size());
    size_t size = 0;
    return r.Map("m", 1 << 20, size);
  };
  auto structure = [](const Bytes& bytes, size_t fields) {
    MsgpackReader r(bytes.data(), bytes.size());
    return r.Struct("t", fields);
  };
  Bytes padding(1 << 18, 0xc0);
  auto with_padding = [&](Bytes header) {
    header.insert(header.end(), padding.begin(), padding.end());
    return header;
  };
  EXPECT_TRUE(list(with_padding({0xdc, 0x00, 0x10})).ok());
  EXPECT_TRUE(list(with_padding({0xdd, 0x00, 0x01, 0x00, 0x00})).ok());
  EXPECT_NE(list(with_padding({0xdc, 0x00, 0x0f})).message().find("non-canonical"), std::string::npos);
  EXPECT_NE(list(with_padding({0xdd, 0x00, 0x00, 0xff, 0xff})).message().find("non-canonical"), std::string::npos);
  EXPECT_NE(structure(with_padding({0xdc, 0x00, 0x04}), 4).message().find("non-canonical"), std::string::npos);
  EXPECT_TRUE(map(with_padding({0xde, 0x00, 0x10})).ok());
  EXPECT_NE(map(with_padding({0xde, 0x00, 0x01})).message().find("non-canonical"), std::string::npos);
  EXPECT_NE(map(with_padding({0xdf, 0x00, 0x00, 0x00, 0x02})).message().find("non-canonical"), std::string::npos);
}

TEST(MsgpackReaderTest, StringsAreValidUtf8) {
  std::string s;
  auto fix = [](const std::string& body) { return StrBytes({static_cast<uint8_t>(0xa0 + body.size())}, body); };
  // Accepted: ASCII, and the first and last code point of every encoded length, around the
  // surrogate gap and at U+10FFFF.
  for (const std::string& good : {std::string("plain"), std::string("\xc2\x80"), std::string("\xdf\xbf"),
                                   std::string("\xe0\xa0\x80"), std::string("\xed\x9f\xbf"),
                                   std::string("\xee\x80\x80"), std::string("\xef\xbf\xbf"),
                                   std::string("\xf0\x90\x80\x80"), std::string("\xf4\x8f\xbf\xbf"),
                                   std::string("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x9a\x80")}) {
    EXPECT_TRUE(ReadStr(fix(good), s).ok()) << good;
    EXPECT_EQ(s, good);
  }
  const std::string bad[] = {
      "\x80",              // continuation byte without a lead
      "\xc0\xaf",          // overlong "/" (two bytes)
      "\xc1\xbf",          // overlong
      "\xe0\x80\xaf",      // overlong (three bytes)
      "\xe0\x9f\xbf",      // overlong U+07FF
      "\xf0\x80\x80\xaf",  // overlong (four bytes)
      "\xf0\x8f\xbf\xbf",  // overlong U+FFFF
      "\xed\xa0\x80",      // U+D800, a surrogate
      "\xed\xbf\xbf",      // U+DFFF, a surrogate
      "\xf4\x90\x80\x80",  // U+110000, past the last code point
      "\xf5\x80\x80\x80",  // lead byte that can only start > U+10FFFF
      "\xff",              // never valid
      "\xc3",              // truncated sequence at the end
      "\xe2\x82",          // truncated sequence at the end
      "\xe2\x82x",         // truncated sequence before ASCII
      "ok\xc3\x28",        // bad continuation
  };
  for (const std::string& b : bad) {
    const Status status = ReadStr(fix(b), s);
    EXPECT_EQ(status.code(), Status::Code::kCorruption) << status.ToString();
    EXPECT_NE(status.message().find("UTF-8"), std::string::npos) << status.message();
    // The same bytes behind a longer canonical header (str8) are rejected too.
    std::string long_text = std::string(40, 'a') + b;
    EXPECT_FALSE(ReadStr(StrBytes({0xd9, static_cast<uint8_t>(long_text.size())}, long_text), s).ok());
  }
}

TEST(MsgpackReaderTest, MapKeysStrictlyIncreasingBytewise) {
  auto keys = [](const std::vector<std::string>& list) {
    Bytes bytes;
    for (const auto& key : list) {
      bytes.push_back(static_cast<uint8_t>(0xa0 + key.size()));
      bytes.insert(bytes.end(), key.begin(), key.end());
    }
    MsgpackReader r(bytes.data(), bytes.size());
    std::string_view previous, key;
    for (size_t i = 0; i < list.size(); ++i) {
      GPUMART_RETURN_IF_ERROR(r.MapKey("m", 64, i == 0 ? nullptr : &previous, key));
      previous = key;
    }
    return Status::Ok();
  };
  EXPECT_TRUE(keys({"a", "ab", "b", "z"}).ok());
  EXPECT_TRUE(keys({"Z", "a"}).ok());                   // bytewise, not case-folded
  EXPECT_TRUE(keys({"z", "\xc3\xa9"}).ok());            // bytes compare unsigned: 0xc3 > 'z'
  EXPECT_NE(keys({"b", "a"}).message().find("not sorted"), std::string::npos);
  EXPECT_NE(keys({"ab", "a"}).message().find("not sorted"), std::string::npos);  // shorter prefix first
  EXPECT_NE(keys({"a", "a"}).message().find("duplicate key"), std::string::npos);
  EXPECT_FALSE(keys({"\xc3\xa9", "z"}).ok());
}

}  // namespace
}  // namespace gpumart::market
