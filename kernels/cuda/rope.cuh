#pragma once
// The RoPE angle of pair i at a position, shared by rope.cu and qkv_prepare.cu. Include from
// .cu files only.
//
// NOTE: angles follow Hugging Face's f32 arithmetic, as the CPU backend does
// (kernels/cpu/rope.cpp): inv_freq_i = f32(1 / theta^(2i / freq_dim)) (the power in f64),
// times freq_scale in f32, angle = f32(position) * inv_freq_i in f32, then the precise f32
// sincosf (no fast-math intrinsics). So both backends round the angle the same way, which
// matters at long positions: an f32 angle near 262144 carries up to ~0.008 rad of rounding.

#include <cuda_runtime.h>

namespace sluice::kernels::cuda {

__device__ __forceinline__ void rope_sincos(float position, int i, float theta, int freq_dim,
                                            float freq_scale, float* sin_out, float* cos_out) {
  const float inv_freq =
      static_cast<float>(1.0 / pow(static_cast<double>(theta), 2.0 * i / freq_dim)) * freq_scale;
  sincosf(position * inv_freq, sin_out, cos_out);
}

}  // namespace sluice::kernels::cuda
