// Identities and signatures (libsodium): Ed25519 keypairs, detached signatures, BLAKE2b-256
// hashes, and key files. Message-level signing (domain separation, ids, expiry) is in codec.h.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

constexpr size_t kSeedBytes = 32;
constexpr size_t kSecretKeyBytes = 64;
using Seed = std::array<uint8_t, kSeedBytes>;

// Initialises libsodium once (thread-safe, idempotent). Every function here calls it; it aborts
// only if the CPU lacks what libsodium needs, which is a deployment error, not an input error.
void EnsureSodium();

// An Ed25519 keypair. The secret key is wiped when the identity is destroyed.
class Identity {
 public:
  static Identity Generate();
  static Identity FromSeed(const Seed& seed);

  Identity(const Identity& other);
  Identity& operator=(const Identity& other);
  ~Identity();

  const PublicKey& public_key() const { return public_key_; }
  Seed seed() const;
  Signature Sign(const uint8_t* data, size_t size) const;

 private:
  Identity() = default;
  PublicKey public_key_{};
  std::array<uint8_t, kSecretKeyBytes> secret_key_{};
};

// True when `signature` is a valid Ed25519 signature of data by `key`.
bool VerifyDetached(const PublicKey& key, const Signature& signature, const uint8_t* data, size_t size);
// How many signatures VerifyDetached has checked in this process (every market verification goes
// through it). For tests and benchmarks that count verifications; exact once the threads that
// verify are quiet (a relaxed counter).
uint64_t SignatureVerificationCount();

// BLAKE2b with a 32-byte output (crypto_generichash).
MessageId Blake2b256(const uint8_t* data, size_t size);

// Key files: a small text file, mode 0600:
//   gpumart-identity-v1
//   public <64 hex digits>
//   seed <64 hex digits>
// WriteKeyFile refuses to overwrite an existing file. LoadKeyFile refuses a file readable or
// writable by group or others, and one whose public key does not match its seed.
constexpr size_t kMaxKeyFileBytes = 4096;
Status WriteKeyFile(const std::string& path, const Identity& identity);
Result<Identity> LoadKeyFile(const std::string& path);
// Loads the key file at `path`, or creates it (a new identity) when there is none: how a node
// gets its identity on first start and keeps it afterwards.
Result<Identity> LoadOrCreateKeyFile(const std::string& path);

// Uniformly random 64-bit nonce.
uint64_t RandomNonce();

}  // namespace gpumart::market
