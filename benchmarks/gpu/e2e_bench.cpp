// End to end on the GPU: the CUDA Gemma 3 and Gemma 4 models with synthetic bf16 weights drawn
// on the device (CudaGemma3Model::synthetic, CudaGemma4Model::synthetic), at the shapes of real
// checkpoints (Gemma 3 270M, 4B, 27B; Gemma 4 26B-A4B).
//   - prefill: one 2048-token prompt, tokens/s;
//   - decode: batch 1, 16 and 64 sequences each holding a 512-token context, greedy
//     (argmax on the GPU, only token ids cross), tokens/s summed over the batch, and the
//     step time against the weight-read floor (bytes one token reads / measured copy GB/s:
//     every weight for the dense Gemma 3; for the MoE, attention, the dense MLP, the router,
//     8 of the 128 experts per layer and the head).
// Steps are timed on the host around the blocking forward call: that includes the step's
// host work and transfers, as a server sees it. Decode is timed twice: replaying the CUDA
// graph of its batch bucket, and with eager launches. Then the prefill and the batch-1
// decode step are profiled (rows "<model> profile ..."): GPU time per section of the step
// (projections, attention, MLP, MoE, tail, head), from events between the sections.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "bench_util.h"
#include "common/check.h"
#include "engine/models/paged_kv_cache.h"  // kv_group_layouts
#include "engine/models_cuda/cuda_gemma4.h"
#include "engine/models_cuda/cuda_model.h"
#include "kernels/cuda/cuda_check.h"

namespace sluice::bench {
namespace {

using models::ForwardBatch;
using models::cuda::CudaGemma3Model;
using models::cuda::CudaGemma4Model;
using models::cuda::CudaModelOptions;
using nlohmann::json;

struct Shape {
  const char* name;
  int hidden, layers, heads, kv_heads, head_dim, intermediate, vocab;
};

models::ModelConfig make_config(const Shape& s) {
  json cfg = {{"model_type", "gemma3_text"},
              {"hidden_size", s.hidden},
              {"intermediate_size", s.intermediate},
              {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads},
              {"num_key_value_heads", s.kv_heads},
              {"head_dim", s.head_dim},
              {"vocab_size", s.vocab},
              {"max_position_embeddings", 32768},
              {"sliding_window", 512},
              {"rms_norm_eps", 1e-6},
              {"query_pre_attn_scalar", s.head_dim},
              {"hidden_activation", "gelu_pytorch_tanh"},
              {"rope_parameters",
               {{"full_attention", {{"rope_theta", 1000000.0}, {"rope_type", "default"}}},
                {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}}}};
  json types = json::array();
  for (int l = 0; l < s.layers; ++l)
    types.push_back((l + 1) % 6 == 0 ? "full_attention" : "sliding_attention");
  cfg["layer_types"] = types;
  auto c = models::parse_hf_config(cfg.dump(), s.name);
  SLUICE_CHECK(c.is_ok(), "{}", c.status().to_string());
  return *c;
}

// Gemma 4 26B-A4B's text config (gemma-models.md §2.1, engine/models/gemma4_config.cpp), with
// the context capped at 32768 positions (tables and the attention workspace are sized by it;
// the benchmark's contexts are far shorter).
models::ModelConfig gemma4_26b_a4b_config() {
  json cfg = {{"model_type", "gemma4_text"},
              {"hidden_size", 2816},
              {"intermediate_size", 2112},
              {"num_hidden_layers", 30},
              {"num_attention_heads", 16},
              {"num_key_value_heads", 8},
              {"num_global_key_value_heads", 2},
              {"head_dim", 256},
              {"global_head_dim", 512},
              {"attention_k_eq_v", true},
              {"vocab_size", 262144},
              {"hidden_size_per_layer_input", 0},
              {"num_kv_shared_layers", 0},
              {"enable_moe_block", true},
              {"num_experts", 128},
              {"top_k_experts", 8},
              {"moe_intermediate_size", 704},
              {"max_position_embeddings", 32768},
              {"sliding_window", 1024},
              {"rms_norm_eps", 1e-6},
              {"final_logit_softcapping", 30.0},
              {"hidden_activation", "gelu_pytorch_tanh"},
              {"tie_word_embeddings", true},
              {"rope_parameters",
               {{"full_attention",
                 {{"partial_rotary_factor", 0.25},
                  {"rope_theta", 1000000.0},
                  {"rope_type", "proportional"}}},
                {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}}}};
  json types = json::array();
  for (int l = 0; l < 30; ++l)
    types.push_back((l + 1) % 6 == 0 ? "full_attention" : "sliding_attention");
  cfg["layer_types"] = types;
  auto c = models::parse_hf_config(cfg.dump(), "gemma4-26b-a4b");
  SLUICE_CHECK(c.is_ok(), "{}", c.status().to_string());
  return *c;
}

// A batch of S sequences; sequence i has blocks [i * per_seq, (i + 1) * per_seq).
struct Batch {
  std::vector<int32_t> tokens, positions, token_seq, seq_lens, slots, tables, rows;
  int max_blocks = 0;
  ForwardBatch view(int groups) const {
    ForwardBatch b;
    b.tokens = tokens;
    b.positions = positions;
    b.token_seq = token_seq;
    b.seq_lens = seq_lens;
    b.logit_rows = rows;
    for (int g = 0; g < groups; ++g) b.groups.push_back({slots, tables, max_blocks});
    return b;
  }
};

// `n` new tokens for each of `S` sequences that already hold `ctx` tokens; sequence s owns
// blocks [first_block + s * per_seq_blocks, ... + per_seq_blocks).
Batch make_batch(int S, int ctx, int n, int per_seq_blocks, int bs, int first_block = 0) {
  Batch b;
  b.max_blocks = per_seq_blocks;
  for (int s = 0; s < S; ++s) {
    for (int i = 0; i < n; ++i) {
      const int p = ctx + i;
      b.tokens.push_back((s * 7919 + p * 104729) % 262144);
      b.positions.push_back(p);
      b.token_seq.push_back(s);
      b.slots.push_back((first_block + s * per_seq_blocks) * bs + p);
    }
    b.seq_lens.push_back(ctx + n);
    for (int k = 0; k < per_seq_blocks; ++k)
      b.tables.push_back(first_block + s * per_seq_blocks + k);
    b.rows.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
  }
  return b;
}

struct BenchSizes {
  int bs = 16, ctx = 512, prompt = 2048, max_batch = 64;
  int prompt_blocks() const { return prompt / bs; }
  int per_seq_blocks() const { return (ctx + 64) / bs; }
  CudaModelOptions options(int num_groups) const {
    CudaModelOptions opt;
    opt.max_num_tokens = prompt;
    opt.max_num_seqs = max_batch;
    opt.block_size = bs;
    opt.num_blocks.assign(num_groups, prompt_blocks() + per_seq_blocks() * max_batch);
    return opt;
  }
};

// Where one step's GPU time goes (CudaModelBase::set_profiling: eager launches, an event at
// each section of the step): rows "<name> profile <what>" with microseconds per step and the
// share of the step, over `steps` runs of `step`.
template <typename Model, typename Step>
void profile_step(const std::string& name, const std::string& what, Model& m, int steps,
                  Step&& step, Report& report) {
  m.set_profiling(true);
  for (int i = 0; i < steps; ++i) step();
  const auto sections = m.profile();
  m.set_profiling(false);
  double total = 0.0;
  for (const auto& sec : sections) total += sec.ms;
  for (const auto& sec : sections) {
    report.add(
        {name + " profile " + what + ": " + sec.name,
         {{"steps", static_cast<double>(steps)}},
         {{"us_per_step", sec.ms * 1e3 / steps}, {"share", total > 0 ? sec.ms / total : 0}}});
  }
}

// Prefill and decode figures of one model. `active_gb`: weight bytes one decode token reads.
template <typename Model>
void run_model(const std::string& name, Model& m, const BenchSizes& z, bool quick, double copy,
               double active_gb, Report& report) {
  const int groups = m.num_kv_groups();
  const int bs = z.bs, ctx = z.ctx, prompt = z.prompt, max_batch = z.max_batch;
  const int prompt_blocks = z.prompt_blocks(), per_seq_blocks = z.per_seq_blocks();
  const double weight_gb = m.weight_bytes() / 1e9;
  std::vector<int32_t> out(max_batch);

  // Prefill: one 2048-token prompt (sequence 0).
  {
    Batch b = make_batch(1, 0, prompt, prompt_blocks, bs);
    const ForwardBatch fb = b.view(groups);
    const double ms = host_median_ms(
        [&] { SLUICE_CHECK(m.forward_greedy(fb, std::span(out).first(1)).is_ok(), "prefill"); },
        quick ? 3 : 5);
    report.add({name + " prefill",
                {{"prompt", prompt}},
                {{"ms", ms}, {"tok_per_s", prompt / (ms * 1e-3)}, {"weight_gb", weight_gb}}});
    profile_step(
        name, "prefill", m, 1,
        [&] { SLUICE_CHECK(m.forward_greedy(fb, std::span(out).first(1)).is_ok(), "prefill"); },
        report);
  }
  for (int batch : {1, 16, 64}) {
    if (batch > max_batch) continue;
    // Fill each sequence's first ctx positions, then time single-token decode steps.
    const int per_step = prompt / ctx;  // contexts filled per prefill step
    for (int s0 = 0; s0 < batch; s0 += per_step) {
      const int n = std::min(batch - s0, per_step);
      Batch part = make_batch(n, 0, ctx, per_seq_blocks, bs, prompt_blocks + s0 * per_seq_blocks);
      SLUICE_CHECK(m.forward_greedy(part.view(groups), std::span(out).first(n)).is_ok(),
                   "context fill");
    }
    Batch dec = make_batch(batch, ctx, 1, per_seq_blocks, bs, prompt_blocks);
    const ForwardBatch fb = dec.view(groups);
    // The same step replayed as a CUDA graph and launched eagerly (the step rewrites the
    // same slots each time, so every repetition does the same work).
    for (bool graphs : {true, false}) {
      m.set_use_cuda_graphs(graphs);
      SLUICE_CHECK(m.forward_greedy(fb, std::span(out).first(batch)).is_ok(), "decode warm-up");
      const double ms = host_median_ms(
          [&] {
            SLUICE_CHECK(m.forward_greedy(fb, std::span(out).first(batch)).is_ok(), "decode");
          },
          quick ? 5 : 20);
      const double floor_ms = active_gb / copy * 1e3;
      report.add({name + (graphs ? " decode graph" : " decode eager"),
                  {{"batch", batch}, {"context", ctx}},
                  {{"ms_per_step", ms},
                   {"tok_per_s", batch / (ms * 1e-3)},
                   {"weight_floor_ms", floor_ms},
                   {"floor_fraction", floor_ms / ms}}});
    }
    if (batch == 1) {
      profile_step(
          name, "decode batch 1", m, quick ? 3 : 10,
          [&] { SLUICE_CHECK(m.forward_greedy(fb, std::span(out).first(1)).is_ok(), "decode"); },
          report);
    }
  }
}

void run_shape(const Shape& shape, bool quick, double copy, Report& report) {
  BenchSizes z;
  z.max_batch = quick ? 16 : 64;
  auto model = CudaGemma3Model::synthetic(make_config(shape), 1234, z.options(2));
  if (!model.is_ok()) {
    std::printf("%s: %s\n", shape.name, model.status().to_string().c_str());
    return;
  }
  CudaGemma3Model& m = **model;
  run_model(shape.name, m, z, quick, copy, m.weight_bytes() / 1e9, report);
}

// Gemma 4 26B-A4B at its real dimensions: about 50 GB of bf16 weights, so it fits an 80 GB
// H100 with the benchmark's KV pool.
void run_gemma4_26b(bool quick, double copy, Report& report) {
  BenchSizes z;
  z.max_batch = quick ? 16 : 64;
  const models::ModelConfig config = gemma4_26b_a4b_config();
  auto model = CudaGemma4Model::synthetic(
      config, 1234, z.options(static_cast<int>(models::kv_group_layouts(config).size())));
  if (!model.is_ok()) {
    std::printf("gemma4-26b-a4b: %s\n", model.status().to_string().c_str());
    return;
  }
  CudaGemma4Model& m = **model;
  const double active_gb = m.active_weight_bytes_per_token() / 1e9;
  std::printf(
      "gemma4-26b-a4b: %.2f GB of weights, %.2f GB read per decode token, KV pool %.2f GB\n",
      m.weight_bytes() / 1e9, active_gb, m.kv_bytes() / 1e9);
  run_model("gemma4-26b-a4b", m, z, quick, copy, active_gb, report);
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using namespace sluice::bench;
  const Session session(argc, argv);
  const double copy = measure_copy_gbps(size_t{2} << 30, session.stream);
  std::printf("device-to-device copy: %.0f GB/s\n", copy);
  // Shapes of published Gemma 3 checkpoints (vocab 262144).
  const Shape shapes[] = {
      {"gemma3-270m", 640, 18, 4, 1, 256, 2048, 262144},
      {"gemma3-4b", 2560, 34, 8, 4, 256, 10240, 262144},
      {"gemma3-27b", 5376, 62, 32, 16, 128, 21504, 262144},
  };
  Report report("end to end, synthetic Gemma 3 and Gemma 4 shapes (bf16 weights on the GPU)");
  for (const Shape& s : shapes) {
    if (session.args.quick && std::string(s.name) != "gemma3-270m") continue;
    run_shape(s, session.args.quick, copy, report);
  }
  run_gemma4_26b(session.args.quick, copy, report);
  return session.finish(report);
}
