// Errors as values, in the style of LevelDB's Status: a code plus a human-readable reason.
// Functions that can fail on untrusted input return Status or Result<T>; exceptions never cross
// a module boundary and assert is for programmer errors only.
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gpumart {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // malformed or semantically wrong input (bad file, bad field)
    kLimitExceeded,    // input larger than a named limit allows
    kCorruption,       // bytes that do not decode, or stored data that fails a check
    kBadSignature,     // a signature or key that does not verify
    kExpired,          // a message past its expiry
    kFromFuture,       // a message created too far ahead of our clock
    kReplay,           // a (signer, nonce) already seen within the expiry window
    kNotFound,
    kAlreadyExists,
    kPermissionDenied,
    kIoError,
    kUnavailable,      // a resource busy or locked elsewhere
    kTimeout,
    kFailedPrecondition,  // an illegal state transition
    kInternal,
  };

  // An ok Status is a null pointer (as in LevelDB): creating, moving, testing and destroying one
  // costs next to nothing, which matters because decoders return one per field.
  Status() noexcept = default;
  Status(const Status& other) : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}
  Status& operator=(const Status& other) {
    if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status LimitExceeded(std::string msg) { return {Code::kLimitExceeded, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status BadSignature(std::string msg) { return {Code::kBadSignature, std::move(msg)}; }
  static Status Expired(std::string msg) { return {Code::kExpired, std::move(msg)}; }
  static Status FromFuture(std::string msg) { return {Code::kFromFuture, std::move(msg)}; }
  static Status Replay(std::string msg) { return {Code::kReplay, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) { return {Code::kPermissionDenied, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status Timeout(std::string msg) { return {Code::kTimeout, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) { return {Code::kFailedPrecondition, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  const std::string& message() const { return rep_ ? rep_->message : EmptyMessage(); }
  // "invalid argument: <message>", or "ok".
  std::string ToString() const;
  static const char* CodeName(Code code);

  // Prefixes the message with context, e.g. a file name or a field path.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(rep_->code, context + ": " + rep_->message);
  }

 private:
  struct Rep {
    Code code;
    std::string message;
  };
  Status(Code code, std::string message) : rep_(std::make_unique<Rep>(Rep{code, std::move(message)})) {}
  static const std::string& EmptyMessage();
  std::unique_ptr<Rep> rep_;
};

// A value or the Status explaining why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace gpumart

// Returns early from the enclosing function when `expr` yields a non-ok Status. The variable
// name is unique per use so nested uses (a lambda inside a macro argument) do not shadow.
#define GPUMART_CONCAT_INNER(a, b) a##b
#define GPUMART_CONCAT(a, b) GPUMART_CONCAT_INNER(a, b)
#define GPUMART_RETURN_IF_ERROR(expr) GPUMART_RETURN_IF_ERROR_IMPL(GPUMART_CONCAT(gpumart_status_, __COUNTER__), expr)
#define GPUMART_RETURN_IF_ERROR_IMPL(var, expr) \
  do {                                          \
    ::gpumart::Status var = (expr);             \
    if (!var.ok()) return var;                  \
  } while (0)
