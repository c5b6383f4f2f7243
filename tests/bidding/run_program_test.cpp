// The one process runner, on real processes (/bin/sh scripts).
#include "bidding/run_program.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

namespace gpumart::bidding {
namespace {

Result<ProgramOutput> Sh(const std::string& script, RunOptions options = {}) {
  if (options.timeout_ms == RunOptions{}.timeout_ms) options.timeout_ms = 5'000;
  return RunProgram({"/bin/sh", "-c", script}, options);
}

TEST(RunProgramTest, CapturesOutputAndExitStatus) {
  Result<ProgramOutput> out = Sh("echo out; echo err >&2; exit 3", {.max_output = 1024});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->output, "out\nerr\n");
  EXPECT_EQ(out->exit_status, 3);
  EXPECT_FALSE(out->Succeeded());
  EXPECT_EQ(out->Describe(), "exited with status 3");
  EXPECT_EQ(RunProgram({"/nonexistent/nvidia-smi"}, {.timeout_ms = 1000}).status().message(),
            "/nonexistent/nvidia-smi: cannot run (No such file or directory)");
  EXPECT_EQ(RunProgram({}, {}).status().code(), Status::Code::kInvalidArgument);
}

TEST(RunProgramTest, StderrStaysTheCallersUnlessCaptured) {
  Result<ProgramOutput> out = Sh("echo out; echo err >&2", {.capture_stderr = false});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->output, "out\n");
  EXPECT_TRUE(out->Succeeded());
}

TEST(RunProgramTest, ASignalIsReportedAsOne) {
  Result<ProgramOutput> out = Sh("kill -9 $$");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->signal, SIGKILL);
  EXPECT_EQ(out->exit_status, -1);
  EXPECT_EQ(out->Describe(), "died of signal 9");
}

TEST(RunProgramTest, TheInputReachesItsStdin) {
  const std::string input(300'000, 'x');  // larger than a pipe's buffer
  Result<ProgramOutput> out = Sh("wc -c | tr -d ' '", {.input = input});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->output, "300000\n");
  // A program that never reads its input neither hangs nor kills the caller (SIGPIPE).
  Result<ProgramOutput> ignoring = Sh("echo 42", {.input = std::string(1 << 20, 'x')});
  ASSERT_TRUE(ignoring.ok()) << ignoring.status().ToString();
  EXPECT_EQ(ignoring->output, "42\n");
}

TEST(RunProgramTest, NeverWaitsPastTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  Result<ProgramOutput> slow = Sh("echo partial; sleep 30", {.timeout_ms = 200});
  EXPECT_EQ(slow.status().code(), Status::Code::kTimeout) << slow.status().ToString();
  // A program that closes its output and keeps running, and one whose child holds the output.
  EXPECT_EQ(Sh("exec >&- 2>&-; sleep 30", {.timeout_ms = 200}).status().code(), Status::Code::kTimeout);
  EXPECT_EQ(Sh("sleep 30 & exit 0", {.timeout_ms = 200}).status().code(), Status::Code::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(Sh("while :; do echo yyyyyyyy; done", {.max_output = 4096}).status().code(),
            Status::Code::kLimitExceeded);
}

TEST(RunProgramTest, NothingItStartedOutlivesIt) {
  // A background child holds a pipe of ours; once the runner returns the pipe must be at EOF
  // (the group was killed), on success and on timeout alike.
  for (const std::string tail : {"echo done", "sleep 30"}) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const std::string script = "sleep 30 >&" + std::to_string(fds[1]) + " 2>/dev/null & " + tail;
    Result<ProgramOutput> out = Sh(script, {.timeout_ms = 300});
    ::close(fds[1]);
    EXPECT_EQ(out.ok(), tail == "echo done") << out.status().ToString();
    pollfd readable{fds[0], POLLIN, 0};
    ASSERT_EQ(::poll(&readable, 1, 3'000), 1) << tail;
    char byte;
    EXPECT_EQ(::read(fds[0], &byte, 1), 0) << tail;
    ::close(fds[0]);
  }
}

TEST(RunProgramTest, TheProgramGetsAFreshSignalState) {
  // The daemon blocks SIGTERM for its own handling; the program must still die of it.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  Result<ProgramOutput> out = Sh("kill -TERM $$; sleep 5; echo survived");
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->signal, SIGTERM) << out->output;
}

}  // namespace
}  // namespace gpumart::bidding
