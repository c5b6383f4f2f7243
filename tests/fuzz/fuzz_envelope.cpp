// libFuzzer target for the wire decoders: the envelope, every body type, and the full open path
// (decode + verify) a node runs on peer bytes. Any crash, leak, hang or sanitizer report is a bug,
// and so is a decoder accepting anything but the canonical encoding: bytes that decode must
// re-encode to exactly themselves (one value, one byte string, one id), else __builtin_trap.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "market/codec.h"

using namespace gpumart::market;
using gpumart::Result;

namespace {

void RequireSameBytes(std::span<const uint8_t> input, const Bytes& again) {
  if (again.size() != input.size() || !std::equal(again.begin(), again.end(), input.begin())) __builtin_trap();
}

template <typename Body>
void CheckBody(std::span<const uint8_t> bytes, Result<Body> (*decode)(std::span<const uint8_t>)) {
  Result<Body> body = decode(bytes);
  if (!body.ok()) return;
  const Bytes again = EncodeBody(*body);
  RequireSameBytes(bytes, again);
  Result<Body> round = decode(again);
  if (!round.ok() || !(*round == *body)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  // The raw bytes as an envelope, and as each body type.
  if (auto envelope = DecodeEnvelope(bytes); envelope.ok()) {
    RequireSameBytes(bytes, EncodeEnvelope(*envelope));
    (void)ComputeId(*envelope);
    (void)CheckFreshness(*envelope, 1'750'000'000'000);
  }
  CheckBody<Order>(bytes, DecodeOrder);
  CheckBody<Offer>(bytes, DecodeOffer);
  CheckBody<Bid>(bytes, DecodeBid);
  CheckBody<Accept>(bytes, DecodeAccept);
  CheckBody<Lease>(bytes, DecodeLease);
  CheckBody<Close>(bytes, DecodeClose);
  CheckBody<Attestation>(bytes, DecodeAttestation);
  (void)OpenSigned<Order>(bytes, 1'750'000'000'000);
  (void)OpenSigned<Attestation>(bytes, 1'750'000'000'000);
  (void)OpenLease(bytes);
  return 0;
}
