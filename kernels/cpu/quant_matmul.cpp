// Threading, activation quantization and ISA choice for the quantized matmul.

#include "kernels/cpu/quant_matmul.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

constexpr const char* kOp = "quant_matmul";
// Weight rows per unit of work handed to a thread (a multiple of kQuantTileRows).
constexpr int64_t kRowUnit = 4 * kQuantTileRows;
// A task should do at least this many multiply-adds (smaller ones cost more to wake).
constexpr int64_t kMinMacsPerTask = 65536;
// Activation rows per quantization task.
constexpr int64_t kQuantizeRowsPerTask = 16;
// Scratch slots (scratch.h): activations live on the calling thread, decoded weight rows on
// whichever thread runs the task (possibly the caller too), so they use different slots.
constexpr int kActSlot = 1;
constexpr int kWorkSlot = 2;
constexpr int kPanelSlot = 3;
// From this many activation rows on (prefill), weight panels are dequantized to f32 once
// and multiplied by the dense GEMM (which reuses each panel from cache for all rows); below
// it the integer dot products win (measured with benchmarks/kernels/quant_matmul_bench.cpp).
constexpr int64_t kDenseMinRows = 32;
// Weight rows per dequantized panel: 64 x K f32 (512 KiB at K = 2048) stays in L2.
constexpr int64_t kPanelRows = 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Round half to even for |v| < 2^22 without a library call (adding 1.5 * 2^23 leaves no
// fraction bits; the default rounding mode rounds the sum to nearest even).
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  // Not folded away: the build has no -ffast-math (the sum is not an identity in IEEE).
  const float t = v + kMagic;
  return t - kMagic;
}

}  // namespace

int64_t quant_block_elems(QuantType t) {
  switch (t) {
    case QuantType::kQ4_K:
    case QuantType::kQ5_K:
    case QuantType::kQ6_K:
      return 256;
    default:
      return 32;
  }
}

int64_t quant_block_bytes(QuantType t) {
  switch (t) {
    case QuantType::kQ4_0: return 18;
    case QuantType::kQ4_1: return 20;
    case QuantType::kQ5_0: return 22;
    case QuantType::kQ5_1: return 24;
    case QuantType::kQ8_0: return 34;
    case QuantType::kQ4_K: return 144;
    case QuantType::kQ5_K: return 176;
    case QuantType::kQ6_K: return 210;
  }
  return 0;
}

const char* quant_type_name(QuantType t) {
  switch (t) {
    case QuantType::kQ4_0: return "Q4_0";
    case QuantType::kQ4_1: return "Q4_1";
    case QuantType::kQ5_0: return "Q5_0";
    case QuantType::kQ5_1: return "Q5_1";
    case QuantType::kQ8_0: return "Q8_0";
    case QuantType::kQ4_K: return "Q4_K";
    case QuantType::kQ5_K: return "Q5_K";
    case QuantType::kQ6_K: return "Q6_K";
  }
  return "?";
}

int64_t quant_row_bytes(QuantType t, int64_t cols) {
  const int64_t be = quant_block_elems(t);
  if (cols <= 0 || cols % be != 0) return -1;
  return cols / be * quant_block_bytes(t);
}

const QuantKernels& quant_kernels() {
  static const QuantKernels* k = [] {
    switch (active_isa()) {
      case CpuIsa::kScalar:
        return &kQuantScalarKernels;
      case CpuIsa::kAvx2:
        return &kQuantAvx2Kernels;
      case CpuIsa::kAvx512:
        return avx512_vnni_supported() ? &kQuantAvx512VnniKernels : &kQuantAvx512Kernels;
    }
    return &kQuantScalarKernels;
  }();
  return *k;
}

std::vector<const QuantKernels*> supported_quant_kernels() {
  std::vector<const QuantKernels*> out = {&kQuantScalarKernels};
  if (isa_supported(CpuIsa::kAvx2)) out.push_back(&kQuantAvx2Kernels);
  if (isa_supported(CpuIsa::kAvx512)) {
    out.push_back(&kQuantAvx512Kernels);
    if (avx512_vnni_supported()) out.push_back(&kQuantAvx512VnniKernels);
  }
  return out;
}

void quantize_q8_rows(const float* x, int64_t ldx, int64_t M, int64_t K, int8_t* aq, float* ad,
                      float* as16) {
  SLUICE_CHECK(K % 32 == 0, "quantize_q8_rows: K = {} is not a multiple of 32", K);
  const int64_t nb = K / 32;
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * ldx;
    int8_t* q = aq + m * K;
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = xr + 32 * b;
      float amax = 0.0f;
      for (int l = 0; l < 32; ++l) amax = std::max(amax, std::fabs(xb[l]));
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      int32_t sums[2] = {0, 0};
      for (int l = 0; l < 32; ++l) {
        // x*id is within [-127, 127] up to one rounding; the clamp only guards that.
        const float r = std::clamp(round_even(xb[l] * id), -127.0f, 127.0f);
        const int32_t v = static_cast<int32_t>(r);
        q[32 * b + l] = static_cast<int8_t>(v);
        sums[l / 16] += v;
      }
      ad[m * nb + b] = d;
      as16[m * 2 * nb + 2 * b] = d * static_cast<float>(sums[0]);
      as16[m * 2 * nb + 2 * b + 1] = d * static_cast<float>(sums[1]);
    }
  }
}

size_t quant_work_bytes(int64_t K) {
  // Per decoded row: K code bytes, K/16 factors and K/16 offsets (f32), K/4 expanded factors.
  return static_cast<size_t>(kQuantTileRows) * static_cast<size_t>(2 * K + 8 * (K / 16)) + 64;
}

namespace {

// The large-M path: panels of kPanelRows weight rows, dequantized to f32 and run through the
// dense matmul of the same ISA on the task's thread (its own parallel_for runs inline).
void run_dequantized(const QuantKernels& kern, const float* a, int64_t lda, int64_t M,
                     const QuantMatrix& w, float* out, int64_t ldo) {
  const int64_t K = w.cols;
  const int64_t panels = ceil_div(w.rows, kPanelRows);
  const size_t work_floats = ceil_div(static_cast<int64_t>(quant_work_bytes(K)), 4);
  parallel_for(panels, [&](int64_t begin, int64_t end) {
    void* work = scratch_floats(kWorkSlot, work_floats);
    float* panel = scratch_floats(kPanelSlot, static_cast<size_t>(kPanelRows * K));
    for (int64_t p = begin; p < end; ++p) {
      const int64_t n0 = p * kPanelRows;
      const int64_t rows = std::min(kPanelRows, w.rows - n0);
      kern.dequantize_rows(w.type, w.data, w.row_bytes, K, n0, n0 + rows, panel, work);
      MatmulArgs args;
      args.w = Tensor::make(panel, DType::kF32, {rows, K});
      args.a = Tensor::make(const_cast<float*>(a), DType::kF32, {M, K});
      args.a.strides[0] = lda;
      args.out = Tensor::make(out + n0, DType::kF32, {M, rows});
      args.out.strides[0] = ldo;
      run_matmul(args, *kern.dense);
    }
  });
}

}  // namespace

void quant_matmul(const QuantKernels& kern, const float* a, int64_t lda, int64_t M,
                  const QuantMatrix& w, float* out, int64_t ldo) {
  const QuantOutput one{&w, out, ldo};
  quant_matmul_multi(kern, a, lda, M, std::span(&one, 1));
}

void quant_matmul_multi(const QuantKernels& kern, const float* a, int64_t lda, int64_t M,
                        std::span<const QuantOutput> outs) {
  if (outs.empty()) return;
  const int64_t K = outs[0].w->cols;
  for (const QuantOutput& o : outs) {
    const QuantMatrix& w = *o.w;
    SLUICE_CHECK(w.defined() && w.cols > 0 && w.rows >= 0, "{}: undefined or empty weight matrix", kOp);
    SLUICE_CHECK(w.cols == K, "{}: matrices of {} and {} columns share one input", kOp, K, w.cols);
    SLUICE_CHECK(quant_row_bytes(w.type, K) == w.row_bytes && K % 32 == 0,
                 "{}: {} matrix with {} columns has row_bytes {}, expected {}", kOp,
                 quant_type_name(w.type), K, w.row_bytes, quant_row_bytes(w.type, K));
  }
  if (M <= 0) return;
  if (M >= kDenseMinRows) {
    for (const QuantOutput& o : outs) {
      if (o.w->rows > 0) run_dequantized(kern, a, lda, M, *o.w, o.out, o.ldo);
    }
    return;
  }
  const int64_t nb = K / 32;
  // One buffer for the quantized activations (once for every matrix): codes, then block
  // scales, then 16-sums.
  const size_t code_floats = static_cast<size_t>(ceil_div(M * K, 4));
  float* act = scratch_floats(kActSlot, code_floats + static_cast<size_t>(M * nb * 3));
  int8_t* aq = reinterpret_cast<int8_t*>(act);
  float* ad = act + code_floats;
  float* as16 = ad + M * nb;
  parallel_for(
      M,
      [&](int64_t begin, int64_t end) {
        quantize_q8_rows(a + begin * lda, lda, end - begin, K, aq + begin * K, ad + begin * nb,
                         as16 + begin * 2 * nb);
      },
      kQuantizeRowsPerTask);

  // Units of kRowUnit weight rows, numbered across the matrices in order: one parallel_for
  // for all of them (first_unit[i] is matrix i's first).
  SLUICE_CHECK(outs.size() <= kMaxQuantOutputs, "{}: {} matrices in one call (at most {})", kOp,
               outs.size(), kMaxQuantOutputs);
  int64_t first_unit[kMaxQuantOutputs + 1];
  first_unit[0] = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    first_unit[i + 1] = first_unit[i] + ceil_div(outs[i].w->rows, kRowUnit);
  }
  const int64_t units = first_unit[outs.size()];
  const int64_t macs_per_unit = std::max<int64_t>(1, M * K * kRowUnit);
  const size_t work_floats = ceil_div(static_cast<int64_t>(quant_work_bytes(K)), 4);
  parallel_for(
      units,
      [&](int64_t begin, int64_t end) {
        void* work = scratch_floats(kWorkSlot, work_floats);
        for (size_t i = 0; i < outs.size(); ++i) {
          const int64_t lo = std::max(begin, first_unit[i]);
          const int64_t hi = std::min(end, first_unit[i + 1]);
          if (lo >= hi) continue;
          const QuantMatrix& w = *outs[i].w;
          kern.gemm(w.type, w.data, w.row_bytes, K, aq, ad, as16, M, (lo - first_unit[i]) * kRowUnit,
                    std::min(w.rows, (hi - first_unit[i]) * kRowUnit), outs[i].out, outs[i].ldo, work);
        }
      },
      ceil_div(kMinMacsPerTask, macs_per_unit));
}

void quant_matmul_multi(const Tensor& a, std::span<const QuantMatmulOut> outs) {
  check_tensor(a, kOp, "a", DType::kF32, 2);
  const int64_t M = a.dim(0);
  SLUICE_CHECK(outs.size() <= kMaxQuantOutputs, "{}: {} matrices in one call (at most {})", kOp,
               outs.size(), kMaxQuantOutputs);
  QuantOutput raw[kMaxQuantOutputs];
  for (size_t i = 0; i < outs.size(); ++i) {
    const Tensor& out = outs[i].out;
    const QuantMatrix& w = *outs[i].w;
    check_tensor(out, kOp, "out", DType::kF32, 2);
    check_dim(a, 1, w.cols, kOp, "a");
    check_dim(out, 0, M, kOp, "out");
    check_dim(out, 1, w.rows, kOp, "out");
    SLUICE_CHECK(M <= 1 || out.strides[0] >= w.rows, "{}: out has row stride {} < N = {}", kOp,
                 out.strides[0], w.rows);
    raw[i] = {&w, f32_data(out), out.strides[0]};
  }
  if (outs.empty()) return;
  SLUICE_CHECK(M <= 1 || a.strides[0] >= a.dim(1), "{}: a has row stride {} < K = {}", kOp,
               a.strides[0], a.dim(1));
  quant_matmul_multi(quant_kernels(), f32_data(a), a.strides[0], M, std::span(raw, outs.size()));
}

void quant_matmul(const Tensor& out, const Tensor& a, const QuantMatrix& w) {
  check_tensor(a, kOp, "a", DType::kF32, 2);
  check_tensor(out, kOp, "out", DType::kF32, 2);
  const int64_t M = a.dim(0);
  check_dim(a, 1, w.cols, kOp, "a");
  check_dim(out, 0, M, kOp, "out");
  check_dim(out, 1, w.rows, kOp, "out");
  SLUICE_CHECK(M <= 1 || a.strides[0] >= w.cols, "{}: a has row stride {} < K = {}", kOp,
               a.strides[0], w.cols);
  SLUICE_CHECK(M <= 1 || out.strides[0] >= w.rows, "{}: out has row stride {} < N = {}", kOp,
               out.strides[0], w.rows);
  quant_matmul(quant_kernels(), f32_data(a), a.strides[0], M, w, f32_data(out), out.strides[0]);
}

double quant_error_bound(const float* w_row, const float* x, int64_t K) {
  double bound = 0.0;
  for (int64_t b = 0; b < K / 32; ++b) {
    double amax = 0.0, wsum = 0.0, mag = 0.0;
    for (int l = 0; l < 32; ++l) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[32 * b + l])));
      wsum += std::fabs(static_cast<double>(w_row[32 * b + l]));
      mag += std::fabs(static_cast<double>(w_row[32 * b + l]) * x[32 * b + l]);
    }
    // Half a quantization step per element, plus f32 rounding of the partial sums.
    bound += amax / 127.0 / 2.0 * wsum + 1e-5 * mag;
  }
  return bound;
}

}  // namespace sluice::kernels::cpu
