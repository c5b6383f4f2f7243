#include "node/gossip/curve_keys.h"

#include <sodium.h>
#include <zmq.h>

#include <cassert>

#include "node/gossip/frames.h"

namespace gpumart::gossip {

CurveKeys CurveKeys::Derive(const market::Identity& identity) {
  market::EnsureSodium();
  const market::Seed seed = identity.seed();
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> ed_public{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> ed_secret{};
  crypto_sign_seed_keypair(ed_public.data(), ed_secret.data(), seed.data());
  CurveKeys keys;
  // Cannot fail for a keypair made from a seed (its public key is a valid point).
  [[maybe_unused]] const int converted =
      crypto_sign_ed25519_pk_to_curve25519(keys.public_key_.data(), ed_public.data()) |
      crypto_sign_ed25519_sk_to_curve25519(keys.secret_key_.data(), ed_secret.data());
  assert(converted == 0);
  sodium_memzero(ed_secret.data(), ed_secret.size());
  return keys;
}

CurveKeys::~CurveKeys() { sodium_memzero(secret_key_.data(), secret_key_.size()); }

std::string Z85(const CurveKey& key) {
  char text[41] = {};
  zmq_z85_encode(text, key.data(), key.size());
  return std::string(text, 40);
}

std::string CurveKeys::public_z85() const { return Z85(public_key_); }
std::string CurveKeys::secret_z85() const { return Z85(secret_key_); }

std::optional<CurveKey> CurveKeyOf(const market::PublicKey& identity) {
  market::EnsureSodium();
  CurveKey key{};
  if (crypto_sign_ed25519_pk_to_curve25519(key.data(), identity.data()) != 0) return std::nullopt;
  return key;
}

std::string FormatPeerAddress(std::string_view endpoint, const market::PublicKey& identity) {
  std::string address(endpoint);
  address += '/';
  address += market::ToHex(identity);
  return address;
}

Result<PeerEndpoint> ParsePeerAddress(std::string_view address) {
  constexpr size_t kHexDigits = 2 * market::kPublicKeyBytes;
  if (address.size() > limits::kMaxAddressBytes) return Status::LimitExceeded("peer address too long");
  const size_t slash = address.rfind('/');
  if (slash == std::string_view::npos || address.size() - slash - 1 != kHexDigits) {
    return Status::InvalidArgument("peer address lacks /<64 hex identity>");
  }
  PeerEndpoint out;
  out.endpoint = std::string(address.substr(0, slash));
  if (!out.endpoint.starts_with("tcp://") || out.endpoint.size() <= 6) {
    return Status::InvalidArgument("peer address is not a tcp:// endpoint");
  }
  auto identity = market::FromHex<market::kPublicKeyBytes>(address.substr(slash + 1));
  if (!identity) return Status::InvalidArgument("peer address identity is not hex");
  out.identity = *identity;
  return out;
}

}  // namespace gpumart::gossip
