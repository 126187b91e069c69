// Host side of the CUDA ops: argument validation (Tensor views -> Status naming the bad
// tensor) and translation into the kernels' parameter blocks (kernel_params.h). Plain C++:
// the .cu files stay free of fmt and std::string, which keeps nvcc's work small.

#include "kernels/cuda/cuda_ops.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

#include "common/check.h"
#include "common/checked_math.h"
#include "kernels/cuda/kernel_params.h"

namespace sluice::kernels::cuda {
namespace {

constexpr int64_t kMaxGridX = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxGridY = 65535;

Status fail(std::string_view op, std::string message) {
  return Status::invalid_argument(fmt::format("{}: {}", op, message));
}

Status check_on_device(std::string_view op, std::string_view name, const Tensor& t) {
  if (!t.defined()) return fail(op, fmt::format("{} is undefined (null data)", name));
  if (t.device != Device::kCuda) {
    return fail(op, fmt::format("{} is in host memory (Device::kCpu); expected a view of device "
                                "memory (Device::kCuda)",
                                name));
  }
  return Status::ok();
}

bool is_float_type(DType t) { return t == DType::kF32 || t == DType::kBF16; }

ElemType elem_type(DType t) { return t == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32; }

Status check_float_dtype(std::string_view op, std::string_view name, const Tensor& t) {
  if (is_float_type(t.dtype)) return Status::ok();
  return fail(op, fmt::format("{} has dtype {}; expected f32 or bf16", name, dtype_name(t.dtype)));
}

// Shape ranks lo..hi, non-negative extents and strides, unit stride in the last dimension.
Status check_layout(std::string_view op, std::string_view name, const Tensor& t, int lo, int hi,
                    std::string_view expected) {
  if (t.ndim < lo || t.ndim > hi) {
    return fail(op, fmt::format("{} has shape {}; expected {}", name, t.shape_string(), expected));
  }
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] < 0 || t.strides[d] < 0) {
      return fail(op, fmt::format("{} has shape {} with stride {} in dimension {}; expected "
                                  "non-negative extents and strides",
                                  name, t.shape_string(), t.strides[d], d));
    }
  }
  const int last = t.ndim - 1;
  if (t.shape[last] > 1 && t.strides[last] != 1) {
    return fail(op, fmt::format("{} has stride {} in its last dimension; expected 1 (contiguous "
                                "rows)",
                                name, t.strides[last]));
  }
  return Status::ok();
}

bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] != b.shape[d]) return false;
  }
  return true;
}

// Bytes [begin, end) that a strided view can touch; empty for an empty view.
struct ByteSpan {
  uintptr_t begin = 0, end = 0;
};

ByteSpan byte_span(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return {};
  int64_t last = 0;
  for (int d = 0; d < t.ndim; ++d) last += (t.shape[d] - 1) * t.strides[d];
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  return {begin, begin + static_cast<uintptr_t>(last + 1) * dtype_size(t.dtype)};
}

// The same elements with the same layout: a permitted in-place alias.
bool same_view(const Tensor& a, const Tensor& b) {
  if (a.data != b.data || a.dtype != b.dtype || !same_shape(a, b)) return false;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] > 1 && a.strides[d] != b.strides[d]) return false;
  }
  return true;
}

// `written` must not share memory with `other`, except as the same view when allowed.
Status check_disjoint(std::string_view op, std::string_view written_name, const Tensor& written,
                      std::string_view other_name, const Tensor& other, bool allow_same_view) {
  if (allow_same_view && same_view(written, other)) return Status::ok();
  const ByteSpan a = byte_span(written);
  const ByteSpan b = byte_span(other);
  if (a.begin < b.end && b.begin < a.end) {
    return fail(op, fmt::format("{} overlaps {} in memory; expected {}", written_name, other_name,
                                allow_same_view ? "the same view (in place) or disjoint memory"
                                                : "disjoint memory"));
  }
  return Status::ok();
}

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

Status check_rows(std::string_view op, std::string_view name, const Tensor& t) {
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, t));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, name, t));
  return check_layout(op, name, t, 2, 3, "[rows, D] or [A, B, D]");
}

Status check_norm(std::string_view op, NormMode mode, const NormTensors& n) {
  const Tensor& in = *n.in;
  SLUICE_RETURN_IF_ERROR(check_rows(op, "in", in));
  const bool has_out = mode != NormMode::kAdd;
  const bool has_residual = mode != NormMode::kNorm;
  if (has_out) {
    SLUICE_RETURN_IF_ERROR(check_rows(op, "out", *n.out));
  }
  if (has_residual) {
    SLUICE_RETURN_IF_ERROR(check_rows(op, "residual", *n.residual));
  }
  auto check_shape = [&](std::string_view name, const Tensor& t) {
    if (same_shape(t, in)) return Status::ok();
    return fail(op, fmt::format("{} has shape {} but in has {}; expected equal shapes", name,
                                t.shape_string(), in.shape_string()));
  };
  if (has_out) {
    SLUICE_RETURN_IF_ERROR(check_shape("out", *n.out));
  }
  if (has_residual) {
    SLUICE_RETURN_IF_ERROR(check_shape("residual", *n.residual));
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

// Element strides of a [R, D] or [A, B, D] view as a RowView (see kernel_params.h). A
// dimension of extent 1 contributes stride 0, so it cannot spoil the alignment test.
RowView row_view(const Tensor& t) {
  RowView v;
  v.data = t.data;
  v.type = elem_type(t.dtype);
  v.outer_stride = t.shape[0] > 1 ? t.strides[0] : 0;
  v.inner_stride = t.ndim == 3 && t.shape[1] > 1 ? t.strides[1] : 0;
  return v;
}

bool aligned16(const RowView& v) {
  const int64_t size = v.type == ElemType::kBF16 ? 2 : 4;
  return reinterpret_cast<uintptr_t>(v.data) % 16 == 0 && (v.outer_stride * size) % 16 == 0 &&
         (v.inner_stride * size) % 16 == 0;
}

NormWeight weight_form(const Tensor& w, bool one_plus) {
  if (!w.defined()) return NormWeight::kNone;
  return one_plus ? NormWeight::kOnePlus : NormWeight::kPlain;
}

void run_norm(std::string_view op, NormMode mode, const NormTensors& n, void* stream) {
  const Status status = check_norm(op, mode, n);
  SLUICE_CHECK(status.is_ok(), "{}", status.message());
  const Tensor& in = *n.in;
  RmsNormParams p;
  p.mode = mode;
  p.in = row_view(in);
  bool vectorized = aligned16(p.in);
  if (mode != NormMode::kAdd) {
    p.out = row_view(*n.out);
    vectorized = vectorized && aligned16(p.out);
  }
  if (mode != NormMode::kNorm) {
    p.residual = row_view(*n.residual);
    vectorized = vectorized && aligned16(p.residual);
  }
  p.weight = n.weight->data;
  p.weight_type = elem_type(n.weight->dtype);
  p.weight_form = weight_form(*n.weight, n.one_plus_weight);
  if (mode == NormMode::kAddThenNorm) {
    p.out_weight = n.out_weight->data;
    p.out_weight_type = elem_type(n.out_weight->dtype);
    p.out_weight_form = weight_form(*n.out_weight, n.one_plus_weight);
  }
  for (const void* w : {p.weight, p.out_weight}) {
    vectorized = vectorized && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  }
  p.vectorized = vectorized;
  p.dim = static_cast<int32_t>(in.dim(-1));
  p.inner_rows = in.ndim == 3 ? in.shape[1] : 1;
  p.rows = in.shape[0] * p.inner_rows;
  p.eps = n.eps;
  launch_rms_norm(p, stream);
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

Status check_rope(const RopeArgs& a) {
  constexpr std::string_view op = "rope";
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "x", a.x));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, "x", a.x));
  SLUICE_RETURN_IF_ERROR(check_layout(op, "x", a.x, 3, 3, "[T, num_heads, head_dim]"));
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "positions", a.positions));
  const int64_t num_tokens = a.x.shape[0];
  const int64_t num_heads = a.x.shape[1];
  const int64_t head_dim = a.x.shape[2];
  if (a.positions.dtype != DType::kI32) {
    return fail(op,
                fmt::format("positions has dtype {}; expected i32", dtype_name(a.positions.dtype)));
  }
  if (a.positions.ndim != 1 || a.positions.shape[0] != num_tokens ||
      (num_tokens > 1 && a.positions.strides[0] != 1)) {
    return fail(op, fmt::format("positions has shape {}; expected a contiguous [{}] (one per "
                                "token of x {})",
                                a.positions.shape_string(), num_tokens, a.x.shape_string()));
  }
  if (num_tokens > kMaxGridX || num_heads > kMaxGridY) {
    return fail(op, fmt::format("x has shape {}; expected at most {} tokens and {} heads",
                                a.x.shape_string(), kMaxGridX, kMaxGridY));
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
  if (!std::isfinite(a.freq_scale)) {
    return fail(op, fmt::format("freq_scale is {}; expected a finite value", a.freq_scale));
  }
  return check_disjoint(op, "x", a.x, "positions", a.positions, false);
}

void rope(const RopeArgs& a, void* stream) {
  const Status status = check_rope(a);
  SLUICE_CHECK(status.is_ok(), "{}", status.message());
  RopeParams p;
  p.x = a.x.data;
  p.positions = static_cast<const int32_t*>(a.positions.data);
  p.token_stride = a.x.strides[0];
  p.head_stride = a.x.strides[1];
  p.type = elem_type(a.x.dtype);
  p.num_tokens = static_cast<int32_t>(a.x.shape[0]);
  p.num_heads = static_cast<int32_t>(a.x.shape[1]);
  p.num_pairs = a.num_pairs;
  p.pair_offset = a.pair_offset;
  p.freq_dim = a.freq_dim;
  p.theta = a.theta;
  p.freq_scale = a.freq_scale;
  launch_rope(p, stream);
}

}  // namespace sluice::kernels::cuda
