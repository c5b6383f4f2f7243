// The key of the gossip core's seen-cache, nonce index, routes and answer digests: the first
// kShortIdBytes bytes of a 32-byte BLAKE2b digest, half the memory of the whole one. 128 bits keep
// collisions out of reach: making a message whose short id equals another signer's takes about
// 2^128 hashes; two of one's own messages sharing one, about 2^64, and that only hides the second.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "market/crypto.h"
#include "market/types.h"

namespace gpumart::gossip {

constexpr size_t kShortIdBytes = 16;
using ShortId = std::array<uint8_t, kShortIdBytes>;

inline ShortId Short(const market::MessageId& digest) {
  ShortId id;
  std::memcpy(id.data(), digest.data(), id.size());
  return id;
}

struct ShortIdHash {
  size_t operator()(const ShortId& id) const noexcept {
    uint64_t prefix = 0;  // digests: any eight bytes are uniform
    std::memcpy(&prefix, id.data(), sizeof prefix);
    return static_cast<size_t>(prefix);
  }
};

// The nonce index's key: a digest of the signer and its nonce (both chosen by the signer, so a
// plain mix of them could be made to collide with another signer's).
inline ShortId NonceKey(const market::PublicKey& signer, uint64_t nonce) {
  uint8_t input[sizeof(market::PublicKey) + sizeof nonce];
  std::memcpy(input, signer.data(), signer.size());
  std::memcpy(input + signer.size(), &nonce, sizeof nonce);
  return Short(market::Blake2b256(input, sizeof input));
}

}  // namespace gpumart::gossip
