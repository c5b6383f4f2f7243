// Where exceptions stop. Errors are values (market/status.h); an exception thrown below a module
// boundary (the standard library out of memory, a container past its max_size, a third-party
// parser) must not cross it. Every entry point that reads untrusted input runs its body through
// CatchAll, the one idiom for this: a thrown exception comes back as a Status.
#pragma once

#include <string_view>
#include <type_traits>

#include "market/status.h"

namespace gpumart {

// The Status for the exception being handled; call only inside a catch block. Out of memory
// (std::bad_alloc, std::length_error) is kLimitExceeded, anything else kInternal; the message
// starts with `context`.
Status CurrentExceptionStatus(std::string_view context);

// Runs `body` (returning Status or Result<T>) and returns its result, or the Status of any
// exception it throws.
template <typename Body>
auto CatchAll(std::string_view context, Body&& body) -> std::invoke_result_t<Body&> {
  try {
    return body();
  } catch (...) {
    return CurrentExceptionStatus(context);
  }
}

}  // namespace gpumart
