// Engine step loop on the tiny Gemma 3 fixture: batch invariance against single runs and a
// plain SequenceKv loop, aborts at every stage returning the KV pools, prefix caching,
// seeded sampling under other traffic, and rejected requests.

#include "engine/runtime/engine.h"

#include <gtest/gtest.h>

#include <numeric>

#include "engine/runtime/engine_test_util.h"
#include "engine/sampling/sampler.h"

namespace sluice::engine {
namespace {

using scheduler::FinishReason;

EngineConfig small_config() {
  EngineConfig c;
  c.num_blocks = {256, 256};
  c.max_num_seqs = 32;
  c.max_num_batched_tokens = 64;
  return c;
}

std::vector<int32_t> zeros_like(const std::vector<int32_t>& v) {
  return std::vector<int32_t>(v.size(), 0);
}

TEST(EngineTest, BatchedGreedyMatchesSingleRunsAndReference) {
  const auto prompts = random_prompts(32, 1, 40, 7);
  constexpr int kMaxTokens = 12;

  EngineConfig batched_config = small_config();
  batched_config.start_paused = true;  // all 32 requests land in the same first step
  auto batched = make_engine(batched_config);
  ASSERT_NE(batched, nullptr);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const auto& p : prompts) {
    sinks.push_back(std::make_shared<CollectingSink>());
    batched->submit(greedy_request(p, kMaxTokens), sinks.back());
  }
  batched->resume();
  for (auto& s : sinks) ASSERT_TRUE(s->wait());
  EXPECT_GT(batched->stats().num_steps, kMaxTokens);  // chunked: more steps than tokens

  EngineConfig single_config = small_config();
  single_config.enable_prefix_caching = false;
  auto single = make_engine(single_config);
  ASSERT_NE(single, nullptr);
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(i);
    auto alone = run_one(*single, greedy_request(prompts[i], kMaxTokens));
    EXPECT_EQ(sinks[i]->finish(), FinishReason::kLength);
    ASSERT_EQ(sinks[i]->tokens().size(), static_cast<size_t>(kMaxTokens));
    EXPECT_EQ(sinks[i]->tokens(), alone->tokens());
    EXPECT_EQ(sinks[i]->tokens(), reference_greedy(*model, prompts[i], kMaxTokens));
  }
  const EngineStats st = batched->stats();
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_EQ(st.kv_blocks_used, zeros_like(st.kv_blocks_total));
  EXPECT_EQ(st.num_generation_tokens, 32 * kMaxTokens);
}

TEST(EngineTest, PreemptionUnderSmallPoolKeepsGreedyOutput) {
  const auto prompts = random_prompts(16, 20, 40, 11);
  constexpr int kMaxTokens = 12;
  EngineConfig config = small_config();
  config.num_blocks = {24, 24};
  config.start_paused = true;
  auto engine = make_engine(config);
  ASSERT_NE(engine, nullptr);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const auto& p : prompts) {
    sinks.push_back(std::make_shared<CollectingSink>());
    engine->submit(greedy_request(p, kMaxTokens), sinks.back());
  }
  engine->resume();
  for (auto& s : sinks) ASSERT_TRUE(s->wait());
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(sinks[i]->tokens(), reference_greedy(*model, prompts[i], kMaxTokens));
  }
  const EngineStats st = engine->stats();
  EXPECT_GT(st.num_preemptions, 0);
  EXPECT_EQ(st.kv_blocks_used, zeros_like(st.kv_blocks_total));
}

TEST(EngineTest, AbortInQueueReturnsNothingAndFreesNothing) {
  EngineConfig config = small_config();
  config.start_paused = true;
  auto engine = make_engine(config);
  ASSERT_NE(engine, nullptr);
  auto sink = std::make_shared<CollectingSink>();
  const RequestId id = engine->submit(greedy_request(random_prompts(1, 30, 30, 1)[0], 8), sink);
  engine->abort(id);
  engine->resume();
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->finish(), FinishReason::kAbort);
  EXPECT_TRUE(sink->tokens().empty());
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, zeros_like(st.kv_blocks_total));
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
}

TEST(EngineTest, AbortDuringPrefillFreesItsBlocks) {
  EngineConfig config = small_config();
  config.max_num_batched_tokens = 8;  // a 40-token prompt takes several steps
  config.start_paused = true;
  auto engine = make_engine(config);
  ASSERT_NE(engine, nullptr);
  const EngineStats start = engine->stats();

  auto long_sink = std::make_shared<CollectingSink>();
  auto short_sink = std::make_shared<CollectingSink>();
  RequestId long_id;
  bool aborted = false;
  Engine* e = engine.get();
  // The short request samples after the first step; its first delta aborts the long one,
  // whose prompt is then 7 of 40 tokens into its prefill.
  short_sink->on_push = [&, e](const Delta&) {
    if (!aborted) e->abort(long_id);
    aborted = true;
  };
  engine->submit(greedy_request({5}, 6), short_sink);
  long_id = engine->submit(greedy_request(random_prompts(1, 40, 40, 2)[0], 4), long_sink);
  engine->resume();
  ASSERT_TRUE(long_sink->wait());
  ASSERT_TRUE(short_sink->wait());
  EXPECT_EQ(long_sink->finish(), FinishReason::kAbort);
  EXPECT_TRUE(long_sink->tokens().empty());
  EXPECT_EQ(short_sink->finish(), FinishReason::kLength);
  EXPECT_EQ(short_sink->tokens().size(), 6u);
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, start.kv_blocks_used);
  EXPECT_EQ(st.kv_blocks_used, zeros_like(st.kv_blocks_total));
}

TEST(EngineTest, AbortDuringDecodeFreesItsBlocks) {
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  auto sink = std::make_shared<CollectingSink>();
  RequestId id;
  std::mutex mu;
  Engine* e = engine.get();
  sink->on_push = [&, e](const Delta& d) {
    std::lock_guard<std::mutex> lock(mu);
    if (!d.finish_reason.has_value()) e->abort(id);
  };
  {
    std::lock_guard<std::mutex> lock(mu);  // the hook reads `id` only once it is set
    id = engine->submit(greedy_request(random_prompts(1, 20, 20, 3)[0], 50), sink);
  }
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->finish(), FinishReason::kAbort);
  // The abort is drained at the start of the next iteration, before another step runs.
  EXPECT_EQ(sink->tokens().size(), 1u);
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, zeros_like(st.kv_blocks_total));
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
}

TEST(EngineTest, SecondIdenticalPromptHitsPrefixCache) {
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  const auto prompt = random_prompts(1, 40, 40, 4)[0];
  auto first = run_one(*engine, greedy_request(prompt, 8));
  EXPECT_EQ(engine->stats().prefix_hit_tokens, 0);
  auto second = run_one(*engine, greedy_request(prompt, 8));
  const EngineStats st = engine->stats();
  EXPECT_GT(st.prefix_hit_tokens, 0);
  EXPECT_EQ(st.prefix_hit_tokens % 16, 0);
  EXPECT_GE(st.prefix_query_tokens, 80);
  EXPECT_EQ(first->tokens().size(), 8u);
  EXPECT_EQ(first->tokens(), second->tokens());

  // A different cache namespace never shares blocks.
  Request other = greedy_request(prompt, 8);
  other.cache_namespace = "tenant-b";
  auto third = run_one(*engine, other);
  EXPECT_EQ(engine->stats().prefix_hit_tokens, st.prefix_hit_tokens);
  EXPECT_EQ(third->tokens(), first->tokens());
}

Request seeded_request(std::vector<TokenId> prompt, uint64_t seed, int n) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = seed;
  r.max_tokens = 12;
  r.n = n;
  return r;
}

TEST(EngineTest, SeededSamplingIsReproducibleUnderOtherTraffic) {
  const auto prompt = random_prompts(1, 10, 10, 5)[0];
  auto quiet = make_engine(small_config());
  ASSERT_NE(quiet, nullptr);
  auto alone = run_one(*quiet, seeded_request(prompt, 1234, 2));
  auto alone_same_seed = run_one(*quiet, seeded_request(prompt, 1234, 1));
  auto alone_next_seed = run_one(*quiet, seeded_request(prompt, 1235, 1));

  EngineConfig busy_config = small_config();
  busy_config.start_paused = true;
  auto busy = make_engine(busy_config);
  ASSERT_NE(busy, nullptr);
  std::vector<std::shared_ptr<CollectingSink>> traffic;
  for (const auto& p : random_prompts(8, 1, 30, 6)) {
    Request r;  // unseeded, random draws
    r.prompt = p;
    r.max_tokens = 10;
    traffic.push_back(std::make_shared<CollectingSink>());
    busy->submit(r, traffic.back());
  }
  auto sink = std::make_shared<CollectingSink>(2);
  busy->submit(seeded_request(prompt, 1234, 2), sink);
  busy->resume();
  ASSERT_TRUE(sink->wait());
  for (auto& t : traffic) ASSERT_TRUE(t->wait());

  ASSERT_EQ(alone->tokens(0).size(), 12u);
  EXPECT_EQ(sink->tokens(0), alone->tokens(0));
  EXPECT_EQ(sink->tokens(1), alone->tokens(1));
  // Choice i draws with seed + i, on the prompt's K/V (the forked choices' shared last
  // block is copied on write, so both see the prompt).
  EXPECT_EQ(alone->tokens(0), alone_same_seed->tokens(0));
  EXPECT_EQ(alone->tokens(1), alone_next_seed->tokens(0));
  EXPECT_NE(alone->tokens(0), alone->tokens(1));
}

TEST(EngineTest, InvalidRequestsAreRejectedWithAbort) {
  auto engine = make_engine(small_config());
  ASSERT_NE(engine, nullptr);
  Request bad_temperature = greedy_request({5, 6}, 4);
  bad_temperature.sampling.temperature = -1.0f;
  auto s1 = run_one(*engine, bad_temperature);
  EXPECT_EQ(s1->finish(), FinishReason::kAbort);
  EXPECT_TRUE(s1->tokens().empty());

  auto s2 = run_one(*engine, greedy_request(std::vector<TokenId>(250, 7), 10));  // > 256
  EXPECT_EQ(s2->finish(), FinishReason::kAbort);
  auto s3 = run_one(*engine, greedy_request({5, 512}, 4));  // id outside the vocabulary
  EXPECT_EQ(s3->finish(), FinishReason::kAbort);
  auto s4 = run_one(*engine, greedy_request({}, 4));
  EXPECT_EQ(s4->finish(), FinishReason::kAbort);

  // The engine still serves valid requests afterwards.
  auto ok = run_one(*engine, greedy_request({5, 6}, 4));
  EXPECT_EQ(ok->finish(), FinishReason::kLength);
  EXPECT_EQ(ok->tokens().size(), 4u);
}

TEST(EngineTest, EosStopsUnlessIgnored) {
  auto model = load_tiny_model();
  ASSERT_NE(model, nullptr);
  const auto prompt = random_prompts(1, 12, 12, 8)[0];
  const std::vector<TokenId> ref = reference_greedy(*model, prompt, 6);
  EngineConfig config = small_config();
  config.eos_token_ids = {ref[2]};  // the third greedy token acts as EOS
  auto engine = make_engine(config);
  ASSERT_NE(engine, nullptr);
  auto stopped = run_one(*engine, greedy_request(prompt, 6));
  EXPECT_EQ(stopped->finish(), FinishReason::kStop);
  const auto first_eos = std::find(ref.begin(), ref.end(), ref[2]);
  EXPECT_EQ(stopped->tokens(), std::vector<TokenId>(ref.begin(), first_eos + 1));
  Request ignoring = greedy_request(prompt, 6);
  ignoring.ignore_eos = true;
  auto full = run_one(*engine, ignoring);
  EXPECT_EQ(full->finish(), FinishReason::kLength);
  EXPECT_EQ(full->tokens(), ref);
}

TEST(EngineTest, CreateRejectsBadConfig) {
  EngineConfig config;
  config.num_blocks = {16};  // the fixture has two KV groups
  auto e1 = Engine::create(load_tiny_model(), config);
  EXPECT_FALSE(e1.is_ok());
  EngineConfig no_memory;  // neither num_blocks nor kv_cache_memory_bytes
  EXPECT_FALSE(Engine::create(load_tiny_model(), no_memory).is_ok());
  EngineConfig by_memory;
  by_memory.kv_cache_memory_bytes = 4 << 20;
  auto e2 = Engine::create(load_tiny_model(), by_memory);
  ASSERT_TRUE(e2.is_ok()) << e2.status().message();
  const EngineStats st = (*e2)->stats();
  ASSERT_EQ(st.kv_blocks_total.size(), 2u);
  EXPECT_GT(st.kv_blocks_total[0], 0);
}

}  // namespace
}  // namespace sluice::engine
