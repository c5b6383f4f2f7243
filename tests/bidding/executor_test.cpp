// The lease executor on real processes (/bin/sh scripts standing in for a provider's deploy
// program), and its config section.
#include "bidding/executor.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "tests/temp_dir.h"

namespace gpumart::bidding {
namespace {

using Clock = std::chrono::steady_clock;

// A lease as node/json.h writes it (the fields a deploy script reads).
const char kLeaseJson[] =
    R"({"id":"9f3a","state":"active","provider":"ab","tenant":"cd","denom":"uakt","price_per_hour":1000,)"
    R"("services":[{"name":"vllm","option":0,"device":{"vendor":"nvidia","model":"h100","ram_bytes":85899345920,)"
    R"("interface":"sxm"},"placements":[{"node":"n1","replicas":1}]}]})";

ExecutorJob Job(LeaseEvent event = LeaseEvent::kStart, std::string lease_id = "9f3a") {
  return ExecutorJob{.lease_id = std::move(lease_id), .event = event, .lease_json = kLeaseJson};
}

// Collects outcomes as the executor's threads deliver them, like an actor's mailbox would.
class Outcomes {
 public:
  Executor::Done Sink() {
    return [this](ExecutorOutcome outcome) {
      std::lock_guard<std::mutex> lock(mutex_);
      outcomes_.push_back(std::move(outcome));
      arrived_.notify_all();
    };
  }
  // The first `count` outcomes, waiting at most `wait`.
  std::vector<ExecutorOutcome> Wait(size_t count, std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mutex_);
    arrived_.wait_for(lock, wait, [&] { return outcomes_.size() >= count; });
    return outcomes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<ExecutorOutcome> outcomes_;
};

ExecutorConfig Exec(const std::string& script, int64_t timeout_ms = 5'000, uint32_t max_concurrent = 2) {
  return ExecutorConfig{.kind = ExecutorKind::kExec,
                        .command = {"/bin/sh", "-c", script},
                        .timeout_ms = timeout_ms,
                        .max_concurrent = max_concurrent};
}

ExecutorOutcome RunOne(const ExecutorConfig& config, ExecutorJob job = Job()) {
  Outcomes outcomes;
  Executor executor(config, outcomes.Sink());
  EXPECT_TRUE(executor.Submit(std::move(job)).ok());
  std::vector<ExecutorOutcome> got = outcomes.Wait(1);
  EXPECT_EQ(got.size(), 1u);
  return got.empty() ? ExecutorOutcome{} : got.front();
}

TEST(ExecutorTest, TheScriptReadsTheLeaseAsJsonAndSucceeds) {
  testing::TempDir dir("gpumart-executor");
  const std::string seen = dir.Sub("stdin.json");
  // It checks the fields a deploy script needs, and keeps what it read.
  const std::string script = "input=$(cat); printf '%s\\n' \"$input\" > " + seen +
                             "; case \"$input\" in *'\"event\":\"start\"'*'\"id\":\"9f3a\"'*'\"model\":\"h100\"'*) "
                             "echo deployed; exit 0;; *) echo 'missing fields' >&2; exit 1;; esac";
  const ExecutorOutcome outcome = RunOne(Exec(script));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString() << " " << outcome.output_tail;
  EXPECT_FALSE(outcome.close_lease);
  EXPECT_EQ(outcome.lease_id, "9f3a");
  EXPECT_EQ(outcome.event, LeaseEvent::kStart);
  EXPECT_EQ(outcome.output_tail, "deployed\n");
  std::stringstream read;
  read << std::ifstream(seen).rdbuf();
  EXPECT_EQ(read.str(), ExecutorInput(Job()));
  EXPECT_EQ(ExecutorInput(Job(LeaseEvent::kStop)), std::string("{\"event\":\"stop\",\"lease\":") + kLeaseJson + "}\n");
}

TEST(ExecutorTest, AFailedStartClosesTheLeaseAFailedStopIsOnlyReported) {
  const ExecutorOutcome start = RunOne(Exec("cat >/dev/null; echo 'no nodes with h100' >&2; exit 3"));
  EXPECT_FALSE(start.status.ok());
  EXPECT_TRUE(start.close_lease);
  EXPECT_NE(start.status.message().find("exited with status 3"), std::string::npos) << start.status.ToString();
  EXPECT_NE(start.status.message().find("lease 9f3a start"), std::string::npos) << start.status.ToString();
  EXPECT_EQ(start.output_tail, "no nodes with h100\n");
  const ExecutorOutcome stop = RunOne(Exec("exit 1"), Job(LeaseEvent::kStop));
  EXPECT_FALSE(stop.status.ok());
  EXPECT_FALSE(stop.close_lease);
  const ExecutorOutcome killed = RunOne(Exec("kill -9 $$"));
  EXPECT_TRUE(killed.close_lease);
  EXPECT_NE(killed.status.message().find("signal 9"), std::string::npos) << killed.status.ToString();
  const ExecutorOutcome missing =
      RunOne({.kind = ExecutorKind::kExec, .command = {"/nonexistent/deploy"}, .timeout_ms = 1'000});
  EXPECT_TRUE(missing.close_lease);
  EXPECT_NE(missing.status.message().find("cannot run"), std::string::npos) << missing.status.ToString();
}

TEST(ExecutorTest, AHangingScriptIsKilledAtTheTimeoutWithEverythingItStarted) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // A child of the script holds our pipe; the script itself hangs.
  const std::string script = "sleep 30 >&" + std::to_string(fds[1]) + " 2>/dev/null & sleep 30";
  const auto start = Clock::now();
  const ExecutorOutcome outcome = RunOne(Exec(script, 200));
  ::close(fds[1]);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(outcome.status.code(), Status::Code::kTimeout) << outcome.status.ToString();
  EXPECT_TRUE(outcome.close_lease);
  pollfd readable{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&readable, 1, 3'000), 1);
  char byte;
  EXPECT_EQ(::read(fds[0], &byte, 1), 0);  // EOF: the group was killed
  ::close(fds[0]);
}

TEST(ExecutorTest, GarbageOutputIsKeptForTheLogAndEndlessOutputIsAFailure) {
  const ExecutorOutcome garbage = RunOne(Exec("head -c 10000 /dev/urandom; exit 0"));
  EXPECT_TRUE(garbage.status.ok()) << garbage.status.ToString();  // the exit status decides
  EXPECT_EQ(garbage.output_tail.size(), kExecutorOutputTailBytes);
  const ExecutorOutcome endless = RunOne(Exec("yes garbage"));
  EXPECT_EQ(endless.status.code(), Status::Code::kLimitExceeded) << endless.status.ToString();
  EXPECT_TRUE(endless.close_lease);
}

TEST(ExecutorTest, TheLogKindRunsNothing) {
  const ExecutorOutcome outcome = RunOne(ExecutorConfig{}, Job(LeaseEvent::kStop));
  EXPECT_TRUE(outcome.status.ok());
  EXPECT_EQ(outcome.kind, ExecutorKind::kLog);
  EXPECT_EQ(outcome.event, LeaseEvent::kStop);
  EXPECT_FALSE(outcome.close_lease);
}

TEST(ExecutorTest, SubmitNeverWaitsAndConcurrencyIsBounded) {
  testing::TempDir dir("gpumart-executor");
  const std::string log = dir.Sub("log");
  // Each run appends + on start and - on exit (O_APPEND: one byte each, never interleaved).
  Outcomes outcomes;
  {
    Executor executor(Exec("echo + >> " + log + "; sleep 0.1; echo - >> " + log, 5'000, 2), outcomes.Sink());
    const auto start = Clock::now();
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(executor.Submit(Job(LeaseEvent::kStart, std::to_string(i))).ok());
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(50));
    ASSERT_EQ(outcomes.Wait(6).size(), 6u);
  }
  for (const ExecutorOutcome& outcome : outcomes.Wait(6)) EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  std::ifstream in(log);
  int running = 0;
  int most = 0;
  int starts = 0;
  for (std::string line; std::getline(in, line);) {
    running += line == "+" ? 1 : -1;
    starts += line == "+";
    most = std::max(most, running);
  }
  EXPECT_EQ(starts, 6);
  EXPECT_EQ(most, 2);
}

TEST(ExecutorTest, AFullQueueRefusesAndStoppingKillsWhatRuns) {
  testing::TempDir dir("gpumart-executor");
  const std::string started = dir.Sub("started");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Outcomes outcomes;
  size_t accepted = 0;
  auto executor = std::make_unique<Executor>(
      Exec("sleep 30 >&" + std::to_string(fds[1]) + " 2>/dev/null & touch " + started + "; sleep 30", 60'000, 1),
      outcomes.Sink());
  Status refused;
  for (size_t i = 0; i < kMaxExecutorQueuedJobs + 2 && refused.ok(); ++i) {
    refused = executor->Submit(Job());
    if (refused.ok()) ++accepted;
  }
  EXPECT_EQ(refused.code(), Status::Code::kLimitExceeded) << refused.ToString();
  EXPECT_GE(accepted, kMaxExecutorQueuedJobs);
  EXPECT_LE(accepted, kMaxExecutorQueuedJobs + 1);  // the worker took the first one, or not yet
  for (int i = 0; i < 300 && !std::filesystem::exists(started); ++i) ::poll(nullptr, 0, 10);
  ASSERT_TRUE(std::filesystem::exists(started));  // the first job runs, its child holds our pipe
  ::close(fds[1]);
  const auto start = Clock::now();
  executor.reset();  // the running script is killed, the queued jobs dropped
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(outcomes.Wait(0).empty());
  pollfd readable{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&readable, 1, 3'000), 1);
  char byte;
  EXPECT_EQ(::read(fds[0], &byte, 1), 0);
  ::close(fds[0]);
}

// The config section.
Result<ExecutorConfig> Parse(const std::string& yaml) {
  Result<market::YamlTree> tree = market::YamlTree::Parse(yaml, {.max_nodes = 1000, .max_depth = 16});
  if (!tree.ok()) return tree.status();
  return ParseExecutorConfig(tree->Root().Find("executor"));
}

TEST(ExecutorConfigTest, ReadsExecAndLog) {
  Result<ExecutorConfig> exec = Parse(
      "executor:\n  kind: exec\n  command: [/usr/local/bin/deploy-lease, --namespace, gpumart]\n"
      "  timeout_ms: 90000\n  max_concurrent: 8\n");
  ASSERT_TRUE(exec.ok()) << exec.status().ToString();
  EXPECT_EQ(*exec, (ExecutorConfig{.kind = ExecutorKind::kExec,
                                   .command = {"/usr/local/bin/deploy-lease", "--namespace", "gpumart"},
                                   .timeout_ms = 90'000,
                                   .max_concurrent = 8}));
  EXPECT_EQ(*Parse("executor:\n  kind: log\n"), ExecutorConfig{});
  EXPECT_EQ(*Parse("other: 1\n"), ExecutorConfig{});  // absent: log
  Result<ExecutorConfig> defaults = Parse("executor:\n  kind: exec\n  command: [deploy]\n");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->timeout_ms, kDefaultExecutorTimeoutMs);
  EXPECT_EQ(defaults->max_concurrent, kDefaultExecutorConcurrency);
}

TEST(ExecutorConfigTest, ErrorsNameTheKeyAndLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"executor: exec\n", "executor must be a mapping at line 1"},
      {"executor:\n  command: [x]\n", "executor needs kind: exec or log at line 2"},
      {"executor:\n  kind: k8s\n", "executor kind 'k8s' is not exec or log at line 2"},
      {"executor:\n  kind: exec\n  comand: [x]\n", "executor has unknown key 'comand'"},
      {"executor:\n  kind: exec\n  comand: [x]\n", "at line 3"},
      {"executor:\n  kind: log\n  command: [x]\n", "executor command applies only to kind exec at line 3"},
      {"executor:\n  kind: exec\n", "executor kind exec needs a command"},
      {"executor:\n  kind: exec\n  command: deploy.sh\n", "executor command must be a list"},
      {"executor:\n  kind: exec\n  command: [x]\n  timeout_ms: 0\n", "executor timeout_ms must be in 1..3600000 at line 4"},
      {"executor:\n  kind: exec\n  command: [x]\n  timeout_ms: soon\n", "executor timeout_ms must be a whole number at line 4"},
      {"executor:\n  kind: exec\n  command: [x]\n  max_concurrent: 65\n", "executor max_concurrent must be in 1..64"},
      {"executor:\n  kind: exec\n  command: [x]\n  command: [y]\n", "executor command is given twice at line 4"},
  };
  for (const auto& [yaml, expected] : cases) {
    Result<ExecutorConfig> parsed = Parse(yaml);
    ASSERT_FALSE(parsed.ok()) << yaml;
    EXPECT_EQ(parsed.status().code(), Status::Code::kInvalidArgument) << yaml;
    EXPECT_NE(parsed.status().message().find(expected), std::string::npos) << yaml << " -> " << parsed.status().message();
  }
}

}  // namespace
}  // namespace gpumart::bidding

namespace gpumart::bidding {
namespace {

// The device plugin resource each kind of device is requested as (docs/EXECUTOR.md).
TEST(KubernetesGpuResourceTest, EachDeviceKindHasItsOwnResource) {
  market::DeviceType device{"nvidia", "h100", 80 * market::kGi, market::GpuInterface::kSxm};
  EXPECT_EQ(KubernetesGpuResource(device), "nvidia.com/gpu");
  device.shared = true;
  EXPECT_EQ(KubernetesGpuResource(device), "nvidia.com/gpu.shared");
  device = {"nvidia", "h100", 10 * market::kGi, market::GpuInterface::kSxm, "1g.10gb", false};
  EXPECT_EQ(KubernetesGpuResource(device), "nvidia.com/mig-1g.10gb");
}

}  // namespace
}  // namespace gpumart::bidding
