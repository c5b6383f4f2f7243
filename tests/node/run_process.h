// Real child processes for end-to-end tests: ChildProcess starts an executable with its stdout
// and stderr on pipes (for daemons a test talks to while they run); RunProcess runs one to
// completion with a time limit (SIGKILL on expiry) and returns its output and exit status.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace gpumart::testing {

class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv, const std::string& stdin_text = "") {
    int out_pipe[2], err_pipe[2], in_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0 || pipe(in_pipe) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in_pipe[0], 0);
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
      for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], in_pipe[0], in_pipe[1]}) close(fd);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    close(in_pipe[0]);
    if (!stdin_text.empty()) {
      ssize_t ignored = write(in_pipe[1], stdin_text.data(), stdin_text.size());
      (void)ignored;
    }
    close(in_pipe[1]);
    fds_[0] = out_pipe[0];
    fds_[1] = err_pipe[0];
  }
  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads whatever stdout/stderr have for up to `timeout_ms`; false once both are closed.
  bool ReadSome(int timeout_ms) {
    pollfd fds[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
    if (fds_[0] < 0 && fds_[1] < 0) return false;
    if (poll(fds, 2, timeout_ms) <= 0) return true;
    char buffer[65536];
    for (int i = 0; i < 2; ++i) {
      if (fds_[i] < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds_[i], buffer, sizeof buffer);
      if (n <= 0) {
        close(fds_[i]);
        fds_[i] = -1;
      } else {
        (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
      }
    }
    return true;
  }
  // Reads until `text` appears on stdout or `timeout_ms` passes.
  bool WaitForOutput(const std::string& text, int timeout_ms = 20'000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out_.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      if (!ReadSome(50)) break;
    }
    return out_.find(text) != std::string::npos;
  }
  // Sends `signal` and waits; returns the exit status, or -1 when killed by a signal.
  int SignalAndWait(int signal) {
    kill(pid_, signal);
    return Wait();
  }
  int Wait() {
    while (ReadSome(50)) {
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  std::string out_;
  std::string err_;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed or not started
  bool timed_out = false;
  std::string out;
  std::string err;
};

inline ProcessResult RunProcess(const std::vector<std::string>& argv, int timeout_ms = 30'000,
                                const std::string& stdin_text = "") {
  ChildProcess child(argv, stdin_text);
  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      child.SignalAndWait(SIGKILL);
      break;
    }
    if (!child.ReadSome(static_cast<int>(left))) {
      result.exit_code = child.Wait();
      break;
    }
  }
  result.out = child.out();
  result.err = child.err();
  return result;
}

// The built gpumart CLI.
inline std::string GpumartBinary() { return std::string(GPUMART_BIN_DIR) + "/gpumart"; }

}  // namespace gpumart::testing
