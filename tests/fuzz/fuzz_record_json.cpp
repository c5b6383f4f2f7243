// libFuzzer target for the JSON output of decoded records: arbitrary bytes decoded as each
// stored record type (as `gpumart leases` reads them from a ledger), and, when they decode,
// rendered with the command line's JSON writer (node/json.h) and made printable. Rendering must
// never throw (an exception here is what killed `gpumart leases --json`, issue 11 item 8) and
// must always give valid UTF-8 JSON.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ledger/store.h"
#include "node/json.h"

using namespace gpumart;

namespace {

void Render(const node::Json& json) {
  const std::string text = node::DumpJson(json);
  // The parser rejects invalid UTF-8 too, so this checks both.
  if (node::Json::parse(text, nullptr, /*allow_exceptions=*/false).is_discarded()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const market::MessageId id{};
  ledger::LeaseRecord record;
  if (auto lease = ledger::DecodeStoredLease(id, bytes); lease.ok()) {
    record.envelope = lease->envelope;
    record.lease = lease->body;
    Render(node::ToJson(record, 0));
  }
  if (auto close = ledger::DecodeStoredClose(bytes); close.ok()) {
    record.state = ledger::LeaseState::kClosed;
    record.close_envelope = close->envelope;
    record.close = close->body;
    record.billing = ledger::Billing{1000, 1};
    Render(node::ToJson(record, 0));
  }
  if (auto bid = ledger::DecodeStoredBid(id, bytes); bid.ok()) {
    market::Candidate candidate{bid->body.group, bid->body.denom, bid->body.price_per_hour, 0,
                                {}, bid->body.services};
    Render(node::ToJson(candidate));
  }
  if (auto attestation = ledger::DecodeStoredAttestation(bytes); attestation.ok()) Render(node::ToJson(*attestation));
  (void)node::Printable(bytes);
  return 0;
}
