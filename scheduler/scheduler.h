#pragma once
// Scheduler: continuous batching over one KvCacheManager (vLLM v1 style, one flattened step).
//
// Owns every live SequenceState (waiting and running), the admission policy, and the KV
// manager. The engine thread drives it: schedule() -> StepPlan for the executor, then
// update(plan, result) with the sampled tokens -> StepOutput (new tokens, finishes) that the
// engine publishes to each request's sink. abort() may come between steps. Engine thread only.
//
// One step, under a token budget (max_num_batched_tokens) and a sequence cap (max_num_seqs):
//   1. running sequences: decodes first, then continuing prefill chunks; when one cannot
//      get a block, the policy's victim (lowest priority, latest arrival) is preempted by
//      recompute: its blocks are freed, its computed tokens reset, and it goes back to the
//      front of the waiting queue (its output so far is kept and recomputed later);
//   2. then, if nothing was preempted, waiting sequences in the policy's order, each admitted
//      only if the pools can hold its next chunk (after its prefix-cache hit). The policy
//      hears of each admission (on_scheduled) before its next pick, so a fair-share policy
//      sees the service it just granted; running sequences are reported after the pass
//      (one of them may still be preempted within it).
// Long prompts are chunked: a sequence takes min(remaining, budget left) tokens per step.

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/ids.h"  // RequestId
#include "common/status.h"
#include "scheduler/admission_policy.h"
#include "scheduler/kv_cache_manager.h"
#include "scheduler/sequence.h"
#include "scheduler/step_plan.h"

namespace sluice::scheduler {

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // --max-num-batched-tokens: tokens per step
  int32_t max_num_seqs = 128;             // --max-num-seqs: running sequences at once (an unforked
                                          // n > 1 request reserves n)
  int32_t max_model_len = 8192;           // --max-model-len: prompt + output per sequence
  // --scheduling-policy: the admission policy create() builds when given none.
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
};

struct SchedulerStats {
  int32_t num_running = 0;            // running sequences (choices)
  int32_t num_waiting = 0;            // waiting sequences (choices)
  int32_t num_running_requests = 0;   // vllm:num_requests_running: with a choice running
  int32_t num_waiting_requests = 0;   // vllm:num_requests_waiting: all live choices waiting
  int64_t num_preemptions = 0;        // vllm:num_preemptions
  int64_t num_computed_tokens = 0;    // tokens run through the model (prefill, recompute, decode)
  int64_t num_generation_tokens = 0;  // tokens sampled and appended
  KvCacheStats kv;
};

class Scheduler {
 public:
  // Checks the config (every value > 0). A null policy means make_policy(config.policy).
  static StatusOr<std::unique_ptr<Scheduler>> create(SchedulerConfig config, KvCacheManager kv,
                                                     std::unique_ptr<AdmissionPolicy> policy);

  // Queues a request (its first choice; the others fork when the prompt is computed).
  // INVALID_ARGUMENT for an empty prompt, a negative token id, max_tokens < 1, min_tokens
  // outside [0, max_tokens], n outside [1, max_num_seqs], weight <= 0, or prompt + max_tokens
  // over max_model_len; ALREADY_EXISTS for a live request id; RESOURCE_EXHAUSTED when one
  // sequence could never fit the KV pools.
  Status add_request(RequestSpec request);

  // Ends every choice of `id` wherever it is (waiting, prefilling, decoding) and frees its
  // blocks. Returns one kAbort output per choice not finished yet (empty if unknown).
  std::vector<SequenceOutput> abort(RequestId id);

  // Plans the next step (see the header comment). The plan must go to update() before the
  // next schedule(). An empty plan means nothing could run.
  StepPlan schedule();

  // Applies the executor's result for `plan`: advances computed tokens, registers full
  // blocks in the prefix cache, forks n > 1 requests, appends sampled tokens and finishes
  // sequences (stop, length), freeing their blocks. Entries of sequences aborted since the
  // plan was made are skipped.
  StepOutput update(const StepPlan& plan, const StepResult& result);

  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  const SchedulerConfig& config() const { return config_; }
  SchedulerStats stats() const;
  const KvCacheManager& kv_cache() const { return kv_; }
  KvCacheManager& kv_cache() { return kv_; }
  const AdmissionPolicy& policy() const { return *policy_; }
  // The live sequence with this id, or null (finished, aborted, unknown).
  const SequenceState* find(SequenceId id) const;

  // Aborts (SLUICE_CHECK) when the state is inconsistent: pool integrity, every block's ref
  // count equal to the number of live block-table entries naming it (no leak), waiting
  // sequences holding no blocks, running ones holding blocks for their computed tokens.
  void check_integrity() const;

 private:
  struct Scheduled {
    SequenceState* seq;
    int32_t start;
    int32_t num_new_tokens;
    BlockDelta delta;
    bool charged = false;  // the policy has seen it (on_scheduled)
  };
  struct RequestEntry {
    std::vector<SequenceId> live;  // choices not finished
    int32_t num_unspawned = 0;     // choices not forked yet
  };

  Scheduler(SchedulerConfig config, KvCacheManager kv, std::unique_ptr<AdmissionPolicy> policy);

  // Schedules the next chunk of running `seq`, preempting victims until it fits or is itself
  // preempted.
  void schedule_running(SequenceState* seq, int32_t& budget, std::vector<Scheduled>& scheduled,
                        StepPlan& plan);
  void admit_waiting(int32_t& budget, std::vector<Scheduled>& scheduled);
  void preempt(SequenceState* victim, int32_t& budget, std::vector<Scheduled>& scheduled,
               StepPlan& plan);
  // Removes `seq` (running or waiting) for good and returns its final output.
  SequenceOutput finish(SequenceState* seq, FinishReason reason);
  SequenceState* add_sequence(std::unique_ptr<SequenceState> seq);
  int32_t num_samples_for(const SequenceState& seq, int32_t end) const;
  // Running seats a sequence takes: n for a request whose choices are not forked yet.
  static int32_t seats_of(const SequenceState& seq);
  int32_t seats_in_use() const;

  SchedulerConfig config_;
  KvCacheManager kv_;
  std::unique_ptr<AdmissionPolicy> policy_;
  std::unordered_map<SequenceId, std::unique_ptr<SequenceState>> sequences_;
  std::unordered_map<RequestId, RequestEntry> requests_;
  std::vector<SequenceState*> running_;  // in admission order
  std::vector<SequenceState*> waiting_;  // queue order: preempted first, then arrivals
  BlockDelta pending_delta_;             // frees since the last plan
  uint64_t next_seq_id_ = 1;
  uint64_t next_arrival_ = 0;
  uint64_t last_step_id_ = 0;
  bool awaiting_update_ = false;
  int64_t num_preemptions_ = 0;
  int64_t num_computed_tokens_ = 0;
  int64_t num_generation_tokens_ = 0;
};

}  // namespace sluice::scheduler
