// The command line's JSON: one shape per type, written here and nowhere else, so that every
// command prints a lease, a service assignment, a device or a candidate the same way (a fix to a
// shape lands once); and one way to turn JSON into text. The shapes are in docs/JSON.md.
//
// Strings inside records come from peers and from disk, so they are not trusted to be UTF-8:
// DumpJson writes each invalid byte as U+FFFD instead of throwing (nlohmann's default throws
// type_error 316, which used to reach std::terminate from `gpumart leases --json`).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bidding/bid_engine.h"
#include "bidding/gpu_health.h"
#include "ledger/store.h"
#include "ledger/verify.h"
#include "market/match.h"
#include "market/offer_query.h"
#include "market/sdl.h"
#include "market/types.h"

namespace gpumart::node {

using Json = nlohmann::json;

// {"vendor", "model", "ram_bytes", "interface"}
Json ToJson(const market::DeviceType& device);
// {"node", "replicas"}
Json ToJson(const market::Placement& placement);
// {"name", "option" (0-based, null without GPUs), "device" (null without GPUs), "placements"}
Json ToJson(const market::ServiceAssignment& service);
Json ToJson(const std::vector<market::ServiceAssignment>& services);
// A lease as a node's ledger holds it: its terms, state, and, once closed, close and billing.
// A provider's figures for one device type: {"device", "installed", "out_of_service", "leased",
// "utilisation_permille" (leased per mille of installed minus out of service), "revenue_per_hour"
// ({denom: micro-units})}.
Json ToJson(const market::DeviceType& type, const bidding::DeviceUsage& usage);
// A device in ToJson(DeviceType)'s shape, for people: "h100 80Gi sxm" ("?" for what is missing).
std::string DeviceLabel(const Json& device);
// One GPU's health: {"id", "index", "name", "bus_id", "state", "reason", "unhealthy_since_ms",
// "healthy_since_ms", "temperature_c" (null when not read), "ecc_volatile_uncorrected",
// "ecc_aggregate_uncorrected", "xid_errors", "last_xid"}.
Json ToJson(const bidding::GpuHealth& gpu);
// `now_ms` dates its "accrued" cost (market::AccruedCost: until the close, or until now).
Json ToJson(const ledger::LeaseRecord& record, int64_t now_ms);
// An auditor's attestation about a provider, as a node's ledger holds it.
Json ToJson(const market::Signed<market::Attestation>& attestation);
// One provider's would-be bid for a group (`gpumart match`).
Json ToJson(const market::Candidate& candidate);
// One row of an offer search (`gpumart offers`, docs/QUERY.md): {"provider", "name", "node",
// "device", "cuda", "num_gpus", "denom", "dph_per_gpu", "dph", "reliability", "verified",
// "attributes", "cpu_millis", "memory_bytes", "storage_bytes"}.
Json ToJson(const market::OfferRow& row);
// A search's answer: {"offers": [<row>, ...], "matched"}.
Json ToJson(const market::OfferSearchResult& result);
// The same read back (the CLI prints a node's answer as a table): kInvalidArgument naming the
// first key that is missing or of the wrong type. Never throws.
Result<market::OfferSearchResult> OfferSearchResultFromJson(const Json& json);
// A parsed SDL (`gpumart sdl check`); absent values are null (docs/SDL.md).
Json ToJson(const market::Deployment& deployment);
// `gpumart ledger verify`'s report.
Json ToJson(const ledger::VerifyReport& report, const std::string& ledger_path);

// The text of `json`: compact, or indented by `indent` spaces. Never throws for content (invalid
// UTF-8 becomes U+FFFD); the output is always valid UTF-8 JSON.
std::string DumpJson(const Json& json, int indent = -1);

// `text` made safe for a person's terminal: invalid UTF-8 and control characters (which could
// move the cursor or retitle the window when a peer's string is printed) become U+FFFD.
std::string Printable(std::string_view text);

}  // namespace gpumart::node
