#include "engine/models/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/models/config_parse_detail.h"
#include "engine/weights/gguf.h"

namespace sluice::models {
namespace detail {

using nlohmann::json;

RopeConfig full_rope(int head_dim, float theta, float freq_scale) {
  RopeConfig r;
  r.theta = theta;
  r.freq_scale = freq_scale;
  r.num_pairs = head_dim / 2;
  r.pair_offset = head_dim / 2;
  r.freq_dim = head_dim;
  return r;
}

// One rope_parameters entry: {"rope_type": default|linear|proportional, "rope_theta", ...}.
StatusOr<RopeConfig> parse_rope_entry(const json& entry, int head_dim, std::string_view where,
                                      std::string_view label) {
  if (!entry.is_object()) {
    return Status::invalid_argument(
        fmt::format("{}: rope_parameters.{} must be an object", where, label));
  }
  std::string ctx = fmt::format("{} (rope_parameters.{})", where, label);
  JsonReader r(entry, ctx);
  std::string type = "default";
  if (r.has("rope_type") || r.has("type")) {
    const json& t = entry.contains("rope_type") ? entry.at("rope_type") : entry.at("type");
    if (!t.is_string()) return Status::invalid_argument(fmt::format("{}: rope_type must be a string", ctx));
    type = t.get<std::string>();
  }
  float theta = 0;
  SLUICE_RETURN_IF_ERROR(r.float_in("rope_theta", 1.0, 1e12, &theta, std::nullopt));
  float partial = 1.0f;
  SLUICE_RETURN_IF_ERROR(r.float_in("partial_rotary_factor", 1e-3, 1.0, &partial, 1.0));
  if (type == "default" || type == "linear") {
    float factor = 1.0f;
    if (type == "linear") SLUICE_RETURN_IF_ERROR(r.float_in("factor", 1e-3, 1e6, &factor, std::nullopt));
    if (partial == 1.0f) return full_rope(head_dim, theta, 1.0f / factor);
    // Classic partial rotary: the first `rot` dims rotate as a rotate-half block of their own.
    int rot = static_cast<int>(head_dim * partial);
    rot -= rot % 2;
    if (rot < 2) return Status::invalid_argument(fmt::format("{}: partial_rotary_factor {} rotates no dims", ctx, partial));
    RopeConfig rc;
    rc.theta = theta;
    rc.freq_scale = 1.0f / factor;
    rc.num_pairs = rot / 2;
    rc.pair_offset = rot / 2;
    rc.freq_dim = rot;
    return rc;
  }
  if (type == "proportional") {
    // Gemma 4 global layers: int(partial * d / 2) pairs rotate, paired across the whole
    // head (i, i + d/2), with frequencies over the full head dim.
    RopeConfig rc = full_rope(head_dim, theta, 1.0f);
    rc.num_pairs = static_cast<int>(partial * head_dim / 2);
    if (rc.num_pairs < 1) return Status::invalid_argument(fmt::format("{}: partial_rotary_factor {} rotates no dims", ctx, partial));
    return rc;
  }
  return Status::invalid_argument(fmt::format(
      "{}: rope_type '{}' is not supported (supported: default, linear, proportional)", ctx, type));
}

Status parse_eos(const json& cfg, std::string_view where, std::vector<int32_t>* out) {
  out->clear();
  if (!cfg.contains("eos_token_id") || cfg.at("eos_token_id").is_null()) {
    out->push_back(1);
    return Status::ok();
  }
  const json& e = cfg.at("eos_token_id");
  auto add = [&](const json& v) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxVocab) {
      return Status::invalid_argument(fmt::format("{}: bad eos_token_id {}", where, v.dump()));
    }
    out->push_back(static_cast<int32_t>(v.get<int64_t>()));
    return Status::ok();
  };
  if (e.is_array()) {
    if (e.size() > 64) return Status::invalid_argument(fmt::format("{}: too many eos_token_id entries", where));
    for (const json& v : e) SLUICE_RETURN_IF_ERROR(add(v));
    return Status::ok();
  }
  return add(e);
}

StatusOr<std::vector<LayerType>> parse_layer_types(const json& cfg, int num_layers, int period,
                                                   std::string_view where) {
  std::vector<LayerType> types(num_layers, LayerType::kSliding);
  if (!cfg.contains("layer_types") || cfg.at("layer_types").is_null()) {
    for (int i = 0; i < num_layers; ++i) {
      types[i] = (i + 1) % period == 0 ? LayerType::kGlobal : LayerType::kSliding;
    }
    return types;
  }
  const json& lt = cfg.at("layer_types");
  if (!lt.is_array() || static_cast<int>(lt.size()) != num_layers) {
    return Status::invalid_argument(fmt::format(
        "{}: layer_types must be a list of {} entries (num_hidden_layers)", where, num_layers));
  }
  for (int i = 0; i < num_layers; ++i) {
    std::string t = lt[i].is_string() ? lt[i].get<std::string>() : lt[i].dump();
    if (t == "sliding_attention") {
      types[i] = LayerType::kSliding;
    } else if (t == "full_attention") {
      types[i] = LayerType::kGlobal;
    } else {
      return Status::invalid_argument(fmt::format(
          "{}: layer_types[{}] is '{}' (supported: sliding_attention, full_attention)", where, i, t));
    }
  }
  return types;
}

Status validate(const ModelConfig& c, std::string_view where) {
  if (static_cast<int>(c.layers.size()) != c.num_layers) {
    return Status::internal(fmt::format("{}: inconsistent layer table", where));
  }
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerConfig& l = c.layers[i];
    if (l.num_kv_heads < 1 || c.num_heads % l.num_kv_heads != 0) {
      return Status::invalid_argument(fmt::format(
          "{}: num_attention_heads {} is not a multiple of num_key_value_heads {} (layer {})",
          where, c.num_heads, l.num_kv_heads, i));
    }
    if (l.head_dim < 2 || l.head_dim % 2 != 0) {
      return Status::invalid_argument(fmt::format("{}: head_dim {} must be even", where, l.head_dim));
    }
  }
  for (int32_t e : c.eos_token_ids) {
    if (e >= c.vocab_size) {
      return Status::invalid_argument(
          fmt::format("{}: eos token id {} is outside the vocabulary ({})", where, e, c.vocab_size));
    }
  }
  return Status::ok();
}

}  // namespace detail

namespace {

using nlohmann::json;
using namespace detail;

StatusOr<ModelConfig> parse_gemma3_text(const json& cfg, std::string_view where) {
  JsonReader r(cfg, where);
  ModelConfig c;
  c.arch = Arch::kGemma3;
  c.source_format = "safetensors";
  c.norm_one_plus_weight = true;
  int head_dim = 0, num_kv = 0, inter = 0;
  SLUICE_RETURN_IF_ERROR(r.int_in("vocab_size", 1, kMaxVocab, &c.vocab_size, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("hidden_size", 1, kMaxHidden, &c.hidden_size, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_hidden_layers", 1, kMaxLayers, &c.num_layers, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_attention_heads", 1, kMaxHeads, &c.num_heads, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("num_key_value_heads", 1, kMaxHeads, &num_kv, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("head_dim", 2, kMaxHeadDim, &head_dim, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("intermediate_size", 1, kMaxIntermediate, &inter, std::nullopt));
  SLUICE_RETURN_IF_ERROR(r.int_in("sliding_window", 1, kMaxContext, &c.sliding_window, 4096));
  SLUICE_RETURN_IF_ERROR(
      r.int_in("max_position_embeddings", 1, kMaxContext, &c.max_position_embeddings, 131072));
  SLUICE_RETURN_IF_ERROR(r.float_in("rms_norm_eps", 0.0, 1.0, &c.rms_norm_eps, 1e-6));
  float qpas = 0;
  SLUICE_RETURN_IF_ERROR(r.float_in("query_pre_attn_scalar", 1e-6, 1e9, &qpas, 256.0));
  c.attn_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(qpas)));
  SLUICE_RETURN_IF_ERROR(r.float_in("final_logit_softcapping", 1e-6, 1e9, &c.final_logit_softcap, 0.0));
  SLUICE_RETURN_IF_ERROR(r.float_in("attn_logit_softcapping", 1e-6, 1e9, &c.attn_logit_softcap, 0.0));
  c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
  if (r.has("hidden_activation") || r.has("hidden_act")) {
    const json& a = cfg.contains("hidden_activation") && !cfg.at("hidden_activation").is_null()
                        ? cfg.at("hidden_activation")
                        : cfg.at("hidden_act");
    if (!a.is_string() || a.get<std::string>() != "gelu_pytorch_tanh") {
      return Status::invalid_argument(fmt::format(
          "{}: hidden_activation {} is not supported (supported: \"gelu_pytorch_tanh\")", where,
          a.dump()));
    }
  }
  if (r.has("tie_word_embeddings") && !(cfg.at("tie_word_embeddings").is_boolean() &&
                                        cfg.at("tie_word_embeddings").get<bool>())) {
    return Status::invalid_argument(fmt::format(
        "{}: tie_word_embeddings {} is not supported (supported: true)", where,
        cfg.at("tie_word_embeddings").dump()));
  }
  if (r.has("attention_bias") &&
      !(cfg.at("attention_bias").is_boolean() && !cfg.at("attention_bias").get<bool>())) {
    return Status::invalid_argument(fmt::format(
        "{}: attention_bias {} is not supported (supported: false)", where, cfg.at("attention_bias").dump()));
  }
  int bos = 2, pad = 0;
  SLUICE_RETURN_IF_ERROR(r.int_in("bos_token_id", 0, kMaxVocab, &bos, 2));
  SLUICE_RETURN_IF_ERROR(r.int_in("pad_token_id", 0, kMaxVocab, &pad, 0));
  c.bos_token_id = bos;
  c.pad_token_id = pad;
  SLUICE_RETURN_IF_ERROR(parse_eos(cfg, where, &c.eos_token_ids));

  // Layer types: an explicit list, else the period of the legacy sliding_window_pattern.
  int period = 6;
  if (r.has("sliding_window_pattern")) {
    SLUICE_RETURN_IF_ERROR(r.int_in("sliding_window_pattern", 1, kMaxLayers, &period, std::nullopt));
  } else if (r.has("_sliding_window_pattern")) {
    SLUICE_RETURN_IF_ERROR(r.int_in("_sliding_window_pattern", 1, kMaxLayers, &period, std::nullopt));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<LayerType> types, parse_layer_types(cfg, c.num_layers, period, where));

  // RoPE: transformers 5 writes rope_parameters per layer type; older configs write
  // rope_theta (global), rope_local_base_freq (sliding) and rope_scaling (global only).
  RopeConfig rope_sliding, rope_global;
  if (r.has("rope_parameters")) {
    const json& rp = cfg.at("rope_parameters");
    if (rp.is_object() && rp.contains("full_attention") && rp.contains("sliding_attention")) {
      SLUICE_ASSIGN_OR_RETURN(rope_global, parse_rope_entry(rp.at("full_attention"), head_dim, where, "full_attention"));
      SLUICE_ASSIGN_OR_RETURN(rope_sliding, parse_rope_entry(rp.at("sliding_attention"), head_dim, where, "sliding_attention"));
    } else {
      SLUICE_ASSIGN_OR_RETURN(rope_global, parse_rope_entry(rp, head_dim, where, "(all layers)"));
      float local = 10000.0f;
      SLUICE_RETURN_IF_ERROR(r.float_in("rope_local_base_freq", 1.0, 1e12, &local, 10000.0));
      rope_sliding = full_rope(head_dim, local, 1.0f);
    }
  } else {
    float theta = 0, local = 0;
    SLUICE_RETURN_IF_ERROR(r.float_in("rope_theta", 1.0, 1e12, &theta, 1000000.0));
    SLUICE_RETURN_IF_ERROR(r.float_in("rope_local_base_freq", 1.0, 1e12, &local, 10000.0));
    json global = {{"rope_type", "default"}, {"rope_theta", theta}};
    if (r.has("rope_scaling")) {
      global = cfg.at("rope_scaling");
      if (!global.is_object()) return Status::invalid_argument(fmt::format("{}: rope_scaling must be an object", where));
      global["rope_theta"] = theta;
    }
    SLUICE_ASSIGN_OR_RETURN(rope_global, parse_rope_entry(global, head_dim, where, "rope_scaling"));
    rope_sliding = full_rope(head_dim, local, 1.0f);
  }

  c.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerConfig& l = c.layers[i];
    l.type = types[i];
    l.head_dim = head_dim;
    l.num_kv_heads = num_kv;
    l.intermediate_size = inter;
    l.rope = types[i] == LayerType::kGlobal ? rope_global : rope_sliding;
  }
  SLUICE_RETURN_IF_ERROR(validate(c, where));
  return c;
}

}  // namespace

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kGemma3: return "gemma3";
    case Arch::kGemma4: return "gemma4";
  }
  return "?";
}

int ModelConfig::num_global_layers() const {
  int n = 0;
  for (const auto& l : layers) n += l.type == LayerType::kGlobal;
  return n;
}

int ModelConfig::max_head_dim() const {
  int m = 0;
  for (const auto& l : layers) m = std::max(m, l.head_dim);
  return m;
}

int ModelConfig::max_intermediate_size() const {
  int m = 0;
  for (const auto& l : layers) m = std::max(m, l.intermediate_size);
  return m;
}

std::string ModelConfig::summary() const {
  int g = num_global_layers();
  return fmt::format(
      "{}: {} layers ({} sliding, {} global), hidden {}, heads {}/{} (kv), head dim {}, "
      "window {}, vocab {}, context {}",
      arch_name(arch), num_layers, num_layers - g, g, hidden_size, num_heads,
      layers.empty() ? 0 : layers[0].num_kv_heads, max_head_dim(), sliding_window, vocab_size,
      max_position_embeddings);
}

StatusOr<ModelConfig> parse_hf_config(std::string_view json_text, std::string_view where) {
  json cfg;
  try {
    cfg = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/true,
                      /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    return Status::invalid_argument(fmt::format("{}: not valid JSON ({})", where, e.what()));
  }
  if (!cfg.is_object()) return Status::invalid_argument(fmt::format("{}: not a JSON object", where));
  std::string model_type = cfg.contains("model_type") && cfg.at("model_type").is_string()
                               ? cfg.at("model_type").get<std::string>()
                               : std::string();
  if (model_type == "gemma3" && cfg.contains("text_config") && cfg.at("text_config").is_object()) {
    json text = cfg.at("text_config");
    // The multimodal config keeps eos ids at the top level.
    if (!text.contains("eos_token_id") && cfg.contains("eos_token_id")) text["eos_token_id"] = cfg["eos_token_id"];
    return parse_gemma3_text(text, where);
  }
  if (model_type == "gemma3_text") return parse_gemma3_text(cfg, where);
  if (model_type == "gemma4" && cfg.contains("text_config") && cfg.at("text_config").is_object()) {
    json text = cfg.at("text_config");
    if (cfg.contains("eos_token_id") && !cfg.at("eos_token_id").is_null()) {
      text["eos_token_id"] = cfg["eos_token_id"];  // the instruction-tuned stop list lives here
    }
    std::vector<std::string> towers;
    for (const char* t : {"vision_config", "audio_config"}) {
      if (cfg.contains(t) && !cfg.at(t).is_null()) towers.emplace_back(t);
    }
    if (!towers.empty()) {
      SLUICE_LOG_INFO("{}: gemma4 text decoder only; skipping {}", where, fmt::join(towers, ", "));
    }
    return parse_gemma4_text(text, where);
  }
  if (model_type == "gemma4_text") return parse_gemma4_text(cfg, where);
  return Status::invalid_argument(fmt::format(
      "{}: model_type '{}' is not supported (supported: gemma3_text, gemma3, gemma4_text, gemma4)",
      where, model_type));
}

StatusOr<ModelConfig> config_from_gguf(const weights::GgufFile& gguf) {
  const std::string& where = gguf.name();
  SLUICE_ASSIGN_OR_RETURN(std::string arch, gguf.get_string("general.architecture"));
  if (arch != "gemma3") {
    return Status::invalid_argument(fmt::format(
        "{}: general.architecture '{}' is not supported (supported: gemma3)", where, arch));
  }
  auto get_int = [&](const std::string& key, int lo, int hi, int* out) -> Status {
    auto v = gguf.get_u64(key);
    if (!v.is_ok()) return v.status().with_context(where);
    if (*v < static_cast<uint64_t>(lo) || *v > static_cast<uint64_t>(hi)) {
      return Status::invalid_argument(
          fmt::format("{}: {} is {}, supported range [{}, {}]", where, key, *v, lo, hi));
    }
    *out = static_cast<int>(*v);
    return Status::ok();
  };
  ModelConfig c;
  c.arch = Arch::kGemma3;
  c.source_format = "gguf";
  c.norm_one_plus_weight = false;  // the converter stores w + 1
  int head_dim = 0, num_kv = 0, inter = 0, value_len = 0;
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.embedding_length", 1, kMaxHidden, &c.hidden_size));
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.block_count", 1, kMaxLayers, &c.num_layers));
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.attention.head_count", 1, kMaxHeads, &c.num_heads));
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.attention.head_count_kv", 1, kMaxHeads, &num_kv));
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.attention.key_length", 2, kMaxHeadDim, &head_dim));
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.attention.value_length", 2, kMaxHeadDim, &value_len));
  if (value_len != head_dim) {
    return Status::invalid_argument(fmt::format(
        "{}: value_length {} differs from key_length {} (not supported)", where, value_len, head_dim));
  }
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.feed_forward_length", 1, kMaxIntermediate, &inter));
  SLUICE_RETURN_IF_ERROR(get_int("gemma3.context_length", 1, kMaxContext, &c.max_position_embeddings));
  c.sliding_window = 4096;
  if (gguf.find("gemma3.attention.sliding_window")) {
    SLUICE_RETURN_IF_ERROR(get_int("gemma3.attention.sliding_window", 1, kMaxContext, &c.sliding_window));
  }
  if (gguf.find("gemma3.attention.layer_norm_rms_epsilon")) {
    SLUICE_ASSIGN_OR_RETURN(double eps, gguf.get_f64("gemma3.attention.layer_norm_rms_epsilon"));
    if (!(eps >= 0 && eps < 1)) return Status::invalid_argument(fmt::format("{}: bad rms epsilon {}", where, eps));
    c.rms_norm_eps = static_cast<float>(eps);
  }
  if (gguf.find("gemma3.final_logit_softcapping")) {
    SLUICE_ASSIGN_OR_RETURN(double cap, gguf.get_f64("gemma3.final_logit_softcapping"));
    if (!(cap > 0 && cap < 1e9)) return Status::invalid_argument(fmt::format("{}: bad final_logit_softcapping {}", where, cap));
    c.final_logit_softcap = static_cast<float>(cap);
  }
  float theta = 1000000.0f;
  if (gguf.find("gemma3.rope.freq_base")) {
    SLUICE_ASSIGN_OR_RETURN(double t, gguf.get_f64("gemma3.rope.freq_base"));
    if (!(t >= 1 && t < 1e12)) return Status::invalid_argument(fmt::format("{}: bad rope.freq_base {}", where, t));
    theta = static_cast<float>(t);
  }
  float global_scale = 1.0f;
  if (gguf.find("gemma3.rope.scaling.type")) {
    SLUICE_ASSIGN_OR_RETURN(std::string st, gguf.get_string("gemma3.rope.scaling.type"));
    if (st == "linear") {
      SLUICE_ASSIGN_OR_RETURN(double f, gguf.get_f64("gemma3.rope.scaling.factor"));
      if (!(f > 0 && f < 1e6)) return Status::invalid_argument(fmt::format("{}: bad rope.scaling.factor {}", where, f));
      global_scale = static_cast<float>(1.0 / f);
    } else if (st != "none") {
      return Status::invalid_argument(fmt::format(
          "{}: rope.scaling.type '{}' is not supported (supported: none, linear)", where, st));
    }
  }
  // Not in the file (llama.cpp hard-codes them for gemma3): period-6 pattern, local theta
  // 1e4, attention scale 1/sqrt(key_length) — or 1/sqrt(hidden/heads) for the 62-layer 27B.
  double qpas = c.num_layers == 62 ? static_cast<double>(c.hidden_size) / c.num_heads : head_dim;
  c.attn_scale = static_cast<float>(1.0 / std::sqrt(qpas));
  c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
  const weights::GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->ne.size() != 2) {
    return Status::invalid_argument(fmt::format("{}: missing 2-D tensor token_embd.weight", where));
  }
  if (embd->ne[1] < 1 || embd->ne[1] > static_cast<uint64_t>(kMaxVocab)) {
    return Status::invalid_argument(fmt::format("{}: token_embd.weight has {} rows", where, embd->ne[1]));
  }
  c.vocab_size = static_cast<int>(embd->ne[1]);
  int bos = 2, eos = 1, pad = 0;
  if (gguf.find("tokenizer.ggml.bos_token_id")) SLUICE_RETURN_IF_ERROR(get_int("tokenizer.ggml.bos_token_id", 0, c.vocab_size - 1, &bos));
  if (gguf.find("tokenizer.ggml.eos_token_id")) SLUICE_RETURN_IF_ERROR(get_int("tokenizer.ggml.eos_token_id", 0, c.vocab_size - 1, &eos));
  if (gguf.find("tokenizer.ggml.padding_token_id")) SLUICE_RETURN_IF_ERROR(get_int("tokenizer.ggml.padding_token_id", 0, c.vocab_size - 1, &pad));
  c.bos_token_id = bos;
  c.pad_token_id = pad;
  c.eos_token_ids = {eos};
  c.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerConfig& l = c.layers[i];
    l.type = i % 6 == 5 ? LayerType::kGlobal : LayerType::kSliding;
    l.head_dim = head_dim;
    l.num_kv_heads = num_kv;
    l.intermediate_size = inter;
    l.rope = l.type == LayerType::kGlobal ? full_rope(head_dim, theta, global_scale)
                                          : full_rope(head_dim, 10000.0f, 1.0f);
  }
  SLUICE_RETURN_IF_ERROR(validate(c, where));
  return c;
}

}  // namespace sluice::models
