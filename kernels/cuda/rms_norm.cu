// RMS norm kernels (Gemma's three weight forms), optionally fused with the residual add and
// with the next norm. One block per row; the row is read from global memory once per pass
// (the second read hits L1/L2: a 5376-wide bf16 row is 10.5 KB). All arithmetic is f32.
//
//   kNorm:        out = x * inv_rms(x) * w
//   kAdd:         residual += x * inv_rms(x) * w
//   kAddThenNorm: residual += x * inv_rms(x) * w;  out = r * inv_rms(r) * w_out, where r is
//                 the residual as stored (rounded to its type), as if unfused.
//
// NOTE: every pass walks the row with the same chunk-to-thread map (for_each_chunk), so a
// thread re-reads only elements it wrote itself; `in` may alias `out` exactly, and the
// residual written in pass 2 is read back in pass 3 without a barrier of its own.

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/kernel_params.h"

namespace sluice::kernels::cuda {
namespace {

constexpr int kMaxThreads = 1024;

// Calls fn(Width<8>{}, col) for this thread's 8-element chunks when `vectorized`, then
// fn(Width<1>{}, col) for its share of the remaining columns. Consecutive threads take
// consecutive chunks, so each warp access is coalesced.
template <typename Fn>
__device__ __forceinline__ void for_each_chunk(int dim, bool vectorized, Fn&& fn) {
  const int num_chunks = vectorized ? dim / 8 : 0;
  for (int c = threadIdx.x; c < num_chunks; c += blockDim.x) fn(Width<8>{}, c * 8);
  for (int col = num_chunks * 8 + threadIdx.x; col < dim; col += blockDim.x) fn(Width<1>{}, col);
}

__device__ __forceinline__ char* row_start(const RowView& v, int64_t outer, int64_t inner) {
  const int64_t offset = outer * v.outer_stride + inner * v.inner_stride;
  return static_cast<char*>(v.data) + offset * (v.type == ElemType::kBF16 ? 2 : 4);
}

__global__ void __launch_bounds__(kMaxThreads)
    rms_norm_kernel(const __grid_constant__ RmsNormParams p) {
  __shared__ float scratch[33];
  const int64_t row = blockIdx.x;
  const int64_t outer = row / p.inner_rows;
  const int64_t inner = row - outer * p.inner_rows;
  const char* in = row_start(p.in, outer, inner);
  const float inv_dim = 1.0f / static_cast<float>(p.dim);

  // Pass 1: sum of squares of the input row.
  float sum_sq = 0.0f;
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float x[N];
    load_n<N>(in, p.in.type, col, x);
#pragma unroll
    for (int k = 0; k < N; ++k) sum_sq = fmaf(x[k], x[k], sum_sq);
  });
  const float inv_rms = rsqrtf(block_sum(sum_sq, scratch) * inv_dim + p.eps);

  // Pass 2: normalise; write out, or add into the residual.
  char* out = p.mode == NormMode::kAdd ? nullptr : row_start(p.out, outer, inner);
  char* residual = p.mode == NormMode::kNorm ? nullptr : row_start(p.residual, outer, inner);
  float sum_sq_residual = 0.0f;
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float x[N], w[N];
    load_n<N>(in, p.in.type, col, x);
    load_weight<N>(p.weight, p.weight_type, p.weight_form, col, w);
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = x[k] * inv_rms * w[k];
    if (p.mode == NormMode::kNorm) {
      store_n<N>(out, p.out.type, col, x);
      return;
    }
    float r[N];
    load_n<N>(residual, p.residual.type, col, r);
#pragma unroll
    for (int k = 0; k < N; ++k) r[k] += x[k];
    store_n<N>(residual, p.residual.type, col, r);  // r now holds the stored values
#pragma unroll
    for (int k = 0; k < N; ++k) sum_sq_residual = fmaf(r[k], r[k], sum_sq_residual);
  });
  if (p.mode != NormMode::kAddThenNorm) return;

  // Pass 3: out = norm(residual; out_weight), from the residual this thread just stored.
  const float inv_rms_residual = rsqrtf(block_sum(sum_sq_residual, scratch) * inv_dim + p.eps);
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float r[N], w[N];
    load_n<N>(residual, p.residual.type, col, r);
    load_weight<N>(p.out_weight, p.out_weight_type, p.out_weight_form, col, w);
#pragma unroll
    for (int k = 0; k < N; ++k) r[k] = r[k] * inv_rms_residual * w[k];
    store_n<N>(out, p.out.type, col, r);
  });
}

}  // namespace

void launch_rms_norm(const RmsNormParams& p, void* stream) {
  if (p.rows == 0) return;
  // One thread per 8 columns, a whole number of warps (block_sum needs full warps).
  const int64_t chunks = (static_cast<int64_t>(p.dim) + 7) / 8;
  int threads = static_cast<int>(((chunks + 31) / 32) * 32);
  threads = threads < 32 ? 32 : (threads > kMaxThreads ? kMaxThreads : threads);
  rms_norm_kernel<<<static_cast<unsigned>(p.rows), threads, 0, static_cast<cudaStream_t>(stream)>>>(
      p);
  SLUICE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sluice::kernels::cuda
