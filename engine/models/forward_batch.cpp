#include <fmt/format.h>

#include "engine/models/model.h"

namespace sluice::models {

Status check_parallel_config(const ParallelConfig& p) {
  if (p.world_size < 1 || p.rank < 0 || p.rank >= p.world_size) {
    return Status::invalid_argument(
        fmt::format("tensor-parallel rank {} of world size {}: expected 0 <= rank < world size", p.rank, p.world_size));
  }
  if (p.world_size > 1) {
    return Status::unimplemented(fmt::format(
        "tensor parallelism over {} ranks is not implemented yet; run with world size 1", p.world_size));
  }
  return Status::ok();
}

Status validate_forward_batch(const ModelConfig& c, const ForwardBatch& b, PagedKvCache& cache,
                              std::span<float> logits) {
  std::vector<int> num_blocks(cache.groups().size());
  for (size_t g = 0; g < num_blocks.size(); ++g) num_blocks[g] = cache.num_blocks(static_cast<int>(g));
  return validate_forward_batch(c, b, num_blocks, cache.block_size(), logits.size());
}

Status validate_forward_batch(const ModelConfig& c, const ForwardBatch& b,
                              std::span<const int> num_blocks, int block_size,
                              size_t logits_floats) {
  const size_t N = b.tokens.size();
  const size_t S = b.seq_lens.size();
  if (N == 0) return Status::invalid_argument("forward batch has no tokens");
  if (b.positions.size() != N || b.token_seq.size() != N) {
    return Status::invalid_argument(fmt::format("forward batch: {} tokens, {} positions, {} sequence indices",
                                                N, b.positions.size(), b.token_seq.size()));
  }
  if (b.groups.size() != num_blocks.size()) {
    return Status::invalid_argument(fmt::format("forward batch has {} KV groups, the cache {}",
                                                b.groups.size(), num_blocks.size()));
  }
  for (size_t s = 0; s < S; ++s) {
    if (b.seq_lens[s] < 1 || b.seq_lens[s] > c.max_position_embeddings) {
      return Status::invalid_argument(fmt::format(
          "sequence {} has {} positions; the model's context length is {}", s, b.seq_lens[s], c.max_position_embeddings));
    }
  }
  for (size_t t = 0; t < N; ++t) {
    if (b.tokens[t] < 0 || b.tokens[t] >= c.vocab_size) {
      return Status::invalid_argument(fmt::format(
          "token id {} at position {} is outside the vocabulary [0, {})", b.tokens[t], t, c.vocab_size));
    }
    const int32_t s = b.token_seq[t];
    if (s < 0 || static_cast<size_t>(s) >= S || b.positions[t] < 0 || b.positions[t] >= b.seq_lens[s]) {
      return Status::invalid_argument(fmt::format("token {}: sequence {} / position {} out of range", t, s, b.positions[t]));
    }
  }
  for (size_t g = 0; g < b.groups.size(); ++g) {
    const KvGroupBatch& gb = b.groups[g];
    const int64_t num_slots = static_cast<int64_t>(num_blocks[g]) * block_size;
    if (gb.slots.size() != N || gb.max_blocks < 1 || gb.block_tables.size() != S * static_cast<size_t>(gb.max_blocks)) {
      return Status::invalid_argument(fmt::format("forward batch: KV group {} has {} slots and {} block-table entries",
                                                  g, gb.slots.size(), gb.block_tables.size()));
    }
    for (int32_t slot : gb.slots) {
      if (slot < -1 || slot >= num_slots) {
        return Status::invalid_argument(fmt::format("KV group {}: slot {} outside [0, {})", g, slot, num_slots));
      }
    }
    for (int32_t blk : gb.block_tables) {
      if (blk < -1 || blk >= num_blocks[g]) {
        return Status::invalid_argument(fmt::format("KV group {}: block {} outside [0, {})", g, blk, num_blocks[g]));
      }
    }
  }
  for (int32_t r : b.logit_rows) {
    if (r < 0 || static_cast<size_t>(r) >= N) return Status::invalid_argument(fmt::format("logit row {} outside [0, {})", r, N));
  }
  if (logits_floats != b.logit_rows.size() * static_cast<size_t>(c.vocab_size)) {
    return Status::invalid_argument(fmt::format("logits buffer holds {} floats, need {}", logits_floats,
                                                b.logit_rows.size() * static_cast<size_t>(c.vocab_size)));
  }
  return Status::ok();
}

}  // namespace sluice::models
