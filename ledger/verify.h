// Full re-check of a ledger: every record's signatures and id, the whole hash chain, every
// derived value (billing, usage, reservations), and every index entry in both directions (each
// expected one present, none extra). Stops at the first inconsistency and says precisely where:
// which key and what is wrong.
#pragma once

#include <cstdint>
#include <string>

#include "ledger/store.h"

namespace gpumart::ledger {

struct VerifyReport {
  bool ok = true;
  std::string key;      // printable key (keys::Describe) of the first inconsistency
  std::string problem;  // what is wrong with it
  uint64_t records = 0;          // signed records checked (orders, bids, leases, closes)
  uint64_t signatures = 0;       // Ed25519 signatures verified
  uint64_t derived_values = 0;   // bill/, usage/, resv/ values checked
  uint64_t index_entries = 0;
  uint64_t chain_entries = 0;
  ChainHead head;
  // "<key>: <problem>" or "ok".
  std::string Describe() const { return ok ? std::string("ok") : key + ": " + problem; }
};

// Reads a consistent snapshot of the store (a live ledger can be verified while it is written).
VerifyReport VerifyLedger(const LedgerStore& store);

}  // namespace gpumart::ledger
