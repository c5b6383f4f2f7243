#include "bidding/nvidia_smi.h"

#include <algorithm>
#include <charconv>
#include <set>

#include <map>

#include "market/boundary.h"
#include "market/mig.h"
#include "market/offers.h"

namespace gpumart::bidding {
namespace {

constexpr std::string_view kLostPrefix = "Unable to determine the device handle for";
constexpr std::string_view kNoDevices = "No devices were found";
constexpr size_t kShownBytes = 80;  // of a line or field quoted in a message

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// Untrusted text in a message: printable ASCII only, and short.
std::string Printable(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < kShownBytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (text.size() > kShownBytes) out += "...";
  return out;
}
std::string Quote(std::string_view text) { return "'" + Printable(text) + "'"; }

// nvidia-smi writes a value it cannot give in brackets: [N/A], [Not Supported],
// [GPU requires reset], [Unknown Error], [Insufficient Permissions].
bool IsUnavailable(std::string_view field) { return field.size() >= 2 && field.front() == '[' && field.back() == ']'; }

std::optional<uint64_t> ReadDecimal(std::string_view text) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// `nvidia-smi -L`: "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-...)" per GPU, each followed by its
// MIG devices, "  MIG 1g.10gb     Device  0: (UUID: MIG-...)". Returns GPU index -> the profile
// of each MIG device, in order.
Result<std::map<uint64_t, std::vector<std::string>>> ParseMigDevices(std::string_view list_text) {
  std::map<uint64_t, std::vector<std::string>> devices;
  const std::vector<std::string_view> lines = Split(list_text, '\n');
  if (lines.size() > kMaxNvidiaSmiLines) {
    return Status::LimitExceeded("nvidia-smi -L output: more than " + std::to_string(kMaxNvidiaSmiLines) + " lines");
  }
  std::optional<uint64_t> gpu;
  size_t total = 0;
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::string_view line = Trim(lines[n]);
    const std::string where = "nvidia-smi -L output line " + std::to_string(n + 1);
    if (line.empty() || line == kNoDevices) continue;
    if (line.starts_with("GPU ")) {
      const size_t colon = line.find(':');
      gpu = colon == std::string_view::npos ? std::nullopt : ReadDecimal(line.substr(4, colon - 4));
      if (!gpu || *gpu > kMaxNvidiaSmiIndex) return Status::InvalidArgument(where + ": " + Quote(line) + " names no GPU index");
      if (!devices.emplace(*gpu, std::vector<std::string>{}).second) {
        return Status::InvalidArgument(where + ": GPU " + std::to_string(*gpu) + " is listed twice");
      }
      continue;
    }
    if (line.starts_with(kLostPrefix)) continue;  // the query's output reports it
    std::vector<std::string_view> words;
    for (std::string_view word : Split(line, ' ')) {
      if (!word.empty()) words.push_back(word);
      if (words.size() > 3) break;
    }
    if (words.size() < 4 || words[0] != "MIG" || words[2] != "Device" || !gpu) {
      return Status::InvalidArgument(where + ": " + Quote(line) + " is neither 'GPU <n>: ...' nor 'MIG <profile> Device <n>: ...'");
    }
    if (++total > kMaxNvidiaSmiMigDevices) {
      return Status::LimitExceeded("nvidia-smi -L output: more than " + std::to_string(kMaxNvidiaSmiMigDevices) +
                                   " MIG devices");
    }
    devices[*gpu].push_back(Printable(words[1]));  // quoted in notes
  }
  return devices;
}

Result<NvidiaSmiReport> Parse(std::string_view query_csv, std::string_view status_text, std::string_view list_text,
                              const GpuModelTable& models) {
  if (query_csv.size() > kMaxNvidiaSmiOutputBytes || status_text.size() > kMaxNvidiaSmiOutputBytes ||
      list_text.size() > kMaxNvidiaSmiOutputBytes) {
    return Status::LimitExceeded("nvidia-smi output exceeds the limit of " + std::to_string(kMaxNvidiaSmiOutputBytes) +
                                 " bytes");
  }
  NvidiaSmiReport report;
  report.cuda = ParseDriverCudaVersion(status_text);
  const std::vector<std::string_view> lines = Split(query_csv, '\n');
  if (lines.size() > kMaxNvidiaSmiLines) {
    return Status::LimitExceeded("nvidia-smi output: more than " + std::to_string(kMaxNvidiaSmiLines) + " lines");
  }
  Result<std::map<uint64_t, std::vector<std::string>>> mig_devices = ParseMigDevices(list_text);
  if (!mig_devices.ok()) return mig_devices.status();
  std::set<uint64_t> indexes;
  size_t gpus = 0;
  std::vector<market::DeviceType> types;  // one per usable GPU's type, first appearance order
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::string_view line = Trim(lines[n]);
    const std::string where = "nvidia-smi output line " + std::to_string(n + 1);
    if (line.empty() || line == kNoDevices) continue;
    if (++gpus > kMaxNvidiaSmiGpus) {
      return Status::LimitExceeded("nvidia-smi output: more than " + std::to_string(kMaxNvidiaSmiGpus) + " GPUs");
    }
    if (line.starts_with(kLostPrefix)) {
      // "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error": the driver
      // lost the GPU (it fell off the bus); the others are still listed.
      report.notes.push_back(Quote(Trim(line.substr(kLostPrefix.size()))) +
                             " left out: nvidia-smi cannot reach this GPU (it needs a reset or a reboot)");
      continue;
    }
    std::vector<std::string_view> fields = Split(line, ',');
    if (fields.size() != kNvidiaSmiQueryFieldCount) {
      return Status::InvalidArgument(where + ": " + Quote(line) + " is not " + std::to_string(kNvidiaSmiQueryFieldCount) +
                                     " comma-separated fields (" + std::string(kNvidiaSmiQueryFields) + ")");
    }
    for (std::string_view& field : fields) field = Trim(field);
    const std::string_view index_text = fields[0], product = fields[1], memory_text = fields[2], bus_id = fields[3],
                           device_id = fields[4], mig = fields[5];
    const std::optional<uint64_t> index = ReadDecimal(index_text);
    if (!index || *index > kMaxNvidiaSmiIndex) {
      return Status::InvalidArgument(where + ": index " + Quote(index_text) + " is not a GPU index (0.." +
                                     std::to_string(kMaxNvidiaSmiIndex) + ")");
    }
    if (!indexes.insert(*index).second) {
      return Status::InvalidArgument(where + ": GPU index " + std::to_string(*index) + " is listed twice");
    }
    const std::string gpu = "GPU " + std::to_string(*index) + " (" + Printable(bus_id) + ") left out";
    if (mig != "Enabled" && mig != "Disabled" && !IsUnavailable(mig)) {
      return Status::InvalidArgument(where + ": mig.mode.current " + Quote(mig) + " is not Enabled, Disabled or [...]");
    }
    if (IsUnavailable(product)) {
      report.notes.push_back(gpu + ": its name is " + Quote(product) + " (the GPU needs attention)");
      continue;
    }
    if (IsUnavailable(memory_text)) {
      report.notes.push_back(gpu + ": its memory is " + Quote(memory_text) + " (the GPU needs attention)");
      continue;
    }
    const std::optional<uint64_t> memory_mib = ReadDecimal(memory_text);
    if (!memory_mib) {
      return Status::InvalidArgument(where + ": memory.total " + Quote(memory_text) + " is not a number of MiB");
    }
    if (IsUnavailable(mig) && mig != "[N/A]" && mig != "[Not Supported]") {
      report.notes.push_back(gpu + ": its MIG mode is " + Quote(mig) + " (the GPU needs attention)");
      continue;
    }
    const GpuModel* model = models.FindProduct(product);
    if (model == nullptr) {
      report.notes.push_back(gpu + ": unknown product " + Quote(product) + ", PCI device " + Printable(device_id) +
                               " (add it to a GPU model table: inventory.gpu_models)");
      continue;
    }
    // In MiB, bounded first, so no product overflows (kMaxGpuRamBytes is 2^24 MiB).
    const uint64_t nominal_mib = model->device.ram_bytes / market::kMi;
    if (*memory_mib > market::kMaxGpuRamBytes / market::kMi || *memory_mib * 1000 < nominal_mib * kMinReportedRamPermille ||
        *memory_mib > nominal_mib * kMaxReportedRamPermille / 1000) {
      report.notes.push_back(gpu + ": " + Quote(product) + " reports " + std::to_string(*memory_mib) +
                               " MiB, which is not the GPU model table's " + market::FormatGi(model->device.ram_bytes));
      continue;
    }
    if (mig != "Enabled") {
      types.push_back(model->device);
      continue;
    }
    // MIG mode: the GPU is offered as its MIG instances only (docs/FRACTIONAL.md).
    auto listed = mig_devices->find(*index);
    if (listed == mig_devices->end() || listed->second.empty()) {
      report.notes.push_back(gpu + ": MIG mode is on but it has no MIG instances (create them with `nvidia-smi mig -cgi "
                             "<profiles> -C -i " + std::to_string(*index) + "`, or `nvidia-smi -i " +
                             std::to_string(*index) + " -mig 0` to offer it whole)");
      continue;
    }
    std::map<std::string, uint32_t> layout;
    for (const std::string& profile : listed->second) ++layout[profile];
    const Status fits = market::CheckMigLayout(model->device.model, model->device.ram_bytes, layout);
    if (!fits.ok()) {
      report.notes.push_back(gpu + ": its MIG instances are not offered: " + fits.message() +
                             " (compute-instance splits such as 1c.3g.40gb are not offered)");
      continue;
    }
    for (const auto& [profile, count] : layout) {
      market::DeviceType instance = model->device;
      instance.ram_bytes = market::MigProfileRamBytes(profile);
      instance.mig_profile = profile;
      types.insert(types.end(), count, instance);
    }
  }
  for (const market::DeviceType& type : types) {
    auto same = std::find_if(report.gpus.begin(), report.gpus.end(), [&](const market::GpuDevices& gpu) {
      return gpu.vendor == type.vendor && gpu.model == type.model && gpu.ram_bytes == type.ram_bytes &&
             gpu.interface == type.interface && gpu.mig_profile == type.mig_profile;
    });
    if (same == report.gpus.end()) {
      report.gpus.push_back({.vendor = type.vendor, .model = type.model, .ram_bytes = type.ram_bytes,
                             .interface = type.interface, .cuda = report.cuda, .count = 0,
                             .mig_profile = type.mig_profile});
      same = report.gpus.end() - 1;
    }
    ++same->count;
  }
  if (!report.cuda && !report.gpus.empty()) {
    report.notes.push_back("the driver's CUDA version is unknown (nvidia-smi printed no 'CUDA Version'): the GPUs "
                             "match no order that requires one");
  }
  return report;
}

}  // namespace

std::optional<market::CudaVersion> ParseDriverCudaVersion(std::string_view status_text) {
  constexpr std::string_view kLabel = "CUDA Version";
  if (status_text.size() > kMaxNvidiaSmiOutputBytes) return std::nullopt;
  for (size_t at = status_text.find(kLabel); at != std::string_view::npos;
       at = status_text.find(kLabel, at + kLabel.size())) {
    std::string_view rest = status_text.substr(at + kLabel.size());
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    if (rest.empty() || rest.front() != ':') continue;
    rest.remove_prefix(1);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    size_t length = 0;
    while (length < rest.size() && length < 16 && ((rest[length] >= '0' && rest[length] <= '9') || rest[length] == '.')) {
      ++length;
    }
    if (std::optional<market::CudaVersion> version = market::ParseCudaVersion(rest.substr(0, length))) return version;
  }
  return std::nullopt;
}

Result<NvidiaSmiReport> ParseNvidiaSmi(std::string_view query_csv, std::string_view status_text,
                                       const GpuModelTable& models, std::string_view list_text) {
  return CatchAll("nvidia-smi output", [&] { return Parse(query_csv, status_text, list_text, models); });
}

Result<NvidiaSmiReport> DetectNvidiaGpus(const std::string& program, const GpuModelTable& models, int64_t timeout_ms) {
  const RunOptions options{.timeout_ms = timeout_ms, .max_output = kMaxNvidiaSmiOutputBytes};
  Result<ProgramOutput> query = RunProgram(
      {program, "--query-gpu=" + std::string(kNvidiaSmiQueryFields), "--format=csv,noheader,nounits"}, options);
  if (!query.ok()) return query.status();
  // With a GPU lost, nvidia-smi exits non-zero but still lists the others: the output decides.
  if (!query->Succeeded() && Trim(query->output).empty()) {
    return Status::Unavailable(program + " " + query->Describe() + " and printed nothing");
  }
  Result<ProgramOutput> status = RunProgram({program}, options);
  // MIG instances only when some GPU is in MIG mode: `nvidia-smi -L` lists them.
  Result<ProgramOutput> list = Status::NotFound("no GPU in MIG mode");
  if (query->output.find("Enabled") != std::string::npos) list = RunProgram({program, "-L"}, options);
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(query->output, status.ok() ? std::string_view(status->output) : "",
                                                  models, list.ok() ? std::string_view(list->output) : "");
  if (!report.ok()) return report.status().WithContext(program);
  return report;
}

}  // namespace gpumart::bidding
