// RMS norm kernels (Gemma's three weight forms), optionally fused with the residual add and
// with the next norm. One block per row; the row is read from global memory once per pass
// (the second read hits L1/L2: a 5376-wide bf16 row is 10.5 KB). All arithmetic is f32.
//
//   kNorm:        out = x * inv_rms(x) * w   (and out2 = x * inv_rms(x) * w_out when out2 is set)
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
#include "kernels/cuda/pdl.cuh"

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
  start_after_producers();
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
  char* out2 = p.mode == NormMode::kNorm && p.out2.data != nullptr ? row_start(p.out2, outer, inner)
                                                                   : nullptr;
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float x[N], w[N];
    load_n<N>(in, p.in.type, col, x);
    if (out2 != nullptr) {  // before out is stored: out may alias in
      float y[N], w2[N];
      load_weight<N>(p.out_weight, p.out_weight_type, p.out_weight_form, col, w2);
#pragma unroll
      for (int k = 0; k < N; ++k) y[k] = x[k] * inv_rms * w2[k];
      store_n<N>(out2, p.out2.type, col, y);
    }
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

// residual_tail: up to four reductions over the row, each followed by a barrier (block_sum);
// b is recomputed from in and in2 where it is needed rather than stored.
__global__ void __launch_bounds__(kMaxThreads)
    residual_tail_kernel(const __grid_constant__ ResidualTailParams p) {
  start_after_producers();
  __shared__ float scratch[33];
  const int64_t row = blockIdx.x;
  const char* in = row_start(p.in, row, 0);
  const bool two = p.in2.data != nullptr;
  const char* in2 = two ? row_start(p.in2, row, 0) : nullptr;
  char* residual = row_start(p.residual, row, 0);
  const float inv_dim = 1.0f / static_cast<float>(p.dim);

  // Pass 1: the input norms (of in and in2, or of b = in).
  float ss_in = 0.0f, ss_in2 = 0.0f;
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float x[N], y[N];
    load_n<N>(in, p.in.type, col, x);
    if (two) load_n<N>(in2, p.in2.type, col, y);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      ss_in = fmaf(x[k], x[k], ss_in);
      if (two) ss_in2 = fmaf(y[k], y[k], ss_in2);
    }
  });
  const float inv_in = rsqrtf(block_sum(ss_in, scratch) * inv_dim + p.eps);
  const float inv_in2 = two ? rsqrtf(block_sum(ss_in2, scratch) * inv_dim + p.eps) : 0.0f;

  // b at this thread's chunk, in f32.
  auto branch = [&](auto width, int col, auto& b) {  // b: float[N]
    constexpr int N = decltype(width)::value;
    load_n<N>(in, p.in.type, col, b);
    if (!two) return;
    float y[N], w[N], w2[N];
    load_n<N>(in2, p.in2.type, col, y);
    load_weight<N>(p.in_weight.data, p.in_weight.type, p.in_weight.form, col, w);
    load_weight<N>(p.in2_weight.data, p.in2_weight.type, p.in2_weight.form, col, w2);
#pragma unroll
    for (int k = 0; k < N; ++k) b[k] = b[k] * inv_in * w[k] + y[k] * inv_in2 * w2[k];
  };

  // Pass 2 (two branches only): the norm of b.
  float inv_b = inv_in;
  if (two) {
    float ss_b = 0.0f;
    for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
      constexpr int N = decltype(width)::value;
      float b[N];
      branch(width, col, b);
#pragma unroll
      for (int k = 0; k < N; ++k) ss_b = fmaf(b[k], b[k], ss_b);
    });
    inv_b = rsqrtf(block_sum(ss_b, scratch) * inv_dim + p.eps);
  }

  // Pass 3: residual = (residual + norm(b; weight)) * scale, and its sum of squares as stored.
  float ss_r = 0.0f;
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float b[N], w[N], r[N];
    branch(width, col, b);
    load_weight<N>(p.weight.data, p.weight.type, p.weight.form, col, w);
    load_n<N>(residual, p.residual.type, col, r);
#pragma unroll
    for (int k = 0; k < N; ++k) r[k] = (r[k] + b[k] * inv_b * w[k]) * p.scale;
    store_n<N>(residual, p.residual.type, col, r);  // r now holds the stored values
#pragma unroll
    for (int k = 0; k < N; ++k) ss_r = fmaf(r[k], r[k], ss_r);
  });
  if (p.out.data == nullptr) return;

  // Pass 4: out = norm(residual; out_weight), from the residual this thread just stored.
  const float inv_r = rsqrtf(block_sum(ss_r, scratch) * inv_dim + p.eps);
  char* out = row_start(p.out, row, 0);
  for_each_chunk(p.dim, p.vectorized, [&](auto width, int col) {
    constexpr int N = decltype(width)::value;
    float r[N], w[N];
    load_n<N>(residual, p.residual.type, col, r);
    load_weight<N>(p.out_weight.data, p.out_weight.type, p.out_weight.form, col, w);
#pragma unroll
    for (int k = 0; k < N; ++k) r[k] = r[k] * inv_r * w[k];
    store_n<N>(out, p.out.type, col, r);
  });
}

// One thread per 8 columns, a whole number of warps (block_sum needs full warps).
int threads_for_dim(int dim) {
  const int64_t chunks = (static_cast<int64_t>(dim) + 7) / 8;
  const auto threads = static_cast<int>(((chunks + 31) / 32) * 32);
  return threads < 32 ? 32 : (threads > kMaxThreads ? kMaxThreads : threads);
}

}  // namespace

void launch_rms_norm(const RmsNormParams& p, void* stream) {
  if (p.rows == 0) return;
  launch_pdl(rms_norm_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(threads_for_dim(p.dim)), 0,
             stream, p);
}

void launch_residual_tail(const ResidualTailParams& p, void* stream) {
  if (p.rows == 0) return;
  launch_pdl(residual_tail_kernel, dim3(static_cast<unsigned>(p.rows)),
             dim3(threads_for_dim(p.dim)), 0, stream, p);
}

}  // namespace sluice::kernels::cuda
