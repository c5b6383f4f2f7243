// `gpumart match --sdl SDL --offers OFFERS [--policy preference|cheapest] [--top N] [--json] [--strict]`:
// the tenant's dry run. Which providers of an offers file would take each placement group of the
// SDL, what each would bid, in rank order. An empty answer is an answer (exit 0), with a hint
// naming the constraint that excluded the most providers. See docs/MATCHING.md.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "market/match.h"
#include "market/offers.h"
#include "market/sdl.h"
#include "node/cli.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

using json = Json;

constexpr size_t kMaxTop = 1'000'000;

struct MatchOptions {
  std::string sdl;
  std::string offers;
  std::string policy = "preference";
  size_t top = 0;  // 0: every candidate
  bool json = false;
  bool strict = false;  // SDL warnings are errors, Akash Console's schema applies
};

// How many providers each (reason, detail) excluded from a group.
using ExclusionCounts = std::map<std::pair<market::ExclusionReason, std::string>, size_t>;

ExclusionCounts CountExclusions(const market::Order& order, const std::vector<market::Offer>& offers) {
  ExclusionCounts counts;
  for (const market::Offer& offer : offers) {
    market::FitOutcome outcome = market::FitProvider(order, offer);
    if (!outcome.candidate) ++counts[{outcome.exclusion.reason, outcome.exclusion.detail}];
  }
  return counts;
}

std::string FormatReputation(uint32_t ppm) {
  std::string digits = std::to_string(ppm % 1'000'000);
  digits.insert(0, 6 - digits.size(), '0');
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  return std::to_string(ppm / 1'000'000) + (digits.empty() ? "" : "." + digits);
}

std::string FormatDevice(const market::DeviceType& device) {
  return market::Describe(device);
}

void PrintGroup(std::ostream& out, const market::Order& order, const std::vector<market::Candidate>& candidates,
                size_t provider_count, const ExclusionCounts* exclusions, market::Policy policy) {
  out << "group " << order.group << ": " << candidates.size()
      << (candidates.size() == 1 ? " candidate" : " candidates") << " of " << provider_count
      << " providers (policy " << market::ToString(policy) << ", cap ";
  const std::vector<std::string> denoms = order.Denoms();
  for (size_t i = 0; i < denoms.size(); ++i) {
    out << (i == 0 ? "" : " or ") << order.CapPerHourIn(denoms[i]).value_or(0) << " " << denoms[i] << "/hour";
  }
  out << ")\n";
  if (!candidates.empty()) {
    std::vector<std::vector<std::string>> rows{{"#", "PROVIDER", "PRICE/HOUR", "REPUTATION", "SERVICES"}};
    for (size_t i = 0; i < candidates.size(); ++i) {
      const market::Candidate& c = candidates[i];
      std::string services;
      for (const market::ServiceAssignment& a : c.services) {
        if (!services.empty()) services += "; ";
        services += a.service + ": ";
        if (a.device) services += "option " + std::to_string(*a.option + 1) + " " + FormatDevice(*a.device) + " ";
        services += "on";
        for (const market::Placement& p : a.placements) services += " " + p.node + " x" + std::to_string(p.replicas);
      }
      rows.push_back({std::to_string(i + 1), c.provider, std::to_string(c.price_per_hour) + " " + c.denom,
                      FormatReputation(c.reputation_ppm), services});
    }
    PrintTable(out, rows);
  }
  if (candidates.empty() && exclusions != nullptr) {
    if (exclusions->empty()) {
      out << "  hint: the offers list no providers\n";
      return;
    }
    std::vector<std::pair<size_t, std::string>> ranked;
    for (const auto& [key, count] : *exclusions) {
      ranked.push_back({count, market::DescribeExclusion({key.first, key.second}, order)});
    }
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    out << "  hint: no provider can take this group; most were excluded by: " << ranked.front().second << " ("
        << ranked.front().first << " of " << provider_count << ")\n";
    for (size_t i = 1; i < ranked.size(); ++i) {
      out << "        then: " << ranked[i].second << " (" << ranked[i].first << ")\n";
    }
  }
}

int RunMatch(const MatchOptions& options, CliContext& context) {
  Result<market::Deployment> deployment = market::ParseSdlFile(options.sdl, {.strict = options.strict});
  if (!deployment.ok()) {
    return context.Fail(deployment.status().WithContext(options.sdl));
  }
  PrintSdlWarnings(context, options.sdl, *deployment);
  Result<std::vector<market::Offer>> offers = market::ParseOffersFile(options.offers);
  if (!offers.ok()) {
    return context.Fail(offers.status());
  }
  const market::Policy policy = market::ParsePolicy(options.policy).value_or(market::Policy::kPreference);
  market::OfferBook book;
  if (Status status = book.UpsertAll(*offers); !status.ok()) {
    return context.Fail(status.WithContext(options.offers));
  }
  const size_t k = options.top == 0 ? offers->size() : options.top;
  json groups = json::array();
  for (size_t g = 0; g < deployment->orders.size(); ++g) {
    const market::Order& order = deployment->orders[g];
    const std::vector<market::Candidate> candidates = book.TopK(order, policy, k);
    // Reasons cost a full scan: computed for JSON (always reported) or for the empty-answer hint.
    ExclusionCounts exclusions;
    const bool explain = options.json || candidates.empty();
    if (explain) exclusions = CountExclusions(order, *offers);
    if (options.json) {
      json list = json::array();
      for (const market::Candidate& candidate : candidates) list.push_back(ToJson(candidate));
      json excluded = json::object();
      for (const auto& [key, count] : exclusions) {
        const std::string name(market::ToString(key.first));
        excluded[name] = excluded.value(name, size_t{0}) + count;
      }
      groups.push_back({{"name", order.group}, {"candidates", std::move(list)}, {"excluded", std::move(excluded)}});
    } else {
      if (g > 0) context.out << "\n";
      PrintGroup(context.out, order, candidates, offers->size(), explain ? &exclusions : nullptr, policy);
    }
  }
  if (options.json) {
    json warnings = json::array();
    for (const market::SdlWarning& warning : deployment->warnings) {
      warnings.push_back({{"path", warning.path}, {"message", warning.message}});
    }
    context.out << DumpJson(json{{"policy", std::string(market::ToString(policy))},
                                 {"groups", std::move(groups)},
                                 {"warnings", std::move(warnings)}},
                            2)
                << "\n";
  }
  return kExitOk;
}

}  // namespace

void RegisterMatchCommand(CLI::App& app, CliContext& context) {
  CLI::App* command = app.add_subcommand(
      "match", "Dry run: which providers of an offers file would take each group of an SDL, at what price");
  auto options = std::make_shared<MatchOptions>();
  command->add_option("--sdl", options->sdl, "the SDL file (deploy.yaml)")->required();
  command->add_option("--offers", options->offers, "the offers file, YAML or JSON (docs/OFFERS.md)")->required();
  command->add_option("--policy", options->policy, "ranking: preference (default) or cheapest")
      ->check(CLI::IsMember({"preference", "cheapest"}));
  command->add_option("--top", options->top, "show at most N candidates per group (default: all)")
      ->check(CLI::Range(size_t{1}, kMaxTop));
  command->add_flag("--json", options->json, "print JSON");
  command->add_flag("--strict", options->strict,
                    "SDL: unknown fields are errors, and Akash Console's schema rules apply (docs/SDL.md)");
  SetCommandBody(*command, context, [options, &context] { return RunMatch(*options, context); });
}

}  // namespace gpumart::node
