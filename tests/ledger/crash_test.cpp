// Crash test: a child writes leases under load and is SIGKILLed at random points; after every
// kill the ledger must open, verify, and hold every lease the child was told was durable.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "ledger/verify.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/test_seed.h"

namespace gpumart::ledger {
namespace {

constexpr int kKills = 60;
constexpr int kKillsPerLedger = 3;    // a fresh ledger now and then keeps verify quick
constexpr int kMinRunMs = 0;
constexpr int kMaxRunMs = 80;
// Every kEarlyKillEvery-th kill is timed from the fork, so kills also land during start-up and
// recovery; the others are timed from the child's first acknowledgement, so a loaded machine
// (slow start-up) still kills most children while they write.
constexpr int kEarlyKillEvery = 6;
constexpr int kFirstAckTimeoutMs = 10'000;

struct ChildRun {
  std::vector<MessageId> acknowledged;
  int wait_status = 0;
};

// Starts the child on `ledger_dir`, kills it `run_ms` after the fork (from_first_ack false) or
// after its first acknowledgement, and returns what it acknowledged.
ChildRun RunAndKill(const std::string& ledger_dir, int run_ms, bool from_first_ack) {
  ChildRun run;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return run;
  }
  const std::string child_path = std::string(GPUMART_BIN_DIR) + "/ledger_crash_child";
  const pid_t child = fork();
  if (child == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    execl(child_path.c_str(), child_path.c_str(), ledger_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string bytes;
  char buffer[4096];
  if (from_first_ack) {
    pollfd readable{pipe_fds[0], POLLIN, 0};
    while (bytes.empty() && poll(&readable, 1, kFirstAckTimeoutMs) == 1) {
      const ssize_t got = read(pipe_fds[0], buffer, sizeof buffer);
      if (got <= 0) break;
      bytes.append(buffer, static_cast<size_t>(got));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(run_ms));
  kill(child, SIGKILL);
  // Everything the child wrote before it died is still in the pipe.
  for (;;) {
    const ssize_t got = read(pipe_fds[0], buffer, sizeof buffer);
    if (got <= 0) break;
    bytes.append(buffer, static_cast<size_t>(got));
  }
  close(pipe_fds[0]);
  waitpid(child, &run.wait_status, 0);
  for (size_t at = 0; at + market::kIdBytes <= bytes.size(); at += market::kIdBytes) {
    MessageId id{};
    std::memcpy(id.data(), bytes.data() + at, market::kIdBytes);
    run.acknowledged.push_back(id);
  }
  EXPECT_EQ(bytes.size() % market::kIdBytes, 0u) << "an acknowledgement was cut in half";
  return run;
}

TEST(LedgerCrashTest, EveryAcknowledgedLeaseSurvivesSigkill) {
  testing::TempDir dir;
  std::mt19937 random(gpumart::testing::TestSeed());
  std::uniform_int_distribution<int> run_ms(kMinRunMs, kMaxRunMs);
  size_t total_acknowledged = 0;
  size_t kills_with_writes = 0;
  for (int kill_number = 0; kill_number < kKills; ++kill_number) {
    const std::string ledger = dir.Sub("ledger-" + std::to_string(kill_number / kKillsPerLedger));
    const ChildRun run = RunAndKill(ledger, run_ms(random), kill_number % kEarlyKillEvery != 0);
    ASSERT_TRUE(WIFSIGNALED(run.wait_status) && WTERMSIG(run.wait_status) == SIGKILL)
        << "the child exited on its own (status " << run.wait_status << ") at kill " << kill_number;
    total_acknowledged += run.acknowledged.size();
    if (!run.acknowledged.empty()) ++kills_with_writes;

    auto store = LedgerStore::Open(ledger);
    ASSERT_TRUE(store.ok()) << "kill " << kill_number << ": " << store.status().ToString();
    const VerifyReport report = VerifyLedger(**store);
    ASSERT_TRUE(report.ok) << "kill " << kill_number << ": " << report.Describe();
    for (const auto& id : run.acknowledged) {
      ASSERT_TRUE((*store)->GetLease(id).ok()) << "kill " << kill_number << ": acknowledged lease "
                                               << market::ToHex(id) << " is missing";
    }
  }
  std::printf("crash test: %d kills, %zu with acknowledged writes, %zu leases acknowledged\n", kKills,
              kills_with_writes, total_acknowledged);
  EXPECT_GT(kills_with_writes, static_cast<size_t>(kKills / 2));
}

}  // namespace
}  // namespace gpumart::ledger
