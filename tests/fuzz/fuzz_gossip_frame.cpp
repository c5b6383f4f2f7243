// libFuzzer target for the gossip core's frame handler: arbitrary bytes from a peer, in any order,
// with timers. Any crash, leak, hang, sanitizer report or unbounded output is a bug.
//
// Input: a sequence of chunks [op:u8, length:u8, bytes...]:
//   op % 4 == 0: the bytes as one frame from peer 1 (after its HELLO when the first input byte is odd)
//   op % 4 == 1: a validly signed Close, nonce and note from the bytes, in a MESSAGE frame from peer 1
//   op % 4 == 2: a timer tick, length x 100 ms later
//   op % 4 == 3: the bytes as one frame from peer 2, which never sent a HELLO
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "market/codec.h"
#include "node/gossip/gossip_core.h"

using namespace gpumart;
using namespace gpumart::gossip;

namespace {

constexpr int64_t kStartMs = 1'750'000'000'000;
constexpr size_t kMaxChunks = 256;

const market::Identity& Self() {
  static const market::Identity identity = market::Identity::FromSeed(market::Seed{1});
  return identity;
}
const market::Identity& Peer() {
  static const market::Identity identity = market::Identity::FromSeed(market::Seed{2});
  return identity;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  GossipConfig config;
  config.advertised_address = "tcp://127.0.0.1:7700";
  GossipCore core(Self(), config);
  int64_t now = kStartMs;
  std::vector<Action> out;
  core.OnConnected(1, Direction::kInbound, "", now, out);
  core.OnConnected(2, Direction::kOutbound, "tcp://127.0.0.1:7701", now, out);
  if (data[0] & 1) {
    core.HandleFrame(1, EncodeFrame(SignHello(Peer(), "tcp://127.0.0.1:7702", Role::kRelay, now)), now, out);
  }
  size_t offset = 1;
  for (size_t chunk = 0; chunk < kMaxChunks && offset + 2 <= size; ++chunk) {
    const uint8_t op = data[offset];
    const size_t length = std::min<size_t>(data[offset + 1], size - offset - 2);
    const uint8_t* bytes = data + offset + 2;
    offset += 2 + length;
    out.clear();
    switch (op % 4) {
      case 0:
        core.HandleFrame(1, std::span(bytes, length), now, out);
        break;
      case 1: {
        market::Close close;
        close.closed_ms = now;
        close.note.assign(reinterpret_cast<const char*>(bytes), std::min<size_t>(length, 64));
        uint64_t nonce = 0;
        std::memcpy(&nonce, bytes, std::min<size_t>(length, sizeof nonce));
        auto message = market::MakeSigned(Peer(), close, now, 60'000, nonce);
        core.HandleFrame(1, EncodeMessageFrame(op >> 2, market::EncodeEnvelope(message.envelope)), now, out);
        break;
      }
      case 2:
        now += static_cast<int64_t>(length) * 100;
        core.Tick(now, out);
        break;
      case 3:
        core.HandleFrame(2, std::span(bytes, length), now, out);
        break;
    }
    // One input yields a bounded number of actions: a handful per peer, or one IHAVE-driven GRAFT
    // batch (at most kMaxIhaveIds ids, in frames of kMaxGraftIds).
    if (out.size() > 64) __builtin_trap();
  }
  return 0;
}
