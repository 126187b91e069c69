#include "server/inspect_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "common/status.h"
#include "engine/models/kv_plan.h"
#include "engine/models/model_config.h"
#include "engine/weights/weight_source.h"
#include "server/model_path.h"

namespace sluice::server {
namespace {

namespace fs = std::filesystem;
using models::KvGroupPlan;
using models::LayerPlan;
using models::LayerType;
using models::ModelConfig;
using models::ModelPlan;

constexpr uint64_t kMaxConfigBytes = 64u << 20;

StatusOr<std::string> read_config(const fs::path& p) {
  std::error_code ec;
  const uint64_t size = fs::file_size(p, ec);
  if (ec) return Status::not_found(fmt::format("{}: cannot read ({})", p.string(), ec.message()));
  if (size > kMaxConfigBytes) {
    return Status::invalid_argument(
        fmt::format("{}: {} bytes, limit {}", p.string(), size, kMaxConfigBytes));
  }
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in) return Status::invalid_argument(fmt::format("{}: read error", p.string()));
  return ss.str();
}


// "14926026836 B (13.90 GiB)": exact for scripts, readable for people.
std::string bytes_str(uint64_t b) {
  const double gib = static_cast<double>(b) / static_cast<double>(1ull << 30);
  if (gib >= 0.1) return fmt::format("{} B ({:.2f} GiB)", b, gib);
  return fmt::format("{} B ({:.2f} MiB)", b, static_cast<double>(b) / (1 << 20));
}

std::string params_str(uint64_t n) {
  return fmt::format("{} ({:.3f} B)", n, static_cast<double>(n) / 1e9);
}

// What a checkpoint's tensor headers say, split the way the loader treats them.
struct CheckpointBytes {
  std::string files;  // "3 safetensors shards", "1 GGUF file"
  uint64_t num_tensors = 0, total_bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
  std::string text_prefix;  // HF: where the text decoder lives ("model.language_model.")
  uint64_t text_tensors = 0, text_bytes = 0, text_params = 0;
  // K/V weights of KV-shared layers that published checkpoints carry and the loader skips.
  uint64_t unused_kv_bytes = 0, unused_kv_params = 0;
  uint64_t other_tensors = 0, other_bytes = 0;  // vision/audio towers and anything else
  // Memory the loaded text decoder holds, as the weight binder keeps it by default: f32 and
  // bf16 matrices and GGUF's quantized matrices stay in the file mapping (zero-copy); vectors
  // become f32 and f16 matrices are converted to f32, into owned buffers.
  uint64_t mapped_bytes = 0, converted_bytes = 0;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

CheckpointBytes count_checkpoint(const weights::WeightSource& src, const ModelConfig& c) {
  CheckpointBytes cb;
  const bool gguf = src.format() == weights::WeightSource::Format::kGguf;
  cb.files = gguf ? "1 GGUF file"
                  : fmt::format("{} safetensors file{}", src.safetensors()->shards().size(),
                                src.safetensors()->shards().size() == 1 ? "" : "s");
  if (!gguf) {
    // The same prefixes, in the same order, as the weight binder tries.
    for (const char* p : {"model.", "model.language_model.", "language_model.model."}) {
      if (src.find(std::string(p) + "embed_tokens.weight") != nullptr) {
        cb.text_prefix = p;
        break;
      }
    }
    if (cb.text_prefix.empty()) cb.text_prefix = "model.";
  }
  const char* weights_env = std::getenv("SLUICE_CPU_WEIGHTS");
  const bool f32_reference = weights_env != nullptr && std::string_view(weights_env) == "f32";
  const int first_shared = c.num_layers - c.num_kv_shared_layers;
  const std::string layers_prefix = cb.text_prefix + "layers.";
  for (const std::string& name : src.names()) {
    const weights::WeightInfo* w = src.find(name);
    ++cb.num_tensors;
    cb.total_bytes += w->nbytes;
    cb.bytes_by_dtype[weights::source_dtype_name(w->dtype)] += w->nbytes;
    // A text-only HF checkpoint keeps other models' tensors (none today) outside "model.";
    // a multimodal one keeps the towers beside "model.language_model.".
    const bool text = gguf || name.starts_with(cb.text_prefix) ||
                      (cb.text_prefix == "model." && name == "lm_head.weight");
    if (!text) {
      ++cb.other_tensors;
      cb.other_bytes += w->nbytes;
      continue;
    }
    ++cb.text_tensors;
    cb.text_bytes += w->nbytes;
    cb.text_params += w->num_elements;
    if (!gguf && name.starts_with(layers_prefix)) {
      const int layer = std::atoi(name.c_str() + layers_prefix.size());
      if (layer >= first_shared && (ends_with(name, ".self_attn.k_proj.weight") ||
                                    ends_with(name, ".self_attn.v_proj.weight") ||
                                    ends_with(name, ".self_attn.k_norm.weight"))) {
        cb.unused_kv_bytes += w->nbytes;
        cb.unused_kv_params += w->num_elements;
        continue;
      }
    }
    const bool matrix = w->shape.size() >= 2;
    // GGUF's quantized matrices run on their blocks where they sit (the CPU's quantized
    // matmuls), unless SLUICE_CPU_WEIGHTS=f32 asks for the f32 reference path.
    const bool quant_mapped = gguf && matrix && weights::is_quantized(w->dtype) && !f32_reference;
    if (w->dtype == weights::SourceDType::kF32 || quant_mapped ||
        (matrix && w->dtype == weights::SourceDType::kBF16)) {
      cb.mapped_bytes += w->nbytes;
    } else {
      cb.converted_bytes += w->num_elements * 4;
    }
  }
  return cb;
}

void print_config(const ModelConfig& c) {
  std::printf("config:\n");
  std::printf("  architecture      %s (%s)\n", models::arch_name(c.arch), c.source_format.c_str());
  std::printf("  vocab             %d\n", c.vocab_size);
  std::printf("  hidden            %d, %d query heads, rms_norm_eps %g\n", c.hidden_size,
              c.num_heads, static_cast<double>(c.rms_norm_eps));
  // Per layer type: head dim, KV heads, RoPE (one line each, from the first layer of the type).
  for (LayerType t : {LayerType::kSliding, LayerType::kGlobal}) {
    int count = 0;
    const models::LayerConfig* first = nullptr;
    for (const auto& l : c.layers) {
      if (l.type != t) continue;
      if (first == nullptr) first = &l;
      ++count;
    }
    if (first == nullptr) continue;
    const models::RopeConfig& r = first->rope;
    std::printf(
        "  %-17s %d layers, head dim %d, %d KV heads%s, RoPE theta %g over %d of %d pairs%s\n",
        models::layer_type_name(t), count, first->head_dim, first->num_kv_heads,
        first->k_eq_v ? " (K=V: no v_proj)" : "", static_cast<double>(r.theta), r.num_pairs,
        first->head_dim / 2,
        r.num_pairs < r.pair_offset && r.pair_offset == first->head_dim / 2 ? " (proportional)"
                                                                            : "");
  }
  std::printf("  sliding window    %d\n", c.sliding_window);
  std::printf("  context           %d\n", c.max_position_embeddings);
  std::printf("  MLP               %d", c.layers.empty() ? 0 : c.layers[0].intermediate_size);
  if (c.use_double_wide_mlp) std::printf(" (%d on KV-shared layers)", c.max_intermediate_size());
  std::printf("\n");
  if (c.hidden_size_per_layer_input > 0) {
    std::printf("  per-layer input   %d per layer, table %d rows x %d\n",
                c.hidden_size_per_layer_input, c.vocab_size_per_layer_input,
                c.num_layers * c.hidden_size_per_layer_input);
  } else {
    std::printf("  per-layer input   none\n");
  }
  if (c.num_kv_shared_layers > 0) {
    std::printf("  KV sharing        last %d layers (%d-%d) read an earlier layer's K/V\n",
                c.num_kv_shared_layers, c.num_layers - c.num_kv_shared_layers, c.num_layers - 1);
  } else {
    std::printf("  KV sharing        none\n");
  }
  if (c.enable_moe_block) {
    std::printf("  MoE               %d experts, top %d, expert width %d, beside the dense MLP\n",
                c.num_experts, c.top_k_experts, c.moe_intermediate_size);
  } else {
    std::printf("  MoE               none\n");
  }
  std::printf("  attention         scale %g, logit soft-cap %s, V-norm %s\n",
              static_cast<double>(c.attn_scale),
              c.attn_logit_softcap > 0 ? fmt::format("{}", c.attn_logit_softcap).c_str() : "none",
              c.v_norm ? "yes" : "no");
  std::printf("  final soft-cap    %s\n", c.final_logit_softcap > 0
                                              ? fmt::format("{}", c.final_logit_softcap).c_str()
                                              : "none");
  std::printf("  layer_scalar      %s\n", c.layer_scalar ? "yes" : "no");
  std::string eos;
  for (int32_t e : c.eos_token_ids) eos += (eos.empty() ? "" : ", ") + std::to_string(e);
  std::printf("  bos / eos ids     %d / %s\n", c.bos_token_id, eos.c_str());
}

void print_layers(const ModelPlan& plan) {
  std::printf("\nper-layer plan:\n");
  std::printf("  %5s  %-7s  %8s  %8s  %-14s  %-6s  %6s  %-4s  %10s  %5s\n", "layer", "type",
              "head_dim", "kv_heads", "K/V", "v_proj", "mlp", "moe", "rope_theta", "pairs");
  for (const LayerPlan& l : plan.layers) {
    const std::string kv = l.owns_kv ? fmt::format("own g{}", l.kv_group)
                                     : fmt::format("<- {} (g{})", l.kv_source_layer, l.kv_group);
    const char* v = !l.owns_kv ? "-" : l.has_v_proj ? "yes" : "K=V";
    std::printf("  %5d  %-7s  %8d  %8d  %-14s  %-6s  %6d  %-4s  %10g  %5d\n", l.layer,
                models::layer_type_name(l.type), l.head_dim, l.num_kv_heads, kv.c_str(), v, l.intermediate_size,
                l.moe ? "yes" : "-", static_cast<double>(l.rope_theta), l.rope_rotated_pairs);
  }
}

void print_kv(const ModelPlan& plan, int64_t context) {
  std::printf("\nKV groups (layers that own K/V; KV-shared layers add none):\n");
  for (size_t g = 0; g < plan.kv_groups.size(); ++g) {
    const KvGroupPlan& kg = plan.kv_groups[g];
    std::printf(
        "  g%zu: %s%s, %d KV heads x %d, %zu layers [%s]: %llu B/token bf16, %llu B/token f32\n", g,
        models::layer_type_name(kg.type), kg.window > 0 ? fmt::format(" window {}", kg.window).c_str() : "",
        kg.num_kv_heads, kg.head_dim, kg.layers.size(), models::format_layer_ranges(kg.layers).c_str(),
        static_cast<unsigned long long>(kg.bytes_per_token(2)),
        static_cast<unsigned long long>(kg.bytes_per_token(4)));
  }
  std::map<int, std::vector<int>> readers;
  for (const LayerPlan& l : plan.layers) {
    if (!l.owns_kv) readers[l.kv_source_layer].push_back(l.layer);
  }
  for (const auto& [src, ls] : readers) {
    std::printf("  layer %d's K/V also serves layers [%s]\n", src, models::format_layer_ranges(ls).c_str());
  }
  // A sliding group holds at most its window of tokens per sequence; a global group all of
  // them. "No window release" is what a cache that never frees out-of-window blocks needs.
  uint64_t windowed[2] = {0, 0}, full[2] = {0, 0};
  for (const KvGroupPlan& kg : plan.kv_groups) {
    const int64_t held = kg.window > 0 ? std::min<int64_t>(kg.window, context) : context;
    for (int i = 0; i < 2; ++i) {
      const int elem = i == 0 ? 2 : 4;
      windowed[i] += kg.bytes_per_token(elem) * static_cast<uint64_t>(held);
      full[i] += kg.bytes_per_token(elem) * static_cast<uint64_t>(context);
    }
  }
  std::printf("\nKV cache (one sequence):\n");
  std::printf("  per token                  bf16 %llu B, f32 %llu B\n",
              static_cast<unsigned long long>(plan.kv_bytes_per_token_bf16),
              static_cast<unsigned long long>(plan.kv_bytes_per_token_f32));
  std::printf("  %-26s bf16 %s, f32 %s\n", fmt::format("at {} tokens", context).c_str(),
              bytes_str(windowed[0]).c_str(), bytes_str(windowed[1]).c_str());
  std::printf(
      "    (sliding groups hold their window; a cache that kept every token would need bf16 %s, "
      "f32 %s)\n",
      bytes_str(full[0]).c_str(), bytes_str(full[1]).c_str());
}

void print_weights(const ModelPlan& plan, const CheckpointBytes* cb) {
  const models::ParamCounts& p = plan.params;
  std::printf("\nweights:\n");
  std::printf("  estimated from config      %s params: bf16 %s, f32 %s\n",
              params_str(p.text_model).c_str(), bytes_str(plan.weight_bytes(2.0)).c_str(),
              bytes_str(plan.weight_bytes(4.0)).c_str());
  std::printf("    embeddings %s, PLE table %s, experts %s; active per token %s\n",
              params_str(p.embed_tokens).c_str(), params_str(p.ple_table).c_str(),
              params_str(p.experts).c_str(), params_str(p.text_active_per_token).c_str());
  if (p.unused_kv_shared_in_checkpoint > 0) {
    std::printf(
        "    + %s K/V params of KV-shared layers a published checkpoint carries (never loaded)\n",
        params_str(p.unused_kv_shared_in_checkpoint).c_str());
  }
  if (cb == nullptr) {
    std::printf("  checkpoint                 none (config only)\n");
    return;
  }
  std::string dtypes;
  for (const auto& [d, b] : cb->bytes_by_dtype)
    dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", d, b);
  std::printf("  checkpoint                 %s, %llu tensors, %s (bytes by dtype: %s)\n",
              cb->files.c_str(), static_cast<unsigned long long>(cb->num_tensors),
              bytes_str(cb->total_bytes).c_str(), dtypes.c_str());
  const uint64_t loaded_bytes = cb->text_bytes - cb->unused_kv_bytes;
  const uint64_t loaded_params = cb->text_params - cb->unused_kv_params;
  std::printf("  text decoder (stored)      %s in %s params%s\n", bytes_str(loaded_bytes).c_str(),
              params_str(loaded_params).c_str(),
              loaded_params == p.text_model
                  ? ", as the config implies"
                  : fmt::format(", the config implies {}", p.text_model).c_str());
  std::printf(
      "  in memory after load       %s: %s mapped from the files (zero-copy), %s converted\n",
      bytes_str(cb->mapped_bytes + cb->converted_bytes).c_str(),
      bytes_str(cb->mapped_bytes).c_str(), bytes_str(cb->converted_bytes).c_str());
  if (cb->unused_kv_bytes > 0) {
    std::printf("  KV-shared K/V (skipped)    %s\n", bytes_str(cb->unused_kv_bytes).c_str());
  }
  if (cb->other_tensors > 0) {
    std::printf("  other tensors (skipped)    %llu tensors, %s (vision/audio towers)\n",
                static_cast<unsigned long long>(cb->other_tensors),
                bytes_str(cb->other_bytes).c_str());
  }
}

int fail(const Status& s) {
  std::fprintf(stderr, "sluice inspect: %s\n", s.message().c_str());
  return 2;
}

}  // namespace

CLI::App* add_inspect_command(CLI::App& app, InspectOptions& o) {
  CLI::App* c = app.add_subcommand(
      "inspect", "Print a model's parsed config, per-layer plan, KV groups and memory figures");
  c->add_option(
       "--model", o.model,
       "Hugging Face directory (weights optional), its config.json, a GGUF file, or 'default'")
      ->required();
  c->add_option("--max-model-len", o.max_model_len, "Context for the KV figures (0: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  return c;
}

int run_inspect(const InspectOptions& o) {
  auto path_or = resolve_model_path(o.model);
  if (!path_or.is_ok()) return fail(path_or.status());
  const fs::path path(*path_or);
  std::error_code ec;
  StatusOr<ModelConfig> config = Status::internal("unset");
  std::unique_ptr<weights::WeightSource> source;
  std::string what;
  if (fs::is_directory(path, ec)) {
    const fs::path cfg = path / "config.json";
    if (!fs::exists(cfg, ec)) {
      return fail(
          Status::invalid_argument(fmt::format("{}: directory has no config.json", path.string())));
    }
    auto text = read_config(cfg);
    if (!text.is_ok()) return fail(text.status());
    config = models::parse_hf_config(*text, cfg.string());
    if (fs::exists(path / "model.safetensors.index.json", ec) ||
        fs::exists(path / "model.safetensors", ec)) {
      auto src = weights::WeightSource::open_safetensors_dir(path.string());
      if (!src.is_ok()) return fail(src.status());
      source = std::move(*src);
      what = "checkpoint directory";
    } else {
      what = "directory without weights: weights estimated from the config";
    }
  } else if (path.extension() == ".json") {
    auto text = read_config(path);
    if (!text.is_ok()) return fail(text.status());
    config = models::parse_hf_config(*text, path.string());
    what = "config only: weights estimated from the config";
  } else {
    auto src = weights::WeightSource::open_gguf(path.string());
    if (!src.is_ok()) return fail(src.status());
    source = std::move(*src);
    config = models::config_from_gguf(*source->gguf());
    what = "GGUF file";
  }
  if (!config.is_ok()) return fail(config.status());
  const ModelConfig& c = *config;
  const ModelPlan plan = models::make_model_plan(c);
  int64_t context = c.max_position_embeddings;
  if (o.max_model_len > 0) context = std::min<int64_t>(context, o.max_model_len);

  std::printf("model: %s (%s)\n", path.string().c_str(), what.c_str());
  std::printf("%s\n\n", plan.summary.c_str());
  print_config(c);
  print_layers(plan);
  print_kv(plan, context);
  std::unique_ptr<CheckpointBytes> cb;
  if (source) cb = std::make_unique<CheckpointBytes>(count_checkpoint(*source, c));
  print_weights(plan, cb.get());
  return 0;
}

}  // namespace sluice::server
