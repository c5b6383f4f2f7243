#include "market/match.h"

#include <gtest/gtest.h>

#include <chrono>

namespace gpumart::market {
namespace {

GpuOption Option(std::string model, std::optional<uint64_t> ram_gi = std::nullopt,
                 std::optional<GpuInterface> interface = std::nullopt) {
  GpuOption option;
  option.model = std::move(model);
  if (ram_gi) option.ram_min_bytes = *ram_gi * kGi;
  option.interface = interface;
  return option;
}

ServiceRequest Service(std::string name, uint32_t count, uint32_t units, std::vector<GpuOption> options,
                       uint64_t cap_per_hour = 10'000'000) {
  ServiceRequest service;
  service.name = std::move(name);
  service.count = count;
  service.resources.cpu_millis = 1000;
  service.resources.memory_bytes = 1 * kGi;
  service.resources.storage.push_back({"default", 1 * kGi, std::nullopt, false});
  service.resources.gpu.units = units;
  service.resources.gpu.options = std::move(options);
  service.price_cap = {"uakt", 0, cap_per_hour};
  return service;
}

Order OrderOf(std::vector<ServiceRequest> services) {
  Order order;
  order.group = "dc";
  order.services = std::move(services);
  return order;
}

GpuDevices Gpu(std::string model, uint64_t ram_gi, GpuInterface interface, uint32_t count,
               std::optional<CudaVersion> cuda = CudaVersion{12, 4}) {
  GpuDevices gpu;
  gpu.model = std::move(model);
  gpu.ram_bytes = ram_gi * kGi;
  gpu.interface = interface;
  gpu.count = count;
  gpu.cuda = cuda;
  return gpu;
}

NodeCapacity Node(std::string name, std::vector<GpuDevices> gpus, uint64_t cpu_millis = 64'000) {
  return {std::move(name), cpu_millis, 256 * kGi, 1 * kTi, std::move(gpus)};
}

Offer Provider(std::string id, std::vector<NodeCapacity> nodes, std::map<std::string, uint64_t> gpu_rates,
               uint32_t reputation_ppm = 900'000) {
  Offer offer;
  offer.provider = std::move(id);
  offer.reputation_ppm = reputation_ppm;
  offer.pricing.push_back({"uakt", std::move(gpu_rates), 1000, 200, 10});
  offer.nodes = std::move(nodes);
  return offer;
}

constexpr auto kSxm = GpuInterface::kSxm;
constexpr auto kPcie = GpuInterface::kPcie;
// cpu 1 core at 1000 + 1 GiB memory at 200 + 1 GiB storage at 10, per replica.
constexpr uint64_t kBaseReplicaPrice = 1000 + 200 + 10;

TEST(MatchTest, PrefersTheFirstOptionOverACheaperFallback) {
  const Order order = OrderOf({Service("vllm", 1, 2, {Option("h100", 80, kSxm), Option("*", 48)})});
  const Offer offer = Provider("p", {Node("n1", {Gpu("h100", 80, kSxm, 8), Gpu("l40s", 48, kPcie, 4)})},
                               {{"h100", 300'000}, {"l40s", 100'000}});
  FitOutcome outcome = FitProvider(order, offer);
  ASSERT_TRUE(outcome.candidate);
  const Candidate& bid = *outcome.candidate;
  EXPECT_EQ(bid.ranks, std::vector<uint32_t>{0});
  EXPECT_EQ(bid.price_per_hour, 2 * 300'000 + kBaseReplicaPrice);
  ASSERT_EQ(bid.services.size(), 1u);
  EXPECT_EQ(bid.services[0].option, 0u);
  EXPECT_EQ(bid.services[0].device, (DeviceType{"nvidia", "h100", 80 * kGi, kSxm}));
  EXPECT_EQ(bid.services[0].placements, (std::vector<Placement>{{"n1", 1}}));
  EXPECT_EQ(bid.denom, "uakt");
  EXPECT_EQ(outcome.exclusion.reason, ExclusionReason::kNone);
}

TEST(MatchTest, PriceRoundsEachResourceUpPerReplica) {
  ServiceRequest service = Service("s", 3, 1, {Option("a100")});
  service.resources.cpu_millis = 1500;                 // 1.5 cores x 1001 -> 1501.5 -> 1502
  service.resources.memory_bytes = kGi + 1;            // just over 1 GiB x 7 -> 8
  service.resources.storage = {{"a", kGi / 2, {}, false}, {"b", kGi / 2 + 1, {}, true}};  // 1 GiB + 1 B x 3 -> 4
  Offer offer = Provider("p", {Node("n", {Gpu("a100", 40, kPcie, 4)})}, {{"a100", 5}});
  offer.pricing[0].cpu = 1001;
  offer.pricing[0].memory = 7;
  offer.pricing[0].storage = 3;
  FitOutcome outcome = FitProvider(OrderOf({service}), offer);
  ASSERT_TRUE(outcome.candidate);
  EXPECT_EQ(outcome.candidate->price_per_hour, 3 * (5 + 1502 + 8 + 4));
}

TEST(MatchTest, GpuRateLookupOrderAndMissingRate) {
  const Order order = OrderOf({Service("s", 1, 1, {Option("*")})});
  auto price_with = [&](std::map<std::string, uint64_t> rates) -> std::optional<uint64_t> {
    FitOutcome outcome = FitProvider(order, Provider("p", {Node("n", {Gpu("a100", 80, kSxm, 1)})}, rates));
    if (!outcome.candidate) return std::nullopt;
    return outcome.candidate->price_per_hour - kBaseReplicaPrice;
  };
  EXPECT_EQ(price_with({{"a100.80Gi.sxm", 1}, {"a100.80Gi", 2}, {"a100", 3}, {"*", 4}}), 1u);
  EXPECT_EQ(price_with({{"a100.80Gi.pcie", 1}, {"a100.80Gi", 2}, {"a100", 3}, {"*", 4}}), 2u);
  EXPECT_EQ(price_with({{"a100.40Gi", 2}, {"a100", 3}, {"*", 4}}), 3u);
  EXPECT_EQ(price_with({{"h100", 3}, {"*", 4}}), 4u);
  EXPECT_EQ(price_with({{"h100", 3}}), std::nullopt);
  FitOutcome outcome = FitProvider(order, Provider("p", {Node("n", {Gpu("a100", 80, kSxm, 1)})}, {{"h100", 3}}));
  EXPECT_EQ(outcome.exclusion.reason, ExclusionReason::kGpuRate);
  EXPECT_EQ(outcome.exclusion.detail, "s");
}

TEST(MatchTest, DeviceChecksReportTheNearestMiss) {
  auto reason = [](GpuOption option, GpuDevices device, std::optional<CudaVersion> cuda_min = std::nullopt) {
    ServiceRequest service = Service("s", 1, 1, {std::move(option)});
    service.cuda_min = cuda_min;
    FitOutcome outcome = FitProvider(OrderOf({service}), Provider("p", {Node("n", {device})}, {{"*", 1}}));
    return outcome.candidate ? ExclusionReason::kNone : outcome.exclusion.reason;
  };
  EXPECT_EQ(reason(Option("h100"), Gpu("a100", 80, kSxm, 1)), ExclusionReason::kGpuModel);
  EXPECT_EQ(reason(Option("H100"), Gpu("h100", 80, kSxm, 1)), ExclusionReason::kNone);  // case-insensitive
  EXPECT_EQ(reason(Option("h100", 80), Gpu("h100", 40, kSxm, 1)), ExclusionReason::kGpuRam);
  EXPECT_EQ(reason(Option("*", 40), Gpu("h100", 80, kSxm, 1)), ExclusionReason::kNone);  // RAM is a minimum
  EXPECT_EQ(reason(Option("h100", 80, kSxm), Gpu("h100", 80, kPcie, 1)), ExclusionReason::kGpuInterface);
  EXPECT_EQ(reason(Option("h100"), Gpu("h100", 80, kPcie, 1, CudaVersion{11, 8}), CudaVersion{12, 0}),
            ExclusionReason::kGpuCuda);
  EXPECT_EQ(reason(Option("h100"), Gpu("h100", 80, kPcie, 1, std::nullopt), CudaVersion{12, 0}),
            ExclusionReason::kGpuCuda);
  EXPECT_EQ(reason(Option("h100"), Gpu("h100", 80, kPcie, 1, CudaVersion{12, 4}), CudaVersion{12, 4}),
            ExclusionReason::kNone);
  GpuOption amd = Option("*");
  amd.vendor = "amd";
  EXPECT_EQ(reason(amd, Gpu("h100", 80, kPcie, 1)), ExclusionReason::kGpuModel);
}

TEST(MatchTest, AttributesSignedByDenomCapAndCapacityExclude) {
  Order order = OrderOf({Service("s", 1, 1, {Option("a100")}, 1'000'000)});
  Offer offer = Provider("p", {Node("n", {Gpu("a100", 80, kSxm, 1)})}, {{"a100", 100}});
  offer.attributes = {{"region", "us-west"}, {"tier", "gold"}};
  offer.auditors = {"aud1", "aud2"};
  ASSERT_TRUE(FitProvider(order, offer).candidate);

  Order wrong_region = order;
  wrong_region.attributes = {{"region", "eu"}};
  FitOutcome outcome = FitProvider(wrong_region, offer);
  EXPECT_EQ(outcome.exclusion.reason, ExclusionReason::kAttributes);
  EXPECT_EQ(outcome.exclusion.detail, "region");
  Order subset = order;
  subset.attributes = {{"region", "us-west"}};
  EXPECT_TRUE(FitProvider(subset, offer).candidate);

  Order audited = order;
  audited.signed_by.all_of = {"aud1", "aud2"};
  EXPECT_TRUE(FitProvider(audited, offer).candidate);
  audited.signed_by.all_of = {"aud1", "aud3"};
  EXPECT_EQ(FitProvider(audited, offer).exclusion.reason, ExclusionReason::kSignedBy);
  audited.signed_by.all_of = {};
  audited.signed_by.any_of = {"aud3", "aud2"};
  EXPECT_TRUE(FitProvider(audited, offer).candidate);
  audited.signed_by.any_of = {"aud3"};
  EXPECT_EQ(FitProvider(audited, offer).exclusion.reason, ExclusionReason::kSignedBy);
  // Keys (64 hex digits) compare without regard to case; any other name must be equal.
  const std::string key(64, 'a');
  offer.auditors = {key, "aud1"};
  audited.signed_by.any_of = {std::string(64, 'A')};
  EXPECT_TRUE(FitProvider(audited, offer).candidate);
  audited.signed_by.any_of = {"AUD1"};
  EXPECT_EQ(FitProvider(audited, offer).exclusion.reason, ExclusionReason::kSignedBy);
  audited.signed_by.any_of = {std::string(63, 'A') + "g"};
  EXPECT_EQ(FitProvider(audited, offer).exclusion.reason, ExclusionReason::kSignedBy);
  offer.auditors = {"aud1", "aud2"};

  Order usdc = order;
  usdc.services[0].price_cap.denom = "usdc";
  outcome = FitProvider(usdc, offer);
  EXPECT_EQ(outcome.exclusion.reason, ExclusionReason::kDenom);
  EXPECT_EQ(outcome.exclusion.detail, "usdc");

  Order cheap = order;
  cheap.services[0].price_cap.per_hour = 100 + kBaseReplicaPrice - 1;
  EXPECT_EQ(FitProvider(cheap, offer).exclusion.reason, ExclusionReason::kPriceCap);
  cheap.services[0].price_cap.per_hour = 100 + kBaseReplicaPrice;
  EXPECT_TRUE(FitProvider(cheap, offer).candidate);

  Order two = order;
  two.services[0].resources.gpu.units = 2;
  EXPECT_EQ(FitProvider(two, offer).exclusion.reason, ExclusionReason::kCapacity);
}

TEST(MatchTest, CapIsCountTimesPerHourSummedOverServices) {
  // Two replicas at 1210 each plus a GPU-less service at 1210: total 3630.
  Order order = OrderOf({Service("gpu", 2, 1, {Option("a100")}, 1), Service("web", 1, 0, {}, 0)});
  const Offer offer = Provider("p", {Node("n", {Gpu("a100", 80, kSxm, 2)})}, {{"a100", 0}});
  order.services[0].price_cap.per_hour = 1814;  // 2 x 1814 + 0 = 3628 < 3630
  EXPECT_EQ(FitProvider(order, offer).exclusion.reason, ExclusionReason::kPriceCap);
  order.services[1].price_cap.per_hour = 2;  // 3628 + 2 = 3630
  FitOutcome outcome = FitProvider(order, offer);
  ASSERT_TRUE(outcome.candidate);
  EXPECT_EQ(outcome.candidate->price_per_hour, 3 * kBaseReplicaPrice);
  EXPECT_EQ(outcome.candidate->ranks, std::vector<uint32_t>{0});  // GPU services only
  EXPECT_EQ(outcome.candidate->services[1].option, std::nullopt);
  EXPECT_EQ(outcome.candidate->services[1].device, std::nullopt);
}

TEST(MatchTest, FallsBackWhenThePreferredOptionIsOverTheCap) {
  Order order = OrderOf({Service("s", 1, 1, {Option("h100"), Option("a100")}, 2'000 + kBaseReplicaPrice)});
  const Offer offer = Provider("p", {Node("n", {Gpu("h100", 80, kSxm, 1), Gpu("a100", 80, kSxm, 1)})},
                               {{"h100", 3'000}, {"a100", 2'000}});
  FitOutcome outcome = FitProvider(order, offer);
  ASSERT_TRUE(outcome.candidate);
  EXPECT_EQ(outcome.candidate->ranks, std::vector<uint32_t>{1});
}

TEST(MatchTest, EqualRankDeviceTypesTieOnPrice) {
  const Order order = OrderOf({Service("s", 1, 1, {Option("*", 40)})});
  const Offer offer = Provider("p", {Node("n", {Gpu("h100", 80, kSxm, 1), Gpu("a100", 80, kSxm, 1)})},
                               {{"h100", 3'000}, {"a100", 2'000}});
  FitOutcome outcome = FitProvider(order, offer);
  ASSERT_TRUE(outcome.candidate);
  EXPECT_EQ(outcome.candidate->services[0].device->model, "a100");
}

TEST(MatchTest, ExactSearchFindsAFitFirstFitMisses) {
  // cpu 5, 4, 4, 3, 2, 2 into two nodes of 10: first-fit decreasing fails, 5+3+2 / 4+4+2 fits.
  auto cpu_service = [](std::string name, uint32_t count, uint64_t cores) {
    ServiceRequest service = Service(std::move(name), count, 0, {});
    service.resources.cpu_millis = cores * 1000;
    service.resources.memory_bytes = 0;
    service.resources.storage.clear();
    return service;
  };
  const Order order = OrderOf({cpu_service("five", 1, 5), cpu_service("four", 2, 4),
                               cpu_service("three", 1, 3), cpu_service("two", 2, 2)});
  const Offer offer = Provider("p", {Node("a", {}, 10'000), Node("b", {}, 10'000)}, {});
  FitOutcome outcome = FitProvider(order, offer);
  ASSERT_TRUE(outcome.candidate) << ToString(outcome.exclusion.reason);
  uint64_t used_a = 0;
  for (size_t s = 0; s < order.services.size(); ++s) {
    uint32_t placed = 0;
    for (const Placement& placement : outcome.candidate->services[s].placements) {
      placed += placement.replicas;
      if (placement.node == "a") used_a += placement.replicas * order.services[s].resources.cpu_millis;
    }
    EXPECT_EQ(placed, order.services[s].count);
  }
  EXPECT_EQ(used_a, 10'000u);
  // One core more and it cannot fit.
  Order bigger = order;
  bigger.services[0].resources.cpu_millis = 6'000;
  EXPECT_EQ(FitProvider(bigger, offer).exclusion.reason, ExclusionReason::kCapacity);
}

TEST(MatchTest, ReplicasSpreadOverNodesWithOneDeviceTypePerService) {
  const Order order = OrderOf({Service("s", 3, 2, {Option("a100")})});
  const Offer offer = Provider("p", {Node("n1", {Gpu("a100", 80, kSxm, 3)}), Node("n2", {Gpu("a100", 40, kPcie, 4)}),
                                     Node("n3", {Gpu("a100", 80, kSxm, 2)})},
                               {{"a100.80Gi", 10}, {"a100.40Gi", 5}});
  // The 40Gi type is cheaper but has room for two replicas, the 80Gi type for two: no bid.
  EXPECT_EQ(FitProvider(order, offer).exclusion.reason, ExclusionReason::kCapacity);
  Offer roomier = offer;
  roomier.nodes[2].gpus[0].count = 4;
  FitOutcome outcome = FitProvider(order, roomier);
  ASSERT_TRUE(outcome.candidate);
  EXPECT_EQ(outcome.candidate->services[0].device->ram_bytes, 80 * kGi);
  EXPECT_EQ(outcome.candidate->services[0].placements, (std::vector<Placement>{{"n1", 1}, {"n3", 2}}));
  EXPECT_EQ(outcome.candidate->price_per_hour, 3 * (2 * 10 + kBaseReplicaPrice));
}

TEST(MatchTest, MultiServiceRanksAreLexicographicInServiceOrder) {
  // The node has 2 h100 and 2 a100; both services prefer h100, each needs 2 GPUs.
  const Order order = OrderOf({Service("first", 1, 2, {Option("h100"), Option("a100")}),
                               Service("second", 1, 2, {Option("h100"), Option("a100")})});
  const Offer offer = Provider("p", {Node("n", {Gpu("h100", 80, kSxm, 2), Gpu("a100", 80, kSxm, 2)})},
                               {{"h100", 10}, {"a100", 1}});
  FitOutcome outcome = FitProvider(order, offer);
  ASSERT_TRUE(outcome.candidate);
  EXPECT_EQ(outcome.candidate->ranks, (std::vector<uint32_t>{0, 1}));
}

TEST(MatchTest, AbsurdNumbersSaturateInsteadOfWrapping) {
  ServiceRequest service = Service("s", 4'000'000'000u, 0, {}, UINT64_MAX);
  service.resources.memory_bytes = 1ull << 62;
  Offer offer = Provider("p", {Node("n", {})}, {});
  offer.pricing[0].memory = 1'000'000'000'000'000;
  offer.nodes[0].memory_bytes = UINT64_MAX;
  Order order = OrderOf({service});
  order.services[0].price_cap.per_hour = 1'000;
  EXPECT_EQ(FitProvider(order, offer).exclusion.reason, ExclusionReason::kPriceCap);
}

TEST(MatchTest, PoliciesOrderCandidates) {
  Candidate a{"a", "uakt", 100, 500'000, {1}, {}};
  Candidate b{"b", "uakt", 200, 500'000, {0}, {}};
  Candidate c{"c", "uakt", 200, 900'000, {0}, {}};
  Candidate d{"d", "uakt", 200, 900'000, {0}, {}};
  std::vector<Candidate> list{a, d, b, c};
  SortCandidates(list, Policy::kPreference);
  EXPECT_EQ(list[0].provider, "c");
  EXPECT_EQ(list[1].provider, "d");
  EXPECT_EQ(list[2].provider, "b");
  EXPECT_EQ(list[3].provider, "a");
  SortCandidates(list, Policy::kCheapest);
  EXPECT_EQ(list[0].provider, "a");
  EXPECT_EQ(list[1].provider, "c");
  EXPECT_EQ(ParsePolicy("cheapest"), Policy::kCheapest);
  EXPECT_EQ(ParsePolicy("preference"), Policy::kPreference);
  EXPECT_EQ(ParsePolicy("fastest"), std::nullopt);
}

// SDL 2.2: the order caps in uact (preferred) and uakt. A provider bids in the first listed denom
// it can take the group in; every bid in uact ranks before any bid in uakt, whatever the prices.
TEST(MatchTest, SeveralDenomsBidInTheFirstThatWorksAndRankByTheTenantsOrder) {
  ServiceRequest service = Service("vllm", 1, 1, {Option("h100", 80)}, /*cap_per_hour=*/10'000'000);
  service.price_cap = {"uact", 0, 500'000};
  service.more_caps = {{"uakt", 0, 10'000'000}};
  const Order order = OrderOf({service});
  ASSERT_EQ(order.Denoms(), (std::vector<std::string>{"uact", "uakt"}));
  auto priced_in = [](Offer offer, std::string denom) {
    offer.pricing.front().denom = std::move(denom);
    return offer;
  };
  const Offer uakt_cheap = Provider("uakt-cheap", {Node("n", {Gpu("h100", 80, kSxm, 1)})}, {{"h100", 1'000}});
  const Offer uact_dear = priced_in(Provider("uact-dear", {Node("n", {Gpu("h100", 80, kSxm, 1)})}, {{"h100", 400'000}}), "uact");
  // Prices in both, but over the uact cap: it bids in uakt.
  Offer both_over = Provider("both-over", {Node("n", {Gpu("h100", 80, kSxm, 1)})}, {{"h100", 600'000}});
  both_over.pricing.push_back(both_over.pricing.front());
  both_over.pricing.back().denom = "uact";
  const Offer usdc = priced_in(Provider("usdc", {Node("n", {Gpu("h100", 80, kSxm, 1)})}, {{"h100", 1}}), "usdc");

  FitOutcome fit = FitProvider(order, both_over);
  ASSERT_TRUE(fit.candidate);
  EXPECT_EQ(fit.candidate->denom, "uakt");
  EXPECT_EQ(fit.candidate->denom_rank, 1u);
  fit = FitProvider(order, uact_dear);
  ASSERT_TRUE(fit.candidate);
  EXPECT_EQ(fit.candidate->denom, "uact");
  EXPECT_EQ(fit.candidate->denom_rank, 0u);
  fit = FitProvider(order, usdc);
  ASSERT_FALSE(fit.candidate);
  EXPECT_EQ(fit.exclusion.reason, ExclusionReason::kDenom);
  EXPECT_EQ(fit.exclusion.detail, "uact, uakt");

  const std::vector<Offer> offers{uakt_cheap, uact_dear, both_over, usdc};
  OfferBook book;
  ASSERT_TRUE(book.UpsertAll(offers).ok());
  for (Policy policy : {Policy::kPreference, Policy::kCheapest}) {
    const std::vector<Candidate> top = book.TopK(order, policy, 10);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].provider, "uact-dear");  // the only uact bid, dearer in number than the rest
    EXPECT_EQ(top[1].provider, "uakt-cheap");
    EXPECT_EQ(top[2].provider, "both-over");
    EXPECT_EQ(top, LinearScanTopK(order, offers, policy, 10));
    EXPECT_EQ(book.TopK(order, policy, 1), LinearScanTopK(order, offers, policy, 1));
  }
}

TEST(OfferBookTest, TopKMatchesTheLinearScanAndFollowsCapacityChanges) {
  const Order order = OrderOf({Service("s", 1, 2, {Option("h100", 80, kSxm), Option("a100", 80), Option("*", 48)})});
  std::vector<Offer> offers;
  offers.push_back(Provider("h-cheap", {Node("n", {Gpu("h100", 80, kSxm, 2)})}, {{"h100", 100}}));
  offers.push_back(Provider("h-dear", {Node("n", {Gpu("h100", 80, kSxm, 8)})}, {{"h100", 900}}));
  offers.push_back(Provider("a", {Node("n", {Gpu("a100", 80, kSxm, 8)})}, {{"a100", 50}}));
  offers.push_back(Provider("l", {Node("n", {Gpu("l40s", 48, kPcie, 8)})}, {{"*", 10}}));
  offers.push_back(Provider("small", {Node("n", {Gpu("rtx4090", 24, kPcie, 8)})}, {{"*", 1}}));
  OfferBook book;
  ASSERT_TRUE(book.UpsertAll(offers).ok());
  EXPECT_EQ(book.size(), 5u);
  for (Policy policy : {Policy::kPreference, Policy::kCheapest}) {
    for (size_t k = 0; k <= 6; ++k) {
      EXPECT_EQ(book.TopK(order, policy, k), LinearScanTopK(order, offers, policy, k)) << k;
    }
  }
  auto ids = [&](Policy policy) {
    std::vector<std::string> out;
    for (const Candidate& c : book.TopK(order, policy, 10)) out.push_back(c.provider);
    return out;
  };
  EXPECT_EQ(ids(Policy::kPreference), (std::vector<std::string>{"h-cheap", "h-dear", "a", "l"}));
  EXPECT_EQ(ids(Policy::kCheapest), (std::vector<std::string>{"l", "a", "h-cheap", "h-dear"}));

  CapacityChange reserve;
  reserve.provider = "h-cheap";
  reserve.node = "n";
  reserve.device = DeviceType{"nvidia", "h100", 80 * kGi, kSxm};
  reserve.gpus = 1;
  ASSERT_TRUE(book.ApplyCapacityChange(reserve).ok());
  EXPECT_EQ(ids(Policy::kPreference), (std::vector<std::string>{"h-dear", "a", "l"}));
  reserve.gpus = 2;
  EXPECT_EQ(book.ApplyCapacityChange(reserve).code(), Status::Code::kFailedPrecondition);
  CapacityChange release = reserve;
  release.kind = CapacityChange::Kind::kRelease;
  release.gpus = 1;
  ASSERT_TRUE(book.ApplyCapacityChange(release).ok());
  EXPECT_EQ(ids(Policy::kPreference).front(), "h-cheap");
  release.node = "nope";
  EXPECT_EQ(book.ApplyCapacityChange(release).code(), Status::Code::kNotFound);
  release.node = "n";
  release.provider = "nobody";
  EXPECT_EQ(book.ApplyCapacityChange(release).code(), Status::Code::kNotFound);
  release.provider = "h-cheap";
  release.device->model = "b200";
  EXPECT_EQ(book.ApplyCapacityChange(release).code(), Status::Code::kNotFound);

  // Replace and remove.
  ASSERT_TRUE(book.Upsert(Provider("h-dear", {Node("n", {Gpu("h100", 80, kSxm, 8)})}, {{"h100", 50}})).ok());
  EXPECT_EQ(ids(Policy::kPreference).front(), "h-dear");
  EXPECT_TRUE(book.Remove("h-dear"));
  EXPECT_FALSE(book.Remove("h-dear"));
  EXPECT_EQ(ids(Policy::kPreference), (std::vector<std::string>{"h-cheap", "a", "l"}));
  EXPECT_EQ(book.size(), 4u);
  EXPECT_EQ(book.UpsertAll({offers[0], offers[0]}).code(), Status::Code::kAlreadyExists);
}

TEST(OfferBookTest, GroupsWithoutGpusScanEveryProvider) {
  const Order order = OrderOf({Service("web", 2, 0, {})});
  OfferBook book;
  ASSERT_TRUE(book.Upsert(Provider("x", {Node("n", {})}, {})).ok());
  ASSERT_TRUE(book.Upsert(Provider("y", {Node("n", {}, 1'000)}, {})).ok());
  const auto top = book.TopK(order, Policy::kPreference, 5);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].provider, "x");
  EXPECT_TRUE(top[0].ranks.empty());
}


// ---------------------------------------------------------------------------------------------
// Work bounds (issue 11, item 10): a peer's offer cannot stall matching.

// `types` distinct device types spread over `nodes` nodes, each node holding `per_node` of them
// (`free` free GPUs each) and 1.5 cores, all priced by "*".
Offer ManyTypes(const std::string& id, size_t types, size_t nodes, size_t per_node, uint32_t free = 1) {
  Offer offer;
  offer.provider = id;
  offer.pricing.push_back({"uakt", {{"*", 100}}, 1000, 200, 10});
  for (size_t n = 0; n < nodes; ++n) {
    NodeCapacity node{"n" + std::to_string(n), 1'500, 256 * kGi, 1 * kTi, {}};
    for (size_t j = 0; j < per_node; ++j) {
      node.gpus.push_back(Gpu("m" + std::to_string((n * per_node + j) % types), 80, kSxm, free));
    }
    offer.nodes.push_back(std::move(node));
  }
  return offer;
}

TEST(MatchWorkTest, AnOfferOverThePerOfferBoundsIsRefusedWhenItArrives) {
  const Order order = OrderOf({Service("s", 1, 1, {Option("*")})});
  // 3 nodes x 22 = 66 distinct types: each node within the wire's 32 GPU entries, the offer not.
  const Offer wide = ManyTypes("wide", kMaxOfferDeviceTypes + 2, 3, 22);
  OfferBook book;
  const Status refused = book.Upsert(wide);
  EXPECT_EQ(refused.code(), Status::Code::kLimitExceeded) << refused.ToString();
  EXPECT_NE(refused.message().find("device types"), std::string::npos) << refused.ToString();
  EXPECT_EQ(book.size(), 0u);
  EXPECT_EQ(book.stats().device_types, 0u);
  const FitOutcome outcome = FitProvider(order, wide);
  EXPECT_FALSE(outcome.candidate);
  EXPECT_EQ(outcome.exclusion.reason, ExclusionReason::kOfferTooLarge);
  EXPECT_EQ(book.UpsertAll({wide}).code(), Status::Code::kLimitExceeded);

  // Exactly at the bound is admitted.
  const Offer at_bound = ManyTypes("at-bound", kMaxOfferDeviceTypes, 4, 16);
  EXPECT_TRUE(book.Upsert(at_bound).ok());
  EXPECT_TRUE(FitProvider(order, at_bound).candidate);

  // Too many GPU entries, over few types (the wire allows 4096 nodes x 32 entries).
  const Offer crowded = ManyTypes("crowded", 4, kMaxOfferGpuEntries / 4 + 1, 4);
  EXPECT_EQ(book.Upsert(crowded).code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(FitProvider(order, crowded).exclusion.reason, ExclusionReason::kOfferTooLarge);
}

// The worst case of the old evaluator: two GPU services, each able to use any of 64 device
// types (64 x 64 = 4096 combinations), and for each combination a placement that only fails
// after an exponential backtracking search (129 replicas of one core for the 128 nodes of 1.5
// cores holding the type, 2 GPUs each, so the totals pass). The old code spent up to 200,000 steps per
// combination, 819 million in all: seconds per evaluation. Now one budget bounds the whole
// evaluation and the provider is excluded for it.
TEST(MatchWorkTest, APathologicalOfferIsEvaluatedWithinTheStepBudget) {
  const size_t types = kMaxOfferDeviceTypes;
  const Offer offer = ManyTypes("slow", types, 4096, 2, 2);  // each type on 128 nodes
  ASSERT_TRUE(CheckOfferWork(offer).ok());
  ServiceRequest first = Service("a", 129, 1, {Option("*")});
  ServiceRequest second = Service("b", 129, 1, {Option("*")});
  for (ServiceRequest* service : {&first, &second}) {
    service->resources.memory_bytes = 0;
    service->resources.storage.clear();
  }
  const Order order = OrderOf({first, second});
  const auto start = std::chrono::steady_clock::now();
  const FitOutcome outcome = FitProvider(order, offer);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(outcome.candidate);
  EXPECT_EQ(outcome.exclusion.reason, ExclusionReason::kWorkLimit);
  // The bound is ~1 ms in a release build (bench: BM_WorstOffer); 1 s leaves room for
  // sanitizers, while the unbounded search took far longer.
  EXPECT_LT(elapsed, std::chrono::seconds(1));

  OfferBook book;
  ASSERT_TRUE(book.Upsert(offer).ok());
  const auto book_start = std::chrono::steady_clock::now();
  EXPECT_TRUE(book.TopK(order, Policy::kPreference, 5).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - book_start, std::chrono::seconds(1));
}

// ---------------------------------------------------------------------------------------------
// The book shrinks (issue 11, item 11): interned types, names, denoms and index lists are
// freed with the last offer that uses them.

TEST(OfferBookTest, CyclingModelNamesAndDenomsKeepsTheBookBounded) {
  OfferBook book;
  const Order order = OrderOf({Service("s", 1, 1, {Option("*")})});
  ASSERT_TRUE(book.Upsert(Provider("steady", {Node("n", {Gpu("h100", 80, kSxm, 8)})}, {{"*", 100}})).ok());
  const OfferBook::Stats base = book.stats();
  EXPECT_EQ(base.device_types, 1u);
  EXPECT_EQ(base.denoms, 1u);
  EXPECT_EQ(base.index_lists, 1u);
  for (int i = 0; i < 20'000; ++i) {
    Offer offer = Provider("churn", {Node("n", {Gpu("model" + std::to_string(i), 80, kSxm, 1)})},
                           {{"*", 50}});
    offer.pricing[0].denom = "denom" + std::to_string(i % 1000);
    offer.pricing.push_back({"uakt", {{"*", 50}}, 1000, 200, 10});
    ASSERT_TRUE(book.Upsert(offer).ok()) << i;
    if (i % 2 == 0) {
      ASSERT_TRUE(book.Remove("churn"));  // replaced or removed: both free what it held
    }
  }
  ASSERT_TRUE(book.Remove("churn"));
  const OfferBook::Stats after = book.stats();
  EXPECT_EQ(after.offers, 1u);
  EXPECT_EQ(after.device_types, base.device_types);
  EXPECT_EQ(after.names, base.names);
  EXPECT_EQ(after.denoms, base.denoms);
  EXPECT_EQ(after.index_lists, base.index_lists);
  EXPECT_EQ(after.index_entries, base.index_entries);
  const auto top = book.TopK(order, Policy::kPreference, 5);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].provider, "steady");
}

TEST(OfferBookTest, TheBooksTablesAreBoundedAndFreedEntriesAreReused) {
  OfferBook book;
  // Fill the type table: offers of 64 types each, every type new.
  const size_t offers = kMaxBookDeviceTypes / kMaxOfferDeviceTypes;
  for (size_t o = 0; o < offers; ++o) {
    Offer offer;
    offer.provider = "p" + std::to_string(o);
    offer.pricing.push_back({"uakt", {{"*", 100}}, 1000, 200, 10});
    for (size_t n = 0; n < 2; ++n) {
      NodeCapacity node{"n" + std::to_string(n), 64'000, 256 * kGi, 1 * kTi, {}};
      for (size_t j = 0; j < kMaxOfferDeviceTypes / 2; ++j) {
        node.gpus.push_back(Gpu("o" + std::to_string(o) + "t" + std::to_string(n * 100 + j), 80, kSxm, 1));
      }
      offer.nodes.push_back(std::move(node));
    }
    ASSERT_TRUE(book.Upsert(offer).ok()) << o;
  }
  EXPECT_EQ(book.stats().device_types, kMaxBookDeviceTypes);
  const Offer newcomer = Provider("new", {Node("n", {Gpu("fresh", 80, kSxm, 1)})}, {{"*", 1}});
  EXPECT_EQ(book.Upsert(newcomer).code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(book.size(), offers);
  // A known type is still welcome; a freed slot takes a new one.
  EXPECT_TRUE(book.Upsert(Provider("known", {Node("n", {Gpu("o0t0", 80, kSxm, 1)})}, {{"*", 1}})).ok());
  ASSERT_TRUE(book.Remove("p1"));
  EXPECT_TRUE(book.Upsert(newcomer).ok());
  EXPECT_EQ(book.stats().device_types, kMaxBookDeviceTypes - kMaxOfferDeviceTypes + 1);
  const Order order = OrderOf({Service("s", 1, 1, {Option("fresh")})});
  const auto top = book.TopK(order, Policy::kPreference, 5);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].provider, "new");

  // Denoms: kMaxBookDenoms live at once.
  OfferBook denoms;
  for (size_t d = 0; d < kMaxBookDenoms; ++d) {
    Offer offer = Provider("d" + std::to_string(d), {Node("n", {})}, {});
    offer.pricing[0].denom = "u" + std::to_string(d);
    ASSERT_TRUE(denoms.Upsert(offer).ok()) << d;
  }
  Offer extra = Provider("extra", {Node("n", {})}, {});
  extra.pricing[0].denom = "extra";
  EXPECT_EQ(denoms.Upsert(extra).code(), Status::Code::kLimitExceeded);
  ASSERT_TRUE(denoms.Remove("d0"));
  EXPECT_TRUE(denoms.Upsert(extra).ok());
  EXPECT_EQ(denoms.stats().denoms, kMaxBookDenoms);
}

}  // namespace
}  // namespace gpumart::market
