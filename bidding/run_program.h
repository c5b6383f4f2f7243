// Runs an external program for the provider: the one process runner behind nvidia-smi
// detection (bidding/nvidia_smi.h), the `command` pricing policy (bidding/price_command.h) and
// the lease executor (bidding/executor.h).
//
// What every caller relies on: no shell (argv[0] is found on PATH when it has no '/'); the
// program runs in its own process group with default signal dispositions and an empty signal
// mask, whatever the calling thread had; its stdin is `input` (then end of file), and a program
// that never reads it cannot block or kill the caller (SIGPIPE is kept away from the caller);
// the call never waits longer than the timeout plus the time to reap a killed program; and when
// it returns the program's whole process group has been killed, so nothing it started outlives
// it (a script's background `sleep` would otherwise hold pipes open and linger).
//
// It blocks the calling thread for up to the timeout: actors never call it themselves, they hand
// it to a thread of their own (bidding/executor.h's Executor) or to a driver.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"

namespace gpumart::bidding {

struct RunOptions {
  std::string_view input;        // written to the program's stdin, then closed
  int64_t timeout_ms = 10'000;   // from the start to the program's exit
  size_t max_output = 1 << 20;   // bytes of output kept; more kills the program
  // true: stderr goes into the output with stdout (nvidia-smi's errors are its answer); false:
  // the program's stderr is the caller's (a pricing script's diagnostics go to the daemon's log).
  bool capture_stderr = true;
  // When set and it becomes true, the program is killed (with its group) within
  // kRunProgramCancelCheckMs and the call returns kUnavailable: an owner shutting down does not
  // wait out a slow program.
  const std::atomic<bool>* cancel = nullptr;
};
constexpr int64_t kRunProgramCancelCheckMs = 50;

// What a program printed and how it ended.
struct ProgramOutput {
  std::string output;
  int exit_status = -1;   // the exit status, or -1 when it died of a signal
  int signal = 0;         // the signal it died of, or 0
  bool Succeeded() const { return exit_status == 0; }
  // "exited with status 3" / "died of signal 9"
  std::string Describe() const;
};

// Runs `argv` as described above. Errors, each naming argv[0]: kInvalidArgument for an empty
// argv; kIoError when it cannot be started ("<name>: cannot run (<reason>)"); kTimeout when it
// has not exited (or still holds its output open) at the timeout; kLimitExceeded when it printed
// more than max_output bytes; kUnavailable when cancelled. A program that ran and exited, with any status, is a value.
Result<ProgramOutput> RunProgram(const std::vector<std::string>& argv, const RunOptions& options);

}  // namespace gpumart::bidding
