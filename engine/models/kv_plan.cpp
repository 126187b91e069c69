#include "engine/models/kv_plan.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "common/check.h"

namespace sluice::models {
namespace {

std::string billions(uint64_t n) { return fmt::format("{:.3f} B", static_cast<double>(n) / 1e9); }

ParamCounts count_params(const ModelConfig& c, const std::vector<LayerPlan>& layers) {
  const uint64_t h = static_cast<uint64_t>(c.hidden_size);
  const uint64_t p = static_cast<uint64_t>(c.hidden_size_per_layer_input);
  const uint64_t nl = static_cast<uint64_t>(c.num_layers);
  ParamCounts pc;
  pc.embed_tokens = static_cast<uint64_t>(c.vocab_size) * h;
  pc.ple_table = static_cast<uint64_t>(c.vocab_size_per_layer_input) * nl * p;
  uint64_t total = pc.embed_tokens + h;  // + final norm
  if (p > 0) total += pc.ple_table + nl * p * h + p;  // table, model projection, projection norm
  for (const LayerPlan& l : layers) {
    const uint64_t d = static_cast<uint64_t>(l.head_dim);
    const uint64_t q = static_cast<uint64_t>(c.num_heads) * d;
    const uint64_t kv = static_cast<uint64_t>(l.num_kv_heads) * d;
    total += 2 * h * q + d;  // q_proj, o_proj, q_norm
    if (l.owns_kv) {
      total += h * kv * (l.has_v_proj ? 2 : 1) + d;  // k_proj, v_proj, k_norm
    } else {
      pc.unused_kv_shared_in_checkpoint += h * kv * (l.has_v_proj ? 2 : 1) + d;
    }
    total += 4 * h;  // input, post-attention, pre- and post-feedforward norms
    if (c.layer_scalar) total += 1;
    total += 3 * h * static_cast<uint64_t>(l.intermediate_size);
    if (p > 0) total += 2 * h * p + h;  // gate, projection, post norm
    if (l.moe) {
      const uint64_t e = static_cast<uint64_t>(c.num_experts);
      const uint64_t experts = e * 3 * h * static_cast<uint64_t>(c.moe_intermediate_size);
      pc.experts += experts;
      total += experts + e * h + h + e + 3 * h;  // experts, router proj/scale/per-expert, norms
    }
  }
  pc.text_model = total;
  pc.text_active_per_token = total - pc.experts;
  if (c.num_experts > 0) {
    pc.text_active_per_token += pc.experts / static_cast<uint64_t>(c.num_experts) *
                                static_cast<uint64_t>(c.top_k_experts);
  }
  return pc;
}

}  // namespace

const char* layer_type_name(LayerType t) { return t == LayerType::kGlobal ? "global" : "sliding"; }

std::string format_layer_ranges(const std::vector<int>& xs) {
  std::string out;
  for (size_t i = 0; i < xs.size();) {
    size_t j = i;
    while (j + 1 < xs.size() && xs[j + 1] == xs[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? fmt::format("{}", xs[i]) : fmt::format("{}-{}", xs[i], xs[j]);
    i = j + 1;
  }
  return out;
}


uint64_t KvGroupPlan::bytes_per_token(int elem_bytes) const {
  return 2ull * layers.size() * static_cast<uint64_t>(num_kv_heads) *
         static_cast<uint64_t>(head_dim) * static_cast<uint64_t>(elem_bytes);
}

uint64_t ModelPlan::weight_bytes(double bytes_per_param) const {
  return static_cast<uint64_t>(std::llround(static_cast<double>(params.text_model) * bytes_per_param));
}

ModelPlan make_model_plan(const ModelConfig& c) {
  SLUICE_CHECK(static_cast<int>(c.layers.size()) == c.num_layers, "layer table {} vs {}",
               c.layers.size(), c.num_layers);
  ModelPlan plan;
  plan.summary = c.summary();
  plan.first_kv_shared_layer = c.num_layers - c.num_kv_shared_layers;
  plan.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerConfig& lc = c.layers[i];
    LayerPlan& l = plan.layers[i];
    l.layer = i;
    l.type = lc.type;
    l.head_dim = lc.head_dim;
    l.num_kv_heads = lc.num_kv_heads;
    l.owns_kv = lc.owns_kv();
    l.kv_source_layer = lc.owns_kv() ? i : lc.kv_source_layer;
    l.has_v_proj = !lc.k_eq_v;
    l.intermediate_size = lc.intermediate_size;
    l.moe = lc.moe;
    l.rope_theta = lc.rope.theta;
    l.rope_rotated_pairs = lc.rope.num_pairs;
    if (!l.owns_kv) continue;
    // Same grouping rule as kv_group_layouts, restricted to layers that own K/V.
    const int window = lc.type == LayerType::kSliding ? c.sliding_window : 0;
    int g = 0;
    for (; g < static_cast<int>(plan.kv_groups.size()); ++g) {
      const KvGroupPlan& cand = plan.kv_groups[g];
      if (cand.type == lc.type && cand.window == window && cand.num_kv_heads == lc.num_kv_heads &&
          cand.head_dim == lc.head_dim) {
        break;
      }
    }
    if (g == static_cast<int>(plan.kv_groups.size())) {
      plan.kv_groups.push_back({lc.type, window, lc.num_kv_heads, lc.head_dim, {}});
    }
    plan.kv_groups[g].layers.push_back(i);
    l.kv_group = g;
  }
  for (LayerPlan& l : plan.layers) {
    if (!l.owns_kv) l.kv_group = plan.layers[l.kv_source_layer].kv_group;
  }
  for (const KvGroupPlan& g : plan.kv_groups) {
    plan.kv_bytes_per_token_bf16 += g.bytes_per_token(2);
    plan.kv_bytes_per_token_f32 += g.bytes_per_token(4);
  }
  plan.params = count_params(c, plan.layers);
  return plan;
}

std::string ModelPlan::describe() const {
  std::string out = summary + "\n";
  // Layer types: one entry per distinct (type, head dim, KV heads, K=V, width, MoE).
  std::map<std::tuple<int, int, int, bool, int, bool>, std::vector<int>> kinds;
  for (const LayerPlan& l : layers) {
    kinds[{static_cast<int>(l.type), l.head_dim, l.num_kv_heads, l.has_v_proj, l.intermediate_size,
           l.moe}]
        .push_back(l.layer);
  }
  out += "  layers:\n";
  for (const auto& [k, ls] : kinds) {
    const auto& [type, d, kvh, has_v, inter, moe] = k;
    out += fmt::format("    {} x{} [{}]: head dim {}, {} KV heads{}, MLP {}{}\n",
                       layer_type_name(static_cast<LayerType>(type)), ls.size(), format_layer_ranges(ls), d, kvh,
                       has_v ? "" : " (K=V)", inter, moe ? " + MoE" : "");
  }
  out += "  KV groups (layers that own K/V):\n";
  for (size_t g = 0; g < kv_groups.size(); ++g) {
    const KvGroupPlan& kg = kv_groups[g];
    out += fmt::format("    g{}: {}{}, {} KV heads x {}, {} layers [{}], {} B/token bf16\n", g,
                       layer_type_name(kg.type),
                       kg.window > 0 ? fmt::format(" window {}", kg.window) : std::string(),
                       kg.num_kv_heads, kg.head_dim, kg.layers.size(), format_layer_ranges(kg.layers),
                       kg.bytes_per_token(2));
  }
  if (first_kv_shared_layer < static_cast<int>(layers.size())) {
    std::map<int, std::vector<int>> readers;
    for (const LayerPlan& l : layers) {
      if (!l.owns_kv) readers[l.kv_source_layer].push_back(l.layer);
    }
    out += fmt::format("  KV sharing: layers {}+ compute no K/V\n", first_kv_shared_layer);
    for (const auto& [src, ls] : readers) {
      out += fmt::format("    layer {} ({}) -> layers [{}]\n", src, layer_type_name(layers[src].type),
                         format_layer_ranges(ls));
    }
  } else {
    out += "  KV sharing: none\n";
  }
  out += fmt::format("  KV cache: {} B/token bf16, {} B/token f32\n", kv_bytes_per_token_bf16,
                     kv_bytes_per_token_f32);
  out += fmt::format(
      "  weights: {} params (embeddings {}, PLE table {}, experts {}; active/token {}), "
      "{:.2f} GiB in bf16",
      billions(params.text_model), billions(params.embed_tokens), billions(params.ple_table),
      billions(params.experts), billions(params.text_active_per_token),
      static_cast<double>(weight_bytes(2.0)) / (1ull << 30));
  if (params.unused_kv_shared_in_checkpoint > 0) {
    out += fmt::format(" ({} unused KV-shared params in the checkpoint skipped)",
                       billions(params.unused_kv_shared_in_checkpoint));
  }
  out += "\n";
  return out;
}

}  // namespace sluice::models
