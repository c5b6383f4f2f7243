#include "bidding/price_command.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "bidding/pricing.h"

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
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status Errno(const std::string& what) { return Status::IoError(what + ": " + std::strerror(errno)); }

// Blocks SIGPIPE in this thread while writing to a child that may have exited, and discards one
// that was raised meanwhile, so a program that ignores its stdin cannot kill the daemon.
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

 private:
  sigset_t pipe_;
  sigset_t old_;
};

}  // namespace

Result<uint64_t> RunPriceCommand(const std::vector<std::string>& argv, std::string_view input, int64_t timeout_ms) {
  if (argv.empty()) return Status::InvalidArgument("price command is empty");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int to_child[2];
  int from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0) return Errno("pipe");
  Fd child_in(to_child[0]), write_end(to_child[1]);
  if (::pipe2(from_child, O_CLOEXEC) != 0) return Errno("pipe");
  Fd read_end(from_child[0]), child_out(from_child[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_in.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, child_out.get(), STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  // Its own process group, so a timeout kills whatever it started too (a script's `sleep` would
  // otherwise outlive it, holding our caller's stderr open).
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return Status::IoError("cannot run price command " + argv[0] + ": " + std::strerror(spawned));
  child_in.Close();
  child_out.Close();
  ::fcntl(write_end.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);

  std::string output;
  Status failure;
  {
    SigpipeBlocked sigpipe_blocked;
    size_t written = 0;
    if (input.empty()) write_end.Close();
    bool eof = false;
    while (!eof) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        failure = Status::Timeout("price command " + argv[0] + " did not answer in " + std::to_string(timeout_ms) + " ms");
        break;
      }
      pollfd fds[2] = {{read_end.get(), POLLIN, 0}, {write_end.get(), POLLOUT, 0}};
      const int ready = ::poll(fds, write_end.get() >= 0 ? 2 : 1, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR) {
        failure = Errno("poll");
        break;
      }
      if (write_end.get() >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const ssize_t n = ::write(write_end.get(), input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) write_end.Close();
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buffer[256];
        const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
        if (n == 0) eof = true;
        if (n > 0) output.append(buffer, static_cast<size_t>(n));
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          failure = Errno("read");
          break;
        }
        if (output.size() > kMaxPriceAnswerBytes) {
          failure = Status::InvalidArgument("price command " + argv[0] + " printed more than " +
                                            std::to_string(kMaxPriceAnswerBytes) + " bytes");
          break;
        }
      }
    }
    write_end.Close();
  }
  read_end.Close();

  // Reap it: by the deadline, or killed.
  if (!failure.ok()) ::kill(-pid, SIGKILL);
  int wstatus = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &wstatus, failure.ok() ? WNOHANG : 0);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return Errno("waitpid");
    if (!failure.ok()) continue;
    if (std::chrono::steady_clock::now() >= deadline) {
      failure = Status::Timeout("price command " + argv[0] + " did not exit in " + std::to_string(timeout_ms) + " ms");
      ::kill(-pid, SIGKILL);
      continue;
    }
    ::usleep(1000);  // it closed its stdout and is exiting
  }
  ::kill(-pid, SIGKILL);  // anything it left running in its group (none, usually: ESRCH)
  if (!failure.ok()) return failure;
  if (WIFSIGNALED(wstatus)) {
    return Status::InvalidArgument("price command " + argv[0] + " died of signal " + std::to_string(WTERMSIG(wstatus)));
  }
  if (WEXITSTATUS(wstatus) != 0) {
    return Status::InvalidArgument("price command " + argv[0] + " exited with status " +
                                   std::to_string(WEXITSTATUS(wstatus)));
  }
  Result<uint64_t> price = ParsePriceAnswer(output);
  if (!price.ok()) return price.status().WithContext("price command " + argv[0]);
  return price;
}

}  // namespace gpumart::bidding
