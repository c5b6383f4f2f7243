// The replaced operator new of tests/alloc_failure.h, linked into every test binary (one
// definition per binary, whichever of its files use the header). Inert until a test arms it.
#include "tests/alloc_failure.h"

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
