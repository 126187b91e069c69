#include "engine/models/paged_kv_cache.h"

#include "common/check.h"

namespace sluice::models {

uint64_t KvGroupLayout::bytes_per_block(int block_size) const {
  return static_cast<uint64_t>(layers.size()) * 2 * block_size * num_kv_heads * head_dim * sizeof(float);
}

std::vector<KvGroupLayout> kv_group_layouts(const ModelConfig& config) {
  std::vector<KvGroupLayout> groups;
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerConfig& lc = config.layers[l];
    if (!lc.owns_kv()) continue;  // KV-shared layers read their source layer's storage
    const int window = lc.type == LayerType::kSliding ? config.sliding_window : 0;
    KvGroupLayout* g = nullptr;
    for (auto& cand : groups) {
      if (cand.type == lc.type && cand.window == window && cand.num_kv_heads == lc.num_kv_heads &&
          cand.head_dim == lc.head_dim) {
        g = &cand;
        break;
      }
    }
    if (g == nullptr) {
      groups.push_back({lc.type, window, lc.num_kv_heads, lc.head_dim, {}});
      g = &groups.back();
    }
    g->layers.push_back(l);
  }
  return groups;
}

PagedKvCache::PagedKvCache(const ModelConfig& config, int block_size, std::vector<int> num_blocks)
    : config_(config),
      block_size_(block_size),
      groups_(kv_group_layouts(config)),
      num_blocks_(groups_.size(), 0),
      layer_group_(config.num_layers, -1),
      k_(config.num_layers),
      v_(config.num_layers) {
  SLUICE_CHECK(block_size >= 1, "block size {}", block_size);
  SLUICE_CHECK(num_blocks.size() == groups_.size(), "{} block counts for {} KV groups", num_blocks.size(), groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (int l : groups_[g].layers) layer_group_[l] = static_cast<int>(g);
    grow(static_cast<int>(g), num_blocks[g]);
  }
  for (int l = 0; l < config.num_layers; ++l) {
    if (!config.layers[l].owns_kv()) layer_group_[l] = layer_group_[storage_layer(l)];
  }
}

uint64_t PagedKvCache::total_bytes() const {
  uint64_t total = 0;
  for (size_t g = 0; g < groups_.size(); ++g) total += groups_[g].bytes_per_block(block_size_) * num_blocks_[g];
  return total;
}

void PagedKvCache::grow(int group, int num_blocks) {
  if (num_blocks <= num_blocks_[group]) return;
  const KvGroupLayout& g = groups_[group];
  const size_t row = static_cast<size_t>(g.num_kv_heads) * g.head_dim;
  for (int l : g.layers) {
    k_[l].resize(row * num_blocks * block_size_ * sizeof(float));
    v_[l].resize(row * num_blocks * block_size_ * sizeof(float));
  }
  num_blocks_[group] = num_blocks;
}

int PagedKvCache::storage_layer(int layer) const {
  const LayerConfig& lc = config_.layers[layer];
  return lc.owns_kv() ? layer : lc.kv_source_layer;
}

kernels::Tensor PagedKvCache::k(int layer) {
  layer = storage_layer(layer);
  const KvGroupLayout& g = groups_[layer_group_[layer]];
  int64_t slots = static_cast<int64_t>(num_blocks_[layer_group_[layer]]) * block_size_;
  return kernels::Tensor::make(static_cast<float*>(k_[layer].data()), kernels::DType::kF32, {slots, g.num_kv_heads, g.head_dim});
}

kernels::Tensor PagedKvCache::v(int layer) {
  layer = storage_layer(layer);
  const KvGroupLayout& g = groups_[layer_group_[layer]];
  int64_t slots = static_cast<int64_t>(num_blocks_[layer_group_[layer]]) * block_size_;
  return kernels::Tensor::make(static_cast<float*>(v_[layer].data()), kernels::DType::kF32, {slots, g.num_kv_heads, g.head_dim});
}

}  // namespace sluice::models
