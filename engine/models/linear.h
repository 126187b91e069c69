#pragma once
// LinearWeight: the weight of one Linear layer as the CPU model runs it: either a dense
// tensor (f32/bf16, through OpTable::matmul, or bf16 through the AVX512_BF16 dot product of
// kernels/cpu/bf16_matmul.h) or GGUF quantized blocks left as they are in the mapped file
// (kernels/cpu/quant_matmul.h: 8-bit activations, integer block dot products). Exactly one
// of dense and quant is defined.

#include <initializer_list>
#include <span>
#include <utility>

#include "kernels/cpu/bf16_matmul.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/ops.h"

namespace sluice::models {

struct LinearWeight {
  kernels::Tensor dense;
  kernels::cpu::QuantMatrix quant;
  // dense is bf16 and runs through the AVX512_BF16 dot product (bf16 activations) rather
  // than OpTable::matmul (f32 activations): the CPU fast path.
  bool bf16_dot = false;

  int64_t rows() const { return quant.defined() ? quant.rows : dense.dim(0); }
};

// out [M, N] = a [M, K] * w^T.
inline void linear(const kernels::OpTable& ops, const kernels::Tensor& out,
                   const kernels::Tensor& a, const LinearWeight& w) {
  if (w.quant.defined()) {
    kernels::cpu::quant_matmul(out, a, w.quant);
  } else if (w.bf16_dot) {
    kernels::cpu::bf16_matmul(out, a, w.dense);
  } else {
    ops.matmul({out, a, w.dense});
  }
}

// Several Linear layers over the same input `a` (q, k and v; gate and up): with every
// weight quantized, one quant_matmul_multi (the activations quantized once, one pass over
// the threads); otherwise one linear() each. The outputs are the same either way.
inline void linear_group(const kernels::OpTable& ops, const kernels::Tensor& a,
                         std::initializer_list<std::pair<kernels::Tensor, const LinearWeight*>> outs) {
  constexpr size_t kMax = kernels::cpu::kMaxQuantOutputs;
  bool all_quant = outs.size() <= kMax;
  for (const auto& [out, w] : outs) all_quant = all_quant && w->quant.defined();
  if (all_quant) {
    kernels::cpu::QuantMatmulOut q[kMax];
    size_t n = 0;
    for (const auto& [out, w] : outs) q[n++] = {out, &w->quant};
    kernels::cpu::quant_matmul_multi(a, std::span(q, n));
    return;
  }
  for (const auto& [out, w] : outs) linear(ops, out, a, *w);
}

}  // namespace sluice::models
