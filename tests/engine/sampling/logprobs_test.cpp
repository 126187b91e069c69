#include "engine/sampling/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace sluice::sampling {
namespace {

std::vector<double> log_softmax_ref(const std::vector<float>& l) {
  double m = -INFINITY;
  for (float f : l) m = std::max<double>(m, f);
  double s = 0;
  for (float f : l) s += std::exp(f - m);
  std::vector<double> out;
  for (float f : l) out.push_back(f - m - std::log(s));
  return out;
}

TEST(Logprobs, NormalisedAndChosenMatchesLogSoftmax) {
  std::vector<float> l = {0.5f, -1.0f, 2.0f, 2.0f, 0.0f, -3.5f};
  auto ref = log_softmax_ref(l);
  SampleLogprobs out;
  compute_logprobs(l, 4, static_cast<int>(l.size()), &out);
  ASSERT_EQ(out.top.size(), l.size());
  double total = 0;
  for (const auto& e : out.top) total += std::exp(static_cast<double>(e.logprob));
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_EQ(out.chosen.token, 4);
  EXPECT_NEAR(out.chosen.logprob, ref[4], 1e-6);
  for (const auto& e : out.top) EXPECT_NEAR(e.logprob, ref[e.token], 1e-6) << e.token;
  // Sorted descending, the tie between 2 and 3 broken by the lower id.
  std::vector<int32_t> order;
  for (const auto& e : out.top) order.push_back(e.token);
  EXPECT_EQ(order, (std::vector<int32_t>{2, 3, 0, 4, 1, 5}));
}

TEST(Logprobs, TopKLengthAndTies) {
  std::vector<float> l = {1.0f, 3.0f, 3.0f, 0.0f, 3.0f};
  SampleLogprobs out;
  compute_logprobs(l, 0, 2, &out);
  ASSERT_EQ(out.top.size(), 2u);
  EXPECT_EQ(out.top[0].token, 1);
  EXPECT_EQ(out.top[1].token, 2);
  EXPECT_EQ(out.top[0].logprob, out.top[1].logprob);
  compute_logprobs(l, 0, 0, &out);
  EXPECT_TRUE(out.top.empty());
  EXPECT_NEAR(out.chosen.logprob, log_softmax_ref(l)[0], 1e-6);
}

TEST(Logprobs, MinusInfinityAndNan) {
  std::vector<float> l = {-INFINITY, 1.0f, NAN, 1.0f};
  SampleLogprobs out;
  compute_logprobs(l, 0, 4, &out);
  EXPECT_EQ(out.chosen.logprob, -INFINITY);
  ASSERT_EQ(out.top.size(), 4u);
  EXPECT_EQ(out.top[0].token, 1);
  EXPECT_NEAR(out.top[0].logprob, std::log(0.5), 1e-6);
  EXPECT_EQ(out.top[1].token, 3);
  // -inf and NaN fill the tail, lower id first.
  EXPECT_EQ(out.top[2].token, 0);
  EXPECT_EQ(out.top[2].logprob, -INFINITY);
  EXPECT_EQ(out.top[3].token, 2);
  EXPECT_EQ(out.top[3].logprob, -INFINITY);

  std::vector<float> all_masked = {-INFINITY, -INFINITY};
  compute_logprobs(all_masked, 1, 1, &out);
  EXPECT_EQ(out.chosen.logprob, -INFINITY);
  EXPECT_EQ(out.top[0].token, 0);
}

TEST(Logprobs, LargeRowMatchesFullSortReference) {
  std::mt19937 gen(5);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  std::vector<float> l(262144);
  for (auto& f : l) f = nd(gen);
  l[1234] = l[99];  // a tie somewhere plausible
  SampleLogprobs out;
  compute_logprobs(l, 77, 20, &out);
  std::vector<int32_t> idx(l.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(),
            [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  auto ref = log_softmax_ref(l);
  ASSERT_EQ(out.top.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(out.top[i].token, idx[i]) << i;
    EXPECT_NEAR(out.top[i].logprob, ref[idx[i]], 1e-4);
  }
  EXPECT_NEAR(out.chosen.logprob, ref[77], 1e-4);
  EXPECT_NEAR(log_sum_exp(l), l[0] - ref[0], 1e-3);
}

}  // namespace
}  // namespace sluice::sampling
