// Gemma 4 text config parsing (`gemma4_text`), following transformers' Gemma4TextConfig and
// modeling_gemma4.py: per-layer head dims and KV heads, KV sharing, double-wide MLP, PLE, MoE.

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <string>

#include "common/log.h"
#include "engine/models/config_parse_detail.h"

namespace sluice::models::detail {
namespace {

Status bool_of(const JsonReader& r, const char* key, bool fallback, bool* out) {
  if (!r.has(key)) {
    *out = fallback;
    return Status::ok();
  }
  const json& v = r.obj().at(key);
  if (!v.is_boolean()) {
    return Status::invalid_argument(
        fmt::format("{}: '{}' must be true or false, got {}", r.where(), key, v.dump()));
  }
  *out = v.get<bool>();
  return Status::ok();
}

// Requires `key`, when present, to equal `want` (a JSON literal such as true or "x").
Status require_value(const JsonReader& r, const char* key, const json& want) {
  if (r.has(key) && r.obj().at(key) != want) {
    return Status::invalid_argument(fmt::format("{}: {} {} is not supported (supported: {})",
                                                r.where(), key, r.obj().at(key).dump(),
                                                want.dump()));
  }
  return Status::ok();
}

struct LayerShape {
  int head_dim = 0;
  int num_kv_heads = 0;
};

// transformers 5.24 layout: {"<layer index, maybe zero-padded>": {"head_dim": d,
// "num_key_value_heads": n}}; layers not named keep the base values.
Status apply_per_layer_config(const json& plc, int num_layers, std::string_view where,
                              std::vector<LayerShape>* shapes) {
  if (!plc.is_object()) {
    return Status::invalid_argument(fmt::format("{}: per_layer_config must be an object", where));
  }
  for (const auto& [key, val] : plc.items()) {
    int idx = -1;
    if (!key.empty() && key.size() <= 6 && key.find_first_not_of("0123456789") == std::string::npos) {
      idx = std::stoi(key);
    }
    if (idx < 0 || idx >= num_layers) {
      return Status::invalid_argument(fmt::format(
          "{}: per_layer_config key '{}' is not a layer index in [0, {})", where, key, num_layers));
    }
    if (!val.is_object()) {
      return Status::invalid_argument(
          fmt::format("{}: per_layer_config['{}'] must be an object", where, key));
    }
    std::string ctx = fmt::format("{} (per_layer_config['{}'])", where, key);
    JsonReader r(val, ctx);
    for (const auto& [field, unused] : val.items()) {
      if (field != "head_dim" && field != "num_key_value_heads") {
        return Status::invalid_argument(fmt::format(
            "{}: override '{}' is not supported (supported: head_dim, num_key_value_heads)", ctx,
            field));
      }
    }
    LayerShape& s = (*shapes)[idx];
    SLUICE_RETURN_IF_ERROR(r.int_in("head_dim", 2, kMaxHeadDim, &s.head_dim, s.head_dim));
    SLUICE_RETURN_IF_ERROR(
        r.int_in("num_key_value_heads", 1, kMaxHeads, &s.num_kv_heads, s.num_kv_heads));
  }
  return Status::ok();
}

}  // namespace

StatusOr<ModelConfig> parse_gemma4_text(const json& cfg, std::string_view where) {
  JsonReader r(cfg, where);
  ModelConfig c;
  c.arch = Arch::kGemma4;
  c.source_format = "safetensors";
  c.norm_one_plus_weight = false;  // Gemma 4 norms multiply by w
  c.attn_scale = 1.0f;             // QK-norm absorbs the scale
  c.v_norm = true;
  c.layer_scalar = true;
  int head_dim = 0, num_kv = 0, inter = 0;
  SLUICE_RETURN_IF_ERROR(r.int_in("vocab_size", 1, kMaxVocab, &c.vocab_size, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("hidden_size", 1, kMaxHidden, &c.hidden_size, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_hidden_layers", 1, kMaxLayers, &c.num_layers, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_attention_heads", 1, kMaxHeads, &c.num_heads, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_key_value_heads", 1, kMaxHeads, &num_kv, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("head_dim", 2, kMaxHeadDim, &head_dim, 256));
  SLUICE_RETURN_IF_ERROR(r.int_in("intermediate_size", 1, kMaxIntermediate, &inter, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("sliding_window", 1, kMaxContext, &c.sliding_window, 512));
  SLUICE_RETURN_IF_ERROR(
      r.int_in("max_position_embeddings", 1, kMaxContext, &c.max_position_embeddings, 131072));
  SLUICE_RETURN_IF_ERROR(r.float_in("rms_norm_eps", 0.0, 1.0, &c.rms_norm_eps, 1e-6));
  SLUICE_RETURN_IF_ERROR(
      r.float_in("final_logit_softcapping", 1e-6, 1e9, &c.final_logit_softcap, 0.0));
  c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));

  SLUICE_RETURN_IF_ERROR(require_value(r, "hidden_activation", "gelu_pytorch_tanh"));
  if (!r.has("hidden_activation")) SLUICE_RETURN_IF_ERROR(require_value(r, "hidden_act", "gelu_pytorch_tanh"));
  SLUICE_RETURN_IF_ERROR(require_value(r, "tie_word_embeddings", true));
  SLUICE_RETURN_IF_ERROR(require_value(r, "attention_bias", false));
  // "vision" only changes how image tokens attend; text stays causal. "all" is a different model.
  if (r.has("use_bidirectional_attention") && cfg.at("use_bidirectional_attention") != "vision") {
    return Status::invalid_argument(fmt::format(
        "{}: use_bidirectional_attention {} is not supported (supported: null, \"vision\")", where,
        cfg.at("use_bidirectional_attention").dump()));
  }

  int bos = 2, pad = 0;
  SLUICE_RETURN_IF_ERROR(r.int_in("bos_token_id", 0, kMaxVocab, &bos, 2));
  SLUICE_RETURN_IF_ERROR(r.int_in("pad_token_id", 0, kMaxVocab, &pad, 0));
  c.bos_token_id = bos;
  c.pad_token_id = pad;
  SLUICE_RETURN_IF_ERROR(parse_eos(cfg, where, &c.eos_token_ids));

  // PLE (transformers' defaults apply when the keys are absent).
  SLUICE_RETURN_IF_ERROR(
      r.int_in("hidden_size_per_layer_input", 0, kMaxHidden, &c.hidden_size_per_layer_input, 256));
  SLUICE_RETURN_IF_ERROR(r.int_in("vocab_size_per_layer_input", 1, kMaxVocab,
                                  &c.vocab_size_per_layer_input, 262144));
  if (c.hidden_size_per_layer_input == 0) c.vocab_size_per_layer_input = 0;
  bool k_eq_v = false;
  SLUICE_RETURN_IF_ERROR(bool_of(r, "attention_k_eq_v", false, &k_eq_v));
  SLUICE_RETURN_IF_ERROR(bool_of(r, "use_double_wide_mlp", false, &c.use_double_wide_mlp));
  SLUICE_RETURN_IF_ERROR(bool_of(r, "enable_moe_block", false, &c.enable_moe_block));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_kv_shared_layers", 0, c.num_layers - 1,
                                  &c.num_kv_shared_layers, 0));
  if (c.enable_moe_block) {
    SLUICE_RETURN_IF_ERROR(r.int_in("num_experts", 1, 4096, &c.num_experts, std::nullopt));
    SLUICE_RETURN_IF_ERROR(r.int_in("top_k_experts", 1, c.num_experts, &c.top_k_experts, std::nullopt));
    SLUICE_RETURN_IF_ERROR(r.int_in("moe_intermediate_size", 1, kMaxIntermediate,
                                    &c.moe_intermediate_size, std::nullopt));
  }

  // Layer types: explicit, else transformers' 5:1 pattern. transformers forces the last layer
  // to full attention (with a warning); so do we.
  SLUICE_ASSIGN_OR_RETURN(std::vector<LayerType> types, parse_layer_types(cfg, c.num_layers, 6, where));
  if (types.back() != LayerType::kGlobal) {
    SLUICE_LOG_WARN("{}: the last layer must be full_attention; forcing it (as transformers does)",
                    where);
    types.back() = LayerType::kGlobal;
  }

  // Per-layer head dim and KV heads: `per_layer_config` (transformers 5.24) or the published
  // `global_head_dim` / `num_global_key_value_heads` (the latter only gated by K=V).
  std::vector<LayerShape> shapes(c.num_layers, LayerShape{head_dim, num_kv});
  if (r.has("per_layer_config")) {
    SLUICE_RETURN_IF_ERROR(
        apply_per_layer_config(cfg.at("per_layer_config"), c.num_layers, where, &shapes));
  } else {
    int global_head_dim = 0, global_kv = 0;
    SLUICE_RETURN_IF_ERROR(r.int_in("global_head_dim", 2, kMaxHeadDim, &global_head_dim, 512));
    SLUICE_RETURN_IF_ERROR(
        r.int_in("num_global_key_value_heads", 1, kMaxHeads, &global_kv, num_kv));
    for (int i = 0; i < c.num_layers; ++i) {
      if (types[i] != LayerType::kGlobal) continue;
      shapes[i].head_dim = global_head_dim;
      if (k_eq_v) shapes[i].num_kv_heads = global_kv;
    }
  }

  // RoPE per layer type (transformers' defaults when absent).
  json rope_params = {
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
      {"full_attention",
       {{"rope_type", "proportional"}, {"partial_rotary_factor", 0.25}, {"rope_theta", 1e6}}}};
  if (r.has("rope_parameters")) {
    rope_params = cfg.at("rope_parameters");
    if (!rope_params.is_object() || !rope_params.contains("sliding_attention") ||
        !rope_params.contains("full_attention")) {
      return Status::invalid_argument(fmt::format(
          "{}: rope_parameters must hold 'sliding_attention' and 'full_attention' entries", where));
    }
  }

  // KV sharing (§2.5): layers >= first read the last non-shared layer of their type.
  const int first_shared = c.num_layers - c.num_kv_shared_layers;
  int source[2] = {-1, -1};
  for (int j = 0; j < first_shared; ++j) source[static_cast<int>(types[j])] = j;

  c.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerConfig& l = c.layers[i];
    const bool global = types[i] == LayerType::kGlobal;
    l.type = types[i];
    l.head_dim = shapes[i].head_dim;
    l.num_kv_heads = shapes[i].num_kv_heads;
    l.k_eq_v = k_eq_v && global;
    l.has_ple = c.hidden_size_per_layer_input > 0;
    l.moe = c.enable_moe_block;
    const char* label = global ? "full_attention" : "sliding_attention";
    SLUICE_ASSIGN_OR_RETURN(l.rope, parse_rope_entry(rope_params.at(label), l.head_dim, where, label));
    const bool shared = i >= first_shared;
    l.intermediate_size = inter * (shared && c.use_double_wide_mlp ? 2 : 1);
    if (shared) {
      l.kv_source_layer = source[static_cast<int>(l.type)];
      if (l.kv_source_layer < 0) {
        return Status::invalid_argument(fmt::format(
            "{}: num_kv_shared_layers {} leaves no non-shared {} layer for layer {} to read",
            where, c.num_kv_shared_layers, label, i));
      }
    }
  }
  // A shared layer reads its source's K/V, so the shapes must agree.
  for (int i = first_shared; i < c.num_layers; ++i) {
    const LayerConfig& l = c.layers[i];
    const LayerConfig& s = c.layers[l.kv_source_layer];
    if (s.head_dim != l.head_dim || s.num_kv_heads != l.num_kv_heads) {
      return Status::invalid_argument(fmt::format(
          "{}: KV-shared layer {} ({} KV heads x {}) cannot read layer {} ({} x {})", where, i,
          l.num_kv_heads, l.head_dim, l.kv_source_layer, s.num_kv_heads, s.head_dim));
    }
  }
  SLUICE_RETURN_IF_ERROR(validate(c, where));
  return c;
}

}  // namespace sluice::models::detail
