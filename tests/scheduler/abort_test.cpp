// abort() at every stage (queued, mid chunked prefill, decoding, between schedule and
// update, n > 1 before and after the fork) ends the request and returns the pool to its
// starting free count.

#include <gtest/gtest.h>

#include <vector>

#include "scheduler/scheduler.h"
#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::FakeExecutor;
using testing::free_counts;
using testing::make_request;

const std::vector<KvGroupSpec> kGroups = {{KvGroupKind::kFull, 0, 4, 40},
                                          {KvGroupKind::kSliding, 8, 4, 16}};

SchedulerConfig config(int32_t budget, int32_t max_seqs) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_model_len = 256;
  return c;
}

class Abort : public ::testing::Test {
 protected:
  std::unique_ptr<Scheduler> s = testing::make_scheduler(kGroups, config(16, 2));
  FakeExecutor ex{s->kv_cache()};
  testing::RunLog log;
  const std::vector<int32_t> start_free = free_counts(s->kv_cache());

  StepPlan last;  // the latest plan run

  // The live sequence of `request` scheduled in the latest plan.
  const SequenceState* seq_of(uint64_t request) {
    for (const auto& e : last.sequences) {
      if (e.request_id == RequestId(request)) return s->find(e.seq_id);
    }
    return nullptr;
  }

  void expect_aborted(const std::vector<SequenceOutput>& out, uint64_t request, size_t n = 1) {
    ASSERT_EQ(out.size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(out[i].request_id, RequestId(request));
      EXPECT_EQ(out[i].finish_reason, FinishReason::kAbort);
      EXPECT_TRUE(out[i].new_token_ids.empty());
      EXPECT_EQ(out[i].request_finished, i + 1 == n);
    }
    s->check_integrity();
  }
};

TEST_F(Abort, InTheQueueMidPrefillAndInDecode) {
  // Arrivals: 1 (short, will decode), 2 (long, chunked), 3 (queued: max_num_seqs is 2).
  ASSERT_TRUE(s->add_request(make_request(1, {1, 2, 3, 4, 5}, 50)).is_ok());
  ASSERT_TRUE(s->add_request(make_request(2, std::vector<TokenId>(40, 7), 50)).is_ok());
  ASSERT_TRUE(s->add_request(make_request(3, {9, 9, 9}, 50)).is_ok());
  last = testing::run_step(*s, ex, log);  // 1: 5 tokens; 2: 11 tokens
  last = testing::run_step(*s, ex, log);  // 1: decode; 2: 15 more (26 of 40)
  ASSERT_EQ(last.sequences.size(), 2u);
  const SequenceState* prefilling = seq_of(2);
  ASSERT_NE(prefilling, nullptr);
  EXPECT_TRUE(prefilling->in_prefill());
  EXPECT_EQ(prefilling->num_computed_tokens, 26);
  const SequenceState* decoding = seq_of(1);
  ASSERT_NE(decoding, nullptr);
  EXPECT_FALSE(decoding->in_prefill());
  EXPECT_EQ(s->num_waiting(), 1);
  EXPECT_EQ(s->stats().num_running_requests, 2);
  EXPECT_EQ(s->stats().num_waiting_requests, 1);

  expect_aborted(s->abort(RequestId(3)), 3);  // queued
  EXPECT_EQ(s->num_waiting(), 0);
  expect_aborted(s->abort(RequestId(2)), 2);  // mid-prefill
  expect_aborted(s->abort(RequestId(1)), 1);  // decoding
  EXPECT_FALSE(s->has_unfinished());
  EXPECT_EQ(free_counts(s->kv_cache()), start_free);
  EXPECT_TRUE(s->abort(RequestId(1)).empty());  // already gone
  EXPECT_TRUE(s->abort(RequestId(99)).empty());
  // The freed blocks are reported in the next plan.
  StepPlan next = s->schedule();
  EXPECT_TRUE(next.empty());
  EXPECT_FALSE(next.blocks.freed[0].empty());
  s->update(next, {});
}

TEST_F(Abort, BetweenScheduleAndUpdate) {
  ASSERT_TRUE(s->add_request(make_request(1, std::vector<TokenId>(30, 5), 10)).is_ok());
  ASSERT_TRUE(s->add_request(make_request(2, {1, 2}, 3)).is_ok());
  StepPlan plan = s->schedule();
  StepResult result = ex.execute(plan);
  expect_aborted(s->abort(RequestId(1)), 1);
  StepOutput out = s->update(plan, result);  // request 1's entry is skipped
  for (const auto& o : out.outputs) EXPECT_EQ(o.request_id, RequestId(2));
  s->check_integrity();
  auto rest = testing::run_to_completion(*s, ex);
  EXPECT_EQ(free_counts(s->kv_cache()), start_free);
}

TEST_F(Abort, NChoicesBeforeAndAfterTheFork) {
  RequestSpec a = make_request(1, std::vector<TokenId>(30, 5), 10);
  a.n = 2;
  ASSERT_TRUE(s->add_request(a).is_ok());
  last = testing::run_step(*s, ex, log);  // 16 of 30 prompt tokens: not forked yet
  // Both choices end, although only choice 0 exists so far.
  auto out = s->abort(RequestId(1));
  expect_aborted(out, 1, 2);
  EXPECT_EQ(out[0].choice_index, 0);
  EXPECT_EQ(out[1].choice_index, 1);
  EXPECT_EQ(free_counts(s->kv_cache()), start_free);

  RequestSpec b = make_request(2, std::vector<TokenId>(10, 6), 10);
  b.n = 2;
  ASSERT_TRUE(s->add_request(b).is_ok());
  last = testing::run_step(*s, ex, log);  // the whole prompt: forked
  last = testing::run_step(*s, ex, log);  // both choices decode
  ASSERT_EQ(last.sequences.size(), 2u);
  expect_aborted(s->abort(RequestId(2)), 2, 2);
  EXPECT_EQ(free_counts(s->kv_cache()), start_free);
  EXPECT_FALSE(s->has_unfinished());
}

}  // namespace
}  // namespace sluice::scheduler
