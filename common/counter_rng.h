#pragma once
// A counter-based random number: value i of stream `seed` is a pure function of (seed, i),
// computed the same way on the host and on a GPU (the header compiles under nvcc as
// __host__ __device__). Synthetic weights for GPU parity tests and benchmarks come from it,
// so the CPU and the GPU build identical models from one seed without moving a file.

#include <cstdint>

#if defined(__CUDACC__)
#define SLUICE_HD __host__ __device__ __forceinline__
#else
#define SLUICE_HD inline
#endif

namespace sluice {

// SplitMix64's finaliser over (seed, index): 64 well-mixed bits.
SLUICE_HD uint64_t counter_hash(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [lo, hi): 24 random bits scaled in f32 (exactly the same float on both sides).
SLUICE_HD float counter_uniform(uint64_t seed, uint64_t index, float lo, float hi) {
  const float u = static_cast<float>(counter_hash(seed, index) >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * u;
}

}  // namespace sluice

#undef SLUICE_HD
