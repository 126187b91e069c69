#include "engine/sampling/penalties.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace sluice::sampling {
namespace {

TEST(Penalties, RepetitionDividesPositiveAndMultipliesNegative) {
  std::vector<float> l = {2.0f, -1.0f, 0.0f, 3.0f};
  std::vector<int32_t> ids = {0, 1, 2};
  apply_repetition_penalty(l, 2.0f, ids);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -2.0f, 0.0f, 3.0f}));
  // A penalty below 1 rewards repetition: 2 / 0.5 = 4, -2 * 0.5 = -1.
  apply_repetition_penalty(l, 0.5f, std::vector<int32_t>{0, 1});
  EXPECT_EQ(l, (std::vector<float>{2.0f, -1.0f, 0.0f, 3.0f}));
}

TEST(Penalties, PresenceAndFrequencyOverCounts) {
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  std::unordered_map<int32_t, int32_t> counts = {{0, 3}, {2, 1}};
  apply_presence_frequency(l, 0.5f, 0.25f, counts);
  // token 0: 1 - 0.5 - 3 * 0.25 = -0.25; token 2: 1 - 0.5 - 0.25 = 0.25.
  EXPECT_EQ(l, (std::vector<float>{-0.25f, 1.0f, 0.25f, 1.0f}));
  // Negative penalties encourage.
  std::vector<float> m = {0.0f, 0.0f};
  apply_presence_frequency(m, -1.0f, -2.0f, {{1, 2}});
  EXPECT_EQ(m, (std::vector<float>{0.0f, 5.0f}));
}

TEST(Penalties, LogitBiasAddsAndMaskSetsMinusInfinity) {
  std::vector<float> l = {0.0f, 0.0f, 0.0f, 7.0f};
  std::vector<std::pair<int32_t, float>> bias = {{1, 5.0f}, {2, -3.0f}, {99, 1.0f}};
  apply_logit_bias(l, bias);
  EXPECT_EQ(l, (std::vector<float>{0.0f, 5.0f, -3.0f, 7.0f}));
  mask_tokens(l, std::vector<int32_t>{3, -1, 4});
  EXPECT_EQ(l[3], -INFINITY);
  EXPECT_EQ(l[1], 5.0f);
}

TEST(Penalties, OutOfRangeIdsAreIgnored) {
  std::vector<float> l = {1.0f, 2.0f};
  apply_repetition_penalty(l, 2.0f, std::vector<int32_t>{-5, 2, 1000});
  apply_presence_frequency(l, 1.0f, 1.0f, {{7, 1}, {-1, 4}});
  EXPECT_EQ(l, (std::vector<float>{1.0f, 2.0f}));
}

}  // namespace
}  // namespace sluice::sampling
