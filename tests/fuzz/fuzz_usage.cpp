// libFuzzer target for the ledger's derived values (ledger/capacity.h, ledger/store.h,
// ledger/lease_state.h): usage/<lease_id> and resv/<bid_id> (capacity a lease or reservation
// holds) and bill/<lease_id>. They are written by this node, but a damaged disk is untrusted
// input: any bytes give a value or a Status, within the named limits, and a decoded value
// re-encodes to bytes that decode to the same value.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ledger/capacity.h"
#include "ledger/lease_state.h"
#include "ledger/store.h"

using namespace gpumart::ledger;

namespace {

void CheckLimits(const Usage& usage) {
  if (usage.size() > kMaxUsageNodes) __builtin_trap();
  for (const auto& [node, node_usage] : usage) {
    if (node.size() > kMaxUsageNameBytes || node_usage.gpus.size() > kMaxUsageGpuTypes) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto usage = DecodeUsage(bytes); usage.ok()) {
    CheckLimits(*usage);
    // What decodes must encode (the encoder refuses only what the decoder refuses) and read back.
    auto encoded = EncodeUsage(*usage);
    if (!encoded.ok()) __builtin_trap();
    auto round = DecodeUsage(*encoded);
    if (!round.ok() || !(*round == *usage)) __builtin_trap();
    // Adding it to itself saturates, never wraps or crashes.
    Usage total = *usage;
    gpumart::market::AddUsage(total, *usage);
  }
  const MessageId bid_id{};
  if (auto reservation = DecodeReservation(bid_id, bytes); reservation.ok()) {
    CheckLimits(reservation->usage);
    auto encoded = EncodeReservation(*reservation);
    if (!encoded.ok()) __builtin_trap();
    auto round = DecodeReservation(bid_id, *encoded);
    if (!round.ok() || !(*round == *reservation)) __builtin_trap();
  }
  if (auto billing = DecodeBilling(bytes); billing.ok()) {
    auto round = DecodeBilling(EncodeBilling(*billing));
    if (!round.ok() || !(*round == *billing)) __builtin_trap();
  }
  return 0;
}
