// The client port's frame codec (node/client/protocol.h): round trips, and every way a frame
// can be wrong is refused with a reason, never a crash.
#include "node/client/protocol.h"

#include <gtest/gtest.h>

#include "market/msgpack_writer.h"

namespace gpumart::client {
namespace {

Bytes Pack(const std::function<void(market::MsgpackWriter&)>& write) {
  Bytes out;
  market::MsgpackWriter writer(out);
  write(writer);
  return out;
}

TEST(ClientProtocolTest, RequestRoundTripsEveryValueType) {
  Request request{7, "leases",
                  Fields{{"flag", true}, {"limit", uint64_t{300}}, {"state", std::string("active")},
                         {"tenant", Bytes(32, 0xab)}, {"orders", std::vector<Bytes>{Bytes{1, 2}, Bytes{}}}}};
  Result<Request> decoded = DecodeRequest(EncodeRequest(request));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->id, 7u);
  EXPECT_EQ(decoded->kind, "leases");
  EXPECT_EQ(decoded->args, request.args);
}

TEST(ClientProtocolTest, ResponseAndEventRoundTrip) {
  Response response = ErrorResponse(9, Status::PermissionDenied("not yours"));
  Result<Response> decoded = DecodeResponse(EncodeResponse(response));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->id, 9u);
  EXPECT_EQ(decoded->status().code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(decoded->message, "not yours");
  Result<Response> event = DecodeResponse(EncodeResponse(EventResponse("bid", {{"id", Bytes(32, 1)}})));
  ASSERT_TRUE(event.ok());
  EXPECT_TRUE(event->is_event());
  EXPECT_EQ(event->message, "bid");
}

// docs/CLIENT.md's example request, byte for byte.
TEST(ClientProtocolTest, TheDocumentedExampleBytes) {
  const Bytes expected = {0x94, 0x01, 0x01, 0xa6, 0x6c, 0x65, 0x61, 0x73, 0x65, 0x73, 0x82, 0xa5, 0x6c, 0x69, 0x6d, 0x69,
                          0x74, 0x0a, 0xa5, 0x73, 0x74, 0x61, 0x74, 0x65, 0xa6, 0x61, 0x63, 0x74, 0x69, 0x76, 0x65};
  EXPECT_EQ(EncodeRequest({1, "leases", {{"limit", uint64_t{10}}, {"state", std::string("active")}}}), expected);
}

TEST(ClientProtocolTest, WireCodesAreFixed) {
  EXPECT_EQ(WireCode(Status::Code::kOk), 0u);
  EXPECT_EQ(WireCode(Status::Code::kPermissionDenied), 10u);
  EXPECT_EQ(WireCode(Status::Code::kInternal), 15u);
  EXPECT_FALSE(CodeOfWire(16).has_value());
}

TEST(ClientProtocolTest, MapKeysInAnyOrderButNotTwice) {
  const Bytes unsorted = Pack([](market::MsgpackWriter& w) {
    w.Array(4), w.Uint(1), w.Uint(3), w.Str("leases"), w.Map(2);
    w.Str("z"), w.Uint(1), w.Str("a"), w.Uint(2);
  });
  ASSERT_TRUE(DecodeRequest(unsorted).ok());
  const Bytes twice = Pack([](market::MsgpackWriter& w) {
    w.Array(4), w.Uint(1), w.Uint(3), w.Str("leases"), w.Map(2);
    w.Str("a"), w.Uint(1), w.Str("a"), w.Uint(2);
  });
  Result<Request> decoded = DecodeRequest(twice);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("twice"), std::string::npos);
  EXPECT_EQ(PeekRequestId(twice), 3u);
}

TEST(ClientProtocolTest, BadFramesAreRefusedWithAReason) {
  // Wrong version: refused, and its id is not trusted either.
  const Bytes version2 = Pack([](market::MsgpackWriter& w) { w.Array(4), w.Uint(2), w.Uint(3), w.Str("x"), w.Map(0); });
  EXPECT_NE(DecodeRequest(version2).status().message().find("version 2"), std::string::npos);
  EXPECT_FALSE(PeekRequestId(version2).has_value());
  // Id 0 is the events'.
  const Bytes id0 = Pack([](market::MsgpackWriter& w) { w.Array(4), w.Uint(1), w.Uint(0), w.Str("x"), w.Map(0); });
  EXPECT_FALSE(DecodeRequest(id0).ok());
  // A float value, a nested map, too many fields, a kind too long, trailing bytes.
  const Bytes nested = Pack([](market::MsgpackWriter& w) {
    w.Array(4), w.Uint(1), w.Uint(3), w.Str("x"), w.Map(1), w.Str("a"), w.Map(0);
  });
  EXPECT_FALSE(DecodeRequest(nested).ok());
  const Bytes many = Pack([](market::MsgpackWriter& w) {
    w.Array(4), w.Uint(1), w.Uint(3), w.Str("x"), w.Map(limits::kMaxFields + 1);
    for (size_t i = 0; i <= limits::kMaxFields; ++i) w.Str("k" + std::to_string(i)), w.Uint(i);
  });
  EXPECT_EQ(DecodeRequest(many).status().code(), Status::Code::kLimitExceeded);
  const Bytes long_kind =
      Pack([](market::MsgpackWriter& w) { w.Array(4), w.Uint(1), w.Uint(3), w.Str(std::string(33, 'k')), w.Map(0); });
  EXPECT_EQ(DecodeRequest(long_kind).status().code(), Status::Code::kLimitExceeded);
  Bytes trailing = EncodeRequest({3, "x", {}});
  trailing.push_back(0);
  EXPECT_FALSE(DecodeRequest(trailing).ok());
  // A list header claiming 2^32 items costs nothing.
  const Bytes huge = Pack([](market::MsgpackWriter& w) {
    w.Array(4), w.Uint(1), w.Uint(3), w.Str("x"), w.Map(1), w.Str("a"), w.Array(0xffffffff);
  });
  EXPECT_EQ(DecodeRequest(huge).status().code(), Status::Code::kLimitExceeded);
  // Nothing at all, and garbage.
  EXPECT_FALSE(DecodeRequest({}).ok());
  EXPECT_FALSE(PeekRequestId(Bytes{0xc1, 0xff}).has_value());
}

TEST(ClientProtocolTest, OversizedFrameIsRefusedButItsIdRead) {
  Request request{42, "publish", {{"envelope", Bytes(limits::kMaxFrameBytes, 0)}}};
  const Bytes frame = EncodeRequest(request);
  EXPECT_EQ(DecodeRequest(frame).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(PeekRequestId(frame), 42u);
}

TEST(ClientProtocolTest, ErrorMessagesAreCutOnACharacterBoundary) {
  const std::string long_text = std::string(limits::kMaxErrorBytes - 1, 'a') + "\xc3\xa9";  // é across the cut
  Response response = ErrorResponse(1, Status::InvalidArgument(long_text));
  EXPECT_LE(response.message.size(), limits::kMaxErrorBytes);
  EXPECT_TRUE(DecodeResponse(EncodeResponse(response)).ok());
}

}  // namespace
}  // namespace gpumart::client
