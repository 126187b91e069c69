// Logprobs on the engine's deltas, on the tiny Gemma 3 fixture: sampled-token logprobs from
// the processed distribution, prompt logprobs from the raw one (chunked, past a prefix-cache
// entry that must not be used, and under preemption), and the raw debug logits rows.

#include <gtest/gtest.h>

#include <cmath>

#include "engine/runtime/engine.h"
#include "engine/runtime/engine_test_util.h"
#include "engine/sampling/logprobs.h"
#include "engine/sampling/penalties.h"

namespace sluice::engine {
namespace {

using sampling::SampleLogprobs;
using scheduler::FinishReason;

constexpr float kTol = 1e-4f;

EngineConfig config() {
  EngineConfig c;
  c.num_blocks = {256, 256};
  c.max_num_seqs = 32;
  c.max_num_batched_tokens = 64;
  return c;
}

std::span<const float> row_of(const std::vector<float>& rows, int vocab, size_t r) {
  return std::span<const float>(rows).subspan(r * vocab, vocab);
}

void expect_logprobs_near(const SampleLogprobs& got, const SampleLogprobs& want) {
  EXPECT_EQ(got.chosen.token, want.chosen.token);
  EXPECT_NEAR(got.chosen.logprob, want.chosen.logprob, kTol);
  ASSERT_EQ(got.top.size(), want.top.size());
  for (size_t k = 0; k < want.top.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(got.top[k].token, want.top[k].token);
    EXPECT_NEAR(got.top[k].logprob, want.top[k].logprob, kTol);
  }
}

// Reference prompt logprobs: row p of the one-pass logits scores prompt token p + 1.
std::vector<SampleLogprobs> reference_prompt_logprobs(models::Model& model,
                                                      const std::vector<TokenId>& prompt, int k) {
  const int vocab = model.config().vocab_size;
  const std::vector<float> rows = reference_logits(model, prompt);
  std::vector<SampleLogprobs> out(prompt.size() - 1);
  for (size_t p = 0; p + 1 < prompt.size(); ++p) {
    sampling::compute_logprobs(row_of(rows, vocab, p), prompt[p + 1], k, &out[p]);
  }
  return out;
}

TEST(EngineLogprobsTest, SampledTokensCarryProcessedLogprobs) {
  auto engine = make_engine(config());
  ASSERT_NE(engine, nullptr);
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  const int vocab = model->config().vocab_size;
  const auto prompt = random_prompts(1, 20, 20, 21)[0];
  const std::vector<TokenId> greedy = reference_greedy(*model, prompt, 6);

  Request r = greedy_request(prompt, 6);
  r.sampling.logprobs = 5;
  // A bias that changes the processed distribution but not the greedy choice.
  r.sampling.logit_bias = {{greedy[0] == 7 ? 8 : 7, 1.5f}};
  auto sink = run_one(*engine, r);
  ASSERT_EQ(sink->finish(), FinishReason::kLength);

  // Reference: the logits of every position of prompt + output, biased, log-softmaxed.
  std::vector<TokenId> all = prompt;
  const std::vector<TokenId> out = sink->tokens();
  all.insert(all.end(), out.begin(), out.end() - 1);
  std::vector<float> rows = reference_logits(*model, all);
  size_t t = 0;
  for (const Delta& d : sink->deltas(0)) {
    ASSERT_EQ(d.logprobs.size(), d.token_ids.size());
    EXPECT_EQ(d.prompt_logprobs, nullptr);
    EXPECT_TRUE(d.debug_logits.empty());
    for (size_t i = 0; i < d.token_ids.size(); ++i, ++t) {
      SCOPED_TRACE(t);
      std::vector<float> row(row_of(rows, vocab, prompt.size() - 1 + t).begin(),
                             row_of(rows, vocab, prompt.size() - 1 + t).end());
      sampling::apply_logit_bias(row, r.sampling.logit_bias);
      SampleLogprobs want;
      sampling::compute_logprobs(row, d.token_ids[i], 5, &want);
      expect_logprobs_near(d.logprobs[i], want);
      EXPECT_EQ(d.logprobs[i].top[0].token, d.token_ids[i]);  // greedy: the best one
    }
  }
  EXPECT_EQ(t, 6u);

  // top_logprobs 0: the chosen token's logprob only. No logprobs asked: none sent.
  Request zero = greedy_request(prompt, 3);
  zero.sampling.logprobs = 0;
  auto zero_sink = run_one(*engine, zero);
  for (const Delta& d : zero_sink->deltas(0)) {
    ASSERT_EQ(d.logprobs.size(), d.token_ids.size());
    for (const auto& lp : d.logprobs) {
      EXPECT_TRUE(lp.top.empty());
      EXPECT_LT(lp.chosen.logprob, 0.0f);
    }
  }
  auto plain = run_one(*engine, greedy_request(prompt, 3));
  for (const Delta& d : plain->deltas(0)) EXPECT_TRUE(d.logprobs.empty());
}

TEST(EngineLogprobsTest, PromptLogprobsAreComputedInChunksAndSkipThePrefixCache) {
  EngineConfig c = config();
  c.max_num_batched_tokens = 16;  // a 45-token prompt takes three chunks
  auto engine = make_engine(c);
  ASSERT_NE(engine, nullptr);
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  const auto prompt = random_prompts(1, 45, 45, 22)[0];

  // Fill the prefix cache with this prompt first: the request below must not use it.
  auto warm = run_one(*engine, greedy_request(prompt, 4));
  const EngineStats before = engine->stats();
  Request r = greedy_request(prompt, 4);
  r.sampling.prompt_logprobs = 3;
  r.n = 2;
  auto sink = run_one(*engine, r);
  const EngineStats after = engine->stats();
  EXPECT_EQ(after.prefix_hit_tokens, before.prefix_hit_tokens);
  EXPECT_EQ(after.num_prompt_tokens_computed - before.num_prompt_tokens_computed, 45);

  const std::vector<SampleLogprobs> want = reference_prompt_logprobs(*model, prompt, 3);
  for (int32_t choice = 0; choice < 2; ++choice) {
    SCOPED_TRACE(choice);
    const std::vector<Delta> deltas = sink->deltas(choice);
    ASSERT_FALSE(deltas.empty());
    ASSERT_NE(deltas[0].prompt_logprobs, nullptr);
    const auto& got = *deltas[0].prompt_logprobs;
    ASSERT_EQ(got.size(), prompt.size() - 1);
    for (size_t p = 0; p < got.size(); ++p) {
      SCOPED_TRACE(p);
      EXPECT_EQ(got[p].chosen.token, prompt[p + 1]);
      expect_logprobs_near(got[p], want[p]);
    }
    for (size_t i = 1; i < deltas.size(); ++i) EXPECT_EQ(deltas[i].prompt_logprobs, nullptr);
    EXPECT_EQ(sink->tokens(choice), warm->tokens());  // greedy: both choices agree
  }
  // The choices share one copy.
  EXPECT_EQ(sink->deltas(0)[0].prompt_logprobs, sink->deltas(1)[0].prompt_logprobs);

  // A one-token prompt has no prompt logprobs, but still gets the (empty) list.
  Request single = greedy_request({5}, 2);
  single.sampling.prompt_logprobs = 0;
  auto s1 = run_one(*engine, single);
  ASSERT_NE(s1->deltas(0)[0].prompt_logprobs, nullptr);
  EXPECT_TRUE(s1->deltas(0)[0].prompt_logprobs->empty());
}

TEST(EngineLogprobsTest, PromptLogprobsSurvivePreemption) {
  const auto prompts = random_prompts(12, 40, 60, 23);
  EngineConfig c = config();
  c.num_blocks = {20, 20};
  c.max_num_batched_tokens = 24;
  c.start_paused = true;
  auto engine = make_engine(c);
  ASSERT_NE(engine, nullptr);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const auto& p : prompts) {
    Request r = greedy_request(p, 12);
    r.sampling.prompt_logprobs = 2;
    r.sampling.logprobs = 1;
    sinks.push_back(std::make_shared<CollectingSink>());
    engine->submit(r, sinks.back());
  }
  engine->resume();
  for (auto& s : sinks) ASSERT_TRUE(s->wait());
  EXPECT_GT(engine->stats().num_preemptions, 0);
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(sinks[i]->tokens(), reference_greedy(*model, prompts[i], 12));
    const std::vector<Delta> deltas = sinks[i]->deltas(0);
    ASSERT_NE(deltas[0].prompt_logprobs, nullptr);
    const std::vector<SampleLogprobs> want = reference_prompt_logprobs(*model, prompts[i], 2);
    ASSERT_EQ(deltas[0].prompt_logprobs->size(), want.size());
    for (size_t p = 0; p < want.size(); ++p)
      expect_logprobs_near((*deltas[0].prompt_logprobs)[p], want[p]);
    size_t num_logprobs = 0;
    for (const Delta& d : deltas) {
      EXPECT_EQ(d.logprobs.size(), d.token_ids.size());
      num_logprobs += d.logprobs.size();
    }
    EXPECT_EQ(num_logprobs, 12u);
  }
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, std::vector<int32_t>(st.kv_blocks_total.size(), 0));
  // A preempted request may hit its own cached blocks (in its private namespace); its rows
  // below the hit were taken before the preemption.
  EXPECT_GT(st.prefix_hit_tokens, 0);
}

TEST(EngineLogprobsTest, DebugLogitsAreTheRawRowsOfEveryStep) {
  EngineConfig c = config();
  c.max_num_batched_tokens = 8;  // the prompt's rows come from two chunks
  auto engine = make_engine(c);
  ASSERT_NE(engine, nullptr);
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  const int vocab = model->config().vocab_size;
  const auto prompt = random_prompts(1, 13, 13, 24)[0];
  Request r = greedy_request(prompt, 3);
  r.debug_logits = true;
  auto sink = run_one(*engine, r);
  std::vector<float> got;
  const std::vector<Delta> deltas = sink->deltas(0);
  ASSERT_EQ(deltas.size(), 3u);
  EXPECT_EQ(deltas[0].debug_logits.size(), prompt.size() * vocab);
  EXPECT_EQ(deltas[1].debug_logits.size(), static_cast<size_t>(vocab));
  for (const Delta& d : deltas) got.insert(got.end(), d.debug_logits.begin(), d.debug_logits.end());

  std::vector<TokenId> all = prompt;
  const std::vector<TokenId> out = sink->tokens();
  all.insert(all.end(), out.begin(), out.end() - 1);
  const std::vector<float> want = reference_logits(*model, all);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], kTol) << i;
}

}  // namespace
}  // namespace sluice::engine
