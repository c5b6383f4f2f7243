#include "bidding/run_program.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "market/boundary.h"

extern char** environ;

namespace gpumart::bidding {
namespace {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  ~SpawnSetup() {
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
};

// Blocks SIGPIPE in this thread while writing to a program that may have exited, and discards one
// raised meanwhile, so a program that ignores its stdin cannot kill the daemon.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
};

using Clock = std::chrono::steady_clock;

int64_t MsLeft(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

bool Cancelled(const RunOptions& options) {
  return options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed);
}
Status CancelledStatus(const std::string& name) { return Status::Unavailable(name + ": cancelled (killed)"); }
int64_t PollSliceMs(const RunOptions& options) { return options.cancel != nullptr ? kRunProgramCancelCheckMs : 1000; }

// Kills the program's process group (and the program, should it have left the group) and reaps it.
void KillAndReap(pid_t pid) {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

Result<ProgramOutput> Run(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) return Status::InvalidArgument("no program to run");
  const std::string& name = argv[0];
  const auto errno_status = [&name](const char* what) {
    return Status::IoError(name + ": " + what + ": " + std::strerror(errno));
  };
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(std::max<int64_t>(options.timeout_ms, 0));

  int to_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0) return errno_status("pipe");
  Fd child_in(to_child[0]), write_end(to_child[1]);
  int from_child[2];
  if (::pipe2(from_child, O_CLOEXEC) != 0) return errno_status("pipe");
  Fd read_end(from_child[0]), child_out(from_child[1]);

  SpawnSetup setup;
  posix_spawn_file_actions_adddup2(&setup.actions, child_in.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, child_out.get(), STDOUT_FILENO);
  if (options.capture_stderr) posix_spawn_file_actions_adddup2(&setup.actions, child_out.get(), STDERR_FILENO);
  // Its own process group, so killing the group kills whatever it started too; and the signal
  // state of a fresh program, not the daemon's (which blocks or ignores some for its own use).
  posix_spawnattr_setpgroup(&setup.attributes, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signal : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD}) sigaddset(&defaults, signal);
  posix_spawnattr_setsigdefault(&setup.attributes, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&setup.attributes, &none);
  posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, args[0], &setup.actions, &setup.attributes, args.data(), environ);
  if (spawned != 0) return Status::IoError(name + ": cannot run (" + std::strerror(spawned) + ")");
  child_in.Close();
  child_out.Close();
  ::fcntl(write_end.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);

  ProgramOutput result;
  Status failure;
  {
    SigpipeBlocked sigpipe_blocked;
    size_t written = 0;
    if (options.input.empty()) write_end.Close();
    while (read_end.open()) {
      const int64_t left = MsLeft(deadline);
      if (left <= 0) {
        failure = Status::Timeout(name + ": no result within " + std::to_string(options.timeout_ms) + " ms (killed)");
        break;
      }
      if (Cancelled(options)) {
        failure = CancelledStatus(name);
        break;
      }
      pollfd fds[2] = {{read_end.get(), POLLIN, 0}, {write_end.get(), POLLOUT, 0}};
      const int ready = ::poll(fds, write_end.open() ? 2 : 1, static_cast<int>(std::min<int64_t>(left, PollSliceMs(options))));
      if (ready < 0 && errno != EINTR) {
        failure = errno_status("poll");
        break;
      }
      if (ready <= 0) continue;
      if (write_end.open() && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const ssize_t n = ::write(write_end.get(), options.input.data() + written, options.input.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        // A program that stopped reading (EPIPE) gets no more; that is its business.
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == options.input.size()) write_end.Close();
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buffer[4096];
        const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
        if (n == 0) {
          read_end.Close();
        } else if (n > 0) {
          if (result.output.size() + static_cast<size_t>(n) > options.max_output) {
            failure = Status::LimitExceeded(name + ": printed more than " + std::to_string(options.max_output) +
                                            " bytes (killed)");
            break;
          }
          result.output.append(buffer, static_cast<size_t>(n));
        } else if (errno != EAGAIN && errno != EINTR) {
          failure = errno_status("read");
          break;
        }
      }
    }
    write_end.Close();
  }
  read_end.Close();
  if (!failure.ok()) {
    KillAndReap(pid);
    return failure;
  }
  // Its output is closed; it should exit now, but it gets no longer than the deadline.
  while (true) {
    int wait_status = 0;
    const pid_t done = ::waitpid(pid, &wait_status, WNOHANG);
    if (done == pid) {
      if (WIFSIGNALED(wait_status)) {
        result.signal = WTERMSIG(wait_status);
      } else {
        result.exit_status = WEXITSTATUS(wait_status);
      }
      ::kill(-pid, SIGKILL);  // anything it left running in its group (usually none: ESRCH)
      return result;
    }
    if (done < 0 && errno != EINTR) {
      KillAndReap(pid);
      return errno_status("waitpid");
    }
    if (MsLeft(deadline) <= 0) {
      KillAndReap(pid);
      return Status::Timeout(name + ": did not exit within " + std::to_string(options.timeout_ms) + " ms (killed)");
    }
    if (Cancelled(options)) {
      KillAndReap(pid);
      return CancelledStatus(name);
    }
    ::poll(nullptr, 0, 2);
  }
}

}  // namespace

std::string ProgramOutput::Describe() const {
  if (signal != 0) return "died of signal " + std::to_string(signal);
  return "exited with status " + std::to_string(exit_status);
}

Result<ProgramOutput> RunProgram(const std::vector<std::string>& argv, const RunOptions& options) {
  return CatchAll(argv.empty() ? "program" : argv[0], [&] { return Run(argv, options); });
}

}  // namespace gpumart::bidding
