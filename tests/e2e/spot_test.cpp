// Interruptible (spot) leases end to end, as real processes on loopback (docs/SPOT.md): a relay,
// the spot provider of configs/provider-spot.yaml (four A10s, spot at 70% off, 3 s notice) and a
// second relay as one more node that only watches. `gpumart submit` leases spot capacity
// (configs/sdl/spot-training.yaml); a full-price order that does not fit otherwise
// (configs/sdl/a10-inference.yaml) preempts it, and every node closes the spot lease with the
// notice honoured and billing stopped at the effective time. A preemption Close that breaks the
// notice, signed with the provider's own key, is refused by every node.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <map>
#include <string>
#include <vector>

#include "actors/clock.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "market/sdl.h"
#include "node/client/client.h"
#include "tests/e2e/process_market.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using e2e::milliseconds;
using Json = nlohmann::json;

const std::string kConfigs = std::string(GPUMART_SOURCE_DIR) + "/configs/";
const std::string kSpotTraining = kConfigs + "sdl/spot-training.yaml";
const std::string kFullPrice = kConfigs + "sdl/a10-inference.yaml";
constexpr int64_t kNoticeMs = 3'000;  // configs/provider-spot.yaml
const char* const kNodes[] = {"relay", "spot", "watcher"};

testing::ProcessResult SpotGpumart(std::vector<std::string> args, int timeout_ms = 15'000) {
  args.insert(args.begin(), testing::GpumartBinary());
  return testing::RunProcess(args, timeout_ms);
}

Json AsJson(const std::string& text) { return Json::parse(text, nullptr, /*allow_exceptions=*/false); }

class SpotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<e2e::Node*> relay = market_.StartRelay(kConfigs + "demo/relay.yaml");
    ASSERT_TRUE(relay.ok()) << relay.status().ToString();
    Result<e2e::Node*> spot = market_.StartPeer("spot", kConfigs + "provider-spot.yaml");
    ASSERT_TRUE(spot.ok()) << spot.status().ToString();
    Result<e2e::Node*> watcher = market_.StartPeer("watcher", kConfigs + "demo/relay.yaml");
    ASSERT_TRUE(watcher.ok()) << watcher.status().ToString();
    const Status linked = market_.WaitLinked(1);
    ASSERT_TRUE(linked.ok()) << linked.ToString() << "\n" << market_.Logs();
  }

  e2e::Node& node(const std::string& name) { return *market_.node(name); }

  // `gpumart submit SDL --json` through the relay: the lease it got (null when none).
  Json Submit(const std::string& sdl) {
    last_ = SpotGpumart({"submit", sdl, "--node", market_.relay()->client_address, "--key", temp_.Sub("tenant.key"),
                         "--bid-window", "1000", "--json"});
    const Json out = AsJson(last_.out);
    if (!out.is_object() || !out["groups"].is_array() || out["groups"].empty()) return nullptr;
    return out["groups"][0]["lease"];
  }

  // The lease as `name`'s ledger has it, once it is there in `state` (null if it never is).
  Json LeaseAt(const std::string& name, const std::string& lease_id, const std::string& state,
               milliseconds timeout = milliseconds(5'000)) {
    Json found = nullptr;
    testing::Eventually(
        [&] {
          const auto result = SpotGpumart({"leases", "--node", node(name).client_address, "--json"});
          const Json leases = AsJson(result.out);
          if (!leases.is_object()) return false;
          for (const Json& lease : leases.value("leases", Json::array())) {
            if (lease.value("id", "") != lease_id || lease.value("state", "") != state) continue;
            found = lease;
            return true;
          }
          return false;
        },
        timeout);
    return found;
  }

  // Waits until the relay's dry run of `sdl` lists the spot provider: its latest Offer (which
  // counts spot-leased capacity as free) has reached the relay's offer book.
  bool RelayWouldMatch(const std::string& sdl) {
    Result<market::Deployment> deployment = market::ParseSdlFile(sdl);
    if (!deployment.ok() || deployment->orders.empty()) return false;
    auto client = client::Client::Connect(market_.relay()->client_address);
    if (!client.ok()) return false;
    const market::Bytes body = market::EncodeBody(deployment->orders[0]);
    return testing::Eventually(
        [&] {
          auto answer = (*client)->Call("match", {{"orders", std::vector<market::Bytes>{body}}});
          if (!answer.ok()) return false;
          auto text = client::Require<std::string>(*answer, "json");
          if (!text.ok()) return false;
          const Json json = AsJson(**text);
          return json.is_object() && !json["groups"][0]["candidates"].empty();
        },
        milliseconds(5'000));
  }

  // `records_refused` of `name`'s status: gossiped records its ledger refused.
  int64_t RecordsRefused(const std::string& name) {
    const auto status = SpotGpumart({"status", "--node", node(name).client_address, "--json"});
    const Json json = AsJson(status.out);
    return json.is_object() ? json.value("records_refused", int64_t{0}) : -1;
  }

  std::string Context() const {
    return "submit exit " + std::to_string(last_.exit_code) + "\nstdout:\n" + last_.out + "\nstderr:\n" + last_.err +
           "\n" + market_.Logs();
  }

  testing::TempDir temp_{"gpumart-e2e-spot"};
  e2e::ProcessMarket market_{temp_.path(), GPUMART_BIN_DIR};
  testing::ProcessResult last_;
};

TEST_F(SpotTest, AFullPriceOrderPreemptsASpotLeaseWithNoticeAndBillingStops) {
  const Json spot = Submit(kSpotTraining);
  ASSERT_TRUE(spot.is_object()) << Context();
  EXPECT_EQ(spot["provider"], node("spot").key_hex);
  // Priced at the spot rates: 4 x 120000 + 8 x 1200 + 32 x 150 + 50 x 3.
  EXPECT_EQ(spot["price_per_hour"], 494'550) << Context();
  const std::string spot_id = spot["id"];
  const Json recorded = LeaseAt("watcher", spot_id, "active");
  ASSERT_TRUE(recorded.is_object()) << market_.Logs();
  EXPECT_EQ(recorded["spot"]["notice_ms"], kNoticeMs);

  // Two A10s at full price: none is free, so the provider preempts the spot lease.
  ASSERT_TRUE(RelayWouldMatch(kFullPrice)) << market_.Logs();
  const Json full = Submit(kFullPrice);
  ASSERT_TRUE(full.is_object()) << Context();
  EXPECT_EQ(full["provider"], node("spot").key_hex);
  EXPECT_TRUE(full["spot"].is_null() || !full.contains("spot"));
  const std::string full_id = full["id"];
  const int64_t full_start_ms = full["start_ms"];

  for (const char* name : kNodes) {
    SCOPED_TRACE(name);
    const Json closed = LeaseAt(name, spot_id, "closed");
    ASSERT_TRUE(closed.is_object()) << market_.Logs();
    const Json& close = closed["close"];
    EXPECT_EQ(close["reason"], "preempted");
    EXPECT_EQ(close["closed_by"], node("spot").key_hex);
    EXPECT_EQ(close["preemptor_lease"], full_id);
    // The full-price lease starts when the spot lease has given up the GPUs.
    const int64_t closed_ms = close["closed_ms"];
    EXPECT_EQ(closed_ms, full_start_ms);
    // Billing stopped at the effective time: whole seconds from the start to closed_ms.
    const int64_t start_ms = closed["start_ms"];
    EXPECT_EQ(closed["billing"]["duration_ms"], (closed_ms - start_ms) / 1000 * 1000);
    EXPECT_TRUE(LeaseAt(name, full_id, "active").is_object());
  }
  // The notice: the Close was signed at least kNoticeMs before it took effect.
  auto client = client::Client::Connect(node("watcher").client_address);
  ASSERT_TRUE(client.ok());
  const auto id = market::FromHex<market::kIdBytes>(spot_id);
  ASSERT_TRUE(id.has_value());
  auto answer = (*client)->Call("lease", {{"lease", client::Bytes(id->begin(), id->end())}});
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  auto close_bytes = client::Require<client::Bytes>(*answer, "close_envelope");
  ASSERT_TRUE(close_bytes.ok());
  auto close = market::OpenSigned<market::Close>(**close_bytes, 0, market::Freshness::kIgnore);
  ASSERT_TRUE(close.ok()) << close.status().ToString();
  EXPECT_GE(close->body.closed_ms, close->envelope.created_ms + kNoticeMs);
}

TEST_F(SpotTest, APreemptionThatBreaksTheRulesIsRefusedByEveryNode) {
  const Json spot = Submit(kSpotTraining);
  ASSERT_TRUE(spot.is_object()) << Context();
  const std::string spot_id = spot["id"];
  for (const char* name : kNodes) ASSERT_TRUE(LeaseAt(name, spot_id, "active").is_object()) << name;

  // The provider's own key, as a provider that cheats would use it: a real regular lease (a
  // tenant it controls accepts a bid of its), and a preemption citing it with no notice at all.
  Result<market::Identity> provider = market::LoadKeyFile(node("spot").data_dir + "/identity.key");
  ASSERT_TRUE(provider.ok()) << provider.status().ToString();
  const market::Identity accomplice = market::Identity::Generate();
  const int64_t now_ms = SystemClock::Instance().NowMs();
  market::Bid bid;
  bid.order_id = market::Blake2b256(reinterpret_cast<const uint8_t*>("no such order"), 13);
  bid.tenant = accomplice.public_key();
  bid.group = "dcloud";
  bid.denom = "uakt";
  bid.price_per_hour = 848'500;
  bid.services = {market::ServiceAssignment{
      "server", 0, market::DeviceType{"nvidia", "a10", 24 * market::kGi, market::GpuInterface::kPcie},
      {market::Placement{"a10-01", 1}}}};
  bid.reservation_expires_ms = now_ms + 30'000;
  const auto signed_bid = market::MakeSigned(*provider, bid, now_ms, 30'000, market::RandomNonce());
  const auto accept = market::MakeSigned(accomplice, market::Accept{bid.order_id, signed_bid.id, provider->public_key()},
                                         now_ms, 30'000, market::RandomNonce());
  auto lease = market::BuildLease(market::EncodeEnvelope(accept.envelope), market::EncodeEnvelope(signed_bid.envelope),
                                  now_ms);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  const auto preemptor = market::MakeSigned(*provider, *lease, now_ms, 60'000, market::RandomNonce());
  const auto spot_lease_id = market::FromHex<market::kIdBytes>(spot_id);
  ASSERT_TRUE(spot_lease_id.has_value());
  market::Close hasty{*spot_lease_id, market::CloseReason::kPreempted, now_ms, "preempted without notice",
                      market::EncodeEnvelope(preemptor.envelope)};
  const auto close = market::MakeSigned(*provider, hasty, now_ms, 60'000, market::RandomNonce());

  // What each node's ledger refused so far (a duplicate delivery is refused too).
  std::map<std::string, int64_t> refused_before;
  for (const char* name : kNodes) refused_before[name] = RecordsRefused(name);
  auto client = client::Client::Connect(market_.relay()->client_address);
  ASSERT_TRUE(client.ok());
  auto published = (*client)->Publish(market::EncodeEnvelope(close.envelope));
  ASSERT_TRUE(published.ok()) << published.status().ToString();

  // Every node's ledger refuses it (the feed counts the refusal) and keeps the lease active.
  for (const char* name : kNodes) {
    SCOPED_TRACE(name);
    const bool refused = testing::Eventually(
        [&] { return RecordsRefused(name) > refused_before[name]; },
        milliseconds(5'000));
    EXPECT_TRUE(refused) << market_.Logs();
    const Json still = LeaseAt(name, spot_id, "active", milliseconds(1'000));
    EXPECT_TRUE(still.is_object()) << market_.Logs();
    EXPECT_TRUE(still.is_object() && still["close"].is_null());
  }
}

// `gpumart submit --keep-running`: the spot job is preempted, waits out its backoff, and is
// submitted again by itself once capacity is back (here: the full-price lease is closed by its
// tenant after it started).
TEST_F(SpotTest, KeepRunningResubmitsAPreemptedSpotJob) {
  std::vector<std::string> argv{testing::GpumartBinary(), "submit", kSpotTraining, "--node",
                                market_.relay()->client_address, "--key", temp_.Sub("spot-tenant.key"),
                                "--bid-window", "500", "--keep-running", "--max-restarts", "5",
                                "--restart-backoff", "500"};
  auto keeper = e2e::Process::Start(argv, temp_.Sub("keeper"));
  ASSERT_TRUE(keeper.ok()) << keeper.status().ToString();
  ASSERT_TRUE(testing::Eventually([&] { return (*keeper)->err().find("keeping 1 group running") != std::string::npos; },
                             milliseconds(5'000)))
      << (*keeper)->out() << (*keeper)->err() << market_.Logs();
  // The spot lease is the provider's only one (no regular order was placed yet).
  const std::string first = e2e::LineAfter((*keeper)->out(), "  lease ").substr(0, 64);
  ASSERT_EQ(first.size(), 64u) << (*keeper)->out();

  ASSERT_TRUE(RelayWouldMatch(kFullPrice)) << market_.Logs();
  const Json full = Submit(kFullPrice);
  ASSERT_TRUE(full.is_object()) << Context();
  // Preempted: the keeper notices and tries again (no capacity yet: 2 of 4 A10s are taken).
  EXPECT_TRUE(testing::Eventually([&] { return (*keeper)->err().find("ended (preempted") != std::string::npos; },
                             milliseconds(5'000)))
      << (*keeper)->err();
  // The full-price lease ends once it has started (a lease cannot close before its start).
  const int64_t start_ms = full["start_ms"];
  testing::Eventually([&] { return SystemClock::Instance().NowMs() > start_ms + 100; }, milliseconds(5'000));
  const auto closed = SpotGpumart({"close", full["id"], "--node", market_.relay()->client_address, "--key",
                                   temp_.Sub("tenant.key")});
  ASSERT_EQ(closed.exit_code, 0) << closed.out << closed.err;
  EXPECT_TRUE(testing::Eventually([&] { return (*keeper)->err().find("running again as lease") != std::string::npos; },
                             milliseconds(8'000)))
      << (*keeper)->out() << (*keeper)->err() << market_.Logs();
  (*keeper)->Kill();
}

}  // namespace
}  // namespace gpumart
