#pragma once
// Gemma 4 text decoder (gemma-models.md §2; transformers 5.24 wins where they differ, see
// tools/README.md and docs/numerics.md): sliding and global layers with their own head dims,
// proportional RoPE on global layers, QK-norm and weightless V-norm, attention scale 1,
// K=V global layers (26B/31B), per-layer embeddings and cross-layer KV sharing (E2B/E4B), a
// double-wide MLP on E2B's KV-shared layers, a MoE branch beside the dense MLP (26B-A4B),
// layer_scalar and the final logit soft-cap.
//
// Data flow of one step: token ids [N] -> scaled embeddings x [N, H] (and, with PLE, the
// per-layer inputs [N, L, P]) -> layers (owning layers write K/V to the slots the scheduler
// chose; KV-shared layers attend over their source layer's storage) -> final norm of the
// logit rows -> tied head -> 30 * tanh(z / 30).

#include <functional>
#include <memory>
#include <string_view>

#include "engine/models/decoder_scratch.h"
#include "engine/models/model.h"
#include "engine/models/weight_binder.h"

namespace sluice::models {

struct Gemma4Layer {
  kernels::Tensor attn_norm, q_norm, post_attn_norm;
  LinearWeight wq, wo;
  LinearWeight wk, wv;  // undefined on KV-shared layers; wv also on K=V layers
  kernels::Tensor k_norm;
  kernels::Tensor ffn_norm, post_ffn_norm;
  LinearWeight w_gate, w_up, w_down;
  // PLE (undefined without it).
  LinearWeight ple_gate, ple_proj;
  kernels::Tensor ple_post_norm;
  // MoE branch (undefined without it).
  kernels::Tensor post_ffn_norm_1, pre_ffn_norm_2, post_ffn_norm_2;
  kernels::Tensor router_proj, router_scale;   // [E, H], [H]
  std::vector<float> per_expert_scale;         // [E]
  kernels::Tensor experts_gate_up;             // [E, 2 * I_moe, H]
  kernels::Tensor experts_down;                // [E, H, I_moe]
  float layer_scalar = 1.0f;
};

class Gemma4Model final : public Model {
 public:
  // Binds every tensor the text decoder uses (shapes checked against `config`) from
  // `binder`, which keeps the storage alive; tensors it does not use (vision/audio towers,
  // the K/V projections published checkpoints still carry on KV-shared layers) are never
  // read. `ops` must outlive the model.
  static StatusOr<std::unique_ptr<Gemma4Model>> load(ModelConfig config, WeightBinder binder,
                                                     const kernels::OpTable& ops);

  const ModelConfig& config() const override { return config_; }
  Status forward(const ForwardBatch& batch, PagedKvCache& cache, std::span<float> logits) override;

  // Debug hook for tests that localise a mismatch: called during forward with
  // ("embed", -1, x [N, H]), ("ple_inputs", -1, [N, L, P]) when the model has PLE,
  // ("layer", l, x [N, H]) after each layer (after layer_scalar; KV-shared layers only run
  // the logit rows, so there N = logit_rows.size() when that is smaller), and
  // ("final_norm", -1, [rows, H]) for the logit rows; on MoE layers also
  // ("moe_top_k_index", l, [N, k] i32) and ("moe_top_k_weights", l, [N, k]): the experts
  // chosen per token, by descending probability, and their final weights. The views die
  // when the call returns.
  using Observer = std::function<void(std::string_view what, int layer, const kernels::Tensor& t)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

 private:
  Gemma4Model(ModelConfig config, WeightBinder binder, const kernels::OpTable& ops)
      : config_(std::move(config)), binder_(std::move(binder)), ops_(ops) {}
  void ensure_scratch(int num_tokens);
  // x [T, H] -> the per-layer inputs ple_ [T, L, P] (§2.3 step 1).
  void per_layer_inputs(std::span<const int32_t> tokens, const kernels::Tensor& x);
  // out [T, H] = sum over each token's top-k experts of weight * GeGLU expert(in), with the
  // router reading the residual `x` [T, H] (§2.7). Tokens are grouped by expert.
  void moe(const Gemma4Layer& L, const kernels::Tensor& x, const kernels::Tensor& in,
           const kernels::Tensor& out);
  void observe(std::string_view what, int layer, const kernels::Tensor& t) const {
    if (observer_) observer_(what, layer, t);
  }

  ModelConfig config_;
  WeightBinder binder_;
  const kernels::OpTable& ops_;
  kernels::Tensor embed_;       // [V, H], also the tied output head
  kernels::Tensor final_norm_;  // [H]
  // PLE model-level tensors (undefined without PLE).
  kernels::Tensor ple_embed_;      // [V_ple, L * P]
  kernels::Tensor ple_model_proj_; // [L * P, H]
  kernels::Tensor ple_proj_norm_;  // [P]
  float ple_embed_scale_ = 1.0f;   // sqrt(P), rounded like the reference
  std::vector<Gemma4Layer> layers_;
  Observer observer_;
  int current_layer_ = 0;  // for the observer's MoE events

  // Scratch for one forward call, sized for the largest T seen so far.
  DecoderScratch s_;
  std::vector<int32_t> kept_positions_, kept_token_seq_;         // [T]: rows KV-shared layers run
  std::vector<float> ple_, ple_tok_, ple_gate_;                  // PLE: [T, L*P] x2, [T, 2P]
  std::vector<int32_t> ple_ids_;                                 // [T]
  std::vector<float> moe_in_, moe_out_, router_;                 // [T, H] x2, [T, E]
  std::vector<float> ex_in_, ex_gu_, ex_act_, ex_out_;           // per-expert rows
  std::vector<int32_t> topk_idx_;                                // [T, k]
  std::vector<float> topk_w_;                                    // [T, k]
  std::vector<int32_t> expert_rows_;                             // token of each routed row
  std::vector<float> expert_w_;                                  // weight of each routed row
  std::vector<int32_t> expert_begin_;                            // [E + 1]
  std::vector<int32_t> expert_fill_;                             // [E]
};

}  // namespace sluice::models
