// The tensor-parallel configuration the loader and the executor carry: world size 1 runs;
// larger worlds are refused as not implemented, impossible ranks as invalid.
#include <gtest/gtest.h>

#include "engine/models/loader.h"
#include "engine/runtime/executor.h"
#include "test_util.h"

namespace sluice::engine {
namespace {

TEST(ParallelConfig, OnlyWorldSizeOneRuns) {
  EXPECT_TRUE(models::check_parallel_config({0, 1}).is_ok());
  EXPECT_EQ(models::check_parallel_config({0, 2}).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(models::check_parallel_config({1, 1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(models::check_parallel_config({-1, 1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(models::check_parallel_config({0, 0}).code(), StatusCode::kInvalidArgument);
}

TEST(ParallelConfig, LoaderAndExecutorCarryIt) {
  models::LoadOptions opt;
  opt.parallel = {0, 2};
  auto refused = models::load_model(testing::fixture_path("gemma3_tiny"), opt, kernels::cpu_ops());
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(refused.status().message().find("world size 1"), std::string::npos);

  auto loaded = models::load_model(testing::fixture_path("gemma3_tiny"), {}, kernels::cpu_ops());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->parallel.rank, 0);
  EXPECT_EQ(loaded->parallel.world_size, 1);
  const auto specs = kv_group_specs(loaded->model->config(), 16, {8, 8});
  auto two = CpuExecutor::create(std::move(loaded->model), specs, {0, 2});
  EXPECT_EQ(two.status().code(), StatusCode::kUnimplemented);

  auto again = models::load_model(testing::fixture_path("gemma3_tiny"), {}, kernels::cpu_ops());
  ASSERT_TRUE(again.is_ok());
  auto one = CpuExecutor::create(std::move(again->model), specs);
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ((*one)->parallel().world_size, 1);
}

}  // namespace
}  // namespace sluice::engine
