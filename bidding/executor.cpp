#include "bidding/executor.h"

#include <algorithm>
#include <chrono>

#include "bidding/run_program.h"
#include "market/boundary.h"

namespace gpumart::bidding {
namespace {

std::string At(const market::YamlNode& node) { return " at line " + std::to_string(node.Line()); }

Result<uint64_t> ParseWholeNumber(const market::YamlNode& node, const std::string& name) {
  const std::string_view text = node.Scalar();
  bool ok = node.IsScalar() && !text.empty() && text.size() <= 12;  // the bounds are far below 10^12
  for (const char c : text) ok = ok && c >= '0' && c <= '9';
  if (!ok) return Status::InvalidArgument(name + " must be a whole number" + At(node));
  uint64_t value = 0;
  for (const char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

// The last `bytes` of `text`.
std::string Tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

}  // namespace

std::string_view ToString(ExecutorKind kind) { return kind == ExecutorKind::kExec ? "exec" : "log"; }

std::optional<ExecutorKind> ParseExecutorKind(std::string_view text) {
  if (text == "exec") return ExecutorKind::kExec;
  if (text == "log") return ExecutorKind::kLog;
  return std::nullopt;
}

std::string_view ToString(LeaseEvent event) { return event == LeaseEvent::kStart ? "start" : "stop"; }

Status ValidateExecutorConfig(const ExecutorConfig& config) {
  if (config.kind == ExecutorKind::kExec && config.command.empty()) {
    return Status::InvalidArgument("executor kind exec needs a command (the program and its arguments)");
  }
  if (config.kind == ExecutorKind::kLog && !config.command.empty()) {
    return Status::InvalidArgument("executor kind log runs no command");
  }
  if (config.timeout_ms <= 0 || config.timeout_ms > kMaxExecutorTimeoutMs) {
    return Status::InvalidArgument("executor timeout_ms must be in 1.." + std::to_string(kMaxExecutorTimeoutMs));
  }
  if (config.max_concurrent < 1 || config.max_concurrent > kMaxExecutorConcurrency) {
    return Status::InvalidArgument("executor max_concurrent must be in 1.." + std::to_string(kMaxExecutorConcurrency));
  }
  return Status::Ok();
}

Result<ExecutorConfig> ParseExecutorConfig(const market::YamlNode& node, const std::string& key) {
  ExecutorConfig config;
  if (!node.IsDefined() || node.IsNull()) return config;
  if (!node.IsMap()) return Status::InvalidArgument(key + " must be a mapping" + At(node));
  const market::YamlNode kind = node.Find("kind");
  if (!kind.IsScalar()) return Status::InvalidArgument(key + " needs kind: exec or log" + At(node));
  const std::optional<ExecutorKind> parsed = ParseExecutorKind(kind.Scalar());
  if (!parsed) {
    return Status::InvalidArgument(key + " kind '" + std::string(kind.Scalar()) + "' is not exec or log" + At(kind));
  }
  config.kind = *parsed;
  std::vector<std::string_view> seen;
  for (const market::YamlMapEntry& entry : node.Entries()) {
    const std::string_view field = entry.key.Scalar();
    const std::string name = key + " " + std::string(field);
    if (std::find(seen.begin(), seen.end(), field) != seen.end()) {
      return Status::InvalidArgument(name + " is given twice" + At(entry.key));
    }
    seen.push_back(field);
    if (field == "kind") continue;
    if (field != "command" && field != "timeout_ms" && field != "max_concurrent") {
      return Status::InvalidArgument(key + " has unknown key '" + std::string(field) +
                                     "' (known: kind, command, timeout_ms, max_concurrent)" + At(entry.key));
    }
    if (config.kind != ExecutorKind::kExec) {
      return Status::InvalidArgument(name + " applies only to kind exec" + At(entry.key));
    }
    if (field == "command") {
      if (!entry.value.IsSequence() || entry.value.size() == 0) {
        return Status::InvalidArgument(name + " must be a list: the program and its arguments" + At(entry.value));
      }
      for (const market::YamlNode& arg : entry.value.Items()) {
        if (!arg.IsScalar() || arg.Scalar().empty()) {
          return Status::InvalidArgument(name + " items must be non-empty strings" + At(arg));
        }
        config.command.emplace_back(arg.Scalar());
      }
      continue;
    }
    Result<uint64_t> value = ParseWholeNumber(entry.value, name);
    if (!value.ok()) return value.status();
    if (field == "timeout_ms") {
      if (*value == 0 || *value > static_cast<uint64_t>(kMaxExecutorTimeoutMs)) {
        return Status::InvalidArgument(name + " must be in 1.." + std::to_string(kMaxExecutorTimeoutMs) + At(entry.value));
      }
      config.timeout_ms = static_cast<int64_t>(*value);
    } else {
      if (*value == 0 || *value > kMaxExecutorConcurrency) {
        return Status::InvalidArgument(name + " must be in 1.." + std::to_string(kMaxExecutorConcurrency) + At(entry.value));
      }
      config.max_concurrent = static_cast<uint32_t>(*value);
    }
  }
  const Status valid = ValidateExecutorConfig(config);
  if (!valid.ok()) return Status::InvalidArgument(valid.message() + At(node));
  return config;
}

std::string ExecutorInput(const ExecutorJob& job) {
  std::string input = "{\"event\":\"";
  input += ToString(job.event);
  input += "\",\"lease\":";
  input += job.lease_json;
  input += "}\n";
  return input;
}

Executor::Executor(ExecutorConfig config, Done done) : config_(std::move(config)), done_(std::move(done)) {
  workers_.reserve(config_.max_concurrent);
  for (uint32_t i = 0; i < std::max<uint32_t>(config_.max_concurrent, 1); ++i) workers_.emplace_back([this] { Work(); });
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
    queue_.clear();
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

Status Executor::Submit(ExecutorJob job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_.load()) return Status::FailedPrecondition("the executor is stopping");
    if (queue_.size() >= kMaxExecutorQueuedJobs) {
      return Status::LimitExceeded("the executor has " + std::to_string(kMaxExecutorQueuedJobs) +
                                   " jobs waiting; lease " + job.lease_id + " " + std::string(ToString(job.event)) +
                                   " refused");
    }
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return Status::Ok();
}

void Executor::Work() {
  while (true) {
    ExecutorJob job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_.load() || !queue_.empty(); });
      if (stopping_.load()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    ExecutorOutcome outcome = Run(job);
    // A run cut short by the destructor reports nothing: the owner is going away.
    if (stopping_.load()) return;
    done_(std::move(outcome));
  }
}

ExecutorOutcome Executor::Run(const ExecutorJob& job) const {
  ExecutorOutcome outcome;
  outcome.lease_id = job.lease_id;
  outcome.event = job.event;
  outcome.kind = config_.kind;
  if (config_.kind == ExecutorKind::kLog) return outcome;
  const auto start = std::chrono::steady_clock::now();
  outcome.status = CatchAll("executor", [&]() -> Status {
    const std::string input = ExecutorInput(job);
    Result<ProgramOutput> ran = RunProgram(config_.command, {.input = input,
                                                             .timeout_ms = config_.timeout_ms,
                                                             .max_output = kMaxExecutorOutputBytes,
                                                             .capture_stderr = true,
                                                             .cancel = &stopping_});
    if (!ran.ok()) return ran.status();
    outcome.output_tail = Tail(ran->output, kExecutorOutputTailBytes);
    if (!ran->Succeeded()) return Status::Unavailable(config_.command.front() + " " + ran->Describe());
    return Status::Ok();
  });
  outcome.took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (!outcome.status.ok()) {
    outcome.status = outcome.status.WithContext("executor for lease " + job.lease_id + " " +
                                                std::string(ToString(job.event)));
  }
  outcome.close_lease = !outcome.status.ok() && job.event == LeaseEvent::kStart;
  return outcome;
}

std::string KubernetesGpuResource(const market::DeviceType& device) {
  if (!device.mig_profile.empty()) return "nvidia.com/mig-" + device.mig_profile;
  if (device.shared) return "nvidia.com/gpu.shared";
  return "nvidia.com/gpu";
}

}  // namespace gpumart::bidding
