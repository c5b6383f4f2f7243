// Waiting for what another thread or process does, in every test folder: one poll loop, with a
// deadline, instead of a sleep whose length is a guess.
#pragma once

#include <chrono>
#include <thread>

namespace gpumart::testing {

// Polls `done` every 5 ms until it is true or `timeout` passed; returns its last value, so a
// condition that turns true at the deadline still counts.
template <typename F>
bool Eventually(F done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace gpumart::testing
