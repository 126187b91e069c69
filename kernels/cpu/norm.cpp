// Embedding lookup and the RMS norms on the CPU (contracts in kernels/ops.h). All rows are
// independent; threads split rows when there are enough of them.

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "common/half.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

int64_t rows_per_task(int64_t row_len) {
  return std::max<int64_t>(1, kMinElementsPerTask / std::max<int64_t>(1, row_len));
}

// rsqrt(mean(x^2) + eps) over one row, accumulated in f32 by the ISA's dot kernel.
float inv_rms(const float* x, int64_t d, float eps, const IsaKernels& kern) {
  float sum_squares = 0.0f;
  kern.dot_rows(x, x, 0, 1, d, &sum_squares);
  return 1.0f / std::sqrt(sum_squares / static_cast<float>(d) + eps);
}

// The weight actually applied, w, 1 + w or all ones, as one f32 vector (so the row loops
// are plain multiplies that vectorise). Lives in the calling thread's scratch slot 2.
const float* effective_weight(const Tensor& weight, int64_t d, bool one_plus, const char* op) {
  float* w = scratch_floats(2, static_cast<size_t>(d));
  if (!weight.defined()) {
    std::fill(w, w + d, 1.0f);
    return w;
  }
  check_tensor(weight, op, "weight", DType::kF32, 1);
  check_dim(weight, 0, d, op, "weight");
  const float* src = f32_data(weight);
  for (int64_t i = 0; i < d; ++i) w[i] = one_plus ? 1.0f + src[i] : src[i];
  return w;
}

}  // namespace

void run_embedding(const EmbeddingArgs& args) {
  constexpr const char* op = "embedding";
  const Tensor& table = args.table;
  SLUICE_CHECK(table.defined() && table.device == Device::kCpu && table.ndim == 2,
               "{}: table must be a rank-2 CPU tensor, got shape {}", op, table.shape_string());
  SLUICE_CHECK(
      table.dtype == DType::kF32 || table.dtype == DType::kBF16 || table.dtype == DType::kF16,
      "{}: table has dtype {} but must be f32, bf16 or f16", op, dtype_name(table.dtype));
  check_contiguous(table, op, "table");
  check_tensor(args.ids, op, "ids", DType::kI32, 1);
  check_tensor(args.out, op, "out", DType::kF32, 2);
  const int64_t T = args.ids.dim(0);
  const int64_t V = table.dim(0);
  const int64_t H = table.dim(1);
  check_dim(args.out, 0, T, op, "out");
  check_dim(args.out, 1, H, op, "out");
  const int32_t* ids = args.ids.ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    SLUICE_CHECK(ids[t] >= 0 && ids[t] < V, "{}: ids[{}] = {} is outside the table of {} rows", op,
                 t, ids[t], V);
  }
  float* out = f32_data(args.out);
  const int64_t ldo = args.out.strides[0];
  const float scale = args.scale;
  const DType dtype = table.dtype;
  const void* data = table.data;
  parallel_for(
      T,
      [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          float* o = out + t * ldo;
          const int64_t offset = static_cast<int64_t>(ids[t]) * H;
          if (dtype == DType::kF32) {
            const float* src = static_cast<const float*>(data) + offset;
            for (int64_t i = 0; i < H; ++i) o[i] = src[i] * scale;
          } else if (dtype == DType::kBF16) {
            const uint16_t* src = static_cast<const uint16_t*>(data) + offset;
            for (int64_t i = 0; i < H; ++i) o[i] = bf16_to_f32(src[i]) * scale;
          } else {
            const uint16_t* src = static_cast<const uint16_t*>(data) + offset;
            for (int64_t i = 0; i < H; ++i) o[i] = f16_to_f32(src[i]) * scale;
          }
        }
      },
      rows_per_task(H));
}

void run_rms_norm(const RmsNormArgs& args, const IsaKernels& kern) {
  constexpr const char* op = "rms_norm";
  check_tensor(args.in, op, "in", DType::kF32, 2);
  check_tensor(args.out, op, "out", DType::kF32, 2);
  check_same_shape(args.in, args.out, op, "in", "out");
  const int64_t R = args.in.dim(0);
  const int64_t D = args.in.dim(1);
  const float* w = effective_weight(args.weight, D, args.one_plus_weight, op);
  const float* in = f32_data(args.in);
  float* out = f32_data(args.out);
  const int64_t ldi = args.in.strides[0], ldo = args.out.strides[0];
  const float eps = args.eps;
  parallel_for(
      R,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float* x = in + r * ldi;
          float* y = out + r * ldo;
          const float inv = inv_rms(x, D, eps, kern);
          for (int64_t i = 0; i < D; ++i) y[i] = x[i] * inv * w[i];
        }
      },
      rows_per_task(D));
}

void run_add_rms_norm(const AddRmsNormArgs& args, const IsaKernels& kern) {
  constexpr const char* op = "add_rms_norm";
  check_tensor(args.in, op, "in", DType::kF32, 2);
  check_tensor(args.residual, op, "residual", DType::kF32, 2);
  check_same_shape(args.in, args.residual, op, "in", "residual");
  const int64_t R = args.in.dim(0);
  const int64_t D = args.in.dim(1);
  const float* w = effective_weight(args.weight, D, args.one_plus_weight, op);
  const float* in = f32_data(args.in);
  float* residual = f32_data(args.residual);
  const int64_t ldi = args.in.strides[0], ldr = args.residual.strides[0];
  const float eps = args.eps;
  parallel_for(
      R,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float* x = in + r * ldi;
          float* y = residual + r * ldr;
          const float inv = inv_rms(x, D, eps, kern);
          for (int64_t i = 0; i < D; ++i) y[i] += x[i] * inv * w[i];
        }
      },
      rows_per_task(D));
}

}  // namespace sluice::kernels::cpu
