#include "engine/sampling/sampling_params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

namespace sluice::sampling {
namespace {

constexpr int kVocab = 1000;

TEST(Validate, DefaultsAndBoundariesPass) {
  EXPECT_TRUE(validate({}, kVocab, 20).is_ok());
  SamplingParams p;
  p.temperature = 2.0f;
  p.top_p = 1.0f;
  p.top_k = 1;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.repetition_penalty = 2.0f;
  for (int i = 0; i < 300; ++i) p.logit_bias.emplace_back(i, i % 2 ? 100.0f : -100.0f);
  p.logprobs = 20;
  p.prompt_logprobs = 20;
  p.min_tokens = 5;
  p.stop_token_ids = {0, kVocab - 1};
  EXPECT_TRUE(validate(p, kVocab, 20).is_ok()) << validate(p, kVocab, 20).to_string();
  p.temperature = 0.0f;
  p.logprobs = 0;
  p.prompt_logprobs = 0;
  p.top_k = -1;
  EXPECT_TRUE(validate(p, kVocab, 20).is_ok());
  p.logprobs = -1;
  EXPECT_TRUE(validate(p, kVocab, 20).is_ok());
}

struct BadCase {
  std::string param;
  std::function<void(SamplingParams&)> mutate;
};

TEST(Validate, RejectsEachBadValueNamingTheParameter) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<BadCase> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = 2.01f; }},
      {"temperature", [&](SamplingParams& p) { p.temperature = nan; }},
      {"temperature", [&](SamplingParams& p) { p.temperature = inf; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }},
      {"top_p", [&](SamplingParams& p) { p.top_p = nan; }},
      {"top_k", [](SamplingParams& p) { p.top_k = 0; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -2; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.01f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.5f; }},
      {"presence_penalty", [&](SamplingParams& p) { p.presence_penalty = -inf; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -2.5f; }},
      {"frequency_penalty", [&](SamplingParams& p) { p.frequency_penalty = nan; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 2.5f; }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{kVocab, 1.0f}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{-1, 1.0f}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{3, 100.5f}};
       }},
      {"logit_bias",
       [&](SamplingParams& p) {
         p.logit_bias = {{3, nan}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         for (int i = 0; i < 301; ++i) p.logit_bias.emplace_back(i, 0.0f);
       }},
      {"top_logprobs", [](SamplingParams& p) { p.logprobs = 21; }},
      {"top_logprobs", [](SamplingParams& p) { p.logprobs = -2; }},
      {"prompt_logprobs", [](SamplingParams& p) { p.prompt_logprobs = 21; }},
      {"prompt_logprobs", [](SamplingParams& p) { p.prompt_logprobs = -2; }},
      {"min_tokens", [](SamplingParams& p) { p.min_tokens = -1; }},
      {"stop_token_ids", [](SamplingParams& p) { p.stop_token_ids = {kVocab}; }},
  };
  for (const auto& c : cases) {
    SamplingParams p;
    c.mutate(p);
    Status s = validate(p, kVocab, 20);
    ASSERT_FALSE(s.is_ok()) << c.param;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.param;
    EXPECT_EQ(s.message().rfind(c.param + " ", 0), 0u) << c.param << " vs: " << s.message();
  }
}

TEST(Validate, MaxLogprobsIsTheCallersLimit) {
  SamplingParams p;
  p.logprobs = 5;
  EXPECT_TRUE(validate(p, kVocab, 5).is_ok());
  EXPECT_FALSE(validate(p, kVocab, 4).is_ok());
}

TEST(Validate, MessageCarriesValueAndLimit) {
  SamplingParams p;
  p.temperature = 3.0f;
  Status s = validate(p, kVocab, 20);
  EXPECT_NE(s.message().find("3"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[0, 2]"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sluice::sampling
