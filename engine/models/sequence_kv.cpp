#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "engine/models/model.h"

namespace sluice::models {

SequenceKv::SequenceKv(const ModelConfig& config, int block_size)
    : config_(config),
      cache_(config, block_size, std::vector<int>(kv_group_layouts(config).size(), 0)) {}

Status SequenceKv::forward(Model& model, std::span<const int32_t> tokens, int num_logit_rows,
                           std::span<float> logits) {
  const int T = static_cast<int>(tokens.size());
  if (T == 0) return Status::invalid_argument("no tokens to run");
  if (num_logit_rows < 1 || num_logit_rows > T) {
    return Status::invalid_argument(fmt::format("num_logit_rows {} not in [1, {}]", num_logit_rows, T));
  }
  const int64_t end = static_cast<int64_t>(num_tokens) + T;
  if (end > config_.max_position_embeddings) {
    return Status::invalid_argument(fmt::format(
        "sequence of {} tokens exceeds the model's context length {}", end, config_.max_position_embeddings));
  }
  const int bs = cache_.block_size();
  const int blocks = static_cast<int>((end + bs - 1) / bs);
  if (blocks > static_cast<int>(block_table_.size())) {
    // Grow by doubling: blocks stay in place, so the identity table stays valid.
    int cap = std::max<int>(blocks, std::max<int>(4, 2 * static_cast<int>(block_table_.size())));
    cap = std::min<int>(cap, std::max<int>(blocks, (config_.max_position_embeddings + bs - 1) / bs));
    for (size_t g = 0; g < cache_.groups().size(); ++g) cache_.grow(static_cast<int>(g), cap);
    block_table_.resize(cap);
    std::iota(block_table_.begin(), block_table_.end(), 0);
  }
  positions_.resize(T);
  slots_.resize(T);
  token_seq_.assign(T, 0);
  for (int t = 0; t < T; ++t) positions_[t] = slots_[t] = num_tokens + t;
  rows_.resize(num_logit_rows);
  std::iota(rows_.begin(), rows_.end(), T - num_logit_rows);
  const int32_t seq_len = static_cast<int32_t>(end);

  ForwardBatch batch;
  batch.tokens = tokens;
  batch.positions = positions_;
  batch.token_seq = token_seq_;
  batch.seq_lens = std::span<const int32_t>(&seq_len, 1);
  batch.logit_rows = rows_;
  for (size_t g = 0; g < cache_.groups().size(); ++g) {
    batch.groups.push_back({slots_, block_table_, static_cast<int>(block_table_.size())});
  }
  SLUICE_RETURN_IF_ERROR(model.forward(batch, cache_, logits));
  num_tokens = seq_len;
  return Status::ok();
}

}  // namespace sluice::models
