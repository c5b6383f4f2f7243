// Fault injection for allocation: replaces the global operator new of the test binary that
// includes this header (include it from exactly one file of a binary) so that a test can make
// the n-th allocation from now throw std::bad_alloc, the way a machine out of memory would.
// A test calls an entry point once per n = 1, 2, ... until it succeeds without an injected
// failure, which makes every allocation it does fail once; the entry point must turn each into
// a Status (exceptions stop at module boundaries, market/status.h). Under AddressSanitizer the
// sanitizer's allocator stays in charge and the tests that need this skip themselves.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define GPUMART_ALLOC_FAILURE_INJECTION 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define GPUMART_ALLOC_FAILURE_INJECTION 0
#endif
#endif
#ifndef GPUMART_ALLOC_FAILURE_INJECTION
#define GPUMART_ALLOC_FAILURE_INJECTION 1
#endif

namespace alloc_failure {

// Allocations left before the one that fails; 0 = injection off. One test thread uses it.
inline long countdown = 0;
inline bool injected = false;

// Arms the n-th allocation from now (n >= 1) to fail.
inline void FailAfter(long n) {
  injected = false;
  countdown = n;
}
// Disarms; true when the armed failure happened.
inline bool Stop() {
  countdown = 0;
  return injected;
}

}  // namespace alloc_failure

#if GPUMART_ALLOC_FAILURE_INJECTION
// The replacements pair malloc with free, which GCC cannot see through inlined call sites.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  if (alloc_failure::countdown > 0 && --alloc_failure::countdown == 0) {
    alloc_failure::injected = true;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif
