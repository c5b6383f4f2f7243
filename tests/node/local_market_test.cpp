#include "node/local_market.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "actors/clock.h"
#include "ledger/store.h"
#include "ledger/verify.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "tests/temp_dir.h"

namespace gpumart::node {
namespace {

namespace fs = std::filesystem;

class LocalMarketTest : public ::testing::Test {
 protected:
  LocalMarketOptions Options(const std::string& sdl = "inference-and-web.yaml") const {
    LocalMarketOptions options;
    options.sdl_path = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/" + sdl;
    options.offers_path = std::string(GPUMART_SOURCE_DIR) + "/configs/offers-example.yaml";
    options.data_dir = dir_;
    return options;
  }
  gpumart::testing::TempDir temp_{"gpumart-local-market"};
  const std::string& dir_ = temp_.path();
};

TEST_F(LocalMarketTest, EveryGroupGetsTheBestBidAsADurableVerifiedLease) {
  Result<LocalMarketReport> report = RunLocalMarket(Options(), SystemClock::Instance());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->providers, 5u);
  ASSERT_EQ(report->groups.size(), 2u);
  const DemoGroup& gpu = report->groups[0];
  EXPECT_EQ(gpu.group, "gpu-west");
  ASSERT_TRUE(gpu.leased);
  // Preference policy: the H100 (option 0) wins although the A100 and L40S bids are cheaper.
  EXPECT_EQ(gpu.provider, "prov-a");
  ASSERT_EQ(gpu.bids.size(), 3u);
  EXPECT_EQ(gpu.bids[0].ranks, std::vector<uint32_t>{0});
  EXPECT_EQ(gpu.bids[1].ranks, std::vector<uint32_t>{1});
  EXPECT_EQ(gpu.bids[2].ranks, std::vector<uint32_t>{2});
  EXPECT_EQ(gpu.price_per_hour, gpu.bids[0].price_per_hour);
  EXPECT_LE(gpu.price_per_hour, gpu.cap_per_hour);
  ASSERT_EQ(gpu.services.size(), 1u);
  ASSERT_TRUE(gpu.services[0].device.has_value());
  EXPECT_EQ(gpu.services[0].device->model, "h100");
  // prov-c is in us-east; prov-e's GPUs have too little RAM.
  EXPECT_EQ(gpu.declined.size(), 2u);
  const DemoGroup& web = report->groups[1];
  ASSERT_TRUE(web.leased);
  EXPECT_EQ(web.provider, "prov-e");  // cheapest of four equal-rank bids
  EXPECT_TRUE(report->ledger_ok) << report->ledger_verify;

  // The leases are in the ledger, active, and the losing reservations are gone.
  Result<std::unique_ptr<ledger::LedgerStore>> store = ledger::LedgerStore::Open(report->ledger_path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (const DemoGroup& group : report->groups) {
    Result<ledger::LeaseRecord> lease = (*store)->GetLease(group.lease_id);
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    EXPECT_EQ(lease->state, ledger::LeaseState::kActive);
    EXPECT_EQ(lease->lease.price_per_hour, group.price_per_hour);
    // The lease embeds the winning bid byte for byte, and its terms are that bid's.
    ASSERT_FALSE(group.bids.empty());
    EXPECT_EQ(lease->lease.bid_id, group.bids[0].bid_id);
    Result<market::Signed<market::Bid>> winner = (*store)->GetBid(group.bids[0].bid_id);
    ASSERT_TRUE(winner.ok()) << winner.status().ToString();
    EXPECT_EQ(lease->lease.bid_envelope, market::EncodeEnvelope(winner->envelope));
    EXPECT_EQ(lease->lease.price_per_hour, winner->body.price_per_hour);
    EXPECT_EQ(lease->lease.services, winner->body.services);
    EXPECT_EQ(lease->provider(), winner->envelope.signer);
    for (const DemoBid& bid : group.bids) {
      EXPECT_FALSE((*store)->GetReservation(bid.bid_id).ok()) << "reservation of " << bid.provider << " still held";
    }
  }
  EXPECT_TRUE(ledger::VerifyLedger(**store).ok);
}

TEST_F(LocalMarketTest, CheapestPolicyPicksTheLowestPrice) {
  LocalMarketOptions options = Options();
  options.policy = market::Policy::kCheapest;
  Result<LocalMarketReport> report = RunLocalMarket(options, SystemClock::Instance());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->groups[0].provider, "prov-d");  // the L40S, option 2, is the cheapest
  EXPECT_EQ(report->groups[0].services[0].option, 2u);
}

// The same data dir is the same market: leases from earlier runs hold their capacity, so the
// fifth 2-GPU replica no longer fits on prov-a's eight H100s and falls back to prov-b's A100s.
TEST_F(LocalMarketTest, CapacityIsNeverDoubleBookedAcrossRuns) {
  std::vector<std::string> winners;
  for (int run = 0; run < 5; ++run) {
    Result<LocalMarketReport> report = RunLocalMarket(Options("llm-fallbacks.yaml"), SystemClock::Instance());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_TRUE(report->groups.at(0).leased);
    winners.push_back(report->groups[0].provider);
    EXPECT_TRUE(report->ledger_ok) << report->ledger_verify;
  }
  EXPECT_EQ(winners, (std::vector<std::string>{"prov-a", "prov-a", "prov-a", "prov-a", "prov-b"}));
}

TEST_F(LocalMarketTest, GroupNobodyCanTakeGetsNoLease) {
  const std::string sdl = dir_ + "/nobody.yaml";
  std::ifstream in(std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/llm-fallbacks.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.replace(text.find("region: us-west"), 15, "region: antarctica");
  std::ofstream(sdl) << text;
  LocalMarketOptions options = Options();
  options.sdl_path = sdl;
  Result<LocalMarketReport> report = RunLocalMarket(options, SystemClock::Instance());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->groups.size(), 1u);
  EXPECT_FALSE(report->groups[0].leased);
  EXPECT_TRUE(report->groups[0].bids.empty());
  EXPECT_EQ(report->groups[0].declined.size(), 5u);
  EXPECT_TRUE(report->ledger_ok);
}

// Two providers whose bids tie on ranks and price, so reputation decides; both list `auditor`.
class AttestedMarketTest : public LocalMarketTest {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ + "/keys");
    for (const char* name : {"prov-x", "prov-y"}) {
      Result<market::Identity> key = market::LoadOrCreateKeyFile(dir_ + "/keys/" + name + ".key");
      ASSERT_TRUE(key.ok()) << key.status().ToString();
      providers_.push_back(key->public_key());
    }
    const std::string named = market::ToHex(named_.public_key());
    options_ = Options("llm-fallbacks.yaml");
    options_.offers_path = dir_ + "/offers.yaml";
    std::ofstream offers(options_.offers_path);
    offers << "providers:\n";
    for (const char* name : {"prov-x", "prov-y"}) {
      offers << "  - id: " << name << "\n    attributes: {region: us-west}\n    auditors: ['" << named
             << "']\n    pricing: [{denom: uakt, gpu: {'*': 1000}, cpu: 1, memory: 1, storage: 1}]\n"
                "    nodes: [{name: n, cpu_millis: 64000, memory: 512Gi, storage: 2Ti,"
                " gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: '12.4', count: 8}]}]\n";
    }
    offers.close();
    // The order names the auditor (and an entry that is not a key, which is ignored).
    std::ifstream in(options_.sdl_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string region = "        region: us-west\n";
    text.replace(text.find(region), region.size(),
                 region + "      signedBy: {anyOf: ['" + named + "', 'not-a-key']}\n");
    options_.sdl_path = dir_ + "/attested.yaml";
    std::ofstream(options_.sdl_path) << text;
  }

  // Records `verdict` about providers_[provider] by `auditor` in the node's ledger.
  void Attest(const market::Identity& auditor, size_t provider, market::AuditVerdict verdict, int64_t attested_ms) {
    Result<std::unique_ptr<ledger::LedgerStore>> store = ledger::LedgerStore::Open(dir_ + "/ledger");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    const auto attestation = market::MakeSigned(
        auditor, market::Attestation{providers_[provider], verdict, attested_ms, ""}, attested_ms, 60'000, ++nonce_);
    Result<ledger::PreparedWrite> prepared = ledger::Prepare(ledger::RecordAttestation{attestation});
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    ASSERT_TRUE((*store)->Write(*prepared, attested_ms).ok());
  }

  std::string Winner() {
    Result<LocalMarketReport> report = RunLocalMarket(options_, SystemClock::Instance());
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    if (!report.ok() || report->groups.size() != 1) return "";
    EXPECT_TRUE(report->ledger_ok) << report->ledger_verify;
    EXPECT_EQ(report->groups[0].bids.size(), 2u);
    return report->groups[0].provider;
  }

  LocalMarketOptions options_;
  market::Identity named_ = market::Identity::Generate();
  market::Identity stranger_ = market::Identity::Generate();
  std::vector<market::PublicKey> providers_;
  uint64_t nonce_ = 0;
};

TEST_F(AttestedMarketTest, ANamedAuditorsFailVerdictChangesTheRanking) {
  // An auditor the tenant does not name changes nothing: the tie goes to the provider id.
  Attest(stranger_, 0, market::AuditVerdict::kFail, 1'000);
  Attest(stranger_, 1, market::AuditVerdict::kPass, 1'000);
  EXPECT_EQ(Winner(), "prov-x");
  // The auditor the order names says prov-x failed: prov-y wins.
  Attest(named_, 0, market::AuditVerdict::kFail, 2'000);
  EXPECT_EQ(Winner(), "prov-y");
}

TEST_F(AttestedMarketTest, ANamedAuditorsLaterVerdictReplacesItsEarlierOne) {
  Attest(named_, 1, market::AuditVerdict::kPass, 1'000);
  EXPECT_EQ(Winner(), "prov-y");
  Attest(named_, 1, market::AuditVerdict::kFail, 2'000);
  EXPECT_EQ(Winner(), "prov-x");
}

TEST_F(LocalMarketTest, BadInputsAreClearErrors) {
  LocalMarketOptions missing = Options();
  missing.sdl_path = dir_ + "/missing.yaml";
  Result<LocalMarketReport> report = RunLocalMarket(missing, SystemClock::Instance());
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("missing.yaml"), std::string::npos);
  LocalMarketOptions bad_offers = Options();
  bad_offers.offers_path = dir_ + "/offers.yaml";
  std::ofstream(bad_offers.offers_path) << "providers:\n  - {id: ../../etc/x, nodes: []}\n";
  EXPECT_FALSE(RunLocalMarket(bad_offers, SystemClock::Instance()).ok());
}

TEST_F(LocalMarketTest, ProviderIdsNeverEscapeTheKeysDirectory) {
  LocalMarketOptions options = Options("llm-fallbacks.yaml");
  options.offers_path = dir_ + "/offers.yaml";
  std::ofstream(options.offers_path)
      << "providers:\n  - id: ../escape\n    attributes: {region: us-west}\n"
         "    pricing: [{denom: uakt, gpu: {'*': 1000}, cpu: 1, memory: 1, storage: 1}]\n"
         "    nodes: [{name: n, cpu_millis: 64000, memory: 512Gi, storage: 2Ti,"
         " gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: '12.4', count: 8}]}]\n";
  Result<LocalMarketReport> report = RunLocalMarket(options, SystemClock::Instance());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->groups[0].leased);
  EXPECT_FALSE(fs::exists(dir_ + "/escape.key"));
  size_t keys = 0;
  for (const auto& entry : fs::directory_iterator(dir_ + "/keys")) {
    ++keys;
    EXPECT_EQ(entry.path().parent_path(), fs::path(dir_ + "/keys"));
  }
  EXPECT_EQ(keys, 2u);  // the tenant and the one provider
}

}  // namespace
}  // namespace gpumart::node
