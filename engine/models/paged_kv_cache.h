#pragma once
// PagedKvCache: the K/V storage of every layer, in fixed-size blocks. Layers come in KV
// groups (ARCHITECTURE.md, "KV cache"): layers of one group share block ids, so one block
// table per group and sequence addresses them all; each layer still has its own storage.
// Gemma 3 has two groups (sliding-window layers, global layers). The scheduler decides which
// block each token goes to; this class only owns the memory.
//
// Storage of layer l: k, v [num_blocks(g) * block_size, num_kv_heads, head_dim] f32, slot =
// block * block_size + offset.

#include <cstdint>
#include <vector>

#include "common/zero_pages.h"

#include "engine/models/model_config.h"
#include "kernels/tensor.h"

namespace sluice::models {

struct KvGroupLayout {
  LayerType type = LayerType::kGlobal;
  int window = 0;  // tokens a query may see back, for sliding groups (0: unlimited)
  int num_kv_heads = 0;
  int head_dim = 0;
  std::vector<int> layers;  // layers that own storage in this group

  // f32 bytes one block of this group takes across all its layers (K and V).
  uint64_t bytes_per_block(int block_size) const;
};

// The model's KV groups: layers that own K/V storage, grouped by attention type and KV shape.
std::vector<KvGroupLayout> kv_group_layouts(const ModelConfig& config);

class PagedKvCache {
 public:
  // `num_blocks[g]` blocks for group g of kv_group_layouts(config).
  PagedKvCache(const ModelConfig& config, int block_size, std::vector<int> num_blocks);

  int block_size() const { return block_size_; }
  const std::vector<KvGroupLayout>& groups() const { return groups_; }
  int num_blocks(int group) const { return num_blocks_[group]; }
  int group_of_layer(int layer) const { return layer_group_[layer]; }
  uint64_t total_bytes() const;

  // [num_slots, nkv, d]; a KV-shared layer (Gemma 4) gets its source layer's storage.
  kernels::Tensor k(int layer);
  kernels::Tensor v(int layer);

  // Grows group `group` to `num_blocks` blocks, keeping the content of existing blocks.
  void grow(int group, int num_blocks);

 private:
  int storage_layer(int layer) const;
  const ModelConfig& config_;
  int block_size_;
  std::vector<KvGroupLayout> groups_;
  std::vector<int> num_blocks_;
  std::vector<int> layer_group_;
  // Per layer, f32: committed page by page as blocks are first written, so resident memory
  // follows the blocks in use, not --kv-cache-memory-bytes.
  std::vector<ZeroPages> k_, v_;
};

}  // namespace sluice::models
