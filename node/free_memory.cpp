#include "node/free_memory.h"

#include <malloc.h>

namespace gpumart::node {

bool ReturnFreeMemory() {
  // 0: keep no slack at the top of the main heap; every arena is trimmed the same way.
  return malloc_trim(0) != 0;
}

}  // namespace gpumart::node
