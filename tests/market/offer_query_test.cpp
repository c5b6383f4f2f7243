// The offer search grammar (vast.ai's `search offers`): parsing every operator, value kind,
// list form, error and limit; evaluation and sorting over real offers parsed from YAML.
#include "market/offer_query.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "market/offers.h"
#include "tests/market/offer_query_check.h"

namespace gpumart::market {
namespace {

OfferQuery Parse(std::string_view text) {
  auto query = ParseOfferQuery(text);
  EXPECT_TRUE(query.ok()) << text << ": " << query.status().ToString();
  return query.ok() ? *query : OfferQuery{};
}

OfferTerm OnlyTerm(std::string_view text) {
  const OfferQuery query = Parse(text);
  EXPECT_EQ(query.terms.size(), 1u) << text;
  return query.terms.empty() ? OfferTerm{} : query.terms.front();
}

std::string ErrorOf(std::string_view text) {
  auto query = ParseOfferQuery(text);
  EXPECT_FALSE(query.ok()) << text;
  return query.ok() ? "" : query.status().message();
}

TEST(OfferQueryParseTest, EveryOperatorInSymbolAndWordForm) {
  const std::vector<std::pair<std::string, QueryOp>> cases = {
      {"num_gpus<2", QueryOp::kLt},         {"num_gpus <= 2", QueryOp::kLe},     {"num_gpus=2", QueryOp::kEq},
      {"num_gpus==2", QueryOp::kEq},        {"num_gpus!=2", QueryOp::kNe},       {"num_gpus>=2", QueryOp::kGe},
      {"num_gpus > 2", QueryOp::kGt},       {"num_gpus lt 2", QueryOp::kLt},     {"num_gpus lte 2", QueryOp::kLe},
      {"num_gpus eq 2", QueryOp::kEq},      {"num_gpus neq 2", QueryOp::kNe},    {"num_gpus noteq 2", QueryOp::kNe},
      {"num_gpus not eq 2", QueryOp::kNe},  {"num_gpus gte 2", QueryOp::kGe},    {"num_gpus gt 2", QueryOp::kGt},
      {"num_gpus in [1,2]", QueryOp::kIn},  {"num_gpus notin [1,2]", QueryOp::kNotIn},
      {"num_gpus nin [1,2]", QueryOp::kNotIn}, {"num_gpus not in [1,2]", QueryOp::kNotIn},
      {"num_gpus IN [1,2]", QueryOp::kIn},
  };
  for (const auto& [text, op] : cases) {
    const OfferTerm term = OnlyTerm(text);
    EXPECT_EQ(term.field, OfferField::kNumGpus) << text;
    EXPECT_EQ(term.op, op) << text;
    EXPECT_EQ(term.values.front().number, op == QueryOp::kIn || op == QueryOp::kNotIn ? 1u : 2u) << text;
  }
}

TEST(OfferQueryParseTest, ValuesAreReadInTheFieldsBaseUnit) {
  EXPECT_EQ(OnlyTerm("gpu_ram>=80").values[0].number, 80 * kGi);  // a bare number is GiB
  EXPECT_EQ(OnlyTerm("gpu_ram>=7.5").values[0].number, 15 * kGi / 2);
  EXPECT_EQ(OnlyTerm("gpu_ram>=48GB").values[0].number, 48'000'000'000u);
  EXPECT_EQ(OnlyTerm("gpu_total_ram>=1Ti").values[0].number, kTi);
  EXPECT_EQ(OnlyTerm("cpu_ram>=512").values[0].number, 512 * kGi);
  EXPECT_EQ(OnlyTerm("reliability>0.95").values[0].number, 950'000u);
  EXPECT_EQ(OnlyTerm("reliability<=1").values[0].number, 1'000'000u);
  EXPECT_EQ(OnlyTerm("cuda_vers>=12.4").values[0].number, (12u << 16) | 4u);
  EXPECT_EQ(OnlyTerm("cuda_vers>=12.10").values[0].number, (12u << 16) | 10u);  // a version, not a float
  EXPECT_EQ(OnlyTerm("cpu_cores>=1.5").values[0].number, 1'500u);
  EXPECT_EQ(OnlyTerm("dph<300000").values[0].number, 300'000u);
  EXPECT_EQ(OnlyTerm("verified=True").values[0].number, 1u);
  EXPECT_EQ(OnlyTerm("verified=false").values[0].number, 0u);
  EXPECT_EQ(OnlyTerm("interface=SXM5").values[0].number, static_cast<uint64_t>(GpuInterface::kSxm));
  EXPECT_EQ(OnlyTerm("geolocation=US").values[0].text, "us");
  EXPECT_EQ(OnlyTerm("provider=ABCdef").values[0].text, "abcdef");

  const OfferTerm rtx = OnlyTerm("gpu_name=RTX_4090");
  EXPECT_EQ(rtx.values[0].text, "rtx4090");
  EXPECT_FALSE(rtx.values[0].interface.has_value());
  const OfferTerm sxm = OnlyTerm("gpu_name=H100_SXM");
  EXPECT_EQ(sxm.values[0].text, "h100");
  EXPECT_EQ(sxm.values[0].interface, GpuInterface::kSxm);
  EXPECT_EQ(OnlyTerm("gpu_name=\"A100 PCIE\"").values[0].interface, GpuInterface::kPcie);
}

TEST(OfferQueryParseTest, ListsQuotesAliasesAndSeveralTerms) {
  const OfferTerm names = OnlyTerm("gpu_name in [h100, \"RTX 4090\", 'a100',,]");
  ASSERT_EQ(names.values.size(), 3u);
  EXPECT_EQ(names.values[1].text, "rtx4090");
  EXPECT_EQ(names.values[2].text, "a100");
  const OfferTerm bracket = OnlyTerm("node in [\"rack]1\", n2]");  // a `]` inside quotes is text
  ASSERT_EQ(bracket.values.size(), 2u);
  EXPECT_EQ(bracket.values[0].text, "rack]1");
  const OfferTerm bare = OnlyTerm("geolocation notin TW,SE");  // vast.ai splits a bare value on commas
  ASSERT_EQ(bare.values.size(), 2u);
  EXPECT_EQ(bare.values[1].text, "se");
  EXPECT_EQ(OnlyTerm("dph_total<5").field, OfferField::kDph);
  EXPECT_EQ(OnlyTerm("cuda_max_good>=12").field, OfferField::kCudaVers);
  EXPECT_EQ(OnlyTerm("vendor=nvidia").field, OfferField::kGpuArch);
  EXPECT_EQ(OnlyTerm("cpu_cores_effective>4").field, OfferField::kCpuCores);

  const OfferQuery query = Parse("  reliability > 0.99  num_gpus>=4 geolocation in [TW,SE] gpu_name=any  ");
  ASSERT_EQ(query.terms.size(), 3u);  // `=any` puts no condition on the field
  EXPECT_EQ(query.terms[0].column, 3u);
  EXPECT_EQ(query.terms[1].column, 23u);
  EXPECT_TRUE(Parse("").terms.empty());
  EXPECT_TRUE(Parse(" \t ").terms.empty());
}

TEST(OfferQueryParseTest, ErrorsNameTheColumnAndWhatWasExpected) {
  const std::string unknown = ErrorOf("num_gpus>=1 gpu_nme=h100");
  EXPECT_NE(unknown.find("column 13: unknown field 'gpu_nme'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("gpu_name, gpu_arch, num_gpus"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("dph_total (= dph)"), std::string::npos) << unknown;
  EXPECT_EQ(ErrorOf("num_gpus=>2"), "column 9: unknown operator '=>' (expected one of <, <=, =, ==, !=, >=, >, in, notin)");
  EXPECT_NE(ErrorOf("num_gpus ~ 2").find("column 10: expected an operator"), std::string::npos);
  EXPECT_NE(ErrorOf("num_gpus").find("expected an operator"), std::string::npos);
  EXPECT_NE(ErrorOf("num_gpus foo 2").find("column 10: unknown operator 'foo'"), std::string::npos);
  EXPECT_NE(ErrorOf("num_gpus in[1]").find("expected a space after the operator 'in'"), std::string::npos);
  EXPECT_EQ(ErrorOf("num_gpus=two"), "column 10: num_gpus takes a whole number, not 'two'");
  EXPECT_NE(ErrorOf("reliability>1.5").find("reliability takes a number from 0 to 1"), std::string::npos);
  EXPECT_NE(ErrorOf("reliability>0.1234567").find("at most 6 digits"), std::string::npos);
  EXPECT_NE(ErrorOf("dph<0.5").find("dph takes a whole number of micro-units"), std::string::npos);
  EXPECT_NE(ErrorOf("cuda_vers>=twelve").find("cuda_vers takes a CUDA version"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_ram>=lots").find("gpu_ram takes a size"), std::string::npos);
  EXPECT_NE(ErrorOf("interface=nvlink").find("interface takes pcie or sxm"), std::string::npos);
  EXPECT_NE(ErrorOf("verified=yes").find("verified takes true or false"), std::string::npos);
  EXPECT_NE(ErrorOf("num_gpus>=99999999999999999999").find("whole number"), std::string::npos);  // overflow
  EXPECT_EQ(ErrorOf("gpu_name<h100"), "column 9: gpu_name is compared with =, !=, in or notin, not <");
  EXPECT_NE(ErrorOf("gpu_name=[h100,a100]").find("a list goes with in or notin"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name in [h100").find("unterminated list"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name in []").find("an empty list"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name in [\"h100]").find("unterminated quoted value"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name=\"h100").find("unterminated quoted value"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name=\"h1\"00").find("expected a space after the value"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name=").find("column 10: expected a value after '='"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name=__").find("gpu_name takes a GPU model"), std::string::npos);
  EXPECT_NE(ErrorOf("gpu_name!=any").find("the wildcard 'any' goes only with ="), std::string::npos);
  EXPECT_NE(ErrorOf("=2").find("column 1: expected a field name"), std::string::npos);
  // Control characters in what the user typed are not echoed.
  EXPECT_EQ(ErrorOf("num_gpus=\x1b[2J").find('\x1b'), std::string::npos);
}

TEST(OfferQueryParseTest, LimitsAreEnforcedExactlyAtTheirValue) {
  std::string terms;
  for (size_t i = 0; i < kMaxOfferQueryTerms; ++i) terms += "num_gpus>=1 ";
  EXPECT_TRUE(ParseOfferQuery(terms).ok());
  auto over_terms = ParseOfferQuery(terms + "num_gpus>=1");
  ASSERT_FALSE(over_terms.ok());
  EXPECT_EQ(over_terms.status().code(), Status::Code::kLimitExceeded);

  std::string items;
  for (size_t i = 0; i < kMaxOfferQueryListItems; ++i) items += "1,";
  EXPECT_TRUE(ParseOfferQuery("num_gpus in [" + items + "]").ok());
  auto over_items = ParseOfferQuery("num_gpus in [" + items + "1]");
  ASSERT_FALSE(over_items.ok());
  EXPECT_EQ(over_items.status().code(), Status::Code::kLimitExceeded);
  EXPECT_FALSE(ParseOfferQuery("num_gpus in " + items + "1").ok());  // the bare form counts too

  std::string long_query = "num_gpus>=1";
  long_query.resize(kMaxOfferQueryBytes, ' ');
  EXPECT_TRUE(ParseOfferQuery(long_query).ok());
  long_query += ' ';
  auto too_long = ParseOfferQuery(long_query);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), Status::Code::kLimitExceeded);
}

TEST(OfferQueryParseTest, SortOrders) {
  auto keys = [](std::string_view text) {
    auto parsed = ParseOfferOrder(text);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    return parsed.ok() ? *parsed : std::vector<OfferOrderKey>{};
  };
  using K = OfferOrderKey;
  EXPECT_EQ(keys(""), (std::vector<K>{{OfferField::kDph, false}}));
  EXPECT_EQ(keys("dph-"), (std::vector<K>{{OfferField::kDph, true}}));
  EXPECT_EQ(keys("-dph"), (std::vector<K>{{OfferField::kDph, true}}));
  EXPECT_EQ(keys("dph_total+, reliability-,num_gpus"),
            (std::vector<K>{{OfferField::kDph, false}, {OfferField::kReliability, true}, {OfferField::kNumGpus, false}}));
  auto unknown = ParseOfferOrder("dph,score-");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("column 5: unknown field 'score'"), std::string::npos);
  std::string many;
  for (size_t i = 0; i <= kMaxOfferOrderKeys; ++i) many += "dph,";
  auto too_many = ParseOfferOrder(many);
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(ParseOfferOrder(std::string(kMaxOfferOrderBytes + 1, ',')).status().code(), Status::Code::kLimitExceeded);
}

// Three providers, seven rows: an l40s with no free GPU and no rate is none.
constexpr std::string_view kOffersYaml = R"(
providers:
  - id: prov-a
    attributes: {region: us-west, country: US}
    auditors: [auditor-1]
    reputation: 0.97
    pricing:
      - {denom: uakt, gpu: {"h100.80Gi.sxm": 300000, "a100": 200000}, cpu: 1000, memory: 200}
      - {denom: uusdc, gpu: {"*": 2000000}}
    nodes:
      - {name: n1, cpu_millis: 64000, memory: 512Gi, storage: 2Ti,
         gpus: [{model: h100, ram: 80Gi, interface: sxm, cuda: "12.4", count: 8}]}
      - {name: n2, cpu_millis: 16000, memory: 128Gi,
         gpus: [{model: a100, ram: 40Gi, cuda: "12.6", count: 2}, {model: l40s, ram: 48Gi, count: 0}]}
  - id: prov-b
    attributes: {region: us-east, country: se}
    reputation: 0.5
    pricing: [{denom: uakt, gpu: {"*": 90000}}]
    nodes:
      - {name: b1, cpu_millis: 32000, memory: 256Gi,
         gpus: [{model: rtx4090, ram: 24Gi, cuda: "12.2", count: 4}, {model: a100, ram: 80Gi, interface: sxm4, count: 1}]}
  - id: prov-c
    reputation: 0.99
    pricing: [{denom: uakt, gpu: {"h100": 250000}}]
    nodes:
      - {name: c1, cpu_millis: 8000, memory: 64Gi, gpus: [{model: h100, ram: 80Gi, cuda: "12.8", count: 2}]}
)";

class OfferSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto offers = ParseOffers(kOffersYaml);
    ASSERT_TRUE(offers.ok()) << offers.status().ToString();
    offers_ = *offers;
  }
  OfferSearchResult Search(std::string_view query, std::string_view order = "", size_t limit = 100) {
    auto parsed_query = ParseOfferQuery(query);
    auto parsed_order = ParseOfferOrder(order);
    EXPECT_TRUE(parsed_query.ok() && parsed_order.ok()) << query << " -o " << order;
    if (!parsed_query.ok() || !parsed_order.ok()) return {};
    return SearchOffers(offers_, *parsed_query, *parsed_order, limit);
  }
  // Each row as provider/node/model/denom.
  std::vector<std::string> Ids(std::string_view query, std::string_view order = "", size_t limit = 100) {
    std::vector<std::string> ids;
    for (const OfferRow& row : Search(query, order, limit).rows) {
      ids.push_back(row.provider + "/" + row.node + "/" + row.device.model + "/" + row.denom);
    }
    return ids;
  }
  std::vector<Offer> offers_;
};

TEST_F(OfferSearchTest, ARowIsOneDeviceTypeOnOneNodeInOneDenom) {
  const OfferSearchResult all = Search("");
  EXPECT_EQ(all.matched, 7u);
  EXPECT_EQ(Ids(""), (std::vector<std::string>{
                         "prov-b/b1/a100/uakt",      // 1 x 90000
                         "prov-b/b1/rtx4090/uakt",   // 4 x 90000
                         "prov-a/n2/a100/uakt",      // 2 x 200000
                         "prov-c/c1/h100/uakt",      // 2 x 250000
                         "prov-a/n1/h100/uakt",      // 8 x 300000
                         "prov-a/n2/a100/uusdc",     // 2 x 2000000
                         "prov-a/n1/h100/uusdc",     // 8 x 2000000
                     }));
  const OfferRow& h100 = all.rows[4];
  EXPECT_EQ(h100.name, "");
  EXPECT_EQ(h100.device, (DeviceType{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm}));
  EXPECT_EQ(h100.cuda, (CudaVersion{12, 4}));
  EXPECT_EQ(h100.num_gpus, 8u);
  EXPECT_EQ(h100.dph_per_gpu, 300'000u);
  EXPECT_EQ(h100.dph, 2'400'000u);
  EXPECT_EQ(h100.reliability_ppm, 970'000u);
  EXPECT_TRUE(h100.verified);
  EXPECT_EQ(h100.attributes.at("region"), "us-west");
  EXPECT_EQ(h100.cpu_millis, 64'000u);
  EXPECT_EQ(h100.memory_bytes, 512 * kGi);
  EXPECT_EQ(h100.storage_bytes, 2 * kTi);
}

TEST_F(OfferSearchTest, EachFieldFilters) {
  auto count = [this](std::string_view query) { return Search(query).matched; };
  EXPECT_EQ(count("gpu_name=H100"), 3u);
  EXPECT_EQ(count("gpu_name=H100_SXM"), 2u);
  EXPECT_EQ(count("gpu_name=h100_pcie"), 1u);
  EXPECT_EQ(count("gpu_name=RTX_4090"), 1u);
  EXPECT_EQ(count("gpu_name in [a100, \"RTX 4090\"]"), 4u);
  EXPECT_EQ(count("gpu_name notin [a100,rtx-4090]"), 3u);
  EXPECT_EQ(count("gpu_name!=h100"), 4u);
  EXPECT_EQ(count("gpu_arch=NVIDIA"), 7u);
  EXPECT_EQ(count("num_gpus>=4"), 3u);
  EXPECT_EQ(count("num_gpus=1"), 1u);
  EXPECT_EQ(count("gpu_ram>=80"), 4u);
  EXPECT_EQ(count("gpu_ram>=48GB"), 4u);  // 40Gi is 42.9 GB
  EXPECT_EQ(count("gpu_ram=24"), 1u);
  EXPECT_EQ(count("gpu_total_ram>=640"), 2u);
  EXPECT_EQ(count("cuda_vers>=12.4"), 5u);
  EXPECT_EQ(count("cuda_vers!=12.4"), 4u);  // the A100 without a CUDA version fails every term on it
  EXPECT_EQ(count("interface=sxm"), 3u);
  EXPECT_EQ(count("dph<=400000 denom=uakt"), 3u);
  EXPECT_EQ(count("dph_per_gpu>=2000000"), 2u);
  EXPECT_EQ(count("denom in [UUSDC]"), 2u);
  EXPECT_EQ(count("reliability>0.9"), 5u);
  EXPECT_EQ(count("reliability<0.5"), 0u);
  EXPECT_EQ(count("verified=true"), 4u);
  EXPECT_EQ(count("verified=false"), 3u);
  EXPECT_EQ(count("geolocation=us"), 4u);
  EXPECT_EQ(count("geolocation notin [US]"), 2u);  // prov-c has no country
  EXPECT_EQ(count("region in [us-east,eu-west]"), 2u);
  EXPECT_EQ(count("provider=PROV-C"), 1u);
  EXPECT_EQ(count("node=n2"), 2u);
  EXPECT_EQ(count("cpu_cores>=32"), 4u);
  EXPECT_EQ(count("cpu_ram>=256 disk_space>=1024"), 2u);
  EXPECT_EQ(count("gpu_name=h100 num_gpus>=4 reliability>0.9 denom=uakt"), 1u);
  EXPECT_EQ(count("gpu_name=b200"), 0u);
}

TEST_F(OfferSearchTest, SortKeysDirectionsAndTies) {
  EXPECT_EQ(Ids("denom=uakt", "reliability-,dph"),
            (std::vector<std::string>{"prov-c/c1/h100/uakt", "prov-a/n2/a100/uakt", "prov-a/n1/h100/uakt",
                                      "prov-b/b1/a100/uakt", "prov-b/b1/rtx4090/uakt"}));
  // Equal keys fall back to the row's identity: provider, node, device type, denom.
  EXPECT_EQ(Ids("", "gpu_arch"), (std::vector<std::string>{"prov-a/n1/h100/uakt", "prov-a/n1/h100/uusdc",
                                                           "prov-a/n2/a100/uakt", "prov-a/n2/a100/uusdc",
                                                           "prov-b/b1/a100/uakt", "prov-b/b1/rtx4090/uakt",
                                                           "prov-c/c1/h100/uakt"}));
  // A row without a value sorts last in either direction.
  EXPECT_EQ(Ids("provider=prov-b", "cuda_vers-"), (std::vector<std::string>{"prov-b/b1/rtx4090/uakt", "prov-b/b1/a100/uakt"}));
  EXPECT_EQ(Ids("provider=prov-b", "cuda_vers"), (std::vector<std::string>{"prov-b/b1/rtx4090/uakt", "prov-b/b1/a100/uakt"}));
  EXPECT_EQ(Ids("", "geolocation-,num_gpus-").front(), "prov-a/n1/h100/uakt");
  EXPECT_EQ(Ids("", "geolocation-,num_gpus-").back(), "prov-c/c1/h100/uakt");
}

TEST_F(OfferSearchTest, TheLimitKeepsTheFirstRowsOfTheFullOrderWhateverTheOrderOffersCameIn) {
  const std::vector<std::string> orders = {"", "dph-", "num_gpus,reliability-", "gpu_name,dph_per_gpu-", "node-"};
  for (const std::string& order : orders) {
    const std::vector<std::string> full = Ids("", order);
    ASSERT_EQ(full.size(), 7u);
    for (size_t limit = 0; limit <= 8; ++limit) {
      std::vector<size_t> permutation = {0, 1, 2};
      do {
        std::vector<Offer> shuffled;
        for (size_t i : permutation) shuffled.push_back(offers_[i]);
        const OfferSearchResult result =
            SearchOffers(shuffled, *ParseOfferQuery(""), *ParseOfferOrder(order), limit);
        EXPECT_EQ(result.matched, 7u);
        ASSERT_EQ(result.rows.size(), std::min<size_t>(limit, 7));
        for (size_t i = 0; i < result.rows.size(); ++i) {
          const OfferRow& row = result.rows[i];
          EXPECT_EQ(row.provider + "/" + row.node + "/" + row.device.model + "/" + row.denom, full[i])
              << "order " << order << " limit " << limit;
        }
      } while (std::next_permutation(permutation.begin(), permutation.end()));
    }
  }
}

TEST_F(OfferSearchTest, ALimitAboveTheCapIsLoweredToIt) {
  std::vector<Offer> many;
  for (size_t i = 0; i < kMaxOfferSearchRows + 5; ++i) {
    Offer offer = offers_[2];
    offer.provider = "p" + std::to_string(i);
    many.push_back(offer);
  }
  const OfferSearchResult result = SearchOffers(many, {}, *ParseOfferOrder(""), kMaxOfferSearchRows * 10);
  EXPECT_EQ(result.matched, kMaxOfferSearchRows + 5);
  EXPECT_EQ(result.rows.size(), kMaxOfferSearchRows);
}

// The fuzz target's property on its seed corpus, on every build (the fuzz run needs clang).
TEST(OfferQueryFuzzSeedsTest, EverySeedKeepsTheProperty) {
  const std::filesystem::path corpus =
      std::filesystem::path(GPUMART_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "offer_query";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    std::ifstream file(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << file.rdbuf();
    EXPECT_TRUE(testing::CheckOfferQueryInput(bytes.str())) << entry.path();
    ++seeds;
  }
  EXPECT_GE(seeds, 5u);
  EXPECT_FALSE(testing::FuzzOffers().empty());
}

}  // namespace
}  // namespace gpumart::market
