#pragma once
// Executor: runs a scheduler StepPlan on a model and its KV cache, wherever they live.
// CpuExecutor (here) runs a models::Model with a PagedKvCache in host memory; the CUDA
// executor (engine/executor_cuda/) runs a model and its pool on one GPU. Both build the
// step's ForwardBatch with StepBatchBuilder, so they agree on the layout exactly.
//
// CpuExecutor:
// One execute() is one engine step: the plan's block copies (copy-on-write of forked
// sequences) first, then one Model::forward over the flattened batch of every scheduled
// sequence's new tokens, with logits only at the last new token of each sequence that
// samples (num_samples > 0), plus the extra positions the caller names (prompt logprobs).
// All samples of one sequence (n > 1 forks) read the same row.
// KV group g of the model (kv_group_layouts) is KvGroupSpec g of the scheduler. Engine
// thread only.
//
// Workers: the executor runs every step on all ranks of its tensor-parallel group in
// lockstep, each on its own shard of the model and cache, and reads the logits of rank 0.
// World size 1 is the only one today (ParallelConfig, check_parallel_config): the one
// worker runs on the engine thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"
#include "engine/models/model.h"
#include "engine/models/paged_kv_cache.h"
#include "scheduler/kv_cache_manager.h"
#include "scheduler/step_plan.h"

namespace sluice::engine {

// The scheduler's view of the model's KV groups: kind and window from kv_group_layouts,
// `block_size`, and `num_blocks[g]` blocks per group.
std::vector<scheduler::KvGroupSpec> kv_group_specs(const models::ModelConfig& config,
                                                   int32_t block_size,
                                                   const std::vector<int32_t>& num_blocks);

// Extra logit rows wanted for one scheduled sequence: absolute positions [begin, end), which
// must lie within its new tokens [start_position, start_position + num_new_tokens). Empty
// when begin >= end.
struct LogitRange {
  int32_t begin = 0;
  int32_t end = 0;
  int32_t size() const { return end > begin ? end - begin : 0; }
};

// A token the executor may draw on its device instead of returning the row's logits: one
// sample from the processed distribution without penalties, bias or masks (the engine asks
// only for such rows), by the arithmetic of kernels/cuda/sampling.h: temperature, top-k,
// top-p, min-p as in SamplingParams, the draw a function of (seed, step) alone.
struct DeviceDraw {
  float temperature = 1.0f;
  int32_t top_k = -1;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  uint64_t step = 0;  // the draw's index in the seed's stream: tokens generated before it
};

// Logits of one step: row r of `logits` [num_rows, vocab]; row_of_sequence[i] is the
// sampling row of plan.sequences[i], or -1 when it samples nothing or the executor drew its
// token (token_of_sequence[i] >= 0, when that vector is not empty); first_extra_row[i] is
// the row of position extra[i].begin (the range's rows follow in order), or -1 when none.
struct StepLogits {
  int32_t vocab_size = 0;
  std::vector<float> logits;
  std::vector<int32_t> row_of_sequence;
  std::vector<int32_t> first_extra_row;
  std::vector<int32_t> token_of_sequence;  // empty, or per plan sequence: drawn token or -1

  std::span<const float> row(int32_t r) const {
    return std::span<const float>(logits).subspan(static_cast<size_t>(r) * vocab_size, vocab_size);
  }
};

// The device-independent part of a step: the plan's sequences flattened into one
// models::ForwardBatch (tokens of sequence i consecutive, in position order; block tables
// padded with -1 to the widest), with the logit rows the step needs. The spans of batch()
// point into the builder, valid until the next build().
class StepBatchBuilder {
 public:
  // INVALID_ARGUMENT when the plan does not fit `num_groups` KV groups or `extra` (empty or
  // one entry per sequence) names positions outside a sequence's new tokens. Fills
  // out->row_of_sequence and out->first_extra_row (out->logits is left to the caller).
  Status build(const scheduler::StepPlan& plan, std::span<const LogitRange> extra,
               size_t num_groups, StepLogits* out);
  const models::ForwardBatch& batch() const { return batch_; }
  size_t num_logit_rows() const { return logit_rows_.size(); }

 private:
  std::vector<int32_t> tokens_, positions_, token_seq_, seq_lens_, logit_rows_;
  std::vector<std::vector<int32_t>> slots_, block_tables_;
  models::ForwardBatch batch_;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs the plan's block copies and forward pass. `extra` is empty or has one entry per plan
  // sequence (LogitRange). INVALID_ARGUMENT when the plan or `extra` does not fit the model
  // or cache (nothing runs then, except copies already applied).
  // NOTE: extra rows cost vocab floats each (1 MiB at 262k), so a long prompt chunk with
  // prompt logprobs makes a large, short-lived logits buffer.
  virtual StatusOr<StepLogits> execute(const scheduler::StepPlan& plan,
                                       std::span<const LogitRange> extra = {}) = 0;
  virtual const models::ModelConfig& config() const = 0;
  // Whether execute() can draw tokens on its device (set_device_draws). The CPU executor
  // cannot: it returns every sampling row's logits.
  virtual bool draws_on_device() const { return false; }
  // For the next execute() only: one entry per plan sequence, the draw the executor makes
  // itself for that sequence's (one) sample, or nullopt for a row the engine samples from
  // logits. Empty: every row is returned as logits.
  virtual void set_device_draws(std::span<const std::optional<DeviceDraw>> draws) { (void)draws; }
};

class CpuExecutor final : public Executor {
 public:
  // Checks that the specs match the model's KV groups (count, kind, window, one block size)
  // and allocates the cache.
  static StatusOr<std::unique_ptr<CpuExecutor>> create(
      std::unique_ptr<models::Model> model, const std::vector<scheduler::KvGroupSpec>& groups,
      const models::ParallelConfig& parallel = {});

  StatusOr<StepLogits> execute(const scheduler::StepPlan& plan,
                               std::span<const LogitRange> extra = {}) override;
  const models::ModelConfig& config() const override { return model_->config(); }

  const models::Model& model() const { return *model_; }
  const models::PagedKvCache& cache() const { return *cache_; }
  const models::ParallelConfig& parallel() const { return parallel_; }

 private:
  CpuExecutor(std::unique_ptr<models::Model> model, std::unique_ptr<models::PagedKvCache> cache);
  Status apply_copies(const std::vector<scheduler::BlockCopy>& copies);

  models::ParallelConfig parallel_;
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<models::PagedKvCache> cache_;
  StepBatchBuilder builder_;  // reused between steps
};

}  // namespace sluice::engine
