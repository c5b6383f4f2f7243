// BM_ParseSdl: parse the largest SDL fixture (by bytes) from memory: YAML load plus building the
// Orders. Target: well under a millisecond per file.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "market/sdl.h"

namespace {

std::string LargestFixture(std::string* name) {
  namespace fs = std::filesystem;
  fs::path largest;
  uintmax_t largest_size = 0;
  for (const auto& entry : fs::directory_iterator(std::string(GPUMART_SHARED_DIR) + "/fixtures/sdl")) {
    const std::string ext = entry.path().extension().string();
    if ((ext == ".yaml" || ext == ".yml") && entry.file_size() > largest_size) {
      largest = entry.path();
      largest_size = entry.file_size();
    }
  }
  *name = largest.filename().string();
  std::ifstream in(largest, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void BM_ParseSdl(benchmark::State& state) {
  std::string name;
  const std::string text = LargestFixture(&name);
  state.SetLabel(name);
  for (auto _ : state) {
    auto deployment = gpumart::market::ParseSdl(text);
    if (!deployment.ok()) {
      state.SkipWithError(deployment.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(deployment);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseSdl)->Unit(benchmark::kMicrosecond);

}  // namespace
