// libFuzzer target for the wire decoders: the envelope, every body type, and the full open path
// (decode + verify) a node runs on peer bytes. Any crash, leak, hang or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "market/codec.h"

using namespace gpumart::market;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  // The raw bytes as an envelope, and as each body type.
  if (auto envelope = DecodeEnvelope(bytes); envelope.ok()) {
    // Re-encoding a decoded envelope must decode to the same value.
    const Bytes again = EncodeEnvelope(*envelope);
    auto round = DecodeEnvelope(again);
    if (!round.ok() || !(*round == *envelope)) __builtin_trap();
    (void)ComputeId(*envelope);
  }
  (void)DecodeOrder(bytes);
  (void)DecodeOffer(bytes);
  (void)DecodeBid(bytes);
  (void)DecodeAccept(bytes);
  (void)DecodeLease(bytes);
  (void)DecodeClose(bytes);
  if (auto order = DecodeOrder(bytes); order.ok()) {
    auto round = DecodeOrder(EncodeBody(*order));
    if (!round.ok() || !(*round == *order)) __builtin_trap();
  }
  (void)OpenSigned<Order>(bytes, 1'750'000'000'000);
  (void)OpenLease(bytes);
  return 0;
}
