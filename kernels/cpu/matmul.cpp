// matmul on the CPU: out[M, N] = a[M, K] * w[N, K]^T with f32, bf16 or f16 weights.
//
// Two shapes matter and get different code:
//  - few rows (decode, small batches: M < IsaKernels::packed_min_rows): the dot-product
//    kernel streams each weight row once from memory and applies it to every row of `a`
//    (which stays in cache). Threads split the weight rows, so together they read the
//    matrix once: bandwidth bound.
//  - many rows (prefill): weight panels are converted to f32 and transposed once per block
//    (pack_panels), then an outer-product micro-kernel reuses each panel, from cache, for
//    every row of `a`. Threads split the panels (or, when there are too few panels, the rows).

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

constexpr const char* kOp = "matmul";

// Longest k block of a packed panel: a 6-row slice of `a` (6 x 768 f32 = 18 KiB) stays in
// L1 while the micro-kernel walks the panels of a block.
constexpr int64_t kMaxKc = 768;
// Columns per packed block (per task step): kc x 256 f32 panels stay in L2.
constexpr int64_t kBlockCols = 256;
// Weight rows are handed to the dot-product kernel in units of this many rows.
constexpr int64_t kDotRowUnit = 16;
// A task should do at least this many multiply-adds (smaller ones cost more to wake).
constexpr int64_t kMinMacsPerTask = 32768;

WeightType weight_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return WeightType::kF32;
    case DType::kBF16:
      return WeightType::kBF16;
    case DType::kF16:
      return WeightType::kF16;
    default:
      break;
  }
  SLUICE_CHECK(false, "{}: w has dtype {} but must be f32, bf16 or f16", kOp, dtype_name(dtype));
  return WeightType::kF32;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Problem {
  const float* a;
  int64_t lda;
  int64_t M, N, K;
  const void* w;
  WeightType wt;
  float* out;
  int64_t ldo;
};

void run_dot(const Problem& p, const IsaKernels& kern) {
  const int64_t units = ceil_div(p.N, kDotRowUnit);
  const int64_t macs_per_unit = std::max<int64_t>(1, p.M * p.K * kDotRowUnit);
  parallel_for(
      units,
      [&](int64_t begin, int64_t end) {
        kern.gemm_dot(p.wt, p.a, p.lda, p.M, p.w, p.K, begin * kDotRowUnit,
                      std::min(p.N, end * kDotRowUnit), p.out, p.ldo);
      },
      ceil_div(kMinMacsPerTask, macs_per_unit));
}

// Rows [m0, m1) x panels [p0, p1) of the packed path, on the calling thread.
void packed_range(const Problem& p, const IsaKernels& kern, int64_t kc, int64_t m0, int64_t m1,
                  int64_t p0, int64_t p1) {
  const int64_t pw = kern.panel_width;
  const int64_t panels_per_block = std::max<int64_t>(1, kBlockCols / pw);
  float* packed = scratch_floats(0, static_cast<size_t>(kc * pw * panels_per_block));
  for (int64_t pb = p0; pb < p1; pb += panels_per_block) {
    const int64_t n0 = pb * pw;
    const int64_t n1 = std::min(p.N, std::min(p1, pb + panels_per_block) * pw);
    for (int64_t k0 = 0; k0 < p.K; k0 += kc) {
      const int64_t kcur = std::min(kc, p.K - k0);
      kern.pack_panels(p.wt, p.w, p.K, n0, n1, k0, kcur, packed);
      kern.gemm_packed(p.a + m0 * p.lda + k0, p.lda, m1 - m0, packed, kcur, n1 - n0,
                       p.out + m0 * p.ldo + n0, p.ldo, k0 > 0 ? 1 : 0);
    }
  }
}

void run_packed(const Problem& p, const IsaKernels& kern) {
  const int64_t pw = kern.panel_width;
  const int64_t num_panels = ceil_div(p.N, pw);
  // Even k blocks, rounded to 16 so the packing transposes whole vectors.
  const int64_t num_k_blocks = ceil_div(p.K, kMaxKc);
  const int64_t kc = std::min(p.K, ceil_div(ceil_div(p.K, num_k_blocks), 16) * 16);
  const int64_t threads = num_threads();
  if (num_panels >= 2 * threads || p.M < 4 * threads * 6) {
    const int64_t macs_per_panel = p.M * p.K * pw;
    parallel_for(
        num_panels,
        [&](int64_t begin, int64_t end) { packed_range(p, kern, kc, 0, p.M, begin, end); },
        ceil_div(kMinMacsPerTask, macs_per_panel));
  } else {
    // Few, narrow outputs (e.g. a router): split the rows; each task packs its own panels.
    const int64_t macs_per_row = p.N * p.K;
    parallel_for(
        p.M,
        [&](int64_t begin, int64_t end) { packed_range(p, kern, kc, begin, end, 0, num_panels); },
        ceil_div(kMinMacsPerTask, macs_per_row));
  }
}

}  // namespace

void run_matmul(const MatmulArgs& args, const IsaKernels& kern) {
  const Tensor& a = args.a;
  const Tensor& w = args.w;
  const Tensor& out = args.out;
  check_tensor(a, kOp, "a", DType::kF32, 2);
  check_tensor(out, kOp, "out", DType::kF32, 2);
  SLUICE_CHECK(w.defined() && w.device == Device::kCpu && w.ndim == 2,
               "{}: w must be a rank-2 CPU tensor, got shape {}", kOp, w.shape_string());
  check_contiguous(w, kOp, "w");
  Problem p;
  p.wt = weight_type(w.dtype);
  p.M = a.dim(0);
  p.K = a.dim(1);
  p.N = w.dim(0);
  check_dim(w, 1, p.K, kOp, "w");
  check_dim(out, 0, p.M, kOp, "out");
  check_dim(out, 1, p.N, kOp, "out");
  SLUICE_CHECK(p.M <= 1 || a.strides[0] >= p.K, "{}: a has row stride {} < K = {}", kOp,
               a.strides[0], p.K);
  SLUICE_CHECK(p.M <= 1 || out.strides[0] >= p.N, "{}: out has row stride {} < N = {}", kOp,
               out.strides[0], p.N);
  p.a = f32_data(a);
  p.lda = a.strides[0];
  p.w = w.data;
  p.out = f32_data(out);
  p.ldo = out.strides[0];
  if (p.M == 0 || p.N == 0) return;
  if (p.K == 0) {
    for (int64_t m = 0; m < p.M; ++m) std::memset(p.out + m * p.ldo, 0, p.N * sizeof(float));
    return;
  }
  if (p.M < kern.packed_min_rows) {
    run_dot(p, kern);
  } else {
    run_packed(p, kern);
  }
}

}  // namespace sluice::kernels::cpu
