#pragma once
// Device helpers shared by the kernels: loads and stores of f32 / bf16 elements into f32
// registers (runtime element type, warp-uniform branch), 8-wide 16-byte vector forms, and
// block-wide sums built from warp shuffles. Include from .cu files only.

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/kernel_params.h"

namespace sluice::kernels::cuda {

// A compile-time chunk width: 8 for the 16-byte vector path, 1 for scalars.
template <int N>
struct Width {
  static constexpr int value = N;
};

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t bits16) {
  return __uint_as_float(bits16 << 16);
}

__device__ __forceinline__ uint32_t f32_to_bf16_bits(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// Loads N elements starting at element `col` of `row` (a row start of element type t).
// N == 8 needs `row + col` 16-byte aligned.
template <int N>
__device__ __forceinline__ void load_n(const void* row, ElemType t, int64_t col, float (&v)[N]) {
  if constexpr (N == 8) {
    if (t == ElemType::kBF16) {
      const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(row) + col);
      const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        v[2 * k] = bf16_bits_to_f32(words[k] & 0xffffu);
        v[2 * k + 1] = __uint_as_float(words[k] & 0xffff0000u);
      }
    } else {
      const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(row) + col);
      const float4 a = p[0];
      const float4 b = p[1];
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
      v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) {
      v[k] = t == ElemType::kBF16 ? bf16_bits_to_f32(static_cast<const uint16_t*>(row)[col + k])
                                  : static_cast<const float*>(row)[col + k];
    }
  }
}

// Rounds v in place to type t (round to nearest even for bf16) and stores it at element
// `col` of `row`. After the call v holds exactly the stored values.
template <int N>
__device__ __forceinline__ void store_n(void* row, ElemType t, int64_t col, float (&v)[N]) {
  if (t == ElemType::kBF16) {
    uint32_t bits[N];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      bits[k] = f32_to_bf16_bits(v[k]);
      v[k] = bf16_bits_to_f32(bits[k]);
    }
    if constexpr (N == 8) {
      const uint4 u = {bits[0] | (bits[1] << 16), bits[2] | (bits[3] << 16),
                       bits[4] | (bits[5] << 16), bits[6] | (bits[7] << 16)};
      *reinterpret_cast<uint4*>(static_cast<uint16_t*>(row) + col) = u;
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) {
        static_cast<uint16_t*>(row)[col + k] = static_cast<uint16_t>(bits[k]);
      }
    }
  } else {
    if constexpr (N == 8) {
      float4* p = reinterpret_cast<float4*>(static_cast<float*>(row) + col);
      p[0] = make_float4(v[0], v[1], v[2], v[3]);
      p[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) static_cast<float*>(row)[col + k] = v[k];
    }
  }
}

// N elements of a norm weight from column `col` in its form: all ones (kNone), w, or 1 + w.
template <int N>
__device__ __forceinline__ void load_weight(const void* w, ElemType t, NormWeight form, int col,
                                            float (&v)[N]) {
  if (form == NormWeight::kNone) {
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = 1.0f;
    return;
  }
  load_n<N>(w, t, col, v);
  if (form == NormWeight::kOnePlus) {
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] += 1.0f;
  }
}

// kernels::gelu_tanh (kernels/ops.cpp) in the same form: 0.5 z (1 + tanh(u)) written as
// z / (1 + exp(-2u)), which avoids the cancellation of 1 + tanh(u) for negative z. expf is
// the precise one; the quotient uses the 2-ulp __fdividef, valid while the divisor is below
// 2^126 (beyond, the true quotient is below 2^-120 |z|: signed zero, as z / inf gives).
// Both stay within a few f32 ulps of the CPU's value (< 1e-6 relative).
__device__ __forceinline__ float gelu_tanh_f32(float z) {
  const float u = 0.7978845608028654f * (z + 0.044715f * z * z * z);
  const float d = 1.0f + expf(-2.0f * u);
  return d < 0x1p126f ? __fdividef(z, d) : 0.0f * z;
}

// acc += the dot product of 8 bf16 weights and 8 activations (both packed in 16 bytes).
__device__ __forceinline__ float dot8_bf16(const uint4& w, const uint4& x, float acc) {
  const uint32_t ww[4] = {w.x, w.y, w.z, w.w};
  const uint32_t xx[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    acc = fmaf(__uint_as_float(ww[k] << 16), __uint_as_float(xx[k] << 16), acc);
    acc = fmaf(__uint_as_float(ww[k] & 0xffff0000u), __uint_as_float(xx[k] & 0xffff0000u), acc);
  }
  return acc;
}

// This thread's warp, counted over the grid (1-D grid of `warps_per_block`-warp blocks).
__device__ __forceinline__ int64_t grid_warp(int warps_per_block) {
  return static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / 32;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of `v` over the whole block, returned to every thread. Every thread of the block
// must call it (it contains barriers); `scratch` is __shared__ float[33]. It may be called
// again with the same scratch right away: the last barrier protects the broadcast slot.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < num_warps ? scratch[lane] : 0.0f;
    v = warp_sum(v);
    if (lane == 0) scratch[32] = v;
  }
  __syncthreads();
  const float total = scratch[32];
  __syncthreads();
  return total;
}

}  // namespace sluice::kernels::cuda
