// Threading, activation rounding and kernel choice for the bf16 dot-product matmul.

#include "kernels/cpu/bf16_matmul.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/half.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

constexpr const char* kOp = "bf16_matmul";
// Weight rows per unit of work handed to a thread.
constexpr int64_t kRowUnit = 16;
// A task should do at least this many multiply-adds (smaller ones cost more to wake).
constexpr int64_t kMinMacsPerTask = 65536;
// Activation rows per rounding task.
constexpr int64_t kRoundRowsPerTask = 16;
// The scratch slot of the rounded activations (the calling thread's; see quant_matmul.cpp
// for the slots in use there, which this op never runs inside).
constexpr int kActSlot = 1;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

bool bf16_dot_available() {
  static const bool ok = active_isa() == CpuIsa::kAvx512 && avx512_bf16_supported();
  return ok;
}

const Bf16Kernels& bf16_kernels() {
  return bf16_dot_available() ? kBf16Avx512Kernels : kBf16ScalarKernels;
}

std::vector<const Bf16Kernels*> supported_bf16_kernels() {
  std::vector<const Bf16Kernels*> out = {&kBf16ScalarKernels};
  if (isa_supported(CpuIsa::kAvx512) && avx512_bf16_supported()) out.push_back(&kBf16Avx512Kernels);
  return out;
}

void bf16_matmul(const Bf16Kernels& kern, const float* a, int64_t lda, int64_t M,
                 const uint16_t* w, int64_t N, int64_t K, float* out, int64_t ldo) {
  SLUICE_CHECK(K > 0 && N >= 0, "{}: K = {}, N = {}", kOp, K, N);
  if (M <= 0 || N == 0) return;
  const int64_t lda16 = ceil_div(K, kBf16RowAlign) * kBf16RowAlign;
  // bf16 rows in a float scratch slot: two elements per float.
  uint16_t* a16 = reinterpret_cast<uint16_t*>(
      scratch_floats(kActSlot, static_cast<size_t>(ceil_div(M * lda16, 2))));
  parallel_for(
      M,
      [&](int64_t begin, int64_t end) {
        kern.round_rows(a + begin * lda, lda, end - begin, K, a16 + begin * lda16, lda16);
      },
      kRoundRowsPerTask);
  const int64_t units = ceil_div(N, kRowUnit);
  const int64_t macs_per_unit = std::max<int64_t>(1, M * K * kRowUnit);
  parallel_for(
      units,
      [&](int64_t begin, int64_t end) {
        kern.gemm(a16, lda16, M, w, K, begin * kRowUnit, std::min(N, end * kRowUnit), out, ldo);
      },
      ceil_div(kMinMacsPerTask, macs_per_unit));
}

void bf16_matmul(const Tensor& out, const Tensor& a, const Tensor& w) {
  check_tensor(a, kOp, "a", DType::kF32, 2);
  check_tensor(out, kOp, "out", DType::kF32, 2);
  check_tensor(w, kOp, "w", DType::kBF16, 2);
  check_contiguous(w, kOp, "w");
  const int64_t M = a.dim(0), N = w.dim(0), K = w.dim(1);
  check_dim(a, 1, K, kOp, "a");
  check_dim(out, 0, M, kOp, "out");
  check_dim(out, 1, N, kOp, "out");
  SLUICE_CHECK(M <= 1 || a.strides[0] >= K, "{}: a has row stride {} < K = {}", kOp, a.strides[0], K);
  SLUICE_CHECK(M <= 1 || out.strides[0] >= N, "{}: out has row stride {} < N = {}", kOp,
               out.strides[0], N);
  if (M > kBf16DotMaxRows) {
    run_matmul({out, a, w}, isa_kernels(active_isa()));
    return;
  }
  bf16_matmul(bf16_kernels(), f32_data(a), a.strides[0], M, static_cast<const uint16_t*>(w.data),
              N, K, f32_data(out), out.strides[0]);
}

double bf16_error_bound(const uint16_t* w_row, const float* x, int64_t K) {
  double mag = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    mag += std::fabs(static_cast<double>(bf16_to_f32(w_row[k])) * x[k]);
  }
  // Rounding each x to bf16 (8 significant bits): at most 2^-8 relative; the f32 sums: K * 2^-24 relative to the
  // magnitudes summed (a loose worst case).
  return mag * (std::ldexp(1.0, -8) + static_cast<double>(K) * std::ldexp(1.0, -24));
}

}  // namespace sluice::kernels::cpu
