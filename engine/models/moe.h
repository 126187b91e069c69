#pragma once
// The Gemma 4 MoE block (26B-A4B, gemma-models.md §2.7; docs/numerics.md "Router" and
// "Expert sum"), as a free function over the op table so that tests can drive it alone.
//
// Data flow: residual x [T, H] -> router (weightless RMS, * scale, * H^-0.5, projection,
// softmax over all E experts, top-k, renormalise, * per_expert_scale) -> (token, weight)
// pairs grouped by expert (permute) -> one gate/up GEMM, GeGLU and down GEMM per expert
// over its rows -> each row * its weight added into its token's output row (un-permute).
// The CUDA kernels take the same shape: route, permute, grouped GEMMs, weighted scatter.

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace sluice::models {

// One layer's MoE weights, as the binder hands them out. Views: the caller owns the storage.
struct MoeWeights {
  kernels::Tensor router_proj;              // [E, H] f32|bf16|f16
  kernels::Tensor router_scale;             // [H] f32
  std::span<const float> per_expert_scale;  // [E]
  kernels::Tensor experts_gate_up;          // [E, 2 * I, H]: rows [0, I) gate, [I, 2I) up
  kernels::Tensor experts_down;             // [E, H, I]
};

// Caller-owned scratch for one call over T tokens (E experts, top-k K, hidden H, expert
// width I). Every span must hold at least the count shown; nothing is kept between calls.
struct MoeWorkspace {
  std::span<float> probs;           // [T, E]: router probabilities
  std::span<int32_t> top_k_index;   // [T, K]: chosen experts per token, best first (output)
  std::span<float> top_k_weight;    // [T, K]: their final weights (output)
  std::span<int32_t> expert_begin;  // [E + 1]: row range of each expert in the routed rows
  std::span<int32_t> expert_fill;   // [E]
  std::span<int32_t> routed_token;  // [T * K]: token of each routed row, grouped by expert
  std::span<float> routed_weight;   // [T * K]: weight of each routed row
  std::span<float> rows_in;         // [T, H]: one expert's gathered inputs (also the
                                    // router's normalised input)
  std::span<float> rows_gate_up;    // [T, 2 * I]
  std::span<float> rows_act;        // [T, I]
  std::span<float> rows_out;        // [T, H]
};

// Owns a MoeWorkspace's storage, for callers without buffers of their own (tests, tools).
class MoeScratch {
 public:
  // Grows the buffers to fit T tokens and returns spans over them (valid until the next call).
  MoeWorkspace reserve(int64_t num_tokens, int64_t hidden_size, int num_experts, int top_k,
                       int64_t expert_intermediate_size);

 private:
  std::vector<float> probs_, top_k_weight_, routed_weight_, rows_in_, rows_gate_up_, rows_act_,
      rows_out_;
  std::vector<int32_t> top_k_index_, expert_begin_, expert_fill_, routed_token_;
};

// out [T, H] f32 = sum over each token's top-k experts e of weight_e * down_e(gelu_tanh(
// gate_e(in)) * up_e(in)), with the router reading the residual `x` [T, H] f32 and the
// experts reading `in` [T, H] f32 (the pre-MoE-normed residual). Routing is in f32; the top-k
// breaks probability ties by the lower expert index (kernels/ops.h TopKArgs). Experts run in
// index order and each token's rows are added in that order, which fixes the f32 summation
// order. An expert no token chose is skipped; a token appears at most once per expert.
// `out` must not alias x, in or the workspace. `eps` is the RMS norm epsilon.
void moe_forward(const kernels::OpTable& ops, const MoeWeights& w, int top_k, float eps,
                 const kernels::Tensor& x, const kernels::Tensor& in, const kernels::Tensor& out,
                 const MoeWorkspace& ws);

}  // namespace sluice::models
