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
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

std::string Daemon() { return std::string(GPUMART_BIN_DIR) + "/gpumartd"; }

// A daemon in the background; killed by ChildProcess's destructor if a test fails early.
using DaemonProcess = testing::ChildProcess;

class GpumartdTest : public ::testing::Test {
 protected:
  testing::TempDir temp_{"gpumartd-test"};
  const std::string& dir_ = temp_.path();
};

TEST_F(GpumartdTest, StartsReadyAndStopsCleanlyOnSigterm) {
  DaemonProcess daemon({Daemon(), "--data-dir", dir_ + "/data"});
  ASSERT_TRUE(daemon.WaitForOutput("gpumartd ready")) << daemon.out();
  EXPECT_NE(daemon.out().find("role relay"), std::string::npos);
  struct stat info{};
  ASSERT_EQ(stat((dir_ + "/data/identity.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(daemon.SignalAndWait(SIGTERM), 0);
  // The same identity next time.
  DaemonProcess again({Daemon(), "--data-dir", dir_ + "/data"});
  ASSERT_TRUE(again.WaitForOutput("gpumartd ready")) << again.out();
  const auto key_of = [](const std::string& text) { return text.substr(text.find("node ") + 5, 64); };
  EXPECT_EQ(key_of(again.out()), key_of(daemon.out()));
  EXPECT_EQ(again.SignalAndWait(SIGTERM), 0);
}

TEST_F(GpumartdTest, SecondDaemonOnTheSameDataDirIsRefused) {
  DaemonProcess first({Daemon(), "--data-dir", dir_});
  ASSERT_TRUE(first.WaitForOutput("gpumartd ready")) << first.out();
  auto second = testing::RunProcess({Daemon(), "--data-dir", dir_}, 20'000);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("ledger"), std::string::npos) << second.err;
  EXPECT_EQ(first.SignalAndWait(SIGTERM), 0);
}

TEST_F(GpumartdTest, ProviderConfigReadsItsOffers) {
  const std::string config = dir_ + "/provider.yaml";
  std::ofstream(config) << "role: provider\ndata_dir: " << dir_ << "/p\noffers: " << GPUMART_SOURCE_DIR
                        << "/configs/offers-example.yaml\n";
  DaemonProcess daemon({Daemon(), "--config", config});
  ASSERT_TRUE(daemon.WaitForOutput("gpumartd ready")) << daemon.out();
  EXPECT_NE(daemon.out().find("role provider"), std::string::npos);
  EXPECT_NE(daemon.out().find("offers 5"), std::string::npos);
  EXPECT_EQ(daemon.SignalAndWait(SIGTERM), 0);
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
