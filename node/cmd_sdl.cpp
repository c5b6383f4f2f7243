// `gpumart sdl check FILE [--json] [--strict]`: parse an Akash SDL and show the orders gpumart would
// send. Warnings (what the reader ignored) go to stderr; --strict makes them errors.
#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <string>

#include "market/sdl.h"
#include "node/cli.h"
#include "node/json.h"

namespace gpumart::node {
namespace {

// Bytes in the largest unit that divides them exactly: "80Gi", "512Mi", "100G", "1234".
std::string FormatBytes(uint64_t bytes) {
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {market::kTi, "Ti"}, {market::kGi, "Gi"}, {market::kMi, "Mi"}, {market::kKi, "Ki"},
      {1'000'000'000'000ull, "T"}, {1'000'000'000ull, "G"}, {1'000'000ull, "M"}, {1'000ull, "k"}};
  for (const auto& [size, suffix] : kUnits) {
    if (bytes != 0 && bytes % size == 0) return std::to_string(bytes / size) + suffix;
  }
  return std::to_string(bytes);
}

// Millicores as cores: 16000 -> "16", 500 -> "0.5", 250 -> "0.25".
std::string FormatCores(uint64_t millis) {
  std::string out = std::to_string(millis / 1000);
  uint64_t fraction = millis % 1000;
  if (fraction == 0) return out;
  std::string digits = std::to_string(fraction);
  digits.insert(0, 3 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  return out + "." + digits;
}

std::string FormatOption(const market::GpuOption& option) {
  std::string out = option.vendor + " " + option.model;
  if (option.ram_min_bytes) out += ", ram >= " + FormatBytes(*option.ram_min_bytes);
  if (option.interface) out += ", " + std::string(market::ToString(*option.interface));
  if (option.mig) out += ", MIG " + *option.mig;
  if (option.mig_min_ram_bytes > 0) out += ", MIG instance >= " + FormatBytes(option.mig_min_ram_bytes);
  if (option.shared_ok) out += ", shared GPU ok";
  return out;
}

void PrintList(std::ostream& out, const std::vector<std::string>& keys) {
  for (size_t i = 0; i < keys.size(); ++i) out << (i ? ", " : "") << keys[i];
}

void PrintHuman(std::ostream& out, const market::Deployment& deployment) {
  out << "SDL version " << deployment.version << ": " << deployment.orders.size()
      << (deployment.orders.size() == 1 ? " group" : " groups") << "\n";
  for (const auto& order : deployment.orders) {
    out << "\ngroup " << order.group << ": " << order.services.size()
        << (order.services.size() == 1 ? " service" : " services") << ", cap ";
    const std::vector<std::string> denoms = order.Denoms();
    for (size_t i = 0; i < denoms.size(); ++i) {
      out << (i == 0 ? "" : " or ") << order.CapPerHourIn(denoms[i]).value_or(0) << " " << denoms[i] << "/hour";
    }
    out << " in total" << (denoms.size() > 1 ? " (denoms in order of preference)" : "") << "\n";
    if (!order.attributes.empty()) {
      out << "  provider attributes:";
      for (const auto& [key, value] : order.attributes) out << " " << key << "=" << value;
      out << "\n";
    }
    if (!order.signed_by.all_of.empty()) {
      out << "  signed by all of: ";
      PrintList(out, order.signed_by.all_of);
      out << "\n";
    }
    if (!order.signed_by.any_of.empty()) {
      out << "  signed by any of: ";
      PrintList(out, order.signed_by.any_of);
      out << "\n";
    }
    for (const auto& service : order.services) {
      const auto& resources = service.resources;
      out << "  service " << service.name << " (profile " << service.profile << "), " << service.count
          << (service.count == 1 ? " replica" : " replicas") << "\n";
      out << "    per replica: cpu " << FormatCores(resources.cpu_millis) << ", memory "
          << FormatBytes(resources.memory_bytes);
      for (const auto& volume : resources.storage) {
        out << ", storage " << volume.name << " " << FormatBytes(volume.bytes);
        if (volume.persistent || volume.storage_class) {
          out << " (" << (volume.persistent ? "persistent" : "ephemeral");
          if (volume.storage_class) out << ", class " << *volume.storage_class;
          out << ")";
        }
      }
      out << "\n";
      if (resources.gpu.units > 0) {
        out << "    gpu: " << resources.gpu.units << " per replica, all of one of (most preferred first):\n";
        for (size_t i = 0; i < resources.gpu.options.size(); ++i) {
          out << "      " << i + 1 << ". " << FormatOption(resources.gpu.options[i]) << "\n";
        }
      } else {
        out << "    gpu: none\n";
      }
      if (service.cuda_min) out << "    cuda >= " << market::ToString(*service.cuda_min) << "\n";
      out << "    price cap: " << service.price_cap.amount << " " << service.price_cap.denom << "/block = "
          << service.price_cap.per_hour << " " << service.price_cap.denom << "/hour per replica\n";
      for (const market::PriceCap& cap : service.more_caps) {
        out << "       or: " << cap.amount << " " << cap.denom << "/block = " << cap.per_hour << " " << cap.denom
            << "/hour per replica\n";
      }
    }
  }
}

int RunSdlCheck(const std::string& file, bool json, bool strict, CliContext& context) {
  Result<market::Deployment> deployment = market::ParseSdlFile(file, {.strict = strict});
  if (!deployment.ok()) {
    return context.Fail(deployment.status().WithContext(file));
  }
  PrintSdlWarnings(context, file, *deployment);
  if (json) {
    context.out << DumpJson(ToJson(*deployment), 2) << "\n";
  } else {
    PrintHuman(context.out, *deployment);
  }
  return kExitOk;
}

}  // namespace

void PrintSdlWarnings(CliContext& context, const std::string& file, const market::Deployment& deployment) {
  for (const market::SdlWarning& warning : deployment.warnings) {
    context.err << "gpumart " << context.command << ": " << file << ": warning: " << warning.ToString() << "\n";
  }
}

void RegisterSdlCommands(CLI::App& app, CliContext& context) {
  CLI::App* sdl = app.add_subcommand("sdl", "Work with Akash SDL deployment files (deploy.yaml)");
  sdl->require_subcommand(1);
  CLI::App* check = sdl->add_subcommand("check", "Parse an SDL file and show the orders gpumart would make");
  struct Options {
    std::string file;
    bool json = false;
    bool strict = false;
  };
  auto options = std::make_shared<Options>();
  check->add_option("FILE", options->file, "the SDL file (deploy.yaml)")->required();
  check->add_flag("--json", options->json, "print the parsed orders as JSON");
  check->add_flag("--strict", options->strict,
                  "unknown fields are errors, and Akash Console's schema rules apply (docs/SDL.md)");
  SetCommandBody(*check, context, [&context, options] {
    return RunSdlCheck(options->file, options->json, options->strict, context);
  });
}

}  // namespace gpumart::node
