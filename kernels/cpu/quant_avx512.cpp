// The AVX-512 quantized matmul kernels (quant_kernels.h, quant_simd.inc): 256-bit integer
// vectors with EVEX encodings, and a variant whose dot products use AVX512_VNNI vpdpbusd
// (one instruction instead of maddubs + madd). Compiled with the AVX-512 flags of
// kernels/CMakeLists.txt; only called when isa.h says the CPU has them.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/cpu/quant_kernels.h"

namespace sluice::kernels::cpu {
namespace quant_avx512 {
namespace {

#define SLUICE_QUANT_VNNI 1
#define SLUICE_QUANT_ZMM 1
#include "kernels/cpu/quant_simd.inc"
#undef SLUICE_QUANT_ZMM
#undef SLUICE_QUANT_VNNI

}  // namespace
}  // namespace quant_avx512

const QuantKernels kQuantAvx512Kernels = {"avx512", quant_avx512::gemm<false>,
                                           quant_avx512::dequantize_rows, &kAvx512Kernels};
const QuantKernels kQuantAvx512VnniKernels = {"avx512-vnni", quant_avx512::gemm<true>,
                                               quant_avx512::dequantize_rows, &kAvx512Kernels};

}  // namespace sluice::kernels::cpu
