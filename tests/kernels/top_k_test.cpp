// top_k: order, ties to the lower index, NaN below everything, infinities, k = 0 and k = D,
// and a large random case against a full sort.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

struct TopK {
  std::vector<int32_t> indices;
  std::vector<float> values;
};

TopK run_top_k(std::vector<float> values, int k) {
  TopK r;
  r.indices.assign(k, -1);
  r.values.assign(k, 0.0f);
  TopKArgs args;
  args.values = Tensor::make(values.data(), DType::kF32, {static_cast<int64_t>(values.size())});
  args.out_indices = Tensor::make(r.indices.data(), DType::kI32, {k});
  args.out_values = Tensor::make(r.values.data(), DType::kF32, {k});
  args.k = k;
  cpu_ops().top_k(args);
  return r;
}

TEST(TopKTest, SortedDescendingWithTiesToLowerIndex) {
  TopK r = run_top_k({1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 3.0f}, 4);
  EXPECT_EQ(r.indices, (std::vector<int32_t>{1, 3, 5, 2}));
  EXPECT_EQ(r.values, (std::vector<float>{3.0f, 3.0f, 3.0f, 2.0f}));
}

TEST(TopKTest, NanRanksBelowEverythingAndInfinitiesAreOrdered) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::nanf("");
  TopK r = run_top_k({nan, -inf, 0.5f, nan, inf, -0.0f, 0.0f}, 7);
  EXPECT_EQ(r.indices, (std::vector<int32_t>{4, 2, 5, 6, 1, 0, 3}));
  EXPECT_EQ(r.values[0], inf);
  EXPECT_EQ(r.values[4], -inf);
  EXPECT_TRUE(std::isnan(r.values[5]));
  EXPECT_TRUE(std::isnan(r.values[6]));
  // With room for only the finite ones, no NaN gets in.
  TopK r2 = run_top_k({nan, 1.0f, nan, 2.0f}, 2);
  EXPECT_EQ(r2.indices, (std::vector<int32_t>{3, 1}));
}

TEST(TopKTest, KZeroAndAllEqual) {
  EXPECT_TRUE(run_top_k({1.0f, 2.0f}, 0).indices.empty());
  TopK r = run_top_k(std::vector<float>(9, 4.0f), 9);
  std::vector<int32_t> expected(9);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(r.indices, expected);
}

TEST(TopKTest, LargeRandomMatchesAStableSort) {
  // Values on a coarse grid so that ties are common.
  std::vector<float> v = random_floats(262144, 3, -50.0f, 50.0f);
  for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
  for (int k : {1, 8, 64, 1000}) {
    TopK r = run_top_k(v, k);
    std::vector<int32_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
    order.resize(k);
    EXPECT_EQ(r.indices, order) << "k=" << k;
    for (int i = 0; i < k; ++i) EXPECT_EQ(r.values[i], v[r.indices[i]]);
  }
}

TEST(TopKDeathTest, RejectsKLargerThanTheInput) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(run_top_k({1.0f, 2.0f}, 3), "top_k: k = 3 must be in \\[0, 2\\]");
}

}  // namespace
}  // namespace sluice::kernels::testing
