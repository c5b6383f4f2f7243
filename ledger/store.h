// LedgerStore: synchronous LevelDB access for the ledger. Owns the DB (one per node, at
// <data_dir>/ledger), the key layout (ledger/keys.h, docs/LEDGER.md), the schema version, the
// hash chain, the write path (validation, state machine, indexes and chain entries built into
// one WriteBatch per round) and the queries.
//
// Threads: reads (GetLease, Leases, OpenOrders, FreeCapacity...) are safe from any thread at any
// time and never wait for writes (LevelDB serves them while a sync write is in flight). Writes
// (ApplyRound, Write) must come from one thread at a time: the LedgerActor's writer.
//
// Trust: a market::Signed<T> is by contract a verified message (OpenSigned / OpenLease output,
// or MakeSigned by this node), so the write path does not re-run Ed25519 on it; it does check
// that the id matches the envelope, and that a lease is bound to the bid it embeds
// (market::CheckLeaseBinding). Raw wire bytes go through OpenRecord, which verifies.
// `gpumart ledger verify` re-checks every stored signature.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "ledger/capacity.h"
#include "ledger/lease_state.h"
#include "ledger/reputation.h"
#include "market/codec.h"
#include "market/status.h"
#include "market/types.h"

namespace leveldb {
class DB;
class Env;
class Cache;
class FilterPolicy;
class Status;
}  // namespace leveldb

namespace gpumart::ledger {

using market::MessageId;
using market::PublicKey;

// Bumped whenever the key layout or a value format changes incompatibly. 2: leases embed the
// signed bid they accept, bids name their tenant, no reputation on the wire, attestations.
constexpr uint32_t kSchemaVersion = 2;
constexpr size_t kDefaultPageSize = 100;
constexpr size_t kMaxPageSize = 1000;
// Compaction deletes at most this many records per round, so one round stays short.
constexpr size_t kMaxCompactionPerRound = 1000;
constexpr int64_t kDefaultRetentionMs = 7LL * 24 * 3600 * 1000;
constexpr size_t kDefaultBlockCacheBytes = 8 << 20;
// LevelDB's own default. 16 MiB cost every node up to 32 MiB of resident memtables (the live one
// and the one being flushed) for no measured gain under bench_e2e's load (bench/RESULTS.md).
constexpr size_t kDefaultWriteBufferBytes = 4 << 20;
// What a ledger holds in memory at most, LevelDB's approximate-memory-usage: the live memtable
// and the one being flushed (each about write_buffer_bytes) and the block cache.
constexpr size_t kMaxLedgerMemoryBytes = 16 << 20;
// Table files LevelDB keeps open (its table cache). Each holds a file descriptor, since tables are
// read with pread, not mapped (ledger/pread_env.h): well under the usual limit of 1,024.
constexpr int kMaxOpenTables = 500;
constexpr int kBloomBitsPerKey = 10;

struct LedgerOptions {
  bool create_if_missing = true;
  // Orders and bids expired for longer than this are compacted away (leases are kept forever).
  // An order or bid is closed once it expires; a leased order is closed at once (no longer
  // open) but is kept until it too has expired for this long.
  int64_t retention_ms = kDefaultRetentionMs;
  size_t block_cache_bytes = kDefaultBlockCacheBytes;
  // LevelDB memtable size: larger means fewer flushes and compactions under a write burst.
  size_t write_buffer_bytes = kDefaultWriteBufferBytes;
  // LevelDB environment; nullptr = the default. Tests inject failing ones.
  leveldb::Env* env = nullptr;
};
// The most LevelDB holds in memory with these options (see kMaxLedgerMemoryBytes).
constexpr size_t LedgerMemoryBound(const LedgerOptions& options) {
  return 2 * options.write_buffer_bytes + options.block_cache_bytes;
}
static_assert(LedgerMemoryBound(LedgerOptions{}) <= kMaxLedgerMemoryBytes);

// Capacity a provider holds for a bid it sent, until it expires, is released, or becomes a lease.
struct Reservation {
  MessageId bid_id{};
  PublicKey provider{};
  int64_t expires_ms = 0;
  Usage usage;
  bool operator==(const Reservation&) const = default;
};
// resv/<bid_id> value: provider:32 expires_ms:8 usage (EncodeUsage, whose limits it fails on).
Result<std::string> EncodeReservation(const Reservation& reservation);
Result<Reservation> DecodeReservation(const MessageId& bid_id, std::string_view bytes);

// ---------------------------------------------------------------------------------------------
// Write requests.
struct RecordOrder { market::Signed<market::Order> order; };
struct RecordBid { market::Signed<market::Bid> bid; };
// Records an active lease; releases the reservation of its bid; its order is no longer open.
struct RecordLease { market::Signed<market::Lease> lease; };
// active -> closed, with billing.
struct RecordClose { market::Signed<market::Close> close; };
// Keeps an auditor's attestation about a provider when it is the latest of that auditor about
// that provider: the one with the larger attested_ms, then the larger id, replaces the other;
// an older one (or the same again) is refused with kAlreadyExists and changes nothing.
struct RecordAttestation { market::Signed<market::Attestation> attestation; };
struct Reserve { Reservation reservation; };
struct Release { MessageId bid_id{}; };
// Retention: drops orders and bids expired for longer than retention_ms, expired reservations.
struct Compact {};
using LedgerWrite =
    std::variant<RecordOrder, RecordBid, RecordLease, RecordClose, RecordAttestation, Reserve, Release, Compact>;

// A write with its expensive, state-independent parts (envelope bytes, value hash, id check)
// done up front, on the caller's thread, so the single writer only does what must be serial.
struct PreparedWrite {
  LedgerWrite write;
  std::string record;        // the encoded envelope (records only)
  MessageId record_hash{};   // BLAKE2b-256 of `record`
};
Result<PreparedWrite> Prepare(LedgerWrite write);

// Decodes and fully verifies wire bytes (signatures; all three of them for a lease) into a write.
Result<LedgerWrite> OpenRecord(std::span<const uint8_t> envelope_bytes);
// The same without Ed25519, for bytes whose signatures were checked just before by the node's
// own verifier: the gossip core verifies every message before it delivers it (gossip::Deliver),
// so a gossiped lease costs its three signature checks once, not twice. Everything else is still
// checked: the envelope and body decode strictly, and Prepare and the write path check the id,
// the lease's binding to the bid and accept it embeds (market::CheckLeaseBinding, which also
// needs the Lease signed by the Bid's signer), and the state. Its one caller is the node's
// ledger feed (node/ledger_feed.h), which takes nothing but gossip deliveries; never call it on
// bytes from anywhere else (a file, a client): OpenRecord is for those.
Result<LedgerWrite> DecodeVerifiedRecord(std::span<const uint8_t> envelope_bytes);

// ---------------------------------------------------------------------------------------------
// Read results.
struct LeaseRecord {
  MessageId id{};
  market::Envelope envelope;  // signed by the provider
  market::Lease lease;
  LeaseState state = LeaseState::kActive;
  std::optional<market::Envelope> close_envelope;  // signed by the tenant or the provider
  std::optional<market::Close> close;
  std::optional<Billing> billing;
  const PublicKey& provider() const { return envelope.signer; }
};

struct LeaseQuery {
  std::optional<PublicKey> tenant;
  std::optional<PublicKey> provider;
  std::optional<LeaseState> state;
  size_t limit = kDefaultPageSize;     // at most kMaxPageSize
  std::optional<MessageId> after;      // the previous page's next_after
};
struct LeasePage {
  std::vector<LeaseRecord> leases;     // in lease-id order within the chosen index
  std::optional<MessageId> next_after; // set when there may be more
};

struct OrderPage {
  std::vector<market::Signed<market::Order>> orders;
  std::optional<MessageId> next_after;
};

// The last entry of the hash chain.
struct ChainHead {
  uint64_t seq = 0;       // 0 = empty chain
  MessageId hash{};       // hash of entry `seq`; zeros for the empty chain
  bool operator==(const ChainHead&) const = default;
};

class LedgerStore {
 public:
  // Opens (or, with create_if_missing, creates) the ledger at `path` with paranoid checks on.
  // Clear errors: kUnavailable when another process holds it, kCorruption for a damaged DB,
  // kFailedPrecondition for a newer schema, kNotFound when absent and not to be created.
  static Result<std::unique_ptr<LedgerStore>> Open(const std::string& path, const LedgerOptions& options = {});
  ~LedgerStore();
  LedgerStore(const LedgerStore&) = delete;
  LedgerStore& operator=(const LedgerStore&) = delete;

  // --- reads (any thread) ---
  Result<LeaseRecord> GetLease(const MessageId& lease_id) const;
  Result<LeasePage> Leases(const LeaseQuery& query) const;
  // Orders with no lease yet and not expired at now_ms, in id order.
  Result<OrderPage> OpenOrders(int64_t now_ms, size_t limit = kDefaultPageSize,
                               std::optional<MessageId> after = std::nullopt) const;
  Result<market::Signed<market::Order>> GetOrder(const MessageId& order_id) const;
  Result<market::Signed<market::Bid>> GetBid(const MessageId& bid_id) const;
  Result<Reservation> GetReservation(const MessageId& bid_id) const;
  // Every reservation `provider` holds, expired or not (expired ones stay until a Release or a
  // Compact drops them), in bid id order; kLimitExceeded when there are more than `max` (a
  // provider's own restart reads these: bid_engine's max_reservations bounds them).
  Result<std::vector<Reservation>> ReservationsOf(const PublicKey& provider, size_t max) const;
  // Capacity `provider` has promised: its active leases plus its reservations unexpired at now.
  Result<Usage> UsedCapacity(const PublicKey& provider, int64_t now_ms) const;
  Result<std::vector<market::NodeCapacity>> FreeCapacity(const PublicKey& provider,
                                                         const std::vector<market::NodeCapacity>& inventory,
                                                         int64_t now_ms) const;
  // The outcomes of every lease `provider` signed, by its close reason (ledger/reputation.h):
  // what ReputationPpm turns into the reputation this node ranks the provider by. One read per
  // lease of the provider.
  Result<LeaseOutcomes> ProviderOutcomes(const PublicKey& provider) const;
  // The latest attestation about `provider` by each of `auditors` that made one, in the order of
  // `auditors` (a key listed twice is read once). One read per auditor; every other auditor's
  // attestations are never looked at.
  Result<std::vector<market::Signed<market::Attestation>>> Attestations(const PublicKey& provider,
                                                                        std::span<const PublicKey> auditors) const;
  // The auditors whose latest attestation about `provider` is a pass, as lower-case hex keys in
  // key order: what this node counts as "signed this provider" for an order's signedBy
  // (docs/MATCHING.md), never the provider's own claim. One read per auditor that attested it.
  Result<std::vector<std::string>> PassingAuditors(const PublicKey& provider) const;
  // The reputation a tenant naming `auditors` (NamedAuditors of its order) ranks `provider` by:
  // ReputationPpm of the provider's lease outcomes and of those auditors' latest verdicts.
  Result<uint32_t> Reputation(const PublicKey& provider, std::span<const PublicKey> auditors) const;

  // --- writes (one thread) ---
  // Applies `writes` in order as one round: each gets its own Status in `results` (a failed one
  // changes nothing), then everything that succeeded goes to LevelDB in one sync WriteBatch.
  // Returns that batch's Status; when it fails, every write of the round fails with it.
  Status ApplyRound(std::span<const PreparedWrite* const> writes, int64_t now_ms, std::vector<Status>& results);
  // One write as its own round (tests, CLI tools).
  Status Write(const PreparedWrite& write, int64_t now_ms);

  ChainHead head() const { return head_; }
  const std::string& path() const { return path_; }
  const LedgerOptions& options() const { return options_; }
  // For verify and tests; reads only.
  leveldb::DB* db() const { return db_.get(); }

 private:
  LedgerStore(std::string path, const LedgerOptions& options);
  Status Init();

  std::string path_;
  LedgerOptions options_;
  std::unique_ptr<leveldb::Cache> block_cache_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_policy_;
  std::unique_ptr<leveldb::DB> db_;
  ChainHead head_;  // the writer's only
};

// Maps a LevelDB status to ours, prefixed with `context` (e.g. the ledger path).
Status FromLevelDb(const leveldb::Status& status, const std::string& context);

// The chain: one entry per committed WriteBatch, listing every change to a chained key in it
// (docs/LEDGER.md):
//   version:1 seq:8 prev_hash:32 recorded_ms:8 count:4 { op:1 key_len:2 key [value_hash:32] }
// value_hash (BLAKE2b-256 of the value) is present for puts only. The entry's hash (the next
// entry's prev_hash, the head's hash) is BLAKE2b-256 of these bytes.
enum class ChainOp : uint8_t { kPut = 1, kDelete = 2 };
constexpr uint8_t kChainEntryVersion = 1;
constexpr size_t kMaxChainKeyBytes = 256;
// More than any round writes (kMaxRoundWrites writes of at most a few chained keys each, or a
// compaction of kMaxCompactionPerRound records); a bound for decoding a damaged entry.
constexpr size_t kMaxChainChanges = 1 << 20;
struct ChainChange {
  ChainOp op = ChainOp::kPut;
  std::string key;
  MessageId value_hash{};  // zeros for a delete
  bool operator==(const ChainChange&) const = default;
};
struct ChainEntry {
  uint64_t seq = 0;
  MessageId prev_hash{};
  int64_t recorded_ms = 0;
  std::vector<ChainChange> changes;
  bool operator==(const ChainEntry&) const = default;
};
std::string EncodeChainEntry(const ChainEntry& entry);
Result<ChainEntry> DecodeChainEntry(std::string_view bytes);
MessageId HashBytes(std::string_view bytes);
// meta/head value: seq:8 hash:32.
std::string EncodeHead(const ChainHead& head);
Result<ChainHead> DecodeHead(std::string_view bytes);

// Decoding stored records (no signature check; verify does that).
Result<market::Signed<market::Lease>> DecodeStoredLease(const MessageId& id, std::string_view bytes);
Result<market::Signed<market::Close>> DecodeStoredClose(std::string_view bytes);
Result<market::Signed<market::Attestation>> DecodeStoredAttestation(std::string_view bytes);
Result<market::Signed<market::Order>> DecodeStoredOrder(const MessageId& id, std::string_view bytes);
Result<market::Signed<market::Bid>> DecodeStoredBid(const MessageId& id, std::string_view bytes);

}  // namespace gpumart::ledger
