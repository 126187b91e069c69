// The AVX-512 leaf kernels (isa_kernels.h). Compiled with -mavx512f/bw/vl/dq (+bf16, vnni,
// unused so far) by kernels/CMakeLists.txt; only called when isa.h says the CPU has them.
// Includes nothing but <immintrin.h> and isa_kernels.h (see the ODR note there).

// GCC 12's avx512fintrin.h makes its "undefined" vectors by self-initialisation
// (`__m512 __Y = __Y;`), which -Wuninitialized reports at every inlined use (GCC PR 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/cpu/isa_kernels.h"

namespace sluice::kernels::cpu {
namespace avx512 {
namespace {

using V = __m512;
constexpr int kW = 16;
constexpr const char* kIsaName = "avx512";
// Packed micro-tile 6 x 64: 24 accumulators + 4 panel vectors + 1 broadcast of 32 registers.
constexpr int kGemmMr = 6;
constexpr int kGemmNv = 4;
// Dot tile 4 x 4: 16 accumulators + 4 weight vectors + 1 row of a.
constexpr int kDotMr = 4;
constexpr int64_t kPackedMinRows = 24;
// weighted_sum_rows keeps 16 vectors (256 floats, one Gemma sliding head) in registers.
constexpr int kAccVecs = 16;

inline V vzero() { return _mm512_setzero_ps(); }
inline V vset1(float x) { return _mm512_set1_ps(x); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
inline V vmin(V a, V b) { return _mm512_min_ps(a, b); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(V v) { return _mm512_reduce_add_ps(v); }
inline V vload_bf16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline V vload_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline V vround(V x) {
  return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline V vscale2n(V p, V n) { return _mm512_scalef_ps(p, n); }
inline V vkeep_unless_less(V x, V lo, V v) {
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), v);
}

inline V unpacklo_pd(V a, V b) {
  return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
inline V unpackhi_pd(V a, V b) {
  return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

// 16 x 16 in-register transpose: interleave pairs, then pairs of pairs, then 128-bit lanes.
inline void transpose(V* r) {
  V t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4q + c] holds columns c, 4+c, 8+c, 12+c (one per 128-bit lane) of rows 4q..4q+3.
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const int b = 4 * q;
    u[b + 0] = unpacklo_pd(t[b + 0], t[b + 2]);
    u[b + 1] = unpackhi_pd(t[b + 0], t[b + 2]);
    u[b + 2] = unpacklo_pd(t[b + 1], t[b + 3]);
    u[b + 3] = unpackhi_pd(t[b + 1], t[b + 3]);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const V v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const V v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
    const V v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const V v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
    r[c + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[c + 12] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
  }
}

#include "kernels/cpu/simd_kernels.inc"

}  // namespace
}  // namespace avx512

const IsaKernels kAvx512Kernels = avx512::kTable;

}  // namespace sluice::kernels::cpu
