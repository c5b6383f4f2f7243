// The client port's frames (docs/CLIENT.md): what a client and a node say to each other over a
// ZeroMQ DEALER/ROUTER pair, one msgpack array per ZeroMQ message.
//
//   request  (client -> node): [version:uint, id:uint, kind:str, args:map]
//   response (node -> client): [version:uint, id:uint, code:uint, message:str, result:map]
//   event    (node -> client): a response with id 0 and code 0, whose message is the event type
//
// args and result map a key (str) to one value: bool, uint, str, bin, or an array of bin. Keys
// may come in any order; a key twice is an error. The codec is strict about everything it
// decodes (named limits below, checked before anything is allocated; shortest integer and length
// forms, valid UTF-8, as market/msgpack_reader.h) and never throws.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "market/codec.h"
#include "market/status.h"

namespace gpumart::client {

using market::Bytes;

constexpr uint64_t kClientProtocolVersion = 1;

// Limits on what either side decodes. A frame over kMaxFrameBytes is answered with
// kLimitExceeded (when its request id can be read); over kMaxTransportBytes ZeroMQ drops the
// connection (ZMQ_MAXMSGSIZE), which the client sees as a timeout.
namespace limits {
constexpr size_t kMaxFrameBytes = size_t{4} << 20;      // a request or response, decoded
constexpr size_t kMaxTransportBytes = size_t{8} << 20;  // ZMQ_MAXMSGSIZE on both sockets
constexpr size_t kMaxKindBytes = 32;                    // a request kind, an event type
constexpr size_t kMaxFields = 32;                       // entries of args or result
constexpr size_t kMaxKeyBytes = 32;                     // a key of args or result
constexpr size_t kMaxListItems = 64;                    // items of an array-of-bin value
constexpr size_t kMaxErrorBytes = 4096;                 // a response's message
// Per connection (ZeroMQ routing id) at the node: requests per second, with a burst of twice
// that; a request over it is answered kUnavailable ("rate limited") without being run.
constexpr uint64_t kRequestsPerSecond = 2'000;
// Connections the node tracks at once (rate buckets, subscriptions); the longest silent is
// forgotten first, with its subscriptions.
constexpr size_t kMaxConnections = 1'024;
// Orders one connection may be subscribed to, and all connections together.
constexpr size_t kMaxSubscriptionsPerConnection = 4'096;
constexpr size_t kMaxSubscriptions = 65'536;
// Bids the node remembers (to check Accepts against), newest kept.
constexpr size_t kMaxKnownBids = 262'144;
}  // namespace limits

// One value of args or result.
using Value = std::variant<bool, uint64_t, std::string, Bytes, std::vector<Bytes>>;
using Fields = std::map<std::string, Value, std::less<>>;

struct Request {
  uint64_t id = 0;  // chosen by the client, echoed in the response; 0 is reserved for events
  std::string kind;
  Fields args;
};

struct Response {
  uint64_t id = 0;
  Status::Code code = Status::Code::kOk;
  std::string message;  // the error's text; an event's type
  Fields result;
  bool is_event() const { return id == 0; }
  Status status() const;  // Ok, or the error as a Status
};

// Wire numbers of Status codes (docs/CLIENT.md, "Status codes"): fixed, whatever the enum does.
uint64_t WireCode(Status::Code code);
std::optional<Status::Code> CodeOfWire(uint64_t wire);

Bytes EncodeRequest(const Request& request);
Bytes EncodeResponse(const Response& response);
Response ErrorResponse(uint64_t id, const Status& status);
Response EventResponse(std::string type, Fields fields);

Result<Request> DecodeRequest(std::span<const uint8_t> bytes);
Result<Response> DecodeResponse(std::span<const uint8_t> bytes);
// The request id of a frame that does not decode as a whole (so the error can still be
// answered): its version and id, read from the front; nullopt when even those do not read.
std::optional<uint64_t> PeekRequestId(std::span<const uint8_t> bytes);

// Typed access to args or result: kInvalidArgument naming the key when present with another type
// (and, for Require, when absent).
template <typename T>
Result<const T*> Optional(const Fields& fields, std::string_view key) {
  auto it = fields.find(key);
  if (it == fields.end()) return static_cast<const T*>(nullptr);
  if (const T* value = std::get_if<T>(&it->second)) return value;
  return Status::InvalidArgument("argument " + std::string(key) + " has the wrong type");
}
template <typename T>
Result<const T*> Require(const Fields& fields, std::string_view key) {
  Result<const T*> value = Optional<T>(fields, key);
  if (value.ok() && *value == nullptr) return Status::InvalidArgument("argument " + std::string(key) + " is missing");
  return value;
}

}  // namespace gpumart::client
