#pragma once
// Device tensor views for the CUDA models: kernels::Tensor over device memory (Device::kCuda)
// with contiguous or explicit strides. Views own nothing.

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/tensor.h"

namespace sluice::models::cuda {

// A view of device memory with explicit strides (elements).
inline kernels::Tensor dev_view(void* data, kernels::DType dtype,
                                std::initializer_list<int64_t> shape,
                                std::initializer_list<int64_t> strides) {
  kernels::Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = kernels::Device::kCuda;
  t.ndim = static_cast<int>(shape.size());
  std::copy(shape.begin(), shape.end(), t.shape.begin());
  std::copy(strides.begin(), strides.end(), t.strides.begin());
  return t;
}

inline kernels::Tensor dev_contig(void* data, kernels::DType dtype,
                                  std::initializer_list<int64_t> shape) {
  return kernels::Tensor::make(data, dtype, shape, kernels::Device::kCuda);
}

}  // namespace sluice::models::cuda
