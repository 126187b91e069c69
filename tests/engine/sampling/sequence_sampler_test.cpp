#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

#include "engine/sampling/sampler.h"

// Designated initializers of SamplingParams leave the other fields at their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

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

SamplingParams greedy_with_logprobs() {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logprobs = 5;
  return p;
}

TEST(SequenceSampler, RepetitionPenaltyOverPromptWithLogprobs) {
  SamplingParams p = greedy_with_logprobs();
  p.repetition_penalty = 2.0f;
  const std::vector<int32_t> prompt = {1, 1};
  Sampler s(p, prompt);
  const std::vector<float> l = {2.0f, 4.0f, 3.0f};
  SampleLogprobs lp;
  // 4 / 2 = 2 < 3: token 2 wins; logprobs are of {2, 2, 3}.
  EXPECT_EQ(s.sample(l, &lp), 2);
  auto ref = log_softmax_ref({2.0f, 2.0f, 3.0f});
  EXPECT_NEAR(lp.chosen.logprob, ref[2], 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[1].token, 0);
  EXPECT_NEAR(lp.top[2].logprob, ref[1], 1e-6);
  // The input row is untouched.
  EXPECT_EQ(l, (std::vector<float>{2.0f, 4.0f, 3.0f}));
}

TEST(SequenceSampler, RepetitionPenaltyOverGeneratedAppliedOnce) {
  SamplingParams p = greedy_with_logprobs();
  p.repetition_penalty = 2.0f;
  Sampler gen_only(p);
  gen_only.accept(0);
  EXPECT_EQ(gen_only.sample(std::vector<float>{3.0f, 2.0f}), 1);  // 1.5 < 2

  // Token 0 in both prompt and output: divided once (4 / 2 = 2 > 1.5), not twice (1).
  const std::vector<int32_t> prompt = {0};
  Sampler both(p, prompt);
  both.accept(0);
  both.accept(0);
  SampleLogprobs lp;
  EXPECT_EQ(both.sample(std::vector<float>{4.0f, 1.5f}, &lp), 0);
  EXPECT_NEAR(lp.chosen.logprob, log_softmax_ref({2.0f, 1.5f})[0], 1e-6);
}

TEST(SequenceSampler, PresenceAndFrequencyOnlyOverGenerated) {
  SamplingParams p = greedy_with_logprobs();
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  const std::vector<int32_t> prompt = {0};  // prompt tokens are not penalised
  Sampler s(p, prompt);
  const std::vector<float> l = {2.0f, 1.0f, 1.9f};
  EXPECT_EQ(s.sample(l), 0);
  s.accept(0);
  // token 0: 2 - 0.5 - 0.25 = 1.25 < 1.9.
  SampleLogprobs lp;
  EXPECT_EQ(s.sample(l, &lp), 2);
  EXPECT_NEAR(lp.top[1].logprob, log_softmax_ref({1.25f, 1.0f, 1.9f})[0], 1e-6);
  s.accept(2);
  s.accept(2);
  // token 0: 1.25; token 2: 1.9 - 0.5 - 0.5 = 0.9; token 1: 1.0.
  EXPECT_EQ(s.sample(l, &lp), 0);
  EXPECT_NEAR(lp.chosen.logprob, log_softmax_ref({1.25f, 1.0f, 0.9f})[0], 1e-6);
  EXPECT_EQ(s.num_generated(), 3);
}

TEST(SequenceSampler, LogitBiasForcesAndBansTokens) {
  std::vector<float> l(1000);
  for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin(static_cast<float>(i) * 0.37f) * 3;
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 11;
  p.logit_bias = {{777, 100.0f}};
  Sampler forced(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(forced.sample(l), 777);

  SamplingParams g;
  g.temperature = 0.0f;
  int32_t best = argmax(l);
  g.logit_bias = {{best, -100.0f}};
  Sampler banned(g);
  int32_t got = banned.sample(l);
  EXPECT_NE(got, best);
  std::vector<float> l2 = l;
  l2[best] = -INFINITY;
  EXPECT_EQ(got, argmax(l2));
}

TEST(SequenceSampler, MinTokensMasksStopIds) {
  SamplingParams p = greedy_with_logprobs();
  p.min_tokens = 3;
  p.stop_token_ids = {2, 5};
  Sampler s(p);
  std::vector<float> l = {0.0f, 1.0f, 10.0f, 0.5f, 0.0f, 9.0f};
  for (int i = 0; i < 3; ++i) {
    SampleLogprobs lp;
    int32_t t = s.sample(l, &lp);
    EXPECT_EQ(t, 1) << i;
    for (const auto& e : lp.top) {
      if (e.token == 2 || e.token == 5) {
        EXPECT_EQ(e.logprob, -INFINITY);
      }
    }
    s.accept(t);
  }
  EXPECT_EQ(s.sample(l), 2);

  // Sampled (not greedy) too: a stop id is never drawn while masked.
  SamplingParams q;
  q.temperature = 1.0f;
  q.seed = 4;
  q.min_tokens = 1000;
  q.stop_token_ids = {2, 5};
  Sampler r(q);
  for (int i = 0; i < 200; ++i) {
    int32_t t = r.sample(l);
    EXPECT_TRUE(t != 2 && t != 5) << t;
    r.accept(t);
  }
}

std::vector<float> step_logits(int step, size_t vocab) {
  std::vector<float> l(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    l[i] = std::sin(static_cast<float>(i) * 0.01f * static_cast<float>(step + 1)) * 4;
  }
  return l;
}

SamplingParams seeded(uint64_t seed) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 50;
  p.top_p = 0.9f;
  p.presence_penalty = 0.3f;
  p.repetition_penalty = 1.2f;
  p.seed = seed;
  return p;
}

TEST(SequenceSampler, SeededSequencesAreIndependentOfInterleaving) {
  constexpr int kSteps = 40;
  constexpr size_t kVocab = 4096;
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < kSteps; ++i) rows.push_back(step_logits(i, kVocab));
  const std::vector<int32_t> prompt = {1, 2, 3};
  auto alone = [&](uint64_t seed) {
    Sampler s(seeded(seed), prompt);
    std::vector<int32_t> out;
    for (int i = 0; i < kSteps; ++i) {
      out.push_back(s.sample(rows[i]));
      s.accept(out.back());
    }
    return out;
  };
  auto a_alone = alone(7);
  auto b_alone = alone(8);
  EXPECT_NE(a_alone, b_alone);

  Sampler a(seeded(7), prompt);
  Sampler b(seeded(8), prompt);
  Sampler noise(SamplingParams{.temperature = 1.0f});  // unseeded, draws in between
  std::vector<int32_t> a_out, b_out;
  for (int i = 0; i < kSteps; ++i) {
    a_out.push_back(a.sample(rows[i]));
    a.accept(a_out.back());
    noise.sample(rows[kSteps - 1 - i]);
    b_out.push_back(b.sample(rows[i]));
    b.accept(b_out.back());
    if (i % 3 == 0) noise.sample(rows[i]);
  }
  EXPECT_EQ(a_out, a_alone);
  EXPECT_EQ(b_out, b_alone);
}

TEST(SequenceSampler, FullVocabularySmoke) {
  constexpr size_t kVocab = 262144;
  std::vector<float> l(kVocab);
  uint32_t x = 12345;
  for (auto& f : l) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(x >> 8) / static_cast<float>(1 << 24) * 20.0f - 10.0f;
  }
  const std::vector<float> original = l;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 1000; ++i) prompt.push_back((i * 7919) % static_cast<int>(kVocab));

  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 64;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.5f;
  p.repetition_penalty = 1.1f;
  p.logit_bias = {{5, 3.0f}, {262143, -100.0f}};
  p.logprobs = 20;
  p.min_tokens = 4;
  p.stop_token_ids = {1, 106};
  p.seed = 99;
  ASSERT_TRUE(validate(p, kVocab, 20).is_ok());
  Sampler s(p, prompt);
  for (int step = 0; step < 8; ++step) {
    SampleLogprobs lp;
    int32_t t = s.sample(l, &lp);
    ASSERT_GE(t, 0);
    ASSERT_LT(static_cast<size_t>(t), kVocab);
    if (step < 4) {
      EXPECT_TRUE(t != 1 && t != 106);
    }
    EXPECT_NE(t, 262143);
    EXPECT_EQ(lp.chosen.token, t);
    EXPECT_LE(lp.chosen.logprob, 0.0f);
    ASSERT_EQ(lp.top.size(), 20u);
    for (size_t i = 1; i < lp.top.size(); ++i) EXPECT_GE(lp.top[i - 1].logprob, lp.top[i].logprob);
    // top-k 64 at this temperature keeps the chosen one within the best 64 of the processed row.
    EXPECT_GE(lp.chosen.logprob, lp.top.back().logprob - 10.0f);
    s.accept(t);
  }
  EXPECT_EQ(l, original);

  // Greedy on the full row equals the plain argmax when nothing applies (no copy path).
  Sampler g(SamplingParams{.temperature = 0.0f});
  EXPECT_EQ(g.sample(l), argmax(l));
}

}  // namespace
}  // namespace sluice::sampling
