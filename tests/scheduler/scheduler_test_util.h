#pragma once
// Helpers for the scheduler tests: building managers and schedulers, requests, and running a
// scheduler with the FakeExecutor to completion while checking the invariants every step.

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "common/check.h"
#include "fake_executor.h"
#include "scheduler/scheduler.h"

namespace sluice::scheduler::testing {

inline KvCacheManager make_kv(std::vector<KvGroupSpec> groups, KvCacheOptions options = {}) {
  auto kv = KvCacheManager::create(std::move(groups), std::move(options));
  SLUICE_CHECK(kv.is_ok(), "{}", kv.status().to_string());
  return std::move(kv).value();
}

inline std::unique_ptr<Scheduler> make_scheduler(std::vector<KvGroupSpec> groups,
                                                 SchedulerConfig config = {},
                                                 KvCacheOptions options = {},
                                                 std::unique_ptr<AdmissionPolicy> policy = {}) {
  auto s =
      Scheduler::create(config, make_kv(std::move(groups), std::move(options)), std::move(policy));
  SLUICE_CHECK(s.is_ok(), "{}", s.status().to_string());
  return std::move(s).value();
}

inline RequestSpec make_request(uint64_t id, std::vector<TokenId> prompt, int32_t max_tokens,
                                CacheKeys keys = {}) {
  RequestSpec r;
  r.id = RequestId(id);
  r.prompt_token_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  r.cache_keys = std::move(keys);
  return r;
}

inline std::vector<TokenId> random_tokens(std::mt19937_64& rng, int32_t n, int32_t vocab = 50) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<TokenId>(rng() % static_cast<uint64_t>(vocab));
  return t;
}

inline std::shared_ptr<const RequestSpec> spec_ptr(RequestSpec r) {
  return std::make_shared<const RequestSpec>(std::move(r));
}

// (request id, choice index)
using ChoiceKey = std::pair<uint64_t, int32_t>;
inline ChoiceKey key(uint64_t request, int32_t choice = 0) { return {request, choice}; }

struct RunLog {
  std::map<ChoiceKey, std::vector<TokenId>> tokens;
  std::map<ChoiceKey, FinishReason> finish;
  std::map<uint64_t, int32_t> requests_finished;  // request id -> times reported finished
  int32_t num_steps = 0;
  int32_t max_step_tokens = 0;
  int32_t max_step_seqs = 0;

  void record(const std::vector<SequenceOutput>& outputs) {
    for (const SequenceOutput& o : outputs) {
      const ChoiceKey key{o.request_id.value, o.choice_index};
      auto& t = tokens[key];
      t.insert(t.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finish_reason) {
        EXPECT_EQ(finish.count(key), 0u) << "choice finished twice: " << key.first;
        finish[key] = *o.finish_reason;
      }
      if (o.request_finished) ++requests_finished[o.request_id.value];
    }
  }
};

// One schedule -> execute -> update round, checking the invariants after it.
inline StepPlan run_step(Scheduler& s, FakeExecutor& ex, RunLog& log) {
  StepPlan plan = s.schedule();
  const SchedulerConfig& c = s.config();
  EXPECT_LE(plan.num_batched_tokens, c.max_num_batched_tokens);
  EXPECT_LE(static_cast<int32_t>(plan.sequences.size()), c.max_num_seqs);
  int32_t sum = 0;
  for (const auto& e : plan.sequences) sum += e.num_new_tokens;
  EXPECT_EQ(sum, plan.num_batched_tokens);
  log.max_step_tokens = std::max(log.max_step_tokens, plan.num_batched_tokens);
  log.max_step_seqs = std::max(log.max_step_seqs, static_cast<int32_t>(plan.sequences.size()));
  StepResult result = ex.execute(plan);
  log.record(s.update(plan, result).outputs);
  ++log.num_steps;
  s.check_integrity();
  return plan;
}

// Steps until nothing is left (or max_steps, which fails the test). `on_plan` sees each plan.
inline RunLog run_to_completion(Scheduler& s, FakeExecutor& ex, int32_t max_steps = 20000,
                                const std::function<void(const StepPlan&)>& on_plan = {}) {
  RunLog log;
  while (s.has_unfinished()) {
    if (log.num_steps >= max_steps) {
      ADD_FAILURE() << "no completion after " << max_steps << " steps";
      break;
    }
    StepPlan plan = run_step(s, ex, log);
    if (on_plan) on_plan(plan);
  }
  EXPECT_TRUE(ex.errors.empty()) << ex.errors.size() << " executor errors, first: "
                                 << (ex.errors.empty() ? "" : ex.errors.front());
  return log;
}

// The same groups with room for anything (reference runs).
inline std::vector<KvGroupSpec> roomy(std::vector<KvGroupSpec> groups) {
  for (auto& g : groups) g.num_blocks = 4096;
  return groups;
}

// The tokens each choice of `request` gets when it runs alone with plenty of room.
inline std::map<ChoiceKey, std::vector<TokenId>> run_alone(const std::vector<KvGroupSpec>& groups,
                                                           RequestSpec request) {
  SchedulerConfig config;
  config.max_num_batched_tokens = 8192;
  config.max_num_seqs = 64;
  config.max_model_len = 8192;
  auto s = make_scheduler(roomy(groups), config);
  FakeExecutor ex(s->kv_cache());
  SLUICE_CHECK(s->add_request(std::move(request)).is_ok(), "reference request rejected");
  return run_to_completion(*s, ex).tokens;
}

// The free blocks of every group.
inline std::vector<int32_t> free_counts(const KvCacheManager& kv) {
  std::vector<int32_t> out;
  for (int32_t g = 0; g < kv.num_groups(); ++g) out.push_back(kv.pool(g).num_free_blocks());
  return out;
}

}  // namespace sluice::scheduler::testing
