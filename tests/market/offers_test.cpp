#include "market/offers.h"

#include <gtest/gtest.h>

#include "market/match.h"
#include "market/sdl.h"
#include "tests/alloc_failure.h"

#include <cstdio>
#include <fstream>

namespace gpumart::market {
namespace {

constexpr std::string_view kExample = R"(
providers:
  - id: prov-a
    attributes: {region: us-west, tier: gold}
    auditors: [aud1]
    reputation: 0.97
    pricing:
      - denom: uakt
        gpu: {"H100.80Gi.SXM5": 300000, "a100": 200000, "l40s.48gib": 150000, "*": 90000}
        cpu: 1000
        memory: 200
        storage: 10
    nodes:
      - name: n1
        cpu_millis: 64000
        memory: 512Gi
        storage: 2Ti
        gpus: [{model: H100, ram: 80Gi, interface: sxm4, cuda: "12.4", count: 8}]
      - name: n2
        cpu_millis: 32000
        memory: 256GB
        storage: 1000000
)";

// Parses `text` and returns the error message (empty when it parsed).
std::string ErrorOf(std::string_view text) {
  auto offers = ParseOffers(text);
  return offers.ok() ? std::string() : offers.status().message();
}

std::string WithGpu(std::string_view gpu) {
  return "providers:\n  - id: p\n    pricing: [{denom: uakt}]\n    nodes:\n      - name: n\n"
         "        cpu_millis: 1000\n        memory: 1Gi\n        gpus:\n          - " +
         std::string(gpu) + "\n";
}

TEST(OffersTest, ParsesTheDocumentedExample) {
  auto offers = ParseOffers(kExample);
  ASSERT_TRUE(offers.ok()) << offers.status().ToString();
  ASSERT_EQ(offers->size(), 1u);
  const Offer& offer = offers->front();
  EXPECT_EQ(offer.provider, "prov-a");
  EXPECT_EQ(offer.attributes.at("region"), "us-west");
  EXPECT_EQ(offer.auditors, std::vector<std::string>{"aud1"});
  EXPECT_EQ(offer.reputation_ppm, 970'000u);
  ASSERT_EQ(offer.pricing.size(), 1u);
  const PriceTable& table = offer.pricing[0];
  EXPECT_EQ(table.denom, "uakt");
  EXPECT_EQ(table.gpu.at("h100.80Gi.sxm"), 300000u);  // canonical key
  EXPECT_EQ(table.gpu.at("a100"), 200000u);
  EXPECT_EQ(table.gpu.at("l40s.48Gi"), 150000u);
  EXPECT_EQ(table.gpu.at("*"), 90000u);
  EXPECT_EQ(table.cpu, 1000u);
  EXPECT_EQ(table.memory, 200u);
  EXPECT_EQ(table.storage, 10u);
  ASSERT_EQ(offer.nodes.size(), 2u);
  EXPECT_EQ(offer.nodes[0].memory_bytes, 512 * kGi);
  EXPECT_EQ(offer.nodes[0].storage_bytes, 2 * kTi);
  ASSERT_EQ(offer.nodes[0].gpus.size(), 1u);
  const GpuDevices& gpu = offer.nodes[0].gpus[0];
  EXPECT_EQ(gpu.vendor, "nvidia");
  EXPECT_EQ(gpu.model, "h100");
  EXPECT_EQ(gpu.ram_bytes, 80 * kGi);
  EXPECT_EQ(gpu.interface, GpuInterface::kSxm);
  EXPECT_EQ(gpu.cuda, (CudaVersion{12, 4}));
  EXPECT_EQ(gpu.count, 8u);
  EXPECT_EQ(offer.nodes[1].memory_bytes, 256'000'000'000u);
  EXPECT_EQ(offer.nodes[1].storage_bytes, 1'000'000u);
  EXPECT_TRUE(offer.nodes[1].gpus.empty());
}

TEST(OffersTest, JsonIsAccepted) {
  auto offers = ParseOffers(R"({"providers": [{"id": "p", "pricing": [{"denom": "uakt", "cpu": 5}],
      "nodes": [{"name": "n", "cpu_millis": 1000, "memory": "1Gi",
                 "gpus": [{"model": "a100", "ram": "40Gi", "count": 2}]}]}]})");
  ASSERT_TRUE(offers.ok()) << offers.status().ToString();
  EXPECT_EQ((*offers)[0].pricing[0].cpu, 5u);
  EXPECT_EQ((*offers)[0].nodes[0].gpus[0].interface, GpuInterface::kPcie);
}

TEST(OffersTest, SizeSuffixesAnyCaseWithOptionalB) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& c : {Case{"1k", 1000}, Case{"1K", 1000}, Case{"1Ki", 1024}, Case{"1kib", 1024},
                        Case{"2M", 2'000'000}, Case{"2Mi", 2 * kMi}, Case{"3gb", 3'000'000'000},
                        Case{"3GiB", 3 * kGi}, Case{"1T", 1'000'000'000'000}, Case{"1ti", kTi},
                        Case{"1Pi", 1024 * kTi}, Case{"7", 7}, Case{"7b", 7}}) {
    auto offers = ParseOffers(
        "providers:\n  - id: p\n    pricing: [{denom: u}]\n    nodes: [{name: n, cpu_millis: 1, memory: " +
        std::string(c.text) + "}]\n");
    ASSERT_TRUE(offers.ok()) << c.text << ": " << offers.status().ToString();
    EXPECT_EQ((*offers)[0].nodes[0].memory_bytes, c.bytes) << c.text;
  }
}

TEST(OffersTest, BadInputNamesThePath) {
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: -4}")),
            "providers[0].nodes[0].gpus[0].count: -4 is negative");
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 100001}")),
            "providers[0].nodes[0].gpus[0].count: 100001 exceeds the limit of 100000");
  EXPECT_NE(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 1, colour: red}"))
                .find("providers[0].nodes[0].gpus[0].colour: unknown key"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(WithGpu("{model: a100, count: 1}")), "providers[0].nodes[0].gpus[0].ram: missing");
  EXPECT_NE(ErrorOf(WithGpu("{model: a100, ram: 40Qi, count: 1}")).find("gpus[0].ram: \"40Qi\" has an unknown unit"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 1, interface: nvlink}")).find("gpus[0].interface"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 1, cuda: twelve}")).find("gpus[0].cuda"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 2.5}")).find("'2.5' is not a whole number"),
            std::string::npos);
}

TEST(OffersTest, StructuralErrors) {
  EXPECT_EQ(ErrorOf("providers:\n  - id: p\n    nodes: [{name: n, cpu_millis: 1, memory: 1}]\n"),
            "providers[0].pricing: missing");
  EXPECT_EQ(ErrorOf("providers:\n  - id: p\n    pricing: []\n    nodes: [{name: n, cpu_millis: 1, memory: 1}]\n"),
            "providers[0].pricing: missing (at least one price table is needed)");
  const std::string two =
      "providers:\n"
      "  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n"
      "  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n";
  EXPECT_EQ(ErrorOf(two), "providers[1].id: p is used by another provider");
  EXPECT_EQ(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u, cpu: -1}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n"),
            "providers[0].pricing[0].cpu: -1 is negative");
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u, cpu: 1e99}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].pricing[0].cpu: '1e99' is not a whole number"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u, gpu: {a100: 99999999999999999999}}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].pricing[0].gpu.a100: '99999999999999999999' is too large"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u, gpu: {a100: 2000000000000000}}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("exceeds the limit"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u, gpu: {a.b.c.d: 1}}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].pricing[0].gpu.a.b.c.d"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}, {denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].pricing[1].denom: u is priced twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, reputation: 1.5, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].reputation: '1.5' is not a number from 0 to 1"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}, {name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].nodes[1].name: n is used by another node"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WithGpu("{model: a100, ram: 40Gi, count: 1}\n          - {model: A100, ram: 40Gi, count: 2}"))
                .find("providers[0].nodes[0].gpus[1]: device type a100.40Gi.pcie is listed twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers: [\n").find("invalid YAML at line 2"), std::string::npos);
  EXPECT_NE(ErrorOf("nodes: []\n").find("unknown key"), std::string::npos);
  EXPECT_NE(ErrorOf("").find("a map with a 'providers' list"), std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 99999Ei}]}\n")
                .find("memory: \"99999Ei\" is too large"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 2Pi}]}\n")
                .find("memory: 2Pi exceeds the limit"),
            std::string::npos);
  EXPECT_NE(ErrorOf("providers:\n  - {id: " + std::string(limits::kMaxNameBytes + 1, 'x') +
                    ", pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].id: longer than"),
            std::string::npos);
  // An attribute given twice was silently the last one before the attribute parser was shared
  // with provider configs (bidding/inventory.h); `gpus: detect` is a provider config's only.
  EXPECT_EQ(ErrorOf("providers:\n  - {id: p, attributes: {region: a, region: b}, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n"),
            "providers[0].attributes.region: given twice");
  EXPECT_EQ(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1, gpus: detect}]}\n"),
            "providers[0].nodes[0].gpus: must be a list");
}

// What a file accepts is what a provider may advertise on the wire (the offers fuzz target found
// a 200-byte node name the file took and the wire refused).
TEST(OffersTest, AcceptedOffersAreValidWireOffers) {
  const std::string name(limits::kMaxNameBytes + 1, 'n');
  EXPECT_NE(ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: " + name +
                    ", cpu_millis: 1, memory: 1}]}\n")
                .find("providers[0].nodes[0].name: longer than"),
            std::string::npos);
  std::string auditors = "[";
  for (size_t i = 0; i <= limits::kMaxAuditors; ++i) auditors += (i ? ", a" : "a") + std::to_string(i);
  auditors += "]";
  const std::string too_many = ErrorOf("providers:\n  - {id: p, auditors: " + auditors +
                                       ", pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1}]}\n");
  EXPECT_NE(too_many.find("providers[0].auditors"), std::string::npos) << too_many;
  Result<std::vector<Offer>> example = ParseOffersFile(std::string(GPUMART_SOURCE_DIR) + "/configs/offers-example.yaml");
  ASSERT_TRUE(example.ok()) << example.status().ToString();
  for (const Offer& offer : *example) {
    EXPECT_TRUE(ValidateOffer(offer).ok()) << offer.provider;
    Offer on_the_wire = offer;  // the id, auditors and reputation are node-local: they do not travel
    on_the_wire.provider.clear();
    on_the_wire.reputation_ppm = 0;
    on_the_wire.auditors.clear();
    EXPECT_EQ(*DecodeOffer(EncodeBody(offer)), on_the_wire);
  }
}

TEST(OffersTest, FileErrorsStartWithThePath) {
  auto missing = ParseOffersFile("/nonexistent/offers.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/offers.yaml"), std::string::npos);

  const std::string path = ::testing::TempDir() + "/offers_test_bad.yaml";
  {
    std::ofstream file(path);
    file << WithGpu("{model: a100, ram: 40Gi, count: -4}");
  }
  auto bad = ParseOffersFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), path + ": providers[0].nodes[0].gpus[0].count: -4 is negative");
  std::remove(path.c_str());
}

TEST(OffersTest, ExampleConfigParses) {
  auto offers = ParseOffersFile(GPUMART_SOURCE_DIR "/configs/offers-example.yaml");
  ASSERT_TRUE(offers.ok()) << offers.status().ToString();
  EXPECT_GE(offers->size(), 3u);
}

// One quantity parser (issue 11): an offers file reads sizes exactly as an SDL does
// (ParseSizeBytes), fractions included.
TEST(OffersTest, SizesReadAsTheSdlReadsThem) {
  for (const char* text : {"1.5Gi", "0.5Ti", "2.25G", "1.5", "80Gi", "512Mi", "2T", "16gb", "1.5 Gi", "1.5Qi", "-1Gi"}) {
    const Result<uint64_t> expected = ParseSizeBytes(text);
    auto offers = ParseOffers("providers:\n  - id: p\n    pricing: [{denom: u}]\n    nodes: [{name: n, cpu_millis: 1, memory: \"" +
                              std::string(text) + "\", gpus: [{model: a100, ram: \"" + text + "\", count: 1}]}]\n");
    ASSERT_EQ(offers.ok(), expected.ok()) << text << ": " << offers.status().ToString();
    if (!expected.ok()) continue;
    EXPECT_EQ((*offers)[0].nodes[0].memory_bytes, *expected) << text;
    EXPECT_EQ((*offers)[0].nodes[0].gpus[0].ram_bytes, *expected) << text;
  }
  auto fraction = ParseOffers("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1.5Gi}]}\n");
  ASSERT_TRUE(fraction.ok()) << fraction.status().ToString();
  EXPECT_EQ((*fraction)[0].nodes[0].memory_bytes, 3 * kGi / 2);
}

// One constant per limit (issue 11): the file's limits are the wire's, and an offer the matching
// engine would refuse is an error in the file.
TEST(OffersTest, LimitsAreTheWireAndMatchingLimits) {
  auto node_with = [](size_t gpus, uint64_t count) {
    std::string list;
    for (size_t i = 0; i < gpus; ++i) {
      list += (i ? ", " : "") + std::string("{model: m") + std::to_string(i) + ", ram: 1Gi, count: " +
              std::to_string(count) + "}";
    }
    return "providers:\n  - {id: p, pricing: [{denom: u}], nodes: [{name: n, cpu_millis: 1, memory: 1, gpus: [" +
           list + "]}]}\n";
  };
  EXPECT_EQ(ErrorOf(node_with(limits::kMaxGpuTypesPerNode, limits::kMaxGpusPerType)), "");
  EXPECT_NE(ErrorOf(node_with(limits::kMaxGpuTypesPerNode + 1, 1)).find("exceed the limit of 32"), std::string::npos);
  EXPECT_NE(ErrorOf(node_with(1, limits::kMaxGpusPerType + 1)).find("exceeds the limit of 100000"), std::string::npos);
  // Three nodes of 32 distinct types: within every per-node limit, over the offer's.
  std::string nodes;
  for (size_t n = 0; n < 3; ++n) {
    std::string list;
    for (size_t i = 0; i < limits::kMaxGpuTypesPerNode; ++i) {
      list += (i ? ", " : "") + std::string("{model: m") + std::to_string(n * 100 + i) + ", ram: 1Gi, count: 1}";
    }
    nodes += (n ? ", " : "") + std::string("{name: n") + std::to_string(n) + ", cpu_millis: 1, memory: 1, gpus: [" + list + "]}";
  }
  const std::string wide = ErrorOf("providers:\n  - {id: p, pricing: [{denom: u}], nodes: [" + nodes + "]}\n");
  EXPECT_NE(wide.find("providers[0]: offer has more device types than the limit of " +
                      std::to_string(kMaxOfferDeviceTypes)),
            std::string::npos)
      << wide;
}

// Exceptions stop at the boundary (issue 11, item 9): whichever allocation fails while a file is
// parsed, ParseOffers returns a Status. Before, yaml-cpp's std::bad_alloc escaped (only
// YAML::Exception was caught).
TEST(OffersTest, AnAllocationFailureAnywhereIsAStatus) {
  if (!GPUMART_ALLOC_FAILURE_INJECTION) GTEST_SKIP() << "allocation failures cannot be injected under a sanitizer";
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("ParseOffers", [&] { return ParseOffers(kExample); }), 10);
}

}  // namespace
}  // namespace gpumart::market
