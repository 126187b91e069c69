// Per-request figures on a choice's first delta with tokens: prompt tokens served from the
// prefix cache (Delta::num_cached_tokens) and time from submit to first schedule
// (Delta::queue_seconds).

#include <gtest/gtest.h>

#include "engine/runtime/engine.h"
#include "engine/runtime/engine_test_util.h"

namespace sluice::engine {
namespace {

EngineConfig small_config() {
  EngineConfig c;
  c.num_blocks = {256, 256};
  c.max_num_seqs = 32;
  c.max_num_batched_tokens = 64;
  return c;
}

// Checks that exactly the first delta with tokens of every choice carries both figures, and
// returns that delta of `choice`.
Delta first_token_delta(CollectingSink& sink, int32_t choice) {
  std::optional<Delta> first;
  for (const Delta& d : sink.deltas(choice)) {
    if (!first && !d.token_ids.empty()) {
      EXPECT_TRUE(d.num_cached_tokens.has_value());
      EXPECT_TRUE(d.queue_seconds.has_value());
      first = d;
      continue;
    }
    EXPECT_FALSE(d.num_cached_tokens.has_value());
    EXPECT_FALSE(d.queue_seconds.has_value());
  }
  EXPECT_TRUE(first.has_value()) << "choice " << choice << " got no tokens";
  return first.value_or(Delta{});
}

TEST(EngineRequestStatsTest, RepeatedPromptReportsCachedTokens) {
  constexpr int32_t kBlockSize = 16;
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  const auto prompt = random_prompts(1, 50, 50, 21)[0];

  auto first = run_one(*engine, greedy_request(prompt, 4));
  const Delta d1 = first_token_delta(*first, 0);
  EXPECT_EQ(d1.num_cached_tokens, 0);
  EXPECT_GE(d1.queue_seconds.value_or(-1.0), 0.0);

  auto second = run_one(*engine, greedy_request(prompt, 4));
  const Delta d2 = first_token_delta(*second, 0);
  const int32_t cached = d2.num_cached_tokens.value_or(-1);
  EXPECT_GT(cached, 0);
  EXPECT_EQ(cached % kBlockSize, 0);
  EXPECT_LT(cached, static_cast<int32_t>(prompt.size()));
  // 50 tokens: the hit stops at the last whole block that leaves one token to compute.
  EXPECT_EQ(cached, 48);
  EXPECT_EQ(first->tokens(), second->tokens());

  // Another namespace shares nothing.
  Request other = greedy_request(prompt, 4);
  other.cache_namespace = "tenant-b";
  auto third = run_one(*engine, other);
  EXPECT_EQ(first_token_delta(*third, 0).num_cached_tokens, 0);
}

TEST(EngineRequestStatsTest, EveryChoiceCarriesTheRequestFigures) {
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  const auto prompt = random_prompts(1, 40, 40, 22)[0];
  run_one(*engine, greedy_request(prompt, 2));
  Request r = greedy_request(prompt, 3);
  r.n = 3;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 5;
  auto sink = run_one(*engine, r);
  const Delta d0 = first_token_delta(*sink, 0);
  EXPECT_EQ(d0.num_cached_tokens, 32);
  for (int32_t k = 1; k < 3; ++k) {
    const Delta dk = first_token_delta(*sink, k);
    EXPECT_EQ(dk.num_cached_tokens, d0.num_cached_tokens);
    EXPECT_EQ(dk.queue_seconds, d0.queue_seconds);
  }
}

TEST(EngineRequestStatsTest, PromptLogprobsNeverReportCachedTokens) {
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  const auto prompt = random_prompts(1, 40, 40, 23)[0];
  run_one(*engine, greedy_request(prompt, 2));
  Request r = greedy_request(prompt, 2);
  r.sampling.prompt_logprobs = 0;
  auto sink = run_one(*engine, r);
  EXPECT_EQ(first_token_delta(*sink, 0).num_cached_tokens, 0);
}

TEST(EngineRequestStatsTest, QueueTimeGrowsWhenSeatsAreFull) {
  EngineConfig config = small_config();
  config.max_num_seqs = 1;  // the second request waits for the first to finish
  config.start_paused = true;
  auto engine = make_engine(config);
  ASSERT_NE(engine, nullptr);
  const auto prompts = random_prompts(2, 20, 20, 24);
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  engine->submit(greedy_request(prompts[0], 12), a);
  engine->submit(greedy_request(prompts[1], 12), b);
  engine->resume();
  ASSERT_TRUE(a->wait());
  ASSERT_TRUE(b->wait());
  const double qa = first_token_delta(*a, 0).queue_seconds.value_or(-1.0);
  const double qb = first_token_delta(*b, 0).queue_seconds.value_or(-1.0);
  EXPECT_GE(qa, 0.0);
  EXPECT_GT(qb, qa);  // b is scheduled only once a's 12 steps are done
  EXPECT_EQ(first_token_delta(*b, 0).num_cached_tokens, 0);
}

TEST(EngineRequestStatsTest, RejectedAndAbortedChoicesCarryNoFigures) {
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  Request bad = greedy_request({1, 2, 3}, 4);
  bad.sampling.temperature = -1.0f;
  auto sink = run_one(*engine, bad);
  for (const Delta& d : sink->deltas()) {
    EXPECT_FALSE(d.num_cached_tokens.has_value());
    EXPECT_FALSE(d.queue_seconds.has_value());
  }
}

}  // namespace
}  // namespace sluice::engine
