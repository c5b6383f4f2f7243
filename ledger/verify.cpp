#include "ledger/verify.h"

#include <leveldb/db.h>

#include <map>
#include <optional>
#include <set>

#include "ledger/keys.h"

namespace gpumart::ledger {
namespace {

using market::Signed;

std::span<const uint8_t> AsSpan(std::string_view bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

struct ChainFact {
  uint64_t seq = 0;
  ChainOp op = ChainOp::kPut;
  MessageId value_hash{};
};
struct LeaseFacts {
  PublicKey tenant{};
  PublicKey provider{};
  MessageId order_id{};
  int64_t start_ms = 0;
  uint64_t price_per_hour = 0;
  std::optional<market::SpotTerms> spot;
};
struct CloseFacts {
  PublicKey signer{};
  market::CloseReason reason = market::CloseReason::kTenantClosed;
  int64_t closed_ms = 0;
  std::optional<Signed<market::Close>> preemption;  // the whole Close, for a preemption only
};
struct TimedFacts {
  MessageId order_id{};
  int64_t expires_ms = 0;
};

// Walks the snapshot once per family and stops at the first problem.
class Verifier {
 public:
  explicit Verifier(const LedgerStore& store) : db_(store.db()), snapshot_(db_->GetSnapshot()) {
    read_.snapshot = snapshot_;
    read_.verify_checksums = true;
    read_.fill_cache = false;
  }
  ~Verifier() { db_->ReleaseSnapshot(snapshot_); }
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  VerifyReport Run() {
    // Each check runs only when everything before it passed, so the report names the first problem.
    const bool passed = CheckSchema() && CheckChain() && CheckRecords() && CheckCrossReferences() &&
                        CheckChainTargets() && CheckIndexes();
    report_.ok = passed;
    return report_;
  }

 private:
  bool Fail(std::string_view key, std::string problem) {
    report_.ok = false;
    report_.key = keys::Describe(key);
    report_.problem = std::move(problem);
    return false;
  }
  bool FailIterator(const leveldb::Iterator& it, std::string_view family) {
    if (it.status().ok()) return true;
    report_.ok = false;
    report_.key = std::string(family);
    report_.problem = "LevelDB cannot read this range: " + it.status().ToString();
    return false;
  }

  bool CheckSchema() {
    std::string value;
    const leveldb::Status status = db_->Get(read_, std::string(keys::kSchemaKey), &value);
    if (!status.ok()) return Fail(keys::kSchemaKey, "cannot read the schema version: " + status.ToString());
    if (value.size() != 4 || ReadU32(value.data()) != kSchemaVersion) {
      return Fail(keys::kSchemaKey, "schema version is not " + std::to_string(kSchemaVersion));
    }
    return true;
  }

  bool CheckChain() {
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read_));
    const std::string prefix(keys::kChain);
    uint64_t expected_seq = 1;
    MessageId prev_hash{};
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      if (!key.starts_with(prefix)) break;
      const auto seq = keys::ChainSeqOf(key);
      if (!seq) return Fail(key, "malformed chain key");
      if (*seq != expected_seq) {
        return Fail(keys::ChainSeq(expected_seq), "chain entry " + std::to_string(expected_seq) +
                                                      " is missing (next present entry is " + std::to_string(*seq) + ")");
      }
      const std::string_view value(it->value().data(), it->value().size());
      auto entry = DecodeChainEntry(value);
      if (!entry.ok()) return Fail(key, "chain entry does not decode: " + entry.status().message());
      if (entry->seq != *seq) return Fail(key, "chain entry says seq " + std::to_string(entry->seq));
      if (entry->prev_hash != prev_hash) {
        return Fail(key, "prev_hash does not match the hash of chain entry " + std::to_string(*seq - 1) +
                             " (an earlier entry was altered)");
      }
      prev_hash = HashBytes(value);
      for (const auto& change : entry->changes) {
        if (!keys::IsChained(change.key)) return Fail(key, "chain entry names a key that is never chained");
        facts_[change.key] = ChainFact{*seq, change.op, change.value_hash};  // later entries win
      }
      ++report_.chain_entries;
      ++expected_seq;
    }
    if (!FailIterator(*it, prefix)) return false;
    const ChainHead last{expected_seq - 1, prev_hash};
    std::string head_value;
    const leveldb::Status status = db_->Get(read_, std::string(keys::kHeadKey), &head_value);
    if (status.IsNotFound()) {
      if (last.seq != 0) return Fail(keys::kHeadKey, "missing, but the chain has " + std::to_string(last.seq) + " entries");
      return true;
    }
    if (!status.ok()) return Fail(keys::kHeadKey, "cannot read: " + status.ToString());
    auto head = DecodeHead(head_value);
    if (!head.ok()) return Fail(keys::kHeadKey, head.status().message());
    if (!(*head == last)) {
      return Fail(keys::kHeadKey, "head is seq " + std::to_string(head->seq) + " " + market::ToHex(head->hash) +
                                      " but the chain ends at seq " + std::to_string(last.seq) + " " +
                                      market::ToHex(last.hash) + " (entries were removed or added)");
    }
    report_.head = last;
    return true;
  }

  // A chained key's value must be what its last chain entry recorded.
  bool CheckChained(std::string_view key, std::string_view value) {
    const auto fact = facts_.find(std::string(key));
    if (fact == facts_.end()) return Fail(key, "not in the hash chain (written behind the ledger's back)");
    if (fact->second.op != ChainOp::kPut) {
      return Fail(key, "present, but chain entry " + std::to_string(fact->second.seq) + " deleted it");
    }
    if (fact->second.value_hash != HashBytes(value)) {
      return Fail(key, "value differs from the hash chain entry " + std::to_string(fact->second.seq) +
                           " recorded (the record was altered)");
    }
    present_.insert(std::string(key));
    return true;
  }

  template <typename Body>
  bool CheckSignedId(std::string_view key, const Signed<Body>& message) {
    const MessageId computed = market::ComputeId(message.envelope);
    if (computed != message.id) {
      return Fail(key, "record altered or misplaced: its message id is " + market::ToHex(computed) +
                           ", not the id in its key");
    }
    return true;
  }

  // An order or bid record: it decodes, its id matches its key, its one signature verifies.
  template <typename Body>
  bool CheckSingleSigned(std::string_view key, const Result<Signed<Body>>& message, const std::string& what) {
    if (!message.ok()) return Fail(key, what + " does not decode: " + message.status().ToString());
    if (!CheckSignedId(key, *message)) return false;
    if (Status status = market::VerifySignature(message->envelope); !status.ok()) {
      return Fail(key, what + " fails verification: " + status.ToString());
    }
    ++report_.signatures;
    return true;
  }

  // An attestation: it decodes, it is filed under its own provider and auditor (the signer),
  // its signature verifies.
  bool CheckAttestation(std::string_view key, std::string_view value) {
    auto attestation = DecodeStoredAttestation(value);
    if (!attestation.ok()) return Fail(key, "attestation does not decode: " + attestation.status().ToString());
    if (key != keys::Pair(keys::kAttestation, attestation->body.provider, attestation->envelope.signer)) {
      return Fail(key, "attestation misplaced: it is by auditor " + market::ToHex(attestation->envelope.signer) +
                           " about provider " + market::ToHex(attestation->body.provider));
    }
    if (Status status = market::VerifySignature(attestation->envelope); !status.ok()) {
      return Fail(key, "attestation fails verification: " + status.ToString());
    }
    ++report_.signatures;
    ++report_.records;
    return CheckChained(key, value);
  }

  // A refused preemption: it decodes, it is filed under its signer and its own id, its signature
  // verifies. That it broke the rules is checked with the lease (CheckCrossReferences).
  bool CheckViolation(std::string_view key, std::string_view value) {
    auto close = DecodeStoredClose(value);
    if (!close.ok()) return Fail(key, "violation does not decode: " + close.status().ToString());
    if (key != keys::Pair(keys::kViolation, close->envelope.signer, close->id)) {
      return Fail(key, "violation misplaced: it is close " + market::ToHex(close->id) + " signed by " +
                           market::ToHex(close->envelope.signer));
    }
    if (close->body.reason != market::CloseReason::kPreempted) return Fail(key, "violation is not a preemption close");
    if (Status status = market::VerifySignature(close->envelope); !status.ok()) {
      return Fail(key, "violation fails verification: " + status.ToString());
    }
    ++report_.signatures;
    ++report_.records;
    violations_.emplace(std::string(key), std::move(close).value());
    return CheckChained(key, value);
  }

  bool CheckRecord(std::string_view key, std::string_view value) {
    if (key.starts_with(keys::kAttestation)) return CheckAttestation(key, value);
    if (key.starts_with(keys::kViolation)) return CheckViolation(key, value);
    if (key.size() < market::kIdBytes) return Fail(key, "malformed key");
    const auto id_in_key = keys::TrailingId(key);
    const auto family = key.substr(0, key.size() - market::kIdBytes);
    if (family != keys::kOrder && family != keys::kBid && family != keys::kLease && family != keys::kClose &&
        family != keys::kBill && family != keys::kUsage && family != keys::kReservation) {
      return Fail(key, "malformed key");
    }
    const MessageId id = *id_in_key;
    if (family == keys::kLease) {
      auto lease = DecodeStoredLease(id, value);
      if (!lease.ok()) return Fail(key, "lease does not decode: " + lease.status().ToString());
      if (!CheckSignedId(key, *lease)) return false;
      // Both signatures and that they agree (provider, tenant, order, bid).
      auto opened = market::OpenLease(AsSpan(value));
      if (!opened.ok()) return Fail(key, "lease fails verification: " + opened.status().ToString());
      report_.signatures += 2;
      leases_[id] = LeaseFacts{lease->body.tenant, lease->envelope.signer, lease->body.order_id,
                               lease->body.start_ms, lease->body.price_per_hour, lease->body.spot};
    } else if (family == keys::kClose) {
      auto close = DecodeStoredClose(value);
      if (!close.ok()) return Fail(key, "close does not decode: " + close.status().ToString());
      if (Status status = market::VerifySignature(close->envelope); !status.ok()) {
        return Fail(key, "close fails verification: " + status.ToString());
      }
      ++report_.signatures;
      if (close->body.lease_id != id) return Fail(key, "close names lease " + market::ToHex(close->body.lease_id));
      CloseFacts facts{close->envelope.signer, close->body.reason, close->body.closed_ms, std::nullopt};
      if (close->body.reason == market::CloseReason::kPreempted) facts.preemption = std::move(close).value();
      closes_[id] = std::move(facts);
    } else if (family == keys::kOrder) {
      auto order = DecodeStoredOrder(id, value);
      if (!CheckSingleSigned(key, order, "order")) return false;
      orders_[id] = TimedFacts{id, order->envelope.expires_ms};
    } else if (family == keys::kBid) {
      auto bid = DecodeStoredBid(id, value);
      if (!CheckSingleSigned(key, bid, "bid")) return false;
      bids_[id] = TimedFacts{bid->body.order_id, bid->envelope.expires_ms};
    } else if (family == keys::kBill) {
      auto billing = DecodeBilling(value);
      if (!billing.ok()) return Fail(key, billing.status().message());
      bills_[id] = *billing;
      ++report_.derived_values;
    } else if (family == keys::kUsage) {
      auto usage = DecodeUsage(value);
      if (!usage.ok()) return Fail(key, usage.status().message());
      usages_.insert(id);
      ++report_.derived_values;
    } else {
      auto reservation = DecodeReservation(id, value);
      if (!reservation.ok()) return Fail(key, reservation.status().message());
      reservations_[id] = *reservation;
      ++report_.derived_values;
    }
    if (family != keys::kBill && family != keys::kUsage && family != keys::kReservation) ++report_.records;
    return CheckChained(key, value);
  }

  bool CheckRecords() {
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      if (key.starts_with(keys::kChain) || key.starts_with(keys::kIndex)) continue;
      if (key == keys::kSchemaKey || key == keys::kHeadKey) continue;
      if (!keys::IsChained(key)) return Fail(key, "unknown key");
      if (!CheckRecord(key, std::string_view(it->value().data(), it->value().size()))) return false;
    }
    return FailIterator(*it, "<records>");
  }

  bool CheckCrossReferences() {
    for (const auto& [lease_id, close] : closes_) {
      const std::string key = keys::Id(keys::kClose, lease_id);
      const auto lease = leases_.find(lease_id);
      if (lease == leases_.end()) return Fail(key, "closes a lease that is not recorded");
      const LeaseFacts& facts = lease->second;
      if (Status status = CheckCloser(close.signer, facts.tenant, facts.provider, close.reason); !status.ok()) {
        return Fail(key, status.message());
      }
      if (close.preemption) {
        if (Status status = CheckPreemption(*close.preemption, facts.provider, facts.spot); !status.ok()) {
          return Fail(key, status.message());
        }
      }
      auto expected = ComputeBilling(facts.price_per_hour, facts.start_ms, close.closed_ms);
      if (!expected.ok()) return Fail(key, expected.status().message());
      const auto bill = bills_.find(lease_id);
      if (bill == bills_.end()) return Fail(keys::Id(keys::kBill, lease_id), "missing billing for a closed lease");
      if (!(bill->second == *expected)) {
        return Fail(keys::Id(keys::kBill, lease_id),
                    "billing says " + std::to_string(bill->second.duration_ms) + " ms / " +
                        std::to_string(bill->second.amount_owed) + ", expected " +
                        std::to_string(expected->duration_ms) + " ms / " + std::to_string(expected->amount_owed));
      }
    }
    for (const auto& [key, close] : violations_) {
      const auto lease = leases_.find(close.body.lease_id);
      if (lease == leases_.end()) return Fail(key, "violation closes a lease that is not recorded");
      if (lease->second.provider != close.envelope.signer) return Fail(key, "violation is not by the lease's provider");
      if (CheckPreemption(close, lease->second.provider, lease->second.spot).ok()) {
        return Fail(key, "recorded as a violation, but the preemption keeps the rules");
      }
    }
    for (const auto& [lease_id, bill] : bills_) {
      if (!closes_.contains(lease_id)) return Fail(keys::Id(keys::kBill, lease_id), "billing for a lease that is not closed");
    }
    for (const auto& lease_id : usages_) {
      if (!leases_.contains(lease_id)) return Fail(keys::Id(keys::kUsage, lease_id), "usage of a lease that is not recorded");
    }
    return true;
  }

  // Every key the chain says is present must be present.
  bool CheckChainTargets() {
    for (const auto& [key, fact] : facts_) {
      if (fact.op == ChainOp::kPut && !present_.contains(key)) {
        return Fail(key, "missing: chain entry " + std::to_string(fact.seq) +
                             " recorded it and no later entry deleted it (the record was removed)");
      }
    }
    return true;
  }

  void Expect(std::string key, std::string reason) { expected_.emplace(std::move(key), std::move(reason)); }

  void BuildExpectedIndexes() {
    std::set<MessageId> leased_orders;
    for (const auto& [lease_id, lease] : leases_) {
      const std::string reason = "for " + keys::Describe(keys::Id(keys::kLease, lease_id));
      const LeaseState state = closes_.contains(lease_id) ? LeaseState::kClosed : LeaseState::kActive;
      Expect(keys::Pair(keys::kLeaseByTenant, lease.tenant, lease_id), reason);
      Expect(keys::Pair(keys::kLeaseByProvider, lease.provider, lease_id), reason);
      Expect(keys::StateId(keys::kLeaseByState, static_cast<uint8_t>(state), lease_id), reason);
      Expect(keys::Pair(keys::kLeaseByOrder, lease.order_id, lease_id), reason);
      leased_orders.insert(lease.order_id);
    }
    for (const auto& [order_id, order] : orders_) {
      const std::string reason = "for " + keys::Describe(keys::Id(keys::kOrder, order_id));
      Expect(keys::TimeId(keys::kOrderByExpiry, order.expires_ms, order_id), reason);
      if (!leased_orders.contains(order_id)) Expect(keys::Id(keys::kOpenOrder, order_id), reason);
    }
    for (const auto& [bid_id, bid] : bids_) {
      const std::string reason = "for " + keys::Describe(keys::Id(keys::kBid, bid_id));
      Expect(keys::Pair(keys::kBidByOrder, bid.order_id, bid_id), reason);
      Expect(keys::TimeId(keys::kBidByExpiry, bid.expires_ms, bid_id), reason);
    }
    for (const auto& [bid_id, reservation] : reservations_) {
      const std::string reason = "for " + keys::Describe(keys::Id(keys::kReservation, bid_id));
      Expect(keys::Pair(keys::kReservationByProvider, reservation.provider, bid_id), reason);
      Expect(keys::TimeId(keys::kReservationByExpiry, reservation.expires_ms, bid_id), reason);
    }
  }

  bool CheckIndexes() {
    BuildExpectedIndexes();
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read_));
    const std::string prefix(keys::kIndex);
    auto expected = expected_.begin();
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      if (!key.starts_with(prefix)) break;
      if (!it->value().empty()) return Fail(key, "index entry has a value (index values are empty)");
      if (expected != expected_.end() && std::string_view(expected->first) < key) {
        return Fail(expected->first, "missing index entry " + expected->second);
      }
      if (expected == expected_.end() || std::string_view(expected->first) != key) {
        return Fail(key, "unexpected index entry: no record calls for it");
      }
      ++report_.index_entries;
      ++expected;
    }
    if (!FailIterator(*it, prefix)) return false;
    if (expected != expected_.end()) return Fail(expected->first, "missing index entry " + expected->second);
    return true;
  }

  leveldb::DB* db_;
  const leveldb::Snapshot* snapshot_;
  leveldb::ReadOptions read_;
  VerifyReport report_;
  std::map<std::string, ChainFact> facts_;
  std::set<std::string> present_;
  std::map<MessageId, LeaseFacts> leases_;
  std::map<MessageId, CloseFacts> closes_;
  std::map<std::string, Signed<market::Close>> violations_;  // by key
  std::map<MessageId, TimedFacts> orders_;
  std::map<MessageId, TimedFacts> bids_;
  std::map<MessageId, Billing> bills_;
  std::set<MessageId> usages_;
  std::map<MessageId, Reservation> reservations_;
  std::map<std::string, std::string> expected_;
};

}  // namespace

VerifyReport VerifyLedger(const LedgerStore& store) {
  Verifier verifier(store);
  return verifier.Run();
}

}  // namespace gpumart::ledger
