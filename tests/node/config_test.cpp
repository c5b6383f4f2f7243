#include "node/config.h"

#include <gtest/gtest.h>

#include "tests/alloc_failure.h"

namespace gpumart::node {
namespace {

TEST(ConfigTest, EmptyFileMeansDefaults) {
  Result<NodeConfig> config = ParseNodeConfig("");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->role, NodeRole::kRelay);
  EXPECT_EQ(config->data_dir, "./gpumart-data");
  EXPECT_EQ(config->IdentityPath(), "./gpumart-data/identity.key");
}

TEST(ConfigTest, ReadsEverySetting) {
  Result<NodeConfig> config = ParseNodeConfig(
      "role: provider\ndata_dir: /var/lib/gpumart\nidentity: /etc/gpumart/provider.key\n"
      "offers: /etc/gpumart/offers.yaml\nlog_level: debug\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->role, NodeRole::kProvider);
  EXPECT_EQ(config->data_dir, "/var/lib/gpumart");
  EXPECT_EQ(config->IdentityPath(), "/etc/gpumart/provider.key");
  EXPECT_EQ(config->offers, "/etc/gpumart/offers.yaml");
  EXPECT_EQ(config->log_level, "debug");
}

TEST(ConfigTest, ErrorsNameTheSetting) {
  EXPECT_NE(ParseNodeConfig("rol: relay\n").status().message().find("rol: unknown setting"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("role: miner\n").status().message().find("role: \"miner\" is not"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("log_level: loud\n").status().message().find("log_level"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("data_dir: [a, b]\n").status().message().find("data_dir: expected a string"),
            std::string::npos);
  EXPECT_NE(ParseNodeConfig("role: provider\n").status().message().find("offers: a provider needs"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("- a\n- b\n").status().message().find("a map of settings"), std::string::npos);
  EXPECT_NE(ParseNodeConfig("role: [\n").status().message().find("invalid YAML at line"), std::string::npos);
}

TEST(ConfigTest, HostileInputRejected) {
  EXPECT_EQ(ParseNodeConfig(std::string(100000, '[')).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(ParseNodeConfig(std::string(kMaxConfigFileBytes + 1, '#')).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(LoadNodeConfig("/nonexistent/gpumart.yaml").status().code(), Status::Code::kIoError);
}

// Block nesting (indentation) is a limit like [ and { nesting (the YAML tree bounds both).
TEST(ConfigTest, DeepBlockNestingIsALimit) {
  std::string deep;
  for (int i = 0; i < 10'000; ++i) deep += std::string(static_cast<size_t>(i), ' ') + "k:\n";
  deep.resize(std::min(deep.size(), kMaxConfigFileBytes));
  EXPECT_EQ(ParseNodeConfig(deep).status().code(), Status::Code::kLimitExceeded) << ParseNodeConfig(deep).status().ToString();
}

// Exceptions stop at the boundary (issue 11, item 9): whichever allocation fails while a config
// is parsed, ParseNodeConfig returns a Status. Before, std::bad_alloc escaped (only
// YAML::Exception was caught).
TEST(ConfigTest, AnAllocationFailureAnywhereIsAStatus) {
  if (!GPUMART_ALLOC_FAILURE_INJECTION) GTEST_SKIP() << "allocation failures cannot be injected under a sanitizer";
  const std::string text = "role: provider\ndata_dir: /var/lib/gpumart\noffers: /etc/gpumart/offers.yaml\n";
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("ParseNodeConfig", [&] { return ParseNodeConfig(text); }), 3);
}

}  // namespace
}  // namespace gpumart::node
