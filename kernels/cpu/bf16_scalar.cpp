// The plain C++ bf16 dot-product kernels (bf16_kernels.h): the reference formulation the
// AVX512_BF16 unit reproduces, and the path for CPUs without that instruction.

#include <cstring>

#include "common/half.h"
#include "kernels/cpu/bf16_kernels.h"

namespace sluice::kernels::cpu {
namespace {

// bf16 bits as f32, with subnormals read as zero (vdpbf16ps's DAZ).
float bf16_daz(uint16_t h) {
  if ((h & 0x7f80u) == 0) h &= 0x8000u;
  return bf16_to_f32(h);
}

void round_rows(const float* x, int64_t ldx, int64_t M, int64_t K, uint16_t* out, int64_t ldo) {
  const int64_t padded = (K + kBf16RowAlign - 1) / kBf16RowAlign * kBf16RowAlign;
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * ldx;
    uint16_t* o = out + m * ldo;
    for (int64_t k = 0; k < K; ++k) {
      uint32_t bits;
      std::memcpy(&bits, &xr[k], 4);
      // Subnormal inputs become signed zeros, as vcvtne2ps2bf16 treats them.
      if ((bits & 0x7f800000u) == 0) bits &= 0x80000000u;
      float v;
      std::memcpy(&v, &bits, 4);
      o[k] = f32_to_bf16(v);
    }
    for (int64_t k = K; k < padded; ++k) o[k] = 0;
  }
}

void gemm(const uint16_t* a, int64_t lda, int64_t M, const uint16_t* w, int64_t K,
          int64_t n_begin, int64_t n_end, float* out, int64_t ldo) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint16_t* wr = w + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const uint16_t* ar = a + m * lda;
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += bf16_daz(ar[k]) * bf16_daz(wr[k]);
      out[m * ldo + n] = s;
    }
  }
}

}  // namespace

const Bf16Kernels kBf16ScalarKernels = {"scalar", round_rows, gemm};

}  // namespace sluice::kernels::cpu
