// libFuzzer target for the offer search grammar (`gpumart offers QUERY -o ORDER`, the client
// port's `offers`, the console's search): any query and order text parse or give an error, and a
// search keeps exactly the first rows of its total order (tests/market/offer_query_check.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/market/offer_query_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!gpumart::market::testing::CheckOfferQueryInput(input)) __builtin_trap();
  return 0;
}
