#include "node/gossip/frames.h"

#include <gtest/gtest.h>

#include "tests/gossip/fake_network.h"

namespace gpumart::gossip {
namespace {

using market::Identity;

constexpr int64_t kNow = 1'750'000'000'000;

Identity Alice() { return Identity::FromSeed(market::Seed{7}); }

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

TEST(FramesTest, UnknownAndReservedTypesAreUnsupported) {
  for (uint8_t type : {0, 10, 16, 17, 255}) {
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

}  // namespace
}  // namespace gpumart::gossip
