// Counts a process's Ed25519 signature verifications: every call of libsodium's
// crypto_sign_verify_detached (the one gpumart verifies with, market/crypto.cpp), so bench_e2e
// measures the verifications per lease instead of deriving them from the protocol. No product
// code knows about it: gpumartd gets it by LD_PRELOAD, bench_e2e links it ahead of libsodium.
//
// With $GPUMART_VERIFY_COUNTER naming a file, the count lives in that file (mapped shared), so
// another process reads it at any time (the first 8 bytes, native endianness); without it, in
// this process only (gpumart_verify_count()).
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace {

using VerifyFunction = int (*)(const unsigned char*, const unsigned char*, unsigned long long, const unsigned char*);

std::atomic<uint64_t> local_count{0};
std::atomic<uint64_t>* counter = &local_count;

VerifyFunction RealVerify() {
  static const VerifyFunction real =
      reinterpret_cast<VerifyFunction>(dlsym(RTLD_NEXT, "crypto_sign_verify_detached"));
  return real;
}

__attribute__((constructor)) void MapSharedCounter() {
  const char* path = std::getenv("GPUMART_VERIFY_COUNTER");
  if (path == nullptr || *path == '\0') return;
  const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  void* page = ftruncate(fd, 4096) == 0 ? mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (page != MAP_FAILED) counter = static_cast<std::atomic<uint64_t>*>(page);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int crypto_sign_verify_detached(const unsigned char* signature,
                                                                      const unsigned char* message,
                                                                      unsigned long long message_size,
                                                                      const unsigned char* public_key) {
  counter->fetch_add(1, std::memory_order_relaxed);
  return RealVerify()(signature, message, message_size, public_key);
}

__attribute__((visibility("default"))) uint64_t gpumart_verify_count() {
  return counter->load(std::memory_order_relaxed);
}

}  // extern "C"
