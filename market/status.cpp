#include "market/status.h"

namespace gpumart {

const char* Status::CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kLimitExceeded: return "limit exceeded";
    case Code::kCorruption: return "corruption";
    case Code::kBadSignature: return "bad signature";
    case Code::kExpired: return "expired";
    case Code::kFromFuture: return "from the future";
    case Code::kReplay: return "replay";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kIoError: return "io error";
    case Code::kUnavailable: return "unavailable";
    case Code::kTimeout: return "timeout";
    case Code::kFailedPrecondition: return "failed precondition";
    case Code::kInternal: return "internal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(rep_->code)) + ": " + rep_->message;
}

const std::string& Status::EmptyMessage() {
  static const std::string empty;
  return empty;
}

}  // namespace gpumart
