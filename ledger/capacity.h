// Capacity a lease or a reservation takes from a provider, and free capacity derived from what
// the ledger holds: inventory minus active leases minus unexpired reservations.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "market/codec.h"
#include "market/status.h"
#include "market/types.h"
#include "market/usage.h"

namespace gpumart::ledger {

// What a lease or reservation takes (market/usage.h, the bid engine's type too).
using market::NodeUsage;
using market::Usage;

// Limits on a usage value, enforced by both EncodeUsage and DecodeUsage (a corrupt DB is
// untrusted input). They are the wire's: no provider has more nodes, or more GPU types on one
// node, so a lease over them was signed by no honest provider and is refused, not stored.
constexpr size_t kMaxUsageNodes = market::limits::kMaxNodes;
constexpr size_t kMaxUsageGpuTypes = market::limits::kMaxGpuTypesPerNode;
constexpr size_t kMaxUsageNameBytes = market::limits::kMaxNameBytes;

// kInvalidArgument, naming the first problem, when `usage` is over the limits above (or holds
// an unknown interface): exactly what DecodeUsage would refuse.
Status ValidateUsage(const Usage& usage);

// Binary encoding (big-endian): nodes:2 { name_len:2 name cpu:8 memory:8 storage:8 types:2
// { vendor_len:2 vendor model_len:2 model ram:8 interface:1 [profile_len:2 profile shared:1]
// count:8 } }, the bracketed part present exactly when the interface byte has kFractionalFlag
// (a MIG instance or a time slice). Fails (ValidateUsage) rather than write what DecodeUsage
// would refuse.
constexpr uint8_t kFractionalFlag = 0x80;
Result<std::string> EncodeUsage(const Usage& usage);
Result<Usage> DecodeUsage(std::string_view bytes);

// `inventory` (all of a provider's capacity) minus `used`, never below zero; GPU counts are
// reduced per node and device type.
std::vector<market::NodeCapacity> SubtractUsage(const std::vector<market::NodeCapacity>& inventory,
                                                const Usage& used);

}  // namespace gpumart::ledger
