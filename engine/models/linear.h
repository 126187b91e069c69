#pragma once
// LinearWeight: the weight of one Linear layer as the CPU model runs it: either a dense
// tensor (f32/bf16, through OpTable::matmul) or GGUF quantized blocks left as they are in the
// mapped file (kernels/cpu/quant_matmul.h: 8-bit activations, integer block dot products).
// Exactly one of the two is defined.

#include "kernels/cpu/quant_matmul.h"
#include "kernels/ops.h"

namespace sluice::models {

struct LinearWeight {
  kernels::Tensor dense;
  kernels::cpu::QuantMatrix quant;

  int64_t rows() const { return quant.defined() ? quant.rows : dense.dim(0); }
};

// out [M, N] = a [M, K] * w^T.
inline void linear(const kernels::OpTable& ops, const kernels::Tensor& out,
                   const kernels::Tensor& a, const LinearWeight& w) {
  if (w.quant.defined()) {
    kernels::cpu::quant_matmul(out, a, w.quant);
  } else {
    ops.matmul({out, a, w.dense});
  }
}

}  // namespace sluice::models
