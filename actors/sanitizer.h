// Internal: tells ThreadSanitizer about the happens-before edge a mailbox frame creates. libzmq
// is not instrumented, so TSan cannot see that its queues order a send before the matching
// receive; without this, every payload that points at shared memory would be reported. Compiles
// to nothing outside TSan builds.
#pragma once

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace gpumart::actors::detail {

// Call before a frame for `mailbox` is sent.
inline void AnnotateFrameSent([[maybe_unused]] const void* mailbox) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(mailbox));
#endif
}

// Call after a frame was received from `mailbox`.
inline void AnnotateFrameReceived([[maybe_unused]] const void* mailbox) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(mailbox));
#endif
}

}  // namespace gpumart::actors::detail
