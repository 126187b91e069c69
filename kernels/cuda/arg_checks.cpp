#include "kernels/cuda/arg_checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "common/check.h"

namespace sluice::kernels::cuda::detail {

Status fail(std::string_view op, std::string_view message) {
  return Status::invalid_argument(fmt::format("{}: {}", op, message));
}

void check_or_die(const Status& status) { SLUICE_CHECK(status.is_ok(), "{}", status.message()); }

Status check_on_device(std::string_view op, std::string_view name, const Tensor& t,
                       bool allow_empty) {
  if (!t.defined()) {
    if (allow_empty && t.numel() == 0) return Status::ok();
    return fail(op, fmt::format("{} is undefined (null data)", name));
  }
  if (t.device != Device::kCuda) {
    return fail(op, fmt::format("{} is in host memory (Device::kCpu); expected a view of device "
                                "memory (Device::kCuda)",
                                name));
  }
  return Status::ok();
}

Status check_dtype(std::string_view op, std::string_view name, const Tensor& t, DType want) {
  if (t.dtype == want) return Status::ok();
  return fail(
      op, fmt::format("{} has dtype {}; expected {}", name, dtype_name(t.dtype), dtype_name(want)));
}

Status check_float_dtype(std::string_view op, std::string_view name, const Tensor& t) {
  if (t.dtype == DType::kF32 || t.dtype == DType::kBF16) return Status::ok();
  return fail(op, fmt::format("{} has dtype {}; expected f32 or bf16", name, dtype_name(t.dtype)));
}

Status check_last_dim_contiguous(std::string_view op, std::string_view name, const Tensor& t) {
  const int last = t.ndim - 1;
  if (last < 0 || t.shape[last] <= 1 || t.strides[last] == 1) return Status::ok();
  return fail(op, fmt::format("{} has stride {} in its last dimension; expected 1 (contiguous "
                              "rows)",
                              name, t.strides[last]));
}

Status check_layout(std::string_view op, std::string_view name, const Tensor& t, int min_rank,
                    int max_rank, std::string_view expected, int64_t max_extent) {
  if (t.ndim < min_rank || t.ndim > max_rank) {
    return fail(op, fmt::format("{} has shape {}; expected {}", name, t.shape_string(), expected));
  }
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] < 0 || t.strides[d] < 0 || (max_extent >= 0 && t.shape[d] > max_extent)) {
      const std::string allowed =
          max_extent >= 0 ? fmt::format("extents in [0, {}] and non-negative strides", max_extent)
                          : std::string("non-negative extents and strides");
      return fail(op, fmt::format("{} has shape {} with stride {} in dimension {}; expected {}",
                                  name, t.shape_string(), t.strides[d], d, allowed));
    }
  }
  return check_last_dim_contiguous(op, name, t);
}

Status check_rows(std::string_view op, std::string_view name, const Tensor& t, int min_rank,
                  int max_rank, std::string_view expected) {
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, t));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, name, t));
  return check_layout(op, name, t, min_rank, max_rank, expected);
}

Status check_i32_vector(std::string_view op, std::string_view name, const Tensor& t, int64_t length,
                        std::string_view what) {
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, t));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, name, t, DType::kI32));
  if (t.ndim != 1 || t.shape[0] != length || (length > 1 && t.strides[0] != 1)) {
    return fail(op,
                fmt::format("{} has shape {}; expected a contiguous [{}]{}", name, t.shape_string(),
                            length, what.empty() ? std::string() : fmt::format(" ({})", what)));
  }
  return Status::ok();
}

Status check_workspace(std::string_view op, const Tensor& workspace, size_t need,
                       std::string_view sizing) {
  if (need == 0) return Status::ok();
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "workspace", workspace));
  const bool contiguous = workspace.is_contiguous();
  if (!contiguous || workspace.nbytes() < need) {
    return fail(op, fmt::format("workspace has shape {} ({} bytes{}); expected at least {} bytes "
                                "in a contiguous buffer ({})",
                                workspace.shape_string(), workspace.nbytes(),
                                contiguous ? "" : ", not contiguous", need, sizing));
  }
  if (!aligned16(workspace.data)) {
    return fail(op, "workspace is not 16-byte aligned; expected a 16-byte aligned buffer");
  }
  return Status::ok();
}

Status check_finite(std::string_view op, std::string_view name, float value) {
  if (std::isfinite(value)) return Status::ok();
  return fail(op, fmt::format("{} is {}; expected a finite value", name, value));
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

ByteSpan byte_span(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return {};
  int64_t last = 0;
  for (int d = 0; d < t.ndim; ++d) last += (t.shape[d] - 1) * t.strides[d];
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  return {begin, begin + static_cast<uintptr_t>(last + 1) * dtype_size(t.dtype)};
}

ByteSpan byte_span(const void* data, size_t bytes) {
  if (data == nullptr || bytes == 0) return {};
  const auto begin = reinterpret_cast<uintptr_t>(data);
  return {begin, begin + bytes};
}

namespace {

bool spans_intersect(ByteSpan a, ByteSpan b) { return a.begin < b.end && b.begin < a.end; }

// The memory of a view as `rows` byte ranges [start + i * stride_bytes, + row_bytes), when
// its leading dimensions collapse to one stride (always for rank <= 2); nullopt otherwise.
struct RowRanges {
  int64_t start = 0, rows = 0, stride_bytes = 0, row_bytes = 0;
};

std::optional<RowRanges> row_ranges(const Tensor& t) {
  if (t.ndim < 1 || t.ndim > 3) return std::nullopt;
  const auto esize = static_cast<int64_t>(dtype_size(t.dtype));
  RowRanges r;
  r.start = static_cast<int64_t>(reinterpret_cast<uintptr_t>(t.data));
  r.rows = 1;
  for (int d = 0; d + 1 < t.ndim; ++d) r.rows *= t.shape[d];
  r.row_bytes = t.dim(-1) * esize;
  if (t.ndim == 2) {
    r.stride_bytes = t.strides[0] * esize;
  } else if (t.ndim == 3) {
    // [A, B, D] is one run of rows when A == 1, B == 1 or stride0 == B * stride1.
    if (t.shape[0] == 1 || t.shape[1] == 1) {
      r.stride_bytes = (t.shape[0] == 1 ? t.strides[1] : t.strides[0]) * esize;
    } else if (t.strides[0] == t.shape[1] * t.strides[1]) {
      r.stride_bytes = t.strides[1] * esize;
    } else if (t.strides[1] == t.shape[2]) {
      // Each [B, D] block is contiguous (e.g. the heads of one token in a fused QKV row):
      // A rows of B * D elements.
      r.rows = t.shape[0];
      r.row_bytes = t.shape[1] * t.shape[2] * esize;
      r.stride_bytes = t.strides[0] * esize;
    } else {
      return std::nullopt;
    }
  }
  if (r.rows <= 1) r.stride_bytes = 0;
  return r;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

bool views_overlap(const Tensor& x, const Tensor& y) {
  if (!spans_intersect(byte_span(x), byte_span(y))) return false;  // empty spans included
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

bool same_view(const Tensor& a, const Tensor& b) {
  if (a.data != b.data || a.dtype != b.dtype || !same_shape(a, b)) return false;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] > 1 && a.strides[d] != b.strides[d]) return false;
  }
  return true;
}

Status check_disjoint(std::string_view op, std::string_view written_name, const Tensor& written,
                      std::string_view other_name, const Tensor& other, bool allow_same_view) {
  if (allow_same_view && same_view(written, other)) return Status::ok();
  if (!views_overlap(written, other)) return Status::ok();
  return fail(op, fmt::format("{} overlaps {} in memory; expected {}", written_name, other_name,
                              allow_same_view ? "the same view (in place) or disjoint memory"
                                              : "disjoint memory"));
}

Status check_disjoint(std::string_view op, std::string_view a_name, ByteSpan a,
                      std::string_view b_name, ByteSpan b) {
  if (!spans_intersect(a, b)) return Status::ok();
  return fail(op,
              fmt::format("{} overlaps {} in memory; expected disjoint memory", a_name, b_name));
}

ElemType elem_type(DType t) { return t == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32; }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

bool rows_aligned16(const Tensor& t) {
  if (!aligned16(t.data)) return false;
  const auto esize = static_cast<int64_t>(dtype_size(t.dtype));
  for (int d = 0; d + 1 < t.ndim; ++d) {
    if (t.shape[d] > 1 && (t.strides[d] * esize) % 16 != 0) return false;
  }
  return true;
}

RowView row_view(const Tensor& t) {
  RowView v;
  v.data = t.data;
  v.type = elem_type(t.dtype);
  if (t.ndim >= 2 && t.shape[0] > 1) v.outer_stride = t.strides[0];
  if (t.ndim == 3 && t.shape[1] > 1) v.inner_stride = t.strides[1];
  return v;
}

RopeParams rope_params(const RopeArgs& a) {
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
  return p;
}

}  // namespace sluice::kernels::cuda::detail
