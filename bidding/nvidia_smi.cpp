#include "bidding/nvidia_smi.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <set>

#include "market/boundary.h"
#include "market/offers.h"

extern char** environ;

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

Result<NvidiaSmiReport> Parse(std::string_view query_csv, std::string_view status_text, const GpuModelTable& models) {
  if (query_csv.size() > kMaxNvidiaSmiOutputBytes || status_text.size() > kMaxNvidiaSmiOutputBytes) {
    return Status::LimitExceeded("nvidia-smi output exceeds the limit of " + std::to_string(kMaxNvidiaSmiOutputBytes) +
                                 " bytes");
  }
  NvidiaSmiReport report;
  report.cuda = ParseDriverCudaVersion(status_text);
  const std::vector<std::string_view> lines = Split(query_csv, '\n');
  if (lines.size() > kMaxNvidiaSmiLines) {
    return Status::LimitExceeded("nvidia-smi output: more than " + std::to_string(kMaxNvidiaSmiLines) + " lines");
  }
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
    if (mig == "Enabled") {
      report.notes.push_back(gpu + ": MIG mode is on (MIG slices are not offered as whole GPUs; `nvidia-smi -i " +
                               std::to_string(*index) + " -mig 0` turns it off)");
      continue;
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
    types.push_back(model->device);
  }
  for (const market::DeviceType& type : types) {
    auto same = std::find_if(report.gpus.begin(), report.gpus.end(), [&](const market::GpuDevices& gpu) {
      return gpu.vendor == type.vendor && gpu.model == type.model && gpu.ram_bytes == type.ram_bytes &&
             gpu.interface == type.interface;
    });
    if (same == report.gpus.end()) {
      report.gpus.push_back({.vendor = type.vendor, .model = type.model, .ram_bytes = type.ram_bytes,
                             .interface = type.interface, .cuda = report.cuda, .count = 0});
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

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Kills the program's process group and reaps it.
void KillAndReap(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

Result<ProgramOutput> Run(const std::vector<std::string>& argv, int64_t timeout_ms, size_t max_output) {
  if (argv.empty()) return Status::InvalidArgument("no program to run");
  const std::string& name = argv[0];
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::IoError(name + ": pipe: " + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  // Its own process group, so a timeout kills whatever it started too.
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, name.c_str(), &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(pipe_fds[1]);
  if (spawned != 0) {
    close(pipe_fds[0]);
    return Status::IoError(name + ": cannot run (" + std::strerror(spawned) + ")");
  }
  const int64_t deadline = NowMs() + timeout_ms;
  ProgramOutput result;
  Status failed;
  char buffer[4096];
  bool open = true;
  while (open) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      failed = Status::Timeout(name + ": no result within " + std::to_string(timeout_ms) + " ms (killed)");
      break;
    }
    pollfd item{.fd = pipe_fds[0], .events = POLLIN, .revents = 0};
    const int ready = poll(&item, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (ready < 0 && errno != EINTR) {
      failed = Status::IoError(name + ": poll: " + std::strerror(errno));
      break;
    }
    if (ready <= 0) continue;
    const ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer));
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      failed = Status::IoError(name + ": read: " + std::strerror(errno));
      break;
    }
    if (got == 0) {
      open = false;
      break;
    }
    if (result.output.size() + static_cast<size_t>(got) > max_output) {
      failed = Status::LimitExceeded(name + ": printed more than " + std::to_string(max_output) + " bytes (killed)");
      break;
    }
    result.output.append(buffer, static_cast<size_t>(got));
  }
  close(pipe_fds[0]);
  if (!failed.ok()) {
    KillAndReap(pid);
    return failed;
  }
  // Its output is closed; it should exit now, but it gets no longer than the deadline.
  while (true) {
    int wait_status = 0;
    const pid_t done = waitpid(pid, &wait_status, WNOHANG);
    if (done == pid) {
      result.exit_status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
      kill(-pid, SIGKILL);  // anything it left behind in its group
      return result;
    }
    if (done < 0 && errno != EINTR) return Status::IoError(name + ": waitpid: " + std::strerror(errno));
    if (NowMs() >= deadline) {
      KillAndReap(pid);
      return Status::Timeout(name + ": did not exit within " + std::to_string(timeout_ms) + " ms (killed)");
    }
    poll(nullptr, 0, 5);
  }
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
                                       const GpuModelTable& models) {
  return CatchAll("nvidia-smi output", [&] { return Parse(query_csv, status_text, models); });
}

Result<ProgramOutput> RunProgram(const std::vector<std::string>& argv, int64_t timeout_ms, size_t max_output) {
  return CatchAll(argv.empty() ? "program" : argv[0], [&] { return Run(argv, timeout_ms, max_output); });
}

Result<NvidiaSmiReport> DetectNvidiaGpus(const std::string& program, const GpuModelTable& models, int64_t timeout_ms) {
  Result<ProgramOutput> query = RunProgram(
      {program, "--query-gpu=" + std::string(kNvidiaSmiQueryFields), "--format=csv,noheader,nounits"}, timeout_ms,
      kMaxNvidiaSmiOutputBytes);
  if (!query.ok()) return query.status();
  // With a GPU lost, nvidia-smi exits non-zero but still lists the others: the output decides.
  if (query->exit_status != 0 && Trim(query->output).empty()) {
    return Status::Unavailable(program + " exited with status " + std::to_string(query->exit_status) +
                               " and printed nothing");
  }
  Result<ProgramOutput> status = RunProgram({program}, timeout_ms, kMaxNvidiaSmiOutputBytes);
  Result<NvidiaSmiReport> report = ParseNvidiaSmi(query->output, status.ok() ? std::string_view(status->output) : "",
                                                  models);
  if (!report.ok()) return report.status().WithContext(program);
  return report;
}

}  // namespace gpumart::bidding
