#include "ledger/keys.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace gpumart::ledger {

void AppendU64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}
void AppendU32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}
void AppendU16(std::string& out, uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}
uint64_t ReadU64(const char* data) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}
uint32_t ReadU32(const char* data) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}
uint16_t ReadU16(const char* data) {
  return static_cast<uint16_t>((static_cast<uint8_t>(data[0]) << 8) | static_cast<uint8_t>(data[1]));
}
uint64_t TimeKey(int64_t ms) { return ms < 0 ? 0 : static_cast<uint64_t>(ms); }

namespace keys {
namespace {

constexpr size_t kIdSize = market::kIdBytes;
constexpr size_t kTimeSize = 8;

// The shape of each key family after its prefix, for Describe.
enum class Field { kId, kTime, kState, kSeq };
struct Family {
  std::string_view prefix;
  std::array<Field, 2> fields;
  size_t field_count;
};
constexpr std::array kFamilies = {
    Family{kOrder, {Field::kId}, 1},
    Family{kBid, {Field::kId}, 1},
    Family{kLease, {Field::kId}, 1},
    Family{kClose, {Field::kId}, 1},
    Family{kAttestation, {Field::kId, Field::kId}, 2},
    Family{kViolation, {Field::kId, Field::kId}, 2},
    Family{kBill, {Field::kId}, 1},
    Family{kUsage, {Field::kId}, 1},
    Family{kReservation, {Field::kId}, 1},
    Family{kChain, {Field::kSeq}, 1},
    Family{kLeaseByTenant, {Field::kId, Field::kId}, 2},
    Family{kLeaseByProvider, {Field::kId, Field::kId}, 2},
    Family{kLeaseByState, {Field::kState, Field::kId}, 2},
    Family{kLeaseByOrder, {Field::kId, Field::kId}, 2},
    Family{kOpenOrder, {Field::kId}, 1},
    Family{kOrderByExpiry, {Field::kTime, Field::kId}, 2},
    Family{kBidByOrder, {Field::kId, Field::kId}, 2},
    Family{kBidByExpiry, {Field::kTime, Field::kId}, 2},
    Family{kReservationByProvider, {Field::kId, Field::kId}, 2},
    Family{kReservationByExpiry, {Field::kTime, Field::kId}, 2},
};

size_t FieldSize(Field field) {
  switch (field) {
    case Field::kId: return kIdSize;
    case Field::kTime: return kTimeSize;
    case Field::kSeq: return kTimeSize;
    case Field::kState: return 1;
  }
  return 0;
}

std::string HexOf(std::string_view bytes) {
  return market::ToHex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

std::string Id(std::string_view prefix, const MessageId& id) {
  std::string key(prefix);
  key.append(AsView(id));
  return key;
}

std::string Pair(std::string_view prefix, const std::array<uint8_t, 32>& first, const MessageId& second) {
  std::string key(prefix);
  key.append(AsView(first));
  key.append(AsView(second));
  return key;
}

std::string TimeId(std::string_view prefix, int64_t ms, const MessageId& id) {
  std::string key(prefix);
  AppendU64(key, TimeKey(ms));
  key.append(AsView(id));
  return key;
}

std::string StateId(std::string_view prefix, uint8_t state, const MessageId& id) {
  std::string key(prefix);
  key.push_back(static_cast<char>(state));
  key.append(AsView(id));
  return key;
}

std::string ChainSeq(uint64_t seq) {
  std::string key(kChain);
  AppendU64(key, seq);
  return key;
}

std::optional<MessageId> TrailingId(std::string_view key) {
  if (key.size() < kIdSize) return std::nullopt;
  MessageId id{};
  std::memcpy(id.data(), key.data() + key.size() - kIdSize, kIdSize);
  return id;
}

std::optional<int64_t> KeyTime(std::string_view key, std::string_view prefix) {
  if (key.size() != prefix.size() + kTimeSize + kIdSize || !key.starts_with(prefix)) return std::nullopt;
  const uint64_t value = ReadU64(key.data() + prefix.size());
  if (value > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(value);
}

std::optional<uint64_t> ChainSeqOf(std::string_view key) {
  if (key.size() != kChain.size() + kTimeSize || !key.starts_with(kChain)) return std::nullopt;
  return ReadU64(key.data() + kChain.size());
}

bool IsChained(std::string_view key) {
  for (std::string_view prefix : {kOrder, kBid, kLease, kClose, kAttestation, kViolation, kBill, kUsage, kReservation}) {
    if (key.starts_with(prefix)) return true;
  }
  return false;
}

std::string Describe(std::string_view key) {
  if (key.starts_with(kMeta)) return std::string(key);
  // The longest matching prefix wins (index prefixes are longer than "ix/").
  const Family* best = nullptr;
  for (const auto& family : kFamilies) {
    if (key.starts_with(family.prefix) && (best == nullptr || family.prefix.size() > best->prefix.size())) {
      best = &family;
    }
  }
  if (best == nullptr) return "<unknown key " + HexOf(key) + ">";
  std::string out(best->prefix);
  std::string_view rest = key.substr(best->prefix.size());
  for (size_t i = 0; i < best->field_count; ++i) {
    const size_t size = FieldSize(best->fields[i]);
    if (rest.size() < size) break;
    const std::string_view field = rest.substr(0, size);
    if (i > 0) out.push_back('/');
    switch (best->fields[i]) {
      case Field::kId: out += HexOf(field); break;
      case Field::kTime:
      case Field::kSeq: out += std::to_string(ReadU64(field.data())); break;
      case Field::kState: out += std::to_string(static_cast<uint8_t>(field[0])); break;
    }
    rest.remove_prefix(size);
  }
  if (!rest.empty()) out += "/<extra " + HexOf(rest) + ">";
  return out;
}

}  // namespace keys
}  // namespace gpumart::ledger
