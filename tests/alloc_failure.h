// Fault injection for allocation: the global operator new of every test binary (replaced in
// tests/alloc_failure.cpp) lets a test make the n-th allocation from now throw std::bad_alloc,
// the way a machine out of memory would.
// A test calls an entry point once per n = 1, 2, ... until it succeeds without an injected
// failure, which makes every allocation it does fail once; the entry point must turn each into
// a Status (exceptions stop at module boundaries, market/status.h). Under AddressSanitizer and
// ThreadSanitizer the sanitizer's allocator stays in charge and the tests that need this skip
// themselves.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>

#include "market/status.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GPUMART_ALLOC_FAILURE_INJECTION 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
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

// Runs `entry` (returning a Result) with allocation n = 1, 2, ... failing, until a run makes no
// allocation fail; each failure must come back as kLimitExceeded, never as an exception, and the
// last run must succeed. Returns how many runs that took (about the allocations one run makes),
// or 0 after reporting a failure. `what` names the entry point in failure messages.
template <typename Entry>
long EveryAllocationFailureIsAStatus(const std::string& what, Entry&& entry) {
  for (long n = 1;; ++n) {
    std::optional<decltype(entry())> result;
    bool threw = false;
    try {
      FailAfter(n);
      result.emplace(entry());
    } catch (...) {
      threw = true;
    }
    const bool failed_one = Stop();
    if (threw) {
      ADD_FAILURE() << "an exception escaped " << what << " when allocation " << n << " failed";
      return 0;
    }
    if (!failed_one) {
      if (!result->ok()) ADD_FAILURE() << what << ": " << result->status().ToString();
      return result->ok() ? n : 0;
    }
    if (result->ok() || result->status().code() != gpumart::Status::Code::kLimitExceeded) {
      ADD_FAILURE() << what << " with allocation " << n << " failing: "
                    << (result->ok() ? std::string("succeeded") : result->status().ToString());
      return 0;
    }
  }
}

}  // namespace alloc_failure
