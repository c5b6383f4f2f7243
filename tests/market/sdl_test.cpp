#include "market/sdl.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/alloc_failure.h"

namespace gpumart::market {
namespace {

// A small valid SDL; tests swap pieces of it with Replace().
constexpr const char* kBaseSdl = R"(version: "2.0"
services:
  web:
    image: nginx:1.25
profiles:
  compute:
    web:
      resources:
        cpu:
          units: 1
        memory:
          size: 1Gi
        storage:
          size: 1Gi
#GPU
  placement:
    akash:
      pricing:
        web:
          denom: uakt
          amount: 1000
deployment:
  web:
    akash:
      profile: web
      count: 1
)";

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "test bug: " << from << " not in the SDL";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// The base SDL with a gpu block (written at the indentation of `resources:` children).
std::string WithGpu(const std::string& gpu_block) { return Replace(kBaseSdl, "#GPU\n", gpu_block); }

Deployment ParseOk(const std::string& text) {
  Result<Deployment> result = ParseSdl(text);
  EXPECT_TRUE(result.ok()) << result.status().ToString() << "\n" << text;
  if (!result.ok()) return Deployment{};
  return std::move(result).value();
}

Status ParseError(const std::string& text) {
  Result<Deployment> result = ParseSdl(text);
  EXPECT_FALSE(result.ok()) << text;
  return result.ok() ? Status::Ok() : result.status();
}

// By value: callers pass the temporary that ParseOk returns.
ServiceRequest OnlyService(const Deployment& deployment) {
  if (deployment.orders.size() != 1 || deployment.orders[0].services.size() != 1) {
    ADD_FAILURE() << "expected one group with one service";
    return ServiceRequest{};
  }
  return deployment.orders[0].services[0];
}

// ---------------------------------------------------------------------------------------------
// Quantities

TEST(SdlQuantities, SizeSuffixTable) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"100", 100},
      {"100b", 100},
      {"100B", 100},
      {"1k", 1000},
      {"1K", 1000},
      {"1Ki", 1024},
      {"1KiB", 1024},
      {"1M", 1000000},
      {"512Mi", 512 * kMi},
      {"512Mb", 512'000'000},
      {"512mb", 512'000'000},
      {"16G", 16'000'000'000},
      {"16GB", 16'000'000'000},
      {"16gb", 16'000'000'000},
      {"16Gb", 16'000'000'000},
      {"16Gi", 16 * kGi},
      {"16gi", 16 * kGi},
      {"16GI", 16 * kGi},
      {"16GiB", 16 * kGi},
      {"16 Gi", 16 * kGi},
      {"2T", 2'000'000'000'000},
      {"2Ti", 2 * kTi},
      {"1P", 1'000'000'000'000'000},
      {"1Pi", 1024 * kTi},
      {"1E", 1'000'000'000'000'000'000ull},
      {"1Ei", 1024 * 1024 * kTi},
      {"1.5Gi", 3 * kGi / 2},
      {"0.5k", 500},
      {"1.1Ki", 1127},  // 1126.4 rounded up to a whole byte
  };
  for (const auto& c : cases) {
    Result<uint64_t> bytes = ParseSizeBytes(c.text);
    ASSERT_TRUE(bytes.ok()) << c.text << ": " << bytes.status().ToString();
    EXPECT_EQ(*bytes, c.bytes) << c.text;
  }
}

TEST(SdlQuantities, BadSizes) {
  EXPECT_EQ(ParseSizeBytes("-1Gi").status().message(), "\"-1Gi\" is negative");
  EXPECT_FALSE(ParseSizeBytes("abc").ok());
  EXPECT_FALSE(ParseSizeBytes("").ok());
  EXPECT_FALSE(ParseSizeBytes("16Xi").ok());
  EXPECT_FALSE(ParseSizeBytes("16Gix").ok());
  EXPECT_FALSE(ParseSizeBytes("16iG").ok());
  EXPECT_FALSE(ParseSizeBytes("1e9").ok());
  EXPECT_EQ(ParseSizeBytes("100Ei").status().message(), "\"100Ei\" is too large");
  EXPECT_EQ(ParseSizeBytes("16Qi").status().message(),
            "\"16Qi\" has an unknown unit \"Qi\" (use k, M, G, T, P, E or Ki, Mi, Gi, Ti, Pi, Ei)");
}

TEST(SdlQuantities, CpuForms) {
  struct Case {
    const char* text;
    uint64_t millis;
  };
  const Case cases[] = {{"0.5", 500}, {"4.0", 4000}, {"16", 16000},   {"100m", 100},
                        {"0.25", 250}, {"1.125", 1125}, {"2500m", 2500}, {".5", 500}};
  for (const auto& c : cases) {
    Result<uint64_t> millis = ParseCpuMillis(c.text);
    ASSERT_TRUE(millis.ok()) << c.text << ": " << millis.status().ToString();
    EXPECT_EQ(*millis, c.millis) << c.text;
  }
  EXPECT_EQ(ParseCpuMillis("-1").status().message(), "\"-1\" is negative");
  EXPECT_EQ(ParseCpuMillis("0").status().message(), "\"0\" is zero; a service needs some CPU");
  EXPECT_EQ(ParseCpuMillis("0.0001").status().message(), "\"0.0001\" is finer than a millicore");
  EXPECT_FALSE(ParseCpuMillis("abc").ok());
  EXPECT_FALSE(ParseCpuMillis("1.5m").ok());
}

TEST(SdlQuantities, CpuAndMemoryInAFile) {
  std::string text = Replace(kBaseSdl, "units: 1\n", "units: 100m\n");
  text = Replace(text, "size: 1Gi\n        storage", "size: 512Mb\n        storage");
  const ServiceRequest service = OnlyService(ParseOk(text));
  EXPECT_EQ(service.resources.cpu_millis, 100u);
  EXPECT_EQ(service.resources.memory_bytes, 512'000'000u);
}

// ---------------------------------------------------------------------------------------------
// Storage

TEST(SdlStorage, MapIsOneDefaultVolume) {
  const ServiceRequest service = OnlyService(ParseOk(kBaseSdl));
  ASSERT_EQ(service.resources.storage.size(), 1u);
  EXPECT_EQ(service.resources.storage[0], (StorageVolume{"default", kGi, std::nullopt, false}));
}

TEST(SdlStorage, ListOfVolumesWithAttributes) {
  const std::string text = Replace(kBaseSdl, "        storage:\n          size: 1Gi\n", R"(        storage:
          - size: 20Gi
          - name: models
            size: 200Gi
            attributes:
              persistent: true
              class: beta3
          - name: shm
            size: 1Gi
            attributes:
              class: ram
              persistent: "false"
)");
  const Deployment deployment =
      ParseOk(Replace(text, "    image: nginx:1.25\n",
                      "    image: nginx:1.25\n    params:\n      storage:\n        models: {mount: /models}\n"));
  EXPECT_EQ(deployment.services.at("web").mounts, (std::vector<VolumeMount>{{"models", "/models", false}}));
  const ServiceRequest service = OnlyService(deployment);
  ASSERT_EQ(service.resources.storage.size(), 3u);
  EXPECT_EQ(service.resources.storage[0], (StorageVolume{"default", 20 * kGi, std::nullopt, false}));
  EXPECT_EQ(service.resources.storage[1], (StorageVolume{"models", 200 * kGi, "beta3", true}));
  EXPECT_EQ(service.resources.storage[2], (StorageVolume{"shm", kGi, "ram", false}));
  EXPECT_EQ(service.resources.StorageBytes(), 221 * kGi);
}

TEST(SdlStorage, TwoUnnamedVolumesAreRefused) {
  // Both are called default, which Akash's reader refuses (the GPU guide's ollama example did it).
  const std::string text =
      Replace(kBaseSdl, "          size: 1Gi\n#GPU", "          - size: 1Gi\n          - size: 100Gi\n#GPU");
  EXPECT_EQ(ParseError(text).message(),
            "profiles.compute.web.resources.storage[1]: duplicate volume \"default\" (an unnamed volume is called "
            "default: name the others)");
}

TEST(SdlStorage, DuplicateNamedVolumeIsAnError) {
  const std::string text = Replace(kBaseSdl, "        storage:\n          size: 1Gi\n",
                                   "        storage:\n          - name: data\n            size: 1Gi\n"
                                   "          - name: data\n            size: 2Gi\n");
  EXPECT_EQ(ParseError(text).message(), "profiles.compute.web.resources.storage[1].name: duplicate volume \"data\"");
}

TEST(SdlStorage, NegativeAndZeroSizes) {
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "size: 1Gi\n        storage", "size: -1Gi\n        storage")).message(),
            "profiles.compute.web.resources.memory.size: \"-1Gi\" is negative");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "          size: 1Gi\n#GPU", "          size: 0\n#GPU")).message(),
            "profiles.compute.web.resources.storage.size: must be more than 0 bytes");
}

// ---------------------------------------------------------------------------------------------
// GPUs

TEST(SdlGpu, OptionsKeepTheirOrderAndAreLowerCased) {
  const ServiceRequest service = OnlyService(ParseOk(WithGpu(R"(        gpu:
          units: 2
          attributes:
            vendor:
              nvidia:
                - model: H100
                  ram: 80Gi
                  interface: sxm
                - model: a100
                  ram: 80Gi
                  interface: PCIe
                - model: "*"
                  ram: 48Gi
                - model: rtx4090
                  interface: sxm4
)")));
  const GpuRequest& gpu = service.resources.gpu;
  EXPECT_EQ(gpu.units, 2u);
  ASSERT_EQ(gpu.options.size(), 4u);
  EXPECT_EQ(gpu.options[0], (GpuOption{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm}));
  EXPECT_EQ(gpu.options[1], (GpuOption{"nvidia", "a100", 80 * kGi, GpuInterface::kPcie}));
  EXPECT_EQ(gpu.options[2], (GpuOption{"nvidia", "*", 48 * kGi, std::nullopt}));
  EXPECT_EQ(gpu.options[3], (GpuOption{"nvidia", "rtx4090", std::nullopt, GpuInterface::kSxm}));
}

TEST(SdlGpu, NullOrEmptyVendorListMeansAnyModel) {
  for (const char* list : {"nvidia:\n", "nvidia: []\n", "nvidia: ~\n"}) {
    const ServiceRequest service = OnlyService(ParseOk(WithGpu(
        std::string("        gpu:\n          units: 1\n          attributes:\n            vendor:\n              ") + list)));
    ASSERT_EQ(service.resources.gpu.options.size(), 1u) << list;
    EXPECT_EQ(service.resources.gpu.options[0], (GpuOption{"nvidia", "*", std::nullopt, std::nullopt})) << list;
  }
}

TEST(SdlGpu, UnitsWithoutAttributesIsAnError) {
  EXPECT_EQ(ParseError(WithGpu("        gpu:\n          units: 2\n")).message(),
            "profiles.compute.web.resources.gpu.attributes: missing: 2 GPU(s) need a vendor "
            "(attributes.vendor.nvidia, optionally with models)");
}

TEST(SdlGpu, ZeroUnitsIsNoGpu) {
  const ServiceRequest service = OnlyService(ParseOk(WithGpu("        gpu:\n          units: 0\n")));
  EXPECT_EQ(service.resources.gpu, GpuRequest{});
  // Akash's deployment check refuses GPU attributes without GPUs.
  EXPECT_EQ(ParseError(WithGpu("        gpu:\n          units: 0\n          attributes:\n            vendor:\n"
                               "              nvidia:\n"))
                .message(),
            "profiles.compute.web.resources.gpu.attributes: given for 0 GPUs (remove it or set units)");
}

TEST(SdlGpu, BadInterfaceNamesItsPath) {
  EXPECT_EQ(ParseError(WithGpu(R"(        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: h100
                - model: a100
                  interface: nvlink
)")).message(),
            "profiles.compute.web.resources.gpu.attributes.vendor.nvidia[1].interface: \"nvlink\" is not pcie|sxm");
}

TEST(SdlGpu, UnknownOptionFieldIsAWarningAndUnknownVendorAnError) {
  // Akash's reader ignores an unknown field of a GPU option (so the option is any RAM): a warning.
  const Deployment deployment =
      ParseOk(WithGpu("        gpu:\n          units: 1\n          attributes:\n            vendor:\n"
                      "              nvidia:\n                - model: h100\n                  memory: 80Gi\n"));
  ASSERT_EQ(deployment.warnings.size(), 1u);
  EXPECT_EQ(deployment.warnings[0].ToString(),
            "profiles.compute.web.resources.gpu.attributes.vendor.nvidia[0].memory: unknown field, ignored (expected "
            "model, ram, interface, mig, mig_min_ram or shared)");
  EXPECT_EQ(OnlyService(deployment).resources.gpu.options.at(0).ram_min_bytes, std::nullopt);
  EXPECT_EQ(ParseError(WithGpu("        gpu:\n          units: 1\n          attributes:\n            vendor:\n"
                               "              intel:\n"))
                .message(),
            "profiles.compute.web.resources.gpu.attributes.vendor.intel: unknown GPU vendor (expected nvidia or amd)");
  // Unknown fields of the GPU block itself are refused by Akash's reader too.
  EXPECT_EQ(ParseError(WithGpu("        gpu:\n          units: 1\n          model: h100\n")).message(),
            "profiles.compute.web.resources.gpu.model: unknown field (expected units or attributes)");
}

// Fractional GPUs (docs/FRACTIONAL.md): gpumart extensions Akash's reader ignores.
TEST(SdlGpu, MigAndSharedOptions) {
  const Deployment deployment = ParseOk(WithGpu(R"(        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: a100
                  mig: 1G.10gb
                - model: h100
                  mig_min_ram: 20Gi
                  ram: 10Gi
                - model: a10
                  shared: true
                - model: l4
)"));
  EXPECT_TRUE(deployment.warnings.empty());
  const auto& options = OnlyService(deployment).resources.gpu.options;
  ASSERT_EQ(options.size(), 4u);
  EXPECT_EQ(options[0].mig, "1g.10gb");
  EXPECT_TRUE(options[0].IsMig());
  EXPECT_EQ(options[1].mig, std::nullopt);
  EXPECT_EQ(options[1].mig_min_ram_bytes, 20 * kGi);
  EXPECT_EQ(options[1].ram_min_bytes, 10 * kGi);
  EXPECT_TRUE(options[2].shared_ok);
  EXPECT_FALSE(options[2].IsMig());
  EXPECT_EQ(options[3], (GpuOption{"nvidia", "l4", std::nullopt, std::nullopt}));
  // The order it makes survives the wire.
  for (const Order& order : deployment.orders) {
    Result<Order> decoded = DecodeOrder(EncodeBody(order));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, order);
  }
}

TEST(SdlGpu, BadMigOptionsNameTheirPath) {
  const std::string prefix = "        gpu:\n          units: 1\n          attributes:\n            vendor:\n"
                             "              nvidia:\n                - model: a100\n";
  const std::string at = "profiles.compute.web.resources.gpu.attributes.vendor.nvidia[0]";
  EXPECT_EQ(ParseError(WithGpu(prefix + "                  mig: 1c.3g.40gb\n")).message(),
            at + ".mig: \"1c.3g.40gb\" is not a MIG profile such as 1g.10gb");
  EXPECT_EQ(ParseError(WithGpu(prefix + "                  mig_min_ram: 0\n")).message(),
            at + ".mig_min_ram: must be more than 0 bytes");
  EXPECT_FALSE(ParseSdl(WithGpu(prefix + "                  mig_min_ram: lots\n")).ok());
  EXPECT_FALSE(ParseSdl(WithGpu(prefix + "                  shared: maybe\n")).ok());
  EXPECT_EQ(ParseError(WithGpu(prefix + "                  mig: 1g.10gb\n                  shared: true\n")).message(),
            at + ": asks for a MIG instance and a shared GPU (a MIG instance is never time-sliced)");
  // Akash Console's schema has none of them: --strict refuses each.
  for (const char* field : {"mig: 1g.10gb", "mig_min_ram: 10Gi", "shared: true"}) {
    Result<Deployment> strict = ParseSdl(WithGpu(prefix + "                  " + field + "\n"), {.strict = true});
    ASSERT_FALSE(strict.ok()) << field;
    EXPECT_NE(strict.status().message().find("a gpumart extension"), std::string::npos) << field;
  }
}

// ---------------------------------------------------------------------------------------------
// CUDA

ServiceSpec Spec(std::string image, std::vector<std::pair<std::string, std::string>> env) {
  ServiceSpec spec;
  spec.image = std::move(image);
  spec.env = std::move(env);
  return spec;
}

TEST(SdlCuda, SourcesAndPrecedence) {
  using V = CudaVersion;
  EXPECT_EQ(DetectCudaRequirement(Spec("nvidia/cuda:12.0-runtime-ubuntu22.04", {})), (V{12, 0}));
  EXPECT_EQ(DetectCudaRequirement(Spec("nvcr.io/nvidia/cuda:11.8.0-devel-ubuntu22.04", {})), (V{11, 8}));
  EXPECT_EQ(DetectCudaRequirement(Spec("docker.io/nvidia/cuda:12.4.1-base@sha256:abcd", {})), (V{12, 4}));
  EXPECT_EQ(DetectCudaRequirement(Spec("nvidia/cuda:latest", {})), std::nullopt);
  EXPECT_EQ(DetectCudaRequirement(Spec("notnvidia/cuda:12.1", {})), std::nullopt);
  EXPECT_EQ(DetectCudaRequirement(Spec("vllm/vllm-openai:v0.6.3", {})), std::nullopt);
  EXPECT_EQ(DetectCudaRequirement(Spec("vllm/vllm-openai:v0.6.3", {{"CUDA_VERSION", "12.4.1"}})), (V{12, 4}));
  // CUDA_VERSION beats the image tag.
  EXPECT_EQ(DetectCudaRequirement(Spec("nvidia/cuda:11.8.0-base", {{"CUDA_VERSION", "12.1"}})), (V{12, 1}));
  // NVIDIA_REQUIRE_CUDA beats both.
  EXPECT_EQ(DetectCudaRequirement(Spec("nvidia/cuda:11.8.0-base",
                                       {{"CUDA_VERSION", "12.1"},
                                        {"NVIDIA_REQUIRE_CUDA", "cuda>=12.2 brand=tesla,driver>=470,driver<471"}})),
            (V{12, 2}));
  // An empty or unreadable value falls through to the next source.
  EXPECT_EQ(DetectCudaRequirement(Spec("nvidia/cuda:11.8.0-base", {{"CUDA_VERSION", ""}})), (V{11, 8}));
  EXPECT_EQ(DetectCudaRequirement(Spec("", {{"NVIDIA_REQUIRE_CUDA", "brand=tesla"}, {"CUDA_VERSION", "12"}})),
            (V{12, 0}));
}

TEST(SdlCuda, ReadFromTheServiceEnvInAFile) {
  std::string text = Replace(kBaseSdl, "    image: nginx:1.25\n",
                             "    image: nvidia/cuda:11.8.0-base\n    env:\n      - FOO=bar\n"
                             "      - NVIDIA_REQUIRE_CUDA=cuda>=12.3 brand=tesla\n      - EMPTY\n");
  const Deployment deployment = ParseOk(text);
  EXPECT_EQ(OnlyService(deployment).cuda_min, (CudaVersion{12, 3}));
  const ServiceSpec& spec = deployment.services.at("web");
  EXPECT_EQ(spec.image, "nvidia/cuda:11.8.0-base");
  ASSERT_EQ(spec.env.size(), 3u);
  EXPECT_EQ(spec.env[0], (std::pair<std::string, std::string>{"FOO", "bar"}));
  EXPECT_EQ(spec.env[2], (std::pair<std::string, std::string>{"EMPTY", ""}));
  EXPECT_EQ(OnlyService(ParseOk(kBaseSdl)).cuda_min, std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Price, groups, services

TEST(SdlPrice, PerBlockToPerHour) {
  std::string text = Replace(kBaseSdl, "amount: 1000", "amount: 250000");
  const PriceCap cap = OnlyService(ParseOk(text)).price_cap;
  EXPECT_EQ(cap, (PriceCap{"uakt", 250000, 147130946}));
  EXPECT_EQ(OnlyService(ParseOk(Replace(kBaseSdl, "amount: 1000", "amount: 6117"))).price_cap.per_hour, 3600000u);
  EXPECT_EQ(OnlyService(ParseOk(Replace(kBaseSdl, "amount: 1000", "amount: 1"))).price_cap.per_hour, 588u);
  EXPECT_EQ(OnlyService(ParseOk(Replace(kBaseSdl, "amount: 1000", "amount: \"1000\""))).price_cap.amount, 1000u);
}

TEST(SdlPrice, BadAmounts) {
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "amount: 1000", "amount: -5")).message(),
            "profiles.placement.akash.pricing.web.amount: \"-5\" is negative");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "amount: 1000", "amount: 1.5")).message(),
            "profiles.placement.akash.pricing.web.amount: \"1.5\" has a fraction; write a whole number of uakt per block");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "          denom: uakt\n", "")).message(),
            "profiles.placement.akash.pricing.web.denom: missing");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "amount: 1000", "amount: 99999999999")).code(),
            Status::Code::kLimitExceeded);
}

constexpr const char* kTwoGroups = R"(version: "2.1"
services:
  zeta:
    image: a
  alpha:
    image: b
  beta:
    image: c
profiles:
  compute:
    small:
      resources:
        cpu: {units: 0.5}
        memory: {size: 512Mi}
        storage: {size: 1Gi}
  placement:
    west:
      attributes:
        region: us-west
        tier: 1
        audited: true
      signedBy:
        allOf: [akash1all]
        anyOf: ["akash1a", "akash1b"]
      pricing:
        small: {denom: uakt, amount: 100}
    east:
      pricing:
        small: {denom: uact, amount: 200}
    unused:
      pricing:
        small: {denom: uakt, amount: 1}
deployment:
  beta:
    east: {profile: small, count: 3}
    west: {profile: small, count: 1}
  alpha:
    west: {profile: small, count: 2}
  zeta:
    west: {profile: small, count: 1}
)";

TEST(SdlGroups, OrderOfGroupsAndServices) {
  const Deployment deployment = ParseOk(kTwoGroups);
  EXPECT_EQ(deployment.version, "2.1");
  ASSERT_EQ(deployment.orders.size(), 2u);  // "unused" has no service: no order
  const Order& west = deployment.orders[0];
  EXPECT_EQ(west.group, "west");
  ASSERT_EQ(west.services.size(), 3u);
  // The order of `services:`, not of `deployment:`.
  EXPECT_EQ(west.services[0].name, "zeta");
  EXPECT_EQ(west.services[1].name, "alpha");
  EXPECT_EQ(west.services[2].name, "beta");
  EXPECT_EQ(west.services[1].count, 2u);
  EXPECT_EQ(west.services[1].profile, "small");
  EXPECT_EQ(west.services[1].resources.cpu_millis, 500u);
  EXPECT_EQ(west.CapPerHour(), 4 * PerBlockToPerHour(100));
  const std::map<std::string, std::string> attributes{{"region", "us-west"}, {"tier", "1"}, {"audited", "true"}};
  EXPECT_EQ(west.attributes, attributes);
  EXPECT_EQ(west.signed_by.all_of, std::vector<std::string>{"akash1all"});
  EXPECT_EQ(west.signed_by.any_of, (std::vector<std::string>{"akash1a", "akash1b"}));
  const Order& east = deployment.orders[1];
  EXPECT_EQ(east.group, "east");
  ASSERT_EQ(east.services.size(), 1u);
  EXPECT_EQ(east.services[0].name, "beta");
  EXPECT_EQ(east.services[0].count, 3u);
  EXPECT_EQ(east.Denom(), "uact");
}

TEST(SdlServices, FieldsThatDoNotAffectMatchingAreAccepted) {
  const std::string text = Replace(kBaseSdl, "    image: nginx:1.25\n", R"(    image: nginx:1.25
    command: ["sh", "-c"]
    args:
      - echo hi
    expose:
      - port: 8080
        as: 80
        proto: tcp
        to:
          - global: true
      - port: 9000
        to:
          - service: other
        accept: [example.com]
        http_options: {max_body_size: 1024}
    params:
      storage:
        default: {mount: /data, readOnly: true}
    credentials:
      host: ghcr.io
      username: me
      password: secret
    dependencies:
      - service: db
    depends_on: [db]
    env: {A: "1", B: two}
)");
  const Deployment deployment = ParseOk(text);
  ASSERT_EQ(deployment.warnings.size(), 2u);
  EXPECT_EQ(deployment.warnings[0].ToString(),
            "services.web.depends_on: unknown field, ignored (expected image, command, args, env, expose, params, "
            "credentials or dependencies)");
  EXPECT_EQ(deployment.warnings[1].ToString(),
            "services.web.env: a mapping, read as NAME: value (Akash SDL writes env as a list of NAME=value)");
  const ServiceSpec& spec = deployment.services.at("web");
  EXPECT_EQ(spec.mounts, (std::vector<VolumeMount>{{"default", "/data", true}}));
  EXPECT_EQ(spec.command, (std::vector<std::string>{"sh", "-c"}));
  EXPECT_EQ(spec.args, std::vector<std::string>{"echo hi"});
  ASSERT_EQ(spec.expose.size(), 2u);
  EXPECT_EQ(spec.expose[0].port, 8080u);
  EXPECT_EQ(spec.expose[0].as, 80u);
  EXPECT_TRUE(spec.expose[0].global);
  EXPECT_FALSE(spec.expose[1].global);
  ASSERT_EQ(spec.env.size(), 2u);
  EXPECT_EQ(spec.env[1], (std::pair<std::string, std::string>{"B", "two"}));
}

TEST(SdlServices, MergeKeysAndAnchors) {
  // Akash's YAML library honours "<<: *anchor"; explicit keys win over merged ones.
  std::string text = Replace(kBaseSdl, "      resources:\n        cpu:", "      resources: &small\n        cpu:");
  text = Replace(text, "#GPU\n",
                 "    big:\n      resources:\n        <<: *small\n        memory: {size: 8Gi}\n");
  text = Replace(text, "          amount: 1000\n", "          amount: 1000\n        big: {denom: uakt, amount: 5}\n");
  text = Replace(text, "      profile: web", "      profile: big");
  const ServiceRequest service = OnlyService(ParseOk(text));
  EXPECT_EQ(service.resources.cpu_millis, 1000u);
  EXPECT_EQ(service.resources.memory_bytes, 8 * kGi);
  EXPECT_EQ(service.resources.StorageBytes(), kGi);
  // A mapping that merges itself ends with a limit, not a hang.
  const Status cycle = ParseError(Replace(kBaseSdl, "  web:\n    image: nginx:1.25\n", "  web: &w\n    image: x\n    <<: *w\n"));
  EXPECT_EQ(cycle.code(), Status::Code::kLimitExceeded) << cycle.ToString();
}

// ---------------------------------------------------------------------------------------------
// Errors, each naming its path

TEST(SdlErrors, References) {
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "  web:\n    akash:", "  web:\n    westcoast:")).message(),
            "deployment.web.westcoast: no placement \"westcoast\" in profiles.placement");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "profile: web", "profile: big")).message(),
            "deployment.web.akash.profile: no compute profile \"big\" in profiles.compute");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "deployment:\n  web:", "deployment:\n  api:")).message(),
            "deployment.api: no service \"api\" in services");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "      pricing:\n        web:", "      pricing:\n        gpu:")).message(),
            "profiles.placement.akash.pricing.gpu: no compute profile \"gpu\" in profiles.compute");
}

TEST(SdlErrors, MissingPricingForAProfile) {
  // A second profile that is priced, while the deployed one is not.
  std::string text = Replace(kBaseSdl, "#GPU\n", "    other:\n      resources:\n        cpu: {units: 1}\n"
                                                 "        memory: {size: 1Gi}\n");
  text = Replace(text, "      pricing:\n        web:", "      pricing:\n        other:");
  EXPECT_EQ(ParseError(text).message(),
            "profiles.placement.akash.pricing.web: missing: no price for compute profile \"web\" used by "
            "deployment.web.akash");
}

TEST(SdlErrors, Count) {
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "count: 1", "count: 0")).message(),
            "deployment.web.akash.count: must be at least 1, got 0");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "count: 1", "count: -2")).message(),
            "deployment.web.akash.count: must be at least 1, got -2");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "count: 1", "count: two")).message(),
            "deployment.web.akash.count: \"two\" is not a whole number");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "      count: 1\n", "")).message(), "deployment.web.akash.count: missing");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "count: 1", "count: 100000")).code(), Status::Code::kLimitExceeded);
}

TEST(SdlErrors, NoPlacementOrNoDeployment) {
  const std::string no_placement = Replace(kBaseSdl,
                                           "  placement:\n    akash:\n      pricing:\n        web:\n"
                                           "          denom: uakt\n          amount: 1000\n",
                                           "");
  EXPECT_EQ(ParseError(no_placement).message(), "profiles.placement: missing: the file has no placement group");
  EXPECT_EQ(ParseError(Replace(no_placement, "deployment:", "  placement: {}\ndeployment:")).message(),
            "profiles.placement: no placement group");
  const std::string no_deployment = Replace(kBaseSdl, "deployment:\n  web:\n    akash:\n      profile: web\n      count: 1\n", "");
  EXPECT_EQ(ParseError(no_deployment).message(), "deployment: missing: the file deploys no service");
  EXPECT_EQ(ParseError(no_deployment + "deployment:\n").message(), "deployment: no service is deployed");
}

TEST(SdlErrors, DenomsDifferWithinAGroup) {
  std::string text = Replace(kTwoGroups, "small: {denom: uakt, amount: 100}",
                             "small: {denom: uakt, amount: 100}\n        big: {denom: uact, amount: 100}");
  text = Replace(text, "        storage: {size: 1Gi}\n",
                 "        storage: {size: 1Gi}\n    big:\n      resources: {cpu: {units: 1}, memory: {size: 1Gi}}\n");
  text = Replace(text, "  alpha:\n    west: {profile: small", "  alpha:\n    west: {profile: big");
  EXPECT_EQ(ParseError(text).message(),
            "profiles.placement.west.pricing.big: priced in uact, the group's other services in uakt; every service "
            "of a group is priced in the same denoms");
}

TEST(SdlErrors, VersionAndShape) {
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "version: \"2.0\"", "version: \"1.0\"")).message(),
            "version: \"1.0\" is not supported (expected \"2.0\", \"2.1\" or \"2.2\")");
  EXPECT_EQ(ParseOk(Replace(kBaseSdl, "version: \"2.0\"", "version: 2.0")).version, "2.0");
  EXPECT_EQ(ParseError("").message(), "the file is empty");
  EXPECT_EQ(ParseError("# only a comment\n").message(), "the file is empty");
  EXPECT_EQ(ParseError("- a\n- b\n").message(), "expected a mapping at the top level, found a list");
  // A misspelt field is a warning (Akash's reader ignores it), and what it would have said is missing.
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "        memory:\n", "        memroy:\n")).message(),
            "profiles.compute.web.resources.memory: missing");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "deployment:\n  web:\n", "deployment:\n  web:\n    akash: {profile: web, count: 1}\n  web:\n"))
                .message(),
            "deployment.web: duplicate key");
}

TEST(SdlErrors, YamlSyntaxHasLineAndColumn) {
  const Status status = ParseError("version: \"2.0\"\nservices:\n  web: [1, 2\n");
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(status.message().rfind("invalid YAML at line ", 0), 0u) << status.message();
  EXPECT_EQ(ParseError("--\nversion: '2.0'\n").message(), "invalid YAML at line 2, column 8: mapping values are not allowed in this context");
}

// ---------------------------------------------------------------------------------------------
// Limits: refused quickly with a limit error, never a hang or a stack overflow.

template <typename F>
double Seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(SdlLimits, TwentyMegabyteText) {
  std::string big(20u << 20, ' ');
  big.replace(0, 14, "version: \"2.0\"");
  Status status;
  EXPECT_LT(Seconds([&] { status = ParseError(big); }), 1.0);
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(status.message(), "the file is 20971520 bytes, more than the limit of 1048576");
}

TEST(SdlLimits, TwentyMegabyteFile) {
  const std::string path = testing::TempDir() + "/sdl_test_big.yaml";
  {
    std::ofstream out(path, std::ios::binary);
    std::string chunk(1u << 20, '#');
    for (int i = 0; i < 20; ++i) out << chunk;
  }
  Result<Deployment> result = Deployment{};
  EXPECT_LT(Seconds([&] { result = ParseSdlFile(path); }), 1.0);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), Status::Code::kLimitExceeded);
  std::remove(path.c_str());
}

TEST(SdlLimits, DeepNestingIsRefusedBeforeYamlCpp) {
  const std::string brackets = "version: " + std::string(100'000, '[');
  const std::string braces = "a: " + std::string(100'000, '{');
  const std::string dashes = [] {
    std::string text;
    for (int i = 0; i < 100'000; ++i) text += "- ";
    return text + "x\n";
  }();
  const std::string indents = [] {
    std::string text;
    for (int i = 0; i < 200; ++i) text += std::string(i, ' ') + "k:\n";
    return text;
  }();
  for (const std::string* text : {&brackets, &braces, &dashes, &indents}) {
    Status status;
    EXPECT_LT(Seconds([&] { status = ParseError(*text); }), 1.0);
    EXPECT_EQ(status.code(), Status::Code::kLimitExceeded) << status.ToString();
    EXPECT_NE(status.message().find("nested deeper than 64 levels"), std::string::npos) << status.message();
  }
}

TEST(SdlLimits, CountsAndLengths) {
  std::string many_services = "version: \"2.0\"\nservices:\n";
  for (size_t i = 0; i <= kSdlMaxServices; ++i) many_services += "  s" + std::to_string(i) + ": {image: x}\n";
  const Status services = ParseError(many_services);
  EXPECT_EQ(services.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(services.message(), "services: more than 256 services");

  const std::string long_name(kSdlMaxNameBytes + 1, 'n');
  const Status name = ParseError(Replace(kBaseSdl, "denom: uakt", "denom: " + long_name));
  EXPECT_EQ(name.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(name.message(), "profiles.placement.akash.pricing.web.denom: longer than " +
                                std::to_string(limits::kMaxNameBytes) + " bytes");

  std::string options = "        gpu:\n          units: 1\n          attributes:\n            vendor:\n              nvidia:\n";
  for (size_t i = 0; i <= kSdlMaxGpuOptions; ++i) options += "                - model: m" + std::to_string(i) + "\n";
  const Status gpu = ParseError(WithGpu(options));
  EXPECT_EQ(gpu.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(gpu.message(), "profiles.compute.web.resources.gpu.attributes.vendor.nvidia: more than " +
                               std::to_string(limits::kMaxGpuOptions) + " GPU options");
}

TEST(SdlLimits, NodeCount) {
  std::string text = "version: \"2.0\"\nx: [";
  for (size_t i = 0; i <= kSdlMaxNodes; ++i) text += "a,";
  text += "]\n";
  ASSERT_LE(text.size(), kSdlMaxFileBytes);
  Status status;
  EXPECT_LT(Seconds([&] { status = ParseError(text); }), 1.0);
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(status.message(), "line 2: more than " + std::to_string(kSdlMaxNodes) + " YAML nodes");
}

// Aliases share their anchored node, so a billion-laughs file stays small; the walks that follow
// aliases (merge keys, expose) are bounded, so it stays quick too.
TEST(SdlLimits, AliasBombsAreCheap) {
  // The anchors sit in unknown fields of a service (Akash refuses unknown top-level fields).
  std::string bomb = "    x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level <= 9; ++level) {
    bomb += "    x-l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) bomb += (i == 0 ? "*l" : ", *l") + std::to_string(level - 1);
    bomb += "]\n";
  }
  const std::string text = Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx:1.25\n" + bomb + "    command: *l9\n");
  Result<Deployment> result = Deployment{};
  EXPECT_LT(Seconds([&] { result = ParseSdl(text); }), 1.0);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->warnings.size(), 10u);
  // An expose list of lists is refused at its first entry, as Akash refuses it.
  const std::string expose = Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx:1.25\n" + bomb + "    expose: *l9\n");
  EXPECT_LT(Seconds([&] { result = ParseSdl(expose); }), 1.0);
  EXPECT_EQ(result.status().message(), "services.web.expose[0]: expected a mapping, found a list");
}

TEST(SdlLimits, MergeKeysThatMultiplyAreRefused) {
  // Each level merges the one below 64 times: 64^7 mappings if nothing stopped it.
  std::string merges = "    x-m0: &m0 {a: 1}\n";
  for (int level = 1; level <= 7; ++level) {
    merges += "    x-m" + std::to_string(level) + ": &m" + std::to_string(level) + " {<<: [";
    for (int i = 0; i < 64; ++i) merges += (i == 0 ? "*m" : ", *m") + std::to_string(level - 1);
    merges += "]}\n";
  }
  Status status;
  const std::string multiplied =
      Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx:1.25\n" + merges + "    <<: *m7\n");
  EXPECT_LT(Seconds([&] { status = ParseError(multiplied); }), 1.0);
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(status.message(), "services.web.<<.<<.<<.<<.<<.<<.<<: merge keys (<<) merge more than 256 mappings");

  // One merged mapping of many repeated keys: each read is cheap, but they are counted.
  std::string repeated = "    x-big: &big {";
  for (int i = 0; i < 5000; ++i) repeated += "a: 1, ";
  repeated += "}\n";
  const std::string big =
      Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx:1.25\n" + repeated + "    <<: *big\n");
  EXPECT_EQ(ParseError(big).message(), "services.web.<<: merge keys (<<) bring in more than 4096 entries");
}

TEST(SdlLimits, ExposeThroughAliasesIsBounded) {
  std::string anchor = "    x-port: &port {port: 80, ";
  for (int i = 0; i < 2000; ++i) anchor += "k" + std::to_string(i) + ": v, ";
  anchor += "}\n";
  std::string expose = "    expose: [";
  for (int i = 0; i < 10; ++i) expose += "*port, ";
  expose += "]\n";
  const std::string text = Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx:1.25\n" + anchor + expose);
  EXPECT_EQ(ParseError(text).message(), "services.web.expose: more than 16384 fields and targets");
}

// A file may declare more services than one wire order carries; a group that would exceed the
// wire limit is refused with the group's path, so `sdl check` never passes what peers reject.
TEST(SdlLimits, GroupsStayWithinWireLimits) {
  std::string sdl = "version: \"2.0\"\nservices:\n";
  const size_t count = limits::kMaxServices + 1;
  for (size_t i = 0; i < count; ++i) sdl += "  s" + std::to_string(i) + ": {image: x}\n";
  sdl += "profiles:\n  compute:\n    c:\n      resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}\n";
  sdl += "  placement:\n    dc:\n      pricing:\n        c: {denom: uakt, amount: 100}\n";
  sdl += "deployment:\n";
  for (size_t i = 0; i < count; ++i) sdl += "  s" + std::to_string(i) + ":\n    dc: {profile: c, count: 1}\n";
  const Status status = ParseError(sdl);
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded) << status.ToString();
  EXPECT_EQ(status.message(), "profiles.placement.dc: order has too many services");
}

TEST(SdlFile, MissingFileAndDirectory) {
  Result<Deployment> missing = ParseSdlFile("/nonexistent/deploy.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kIoError);
  EXPECT_EQ(missing.status().message(), "cannot open: No such file or directory");
  Result<Deployment> directory = ParseSdlFile(testing::TempDir());
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().message(), "is a directory");
}

TEST(SdlFile, FixturesLiveInTheRepository) {
  // A clone of the repository alone must run every test: no fixture may come from outside it.
  const std::string fixtures = GPUMART_FIXTURE_DIR;
  const std::string source = std::string(GPUMART_SOURCE_DIR) + "/";
  ASSERT_EQ(fixtures.compare(0, source.size(), source), 0) << fixtures << " is outside " << source;
  EXPECT_EQ(fixtures.find(".."), std::string::npos) << fixtures;
  EXPECT_TRUE(ParseSdlFile(fixtures + "/sdl/seed_basic-gpu.yaml").ok());
  EXPECT_TRUE(std::ifstream(fixtures + "/sdl/NOTICE.md").good()) << "the fixtures' licence notice is missing";
}

TEST(SdlFile, EveryValidFixtureParses) {
  // The exact results are pinned end to end in tests/node/cmd_sdl_test.cpp.
  const std::string dir = std::string(GPUMART_FIXTURE_DIR) + "/sdl/";
  for (const char* name : {"seed_basic-gpu.yaml", "seed_llm-fallbacks.yaml", "seed_ollama-webui.yaml",
                           "dify_deploy.yaml", "Llama-3.1-405B-BF16_deploy.yaml"}) {
    Result<Deployment> result = ParseSdlFile(dir + name);
    EXPECT_TRUE(result.ok()) << name << ": " << result.status().ToString();
  }
  EXPECT_FALSE(ParseSdlFile(dir + "teamspeak_deploy.yaml").ok());
  EXPECT_FALSE(ParseSdlFile(dir + "pokt-network_deploy.yml").ok());
}

// Exceptions stop at the boundary (issue 11, item 9): whichever allocation fails while a file is
// read and parsed, ParseSdlFile returns a Status. Before, the read buffer was allocated outside
// the parser's try, so std::bad_alloc escaped.
TEST(SdlFile, AnAllocationFailureAnywhereIsAStatus) {
  if (!GPUMART_ALLOC_FAILURE_INJECTION) GTEST_SKIP() << "allocation failures cannot be injected under a sanitizer";
  const std::string path = std::string(GPUMART_FIXTURE_DIR) + "/sdl/seed_basic-gpu.yaml";
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("ParseSdlFile", [&] { return ParseSdlFile(path); }), 10);
}

// ---------------------------------------------------------------------------------------------
// What Akash's Go reader accepts, ignores and refuses (issue 14). Each refusal below was accepted
// before; each ignored field was an error.

Deployment ParseStrictOk(const std::string& text) {
  Result<Deployment> result = ParseSdl(text, {.strict = true});
  EXPECT_TRUE(result.ok()) << result.status().ToString() << "\n" << text;
  return result.ok() ? std::move(result).value() : Deployment{};
}

Status ParseStrictError(const std::string& text) {
  Result<Deployment> result = ParseSdl(text, {.strict = true});
  EXPECT_FALSE(result.ok()) << text;
  return result.ok() ? Status::Ok() : result.status();
}

std::string WithVersion(const std::string& version) {
  return Replace(kBaseSdl, "version: \"2.0\"", "version: " + version);
}

TEST(SdlAkash, VersionIsReadAsAToleratedSemver) {
  struct Case {
    const char* written;
    const char* read;  // nullptr: refused
  };
  const Case cases[] = {
      {"\"2.0\"", "2.0"},   {"2.0", "2.0"},         {"\"2\"", "2.0"},        {"2", "2.0"},
      {"\"2.0.0\"", "2.0"}, {"\"v2.0\"", "2.0"},    {"\" 2.0 \"", "2.0"},    {"\"02.00\"", "2.0"},
      {"\"2.0.0+b1\"", "2.0"}, {"\"2.1\"", "2.1"},  {"\"2.1.0\"", "2.1"},    {"\"2.1.7\"", "2.1"},
      {"\"2.2.0-rc1\"", "2.1"}, {"\"2.2\"", "2.2"}, {"\"2.10\"", "2.2"},     {"\"3.0\"", "2.2"},
      {"\"2.0.1\"", nullptr}, {"\"2.1.0-rc1\"", nullptr}, {"\"2.1-rc1\"", nullptr}, {"\"1.9\"", nullptr},
      {"\"two\"", nullptr}, {"\"2.0.0.0\"", nullptr}, {"\"2.0.0-01\"", nullptr}, {"\"\"", nullptr},
  };
  for (const Case& c : cases) {
    Result<Deployment> result = ParseSdl(WithVersion(c.written));
    if (c.read == nullptr) {
      EXPECT_FALSE(result.ok()) << c.written;
      continue;
    }
    ASSERT_TRUE(result.ok()) << c.written << ": " << result.status().ToString();
    EXPECT_EQ(result->version, c.read) << c.written;
  }
  // Read differently than written: a warning says how; --strict wants it written out.
  const Deployment two = ParseOk(WithVersion("\"2\""));
  ASSERT_EQ(two.warnings.size(), 1u);
  EXPECT_EQ(two.warnings[0].ToString(), "version: \"2\" read as \"2.0\", as Akash's reader reads it");
  EXPECT_EQ(ParseStrictError(WithVersion("\"2\"")).message(),
            "version: \"2\" is not written as \"2.0\", \"2.1\" or \"2.2\" (--strict: Akash Console's schema)");
  EXPECT_EQ(ParseError(WithVersion("\"2.0.1\"")).message(),
            "version: \"2.0.1\" is not supported (expected \"2.0\", \"2.1\" or \"2.2\")");
}

TEST(SdlAkash, UnknownFieldsBelowTheTopAreWarningsAndAtTheTopErrors) {
  std::string text = Replace(kBaseSdl, "    image: nginx:1.25\n",
                             "    image: nginx:1.25\n    expose:\n      - port: 80\n        foo: 1\n        to:\n"
                             "          - global: true\n            bar: 2\n");
  text = Replace(text, "  placement:\n", "  extra: {}\n  placement:\n");
  text = Replace(text, "      count: 1\n", "      count: 1\n      replicas: 3\n");
  text = Replace(text, "          amount: 1000\n", "          amount: 1000\n          per: block\n");
  text = Replace(text, "        cpu:\n          units: 1\n", "        cpu:\n          units: 1\n          arch: x86\n");
  const Deployment deployment = ParseOk(text);
  std::vector<std::string> warnings;
  for (const SdlWarning& warning : deployment.warnings) warnings.push_back(warning.path);
  EXPECT_EQ(warnings, (std::vector<std::string>{"profiles.extra", "services.web.expose[0].foo",
                                                "services.web.expose[0].to[0].bar",
                                                "profiles.compute.web.resources.cpu.arch",
                                                "profiles.placement.akash.pricing.web.per",
                                                "deployment.web.akash.replicas"}));
  EXPECT_EQ(deployment.warnings[1].ToString(),
            "services.web.expose[0].foo: unknown field, ignored (expected port, as, proto, to, accept or http_options)");
  // The orders are what they would be without the unknown fields.
  EXPECT_EQ(deployment.orders, ParseOk(kBaseSdl).orders);
  // --strict: the first one met is an error.
  EXPECT_EQ(ParseStrictError(text).message(), "profiles.extra: unknown field (expected compute or placement)");
  // Akash's reader refuses an unknown top-level field ("sdl: unexpected field").
  EXPECT_EQ(ParseError(kBaseSdl + std::string("x-defaults: {}\n")).message(),
            "x-defaults: unknown top-level field (expected version, services, profiles, deployment, endpoints, "
            "include or reclamation)");
  EXPECT_TRUE(ParseOk(kBaseSdl + std::string("include: [other.yaml]\n")).warnings.empty());
}

// The base SDL with a storage list and the service's params.storage.
std::string WithVolumes(const std::string& volumes, const std::string& params) {
  std::string text = Replace(kBaseSdl, "        storage:\n          size: 1Gi\n", "        storage:\n" + volumes);
  if (!params.empty()) text = Replace(text, "    image: nginx:1.25\n", "    image: nginx:1.25\n    params:\n      storage:\n" + params);
  return text;
}

constexpr const char* kPersistentData =
    "          - size: 1Gi\n          - name: data\n            size: 10Gi\n            attributes:\n"
    "              persistent: true\n              class: beta3\n";

TEST(SdlAkash, PersistentVolumesMustBeMountedAtAnAbsolutePath) {
  const Deployment mounted = ParseOk(WithVolumes(kPersistentData, "        data:\n          mount: /var/lib/data\n"));
  EXPECT_EQ(mounted.services.at("web").mounts, (std::vector<VolumeMount>{{"data", "/var/lib/data", false}}));
  EXPECT_EQ(ParseError(WithVolumes(kPersistentData, "")).message(),
            "services.web.params.storage.data.mount: missing: persistent volume \"data\" of profiles.compute.web must "
            "be mounted by service \"web\" (params.storage.data.mount: /an/absolute/path)");
  EXPECT_EQ(ParseError(WithVolumes(kPersistentData, "        data:\n          readOnly: true\n")).message(),
            "services.web.params.storage.data.mount: missing: where the volume is mounted, an absolute path");
  EXPECT_EQ(ParseError(WithVolumes(kPersistentData, "        data:\n          mount: var/data\n")).message(),
            "services.web.params.storage.data.mount: \"var/data\" is not an absolute path");
  EXPECT_EQ(ParseError(WithVolumes(kPersistentData, "        data: {mount: /d}\n        cache: {mount: /c}\n")).message(),
            "services.web.params.storage.cache: no volume \"cache\" in profiles.compute.web.resources.storage (used by "
            "deployment.web.akash)");
  EXPECT_EQ(ParseError(WithVolumes(kPersistentData, "        data: {mount: /d}\n        default: {mount: /d}\n")).message(),
            "services.web.params.storage.default.mount: \"/d\" is already the mount point of volume \"data\"");
}

TEST(SdlAkash, StorageClassesFollowAkashsRules) {
  auto volume = [](const std::string& attributes) {
    return WithVolumes("          - size: 1Gi\n            attributes:\n" + attributes, "");
  };
  EXPECT_EQ(ParseError(volume("              class: beta3\n")).message(),
            "profiles.compute.web.resources.storage[0].attributes.class: class \"beta3\" needs persistent: true (an "
            "ephemeral volume has no class)");
  EXPECT_EQ(ParseError(volume("              class: ram\n              persistent: true\n")).message(),
            "profiles.compute.web.resources.storage[0].attributes.class: a ram volume cannot be persistent");
  EXPECT_EQ(ParseError(volume("              class: nvme\n              persistent: true\n")).message(),
            "profiles.compute.web.resources.storage[0].attributes.class: \"nvme\" is not a storage class (expected "
            "default, beta1, beta2, beta3 or ram)");
  EXPECT_EQ(ParseError(volume("              size: 2Gi\n")).message(),
            "profiles.compute.web.resources.storage[0].attributes.size: unknown field (expected persistent or class)");
  // A ram volume may be mounted, not read-only.
  const std::string ram = "          - size: 1Gi\n          - name: shm\n            size: 1Gi\n            attributes:\n"
                          "              class: ram\n";
  EXPECT_TRUE(ParseSdl(WithVolumes(ram, "        shm: {mount: /dev/shm}\n")).ok());
  EXPECT_EQ(ParseError(WithVolumes(ram, "        shm: {mount: /dev/shm, readOnly: true}\n")).message(),
            "services.web.params.storage.shm.readOnly: a ram volume cannot be read-only");
}

TEST(SdlAkash, ServicesAndPricesAkashRefuses) {
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "services:\n  web:", "services:\n  Web_1:")).message(),
            "services.Web_1: \"Web_1\" is not a valid service name (lower-case letters, digits and '-', starting with "
            "a letter and not ending with '-')");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "    image: nginx:1.25\n", "    command: [sh]\n")).message(),
            "services.web.image: missing");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx\n    env:\n      - \"1A=x\"\n"))
                .message(),
            "services.web.env[0]: \"1A\" is not a valid environment variable name");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx\n    expose:\n      - port: 70000\n"))
                .message(),
            "services.web.expose[0].port: 70000 is more than the limit of 65535");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx\n    expose:\n      - as: 80\n"))
                .message(),
            "services.web.expose[0].port: missing");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "    image: nginx:1.25\n",
                               "    image: nginx\n    expose:\n      - port: 80\n        proto: http\n"))
                .message(),
            "services.web.expose[0].proto: \"http\" is not a protocol (expected tcp or udp)");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "    image: nginx:1.25\n",
                               "    image: nginx\n    credentials:\n      host: ghcr.io\n      username: me\n"))
                .message(),
            "services.web.credentials.password: missing");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "amount: 1000", "amount: 0")).message(),
            "profiles.placement.akash.pricing.web.amount: is zero (Akash refuses a zero price)");
  EXPECT_EQ(ParseError(Replace(kBaseSdl, "denom: uakt", "denom: \"1x\"")).message(),
            "profiles.placement.akash.pricing.web.denom: \"1x\" is not a denom (a letter, then 2 to 127 letters, "
            "digits or /:._-)");
}

TEST(SdlAkash, IpEndpointsAreDeclaredGlobalAndUsed) {
  const std::string exposed = Replace(kBaseSdl, "    image: nginx:1.25\n",
                                      "    image: nginx\n    expose:\n      - port: 80\n        to:\n"
                                      "          - global: true\n            ip: myip\n");
  EXPECT_TRUE(ParseSdl(exposed + "endpoints:\n  myip:\n    kind: ip\n").ok());
  EXPECT_EQ(ParseError(exposed).message(), "services.web.expose[0].to[0].ip: no endpoint \"myip\" in endpoints");
  EXPECT_EQ(ParseError(Replace(exposed, "global: true", "global: false") + "endpoints:\n  myip:\n    kind: ip\n").message(),
            "services.web.expose[0].to[0].global: must be true when an ip endpoint is named");
  EXPECT_EQ(ParseError(kBaseSdl + std::string("endpoints:\n  myip:\n    kind: ip\n")).message(),
            "endpoints.myip: declared but no service exposes to it (expose.to.ip)");
  EXPECT_EQ(ParseError(kBaseSdl + std::string("endpoints:\n  myip:\n    kind: dns\n")).message(),
            "endpoints.myip.kind: \"dns\" is not a known kind (expected ip)");
  EXPECT_EQ(ParseError(kBaseSdl + std::string("endpoints:\n  My:\n    kind: ip\n")).message(),
            "endpoints.My: \"My\" is not a valid endpoint name (lower-case letters, then lower-case letters, digits, "
            "'-' or '_')");
}

TEST(SdlAkash, StrictAppliesTheConsoleSchema) {
  // Each is accepted without --strict.
  const std::string cases[][2] = {
      {Replace(kBaseSdl, "        cpu:\n          units: 1\n", "        cpu: 1\n"),
       "profiles.compute.web.resources.cpu: a shorthand: write cpu: {units: ...}"},
      {Replace(kBaseSdl, "        storage:\n          size: 1Gi\n", ""), "profiles.compute.web.resources.storage: missing"},
      {Replace(kBaseSdl, "denom: uakt", "denom: usdc"), "profiles.placement.akash.pricing.web.denom: \"usdc\" is not "
                                                        "uakt, uact or ibc/..."},
      {Replace(kBaseSdl, "    image: nginx:1.25\n", "    image: nginx\n    env: {A: b}\n"),
       "services.web.env: must be a list of strings"},
      {WithVolumes("          - size: 1Gi\n          - name: d\n            size: 1Gi\n            attributes:\n"
                   "              persistent: true\n",
                   "        d: {mount: /d}\n"),
       "profiles.compute.web.resources.storage[1].attributes: needs both class and persistent"},
      {WithGpu("        gpu:\n          units: 1\n          attributes:\n            vendor:\n              nvidia:\n"
               "                - h100\n"),
       "profiles.compute.web.resources.gpu.attributes.vendor.nvidia[0]: a shorthand: write - model: ..."},
      {Replace(kBaseSdl, "    image: nginx:1.25\n",
               "    image: nginx\n    credentials: {host: h, username: u, password: short}\n"),
       "services.web.credentials.password: shorter than 6 characters"},
  };
  for (const auto& [text, error] : cases) {
    EXPECT_TRUE(ParseSdl(text).ok()) << error;
    EXPECT_EQ(ParseStrictError(text).message(), error + " (--strict: Akash Console's schema)");
  }
  EXPECT_TRUE(ParseStrictOk(kBaseSdl).warnings.empty());
}

// SDL 2.2: a placement's price for a profile may list several denoms.
constexpr const char* kMultiDenom = R"(version: "2.2"
services:
  web:
    image: nginx
  api:
    image: api
profiles:
  compute:
    web:
      resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}
  placement:
    akash:
      pricing:
        web:
          - denom: uact
            amount: 100
          - denom: uakt
            amount: 6117
deployment:
  web:
    akash: {profile: web, count: 2}
)";

TEST(SdlAkash, SeveralDenomsKeepTheTenantsOrder) {
  const Deployment deployment = ParseOk(kMultiDenom);
  ASSERT_EQ(deployment.orders.size(), 1u);
  const Order& order = deployment.orders[0];
  EXPECT_EQ(order.Denoms(), (std::vector<std::string>{"uact", "uakt"}));
  const ServiceRequest& service = order.services[0];
  EXPECT_EQ(service.price_cap, (PriceCap{"uact", 100, PerBlockToPerHour(100)}));
  EXPECT_EQ(service.more_caps, (std::vector<PriceCap>{{"uakt", 6117, 3'600'000}}));
  EXPECT_EQ(order.CapPerHourIn("uakt"), 7'200'000u);
  EXPECT_EQ(order.CapPerHourIn("usdc"), std::nullopt);
  EXPECT_TRUE(ValidateOrder(order).ok());
  // A list needs 2.2, as Akash's 2.0/2.1 readers refuse it.
  EXPECT_EQ(ParseError(Replace(kMultiDenom, "\"2.2\"", "\"2.1\"")).message(),
            "profiles.placement.akash.pricing.web: a list of prices needs version \"2.2\" (this file is \"2.1\")");
  EXPECT_EQ(ParseError(Replace(kMultiDenom, "denom: uakt", "denom: uact")).message(),
            "profiles.placement.akash.pricing.web[1].denom: \"uact\" is listed twice");
  // Every service of a group caps in the same denoms; the first service's order is the group's.
  std::string two = Replace(kMultiDenom, "      resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}\n",
                            "      resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}\n"
                            "    api:\n      resources: {cpu: {units: 2}, memory: {size: 1Gi}, storage: {size: 1Gi}}\n");
  two = Replace(two, "            amount: 6117\n",
                "            amount: 6117\n        api: [{denom: uakt, amount: 1}, {denom: uact, amount: 2}]\n");
  two += "  api:\n    akash: {profile: api, count: 1}\n";
  const Deployment both = ParseOk(two);
  ASSERT_EQ(both.orders.at(0).services.size(), 2u);
  EXPECT_EQ(both.orders[0].services[1].price_cap.denom, "uact");
  EXPECT_EQ(both.orders[0].services[1].more_caps.at(0).denom, "uakt");
  EXPECT_EQ(ParseError(Replace(two, "{denom: uakt, amount: 1}, ", "")).message(),
            "profiles.placement.akash.pricing.api: priced in uact, the group's other services in uact, uakt; every "
            "service of a group is priced in the same denoms");
}

}  // namespace
}  // namespace gpumart::market

namespace gpumart::market {
namespace {

// ---------------------------------------------------------------------------------------------
// Interruptible (spot) placements, a gpumart extension (docs/SPOT.md)

TEST(SdlSpot, InterruptiblePricingMakesAnInterruptibleOrder) {
  const Deployment regular = ParseOk(kBaseSdl);
  ASSERT_EQ(regular.orders.size(), 1u);
  EXPECT_FALSE(regular.orders[0].interruptible);
  const Deployment spot = ParseOk(Replace(kBaseSdl, "          amount: 1000\n", "          amount: 300\n          interruptible: true\n"));
  ASSERT_EQ(spot.orders.size(), 1u);
  EXPECT_TRUE(spot.orders[0].interruptible);
  EXPECT_EQ(spot.orders[0].services[0].price_cap.amount, 300u);  // the spot cap
  const Deployment explicit_false =
      ParseOk(Replace(kBaseSdl, "          amount: 1000\n", "          amount: 1000\n          interruptible: false\n"));
  EXPECT_FALSE(explicit_false.orders[0].interruptible);
}

TEST(SdlSpot, AStrictReadRefusesTheExtensionAndABadFlagIsNamed) {
  const std::string spot = Replace(kBaseSdl, "          amount: 1000\n", "          amount: 300\n          interruptible: true\n");
  Result<Deployment> strict = ParseSdl(spot, SdlOptions{.strict = true});
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("interruptible is a gpumart extension"), std::string::npos)
      << strict.status().message();
  const Status bad = ParseError(Replace(kBaseSdl, "          amount: 1000\n", "          amount: 300\n          interruptible: maybe\n"));
  EXPECT_NE(bad.message().find("interruptible"), std::string::npos) << bad.message();
}

TEST(SdlSpot, EveryPriceOfAPlacementMustAgree) {
  const std::string text = R"(
version: "2.0"
services:
  a: {image: x}
  b: {image: y}
profiles:
  compute:
    small:
      resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}
    large:
      resources: {cpu: {units: 2}, memory: {size: 1Gi}, storage: {size: 1Gi}}
  placement:
    dc:
      pricing:
        small: {denom: uakt, amount: 100, interruptible: true}
        large: {denom: uakt, amount: 100}
deployment:
  a:
    dc: {profile: small, count: 1}
  b:
    dc: {profile: large, count: 1}
)";
  const Status status = ParseError(text);
  EXPECT_NE(status.message().find("must agree on interruptible"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace gpumart::market
