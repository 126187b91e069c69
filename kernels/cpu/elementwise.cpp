// The elementwise and row-wise ops on the CPU: geglu, softmax, softcap, add, scale
// (contracts in kernels/ops.h). Long flat loops are split evenly over the pool.

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

int64_t rows_per_task(int64_t row_len) {
  return std::max<int64_t>(1, kMinElementsPerTask / std::max<int64_t>(1, row_len));
}

// A contiguous f32 tensor of any rank.
void check_flat_f32(const Tensor& t, const char* op, const char* name) {
  SLUICE_CHECK(t.ndim >= 1, "{}: {} has rank 0", op, name);
  check_tensor(t, op, name, DType::kF32, t.ndim);
  check_contiguous(t, op, name);
}

}  // namespace

void run_geglu(const GegluArgs& args, const IsaKernels& kern) {
  constexpr const char* op = "geglu";
  check_tensor(args.gate, op, "gate", DType::kF32, 2);
  check_tensor(args.up, op, "up", DType::kF32, 2);
  check_tensor(args.out, op, "out", DType::kF32, 2);
  check_same_shape(args.gate, args.up, op, "gate", "up");
  check_same_shape(args.gate, args.out, op, "gate", "out");
  check_contiguous(args.out, op, "out");
  const int64_t T = args.gate.dim(0);
  const int64_t I = args.gate.dim(1);
  const float* gate = f32_data(args.gate);
  const float* up = f32_data(args.up);
  float* out = f32_data(args.out);
  const int64_t ldg = args.gate.strides[0], ldu = args.up.strides[0];
  if (T == 1 || (ldg == I && ldu == I)) {
    // One flat run (decode, or contiguous inputs): split the elements, not the rows.
    parallel_for(
        T * I,
        [&](int64_t begin, int64_t end) {
          kern.geglu(gate + begin, up + begin, out + begin, end - begin);
        },
        kMinElementsPerTask);
    return;
  }
  parallel_for(
      T,
      [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t)
          kern.geglu(gate + t * ldg, up + t * ldu, out + t * I, I);
      },
      rows_per_task(I));
}

void run_softmax(const SoftmaxArgs& args, const IsaKernels& kern) {
  constexpr const char* op = "softmax";
  check_flat_f32(args.x, op, "x");
  const int64_t D = args.x.dim(-1);
  const int64_t R = D == 0 ? 0 : args.x.numel() / D;
  float* x = f32_data(args.x);
  parallel_for(
      R,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          float* row = x + r * D;
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t i = 0; i < D; ++i) max = std::max(max, row[i]);
          const float inv = 1.0f / kern.exp_sum(row, D, max, row);
          for (int64_t i = 0; i < D; ++i) row[i] *= inv;
        }
      },
      rows_per_task(D));
}

void run_softcap(const SoftcapArgs& args) {
  constexpr const char* op = "softcap";
  check_flat_f32(args.x, op, "x");
  SLUICE_CHECK(args.cap > 0.0f, "{}: cap {} must be > 0", op, args.cap);
  float* x = f32_data(args.x);
  const float cap = args.cap;
  parallel_for(
      args.x.numel(),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) x[i] = cap * std::tanh(x[i] / cap);
      },
      kMinElementsPerTask / 8);  // tanh is expensive: split sooner
}

void run_add(const AddArgs& args) {
  constexpr const char* op = "add";
  check_flat_f32(args.a, op, "a");
  check_flat_f32(args.b, op, "b");
  check_flat_f32(args.out, op, "out");
  check_same_shape(args.a, args.b, op, "a", "b");
  check_same_shape(args.a, args.out, op, "a", "out");
  const float* a = f32_data(args.a);
  const float* b = f32_data(args.b);
  float* out = f32_data(args.out);
  parallel_for(
      args.out.numel(),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
      },
      kMinElementsPerTask);
}

void run_scale(const ScaleArgs& args) {
  constexpr const char* op = "scale";
  check_flat_f32(args.x, op, "x");
  float* x = f32_data(args.x);
  const float s = args.scale;
  parallel_for(
      args.x.numel(),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) x[i] *= s;
      },
      kMinElementsPerTask);
}

}  // namespace sluice::kernels::cpu
