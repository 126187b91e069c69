// Preemption by recompute: a pool too small for the load forces preemptions, and every
// request still completes with exactly the tokens it gets when run alone with plenty of
// room. The victim is the lowest priority, then the latest arrival.

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "scheduler/scheduler.h"
#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::FakeExecutor;
using testing::make_request;
using testing::make_scheduler;

SchedulerConfig config(int32_t budget, int32_t max_seqs) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_model_len = 256;
  return c;
}

class PreemptionLoad : public ::testing::TestWithParam<uint64_t> {};

TEST_P(PreemptionLoad, EveryRequestGetsItsSoloTokens) {
  const std::vector<KvGroupSpec> groups = {{KvGroupKind::kFull, 0, 4, 26},
                                           {KvGroupKind::kSliding, 8, 4, 12}};
  std::mt19937_64 rng(GetParam());
  const auto shared = testing::random_tokens(rng, 24);
  std::vector<RequestSpec> requests;
  for (uint64_t id = 1; id <= 14; ++id) {
    std::vector<TokenId> prompt;
    if (id % 3 == 0) prompt.assign(shared.begin(), shared.begin() + 8 + rng() % 17);
    const auto tail = testing::random_tokens(rng, 1 + static_cast<int32_t>(rng() % 30));
    prompt.insert(prompt.end(), tail.begin(), tail.end());
    RequestSpec r = make_request(id, prompt, 8 + static_cast<int32_t>(rng() % 30));
    if (id == 5 || id == 11) r.n = 2;
    if (id == 7) {
      r.ignore_eos = false;
      r.eos_token_ids = {3};  // may stop early; the solo run must stop at the same place
    }
    requests.push_back(r);
  }

  auto s = make_scheduler(groups, config(24, 8));
  FakeExecutor ex(s->kv_cache());
  const auto start_free = testing::free_counts(s->kv_cache());
  for (const auto& r : requests) ASSERT_TRUE(s->add_request(r).is_ok()) << r.id.value;
  int preempting_steps = 0;
  auto log = testing::run_to_completion(*s, ex, 5000, [&](const StepPlan& plan) {
    if (!plan.preempted.empty()) ++preempting_steps;
  });

  EXPECT_GT(s->stats().num_preemptions, 3) << "the pool was meant to be too small";
  EXPECT_GT(preempting_steps, 0);
  for (const auto& r : requests) {
    const auto solo = testing::run_alone(groups, r);
    for (const auto& [key, tokens] : solo) {
      EXPECT_EQ(log.tokens[key], tokens) << "request " << key.first << " choice " << key.second;
    }
  }
  EXPECT_EQ(testing::free_counts(s->kv_cache()), start_free);
  EXPECT_EQ(s->stats().num_running, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, PreemptionLoad, ::testing::Values(1u, 2u, 3u));

// Three 4-token prompts in a 6-block pool: at position 8 each needs a third block.
class Victim : public ::testing::Test {
 protected:
  std::unique_ptr<Scheduler> s = make_scheduler({{KvGroupKind::kFull, 0, 4, 6}}, config(32, 8));
  FakeExecutor ex{s->kv_cache()};
  testing::RunLog log;

  void add(uint64_t id, int32_t priority) {
    RequestSpec r = make_request(id, {1, 2, 3, static_cast<TokenId>(id)}, 16);
    r.priority = priority;
    ASSERT_TRUE(s->add_request(r).is_ok());
  }

  // Runs until a step preempts; returns that plan.
  StepPlan until_preemption() {
    for (int i = 0; i < 50; ++i) {
      StepPlan plan = testing::run_step(*s, ex, log);
      if (!plan.preempted.empty()) return plan;
    }
    ADD_FAILURE() << "no preemption";
    return {};
  }
};

TEST_F(Victim, LatestArrivalAmongEqualPriorities) {
  add(1, 0);
  add(2, 0);
  add(3, 0);
  StepPlan plan = until_preemption();
  ASSERT_EQ(plan.preempted.size(), 1u);
  EXPECT_EQ(s->find(plan.preempted[0])->request_id(), RequestId(3));
  EXPECT_EQ(plan.sequences.size(), 2u);  // 1 and 2 decode
  for (const auto& e : plan.sequences) EXPECT_NE(e.request_id, RequestId(3));
  EXPECT_EQ(s->num_waiting(), 1);
  EXPECT_EQ(s->find(plan.preempted[0])->num_computed_tokens, 0);
  // Its output so far is kept, to be recomputed with the prompt.
  EXPECT_EQ(static_cast<size_t>(s->find(plan.preempted[0])->num_output_tokens()),
            log.tokens[testing::key(3)].size());
  EXPECT_EQ(log.tokens[testing::key(3)].size(), 5u);
}

TEST_F(Victim, LowestPriorityFirstEvenIfItArrivedFirst) {
  add(1, 5);  // lower priority (larger value), first to arrive
  add(2, 0);
  add(3, 0);
  StepPlan plan = until_preemption();
  ASSERT_EQ(plan.preempted.size(), 1u);
  EXPECT_EQ(s->find(plan.preempted[0])->request_id(), RequestId(1));
  // It goes back to the front of the queue and finishes with its solo tokens.
  auto rest = testing::run_to_completion(*s, ex);
  for (auto& [key, t] : rest.tokens)
    log.tokens[key].insert(log.tokens[key].end(), t.begin(), t.end());
  RequestSpec r1 = make_request(1, {1, 2, 3, 1}, 16);
  EXPECT_EQ(log.tokens[testing::key(1)],
            testing::run_alone({{KvGroupKind::kFull, 0, 4, 6}}, r1)[testing::key(1)]);
  EXPECT_GE(s->stats().num_preemptions, 1);
}

// Newest first: a policy that would happily admit a new request right after a preemption.
class LifoPolicy final : public AdmissionPolicy {
 public:
  std::string_view name() const override { return "lifo"; }
  size_t pick_next(std::span<const SequenceInfo> waiting) override { return waiting.size() - 1; }
};

TEST(Preemption, NothingIsAdmittedInAStepThatPreempted) {
  auto s = make_scheduler({{KvGroupKind::kFull, 0, 4, 7}}, config(32, 8), {},
                          std::make_unique<LifoPolicy>());
  FakeExecutor ex(s->kv_cache());
  testing::RunLog log;
  ASSERT_TRUE(s->add_request(make_request(1, {1, 2, 3, 1}, 16)).is_ok());
  ASSERT_TRUE(s->add_request(make_request(2, {1, 2, 3, 2}, 16)).is_ok());
  ASSERT_TRUE(s->add_request(make_request(3, {1, 2, 3, 4, 5, 6, 7, 8, 9}, 16)).is_ok());
  testing::run_step(*s, ex, log);  // all three admitted (3 is first: newest first)
  ASSERT_EQ(s->num_running(), 3);
  ASSERT_TRUE(s->add_request(make_request(4, {5}, 4)).is_ok());
  // Step 2 fills the pool (4 waits); at position 12, 3 needs a fourth block and, as the
  // latest arrival, is preempted. That frees 3 blocks, room for 4, yet the step admits
  // nothing: the freed blocks are for the recompute, not for newcomers to thrash over.
  StepPlan plan;
  for (int i = 0; i < 10 && plan.preempted.empty(); ++i) plan = testing::run_step(*s, ex, log);
  ASSERT_EQ(plan.preempted.size(), 1u);
  EXPECT_EQ(s->find(plan.preempted[0])->request_id(), RequestId(3));
  EXPECT_EQ(plan.sequences.size(), 2u);
  for (const auto& e : plan.sequences) EXPECT_NE(e.request_id, RequestId(4));
  EXPECT_EQ(s->num_waiting(), 2);
  EXPECT_EQ(s->kv_cache().pool(0).num_free_blocks(), 3);
  StepPlan next = testing::run_step(*s, ex, log);
  EXPECT_EQ(next.sequences.back().request_id, RequestId(4));  // admitted one step later
  auto rest = testing::run_to_completion(*s, ex);
  EXPECT_EQ(rest.requests_finished.size() + log.requests_finished.size(), 4u);
}

}  // namespace
}  // namespace sluice::scheduler
