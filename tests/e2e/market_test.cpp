// The market end to end, as real processes on loopback (tests/e2e/process_market.h): a relay and
// three providers of configs/demo/ (8 H100 SXM at 900,000 uakt per GPU-hour, 4 + 4 A100 at
// 450,000 / 280,000, 8 L40S at 220,000), and the `gpumart` CLI as a tenant would run it:
// `gpumart submit` through the relay's client port, `gpumart leases --node` at every node,
// `gpumart close`.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "actors/clock.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "node/client/client.h"
#include "tests/e2e/process_market.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using e2e::milliseconds;
using Json = nlohmann::json;

const std::string kDemo = std::string(GPUMART_SOURCE_DIR) + "/configs/demo/";
const std::string kLlmFallbacks = std::string(GPUMART_SOURCE_DIR) + "/configs/sdl/llm-fallbacks.yaml";

// `gpumart ARGS...`, bounded.
testing::ProcessResult Gpumart(std::vector<std::string> args, int timeout_ms = 15'000) {
  args.insert(args.begin(), testing::GpumartBinary());
  return testing::RunProcess(args, timeout_ms);
}

Json ParseJson(const std::string& text) { return Json::parse(text, nullptr, /*allow_exceptions=*/false); }

class MarketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<e2e::Node*> relay = market_.StartRelay(kDemo + "relay.yaml");
    ASSERT_TRUE(relay.ok()) << relay.status().ToString();
    for (const char* name : {"h100", "a100", "l40s"}) {
      Result<e2e::Node*> provider = market_.StartPeer(name, kDemo + "provider-" + name + ".yaml");
      ASSERT_TRUE(provider.ok()) << provider.status().ToString();
    }
    const Status linked = market_.WaitLinked(3);
    ASSERT_TRUE(linked.ok()) << linked.ToString() << "\n" << market_.Logs();
  }

  e2e::Node& node(const std::string& name) { return *market_.node(name); }
  std::string Key(const std::string& tenant) const { return temp_.Sub(tenant + ".key"); }

  // `gpumart submit SDL --json` as `tenant` through the relay; the parsed output (null when it
  // printed none).
  Json Submit(const std::string& sdl, const std::string& policy, const std::string& tenant = "tenant",
              std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"submit", sdl, "--node", market_.relay()->client_address, "--key", Key(tenant),
                                  "--policy", policy, "--bid-window", "2000", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    last_ = Gpumart(args);
    return ParseJson(last_.out);
  }

  // The leases `gpumart leases --node` lists at `name`'s client port.
  Json LeasesAt(const std::string& name) {
    const auto result = Gpumart({"leases", "--node", node(name).client_address, "--json"});
    EXPECT_EQ(result.exit_code, 0) << name << ": " << result.err;
    return ParseJson(result.out);
  }
  // Waits until `name`'s ledger has `lease_id` in `state` (gossip takes a moment to reach it).
  bool LedgerHas(const std::string& name, const std::string& lease_id, const std::string& state) {
    return testing::Eventually(
        [&] {
          const Json leases = LeasesAt(name);
          if (!leases.is_object()) return false;
          for (const Json& lease : leases.value("leases", Json::array())) {
            if (lease.value("id", "") == lease_id && lease.value("state", "") == state) return true;
          }
          return false;
        },
        milliseconds(5'000));
  }

  std::string Context() const { return "submit exit " + std::to_string(last_.exit_code) + "\nstdout:\n" + last_.out +
                                       "\nstderr:\n" + last_.err + "\n" + market_.Logs(); }

  testing::TempDir temp_{"gpumart-e2e"};
  e2e::ProcessMarket market_{temp_.path(), GPUMART_BIN_DIR};
  testing::ProcessResult last_;
};

// The harness itself: every provider's Offer reaches the relay's book, and every daemon stops
// cleanly on SIGTERM (a provider withdraws its Offer first).
TEST_F(MarketTest, ProvidersOffersReachTheRelayAndEveryNodeStopsCleanly) {
  for (const auto& daemon : market_.nodes()) {
    if (daemon.get() == market_.relay()) continue;
    EXPECT_EQ(daemon->process->Terminate(milliseconds(10'000)), 0) << daemon->Logs();
    EXPECT_NE(daemon->out().find("provider offer withdrawn\n"), std::string::npos) << daemon->Logs();
  }
  EXPECT_EQ(market_.relay()->process->Terminate(milliseconds(10'000)), 0) << market_.relay()->Logs();
}

// An LLM with fallbacks (H100 SXM, else A100 80Gi, else any 48Gi): the preference policy leases
// the H100s, the cheapest one the L40Ss; every node's ledger records both leases.
TEST_F(MarketTest, SubmitLeasesFromTheProviderThePolicyPicks) {
  const Json preferred = Submit(kLlmFallbacks, "preference");
  ASSERT_EQ(last_.exit_code, 0) << Context();
  ASSERT_TRUE(preferred.is_object()) << Context();
  const Json& by_preference = preferred["groups"][0]["lease"];
  ASSERT_TRUE(by_preference.is_object()) << Context();
  EXPECT_EQ(by_preference["provider"], node("h100").key_hex) << Context();
  EXPECT_EQ(by_preference["services"][0]["device"]["model"], "h100") << Context();

  const Json cheapest = Submit(kLlmFallbacks, "cheapest");
  ASSERT_EQ(last_.exit_code, 0) << Context();
  const Json& by_price = cheapest["groups"][0]["lease"];
  ASSERT_TRUE(by_price.is_object()) << Context();
  EXPECT_EQ(by_price["provider"], node("l40s").key_hex) << Context();
  EXPECT_EQ(by_price["price_per_hour"].get<uint64_t>() < by_preference["price_per_hour"].get<uint64_t>(), true);

  for (const char* name : {"relay", "h100", "a100", "l40s"}) {
    EXPECT_TRUE(LedgerHas(name, by_preference["id"], "active")) << name << "\n" << LeasesAt(name).dump(2);
    EXPECT_TRUE(LedgerHas(name, by_price["id"], "active")) << name << "\n" << LeasesAt(name).dump(2);
  }
}

// The relay's dry run for an order of all 8 H100s on one node: whether the H100 provider's
// latest Offer (as the relay's offer book holds it) could take it.
class OfferWatch {
 public:
  explicit OfferWatch(const std::string& relay_client) {
    auto connected = client::Client::Connect(relay_client);
    if (connected.ok()) client_ = std::move(connected).value();
    market::ServiceRequest service;
    service.name = "train";
    service.profile = "train";
    service.resources.cpu_millis = 1000;
    service.resources.memory_bytes = market::kGi;
    service.resources.gpu.units = 8;
    service.resources.gpu.options = {market::GpuOption{"nvidia", "h100", 80 * market::kGi, market::GpuInterface::kSxm}};
    service.price_cap = market::PriceCap{"uakt", 100'000, market::PerBlockToPerHour(100'000)};
    order_.group = "all-h100";
    order_.services = {service};
  }
  bool ok() const { return client_ != nullptr; }
  const std::string& last_answer() const { return last_answer_; }
  // True when `provider` is a candidate for all 8 H100s.
  bool AllFree(const std::string& provider) {
    const auto envelope = market::EncodeEnvelope(
        market::MakeSigned(identity_, order_, SystemClock::Instance().NowMs(), 60'000, market::RandomNonce()).envelope);
    auto answer = client_->Call("match", {{"orders", std::vector<market::Bytes>{envelope}}});
    if (!answer.ok()) return false;
    auto text = client::Require<std::string>(*answer, "json");
    if (!text.ok()) return false;
    const Json json = ParseJson(**text);
    last_answer_ = json.dump();
    for (const Json& candidate : json["groups"][0]["candidates"]) {
      if (candidate.value("provider", "") == provider) return true;
    }
    return false;
  }

 private:
  const market::Identity identity_ = market::Identity::Generate();
  market::Order order_;
  std::unique_ptr<client::Client> client_;
  std::string last_answer_;
};

// A lease holds its GPUs (the provider's next Offer has 6 of 8 H100s free); `gpumart close`,
// signed by the tenant, frees them (the next Offer has all 8) and every ledger has it closed.
TEST_F(MarketTest, ClosingALeaseFreesItsCapacity) {
  OfferWatch watch(market_.relay()->client_address);
  ASSERT_TRUE(watch.ok());
  const std::string h100 = node("h100").key_hex;
  ASSERT_TRUE(testing::Eventually([&] { return watch.AllFree(h100); }, milliseconds(5'000))) << watch.last_answer();

  const Json submitted = Submit(kLlmFallbacks, "preference");
  ASSERT_EQ(last_.exit_code, 0) << Context();
  const Json& lease = submitted["groups"][0]["lease"];
  ASSERT_EQ(lease["provider"], h100) << Context();
  EXPECT_TRUE(testing::Eventually([&] { return !watch.AllFree(h100); }, milliseconds(5'000))) << watch.last_answer();

  ASSERT_TRUE(LedgerHas("relay", lease["id"], "active"));  // the node checks a Close against its ledger
  const auto closed = Gpumart({"close", lease["id"], "--node", market_.relay()->client_address, "--key", Key("tenant")});
  ASSERT_EQ(closed.exit_code, 0) << closed.out << closed.err << market_.Logs();
  EXPECT_TRUE(testing::Eventually([&] { return watch.AllFree(h100); }, milliseconds(5'000))) << watch.last_answer();
  for (const char* name : {"relay", "h100", "a100", "l40s"}) {
    EXPECT_TRUE(LedgerHas(name, lease["id"], "closed")) << name << "\n" << LeasesAt(name).dump(2);
  }
}

// The winner dies between its bid and its Lease: the tenant takes the next best bid. To hold the
// bid window open until the winner is dead, a fourth provider with cheaper H100s (so its bid
// could beat the winner's) has its Offer in the relay's book and is stopped (SIGSTOP) before the
// order: it never answers, so the window runs to its end; the H100 provider is SIGKILLed as soon
// as it has bid. The tenant accepts its bid, gets no Lease within --lease-timeout, and accepts
// the A100 provider's, the next under the preference policy.
TEST_F(MarketTest, KillingTheWinnerBeforeItConfirmsTakesTheNextBid) {
  std::string cheaper = e2e::ReadWholeFile(kDemo + "provider-h100.yaml");
  const std::string price = "h100.80Gi.sxm: 900000";
  ASSERT_NE(cheaper.find(price), std::string::npos);
  cheaper.replace(cheaper.find(price), price.size(), "h100.80Gi.sxm: 800000");
  Result<e2e::Node*> silent = market_.StartPeerFromText("h100-silent", cheaper);
  ASSERT_TRUE(silent.ok()) << silent.status().ToString();
  ASSERT_TRUE(market_.WaitLinked(4).ok()) << market_.Logs();
  ASSERT_TRUE((*silent)->process->Signal(SIGSTOP));

  std::vector<std::string> argv{testing::GpumartBinary(), "submit", kLlmFallbacks, "--node",
                                market_.relay()->client_address, "--key", Key("tenant"), "--policy", "preference",
                                "--bid-window", "1500", "--lease-timeout", "1000", "--json"};
  auto submit = e2e::Process::Start(argv, temp_.Sub("submit"));
  ASSERT_TRUE(submit.ok()) << submit.status().ToString();
  e2e::Node& winner = node("h100");
  ASSERT_TRUE(winner.process->WaitForOutput(", bids 1", milliseconds(5'000))) << winner.Logs();
  winner.process->Kill();

  ASSERT_TRUE(testing::Eventually([&] { return !(*submit)->Alive(); }, milliseconds(15'000)))
      << (*submit)->out() << (*submit)->err();
  const std::string out = (*submit)->out();
  EXPECT_EQ((*submit)->exit_code(), 0) << out << (*submit)->err() << market_.Logs();
  const Json json = ParseJson(out);
  ASSERT_TRUE(json.is_object()) << out << (*submit)->err();
  const Json& group = json["groups"][0];
  EXPECT_EQ(group["accepts"], 2) << out;
  ASSERT_TRUE(group["lease"].is_object()) << out;
  EXPECT_EQ(group["lease"]["provider"], node("a100").key_hex) << out;
  EXPECT_EQ(group["lease"]["services"][0]["device"]["model"], "a100") << out;
  // The Accept of the dead provider's bid is given up on, never answered.
  EXPECT_EQ(json["unresolved_accepts"], 1) << out;
  EXPECT_NE((*submit)->err().find("got neither a lease nor a refusal"), std::string::npos) << (*submit)->err();
}

// A tenant cannot close another tenant's lease: the node refuses the Close (it is signed by
// neither party) with a clear error, nothing is gossiped, and the lease stays active everywhere.
TEST_F(MarketTest, ClosingSomeoneElsesLeaseIsRefused) {
  const Json submitted = Submit(kLlmFallbacks, "preference", "alice");
  ASSERT_EQ(last_.exit_code, 0) << Context();
  const std::string lease = submitted["groups"][0]["lease"]["id"];

  for (const char* name : {"relay", "a100"}) ASSERT_TRUE(LedgerHas(name, lease, "active")) << name;
  const auto mallory = Gpumart({"keygen", "-o", Key("mallory")});
  ASSERT_EQ(mallory.exit_code, 0) << mallory.err;
  const auto refused = Gpumart({"close", lease, "--node", market_.relay()->client_address, "--key", Key("mallory")});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("neither the tenant"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(lease), std::string::npos) << refused.err;

  // Through a provider's own node too: each node checks the Close against its ledger.
  const auto at_provider = Gpumart({"close", lease, "--node", node("a100").client_address, "--key", Key("mallory")});
  EXPECT_EQ(at_provider.exit_code, 1) << at_provider.out << at_provider.err;

  for (const char* name : {"relay", "h100", "a100", "l40s"}) {
    EXPECT_TRUE(LedgerHas(name, lease, "active")) << name << "\n" << LeasesAt(name).dump(2);
  }
}

}  // namespace
}  // namespace gpumart
