// The AVX2 (+FMA, F16C) leaf kernels (isa_kernels.h). Compiled with -mavx2 -mfma -mf16c by
// kernels/CMakeLists.txt; only called when isa.h says the CPU has them. Includes nothing but
// <immintrin.h> and isa_kernels.h (see the ODR note there).

#include <immintrin.h>

#include "kernels/cpu/isa_kernels.h"

namespace sluice::kernels::cpu {
namespace avx2 {
namespace {

using V = __m256;
constexpr int kW = 8;
constexpr const char* kIsaName = "avx2";
// Packed micro-tile 6 x 16: 12 accumulators + 2 panel vectors + 1 broadcast of 16 registers.
constexpr int kGemmMr = 6;
constexpr int kGemmNv = 2;
// Dot tile 2 x 4: 8 accumulators + 4 weight vectors + 1 row of a.
constexpr int kDotMr = 2;
constexpr int64_t kPackedMinRows = 12;
constexpr int kAccVecs = 8;

inline V vzero() { return _mm256_setzero_ps(); }
inline V vset1(float x) { return _mm256_set1_ps(x); }
inline V vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
inline V vmin(V a, V b) { return _mm256_min_ps(a, b); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(V v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
inline V vload_bf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline V vload_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline V vround(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V vscale2n(V p, V n) {
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
inline V vkeep_unless_less(V x, V lo, V v) {
  return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), v);
}

// 8 x 8 in-register transpose.
inline void transpose(V* r) {
  V t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4q + c] holds columns c and 4+c (one per 128-bit lane) of rows 4q..4q+3.
#pragma GCC unroll 2
  for (int q = 0; q < 2; ++q) {
    const int b = 4 * q;
    u[b + 0] = _mm256_shuffle_ps(t[b + 0], t[b + 2], 0x44);
    u[b + 1] = _mm256_shuffle_ps(t[b + 0], t[b + 2], 0xee);
    u[b + 2] = _mm256_shuffle_ps(t[b + 1], t[b + 3], 0x44);
    u[b + 3] = _mm256_shuffle_ps(t[b + 1], t[b + 3], 0xee);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

#include "kernels/cpu/simd_kernels.inc"

}  // namespace
}  // namespace avx2

const IsaKernels kAvx2Kernels = avx2::kTable;

}  // namespace sluice::kernels::cpu
