// The builtin GPU model table (configs/gpu_models.yaml compiled in), loaded once for every bidding
// test that detects or maps GPUs.
#pragma once

#include <gtest/gtest.h>

#include "bidding/gpu_models.h"

namespace gpumart::testing {

inline const bidding::GpuModelTable& BuiltinGpuModels() {
  static const bidding::GpuModelTable table = [] {
    Result<bidding::GpuModelTable> builtin = bidding::GpuModelTable::Builtin();
    EXPECT_TRUE(builtin.ok()) << builtin.status().ToString();
    return builtin.ok() ? *builtin : bidding::GpuModelTable();
  }();
  return table;
}

}  // namespace gpumart::testing
