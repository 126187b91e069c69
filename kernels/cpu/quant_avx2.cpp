// The AVX2 quantized matmul kernels (quant_kernels.h, quant_simd.inc). Compiled with -mavx2
// -mfma -mf16c; only called when isa.h says the CPU has them. Includes nothing but
// <immintrin.h> and quant_kernels.h (see the ODR note in isa_kernels.h).

#include <immintrin.h>

#include "kernels/cpu/quant_kernels.h"

namespace sluice::kernels::cpu {
namespace quant_avx2 {
namespace {

#define SLUICE_QUANT_VNNI 0
#define SLUICE_QUANT_ZMM 0
#include "kernels/cpu/quant_simd.inc"
#undef SLUICE_QUANT_ZMM
#undef SLUICE_QUANT_VNNI

}  // namespace
}  // namespace quant_avx2

const QuantKernels kQuantAvx2Kernels = {"avx2", quant_avx2::gemm<false>,
                                         quant_avx2::dequantize_rows, &kAvx2Kernels};

}  // namespace sluice::kernels::cpu
