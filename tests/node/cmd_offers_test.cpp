// End-to-end tests of `gpumart offers`: the real built binary, as a child process with a time
// limit, asking a provider node's client port (a NodeContext in this process, whose live offer
// book holds its own offer) with vast.ai's query grammar.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "node/node_context.h"
#include "tests/client/client_test_util.h"
#include "tests/eventually.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

using gpumart::testing::Eventually;

using gpumart::testing::ProcessResult;
using gpumart::testing::RunProcess;
using nlohmann::json;

constexpr int kTimeoutMs = 20'000;
const std::string kGpumart = std::string(GPUMART_BIN_DIR) + "/gpumart";

// Three rows in uakt: 8 H100 SXM on n1 (300000 each), 2 A100 PCIe (200000) and 4 RTX 4090
// (the `*` rate, 90000) on n2.
bidding::Inventory ThreeDeviceTypes() {
  bidding::Inventory inventory = client::testing::EightH100();
  market::NodeCapacity n2;
  n2.name = "n2";
  n2.cpu_millis = 16'000;
  n2.memory_bytes = 128 * market::kGi;
  n2.gpus = {market::GpuDevices{"nvidia", "a100", 40 * market::kGi, market::GpuInterface::kPcie, market::CudaVersion{12, 6}, 2},
             market::GpuDevices{"nvidia", "rtx4090", 24 * market::kGi, market::GpuInterface::kPcie, std::nullopt, 4}};
  inventory.nodes.push_back(n2);
  return inventory;
}

class CmdOffersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new gpumart::testing::TempDir("gpumart-offers-test");
    const bidding::Inventory inventory = ThreeDeviceTypes();
    auto started = NodeContext::Start(client::testing::ProviderConfig(dir_->Sub("provider")), &inventory,
                                      ProviderOptions{.offer_debounce_ms = 20});
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    node_ = std::move(started).value().release();
    ASSERT_TRUE(Eventually([] { return node_->offer_counters()->held.load() == 1; }));
  }
  static void TearDownTestSuite() {
    delete node_;
    node_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  ProcessResult Offers(std::vector<std::string> args) {
    std::vector<std::string> argv{kGpumart, "offers", "--node", node_->client_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult result = RunProcess(argv, kTimeoutMs);
    EXPECT_FALSE(result.timed_out);
    return result;
  }
  json Rows(std::vector<std::string> args) {
    args.push_back("--json");
    const ProcessResult result = Offers(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return json::parse(result.out, nullptr, false);
  }
  static std::vector<std::string> Models(const json& answer) {
    std::vector<std::string> models;
    for (const json& row : answer["offers"]) models.push_back(row["device"]["model"].get<std::string>());
    return models;
  }

  static gpumart::testing::TempDir* dir_;
  static NodeContext* node_;
};

gpumart::testing::TempDir* CmdOffersTest::dir_ = nullptr;
NodeContext* CmdOffersTest::node_ = nullptr;

TEST_F(CmdOffersTest, EveryRowOfTheLiveBookCheapestFirst) {
  const json all = Rows({});
  ASSERT_TRUE(all.is_object()) << all;
  EXPECT_EQ(all["matched"], 3);
  EXPECT_EQ(Models(all), (std::vector<std::string>{"rtx4090", "a100", "h100"}));  // 360000, 400000, 2400000
  const json& h100 = all["offers"][2];
  EXPECT_EQ(h100["provider"], market::ToHex(node_->identity().public_key()));  // the signer, never a label
  EXPECT_EQ(h100["node"], "n1");
  EXPECT_EQ(h100["num_gpus"], 8);
  EXPECT_EQ(h100["dph_per_gpu"], 300'000);
  EXPECT_EQ(h100["dph"], 2'400'000);
  EXPECT_EQ(h100["denom"], "uakt");
  EXPECT_EQ(h100["reliability"], 0.5);  // this node's reputation of a provider with no leases
  EXPECT_EQ(h100["cuda"], "12.4");
  EXPECT_EQ(all["offers"][0]["cuda"], nullptr);
}

TEST_F(CmdOffersTest, VastStyleQueriesSortKeysAndLimit) {
  EXPECT_EQ(Models(Rows({"gpu_name=H100_SXM num_gpus>=8 reliability>=0.5"})), (std::vector<std::string>{"h100"}));
  EXPECT_EQ(Models(Rows({"gpu_name in [a100, RTX_4090]", "cuda_vers>=12"})), (std::vector<std::string>{"a100"}));
  EXPECT_EQ(Models(Rows({"gpu_ram>=40", "-o", "dph-"})), (std::vector<std::string>{"h100", "a100"}));
  // Several -o add up: num_gpus descending first.
  EXPECT_EQ(Models(Rows({"-o", "node", "-o", "num_gpus-"})), (std::vector<std::string>{"h100", "rtx4090", "a100"}));
  const json first = Rows({"--limit", "1", "-o", "gpu_total_ram-"});
  EXPECT_EQ(Models(first), (std::vector<std::string>{"h100"}));
  EXPECT_EQ(first["matched"], 3);
  EXPECT_EQ(Rows({"geolocation=US"})["matched"], 0);  // the sample provider has no country
}

TEST_F(CmdOffersTest, HumanOutputIsATable) {
  const ProcessResult result = Offers({"gpu_name=h100"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("PROVIDER"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("DPH/GPU"), std::string::npos);
  EXPECT_NE(result.out.find(market::ToHex(node_->identity().public_key()).substr(0, 16)), std::string::npos);
  EXPECT_NE(result.out.find("8x"), std::string::npos);
  EXPECT_NE(result.out.find("2400000"), std::string::npos);
  EXPECT_NE(result.out.find("50.0"), std::string::npos);  // reliability as a percentage, like vast.ai's R
  EXPECT_NE(result.out.find("1 of 1 matching offers (sorted by dph"), std::string::npos) << result.out;
  const ProcessResult none = Offers({"gpu_name=b200"});
  ASSERT_EQ(none.exit_code, 0);
  EXPECT_EQ(none.out, "no offers match\n");
}

TEST_F(CmdOffersTest, ABadQueryIsAUsageErrorNamingTheColumn) {
  const ProcessResult typo = Offers({"num_gpus>=1 gpu_nme=h100"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_EQ(typo.out, "");
  EXPECT_NE(typo.err.find("gpumart offers: column 13: unknown field 'gpu_nme'"), std::string::npos) << typo.err;
  const ProcessResult order = Offers({"-o", "score-"});
  EXPECT_EQ(order.exit_code, 2);
  EXPECT_NE(order.err.find("unknown field 'score'"), std::string::npos) << order.err;
  const ProcessResult limit = Offers({"--limit", "0"});
  EXPECT_EQ(limit.exit_code, 2);
}

// The `offers` request as another client sends it (docs/CLIENT.md): its arguments are checked
// and the book's parse errors come back with their codes.
TEST_F(CmdOffersTest, TheOffersRequestChecksItsArguments) {
  auto connected = client::Client::Connect(node_->client_address(), std::chrono::seconds(5));
  ASSERT_TRUE(connected.ok()) << connected.status().ToString();
  client::Client& port = **connected;
  auto all = port.Call("offers", {});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(json::parse(std::get<std::string>(all->at("json")))["matched"], 3);
  const std::vector<std::pair<client::Fields, Status::Code>> refused = {
      {{{"limit", uint64_t{0}}}, Status::Code::kInvalidArgument},
      {{{"limit", uint64_t{market::kMaxOfferSearchRows + 1}}}, Status::Code::kInvalidArgument},
      {{{"query", uint64_t{1}}}, Status::Code::kInvalidArgument},
      {{{"order", true}}, Status::Code::kInvalidArgument},
      {{{"query", std::string("gpu_name<h100")}}, Status::Code::kInvalidArgument},
      {{{"order", std::string("score")}}, Status::Code::kInvalidArgument},
      {{{"query", std::string(market::kMaxOfferQueryBytes + 1, ' ')}}, Status::Code::kLimitExceeded},
  };
  for (const auto& [args, code] : refused) {
    auto answer = port.Call("offers", args);
    ASSERT_FALSE(answer.ok());
    EXPECT_EQ(answer.status().code(), code) << answer.status().ToString();
  }
  auto typo = port.Call("offers", {{"query", std::string("gpu_nme=h100")}});
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("column 1: unknown field 'gpu_nme'"), std::string::npos)
      << typo.status().message();
}

}  // namespace
}  // namespace gpumart::node
