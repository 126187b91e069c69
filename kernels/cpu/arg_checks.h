#pragma once
// Argument checks shared by the CPU ops. A mismatch here is a programming error in the
// caller (model code hands kernels well-formed views), so each check is a SLUICE_CHECK that
// names the op, the tensor and what was wrong, then aborts.

#include <cstdint>

#include "kernels/tensor.h"

namespace sluice::kernels::cpu {

// `t` is defined, on the CPU, of `dtype`, of rank `ndim` and has a contiguous last dimension.
void check_tensor(const Tensor& t, const char* op, const char* name, DType dtype, int ndim);

// `t` is fully contiguous (row-major, no gaps).
void check_contiguous(const Tensor& t, const char* op, const char* name);

// `t` has dim(i) == size.
void check_dim(const Tensor& t, int i, int64_t size, const char* op, const char* name);

// a and b have the same rank and shape.
void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* a_name,
                      const char* b_name);

// The f32 data of a tensor already checked as f32.
inline float* f32_data(const Tensor& t) { return static_cast<float*>(t.data); }

}  // namespace sluice::kernels::cpu
