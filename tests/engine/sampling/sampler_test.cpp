#include "engine/sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

// Designated initializers of SamplingParams leave the other fields at their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace sluice::sampling {
namespace {

TEST(Sampler, ArgmaxTiesAndNan) {
  std::vector<float> l = {1, 3, NAN, 3, -INFINITY};
  EXPECT_EQ(argmax(l), 1);
  std::vector<float> n = {NAN, NAN, -1};
  EXPECT_EQ(argmax(n), 2);
}

TEST(Sampler, GreedyWhenTemperatureZeroOrTopKOne) {
  std::vector<float> l = {0.1f, 2.0f, 1.9f};
  Sampler a({.temperature = 0.0f});
  Sampler b({.temperature = 1.5f, .top_k = 1});
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(a.sample(l), 1);
    EXPECT_EQ(b.sample(l), 1);
  }
}

std::map<int32_t, int> histogram(SamplingParams p, const std::vector<float>& l, int n) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(l)];
  return h;
}

TEST(Sampler, FollowsSoftmaxDistribution) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto h = histogram({.temperature = 1.0f, .seed = 1}, l, 20000);
  EXPECT_NEAR(h[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(h[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
}

// A vocabulary over several of draw's chunks (4096 ids each), most ids masked or negligible:
// the chunk-skipping walk must land on ids in every chunk with their softmax frequencies,
// never on a masked id; a NaN logit takes the general path, which drops it.
TEST(Sampler, FullVocabularyDrawAcrossChunks) {
  std::vector<float> l(3 * 4096 + 100, -INFINITY);
  for (size_t i = 0; i < l.size(); i += 7) l[i] = -30.0f;  // mass ~1e-13 each
  l[5] = std::log(0.4f);
  l[9000] = std::log(0.35f);
  l[3 * 4096 + 50] = std::log(0.25f);
  for (float t : {1.0f, 0.5f}) {
    auto h = histogram({.temperature = t, .seed = 3}, l, 20000);
    // p_i ~ p^(1/t), renormalised.
    const double w[3] = {std::pow(0.4, 1 / t), std::pow(0.35, 1 / t), std::pow(0.25, 1 / t)};
    const double z = w[0] + w[1] + w[2];
    EXPECT_NEAR(h[5] / 20000.0, w[0] / z, 0.02) << "t=" << t;
    EXPECT_NEAR(h[9000] / 20000.0, w[1] / z, 0.02) << "t=" << t;
    EXPECT_NEAR(h[3 * 4096 + 50] / 20000.0, w[2] / z, 0.02) << "t=" << t;
    for (const auto& [id, n] : h) EXPECT_NE(l[id], -INFINITY) << "masked id " << id << " drawn";
  }
  l[100] = NAN;
  auto h = histogram({.temperature = 1.0f, .seed = 4}, l, 2000);
  EXPECT_EQ(h.count(100), 0u);
  EXPECT_NEAR(h[5] / 2000.0, 0.4, 0.05);
}

TEST(Sampler, TopKTopPMinPRestrictCandidates) {
  std::vector<float> l(1000, 0.0f);
  l[10] = 5.0f;
  l[20] = 4.5f;
  l[30] = 4.0f;
  // top-k 2 keeps only 10 and 20.
  for (auto [id, n] : histogram({.temperature = 1.0f, .top_k = 2, .seed = 3}, l, 2000)) {
    EXPECT_TRUE(id == 10 || id == 20) << id;
  }
  // top-p small enough keeps only the best.
  for (auto [id, n] : histogram({.temperature = 1.0f, .top_p = 0.05f, .seed = 3}, l, 500))
    EXPECT_EQ(id, 10);
  // min-p 0.5: exp(-0.5)=0.61 keeps 20, exp(-1)=0.37 drops 30 and the tail.
  for (auto [id, n] : histogram({.temperature = 1.0f, .min_p = 0.5f, .seed = 3}, l, 2000)) {
    EXPECT_TRUE(id == 10 || id == 20) << id;
  }
}

TEST(Sampler, SeededIsReproducibleAndSeedsDiffer) {
  std::vector<float> l(50000);
  for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin(static_cast<float>(i)) * 3;
  auto run = [&](uint64_t seed) {
    Sampler s({.temperature = 1.0f, .top_k = 64, .top_p = 0.95f, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(l));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

}  // namespace
}  // namespace sluice::sampling
