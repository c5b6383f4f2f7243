#include "node/gossip/verdicts.h"

namespace gpumart::gossip {

std::string_view ToString(Misbehaviour reason) {
  switch (reason) {
    case Misbehaviour::kMalformedFrame: return "malformed_frame";
    case Misbehaviour::kUnsupportedFrame: return "unsupported_frame";
    case Misbehaviour::kHandshake: return "handshake";
    case Misbehaviour::kBadHello: return "bad_hello";
    case Misbehaviour::kMalformedMessage: return "malformed_message";
    case Misbehaviour::kBadSignature: return "bad_signature";
    case Misbehaviour::kReplay: return "replay";
    case Misbehaviour::kExpired: return "expired";
    case Misbehaviour::kFromFuture: return "from_future";
    case Misbehaviour::kUnsolicited: return "unsolicited";
    case Misbehaviour::kFlood: return "flood";
  }
  return "unknown";
}

std::string_view ToString(Drop reason) {
  switch (reason) {
    case Drop::kMalformedFrame: return "malformed_frame";
    case Drop::kOversizedFrame: return "oversized_frame";
    case Drop::kUnsupportedFrame: return "unsupported_frame";
    case Drop::kRateLimited: return "rate_limited";
    case Drop::kHandshake: return "handshake";
    case Drop::kBadHello: return "bad_hello";
    case Drop::kSelfLink: return "self_link";
    case Drop::kDuplicateLink: return "duplicate_link";
    case Drop::kPeerLimit: return "peer_limit";
    case Drop::kHelloTimeout: return "hello_timeout";
    case Drop::kPeerTimeout: return "peer_timeout";
    case Drop::kDuplicate: return "duplicate";
    case Drop::kExpired: return "expired";
    case Drop::kFromFuture: return "from_future";
    case Drop::kMalformedMessage: return "malformed_message";
    case Drop::kBadSignature: return "bad_signature";
    case Drop::kReplay: return "replay";
    case Drop::kHopLimit: return "hop_limit";
    case Drop::kUnknownGraft: return "unknown_graft";
    case Drop::kUnsolicitedPong: return "unsolicited_pong";
    case Drop::kMissingFull: return "missing_full";
    case Drop::kUnsolicitedReconcile: return "unsolicited_reconcile";
    case Drop::kReconcileLimit: return "reconcile_limit";
    case Drop::kRetainedFull: return "retained_full";
  }
  return "unknown";
}

}  // namespace gpumart::gossip
