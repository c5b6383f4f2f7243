// BM_ParseSdl: parse the largest SDL fixture (by bytes) from memory: YAML load plus building the
// Orders. Target: well under a millisecond per file.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "market/sdl.h"

namespace {

const std::string kFixtureDir = std::string(GPUMART_FIXTURE_DIR) + "/sdl";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string LargestFixture(std::string* name) {
  namespace fs = std::filesystem;
  fs::path largest;
  uintmax_t largest_size = 0;
  for (const auto& entry : fs::directory_iterator(kFixtureDir)) {
    const std::string ext = entry.path().extension().string();
    if ((ext == ".yaml" || ext == ".yml") && entry.file_size() > largest_size) {
      largest = entry.path();
      largest_size = entry.file_size();
    }
  }
  *name = largest.filename().string();
  return ReadFile(largest);
}

void ParseLoop(benchmark::State& state, const std::string& name, const std::string& text) {
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

void BM_ParseSdl(benchmark::State& state) {
  std::string name;
  const std::string text = LargestFixture(&name);
  ParseLoop(state, name, text);
}
BENCHMARK(BM_ParseSdl)->Unit(benchmark::kMicrosecond);

// A typical GPU deployment (one service, ordered fallbacks), for scale.
void BM_ParseSdlGpuSeed(benchmark::State& state) {
  ParseLoop(state, "seed_llm-fallbacks.yaml", ReadFile(kFixtureDir + "/seed_llm-fallbacks.yaml"));
}
BENCHMARK(BM_ParseSdlGpuSeed)->Unit(benchmark::kMicrosecond);

}  // namespace
