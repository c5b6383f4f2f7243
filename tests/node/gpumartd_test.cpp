// gpumartd as a real process: starts, says it is ready, holds its ledger against a second
// daemon, and stops cleanly on SIGTERM; bad configs fail with a clear error.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/node/run_process.h"

namespace gpumart {
namespace {

std::string Daemon() { return std::string(GPUMART_BIN_DIR) + "/gpumartd"; }

// A daemon started in the background, killed on destruction if still running.
class DaemonProcess {
 public:
  explicit DaemonProcess(const std::vector<std::string>& args) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = out[0];
  }
  ~DaemonProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  // Reads stdout until `text` appears or the time limit passes.
  bool WaitFor(const std::string& text, int timeout_ms = 20'000) {
    pollfd fd{out_, POLLIN, 0};
    char buffer[4096];
    for (int waited = 0; waited < timeout_ms && output_.find(text) == std::string::npos; waited += 50) {
      if (poll(&fd, 1, 50) > 0) {
        const ssize_t n = read(out_, buffer, sizeof buffer);
        if (n <= 0) break;
        output_.append(buffer, static_cast<size_t>(n));
      }
    }
    return output_.find(text) != std::string::npos;
  }
  int Terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
};

class GpumartdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gpumartd-test-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(GpumartdTest, StartsReadyAndStopsCleanlyOnSigterm) {
  DaemonProcess daemon({Daemon(), "--data-dir", dir_ + "/data"});
  ASSERT_TRUE(daemon.WaitFor("gpumartd ready")) << daemon.output();
  EXPECT_NE(daemon.output().find("role relay"), std::string::npos);
  struct stat info{};
  ASSERT_EQ(stat((dir_ + "/data/identity.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(daemon.Terminate(), 0);
  // The same identity next time.
  DaemonProcess again({Daemon(), "--data-dir", dir_ + "/data"});
  ASSERT_TRUE(again.WaitFor("gpumartd ready")) << again.output();
  const auto key_of = [](const std::string& text) { return text.substr(text.find("node ") + 5, 64); };
  EXPECT_EQ(key_of(again.output()), key_of(daemon.output()));
  EXPECT_EQ(again.Terminate(), 0);
}

TEST_F(GpumartdTest, SecondDaemonOnTheSameDataDirIsRefused) {
  DaemonProcess first({Daemon(), "--data-dir", dir_});
  ASSERT_TRUE(first.WaitFor("gpumartd ready")) << first.output();
  auto second = testing::RunProcess({Daemon(), "--data-dir", dir_}, 20'000);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("ledger"), std::string::npos) << second.err;
  EXPECT_EQ(first.Terminate(), 0);
}

TEST_F(GpumartdTest, ProviderConfigReadsItsOffers) {
  const std::string config = dir_ + "/provider.yaml";
  std::ofstream(config) << "role: provider\ndata_dir: " << dir_ << "/p\noffers: " << GPUMART_SOURCE_DIR
                        << "/configs/offers-example.yaml\n";
  DaemonProcess daemon({Daemon(), "--config", config});
  ASSERT_TRUE(daemon.WaitFor("gpumartd ready")) << daemon.output();
  EXPECT_NE(daemon.output().find("role provider"), std::string::npos);
  EXPECT_NE(daemon.output().find("offers 5"), std::string::npos);
  EXPECT_EQ(daemon.Terminate(), 0);
}

TEST_F(GpumartdTest, BadConfigIsAClearError) {
  const std::string config = dir_ + "/bad.yaml";
  std::ofstream(config) << "role: miner\n";
  auto result = testing::RunProcess({Daemon(), "--config", config});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("role: \"miner\" is not relay|provider|tenant"), std::string::npos) << result.err;
  auto missing = testing::RunProcess({Daemon(), "--config", dir_ + "/none.yaml"});
  EXPECT_EQ(missing.exit_code, 1);
  auto usage = testing::RunProcess({Daemon(), "--bogus"});
  EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace gpumart
