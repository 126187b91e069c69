#pragma once
// Matmul on bf16 weights (safetensors checkpoints, GGUF BF16 tensors) with the AVX512_BF16
// dot product: the fast CPU path for bf16 models. Activations are rounded to bf16 once per
// call (8 significant bits) and every product of two bf16 values is exact in f32
// (bf16_kernels.h), so the one extra error against the f32-activation reference
// (OpTable::matmul on the same bf16 weights) is that rounding, at most 2^-8 of each |x[k]|:
//   |out - ref| <= 2^-8 * sum_k |w[k]| |x[k]|   (+ f32 summation rounding),
// which bf16_error_bound() computes for tests. Where the CPU lacks AVX512_BF16, or another ISA
// is forced (isa.h), models keep the reference path: bf16_dot_available() says which.

#include <cstdint>
#include <vector>

#include "kernels/cpu/bf16_kernels.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cpu {

// Whether the active ISA is AVX-512 and the CPU has AVX512_BF16.
bool bf16_dot_available();

// The AVX512_BF16 kernels when available, else the scalar reference kernels.
const Bf16Kernels& bf16_kernels();
// Every kernel table this CPU can run (scalar first), for tests and benchmarks.
std::vector<const Bf16Kernels*> supported_bf16_kernels();

// out[m*ldo + n] = sum_k bf16(a[m*lda + k]) * w[n*K + k] for m < M, n < N, with `kern`, on
// the process-wide thread pool (threads split the weight rows, so the matrix is read once
// per call whatever M is). w holds N rows of K bf16 values.
void bf16_matmul(const Bf16Kernels& kern, const float* a, int64_t lda, int64_t M,
                 const uint16_t* w, int64_t N, int64_t K, float* out, int64_t ldo);

// The dot product pays where the matmul is bound by reading the weights (one to a few rows);
// from this many rows on it loses to the dense f32 GEMM (measured with
// benchmarks/kernels/matmul_bench.cpp on AVX-512 BF16: 1 row 1.19x, 2 rows 1.22x, 4 rows
// 0.68x, 128 rows 0.46x; vdpbf16ps issues at half the rate of f32 FMAs there).
inline constexpr int64_t kBf16DotMaxRows = 3;

// The op form: out [M, N] f32 = a [M, K] f32 * w^T with w a contiguous [N, K] bf16 tensor:
// through bf16_kernels() for M <= kBf16DotMaxRows, else the dense matmul of the active ISA
// (f32 activations, as the reference path). a and out may have row strides larger than K
// and N.
void bf16_matmul(const Tensor& out, const Tensor& a, const Tensor& w);

// The worst-case |bf16_matmul - exact| of one output (header comment) for weight row `w_row`
// (K bf16 values) against activation row `x` (K floats).
double bf16_error_bound(const uint16_t* w_row, const float* x, int64_t K);

}  // namespace sluice::kernels::cpu
