// Offers files: providers' free capacity and prices, in YAML or JSON (docs/OFFERS.md). The same
// schema a provider config uses for its inventory and pricing. `gpumart match` reads them; the
// parser is strict (unknown keys, negative or absurd numbers, duplicates are errors naming the
// path, e.g. `providers[2].nodes[0].gpus[1].count: -4 is negative`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "market/codec.h"
#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

// Named limits on an offers file. Anything past them is an error, never a silent truncation.
constexpr size_t kMaxOffersFileBytes = 64 * kMi;
constexpr size_t kMaxOfferProviders = 100'000;
constexpr size_t kMaxNodesPerProvider = 1'024;
constexpr size_t kMaxOfferNodesTotal = 1'000'000;          // over all providers of a file
constexpr size_t kMaxGpuTypesPerNode = 16;
constexpr uint64_t kMaxGpusPerNode = 64;
constexpr uint64_t kMaxCpuMillisPerNode = 10'000'000;      // 10,000 cores
constexpr uint64_t kMaxNodeMemoryBytes = 1024 * kTi;       // 1 PiB
constexpr uint64_t kMaxNodeStorageBytes = 1024 * 1024 * kTi;  // 1 EiB
constexpr uint64_t kMaxGpuRamBytes = 16 * kTi;
constexpr size_t kMaxPriceTablesPerProvider = 16;
constexpr size_t kMaxGpuRatesPerTable = 256;
// Micro-units per hour; 10^15 is a billion whole units an hour, far past any real price, and
// small enough that prices of real orders cannot overflow 64 bits.
constexpr uint64_t kMaxRatePerHour = 1'000'000'000'000'000;
constexpr size_t kMaxAttributesPerProvider = 64;
constexpr size_t kMaxAuditorsPerProvider = limits::kMaxAuditors;  // as on the wire
// ids, names, attribute keys and values, denoms: as on the wire, so every offer a file yields is
// one a provider can advertise.
constexpr size_t kMaxOfferStringLength = limits::kMaxNameBytes;

// Parses an offers document (YAML or JSON). GPU models and vendors are lower-cased and gpu rate
// keys are written in canonical form (`h100.80Gi.sxm`, sizes via FormatGi, sxm4 -> sxm), which
// is how the matching engine looks them up.
Result<std::vector<Offer>> ParseOffers(std::string_view text);
// Reads and parses a file; errors start with the file's path.
Result<std::vector<Offer>> ParseOffersFile(const std::string& path);

}  // namespace gpumart::market
