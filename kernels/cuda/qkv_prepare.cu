// The attention prologue kernel (contract: kernels/cuda/qkv_prepare.h). One CTA of eight
// warps per (token, group of eight head rows); a warp owns one head row: q heads first, then
// k heads, then v heads. The CTA computes its token's RoPE sin/cos once into shared memory;
// each warp stages its row in f32 in shared memory (so the rotation can pair any two
// columns), normalises it, rotates it, and stores it once, rounded to the destination type.

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/qkv_prepare.h"
#include "kernels/cuda/rope.cuh"

namespace sluice::kernels::cuda {
namespace {

constexpr int kPrepareWarps = kQkvPrepareHeadsPerCta;
constexpr int kPrepareThreads = kPrepareWarps * 32;

__device__ __forceinline__ int elem_bytes(ElemType t) { return t == ElemType::kBF16 ? 2 : 4; }

__global__ void __launch_bounds__(kPrepareThreads)
    qkv_prepare_kernel(const __grid_constant__ QkvPrepareParams p) {
  start_after_producers();
  __shared__ float sin_s[kMaxRopePairs];
  __shared__ float cos_s[kMaxRopePairs];
  __shared__ float row_s[kPrepareWarps][kMaxPrepareHeadDim];
  const int t = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const RopeParams& rp = p.q;
  const CacheWriteParams& kv = p.kv;
  const float position = static_cast<float>(rp.positions[t]);
  for (int i = threadIdx.x; i < rp.num_pairs; i += kPrepareThreads) {
    rope_sincos(position, i, rp.theta, rp.freq_dim, rp.freq_scale, &sin_s[i], &cos_s[i]);
  }
  __syncthreads();  // the last barrier: warps without a row may leave below

  const int nq = rp.num_heads, nkv = kv.num_kv_heads, d = p.head_dim;
  const int h = blockIdx.y * kPrepareWarps + warp;
  if (h >= nq + 2 * nkv) return;
  const void* src;
  ElemType src_type;
  void* dst;
  ElemType dst_type;
  const void* weight = nullptr;
  ElemType weight_type = ElemType::kF32;
  NormWeight form = NormWeight::kNone;
  bool norm = true, rotate = true;
  if (h < nq) {
    src_type = dst_type = rp.type;
    dst = static_cast<char*>(rp.x) +
          (t * rp.token_stride + static_cast<int64_t>(h) * rp.head_stride) * elem_bytes(rp.type);
    src = dst;
    weight = p.q_norm;
    weight_type = p.q_norm_type;
    form = p.q_norm_form;
  } else {
    const int slot = kv.slots[t];
    if (slot < 0) return;
    const bool is_k = h < nq + nkv;
    const int j = is_k ? h - nq : h - nq - nkv;
    src_type = is_k ? kv.k_type : kv.v_type;
    src = static_cast<const char*>(is_k ? kv.k : kv.v) +
          (t * (is_k ? kv.k_token_stride : kv.v_token_stride) +
           static_cast<int64_t>(j) * (is_k ? kv.k_head_stride : kv.v_head_stride)) *
              elem_bytes(src_type);
    dst_type = kv.cache_type;
    dst = static_cast<char*>(is_k ? kv.k_cache : kv.v_cache) +
          (static_cast<int64_t>(slot) * nkv + j) * d * elem_bytes(dst_type);
    if (is_k) {
      weight = p.k_norm;
      weight_type = p.k_norm_type;
      form = p.k_norm_form;
    } else {
      norm = p.v_norm;
      rotate = false;
    }
  }

  float* row = row_s[warp];
  float sum_sq = 0.0f;
  for (int e = lane; e < d; e += 32) {
    float x[1];
    load_n<1>(src, src_type, e, x);
    row[e] = x[0];
    sum_sq = fmaf(x[0], x[0], sum_sq);
  }
  if (norm) {
    const float inv_rms = rsqrtf(warp_sum(sum_sq) * (1.0f / static_cast<float>(d)) + p.eps);
    for (int e = lane; e < d; e += 32) {
      float w[1];
      load_weight<1>(weight, weight_type, form, e, w);
      row[e] = row[e] * inv_rms * w[0];
    }
  }
  if (rotate) {
    __syncwarp();
    for (int i = lane; i < rp.num_pairs; i += 32) {
      const float a = row[i], b = row[i + rp.pair_offset];
      row[i] = a * cos_s[i] - b * sin_s[i];
      row[i + rp.pair_offset] = b * cos_s[i] + a * sin_s[i];
    }
    __syncwarp();
  }
  for (int e = lane; e < d; e += 32) {
    float y[1] = {row[e]};
    store_n<1>(dst, dst_type, e, y);
  }
}

}  // namespace

void launch_qkv_prepare(const QkvPrepareParams& p, void* stream) {
  const int rows = p.q.num_heads + 2 * p.kv.num_kv_heads;
  if (p.q.num_tokens == 0 || rows == 0) return;
  const dim3 grid(static_cast<unsigned>(p.q.num_tokens),
                  static_cast<unsigned>((rows + kPrepareWarps - 1) / kPrepareWarps));
  launch_pdl(qkv_prepare_kernel, grid, dim3(kPrepareThreads), 0, stream, p);
}

}  // namespace sluice::kernels::cuda
