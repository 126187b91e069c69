#pragma once
// The per-ISA leaf kernels of the quantized matmul (quant_matmul.h): quant_scalar.cpp,
// quant_avx2.cpp and quant_avx512.cpp each export one or two tables. The same ODR rule as
// isa_kernels.h applies: the SIMD units include only this header and <immintrin.h>, keep
// everything else in an anonymous namespace, and export nothing but these tables.
//
// Formulation (shared by every ISA, so they agree up to f32 summation order):
//  - Activations are quantized per row in blocks of 32 (quantize_q8_rows in quant_matmul.h):
//      aq[k] = round_half_even(x[k] / ad[b]) in [-127, 127],  ad[b] = max|x in block b| / 127,
//      as16[g] = ad[g/2] * sum of aq over the 16 elements of group g.
//  - A weight row is decoded block by block (in L1, never to f32) into unsigned codes q
//    (signed for Q8_0), one float factor per 32 elements (per 16 for Q6_K) and, for the
//    types with a zero point or min, one float offset per 16 elements, such that
//      w[k] = f(k) * q[k] - o(k / 16)  where the types define f and o exactly as their
//    reference dequantizer (engine/weights/dequant.cpp) rounds them.
//  - Then dot(w, x) ~= sum_b ad[b] * sum_{k in b} f(k) * (q[k] * aq[k])  -  sum_g o[g] * as16[g],
//    the inner sums exact in int32.

#include <cstdint>

#include "kernels/cpu/isa_kernels.h"  // IsaKernels: the dense kernels of the same ISA

namespace sluice::kernels::cpu {

// ggml block types, laid out byte for byte as in GGUF files. Elements per block:
// 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) or 256 (Q4_K, Q5_K, Q6_K).
enum class QuantType : int { kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0, kQ4_K, kQ5_K, kQ6_K };

// Weight rows the kernels decode and apply together (the `work` buffer holds this many).
inline constexpr int kQuantTileRows = 4;

struct QuantKernels {
  const char* name;

  // For n in [n_begin, n_end), m in [0, M):
  //   out[m*ldo + n] = dot(row n of w, activation row m)   (formulation above)
  // w row n starts at w + n*row_bytes and holds K/block_elems blocks of `type`. The
  // activation rows are aq + m*K, ad + m*(K/32), as16 + m*(K/16). K is a multiple of the
  // type's block size. `work` holds quant_work_bytes(K) bytes (any alignment), private to
  // the calling thread.
  void (*gemm)(QuantType type, const uint8_t* w, int64_t row_bytes, int64_t K, const int8_t* aq,
               const float* ad, const float* as16, int64_t M, int64_t n_begin, int64_t n_end,
               float* out, int64_t ldo, void* work);

  // Rows [n_begin, n_end) of w dequantized to f32: out[(n - n_begin)*K + k] = f(k)*q[k] - o,
  // equal to engine/weights/dequant.h's values up to f32 rounding of that one expression.
  // For large M, where converting a panel once and running the dense GEMM beats the
  // integer dot products. `work` as for gemm.
  void (*dequantize_rows)(QuantType type, const uint8_t* w, int64_t row_bytes, int64_t K,
                          int64_t n_begin, int64_t n_end, float* out, void* work);

  // The dense kernels of the same ISA (for that large-M path).
  const IsaKernels* dense;
};

extern const QuantKernels kQuantScalarKernels;
extern const QuantKernels kQuantAvx2Kernels;
extern const QuantKernels kQuantAvx512Kernels;      // AVX-512BW, no VNNI
extern const QuantKernels kQuantAvx512VnniKernels;  // plus AVX512_VNNI (vpdpbusd)

}  // namespace sluice::kernels::cpu
