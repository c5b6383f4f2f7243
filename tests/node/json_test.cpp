// node/json.h: one JSON shape per type, pinned here, and a writer that never throws on what peers
// put in records; plus the end-to-end check that every command prints a lease's services alike.
#include "node/json.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/market/test_messages.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

using testing::GpumartBinary;
using testing::RunProcess;

const std::string kSdl = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/inference-and-web.yaml";
const std::string kOffers = std::string(GPUMART_SOURCE_DIR) + "/configs/offers-example.yaml";

TEST(JsonTest, ServiceAssignmentShapeIsPinned) {
  const auto services = market::testing::SampleAssignments();
  EXPECT_EQ(ToJson(services), Json::parse(R"([
    {"name": "vllm", "option": 0,
     "device": {"vendor": "nvidia", "model": "h100", "ram_bytes": 85899345920, "interface": "sxm"},
     "placements": [{"node": "n1", "replicas": 1}]},
    {"name": "web", "option": null, "device": null, "placements": [{"node": "n1", "replicas": 2}]}])"));
}

TEST(JsonTest, LeaseRecordShapeIsPinned) {
  ledger::LeaseRecord record;
  record.id[0] = 0xab;
  record.envelope.signer[0] = 0x01;
  record.lease.tenant[0] = 0x02;
  record.lease.denom = "uakt";
  record.lease.price_per_hour = 42;
  record.lease.start_ms = 7;
  record.lease.services = market::testing::SampleAssignments();
  const Json json = ToJson(record, 7 + 3'600'000);
  std::vector<std::string> keys;
  for (const auto& [key, value] : json.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"accrued", "bid_id", "billing", "close", "denom", "id", "order_id",
                                            "price_per_hour", "provider", "services", "spot", "start_ms", "state", "tenant"}));
  // An hour at 42 per hour, as market::AccruedCost computes it.
  EXPECT_EQ(json["accrued"], Json::parse(R"({"until_ms": 3600007, "duration_ms": 3600000, "cost": 42})"));
  EXPECT_EQ(json["id"], market::ToHex(record.id));
  EXPECT_EQ(json["provider"], market::ToHex(record.envelope.signer));
  EXPECT_EQ(json["state"], "active");
  EXPECT_TRUE(json["close"].is_null());
  EXPECT_TRUE(json["billing"].is_null());
  EXPECT_TRUE(json["spot"].is_null());  // a regular lease
  EXPECT_EQ(json["services"], ToJson(record.lease.services));
  // Closed: accrued until the close, whatever the time now.
  record.state = ledger::LeaseState::kClosed;
  record.close = market::Close{record.id, market::CloseReason::kTenantClosed, 7 + 1'800'000, ""};
  EXPECT_EQ(ToJson(record, 7 + 7'200'000)["accrued"]["cost"], 21);
}

// The lease shape's "accrued" (`gpumart leases`, the console): so far for an active lease, billed
// in whole seconds; nothing before its start (a clock behind the provider's).
TEST(JsonTest, AccruedCostCountsWholeSecondsFromTheStart) {
  ledger::LeaseRecord record;
  record.lease.denom = "uakt";
  record.lease.price_per_hour = 3'600'000;  // 1,000 per second
  record.lease.start_ms = 1'000'000;
  const Json active = ToJson(record, 1'000'000 + 90'500);
  EXPECT_EQ(active["accrued"], (Json{{"until_ms", 1'090'500}, {"duration_ms", 90'000}, {"cost", 90'000}})) << active;
  EXPECT_EQ(ToJson(record, 0)["accrued"]["cost"], 0);
}

TEST(JsonTest, AttestationShapeIsPinned) {
  market::Signed<market::Attestation> attestation;
  attestation.id[0] = 0xab;
  attestation.envelope.signer[0] = 0x01;
  attestation.body = market::Attestation{{}, market::AuditVerdict::kFail, 7, "ecc"};
  attestation.body.provider[0] = 0x02;
  EXPECT_EQ(ToJson(attestation), Json({{"id", market::ToHex(attestation.id)},
                                       {"auditor", market::ToHex(attestation.envelope.signer)},
                                       {"provider", market::ToHex(attestation.body.provider)},
                                       {"verdict", "fail"},
                                       {"attested_ms", 7},
                                       {"note", "ecc"}}));
}

TEST(JsonTest, OfferSearchRowShapeIsPinnedAndReadsBack) {
  market::OfferSearchResult result;
  market::OfferRow row;
  row.provider = "ab01";
  row.name = "Provider A";
  row.node = "n1";
  row.device = {"nvidia", "h100", 80 * market::kGi, market::GpuInterface::kSxm};
  row.cuda = market::CudaVersion{12, 4};
  row.num_gpus = 8;
  row.denom = "uakt";
  row.dph_per_gpu = 300'000;
  row.dph = 2'400'000;
  row.reliability_ppm = 970'000;
  row.verified = true;
  row.attributes = {{"region", "us-west"}};
  row.cpu_millis = 64'000;
  row.memory_bytes = 512 * market::kGi;
  row.storage_bytes = 0;
  result.rows = {row};
  row.cuda.reset();
  row.reliability_ppm = 666'666;
  result.rows.push_back(row);
  result.matched = 5;
  const Json json = ToJson(result);
  EXPECT_EQ(json["offers"][0], Json::parse(R"(
    {"provider": "ab01", "name": "Provider A", "node": "n1",
     "device": {"vendor": "nvidia", "model": "h100", "ram_bytes": 85899345920, "interface": "sxm"},
     "cuda": "12.4", "num_gpus": 8, "denom": "uakt", "dph_per_gpu": 300000, "dph": 2400000,
     "reliability": 0.97, "verified": true, "attributes": {"region": "us-west"},
     "cpu_millis": 64000, "memory_bytes": 549755813888, "storage_bytes": 0})"));
  EXPECT_TRUE(json["offers"][1]["cuda"].is_null());
  EXPECT_EQ(json["matched"], 5);
  auto back = OfferSearchResultFromJson(Json::parse(DumpJson(json)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, result);
  Json broken = json;
  broken["offers"][1]["device"]["ram_bytes"] = -1;
  auto refused = OfferSearchResultFromJson(broken);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("ram_bytes"), std::string::npos);
  EXPECT_FALSE(OfferSearchResultFromJson(Json::array()).ok());
}

// Item 8 of issue 11: nlohmann's dump throws type_error 316 on invalid UTF-8 by default. The
// writer replaces each bad sequence with U+FFFD, so the output is valid JSON and the rest is kept.
TEST(JsonTest, DumpNeverThrowsOnStringsThatAreNotUtf8) {
  ledger::LeaseRecord record;
  record.lease.denom = "u\xff\xfekt";
  record.lease.services = market::testing::SampleAssignments();
  record.lease.services[0].placements[0].node = "n\xc3";
  record.lease.services[0].device->model = std::string("h1\0\x80", 4);
  EXPECT_THROW((void)ToJson(record, 0).dump(), nlohmann::json::type_error);  // why DumpJson exists
  std::string text;
  ASSERT_NO_THROW(text = DumpJson(ToJson(record, 0)));
  const Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(parsed.is_discarded()) << text;
  EXPECT_EQ(parsed["denom"], "u\uFFFD\uFFFDkt");
  EXPECT_EQ(parsed["services"][0]["placements"][0]["node"], "n\uFFFD");
  EXPECT_EQ(parsed["services"][0]["device"]["model"], std::string("h1\0\uFFFD", 6));
  ASSERT_NO_THROW(text = DumpJson(ToJson(record, 0), 2));
  EXPECT_FALSE(Json::parse(text, nullptr, false).is_discarded());
}

TEST(JsonTest, PrintableKeepsUtf8AndReplacesControlsAndBadBytes) {
  EXPECT_EQ(Printable("h100 80Gi sxm"), "h100 80Gi sxm");
  EXPECT_EQ(Printable("Grüße 日本 🚀"), "Grüße 日本 🚀");
  EXPECT_EQ(Printable("\x1b]0;owned\x07"), "\uFFFD]0;owned\uFFFD");  // terminal escapes
  EXPECT_EQ(Printable("a\nb\tc\x7f"), "a\uFFFDb\uFFFDc\uFFFD");
  EXPECT_EQ(Printable("\xc2\x9b"), "\uFFFD");                         // C1 control (CSI)
  EXPECT_EQ(Printable("\xc0\xaf"), "\uFFFD\uFFFD");                   // overlong '/'
  EXPECT_EQ(Printable("\xed\xa0\x80"), "\uFFFD\uFFFD\uFFFD");         // a surrogate
  EXPECT_EQ(Printable("\xf4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");  // above U+10FFFF
  EXPECT_EQ(Printable("ok\xe6\x97"), "ok\uFFFD\uFFFD");              // truncated at the end
  EXPECT_EQ(Printable(""), "");
}

// The class, not only the instance: every command renders JSON through node/json.h, so no other
// node source serialises JSON itself or spells a shared type's keys.
TEST(JsonTest, OnlyJsonCppWritesJson) {
  const std::filesystem::path node_dir = std::filesystem::path(GPUMART_SOURCE_DIR) / "node";
  size_t checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(node_dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "json.cpp" || name == "json.h" || entry.path().extension() != ".cpp") continue;
    std::ifstream file(entry.path());
    std::stringstream text;
    text << file.rdbuf();
    const std::string source = text.str();
    ++checked;
    for (const char* forbidden : {".dump(", "\"placements\"", "\"ram_bytes\"", "\"replicas\"", "nlohmann::json{"}) {
      // A Kubernetes Deployment has a `replicas` field of its own, which the manifest writer
      // (YAML, not one of our JSON shapes) must spell.
      if (name == "cmd_lease.cpp" && std::string_view(forbidden) == "\"replicas\"") continue;
      EXPECT_EQ(source.find(forbidden), std::string::npos) << name << " contains " << forbidden;
    }
  }
  EXPECT_GT(checked, 5u);
}

// A lease's services print one way in every command: `gpumart demo --json` (the winning bid and
// the lease), `gpumart leases --json` (the same lease read back from the ledger) and
// `gpumart match --json` (the same provider's candidate for the same group).
TEST(JsonTest, EveryCommandPrintsALeasesServicesAlike) {
  testing::TempDir temp("gpumart-json-test");
  auto demo = RunProcess({GpumartBinary(), "demo", "--local", "--sdl", kSdl, "--offers", kOffers, "--data-dir", temp.path(),
                          "--json"},
                         60'000);
  ASSERT_EQ(demo.exit_code, 0) << demo.err;
  auto leases = RunProcess({GpumartBinary(), "leases", "--data-dir", temp.path(), "--json"});
  ASSERT_EQ(leases.exit_code, 0) << leases.err;
  auto match = RunProcess({GpumartBinary(), "match", "--sdl", kSdl, "--offers", kOffers, "--json"});
  ASSERT_EQ(match.exit_code, 0) << match.err;
  const Json demo_json = Json::parse(demo.out);
  const Json leases_json = Json::parse(leases.out);
  const Json match_json = Json::parse(match.out);

  size_t compared = 0;
  for (const Json& group : demo_json["groups"]) {
    if (group["lease"].is_null()) continue;
    const Json& lease = group["lease"];
    const Json& services = lease["services"];
    ASSERT_FALSE(services.empty());
    // The accepted bid printed the same services.
    bool bid_found = false;
    for (const Json& bid : group["bids"]) bid_found |= bid["provider"] == lease["provider"] && bid["services"] == services;
    EXPECT_TRUE(bid_found) << group.dump(2);
    // The ledger holds the lease under the same id and prints the same services.
    bool lease_found = false;
    for (const Json& stored : leases_json["leases"]) {
      if (stored["id"] != lease["id"]) continue;
      lease_found = true;
      EXPECT_EQ(stored["services"], services);
    }
    EXPECT_TRUE(lease_found) << leases.out;
    // The dry run shows the same provider's candidate with the same services.
    bool candidate_found = false;
    for (const Json& match_group : match_json["groups"]) {
      if (match_group["name"] != group["name"]) continue;
      for (const Json& candidate : match_group["candidates"]) {
        if (candidate["provider"] != lease["provider"]) continue;
        candidate_found = true;
        EXPECT_EQ(candidate["services"], services);
      }
    }
    EXPECT_TRUE(candidate_found) << match.out;
    ++compared;
  }
  EXPECT_EQ(compared, 2u);
}

}  // namespace
}  // namespace gpumart::node
