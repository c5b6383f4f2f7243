// Handing the heap's free pages back to the system. glibc's malloc keeps what a process frees in
// its arenas (one per thread that allocates, up to 8 per core) and returns only the free space at
// the top of each heap on its own. A daemon's bursts are freed out of order (a backlog of frames
// ZeroMQ queued while the daemon was starved of CPU, the Offer flood, a LevelDB compaction), so
// after one the process would keep its peak RSS with most of it free. docs/CONFIGURATION.md,
// "Memory".
#pragma once

#include <cstdint>

namespace gpumart::node {

// How often gpumartd hands free pages back. malloc_trim walks every arena's free chunks, taking
// each arena's lock in turn: 1-8 ms for 17 MB free in 27,000 chunks over 5 arenas on the shared
// 2-core VM at load 20 (a provider with 10,000 open orders had 9 MB in 9,000), so once a second
// costs under 1% of a core, and a thread allocating in the arena being walked may wait a
// fraction of that. Gating it on mallinfo2 would cost as much as the trim (the same walk).
constexpr int64_t kReturnFreeMemoryIntervalMs = 1'000;

// Gives the whole free pages of every malloc arena back to the system (madvise, so the address
// space stays and a later allocation faults them in again). Returns whether any page went back.
bool ReturnFreeMemory();

}  // namespace gpumart::node
