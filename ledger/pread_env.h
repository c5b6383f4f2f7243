// A LevelDB environment that reads table files with pread instead of mapping them. LevelDB's
// default maps up to 1,000 table files on 64-bit systems, and every page a compaction or a read
// touched then counts in the process's resident memory until the file goes: 13 MB of a provider's
// resident memory in bench_e2e's memory phase. Read through pread, those pages stay in the
// kernel's page cache (shared, reclaimable) and the hot blocks in the ledger's block cache.
// Everything else is the default environment's.
#pragma once

#include <leveldb/env.h>

namespace gpumart::ledger {

// The process-wide instance (LevelDB environments live as long as the process).
leveldb::Env* PreadEnv();

}  // namespace gpumart::ledger
