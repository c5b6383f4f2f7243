// Offers files: providers' free capacity and prices, in YAML or JSON (docs/OFFERS.md). The same
// schema a provider config uses for its inventory and pricing. `gpumart match` reads them; the
// parser is strict (unknown keys, negative or absurd numbers, duplicates are errors naming the
// path, e.g. `providers[2].nodes[0].gpus[1].count: -4 is negative`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "market/codec.h"
#include "market/status.h"
#include "market/types.h"
#include "market/yaml_tree.h"

namespace gpumart::market {

// Named limits on an offers file. Anything past them is an error, never a silent truncation.
// What a file describes is an offer a provider advertises, so everything an offer carries is
// bounded by the wire's limits (market/codec.h: nodes, GPU entries per node, GPUs per entry,
// price tables, rate keys, attributes, auditors, name lengths) and the matching engine's
// (market/match.h: device types and GPU entries per offer); only what is the file's own is here.
constexpr size_t kMaxOffersFileBytes = 64 * kMi;
// The YAML tree of a file at the size limit: about one node per 4 bytes (a real file has one per
// 10 or more); nesting as deep as the schema needs, with room.
constexpr size_t kMaxOffersYamlNodes = kMaxOffersFileBytes / 4;
constexpr size_t kMaxOffersNestingDepth = 16;
constexpr size_t kMaxOfferProviders = 100'000;
constexpr size_t kMaxOfferNodesTotal = 1'000'000;          // over all providers of a file
constexpr uint64_t kMaxCpuMillisPerNode = 10'000'000;      // 10,000 cores
constexpr uint64_t kMaxNodeMemoryBytes = 1024 * kTi;       // 1 PiB
constexpr uint64_t kMaxNodeStorageBytes = 1024 * 1024 * kTi;  // 1 EiB
constexpr uint64_t kMaxGpuRamBytes = 16 * kTi;
// Fractional GPUs (docs/FRACTIONAL.md): profiles in one GPU's MIG layout and instances of one
// profile on one GPU (a GPU has at most 7 slices; room for future parts), and time-slice
// replicas of one GPU (the device plugin allows any number; past this a GPU is not shared, it is
// a typo).
constexpr size_t kMaxMigProfilesPerGpu = 16;
constexpr uint64_t kMaxMigInstancesPerGpu = 64;
constexpr uint64_t kMaxTimeSliceReplicas = 64;
// Micro-units per hour; 10^15 is a billion whole units an hour, far past any real price, and
// small enough that prices of real orders cannot overflow 64 bits.
constexpr uint64_t kMaxRatePerHour = 1'000'000'000'000'000;

// `count` physical GPUs of the whole-GPU type `gpu` (no MIG profile, not shared), and what each
// one is sold as (docs/FRACTIONAL.md): a whole GPU as {gpu: 1}, a GPU in MIG mode as its
// instances per profile, a time-sliced GPU as {the shared type: replicas}. A node's device counts
// are these summed; only this says which units fail together when one GPU does (docs/HEALTH.md).
// A detected GPU (bidding/nvidia_smi.h) is one entry of count 1 with its PCI bus id (as
// bidding::NormalizeBusId writes it); a listed entry has none.
struct PhysicalGpus {
  DeviceType gpu;
  uint32_t count = 0;
  std::string bus_id;
  std::map<DeviceType, uint32_t> units;  // per GPU
  bool operator==(const PhysicalGpus&) const = default;
};
// By node name, each node's entries in the order listed (detected: nvidia-smi's order).
using PhysicalGpuLayout = std::map<std::string, std::vector<PhysicalGpus>>;

// The pieces of an offers document, for documents that embed them (a provider config's
// inventory and prices, bidding/inventory.h), so each part has one parser. Errors start with
// `path`, the key path of `value` (e.g. `inventory.nodes`).
//
// `attributes` (a map of names to strings), `auditors` (a list of names), `pricing` (a non-empty
// list of price tables, one per denom), `nodes` (a non-empty list of nodes with unique names).
// Where `detect_node` is given, one node's `gpus` may be the word `detect` (its GPUs are this
// machine's, found at start); its index is stored there. Elsewhere `detect` is an error.
constexpr std::string_view kDetectGpus = "detect";
Status ParseOfferAttributes(const YamlNode& value, const std::string& path,
                            std::map<std::string, std::string>& attributes);
Status ParseOfferAuditors(const YamlNode& value, const std::string& path, std::vector<std::string>& auditors);
Status ParseOfferPricing(const YamlNode& value, const std::string& path, std::vector<PriceTable>& pricing);
// `physical`, when given, gets each node's GPU entries as physical GPUs (PhysicalGpus), by node
// name: what one GPU of each entry is sold as, which the nodes' device counts no longer say.
Status ParseOfferNodes(const YamlNode& value, const std::string& path, std::vector<NodeCapacity>& nodes,
                       std::optional<size_t>* detect_node, PhysicalGpuLayout* physical = nullptr);
// Scalars as the offers file reads them: a whole number at most `max`; a size (ParseSizeBytes)
// at most `max`; a non-empty name of at most limits::kMaxNameBytes.
Result<uint64_t> ParseOfferCount(const YamlNode& value, const std::string& path, uint64_t max);
Result<uint64_t> ParseOfferSize(const YamlNode& value, const std::string& path, uint64_t max);
Result<std::string> ParseOfferString(const YamlNode& value, const std::string& path);
// A map whose keys are all `allowed` (once each) and include every `required` one; the error
// for an unknown key lists the allowed ones.
Status CheckOfferKeys(const YamlNode& node, const std::string& path, std::initializer_list<std::string_view> allowed,
                      std::initializer_list<std::string_view> required);

// Parses an offers document (YAML or JSON). Sizes are read by ParseSizeBytes (market/sdl.h), as
// in an SDL. Never throws. GPU models and vendors are lower-cased and gpu rate
// keys are written in canonical form (`h100.80Gi.sxm`, sizes via FormatGi, sxm4 -> sxm), which
// is how the matching engine looks them up.
Result<std::vector<Offer>> ParseOffers(std::string_view text);
// Reads and parses a file; errors start with the file's path.
Result<std::vector<Offer>> ParseOffersFile(const std::string& path);

}  // namespace gpumart::market
