#pragma once
// The leaf kernels that exist once per ISA (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp; the SIMD two share simd_kernels.inc). The ops in this folder do the
// argument checks, blocking and threading in plain C++ and call these for the inner loops.
//
// NOTE (ODR): the AVX2 and AVX-512 translation units are compiled with -mavx2/-mavx512*.
// Any inline function or template they instantiate with external linkage (std::min,
// std::vector<...>, a lambda in a shared header) could be the copy the linker keeps for
// every caller, and crash a CPU without those instructions. So those units include only
// this header (plain types, no inline code) and <immintrin.h>, keep everything else in an
// anonymous namespace, and export only the kernel tables below: plain function pointers
// with C-like signatures (pointers and sizes).
//
// Every kernel is single-threaded and writes only its outputs. Sizes are elements.

#include <cstdint>

namespace sluice::kernels::cpu {

// The element type of matmul weights.
enum class WeightType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

struct IsaKernels {
  const char* name;

  // --- matmul ---
  // Dot-product form, best for few rows of `a` (decode): for m in [0, M), n in [n_begin, n_end)
  //   out[m*ldo + n] = sum_{k<K} a[m*lda + k] * w[n*K + k]
  // w is [N, K] of `wt` (bf16/f16 passed as uint16 bits). Reads each weight row once.
  void (*gemm_dot)(WeightType wt, const float* a, int64_t lda, int64_t M, const void* w, int64_t K,
                   int64_t n_begin, int64_t n_end, float* out, int64_t ldo);

  // From this many rows of `a` on, the packed form beats gemm_dot (measured with
  // benchmarks/kernels: packing costs about as much as a dot-product pass over the weights).
  int64_t packed_min_rows;
  // Columns per packed panel of the packed form (a multiple of the SIMD width).
  int64_t panel_width;

  // Packs weight rows [n_begin, n_end) and columns [k_begin, k_begin + kc) as f32 panels of
  // panel_width rows each, k-major:
  //   packed[(p*kc + k)*panel_width + j] = w[(n_begin + p*panel_width + j)*K + k_begin + k]
  // for p < ceil((n_end - n_begin) / panel_width); slots past n_end are zero.
  void (*pack_panels)(WeightType wt, const void* w, int64_t K, int64_t n_begin, int64_t n_end,
                      int64_t k_begin, int64_t kc, float* packed);

  // Packed form, best for many rows (prefill): for m in [0, M), c in [0, num_cols)
  //   out[m*ldo + c] (+)= sum_{k<kc} a[m*lda + k] * packed[(c/pw*kc + k)*pw + c%pw]
  // adding to out when `accumulate` is non-zero, else overwriting it.
  void (*gemm_packed)(const float* a, int64_t lda, int64_t M, const float* packed, int64_t kc,
                      int64_t num_cols, float* out, int64_t ldo, int accumulate);

  // --- attention and reductions ---
  // out[j] = sum_{i<d} x[i] * rows[j*row_stride + i] for j in [0, n).
  void (*dot_rows)(const float* x, const float* rows, int64_t row_stride, int64_t n, int64_t d,
                   float* out);
  // acc[i] += sum_{j<n} p[j] * rows[j*row_stride + i] for i in [0, d).
  void (*weighted_sum_rows)(const float* p, const float* rows, int64_t row_stride, int64_t n,
                            int64_t d, float* acc);
  // The same for m query rows at once (the heads of one KV group), reading each key or value
  // row once for all of them. Each output element is the one-row kernel's, bit for bit when
  // d is a multiple of 16 (otherwise the scalar tail may round differently).
  //   out[i*ldo + j] = sum_{c<d} x[i*ldx + c] * rows[j*row_stride + c]   for i < m, j < n
  //   acc[i*ldacc + c] += sum_{j<n} p[i*ldp + j] * rows[j*row_stride + c] for i < m, c < d
  void (*dot_rows_multi)(const float* x, int64_t ldx, int64_t m, const float* rows,
                         int64_t row_stride, int64_t n, int64_t d, float* out, int64_t ldo);
  void (*weighted_sum_rows_multi)(const float* p, int64_t ldp, int64_t m, const float* rows,
                                  int64_t row_stride, int64_t n, int64_t d, float* acc,
                                  int64_t ldacc);
  // out[i] = exp(x[i] - shift) for i in [0, n) (out may alias x); returns the sum of out.
  // Results below about 1e-38 may flush to zero.
  float (*exp_sum)(const float* x, int64_t n, float shift, float* out);

  // --- elementwise ---
  // out[i] = gelu_tanh(gate[i]) * up[i] (out may alias gate or up).
  void (*geglu)(const float* gate, const float* up, float* out, int64_t n);
};

extern const IsaKernels kScalarKernels;
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kAvx512Kernels;

}  // namespace sluice::kernels::cpu
