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

namespace gpumart::ledger::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/gpumart-ledger-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

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
