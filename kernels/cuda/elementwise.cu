// Elementwise and row kernels (contracts in kernels/cuda/elementwise.h). All of them are
// memory-bound: each reads its inputs once and writes its output once, so the work is to
// keep enough wide, coalesced accesses in flight.
//
// The elementwise pass: grid (row, column tile). A thread owns G groups of W consecutive
// columns of its tile; group g of thread t starts at column tile_begin + (g * threads + t) * W,
// so each warp access covers one contiguous run. When every tensor is bf16, W = 8 and G = 1
// (one 16-byte access per tensor); otherwise W = 4 and G = 4 (16 bytes per f32 access, 8 per
// bf16 one), and a thread issues all of its loads before its first store: the output may
// alias an input, so the compiler could not hoist them itself. Unaligned rows, and a row's
// last partial group, go element by element. Measured on an H200 (copy = 4.25 TB/s):
// all-bf16 add at 95% of copy with one 16-byte group per thread, 71% with two, 53% with four
// 8-byte groups; bf16 -> f32 convert at 41% with one 8-column group per thread (two f32
// halves 32 bytes apart) and 80% with four 4-column groups.
// Arithmetic is f32; every output is rounded once (nearest even).
//
// NOTE: each output element is computed from the input elements of the same (row, column)
// only, by the thread that stores it, so an output that is exactly an input view (in place)
// needs no synchronisation.
//
// Argmax: one block per row; each thread keeps (value, index) of its best element, then the
// block reduces with shuffles. Ties and NaN are settled by one total rule (`beats`), so the
// answer does not depend on which thread saw which element.

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/kernel_params.h"
#include "kernels/cuda/pdl.cuh"

namespace sluice::kernels::cuda {
namespace {

constexpr int kMaxThreads = 256;
// Columns per thread per tile: one group of 8 when every tensor is bf16, else 4 groups of 4.
__host__ __device__ constexpr int cols_per_thread(int width) { return width == 8 ? 8 : 16; }
constexpr int kArgmaxThreads = 1024;
constexpr int kArgmaxUnroll = 8;  // float4 loads in flight per argmax thread

__device__ __forceinline__ char* row_ptr(const RowView& v, int64_t outer, int64_t inner) {
  const int64_t offset = outer * v.outer_stride + inner * v.inner_stride;
  return static_cast<char*>(v.data) + offset * (v.type == ElemType::kBF16 ? 2 : 4);
}

// Loads the group of kWidth columns at `col` of `row` (element type t) into v. kVector: one
// 16-byte access (two for f32 at kWidth 8) when the whole group lies inside the row (the
// caller guarantees alignment); otherwise element by element. Columns at or past `dim` are
// left untouched, and so is everything when row is null.
template <int kWidth, bool kVector>
__device__ __forceinline__ void load_group(const char* row, ElemType t, int64_t col, int64_t dim,
                                           float (&v)[kWidth]) {
  if (row == nullptr) return;
  if (kVector && col + kWidth <= dim) {
    if constexpr (kWidth == 8) {
      load_n<8>(row, t, col, v);
    } else if (t == ElemType::kBF16) {
      const uint2 u = *reinterpret_cast<const uint2*>(row + col * 2);
      v[0] = bf16_bits_to_f32(u.x & 0xffffu);
      v[1] = __uint_as_float(u.x & 0xffff0000u);
      v[2] = bf16_bits_to_f32(u.y & 0xffffu);
      v[3] = __uint_as_float(u.y & 0xffff0000u);
    } else {
      const float4 f = *reinterpret_cast<const float4*>(row + col * 4);
      v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < kWidth; ++k) {
    if (col + k < dim) {
      v[k] = t == ElemType::kBF16
                 ? bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[col + k])
                 : reinterpret_cast<const float*>(row)[col + k];
    }
  }
}

// Rounds v to type t and stores the columns of the group at `col` that lie inside the row.
template <int kWidth, bool kVector>
__device__ __forceinline__ void store_group(char* row, ElemType t, int64_t col, int64_t dim,
                                            float (&v)[kWidth]) {
  if (kVector && col + kWidth <= dim) {
    if constexpr (kWidth == 8) {
      store_n<8>(row, t, col, v);
    } else if (t == ElemType::kBF16) {
      const uint2 u = {f32_to_bf16_bits(v[0]) | (f32_to_bf16_bits(v[1]) << 16),
                       f32_to_bf16_bits(v[2]) | (f32_to_bf16_bits(v[3]) << 16)};
      *reinterpret_cast<uint2*>(row + col * 2) = u;
    } else {
      *reinterpret_cast<float4*>(row + col * 4) = make_float4(v[0], v[1], v[2], v[3]);
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < kWidth; ++k) {
    if (col + k < dim) {
      if (t == ElemType::kBF16) {
        reinterpret_cast<uint16_t*>(row)[col + k] = static_cast<uint16_t>(f32_to_bf16_bits(v[k]));
      } else {
        reinterpret_cast<float*>(row)[col + k] = v[k];
      }
    }
  }
}

// One tile: cols_per_thread(kWidth) columns per thread, in groups of kWidth.
template <ElementwiseOp kOp, int kWidth, bool kVector>
__device__ __forceinline__ void elementwise_tile(const ElementwiseParams& p, char* out,
                                                 const char* a, const char* b) {
  constexpr bool kBinary = kOp == ElementwiseOp::kAdd || kOp == ElementwiseOp::kGeglu;
  constexpr int kCols = cols_per_thread(kWidth);
  constexpr int kGroups = kCols / kWidth;
  const int64_t dim = p.dim;
  const int64_t threads = blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * threads * kCols +
                        static_cast<int64_t>(threadIdx.x) * kWidth;
  float x[kGroups][kWidth] = {};
  float y[kBinary ? kGroups : 1][kWidth] = {};
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    const int64_t col = first + g * threads * kWidth;
    load_group<kWidth, kVector>(a, p.a.type, col, dim, x[g]);
    if constexpr (kBinary) load_group<kWidth, kVector>(b, p.b.type, col, dim, y[g]);
  }
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    if (a != nullptr) {  // null: a gathered row out of range, whose output is zeros
#pragma unroll
      for (int k = 0; k < kWidth; ++k) {
        if constexpr (kOp == ElementwiseOp::kAdd) {
          x[g][k] += y[g][k];
        } else if constexpr (kOp == ElementwiseOp::kGeglu) {
          x[g][k] = gelu_tanh_f32(x[g][k]) * y[g][k];
        } else if constexpr (kOp == ElementwiseOp::kSoftcap) {
          x[g][k] = p.alpha * tanhf(x[g][k] / p.alpha);
        } else {
          x[g][k] *= p.alpha;
        }
      }
    }
    store_group<kWidth, kVector>(out, p.out.type, first + g * threads * kWidth, dim, x[g]);
  }
}

template <ElementwiseOp kOp, int kWidth>
__global__ void __launch_bounds__(kMaxThreads)
    elementwise_kernel(const __grid_constant__ ElementwiseParams p) {
  start_after_producers();
  constexpr bool kBinary = kOp == ElementwiseOp::kAdd || kOp == ElementwiseOp::kGeglu;
  const int64_t row = blockIdx.x;
  const int64_t outer = row / p.inner_rows;
  const int64_t inner = row - outer * p.inner_rows;
  char* out = row_ptr(p.out, outer, inner);
  const char* a = nullptr;
  if (p.row_ids != nullptr) {
    const int64_t id = p.row_ids[row];
    if (id >= 0 && id < p.num_a_rows) a = row_ptr(p.a, id, 0);
  } else {
    a = row_ptr(p.a, outer, inner);
  }
  const char* b = kBinary ? row_ptr(p.b, outer, inner) : nullptr;
  if (p.vectorized) {
    elementwise_tile<kOp, kWidth, true>(p, out, a, b);
  } else {
    elementwise_tile<kOp, kWidth, false>(p, out, a, b);
  }
}

template <ElementwiseOp kOp>
void launch_op(const ElementwiseParams& p, dim3 grid, int threads, cudaStream_t s) {
  if (p.bf16_only) {
    launch_pdl(elementwise_kernel<kOp, 8>, grid, dim3(threads), 0, s, p);
  } else {
    launch_pdl(elementwise_kernel<kOp, 4>, grid, dim3(threads), 0, s, p);
  }
}

// (v, i) beats (best, best_i): larger, or equal with a lower index. NaN beats nothing (both
// comparisons are false), so a thread's best is never NaN; the start (-inf, INT32_MAX) loses
// to any real -inf, and survives only when a row holds nothing but NaN.
__device__ __forceinline__ bool beats(float v, int32_t i, float best, int32_t best_i) {
  return v > best || (v == best && i < best_i);
}

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(const __grid_constant__ ArgmaxParams p) {
  start_after_producers();
  __shared__ float warp_best[32];
  __shared__ int32_t warp_best_i[32];
  const float* row = p.logits + static_cast<int64_t>(blockIdx.x) * p.row_stride;
  float best = -INFINITY;
  int32_t best_i = INT32_MAX;
  auto consider = [&](float v, int32_t i) {
    if (beats(v, i, best, best_i)) {
      best = v;
      best_i = i;
    }
  };

  const int32_t threads = static_cast<int32_t>(blockDim.x);
  int32_t scalar_begin = 0;
  if (p.vectorized) {
    // kArgmaxUnroll independent 16-byte loads in flight per thread before the first compare
    // (with one block per row, a single row must keep one SM's memory pipe busy).
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const int32_t num_vec = p.dim / 4;
    int32_t c = threadIdx.x;
    for (; c + (kArgmaxUnroll - 1) * threads < num_vec; c += kArgmaxUnroll * threads) {
      float4 q[kArgmaxUnroll];
#pragma unroll
      for (int k = 0; k < kArgmaxUnroll; ++k) q[k] = __ldg(row4 + c + k * threads);
#pragma unroll
      for (int k = 0; k < kArgmaxUnroll; ++k) {
        const int32_t base = (c + k * threads) * 4;
        consider(q[k].x, base);
        consider(q[k].y, base + 1);
        consider(q[k].z, base + 2);
        consider(q[k].w, base + 3);
      }
    }
    for (; c < num_vec; c += threads) {
      const float4 q = __ldg(row4 + c);
      consider(q.x, 4 * c);
      consider(q.y, 4 * c + 1);
      consider(q.z, 4 * c + 2);
      consider(q.w, 4 * c + 3);
    }
    scalar_begin = num_vec * 4;
  }
  for (int32_t i = scalar_begin + threadIdx.x; i < p.dim; i += threads) consider(__ldg(row + i), i);

#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, offset);
    const int32_t i = __shfl_xor_sync(0xffffffffu, best_i, offset);
    consider(v, i);
  }
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_best_i[warp] = best_i;
  }
  __syncthreads();
  if (warp != 0) return;
  const int num_warps = (threads + 31) >> 5;
  best = lane < num_warps ? warp_best[lane] : -INFINITY;
  best_i = lane < num_warps ? warp_best_i[lane] : INT32_MAX;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, offset);
    const int32_t i = __shfl_xor_sync(0xffffffffu, best_i, offset);
    consider(v, i);
  }
  if (lane == 0) p.out[blockIdx.x] = best_i == INT32_MAX ? 0 : best_i;
}

// A whole number of warps covering `work` items, within [32, max].
int threads_for(int64_t work, int max_threads) {
  const int64_t threads = (work + 31) / 32 * 32;
  return threads < 32 ? 32 : (threads > max_threads ? max_threads : static_cast<int>(threads));
}

}  // namespace

void launch_elementwise(const ElementwiseParams& p, void* stream) {
  if (p.rows == 0 || p.dim == 0) return;
  // bf16_only: kMaxThreads-thread tiles, the last one partial, as in the layout measured at
  // 95% of copy for an all-bf16 add on an H200 (with the row split evenly into 224-thread
  // tiles instead it measured 84%). Otherwise as few tiles as kMaxThreads allows, each as
  // narrow as covers the row evenly (5376 f32 columns: 2 tiles of 192 threads rather than
  // 4096 + a mostly idle 1280), measured at 93% for an f32 scale.
  const int64_t cols = cols_per_thread(p.bf16_only ? 8 : 4);
  const int64_t per_thread = (static_cast<int64_t>(p.dim) + cols - 1) / cols;
  int threads = threads_for(per_thread, kMaxThreads);
  int64_t tiles = (per_thread + threads - 1) / threads;
  if (!p.bf16_only) threads = threads_for((per_thread + tiles - 1) / tiles, kMaxThreads);
  const dim3 grid(static_cast<unsigned>(p.rows), static_cast<unsigned>(tiles));
  const auto s = static_cast<cudaStream_t>(stream);
  switch (p.op) {
    case ElementwiseOp::kScaleCopy:
      launch_op<ElementwiseOp::kScaleCopy>(p, grid, threads, s);
      break;
    case ElementwiseOp::kSoftcap:
      launch_op<ElementwiseOp::kSoftcap>(p, grid, threads, s);
      break;
    case ElementwiseOp::kAdd:
      launch_op<ElementwiseOp::kAdd>(p, grid, threads, s);
      break;
    case ElementwiseOp::kGeglu:
      launch_op<ElementwiseOp::kGeglu>(p, grid, threads, s);
      break;
  }
  SLUICE_CUDA_CHECK(cudaGetLastError());
}

void launch_argmax(const ArgmaxParams& p, void* stream) {
  if (p.rows == 0) return;
  const int64_t work = p.vectorized ? (static_cast<int64_t>(p.dim) + 3) / 4 : p.dim;
  const int threads = threads_for(work, kArgmaxThreads);
  launch_pdl(argmax_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(threads), 0, stream, p);
}

}  // namespace sluice::kernels::cuda
