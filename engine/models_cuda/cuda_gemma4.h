#pragma once
// CudaGemma4Model: the Gemma 4 text decoder (engine/models/gemma4.cpp is the CPU twin) on one
// NVIDIA GPU, for every variant the CPU model runs: 26B-A4B (MoE beside the dense MLP, K=V
// global layers), 31B (dense, K=V), E2B/E4B (per-layer embeddings, KV sharing, double-wide
// MLP on the shared layers). Weights are bf16 on the device (norm weights, the router scale
// and per-expert scales f32); the residual stream is f32, GEMM inputs bf16 with f32
// accumulation; the paged KV cache is bf16 (CudaModelBase owns it, a KV-shared layer reads
// its source's buffers). Staging, the head and the decode graphs are CudaModelBase's.
//
// Data flow of one layer (T tokens, d = this layer's head dim, I its MLP width):
//   x f32 [T,H] -> rms_norm -> a bf16 -> a.Wqkv^T -> qkv bf16 [T,(nq + nkv * {0,1,2})d]
//   (only Q on KV-shared layers; Q,K on K=V layers, whose V is the raw K) -> V-norm (no
//   weight; on K=V layers of the raw K), QK-norm, RoPE (partial on global layers) and the
//   cache write, one qkv_prepare launch -> paged attention (scale 1) -> attn.Wo^T -> o f32 ->
//   x += norm(o);
//   a = norm(x; pre-FFN) -> dense GeGLU MLP -> o f32
//   MoE layers: o = norm(o; post_1) + norm(experts(norm(x; pre_2)); post_2), the router
//   reading norm0(x) * router_scale * H^-0.5 (moe_route: softmax, top-k, renormalise,
//   * per_expert_scale)
//   -> x += norm(o; post-FFN) -> PLE: x += norm(gelu(x.Wg^T) * ple[l] . Wp^T) -> x *= layer_scalar.
//   The layer's last add runs as one residual_tail launch with what surrounds it: the MoE
//   combine (post_1, post_2), layer_scalar and the next layer's input norm.
// Before layer 0, with PLE: ple [T, L*P] = (norm((x0 . Wproj^T) * H^-0.5; per P-slice) +
// E_ple[tok] * sqrt(P)) / sqrt(2).
//
// NOTE: unlike the CPU model, KV-shared layers run every row of the step, not only the logit
// rows: the logit rows come out the same (rows do not interact outside attention, whose
// K/V the source layers wrote), and the step keeps one layout for graphs. Prefill spends
// more on those layers than it must.

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "engine/models/model.h"
#include "engine/models/weight_binder.h"
#include "engine/models_cuda/cuda_model_base.h"
#include "engine/models_cuda/device_memory.h"

namespace sluice::models::cuda {

class CudaGemma4Model final : public CudaModelBase {
 public:
  // Uploads every tensor `binder` binds (shapes checked against `config`), allocates scratch
  // for the options' largest step and the KV pool. RESOURCE_EXHAUSTED names what did not fit;
  // UNIMPLEMENTED names a config the CUDA backend does not run (a head dim other than 64,
  // 128, 256 or 512, MoE sizes outside the MoE kernels' limits, a PLE table shorter than the
  // vocabulary).
  static StatusOr<std::unique_ptr<CudaGemma4Model>> load(ModelConfig config, WeightBinder binder,
                                                         const CudaModelOptions& options);
  // A model of `config`'s shapes whose weights are drawn on the device from `seed`:
  // matrices uniform in +-sqrt(3 / fan_in), embeddings +-0.1, norm weights and scales in
  // [0.8, 1.2] (Gemma 4 norms multiply by w), layer scalars 1. For benchmarks at any size
  // without a checkpoint.
  static StatusOr<std::unique_ptr<CudaGemma4Model>> synthetic(ModelConfig config, uint64_t seed,
                                                              const CudaModelOptions& options);

  // Bytes of weights one decode token reads: attention, dense MLP, PLE parts, router, top_k
  // of the experts of every MoE layer, the final norm and the head (not the embedding
  // lookups, which read one row). For roofline figures.
  uint64_t active_weight_bytes_per_token() const;

  // Debug, for tests that localise a mismatch with the CPU model layer by layer. With `on`,
  // every step launched eagerly also keeps the residual stream x [T, H] f32 after each layer
  // (after layer_scalar; every row, KV-shared layers included); recorded_layers() returns
  // [num_layers, T, H] of the last such step. Graph replays record nothing: turn graphs off
  // (set_use_cuda_graphs(false)) while recording. `on` allocates max_num_tokens rows per
  // layer; off frees them.
  Status set_record_layers(bool on);
  StatusOr<std::vector<float>> recorded_layers() const;

 private:
  struct Layer : DenseLayer {  // k_norm: layers that own their K/V only
    float layer_scalar = 1.0f;
    // PLE (undefined without it).
    kernels::Tensor ple_gate, ple_proj, ple_post_norm;  // [P, H], [H, P], [H]
    // MoE branch (undefined without it).
    kernels::Tensor post_ffn_norm_1, pre_ffn_norm_2, post_ffn_norm_2;
    kernels::Tensor router_proj;       // [E, H] f32 (routing in f32, as on the CPU)
    kernels::Tensor router_scale;      // [H] f32, pre-multiplied by H^-0.5
    kernels::Tensor per_expert_scale;  // [E] f32
    kernels::Tensor experts_gate_up;   // [E, 2 * I_moe, H] bf16
    kernels::Tensor experts_down;      // [E, H, I_moe] bf16
  };
  CudaGemma4Model() = default;
  static StatusOr<std::unique_ptr<CudaGemma4Model>> create(ModelConfig config, WeightBinder* binder,
                                                           uint64_t seed,
                                                           const CudaModelOptions& options);
  static Status check_supported(const ModelConfig& config);
  Status init_weights() override;
  Status allocate_scratch() override;
  void enqueue(const StepLayout& layout) override;
  // ple_ [T, L*P] from the scaled embeddings x [T, H] and the token ids.
  void enqueue_per_layer_inputs(const kernels::Tensor& x, const kernels::Tensor& tokens, int T);
  // Routes x [T, H] and runs the experts; returns their output [T, H] f32 (its norm joins
  // the dense MLP's in the layer's residual_tail).
  kernels::Tensor enqueue_moe(const Layer& ly, const kernels::Tensor& x, int T);

  kernels::Tensor embed_, final_norm_;  // [V, H] bf16 (also the tied head), [H] f32
  // PLE model-level tensors (undefined without PLE).
  kernels::Tensor ple_embed_;       // [V_ple, L * P] bf16
  kernels::Tensor ple_model_proj_;  // [L * P, H] bf16
  kernels::Tensor ple_proj_norm_;   // [P] f32
  float ple_embed_scale_ = 1.0f;    // sqrt(P), rounded like the reference
  std::vector<Layer> layers_;

  // Scratch beyond the base's layer scratch, sized for max_num_tokens rows.
  // PLE: [T, L*P] f32 per-layer inputs, [T, L*P] f32 token part, [T, P] bf16 x2 gate scratch.
  DeviceMemory ple_, ple_tok_, ple_g_, ple_gp_;
  // MoE: router input [T, H] f32, router logits [T, E] f32, top-k experts [T, k] i32 and
  // weights [T, k] f32, expert input [T, H] bf16, expert output [T, H] f32, workspace.
  DeviceMemory router_in_, router_logits_, topk_experts_, topk_weights_, moe_in_, moe_out_, moe_ws_;
  size_t moe_ws_bytes_ = 0;
  // set_record_layers: [num_layers, max_num_tokens, H] f32, and the last step's T.
  DeviceMemory layer_record_;
  int recorded_tokens_ = 0;
};

}  // namespace sluice::models::cuda
