#pragma once
// Fills a device tensor with counter_uniform(seed, i, lo, hi) (common/counter_rng.h), element
// i of the row-major order, rounded once to the tensor's dtype (f32, bf16 or f16). The host
// computes the same numbers with counter_uniform, so a synthetic model built from a seed is
// the same model on the CPU and on the GPU. `t` must be contiguous on the device.

#include <cstdint>

#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

void fill_uniform(const Tensor& t, uint64_t seed, float lo, float hi, void* stream);

}  // namespace sluice::kernels::cuda
