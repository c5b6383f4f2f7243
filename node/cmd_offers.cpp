// `gpumart offers QUERY [-o FIELD[,FIELD...]] [--limit N] [--json] [--node ADDR] [--data-dir D]`:
// searches a node's live offer book with vast.ai's `search offers` grammar (docs/QUERY.md) over
// the node's client port (the `offers` request, docs/CLIENT.md). The query is parsed here first
// with the same parser the node uses, so a typo is a usage error without a node to ask.
#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "market/offer_query.h"
#include "node/cli.h"
#include "node/client/client.h"
#include "node/config.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

// Hex digits of a provider key the table shows (JSON shows all 64).
constexpr size_t kShownKeyDigits = 16;

std::string Joined(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : separator) + part;
  return out;
}

// 64000 -> "64", 1500 -> "1.5".
std::string FormatCores(uint64_t millis) {
  std::string out = std::to_string(millis / 1000);
  if (millis % 1000 != 0) {
    std::string fraction = std::to_string(millis % 1000);
    fraction.insert(0, 3 - fraction.size(), '0');
    while (fraction.back() == '0') fraction.pop_back();
    out += "." + fraction;
  }
  return out;
}

// Reliability as vast.ai shows it, a percentage with one decimal: 970000 ppm -> "97.0".
std::string FormatPercent(uint32_t ppm) {
  return std::to_string(ppm / 10'000) + "." + std::to_string(ppm / 1'000 % 10);
}

std::string AttributeOr(const market::OfferRow& row, const char* key) {
  const auto found = row.attributes.find(key);
  return found == row.attributes.end() ? "-" : Printable(found->second);
}

void PrintRows(std::ostream& out, const market::OfferSearchResult& result, const std::string& order) {
  if (result.matched == 0) {
    out << "no offers match\n";
    return;
  }
  std::vector<std::vector<std::string>> table{{"PROVIDER", "NAME", "NODE", "N", "MODEL", "VRAM", "IF", "CUDA", "vCPUs",
                                               "RAM", "DISK", "DPH/GPU", "DPH", "DENOM", "R", "VERIFIED", "REGION",
                                               "COUNTRY"}};
  for (const market::OfferRow& row : result.rows) {
    table.push_back({Printable(row.provider.substr(0, kShownKeyDigits)), row.name.empty() ? "-" : Printable(row.name),
                     Printable(row.node), std::to_string(row.num_gpus) + "x", Printable(row.device.model),
                     market::FormatGi(row.device.ram_bytes), std::string(market::ToString(row.device.interface)),
                     row.cuda ? market::ToString(*row.cuda) : "-", FormatCores(row.cpu_millis),
                     market::FormatGi(row.memory_bytes), market::FormatGi(row.storage_bytes),
                     std::to_string(row.dph_per_gpu), std::to_string(row.dph), Printable(row.denom),
                     FormatPercent(row.reliability_ppm), row.verified ? "yes" : "no", AttributeOr(row, "region"),
                     AttributeOr(row, "country")});
  }
  PrintTable(out, table);
  out << result.rows.size() << " of " << result.matched << " matching offers (sorted by "
      << (order.empty() ? "dph" : Printable(order)) << "; prices in micro-units of the denom per hour)\n";
}

}  // namespace

void RegisterOffersCommand(CLI::App& app, CliContext& context) {
  auto* command = app.add_subcommand("offers", "search a node's live offer book (vast.ai's search offers grammar)");
  struct Options {
    std::vector<std::string> query;  // joined with spaces, as vast.ai does
    std::vector<std::string> order;  // each -o adds keys
    size_t limit = market::kDefaultOfferSearchRows;
    bool json = false;
    std::string node;
    std::string data_dir = std::string(kDefaultDataDir);
  };
  auto options = std::make_shared<Options>();
  command->add_option("query", options->query,
                      "terms like 'gpu_name=h100 num_gpus>=2 reliability>0.9' (docs/QUERY.md); none: every offer");
  command->add_option("-o,--order", options->order,
                      "sort keys, comma-separated; FIELD- descending (default: dph, cheapest first)");
  command->add_option("--limit", options->limit, "at most this many rows")
      ->check(CLI::Range(size_t{1}, market::kMaxOfferSearchRows))
      ->capture_default_str();
  command->add_flag("--json", options->json, "print JSON");
  command->add_option("--node", options->node,
                      "the node's client address (default: client.yaml's node, else the local daemon)");
  command->add_option("--data-dir,-d", options->data_dir, "the local daemon's data directory")->capture_default_str();
  SetCommandBody(*command, context, [options, &context] {
    const std::string query = Joined(options->query, " ");
    const std::string order = Joined(options->order, ",");
    if (auto parsed = market::ParseOfferQuery(query); !parsed.ok()) return context.Fail(parsed.status(), kExitUsage);
    if (auto parsed = market::ParseOfferOrder(order); !parsed.ok()) return context.Fail(parsed.status(), kExitUsage);

    Result<std::string> address = client::ResolveNodeAddress(options->node, options->data_dir);
    if (!address.ok()) return context.Fail(address.status());
    auto connected = client::Client::Connect(*address);
    if (!connected.ok()) return context.Fail(connected.status().WithContext(*address));
    Result<client::Fields> answer = (*connected)->Call(
        "offers", client::Fields{{"query", query}, {"order", order}, {"limit", uint64_t{options->limit}}});
    if (!answer.ok()) return context.Fail(answer.status());
    Result<const std::string*> text = client::Require<std::string>(*answer, "json");
    if (!text.ok()) return context.Fail(text.status());
    const Json json = Json::parse(**text, nullptr, /*allow_exceptions=*/false);
    Result<market::OfferSearchResult> result = OfferSearchResultFromJson(json);
    if (!result.ok()) return context.Fail(result.status());
    if (options->json) {
      context.out << DumpJson(ToJson(*result)) << "\n";
    } else {
      PrintRows(context.out, *result, order);
    }
    return kExitOk;
  });
}

}  // namespace gpumart::node
