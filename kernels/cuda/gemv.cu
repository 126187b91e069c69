// Decode-shaped matmuls (a few rows of activations against a weight of up to 2^26 elements)
// without cuBLASLt: at one to eight rows a matmul is a stream of the weight's bytes, and on
// the H200 cuBLASLt streamed Gemma 4 26B-A4B's 12-24 MB weights at 45-56% of the copy
// bandwidth. Contract and dispatch: matmul.cpp (gemv_applies) and kernels/cuda/gemv.h.
//
// A warp owns kRows weight rows (consecutive output columns; in GeGLU mode the gate and up
// rows of one output column) and walks K in 16-byte chunks
// (8 bf16), lanes interleaved so each load instruction of the warp covers 512 contiguous
// bytes of a weight row; kUnroll chunks per row are in flight per lane. Activation chunks
// come through the read-only cache (every warp of the grid reads the same few rows). Each
// lane keeps f32 partial sums for every (activation row, weight row) pair; a warp shuffle
// reduces them at the end, and lane 0 writes the outputs, each rounded once.

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/pdl.cuh"

namespace sluice::kernels::cuda {
namespace {

constexpr int kGemvWarps = 4;
constexpr int kGemvThreads = kGemvWarps * 32;
constexpr int kRows = 2;    // weight rows per warp
constexpr int kUnroll = 4;  // chunks per weight row in flight per lane

template <int MMAX>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const __grid_constant__ GemvParams p) {
  start_after_producers();
  const int lane = threadIdx.x % 32;
  const int64_t warp = grid_warp(kGemvWarps);
  const bool geglu = p.geglu_rows > 0;
  // Weight row r of this warp: n0 + r, or (GeGLU) n0 + r * geglu_rows.
  const int64_t n0 = geglu ? warp : warp * kRows;
  if (n0 >= (geglu ? p.geglu_rows : p.N)) return;
  const int64_t row_step = geglu ? p.geglu_rows : 1;
  const int chunks = p.K / 8;
  const uint4* w_rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    int64_t n = n0 + r * row_step;
    n = n < p.N ? n : p.N - 1;  // a clamped row is read, never stored
    w_rows[r] = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p.w) + n * p.K);
  }
  float acc[MMAX][kRows];
#pragma unroll
  for (int m = 0; m < MMAX; ++m) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = 0.0f;
  }

  for (int c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
    uint4 wv[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + 32 * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) wv[u][r] = c < chunks ? __ldcs(w_rows[r] + c) : uint4{};
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + 32 * u;
      if (c >= chunks) break;
#pragma unroll
      for (int m = 0; m < MMAX; ++m) {
        if (m >= p.M) break;
        const uint4 x = __ldg(
            reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p.a) + m * p.lda) + c);
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[m][r] = dot8_bf16(wv[u][r], x, acc[m][r]);
      }
    }
  }

#pragma unroll
  for (int m = 0; m < MMAX; ++m) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = warp_sum(acc[m][r]);
  }
  if (lane != 0) return;
  const int elem = p.out_type == ElemType::kBF16 ? 2 : 4;
  if (geglu) {
    static_assert(kRows == 2, "GeGLU mode: the gate row and the up row");
#pragma unroll
    for (int m = 0; m < MMAX; ++m) {
      if (m >= p.M) break;
      float v[1] = {gelu_tanh_f32(acc[m][0]) * acc[m][1]};
      store_n<1>(static_cast<char*>(p.out) + m * p.ldc * elem, p.out_type, n0, v);
    }
    return;
  }
#pragma unroll
  for (int m = 0; m < MMAX; ++m) {
    if (m >= p.M) break;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (n0 + r >= p.N) break;
      char* row = static_cast<char*>(p.out) + m * p.ldc * elem;
      float v[1] = {acc[m][r]};
      if (p.accumulate) {
        float old[1];
        load_n<1>(row, p.out_type, n0 + r, old);
        v[0] += old[0];
      }
      store_n<1>(row, p.out_type, n0 + r, v);
    }
  }
}

template <int MMAX>
void launch(const GemvParams& p, cudaStream_t stream) {
  const int64_t warps = p.geglu_rows > 0 ? p.geglu_rows : (p.N + kRows - 1) / kRows;
  const auto blocks = static_cast<unsigned>((warps + kGemvWarps - 1) / kGemvWarps);
  launch_pdl(gemv_kernel<MMAX>, dim3(blocks), dim3(kGemvThreads), 0, stream, p);
}

}  // namespace

void launch_gemv(const GemvParams& p, void* stream) {
  if (p.M == 0 || p.N == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.M == 1) {
    launch<1>(p, s);
  } else if (p.M == 2) {
    launch<2>(p, s);
  } else if (p.M <= 4) {
    launch<4>(p, s);
  } else {
    launch<kGemvMaxRows>(p, s);
  }
}

}  // namespace sluice::kernels::cuda
