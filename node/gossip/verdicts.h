// What the gossip core detects: misbehaviour by a peer (a verdict, consumed by PeerScorer or
// whatever punishes) and the reasons it drops a frame, message or link (counted, never silent).
// Detection lives in the core; punishment does not.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace gpumart::gossip {

enum class Misbehaviour : uint8_t {
  kMalformedFrame,    // bytes that are not a frame, or exceed a frame limit
  kUnsupportedFrame,  // a frame type this version does not speak (or reserved)
  kHandshake,         // anything but HELLO before HELLO, or a second HELLO
  kBadHello,          // a HELLO whose signature, version or time does not check
  kMalformedMessage,  // a MESSAGE whose envelope or body does not decode or validate
  kBadSignature,      // a MESSAGE whose signature does not verify
  kReplay,            // a new message reusing a signer's nonce
  kExpired,           // a message already expired (honest peers relay them rarely: low weight)
  kFromFuture,        // a message created too far ahead of our clock
  kUnsolicited,       // a PONG to no PING; reconciliation frames that answer nothing we asked
  kFlood,             // more frames or bytes than the per-peer rate allows; reconciliation over its limits
};
constexpr size_t kMisbehaviourCount = 11;
std::string_view ToString(Misbehaviour reason);

enum class Drop : uint8_t {
  kMalformedFrame,
  kOversizedFrame,
  kUnsupportedFrame,
  kRateLimited,
  kHandshake,
  kBadHello,
  kSelfLink,          // a link to ourselves (our own identity in its HELLO)
  kDuplicateLink,     // a second link to an identity already linked
  kPeerLimit,         // inbound or outbound link limit reached
  kHelloTimeout,
  kPeerTimeout,       // no frame within the peer timeout: dead
  kDuplicate,         // a message id already seen (normal in gossip)
  kExpired,
  kFromFuture,
  kMalformedMessage,
  kBadSignature,
  kReplay,
  kHopLimit,          // delivered but not relayed: it travelled the hop limit
  kUnknownGraft,      // GRAFT for an id no longer (or never) stored
  kUnsolicitedPong,
  kMissingFull,       // an IHAVE id (or an id reconciliation found missing) not tracked: the table is full
  kUnsolicitedReconcile,  // a RECONCILE or RECONCILE_ITEMS that answers nothing we asked
  kReconcileLimit,    // a reconciliation over its limits (sessions too often, too many rounds or asks)
  kRetainedFull,      // a reconcilable message evicted early: the retained set is full
};
constexpr size_t kDropCount = 24;
std::string_view ToString(Drop reason);

struct DropCounters {
  std::array<uint64_t, kDropCount> by_reason{};
  void Add(Drop reason) { ++by_reason[static_cast<size_t>(reason)]; }
  uint64_t operator[](Drop reason) const { return by_reason[static_cast<size_t>(reason)]; }
};

}  // namespace gpumart::gossip
