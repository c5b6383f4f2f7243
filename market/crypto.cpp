#include "market/crypto.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

namespace gpumart::market {

void EnsureSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    // sodium_init fails only when the CPU or OS cannot provide what it needs (e.g. no entropy
    // source): nothing can be signed then, so this is fatal by design.
    if (sodium_init() < 0) std::abort();
  });
}

Identity Identity::Generate() {
  EnsureSodium();
  Identity identity;
  crypto_sign_keypair(identity.public_key_.data(), identity.secret_key_.data());
  return identity;
}

Identity Identity::FromSeed(const Seed& seed) {
  EnsureSodium();
  Identity identity;
  crypto_sign_seed_keypair(identity.public_key_.data(), identity.secret_key_.data(), seed.data());
  return identity;
}

Identity::Identity(const Identity& other) = default;
Identity& Identity::operator=(const Identity& other) = default;
Identity::~Identity() { sodium_memzero(secret_key_.data(), secret_key_.size()); }

Seed Identity::seed() const {
  Seed seed{};
  crypto_sign_ed25519_sk_to_seed(seed.data(), secret_key_.data());
  return seed;
}

Signature Identity::Sign(const uint8_t* data, size_t size) const {
  Signature signature{};
  crypto_sign_detached(signature.data(), nullptr, data, size, secret_key_.data());
  return signature;
}

namespace {
std::atomic<uint64_t> signature_verifications{0};
}  // namespace

bool VerifyDetached(const PublicKey& key, const Signature& signature, const uint8_t* data, size_t size) {
  EnsureSodium();
  signature_verifications.fetch_add(1, std::memory_order_relaxed);
  return crypto_sign_verify_detached(signature.data(), data, size, key.data()) == 0;
}

uint64_t SignatureVerificationCount() { return signature_verifications.load(std::memory_order_relaxed); }

MessageId Blake2b256(const uint8_t* data, size_t size) {
  MessageId id{};
  crypto_generichash(id.data(), id.size(), data, size, nullptr, 0);
  return id;
}

uint64_t RandomNonce() {
  EnsureSodium();
  uint64_t nonce = 0;
  randombytes_buf(&nonce, sizeof nonce);
  return nonce;
}

namespace {
constexpr std::string_view kKeyFileHeader = "gpumart-identity-v1";

std::string Errno() { return std::strerror(errno); }
}  // namespace

Status WriteKeyFile(const std::string& path, const Identity& identity) {
  // O_EXCL: never overwrite a key someone may depend on; 0600 from the start, no window where
  // the seed is readable by others.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::AlreadyExists(path + " already exists; refusing to overwrite a key");
    return Status::IoError("cannot create " + path + ": " + Errno());
  }
  Seed seed = identity.seed();
  std::string text = std::string(kKeyFileHeader) + "\npublic " + ToHex(identity.public_key()) +
                     "\nseed " + ToHex(seed) + "\n";
  sodium_memzero(seed.data(), seed.size());
  const char* data = text.data();
  size_t left = text.size();
  Status status;
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      status = Status::IoError("cannot write " + path + ": " + Errno());
      break;
    }
    data += written;
    left -= static_cast<size_t>(written);
  }
  if (status.ok() && ::fsync(fd) != 0) status = Status::IoError("cannot sync " + path + ": " + Errno());
  sodium_memzero(text.data(), text.size());
  ::close(fd);
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

Result<Identity> LoadKeyFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open key file " + path + ": " + Errno());
  struct stat info{};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    return Status::IoError("cannot stat " + path + ": " + Errno());
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + " is not a regular file");
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    std::ostringstream mode;
    mode << std::oct << (info.st_mode & 0777);
    return Status::PermissionDenied("key file " + path + " is accessible by others (mode 0" + mode.str() +
                                    "); run chmod 600 " + path);
  }
  if (info.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
    ::close(fd);
    return Status::LimitExceeded("key file " + path + " is larger than " + std::to_string(kMaxKeyFileBytes) + " bytes");
  }
  std::string text(static_cast<size_t>(info.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(got);

  std::istringstream lines(text);
  std::string header, public_label, public_hex, seed_label, seed_hex;
  lines >> header >> public_label >> public_hex >> seed_label >> seed_hex;
  sodium_memzero(text.data(), text.size());
  if (header != kKeyFileHeader || public_label != "public" || seed_label != "seed") {
    return Status::InvalidArgument(path + " is not a gpumart key file (expected '" + std::string(kKeyFileHeader) + "')");
  }
  const auto public_key = FromHex<kPublicKeyBytes>(public_hex);
  auto seed = FromHex<kSeedBytes>(seed_hex);
  sodium_memzero(seed_hex.data(), seed_hex.size());
  if (!public_key) return Status::InvalidArgument(path + ": public key must be 64 hex digits");
  if (!seed) return Status::InvalidArgument(path + ": seed must be 64 hex digits");
  Identity identity = Identity::FromSeed(*seed);
  sodium_memzero(seed->data(), seed->size());
  if (identity.public_key() != *public_key) {
    return Status::Corruption(path + ": public key does not match the seed");
  }
  return identity;
}

Result<Identity> LoadOrCreateKeyFile(const std::string& path) {
  if (::access(path.c_str(), F_OK) == 0) return LoadKeyFile(path);
  Identity identity = Identity::Generate();
  GPUMART_RETURN_IF_ERROR(WriteKeyFile(path, identity));
  return identity;
}

}  // namespace gpumart::market
