// MIG (Multi-Instance GPU) profiles: which GPU-instance profiles each GPU model supports, and
// whether a per-GPU layout of instances fits on one GPU (docs/FRACTIONAL.md). From NVIDIA's MIG
// user guide, "Supported MIG Profiles" (A30, A100 40/80 GB, H100 80/94 GB, H200 141 GB); a GPU
// not listed here has no MIG mode as far as gpumart knows.
//
// The fit check is the slice arithmetic: a GPU has C compute slices and M memory slices, a
// `<n>g.<m>gb` instance takes n compute slices and its share of memory slices, each profile at
// most its documented count, and "+me" (media engine) profiles at most one in all. NVIDIA's
// placement rules are stricter for a few mixes (the driver refuses them at creation time); the
// check refuses every layout that cannot fit, and those are what a config typo produces.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"

namespace gpumart::market {

struct MigProfile {
  std::string_view name;    // "1g.10gb"
  uint32_t compute_slices;  // n of "<n>g"
  uint32_t memory_slices;
  uint32_t max_count;       // instances of this profile one GPU can hold
};

struct MigGpu {
  std::string_view model;   // lower-case market model name
  uint64_t ram_bytes;       // nominal RAM of the whole GPU
  uint32_t compute_slices;
  uint32_t memory_slices;
  std::vector<MigProfile> profiles;
};

// The MIG description of a (model, whole-GPU RAM), or nullptr when that GPU has no MIG mode.
const MigGpu* FindMigGpu(std::string_view model, uint64_t ram_bytes);

// Every MIG-capable GPU, for documentation and error messages.
const std::vector<MigGpu>& MigGpus();

// Whether `layout` (profile -> instances on ONE GPU) fits a GPU of `model` with `ram_bytes`.
// Errors say why, e.g. "a100 80Gi has no MIG profile 1g.5gb (known: 1g.10gb, ...)" or
// "8 x 1g.10gb take 8 compute slices, a100 80Gi has 7".
Status CheckMigLayout(std::string_view model, uint64_t ram_bytes, const std::map<std::string, uint32_t>& layout);

}  // namespace gpumart::market
