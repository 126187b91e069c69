// The AVX512_BF16 dot-product kernels (bf16_kernels.h): vdpbf16ps multiplies 32 bf16 pairs and
// adds them into 16 f32 lanes in one instruction, twice the multiply-adds of an f32 FMA and
// with no widening of the weights. Compiled with the AVX-512 flags of kernels/CMakeLists.txt
// (which include -mavx512bf16); only called when isa.h says the CPU has AVX512_BF16.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/cpu/bf16_kernels.h"

namespace sluice::kernels::cpu {
namespace bf16_avx512 {
namespace {

constexpr int64_t kVec = 32;  // bf16 elements per vector
// Dot tile: up to 4 activation rows x 4 weight rows = 16 accumulators, 4 weight vectors and
// one activation vector live in registers.
constexpr int kMr = 4;
constexpr int kNr = 4;

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

void round_rows(const float* x, int64_t ldx, int64_t M, int64_t K, uint16_t* out, int64_t ldo) {
  const int64_t padded = (K + kVec - 1) / kVec * kVec;
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * ldx;
    uint16_t* o = out + m * ldo;
    for (int64_t k = 0; k < padded; k += kVec) {
      const int64_t rem = K - k;
      __m512 lo, hi;
      if (rem >= kVec) {
        lo = _mm512_loadu_ps(xr + k);
        hi = _mm512_loadu_ps(xr + k + 16);
      } else {
        // Lanes past K load as zero and round to bf16 zeros: the row's zero tail.
        const int64_t rlo = rem < 16 ? rem : 16;
        const int64_t rhi = rem - rlo;
        lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << rlo) - 1u), xr + k);
        hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << rhi) - 1u), xr + k + 16);
      }
      const __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
      _mm512_storeu_si512(reinterpret_cast<void*>(o + k), (__m512i)v);
    }
  }
}

template <int MR, int NR>
void dot_tile(const uint16_t* a, int64_t lda, const uint16_t* w, int64_t K, float* out,
              int64_t ldo) {
  __m512 acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; k += kVec) {
    const int64_t rem = K - k;
    const __mmask32 mask = rem >= kVec ? ~__mmask32{0} : static_cast<__mmask32>((1u << rem) - 1u);
    __m512bh wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      // The same columns of the next tile's rows: keeps DRAM reads in flight (integer
      // arithmetic: the address may lie past the end, and a prefetch never faults).
      const uintptr_t ahead = reinterpret_cast<uintptr_t>(w + j * K + k) +
                              static_cast<uintptr_t>(NR * K) * sizeof(uint16_t);
      __builtin_prefetch(reinterpret_cast<const void*>(ahead), 0, 3);
      wv[j] = as_bh(_mm512_maskz_loadu_epi16(mask, w + j * K + k));
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = as_bh(_mm512_loadu_si512(reinterpret_cast<const void*>(a + i * lda + k)));
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, wv[j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    if constexpr (NR == 4) {
      // Four horizontal sums at once: halve each to 8 lanes, then a pairwise-add tree whose
      // lane j ends up holding output j.
      __m256 h[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        h[j] = _mm256_add_ps(_mm512_castps512_ps256(acc[i][j]), _mm512_extractf32x8_ps(acc[i][j], 1));
      }
      const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
      _mm_storeu_ps(out + i * ldo,
                    _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
    } else {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) out[i * ldo + j] = _mm512_reduce_add_ps(acc[i][j]);
    }
  }
}

template <int NR>
void dot_rows(int64_t rows, const uint16_t* a, int64_t lda, const uint16_t* w, int64_t K,
              float* out, int64_t ldo) {
  switch (rows) {
    case 4: return dot_tile<4, NR>(a, lda, w, K, out, ldo);
    case 3: return dot_tile<3, NR>(a, lda, w, K, out, ldo);
    case 2: return dot_tile<2, NR>(a, lda, w, K, out, ldo);
    default: return dot_tile<1, NR>(a, lda, w, K, out, ldo);
  }
}

void gemm(const uint16_t* a, int64_t lda, int64_t M, const uint16_t* w, int64_t K,
          int64_t n_begin, int64_t n_end, float* out, int64_t ldo) {
  // Weight tile outer, activation rows inner: the tile's kNr rows stay in L1 while every
  // activation row passes by, so the weights are read from memory once per call.
  int64_t n = n_begin;
  for (; n + kNr <= n_end; n += kNr) {
    for (int64_t m = 0; m < M; m += kMr) {
      const int64_t rows = M - m < kMr ? M - m : kMr;
      dot_rows<kNr>(rows, a + m * lda, lda, w + n * K, K, out + m * ldo + n, ldo);
    }
  }
  for (; n < n_end; ++n) {
    for (int64_t m = 0; m < M; m += kMr) {
      const int64_t rows = M - m < kMr ? M - m : kMr;
      dot_rows<1>(rows, a + m * lda, lda, w + n * K, K, out + m * ldo + n, ldo);
    }
  }
}

}  // namespace
}  // namespace bf16_avx512

const Bf16Kernels kBf16Avx512Kernels = {"avx512-bf16", bf16_avx512::round_rows,
                                        bf16_avx512::gemm};

}  // namespace sluice::kernels::cpu
