// libFuzzer target for the lease verification path: OpenLease (the provider's signature, the
// embedded Accept's tenant signature, and their agreement) on arbitrary bytes, and the ledger's
// OpenRecord, which every record a node stores from a peer goes through. Any bytes give a
// verified record or a Status; a lease that opens re-encodes to the bytes it came from.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <span>

#include "ledger/store.h"
#include "market/codec.h"

using namespace gpumart;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  if (auto lease = market::OpenLease(bytes); lease.ok()) {
    // A verified lease is the signed bytes, nothing else: its envelope re-encodes to them.
    // (issue 11 item 14: one value, one byte string, one id.)
    const market::Bytes again = market::EncodeEnvelope(lease->envelope);
    if (!std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) __builtin_trap();
    if (lease->id != market::ComputeId(lease->envelope)) __builtin_trap();
  }
  if (auto record = ledger::OpenRecord(bytes); record.ok()) {
    (void)ledger::Prepare(std::move(record).value());
  }
  return 0;
}
