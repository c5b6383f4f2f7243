#include "node/client/protocol.h"

#include <array>

#include "market/msgpack_reader.h"
#include "market/msgpack_writer.h"

namespace gpumart::client {
namespace {

using market::MsgpackReader;
using market::MsgpackWriter;
using Code = Status::Code;

// Wire number -> Status code; the index is the wire number (docs/CLIENT.md keeps this table).
constexpr std::array<Code, 16> kWireCodes = {
    Code::kOk,          Code::kInvalidArgument, Code::kLimitExceeded, Code::kCorruption,
    Code::kBadSignature, Code::kExpired,        Code::kFromFuture,    Code::kReplay,
    Code::kNotFound,    Code::kAlreadyExists,   Code::kPermissionDenied, Code::kIoError,
    Code::kUnavailable, Code::kTimeout,         Code::kFailedPrecondition, Code::kInternal,
};

void WriteFields(MsgpackWriter& writer, const Fields& fields) {
  writer.Map(fields.size());
  for (const auto& [key, value] : fields) {
    writer.Str(key);
    std::visit(
        [&writer](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool>) {
            writer.Bool(v);
          } else if constexpr (std::is_same_v<T, uint64_t>) {
            writer.Uint(v);
          } else if constexpr (std::is_same_v<T, std::string>) {
            writer.Str(v);
          } else if constexpr (std::is_same_v<T, Bytes>) {
            writer.Bin(v.data(), v.size());
          } else {
            writer.Array(v.size());
            for (const Bytes& item : v) writer.Bin(item.data(), item.size());
          }
        },
        value);
  }
}

// The byte at the reader's position (the reader has no peek of its own): which value family
// comes next. `data`/`size` are the whole input the reader walks.
uint8_t Peek(const uint8_t* data, size_t size, const MsgpackReader& reader) {
  return data[size - reader.Remaining()];
}

Status ReadValue(const uint8_t* data, size_t size, MsgpackReader& reader, Value& out) {
  if (reader.AtEnd()) return Status::Corruption("value: truncated");
  const uint8_t b = Peek(data, size, reader);
  if (b == 0xc2 || b == 0xc3) {
    bool value = false;
    GPUMART_RETURN_IF_ERROR(reader.Bool("value", value));
    out = value;
  } else if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) {
    uint64_t value = 0;
    GPUMART_RETURN_IF_ERROR(reader.Uint("value", UINT64_MAX, value));
    out = value;
  } else if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
    std::string value;
    GPUMART_RETURN_IF_ERROR(reader.Str("value", limits::kMaxFrameBytes, value));
    out = std::move(value);
  } else if (b >= 0xc4 && b <= 0xc6) {
    const uint8_t* bytes = nullptr;
    size_t length = 0;
    GPUMART_RETURN_IF_ERROR(reader.Bin("value", limits::kMaxFrameBytes, bytes, length));
    out = Bytes(bytes, bytes + length);
  } else if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
    size_t count = 0;
    GPUMART_RETURN_IF_ERROR(reader.List("value", limits::kMaxListItems, count));
    std::vector<Bytes> items(count);
    for (Bytes& item : items) {
      const uint8_t* bytes = nullptr;
      size_t length = 0;
      GPUMART_RETURN_IF_ERROR(reader.Bin("list item", limits::kMaxFrameBytes, bytes, length));
      item.assign(bytes, bytes + length);
    }
    out = std::move(items);
  } else {
    return Status::Corruption("value: not a bool, uint, str, bin or array of bin");
  }
  return Status::Ok();
}

Status ReadFields(const uint8_t* data, size_t size, MsgpackReader& reader, const char* what, Fields& out) {
  size_t count = 0;
  GPUMART_RETURN_IF_ERROR(reader.Map(what, limits::kMaxFields, count));
  for (size_t i = 0; i < count; ++i) {
    std::string_view key;
    // Any key order (a client in another language need not sort); no key twice.
    GPUMART_RETURN_IF_ERROR(reader.MapKey(what, limits::kMaxKeyBytes, nullptr, key));
    Value value;
    GPUMART_RETURN_IF_ERROR(ReadValue(data, size, reader, value).WithContext(std::string(what) + "." + std::string(key)));
    if (!out.emplace(std::string(key), std::move(value)).second) {
      return Status::Corruption(std::string(what) + ": key " + std::string(key) + " twice");
    }
  }
  return Status::Ok();
}

Status CheckSize(std::span<const uint8_t> bytes) {
  if (bytes.size() > limits::kMaxFrameBytes) {
    return Status::LimitExceeded("frame of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                                 std::to_string(limits::kMaxFrameBytes));
  }
  return Status::Ok();
}

Status ReadVersion(MsgpackReader& reader) {
  uint64_t version = 0;
  GPUMART_RETURN_IF_ERROR(reader.Uint("version", UINT64_MAX, version));
  if (version != kClientProtocolVersion) {
    return Status::InvalidArgument("client protocol version " + std::to_string(version) + " is not supported (this node speaks " +
                                   std::to_string(kClientProtocolVersion) + ")");
  }
  return Status::Ok();
}

}  // namespace

uint64_t WireCode(Status::Code code) {
  for (size_t i = 0; i < kWireCodes.size(); ++i) {
    if (kWireCodes[i] == code) return i;
  }
  return WireCode(Code::kInternal);
}

std::optional<Status::Code> CodeOfWire(uint64_t wire) {
  if (wire >= kWireCodes.size()) return std::nullopt;
  return kWireCodes[wire];
}

Status Response::status() const {
  switch (code) {
    case Code::kOk: return Status::Ok();
    case Code::kInvalidArgument: return Status::InvalidArgument(message);
    case Code::kLimitExceeded: return Status::LimitExceeded(message);
    case Code::kCorruption: return Status::Corruption(message);
    case Code::kBadSignature: return Status::BadSignature(message);
    case Code::kExpired: return Status::Expired(message);
    case Code::kFromFuture: return Status::FromFuture(message);
    case Code::kReplay: return Status::Replay(message);
    case Code::kNotFound: return Status::NotFound(message);
    case Code::kAlreadyExists: return Status::AlreadyExists(message);
    case Code::kPermissionDenied: return Status::PermissionDenied(message);
    case Code::kIoError: return Status::IoError(message);
    case Code::kUnavailable: return Status::Unavailable(message);
    case Code::kTimeout: return Status::Timeout(message);
    case Code::kFailedPrecondition: return Status::FailedPrecondition(message);
    case Code::kInternal: break;
  }
  return Status::Internal(message);
}

Bytes EncodeRequest(const Request& request) {
  Bytes out;
  MsgpackWriter writer(out);
  writer.Array(4);
  writer.Uint(kClientProtocolVersion);
  writer.Uint(request.id);
  writer.Str(request.kind);
  WriteFields(writer, request.args);
  return out;
}

Bytes EncodeResponse(const Response& response) {
  Bytes out;
  MsgpackWriter writer(out);
  writer.Array(5);
  writer.Uint(kClientProtocolVersion);
  writer.Uint(response.id);
  writer.Uint(WireCode(response.code));
  writer.Str(response.message);
  WriteFields(writer, response.result);
  return out;
}

Response ErrorResponse(uint64_t id, const Status& status) {
  Response response;
  response.id = id;
  response.code = status.ok() ? Code::kInternal : status.code();
  response.message = status.message().substr(0, limits::kMaxErrorBytes);
  // Cut on a character boundary: the message must stay valid UTF-8.
  while (!response.message.empty() && !market::IsValidUtf8(response.message)) response.message.pop_back();
  return response;
}

Response EventResponse(std::string type, Fields fields) {
  Response response;
  response.message = std::move(type);
  response.result = std::move(fields);
  return response;
}

Result<Request> DecodeRequest(std::span<const uint8_t> bytes) {
  GPUMART_RETURN_IF_ERROR(CheckSize(bytes));
  MsgpackReader reader(bytes.data(), bytes.size());
  Request request;
  GPUMART_RETURN_IF_ERROR(reader.Struct("request", 4));
  GPUMART_RETURN_IF_ERROR(ReadVersion(reader));
  GPUMART_RETURN_IF_ERROR(reader.Uint("id", UINT64_MAX, request.id));
  if (request.id == 0) return Status::InvalidArgument("request id 0 is reserved for events");
  GPUMART_RETURN_IF_ERROR(reader.Str("kind", limits::kMaxKindBytes, request.kind));
  GPUMART_RETURN_IF_ERROR(ReadFields(bytes.data(), bytes.size(), reader, "args", request.args));
  if (!reader.AtEnd()) return Status::Corruption("request: bytes after the frame");
  return request;
}

Result<Response> DecodeResponse(std::span<const uint8_t> bytes) {
  GPUMART_RETURN_IF_ERROR(CheckSize(bytes));
  MsgpackReader reader(bytes.data(), bytes.size());
  Response response;
  GPUMART_RETURN_IF_ERROR(reader.Struct("response", 5));
  GPUMART_RETURN_IF_ERROR(ReadVersion(reader));
  GPUMART_RETURN_IF_ERROR(reader.Uint("id", UINT64_MAX, response.id));
  uint64_t wire = 0;
  GPUMART_RETURN_IF_ERROR(reader.Uint("code", UINT64_MAX, wire));
  std::optional<Code> code = CodeOfWire(wire);
  if (!code) return Status::Corruption("response: unknown status code " + std::to_string(wire));
  response.code = *code;
  GPUMART_RETURN_IF_ERROR(reader.Str("message", limits::kMaxErrorBytes, response.message));
  GPUMART_RETURN_IF_ERROR(ReadFields(bytes.data(), bytes.size(), reader, "result", response.result));
  if (!reader.AtEnd()) return Status::Corruption("response: bytes after the frame");
  if (response.is_event() && (response.code != Code::kOk || response.message.size() > limits::kMaxKindBytes)) {
    return Status::Corruption("response: an event (id 0) must have code 0 and a type");
  }
  return response;
}

std::optional<uint64_t> PeekRequestId(std::span<const uint8_t> bytes) {
  MsgpackReader reader(bytes.data(), bytes.size());
  uint64_t id = 0;
  if (!reader.Struct("request", 4).ok() || !ReadVersion(reader).ok() || !reader.Uint("id", UINT64_MAX, id).ok() ||
      id == 0) {
    return std::nullopt;
  }
  return id;
}

}  // namespace gpumart::client
