// gpumart lease manifest LEASE --k8s --sdl deploy.yaml: the Kubernetes objects that run a lease
// on a provider's cluster (docs/EXECUTOR.md, "Kubernetes manifests").
//
// The lease and its Order come from the node's ledger: over its client port (`lease`, the
// signatures checked here), or read directly from a stopped daemon's data dir, as `gpumart
// leases` chooses (node/client_cli.h). The Order carries what matching needs (per service: replicas,
// CPU, memory, storage volumes, GPUs) but not how to run it (image, env, command, args, ports,
// volume mounts): those are only in the tenant's SDL, so the SDL is an argument, and it must be
// the one the order was made from (same group, same services, same resources), else the command
// refuses rather than deploy something the lease did not price.
//
// The output is one YAML document, a v1 List (kubectl apply -f accepts it), written by a small
// emitter below that double-quotes every string, so no value from an SDL or a peer can change
// the document's structure.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "bidding/executor.h"
#include "bidding/gpu_models.h"
#include "bidding/nvidia_smi.h"
#include "ledger/store.h"
#include "market/mig.h"
#include "market/sdl.h"
#include "market/types.h"
#include "market/yaml_tree.h"
#include "node/cli.h"
#include "node/client_cli.h"

namespace gpumart::node {
namespace {

constexpr const char* kLedgerSubdir = "/ledger";
constexpr size_t kLeaseLabelHexDigits = 16;  // a label value holds at most 63 characters
constexpr size_t kMaxKubernetesNameBytes = 63;

// ---------------------------------------------------------------------------------------------
// A YAML document as a tree, written in block style.

class YamlOut {
 public:
  static YamlOut String(std::string text) { return YamlOut(Kind::kString, std::move(text)); }
  static YamlOut Number(uint64_t value) { return YamlOut(Kind::kPlain, std::to_string(value)); }
  static YamlOut Bool(bool value) { return YamlOut(Kind::kPlain, value ? "true" : "false"); }
  static YamlOut Map() { return YamlOut(Kind::kMap, ""); }
  static YamlOut Seq() { return YamlOut(Kind::kSeq, ""); }

  // Appends to a mapping (keys are this file's own words) or a sequence; returns it, to chain
  // (a temporary as a temporary, so a chain can be an argument).
  YamlOut& Set(std::string key, YamlOut value) & {
    entries_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  YamlOut&& Set(std::string key, YamlOut value) && { return std::move(Set(std::move(key), std::move(value))); }
  YamlOut& Add(YamlOut value) & {
    entries_.emplace_back("", std::move(value));
    return *this;
  }
  YamlOut&& Add(YamlOut value) && { return std::move(Add(std::move(value))); }
  bool empty() const { return entries_.empty(); }

  std::string Write() const {
    std::string out;
    Write(0, out);
    return out;
  }

 private:
  enum class Kind { kString, kPlain, kMap, kSeq };
  YamlOut(Kind kind, std::string text) : kind_(kind), text_(std::move(text)) {}

  bool IsCollection() const { return kind_ == Kind::kMap || kind_ == Kind::kSeq; }
  std::string Inline() const {
    if (kind_ == Kind::kString) return Quote(text_);
    if (kind_ == Kind::kPlain) return text_;
    return kind_ == Kind::kMap ? "{}" : "[]";
  }

  // A non-empty collection at `indent`, one line per scalar entry.
  void Write(size_t indent, std::string& out) const {
    const std::string pad(indent, ' ');
    for (const auto& [key, value] : entries_) {
      const bool nested = value.IsCollection() && !value.empty();
      if (kind_ == Kind::kMap) {
        out += pad + Key(key) + ":";
        if (!nested) {
          out += " " + value.Inline() + "\n";
        } else {
          out += "\n";
          // A sequence under a key sits at the key's indentation, as kubectl writes it.
          value.Write(value.kind_ == Kind::kSeq ? indent : indent + 2, out);
        }
      } else if (!nested) {
        out += pad + "- " + value.Inline() + "\n";
      } else {
        // "- " then the item's first line; its other lines are indented past the dash.
        std::string item;
        value.Write(indent + 2, item);
        out += pad + "- " + item.substr(indent + 2);
      }
    }
  }

  static std::string Key(const std::string& key) {
    const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '/' ||
             c == '_' || c == '-';
    });
    return plain ? key : Quote(key);
  }

  // A double-quoted YAML scalar holding exactly `text`: quotes, backslashes and control
  // characters escaped, YAML's own line breaks (U+0085, U+2028, U+2029) and the BOM escaped, and
  // each byte that is not UTF-8 written as U+FFFD (a YAML stream must be Unicode).
  static std::string Quote(std::string_view text) {
    static const char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (size_t i = 0; i < text.size();) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (c < 0x80) {
        if (c == '"' || c == '\\') {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c == '\n') {
          out += "\\n";
        } else if (c == '\t') {
          out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
        ++i;
        continue;
      }
      // One UTF-8 sequence: its length from the lead byte, continuation bytes checked, no
      // overlong forms, no surrogates, nothing past U+10FFFF.
      const size_t length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
      uint32_t point = length == 4 ? c & 0x07 : length == 3 ? c & 0x0f : c & 0x1f;
      bool valid = length != 0 && i + length <= text.size();
      for (size_t k = 1; valid && k < length; ++k) {
        const unsigned char next = static_cast<unsigned char>(text[i + k]);
        valid = (next & 0xc0) == 0x80;
        point = (point << 6) | (next & 0x3f);
      }
      const uint32_t smallest = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;  // shorter is overlong
      valid = valid && point >= smallest && point <= 0x10ffff && !(point >= 0xd800 && point <= 0xdfff);
      if (!valid) {
        out += "\\uFFFD";
        ++i;
      } else if (point == 0x85) {
        out += "\\N";
        i += length;
      } else if (point == 0x2028 || point == 0x2029 || point == 0xfeff) {
        out += point == 0x2028 ? "\\L" : point == 0x2029 ? "\\P" : "\\uFEFF";
        i += length;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
    }
    return out + "\"";
  }

  Kind kind_;
  std::string text_;
  std::vector<std::pair<std::string, YamlOut>> entries_;
};

// ---------------------------------------------------------------------------------------------
// What the manifest is made from.

// The SDL's text, read once: market::ParseSdl reads it for the services, and the volume mounts
// (params.storage, which the parser does not keep) come from its YAML tree.
struct SdlFile {
  market::Deployment deployment;
  market::YamlTree tree;
};

Result<SdlFile> ReadSdl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError(path + ": cannot open");
  std::string text(market::kSdlMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > market::kSdlMaxFileBytes) {
    return Status::LimitExceeded(path + ": larger than " + std::to_string(market::kSdlMaxFileBytes) + " bytes");
  }
  Result<market::Deployment> deployment = market::ParseSdl(text);
  if (!deployment.ok()) return deployment.status().WithContext(path);
  Result<market::YamlTree> tree =
      market::YamlTree::Parse(text, {.max_nodes = market::kSdlMaxNodes, .max_depth = market::kSdlMaxNestingDepth});
  if (!tree.ok()) return tree.status().WithContext(path);
  return SdlFile{std::move(deployment).value(), std::move(tree).value()};
}

// The first way `sdl`'s service differs from the order's, or "" when they agree on what the
// lease priced: replicas, resources and the CUDA requirement.
std::string Difference(const market::ServiceRequest& order, const market::ServiceRequest& sdl) {
  if (order.count != sdl.count) return "count " + std::to_string(sdl.count) + " != " + std::to_string(order.count);
  if (order.resources.cpu_millis != sdl.resources.cpu_millis) return "cpu differs";
  if (order.resources.memory_bytes != sdl.resources.memory_bytes) return "memory differs";
  if (order.resources.storage != sdl.resources.storage) return "storage differs";
  if (order.resources.gpu != sdl.resources.gpu) return "gpu differs";
  if (order.cuda_min != sdl.cuda_min) return "the CUDA requirement differs";
  return "";
}

// The SDL's group for `order`, checked to be the order: same services in the same order with
// the same resources.
Result<const market::Order*> MatchingGroup(const market::Deployment& deployment, const market::Order& order,
                                           const std::string& path) {
  const auto group = std::find_if(deployment.orders.begin(), deployment.orders.end(),
                                  [&](const market::Order& o) { return o.group == order.group; });
  if (group == deployment.orders.end()) {
    return Status::InvalidArgument(path + " has no placement group '" + order.group +
                                   "' (the lease's order is for that group): is it the SDL the order was made from?");
  }
  if (group->services.size() != order.services.size()) {
    return Status::InvalidArgument(path + ": group '" + order.group + "' has " +
                                   std::to_string(group->services.size()) + " services, the lease's order " +
                                   std::to_string(order.services.size()));
  }
  for (size_t i = 0; i < order.services.size(); ++i) {
    const market::ServiceRequest& want = order.services[i];
    const market::ServiceRequest& have = group->services[i];
    if (have.name != want.name) {
      return Status::InvalidArgument(path + ": group '" + order.group + "' service " + std::to_string(i) + " is '" +
                                     have.name + "', the lease's order has '" + want.name + "'");
    }
    const std::string difference = Difference(want, have);
    if (!difference.empty()) {
      return Status::InvalidArgument(path + ": service '" + want.name + "' is not what the lease's order asked for (" +
                                     difference + ")");
    }
  }
  return &*group;
}

bool IsKubernetesName(std::string_view name) {
  if (name.empty() || name.size() > kMaxKubernetesNameBytes) return false;
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '-'; });
}

// GPU Feature Discovery's nvidia.com/gpu.product value: the product name with spaces as '-'.
std::string GfdProduct(std::string_view product) {
  std::string label(product);
  std::replace(label.begin(), label.end(), ' ', '-');
  return label;
}

std::string Interface(market::GpuInterface interface) { return std::string(market::ToString(interface)); }

// Everything one Deployment needs.
struct ServiceParts {
  const market::ServiceAssignment* assignment;
  const market::ServiceRequest* request;
  const market::ServiceSpec* spec;
  market::YamlNode params_storage;  // services.<name>.params.storage of the SDL
};

Result<YamlOut> GpuAffinity(const market::DeviceType& device, const bidding::GpuModelTable& models) {
  YamlOut products = YamlOut::Seq();
  // A MIG instance runs on any product of its model whose MIG profiles include it; a time-slice
  // replica on a product of its whole type, which GFD labels with "-SHARED" appended when the
  // device plugin does not rename the resource (docs/FRACTIONAL.md).
  market::DeviceType whole = device;
  whole.mig_profile.clear();
  whole.shared = false;
  for (const bidding::GpuModel& model : models.models()) {
    if (model.product.empty()) continue;
    if (!device.mig_profile.empty()) {
      const market::MigGpu* mig = market::FindMigGpu(model.device.model, model.device.ram_bytes);
      const bool has_profile =
          mig != nullptr && std::any_of(mig->profiles.begin(), mig->profiles.end(),
                                        [&](const market::MigProfile& p) { return p.name == device.mig_profile; });
      if (has_profile && model.device.vendor == device.vendor && model.device.model == device.model &&
          model.device.interface == device.interface) {
        products.Add(YamlOut::String(GfdProduct(model.product)));
      }
      continue;
    }
    if (model.device != whole) continue;
    products.Add(YamlOut::String(GfdProduct(model.product)));
    if (device.shared) products.Add(YamlOut::String(GfdProduct(model.product) + "-SHARED"));
  }
  if (products.empty()) {
    return Status::NotFound("no product in the GPU model table is " + device.vendor + " " + device.model + " " +
                            std::to_string(device.ram_bytes / market::kGi) + "Gi " + Interface(device.interface) +
                            (device.mig_profile.empty() ? "" : " with MIG profile " + device.mig_profile) +
                            " (add it with --gpu-models FILE)");
  }
  // GFD labels the memory nvidia-smi reports, in MiB, a little under the nominal RAM: the bound
  // is the one detection accepts (bidding/nvidia_smi.h).
  const uint64_t min_mib = device.ram_bytes / market::kMi * bidding::kMinReportedRamPermille / 1000;
  YamlOut expressions = YamlOut::Seq();
  expressions.Add(YamlOut::Map()
                      .Set("key", YamlOut::String("nvidia.com/gpu.product"))
                      .Set("operator", YamlOut::String("In"))
                      .Set("values", std::move(products)));
  // A MIG instance's memory is its profile's, not the GPU's: the profile in the resource name
  // says it.
  if (device.mig_profile.empty()) {
    expressions.Add(YamlOut::Map()
                        .Set("key", YamlOut::String("nvidia.com/gpu.memory"))
                        .Set("operator", YamlOut::String("Gt"))
                        .Set("values", YamlOut::Seq().Add(YamlOut::String(std::to_string(min_mib - 1)))));
  }
  YamlOut term = YamlOut::Map();
  term.Set("matchExpressions", std::move(expressions));
  YamlOut required = YamlOut::Map();
  required.Set("nodeSelectorTerms", YamlOut::Seq().Add(std::move(term)));
  YamlOut node_affinity = YamlOut::Map();
  node_affinity.Set("requiredDuringSchedulingIgnoredDuringExecution", std::move(required));
  YamlOut affinity = YamlOut::Map();
  affinity.Set("nodeAffinity", std::move(node_affinity));
  return affinity;
}

YamlOut Metadata(const std::string& name, const std::string& namespace_name, const std::string& lease_hex,
                 const std::string& service) {
  YamlOut labels = YamlOut::Map();
  labels.Set("app.kubernetes.io/managed-by", YamlOut::String("gpumart"));
  labels.Set("gpumart.io/lease", YamlOut::String(lease_hex.substr(0, kLeaseLabelHexDigits)));
  if (!service.empty()) labels.Set("gpumart.io/service", YamlOut::String(service));
  YamlOut metadata = YamlOut::Map();
  metadata.Set("name", YamlOut::String(name));
  if (!namespace_name.empty()) metadata.Set("namespace", YamlOut::String(namespace_name));
  metadata.Set("labels", std::move(labels));
  metadata.Set("annotations", YamlOut::Map().Set("gpumart.io/lease-id", YamlOut::String(lease_hex)));
  return metadata;
}

// The Deployment of one service, and the PersistentVolumeClaims of its persistent volumes.
Status AddService(const ServiceParts& parts, const std::string& namespace_name, const std::string& lease_hex,
                  const bidding::GpuModelTable& models, YamlOut& items) {
  const std::string& name = parts.request->name;
  if (!IsKubernetesName(name)) {
    return Status::InvalidArgument("service '" + name + "' is not a Kubernetes name (lower-case letters, digits, '-')");
  }
  uint64_t replicas = 0;
  for (const market::Placement& placement : parts.assignment->placements) replicas += placement.replicas;
  const market::Resources& resources = parts.request->resources;

  YamlOut limits = YamlOut::Map();
  limits.Set("cpu", YamlOut::String(std::to_string(resources.cpu_millis) + "m"));
  limits.Set("memory", YamlOut::String(std::to_string(resources.memory_bytes)));
  uint64_t ephemeral = 0;
  for (const market::StorageVolume& volume : resources.storage) {
    if (!volume.persistent) ephemeral += volume.bytes;
  }
  if (ephemeral > 0) limits.Set("ephemeral-storage", YamlOut::String(std::to_string(ephemeral)));
  const bool gpu = resources.gpu.units > 0;
  // The device's own resource: a MIG instance or a time slice is never a whole nvidia.com/gpu.
  const std::string gpu_resource =
      parts.assignment->device ? bidding::KubernetesGpuResource(*parts.assignment->device) : "nvidia.com/gpu";
  if (gpu) limits.Set(gpu_resource, YamlOut::String(std::to_string(resources.gpu.units)));
  YamlOut requests = YamlOut::Map();  // = limits: the lease priced exactly this much
  requests.Set("cpu", YamlOut::String(std::to_string(resources.cpu_millis) + "m"));
  requests.Set("memory", YamlOut::String(std::to_string(resources.memory_bytes)));
  if (ephemeral > 0) requests.Set("ephemeral-storage", YamlOut::String(std::to_string(ephemeral)));

  YamlOut container = YamlOut::Map();
  container.Set("name", YamlOut::String(name));
  container.Set("image", YamlOut::String(parts.spec->image));
  if (!parts.spec->command.empty()) {
    YamlOut command = YamlOut::Seq();
    for (const std::string& word : parts.spec->command) command.Add(YamlOut::String(word));
    container.Set("command", std::move(command));
  }
  if (!parts.spec->args.empty()) {
    YamlOut args = YamlOut::Seq();
    for (const std::string& word : parts.spec->args) args.Add(YamlOut::String(word));
    container.Set("args", std::move(args));
  }
  if (!parts.spec->env.empty()) {
    YamlOut env = YamlOut::Seq();
    for (const auto& [key, value] : parts.spec->env) {
      env.Add(YamlOut::Map().Set("name", YamlOut::String(key)).Set("value", YamlOut::String(value)));
    }
    container.Set("env", std::move(env));
  }
  // One containerPort per port and protocol (an SDL may expose a port to several places).
  std::vector<std::pair<uint32_t, std::string>> ports;
  for (const market::ExposedPort& exposed : parts.spec->expose) {
    std::string protocol = exposed.proto.empty() ? "TCP" : exposed.proto;
    std::transform(protocol.begin(), protocol.end(), protocol.begin(), [](unsigned char c) { return std::toupper(c); });
    if (std::find(ports.begin(), ports.end(), std::make_pair(exposed.port, protocol)) == ports.end()) {
      ports.emplace_back(exposed.port, protocol);
    }
  }
  if (!ports.empty()) {
    YamlOut list = YamlOut::Seq();
    for (const auto& [port, protocol] : ports) {
      list.Add(YamlOut::Map().Set("containerPort", YamlOut::Number(port)).Set("protocol", YamlOut::String(protocol)));
    }
    container.Set("ports", std::move(list));
  }
  container.Set("resources", YamlOut::Map().Set("requests", std::move(requests)).Set("limits", std::move(limits)));

  // Persistent volumes: a claim each, mounted where the SDL's params.storage says.
  YamlOut mounts = YamlOut::Seq();
  YamlOut volumes = YamlOut::Seq();
  for (const market::StorageVolume& volume : resources.storage) {
    if (!volume.persistent) continue;
    const std::string claim = name + "-" + volume.name;
    if (!IsKubernetesName(claim)) {
      return Status::InvalidArgument("volume '" + volume.name + "' of service '" + name +
                                     "' does not make a Kubernetes name ('" + claim + "')");
    }
    const market::YamlNode params = parts.params_storage.Find(volume.name);
    const market::YamlNode mount = params.Find("mount");
    if (!mount.IsScalar() || mount.Scalar().empty()) {
      return Status::InvalidArgument("services." + name + ".params.storage." + volume.name +
                                     ".mount is missing: a persistent volume needs a mount path");
    }
    const market::YamlNode read_only = params.Find("readOnly");
    YamlOut volume_mount = YamlOut::Map();
    volume_mount.Set("name", YamlOut::String(volume.name))
        .Set("mountPath", YamlOut::String(std::string(mount.Scalar())));
    if (read_only.IsScalar() && read_only.Scalar() == "true") volume_mount.Set("readOnly", YamlOut::Bool(true));
    mounts.Add(std::move(volume_mount));
    volumes.Add(YamlOut::Map()
                    .Set("name", YamlOut::String(volume.name))
                    .Set("persistentVolumeClaim", YamlOut::Map().Set("claimName", YamlOut::String(claim))));

    YamlOut spec = YamlOut::Map();
    spec.Set("accessModes", YamlOut::Seq().Add(YamlOut::String("ReadWriteOnce")));
    if (volume.storage_class) spec.Set("storageClassName", YamlOut::String(*volume.storage_class));
    spec.Set(
        "resources",
        YamlOut::Map().Set("requests", YamlOut::Map().Set("storage", YamlOut::String(std::to_string(volume.bytes)))));
    YamlOut pvc = YamlOut::Map();
    pvc.Set("apiVersion", YamlOut::String("v1")).Set("kind", YamlOut::String("PersistentVolumeClaim"));
    pvc.Set("metadata", Metadata(claim, namespace_name, lease_hex, name));
    pvc.Set("spec", std::move(spec));
    items.Add(std::move(pvc));
  }
  if (!mounts.empty()) container.Set("volumeMounts", std::move(mounts));

  YamlOut pod = YamlOut::Map();
  if (gpu) {
    if (!parts.assignment->device) {
      return Status::Corruption("the lease gives service '" + name + "' no GPU device, but its order asks for GPUs");
    }
    Result<YamlOut> affinity = GpuAffinity(*parts.assignment->device, models);
    if (!affinity.ok()) return affinity.status().WithContext("service '" + name + "'");
    pod.Set("runtimeClassName", YamlOut::String("nvidia"));
    pod.Set("nodeSelector", YamlOut::Map().Set("nvidia.com/gpu.present", YamlOut::String("true")));
    pod.Set("affinity", std::move(affinity).value());
    pod.Set("tolerations", YamlOut::Seq().Add(YamlOut::Map()
                                                  .Set("key", YamlOut::String("nvidia.com/gpu"))
                                                  .Set("operator", YamlOut::String("Exists"))
                                                  .Set("effect", YamlOut::String("NoSchedule"))));
  }
  pod.Set("containers", YamlOut::Seq().Add(std::move(container)));
  if (!volumes.empty()) pod.Set("volumes", std::move(volumes));

  YamlOut selector_labels = YamlOut::Map();
  selector_labels.Set("gpumart.io/lease", YamlOut::String(lease_hex.substr(0, kLeaseLabelHexDigits)));
  selector_labels.Set("gpumart.io/service", YamlOut::String(name));
  YamlOut template_metadata = YamlOut::Map();
  template_metadata.Set("labels",
                        YamlOut::Map()
                            .Set("gpumart.io/lease", YamlOut::String(lease_hex.substr(0, kLeaseLabelHexDigits)))
                            .Set("gpumart.io/service", YamlOut::String(name)));
  YamlOut spec = YamlOut::Map();
  spec.Set("replicas", YamlOut::Number(replicas));
  // Replace pods, never surge: the lease pays for exactly `replicas` pods' GPUs and volumes, and
  // a rolling update's extra pod would wait for capacity nobody leased (or for a claim in use).
  spec.Set("strategy", YamlOut::Map().Set("type", YamlOut::String("Recreate")));
  spec.Set("selector", YamlOut::Map().Set("matchLabels", std::move(selector_labels)));
  spec.Set("template", YamlOut::Map().Set("metadata", std::move(template_metadata)).Set("spec", std::move(pod)));
  YamlOut deployment = YamlOut::Map();
  deployment.Set("apiVersion", YamlOut::String("apps/v1")).Set("kind", YamlOut::String("Deployment"));
  deployment.Set("metadata", Metadata(name, namespace_name, lease_hex, name));
  deployment.Set("spec", std::move(spec));
  items.Add(std::move(deployment));
  return Status::Ok();
}

// The List of a lease's objects: its Namespace, then per service its claims and Deployment.
Result<std::string> RenderKubernetes(const ledger::LeaseRecord& record, const market::Order& order, const SdlFile& sdl,
                                     const bidding::GpuModelTable& models) {
  const std::string lease_hex = market::ToHex(record.id);
  const std::string namespace_name = "gpumart-" + lease_hex.substr(0, kLeaseLabelHexDigits);
  YamlOut items = YamlOut::Seq();
  YamlOut namespace_object = YamlOut::Map();
  namespace_object.Set("apiVersion", YamlOut::String("v1")).Set("kind", YamlOut::String("Namespace"));
  namespace_object.Set("metadata", Metadata(namespace_name, "", lease_hex, ""));
  items.Add(std::move(namespace_object));
  const market::YamlNode services = sdl.tree.Root().Find("services");
  for (const market::ServiceAssignment& assignment : record.lease.services) {
    const auto request = std::find_if(order.services.begin(), order.services.end(),
                                      [&](const market::ServiceRequest& s) { return s.name == assignment.service; });
    if (request == order.services.end()) {
      return Status::Corruption("the lease names service '" + assignment.service + "', which its order does not have");
    }
    const auto spec = sdl.deployment.services.find(assignment.service);
    if (spec == sdl.deployment.services.end()) {
      return Status::InvalidArgument("the SDL has no service '" + assignment.service + "'");
    }
    const ServiceParts parts{&assignment, &*request, &spec->second,
                             services.Find(assignment.service).Find("params").Find("storage")};
    GPUMART_RETURN_IF_ERROR(AddService(parts, namespace_name, lease_hex, models, items));
  }
  YamlOut list = YamlOut::Map();
  list.Set("apiVersion", YamlOut::String("v1")).Set("kind", YamlOut::String("List"));
  list.Set("items", std::move(items));
  return "# gpumart lease " + lease_hex + ": kubectl apply -f -\n" + list.Write();
}

// The lease and its order from the node's ledger, read directly (a stopped daemon).
Result<std::pair<ledger::LeaseRecord, market::Signed<market::Order>>> OfflineLease(const std::string& data_dir,
                                                                                  const market::MessageId& lease_id) {
  ledger::LedgerOptions ledger_options;
  ledger_options.create_if_missing = false;
  auto store = ledger::LedgerStore::Open(data_dir + kLedgerSubdir, ledger_options);
  if (!store.ok()) return store.status();
  Result<ledger::LeaseRecord> record = (*store)->GetLease(lease_id);
  if (!record.ok()) {
    if (record.status().code() == Status::Code::kNotFound) {
      return Status::NotFound("lease " + market::ToHex(lease_id) + " is not in the ledger at " + (*store)->path());
    }
    return record.status();
  }
  Result<market::Signed<market::Order>> order = (*store)->GetOrder(record->lease.order_id);
  if (!order.ok()) {
    return Status::NotFound("the order of lease " + market::ToHex(lease_id) + " (" +
                            market::ToHex(record->lease.order_id) + ") is not in the ledger: " + order.status().message());
  }
  return std::make_pair(std::move(record).value(), std::move(order).value());
}

// The same over the node's client port (`lease`). The node is not trusted: the lease's three
// signatures and the order's are checked here, and that they are the ones asked for.
Result<std::pair<ledger::LeaseRecord, market::Signed<market::Order>>> RemoteLease(const std::string& address,
                                                                                 const market::MessageId& lease_id) {
  auto connected = client::Client::Connect(address);
  if (!connected.ok()) return connected.status();
  auto result = (*connected)->Call("lease", {{"lease", client::Bytes(lease_id.begin(), lease_id.end())}});
  if (!result.ok()) return result.status().WithContext("node " + address);
  Result<Json> json = ParseJsonResult(*result);
  if (!json.ok()) return json.status();
  auto envelope = client::Require<client::Bytes>(*result, "envelope");
  if (!envelope.ok()) return envelope.status();
  Result<market::Signed<market::Lease>> lease = market::OpenLease(**envelope);
  if (!lease.ok()) return lease.status().WithContext("the node's lease");
  if (lease->id != lease_id) return Status::Corruption("the node answered with another lease");
  auto order_envelope = client::Optional<client::Bytes>(*result, "order_envelope");
  if (!order_envelope.ok()) return order_envelope.status();
  if (*order_envelope == nullptr) {
    return Status::NotFound("the order of lease " + market::ToHex(lease_id) + " (" + market::ToHex(lease->body.order_id) +
                            ") is not in the node's ledger");
  }
  auto order = market::OpenSigned<market::Order>(**order_envelope, 0, market::Freshness::kIgnore);
  if (!order.ok()) return order.status().WithContext("the node's order");
  if (order->id != lease->body.order_id) return Status::Corruption("the node answered with another order");
  ledger::LeaseRecord record;
  record.id = lease->id;
  record.envelope = lease->envelope;
  record.lease = lease->body;
  const std::optional<ledger::LeaseState> state = ledger::ParseLeaseState(json->value("state", ""));
  if (!state) return Status::Corruption("the node's lease has no known state");
  record.state = *state;
  return std::make_pair(std::move(record), std::move(order).value());
}

void RegisterManifest(CLI::App& lease_command, CliContext& context) {
  auto* command = lease_command.add_subcommand("manifest", "print the Kubernetes objects that run a lease");
  struct Options {
    std::string lease;
    NodeFlags node;
    std::string sdl;
    std::string gpu_models;
    bool k8s = false;
  };
  auto options = std::make_shared<Options>();
  command->add_option("LEASE", options->lease, "the lease id (64 hex digits)")->required();
  command->add_flag("--k8s", options->k8s, "Kubernetes objects (a v1 List): the one format so far")->required();
  command
      ->add_option("--sdl", options->sdl,
                   "the SDL the lease's order was made from (the order carries resources, not images, env, "
                   "commands, ports or mounts)")
      ->required();
  AddNodeOptions(*command, options->node, /*offline_reader=*/true);
  command->add_option("--gpu-models", options->gpu_models, "a GPU model table extending the built-in one");
  SetCommandBody(*command, context, [command, options, &context] {
    const std::optional<market::MessageId> lease_id = market::FromHex<market::kIdBytes>(options->lease);
    if (!lease_id) return context.Fail("LEASE must be 64 hex digits", kExitUsage);
    Result<bidding::GpuModelTable> models = bidding::GpuModelTable::Load(options->gpu_models);
    if (!models.ok()) return context.Fail(models.status());
    Result<SdlFile> sdl = ReadSdl(options->sdl);
    if (!sdl.ok()) return context.Fail(sdl.status());

    Result<NodeChoice> choice = ChooseNode(*command, options->node, /*offline_reader=*/true);
    if (!choice.ok()) return context.Fail(choice.status());
    auto found = choice->address.empty() ? OfflineLease(options->node.data_dir, *lease_id)
                                         : RemoteLease(choice->address, *lease_id);
    if (!found.ok() && choice->from_local_daemon && found.status().code() == Status::Code::kTimeout) {
      if (auto offline = OfflineLease(options->node.data_dir, *lease_id); offline.ok()) found = std::move(offline);
    }
    if (!found.ok()) return context.Fail(found.status(), kExitFailure);
    const auto& [record, order] = *found;
    if (record.state != ledger::LeaseState::kActive) {
      return context.Fail(
          "lease " + options->lease + " is " + std::string(ledger::ToString(record.state)) + ": nothing to run",
          kExitFailure);
    }
    Result<const market::Order*> group = MatchingGroup(sdl->deployment, order.body, options->sdl);
    if (!group.ok()) return context.Fail(group.status());
    Result<std::string> manifest = RenderKubernetes(record, order.body, *sdl, *models);
    if (!manifest.ok()) return context.Fail(manifest.status());
    context.out << *manifest;
    return kExitOk;
  });
}

}  // namespace

void RegisterLeaseCommands(CLI::App& app, CliContext& context) {
  auto* lease_command = app.add_subcommand("lease", "work with one lease from this node's ledger");
  lease_command->require_subcommand(1);
  RegisterManifest(*lease_command, context);
}

}  // namespace gpumart::node
