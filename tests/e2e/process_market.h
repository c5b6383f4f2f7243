// A market of real gpumartd processes on loopback, for the end-to-end tests (tests/e2e/) and
// bench_e2e: a relay and providers started from config files (the shipped ones in configs/demo/
// or written by the caller), each with its own data dir, gossip on a `*` port and the relay's
// printed peer address appended as its bootstrap; waits are bounded polls of what the daemons
// print. Every process is killed (SIGKILL) and reaped when its owner goes, and dies with the
// process that started it (PR_SET_PDEATHSIG), so a crashed or killed test leaves none behind.
//
// A daemon's stdout and stderr go to files in the market's directory, not pipes: a daemon is
// never blocked on a full pipe nobody reads (a benchmark runs them for minutes), and the logs are
// there for a failure message. No GoogleTest here: the benchmark uses it too.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "market/status.h"
#include "tests/eventually.h"

namespace gpumart::e2e {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One child process whose stdout and stderr go to `<log_prefix>.out` and `<log_prefix>.err`.
// Start it from a thread that outlives it: the child gets SIGKILL when that thread ends.
class Process {
 public:
  // `environment`: NAME=VALUE entries added to (or replacing) this process's own.
  static Result<std::unique_ptr<Process>> Start(const std::vector<std::string>& argv, const std::string& log_prefix,
                                                const std::vector<std::string>& environment = {}) {
    auto process = std::unique_ptr<Process>(new Process(log_prefix));
    // Everything the child needs is made before fork: after it, a multi-threaded parent's child
    // may only make async-signal-safe calls.
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<char*> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string_view text(*entry);
      const bool replaced = std::any_of(environment.begin(), environment.end(), [&](const std::string& added) {
        return text.substr(0, text.find('=') + 1) == std::string_view(added).substr(0, added.find('=') + 1);
      });
      if (!replaced) env.push_back(*entry);
    }
    for (const std::string& added : environment) env.push_back(const_cast<char*>(added.c_str()));
    env.push_back(nullptr);
    const int out = open(process->out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err = open(process->err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || err < 0 || null < 0) {
      for (int fd : {out, err, null}) {
        if (fd >= 0) close(fd);
      }
      return Status::IoError("cannot open the log files " + log_prefix + ".out/.err");
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      dup2(null, 0);
      dup2(out, 1);
      dup2(err, 2);
      execve(args[0], args.data(), env.data());
      _exit(127);
    }
    for (int fd : {out, err, null}) close(fd);
    if (pid < 0) return Status::IoError("fork failed for " + argv[0]);
    process->pid_ = pid;
    return process;
  }

  ~Process() { Kill(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  std::string out() const { return ReadWholeFile(out_path_); }
  std::string err() const { return ReadWholeFile(err_path_); }
  bool OutputHas(std::string_view text) const { return out().find(text) != std::string::npos; }
  // Waits until `text` is on its stdout (false on timeout, or when it exited without it).
  bool WaitForOutput(std::string_view text, milliseconds timeout) {
    return testing::Eventually([&] { return OutputHas(text) || !Alive(); }, timeout) && OutputHas(text);
  }
  bool Signal(int signal_number) const { return pid_ > 0 && kill(pid_, signal_number) == 0; }
  // Whether it still runs (reaps it if it ended; the exit status is kept).
  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      Reaped(status);
      return false;
    }
    return true;
  }
  // SIGTERM, then waits up to `timeout` for it to exit (SIGKILL after); its exit status, or -1
  // when a signal ended it.
  int Terminate(milliseconds timeout) {
    Signal(SIGCONT);  // a stopped process cannot handle SIGTERM
    Signal(SIGTERM);
    if (!testing::Eventually([&] { return !Alive(); }, timeout)) Kill();
    return exit_code_;
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) Reaped(status);
    pid_ = -1;
  }
  int exit_code() const { return exit_code_; }

 private:
  explicit Process(const std::string& log_prefix) : out_path_(log_prefix + ".out"), err_path_(log_prefix + ".err") {}
  void Reaped(int status) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    pid_ = -1;
  }

  const std::string out_path_;
  const std::string err_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// A gpumartd of the market: its process, data dir and what it printed about itself.
struct Node {
  std::string name;
  std::string config_path;
  std::string data_dir;
  std::string peer_address;  // "tcp://127.0.0.1:PORT/<key hex>", from "gossip listening on"
  std::string key_hex;       // its identity, from "gpumartd ready: node <key>"
  std::string client_address;  // "tcp://127.0.0.1:PORT", from "client port listening on"
  std::unique_ptr<Process> process;

  std::string out() const { return process ? process->out() : ""; }
  std::string Logs() const {
    return "---- " + name + " stdout\n" + (process ? process->out() : "") + "---- " + name + " stderr\n" +
           (process ? process->err() : "");
  }
};

// The text after `marker` on its line in `out`; empty when absent.
inline std::string LineAfter(const std::string& out, std::string_view marker) {
  const size_t at = out.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return out.substr(start, out.find('\n', start) - start);
}

class ProcessMarket {
 public:
  // `dir` holds every node's config, data dir and logs; `bin_dir` has gpumartd.
  ProcessMarket(std::string dir, std::string bin_dir) : dir_(std::move(dir)), bin_dir_(std::move(bin_dir)) {}
  ~ProcessMarket() {
    for (auto& node : nodes_) {
      if (node->process) node->process->Kill();
    }
  }
  ProcessMarket(const ProcessMarket&) = delete;
  ProcessMarket& operator=(const ProcessMarket&) = delete;

  const std::string& dir() const { return dir_; }
  // NAME=VALUE entries for the environment of each node started from now on, by node name.
  void SetNodeEnvironment(std::function<std::vector<std::string>(const std::string& name)> environment) {
    environment_ = std::move(environment);
  }
  const std::string& bin_dir() const { return bin_dir_; }

  // Starts a relay from `config_file` plus `extra` YAML lines and waits until it is ready.
  Result<Node*> StartRelay(const std::string& config_file, const std::string& extra = "",
                           milliseconds timeout = milliseconds(10'000)) {
    Result<Node*> relay = StartNode("relay", ReadWholeFile(config_file) + "\n" + extra, timeout);
    if (relay.ok()) relay_ = *relay;
    return relay;
  }
  // Starts a node from `config_file` plus `extra` YAML lines, bootstrapped to the relay (started
  // first), and waits until it is ready (not until linked: see WaitLinked).
  Result<Node*> StartPeer(const std::string& name, const std::string& config_file, const std::string& extra = "",
                          milliseconds timeout = milliseconds(10'000)) {
    return StartPeerFromText(name, ReadWholeFile(config_file) + "\n" + extra, timeout);
  }
  Result<Node*> StartPeerFromText(const std::string& name, const std::string& config_text,
                                  milliseconds timeout = milliseconds(10'000)) {
    if (relay_ == nullptr) return Status::FailedPrecondition("start the relay first");
    return StartNode(name, config_text + "\nbootstrap: [\"" + relay_->peer_address + "\"]\n", timeout);
  }

  // Waits until every node started has a gossip link (prints "gossip peers N" with N >= 1) and
  // the relay's offer book holds `offers` offers.
  Status WaitLinked(size_t offers, milliseconds timeout = milliseconds(10'000)) {
    const auto deadline = Clock::now() + timeout;
    for (auto& node : nodes_) {
      if (!node->process || !node->process->running()) continue;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (!testing::Eventually([&] { return HasPeers(node->process->out()); }, std::max(left, milliseconds(0)))) {
        return Status::Timeout(node->name + " has no gossip peer");
      }
    }
    if (offers > 0 && relay_ != nullptr) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      const std::string line = "offer book " + std::to_string(offers) + " offers\n";
      if (!relay_->process->WaitForOutput(line, std::max(left, milliseconds(0)))) {
        return Status::Timeout("the relay's offer book never held " + std::to_string(offers) + " offers");
      }
    }
    return Status::Ok();
  }

  Node* relay() const { return relay_; }
  Node* node(const std::string& name) const {
    for (const auto& node : nodes_) {
      if (node->name == name) return node.get();
    }
    return nullptr;
  }
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }

  // Every node's stdout and stderr, for a failure message.
  std::string Logs() const {
    std::string logs;
    for (const auto& node : nodes_) logs += node->Logs();
    return logs;
  }

 private:
  static bool HasPeers(const std::string& out) {
    // "gossip peers N" is printed on every change; the last one counts.
    const size_t at = out.rfind("gossip peers ");
    return at != std::string::npos && out.compare(at, 15, "gossip peers 0\n") != 0;
  }

  Result<Node*> StartNode(const std::string& name, const std::string& config_text, milliseconds timeout) {
    if (node(name) != nullptr) return Status::AlreadyExists("a node named " + name);
    auto node = std::make_unique<Node>();
    node->name = name;
    node->config_path = dir_ + "/" + name + ".yaml";
    node->data_dir = dir_ + "/" + name;
    std::ofstream(node->config_path) << config_text;
    Result<std::unique_ptr<Process>> process = Process::Start(
        {bin_dir_ + "/gpumartd", "--config", node->config_path, "--data-dir", node->data_dir}, dir_ + "/" + name,
        environment_ ? environment_(name) : std::vector<std::string>{});
    if (!process.ok()) return process.status();
    node->process = std::move(process).value();
    Node* started = node.get();
    nodes_.push_back(std::move(node));
    if (!started->process->WaitForOutput("gpumartd ready: node ", timeout)) {
      return Status::Timeout(name + " did not get ready:\n" + started->Logs());
    }
    const std::string out = started->process->out();
    started->peer_address = LineAfter(out, "gossip listening on ");
    started->key_hex = LineAfter(out, "gpumartd ready: node ").substr(0, 64);
    started->client_address = LineAfter(out, "client port listening on ");
    return started;
  }

  const std::string dir_;
  const std::string bin_dir_;
  std::vector<std::unique_ptr<Node>> nodes_;
  Node* relay_ = nullptr;
  std::function<std::vector<std::string>(const std::string&)> environment_;
};

}  // namespace gpumart::e2e
