// Rotate-half RoPE, in place, f32 or bf16 activations. One block per (token, group of
// heads): the block first computes cos/sin of its token's num_pairs angles into shared
// memory, then every head of the group reuses them.
// Angles: rope_sincos (kernels/cuda/rope.cuh), the CPU backend's f32 arithmetic.

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/kernel_params.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/rope.cuh"

namespace sluice::kernels::cuda {
namespace {

constexpr int kRopeThreads = 256;
// Rotated pairs one block handles at most (pairs of all its heads): enough work per block
// to amortise the angle computation, small enough to fill the chip for short batches.
constexpr int kRopePairsPerBlock = 2048;

__global__ void __launch_bounds__(kRopeThreads) rope_kernel(const __grid_constant__ RopeParams p) {
  start_after_producers();
  __shared__ float cos_s[kMaxRopePairs];
  __shared__ float sin_s[kMaxRopePairs];
  const int64_t t = blockIdx.x;
  const float position = static_cast<float>(p.positions[t]);
  for (int i = threadIdx.x; i < p.num_pairs; i += blockDim.x) {
    float s, c;
    rope_sincos(position, i, p.theta, p.freq_dim, p.freq_scale, &s, &c);
    sin_s[i] = s;
    cos_s[i] = c;
  }
  __syncthreads();

  const int h_begin = blockIdx.y * p.heads_per_block;
  const int h_end = min(p.num_heads, h_begin + p.heads_per_block);
  const int count = (h_end - h_begin) * p.num_pairs;
  const int elem_bytes = p.type == ElemType::kBF16 ? 2 : 4;
  for (int idx = threadIdx.x; idx < count; idx += blockDim.x) {
    const int h = h_begin + idx / p.num_pairs;
    const int i = idx - (h - h_begin) * p.num_pairs;
    char* row = static_cast<char*>(p.x) + (t * p.token_stride + h * p.head_stride) * elem_bytes;
    float a[1], b[1];
    load_n<1>(row, p.type, i, a);
    load_n<1>(row, p.type, i + p.pair_offset, b);
    const float c = cos_s[i];
    const float s = sin_s[i];
    float ya[1] = {a[0] * c - b[0] * s};
    float yb[1] = {b[0] * c + a[0] * s};
    store_n<1>(row, p.type, i, ya);
    store_n<1>(row, p.type, i + p.pair_offset, yb);
  }
}

}  // namespace

void launch_rope(const RopeParams& params, void* stream) {
  if (params.num_tokens == 0 || params.num_heads == 0 || params.num_pairs == 0) return;
  RopeParams p = params;
  const int by_work = kRopePairsPerBlock / p.num_pairs;
  p.heads_per_block = by_work < 1 ? 1 : (by_work > p.num_heads ? p.num_heads : by_work);
  const unsigned head_groups =
      static_cast<unsigned>((p.num_heads + p.heads_per_block - 1) / p.heads_per_block);
  const dim3 grid(static_cast<unsigned>(p.num_tokens), head_groups);
  launch_pdl(rope_kernel, grid, dim3(kRopeThreads), 0, stream, p);
}

}  // namespace sluice::kernels::cuda
