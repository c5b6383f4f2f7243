// libFuzzer target for the SDL parser: any bytes, as a tenant's deploy.yaml. It must return a
// Deployment or a Status, never crash, hang, or grow without bound (the nesting pre-scan, the YAML
// tree's node and depth limits, shared aliases and the bounded merge walks keep it so).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "market/codec.h"
#include "market/sdl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto deployment = gpumart::market::ParseSdl(text);
  if (deployment.ok()) {
    // Every order the parser accepts must be a valid, encodable wire order.
    for (const auto& order : deployment->orders) {
      if (!gpumart::market::ValidateOrder(order).ok()) __builtin_trap();
      auto round = gpumart::market::DecodeOrder(gpumart::market::EncodeBody(order));
      if (!round.ok() || !(*round == order)) __builtin_trap();
    }
  }
  return 0;
}
