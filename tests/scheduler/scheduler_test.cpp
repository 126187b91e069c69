// Scheduler basics: request validation, the token budget and sequence cap on every step,
// chunked prefill, decode-first ordering, finish rules, and n > 1 forking.

#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::FakeExecutor;
using testing::make_request;
using testing::make_scheduler;
using testing::run_alone;
using testing::run_to_completion;

const std::vector<KvGroupSpec> kGroups = {{KvGroupKind::kFull, 0, 4, 64},
                                          {KvGroupKind::kSliding, 8, 4, 32}};

SchedulerConfig config(int32_t budget, int32_t max_seqs) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_model_len = 256;
  return c;
}

TEST(Scheduler, CreateRejectsBadConfig) {
  EXPECT_FALSE(Scheduler::create(config(0, 4), testing::make_kv(kGroups), nullptr).is_ok());
  EXPECT_FALSE(Scheduler::create(config(8, 0), testing::make_kv(kGroups), nullptr).is_ok());
}

TEST(Scheduler, AddRequestValidates) {
  auto s = make_scheduler(kGroups, config(32, 4));
  auto code = [&](RequestSpec r) { return s->add_request(std::move(r)).code(); };
  EXPECT_EQ(code(make_request(1, {}, 4)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(make_request(1, {1, -2}, 4)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(make_request(1, {1}, 0)), StatusCode::kInvalidArgument);
  RequestSpec r = make_request(1, {1}, 4);
  r.min_tokens = 5;
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument);
  r = make_request(1, {1}, 4);
  r.n = 5;  // over max_num_seqs
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument);
  r.n = 0;
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument);
  r = make_request(1, {1}, 4);
  r.weight = 0.0;
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument);
  Status long_one = s->add_request(make_request(1, std::vector<TokenId>(250, 1), 7));
  EXPECT_EQ(long_one.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(long_one.message().find("max-model-len"), std::string::npos) << long_one.message();

  auto small = make_scheduler({{KvGroupKind::kFull, 0, 4, 4}}, config(32, 4));
  EXPECT_EQ(small->add_request(make_request(1, std::vector<TokenId>(10, 1), 7)).code(),
            StatusCode::kResourceExhausted);  // 17 tokens need 5 blocks, the pool has 4

  EXPECT_TRUE(s->add_request(make_request(1, {1, 2}, 4)).is_ok());
  EXPECT_EQ(code(make_request(1, {3}, 4)), StatusCode::kAlreadyExists);
  EXPECT_EQ(s->num_waiting(), 1);
}

TEST(Scheduler, BudgetAndMaxNumSeqsHoldEveryStep) {
  auto s = make_scheduler(kGroups, config(32, 4));
  FakeExecutor ex(s->kv_cache());
  std::mt19937_64 rng(7);
  for (uint64_t id = 1; id <= 20; ++id) {
    ASSERT_TRUE(
        s->add_request(make_request(id, testing::random_tokens(rng, 5 + id * 3), 6)).is_ok());
  }
  int full_steps = 0;
  auto log = run_to_completion(*s, ex, 1000, [&](const StepPlan& plan) {
    if (plan.num_batched_tokens == 32) ++full_steps;
  });
  EXPECT_LE(log.max_step_tokens, 32);
  EXPECT_EQ(log.max_step_seqs, 4);
  EXPECT_GT(full_steps, 5);  // the budget is actually used up, not just respected
  ASSERT_EQ(log.tokens.size(), 20u);
  for (const auto& [key, tokens] : log.tokens) {
    EXPECT_EQ(tokens.size(), 6u);
    EXPECT_EQ(log.finish.at(key), FinishReason::kLength);
    EXPECT_EQ(log.requests_finished.at(key.first), 1);
  }
}

TEST(Scheduler, ChunkedPrefillSplitsALongPrompt) {
  auto s = make_scheduler(kGroups, config(32, 4));
  FakeExecutor ex(s->kv_cache());
  std::mt19937_64 rng(3);
  const auto prompt = testing::random_tokens(rng, 100);
  ASSERT_TRUE(s->add_request(make_request(1, prompt, 3)).is_ok());
  std::vector<std::pair<int32_t, int32_t>> chunks;  // (start, num_new)
  std::vector<int32_t> samples;
  auto log = run_to_completion(*s, ex, 100, [&](const StepPlan& plan) {
    ASSERT_EQ(plan.sequences.size(), 1u);
    const ScheduledSequence& e = plan.sequences[0];
    chunks.emplace_back(e.start_position, e.num_new_tokens);
    samples.push_back(e.num_samples);
    if (e.start_position < 100) {
      const std::vector<TokenId> want(prompt.begin() + e.start_position,
                                      prompt.begin() + e.start_position + e.num_new_tokens);
      EXPECT_EQ(e.token_ids, want);
    }
  });
  const std::vector<std::pair<int32_t, int32_t>> want_chunks = {{0, 32}, {32, 32}, {64, 32},
                                                                {96, 4}, {100, 1}, {101, 1}};
  EXPECT_EQ(chunks, want_chunks);
  EXPECT_EQ(samples, (std::vector<int32_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(log.tokens, run_alone(kGroups, make_request(1, prompt, 3)));
}

TEST(Scheduler, DecodesComeBeforePrefillChunks) {
  auto s = make_scheduler(kGroups, config(8, 4));
  FakeExecutor ex(s->kv_cache());
  ASSERT_TRUE(s->add_request(make_request(1, {1, 2, 3}, 5)).is_ok());
  ASSERT_TRUE(s->add_request(make_request(2, std::vector<TokenId>(50, 4), 5)).is_ok());
  testing::RunLog log;
  StepPlan first = testing::run_step(*s, ex, log);
  ASSERT_EQ(first.sequences.size(), 2u);
  EXPECT_EQ(first.sequences[0].num_new_tokens, 3);  // request 1's whole prompt
  EXPECT_EQ(first.sequences[1].num_new_tokens, 5);  // request 2 takes what is left
  StepPlan second = testing::run_step(*s, ex, log);
  ASSERT_EQ(second.sequences.size(), 2u);
  EXPECT_EQ(second.sequences[0].request_id, RequestId(1));  // the decode first
  EXPECT_EQ(second.sequences[0].num_new_tokens, 1);
  EXPECT_EQ(second.sequences[1].request_id, RequestId(2));
  EXPECT_EQ(second.sequences[1].num_new_tokens, 7);
}

// Returns scripted tokens per request, ignoring the model.
StepResult scripted(const StepPlan& plan, std::map<uint64_t, std::vector<TokenId>>& script) {
  StepResult r;
  for (const auto& e : plan.sequences) {
    std::vector<TokenId> out;
    for (int k = 0; k < e.num_samples; ++k) {
      auto& q = script.at(e.request_id.value);
      if (q.empty()) {
        ADD_FAILURE() << "request " << e.request_id.value << " ran past its script";
        out.push_back(0);
        continue;
      }
      out.push_back(q.front());
      q.erase(q.begin());
    }
    r.sampled_token_ids.push_back(out);
  }
  return r;
}

TEST(Scheduler, FinishRules) {
  auto s = make_scheduler(kGroups, config(64, 8));
  RequestSpec stop = make_request(1, {1, 2}, 10);
  stop.stop_token_ids = {7};
  RequestSpec eos = make_request(2, {1, 2}, 10);
  eos.ignore_eos = false;
  eos.eos_token_ids = {9};
  RequestSpec ignore = make_request(3, {1, 2}, 4);
  ignore.eos_token_ids = {9};  // ignore_eos is set by make_request
  RequestSpec min_tokens = make_request(4, {1, 2}, 10);
  min_tokens.ignore_eos = false;
  min_tokens.eos_token_ids = {9};
  min_tokens.stop_token_ids = {7};
  min_tokens.min_tokens = 3;
  std::map<uint64_t, std::vector<TokenId>> script = {
      {1, {1, 2, 7, 3, 3}}, {2, {1, 9, 3}}, {3, {9, 9, 9, 9, 9}}, {4, {7, 9, 9, 9, 9}}};
  for (RequestSpec* r : {&stop, &eos, &ignore, &min_tokens})
    ASSERT_TRUE(s->add_request(*r).is_ok());
  testing::RunLog log;
  std::map<uint64_t, std::optional<TokenId>> stop_ids;
  while (s->has_unfinished()) {
    StepPlan plan = s->schedule();
    StepOutput out = s->update(plan, scripted(plan, script));
    for (const auto& o : out.outputs) {
      if (o.finish_reason) stop_ids[o.request_id.value] = o.stop_token_id;
    }
    log.record(out.outputs);
    s->check_integrity();
  }
  EXPECT_EQ(log.tokens[testing::key(1)], (std::vector<TokenId>{1, 2, 7}));
  EXPECT_EQ(log.finish[testing::key(1)], FinishReason::kStop);
  EXPECT_EQ(stop_ids[1], 7);
  EXPECT_EQ(log.tokens[testing::key(2)], (std::vector<TokenId>{1, 9}));
  EXPECT_EQ(log.finish[testing::key(2)], FinishReason::kStop);
  EXPECT_EQ(log.tokens[testing::key(3)], (std::vector<TokenId>{9, 9, 9, 9}));
  EXPECT_EQ(log.finish[testing::key(3)], FinishReason::kLength);
  EXPECT_EQ(stop_ids[3], std::nullopt);
  EXPECT_EQ(log.tokens[testing::key(4)],
            (std::vector<TokenId>{7, 9, 9}));  // neither before 3 outputs
  EXPECT_EQ(log.finish[testing::key(4)], FinishReason::kStop);
  for (int32_t g = 0; g < 2; ++g) {
    EXPECT_EQ(s->kv_cache().pool(g).num_used_blocks(), 0);
  }
}

TEST(Scheduler, NChoicesForkAndShareThePromptBlocks) {
  auto s = make_scheduler(kGroups, config(64, 4));
  FakeExecutor ex(s->kv_cache());
  RequestSpec r = make_request(1, {5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, 6);
  r.n = 3;
  ASSERT_TRUE(s->add_request(r).is_ok());
  testing::RunLog log;
  StepPlan prefill = testing::run_step(*s, ex, log);
  ASSERT_EQ(prefill.sequences.size(), 1u);
  EXPECT_EQ(prefill.sequences[0].num_samples, 3);
  ASSERT_EQ(s->num_running(), 3);
  EXPECT_EQ(s->stats().num_running_requests, 1);
  // The two full prompt blocks are held by all three choices.
  const BlockId shared = prefill.sequences[0].block_tables[0][0];
  EXPECT_EQ(s->kv_cache().pool(0).block(shared).ref_count, 3);
  // Next step: the half-full third block is copied for two choices; the last writes in place.
  StepPlan decode = testing::run_step(*s, ex, log);
  EXPECT_EQ(decode.sequences.size(), 3u);
  EXPECT_EQ(decode.blocks.copies.size(), 4u);  // 2 choices x 2 groups
  auto rest = run_to_completion(*s, ex);
  for (auto& [key, t] : rest.tokens) {
    log.tokens[key].insert(log.tokens[key].end(), t.begin(), t.end());
  }
  EXPECT_EQ(log.tokens, run_alone(kGroups, r));
  EXPECT_NE(log.tokens[testing::key(1)], log.tokens[testing::key(1, 1)]);
  EXPECT_EQ(rest.requests_finished[1], 1);
}

TEST(Scheduler, UnforkedRequestReservesSeatsForItsChoices) {
  auto s = make_scheduler(kGroups, config(64, 4));
  FakeExecutor ex(s->kv_cache());
  RequestSpec a = make_request(1, std::vector<TokenId>(20, 3), 4);
  a.n = 3;
  RequestSpec b = make_request(2, {1, 2, 3}, 4);
  b.n = 2;
  ASSERT_TRUE(s->add_request(a).is_ok());
  ASSERT_TRUE(s->add_request(b).is_ok());
  testing::RunLog log;
  StepPlan first = testing::run_step(*s, ex, log);
  EXPECT_EQ(first.sequences.size(), 1u);  // b would need 2 more seats than the 1 left
  auto rest = run_to_completion(*s, ex);
  EXPECT_LE(rest.max_step_seqs, 4);
  EXPECT_EQ(rest.requests_finished.size(), 2u);
}

}  // namespace
}  // namespace sluice::scheduler
