// End-to-end tests of `gpumart lease manifest --k8s`, run as the real executable against a real
// ledger holding a real signed order and lease; the YAML it prints is read back with the
// project's own reader (market/yaml_tree.h).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "ledger/store.h"
#include "market/sdl.h"
#include "market/yaml_tree.h"
#include "node/node_context.h"
#include "tests/ledger/test_leases.h"
#include "tests/node/run_process.h"
#include "tests/temp_dir.h"

namespace gpumart {
namespace {

using ledger::testing::kStartMs;
using testing::GpumartBinary;
using testing::RunProcess;

// The values a manifest must carry through unchanged, however awkward for YAML.
// (A control character and U+2028, a YAML line break, must be escaped to survive.)
const char kTrickyValue[] = "say \"hi\": # not a comment\n- not a list\\ é\x01" "\xe2\x80\xa8" "end";

std::string Sdl(const std::string& cpu_units = "16", bool mounts = true) {
  std::string text = R"(version: "2.0"
services:
  vllm:
    image: vllm/vllm-openai:v0.6.3
    command: ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    env:
      - CUDA_VERSION=12.4
      - "TRICKY=say \"hi\": # not a comment\n- not a list\\ é\x01\u2028end"
    expose:
      - port: 8000
        as: 80
        to:
          - global: true
      - port: 8000
        to:
          - service: web
)";
  if (mounts) text += "    params:\n      storage:\n        models:\n          mount: /root/.cache\n";
  text += R"(  web:
    image: nginx:1.27
    expose:
      - port: 80
        proto: udp
        to:
          - global: true
profiles:
  compute:
    vllm:
      resources:
        cpu:
          units: )" + cpu_units + R"(
        memory:
          size: 64Gi
        storage:
          - size: 20Gi
          - name: models
            size: 200Gi
            attributes:
              persistent: true
              class: beta3
        gpu:
          units: 2
          attributes:
            vendor:
              nvidia:
                - model: h100
                  ram: 80Gi
                  interface: sxm
                - model: a100
                  ram: 80Gi
    web:
      resources:
        cpu:
          units: 0.5
        memory:
          size: 512Mi
        storage:
          - size: 1Gi
  placement:
    dcloud:
      pricing:
        vllm:
          denom: uakt
          amount: 250000
        web:
          denom: uakt
          amount: 1000
deployment:
  vllm:
    dcloud:
      profile: vllm
      count: 1
  web:
    dcloud:
      profile: web
      count: 2
)";
  return text;
}

std::vector<market::ServiceAssignment> Assignments() {
  market::ServiceAssignment vllm;
  vllm.service = "vllm";
  vllm.option = 0;
  vllm.device = market::DeviceType{"nvidia", "h100", 80 * market::kGi, market::GpuInterface::kSxm};
  vllm.placements = {market::Placement{"n1", 1}};
  market::ServiceAssignment web;
  web.service = "web";
  web.placements = {market::Placement{"n1", 1}, market::Placement{"n2", 1}};
  return {vllm, web};
}

class LeaseManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sdl_path_ = dir_.Sub("deploy.yaml");
    std::ofstream(sdl_path_) << Sdl();
    Result<market::Deployment> deployment = market::ParseSdl(Sdl());
    ASSERT_TRUE(deployment.ok()) << deployment.status().ToString();
    ASSERT_EQ(deployment->orders.size(), 1u);
    auto store = ledger::LedgerStore::Open(dir_.Sub("ledger"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    const auto order = parties_.Order(deployment->orders[0]);
    const auto bid = parties_.Bid(order.id, Assignments());
    lease_ = parties_.Lease(bid);
    ASSERT_TRUE(Write(**store, ledger::RecordOrder{order}).ok());
    ASSERT_TRUE(Write(**store, ledger::RecordLease{lease_}).ok());
    // A lease whose order this node never saw, and a closed one.
    orphan_ = parties_.FreshLease();
    ASSERT_TRUE(Write(**store, ledger::RecordLease{orphan_}).ok());
    closed_ = parties_.Lease(parties_.Bid(order.id, Assignments()));
    ASSERT_TRUE(Write(**store, ledger::RecordLease{closed_}).ok());
    const auto close = parties_.Close(closed_.id, parties_.tenant(), market::CloseReason::kTenantClosed, kStartMs + 1000);
    ASSERT_TRUE(Write(**store, ledger::RecordClose{close}).ok());
  }

  static Status Write(ledger::LedgerStore& store, ledger::LedgerWrite write) {
    auto prepared = ledger::Prepare(std::move(write));
    if (!prepared.ok()) return prepared.status();
    return store.Write(*prepared, kStartMs);
  }

  testing::ProcessResult Manifest(const std::string& lease, const std::string& sdl) {
    return RunProcess({GpumartBinary(), "lease", "manifest", lease, "--k8s", "--sdl", sdl, "--data-dir", dir_.path()});
  }

  // The List's item of `kind` named `name`.
  static market::YamlNode Item(const market::YamlTree& tree, std::string_view kind, std::string_view name) {
    for (const market::YamlNode item : tree.Root().Find("items").Items()) {
      if (item.Find("kind").Scalar() == kind && item.Find("metadata").Find("name").Scalar() == name) return item;
    }
    return market::YamlNode();
  }

  testing::TempDir dir_{"gpumart-lease-cli"};
  std::string sdl_path_;
  ledger::testing::Parties parties_;
  market::Signed<market::Lease> lease_;
  market::Signed<market::Lease> orphan_;
  market::Signed<market::Lease> closed_;
};

TEST_F(LeaseManifestTest, RendersTheLeaseAsKubernetesObjects) {
  const auto result = Manifest(market::ToHex(lease_.id), sdl_path_);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  Result<market::YamlTree> tree = market::YamlTree::Parse(result.out, {.max_nodes = 1 << 16, .max_depth = 32});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString() << "\n" << result.out;
  const market::YamlNode root = tree->Root();
  EXPECT_EQ(root.Find("kind").Scalar(), "List");
  const std::string lease_hex = market::ToHex(lease_.id);
  const std::string ns = "gpumart-" + lease_hex.substr(0, 16);
  ASSERT_TRUE(Item(*tree, "Namespace", ns).IsDefined()) << result.out;

  const market::YamlNode claim = Item(*tree, "PersistentVolumeClaim", "vllm-models");
  ASSERT_TRUE(claim.IsDefined()) << result.out;
  EXPECT_EQ(claim.Find("metadata").Find("namespace").Scalar(), ns);
  EXPECT_EQ(claim.Find("spec").Find("storageClassName").Scalar(), "beta3");
  EXPECT_EQ(claim.Find("spec").Find("resources").Find("requests").Find("storage").Scalar(),
            std::to_string(200 * market::kGi));

  const market::YamlNode vllm = Item(*tree, "Deployment", "vllm");
  ASSERT_TRUE(vllm.IsDefined()) << result.out;
  EXPECT_EQ(vllm.Find("metadata").Find("annotations").Find("gpumart.io/lease-id").Scalar(), lease_hex);
  EXPECT_EQ(vllm.Find("spec").Find("replicas").Scalar(), "1");
  EXPECT_EQ(vllm.Find("spec").Find("strategy").Find("type").Scalar(), "Recreate");
  const market::YamlNode pod = vllm.Find("spec").Find("template").Find("spec");
  EXPECT_EQ(pod.Find("runtimeClassName").Scalar(), "nvidia");
  EXPECT_EQ(pod.Find("nodeSelector").Find("nvidia.com/gpu.present").Scalar(), "true");
  const market::YamlNode toleration = pod.Find("tolerations").Item(0);
  EXPECT_EQ(toleration.Find("key").Scalar(), "nvidia.com/gpu");
  EXPECT_EQ(toleration.Find("effect").Scalar(), "NoSchedule");
  const market::YamlNode expressions = pod.Find("affinity")
                                           .Find("nodeAffinity")
                                           .Find("requiredDuringSchedulingIgnoredDuringExecution")
                                           .Find("nodeSelectorTerms")
                                           .Item(0)
                                           .Find("matchExpressions");
  ASSERT_EQ(expressions.size(), 2u) << result.out;
  EXPECT_EQ(expressions.Item(0).Find("key").Scalar(), "nvidia.com/gpu.product");
  // The SXM H100 of configs/gpu_models.yaml, not its PCIe or NVL siblings.
  std::vector<std::string> products;
  for (const market::YamlNode value : expressions.Item(0).Find("values").Items()) products.emplace_back(value.Scalar());
  EXPECT_NE(std::find(products.begin(), products.end(), "NVIDIA-H100-80GB-HBM3"), products.end());
  EXPECT_EQ(std::find(products.begin(), products.end(), "NVIDIA-H100-PCIe"), products.end());
  EXPECT_EQ(expressions.Item(1).Find("key").Scalar(), "nvidia.com/gpu.memory");
  EXPECT_EQ(expressions.Item(1).Find("operator").Scalar(), "Gt");
  EXPECT_EQ(expressions.Item(1).Find("values").Item(0).Scalar(), "72088");  // 88% of 81920 MiB, exclusive

  const market::YamlNode container = pod.Find("containers").Item(0);
  EXPECT_EQ(container.Find("image").Scalar(), "vllm/vllm-openai:v0.6.3");
  EXPECT_EQ(container.Find("command").Item(2).Scalar(), "vllm.entrypoints.openai.api_server");
  EXPECT_EQ(container.Find("args").Item(1).Scalar(), "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(container.Find("env").Item(1).Find("name").Scalar(), "TRICKY");
  EXPECT_EQ(container.Find("env").Item(1).Find("value").Scalar(), kTrickyValue);
  EXPECT_EQ(container.Find("ports").size(), 1u);  // port 8000, exposed twice
  EXPECT_EQ(container.Find("ports").Item(0).Find("containerPort").Scalar(), "8000");
  const market::YamlNode limits = container.Find("resources").Find("limits");
  EXPECT_EQ(limits.Find("nvidia.com/gpu").Scalar(), "2");
  EXPECT_EQ(limits.Find("cpu").Scalar(), "16000m");
  EXPECT_EQ(limits.Find("memory").Scalar(), std::to_string(64 * market::kGi));
  EXPECT_EQ(limits.Find("ephemeral-storage").Scalar(), std::to_string(20 * market::kGi));
  EXPECT_EQ(container.Find("volumeMounts").Item(0).Find("mountPath").Scalar(), "/root/.cache");
  EXPECT_EQ(pod.Find("volumes").Item(0).Find("persistentVolumeClaim").Find("claimName").Scalar(), "vllm-models");

  // A service without GPUs: no GPU runtime, selector or toleration; its replicas over all nodes.
  const market::YamlNode web = Item(*tree, "Deployment", "web");
  ASSERT_TRUE(web.IsDefined()) << result.out;
  EXPECT_EQ(web.Find("spec").Find("replicas").Scalar(), "2");
  const market::YamlNode web_pod = web.Find("spec").Find("template").Find("spec");
  EXPECT_FALSE(web_pod.Find("runtimeClassName").IsDefined());
  EXPECT_FALSE(web_pod.Find("tolerations").IsDefined());
  EXPECT_EQ(web_pod.Find("containers").Item(0).Find("ports").Item(0).Find("protocol").Scalar(), "UDP");
  EXPECT_FALSE(web_pod.Find("containers").Item(0).Find("resources").Find("limits").Find("nvidia.com/gpu").IsDefined());
}

TEST_F(LeaseManifestTest, BadAndUnknownLeasesAreClearErrors) {
  for (const std::string& bad : {std::string("xyz"), std::string(63, 'a'), std::string(65, 'a'), std::string(64, 'g')}) {
    const auto result = Manifest(bad, sdl_path_);
    EXPECT_EQ(result.exit_code, 2) << bad;
    EXPECT_NE(result.err.find("LEASE must be 64 hex digits"), std::string::npos) << result.err;
  }
  const auto unknown = Manifest(std::string(64, '0'), sdl_path_);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("is not in the ledger"), std::string::npos) << unknown.err;
  const auto closed = Manifest(market::ToHex(closed_.id), sdl_path_);
  EXPECT_EQ(closed.exit_code, 1);
  EXPECT_NE(closed.err.find("is closed"), std::string::npos) << closed.err;
  const auto orphan = Manifest(market::ToHex(orphan_.id), sdl_path_);
  EXPECT_EQ(orphan.exit_code, 1);
  EXPECT_NE(orphan.err.find("order of lease"), std::string::npos) << orphan.err;
  EXPECT_EQ(orphan.out, "");
  // --k8s and --sdl are required.
  EXPECT_EQ(RunProcess({GpumartBinary(), "lease", "manifest", market::ToHex(lease_.id), "--sdl", sdl_path_,
                        "--data-dir", dir_.path()})
                .exit_code,
            2);
  EXPECT_EQ(RunProcess({GpumartBinary(), "lease", "manifest", market::ToHex(lease_.id), "--k8s", "--data-dir",
                        dir_.path()})
                .exit_code,
            2);
}

// While a node runs on the data dir (its ledger locked), the manifest comes over its client port
// (docs/CLIENT.md, "lease"), the same bytes as read from the ledger of the stopped node.
TEST_F(LeaseManifestTest, OverTheClientPortTheSameAsFromTheLedger) {
  const std::string lease = market::ToHex(lease_.id);
  const auto offline = Manifest(lease, sdl_path_);
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  node::NodeConfig config;
  config.data_dir = dir_.path();
  config.listen = "";
  config.client_listen = "tcp://127.0.0.1:*";
  auto context = node::NodeContext::Start(config);
  ASSERT_TRUE(context.ok()) << context.status().ToString();
  const std::string node = (*context)->client_address();
  const auto remote =
      RunProcess({GpumartBinary(), "lease", "manifest", lease, "--k8s", "--sdl", sdl_path_, "--node", node});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(remote.out, offline.out);
  const auto orphan = RunProcess(
      {GpumartBinary(), "lease", "manifest", market::ToHex(orphan_.id), "--k8s", "--sdl", sdl_path_, "--node", node});
  EXPECT_EQ(orphan.exit_code, 1);
  EXPECT_NE(orphan.err.find("is not in the node's ledger"), std::string::npos) << orphan.err;
  const auto closed = RunProcess(
      {GpumartBinary(), "lease", "manifest", market::ToHex(closed_.id), "--k8s", "--sdl", sdl_path_, "--node", node});
  EXPECT_EQ(closed.exit_code, 1);
  EXPECT_NE(closed.err.find("is closed"), std::string::npos) << closed.err;
}

TEST_F(LeaseManifestTest, AnSdlThatIsNotTheOrdersIsRefused) {
  const std::string other = dir_.Sub("other.yaml");
  std::ofstream(other) << Sdl("8");
  const auto result = Manifest(market::ToHex(lease_.id), other);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("service 'vllm' is not what the lease's order asked for (cpu differs)"), std::string::npos)
      << result.err;
  EXPECT_EQ(result.out, "");
  const std::string unmounted = dir_.Sub("unmounted.yaml");
  std::ofstream(unmounted) << Sdl("16", /*mounts=*/false);
  const auto missing_mount = Manifest(market::ToHex(lease_.id), unmounted);
  EXPECT_EQ(missing_mount.exit_code, 1);
  // The SDL reader refuses it already (Akash does too): a persistent volume must be mounted.
  EXPECT_NE(missing_mount.err.find("services.vllm.params.storage.models.mount: missing: persistent volume"),
            std::string::npos)
      << missing_mount.err;
  const auto no_file = Manifest(market::ToHex(lease_.id), dir_.Sub("absent.yaml"));
  EXPECT_EQ(no_file.exit_code, 1);
  EXPECT_NE(no_file.err.find("cannot open"), std::string::npos) << no_file.err;
}

}  // namespace
}  // namespace gpumart
