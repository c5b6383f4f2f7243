// libFuzzer target for the client port's frame decoders (node/client/protocol.h): any bytes give
// a request, a response or a Status; never a crash, hang or unbounded allocation. What decodes
// re-encodes to a frame that decodes to the same value (maps may be re-ordered: the decoder takes
// any key order, the encoder writes sorted), and a decoded request's id is what PeekRequestId
// reads from the front (the id the port answers an undecodable frame with).
#include <cstddef>
#include <cstdint>
#include <span>

#include "node/client/protocol.h"

using namespace gpumart::client;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const auto peeked = PeekRequestId(bytes);
  if (auto request = DecodeRequest(bytes); request.ok()) {
    if (!peeked || *peeked != request->id) __builtin_trap();
    auto again = DecodeRequest(EncodeRequest(*request));
    if (!again.ok() || again->id != request->id || again->kind != request->kind || again->args != request->args) {
      __builtin_trap();
    }
  }
  if (auto response = DecodeResponse(bytes); response.ok()) {
    auto again = DecodeResponse(EncodeResponse(*response));
    if (!again.ok() || again->id != response->id || again->code != response->code ||
        again->message != response->message || again->result != response->result) {
      __builtin_trap();
    }
  }
  return 0;
}
