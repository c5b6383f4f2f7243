// Handing the heap's free pages back to the system. glibc's malloc keeps what a process frees in
// its arenas (one per thread that allocates, up to 8 per core) and returns only the free space at
// the top of each heap on its own. A daemon's bursts are freed out of order (a backlog of frames
// ZeroMQ queued while the daemon was starved of CPU, the Offer flood, a LevelDB compaction), so
// after one the process would keep its peak RSS with most of it free. docs/CONFIGURATION.md,
// "Memory".
#pragma once

#include <cstdint>

namespace gpumart::node {

// How often gpumartd hands free pages back. malloc_trim walks every arena's free chunks (about a
// millisecond for tens of MB), taking each arena's lock in turn: once a second costs about 0.1% of
// a core and a rare sub-millisecond wait for a thread allocating in the arena being walked.
constexpr int64_t kReturnFreeMemoryIntervalMs = 1'000;

// Gives the whole free pages of every malloc arena back to the system (madvise, so the address
// space stays and a later allocation faults them in again). Returns whether any page went back.
bool ReturnFreeMemory();

}  // namespace gpumart::node
