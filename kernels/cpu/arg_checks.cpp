#include "kernels/cpu/arg_checks.h"

#include "common/check.h"

namespace sluice::kernels::cpu {

void check_tensor(const Tensor& t, const char* op, const char* name, DType dtype, int ndim) {
  SLUICE_CHECK(t.defined(), "{}: {} is undefined", op, name);
  SLUICE_CHECK(t.device == Device::kCpu, "{}: {} is not in CPU memory", op, name);
  SLUICE_CHECK(t.dtype == dtype, "{}: {} has dtype {} but must be {}", op, name,
               dtype_name(t.dtype), dtype_name(dtype));
  SLUICE_CHECK(t.ndim == ndim, "{}: {} has shape {} but must have rank {}", op, name,
               t.shape_string(), ndim);
  SLUICE_CHECK(t.shape[ndim - 1] <= 1 || t.strides[ndim - 1] == 1,
               "{}: {} has inner stride {} but its last dimension must be contiguous", op, name,
               t.strides[ndim - 1]);
  for (int i = 0; i < ndim; ++i) {
    SLUICE_CHECK(t.shape[i] >= 0 && t.strides[i] >= 0,
                 "{}: {} has shape {} with stride {} in dim {}", op, name, t.shape_string(),
                 t.strides[i], i);
  }
}

void check_contiguous(const Tensor& t, const char* op, const char* name) {
  SLUICE_CHECK(t.is_contiguous(), "{}: {} (shape {}) must be contiguous", op, name,
               t.shape_string());
}

void check_dim(const Tensor& t, int i, int64_t size, const char* op, const char* name) {
  SLUICE_CHECK(t.dim(i) == size, "{}: {} has shape {} but dim {} must be {}", op, name,
               t.shape_string(), i, size);
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* a_name,
                      const char* b_name) {
  bool same = a.ndim == b.ndim;
  for (int i = 0; same && i < a.ndim; ++i) same = a.shape[i] == b.shape[i];
  SLUICE_CHECK(same, "{}: {} has shape {} but {} has shape {}", op, a_name, a.shape_string(),
               b_name, b.shape_string());
}

}  // namespace sluice::kernels::cpu
