// The lease executor: what a provider runs when one of its leases starts or stops, to hand the
// work to its cluster (docs/EXECUTOR.md). Two kinds:
//
//   log   runs nothing; each event comes back as an outcome for the daemon to log.
//   exec  runs the configured command (no shell) with the event as JSON on its stdin:
//           {"event": "start" | "stop", "lease": <the lease, docs/JSON.md's lease shape>}
//         Exit status 0 is success. A start that fails (a non-zero exit, a signal, the timeout,
//         a program that cannot run or prints more than kMaxExecutorOutputBytes) means the
//         provider cannot serve the lease: the outcome says close_lease, and the caller closes
//         it with reason provider-failure, which frees its capacity. A failed stop is only
//         reported (the lease is closed already).
//
// The lease's JSON comes from the caller (node/json.h writes the one lease shape; bidding/ sits
// below node/ and cannot), so this file only frames it.
//
// Running a program takes up to the timeout, so it never happens on the caller's thread: Submit
// queues the job and returns at once; max_concurrent threads of the executor's own run the jobs
// (bidding/run_program.h: own process group, killed with everything it started, never past the
// timeout) and hand each outcome to the `done` callback. The queue is bounded: a full queue
// refuses the job (kLimitExceeded), which the caller treats as a failed run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "market/status.h"
#include "market/types.h"
#include "market/yaml_tree.h"

namespace gpumart::bidding {

enum class ExecutorKind : uint8_t { kLog = 0, kExec = 1 };
std::string_view ToString(ExecutorKind kind);
std::optional<ExecutorKind> ParseExecutorKind(std::string_view text);  // "log" | "exec"

// Bounds on the configuration and on one run.
constexpr int64_t kDefaultExecutorTimeoutMs = 120'000;   // a `kubectl apply` and a rollout wait
constexpr int64_t kMaxExecutorTimeoutMs = 3'600'000;
constexpr uint32_t kDefaultExecutorConcurrency = 4;
constexpr uint32_t kMaxExecutorConcurrency = 64;
constexpr size_t kMaxExecutorQueuedJobs = 4096;          // waiting to run, over all leases
constexpr size_t kMaxExecutorOutputBytes = 256 * 1024;   // what one run may print
constexpr size_t kExecutorOutputTailBytes = 4096;        // of it, kept in the outcome for the log

struct ExecutorConfig {
  ExecutorKind kind = ExecutorKind::kLog;
  std::vector<std::string> command;  // exec: the program and its arguments
  int64_t timeout_ms = kDefaultExecutorTimeoutMs;
  uint32_t max_concurrent = kDefaultExecutorConcurrency;
  bool operator==(const ExecutorConfig&) const = default;
};

// Ok, or kInvalidArgument naming the problem: exec without a command, log with one, a timeout
// outside (0, kMaxExecutorTimeoutMs], a concurrency outside [1, kMaxExecutorConcurrency].
Status ValidateExecutorConfig(const ExecutorConfig& config);

// A provider config's `executor:` mapping: `kind` (exec | log), for exec `command` (a sequence:
// argv), `timeout_ms`, `max_concurrent`. An undefined or null node is the log executor. Errors
// name `key`, the offending field and its line: an unknown or repeated key, a key of the other
// kind, a value that is not what it must be; then ValidateExecutorConfig.
Result<ExecutorConfig> ParseExecutorConfig(const market::YamlNode& node, const std::string& key = "executor");

// The Kubernetes extended resource that gives a pod one `device` (docs/EXECUTOR.md, "GPU
// resources"): `nvidia.com/mig-<profile>` for a MIG instance (the NVIDIA device plugin's `mixed`
// MIG strategy), `nvidia.com/gpu.shared` for a time-slice replica (time-slicing with
// `renameByDefault: true`, so a pod asking for a whole `nvidia.com/gpu` can never be handed a
// shared one: the same line the market draws between the two device types), `nvidia.com/gpu`
// for a whole GPU.
std::string KubernetesGpuResource(const market::DeviceType& device);

enum class LeaseEvent : uint8_t { kStart = 0, kStop = 1 };
std::string_view ToString(LeaseEvent event);  // "start" | "stop"

struct ExecutorJob {
  std::string lease_id;    // lower-case hex, as the logs and `gpumart leases` print it
  LeaseEvent event = LeaseEvent::kStart;
  std::string lease_json;  // the lease as node/json.h writes it: one JSON object
};

// The stdin document of an exec run: {"event":"start","lease":<lease_json>}.
std::string ExecutorInput(const ExecutorJob& job);

struct ExecutorOutcome {
  std::string lease_id;
  LeaseEvent event = LeaseEvent::kStart;
  ExecutorKind kind = ExecutorKind::kLog;
  Status status;            // ok, or what failed, naming the program
  std::string output_tail;  // the last kExecutorOutputTailBytes it printed (stdout and stderr)
  int64_t took_ms = 0;
  // The lease must be closed with reason provider-failure, freeing its capacity: a start that
  // failed. The caller does it.
  bool close_lease = false;
};

// Runs jobs as described in the file comment. Thread-safe Submit; the destructor stops taking
// jobs, kills running programs (their groups), drops queued jobs without calling `done` for
// them, and returns within about kRunProgramCancelCheckMs.
class Executor {
 public:
  // `done` runs on one of the executor's threads, once per accepted job: it must only hand the
  // outcome to its owner (post it to the actor's mailbox) and must not call back into the
  // Executor. `config` must pass ValidateExecutorConfig.
  using Done = std::function<void(ExecutorOutcome)>;
  Executor(ExecutorConfig config, Done done);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `job`; never blocks on a running program. kLimitExceeded when kMaxExecutorQueuedJobs
  // wait already; kFailedPrecondition once stopping.
  Status Submit(ExecutorJob job);

  const ExecutorConfig& config() const { return config_; }

 private:
  void Work();
  ExecutorOutcome Run(const ExecutorJob& job) const;

  const ExecutorConfig config_;
  const Done done_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<ExecutorJob> queue_;  // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace gpumart::bidding
