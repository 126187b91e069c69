#pragma once
// Gemma's attention prologue in one launch: the steps between the fused QKV projection and
// paged attention, which the models would otherwise run as up to seven small kernels (the
// q and k norms, two RoPEs, the V-norm and the cache write) at every layer of every step.
// Includers need no CUDA header (tensors are kernels::Tensor views of device memory,
// `stream` is a cudaStream_t as void*).
//
// Per token t:
//   q[t, h]            <- rope(rms_norm(q[t, h]; q_norm))                (in place)
//   k_cache[slot(t), j] <- rope(rms_norm(k[t, j]; k_norm))
//   v_cache[slot(t), j] <- v_norm ? rms_norm(v[t, j]; no weight) : v[t, j]
// with rms_norm and rope as the standalone ops define them (cuda_ops.h: weights in the form
// one_plus_weight says, RoPE angles in the CPU backend's f32 arithmetic), except that each
// result is rounded once, from f32, to its destination's dtype (the chain of ops rounds q
// and k between the norm and the rotation). k and v are read only; a slot of -1 skips the
// token's K/V. Without k (a layer that reads another layer's cache) only q is prepared.
// Gemma 4's K=V layers pass the raw K projection as v too (v = k), with v_norm.

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/kernel_params.h"
#include "kernels/cuda/paged_attention.h"  // CacheWriteParams
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

struct QkvPrepareArgs {
  Tensor q;                 // [T, nq, d] f32|bf16, rewritten in place
  Tensor k, v;              // [T, nkv, d] f32|bf16, or both undefined (q only)
  Tensor q_norm, k_norm;    // [d] f32|bf16 contiguous, or undefined (no weight)
  RopeArgs rope;            // positions [T] i32 (device) and the angles; rope.x is unused
  Tensor k_cache, v_cache;  // [num_slots, nkv, d] f32|bf16 as cache_write (with k only)
  Tensor slots;             // [T] i32, device, each in [0, num_slots) or -1 (with k only)
  float eps = 1e-6f;
  bool one_plus_weight = false;
  bool v_norm = false;
};

// d <= kMaxPrepareHeadDim (a warp stages one head row in shared memory).
inline constexpr int kMaxPrepareHeadDim = 1024;
// Head rows (q, k, v) per CTA: one per warp.
inline constexpr int kQkvPrepareHeadsPerCta = 8;

Status check_qkv_prepare(const QkvPrepareArgs& args);
void qkv_prepare(const QkvPrepareArgs& args, void* stream);

// ---- Internal to kernels/cuda: the parameter block of the kernel (qkv_prepare.cu). ----

struct QkvPrepareParams {
  RopeParams q;         // q in place: pointer, strides, type, T, nq; and the RoPE angles
  CacheWriteParams kv;  // k, v, the caches and slots (kv.num_kv_heads == 0: q only)
  const void* q_norm = nullptr;
  const void* k_norm = nullptr;
  ElemType q_norm_type = ElemType::kF32, k_norm_type = ElemType::kF32;
  NormWeight q_norm_form = NormWeight::kNone, k_norm_form = NormWeight::kNone;
  bool v_norm = false;
  int32_t head_dim = 0;
  float eps = 1e-6f;
};
void launch_qkv_prepare(const QkvPrepareParams& p, void* stream);

}  // namespace sluice::kernels::cuda
