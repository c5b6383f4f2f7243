#include "node/free_memory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

// Under a sanitizer malloc is the sanitizer's, which malloc_trim does not reach. GCC says so with
// __SANITIZE_*__, clang (14) only through __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GPUMART_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GPUMART_SANITIZER_ALLOCATOR 1
#endif
#endif

namespace gpumart::node {
namespace {

// Resident anonymous memory of this process, in bytes (RssAnon of /proc/self/status).
uint64_t RssAnonBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) * 1024;
  }
  return 0;
}

// A burst freed out of order, as a backlog of queued frames is: one block in 16 stays, so no free
// space ends a heap and malloc hands nothing back on its own. Allocated by another thread, in its
// own arena, as ZeroMQ's I/O thread allocates the frames it receives.
TEST(FreeMemoryTest, AFreedBurstGoesBackToTheSystem) {
#ifdef GPUMART_SANITIZER_ALLOCATOR
  GTEST_SKIP() << "the sanitizers' allocators are not glibc's";
#else
  constexpr size_t kBlocks = 48 * 1024;
  constexpr size_t kBlockBytes = 1024;
  std::vector<void*> blocks(kBlocks);
  std::thread([&] {
    for (void*& block : blocks) {
      block = std::malloc(kBlockBytes);
      std::memset(block, 1, kBlockBytes);
    }
  }).join();
  for (size_t i = 0; i < kBlocks; ++i) {
    if (i % 16 != 0) std::free(blocks[i]);
  }
  const uint64_t before = RssAnonBytes();
  EXPECT_TRUE(ReturnFreeMemory());
  const uint64_t after = RssAnonBytes();
  std::printf("resident anonymous memory: %lu kB before, %lu kB after\n", static_cast<unsigned long>(before / 1024),
              static_cast<unsigned long>(after / 1024));
  // 45 MiB were freed in runs of 15 KiB: at least 3 whole pages of each 4 go back.
  EXPECT_GE(before - std::min(before, after), uint64_t{kBlocks * kBlockBytes / 2});
  for (size_t i = 0; i < kBlocks; i += 16) std::free(blocks[i]);
#endif
}

}  // namespace
}  // namespace gpumart::node
