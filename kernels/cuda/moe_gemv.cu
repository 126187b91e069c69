// moe_experts at decode (kernels/cuda/moe.h; chosen in moe.cpp for T * k <= kGemvMaxRows,
// k <= kGemvMaxTopK): at one or two tokens the grouped GEMMs have one row per expert tile,
// and the plan, the tiles and the combine cost about 13 us a layer that does not scale with
// the weights (H200, moe-notes.md). Here the same result comes from two weight streams, the
// way gemv.cu streams a dense weight:
//   gate_up: act[r, i] = bf16(gelu_tanh(gate_e[i] . x[t]) * (up_e[i] . x[t])), r = t k + j,
//            e = experts[r]; one warp per (r, i), lanes over H in 16-byte chunks;
//   down:    out[t, h] = sum_j w[t, j] * (down_e[h] . act[t k + j]), j in slot order; one warp
//            per (t, two columns h), every slot's partial sums in registers so all the loads
//            of a warp are in flight at once, reduced after the loop.
// Rows are in slot order (no permutation); a slot whose expert is outside [0, E) adds
// nothing. Numerics as the grouped path: f32 sums, act rounded to bf16, out rounded once
// (only the order of the f32 sums differs).

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/pdl.cuh"

namespace sluice::kernels::cuda::moe_internal {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kDownCols = 2;  // output columns per warp in the down kernel

__device__ __forceinline__ const uint4* row16(const uint16_t* base, int64_t row, int64_t len) {
  return reinterpret_cast<const uint4*>(base + row * len);
}

__global__ void __launch_bounds__(kThreads)
    gate_up_gemv_kernel(const __grid_constant__ ExpertsParams p) {
  start_after_producers();
  const int lane = threadIdx.x % 32;
  const int64_t warp = grid_warp(kWarps);
  const int I = p.intermediate, H = p.hidden, k = p.top_k;
  const int64_t R = p.num_tokens * k;
  if (warp >= R * I) return;
  const int64_t r = warp / I;
  const int i = static_cast<int>(warp % I);
  const int e = p.experts[r];
  uint16_t* act = p.act + r * I + i;
  if (e < 0 || e >= p.num_experts) {
    if (lane == 0) *act = 0;  // never read: the down kernel skips the slot
    return;
  }
  const uint4* gate = row16(p.gate_up, static_cast<int64_t>(e) * 2 * I + i, H);
  const uint4* up = row16(p.gate_up, static_cast<int64_t>(e) * 2 * I + I + i, H);
  const uint4* x = row16(p.x, (r / k), p.x_stride > 0 ? p.x_stride : H);
  float g = 0.0f, u = 0.0f;
  const int chunks = H / 8;
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) {
    const uint4 gv = __ldcs(gate + c), uv = __ldcs(up + c), xv = __ldg(x + c);
    g = dot8_bf16(gv, xv, g);
    u = dot8_bf16(uv, xv, u);
  }
  g = warp_sum(g);
  u = warp_sum(u);
  if (lane == 0) *act = static_cast<uint16_t>(f32_to_bf16_bits(gelu_tanh_f32(g) * u));
}

__global__ void __launch_bounds__(kThreads)
    down_gemv_kernel(const __grid_constant__ ExpertsParams p) {
  start_after_producers();
  const int lane = threadIdx.x % 32;
  const int64_t warp = grid_warp(kWarps);
  const int I = p.intermediate, H = p.hidden, k = p.top_k;
  const int64_t col_pairs = (H + kDownCols - 1) / kDownCols;
  if (warp >= p.num_tokens * col_pairs) return;
  const int64_t t = warp / col_pairs;
  const int h0 = static_cast<int>(warp % col_pairs) * kDownCols;
  const int chunks = I / 8;
  float part[kGemvMaxTopK][kDownCols];
#pragma unroll
  for (int j = 0; j < kGemvMaxTopK; ++j) {
#pragma unroll
    for (int c = 0; c < kDownCols; ++c) part[j][c] = 0.0f;
    if (j >= k) continue;
    const int e = p.experts[t * k + j];
    if (e < 0 || e >= p.num_experts) continue;
    const uint4* a = row16(p.act, t * k + j, I);
    const uint4* w[kDownCols];
#pragma unroll
    for (int c = 0; c < kDownCols; ++c) {
      const int h = h0 + c < H ? h0 + c : H - 1;  // a clamped row is read, never stored
      w[c] = row16(p.down, static_cast<int64_t>(e) * H + h, I);
    }
    for (int q = lane; q < chunks; q += 32) {
      const uint4 av = __ldg(a + q);
#pragma unroll
      for (int c = 0; c < kDownCols; ++c) part[j][c] = dot8_bf16(__ldcs(w[c] + q), av, part[j][c]);
    }
  }
  float acc[kDownCols] = {};
#pragma unroll
  for (int j = 0; j < kGemvMaxTopK; ++j) {
    if (j >= k) break;
    const int e = p.experts[t * k + j];
    if (e < 0 || e >= p.num_experts) continue;
    const float wj = p.weights[t * k + j];
#pragma unroll
    for (int c = 0; c < kDownCols; ++c) acc[c] = fmaf(wj, warp_sum(part[j][c]), acc[c]);
  }
  if (lane != 0) return;
  const int64_t elem = p.out_type == ElemType::kBF16 ? 2 : 4;
  char* out_row = static_cast<char*>(p.out) + t * p.out_stride * elem;
#pragma unroll
  for (int c = 0; c < kDownCols; ++c) {
    if (h0 + c >= H) break;
    float v[1] = {acc[c]};
    store_n<1>(out_row, p.out_type, h0 + c, v);
  }
}

unsigned blocks_for(int64_t warps) { return static_cast<unsigned>((warps + kWarps - 1) / kWarps); }

}  // namespace

void launch_moe_experts_gemv(const ExpertsParams& p, void* stream) {
  if (p.num_tokens == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t R = p.num_tokens * p.top_k;
  launch_pdl(gate_up_gemv_kernel, dim3(blocks_for(R * p.intermediate)), dim3(kThreads), 0, s, p);
  const int64_t col_pairs = (p.hidden + kDownCols - 1) / kDownCols;
  launch_pdl(down_gemv_kernel, dim3(blocks_for(p.num_tokens * col_pairs)), dim3(kThreads), 0, s, p);
}

}  // namespace sluice::kernels::cuda::moe_internal
