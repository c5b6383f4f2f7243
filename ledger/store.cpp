#include "ledger/store.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <type_traits>

#include "ledger/keys.h"
#include "ledger/pread_env.h"
#include "market/billing.h"
#include "market/crypto.h"

namespace gpumart::ledger {

using market::MessageType;
using market::Signed;

namespace {

constexpr size_t kHeadBytes = 8 + market::kIdBytes;
constexpr size_t kSchemaBytes = 4;

std::span<const uint8_t> AsSpan(std::string_view bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

std::string Hex(const MessageId& id) { return market::ToHex(id); }

// The smallest key greater than every key starting with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last != 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;  // everything: no upper bound (never happens for our prefixes)
}

template <typename Body, typename Decoder>
Result<Signed<Body>> DecodeStored(const MessageId* id, std::string_view bytes, MessageType type, Decoder decode) {
  auto envelope = market::DecodeEnvelope(AsSpan(bytes));
  if (!envelope.ok()) return envelope.status();
  if (envelope->type != type) {
    return Status::Corruption("record holds a " + std::string(market::ToString(envelope->type)) + " message, expected " +
                              std::string(market::ToString(type)));
  }
  auto body = decode(std::span<const uint8_t>(envelope->body));
  if (!body.ok()) return body.status();
  Signed<Body> out;
  out.envelope = std::move(envelope).value();
  out.body = std::move(body).value();
  out.id = id != nullptr ? *id : market::ComputeId(out.envelope);
  return out;
}

// Releases a LevelDB snapshot when a read is done.
class SnapshotRead {
 public:
  explicit SnapshotRead(leveldb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) { options_.snapshot = snapshot_; }
  ~SnapshotRead() { db_->ReleaseSnapshot(snapshot_); }
  SnapshotRead(const SnapshotRead&) = delete;
  SnapshotRead& operator=(const SnapshotRead&) = delete;
  const leveldb::ReadOptions& options() const { return options_; }

 private:
  leveldb::DB* db_;
  const leveldb::Snapshot* snapshot_;
  leveldb::ReadOptions options_;
};

Result<std::optional<std::string>> DbGet(leveldb::DB* db, const leveldb::ReadOptions& options, std::string_view key) {
  std::string value;
  const leveldb::Status status = db->Get(options, leveldb::Slice(key.data(), key.size()), &value);
  if (status.IsNotFound()) return std::optional<std::string>();
  if (!status.ok()) return FromLevelDb(status, "reading " + keys::Describe(key));
  return std::optional<std::string>(std::move(value));
}

// Whether `value` under `key` decodes with the decoder every reader of that key uses. Records
// (orders, bids, leases, closes) are checked once, by Prepare, on the caller's thread.
Status CheckStorable(std::string_view key, std::string_view value) {
  if (key.starts_with(keys::kIndex)) {
    return value.empty() ? Status::Ok() : Status::Internal("index entries have empty values");
  }
  const auto id = keys::TrailingId(key);
  const std::string_view family = id ? key.substr(0, key.size() - market::kIdBytes) : std::string_view();
  if (family == keys::kUsage) return DecodeUsage(value).status();
  if (family == keys::kReservation) return DecodeReservation(*id, value).status();
  if (family == keys::kBill) return DecodeBilling(value).status();
  if (family == keys::kOrder) return DecodeStoredOrder(*id, value).status();
  if (family == keys::kBid) return DecodeStoredBid(*id, value).status();
  if (family == keys::kLease) return DecodeStoredLease(*id, value).status();
  if (family == keys::kClose) return DecodeStoredClose(value).status();
  if (key.starts_with(keys::kAttestation)) return DecodeStoredAttestation(value).status();
  if (key.starts_with(keys::kViolation)) return DecodeStoredClose(value).status();
  return Status::Internal("no decoder reads this key");
}

// ---------------------------------------------------------------------------------------------
// One write round: reads see the DB plus everything this round already wrote; each request's
// writes are staged and kept (with their chain entries) only when the request succeeds.
class Round {
 public:
  Round(leveldb::DB* db, ChainHead head, int64_t now_ms) : db_(db), head_(head), now_ms_(now_ms) {}

  Result<std::optional<std::string>> Get(const std::string& key) const {
    for (auto it = staged_.rbegin(); it != staged_.rend(); ++it) {
      if (it->key == key) return it->value;
    }
    if (const auto it = overlay_.find(key); it != overlay_.end()) return it->second;
    return DbGet(db_, leveldb::ReadOptions(), key);
  }

  // The current request is refused, but what it staged so far (evidence of the refusal) is kept.
  void KeepWhenRefused() { keep_when_refused_ = true; }

  // Keys in [begin, end), as this round sees them, at most `limit`.
  Result<std::vector<std::string>> Keys(const std::string& begin, const std::string& end, size_t limit) const {
    std::set<std::string> found;
    const size_t want = limit + overlay_.size() + staged_.size();
    // The writer is the only writer, so the DB does not change during a round: one iterator
    // (an implicit snapshot) serves every scan of the round.
    if (!iterator_) iterator_.reset(db_->NewIterator(leveldb::ReadOptions()));
    leveldb::Iterator& it = *iterator_;
    for (it.Seek(begin); it.Valid() && found.size() < want; it.Next()) {
      const leveldb::Slice key = it.key();
      if (key.compare(leveldb::Slice(end)) >= 0) break;
      found.emplace(key.data(), key.size());
    }
    if (!it.status().ok()) return FromLevelDb(it.status(), "scanning " + keys::Describe(begin));
    for (auto o = overlay_.lower_bound(begin); o != overlay_.end() && o->first < end; ++o) {
      if (o->second) {
        found.insert(o->first);
      } else {
        found.erase(o->first);
      }
    }
    for (const auto& staged : staged_) {
      if (staged.key < begin || staged.key >= end) continue;
      if (staged.value) {
        found.insert(staged.key);
      } else {
        found.erase(staged.key);
      }
    }
    std::vector<std::string> out(found.begin(), found.end());
    if (out.size() > limit) out.resize(limit);
    return out;
  }

  Result<std::vector<std::string>> KeysWithPrefix(const std::string& prefix, size_t limit) const {
    return Keys(prefix, PrefixEnd(prefix), limit);
  }

  void Put(std::string key, std::string value, const MessageId* value_hash = nullptr) {
    staged_.push_back({std::move(key), std::move(value), value_hash ? std::optional(*value_hash) : std::nullopt});
  }
  void Delete(std::string key) { staged_.push_back({std::move(key), std::nullopt, std::nullopt}); }

  // Keeps (with chain entries) or drops what the current request staged, and returns the
  // request's final status: `status`, or why a value it staged would not be read back (then
  // nothing of it is kept).
  Status EndRequest(Status status) {
    // A refusal that records evidence (KeepWhenRefused) keeps what it staged and stays a refusal.
    bool keep = status.ok() || keep_when_refused_;
    keep_when_refused_ = false;
    if (keep) {
      if (Status staged = CheckStaged(); !staged.ok()) {
        status = staged;
        keep = false;
      }
    }
    if (keep) {
      for (auto& staged : staged_) {
        if (keys::IsChained(staged.key)) {
          ChainChange change;
          change.op = staged.value ? ChainOp::kPut : ChainOp::kDelete;
          change.key = staged.key;
          if (staged.value) change.value_hash = staged.value_hash ? *staged.value_hash : HashBytes(*staged.value);
          chain_changes_.push_back(std::move(change));
        }
        if (staged.value) {
          batch_.Put(staged.key, *staged.value);
        } else {
          batch_.Delete(staged.key);
        }
        overlay_[staged.key] = std::move(staged.value);
        dirty_ = true;
      }
    }
    staged_.clear();
    return status;
  }

  // One sync WriteBatch with everything kept, plus the new chain head.
  Status Commit() {
    if (!dirty_) return Status::Ok();
    if (!chain_changes_.empty()) {
      ChainEntry entry;
      entry.seq = head_.seq + 1;
      entry.prev_hash = head_.hash;
      entry.recorded_ms = now_ms_;
      entry.changes = std::move(chain_changes_);
      const std::string encoded = EncodeChainEntry(entry);
      batch_.Put(keys::ChainSeq(entry.seq), encoded);
      head_ = ChainHead{entry.seq, HashBytes(encoded)};
      batch_.Put(std::string(keys::kHeadKey), EncodeHead(head_));
    }
    leveldb::WriteOptions options;
    options.sync = true;
    const leveldb::Status status = db_->Write(options, &batch_);
    if (!status.ok()) {
      return FromLevelDb(status, "ledger write failed, the batch is not acknowledged")
          .WithContext("write");
    }
    return Status::Ok();
  }

  ChainHead head() const { return head_; }
  int64_t now_ms() const { return now_ms_; }

 private:
  struct Staged {
    std::string key;
    std::optional<std::string> value;  // nullopt = delete
    std::optional<MessageId> value_hash;  // set for a prepared record (Prepare checked it)
  };

  // The check before Put: every value the request staged is one this node's own decoders (the
  // ones `gpumart ledger verify` and every read use) accept, and its chain entry will decode.
  Status CheckStaged() const {
    size_t chained = chain_changes_.size();
    for (const auto& staged : staged_) {
      if (keys::IsChained(staged.key)) {
        if (staged.key.size() > kMaxChainKeyBytes || ++chained > kMaxChainChanges) {
          return Status::Internal("round too large for one chain entry at " + keys::Describe(staged.key));
        }
      }
      if (!staged.value || staged.value_hash) continue;
      if (Status status = CheckStorable(staged.key, *staged.value); !status.ok()) {
        return status.WithContext("refusing to store " + keys::Describe(staged.key) + ", which would not read back");
      }
    }
    return Status::Ok();
  }

  leveldb::DB* db_;
  ChainHead head_;
  int64_t now_ms_;
  std::vector<Staged> staged_;
  std::vector<ChainChange> chain_changes_;  // of the requests kept so far
  std::map<std::string, std::optional<std::string>> overlay_;
  mutable std::unique_ptr<leveldb::Iterator> iterator_;  // created by the first scan
  leveldb::WriteBatch batch_;
  bool dirty_ = false;
  bool keep_when_refused_ = false;
};

// Whether any lease names `order_id` (it is then no longer open).
Result<bool> HasLease(const Round& round, const MessageId& order_id) {
  auto lease_keys = round.KeysWithPrefix(keys::Id(keys::kLeaseByOrder, order_id), 1);
  if (!lease_keys.ok()) return lease_keys.status();
  return !lease_keys->empty();
}

Status ApplyOrder(Round& round, const PreparedWrite& prepared, const Signed<market::Order>& order) {
  const std::string key = keys::Id(keys::kOrder, order.id);
  auto existing = round.Get(key);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return Status::AlreadyExists("order " + Hex(order.id) + " is already recorded");
  auto leased = HasLease(round, order.id);  // a lease can arrive before its order
  if (!leased.ok()) return leased.status();
  round.Put(key, prepared.record, &prepared.record_hash);
  round.Put(keys::TimeId(keys::kOrderByExpiry, order.envelope.expires_ms, order.id), {});
  if (!*leased) round.Put(keys::Id(keys::kOpenOrder, order.id), {});
  return Status::Ok();
}

Status ApplyBid(Round& round, const PreparedWrite& prepared, const Signed<market::Bid>& bid) {
  const std::string key = keys::Id(keys::kBid, bid.id);
  auto existing = round.Get(key);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return Status::AlreadyExists("bid " + Hex(bid.id) + " is already recorded");
  round.Put(key, prepared.record, &prepared.record_hash);
  round.Put(keys::Pair(keys::kBidByOrder, bid.body.order_id, bid.id), {});
  round.Put(keys::TimeId(keys::kBidByExpiry, bid.envelope.expires_ms, bid.id), {});
  return Status::Ok();
}

Status ApplyLease(Round& round, const PreparedWrite& prepared, const Signed<market::Lease>& lease) {
  const std::string key = keys::Id(keys::kLease, lease.id);
  const std::string context = "lease " + Hex(lease.id);
  auto existing = round.Get(key);
  if (!existing.ok()) return existing.status();
  std::optional<LeaseState> state;
  if (existing->has_value()) {
    auto closed = round.Get(keys::Id(keys::kClose, lease.id));
    if (!closed.ok()) return closed.status();
    state = closed->has_value() ? LeaseState::kClosed : LeaseState::kActive;
  }
  if (auto next = NextLeaseState(state, LeaseEvent::kRecord); !next.ok()) return next.status().WithContext(context);

  const market::Lease& body = lease.body;
  const MessageId& order_id = body.order_id;
  // Reads first, so a failure leaves nothing staged half-way.
  std::optional<Usage> usage;
  auto order_value = round.Get(keys::Id(keys::kOrder, order_id));
  if (!order_value.ok()) return order_value.status();
  if (order_value->has_value()) {
    auto order = DecodeStoredOrder(order_id, **order_value);
    if (!order.ok()) return order.status().WithContext(keys::Describe(keys::Id(keys::kOrder, order_id)));
    // Capacity bookkeeping needs the order's per-replica resources; a lease that does not fit
    // its order is still recorded (it is signed), just without usage.
    if (auto computed = market::UsageOf(order->body, body.services); computed.ok()) usage = std::move(computed).value();
  }
  std::optional<std::string> usage_value;
  if (usage) {
    auto encoded = EncodeUsage(*usage);
    if (!encoded.ok()) return encoded.status().WithContext(context + " is refused");
    usage_value = std::move(encoded).value();
  }
  std::optional<Reservation> reservation;
  auto reservation_value = round.Get(keys::Id(keys::kReservation, body.bid_id));
  if (!reservation_value.ok()) return reservation_value.status();
  if (reservation_value->has_value()) {
    auto decoded = DecodeReservation(body.bid_id, **reservation_value);
    if (!decoded.ok()) return decoded.status().WithContext(keys::Describe(keys::Id(keys::kReservation, body.bid_id)));
    reservation = std::move(decoded).value();
  }

  const PublicKey& provider = lease.envelope.signer;
  round.Put(key, prepared.record, &prepared.record_hash);
  round.Put(keys::Pair(keys::kLeaseByTenant, body.tenant, lease.id), {});
  round.Put(keys::Pair(keys::kLeaseByProvider, provider, lease.id), {});
  round.Put(keys::StateId(keys::kLeaseByState, static_cast<uint8_t>(LeaseState::kActive), lease.id), {});
  round.Put(keys::Pair(keys::kLeaseByOrder, order_id, lease.id), {});
  if (usage_value) round.Put(keys::Id(keys::kUsage, lease.id), std::move(*usage_value));
  if (order_value->has_value()) round.Delete(keys::Id(keys::kOpenOrder, order_id));
  if (reservation) {
    round.Delete(keys::Id(keys::kReservation, reservation->bid_id));
    round.Delete(keys::Pair(keys::kReservationByProvider, reservation->provider, reservation->bid_id));
    round.Delete(keys::TimeId(keys::kReservationByExpiry, reservation->expires_ms, reservation->bid_id));
  }
  return Status::Ok();
}

Status ApplyClose(Round& round, const PreparedWrite& prepared, const Signed<market::Close>& close) {
  const MessageId& lease_id = close.body.lease_id;
  const std::string context = "close of lease " + Hex(lease_id);
  auto lease_value = round.Get(keys::Id(keys::kLease, lease_id));
  if (!lease_value.ok()) return lease_value.status();
  std::optional<LeaseState> state;
  std::optional<Signed<market::Lease>> lease;
  if (lease_value->has_value()) {
    auto decoded = DecodeStoredLease(lease_id, **lease_value);
    if (!decoded.ok()) return decoded.status().WithContext(keys::Describe(keys::Id(keys::kLease, lease_id)));
    lease = std::move(decoded).value();
    auto closed = round.Get(keys::Id(keys::kClose, lease_id));
    if (!closed.ok()) return closed.status();
    state = closed->has_value() ? LeaseState::kClosed : LeaseState::kActive;
  }
  if (auto next = NextLeaseState(state, LeaseEvent::kClose); !next.ok()) return next.status().WithContext(context);
  if (Status who = CheckCloser(close.envelope.signer, lease->body.tenant, lease->envelope.signer, close.body.reason);
      !who.ok()) {
    return who.WithContext(context);
  }
  if (close.body.reason == market::CloseReason::kPreempted) {
    if (Status rules = CheckPreemption(close, lease->envelope.signer, lease->body.spot); !rules.ok()) {
      // Refused: the lease stays open here. The provider signed this Close, so it is kept as
      // evidence that counts against the provider (LedgerStore::ProviderOutcomes).
      const std::string violation_key = keys::Pair(keys::kViolation, lease->envelope.signer, close.id);
      auto recorded = round.Get(violation_key);
      if (!recorded.ok()) return recorded.status();
      if (!recorded->has_value()) {
        round.Put(violation_key, prepared.record, &prepared.record_hash);
        round.KeepWhenRefused();
      }
      return rules.WithContext(context + " is refused");
    }
  }
  // The lease's accrued cost at its close (market/billing.h), as the ledger stores it.
  auto billing = ComputeBilling(lease->body.price_per_hour, lease->body.start_ms,
                                market::BilledUntilMs(lease->body, &close.body, close.body.closed_ms));
  if (!billing.ok()) return billing.status().WithContext(context);

  round.Put(keys::Id(keys::kClose, lease_id), prepared.record, &prepared.record_hash);
  round.Put(keys::Id(keys::kBill, lease_id), EncodeBilling(*billing));
  round.Delete(keys::StateId(keys::kLeaseByState, static_cast<uint8_t>(LeaseState::kActive), lease_id));
  round.Put(keys::StateId(keys::kLeaseByState, static_cast<uint8_t>(LeaseState::kClosed), lease_id), {});
  return Status::Ok();
}

// Whether `candidate` replaces `recorded` as its auditor's latest word on the provider.
bool Supersedes(const Signed<market::Attestation>& candidate, const Signed<market::Attestation>& recorded) {
  if (candidate.body.attested_ms != recorded.body.attested_ms) {
    return candidate.body.attested_ms > recorded.body.attested_ms;
  }
  return candidate.id > recorded.id;
}

Status ApplyAttestation(Round& round, const PreparedWrite& prepared, const Signed<market::Attestation>& attestation) {
  const PublicKey& auditor = attestation.envelope.signer;
  const std::string key = keys::Pair(keys::kAttestation, attestation.body.provider, auditor);
  auto existing = round.Get(key);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    auto recorded = DecodeStoredAttestation(**existing);
    if (!recorded.ok()) return recorded.status().WithContext(keys::Describe(key));
    if (!Supersedes(attestation, *recorded)) {
      return Status::AlreadyExists("attestation " + Hex(attestation.id) + " by auditor " + Hex(auditor) +
                                   ": the same or a later one (" + Hex(recorded->id) + ") is recorded");
    }
  }
  round.Put(key, prepared.record, &prepared.record_hash);
  return Status::Ok();
}

Status ApplyReserve(Round& round, const Reservation& reservation) {
  const std::string key = keys::Id(keys::kReservation, reservation.bid_id);
  auto existing = round.Get(key);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return Status::AlreadyExists("a reservation for bid " + Hex(reservation.bid_id) + " already exists");
  }
  auto value = EncodeReservation(reservation);
  if (!value.ok()) return value.status().WithContext("reservation for bid " + Hex(reservation.bid_id) + " is refused");
  round.Put(key, std::move(value).value());
  round.Put(keys::Pair(keys::kReservationByProvider, reservation.provider, reservation.bid_id), {});
  round.Put(keys::TimeId(keys::kReservationByExpiry, reservation.expires_ms, reservation.bid_id), {});
  return Status::Ok();
}

Status DeleteReservation(Round& round, const MessageId& bid_id, bool missing_is_error) {
  const std::string key = keys::Id(keys::kReservation, bid_id);
  auto existing = round.Get(key);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    if (missing_is_error) return Status::NotFound("no reservation for bid " + Hex(bid_id));
    return Status::Ok();
  }
  auto reservation = DecodeReservation(bid_id, **existing);
  if (!reservation.ok()) return reservation.status().WithContext(keys::Describe(key));
  round.Delete(key);
  round.Delete(keys::Pair(keys::kReservationByProvider, reservation->provider, bid_id));
  round.Delete(keys::TimeId(keys::kReservationByExpiry, reservation->expires_ms, bid_id));
  return Status::Ok();
}

// Keys of a time-ordered index (ix/ox, ix/bx, ix/rx) whose time is before `before_ms`.
Result<std::vector<std::string>> KeysBefore(const Round& round, std::string_view prefix, int64_t before_ms, size_t limit) {
  std::string end(prefix);
  AppendU64(end, TimeKey(before_ms));
  return round.Keys(std::string(prefix), end, limit);
}

Status ApplyCompact(Round& round, int64_t retention_ms) {
  const int64_t cutoff_ms = round.now_ms() - retention_ms;
  size_t budget = kMaxCompactionPerRound;

  auto order_keys = KeysBefore(round, keys::kOrderByExpiry, cutoff_ms, budget);
  if (!order_keys.ok()) return order_keys.status();
  for (const auto& index_key : *order_keys) {
    const MessageId order_id = *keys::TrailingId(index_key);
    const std::string record_key = keys::Id(keys::kOrder, order_id);
    auto record = round.Get(record_key);
    if (!record.ok()) return record.status();
    if (record->has_value()) round.Delete(record_key);
    round.Delete(keys::Id(keys::kOpenOrder, order_id));
    round.Delete(index_key);
  }
  budget -= order_keys->size();

  auto bid_keys = KeysBefore(round, keys::kBidByExpiry, cutoff_ms, budget);
  if (!bid_keys.ok()) return bid_keys.status();
  for (const auto& index_key : *bid_keys) {
    const MessageId bid_id = *keys::TrailingId(index_key);
    const std::string record_key = keys::Id(keys::kBid, bid_id);
    auto record = round.Get(record_key);
    if (!record.ok()) return record.status();
    if (record->has_value()) {
      auto bid = DecodeStoredBid(bid_id, **record);
      if (!bid.ok()) return bid.status().WithContext(keys::Describe(record_key));
      round.Delete(record_key);
      round.Delete(keys::Pair(keys::kBidByOrder, bid->body.order_id, bid_id));
    }
    round.Delete(index_key);
  }
  budget -= bid_keys->size();

  // Expired reservations hold nothing; they go at once, not after the retention period.
  auto reservation_keys = KeysBefore(round, keys::kReservationByExpiry, round.now_ms(), budget);
  if (!reservation_keys.ok()) return reservation_keys.status();
  for (const auto& index_key : *reservation_keys) {
    if (Status status = DeleteReservation(round, *keys::TrailingId(index_key), false); !status.ok()) return status;
    round.Delete(index_key);  // also drops an entry whose record is already gone
  }
  return Status::Ok();
}

Status ApplyWrite(Round& round, const PreparedWrite& prepared, const LedgerOptions& options) {
  const LedgerWrite& write = prepared.write;
  if (const auto* order = std::get_if<RecordOrder>(&write)) return ApplyOrder(round, prepared, order->order);
  if (const auto* bid = std::get_if<RecordBid>(&write)) return ApplyBid(round, prepared, bid->bid);
  if (const auto* lease = std::get_if<RecordLease>(&write)) return ApplyLease(round, prepared, lease->lease);
  if (const auto* close = std::get_if<RecordClose>(&write)) return ApplyClose(round, prepared, close->close);
  if (const auto* attestation = std::get_if<RecordAttestation>(&write)) {
    return ApplyAttestation(round, prepared, attestation->attestation);
  }
  if (const auto* reserve = std::get_if<Reserve>(&write)) return ApplyReserve(round, reserve->reservation);
  if (const auto* release = std::get_if<Release>(&write)) return DeleteReservation(round, release->bid_id, true);
  if (std::holds_alternative<Compact>(write)) return ApplyCompact(round, options.retention_ms);
  return Status::Internal("unknown ledger write");
}

template <typename Body>
Result<Signed<Body>> DecodeStoredRecord(const MessageId& id, std::string_view bytes) {
  if constexpr (std::is_same_v<Body, market::Order>) return DecodeStoredOrder(id, bytes);
  if constexpr (std::is_same_v<Body, market::Bid>) return DecodeStoredBid(id, bytes);
  if constexpr (std::is_same_v<Body, market::Lease>) return DecodeStoredLease(id, bytes);
  if constexpr (std::is_same_v<Body, market::Close>) return DecodeStoredClose(bytes);
  if constexpr (std::is_same_v<Body, market::Attestation>) return DecodeStoredAttestation(bytes);
}

template <typename Body>
Status PrepareRecord(const Signed<Body>& message, PreparedWrite& prepared) {
  constexpr MessageType kType = market::BodyTraits<Body>::kType;
  if (message.envelope.type != kType) {
    return Status::InvalidArgument("envelope type " + std::string(market::ToString(message.envelope.type)) +
                                   " does not match its " + std::string(market::ToString(kType)) + " body");
  }
  if (market::ComputeId(message.envelope) != message.id) {
    return Status::InvalidArgument("message id " + Hex(message.id) + " does not match its envelope");
  }
  const market::Bytes bytes = market::EncodeEnvelope(message.envelope);
  prepared.record.assign(bytes.begin(), bytes.end());
  // The check before Put, for records: the bytes decode again (limits and validation of the
  // body included) into this very envelope, so every read and `ledger verify` accept them.
  auto stored = DecodeStoredRecord<Body>(message.id, prepared.record);
  if (!stored.ok()) {
    return stored.status().WithContext(std::string(market::ToString(kType)) + " " + Hex(message.id) +
                                       " is refused: it would not decode again");
  }
  if (!(stored->envelope == message.envelope)) {
    return Status::InvalidArgument(std::string(market::ToString(kType)) + " " + Hex(message.id) +
                                   " is refused: its envelope does not encode canonically");
  }
  prepared.record_hash = HashBytes(prepared.record);
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Status FromLevelDb(const leveldb::Status& status, const std::string& context) {
  if (status.ok()) return Status::Ok();
  const std::string text = status.ToString();
  if (status.IsNotFound()) return Status::NotFound(context + ": " + text);
  if (status.IsCorruption()) return Status::Corruption(context + ": the database is corrupt (" + text + ")");
  if (status.IsIOError()) {
    if (text.find("/LOCK:") != std::string::npos) {
      return Status::Unavailable(context + ": the ledger is in use by another process (" + text + ")");
    }
    return Status::IoError(context + ": " + text);
  }
  if (status.IsInvalidArgument()) {
    if (text.find("does not exist") != std::string::npos) return Status::NotFound(context + ": no ledger there (" + text + ")");
    return Status::InvalidArgument(context + ": " + text);
  }
  return Status::Internal(context + ": " + text);
}

MessageId HashBytes(std::string_view bytes) {
  return market::Blake2b256(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string EncodeChainEntry(const ChainEntry& entry) {
  std::string out;
  out.push_back(static_cast<char>(kChainEntryVersion));
  AppendU64(out, entry.seq);
  out.append(AsView(entry.prev_hash));
  AppendU64(out, static_cast<uint64_t>(entry.recorded_ms));
  AppendU32(out, static_cast<uint32_t>(entry.changes.size()));
  for (const auto& change : entry.changes) {
    out.push_back(static_cast<char>(change.op));
    AppendU16(out, static_cast<uint16_t>(change.key.size()));
    out.append(change.key);
    if (change.op == ChainOp::kPut) out.append(AsView(change.value_hash));
  }
  return out;
}

Result<ChainEntry> DecodeChainEntry(std::string_view bytes) {
  constexpr size_t kFixed = 1 + 8 + 32 + 8 + 4;
  constexpr size_t kHash = market::kIdBytes;
  if (bytes.size() < kFixed) return Status::Corruption("chain entry is too short");
  if (static_cast<uint8_t>(bytes[0]) != kChainEntryVersion) return Status::Corruption("unknown chain entry version");
  ChainEntry entry;
  entry.seq = ReadU64(bytes.data() + 1);
  std::memcpy(entry.prev_hash.data(), bytes.data() + 9, kHash);
  entry.recorded_ms = static_cast<int64_t>(ReadU64(bytes.data() + 41));
  const uint32_t count = ReadU32(bytes.data() + 49);
  if (count > kMaxChainChanges) return Status::Corruption("chain entry lists too many changes");
  std::string_view rest = bytes.substr(kFixed);
  for (uint32_t i = 0; i < count; ++i) {
    if (rest.size() < 3) return Status::Corruption("chain entry is truncated");
    ChainChange change;
    const uint8_t op = static_cast<uint8_t>(rest[0]);
    if (op != static_cast<uint8_t>(ChainOp::kPut) && op != static_cast<uint8_t>(ChainOp::kDelete)) {
      return Status::Corruption("unknown chain op " + std::to_string(op));
    }
    change.op = static_cast<ChainOp>(op);
    const size_t key_size = ReadU16(rest.data() + 1);
    rest.remove_prefix(3);
    const size_t hash_size = change.op == ChainOp::kPut ? kHash : 0;
    if (key_size > kMaxChainKeyBytes || rest.size() < key_size + hash_size) {
      return Status::Corruption("chain entry is truncated");
    }
    change.key.assign(rest.substr(0, key_size));
    rest.remove_prefix(key_size);
    if (hash_size > 0) {
      std::memcpy(change.value_hash.data(), rest.data(), kHash);
      rest.remove_prefix(kHash);
    }
    entry.changes.push_back(std::move(change));
  }
  if (!rest.empty()) return Status::Corruption("trailing bytes after the chain entry");
  return entry;
}

std::string EncodeHead(const ChainHead& head) {
  std::string out;
  AppendU64(out, head.seq);
  out.append(AsView(head.hash));
  return out;
}

Result<ChainHead> DecodeHead(std::string_view bytes) {
  if (bytes.size() != kHeadBytes) return Status::Corruption("meta/head is not 40 bytes");
  ChainHead head;
  head.seq = ReadU64(bytes.data());
  std::memcpy(head.hash.data(), bytes.data() + 8, 32);
  return head;
}

Result<std::string> EncodeReservation(const Reservation& reservation) {
  if (reservation.expires_ms < 0) return Status::InvalidArgument("reservation expires before the epoch");
  auto usage = EncodeUsage(reservation.usage);
  if (!usage.ok()) return usage.status();
  std::string out(AsView(reservation.provider));
  AppendU64(out, TimeKey(reservation.expires_ms));
  out += *usage;
  return out;
}

Result<Reservation> DecodeReservation(const MessageId& bid_id, std::string_view bytes) {
  constexpr size_t kFixed = market::kPublicKeyBytes + 8;
  if (bytes.size() < kFixed) return Status::Corruption("reservation value is too short");
  Reservation reservation;
  reservation.bid_id = bid_id;
  std::memcpy(reservation.provider.data(), bytes.data(), market::kPublicKeyBytes);
  const uint64_t expires = ReadU64(bytes.data() + market::kPublicKeyBytes);
  if (expires > static_cast<uint64_t>(INT64_MAX)) return Status::Corruption("reservation expiry out of range");
  reservation.expires_ms = static_cast<int64_t>(expires);
  auto usage = DecodeUsage(bytes.substr(kFixed));
  if (!usage.ok()) return usage.status();
  reservation.usage = std::move(usage).value();
  return reservation;
}

Result<Signed<market::Lease>> DecodeStoredLease(const MessageId& id, std::string_view bytes) {
  return DecodeStored<market::Lease>(&id, bytes, MessageType::kLease, market::DecodeLease);
}
Result<Signed<market::Close>> DecodeStoredClose(std::string_view bytes) {
  return DecodeStored<market::Close>(nullptr, bytes, MessageType::kClose, market::DecodeClose);
}
Result<Signed<market::Attestation>> DecodeStoredAttestation(std::string_view bytes) {
  return DecodeStored<market::Attestation>(nullptr, bytes, MessageType::kAttestation, market::DecodeAttestation);
}
Result<Signed<market::Order>> DecodeStoredOrder(const MessageId& id, std::string_view bytes) {
  return DecodeStored<market::Order>(&id, bytes, MessageType::kOrder, market::DecodeOrder);
}
Result<Signed<market::Bid>> DecodeStoredBid(const MessageId& id, std::string_view bytes) {
  return DecodeStored<market::Bid>(&id, bytes, MessageType::kBid, market::DecodeBid);
}

Result<PreparedWrite> Prepare(LedgerWrite write) {
  PreparedWrite prepared{std::move(write), {}, {}};
  Status status;
  if (const auto* order = std::get_if<RecordOrder>(&prepared.write)) status = PrepareRecord(order->order, prepared);
  if (const auto* bid = std::get_if<RecordBid>(&prepared.write)) status = PrepareRecord(bid->bid, prepared);
  if (const auto* lease = std::get_if<RecordLease>(&prepared.write)) {
    // A lease is stored only when it is exactly the bid its tenant accepted, countersigned by
    // that bid's provider: the same rules OpenLease and verify apply (docs/PROTOCOL.md).
    status = market::CheckLeaseBinding(lease->lease);
    if (status.ok()) status = PrepareRecord(lease->lease, prepared);
  }
  if (const auto* close = std::get_if<RecordClose>(&prepared.write)) status = PrepareRecord(close->close, prepared);
  if (const auto* attestation = std::get_if<RecordAttestation>(&prepared.write)) {
    status = PrepareRecord(attestation->attestation, prepared);
  }
  if (!status.ok()) return status;
  return prepared;
}

namespace {

template <typename Body>
Result<Signed<Body>> DecodeVerified(market::Envelope envelope, Result<Body> (*decode)(std::span<const uint8_t>)) {
  Result<Body> body = decode(envelope.body);
  if (!body.ok()) return body.status();
  Signed<Body> message;
  message.id = market::ComputeId(envelope);
  message.envelope = std::move(envelope);
  message.body = std::move(body).value();
  return message;
}

}  // namespace

Result<LedgerWrite> DecodeVerifiedRecord(std::span<const uint8_t> envelope_bytes) {
  auto envelope = market::DecodeEnvelope(envelope_bytes);
  if (!envelope.ok()) return envelope.status();
  const MessageType type = envelope->type;
  switch (type) {
    case MessageType::kLease: {
      auto lease = DecodeVerified<market::Lease>(std::move(envelope).value(), &market::DecodeLease);
      if (!lease.ok()) return lease.status();
      return LedgerWrite{RecordLease{std::move(lease).value()}};
    }
    case MessageType::kClose: {
      auto close = DecodeVerified<market::Close>(std::move(envelope).value(), &market::DecodeClose);
      if (!close.ok()) return close.status();
      return LedgerWrite{RecordClose{std::move(close).value()}};
    }
    case MessageType::kAttestation: {
      auto attestation = DecodeVerified<market::Attestation>(std::move(envelope).value(), &market::DecodeAttestation);
      if (!attestation.ok()) return attestation.status();
      return LedgerWrite{RecordAttestation{std::move(attestation).value()}};
    }
    default:
      break;
  }
  return Status::InvalidArgument("the ledger does not record gossiped " + std::string(market::ToString(type)) +
                                 " messages");
}

Result<LedgerWrite> OpenRecord(std::span<const uint8_t> envelope_bytes) {
  auto envelope = market::DecodeEnvelope(envelope_bytes);
  if (!envelope.ok()) return envelope.status();
  // Records are re-checked long after they expire, so time is not checked here.
  constexpr int64_t kAnyTime = 0;
  switch (envelope->type) {
    case MessageType::kOrder: {
      auto order = market::OpenSigned<market::Order>(envelope_bytes, kAnyTime, market::Freshness::kIgnore);
      if (!order.ok()) return order.status();
      return LedgerWrite{RecordOrder{std::move(order).value()}};
    }
    case MessageType::kBid: {
      auto bid = market::OpenSigned<market::Bid>(envelope_bytes, kAnyTime, market::Freshness::kIgnore);
      if (!bid.ok()) return bid.status();
      return LedgerWrite{RecordBid{std::move(bid).value()}};
    }
    case MessageType::kLease: {
      auto lease = market::OpenLease(envelope_bytes);
      if (!lease.ok()) return lease.status();
      return LedgerWrite{RecordLease{std::move(lease).value()}};
    }
    case MessageType::kClose: {
      auto close = market::OpenSigned<market::Close>(envelope_bytes, kAnyTime, market::Freshness::kIgnore);
      if (!close.ok()) return close.status();
      return LedgerWrite{RecordClose{std::move(close).value()}};
    }
    case MessageType::kAttestation: {
      auto attestation = market::OpenSigned<market::Attestation>(envelope_bytes, kAnyTime, market::Freshness::kIgnore);
      if (!attestation.ok()) return attestation.status();
      return LedgerWrite{RecordAttestation{std::move(attestation).value()}};
    }
    case MessageType::kOffer:
    case MessageType::kAccept:
      break;
  }
  return Status::InvalidArgument("the ledger does not record " + std::string(market::ToString(envelope->type)) +
                                 " messages on their own");
}

// ---------------------------------------------------------------------------------------------

LedgerStore::LedgerStore(std::string path, const LedgerOptions& options) : path_(std::move(path)), options_(options) {}
LedgerStore::~LedgerStore() = default;

Result<std::unique_ptr<LedgerStore>> LedgerStore::Open(const std::string& path, const LedgerOptions& options) {
  std::unique_ptr<LedgerStore> store(new LedgerStore(path, options));
  if (Status status = store->Init(); !status.ok()) return status;
  return store;
}

Status LedgerStore::Init() {
  block_cache_.reset(leveldb::NewLRUCache(options_.block_cache_bytes));
  filter_policy_.reset(leveldb::NewBloomFilterPolicy(kBloomBitsPerKey));
  leveldb::Options options;
  options.create_if_missing = options_.create_if_missing;
  options.paranoid_checks = true;
  options.block_cache = block_cache_.get();
  options.filter_policy = filter_policy_.get();
  options.write_buffer_size = options_.write_buffer_bytes;
  // Records are signed msgpack full of keys, hashes and signatures: snappy gains little and
  // would cost the writer CPU in every flush and compaction.
  options.compression = leveldb::kNoCompression;
  options.env = options_.env != nullptr ? options_.env : PreadEnv();
  options.max_open_files = kMaxOpenTables;
  leveldb::DB* raw = nullptr;
  const leveldb::Status opened = leveldb::DB::Open(options, path_, &raw);
  if (!opened.ok()) return FromLevelDb(opened, "opening ledger " + path_);
  db_.reset(raw);

  leveldb::ReadOptions read;
  read.verify_checksums = true;
  auto schema = DbGet(db_.get(), read, keys::kSchemaKey);
  if (!schema.ok()) return schema.status().WithContext("ledger " + path_);
  if (!schema->has_value()) {
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read));
    it->SeekToFirst();
    if (it->Valid()) return Status::Corruption("ledger " + path_ + ": not a gpumart ledger (no meta/schema key)");
    if (!it->status().ok()) return FromLevelDb(it->status(), "ledger " + path_);
    std::string version;
    AppendU32(version, kSchemaVersion);
    leveldb::WriteOptions write;
    write.sync = true;
    const leveldb::Status written = db_->Put(write, std::string(keys::kSchemaKey), version);
    if (!written.ok()) return FromLevelDb(written, "initialising ledger " + path_);
    return Status::Ok();
  }
  if ((*schema)->size() != kSchemaBytes) {
    return Status::Corruption("ledger " + path_ + ": meta/schema is " + std::to_string((*schema)->size()) +
                              " bytes, expected 4");
  }
  const uint32_t version = ReadU32((*schema)->data());
  if (version > kSchemaVersion) {
    return Status::FailedPrecondition("ledger " + path_ + " has schema version " + std::to_string(version) +
                                      ", newer than this gpumart supports (" + std::to_string(kSchemaVersion) +
                                      "); upgrade gpumart to open it");
  }
  if (version == 0) return Status::Corruption("ledger " + path_ + ": schema version 0 is not valid");
  if (version < kSchemaVersion) {
    // Records of an older wire format do not decode with today's strict decoders; there is no
    // conversion (a lease cannot gain the signed bid it never carried).
    return Status::FailedPrecondition("ledger " + path_ + " has schema version " + std::to_string(version) +
                                      ", older than this gpumart reads (" + std::to_string(kSchemaVersion) +
                                      "); its records cannot be converted: start with a fresh data dir");
  }
  auto head = DbGet(db_.get(), read, keys::kHeadKey);
  if (!head.ok()) return head.status().WithContext("ledger " + path_);
  if (head->has_value()) {
    auto decoded = DecodeHead(**head);
    if (!decoded.ok()) return decoded.status().WithContext("ledger " + path_);
    head_ = *decoded;
  }
  return Status::Ok();
}

Status LedgerStore::ApplyRound(std::span<const PreparedWrite* const> writes, int64_t now_ms,
                               std::vector<Status>& results) {
  Round round(db_.get(), head_, now_ms);
  results.assign(writes.size(), Status::Ok());
  for (size_t i = 0; i < writes.size(); ++i) {
    results[i] = round.EndRequest(ApplyWrite(round, *writes[i], options_));
  }
  const Status committed = round.Commit();
  if (!committed.ok()) {
    for (auto& result : results) {
      if (result.ok()) result = committed;
    }
    return committed;
  }
  head_ = round.head();
  return Status::Ok();
}

Status LedgerStore::Write(const PreparedWrite& write, int64_t now_ms) {
  const PreparedWrite* writes[] = {&write};
  std::vector<Status> results;
  ApplyRound(writes, now_ms, results);
  return results.front();
}

// ---------------------------------------------------------------------------------------------
// Reads.

namespace {

Result<LeaseRecord> ReadLease(leveldb::DB* db, const leveldb::ReadOptions& options, const MessageId& lease_id) {
  auto value = DbGet(db, options, keys::Id(keys::kLease, lease_id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::NotFound("no lease " + Hex(lease_id));
  auto lease = DecodeStoredLease(lease_id, **value);
  if (!lease.ok()) return lease.status().WithContext(keys::Describe(keys::Id(keys::kLease, lease_id)));
  LeaseRecord record;
  record.id = lease_id;
  record.envelope = std::move(lease->envelope);
  record.lease = std::move(lease->body);
  auto close_value = DbGet(db, options, keys::Id(keys::kClose, lease_id));
  if (!close_value.ok()) return close_value.status();
  if (close_value->has_value()) {
    auto close = DecodeStoredClose(**close_value);
    if (!close.ok()) return close.status().WithContext(keys::Describe(keys::Id(keys::kClose, lease_id)));
    record.state = LeaseState::kClosed;
    record.close_envelope = std::move(close->envelope);
    record.close = std::move(close->body);
    auto bill_value = DbGet(db, options, keys::Id(keys::kBill, lease_id));
    if (!bill_value.ok()) return bill_value.status();
    if (bill_value->has_value()) {
      auto billing = DecodeBilling(**bill_value);
      if (!billing.ok()) return billing.status().WithContext(keys::Describe(keys::Id(keys::kBill, lease_id)));
      record.billing = *billing;
    }
  }
  return record;
}

}  // namespace

Result<LeaseRecord> LedgerStore::GetLease(const MessageId& lease_id) const {
  SnapshotRead read(db_.get());
  return ReadLease(db_.get(), read.options(), lease_id);
}

Result<LeasePage> LedgerStore::Leases(const LeaseQuery& query) const {
  const size_t limit = std::clamp<size_t>(query.limit, 1, kMaxPageSize);
  std::string prefix;
  if (query.tenant) {
    prefix = keys::Id(keys::kLeaseByTenant, *query.tenant);
  } else if (query.provider) {
    prefix = keys::Id(keys::kLeaseByProvider, *query.provider);
  } else if (query.state) {
    prefix = std::string(keys::kLeaseByState) + static_cast<char>(*query.state);
  } else {
    prefix = std::string(keys::kLease);
  }
  SnapshotRead read(db_.get());
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read.options()));
  std::string start = prefix;
  if (query.after) start.append(AsView(*query.after));
  LeasePage page;
  for (it->Seek(start); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    if (key.size() != prefix.size() + market::kIdBytes) continue;  // verify reports malformed keys
    const MessageId lease_id = *keys::TrailingId(key);
    if (query.after && lease_id == *query.after) continue;
    auto record = ReadLease(db_.get(), read.options(), lease_id);
    if (!record.ok()) {
      if (record.status().code() == Status::Code::kNotFound) continue;  // dangling index entry
      return record.status();
    }
    if (query.provider && record->provider() != *query.provider) continue;
    if (query.tenant && record->lease.tenant != *query.tenant) continue;
    if (query.state && record->state != *query.state) continue;
    page.leases.push_back(std::move(record).value());
    if (page.leases.size() == limit) {
      page.next_after = lease_id;
      break;
    }
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "listing leases");
  return page;
}

Result<OrderPage> LedgerStore::OpenOrders(int64_t now_ms, size_t limit, std::optional<MessageId> after) const {
  limit = std::clamp<size_t>(limit, 1, kMaxPageSize);
  const std::string prefix(keys::kOpenOrder);
  SnapshotRead read(db_.get());
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read.options()));
  std::string start = prefix;
  if (after) start.append(AsView(*after));
  OrderPage page;
  for (it->Seek(start); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    if (key.size() != prefix.size() + market::kIdBytes) continue;
    const MessageId order_id = *keys::TrailingId(key);
    if (after && order_id == *after) continue;
    auto value = DbGet(db_.get(), read.options(), keys::Id(keys::kOrder, order_id));
    if (!value.ok()) return value.status();
    if (!value->has_value()) continue;
    auto order = DecodeStoredOrder(order_id, **value);
    if (!order.ok()) return order.status().WithContext(keys::Describe(keys::Id(keys::kOrder, order_id)));
    if (order->envelope.expires_ms <= now_ms) continue;
    page.orders.push_back(std::move(order).value());
    if (page.orders.size() == limit) {
      page.next_after = order_id;
      break;
    }
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "listing open orders");
  return page;
}

Result<Signed<market::Order>> LedgerStore::GetOrder(const MessageId& order_id) const {
  auto value = DbGet(db_.get(), leveldb::ReadOptions(), keys::Id(keys::kOrder, order_id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::NotFound("no order " + Hex(order_id));
  return DecodeStoredOrder(order_id, **value);
}

Result<Signed<market::Bid>> LedgerStore::GetBid(const MessageId& bid_id) const {
  auto value = DbGet(db_.get(), leveldb::ReadOptions(), keys::Id(keys::kBid, bid_id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::NotFound("no bid " + Hex(bid_id));
  return DecodeStoredBid(bid_id, **value);
}

Result<Reservation> LedgerStore::GetReservation(const MessageId& bid_id) const {
  auto value = DbGet(db_.get(), leveldb::ReadOptions(), keys::Id(keys::kReservation, bid_id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::NotFound("no reservation for bid " + Hex(bid_id));
  return DecodeReservation(bid_id, **value);
}

namespace {

// Every reservation of `provider` the snapshot holds, through its index, decoded, in bid-id order;
// stops at the first error `visit` returns.
template <typename Visit>
Status ForEachReservationOf(leveldb::DB* db, const leveldb::ReadOptions& options, const PublicKey& provider,
                            Visit&& visit) {
  std::unique_ptr<leveldb::Iterator> it(db->NewIterator(options));
  const std::string prefix = keys::Id(keys::kReservationByProvider, provider);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    const MessageId bid_id = *keys::TrailingId(key);
    auto value = DbGet(db, options, keys::Id(keys::kReservation, bid_id));
    if (!value.ok()) return value.status();
    if (!value->has_value()) continue;
    auto reservation = DecodeReservation(bid_id, **value);
    if (!reservation.ok()) return reservation.status().WithContext(keys::Describe(keys::Id(keys::kReservation, bid_id)));
    GPUMART_RETURN_IF_ERROR(visit(std::move(reservation).value()));
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "reading reservations");
  return Status::Ok();
}

}  // namespace

Result<Usage> LedgerStore::UsedCapacity(const PublicKey& provider, int64_t now_ms) const {
  SnapshotRead read(db_.get());
  Usage used;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read.options()));
  const std::string lease_prefix = keys::Id(keys::kLeaseByProvider, provider);
  for (it->Seek(lease_prefix); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(lease_prefix)) break;
    const MessageId lease_id = *keys::TrailingId(key);
    auto closed = DbGet(db_.get(), read.options(), keys::Id(keys::kClose, lease_id));
    if (!closed.ok()) return closed.status();
    if (closed->has_value()) continue;
    auto usage_value = DbGet(db_.get(), read.options(), keys::Id(keys::kUsage, lease_id));
    if (!usage_value.ok()) return usage_value.status();
    if (!usage_value->has_value()) continue;
    auto usage = DecodeUsage(**usage_value);
    if (!usage.ok()) return usage.status().WithContext(keys::Describe(keys::Id(keys::kUsage, lease_id)));
    market::AddUsage(used, *usage);
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "reading capacity");
  GPUMART_RETURN_IF_ERROR(ForEachReservationOf(db_.get(), read.options(), provider, [&](Reservation reservation) {
    if (reservation.expires_ms > now_ms) market::AddUsage(used, reservation.usage);
    return Status::Ok();
  }));
  return used;
}

Result<std::vector<Reservation>> LedgerStore::ReservationsOf(const PublicKey& provider, size_t max) const {
  SnapshotRead read(db_.get());
  std::vector<Reservation> reservations;
  GPUMART_RETURN_IF_ERROR(ForEachReservationOf(db_.get(), read.options(), provider, [&](Reservation reservation) {
    if (reservations.size() == max) {
      return Status::LimitExceeded("provider holds more than " + std::to_string(max) + " reservations");
    }
    reservations.push_back(std::move(reservation));
    return Status::Ok();
  }));
  return reservations;
}

Result<LeaseOutcomes> LedgerStore::ProviderOutcomes(const PublicKey& provider) const {
  SnapshotRead read(db_.get());
  LeaseOutcomes outcomes;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read.options()));
  const std::string prefix = keys::Id(keys::kLeaseByProvider, provider);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    if (key.size() != prefix.size() + market::kIdBytes) continue;  // verify reports malformed keys
    const MessageId lease_id = *keys::TrailingId(key);
    auto close_value = DbGet(db_.get(), read.options(), keys::Id(keys::kClose, lease_id));
    if (!close_value.ok()) return close_value.status();
    if (!close_value->has_value()) {
      ++outcomes.active;
      continue;
    }
    auto close = DecodeStoredClose(**close_value);
    if (!close.ok()) return close.status().WithContext(keys::Describe(keys::Id(keys::kClose, lease_id)));
    switch (OutcomeOf(close->body.reason)) {
      case LeaseOutcome::kCompleted: ++outcomes.completed; break;
      case LeaseOutcome::kFailed: ++outcomes.failed; break;
      case LeaseOutcome::kNeutral: ++outcomes.neutral; break;
    }
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "reading lease outcomes");
  const std::string violations = keys::Id(keys::kViolation, provider);
  for (it->Seek(violations); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(violations)) break;
    if (key.size() == violations.size() + market::kIdBytes) ++outcomes.violations;  // verify reports others
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "reading violations");
  return outcomes;
}

Result<std::vector<Signed<market::Attestation>>> LedgerStore::Attestations(const PublicKey& provider,
                                                                          std::span<const PublicKey> auditors) const {
  SnapshotRead read(db_.get());
  std::vector<Signed<market::Attestation>> found;
  std::set<PublicKey> asked;
  for (const PublicKey& auditor : auditors) {
    if (!asked.insert(auditor).second) continue;
    const std::string key = keys::Pair(keys::kAttestation, provider, auditor);
    auto value = DbGet(db_.get(), read.options(), key);
    if (!value.ok()) return value.status();
    if (!value->has_value()) continue;
    auto attestation = DecodeStoredAttestation(**value);
    if (!attestation.ok()) return attestation.status().WithContext(keys::Describe(key));
    // The key is the record's own (the write path files it so); a record moved to another key
    // speaks for nobody here (verify reports it).
    if (attestation->body.provider != provider || attestation->envelope.signer != auditor) continue;
    found.push_back(std::move(attestation).value());
  }
  return found;
}

Result<std::vector<std::string>> LedgerStore::PassingAuditors(const PublicKey& provider) const {
  SnapshotRead read(db_.get());
  std::vector<std::string> passing;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read.options()));
  const std::string prefix = keys::Id(keys::kAttestation, provider);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    if (key.size() != prefix.size() + market::kIdBytes) continue;  // verify reports malformed keys
    auto attestation = DecodeStoredAttestation(std::string_view(it->value().data(), it->value().size()));
    if (!attestation.ok()) return attestation.status().WithContext(keys::Describe(key));
    // As in Attestations: a record filed under another pair's key speaks for nobody here.
    if (attestation->body.provider != provider || attestation->envelope.signer != *keys::TrailingId(key)) continue;
    if (attestation->body.verdict == market::AuditVerdict::kPass) passing.push_back(market::ToHex(attestation->envelope.signer));
  }
  if (!it->status().ok()) return FromLevelDb(it->status(), "reading attestations");
  return passing;
}

Result<uint32_t> LedgerStore::Reputation(const PublicKey& provider, std::span<const PublicKey> auditors) const {
  auto outcomes = ProviderOutcomes(provider);
  if (!outcomes.ok()) return outcomes.status();
  auto attestations = Attestations(provider, auditors);
  if (!attestations.ok()) return attestations.status();
  AuditVerdicts verdicts;
  for (const auto& attestation : *attestations) {
    switch (attestation.body.verdict) {
      case market::AuditVerdict::kPass: ++verdicts.passes; break;
      case market::AuditVerdict::kFail: ++verdicts.fails; break;
    }
  }
  return ReputationPpm(*outcomes, verdicts);
}

Result<std::vector<market::NodeCapacity>> LedgerStore::FreeCapacity(const PublicKey& provider,
                                                                    const std::vector<market::NodeCapacity>& inventory,
                                                                    int64_t now_ms) const {
  auto used = UsedCapacity(provider, now_ms);
  if (!used.ok()) return used.status();
  return SubtractUsage(inventory, *used);
}

}  // namespace gpumart::ledger
