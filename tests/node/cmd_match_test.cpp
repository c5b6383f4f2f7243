// End-to-end tests of `gpumart match`: the real built binary on a real Akash SDL fixture and the
// example offers file, as a child process with a time limit.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/node/run_process.h"

namespace gpumart::node {
namespace {

using nlohmann::json;
using gpumart::testing::ProcessResult;
using gpumart::testing::RunProcess;

constexpr int kTimeoutMs = 20'000;
const std::string kGpumart = std::string(GPUMART_BIN_DIR) + "/gpumart";
const std::string kLlmSdl = std::string(GPUMART_FIXTURE_DIR) + "/sdl/seed_llm-fallbacks.yaml";
const std::string kOffers = std::string(GPUMART_SOURCE_DIR) + "/configs/offers-example.yaml";

ProcessResult Match(std::vector<std::string> extra, const std::string& offers = kOffers) {
  std::vector<std::string> argv{kGpumart, "match", "--sdl", kLlmSdl, "--offers", offers};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ProcessResult result = RunProcess(argv, kTimeoutMs);
  EXPECT_FALSE(result.timed_out);
  return result;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::vector<std::string> Providers(const json& group) {
  std::vector<std::string> out;
  for (const json& candidate : group.at("candidates")) out.push_back(candidate.at("provider"));
  return out;
}

TEST(CmdMatchTest, JsonListsEveryCandidateInPreferenceOrder) {
  ProcessResult result = Match({"--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json doc = json::parse(result.out);
  ASSERT_EQ(doc.at("groups").size(), 1u);
  const json& group = doc.at("groups")[0];
  EXPECT_EQ(group.at("name"), "dcloud");
  // prov-c is in us-east, prov-e's 24Gi cards are below every option's RAM minimum.
  EXPECT_EQ(Providers(group), (std::vector<std::string>{"prov-a", "prov-b", "prov-d"}));
  const json& best = group.at("candidates")[0];
  // 2 x 300000 (h100.80Gi.sxm) + 16 cores x 1000 + 64 GiB x 200 + 220 GiB x 10.
  EXPECT_EQ(best.at("price_per_hour"), 631000);
  EXPECT_EQ(best.at("denom"), "uakt");
  EXPECT_DOUBLE_EQ(best.at("reputation").get<double>(), 0.97);
  const json& service = best.at("services")[0];
  EXPECT_EQ(service.at("name"), "vllm");
  EXPECT_EQ(service.at("option"), 0);
  EXPECT_EQ(service.at("device").at("model"), "h100");
  EXPECT_EQ(service.at("device").at("ram_bytes"), 85899345920ull);
  EXPECT_EQ(service.at("device").at("interface"), "sxm");
  EXPECT_EQ(service.at("placements"), json::parse(R"([{"node": "n1", "replicas": 1}])"));
  EXPECT_EQ(group.at("candidates")[1].at("services")[0].at("option"), 1);
  EXPECT_EQ(group.at("candidates")[2].at("services")[0].at("option"), 2);
  EXPECT_EQ(group.at("excluded").at("attributes"), 1);
  EXPECT_EQ(group.at("excluded").at("gpu-ram"), 1);
}

// SDL 2.2, caps in usdc then uakt: the usdc bidder ranks first although its number is larger;
// warnings go to stderr and into the JSON; --strict refuses the file.
TEST(CmdMatchTest, SeveralDenomsRankByTheTenantsOrderAndWarningsAreShown) {
  const std::string sdl = WriteTemp("multi-denom.yaml", R"(version: "2.2"
services:
  job:
    image: trainer
    stage: 2
profiles:
  compute:
    job:
      resources:
        cpu: {units: 1}
        memory: {size: 1Gi}
        storage: {size: 1Gi}
        gpu: {units: 1, attributes: {vendor: {nvidia: [{model: h100}]}}}
  placement:
    dc:
      pricing:
        job:
          - {denom: usdc, amount: 1000000}
          - {denom: uakt, amount: 1000000}
deployment:
  job:
    dc: {profile: job, count: 1}
)");
  const std::string offers = WriteTemp("multi-denom-offers.yaml", R"(providers:
  - id: in-uakt
    pricing: [{denom: uakt, gpu: {"*": 10}, cpu: 0, memory: 0, storage: 0}]
    nodes: [{name: n, cpu_millis: 8000, memory: 64Gi, storage: 1Ti, gpus: [{model: h100, ram: 80Gi, count: 1}]}]
  - id: in-usdc
    pricing: [{denom: usdc, gpu: {"*": 5000}, cpu: 0, memory: 0, storage: 0}]
    nodes: [{name: n, cpu_millis: 8000, memory: 64Gi, storage: 1Ti, gpus: [{model: h100, ram: 80Gi, count: 1}]}]
)");
  ProcessResult result = RunProcess({kGpumart, "match", "--sdl", sdl, "--offers", offers, "--json", "--policy", "cheapest"},
                                    kTimeoutMs);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "gpumart match: " + sdl +
                            ": warning: services.job.stage: unknown field, ignored (expected image, command, args, env, "
                            "expose, params, credentials or dependencies)\n");
  const json doc = json::parse(result.out);
  const json& group = doc.at("groups").at(0);
  EXPECT_EQ(Providers(group), (std::vector<std::string>{"in-usdc", "in-uakt"}));
  EXPECT_EQ(group.at("candidates")[0].at("denom"), "usdc");
  EXPECT_EQ(group.at("candidates")[0].at("denom_rank"), 0);
  EXPECT_EQ(group.at("candidates")[1].at("denom"), "uakt");
  EXPECT_EQ(group.at("candidates")[1].at("denom_rank"), 1);
  EXPECT_EQ(doc.at("warnings").at(0).at("path"), "services.job.stage");
  result = RunProcess({kGpumart, "match", "--sdl", sdl, "--offers", offers, "--strict"}, kTimeoutMs);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("services.job.stage: unknown field (expected"), std::string::npos) << result.err;
}

TEST(CmdMatchTest, CheapestPolicyAndTop) {
  ProcessResult result = Match({"--json", "--policy", "cheapest", "--top", "2"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json doc = json::parse(result.out);
  EXPECT_EQ(Providers(doc.at("groups")[0]), (std::vector<std::string>{"prov-d", "prov-b"}));
  EXPECT_EQ(doc.at("policy"), "cheapest");
}

TEST(CmdMatchTest, HumanOutputIsATable) {
  ProcessResult result = Match({});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("group dcloud: 3 candidates of 5 providers"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("PROVIDER"), std::string::npos);
  EXPECT_NE(result.out.find("prov-a"), std::string::npos);
  EXPECT_NE(result.out.find("631000 uakt"), std::string::npos);
  EXPECT_NE(result.out.find("h100 80Gi sxm on n1 x1"), std::string::npos);
}

TEST(CmdMatchTest, NoTakerIsAnAnswerWithAHint) {
  const std::string offers = WriteTemp("cmd_match_east.yaml", R"(
providers:
  - id: east-1
    attributes: {region: us-east}
    pricing: [{denom: uakt, gpu: {"*": 1}}]
    nodes: [{name: n, cpu_millis: 64000, memory: 512Gi, storage: 2Ti, gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: "12.4", count: 8}]}]
  - id: east-2
    attributes: {region: us-east}
    pricing: [{denom: uakt, gpu: {"*": 1}}]
    nodes: [{name: n, cpu_millis: 64000, memory: 512Gi, storage: 2Ti, gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: "12.4", count: 8}]}]
  - id: west-small
    attributes: {region: us-west}
    pricing: [{denom: uakt, gpu: {"*": 1}}]
    nodes: [{name: n, cpu_millis: 64000, memory: 512Gi, storage: 2Ti, gpus: [{model: t4, ram: 16Gi, count: 8}]}]
)");
  ProcessResult human = Match({}, offers);
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("0 candidates of 3 providers"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("hint: no provider can take this group; most were excluded by: placement attribute "
                           "region=us-west not offered (2 of 3)"),
            std::string::npos)
      << human.out;
  EXPECT_NE(human.out.find("GPU RAM below the minimum (service vllm) (1)"), std::string::npos) << human.out;

  ProcessResult machine = Match({"--json"}, offers);
  ASSERT_EQ(machine.exit_code, 0) << machine.err;
  const json doc = json::parse(machine.out);
  EXPECT_TRUE(doc.at("groups")[0].at("candidates").empty());
  EXPECT_EQ(doc.at("groups")[0].at("excluded").at("attributes"), 2);
  std::remove(offers.c_str());
}

TEST(CmdMatchTest, BadOffersFileIsAnErrorNamingThePath) {
  const std::string offers = WriteTemp("cmd_match_bad.yaml", R"(
providers:
  - id: p
    pricing: [{denom: uakt}]
    nodes: [{name: n, cpu_millis: 1000, memory: 1Gi, gpus: [{model: a100, ram: 40Gi, count: -4}]}]
)");
  ProcessResult result = Match({}, offers);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(result.out.empty());
  EXPECT_NE(result.err.find(offers + ": providers[0].nodes[0].gpus[0].count: -4 is negative"), std::string::npos)
      << result.err;
  std::remove(offers.c_str());
}

TEST(CmdMatchTest, BadArguments) {
  EXPECT_EQ(Match({"--policy", "fastest"}).exit_code, 2);
  EXPECT_EQ(Match({"--top", "0"}).exit_code, 2);
  ProcessResult missing = RunProcess({kGpumart, "match", "--sdl", "/nonexistent.yaml", "--offers", kOffers}, kTimeoutMs);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent.yaml"), std::string::npos);
  EXPECT_EQ(RunProcess({kGpumart, "match", "--offers", kOffers}, kTimeoutMs).exit_code, 2);
}

}  // namespace
}  // namespace gpumart::node
