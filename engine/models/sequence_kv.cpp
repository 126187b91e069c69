#include "common/check.h"
#include "engine/models/model.h"

namespace sluice::models {

SequenceKv::SequenceKv(const ModelConfig& config)
    : config_(config), k_(config.num_layers), v_(config.num_layers) {}

void SequenceKv::reserve(int num_tokens) {
  if (num_tokens <= capacity_) return;
  int cap = std::max(capacity_ * 2, std::max(num_tokens, 64));
  cap = std::min(cap, std::max(num_tokens, config_.max_position_embeddings));
  for (int l = 0; l < config_.num_layers; ++l) {
    size_t row = static_cast<size_t>(config_.layers[l].num_kv_heads) * config_.layers[l].head_dim;
    k_[l].resize(row * cap);
    v_[l].resize(row * cap);
  }
  capacity_ = cap;
}

kernels::Tensor SequenceKv::k(int layer, int n) {
  SLUICE_CHECK(n <= capacity_, "k view of {} positions, capacity {}", n, capacity_);
  const auto& l = config_.layers[layer];
  return kernels::Tensor::make(k_[layer].data(), kernels::DType::kF32, {n, l.num_kv_heads, l.head_dim});
}

kernels::Tensor SequenceKv::v(int layer, int n) {
  SLUICE_CHECK(n <= capacity_, "v view of {} positions, capacity {}", n, capacity_);
  const auto& l = config_.layers[layer];
  return kernels::Tensor::make(v_[layer].data(), kernels::DType::kF32, {n, l.num_kv_heads, l.head_dim});
}

float* SequenceKv::k_row(int layer, int pos) {
  SLUICE_CHECK(pos < capacity_, "position {} beyond capacity {}", pos, capacity_);
  const auto& l = config_.layers[layer];
  return k_[layer].data() + static_cast<size_t>(pos) * l.num_kv_heads * l.head_dim;
}

float* SequenceKv::v_row(int layer, int pos) {
  SLUICE_CHECK(pos < capacity_, "position {} beyond capacity {}", pos, capacity_);
  const auto& l = config_.layers[layer];
  return v_[layer].data() + static_cast<size_t>(pos) * l.num_kv_heads * l.head_dim;
}

}  // namespace sluice::models
