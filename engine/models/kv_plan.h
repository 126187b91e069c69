#pragma once
// ModelPlan: what a ModelConfig means for memory, computed once at start-up. Per layer: type,
// head dim, KV heads, whether it owns its K/V or reads another layer's, MLP width, MoE. Then
// the KV groups (layers that OWN K/V, grouped by type, window and shape, in the order
// kv_group_layouts uses), KV bytes per token, and parameter counts for a weight-memory
// estimate. Gemma 3 plans have every layer owning its K/V.

#include <cstdint>
#include <string>
#include <vector>

#include "engine/models/model_config.h"

namespace sluice::models {

struct LayerPlan {
  int layer = 0;
  LayerType type = LayerType::kSliding;
  int head_dim = 0;
  int num_kv_heads = 0;
  bool owns_kv = true;
  int kv_source_layer = 0;  // the layer whose K/V this one attends over (itself when it owns)
  int kv_group = 0;         // index into ModelPlan::kv_groups of that K/V
  bool has_v_proj = true;   // false on K=V layers (meaningless when !owns_kv)
  int intermediate_size = 0;
  bool moe = false;
  float rope_theta = 0.0f;
  int rope_rotated_pairs = 0;
};

struct KvGroupPlan {
  LayerType type = LayerType::kGlobal;
  int window = 0;  // sliding groups: the model's window; 0: unlimited
  int num_kv_heads = 0;
  int head_dim = 0;
  std::vector<int> layers;  // layers that own storage in this group

  // K and V of every layer in the group, one token, `elem_bytes` per element.
  uint64_t bytes_per_token(int elem_bytes) const;
};

// Parameters of the text model as a checkpoint holds them (tied LM head counted once).
struct ParamCounts {
  uint64_t text_model = 0;      // everything the text decoder uses
  uint64_t embed_tokens = 0;    // V x H
  uint64_t ple_table = 0;       // per-layer embedding table, V_ple x L*P
  uint64_t experts = 0;         // all expert weights
  uint64_t text_active_per_token = 0;  // text_model with only top-k of the experts
  uint64_t unused_kv_shared_in_checkpoint = 0;  // k_proj/v_proj/k_norm of KV-shared layers
};

struct ModelPlan {
  std::string summary;  // ModelConfig::summary()
  std::vector<LayerPlan> layers;
  std::vector<KvGroupPlan> kv_groups;
  int first_kv_shared_layer = 0;  // num_layers when nothing is shared
  uint64_t kv_bytes_per_token_bf16 = 0;
  uint64_t kv_bytes_per_token_f32 = 0;
  ParamCounts params;

  // Weight memory of the text model stored at `bytes_per_param` (2 for bf16), unused
  // KV-shared tensors excluded.
  uint64_t weight_bytes(double bytes_per_param) const;
  // Multi-line description for start-up logs: layer types, KV groups, KV sharing map,
  // KV bytes per token and the memory estimate.
  std::string describe() const;
};

// Builds the plan of a validated config (from parse_hf_config or config_from_gguf).
ModelPlan make_model_plan(const ModelConfig& config);

// "sliding" or "global", for plans and logs.
const char* layer_type_name(LayerType t);
// "0-3,5-8,10" for a sorted list of layer indices.
std::string format_layer_ranges(const std::vector<int>& layers);

}  // namespace sluice::models
