// Rotate-half RoPE, in place, f32 or bf16 activations. One block per (token, group of
// heads): the block first computes cos/sin of its token's num_pairs angles into shared
// memory, then every head of the group reuses them.
//
// NOTE: angles follow Hugging Face's f32 arithmetic, as the CPU backend does
// (kernels/cpu/rope.cpp): inv_freq_i = f32(1 / theta^(2i / freq_dim)) (the power in f64),
// times freq_scale in f32, angle = f32(position) * inv_freq_i in f32, then the precise f32
// sincosf (no fast-math intrinsics). So both backends round the angle the same way, which
// matters at long positions: an f32 angle near 262144 carries up to ~0.008 rad of rounding.

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/kernel_params.h"

namespace sluice::kernels::cuda {
namespace {

constexpr int kRopeThreads = 256;
// Rotated pairs one block handles at most (pairs of all its heads): enough work per block
// to amortise the angle computation, small enough to fill the chip for short batches.
constexpr int kRopePairsPerBlock = 2048;

__global__ void __launch_bounds__(kRopeThreads) rope_kernel(const __grid_constant__ RopeParams p) {
  __shared__ float cos_s[kMaxRopePairs];
  __shared__ float sin_s[kMaxRopePairs];
  const int64_t t = blockIdx.x;
  const float position = static_cast<float>(p.positions[t]);
  for (int i = threadIdx.x; i < p.num_pairs; i += blockDim.x) {
    const float inv_freq =
        static_cast<float>(1.0 / pow(static_cast<double>(p.theta), 2.0 * i / p.freq_dim)) *
        p.freq_scale;
    float s, c;
    sincosf(position * inv_freq, &s, &c);
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
  rope_kernel<<<grid, kRopeThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  SLUICE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sluice::kernels::cuda
