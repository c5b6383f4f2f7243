#include "market/mig.h"

#include "market/types.h"

namespace gpumart::market {
namespace {

// The standard seven-slice layout (A100, H100, H200): profiles named by their memory in GB.
MigGpu SevenSlice(std::string_view model, uint64_t ram_gib, std::string_view p1, std::string_view p1me,
                  std::string_view p1x2, std::string_view p2, std::string_view p3, std::string_view p4,
                  std::string_view p7) {
  return MigGpu{model, ram_gib * kGi, 7, 8,
                {{p1, 1, 1, 7}, {p1me, 1, 1, 1}, {p1x2, 1, 2, 4}, {p2, 2, 2, 3}, {p3, 3, 4, 2}, {p4, 4, 4, 1}, {p7, 7, 8, 1}}};
}

std::vector<MigGpu> BuildTable() {
  std::vector<MigGpu> table;
  table.push_back(SevenSlice("a100", 40, "1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"));
  table.push_back(SevenSlice("a100", 80, "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"));
  table.push_back(SevenSlice("h100", 80, "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"));
  table.push_back(SevenSlice("h100", 94, "1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"));
  table.push_back(SevenSlice("h200", 141, "1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"));
  // A30: four compute and four memory slices.
  table.push_back(MigGpu{"a30", 24 * kGi, 4, 4,
                         {{"1g.6gb", 1, 1, 4}, {"1g.6gb+me", 1, 1, 1}, {"2g.12gb", 2, 2, 2}, {"2g.12gb+me", 2, 2, 1},
                          {"4g.24gb", 4, 4, 1}}});
  return table;
}

}  // namespace

const std::vector<MigGpu>& MigGpus() {
  static const std::vector<MigGpu> table = BuildTable();
  return table;
}

const MigGpu* FindMigGpu(std::string_view model, uint64_t ram_bytes) {
  for (const MigGpu& gpu : MigGpus()) {
    if (gpu.model == model && gpu.ram_bytes == ram_bytes) return &gpu;
  }
  return nullptr;
}

Status CheckMigLayout(std::string_view model, uint64_t ram_bytes, const std::map<std::string, uint32_t>& layout) {
  const std::string gpu_name = std::string(model) + " " + FormatGi(ram_bytes);
  const MigGpu* gpu = FindMigGpu(model, ram_bytes);
  if (gpu == nullptr) {
    std::string known;
    for (const MigGpu& g : MigGpus()) known += (known.empty() ? "" : ", ") + std::string(g.model) + " " + FormatGi(g.ram_bytes);
    return Status::InvalidArgument(gpu_name + " has no MIG mode (MIG GPUs: " + known + ")");
  }
  if (layout.empty()) return Status::InvalidArgument("a MIG layout lists at least one profile");
  uint64_t compute = 0, memory = 0, media = 0;
  for (const auto& [name, count] : layout) {
    const MigProfile* profile = nullptr;
    for (const MigProfile& p : gpu->profiles) {
      if (p.name == name) profile = &p;
    }
    if (profile == nullptr) {
      std::string known;
      for (const MigProfile& p : gpu->profiles) known += (known.empty() ? "" : ", ") + std::string(p.name);
      return Status::InvalidArgument(gpu_name + " has no MIG profile " + name + " (known: " + known + ")");
    }
    if (count == 0) return Status::InvalidArgument(name + ": 0 instances (leave the profile out)");
    if (count > profile->max_count) {
      return Status::InvalidArgument(std::to_string(count) + " x " + name + ": one " + gpu_name + " holds at most " +
                                     std::to_string(profile->max_count));
    }
    compute += uint64_t{count} * profile->compute_slices;
    memory += uint64_t{count} * profile->memory_slices;
    if (name.find("+me") != std::string::npos) media += count;
  }
  if (compute > gpu->compute_slices) {
    return Status::InvalidArgument("the layout takes " + std::to_string(compute) + " compute slices, " + gpu_name +
                                   " has " + std::to_string(gpu->compute_slices));
  }
  if (memory > gpu->memory_slices) {
    return Status::InvalidArgument("the layout takes " + std::to_string(memory) + " memory slices, " + gpu_name +
                                   " has " + std::to_string(gpu->memory_slices));
  }
  if (media > 1) return Status::InvalidArgument("the layout has " + std::to_string(media) + " +me instances, at most 1");
  return Status::Ok();
}

}  // namespace gpumart::market
