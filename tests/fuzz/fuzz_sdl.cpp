// libFuzzer target for the SDL parser: any bytes, as a tenant's deploy.yaml. It must return a
// Deployment or a Status, never crash, hang, or grow without bound (the nesting pre-scan, the YAML
// tree's node and depth limits, shared aliases and the bounded merge walks keep it so).
//
// Each input is read twice, as Akash's Go reader reads it and with --strict (warnings are errors,
// plus Akash Console's schema rules), and the two must agree: strict accepts only what the
// lenient reader accepts without a warning, and then yields the same orders.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "market/codec.h"
#include "market/sdl.h"

namespace {

void CheckOrders(const gpumart::market::Deployment& deployment) {
  using namespace gpumart::market;  // NOLINT
  // Every order the parser accepts must be a valid, encodable wire order.
  for (const Order& order : deployment.orders) {
    if (!ValidateOrder(order).ok()) __builtin_trap();
    auto round = DecodeOrder(EncodeBody(order));
    if (!round.ok() || !(*round == order)) __builtin_trap();
    // Several denoms: the group is priced in each, and alone in each it is a valid order too.
    const auto denoms = order.Denoms();
    for (size_t i = 0; i < denoms.size(); ++i) {
      if (order.DenomRank(denoms[i]) != i || !order.CapPerHourIn(denoms[i])) __builtin_trap();
      auto alone = order.InDenom(denoms[i]);
      if (!alone || !ValidateOrder(*alone).ok() || alone->CapPerHour() != *order.CapPerHourIn(denoms[i])) {
        __builtin_trap();
      }
    }
  }
  if (deployment.warnings.size() > kSdlMaxWarnings + 1) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto lenient = gpumart::market::ParseSdl(text);
  if (lenient.ok()) CheckOrders(*lenient);
  auto strict = gpumart::market::ParseSdl(text, {.strict = true});
  if (strict.ok()) {
    CheckOrders(*strict);
    if (!strict->warnings.empty() || !lenient.ok() || !lenient->warnings.empty()) __builtin_trap();
    if (!(strict->orders == lenient->orders)) __builtin_trap();
  }
  return 0;
}
