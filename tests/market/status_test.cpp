#include "market/status.h"

#include <gtest/gtest.h>

namespace gpumart {
namespace {

TEST(StatusTest, OkByDefault) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.ToString(), "ok");
}

TEST(StatusTest, ErrorCarriesCodeAndReason) {
  Status status = Status::InvalidArgument("count must be >= 1");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(status.ToString(), "invalid argument: count must be >= 1");
  EXPECT_EQ(status.WithContext("deployment.web").message(), "deployment.web: count must be >= 1");
}

TEST(StatusTest, ResultHoldsValueOrStatus) {
  Result<int> good = 42;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 42);
  Result<int> bad = Status::NotFound("no such lease");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace gpumart
