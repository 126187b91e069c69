// Host side of the elementwise and row ops (kernels/cuda/elementwise.h): argument validation
// (Tensor views -> Status naming the op and the bad tensor) and translation into the launch
// parameter blocks. Plain C++: elementwise.cu stays free of fmt and std::string.

#include "kernels/cuda/elementwise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/check.h"
#include "common/checked_math.h"

namespace sluice::kernels::cuda {
namespace {

constexpr int64_t kMaxGridX = std::numeric_limits<int32_t>::max();

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

Status check_float_dtype(std::string_view op, std::string_view name, const Tensor& t) {
  if (t.dtype == DType::kF32 || t.dtype == DType::kBF16) return Status::ok();
  return fail(op, fmt::format("{} has dtype {}; expected f32 or bf16", name, dtype_name(t.dtype)));
}

ElemType elem_type(DType t) { return t == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32; }

// Rank lo..hi, non-negative extents and strides, unit stride in the last dimension.
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

// A device f32|bf16 tensor of rank lo..hi with contiguous rows.
Status check_rows(std::string_view op, std::string_view name, const Tensor& t, int lo, int hi,
                  std::string_view expected) {
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, t));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, name, t));
  return check_layout(op, name, t, lo, hi, expected);
}

bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] != b.shape[d]) return false;
  }
  return true;
}

Status check_same_shape(std::string_view op, std::string_view name, const Tensor& t,
                        std::string_view ref_name, const Tensor& ref) {
  if (same_shape(t, ref)) return Status::ok();
  return fail(op, fmt::format("{} has shape {} but {} has {}; expected equal shapes", name,
                              t.shape_string(), ref_name, ref.shape_string()));
}

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

// A [n] i32 contiguous index vector in device memory.
Status check_index_vector(std::string_view op, std::string_view name, const Tensor& t, int64_t n,
                          std::string_view what) {
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, t));
  if (t.dtype != DType::kI32) {
    return fail(op, fmt::format("{} has dtype {}; expected i32", name, dtype_name(t.dtype)));
  }
  if (t.ndim != 1 || t.shape[0] != n || (n > 1 && t.strides[0] != 1)) {
    return fail(op, fmt::format("{} has shape {}; expected a contiguous [{}] ({})", name,
                                t.shape_string(), n, what));
  }
  return Status::ok();
}

// The memory of a view as `rows` byte ranges [start + i * stride_bytes, + row_bytes), when
// its leading dimensions collapse to one stride (always for rank <= 2).
struct RowRanges {
  int64_t start = 0, rows = 0, stride_bytes = 0, row_bytes = 0;
};

std::optional<RowRanges> row_ranges(const Tensor& t) {
  const auto esize = static_cast<int64_t>(dtype_size(t.dtype));
  RowRanges r;
  r.start = static_cast<int64_t>(reinterpret_cast<uintptr_t>(t.data));
  r.rows = num_rows(t);
  r.row_bytes = t.dim(-1) * esize;
  if (t.ndim == 2) {
    r.stride_bytes = t.strides[0] * esize;
  } else if (t.ndim == 3) {
    // [A, B, D] is one run of rows when A == 1, B == 1 or stride0 == B * stride1.
    if (t.shape[0] == 1 || t.shape[1] == 1) {
      r.stride_bytes = (t.shape[0] == 1 ? t.strides[1] : t.strides[0]) * esize;
    } else if (t.strides[0] == t.shape[1] * t.strides[1]) {
      r.stride_bytes = t.strides[1] * esize;
    } else {
      return std::nullopt;
    }
  }
  if (r.rows <= 1) r.stride_bytes = 0;
  return r;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Bytes [begin, end) that a non-empty strided view can touch.
struct ByteSpan {
  uintptr_t begin = 0, end = 0;
};

ByteSpan byte_span(const Tensor& t) {
  int64_t last = 0;
  for (int d = 0; d < t.ndim; ++d) last += (t.shape[d] - 1) * t.strides[d];
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  return {begin, begin + static_cast<uintptr_t>(last + 1) * dtype_size(t.dtype)};
}

// Whether two views can share a byte. Exact for two sets of rows with the same stride (e.g.
// gate and up as the two halves of one fused projection, whose byte spans interleave but
// whose elements do not); otherwise conservative (their whole spans).
bool views_overlap(const Tensor& x, const Tensor& y) {
  if (x.numel() == 0 || y.numel() == 0) return false;
  const ByteSpan x_span = byte_span(x);
  const ByteSpan y_span = byte_span(y);
  if (x_span.end <= y_span.begin || y_span.end <= x_span.begin) return false;
  const auto a = row_ranges(x);
  const auto b = row_ranges(y);
  if (!a || !b) return true;
  // One shared stride S at least as long as each row (a single row takes the other's).
  const int64_t s = a->rows > 1 ? a->stride_bytes : b->stride_bytes;
  if (s == 0) return true;  // two single rows whose spans intersect
  if ((b->rows > 1 && b->stride_bytes != s) || a->row_bytes > s || b->row_bytes > s) return true;
  // Row i of a meets row j of b iff, with k = i - j and d = b.start - a.start,
  // d - a.row_bytes < k * S < d + b.row_bytes.
  const int64_t d = b->start - a->start;
  const int64_t k_lo = std::max(floor_div(d - a->row_bytes, s) + 1, -(b->rows - 1));
  const int64_t k_hi = std::min(-floor_div(-(d + b->row_bytes), s) - 1, a->rows - 1);
  return k_lo <= k_hi;
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
  if (!views_overlap(written, other)) return Status::ok();
  return fail(op, fmt::format("{} overlaps {} in memory; expected {}", written_name, other_name,
                              allow_same_view ? "the same view (in place) or disjoint memory"
                                              : "disjoint memory"));
}

Status check_finite(std::string_view op, std::string_view name, float v) {
  if (std::isfinite(v)) return Status::ok();
  return fail(op, fmt::format("{} is {}; expected a finite value", name, v));
}

void check_or_die(const Status& status) { SLUICE_CHECK(status.is_ok(), "{}", status.message()); }

// A [D], [R, D] or [A, B, D] view as the kernels see it.
RowView row_view(const Tensor& t) {
  RowView v;
  v.data = t.data;
  v.type = elem_type(t.dtype);
  if (t.ndim >= 2) v.outer_stride = t.strides[0];
  if (t.ndim == 3) v.inner_stride = t.strides[1];
  return v;
}

int64_t inner_rows(const Tensor& t) { return t.ndim == 3 ? std::max<int64_t>(t.shape[1], 1) : 1; }

// Every row start 16-byte aligned: the pointer and every stride of a dimension with more than
// one row.
bool rows_aligned(const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) return false;
  const auto esize = static_cast<int64_t>(dtype_size(t.dtype));
  for (int d = 0; d + 1 < t.ndim; ++d) {
    if (t.shape[d] > 1 && (t.strides[d] * esize) % 16 != 0) return false;
  }
  return true;
}

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
  p.vectorized = rows_aligned(out) && rows_aligned(a) && (b == nullptr || rows_aligned(*b));
  p.bf16_only = out.dtype == DType::kBF16 && a.dtype == DType::kBF16 &&
                (b == nullptr || b->dtype == DType::kBF16);
  return p;
}

constexpr std::string_view kRowsExpected = "[D], [R, D] or [A, B, D]";

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
  SLUICE_RETURN_IF_ERROR(check_index_vector(op, "ids", a.ids, num_tokens, "one per row of out"));
  SLUICE_RETURN_IF_ERROR(check_finite(op, "scale", a.scale));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, "table", a.table, false));
  return check_disjoint(op, "out", a.out, "ids", a.ids, false);
}

void embedding(const EmbeddingArgs& a, void* stream) {
  check_or_die(check_embedding(a));
  ElementwiseParams p;
  p.op = ElementwiseOp::kScaleCopy;
  p.out = row_view(a.out);
  p.a = row_view(a.table);
  p.a.outer_stride = a.table.shape[1];
  p.row_ids = static_cast<const int32_t*>(a.ids.data);
  p.num_a_rows = a.table.shape[0];
  p.rows = a.out.shape[0];
  p.dim = static_cast<int32_t>(a.out.shape[1]);
  p.alpha = a.scale;
  p.vectorized = rows_aligned(a.out) && rows_aligned(a.table);
  p.bf16_only = a.out.dtype == DType::kBF16 && a.table.dtype == DType::kBF16;
  launch_elementwise(p, stream);
}

Status check_geglu(const GegluArgs& a) {
  constexpr std::string_view op = "geglu";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "gate", a.gate, 2, 2, "[T, I]"));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "up", a.up, 2, 2, "[T, I]"));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", a.out, 2, 2, "[T, I]"));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "up", a.up, "gate", a.gate));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "out", a.out, "gate", a.gate));
  SLUICE_RETURN_IF_ERROR(check_extent(op, "out", a.out));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, "gate", a.gate, true));
  return check_disjoint(op, "out", a.out, "up", a.up, true);
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
  constexpr std::string_view op = "add";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "a", a.a, 1, 3, kRowsExpected));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "b", a.b, 1, 3, kRowsExpected));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", a.out, 1, 3, kRowsExpected));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "b", a.b, "a", a.a));
  SLUICE_RETURN_IF_ERROR(check_same_shape(op, "out", a.out, "a", a.a));
  SLUICE_RETURN_IF_ERROR(check_extent(op, "out", a.out));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, "a", a.a, true));
  return check_disjoint(op, "out", a.out, "b", a.b, true);
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
      check_index_vector(op, "rows", a.rows, a.out.shape[0], "one per row of out"));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, "in", a.in, false));
  return check_disjoint(op, "out", a.out, "rows", a.rows, false);
}

void gather_rows(const GatherRowsArgs& a, void* stream) {
  check_or_die(check_gather_rows(a));
  ElementwiseParams p;
  p.op = ElementwiseOp::kScaleCopy;
  p.out = row_view(a.out);
  p.a = row_view(a.in);
  p.row_ids = static_cast<const int32_t*>(a.rows.data);
  p.num_a_rows = a.in.shape[0];
  p.rows = a.out.shape[0];
  p.dim = static_cast<int32_t>(a.out.shape[1]);
  p.alpha = 1.0f;
  p.vectorized = rows_aligned(a.out) && rows_aligned(a.in);
  p.bf16_only = a.out.dtype == DType::kBF16 && a.in.dtype == DType::kBF16;
  launch_elementwise(p, stream);
}

Status check_argmax(const ArgmaxArgs& a) {
  constexpr std::string_view op = "argmax";
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "logits", a.logits));
  if (a.logits.dtype != DType::kF32) {
    return fail(op, fmt::format("logits has dtype {}; expected f32", dtype_name(a.logits.dtype)));
  }
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
  SLUICE_RETURN_IF_ERROR(check_index_vector(op, "out", a.out, rows, "one per row of logits"));
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
  p.vectorized = rows_aligned(a.logits);
  launch_argmax(p, stream);
}

}  // namespace sluice::kernels::cuda
