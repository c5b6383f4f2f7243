// A temporary directory for a benchmark's LevelDB, removed with everything in it when the object
// goes. (tests/temp_dir.h reports failures through GoogleTest, which benchmarks do not link.)
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace gpumart::bench {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Empty when the directory could not be made.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace gpumart::bench
