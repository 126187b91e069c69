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

enum class Arch : uint8_t { kGemma3 };
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
  int intermediate_size = 0;
  RopeConfig rope;
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

  int num_global_layers() const;
  // Largest per-layer value, for sizing scratch buffers.
  int max_head_dim() const;
  int max_intermediate_size() const;
  // One line, for start-up logs: "gemma3: 18 layers (15 sliding, 3 global), hidden 640, ...".
  std::string summary() const;
};

// Parses the text of a config.json (a Gemma3ForCausalLM `gemma3_text` config, or a
// multimodal `gemma3` config whose `text_config` holds it). `where` names the file in errors.
// An unsupported value names the key and the supported values.
StatusOr<ModelConfig> parse_hf_config(std::string_view json_text, std::string_view where);

// Reads a GGUF's `general.architecture` metadata (gemma3 today).
StatusOr<ModelConfig> config_from_gguf(const weights::GgufFile& gguf);

}  // namespace sluice::models
