#include "bidding/nvidia_smi.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
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

// Like Split, on a separator of several characters.
std::vector<std::string_view> SplitOn(std::string_view text, std::string_view separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t at = text.find(separator); at != std::string_view::npos; at = text.find(separator, start)) {
    parts.push_back(text.substr(start, at - start));
    start = at + separator.size();
  }
  parts.push_back(text.substr(start));
  return parts;
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
    market::PhysicalGpus physical{.gpu = model->device, .count = 1, .bus_id = NormalizeBusId(bus_id), .units = {}};
    if (mig != "Enabled") {
      types.push_back(model->device);
      physical.units[model->device] = 1;
      report.physical.push_back(std::move(physical));
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
      physical.units[instance] = count;
    }
    report.physical.push_back(std::move(physical));
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


// "Yes"/"No" (retired_pages.pending, remapped_rows.*), or 1/0 as some drivers print them.
std::optional<bool> ReadFlag(std::string_view text) {
  if (text == "Yes" || text == "1") return true;
  if (text == "No" || text == "0") return false;
  return std::nullopt;
}

bool IsNoReading(std::string_view field) { return field == "[N/A]" || field == "[Not Supported]"; }

Result<GpuHealthReadings> ParseHealth(std::string_view query_csv) {
  if (query_csv.size() > kMaxNvidiaSmiOutputBytes) {
    return Status::LimitExceeded("nvidia-smi output exceeds the limit of " + std::to_string(kMaxNvidiaSmiOutputBytes) +
                                 " bytes");
  }
  const std::vector<std::string_view> lines = Split(query_csv, '\n');
  if (lines.size() > kMaxNvidiaSmiLines) {
    return Status::LimitExceeded("nvidia-smi output: more than " + std::to_string(kMaxNvidiaSmiLines) + " lines");
  }
  GpuHealthReadings readings;
  std::set<uint64_t> indexes;
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::string_view line = Trim(lines[n]);
    const std::string where = "nvidia-smi health output line " + std::to_string(n + 1);
    if (line.empty() || line == kNoDevices) continue;
    if (readings.gpus.size() + readings.lost.size() >= kMaxNvidiaSmiGpus) {
      return Status::LimitExceeded("nvidia-smi output: more than " + std::to_string(kMaxNvidiaSmiGpus) + " GPUs");
    }
    if (line.starts_with(kLostPrefix)) {
      // "... for GPU0000:5D:00.0: Unknown Error" or "... for gpu 0000:5D:00.0: GPU is lost. ...".
      // Driver 610 puts the index first: "... for GPU1: 0000:34:00.0: Unknown Error". The bus id
      // is the first ": "-separated part that reads as one.
      std::string_view rest = Trim(line.substr(kLostPrefix.size()));
      if (rest.starts_with("GPU") || rest.starts_with("gpu")) rest = Trim(rest.substr(3));
      std::string bus;
      for (const std::string_view part : SplitOn(rest, ": ")) {
        bus = NormalizeBusId(part);
        if (!bus.empty()) break;
      }
      if (bus.empty()) return Status::InvalidArgument(where + ": " + Quote(line) + " names no PCI bus id");
      readings.lost.push_back(bus);
      continue;
    }
    std::vector<std::string_view> fields = Split(line, ',');
    if (fields.size() != kNvidiaSmiHealthFieldCount) {
      return Status::InvalidArgument(where + ": " + Quote(line) + " is not " +
                                     std::to_string(kNvidiaSmiHealthFieldCount) + " comma-separated fields (" +
                                     std::string(kNvidiaSmiHealthFields) + ")");
    }
    for (std::string_view& field : fields) field = Trim(field);
    GpuReading gpu;
    const std::optional<uint64_t> index = ReadDecimal(fields[0]);
    if (!index || *index > kMaxNvidiaSmiIndex) {
      return Status::InvalidArgument(where + ": index " + Quote(fields[0]) + " is not a GPU index (0.." +
                                     std::to_string(kMaxNvidiaSmiIndex) + ")");
    }
    if (!indexes.insert(*index).second) {
      return Status::InvalidArgument(where + ": GPU index " + std::to_string(*index) + " is listed twice");
    }
    gpu.index = static_cast<uint32_t>(*index);
    gpu.bus_id = NormalizeBusId(fields[3]);
    if (gpu.bus_id.empty()) {
      return Status::InvalidArgument(where + ": pci.bus_id " + Quote(fields[3]) + " is not a PCI bus id");
    }
    if (fields[1].size() > kMaxGpuIdBytes || fields[2].size() > kMaxGpuIdBytes) {
      return Status::InvalidArgument(where + ": a uuid or name over " + std::to_string(kMaxGpuIdBytes) + " bytes");
    }
    // Bracketed errors are kept as the GPU's error; the name and uuid are then unknown.
    for (size_t f = 1; f < fields.size(); ++f) {
      if (IsUnavailable(fields[f]) && !IsNoReading(fields[f]) && gpu.error.empty()) {
        gpu.error = std::string(fields[f]);
      }
    }
    if (!IsUnavailable(fields[1])) gpu.uuid = Printable(fields[1]);
    if (!IsUnavailable(fields[2])) gpu.name = Printable(fields[2]);
    auto number = [&](std::string_view field, const char* what, uint64_t max) -> Result<std::optional<uint64_t>> {
      if (IsUnavailable(field)) return std::optional<uint64_t>();
      const std::optional<uint64_t> value = ReadDecimal(field);
      if (!value || *value > max) return Status::InvalidArgument(where + ": " + what + " " + Quote(field) + " is not a count");
      return value;
    };
    auto flag = [&](std::string_view field, const char* what) -> Result<std::optional<bool>> {
      if (IsUnavailable(field)) return std::optional<bool>();
      const std::optional<bool> value = ReadFlag(field);
      if (!value) return Status::InvalidArgument(where + ": " + what + " " + Quote(field) + " is not Yes or No");
      return value;
    };
    Result<std::optional<uint64_t>> temperature =
        number(fields[4], "temperature.gpu", static_cast<uint64_t>(kMaxGpuTemperatureC));
    if (!temperature.ok()) return temperature.status();
    if (*temperature) gpu.temperature_c = static_cast<int64_t>(**temperature);
    Result<std::optional<uint64_t>> volatile_ecc = number(fields[5], "ecc.errors.uncorrected.volatile.total", UINT64_MAX);
    if (!volatile_ecc.ok()) return volatile_ecc.status();
    gpu.ecc_volatile_uncorrected = *volatile_ecc;
    Result<std::optional<uint64_t>> aggregate_ecc = number(fields[6], "ecc.errors.uncorrected.aggregate.total", UINT64_MAX);
    if (!aggregate_ecc.ok()) return aggregate_ecc.status();
    gpu.ecc_aggregate_uncorrected = *aggregate_ecc;
    Result<std::optional<bool>> retired = flag(fields[7], "retired_pages.pending");
    if (!retired.ok()) return retired.status();
    gpu.retired_pages_pending = *retired;
    Result<std::optional<bool>> remap_pending = flag(fields[8], "remapped_rows.pending");
    if (!remap_pending.ok()) return remap_pending.status();
    gpu.remapped_rows_pending = *remap_pending;
    Result<std::optional<bool>> remap_failed = flag(fields[9], "remapped_rows.failure");
    if (!remap_failed.ok()) return remap_failed.status();
    gpu.remapped_rows_failed = *remap_failed;
    readings.gpus.push_back(std::move(gpu));
  }
  return readings;
}

Result<XidCounts> ParseXids(std::string_view kernel_log) {
  // "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus."
  constexpr std::string_view kXid = "NVRM: Xid (PCI:";
  if (kernel_log.size() > kMaxNvidiaSmiOutputBytes) {
    return Status::LimitExceeded("kernel log exceeds the limit of " + std::to_string(kMaxNvidiaSmiOutputBytes) + " bytes");
  }
  std::vector<std::string_view> lines = Split(kernel_log, '\n');
  const size_t first = lines.size() > kMaxXidLogLines ? lines.size() - kMaxXidLogLines : 0;
  XidCounts counts;
  for (size_t n = first; n < lines.size(); ++n) {
    const size_t at = lines[n].find(kXid);
    if (at == std::string_view::npos) continue;
    std::string_view rest = lines[n].substr(at + kXid.size());
    const size_t close = rest.find("):");
    if (close == std::string_view::npos) continue;
    const std::string bus = NormalizeBusId(rest.substr(0, close));
    rest = Trim(rest.substr(close + 2));
    size_t digits = 0;
    while (digits < rest.size() && digits < 8 && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    const std::optional<uint64_t> code = ReadDecimal(rest.substr(0, digits));
    if (bus.empty() || !code || *code > kMaxXidCode) continue;
    // Bounded: at most kMaxNvidiaSmiGpus buses are tracked.
    if (!counts.contains(bus) && counts.size() >= kMaxNvidiaSmiGpus) continue;
    ++counts[bus][static_cast<uint32_t>(*code)];
  }
  return counts;
}

}  // namespace

std::string NormalizeBusId(std::string_view text) {
  text = Trim(text);
  if (text.size() > kMaxGpuIdBytes) return "";
  if (const size_t dot = text.rfind('.'); dot != std::string_view::npos) text = text.substr(0, dot);
  const std::vector<std::string_view> parts = Split(text, ':');
  if (parts.size() != 3) return "";
  auto hex = [](std::string_view part, size_t max_digits, uint64_t& value) {
    if (part.empty() || part.size() > max_digits) return false;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value, 16);
    return error == std::errc() && end == part.data() + part.size();
  };
  uint64_t domain = 0, bus = 0, device = 0;
  if (!hex(parts[0], 8, domain) || !hex(parts[1], 2, bus) || !hex(parts[2], 2, device) || domain > 0xffff) return "";
  char out[16];
  std::snprintf(out, sizeof out, "%04x:%02x:%02x", static_cast<unsigned>(domain), static_cast<unsigned>(bus),
                static_cast<unsigned>(device));
  return out;
}

Result<GpuHealthReadings> ParseNvidiaSmiHealth(std::string_view query_csv) {
  return CatchAll("nvidia-smi health output", [&] { return ParseHealth(query_csv); });
}

Result<XidCounts> ParseXidLog(std::string_view kernel_log) {
  return CatchAll("kernel log", [&] { return ParseXids(kernel_log); });
}

std::optional<market::CudaVersion> ParseDriverCudaVersion(std::string_view status_text) {
  // Driver 610 renamed the header's "CUDA Version: 13.3" to "CUDA UMD Version: 13.3" (its `-q`
  // prints both, the old one marked deprecated).
  constexpr std::string_view kLabels[] = {"CUDA Version", "CUDA UMD Version"};
  if (status_text.size() > kMaxNvidiaSmiOutputBytes) return std::nullopt;
  for (const std::string_view label : kLabels) {
    for (size_t at = status_text.find(label); at != std::string_view::npos;
         at = status_text.find(label, at + label.size())) {
      std::string_view rest = status_text.substr(at + label.size());
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
      if (rest.empty() || rest.front() != ':') continue;
      rest.remove_prefix(1);
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
      size_t length = 0;
      while (length < rest.size() && length < 16 &&
             ((rest[length] >= '0' && rest[length] <= '9') || rest[length] == '.')) {
        ++length;
      }
      if (std::optional<market::CudaVersion> version = market::ParseCudaVersion(rest.substr(0, length))) return version;
    }
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

Result<GpuHealthReadings> QueryGpuHealth(const std::string& program, int64_t timeout_ms) {
  const RunOptions options{.timeout_ms = timeout_ms, .max_output = kMaxNvidiaSmiOutputBytes};
  Result<ProgramOutput> query = RunProgram(
      {program, "--query-gpu=" + std::string(kNvidiaSmiHealthFields), "--format=csv,noheader,nounits"}, options);
  if (!query.ok()) return query.status();
  // With a GPU lost, nvidia-smi exits non-zero but still lists the others: the output decides.
  if (!query->Succeeded() && Trim(query->output).empty()) {
    return Status::Unavailable(program + " " + query->Describe() + " and printed nothing");
  }
  Result<GpuHealthReadings> readings = ParseNvidiaSmiHealth(query->output);
  if (!readings.ok()) return readings.status().WithContext(program);
  return readings;
}

Result<XidCounts> ReadXidLog(const std::vector<std::string>& argv, int64_t timeout_ms) {
  const RunOptions options{.timeout_ms = timeout_ms, .max_output = kMaxNvidiaSmiOutputBytes};
  RunOptions log_options = options;
  log_options.capture_stderr = false;  // diagnostics are not log lines
  Result<ProgramOutput> log = RunProgram(argv, log_options);
  if (!log.ok()) return log.status();
  if (!log->Succeeded()) return Status::Unavailable(argv.front() + " " + log->Describe());
  return ParseXidLog(log->output);
}

}  // namespace gpumart::bidding
