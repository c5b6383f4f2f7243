#include "bidding/gpu_models.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "bidding/gpu_models_builtin.h"
#include "market/boundary.h"
#include "market/offers.h"
#include "market/yaml_tree.h"

namespace gpumart::bidding {
namespace {

using market::YamlNode;

bool SameModel(const market::DeviceType& device, std::string_view vendor, std::string_view model) {
  return device.vendor == market::ToLower(vendor) && device.model == market::ToLower(model);
}

Status ParseEntry(const YamlNode& node, const std::string& path, GpuModel& model) {
  GPUMART_RETURN_IF_ERROR(market::CheckOfferKeys(node, path, {"product", "vendor", "model", "ram", "interface"},
                                                 {"model", "ram", "interface"}));
  for (const market::YamlMapEntry& entry : node.Entries()) {
    const std::string key(entry.key.Scalar());
    const std::string at = path + "." + key;
    if (key == "ram") {
      Result<uint64_t> ram = market::ParseOfferSize(entry.value, at, market::kMaxGpuRamBytes);
      if (!ram.ok()) return ram.status();
      if (*ram == 0) return Status::InvalidArgument(at + ": a GPU has memory");
      model.device.ram_bytes = *ram;
      continue;
    }
    Result<std::string> text = market::ParseOfferString(entry.value, at);
    if (!text.ok()) return text.status();
    if (key == "product") {
      model.product = *text;
    } else if (key == "vendor") {
      model.device.vendor = market::ToLower(*text);
    } else if (key == "model") {
      model.device.model = market::ToLower(*text);
      if (model.device.model == "*") return Status::InvalidArgument(at + ": a concrete model, not '*'");
    } else if (key == "interface") {
      std::optional<market::GpuInterface> interface = market::ParseGpuInterface(*text);
      if (!interface) return Status::InvalidArgument(at + ": '" + *text + "' is not pcie or sxm");
      model.device.interface = *interface;
    }
  }
  return Status::Ok();
}

}  // namespace

std::string NormalizeProduct(std::string_view product) {
  std::string out;
  out.reserve(product.size());
  for (char c : product) {
    const bool space = c == ' ' || c == '\t';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out.push_back(space ? ' ' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  // Drivers before R470 named data-centre GPUs without the vendor ("A100-SXM4-40GB"; later ones
  // print "NVIDIA A100-SXM4-40GB"): the same product either way.
  constexpr std::string_view kVendor = "nvidia ";
  if (out.size() > kVendor.size() && out.starts_with(kVendor)) out.erase(0, kVendor.size());
  return out;
}

Result<GpuModelTable> GpuModelTable::Parse(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxGpuModelsFileBytes) {
    return Status::LimitExceeded("a GPU model table of " + std::to_string(yaml_text.size()) +
                                 " bytes exceeds the limit of " + std::to_string(kMaxGpuModelsFileBytes));
  }
  return CatchAll("gpu_models", [&]() -> Result<GpuModelTable> {
    Result<market::YamlTree> tree = market::YamlTree::Parse(
        yaml_text, {.max_nodes = kMaxGpuModelsYamlNodes, .max_depth = kMaxGpuModelsNestingDepth});
    if (!tree.ok()) return tree.status();
    const YamlNode root = tree->Root();
    if (!root.IsMap()) return Status::InvalidArgument("a GPU model table is a map with a 'gpu_models' list");
    GPUMART_RETURN_IF_ERROR(market::CheckOfferKeys(root, "", {"gpu_models"}, {"gpu_models"}));
    const YamlNode list = root.Find("gpu_models");
    if (!list.IsSequence()) return Status::InvalidArgument("gpu_models: must be a list");
    if (list.size() > kMaxGpuModels) {
      return Status::LimitExceeded("gpu_models: " + std::to_string(list.size()) + " entries exceed the limit of " +
                                   std::to_string(kMaxGpuModels));
    }
    GpuModelTable table;
    std::set<std::string> products;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = "gpu_models[" + std::to_string(i) + "]";
      GpuModel model;
      GPUMART_RETURN_IF_ERROR(ParseEntry(list.Item(i), path, model));
      if (!model.product.empty() && !products.insert(NormalizeProduct(model.product)).second) {
        return Status::InvalidArgument(path + ".product: '" + model.product + "' is listed twice");
      }
      table.models_.push_back(std::move(model));
    }
    return table;
  });
}

Result<GpuModelTable> GpuModelTable::Builtin() {
  Result<GpuModelTable> table = Parse(kBuiltinGpuModelsYaml);
  if (!table.ok()) return table.status().WithContext("the built-in GPU model table (configs/gpu_models.yaml)");
  return table;
}

Result<GpuModelTable> GpuModelTable::Load(const std::string& extra_path) {
  Result<GpuModelTable> table = Builtin();
  if (!table.ok() || extra_path.empty()) return table;
  return CatchAll(extra_path, [&]() -> Result<GpuModelTable> {
    std::ifstream file(extra_path, std::ios::binary);
    if (!file) return Status::IoError(extra_path + ": cannot open");
    std::string text(kMaxGpuModelsFileBytes + 1, '\0');
    file.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (file.bad()) return Status::IoError(extra_path + ": cannot read");
    text.resize(static_cast<size_t>(file.gcount()));
    Result<GpuModelTable> extra = Parse(text);
    if (!extra.ok()) return extra.status().WithContext(extra_path);
    table->Extend(*extra);
    return std::move(table).value();
  });
}

void GpuModelTable::Extend(const GpuModelTable& extra) {
  for (const GpuModel& model : extra.models_) {
    auto same = models_.end();
    if (!model.product.empty()) {
      const std::string product = NormalizeProduct(model.product);
      same = std::find_if(models_.begin(), models_.end(),
                          [&](const GpuModel& other) { return NormalizeProduct(other.product) == product; });
    }
    if (same != models_.end()) {
      *same = model;
    } else {
      models_.push_back(model);
    }
  }
}

const GpuModel* GpuModelTable::FindProduct(std::string_view product) const {
  const std::string wanted = NormalizeProduct(product);
  if (wanted.empty()) return nullptr;
  for (const GpuModel& model : models_) {
    if (NormalizeProduct(model.product) == wanted) return &model;
  }
  return nullptr;
}

bool GpuModelTable::Knows(const market::DeviceType& device) const {
  for (const GpuModel& model : models_) {
    if (SameModel(model.device, device.vendor, device.model) && model.device.ram_bytes == device.ram_bytes &&
        model.device.interface == device.interface) {
      return true;
    }
  }
  return false;
}

std::string GpuModelTable::Variants(std::string_view vendor, std::string_view model) const {
  std::set<std::pair<uint64_t, std::string>> variants;  // sorted by RAM, without repeats
  for (const GpuModel& known : models_) {
    if (SameModel(known.device, vendor, model)) {
      variants.emplace(known.device.ram_bytes,
                       market::FormatGi(known.device.ram_bytes) + " " + std::string(market::ToString(known.device.interface)));
    }
  }
  std::string text;
  for (const auto& [ram, name] : variants) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace gpumart::bidding
