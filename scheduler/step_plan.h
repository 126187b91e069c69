#pragma once
// StepPlan and StepResult: the scheduler's only contract with the executor.
//
// One plan is one flattened, mixed batch (vLLM v1 style): each scheduled sequence brings
// `num_new_tokens` tokens (a prefill chunk, a recompute chunk, or 1 for a decode) at
// positions [start_position, start_position + num_new_tokens), with its block table per KV
// group and the slot each new token's K/V goes to. The executor runs the copies in
// `blocks.copies` first, then one forward over all tokens, samples `num_samples` tokens
// from the logits of each sequence's last new position, and answers with a StepResult whose
// entries line up with `sequences`.

#include <cstdint>
#include <optional>
#include <vector>

#include "common/ids.h"  // BlockId, RequestId, TokenId
#include "scheduler/kv_cache_manager.h"
#include "scheduler/sequence.h"

namespace sluice::scheduler {

struct ScheduledSequence {
  SequenceId seq_id;
  RequestId request_id;
  int32_t choice_index = 0;
  int32_t start_position = 0;  // = tokens whose K/V are already cached
  int32_t num_new_tokens = 0;
  std::vector<TokenId> token_ids;  // [num_new_tokens] the ids at the new positions
  // Tokens to sample from the last new position's logits: 0 (a prefill chunk that does not
  // reach the end of the known tokens), 1, or the request's n when an n > 1 prompt
  // completes (entry i is choice i; the scheduler forks the other choices from it).
  int32_t num_samples = 0;
  // [group][block index] the sequence's whole block table after this step's allocation;
  // kNullBlockId marks sliding-window blocks that left the window (never read).
  std::vector<std::vector<BlockId>> block_tables;
  // [group][i] slot of new token i: block_id * block_size + position % block_size.
  std::vector<std::vector<int64_t>> slot_mapping;
};

struct StepPlan {
  uint64_t step_id = 0;
  // Running decodes first, then continuing prefill chunks, then newly admitted sequences.
  std::vector<ScheduledSequence> sequences;
  int32_t num_batched_tokens = 0;  // sum of num_new_tokens, <= max_num_batched_tokens
  // Blocks taken and copied this step, and blocks that became free since the previous plan
  // (finished, aborted, preempted, or out of a sliding window). A block may be in both
  // lists: freed, then taken again. Informational except `copies`, which the executor runs
  // before the forward pass.
  BlockDelta blocks;
  std::vector<SequenceId> preempted;  // sent back to waiting this step (recomputed later)

  bool empty() const { return sequences.empty(); }
};

struct StepResult {
  // [i] the tokens sampled for plan.sequences[i]: exactly its num_samples of them.
  std::vector<std::vector<TokenId>> sampled_token_ids;
};

// What one sequence produced in a step, or how it ended.
struct SequenceOutput {
  SequenceId seq_id;  // SequenceId{0} for a choice that never started (aborted before fork)
  RequestId request_id;
  int32_t choice_index = 0;
  std::vector<TokenId> new_token_ids;  // appended this step (the finishing token included)
  std::optional<FinishReason> finish_reason;
  std::optional<TokenId> stop_token_id;  // the stop or EOS token, when kStop came from one
  bool request_finished = false;         // true on the last choice of the request to finish
};

struct StepOutput {
  std::vector<SequenceOutput> outputs;
};

// Builds the plan entry for `seq` covering positions [start, start + num_new_tokens), whose
// blocks the manager has already allocated.
ScheduledSequence make_scheduled_sequence(const SequenceState& seq, int32_t start,
                                          int32_t num_new_tokens, int32_t num_samples,
                                          const KvCacheManager& kv);

}  // namespace sluice::scheduler
