// Runs a `command` pricing program (bidding/pricing.h): the one part of pricing that does I/O,
// kept out of the bid engine. The driver hands it a PriceRequest's JSON and gives the engine the
// result (BidEngine::OnPriceAnswer); the engine bounds how many run at once and gives up on its
// own at the deadline, so a runner that is late changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"

namespace gpumart::bidding {

// Runs `argv` with `input` on its stdin (bidding/run_program.h: no shell, its own process group,
// killed with everything it started, never waits past timeout_ms) and returns the price it
// printed (ParsePriceAnswer). Errors: kTimeout; kInvalidArgument for a non-zero exit, a signal,
// or output that is not one price (more than kMaxPriceAnswerBytes kills it at once); kIoError
// when it cannot be started. A program that exits without reading its stdin is fine. Its stderr
// is the caller's.
Result<uint64_t> RunPriceCommand(const std::vector<std::string>& argv, std::string_view input, int64_t timeout_ms);

}  // namespace gpumart::bidding
