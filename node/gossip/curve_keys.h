// The transport keys of a gossip node, derived from its Ed25519 identity, so one key file is the
// node's whole identity: its CURVE (X25519) keypair is the Ed25519 keypair converted with
// libsodium's crypto_sign_ed25519_{pk,sk}_to_curve25519. And peer addresses, which carry the
// identity a CURVE client must know before it can dial (docs/GOSSIP.md, "Transport").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "market/crypto.h"
#include "market/status.h"

namespace gpumart::gossip {

constexpr size_t kCurveKeyBytes = 32;
using CurveKey = std::array<uint8_t, kCurveKeyBytes>;

// A node's CURVE keypair. The secret key is wiped when this is destroyed.
class CurveKeys {
 public:
  static CurveKeys Derive(const market::Identity& identity);
  CurveKeys(const CurveKeys& other) = default;
  ~CurveKeys();

  const CurveKey& public_key() const { return public_key_; }
  // Z85 text (40 characters), the form the ZMQ_CURVE_*KEY socket options take.
  std::string public_z85() const;
  std::string secret_z85() const;

 private:
  CurveKeys() = default;
  CurveKey public_key_{};
  CurveKey secret_key_{};
};

// The CURVE public key of an Ed25519 identity; nullopt for bytes that are not a valid Ed25519
// point (no honest identity is such).
std::optional<CurveKey> CurveKeyOf(const market::PublicKey& identity);
std::string Z85(const CurveKey& key);

// A peer address is "<ZeroMQ tcp endpoint>/<64 hex digits of the node's Ed25519 identity>", e.g.
// "tcp://127.0.0.1:7700/3b6a...". The identity is part of the address because a CURVE client
// must know the server's key before it connects.
struct PeerEndpoint {
  std::string endpoint;  // "tcp://host:port"
  market::PublicKey identity{};
};
std::string FormatPeerAddress(std::string_view endpoint, const market::PublicKey& identity);
Result<PeerEndpoint> ParsePeerAddress(std::string_view address);

}  // namespace gpumart::gossip
