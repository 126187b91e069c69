#include "kernels/tensor.h"

#include <fmt/format.h>

#include "common/check.h"

namespace sluice::kernels {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kI32: return "i32";
  }
  return "?";
}

Tensor Tensor::make(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device) {
  SLUICE_CHECK(shape.size() >= 1 && shape.size() <= kMaxDims, "bad rank {}", shape.size());
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.strides[d] = stride;
    stride *= t.shape[d];
  }
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t stride = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != stride) return false;
    stride *= shape[d];
  }
  return true;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  SLUICE_CHECK(ndim >= 1 && begin >= 0 && begin <= end && end <= shape[0], "slice [{}, {}) of {}",
               begin, end, shape_string());
  Tensor t = *this;
  t.shape[0] = end - begin;
  t.data = static_cast<uint8_t*>(data) + begin * strides[0] * static_cast<int64_t>(dtype_size(dtype));
  return t;
}

Tensor Tensor::view(std::initializer_list<int64_t> new_shape) const {
  SLUICE_CHECK(is_contiguous(), "view of a non-contiguous tensor {}", shape_string());
  Tensor t = make(data, dtype, new_shape, device);
  SLUICE_CHECK(t.numel() == numel(), "view {} of {}", t.shape_string(), shape_string());
  return t;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace sluice::kernels
