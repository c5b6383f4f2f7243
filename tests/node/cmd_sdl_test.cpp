// End-to-end tests of `gpumart sdl check`: runs the real built binary on every SDL fixture and
// compares with the expectation pinned in tests/node/testdata/sdl/<fixture>.json.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>

#include "node/cli.h"

namespace gpumart::node {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kFixtureDir = std::string(GPUMART_FIXTURE_DIR) + "/sdl";
const std::string kPinnedDir = std::string(GPUMART_SOURCE_DIR) + "/tests/node/testdata/sdl";
const std::string kGpumart = std::string(GPUMART_BIN_DIR) + "/gpumart";

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// Runs gpumart with `args` (bounded by coreutils timeout so a hang fails the test instead of
// blocking it); stderr goes through a temporary file.
ProcessResult RunGpumart(const std::vector<std::string>& args) {
  const std::string err_path = testing::TempDir() + "/cmd_sdl_test_stderr_" + std::to_string(getpid());
  std::string command = "timeout 20 " + ShellQuote(kGpumart);
  for (const auto& arg : args) command += " " + ShellQuote(arg);
  command += " 2>" + ShellQuote(err_path);
  ProcessResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen failed: " << command;
    return result;
  }
  char buffer[4096];
  size_t read = 0;
  while ((read = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, read);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.err = ReadAll(err_path);
  std::remove(err_path.c_str());
  return result;
}

// Every key pinned must be in `actual` with an equal value (recursively); extra keys in `actual`
// are allowed. Lists must have the same length.
void ExpectContains(const json& pinned, const json& actual, const std::string& path) {
  if (pinned.is_object()) {
    ASSERT_TRUE(actual.is_object()) << path << ": expected an object, got " << actual.dump();
    for (const auto& [key, value] : pinned.items()) {
      ASSERT_TRUE(actual.contains(key)) << path << ": missing key " << key;
      ExpectContains(value, actual.at(key), path + "." + key);
    }
  } else if (pinned.is_array()) {
    ASSERT_TRUE(actual.is_array()) << path << ": expected a list, got " << actual.dump();
    ASSERT_EQ(pinned.size(), actual.size()) << path;
    for (size_t i = 0; i < pinned.size(); ++i) ExpectContains(pinned[i], actual[i], path + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(pinned, actual) << path;
  }
}

std::vector<std::string> Fixtures() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kFixtureDir)) {
    const std::string ext = entry.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CmdSdlCheck, EveryFixtureMatchesItsPinnedJson) {
  const std::vector<std::string> fixtures = Fixtures();
  ASSERT_GE(fixtures.size(), 19u);
  size_t broken = 0;
  for (const auto& name : fixtures) {
    SCOPED_TRACE(name);
    const std::string pinned_path = kPinnedDir + "/" + name + ".json";
    ASSERT_TRUE(fs::exists(pinned_path)) << "no pinned expectation for a new fixture: " << pinned_path;
    const json pinned = json::parse(ReadAll(pinned_path));
    const std::string fixture = kFixtureDir + "/" + name;
    const ProcessResult result = RunGpumart({"sdl", "check", "--json", fixture});
    if (pinned.contains("exit_code")) {
      ++broken;
      EXPECT_EQ(result.exit_code, pinned["exit_code"].get<int>());
      EXPECT_EQ(result.err, "gpumart sdl check: " + fixture + ": " + pinned["error"].get<std::string>() + "\n");
      EXPECT_EQ(result.out, "");
      continue;
    }
    EXPECT_EQ(result.exit_code, 0) << result.err;
    // What the reader ignored is on stderr, one line per warning, as pinned in the JSON.
    std::string warnings;
    for (const json& warning : pinned.at("warnings")) {
      warnings += "gpumart sdl check: " + fixture + ": warning: " + warning["path"].get<std::string>() + ": " +
                  warning["message"].get<std::string>() + "\n";
    }
    EXPECT_EQ(result.err, warnings);
    const json actual = json::parse(result.out, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(actual.is_discarded()) << result.out;
    ExpectContains(pinned, actual, "$");
  }
  EXPECT_EQ(broken, 2u);  // teamspeak (not YAML) and pokt-network (no placement profile)
}

TEST(CmdSdlCheck, EveryPinnedFileHasItsFixture) {
  for (const auto& entry : fs::directory_iterator(kPinnedDir)) {
    const std::string name = entry.path().stem().string();  // "<fixture>.json" -> "<fixture>"
    EXPECT_TRUE(fs::exists(kFixtureDir + "/" + name)) << name;
  }
}

TEST(CmdSdlCheck, HumanOutput) {
  const ProcessResult result = RunGpumart({"sdl", "check", kFixtureDir + "/seed_llm-fallbacks.yaml"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(result.out,
            "SDL version 2.0: 1 group\n"
            "\n"
            "group dcloud: 1 service, cap 147130946 uakt/hour in total\n"
            "  provider attributes: region=us-west\n"
            "  service vllm (profile vllm), 1 replica\n"
            "    per replica: cpu 16, memory 64Gi, storage default 20Gi, storage models 200Gi (persistent, class "
            "beta3)\n"
            "    gpu: 2 per replica, all of one of (most preferred first):\n"
            "      1. nvidia h100, ram >= 80Gi, sxm\n"
            "      2. nvidia a100, ram >= 80Gi\n"
            "      3. nvidia *, ram >= 48Gi\n"
            "    cuda >= 12.4\n"
            "    price cap: 250000 uakt/block = 147130946 uakt/hour per replica\n");
}

TEST(CmdSdlCheck, HumanOutputShowsAuditorsAndServicesWithoutGpu) {
  const ProcessResult result = RunGpumart({"sdl", "check", kFixtureDir + "/wordpress_deploy.yaml"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("group akash: 2 services, cap 11770474 uact/hour in total\n"), std::string::npos);
  EXPECT_NE(result.out.find("  signed by any of: akash1365yvmc4s7awdyj3n2sav7xfx76adc6dnmlx63\n"), std::string::npos);
  EXPECT_NE(result.out.find("storage wordpress-data 32Gi (persistent, class beta3)"), std::string::npos);
  EXPECT_NE(result.out.find("    gpu: none\n"), std::string::npos);
}

TEST(CmdSdlCheck, MissingFileFails) {
  const ProcessResult result = RunGpumart({"sdl", "check", "/nonexistent/deploy.yaml"});
  EXPECT_EQ(result.exit_code, kExitFailure);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "gpumart sdl check: /nonexistent/deploy.yaml: cannot open: No such file or directory\n");
}

TEST(CmdSdlCheck, BadArgumentsAreUsageErrors) {
  EXPECT_EQ(RunGpumart({"sdl", "check"}).exit_code, kExitUsage);
  EXPECT_EQ(RunGpumart({"sdl"}).exit_code, kExitUsage);
  EXPECT_EQ(RunGpumart({"sdl", "check", "--bogus", kFixtureDir + "/seed_basic-gpu.yaml"}).exit_code, kExitUsage);
  EXPECT_EQ(RunGpumart({"sdl", "check", "a.yaml", "b.yaml"}).exit_code, kExitUsage);
  EXPECT_EQ(RunGpumart({"sdl", "check", "--help"}).exit_code, kExitOk);
}

// --strict: what was a warning is an error (exit 1), and Akash Console's schema applies.
TEST(CmdSdlCheck, StrictTurnsWarningsIntoErrors) {
  const std::string fixture = kFixtureDir + "/wordpress_deploy.yaml";
  const ProcessResult lenient = RunGpumart({"sdl", "check", fixture});
  EXPECT_EQ(lenient.exit_code, 0);
  const ProcessResult strict = RunGpumart({"sdl", "check", "--strict", fixture});
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_EQ(strict.err, "gpumart sdl check: " + fixture +
                            ": services.wordpress.depends_on: unknown field (expected image, command, args, env, expose, "
                            "params, credentials or dependencies)\n");
  EXPECT_EQ(strict.out, "");
  const ProcessResult clean = RunGpumart({"sdl", "check", "--strict", kFixtureDir + "/seed_llm-fallbacks.yaml"});
  EXPECT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_EQ(clean.err, "");
}

TEST(CmdSdlCheck, InProcess) {
  std::ostringstream out, err;
  const std::string fixture = kFixtureDir + "/seed_basic-gpu.yaml";
  const char* argv[] = {"gpumart", "sdl", "check", "--json", fixture.c_str()};
  EXPECT_EQ(RunCli(5, argv, out, err), kExitOk) << err.str();
  const json parsed = json::parse(out.str());
  EXPECT_EQ(parsed["groups"][0]["services"][0]["cuda_min"], "12.0");
  EXPECT_EQ(parsed["groups"][0]["services"][0]["gpu"]["options"][0]["model"], "*");
}

}  // namespace
}  // namespace gpumart::node
