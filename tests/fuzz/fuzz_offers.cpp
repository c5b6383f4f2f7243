// libFuzzer target for the offers file parser (YAML or JSON from a user or a provider config):
// any bytes give offers or a Status; every accepted offer must be a valid wire offer.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "market/codec.h"
#include "market/offers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto offers = gpumart::market::ParseOffers(text);
  if (offers.ok()) {
    for (const auto& offer : *offers) {
      auto round = gpumart::market::DecodeOffer(gpumart::market::EncodeBody(offer));
      if (!round.ok() || !(*round == offer)) __builtin_trap();
    }
  }
  return 0;
}
