#pragma once
// The decode-shaped matmul kernel behind matmul() and matmul_geglu() (kernels/cuda/matmul.h):
// out = beta * out + a . w^T, or the GeGLU of a fused gate/up projection, for 1 to
// kGemvMaxRows rows of bf16 activations and a bf16 weight, f32 accumulation, each output
// rounded once. Internal to kernels/cuda: matmul.cpp decides when it applies
// (gemv_applies) and fills the block.

#include <cstdint>

#include "kernels/cuda/kernel_params.h"  // ElemType

namespace sluice::kernels::cuda {

inline constexpr int kGemvMaxRows = 8;

struct GemvParams {
  const void* a = nullptr;  // [M, K] bf16, rows 16-byte aligned, row stride lda
  const void* w = nullptr;  // [N, K] bf16 contiguous, 16-byte aligned
  void* out = nullptr;      // [M, N] f32|bf16, row stride ldc
  int64_t lda = 0, ldc = 0;
  int64_t N = 0;
  int32_t M = 0;
  int32_t K = 0;  // a multiple of 8
  ElemType out_type = ElemType::kF32;
  bool accumulate = false;  // beta 1
  // > 0: GeGLU mode. w holds gate rows [0, geglu_rows) then up rows [geglu_rows, 2
  // geglu_rows) (N == 2 geglu_rows), and out [M, geglu_rows] = gelu_tanh(gate) * up.
  int64_t geglu_rows = 0;
};
void launch_gemv(const GemvParams& p, void* stream);

}  // namespace sluice::kernels::cuda
