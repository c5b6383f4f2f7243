// The ledger's key layout (docs/LEDGER.md is the reference; keep the two in step). Every key is
// an ASCII prefix ending in '/' followed by fixed-width binary fields, so one family's keys sort
// together and a prefix scan walks exactly one family. Ids and keys are raw 32-byte values; times
// are 8-byte big-endian (so byte order is time order); states are one byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "market/types.h"

namespace gpumart::ledger {

using market::MessageId;
using market::PublicKey;

namespace keys {

// Records: the signed wire messages, exactly as signed (EncodeEnvelope bytes).
inline constexpr std::string_view kOrder = "order/";  // order/<order_id>  -> Order envelope
inline constexpr std::string_view kBid = "bid/";      // bid/<bid_id>      -> Bid envelope
inline constexpr std::string_view kLease = "lease/";  // lease/<lease_id>  -> Lease envelope
inline constexpr std::string_view kClose = "close/";  // close/<lease_id>  -> Close envelope
// attest/<provider><auditor> -> the auditor's latest Attestation envelope about the provider
inline constexpr std::string_view kAttestation = "attest/";
// viol/<provider><close_id> -> a preemption Close the provider signed that broke the rules
// (ledger::CheckPreemption): refused, kept as evidence against the provider's reputation.
inline constexpr std::string_view kViolation = "viol/";
// Values the ledger derives and records next to them (also chained).
inline constexpr std::string_view kBill = "bill/";    // bill/<lease_id>   -> Billing (16 bytes)
inline constexpr std::string_view kUsage = "usage/";  // usage/<lease_id>  -> Usage of the lease
inline constexpr std::string_view kReservation = "resv/";  // resv/<bid_id> -> Reservation
// The tamper-evident log and metadata.
inline constexpr std::string_view kChain = "chain/";  // chain/<seq:8>     -> chain entry
inline constexpr std::string_view kHeadKey = "meta/head";      // -> seq:8 hash:32
inline constexpr std::string_view kSchemaKey = "meta/schema";  // -> version:4
inline constexpr std::string_view kMeta = "meta/";
// Secondary indexes: empty values, kept in the same WriteBatch as their record.
inline constexpr std::string_view kIndex = "ix/";
inline constexpr std::string_view kLeaseByTenant = "ix/lt/";    // <tenant><lease_id>
inline constexpr std::string_view kLeaseByProvider = "ix/lp/";  // <provider><lease_id>
inline constexpr std::string_view kLeaseByState = "ix/ls/";     // <state:1><lease_id>
inline constexpr std::string_view kLeaseByOrder = "ix/lo/";     // <order_id><lease_id>
inline constexpr std::string_view kOpenOrder = "ix/oo/";        // <order_id>
inline constexpr std::string_view kOrderByExpiry = "ix/ox/";    // <expires_ms:8><order_id>
inline constexpr std::string_view kBidByOrder = "ix/bo/";       // <order_id><bid_id>
inline constexpr std::string_view kBidByExpiry = "ix/bx/";      // <expires_ms:8><bid_id>
inline constexpr std::string_view kReservationByProvider = "ix/rp/";  // <provider><bid_id>
inline constexpr std::string_view kReservationByExpiry = "ix/rx/";    // <expires_ms:8><bid_id>

std::string Id(std::string_view prefix, const MessageId& id);
std::string Pair(std::string_view prefix, const std::array<uint8_t, 32>& first, const MessageId& second);
std::string TimeId(std::string_view prefix, int64_t ms, const MessageId& id);
std::string StateId(std::string_view prefix, uint8_t state, const MessageId& id);
std::string ChainSeq(uint64_t seq);

// The id at the end of any key that ends in a 32-byte id.
std::optional<MessageId> TrailingId(std::string_view key);
// The 8-byte big-endian time of an ix/ox, ix/bx or ix/rx key.
std::optional<int64_t> KeyTime(std::string_view key, std::string_view prefix);
std::optional<uint64_t> ChainSeqOf(std::string_view key);

// True for keys whose every write and delete is logged in the hash chain: records, derived
// values and reservations (indexes are re-derived by verify instead).
bool IsChained(std::string_view key);

// A printable form of a key for error messages: the prefix, then each binary field in hex or
// as a number, e.g. "ix/ox/1700000000000/3fa1...".
std::string Describe(std::string_view key);

}  // namespace keys

// Big-endian fixed-width integers (keys and small values).
void AppendU64(std::string& out, uint64_t value);
void AppendU32(std::string& out, uint32_t value);
void AppendU16(std::string& out, uint16_t value);
uint64_t ReadU64(const char* data);
uint32_t ReadU32(const char* data);
uint16_t ReadU16(const char* data);
// Times before the epoch are clamped to 0 in keys (never happens for valid messages).
uint64_t TimeKey(int64_t ms);

// A Slice-like view helper: the bytes of an id / key as a string_view.
inline std::string_view AsView(const std::array<uint8_t, 32>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace gpumart::ledger
