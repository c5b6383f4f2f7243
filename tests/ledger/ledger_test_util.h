// Shared helpers for the ledger tests: temp dirs, opening, one-write rounds.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ledger/store.h"
#include "market/codec.h"
#include "market/crypto.h"
#include "tests/ledger/test_leases.h"
#include "tests/temp_dir.h"

namespace gpumart::ledger::testing {

// The shared temp dir (tests/temp_dir.h), under the name the ledger tests use.
using TempDir = gpumart::testing::TempDir;

inline PreparedWrite Prepared(LedgerWrite write) {
  auto prepared = Prepare(std::move(write));
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

inline Status WriteOne(LedgerStore& store, LedgerWrite write, int64_t now_ms = kStartMs) {
  auto prepared = Prepare(std::move(write));
  if (!prepared.ok()) return prepared.status();
  return store.Write(*prepared, now_ms);
}

inline std::unique_ptr<LedgerStore> OpenOrDie(const std::string& path, const LedgerOptions& options = {}) {
  auto store = LedgerStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

}  // namespace gpumart::ledger::testing
