// Host side of the elementwise and row ops (kernels/cuda/elementwise.h): argument validation
// (Tensor views -> Status naming the op and the bad tensor) and translation into the launch
// parameter blocks. Plain C++: elementwise.cu stays free of fmt and std::string.

#include "kernels/cuda/elementwise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

#include "common/checked_math.h"
#include "kernels/cuda/arg_checks.h"

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

// Rows of a [D], [R, D] or [A, B, D] view (the leading dimensions flattened).
int64_t num_rows(const Tensor& t) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < t.ndim; ++d) rows *= t.shape[d];
  return rows;
}

// Row count and width within the launch limits (checked before num_rows is trusted).
Status check_extent(std::string_view op, std::string_view name, const Tensor& t) {
  uint64_t rows = 1;
  for (int d = 0; d + 1 < t.ndim; ++d) {
    const auto r = checked_mul(rows, static_cast<uint64_t>(t.shape[d]));
    rows = r ? *r : std::numeric_limits<uint64_t>::max();
  }
  if (rows > static_cast<uint64_t>(kMaxGridX)) {
    return fail(op, fmt::format("{} has shape {}: too many rows; expected at most {}", name,
                                t.shape_string(), kMaxGridX));
  }
  if (t.dim(-1) > kMaxElementwiseDim) {
    return fail(op, fmt::format("{} has shape {}: rows too long; expected a last dimension of at "
                                "most {}",
                                name, t.shape_string(), kMaxElementwiseDim));
  }
  return Status::ok();
}

int64_t inner_rows(const Tensor& t) { return t.ndim == 3 ? std::max<int64_t>(t.shape[1], 1) : 1; }

// The parameters of a same-shape elementwise pass over out (and a, b laid out like it).
ElementwiseParams same_shape_params(ElementwiseOp op, const Tensor& out, const Tensor& a,
                                    const Tensor* b, float alpha) {
  ElementwiseParams p;
  p.op = op;
  p.out = row_view(out);
  p.a = row_view(a);
  if (b != nullptr) p.b = row_view(*b);
  p.rows = num_rows(out);
  p.inner_rows = inner_rows(out);
  p.dim = static_cast<int32_t>(out.dim(-1));
  p.alpha = alpha;
  p.vectorized = rows_aligned16(out) && rows_aligned16(a) && (b == nullptr || rows_aligned16(*b));
  p.bf16_only = out.dtype == DType::kBF16 && a.dtype == DType::kBF16 &&
                (b == nullptr || b->dtype == DType::kBF16);
  return p;
}

// The parameters of out [R, D] = alpha * rows ids[r] of table [V, D] (zeros for an id
// outside [0, V)): embedding and gather_rows.
ElementwiseParams gather_params(const Tensor& out, const Tensor& table, const Tensor& ids,
                                float alpha) {
  ElementwiseParams p;
  p.op = ElementwiseOp::kScaleCopy;
  p.out = row_view(out);
  p.a = row_view(table);
  p.row_ids = static_cast<const int32_t*>(ids.data);
  p.num_a_rows = table.shape[0];
  p.rows = out.shape[0];
  p.dim = static_cast<int32_t>(out.shape[1]);
  p.alpha = alpha;
  p.vectorized = rows_aligned16(out) && rows_aligned16(table);
  p.bf16_only = out.dtype == DType::kBF16 && table.dtype == DType::kBF16;
  return p;
}

constexpr std::string_view kRowsExpected = "[D], [R, D] or [A, B, D]";

// A named operand of a check.
struct Operand {
  std::string_view name;
  const Tensor& t;
};

// out = f(x, y) element by element: three row tensors of rank min_rank..max_rank and of x's
// shape; out may be x or y exactly (in place) but overlap neither otherwise.
Status check_binary(std::string_view op, Operand x, Operand y, const Tensor& out, int min_rank,
                    int max_rank, std::string_view expected) {
  SLUICE_RETURN_IF_ERROR(check_rows(op, x.name, x.t, min_rank, max_rank, expected));
  SLUICE_RETURN_IF_ERROR(check_rows(op, y.name, y.t, min_rank, max_rank, expected));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", out, min_rank, max_rank, expected));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, y.name, y.t, x.name, x.t));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "out", out, x.name, x.t));
  SLUICE_RETURN_IF_ERROR(check_extent(op, "out", out));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", out, x.name, x.t, true));
  return check_disjoint(op, "out", out, y.name, y.t, true);
}

// x transformed in place (softcap, scale).
Status check_in_place(std::string_view op, const Tensor& x) {
  SLUICE_RETURN_IF_ERROR(check_rows(op, "x", x, 1, 3, kRowsExpected));
  return check_extent(op, "x", x);
}

}  // namespace

Status check_embedding(const EmbeddingArgs& a) {
  constexpr std::string_view op = "embedding";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "table", a.table, 2, 2, "[V, H]"));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", a.out, 2, 2, "[T, H]"));
  const int64_t num_tokens = a.out.shape[0];
  const int64_t hidden = a.table.shape[1];
  if (a.table.shape[0] > 1 && a.table.strides[0] != hidden) {
    return fail(op, fmt::format("table has row stride {}; expected {} (a contiguous [V, H])",
                                a.table.strides[0], hidden));
  }
  if (a.out.shape[1] != hidden) {
    return fail(op, fmt::format("out has shape {} but table has {}; expected [T, {}]",
                                a.out.shape_string(), a.table.shape_string(), hidden));
  }
  SLUICE_RETURN_IF_ERROR(check_extent(op, "out", a.out));
  SLUICE_RETURN_IF_ERROR(check_i32_vector(op, "ids", a.ids, num_tokens, "one per row of out"));
  SLUICE_RETURN_IF_ERROR(check_finite(op, "scale", a.scale));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, "table", a.table, false));
  return check_disjoint(op, "out", a.out, "ids", a.ids, false);
}

void embedding(const EmbeddingArgs& a, void* stream) {
  check_or_die(check_embedding(a));
  launch_elementwise(gather_params(a.out, a.table, a.ids, a.scale), stream);
}

Status check_geglu(const GegluArgs& a) {
  return check_binary("geglu", {"gate", a.gate}, {"up", a.up}, a.out, 2, 2, "[T, I]");
}

void geglu(const GegluArgs& a, void* stream) {
  check_or_die(check_geglu(a));
  launch_elementwise(same_shape_params(ElementwiseOp::kGeglu, a.out, a.gate, &a.up, 1.0f), stream);
}

Status check_softcap(const SoftcapArgs& a) {
  constexpr std::string_view op = "softcap";
  SLUICE_RETURN_IF_ERROR(check_in_place(op, a.x));
  if (!std::isfinite(a.cap) || a.cap <= 0.0f) {
    return fail(op, fmt::format("cap is {}; expected a finite value > 0", a.cap));
  }
  return Status::ok();
}

void softcap(const SoftcapArgs& a, void* stream) {
  check_or_die(check_softcap(a));
  launch_elementwise(same_shape_params(ElementwiseOp::kSoftcap, a.x, a.x, nullptr, a.cap), stream);
}

Status check_add(const AddArgs& a) {
  return check_binary("add", {"a", a.a}, {"b", a.b}, a.out, 1, 3, kRowsExpected);
}

void add(const AddArgs& a, void* stream) {
  check_or_die(check_add(a));
  launch_elementwise(same_shape_params(ElementwiseOp::kAdd, a.out, a.a, &a.b, 1.0f), stream);
}

Status check_scale(const ScaleArgs& a) {
  constexpr std::string_view op = "scale";
  SLUICE_RETURN_IF_ERROR(check_in_place(op, a.x));
  return check_finite(op, "scale", a.scale);
}

void scale(const ScaleArgs& a, void* stream) {
  check_or_die(check_scale(a));
  launch_elementwise(same_shape_params(ElementwiseOp::kScaleCopy, a.x, a.x, nullptr, a.scale),
                     stream);
}

Status check_convert(const ConvertArgs& a) {
  constexpr std::string_view op = "convert";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "in", a.in, 1, 3, kRowsExpected));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", a.out, 1, 3, kRowsExpected));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "out", a.out, "in", a.in));
  SLUICE_RETURN_IF_ERROR(check_extent(op, "out", a.out));
  return check_disjoint(op, "out", a.out, "in", a.in, true);
}

void convert(const ConvertArgs& a, void* stream) {
  check_or_die(check_convert(a));
  launch_elementwise(same_shape_params(ElementwiseOp::kScaleCopy, a.out, a.in, nullptr, 1.0f),
                     stream);
}

Status check_gather_rows(const GatherRowsArgs& a) {
  constexpr std::string_view op = "gather_rows";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "in", a.in, 2, 2, "[T, D]"));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", a.out, 2, 2, "[R, D]"));
  if (a.out.shape[1] != a.in.shape[1]) {
    return fail(op, fmt::format("out has shape {} but in has {}; expected rows of the same width",
                                a.out.shape_string(), a.in.shape_string()));
  }
  SLUICE_RETURN_IF_ERROR(check_extent(op, "out", a.out));
  SLUICE_RETURN_IF_ERROR(
      check_i32_vector(op, "rows", a.rows, a.out.shape[0], "one per row of out"));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, "in", a.in, false));
  return check_disjoint(op, "out", a.out, "rows", a.rows, false);
}

void gather_rows(const GatherRowsArgs& a, void* stream) {
  check_or_die(check_gather_rows(a));
  launch_elementwise(gather_params(a.out, a.in, a.rows, 1.0f), stream);
}

Status check_argmax(const ArgmaxArgs& a) {
  constexpr std::string_view op = "argmax";
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "logits", a.logits));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, "logits", a.logits, DType::kF32));
  SLUICE_RETURN_IF_ERROR(check_layout(op, "logits", a.logits, 2, 2, "[R, V]"));
  const int64_t rows = a.logits.shape[0];
  const int64_t vocab = a.logits.shape[1];
  if (vocab < 1 || vocab > std::numeric_limits<int32_t>::max()) {
    return fail(op, fmt::format("logits has shape {}; expected a last dimension in [1, {}]",
                                a.logits.shape_string(), std::numeric_limits<int32_t>::max()));
  }
  if (rows > kMaxGridX) {
    return fail(op, fmt::format("logits has shape {}: too many rows; expected at most {} (one "
                                "CUDA block per row)",
                                a.logits.shape_string(), kMaxGridX));
  }
  SLUICE_RETURN_IF_ERROR(check_i32_vector(op, "out", a.out, rows, "one per row of logits"));
  return check_disjoint(op, "out", a.out, "logits", a.logits, false);
}

void argmax(const ArgmaxArgs& a, void* stream) {
  check_or_die(check_argmax(a));
  ArgmaxParams p;
  p.logits = static_cast<const float*>(a.logits.data);
  p.out = static_cast<int32_t*>(a.out.data);
  p.row_stride = a.logits.strides[0];
  p.rows = a.logits.shape[0];
  p.dim = static_cast<int32_t>(a.logits.shape[1]);
  p.vectorized = rows_aligned16(a.logits);
  launch_argmax(p, stream);
}

}  // namespace sluice::kernels::cuda
