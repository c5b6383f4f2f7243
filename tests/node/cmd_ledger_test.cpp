// End-to-end tests of `gpumart ledger verify` and `gpumart leases`, run as the real executable.
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "ledger/keys.h"
#include "ledger/store.h"
#include "tests/ledger/test_leases.h"
#include "tests/node/run_process.h"

namespace gpumart {
namespace {

using ledger::testing::kStartMs;
using testing::GpumartBinary;
using testing::RunProcess;

class LedgerCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gpumart-ledger-cli-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    data_dir_ = pattern;
    auto store = ledger::LedgerStore::Open(data_dir_ + "/ledger");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < 5; ++i) {
      const auto lease = parties_.FreshLease();
      leases_.push_back(lease);
      ASSERT_TRUE(Write(**store, ledger::RecordLease{lease}).ok());
    }
    const auto close = parties_.Close(leases_[0].id, parties_.tenant(), market::CloseReason::kTenantClosed,
                                      kStartMs + 3'600'000);
    ASSERT_TRUE(Write(**store, ledger::RecordClose{close}).ok());
  }
  void TearDown() override { std::filesystem::remove_all(data_dir_); }

  static Status Write(ledger::LedgerStore& store, ledger::LedgerWrite write) {
    auto prepared = ledger::Prepare(std::move(write));
    if (!prepared.ok()) return prepared.status();
    return store.Write(*prepared, kStartMs);
  }

  // Changes the ledger behind its back, as an attacker or a bad disk would.
  void Tamper(const std::function<void(leveldb::DB&)>& change) {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), data_dir_ + "/ledger", &raw).ok());
    change(*raw);
    delete raw;
  }

  std::string data_dir_;
  ledger::testing::Parties parties_;
  std::vector<market::Signed<market::Lease>> leases_;
};

TEST_F(LedgerCliTest, VerifyPassesOnAGoodLedger) {
  auto result = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", data_dir_});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("ok"), std::string::npos) << result.out;
  result = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", data_dir_, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_TRUE(json["ok"].get<bool>());
  EXPECT_EQ(json["records"], 6);
  EXPECT_EQ(json["signatures"], 11);
  EXPECT_EQ(json["head"]["seq"], 6);  // one chain entry per batch: 5 leases, 1 close
}

TEST_F(LedgerCliTest, VerifyCatchesAFlippedByteAndNamesTheKey) {
  const std::string key = ledger::keys::Id(ledger::keys::kLease, leases_[2].id);
  Tamper([&](leveldb::DB& db) {
    std::string value;
    ASSERT_TRUE(db.Get(leveldb::ReadOptions(), key, &value).ok());
    value[value.size() - 10] ^= 0x01;
    ASSERT_TRUE(db.Put(leveldb::WriteOptions(), key, value).ok());
  });
  auto result = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", data_dir_});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find(ledger::keys::Describe(key)), std::string::npos) << result.err;
  result = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", data_dir_, "--json"});
  EXPECT_EQ(result.exit_code, 1);
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_FALSE(json["ok"].get<bool>());
  EXPECT_EQ(json["key"], ledger::keys::Describe(key));
}

TEST_F(LedgerCliTest, VerifyCatchesADeletedIndexEntry) {
  const std::string key = ledger::keys::Pair(ledger::keys::kLeaseByProvider, parties_.provider().public_key(),
                                             leases_[3].id);
  Tamper([&](leveldb::DB& db) { ASSERT_TRUE(db.Delete(leveldb::WriteOptions(), key).ok()); });
  auto result = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", data_dir_});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find(ledger::keys::Describe(key)), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("missing index entry"), std::string::npos) << result.err;
}

TEST_F(LedgerCliTest, LeasesJsonListsFiltersAndPages) {
  auto result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json["leases"].size(), 5u);
  EXPECT_TRUE(json["next_after"].is_null());

  result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_, "--state", "closed", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json["leases"].size(), 1u);
  const auto& closed = json["leases"][0];
  EXPECT_EQ(closed["id"], market::ToHex(leases_[0].id));
  EXPECT_EQ(closed["state"], "closed");
  EXPECT_EQ(closed["tenant"], market::ToHex(parties_.tenant().public_key()));
  EXPECT_EQ(closed["provider"], market::ToHex(parties_.provider().public_key()));
  EXPECT_EQ(closed["billing"]["duration_ms"], 3'600'000);
  EXPECT_EQ(closed["billing"]["amount_owed"], ledger::testing::kPricePerHour);
  EXPECT_EQ(closed["close"]["reason"], market::ToString(market::CloseReason::kTenantClosed));

  result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_, "--tenant",
                       market::ToHex(parties_.tenant().public_key()), "--limit", "3", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json["leases"].size(), 3u);
  ASSERT_TRUE(json["next_after"].is_string());
  result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_, "--tenant",
                       market::ToHex(parties_.tenant().public_key()), "--limit", "3", "--after",
                       json["next_after"].get<std::string>(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["leases"].size(), 2u);

  result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find(market::ToHex(leases_[0].id)), std::string::npos) << result.out;
}

// Item 8 of issue 11: a stored lease holding strings that are not UTF-8 (a peer's bytes, a
// damaged disk) made `gpumart leases --json` die in std::terminate (the JSON writer threw). Now
// it either prints valid JSON with U+FFFD for each bad byte, or, where the decoder refuses such a
// record, a clear error; never an abort. The record goes straight into LevelDB, so the test does
// not depend on what the write path accepts.
TEST_F(LedgerCliTest, LeasesJsonSurvivesStringsThatAreNotUtf8) {
  // A lease's terms come from the Bid it embeds, so the bad strings go into that Bid.
  auto bid = market::OpenSigned<market::Bid>(leases_[1].body.bid_envelope, 0, market::Freshness::kIgnore);
  ASSERT_TRUE(bid.ok()) << bid.status().ToString();
  bid->body.denom = "u\xff\xfekt";
  bid->body.services[0].placements[0].node = "n\xc3";  // a truncated two-byte sequence
  market::Lease body = leases_[1].body;
  body.bid_envelope = market::EncodeEnvelope(
      market::MakeSigned(parties_.provider(), bid->body, kStartMs, ledger::testing::kTtlMs, 1'000'000).envelope);
  const auto bad = market::MakeSigned(parties_.provider(), body, kStartMs, ledger::testing::kTtlMs, 1'000'001);
  Tamper([&](leveldb::DB& db) {
    const market::Bytes bytes = market::EncodeEnvelope(bad.envelope);
    ASSERT_TRUE(db.Put(leveldb::WriteOptions(), ledger::keys::Id(ledger::keys::kLease, bad.id),
                       std::string(bytes.begin(), bytes.end()))
                    .ok());
  });
  for (const bool json : {true, false}) {
    std::vector<std::string> argv{GpumartBinary(), "leases", "--data-dir", data_dir_};
    if (json) argv.push_back("--json");
    const auto result = RunProcess(argv);
    ASSERT_FALSE(result.timed_out);
    ASSERT_TRUE(result.exit_code == 0 || result.exit_code == 1)
        << "exit " << result.exit_code << " (-1: killed by a signal)\n" << result.err;
    if (result.exit_code == 1) {
      // The decoder refused the record: a clear error naming the command, nothing on stdout.
      EXPECT_TRUE(result.err.starts_with("gpumart leases: ")) << result.err;
      EXPECT_TRUE(result.out.empty()) << result.out;
      continue;
    }
    if (!json) continue;
    const auto parsed = nlohmann::json::parse(result.out, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(parsed.is_discarded()) << result.out;
    bool found = false;
    for (const auto& lease : parsed["leases"]) {
      if (lease["id"] != market::ToHex(bad.id)) continue;
      found = true;
      EXPECT_EQ(lease["denom"], "u\uFFFD\uFFFDkt");
      EXPECT_EQ(lease["services"][0]["placements"][0]["node"], "n\uFFFD");
    }
    EXPECT_TRUE(found) << result.out;
  }
}

TEST_F(LedgerCliTest, ClearErrorsForBadInputMissingAndLockedLedgers) {
  auto result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_, "--tenant", "xyz"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("64 hex digits"), std::string::npos) << result.err;

  result = RunProcess({GpumartBinary(), "ledger", "verify", "--data-dir", data_dir_ + "/nowhere"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("nowhere/ledger"), std::string::npos) << result.err;

  auto holder = ledger::LedgerStore::Open(data_dir_ + "/ledger");
  ASSERT_TRUE(holder.ok());
  result = RunProcess({GpumartBinary(), "leases", "--data-dir", data_dir_});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("in use by another process"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace gpumart
