// The config's pricing_policy section (docs/CONFIGURATION.md): read with the pricing tables,
// whichever comes first in the file; without it, the table policy; errors name the key.
#include <gtest/gtest.h>

#include <string>

#include "node/config.h"

namespace gpumart::node {
namespace {

const std::string kInventory =
    "inventory:\n  nodes:\n"
    "    - {name: n1, cpu_millis: 64000, memory: 512Gi, gpus: [{model: h100, ram: 80Gi, interface: sxm, count: 8}]}\n";
const std::string kPricing = "pricing:\n  - {denom: uakt, gpu: {h100: 650000}, cpu: 4000}\n";

std::string ErrorOf(const std::string& yaml) {
  Result<NodeConfig> config = ParseNodeConfig(yaml);
  return config.ok() ? "ok" : config.status().message();
}

TEST(ConfigPricingPolicyTest, WithoutTheSectionTheTablesAreTheTablePolicy) {
  Result<NodeConfig> config = ParseNodeConfig("role: provider\n" + kInventory + kPricing);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->pricing_policy.kind, bidding::PricingKind::kTable);
  ASSERT_EQ(config->pricing_policy.tables.size(), 1u);
  EXPECT_EQ(config->pricing_policy.tables[0].gpu.at("h100"), 650000u);
}

TEST(ConfigPricingPolicyTest, EachKindIsRead) {
  // The section before the tables it uses.
  Result<NodeConfig> utilization =
      ParseNodeConfig("role: provider\npricing_policy: {kind: utilization, max_percent: 300}\n" + kInventory + kPricing);
  ASSERT_TRUE(utilization.ok()) << utilization.status().ToString();
  EXPECT_EQ(utilization->pricing_policy.kind, bidding::PricingKind::kUtilization);
  EXPECT_EQ(utilization->pricing_policy.utilization_max_percent, 300u);
  EXPECT_EQ(utilization->pricing_policy.tables.size(), 1u);

  // command needs no tables.
  Result<NodeConfig> command = ParseNodeConfig(
      "role: provider\n" + kInventory +
      "pricing_policy:\n  kind: command\n  command: [/bin/echo, '1']\n  timeout_ms: 500\n  max_concurrent: 2\n");
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->pricing_policy.kind, bidding::PricingKind::kCommand);
  EXPECT_EQ(command->pricing_policy.command, (std::vector<std::string>{"/bin/echo", "1"}));
  EXPECT_EQ(command->pricing_policy.command_timeout_ms, 500);
  EXPECT_EQ(command->pricing_policy.command_max_concurrent, 2u);
  EXPECT_TRUE(command->pricing_policy.tables.empty());
}

TEST(ConfigPricingPolicyTest, BadPoliciesNameTheProblem) {
  EXPECT_EQ(ErrorOf("role: provider\n" + kInventory + kPricing + "pricing_policy: {kind: auction}\n").substr(0, 29),
            "pricing_policy kind 'auction'");
  EXPECT_NE(ErrorOf("role: provider\n" + kInventory + "pricing_policy: {kind: table}\n"), "ok");
  EXPECT_NE(ErrorOf("role: provider\n" + kInventory + kPricing + "pricing_policy: {kind: command}\n"), "ok");
  EXPECT_NE(ErrorOf("role: provider\n" + kInventory + kPricing + "pricing_policy: {kind: table, colour: red}\n"), "ok");
  EXPECT_EQ(ErrorOf("pricing_policy: {kind: table}\n"), "pricing_policy: only a provider sells (role is relay)");
  EXPECT_EQ(ErrorOf("role: provider\npricing_policy: {kind: command, command: [x]}\n"),
            "inventory: missing (a provider with prices needs its inventory)");
}

TEST(ConfigPricingPolicyTest, BiddingSettingsAreAProvidersOnly) {
  const std::string tenant(64, 'a');
  Result<NodeConfig> config = ParseNodeConfig("role: provider\n" + kInventory + kPricing + "bid_ttl_ms: 5000\n" +
                                              "allow_tenants: ['" + tenant + "']\ndeny_tenants: []\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->bidding.bid_ttl_ms, 5000);
  ASSERT_EQ(config->bidding.allow_tenants.size(), 1u);
  EXPECT_EQ(market::ToHex(config->bidding.allow_tenants[0]), tenant);
  EXPECT_TRUE(config->bidding.deny_tenants.empty());
  EXPECT_EQ(ErrorOf("role: provider\n" + kInventory + kPricing + "deny_tenants: [abc]\n"),
            "deny_tenants[0]: \"abc\" is not 64 hex digits");
  EXPECT_EQ(ErrorOf("bid_ttl_ms: 5000\n"), "bid_ttl_ms: only a provider bids (role is relay)");
  EXPECT_EQ(ErrorOf("role: provider\n" + kInventory + kPricing + "bid_ttl_ms: 0\n"),
            "bid_ttl_ms: 0 is not in 1..86400000");
}

}  // namespace
}  // namespace gpumart::node
