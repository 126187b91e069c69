#pragma once
// ModelConfig: everything the forward pass needs to know about a model, parsed from a Hugging
// Face config.json or from GGUF metadata, and validated before any weight is touched. The
// per-layer table (`layers`) is what lets one description cover Gemma 3 (uniform layers) and
// Gemma 4 (two head dims, KV sharing, double-wide MLPs) alike.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::weights {
class GgufFile;
}

namespace sluice::models {

enum class Arch : uint8_t { kGemma3, kGemma4 };
const char* arch_name(Arch a);

enum class LayerType : uint8_t { kSliding, kGlobal };

// Rotary settings for one layer type, already resolved to the RopeArgs form of kernels/ops.h.
struct RopeConfig {
  float theta = 10000.0f;
  float freq_scale = 1.0f;  // 1 / linear scaling factor
  int num_pairs = 0;        // rotated (i, i + pair_offset) pairs
  int pair_offset = 0;
  int freq_dim = 0;         // exponent denominator
};

struct LayerConfig {
  LayerType type = LayerType::kSliding;
  int head_dim = 0;
  int num_kv_heads = 0;
  int intermediate_size = 0;  // dense MLP width (doubled on Gemma 4 E2B's KV-shared layers)
  RopeConfig rope;
  // Gemma 4. Defaults describe a Gemma 3 layer.
  int kv_source_layer = -1;  // -1: computes and caches its own K/V; else the layer whose K/V it reads
  bool k_eq_v = false;       // no v_proj: V is the raw K projection (Gemma 4 global layers, K=V)
  bool has_ple = false;      // per-layer-input gate/projection after the MLP
  bool moe = false;          // MoE branch beside the dense MLP

  bool owns_kv() const { return kv_source_layer < 0; }
};

struct ModelConfig {
  Arch arch = Arch::kGemma3;
  std::string source_format;  // "gguf" or "safetensors"
  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int sliding_window = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float attn_scale = 1.0f;          // multiplies q.k
  float attn_logit_softcap = 0.0f;  // 0: none
  float final_logit_softcap = 0.0f; // 0: none
  float embed_scale = 1.0f;         // multiplies token embeddings (see docs/numerics.md)
  // Norm weights as stored: HF Gemma 3 stores w (applied as 1 + w); GGUF stores w + 1.
  bool norm_one_plus_weight = false;
  int32_t bos_token_id = 2;
  int32_t pad_token_id = 0;
  std::vector<int32_t> eos_token_ids;  // generation stops on any of these
  std::vector<LayerConfig> layers;

  // Gemma 4 only; the defaults keep Gemma 3 behaviour.
  int hidden_size_per_layer_input = 0;  // PLE width P (0: no per-layer embeddings)
  int vocab_size_per_layer_input = 0;   // rows of the PLE table
  int num_kv_shared_layers = 0;         // the last N layers read another layer's K/V
  bool use_double_wide_mlp = false;     // KV-shared layers use a 2x intermediate size
  bool enable_moe_block = false;        // every layer has a MoE branch beside the dense MLP
  int num_experts = 0;
  int top_k_experts = 0;
  int moe_intermediate_size = 0;
  bool v_norm = false;                  // V is RMS-normalised per head without a weight
  bool layer_scalar = false;            // each layer output is multiplied by a learned [1] scalar

  int num_global_layers() const;
  // Largest per-layer value, for sizing scratch buffers.
  int max_head_dim() const;
  int max_intermediate_size() const;
  // One line, for start-up logs: "gemma3: 18 layers (15 sliding, 3 global), hidden 640, ...".
  std::string summary() const;
};

// Parses the text of a config.json: a `gemma3_text` / `gemma4_text` config, or a multimodal
// `gemma3` / `gemma4` config whose `text_config` holds it (vision and audio towers are
// skipped). Gemma 4 accepts both the published layout (`global_head_dim`,
// `num_global_key_value_heads`) and transformers' newer `per_layer_config` overrides.
// `where` names the file in errors. An unsupported value names the key and the supported
// values.
StatusOr<ModelConfig> parse_hf_config(std::string_view json_text, std::string_view where);

// Reads a GGUF's `general.architecture` metadata (gemma3 today).
StatusOr<ModelConfig> config_from_gguf(const weights::GgufFile& gguf);

}  // namespace sluice::models
