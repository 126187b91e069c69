#include "kernels/cuda/random_fill.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/counter_rng.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/pdl.cuh"

// .cu files include no fmt-based header (common/check.h): nvcc cannot compile fmt in the
// header-only form the GPU build uses. Violations here are caller bugs: print and abort.
namespace sluice::kernels::cuda {
namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "sluice: fill_uniform: %s\n", what);
    std::abort();
  }
}

template <typename T>
__device__ T from_f32(float v);
template <>
__device__ float from_f32<float>(float v) { return v; }
template <>
__device__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

template <typename T>
__global__ void fill_uniform_kernel(T* out, int64_t n, uint64_t seed, float lo, float hi) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    out[i] = from_f32<T>(counter_uniform(seed, static_cast<uint64_t>(i), lo, hi));
  }
}

}  // namespace

void fill_uniform(const Tensor& t, uint64_t seed, float lo, float hi, void* stream) {
  require(t.device == Device::kCuda, "tensor is not on the GPU");
  require(t.is_contiguous(), "tensor is not contiguous");
  const int64_t n = t.numel();
  if (n == 0) return;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65536));
  switch (t.dtype) {
    case DType::kF32:
      launch_plain(fill_uniform_kernel<float>, dim3(blocks), dim3(threads), 0, stream,
                   t.ptr<float>(), n, seed, lo, hi);
      break;
    case DType::kBF16:
      launch_plain(fill_uniform_kernel<__nv_bfloat16>, dim3(blocks), dim3(threads), 0, stream,
                   t.ptr<__nv_bfloat16>(), n, seed, lo, hi);
      break;
    case DType::kF16:
      launch_plain(fill_uniform_kernel<__half>, dim3(blocks), dim3(threads), 0, stream,
                   t.ptr<__half>(), n, seed, lo, hi);
      break;
    default:
      require(false, "dtype must be f32, bf16 or f16");
  }
}

}  // namespace sluice::kernels::cuda
