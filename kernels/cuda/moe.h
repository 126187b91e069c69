#pragma once
// The mixture-of-experts feed-forward of Gemma 4 26B-A4B on CUDA (gemma-models.md §2.7):
//
//   router logits [T, E] --moe_route--> experts [T, k] i32, weights [T, k] f32
//   x [T, H], experts, weights, expert weights --moe_experts--> out [T, H]
//
// moe_experts runs, all on the device: at decode sizes (T * k <= 16, k <= 8) two weight
// streams, gate/up with GeGLU and down with the weighted sum (moe_experts_uses_gemv); else a
// plan (tokens per expert, their rows grouped by expert, a list of row tiles; folded into
// the next kernel when T * k <= 32), the gate/up
// grouped GEMM fused with GeGLU into a bf16 activation, the down grouped GEMM into f32
// rows, and the weighted sum back into token order (j = 0..k-1 in order, no atomics:
// results are reproducible bit for bit). Grid sizes come from T, E and k alone: no
// launcher reads device data, allocates or synchronises, so both ops can be captured into
// a CUDA graph. The intermediates live in a caller-owned
// workspace (moe_workspace_bytes).
//
// Includers need no CUDA header; tensors are device views (Device::kCuda), `stream` is a
// cudaStream_t as void* (nullptr: the legacy default stream). Launchers validate their
// arguments and abort (SLUICE_CHECK) on a violation; check_*() returns the same verdict as a
// Status naming the op, the tensor and what was expected.

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/kernel_params.h"  // ElemType
#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

// Router in one kernel, f32 arithmetic, one warp per token:
//   prob = softmax(logits[t, :]) over all E experts; take the top_k probabilities (ties: the
//   lower expert index; a NaN logit ranks below every number, -inf included); renormalise
//   the k chosen probabilities to sum 1; multiply each by per_expert_scale[e].
// logits: [T, E] f32|bf16, row stride free, last dimension contiguous.
// per_expert_scale: [E] f32|bf16 contiguous, or undefined (scale 1).
// out_experts: [T, top_k] i32 contiguous; out_weights: [T, top_k] f32 contiguous; slot 0
// holds the most probable expert. Limits: 1 <= E <= 512, 1 <= top_k <= min(E, 32).
// A row whose logits are all NaN gets NaN weights.
struct MoeRouteArgs {
  Tensor logits, per_expert_scale, out_experts, out_weights;
  int top_k = 0;
};
Status check_moe_route(const MoeRouteArgs& args);
void moe_route(const MoeRouteArgs& args, void* stream);

// out[t] = sum_j weights[t, j] * down_e(gelu_tanh(gate_e x[t]) * up_e x[t]), e = experts[t, j],
// summed in slot order j = 0..k-1 in f32, then rounded once to out's dtype. The GeGLU output
// is rounded to bf16 before the down projection (the activation dtype of the model).
// x: [T, H] bf16, row stride free, every row 16-byte aligned.
// experts: [T, k] i32 contiguous; an id outside [0, E) contributes nothing (its slot adds 0).
// weights: [T, k] f32 contiguous.
// gate_up: [E, 2I, H] bf16 contiguous (rows 0..I-1 gate, I..2I-1 up); down: [E, H, I] bf16
// contiguous; both 16-byte aligned.
// out: [T, H] f32|bf16, row stride free; written, not accumulated.
// workspace: device memory of at least moe_workspace_bytes(T, H, I, E, k) bytes, 16-byte
// aligned, any dtype (only its bytes count), disjoint from everything else.
// Limits: H, I multiples of 8; 1 <= E <= 1024; 1 <= k <= 32. T may be 0 (nothing runs;
// tensors with no elements and a workspace of 0 bytes may be undefined).
struct MoeExpertsArgs {
  Tensor out, x, experts, weights, gate_up, down, workspace;
};
// Bytes of scratch moe_experts needs; 0 when T == 0. SIZE_MAX if the size overflows.
size_t moe_workspace_bytes(int64_t T, int64_t H, int64_t I, int64_t E, int top_k);
Status check_moe_experts(const MoeExpertsArgs& args);
void moe_experts(const MoeExpertsArgs& args, void* stream);
// Whether moe_experts with these (valid) arguments takes the decode path (two weight
// streams; the same contract, the f32 sums in another order). For tests and benchmarks.
bool moe_experts_uses_gemv(const MoeExpertsArgs& args);

// ---------------------------------------------------------------------------------------
// Internal: the parameter blocks and launch functions shared by moe.cpp (validation,
// workspace layout) and moe.cu (kernels). Not for callers outside kernels/cuda.
namespace moe_internal {

inline constexpr int kMaxRouteExperts = 512;
inline constexpr int kMaxPlanExperts = 1024;
inline constexpr int kMaxTopK = 32;

struct RouteParams {
  const void* logits = nullptr;  // [T, E], row stride logits_stride elements
  const void* scale = nullptr;   // [E] or null
  int32_t* out_experts = nullptr;
  float* out_weights = nullptr;
  int64_t logits_stride = 0;
  int64_t num_tokens = 0;
  ElemType logits_type = ElemType::kF32;
  ElemType scale_type = ElemType::kF32;
  int32_t num_experts = 0;
  int32_t top_k = 0;
};
void launch_moe_route(const RouteParams& p, void* stream);

// A run of up to `rows_per_tile` consecutive permuted rows that all belong to one expert.
struct MoeTile {
  int32_t expert;
  int32_t row_begin;
  int32_t num_rows;
  int32_t pad;
};

// Up to this many rows (T * k), the gate/up kernel builds the plan itself (one warp per
// CTA) and no plan kernel runs.
inline constexpr int kMaxFusedPlanRows = 32;

struct ExpertsParams {
  // Inputs.
  const uint16_t* x = nullptr;        // [T, H] bf16 bits, row stride x_stride elements
  const int32_t* experts = nullptr;   // [T * k]
  const float* weights = nullptr;     // [T * k]
  const uint16_t* gate_up = nullptr;  // [E, 2I, H]
  const uint16_t* down = nullptr;     // [E, H, I]
  // Output.
  void* out = nullptr;  // [T, H], row stride out_stride elements
  // Workspace regions (see moe.cpp's layout).
  MoeTile* tiles = nullptr;        // [max_tiles]
  int32_t* num_tiles = nullptr;    // [1]
  int32_t* row_token = nullptr;    // [R]: token of each permuted row
  int32_t* flat_to_row = nullptr;  // [R]: permuted row of slot t * k + j, or -1
  uint16_t* act = nullptr;         // [R, I] bf16 bits: GeGLU output, permuted order
  float* y = nullptr;              // [R, H]: expert outputs, permuted order
  int64_t x_stride = 0;
  int64_t out_stride = 0;
  int64_t num_tokens = 0;     // T
  int32_t hidden = 0;         // H
  int32_t intermediate = 0;   // I
  int32_t num_experts = 0;    // E
  int32_t top_k = 0;          // k
  int32_t rows_per_tile = 0;  // BM: 16, 32 or 64 (chosen by the launcher from T, E, k)
  int32_t max_tiles = 0;      // grid bound: floor(R / BM) + min(E, R)
  ElemType out_type = ElemType::kF32;
  bool out_vectorized = false;  // out rows 16-byte aligned
  bool fuse_plan = false;       // set by launch_moe_experts: R <= kMaxFusedPlanRows
};
void launch_moe_experts(const ExpertsParams& p, void* stream);

// Decode sizes (T * k <= kGemvMaxRows, k <= kGemvMaxTopK) run as two weight streams instead
// (moe_gemv.cu): gate/up with GeGLU into act in slot order, then down with the weighted sum.
// Uses only the act region of the workspace.
inline constexpr int kGemvMaxRows = 16;
inline constexpr int kGemvMaxTopK = 8;
void launch_moe_experts_gemv(const ExpertsParams& p, void* stream);

// Rows per tile for a problem: a tile should hold about the rows an active expert gets.
int rows_per_tile_for(int64_t num_rows, int64_t num_experts);

}  // namespace moe_internal
}  // namespace sluice::kernels::cuda
