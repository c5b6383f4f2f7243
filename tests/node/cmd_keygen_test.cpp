#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <filesystem>

#include "market/crypto.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using testing::GpumartBinary;
using testing::RunProcess;

class KeygenTest : public ::testing::Test {
 protected:
  testing::TempDir temp_{"gpumart-keygen"};
  const std::string& dir_ = temp_.path();
};

TEST_F(KeygenTest, WritesLoadableKeyWithMode0600) {
  const std::string path = dir_ + "/tenant.key";
  auto result = RunProcess({GpumartBinary(), "keygen", "--out", path, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  struct stat info{};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  auto identity = market::LoadKeyFile(path);
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_EQ(json["public_key"], market::ToHex(identity->public_key()));
  EXPECT_EQ(json["path"], path);
}

TEST_F(KeygenTest, RefusesToOverwrite) {
  const std::string path = dir_ + "/tenant.key";
  ASSERT_EQ(RunProcess({GpumartBinary(), "keygen", "-o", path}).exit_code, 0);
  const auto before = market::LoadKeyFile(path)->public_key();
  auto again = RunProcess({GpumartBinary(), "keygen", "-o", path});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("refusing to overwrite"), std::string::npos) << again.err;
  EXPECT_EQ(market::LoadKeyFile(path)->public_key(), before);
}

TEST_F(KeygenTest, UnwritableDirectoryIsAClearError) {
  auto result = RunProcess({GpumartBinary(), "keygen", "-o", dir_ + "/missing/dir/k.key"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("cannot create"), std::string::npos) << result.err;
}

TEST(CliTest, UnknownCommandIsAUsageError) {
  auto result = RunProcess({GpumartBinary(), "frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_FALSE(result.err.empty());
  auto none = RunProcess({GpumartBinary()});
  EXPECT_EQ(none.exit_code, 2);
  auto help = RunProcess({GpumartBinary(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("keygen"), std::string::npos);
}

}  // namespace
}  // namespace gpumart
