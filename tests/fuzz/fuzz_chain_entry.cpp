// libFuzzer target for the ledger's stored chain entries and chain head (ledger/store.h): bytes a
// damaged or tampered disk hands to `gpumart ledger verify` and to gpumartd at start. Any bytes
// give an entry or a Status; a decoded entry re-encodes to bytes that decode to the same entry.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ledger/store.h"

using namespace gpumart::ledger;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto entry = DecodeChainEntry(bytes); entry.ok()) {
    if (entry->changes.size() > kMaxChainChanges) __builtin_trap();
    auto round = DecodeChainEntry(EncodeChainEntry(*entry));
    if (!round.ok() || !(*round == *entry)) __builtin_trap();
    (void)HashBytes(bytes);
  }
  if (auto head = DecodeHead(bytes); head.ok()) {
    auto round = DecodeHead(EncodeHead(*head));
    if (!round.ok() || !(*round == *head)) __builtin_trap();
  }
  return 0;
}
