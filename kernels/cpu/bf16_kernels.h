#pragma once
// The per-ISA leaf kernels of the bf16 dot-product matmul (bf16_matmul.h): bf16_scalar.cpp
// (the reference formulation, for tests and CPUs without the instruction) and
// bf16_avx512.cpp (AVX512_BF16's vdpbf16ps). The ODR rule of isa_kernels.h applies: the SIMD
// unit includes only this header and <immintrin.h> and exports nothing but its table.
//
// Formulation (both ISAs, so they agree up to f32 summation order):
//  - activation rows are rounded to bf16 once per call (nearest even; subnormals flush to
//    zero, as vcvtne2ps2bf16 does), into rows of `lda` >= round_up(K, 32) elements whose tail
//    is zero;
//  - out = sum_k a16[k] * w[k], each product of two bf16 values exact in f32, the sum in f32.

#include <cstdint>

namespace sluice::kernels::cpu {

// Elements per activation row are padded to a multiple of this (one 512-bit vector of bf16).
inline constexpr int64_t kBf16RowAlign = 32;

struct Bf16Kernels {
  const char* name;

  // Rounds M rows of K floats (row m at x + m*ldx) to bf16 bits at out + m*ldo, and zeroes
  // out[m*ldo + k] for k in [K, round_up(K, kBf16RowAlign)).
  void (*round_rows)(const float* x, int64_t ldx, int64_t M, int64_t K, uint16_t* out,
                     int64_t ldo);

  // For n in [n_begin, n_end), m in [0, M):
  //   out[m*ldo + n] = sum_{k<K} bf16(a[m*lda + k]) * bf16(w[n*K + k])
  // a: rows from round_rows (lda a multiple of kBf16RowAlign, zero tail); w: [N, K] bf16 bits,
  // any K >= 1 (the last partial vector of a row is read with a mask, never past the row).
  void (*gemm)(const uint16_t* a, int64_t lda, int64_t M, const uint16_t* w, int64_t K,
               int64_t n_begin, int64_t n_end, float* out, int64_t ldo);
};

extern const Bf16Kernels kBf16ScalarKernels;
extern const Bf16Kernels kBf16Avx512Kernels;  // needs AVX-512 and AVX512_BF16

}  // namespace sluice::kernels::cpu
