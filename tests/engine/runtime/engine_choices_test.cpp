// n > 1 on the tiny Gemma 3 fixture: the choices share the prompt's blocks (one prefill,
// forked), and every path — rejection, abort in the queue, in prefill and in decode, stop
// and length — reports every choice exactly once.

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>

#include "engine/runtime/engine.h"
#include "engine/runtime/engine_test_util.h"

namespace sluice::engine {
namespace {

using scheduler::FinishReason;

EngineConfig config() {
  EngineConfig c;
  c.num_blocks = {256, 256};
  c.max_num_seqs = 32;
  c.max_num_batched_tokens = 64;
  c.enable_prefix_caching = false;
  return c;
}

std::vector<int32_t> zeros(size_t n) { return std::vector<int32_t>(n, 0); }

Request seeded(std::vector<TokenId> prompt, int n, int max_tokens) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 99;
  r.max_tokens = max_tokens;
  r.n = n;
  return r;
}

// KV blocks in use per group after the step that produced choice 0's first and second
// tokens (stats() is refreshed before an iteration's deltas are pushed).
std::pair<std::vector<int32_t>, std::vector<int32_t>> blocks_after_two_steps(Request r) {
  auto engine = make_engine(config());
  EXPECT_NE(engine, nullptr);
  if (engine == nullptr) return {};
  auto sink = std::make_shared<CollectingSink>(r.n);
  std::mutex mu;  // the hook of the last delta may still run when wait() returns
  std::vector<std::vector<int32_t>> seen;
  Engine* e = engine.get();
  sink->on_push = [&, e](const Delta& d) {
    std::lock_guard<std::mutex> lock(mu);
    if (d.choice == 0 && !d.token_ids.empty()) seen.push_back(e->stats().kv_blocks_used);
  };
  engine->submit(std::move(r), sink);
  EXPECT_TRUE(sink->wait());
  engine->stop();  // no more hooks after this
  EXPECT_GE(seen.size(), 2u);
  if (seen.size() < 2) return {};
  return {seen[0], seen[1]};
}

TEST(EngineChoicesTest, ChoicesShareThePromptBlocks) {
  // 64 prompt tokens fill 4 blocks of 16 in the full-attention group; the first decode
  // position (64) starts a fifth block per choice.
  const auto prompt = random_prompts(1, 64, 64, 31)[0];
  const auto [one_first, one_second] = blocks_after_two_steps(seeded(prompt, 1, 4));
  const auto [four_first, four_second] = blocks_after_two_steps(seeded(prompt, 4, 4));
  ASSERT_EQ(one_first.size(), 2u);
  ASSERT_EQ(four_first.size(), 2u);
  // After the prompt step the forked choices hold the prompt's blocks, no copies.
  EXPECT_EQ(four_first, one_first);
  // After one decode, each extra choice holds one block of its own per group, not a copy
  // of the prompt.
  for (size_t g = 0; g < 2; ++g) EXPECT_EQ(four_second[g], one_second[g] + 3) << g;
  EXPECT_EQ(four_second[1], 4 + 4);  // full group: 4 shared + 1 per choice
}

TEST(EngineChoicesTest, RejectedRequestAbortsEveryChoice) {
  auto engine = make_engine(config());
  ASSERT_NE(engine, nullptr);
  Request bad = seeded({5, 6, 7}, 3, 4);
  bad.sampling.temperature = 5.0f;
  auto sink = run_one(*engine, bad);
  ASSERT_EQ(sink->num_deltas(), 3);
  for (int32_t c = 0; c < 3; ++c) {
    EXPECT_EQ(sink->finish(c), FinishReason::kAbort) << c;
    EXPECT_TRUE(sink->tokens(c).empty());
  }
  // Rejected by the scheduler (prompt + max_tokens over the 256-token context).
  auto long_sink = run_one(*engine, seeded(std::vector<TokenId>(250, 7), 2, 10));
  EXPECT_EQ(long_sink->num_deltas(), 2);
  EXPECT_EQ(long_sink->finish(1), FinishReason::kAbort);
}

TEST(EngineChoicesTest, AbortInQueueEndsEveryChoice) {
  EngineConfig c = config();
  c.start_paused = true;
  auto engine = make_engine(c);
  ASSERT_NE(engine, nullptr);
  auto sink = std::make_shared<CollectingSink>(3);
  engine->abort(engine->submit(seeded(random_prompts(1, 20, 20, 32)[0], 3, 8), sink));
  engine->resume();
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->num_deltas(), 3);
  for (int32_t k = 0; k < 3; ++k) EXPECT_EQ(sink->finish(k), FinishReason::kAbort) << k;
}

TEST(EngineChoicesTest, AbortInPrefillEndsEveryChoice) {
  EngineConfig c = config();
  c.max_num_batched_tokens = 8;  // the 40-token prompt takes several steps
  c.start_paused = true;
  auto engine = make_engine(c);
  ASSERT_NE(engine, nullptr);
  auto long_sink = std::make_shared<CollectingSink>(3);
  auto short_sink = std::make_shared<CollectingSink>();
  RequestId long_id;
  bool aborted = false;
  Engine* e = engine.get();
  short_sink->on_push = [&, e](const Delta&) {
    if (!aborted) e->abort(long_id);
    aborted = true;
  };
  engine->submit(greedy_request({5}, 6), short_sink);
  long_id = engine->submit(seeded(random_prompts(1, 40, 40, 33)[0], 3, 4), long_sink);
  engine->resume();
  ASSERT_TRUE(long_sink->wait());
  ASSERT_TRUE(short_sink->wait());
  EXPECT_EQ(long_sink->num_deltas(), 3);
  for (int32_t k = 0; k < 3; ++k) {
    EXPECT_EQ(long_sink->finish(k), FinishReason::kAbort) << k;
    EXPECT_TRUE(long_sink->tokens(k).empty());
  }
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, zeros(st.kv_blocks_total.size()));
}

TEST(EngineChoicesTest, AbortInDecodeEndsEveryChoice) {
  auto engine = make_engine(config());
  ASSERT_NE(engine, nullptr);
  auto sink = std::make_shared<CollectingSink>(3);
  RequestId id;
  std::mutex mu;
  Engine* e = engine.get();
  sink->on_push = [&, e](const Delta& d) {
    std::lock_guard<std::mutex> lock(mu);
    if (d.choice == 2 && !d.finish_reason.has_value()) e->abort(id);
  };
  {
    std::lock_guard<std::mutex> lock(mu);
    id = engine->submit(seeded(random_prompts(1, 20, 20, 34)[0], 3, 50), sink);
  }
  ASSERT_TRUE(sink->wait());
  for (int32_t k = 0; k < 3; ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(sink->finish(k), FinishReason::kAbort);
    EXPECT_EQ(sink->tokens(k).size(), 1u);  // the fork step's token, then the abort
  }
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, zeros(st.kv_blocks_total.size()));
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
}

TEST(EngineChoicesTest, StopAndLengthArePerChoice) {
  const auto prompt = random_prompts(1, 12, 12, 35)[0];
  auto engine = make_engine(config());
  ASSERT_NE(engine, nullptr);
  auto free_run = run_one(*engine, seeded(prompt, 3, 12));
  std::vector<std::vector<TokenId>> ref;
  for (int32_t k = 0; k < 3; ++k) ref.push_back(free_run->tokens(k));
  for (const auto& r : ref) ASSERT_EQ(r.size(), 12u);

  // A token that choice 1 samples (before its last) and choice 0 never does.
  TokenId stop = -1;
  for (size_t i = 0; i + 1 < ref[1].size() && stop < 0; ++i) {
    if (std::find(ref[0].begin(), ref[0].end(), ref[1][i]) == ref[0].end()) stop = ref[1][i];
  }
  ASSERT_GE(stop, 0) << "the seeded choices sample the same tokens";

  Request r = seeded(prompt, 3, 12);
  r.stop_token_ids = {stop};
  auto sink = run_one(*engine, r);
  for (int32_t k = 0; k < 3; ++k) {
    SCOPED_TRACE(k);
    auto it = std::find(ref[k].begin(), ref[k].end(), stop);
    if (it == ref[k].end()) {
      EXPECT_EQ(sink->finish(k), FinishReason::kLength);
      EXPECT_EQ(sink->tokens(k), ref[k]);
    } else {
      EXPECT_EQ(sink->finish(k), FinishReason::kStop);
      EXPECT_EQ(sink->tokens(k), std::vector<TokenId>(ref[k].begin(), it + 1));
    }
  }
  EXPECT_EQ(sink->finish(0), FinishReason::kLength);
  EXPECT_EQ(sink->finish(1), FinishReason::kStop);
  const EngineStats st = engine->stats();
  EXPECT_EQ(st.kv_blocks_used, zeros(st.kv_blocks_total.size()));
}

}  // namespace
}  // namespace sluice::engine
