#pragma once
// Model: the forward pass of one decoder, written once against the op table. It runs one
// engine step: a flattened batch of tokens from several sequences (prefill chunks and
// decodes mixed), writing their K/V into the paged cache and attending over it, and returns
// logits only for the rows where a token is sampled.
//
// Data flow of one call: token ids [N] -> embeddings [N, H] -> layers (K/V written to the
// slots the scheduler chose) -> final norm of the logit rows -> logits [rows, vocab].

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "engine/models/model_config.h"
#include "engine/models/paged_kv_cache.h"
#include "kernels/ops.h"

namespace sluice::models {

// This process's place in a tensor-parallel group: rank r of world_size ranks, each holding
// 1/world_size of every sharded weight. Only world_size 1 runs today; the loader and the
// executor carry it from the start so sharding lands without changing their callers.
struct ParallelConfig {
  int32_t rank = 0;
  int32_t world_size = 1;
};

// INVALID_ARGUMENT when rank is outside [0, world_size) or world_size < 1; UNIMPLEMENTED for
// world_size > 1 (tensor parallelism is not implemented yet).
Status check_parallel_config(const ParallelConfig& parallel);

// Where one KV group's K/V go and come from in this step.
struct KvGroupBatch {
  std::span<const int32_t> slots;         // [N]: slot of each new token (-1: not cached)
  std::span<const int32_t> block_tables;  // [S, max_blocks] row-major
  int max_blocks = 0;
};

struct ForwardBatch {
  std::span<const int32_t> tokens;     // [N]
  std::span<const int32_t> positions;  // [N] absolute positions
  std::span<const int32_t> token_seq;  // [N] sequence index of each token, in [0, S)
  std::span<const int32_t> seq_lens;   // [S] KV positions valid once this step's are written
  std::vector<KvGroupBatch> groups;    // one per kv_group_layouts(config)
  std::span<const int32_t> logit_rows; // token indices whose logits are wanted
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;

  // Runs one step. Writes logits [logit_rows.size(), vocab] (soft-capped when the model
  // caps them). Token ids, positions and the batch's shape are checked first and reported
  // as INVALID_ARGUMENT, leaving the cache untouched. Not thread-safe: one caller at a time
  // (the engine thread).
  virtual Status forward(const ForwardBatch& batch, PagedKvCache& cache, std::span<float> logits) = 0;
};

// Checks a batch against the model's config and the cache before anything runs: sizes agree,
// token ids in the vocabulary, positions within their sequence, slots and block ids within
// the pools, logits buffer sized [logit_rows, vocab]. Shared by every model's forward.
Status validate_forward_batch(const ModelConfig& config, const ForwardBatch& batch,
                              PagedKvCache& cache, std::span<float> logits);

// The same checks against any KV pool (e.g. one in GPU memory): `num_blocks[g]` blocks of
// `block_size` slots in group g, and a logits buffer of `logits_floats` floats.
Status validate_forward_batch(const ModelConfig& config, const ForwardBatch& batch,
                              std::span<const int> num_blocks, int block_size,
                              size_t logits_floats);

// One sequence on a private paged cache whose blocks are laid out in order (block i holds
// positions [i * block_size, (i + 1) * block_size)). For `sluice generate`, benchmarks and
// tests; the engine uses the scheduler's block tables instead.
class SequenceKv {
 public:
  explicit SequenceKv(const ModelConfig& config, int block_size = 16);
  int num_tokens = 0;  // positions already written

  // Runs `tokens` at positions [num_tokens, num_tokens + T) and advances num_tokens; writes
  // the logits of the last `num_logit_rows` tokens into `logits` [num_logit_rows, vocab].
  Status forward(Model& model, std::span<const int32_t> tokens, int num_logit_rows,
                 std::span<float> logits);

 private:
  const ModelConfig& config_;
  PagedKvCache cache_;
  std::vector<int32_t> block_table_, positions_, token_seq_, slots_, rows_;
};

}  // namespace sluice::models
