// Akash SDL (deploy.yaml, version "2.0", "2.1", "2.2") to market Orders.
//
// Tenants already write Akash SDL, so gpumart reads those files unchanged: one Order per placement
// group (in the order of profiles.placement), its services in the order of the `services:`
// mapping. Unlike Akash, the GPU options keep the order they were written in (most preferred
// first) and a GPU `ram` is a minimum. docs/SDL.md describes what is read and the accepted forms.
//
// What is read follows Akash's Go reader (the one its CLI deploys with): it accepts what that
// reader accepts and refuses what it refuses. Unknown fields below the top level, which the Go
// reader ignores, come back as warnings naming the field; SdlOptions::strict makes them errors
// and adds the schema rules of Akash Console (docs/SDL.md lists them).
//
// The text is untrusted: every size is bounded by a named limit below, YAML errors come back with
// line and column, semantic errors name the path of the offending field, and no exception leaves
// the parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "market/codec.h"
#include "market/status.h"
#include "market/types.h"

namespace gpumart::market {

// Limits on untrusted SDL text. Real files are a few KiB with a nesting depth around 10; these
// leave a wide margin while keeping the parser's time and memory small.
constexpr size_t kSdlMaxFileBytes = 1 << 20;        // 1 MiB
constexpr size_t kSdlMaxNestingDepth = 64;          // block indentation levels, and [ { nesting
// YAML nodes (values, lists, mappings) plus alias references: about one per 8 bytes of a file at
// the size limit, where real files have one per 15 bytes or more. Aliases share their anchored
// node, so this bounds the tree's memory whatever the anchors do.
constexpr size_t kSdlMaxNodes = 128 * 1024;
constexpr size_t kSdlMaxServices = 256;
constexpr size_t kSdlMaxComputeProfiles = 256;
constexpr size_t kSdlMaxPlacements = 64;
constexpr size_t kSdlMaxDeploymentsPerService = 64; // placements one service is deployed to
// The limits below match the wire limits (market/codec.h) of the fields they become, so every
// file that parses yields orders a peer will accept.
constexpr size_t kSdlMaxGpuOptions = limits::kMaxGpuOptions;  // over all vendors of one profile
constexpr size_t kSdlMaxVolumes = limits::kMaxVolumes;
constexpr size_t kSdlMaxAttributes = limits::kMaxAttributes;  // placement attributes
constexpr size_t kSdlMaxAuditors = limits::kMaxAuditors;      // keys in signedBy allOf + anyOf
constexpr size_t kSdlMaxEnvEntries = 1024;
constexpr size_t kSdlMaxMounts = limits::kMaxVolumes;  // params.storage entries of one service
constexpr size_t kSdlMaxWarnings = 256;             // further warnings are counted in the last one
constexpr size_t kSdlMaxListEntries = 1024;         // command, args, expose entries
constexpr size_t kSdlMaxNameBytes = limits::kMaxNameBytes;  // names, keys, denoms, models, attribute values
constexpr size_t kSdlMaxTextBytes = 64 * 1024;      // image, env entries, command and args
constexpr uint32_t kSdlMaxCount = 1000;             // replicas of one service in one group
constexpr uint32_t kSdlMaxGpuUnits = limits::kMaxGpuUnits;  // GPUs per replica
// Per-block price cap; keeps count x per-hour sums far from uint64 overflow.
constexpr uint64_t kSdlMaxAmountPerBlock = 10'000'000'000ull;

// One `expose` entry of a service, kept for display and for a later deploy step.
struct ExposedPort {
  uint32_t port = 0;
  std::optional<uint32_t> as;  // external port; nullopt when not written
  std::string proto;           // "tcp" / "udp" as written, empty when not written
  bool global = false;         // exposed to the internet (to: - global: true)
};

// One `params.storage.<volume>` entry of a service: where a volume of its compute profile is
// mounted in the container.
struct VolumeMount {
  std::string volume;      // a volume name of the service's compute profile
  std::string path;        // absolute, unique within the service
  bool read_only = false;
  bool operator==(const VolumeMount&) const = default;
};

// What an SDL says about a service beyond its resources: not used by matching.
struct ServiceSpec {
  std::string image;
  std::vector<std::pair<std::string, std::string>> env;  // NAME=value, in written order
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<ExposedPort> expose;
  std::vector<VolumeMount> mounts;  // params.storage, in written order
};

// Something the reader ignored: an unknown field (Akash's Go reader ignores it too) or a form
// it read differently than written. `path` names the field, as errors do.
struct SdlWarning {
  std::string path;
  std::string message;
  std::string ToString() const { return path.empty() ? message : path + ": " + message; }
  bool operator==(const SdlWarning&) const = default;
};

struct Deployment {
  std::string version;                          // how it was read: "2.0", "2.1" or "2.2"
  std::vector<Order> orders;                    // one per placement group that has services
  std::map<std::string, ServiceSpec> services;  // every entry of `services:`, by name
  std::vector<SdlWarning> warnings;             // in file order; empty with SdlOptions::strict
};

struct SdlOptions {
  // Every warning is an error instead, and the schema rules of Akash Console apply (docs/SDL.md,
  // "--strict").
  bool strict = false;
};

// Parses SDL text. Never throws.
Result<Deployment> ParseSdl(std::string_view yaml_text, const SdlOptions& options = {});

// Reads at most kSdlMaxFileBytes from `path` and parses it. Never throws.
Result<Deployment> ParseSdlFile(const std::string& path, const SdlOptions& options = {});

// Quantity forms, exposed for tests and for other config readers.
// CPU: a number of cores ("0.5", "4.0", "16") or millicores ("100m"); > 0.
Result<uint64_t> ParseCpuMillis(std::string_view text);
// Size: a number (bytes) with an optional suffix k M G T P E (powers of 1000) or Ki Mi Gi Ti Pi
// Ei (powers of 1024), in any letter case, with an optional trailing b/B ("16GB", "16gi").
// A fraction ("1.5Gi") is allowed and rounded up to a whole byte.
Result<uint64_t> ParseSizeBytes(std::string_view text);

// The CUDA version a service needs, as GPU platforms read it: NVIDIA_REQUIRE_CUDA ("cuda>=12.2
// ..."), else CUDA_VERSION, else an `nvidia/cuda:X.Y...` image tag. nullopt when none says.
std::optional<CudaVersion> DetectCudaRequirement(const ServiceSpec& service);

}  // namespace gpumart::market
