// Real processes: /bin/sh scripts standing in for a provider's pricing program.
#include "bidding/price_command.h"

#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include <chrono>

namespace gpumart::bidding {
namespace {

Result<uint64_t> RunScript(const std::string& script, std::string_view input = "{}", int64_t timeout_ms = 2'000) {
  return RunPriceCommand({"/bin/sh", "-c", script}, input, timeout_ms);
}

TEST(PriceCommandTest, ReadsTheRequestAndReturnsThePrice) {
  // It prints the number of bytes it read: the whole request reached it.
  const std::string request(10'000, 'x');
  Result<uint64_t> price = RunScript("wc -c | tr -d ' '", request);
  ASSERT_TRUE(price.ok()) << price.status().ToString();
  EXPECT_EQ(*price, 10'000u);
  EXPECT_EQ(*RunScript("cat >/dev/null; echo 250000"), 250'000u);
}

TEST(PriceCommandTest, FailureGarbageAndSignalsAreErrorsNamingTheProblem) {
  Result<uint64_t> failed = RunScript("echo 5; exit 3");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("status 3"), std::string::npos) << failed.status().ToString();
  Result<uint64_t> garbage = RunScript("echo cheap");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("cheap"), std::string::npos);
  EXPECT_FALSE(RunScript("kill -9 $$").ok());
  EXPECT_FALSE(RunScript("yes 1").ok());  // endless output: killed once over the bound
  Result<uint64_t> missing = RunPriceCommand({"/nonexistent/price-program"}, "{}", 1'000);
  EXPECT_FALSE(missing.ok());
}

TEST(PriceCommandTest, ASlowProgramIsKilledAtTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  Result<uint64_t> slow = RunScript("sleep 10; echo 1", "{}", 200);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), Status::Code::kTimeout) << slow.status().ToString();
  EXPECT_LT(took, std::chrono::seconds(3));
  // One that answers, then lingers without exiting, is still bounded.
  Result<uint64_t> lingering = RunScript("echo 7; exec >&-; sleep 10", "{}", 200);
  EXPECT_FALSE(lingering.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(6));
}

TEST(PriceCommandTest, NothingItStartedOutlivesIt) {
  // The program starts a background child that would hold a pipe open for 10 s; when the runner
  // returns, the pipe must be closed (its group was killed).
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string script = "sleep 10 >&" + std::to_string(fds[1]) + " & echo 5";
  Result<uint64_t> price = RunScript(script);
  ::close(fds[1]);
  ASSERT_TRUE(price.ok()) << price.status().ToString();
  pollfd readable{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&readable, 1, 3'000), 1);  // EOF: every writer is gone
  char byte;
  EXPECT_EQ(::read(fds[0], &byte, 1), 0);
  ::close(fds[0]);
}

TEST(PriceCommandTest, AProgramThatIgnoresItsInputDoesNotHangOrKillTheCaller) {
  // A request larger than a pipe's buffer, to a program that never reads it.
  const std::string request(1 << 20, 'x');
  Result<uint64_t> price = RunScript("echo 42", request);
  ASSERT_TRUE(price.ok()) << price.status().ToString();
  EXPECT_EQ(*price, 42u);
}

}  // namespace
}  // namespace gpumart::bidding
