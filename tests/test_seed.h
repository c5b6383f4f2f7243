// The seed of a randomized test, printed so any failure reproduces: one idiom for every test.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace gpumart::testing {

// $GPUMART_TEST_SEED when set (to replay a failure), else a fresh random seed; printed either
// way, with the command that replays it, and recorded in the test's XML output.
inline uint32_t TestSeed() {
  uint32_t seed = 0;
  if (const char* text = std::getenv("GPUMART_TEST_SEED"); text != nullptr && *text != '\0') {
    seed = static_cast<uint32_t>(std::strtoul(text, nullptr, 10));
  } else {
    seed = std::random_device{}();
  }
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("%s.%s: seed %u (replay: GPUMART_TEST_SEED=%u, --gtest_filter=%s.%s)\n", test->test_suite_name(),
              test->name(), seed, seed, test->test_suite_name(), test->name());
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

}  // namespace gpumart::testing
