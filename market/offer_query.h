// Searching offers with vast.ai's `search offers` grammar (docs/QUERY.md): a query such as
// `gpu_name in [h100,a100] num_gpus>=2 reliability>0.9` is parsed into terms, and every
// (provider, node, device type, denom) of a set of offers is a row that the terms filter and the
// order keys (`-o dph,reliability-`) sort. The single implementation behind `gpumart offers` and
// the HTTP API: it knows nothing of command lines or sockets.
//
// A query comes from a user or a peer's client, so it is parsed with named limits and every
// mistake is an error naming the column and what was expected; a search does work linear in the
// offers it is given and keeps at most `limit` rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

// Named limits on a query. Past them the query is refused, never truncated.
constexpr size_t kMaxOfferQueryBytes = 4'096;      // the query text
constexpr size_t kMaxOfferQueryTerms = 64;         // `field op value` terms
constexpr size_t kMaxOfferQueryListItems = 64;     // values in one `[a,b,...]` list
constexpr size_t kMaxOfferOrderKeys = 8;           // sort keys of `-o`
constexpr size_t kMaxOfferOrderBytes = 512;        // the `-o` text
// The most rows one search returns (a larger limit is lowered to it), and how many a caller that
// names no limit asks for.
constexpr size_t kMaxOfferSearchRows = 1'000;
constexpr size_t kDefaultOfferSearchRows = 64;

// What a term can name (docs/QUERY.md lists them with units). vast.ai names where one fits.
enum class OfferField : uint8_t {
  kGpuName,      // the device's model, vast.ai style (RTX_4090, h100, H100_SXM)
  kGpuArch,      // vendor: nvidia, amd
  kNumGpus,      // free GPUs of the row's device type on its node
  kGpuRam,       // RAM per GPU
  kGpuTotalRam,  // num_gpus x gpu_ram
  kCudaVers,     // highest CUDA version the device's driver supports
  kInterface,    // pcie | sxm
  kDph,          // num_gpus x dph_per_gpu, micro-units of the denom per hour
  kDphPerGpu,    // the provider's GPU rate for the device type in the row's denom
  kDenom,
  kReliability,  // reputation this node computed, 0..1
  kVerified,     // at least one auditor's latest attestation about the provider is a pass
  kGeolocation,  // the provider's `country` attribute
  kRegion,       // the provider's `region` attribute
  kProvider,     // the provider's signing key (hex)
  kNode,         // the node's name
  kCpuCores,     // free cores of the node
  kCpuRam,       // free memory of the node
  kDiskSpace,    // free storage of the node
};
// The field's canonical name (`dph`, never the alias `dph_total`).
std::string_view ToString(OfferField field);

enum class QueryOp : uint8_t { kLt, kLe, kEq, kNe, kGe, kGt, kIn, kNotIn };
std::string_view ToString(QueryOp op);  // "<", "<=", "==", "!=", ">=", ">", "in", "notin"

// One value of a term, in the field's base unit: bytes, millicores, micro-units, parts per
// million, a count, a CUDA version as major * 65536 + minor, a bool as 0 or 1, an interface as
// its enum value. Text fields hold lower-case text; gpu_name holds the model with spaces,
// underscores and hyphens removed, and the interface its name ended with (`H100_SXM`).
struct QueryValue {
  uint64_t number = 0;
  std::string text;
  std::optional<GpuInterface> interface;
  bool operator==(const QueryValue&) const = default;
};

struct OfferTerm {
  OfferField field = OfferField::kGpuName;
  QueryOp op = QueryOp::kEq;
  std::vector<QueryValue> values;  // one; one or more for in / notin
  size_t column = 0;               // 1-based byte column of the field in the query
  bool operator==(const OfferTerm&) const = default;
};

// Every term must hold (AND). An empty query matches every row.
struct OfferQuery {
  std::vector<OfferTerm> terms;
  bool operator==(const OfferQuery&) const = default;
};

struct OfferOrderKey {
  OfferField field = OfferField::kDph;
  bool descending = false;
  bool operator==(const OfferOrderKey&) const = default;
};

// Parses `field op value` terms separated by spaces. Errors are kInvalidArgument (kLimitExceeded
// past a limit) and read `column N: <what was expected>`, e.g.
// `column 5: unknown field 'gpu_nme' (known: gpu_name, ...)`.
Result<OfferQuery> ParseOfferQuery(std::string_view text);
// Parses `-o` keys: comma-separated fields, each with an optional `-` (descending) or `+`
// (ascending) before or after it. Empty text is the default order, `dph` ascending.
Result<std::vector<OfferOrderKey>> ParseOfferOrder(std::string_view text);

// One row: the free GPUs of one device type on one node of one provider, priced in one of the
// provider's denoms.
struct OfferRow {
  std::string provider;  // the signing key (hex) on a live node; an offers file's id
  std::string name;      // the provider's own label
  std::string node;
  DeviceType device;
  std::optional<CudaVersion> cuda;
  uint32_t num_gpus = 0;
  std::string denom;
  uint64_t dph_per_gpu = 0;
  uint64_t dph = 0;  // num_gpus x dph_per_gpu (saturating)
  uint32_t reliability_ppm = 0;
  bool verified = false;
  std::map<std::string, std::string> attributes;
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;
  bool operator==(const OfferRow&) const = default;
};

struct OfferSearchResult {
  std::vector<OfferRow> rows;  // at most the limit, in order
  size_t matched = 0;          // rows that matched, before the limit
  bool operator==(const OfferSearchResult&) const = default;
};

// Runs a query over offers given one at a time. Keeps the best `limit` rows (at most
// kMaxOfferSearchRows) in a bounded heap. The order is total (after the keys: provider, node,
// device type, denom, ascending), so the result does not depend on the order offers are added.
// The query, the order and every offer added must outlive Finish().
class OfferSearch {
 public:
  OfferSearch(const OfferQuery& query, const std::vector<OfferOrderKey>& order, size_t limit);
  void Add(const Offer& offer);
  OfferSearchResult Finish();

  struct RowRef {
    const Offer* offer = nullptr;
    const NodeCapacity* node = nullptr;
    const GpuDevices* gpus = nullptr;
    const PriceTable* table = nullptr;
    uint64_t rate = 0;
  };

 private:
  bool Before(const RowRef& a, const RowRef& b) const;

  const OfferQuery& query_;
  const std::vector<OfferOrderKey>& order_;
  const size_t limit_;
  std::vector<RowRef> heap_;  // max-heap under Before: the worst kept row on top
  size_t matched_ = 0;
};

// One call: parse nothing, search `offers`.
OfferSearchResult SearchOffers(const std::vector<Offer>& offers, const OfferQuery& query,
                               const std::vector<OfferOrderKey>& order, size_t limit);

}  // namespace gpumart::market
