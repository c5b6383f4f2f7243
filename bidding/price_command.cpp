#include "bidding/price_command.h"

#include "bidding/pricing.h"
#include "bidding/run_program.h"

namespace gpumart::bidding {

Result<uint64_t> RunPriceCommand(const std::vector<std::string>& argv, std::string_view input, int64_t timeout_ms) {
  if (argv.empty()) return Status::InvalidArgument("price command is empty");
  // One byte over the answer's bound is enough to know it is too long.
  Result<ProgramOutput> ran = RunProgram(
      argv, {.input = input, .timeout_ms = timeout_ms, .max_output = kMaxPriceAnswerBytes, .capture_stderr = false});
  if (!ran.ok()) {
    const Status& failure = ran.status();
    // Too much output is a bad answer, like any other unparsable one.
    if (failure.code() == Status::Code::kLimitExceeded) return Status::InvalidArgument("price command " + failure.message());
    return failure.WithContext("price command");
  }
  if (!ran->Succeeded()) return Status::InvalidArgument("price command " + argv[0] + " " + ran->Describe());
  Result<uint64_t> price = ParsePriceAnswer(ran->output);
  if (!price.ok()) return price.status().WithContext("price command " + argv[0]);
  return price;
}

}  // namespace gpumart::bidding
