// Host side of the CUDA ops: argument validation (Tensor views -> Status naming the bad
// tensor) and translation into the kernels' parameter blocks (kernel_params.h). Plain C++:
// the .cu files stay free of fmt and std::string, which keeps nvcc's work small.

#include "kernels/cuda/cuda_ops.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

#include "common/checked_math.h"
#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/kernel_params.h"

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

// A per-row weight: undefined (no weight) or [dim] f32|bf16 contiguous on the device.
Status check_weight(std::string_view op, std::string_view name, const Tensor& w, int64_t dim) {
  if (!w.defined()) return Status::ok();
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, w));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, name, w));
  if (w.ndim != 1 || w.shape[0] != dim) {
    return fail(op, fmt::format("{} has shape {}; expected [{}] (the last dimension of the "
                                "rows it scales)",
                                name, w.shape_string(), dim));
  }
  if (dim > 1 && w.strides[0] != 1) {
    return fail(op,
                fmt::format("{} has stride {}; expected a contiguous vector", name, w.strides[0]));
  }
  return Status::ok();
}

struct NormTensors {
  const Tensor* in = nullptr;
  const Tensor* out = nullptr;       // kNorm, kAddThenNorm
  const Tensor* residual = nullptr;  // kAdd, kAddThenNorm
  const Tensor* weight = nullptr;
  const Tensor* out_weight = nullptr;  // kAddThenNorm
  float eps = 0.0f;
  bool one_plus_weight = false;
};

Status check_norm_rows(std::string_view op, std::string_view name, const Tensor& t) {
  return check_rows(op, name, t, 2, 3, "[rows, D] or [A, B, D]");
}

Status check_norm(std::string_view op, NormMode mode, const NormTensors& n) {
  const Tensor& in = *n.in;
  SLUICE_RETURN_IF_ERROR(check_norm_rows(op, "in", in));
  const bool has_out = mode != NormMode::kAdd;
  const bool has_residual = mode != NormMode::kNorm;
  if (has_out) {
    SLUICE_RETURN_IF_ERROR(check_norm_rows(op, "out", *n.out));
  }
  if (has_residual) {
    SLUICE_RETURN_IF_ERROR(check_norm_rows(op, "residual", *n.residual));
  }
  if (has_out) {
    SLUICE_RETURN_IF_ERROR(check_same_shape(op, "out", *n.out, "in", in));
  }
  if (has_residual) {
    SLUICE_RETURN_IF_ERROR(check_same_shape(op, "residual", *n.residual, "in", in));
  }
  const int64_t dim = in.dim(-1);
  if (dim < 1 || dim > std::numeric_limits<int32_t>::max()) {
    return fail(op, fmt::format("in has shape {}; expected a last dimension in [1, {}]",
                                in.shape_string(), std::numeric_limits<int32_t>::max()));
  }
  const auto rows = checked_product(
      {static_cast<uint64_t>(in.shape[0]), static_cast<uint64_t>(in.ndim == 3 ? in.shape[1] : 1)});
  if (!rows || *rows > static_cast<uint64_t>(kMaxGridX)) {
    return fail(op, fmt::format("in has shape {}: too many rows; expected at most {} (one CUDA "
                                "block per row)",
                                in.shape_string(), kMaxGridX));
  }
  SLUICE_RETURN_IF_ERROR(check_weight(op, "weight", *n.weight, dim));
  if (mode == NormMode::kAddThenNorm) {
    SLUICE_RETURN_IF_ERROR(check_weight(op, "out_weight", *n.out_weight, dim));
  }
  if (!std::isfinite(n.eps) || n.eps < 0.0f) {
    return fail(op, fmt::format("eps is {}; expected a finite value >= 0", n.eps));
  }
  if (has_residual) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "residual", *n.residual, "in", in, false));
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "residual", *n.residual, "weight", *n.weight, false));
  }
  if (has_out) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", *n.out, "in", in, true));
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", *n.out, "weight", *n.weight, false));
  }
  if (mode == NormMode::kAddThenNorm) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "residual", *n.residual, "out", *n.out, false));
    SLUICE_RETURN_IF_ERROR(
        check_disjoint(op, "residual", *n.residual, "out_weight", *n.out_weight, false));
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", *n.out, "out_weight", *n.out_weight, false));
  }
  return Status::ok();
}

NormWeight weight_form(const Tensor& w, bool one_plus) {
  if (!w.defined()) return NormWeight::kNone;
  return one_plus ? NormWeight::kOnePlus : NormWeight::kPlain;
}

// The parameter block of checked norm arguments.
RmsNormParams norm_params(NormMode mode, const NormTensors& n) {
  const Tensor& in = *n.in;
  RmsNormParams p;
  p.mode = mode;
  p.in = row_view(in);
  bool vectorized = rows_aligned16(in);
  if (mode != NormMode::kAdd) {
    p.out = row_view(*n.out);
    vectorized = vectorized && rows_aligned16(*n.out);
  }
  if (mode != NormMode::kNorm) {
    p.residual = row_view(*n.residual);
    vectorized = vectorized && rows_aligned16(*n.residual);
  }
  p.weight = n.weight->data;
  p.weight_type = elem_type(n.weight->dtype);
  p.weight_form = weight_form(*n.weight, n.one_plus_weight);
  if (mode == NormMode::kAddThenNorm) {
    p.out_weight = n.out_weight->data;
    p.out_weight_type = elem_type(n.out_weight->dtype);
    p.out_weight_form = weight_form(*n.out_weight, n.one_plus_weight);
  }
  for (const void* w : {p.weight, p.out_weight}) vectorized = vectorized && aligned16(w);
  p.vectorized = vectorized;
  p.dim = static_cast<int32_t>(in.dim(-1));
  p.inner_rows = in.ndim == 3 ? in.shape[1] : 1;
  p.rows = in.shape[0] * p.inner_rows;
  p.eps = n.eps;
  return p;
}

void run_norm(std::string_view op, NormMode mode, const NormTensors& n, void* stream) {
  check_or_die(check_norm(op, mode, n));
  launch_rms_norm(norm_params(mode, n), stream);
}

}  // namespace

Status check_rms_norm(const RmsNormArgs& a) {
  return check_norm("rms_norm", NormMode::kNorm,
                    {&a.in, &a.out, nullptr, &a.weight, nullptr, a.eps, a.one_plus_weight});
}

void rms_norm(const RmsNormArgs& a, void* stream) {
  run_norm("rms_norm", NormMode::kNorm,
           {&a.in, &a.out, nullptr, &a.weight, nullptr, a.eps, a.one_plus_weight}, stream);
}

Status check_rms_norm2(const RmsNorm2Args& a) {
  constexpr std::string_view op = "rms_norm2";
  SLUICE_RETURN_IF_ERROR(
      check_norm(op, NormMode::kNorm, {&a.in, &a.out, nullptr, &a.weight, nullptr, a.eps, false}));
  SLUICE_RETURN_IF_ERROR(check_norm_rows(op, "out2", a.out2));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "out2", a.out2, "in", a.in));
  SLUICE_RETURN_IF_ERROR(check_weight(op, "weight2", a.weight2, a.in.dim(-1)));
  const std::pair<std::string_view, const Tensor*> others[] = {
      {"in", &a.in}, {"out", &a.out}, {"weight", &a.weight}, {"weight2", &a.weight2}};
  for (const auto& [name, t] : others) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out2", a.out2, name, *t));
  }
  return check_disjoint(op, "out", a.out, "weight2", a.weight2);
}

void rms_norm2(const RmsNorm2Args& a, void* stream) {
  check_or_die(check_rms_norm2(a));
  RmsNormParams p = norm_params(
      NormMode::kNorm, {&a.in, &a.out, nullptr, &a.weight, nullptr, a.eps, a.one_plus_weight});
  p.out2 = row_view(a.out2);
  p.out_weight = a.weight2.data;
  p.out_weight_type = elem_type(a.weight2.defined() ? a.weight2.dtype : DType::kF32);
  p.out_weight_form = weight_form(a.weight2, a.one_plus_weight);
  p.vectorized = p.vectorized && rows_aligned16(a.out2) && aligned16(a.weight2.data);
  launch_rms_norm(p, stream);
}

Status check_add_rms_norm(const AddRmsNormArgs& a) {
  return check_norm("add_rms_norm", NormMode::kAdd,
                    {&a.in, nullptr, &a.residual, &a.weight, nullptr, a.eps, a.one_plus_weight});
}

void add_rms_norm(const AddRmsNormArgs& a, void* stream) {
  run_norm("add_rms_norm", NormMode::kAdd,
           {&a.in, nullptr, &a.residual, &a.weight, nullptr, a.eps, a.one_plus_weight}, stream);
}

Status check_fused_add_rms_norm(const FusedAddRmsNormArgs& a) {
  return check_norm(
      "fused_add_rms_norm", NormMode::kAddThenNorm,
      {&a.in, &a.out, &a.residual, &a.weight, &a.out_weight, a.eps, a.one_plus_weight});
}

void fused_add_rms_norm(const FusedAddRmsNormArgs& a, void* stream) {
  run_norm("fused_add_rms_norm", NormMode::kAddThenNorm,
           {&a.in, &a.out, &a.residual, &a.weight, &a.out_weight, a.eps, a.one_plus_weight},
           stream);
}

Status check_residual_tail(const ResidualTailArgs& a) {
  constexpr std::string_view op = "residual_tail";
  const std::pair<std::string_view, const Tensor*> rows[] = {
      {"residual", &a.residual}, {"in", &a.in}, {"in2", &a.in2}, {"out", &a.out}};
  for (const auto& [name, t] : rows) {
    if (t != &a.residual && t != &a.in && !t->defined()) continue;
    SLUICE_RETURN_IF_ERROR(check_rows(op, name, *t, 2, 2, "[rows, D]"));
    SLUICE_RETURN_IF_ERROR(check_same_shape(op, name, *t, "residual", a.residual));
  }
  if (!a.in2.defined() && (a.in_weight.defined() || a.in2_weight.defined())) {
    return fail(op, "in_weight or in2_weight is given without in2; expected them only with in2");
  }
  const int64_t dim = a.residual.shape[1];
  if (dim < 1 || dim > std::numeric_limits<int32_t>::max() || a.residual.shape[0] > kMaxGridX) {
    return fail(
        op, fmt::format("residual has shape {}; expected 1 to {} columns and at most {} "
                        "rows",
                        a.residual.shape_string(), std::numeric_limits<int32_t>::max(), kMaxGridX));
  }
  const std::pair<std::string_view, const Tensor*> weights[] = {{"weight", &a.weight},
                                                                {"in_weight", &a.in_weight},
                                                                {"in2_weight", &a.in2_weight},
                                                                {"out_weight", &a.out_weight}};
  for (const auto& [name, w] : weights) SLUICE_RETURN_IF_ERROR(check_weight(op, name, *w, dim));
  if (!std::isfinite(a.eps) || a.eps < 0.0f) {
    return fail(op, fmt::format("eps is {}; expected a finite value >= 0", a.eps));
  }
  SLUICE_RETURN_IF_ERROR(check_finite(op, "scale", a.scale));
  // residual and out are written: disjoint from every other tensor.
  for (const auto& [written_name, written] : {rows[0], rows[3]}) {
    for (const auto& [name, t] : rows) {
      if (t == written || (written == &a.out && t == &a.residual)) continue;
      SLUICE_RETURN_IF_ERROR(check_disjoint(op, written_name, *written, name, *t));
    }
    for (const auto& [name, w] : weights) {
      SLUICE_RETURN_IF_ERROR(check_disjoint(op, written_name, *written, name, *w));
    }
  }
  return Status::ok();
}

void residual_tail(const ResidualTailArgs& a, void* stream) {
  check_or_die(check_residual_tail(a));
  auto ref = [&](const Tensor& w) {
    return NormWeightRef{w.data, w.defined() ? elem_type(w.dtype) : ElemType::kF32,
                         weight_form(w, a.one_plus_weight)};
  };
  ResidualTailParams p;
  p.residual = row_view(a.residual);
  p.in = row_view(a.in);
  bool vectorized = rows_aligned16(a.residual) && rows_aligned16(a.in);
  for (const auto& [view, t] : {std::pair{&p.in2, &a.in2}, std::pair{&p.out, &a.out}}) {
    if (!t->defined()) continue;
    *view = row_view(*t);
    vectorized = vectorized && rows_aligned16(*t);
  }
  p.weight = ref(a.weight);
  p.in_weight = ref(a.in_weight);
  p.in2_weight = ref(a.in2_weight);
  p.out_weight = ref(a.out_weight);
  for (const Tensor* w : {&a.weight, &a.in_weight, &a.in2_weight, &a.out_weight}) {
    vectorized = vectorized && aligned16(w->data);
  }
  p.vectorized = vectorized;
  p.scale = a.scale;
  p.dim = static_cast<int32_t>(a.residual.shape[1]);
  p.rows = a.residual.shape[0];
  p.eps = a.eps;
  launch_residual_tail(p, stream);
}

Status check_rope(const RopeArgs& a) {
  constexpr std::string_view op = "rope";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "x", a.x, 3, 3, "[T, num_heads, head_dim]"));
  const int64_t num_tokens = a.x.shape[0];
  const int64_t num_heads = a.x.shape[1];
  const int64_t head_dim = a.x.shape[2];
  SLUICE_RETURN_IF_ERROR(
      check_i32_vector(op, "positions", a.positions, num_tokens,
                       fmt::format("one per token of x {}", a.x.shape_string())));
  if (num_tokens > kMaxGridX || num_heads > kMaxGridYZ) {
    return fail(op, fmt::format("x has shape {}; expected at most {} tokens and {} heads",
                                a.x.shape_string(), kMaxGridX, kMaxGridYZ));
  }
  if (a.num_pairs < 0 || a.num_pairs > kMaxRopePairs) {
    return fail(op, fmt::format("num_pairs is {}; expected 0 to {}", a.num_pairs, kMaxRopePairs));
  }
  if (a.pair_offset < a.num_pairs || static_cast<int64_t>(a.num_pairs) + a.pair_offset > head_dim) {
    return fail(op, fmt::format("num_pairs {} with pair_offset {} does not fit head_dim {}; "
                                "expected num_pairs <= pair_offset and num_pairs + pair_offset "
                                "<= head_dim",
                                a.num_pairs, a.pair_offset, head_dim));
  }
  if (a.freq_dim < 1) {
    return fail(op, fmt::format("freq_dim is {}; expected >= 1", a.freq_dim));
  }
  if (!std::isfinite(a.theta) || a.theta <= 0.0f) {
    return fail(op, fmt::format("theta is {}; expected a finite value > 0", a.theta));
  }
  SLUICE_RETURN_IF_ERROR(check_finite(op, "freq_scale", a.freq_scale));
  return check_disjoint(op, "x", a.x, "positions", a.positions, false);
}

void rope(const RopeArgs& a, void* stream) {
  check_or_die(check_rope(a));
  launch_rope(rope_params(a), stream);
}

}  // namespace sluice::kernels::cuda
