#pragma once
// The CUDA backend's host API: launchers for the kernels of kernels/cuda/*.cu. Includers
// need no CUDA header: tensors are kernels::Tensor views of device memory (device kCuda) and
// `stream` is a cudaStream_t passed as void* (nullptr: the legacy default stream).
//
// Every launcher validates its arguments first and aborts (SLUICE_CHECK) on a violation: a
// bad shape reaching a kernel is a bug in the caller, not bad input. check_*() returns the
// same verdict as a Status, whose message names the op, the tensor, its value and what was
// expected. Launches are asynchronous on `stream`; a failed launch aborts through
// SLUICE_CUDA_CHECK. No launcher allocates or synchronises.
//
// Dtypes are wider than the CPU contracts of kernels/ops.h: each activation tensor is f32
// or bf16 on its own (e.g. an f32 residual stream normalised into a bf16 GEMM input), and so
// is each weight. Arithmetic is f32; each output element is rounded once (nearest even).
// Row layouts: [R, D] or [A, B, D], last dimension contiguous, the row strides free (so a
// per-head view of a fused QKV output is accepted without a copy).

#include "common/status.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

// out = in * rsqrt(mean(in^2) + eps) * w per row (RmsNormArgs in kernels/ops.h), with
// w = 1 + weight (one_plus_weight), weight, or 1 (weight undefined).
// in, out: same shape, [R, D] or [A, B, D], f32|bf16; out may alias in exactly (same data,
// dtype and strides), but no other overlap. weight: [D] f32|bf16 contiguous, or undefined.
Status check_rms_norm(const RmsNormArgs& args);
void rms_norm(const RmsNormArgs& args, void* stream);

// Two norms of the same rows in one pass (Gemma 4's MoE router input and experts' input):
//   out = rms_norm(in; weight), out2 = rms_norm(in; weight2)
// Each output as rms_norm's (bit-identical to two rms_norm calls); out and out2 overlap
// nothing but may have their own dtypes. out may alias in exactly; out2 may not.
struct RmsNorm2Args {
  Tensor out, out2, in, weight, weight2;
  float eps = 1e-6f;
  bool one_plus_weight = false;
};
Status check_rms_norm2(const RmsNorm2Args& args);
void rms_norm2(const RmsNorm2Args& args, void* stream);

// residual += rms_norm(in; weight) (AddRmsNormArgs in kernels/ops.h): Gemma's post-norm and
// residual add in one pass. residual, in: same shape as in rms_norm, f32|bf16, disjoint;
// weight as in rms_norm (undefined allowed).
Status check_add_rms_norm(const AddRmsNormArgs& args);
void add_rms_norm(const AddRmsNormArgs& args, void* stream);

// Gemma's sandwich step in one pass over each row:
//   residual += rms_norm(in; weight);  out = rms_norm(residual; out_weight)
// e.g. the post-attention norm, the residual add and the pre-feed-forward norm of one layer.
// Both norms use one_plus_weight; either weight may be undefined (no weight). The second norm
// reads the residual as stored (rounded to its dtype), so the result equals add_rms_norm
// followed by rms_norm. out: same shape as residual, f32|bf16; it may alias `in` exactly;
// residual overlaps nothing.
struct FusedAddRmsNormArgs {
  Tensor residual, in, weight, out, out_weight;
  float eps = 1e-6f;
  bool one_plus_weight = false;
};
Status check_fused_add_rms_norm(const FusedAddRmsNormArgs& args);
void fused_add_rms_norm(const FusedAddRmsNormArgs& args, void* stream);

// The end of a Gemma layer's branch in one pass over each row (a Gemma 4 MoE layer runs
// five kernels here otherwise):
//   b = norm(in; in_weight) + norm(in2; in2_weight)    with in2 (dense MLP + experts)
//       in                                             without
//   residual = (residual + norm(b; weight)) * scale     (Gemma 4's layer_scalar; else 1)
//   out = norm(residual; out_weight)                   with out (the next layer's input norm)
// Every norm uses one_plus_weight; any weight may be undefined (no weight). b stays in f32;
// residual is rounded once to its dtype and out is the norm of the residual as stored.
// residual, in, in2, out: [R, D] f32|bf16, the same shape, row strides free; in_weight and
// in2_weight only with in2; residual and out overlap nothing else.
struct ResidualTailArgs {
  Tensor residual, in, weight;
  Tensor in2, in_weight, in2_weight;
  Tensor out, out_weight;
  float scale = 1.0f;
  float eps = 1e-6f;
  bool one_plus_weight = false;
};
Status check_residual_tail(const ResidualTailArgs& args);
void residual_tail(const ResidualTailArgs& args, void* stream);

// Rotate-half RoPE in place (RopeArgs in kernels/ops.h): x [T, H, head_dim] f32|bf16 (token
// and head strides free, last dimension contiguous); positions [T] i32 in device memory
// (values are not checked: the caller validates positions). For i < num_pairs, dims
// (i, i + pair_offset) rotate by positions[t] * freq_scale * theta^(-2i / freq_dim); the
// other dims are left untouched. Angles use the CPU backend's (Hugging Face's) f32
// arithmetic: f32(1 / theta^(2i / freq_dim)) * freq_scale * f32(position), then f32 cos/sin.
// Limits: 0 <= num_pairs <= 512 (0: nothing to do), num_pairs <= pair_offset,
// num_pairs + pair_offset <= head_dim, freq_dim >= 1, theta > 0, H <= 65535.
Status check_rope(const RopeArgs& args);
void rope(const RopeArgs& args, void* stream);

}  // namespace sluice::kernels::cuda
