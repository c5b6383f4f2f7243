#include "node/gossip/frames.h"

#include <gtest/gtest.h>

#include "tests/gossip/fake_network.h"
#include "tests/market/test_messages.h"

namespace gpumart::gossip {
namespace {

using market::Identity;

constexpr int64_t kNow = 1'750'000'000'000;

Identity Alice() { return Identity::FromSeed(market::Seed{7}); }

std::vector<reconcile::Range> SampleRanges() {
  std::vector<reconcile::Range> ranges(3);
  ranges[0].upper.timestamp_ms = kNow;
  ranges[0].mode = reconcile::Mode::kSkip;
  ranges[1].upper.timestamp_ms = kNow + 5;
  ranges[1].upper.prefix[0] = 0x3c;
  ranges[1].upper.prefix_bytes = 1;
  ranges[1].mode = reconcile::Mode::kFingerprint;
  ranges[1].fingerprint.fill(0x5a);
  ranges[2].upper = reconcile::Bound::Infinity();
  ranges[2].mode = reconcile::Mode::kIdList;
  ranges[2].ids.resize(2);
  ranges[2].ids[0][0] = 9;
  return ranges;
}

std::vector<Frame> SampleFrames() {
  MessageId a{};
  a[0] = 1;
  MessageId b{};
  b[31] = 2;
  return {
      SignHello(Alice(), "tcp://127.0.0.1:7700", Role::kProvider, kNow),
      MessageFrame{3, testing::MakeClose(Alice(), kNow, 60'000, 5)},
      IhaveFrame{{a, b}},
      GraftFrame{{a}},
      GraftFrame{},
      PruneFrame{},
      PingFrame{0xfeedbeefcafe},
      PongFrame{7},
      PeersFrame{{PeerAddress{Alice().public_key(), "tcp://10.0.0.1:7700", Role::kRelay}}},
      GetPeersFrame{},
      ReconcileFrame{0, SampleRanges()},
      ReconcileFrame{limits::kMaxReconcileRounds - 1, {}},
      ReconcileItemsFrame{{a, b}, {}, false},
      ReconcileItemsFrame{{}, {testing::MakeClose(Alice(), kNow, 60'000, 6), testing::MakeClose(Alice(), kNow, 60'000, 8)}, true},
  };
}

TEST(FramesTest, EveryFrameRoundTrips) {
  for (const Frame& frame : SampleFrames()) {
    const Bytes bytes = EncodeFrame(frame);
    auto decoded = DecodeFrame(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, frame);
    EXPECT_EQ(EncodeFrame(*decoded), bytes);  // canonical: one encoding per value
  }
}

TEST(FramesTest, MessageFrameEncodesLikeTheGenericEncoder) {
  const Bytes envelope = testing::MakeClose(Alice(), kNow, 60'000, 5);
  EXPECT_EQ(EncodeMessageFrame(4, envelope), EncodeFrame(MessageFrame{4, envelope}));
}

// The in-place readers of the hot path agree with DecodeFrame: the same values for valid bytes,
// an error for anything DecodeFrame rejects and for every other frame type.
TEST(FramesTest, InPlaceReadersAgreeWithDecodeFrame) {
  IhaveFrame ihave;
  ihave.ids.reserve(8);
  const auto* capacity = ihave.ids.data();
  for (const Frame& frame : SampleFrames()) {
    Bytes bytes = EncodeFrame(frame);
    Result<MessageFrameView> view = DecodeMessageFrameView(bytes);
    Status ids = DecodeIhaveFrame(bytes, ihave);
    if (const auto* message = std::get_if<MessageFrame>(&frame)) {
      ASSERT_TRUE(view.ok()) << view.status().ToString();
      EXPECT_EQ(view->hops, message->hops);
      EXPECT_EQ(Bytes(view->envelope.begin(), view->envelope.end()), message->envelope);
      EXPECT_GE(view->envelope.data(), bytes.data());  // in place, not a copy
      EXPECT_LT(view->envelope.data(), bytes.data() + bytes.size());
    } else {
      EXPECT_FALSE(view.ok());
    }
    if (const auto* announced = std::get_if<IhaveFrame>(&frame)) {
      ASSERT_TRUE(ids.ok()) << ids.ToString();
      EXPECT_EQ(ihave, *announced);
      if (announced->ids.size() <= 8) {
        EXPECT_EQ(ihave.ids.data(), capacity);  // no allocation
      }
    } else {
      EXPECT_FALSE(ids.ok());
    }
    for (size_t size = 0; size < bytes.size(); ++size) {
      EXPECT_FALSE(DecodeMessageFrameView(std::span(bytes.data(), size)).ok()) << "prefix " << size;
      EXPECT_FALSE(DecodeIhaveFrame(std::span(bytes.data(), size), ihave).ok()) << "prefix " << size;
    }
    bytes.push_back(0);
    EXPECT_FALSE(DecodeMessageFrameView(bytes).ok());
    EXPECT_FALSE(DecodeIhaveFrame(bytes, ihave).ok());
  }
}

TEST(FramesTest, EveryTruncationIsRejected) {
  for (const Frame& frame : SampleFrames()) {
    const Bytes bytes = EncodeFrame(frame);
    for (size_t size = 0; size < bytes.size(); ++size) {
      EXPECT_FALSE(DecodeFrame(std::span(bytes.data(), size)).ok()) << "prefix " << size;
    }
  }
}

TEST(FramesTest, TrailingBytesAreRejected) {
  Bytes bytes = EncodeFrame(PingFrame{1});
  bytes.push_back(0);
  EXPECT_FALSE(DecodeFrame(bytes).ok());
}

TEST(FramesTest, HugeLengthHeadersCostNothing) {
  // IHAVE claiming 2^32-1 ids, and MESSAGE claiming a 4 GiB envelope, in a few bytes.
  const Bytes ihave{0x92, 0x03, 0xdd, 0xff, 0xff, 0xff, 0xff};
  auto decoded = DecodeFrame(ihave);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kLimitExceeded);
  const Bytes message{0x93, 0x02, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
  decoded = DecodeFrame(message);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kLimitExceeded);
}

TEST(FramesTest, ListsOverTheirLimitsAreRejected) {
  IhaveFrame ihave;
  ihave.ids.resize(limits::kMaxIhaveIds + 1);
  EXPECT_EQ(DecodeFrame(EncodeFrame(ihave)).status().code(), Status::Code::kLimitExceeded);
  ihave.ids.resize(limits::kMaxIhaveIds);
  EXPECT_TRUE(DecodeFrame(EncodeFrame(ihave)).ok());
  GraftFrame graft;
  graft.ids.resize(limits::kMaxGraftIds + 1);
  EXPECT_FALSE(DecodeFrame(EncodeFrame(graft)).ok());
  PeersFrame peers;
  peers.peers.resize(limits::kMaxPeersPerFrame + 1);
  EXPECT_FALSE(DecodeFrame(EncodeFrame(peers)).ok());
  Hello hello = SignHello(Alice(), std::string(limits::kMaxAddressBytes + 1, 'a'), Role::kRelay, kNow);
  EXPECT_FALSE(DecodeFrame(EncodeFrame(hello)).ok());
}

TEST(FramesTest, OversizedFrameIsRejectedBeforeParsing) {
  Bytes bytes(limits::kMaxFrameBytes + 1, 0x90);
  EXPECT_EQ(DecodeFrame(bytes).status().code(), Status::Code::kLimitExceeded);
}

TEST(FramesTest, HopsOverTheLimitAreMalformed) {
  const Bytes envelope = testing::MakeClose(Alice(), kNow, 60'000, 5);
  EXPECT_TRUE(DecodeFrame(EncodeMessageFrame(limits::kMaxHops, envelope)).ok());
  EXPECT_FALSE(DecodeFrame(EncodeMessageFrame(limits::kMaxHops + 1, envelope)).ok());
}

TEST(FramesTest, UnknownTypesAreUnsupported) {
  for (uint8_t type : {0, 10, 15, 18, 255}) {
    // Canonical: a fixint below 128, uint8 above (a wider form would be refused as such).
    const Bytes bytes = type < 0x80 ? Bytes{0x91, type} : Bytes{0x91, 0xcc, type};
    auto decoded = DecodeFrame(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Status::Code::kInvalidArgument) << int{type};
  }
}

TEST(FramesTest, OnlyAnUnsupportedTypeIsInvalidArgument) {
  // The core tells "unsupported" from "malformed" by this code: no malformed frame may share it.
  for (const Frame& frame : SampleFrames()) {
    const Bytes bytes = EncodeFrame(frame);
    for (size_t size = 0; size < bytes.size(); ++size) {
      Bytes damaged(bytes.begin(), bytes.begin() + size);
      EXPECT_NE(DecodeFrame(damaged).status().code(), Status::Code::kInvalidArgument);
      if (size > 2) {
        damaged = bytes;
        damaged[size] ^= 0xff;
        auto decoded = DecodeFrame(damaged);
        if (!decoded.ok()) {
          EXPECT_NE(decoded.status().code(), Status::Code::kInvalidArgument) << size;
        }
      }
    }
  }
}

TEST(FramesTest, ReconcileFramesAreDecodedWithTheirLimits) {
  // Rounds beyond a session's limit, ranges that do not decode (reconcile_test.cpp has every kind),
  // too many ids asked for, too many items.
  EXPECT_EQ(DecodeFrame(EncodeFrame(ReconcileFrame{limits::kMaxReconcileRounds, {}})).status().code(),
            Status::Code::kLimitExceeded);
  Bytes frame{0x93, 0x10, 0x00, 0xc4, 0x03, 0x02, 0x00, 0x07};  // RECONCILE, round 0, ranges: an unknown mode
  auto decoded = DecodeFrame(frame);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kCorruption);
  frame[7] = 0x00;  // the same range with mode "skip"
  EXPECT_TRUE(DecodeFrame(frame).ok());
  ReconcileItemsFrame items;
  items.want.resize(limits::kMaxReconcileWantIds + 1);
  EXPECT_EQ(DecodeFrame(EncodeFrame(items)).status().code(), Status::Code::kLimitExceeded);
  items.want.resize(limits::kMaxReconcileWantIds);
  EXPECT_TRUE(DecodeFrame(EncodeFrame(items)).ok());
  items.items.resize(limits::kMaxReconcileItems + 1);
  EXPECT_EQ(DecodeFrame(EncodeFrame(items)).status().code(), Status::Code::kLimitExceeded);
  // A huge item count in a few bytes: [17, [], <array32 of 2^32-1>, ...].
  decoded = DecodeFrame(Bytes{0x94, 0x11, 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff});
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kLimitExceeded);
  // `done` must be a boolean.
  EXPECT_FALSE(DecodeFrame(Bytes{0x94, 0x11, 0x90, 0x90, 0x01}).ok());
  EXPECT_TRUE(DecodeFrame(Bytes{0x94, 0x11, 0x90, 0x90, 0xc3}).ok());
}

TEST(FramesTest, WrongElementCountIsRejected) {
  EXPECT_FALSE(DecodeFrame(Bytes{0x92, 0x05, 0x00}).ok());  // PRUNE with an extra element
  EXPECT_FALSE(DecodeFrame(Bytes{0x91, 0x06}).ok());        // PING without its nonce
  EXPECT_FALSE(DecodeFrame(Bytes{0x90}).ok());              // no type at all
}

TEST(FramesTest, HelloVerifies) {
  const Hello hello = SignHello(Alice(), "tcp://127.0.0.1:7700", Role::kRelay, kNow);
  EXPECT_TRUE(VerifyHello(hello, kNow).ok());
  EXPECT_TRUE(VerifyHello(hello, kNow + limits::kMaxHelloSkewMs).ok());
  EXPECT_EQ(VerifyHello(hello, kNow + limits::kMaxHelloSkewMs + 1).code(), Status::Code::kExpired);
  EXPECT_EQ(VerifyHello(hello, kNow - limits::kMaxHelloSkewMs - 1).code(), Status::Code::kFromFuture);
}

TEST(FramesTest, TamperedHelloFailsItsSignature) {
  Hello hello = SignHello(Alice(), "tcp://127.0.0.1:7700", Role::kRelay, kNow);
  Hello other = hello;
  other.address = "tcp://127.0.0.1:7701";
  EXPECT_EQ(VerifyHello(other, kNow).code(), Status::Code::kBadSignature);
  other = hello;
  other.role = Role::kProvider;
  EXPECT_EQ(VerifyHello(other, kNow).code(), Status::Code::kBadSignature);
  other = hello;
  other.identity = Identity::FromSeed(market::Seed{8}).public_key();
  EXPECT_EQ(VerifyHello(other, kNow).code(), Status::Code::kBadSignature);
  other = hello;
  other.version = kGossipVersion + 1;
  EXPECT_EQ(VerifyHello(other, kNow).code(), Status::Code::kInvalidArgument);
}

TEST(FramesTest, HelloSignatureIsDomainSeparated) {
  // The same key signing the same fields without the domain prefix must not verify as a HELLO.
  Hello hello = SignHello(Alice(), "", Role::kRelay, kNow);
  const Bytes input = HelloSigningInput(hello);
  ASSERT_EQ(Bytes(input.begin(), input.begin() + kHelloDomain.size()), Bytes(kHelloDomain.begin(), kHelloDomain.end()));
  const Bytes undomained(input.begin() + kHelloDomain.size(), input.end());
  hello.signature = Alice().Sign(undomained.data(), undomained.size());
  EXPECT_EQ(VerifyHello(hello, kNow).code(), Status::Code::kBadSignature);
}

// The dedup check reads the id off the bytes; it must be the id every other part computes.
TEST(FramesTest, WireMessageIdIsTheMessageId) {
  std::vector<Bytes> envelopes;
  // Note lengths cross the msgpack string and bin size classes (fixstr/str8/str16, bin8/bin16).
  for (size_t length : {0, 1, 31, 32, 200, 255, 256, 300, 70'000}) {
    envelopes.push_back(testing::MakeClose(Alice(), kNow, 60'000, length + 1, std::string(length, 'x')));
  }
  envelopes.push_back(
      market::EncodeEnvelope(market::MakeSigned(Alice(), market::testing::SampleOrder(), kNow, 60'000, 9).envelope));
  envelopes.push_back(
      market::EncodeEnvelope(market::MakeSigned(Alice(), market::testing::SampleOffer(), kNow, 60'000, 10).envelope));
  // Extreme header values change the integer encodings (fixint, uint64, negative int64).
  market::Close close;
  close.note = "edge";
  market::Envelope edge = market::MakeSigned(Alice(), close, -5, 1, UINT64_MAX).envelope;
  envelopes.push_back(market::EncodeEnvelope(edge));
  for (const Bytes& envelope : envelopes) {
    Result<market::Envelope> decoded = market::DecodeEnvelope(envelope);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    std::optional<MessageId> wire_id = WireMessageId(envelope);
    ASSERT_TRUE(wire_id.has_value()) << envelope.size() << " bytes";
    EXPECT_EQ(*wire_id, market::ComputeId(*decoded)) << envelope.size() << " bytes";
  }
}

TEST(FramesTest, WireMessageIdRejectsWhatCannotBeAnEnvelope) {
  const Bytes envelope = testing::MakeClose(Alice(), kNow, 60'000, 1);
  EXPECT_FALSE(WireMessageId({}).has_value());
  for (size_t size = 0; size < envelope.size(); ++size) {
    // Every strict prefix loses the signature's header from its place.
    EXPECT_FALSE(WireMessageId(std::span(envelope.data(), size)).has_value()) << size;
  }
  Bytes wrong_header = envelope;
  wrong_header[0] = 0x97;
  EXPECT_FALSE(WireMessageId(wrong_header).has_value());
  Bytes short_signature = envelope;
  short_signature[envelope.size() - 65] = 63;
  EXPECT_FALSE(WireMessageId(short_signature).has_value());
}

}  // namespace
}  // namespace gpumart::gossip
