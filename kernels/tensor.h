#pragma once
// Tensor: a non-owning view (pointer, dtype, shape, strides, device). Owners are the
// weight store (mapped files or dequantized buffers), the model's activation arena and the
// KV cache. Shapes are row-major: shape[ndim-1] is the innermost, contiguous dimension.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice::kernels {

enum class DType : uint8_t { kF32, kF16, kBF16, kI32 };
enum class Device : uint8_t { kCpu, kCuda };

inline constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
  }
  return 0;
}
const char* dtype_name(DType t);

inline constexpr int kMaxDims = 4;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCpu;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};  // in elements

  // A contiguous row-major view of `data` with the given shape.
  static Tensor make(void* data, DType dtype, std::initializer_list<int64_t> shape,
                     Device device = Device::kCpu);

  bool defined() const { return data != nullptr; }
  int64_t numel() const;
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  bool is_contiguous() const;
  // Bytes spanned by a contiguous tensor.
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // Rows [begin, end) of the first dimension, as a view.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // The same memory with a new contiguous shape (numel must agree; must be contiguous).
  Tensor view(std::initializer_list<int64_t> shape) const;

  std::string shape_string() const;  // "[4, 256]"
};

}  // namespace sluice::kernels
