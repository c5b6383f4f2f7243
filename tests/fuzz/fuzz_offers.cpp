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
      // The provider id, auditors and reputation are node-local (never on the wire); the rest
      // round-trips.
      gpumart::market::Offer on_the_wire = offer;
      on_the_wire.provider.clear();
      on_the_wire.reputation_ppm = 0;
      on_the_wire.auditors.clear();
      if (!round.ok() || !(*round == on_the_wire)) __builtin_trap();
    }
  }
  return 0;
}
