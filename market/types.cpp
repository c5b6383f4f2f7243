#include "market/types.h"

#include <charconv>

namespace gpumart::market {

std::string_view ToString(GpuInterface interface) {
  return interface == GpuInterface::kSxm ? "sxm" : "pcie";
}

std::optional<GpuInterface> ParseGpuInterface(std::string_view text) {
  const std::string lower = ToLower(text);
  if (lower == "pcie") return GpuInterface::kPcie;
  if (lower == "sxm" || lower == "sxm2" || lower == "sxm3" || lower == "sxm4" || lower == "sxm5") {
    return GpuInterface::kSxm;
  }
  return std::nullopt;
}

std::string ToString(const CudaVersion& version) {
  return std::to_string(version.major) + "." + std::to_string(version.minor);
}

std::optional<CudaVersion> ParseCudaVersion(std::string_view text) {
  CudaVersion version;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(begin, end, version.major);
  if (ec != std::errc() || p == begin) return std::nullopt;
  if (p == end) return version;
  if (*p != '.') return std::nullopt;
  const char* minor_begin = p + 1;
  auto [q, ec2] = std::from_chars(minor_begin, end, version.minor);
  if (ec2 != std::errc() || q == minor_begin) return std::nullopt;
  if (q == end) return version;
  // A patch level ("12.4.1") is allowed and ignored.
  if (*q != '.') return std::nullopt;
  uint32_t patch = 0;
  auto [r, ec3] = std::from_chars(q + 1, end, patch);
  if (ec3 != std::errc() || r != end) return std::nullopt;
  return version;
}

std::string_view ToString(CloseReason reason) {
  switch (reason) {
    case CloseReason::kTenantClosed: return "tenant-closed";
    case CloseReason::kProviderClosed: return "provider-closed";
    case CloseReason::kInsufficientFunds: return "insufficient-funds";
    case CloseReason::kProviderFailure: return "provider-failure";
    case CloseReason::kExpired: return "expired";
    case CloseReason::kPreempted: return "preempted";
  }
  return "unknown";
}

std::string_view ToString(AuditVerdict verdict) {
  switch (verdict) {
    case AuditVerdict::kPass: return "pass";
    case AuditVerdict::kFail: return "fail";
  }
  return "unknown";
}

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string ToHex(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool FromHexInto(std::string_view hex, uint8_t* out, size_t size) {
  if (hex.size() != size * 2) return false;
  for (size_t i = 0; i < size; ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

namespace {
// A decimal of 1..4 digits without a leading zero, then `unit`; advances `text` past both.
bool ConsumeCount(std::string_view& text, char unit_first, std::string_view unit) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 4 || text[0] == '0') return false;
  text.remove_prefix(digits);
  if (text.empty() || text[0] != unit_first || text.substr(0, unit.size()) != unit) return false;
  text.remove_prefix(unit.size());
  return true;
}
}  // namespace

bool IsMigProfile(std::string_view text) {
  if (!ConsumeCount(text, 'g', "g.")) return false;
  if (!ConsumeCount(text, 'g', "gb")) return false;
  while (!text.empty()) {
    if (text[0] != '+') return false;
    text.remove_prefix(1);
    size_t length = 0;
    while (length < text.size() && ((text[length] >= 'a' && text[length] <= 'z') ||
                                    (text[length] >= '0' && text[length] <= '9'))) {
      ++length;
    }
    if (length == 0) return false;
    text.remove_prefix(length);
  }
  return true;
}

std::string Describe(const DeviceType& device) {
  std::string text = device.model + " " + FormatGi(device.ram_bytes) + " " + std::string(ToString(device.interface));
  if (!device.mig_profile.empty()) text += " mig " + device.mig_profile;
  if (device.shared) text += " shared";
  return text;
}

uint64_t MigProfileRamBytes(std::string_view profile) {
  if (!IsMigProfile(profile)) return 0;
  const size_t dot = profile.find('.');
  uint64_t gib = 0;
  for (size_t i = dot + 1; profile[i] != 'g'; ++i) gib = gib * 10 + static_cast<uint64_t>(profile[i] - '0');
  return gib * kGi;
}

std::string FormatGi(uint64_t bytes) {
  if (bytes % kGi == 0) return std::to_string(bytes / kGi) + "Gi";
  return std::to_string(bytes);
}

}  // namespace gpumart::market

namespace gpumart::market {

const PriceCap* ServiceRequest::CapIn(std::string_view denom) const {
  if (price_cap.denom == denom) return &price_cap;
  for (const PriceCap& cap : more_caps) {
    if (cap.denom == denom) return &cap;
  }
  return nullptr;
}

std::vector<std::string> Order::Denoms() const {
  std::vector<std::string> denoms;
  if (services.empty()) return denoms;
  const ServiceRequest& first = services.front();
  denoms.reserve(1 + first.more_caps.size());
  denoms.push_back(first.price_cap.denom);
  for (const PriceCap& cap : first.more_caps) denoms.push_back(cap.denom);
  return denoms;
}

std::optional<size_t> Order::DenomRank(std::string_view denom) const {
  if (services.empty()) return std::nullopt;
  const ServiceRequest& first = services.front();
  if (first.price_cap.denom == denom) return 0;
  for (size_t i = 0; i < first.more_caps.size(); ++i) {
    if (first.more_caps[i].denom == denom) return i + 1;
  }
  return std::nullopt;
}

std::optional<uint64_t> Order::CapPerHourIn(std::string_view denom) const {
  if (services.empty()) return std::nullopt;
  uint64_t total = 0;
  for (const auto& service : services) {
    const PriceCap* cap = service.CapIn(denom);
    if (cap == nullptr) return std::nullopt;
    total += uint64_t{service.count} * cap->per_hour;
  }
  return total;
}

std::optional<Order> Order::InDenom(std::string_view denom) const {
  if (services.empty()) return std::nullopt;
  Order order = *this;
  for (ServiceRequest& service : order.services) {
    const PriceCap* cap = service.CapIn(denom);
    if (cap == nullptr) return std::nullopt;
    PriceCap chosen = *cap;
    service.price_cap = std::move(chosen);
    service.more_caps.clear();
  }
  return order;
}

}  // namespace gpumart::market
