// The portable leaf kernels (isa_kernels.h), for CPUs without AVX2: plain C++ built for the
// baseline instruction set. They follow the same blocking as the SIMD kernels so the ops
// above them do not care which set runs; only the packed micro-tile uses the GCC/Clang
// vector extension (4 floats: SSE2 on x86-64), because the auto-vectoriser makes a poor
// job of it (about 4x slower).

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/isa_kernels.h"
#include "kernels/ops.h"  // gelu_tanh

namespace sluice::kernels::cpu {
namespace {

constexpr int64_t kPanelWidth = 8;  // 4 rows x 8 columns: 8 of the 16 SSE registers
constexpr int64_t kMicroRows = 4;

// f16 -> f32 for all 65536 bit patterns (256 KiB): the exact conversion has branches for
// subnormals and is ~10x slower than a lookup on CPUs without F16C.
const float* f16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = f16_to_f32(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

// Weight row n, columns [k0, k0 + len), converted to f32 into dst.
void load_weight_row(WeightType wt, const void* w, int64_t K, int64_t n, int64_t k0, int64_t len,
                     float* dst) {
  const int64_t offset = n * K + k0;
  switch (wt) {
    case WeightType::kF32:
      std::memcpy(dst, static_cast<const float*>(w) + offset, len * sizeof(float));
      return;
    case WeightType::kBF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w) + offset;
      for (int64_t k = 0; k < len; ++k) dst[k] = bf16_to_f32(src[k]);
      return;
    }
    case WeightType::kF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w) + offset;
      const float* table = f16_table();
      for (int64_t k = 0; k < len; ++k) dst[k] = table[src[k]];
      return;
    }
  }
}

float dot(const float* x, const float* y, int64_t n) {
  // Four partial sums: independent dependency chains, same result on every run.
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) s[j] += x[i + j] * y[i + j];
  }
  for (; i < n; ++i) s[0] += x[i] * y[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void gemm_dot(WeightType wt, const float* a, int64_t lda, int64_t M, const void* w, int64_t K,
              int64_t n_begin, int64_t n_end, float* out, int64_t ldo) {
  thread_local std::vector<float> row;
  if (static_cast<int64_t>(row.size()) < K) row.resize(K);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* wr;
    if (wt == WeightType::kF32) {
      wr = static_cast<const float*>(w) + n * K;
    } else {
      load_weight_row(wt, w, K, n, 0, K, row.data());
      wr = row.data();
    }
    for (int64_t m = 0; m < M; ++m) out[m * ldo + n] = dot(a + m * lda, wr, K);
  }
}

void pack_panels(WeightType wt, const void* w, int64_t K, int64_t n_begin, int64_t n_end,
                 int64_t k_begin, int64_t kc, float* packed) {
  thread_local std::vector<float> row;
  if (static_cast<int64_t>(row.size()) < kc) row.resize(kc);
  const int64_t num_panels = (n_end - n_begin + kPanelWidth - 1) / kPanelWidth;
  for (int64_t p = 0; p < num_panels; ++p) {
    float* panel = packed + p * kc * kPanelWidth;
    for (int64_t j = 0; j < kPanelWidth; ++j) {
      const int64_t n = n_begin + p * kPanelWidth + j;
      if (n < n_end) {
        load_weight_row(wt, w, K, n, k_begin, kc, row.data());
        for (int64_t k = 0; k < kc; ++k) panel[k * kPanelWidth + j] = row[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) panel[k * kPanelWidth + j] = 0.0f;
      }
    }
  }
}

// Four floats in one baseline SIMD register (SSE2 on x86-64, NEON on arm64): the GCC/Clang
// vector extension, so this portable file still gets a register-resident micro-tile.
typedef float F4 __attribute__((vector_size(16)));
constexpr int kF4PerPanel = kPanelWidth / 4;

inline F4 load_f4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// One kRows x kPanelWidth tile of out from kRows rows of a and one packed panel b.
template <int kRows>
void packed_tile(const float* a, int64_t lda, const float* b, int64_t kc, float* out, int64_t ldo,
                 int64_t cols, int accumulate) {
  F4 acc[kRows][kF4PerPanel] = {};
  for (int64_t k = 0; k < kc; ++k) {
    F4 bv[kF4PerPanel];
    for (int v = 0; v < kF4PerPanel; ++v) bv[v] = load_f4(b + k * kPanelWidth + 4 * v);
    for (int i = 0; i < kRows; ++i) {
      const float av = a[i * lda + k];
      const F4 a4 = {av, av, av, av};
      for (int v = 0; v < kF4PerPanel; ++v) acc[i][v] += a4 * bv[v];
    }
  }
  for (int i = 0; i < kRows; ++i) {
    float tile[kPanelWidth];
    std::memcpy(tile, acc[i], sizeof(tile));
    float* o = out + i * ldo;
    for (int64_t j = 0; j < cols; ++j) o[j] = accumulate ? o[j] + tile[j] : tile[j];
  }
}

void gemm_packed(const float* a, int64_t lda, int64_t M, const float* packed, int64_t kc,
                 int64_t num_cols, float* out, int64_t ldo, int accumulate) {
  const int64_t num_panels = (num_cols + kPanelWidth - 1) / kPanelWidth;
  for (int64_t m0 = 0; m0 < M; m0 += kMicroRows) {
    const int64_t rows = std::min(kMicroRows, M - m0);
    for (int64_t p = 0; p < num_panels; ++p) {
      const float* b = packed + p * kc * kPanelWidth;
      const float* am = a + m0 * lda;
      float* o = out + m0 * ldo + p * kPanelWidth;
      const int64_t cols = std::min(kPanelWidth, num_cols - p * kPanelWidth);
      switch (rows) {
        case 4:
          packed_tile<4>(am, lda, b, kc, o, ldo, cols, accumulate);
          break;
        case 3:
          packed_tile<3>(am, lda, b, kc, o, ldo, cols, accumulate);
          break;
        case 2:
          packed_tile<2>(am, lda, b, kc, o, ldo, cols, accumulate);
          break;
        default:
          packed_tile<1>(am, lda, b, kc, o, ldo, cols, accumulate);
          break;
      }
    }
  }
}

void dot_rows(const float* x, const float* rows, int64_t row_stride, int64_t n, int64_t d,
              float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = dot(x, rows + j * row_stride, d);
}

void weighted_sum_rows(const float* p, const float* rows, int64_t row_stride, int64_t n, int64_t d,
                       float* acc) {
  for (int64_t j = 0; j < n; ++j) {
    const float pj = p[j];
    const float* r = rows + j * row_stride;
    for (int64_t i = 0; i < d; ++i) acc[i] += pj * r[i];
  }
}

void dot_rows_multi(const float* x, int64_t ldx, int64_t m, const float* rows, int64_t row_stride,
                    int64_t n, int64_t d, float* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) dot_rows(x + i * ldx, rows, row_stride, n, d, out + i * ldo);
}

void weighted_sum_rows_multi(const float* p, int64_t ldp, int64_t m, const float* rows,
                             int64_t row_stride, int64_t n, int64_t d, float* acc, int64_t ldacc) {
  for (int64_t i = 0; i < m; ++i) {
    weighted_sum_rows(p + i * ldp, rows, row_stride, n, d, acc + i * ldacc);
  }
}

float exp_sum(const float* x, int64_t n, float shift, float* out) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::exp(x[i] - shift);
    sum += out[i];
  }
  return sum;
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(gate[i]) * up[i];
}

}  // namespace

const IsaKernels kScalarKernels = {
    "scalar",    gemm_dot, /*packed_min_rows=*/4, kPanelWidth,    pack_panels,
    gemm_packed, dot_rows, weighted_sum_rows,     dot_rows_multi, weighted_sum_rows_multi,
    exp_sum,     geglu,
};

}  // namespace sluice::kernels::cpu
