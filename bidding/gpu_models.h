// The GPU model table: what each GPU product is called by nvidia-smi and by the market
// (configs/gpu_models.yaml, compiled in as the built-in table; docs/CONFIGURATION.md, "Provider
// inventory"). A provider's inventory is checked against it, and `inventory: detect` maps the
// products nvidia-smi reports through it. Users extend it with a file in the same format; their
// entries win.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::bidding {

// A table file is a user's config: bounded like one (node/config.h).
constexpr size_t kMaxGpuModelsFileBytes = 1 << 20;
constexpr size_t kMaxGpuModels = 4096;
constexpr size_t kMaxGpuModelsYamlNodes = 64 * 1024;
constexpr size_t kMaxGpuModelsNestingDepth = 8;

struct GpuModel {
  std::string product;         // nvidia-smi's name, e.g. "NVIDIA H100 80GB HBM3"; "" = configs only
  market::DeviceType device;   // vendor and model lower-case, nominal RAM, interface
  bool operator==(const GpuModel&) const = default;
};

class GpuModelTable {
 public:
  // Parses a table document (`gpu_models: [...]`). Errors name the entry and key, e.g.
  // `gpu_models[3].ram: ...`; a product listed twice is an error.
  static Result<GpuModelTable> Parse(std::string_view yaml_text);
  // configs/gpu_models.yaml as compiled in.
  static Result<GpuModelTable> Builtin();
  // The built-in table extended by the file at `extra_path` ("" = none); errors start with the path.
  static Result<GpuModelTable> Load(const std::string& extra_path);

  // Adds `extra`'s entries; one with the same product as an entry here replaces it.
  void Extend(const GpuModelTable& extra);
  // The entry whose product equals `product`, ignoring letter case and runs of spaces; nullptr
  // when none.
  const GpuModel* FindProduct(std::string_view product) const;
  // Whether some entry is exactly this device type (vendor and model compared lower-case).
  bool Knows(const market::DeviceType& device) const;
  // Every known device type of vendor and model ("80Gi sxm, 94Gi pcie"), for error messages;
  // "" when the model is unknown.
  std::string Variants(std::string_view vendor, std::string_view model) const;

  const std::vector<GpuModel>& models() const { return models_; }

 private:
  std::vector<GpuModel> models_;
};

// `product` lower-cased, trimmed, with runs of spaces as one and without a leading "NVIDIA ":
// how products are compared.
std::string NormalizeProduct(std::string_view product);

}  // namespace gpumart::bidding
