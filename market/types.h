// Domain types of the market. Plain values with no behaviour beyond small helpers; the wire
// codec (market/codec.h) gives each message type its canonical bytes, the SDL parser
// (market/sdl.h) builds Orders, and the matching engine (market/match.h) pairs Orders with Offers.
//
// Money is integers: micro-units of a denom per hour (e.g. uakt), never floating point.
// Sizes are bytes, CPU is millicores, times are milliseconds since the Unix epoch.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpumart::market {

using Bytes = std::vector<uint8_t>;
constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr size_t kIdBytes = 32;
using PublicKey = std::array<uint8_t, kPublicKeyBytes>;
using Signature = std::array<uint8_t, kSignatureBytes>;
// A message id: BLAKE2b-256 of the message's signing input (see docs/PROTOCOL.md).
using MessageId = std::array<uint8_t, kIdBytes>;

constexpr uint64_t kKi = 1024ull;
constexpr uint64_t kMi = kKi * 1024;
constexpr uint64_t kGi = kMi * 1024;
constexpr uint64_t kTi = kGi * 1024;

// Akash prices per block; we price per hour. 6.117 s per block.
constexpr uint64_t kMsPerHour = 3'600'000;
constexpr uint64_t kAkashBlockMs = 6'117;
constexpr uint64_t PerBlockToPerHour(uint64_t per_block) { return per_block * kMsPerHour / kAkashBlockMs; }

enum class GpuInterface : uint8_t { kPcie = 0, kSxm = 1 };
std::string_view ToString(GpuInterface interface);
// "pcie" -> kPcie; "sxm", "sxm2", "sxm4", "sxm5" -> kSxm (case-insensitive); otherwise nullopt.
std::optional<GpuInterface> ParseGpuInterface(std::string_view text);

struct CudaVersion {
  uint16_t major = 0;
  uint16_t minor = 0;
  auto operator<=>(const CudaVersion&) const = default;
};
std::string ToString(const CudaVersion& version);
// "12.4", "12", "12.4.1" (patch ignored) -> {12,4}; otherwise nullopt.
std::optional<CudaVersion> ParseCudaVersion(std::string_view text);

// One acceptable GPU, as the tenant lists it. Options are kept in preference order.
struct GpuOption {
  std::string vendor = "nvidia";
  std::string model = "*";  // lower-case model name, or "*" for any model of the vendor
  std::optional<uint64_t> ram_min_bytes;
  std::optional<GpuInterface> interface;
  // Fractional GPUs (docs/FRACTIONAL.md). An option that names a MIG profile or a MIG minimum is
  // a MIG option: it takes only MIG instances (of that profile; of at least that memory), never
  // whole GPUs, and ram_min_bytes applies to the instance's own memory. Any other option takes
  // only whole GPUs, and time-slice replicas of one only when shared_ok (they share the GPU's
  // memory and compute with other tenants, so nobody gets one without asking).
  std::optional<std::string> mig;   // a MIG profile such as "1g.10gb" (IsMigProfile)
  uint64_t mig_min_ram_bytes = 0;   // 0 = no minimum
  bool shared_ok = false;           // whole-GPU options only
  bool IsMig() const { return mig.has_value() || mig_min_ram_bytes > 0; }
  bool operator==(const GpuOption&) const = default;
};

struct GpuRequest {
  uint32_t units = 0;               // GPUs per replica; 0 = no GPU
  std::vector<GpuOption> options;   // most preferred first; non-empty when units > 0
  bool operator==(const GpuRequest&) const = default;
};

struct StorageVolume {
  std::string name = "default";
  uint64_t bytes = 0;
  std::optional<std::string> storage_class;  // e.g. "beta3"; nullopt = ephemeral default
  bool persistent = false;
  bool operator==(const StorageVolume&) const = default;
};

// What one replica of a service needs.
struct Resources {
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  std::vector<StorageVolume> storage;
  GpuRequest gpu;
  uint64_t StorageBytes() const {
    uint64_t total = 0;
    for (const auto& volume : storage) total += volume.bytes;
    return total;
  }
  bool operator==(const Resources&) const = default;
};

// The most a tenant will pay for one replica of a service.
struct PriceCap {
  std::string denom;            // e.g. "uakt"
  uint64_t amount = 0;          // as written in the SDL (per block for Akash SDL)
  uint64_t per_hour = 0;        // micro-units per hour (what matching compares)
  bool operator==(const PriceCap&) const = default;
};

struct ServiceRequest {
  std::string name;
  std::string profile;  // the compute profile it uses
  uint32_t count = 1;   // replicas
  Resources resources;
  std::optional<CudaVersion> cuda_min;
  // The cap in the tenant's most preferred denom, then (SDL 2.2, several denoms) the caps in its
  // other denoms in the tenant's order of preference. Every service of an Order lists the same
  // denoms in the same order (ValidateOrder).
  PriceCap price_cap;
  std::vector<PriceCap> more_caps;
  // The cap in `denom`, or nullptr when the service has none in it.
  const PriceCap* CapIn(std::string_view denom) const;
  bool operator==(const ServiceRequest&) const = default;
};

// Auditor constraints from an SDL placement's signedBy.
struct SignedBy {
  std::vector<std::string> all_of;
  std::vector<std::string> any_of;
  bool operator==(const SignedBy&) const = default;
};

// One placement group of a deployment: what a tenant asks the market for. All services of a
// group go to one provider.
struct Order {
  std::string group;                              // placement name, e.g. "dcloud"
  std::map<std::string, std::string> attributes;  // required provider attributes
  SignedBy signed_by;
  std::vector<ServiceRequest> services;           // in the order of the SDL's services
  // Interruptible (spot): the tenant accepts a lease its provider may preempt with notice
  // (docs/SPOT.md); its caps are then its spot caps, and only interruptible bids answer it.
  bool interruptible = false;
  // The group's most preferred denom (every service of a group lists the same denoms); empty for
  // a group without services. A reference into the order (no copy: matching reads it on every
  // query).
  const std::string& Denom() const {
    static const std::string kNone;
    return services.empty() ? kNone : services.front().price_cap.denom;
  }
  // Every denom a provider may bid in, most preferred first: Denom(), then the more_caps denoms.
  std::vector<std::string> Denoms() const;
  // Index of `denom` in Denoms(), or nullopt when the group is not priced in it.
  std::optional<size_t> DenomRank(std::string_view denom) const;
  // Sum over services of count x per-hour cap in Denom().
  uint64_t CapPerHour() const {
    uint64_t total = 0;
    for (const auto& service : services) total += uint64_t{service.count} * service.price_cap.per_hour;
    return total;
  }
  // The same sum in `denom`; nullopt when the group is not priced in it.
  std::optional<uint64_t> CapPerHourIn(std::string_view denom) const;
  // The group as if priced in `denom` alone (its caps in that denom as price_cap, no more_caps):
  // what a single-denom evaluation (matching, a provider's bid) reads. nullopt when not priced in it.
  std::optional<Order> InDenom(std::string_view denom) const;
  bool operator==(const Order&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Provider side: offers (free capacity + prices).

// A concrete GPU type on a provider node, and how many of it are free.
struct GpuDevices {
  std::string vendor = "nvidia";
  std::string model;                   // lower-case
  uint64_t ram_bytes = 0;
  GpuInterface interface = GpuInterface::kPcie;
  std::optional<CudaVersion> cuda;     // highest CUDA version the driver supports
  uint32_t count = 0;                  // free devices of this type on the node
  // Fractional devices (docs/FRACTIONAL.md); at most one of the two. A MIG instance has its own
  // profile and ram_bytes is the instance's memory; a time-slice replica (shared) has the whole
  // GPU's ram_bytes, shared with the GPU's other replicas. count counts instances / replicas.
  std::string mig_profile;             // empty = not a MIG instance
  bool shared = false;
  bool operator==(const GpuDevices&) const = default;
};

struct NodeCapacity {
  std::string name;
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;
  std::vector<GpuDevices> gpus;
  bool operator==(const NodeCapacity&) const = default;
};

// Prices in one denom, micro-units per hour.
struct PriceTable {
  std::string denom;
  // Keyed by "model.<ram>Gi.interface", "model.<ram>Gi", "model" or "*"; first present wins.
  std::map<std::string, uint64_t> gpu;
  uint64_t cpu = 0;      // per core-hour (1000 millicores)
  uint64_t memory = 0;   // per GiB-hour
  uint64_t storage = 0;  // per GiB-hour
  bool operator==(const PriceTable&) const = default;
};

// A provider's advertisement: its free capacity and its prices.
struct Offer {
  // Who the offer is from, as the OfferBook indexes it. Not on the wire: for a signed offer it
  // is the signer's public key in hex (OfferOfSigner, market/codec.h), so nobody can replace
  // another provider's entry; in an offers file it is the file's id.
  std::string provider;
  std::string name;                               // a label the provider chose (on the wire)
  std::map<std::string, std::string> attributes;  // e.g. region=us-west
  // Node-local, never on the wire (a provider's word about itself is worth nothing): what this
  // node computed (ledger/reputation.h, docs/MATCHING.md) or an offers file's snapshot.
  // The auditors that vouch for this provider, as signedBy names them: on a live node the
  // auditors whose latest attestation about the provider's key is a pass, as lower-case hex
  // keys (ledger::LedgerStore::PassingAuditors).
  std::vector<std::string> auditors;
  // 0..1'000'000 (0.97 = 970'000).
  uint32_t reputation_ppm = 0;
  std::vector<PriceTable> pricing;
  std::vector<NodeCapacity> nodes;
  bool operator==(const Offer&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Bids, acceptances, leases.

// The concrete device type a bid promises.
struct DeviceType {
  std::string vendor = "nvidia";
  std::string model;
  uint64_t ram_bytes = 0;
  GpuInterface interface = GpuInterface::kPcie;
  std::string mig_profile;  // as GpuDevices: a MIG instance of this profile, ram_bytes its own
  bool shared = false;      // a time-slice replica of a whole GPU
  bool operator==(const DeviceType&) const = default;
  auto operator<=>(const DeviceType&) const = default;
};

struct Placement {
  std::string node;
  uint32_t replicas = 0;
  bool operator==(const Placement&) const = default;
};

struct ServiceAssignment {
  std::string service;
  std::optional<uint32_t> option;   // index into the service's GPU options; nullopt without GPUs
  std::optional<DeviceType> device;
  std::vector<Placement> placements;
  bool operator==(const ServiceAssignment&) const = default;
};

// The terms of an interruptible (spot) lease, stated and signed in its bid: the provider may end
// it with a preemption Close that takes effect no sooner than notice_ms after it was signed.
struct SpotTerms {
  uint64_t notice_ms = 0;
  bool operator==(const SpotTerms&) const = default;
};

struct Bid {
  MessageId order_id{};
  // The Order's signer: only an Accept signed by this key can turn the bid into a lease, so any
  // node can check who may accept without having seen the order.
  PublicKey tenant{};
  std::string group;
  std::string denom;
  uint64_t price_per_hour = 0;
  std::vector<ServiceAssignment> services;
  int64_t reservation_expires_ms = 0;  // the provider holds the capacity until then
  std::optional<SpotTerms> spot;       // set iff the bid is for interruptible capacity
  bool operator==(const Bid&) const = default;
};

// The tenant accepts one bid. Signed by the tenant.
struct Accept {
  MessageId order_id{};
  MessageId bid_id{};
  PublicKey provider{};
  bool operator==(const Accept&) const = default;
};

// The provider's countersignature: a lease exists only when the provider signed this. It embeds
// the provider's signed Bid and the tenant's signed Accept of that bid (their full envelope
// bytes), so any node can check all three signatures and that the lease is exactly the bid the
// tenant accepted without having seen either message (OpenLease, market/codec.h).
//
// Only accept_envelope, bid_envelope and start_ms are on the wire. The terms are not repeated
// there: they are derived from the embedded messages by BuildLease (market/codec.h), the one way
// to make a Lease, which DecodeLease uses too. A Lease whose derived fields were changed by hand
// is refused by CheckLeaseBinding.
struct Lease {
  Bytes accept_envelope;     // the signed Accept, exactly as the tenant sent it
  Bytes bid_envelope;        // the signed Bid it accepts, exactly as the provider sent it
  int64_t start_ms = 0;
  // Derived from the embedded messages.
  MessageId order_id{};      // the Bid's order_id (= the Accept's)
  MessageId bid_id{};        // the id of the embedded Bid (= the Accept's bid_id)
  PublicKey tenant{};        // the Accept's signer
  PublicKey provider{};      // the Bid's signer (= the Accept's provider); must sign the Lease
  std::string denom;         // the Bid's
  uint64_t price_per_hour = 0;
  std::vector<ServiceAssignment> services;
  std::optional<SpotTerms> spot;  // the Bid's: set iff the lease is interruptible
  bool operator==(const Lease&) const = default;
};

enum class CloseReason : uint8_t {
  kTenantClosed = 0,
  kProviderClosed = 1,
  kInsufficientFunds = 2,
  kProviderFailure = 3,
  kExpired = 4,
  // The provider ended an interruptible lease to make room for a non-interruptible one
  // (docs/SPOT.md): only with Close::preemptor_lease and the notice the lease's bid states.
  kPreempted = 5,
};
std::string_view ToString(CloseReason reason);

// Ends a lease; signed by its tenant or its provider.
struct Close {
  MessageId lease_id{};
  CloseReason reason = CloseReason::kTenantClosed;
  int64_t closed_ms = 0;
  std::string note;
  // kPreempted only (and then required): the envelope of the provider's signed, non-interruptible
  // Lease the preemption makes room for, exactly as published, so every node checks the
  // preemption from signed data alone (docs/SPOT.md, "What every node checks"). closed_ms is the
  // preemption's effective time: billing stops there.
  Bytes preemptor_lease;
  bool operator==(const Close&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Attestations: what an auditor says about a provider.

enum class AuditVerdict : uint8_t {
  kPass = 0,  // the auditor checked the provider's hardware and conduct and found them sound
  kFail = 1,
};
std::string_view ToString(AuditVerdict verdict);

// An auditor's statement about a provider's key; signed by the auditor. It counts toward the
// provider's reputation only for tenants that name the auditor (docs/MATCHING.md, "Reputation"),
// and only the auditor's latest one about that provider counts.
struct Attestation {
  PublicKey provider{};
  AuditVerdict verdict = AuditVerdict::kPass;
  int64_t attested_ms = 0;  // when the auditor made the statement: the later one replaces
  std::string note;
  bool operator==(const Attestation&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Small helpers shared by parsers and printers.

std::string ToLower(std::string_view text);
std::string ToHex(const uint8_t* data, size_t size);
template <size_t N>
std::string ToHex(const std::array<uint8_t, N>& bytes) { return ToHex(bytes.data(), N); }
// Parses exactly 2*N hex digits.
template <size_t N>
std::optional<std::array<uint8_t, N>> FromHex(std::string_view hex);
bool FromHexInto(std::string_view hex, uint8_t* out, size_t size);
template <size_t N>
std::optional<std::array<uint8_t, N>> FromHex(std::string_view hex) {
  std::array<uint8_t, N> out{};
  if (!FromHexInto(hex, out.data(), N)) return std::nullopt;
  return out;
}
// A MIG GPU instance profile name as nvidia-smi and the device plugin spell it: "<n>g.<m>gb"
// with n and m decimal without leading zeros, optionally followed by "+<attr>" suffixes of
// lower-case letters and digits ("1g.10gb", "1g.10gb+me", "7g.141gb"). Compute-instance
// profiles ("1c.3g.40gb") are not GPU instances and are refused.
bool IsMigProfile(std::string_view text);
// The memory of a MIG instance of `profile` as the market counts it: the profile's "<m>gb" as
// m GiB (so "1g.10gb" is 10Gi, as "80Gi" names an 80 GB GPU); 0 when not a profile. Offers and
// bids must state exactly this, so an instance is measured by its own size and one way.
uint64_t MigProfileRamBytes(std::string_view profile);
// A device type for people: "h100 80Gi sxm", "h100 10Gi sxm mig 1g.10gb", "a10 24Gi pcie shared".
std::string Describe(const DeviceType& device);
// "80Gi" for 80*2^30; falls back to the exact byte count when not a whole number of GiB.
std::string FormatGi(uint64_t bytes);

}  // namespace gpumart::market
