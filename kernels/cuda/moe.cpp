// Host side of the MoE ops (moe.h): argument validation (Tensor views -> Status naming the
// bad tensor), the workspace layout, and the translation into the kernels' parameter
// blocks. The kernels are in moe.cu.

#include "kernels/cuda/moe.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/check.h"
#include "common/checked_math.h"
#include "kernels/cuda/arg_checks.h"

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

using moe_internal::kMaxPlanExperts;
using moe_internal::kMaxRouteExperts;
using moe_internal::kMaxTopK;

// Columns of one GEMM tile (moe.cu): 64 down-projection outputs, or 32 gate + 32 up rows.
constexpr int64_t kDownTileCols = 64;
constexpr int64_t kGateUpTileCols = 32;
constexpr size_t kRegionAlign = 256;

// Shape equal to `want` (rank included), non-negative strides.
Status check_shape(std::string_view op, std::string_view name, const Tensor& t,
                   std::initializer_list<int64_t> want, std::string_view meaning) {
  bool ok = t.ndim == static_cast<int>(want.size());
  int d = 0;
  for (int64_t w : want) {
    if (!ok) break;
    ok = t.shape[d] == w && t.strides[d] >= 0;
    ++d;
  }
  if (ok) return Status::ok();
  std::string expected = "[";
  for (int64_t w : want) expected += fmt::format("{}{}", expected.size() > 1 ? ", " : "", w);
  expected += "]";
  return fail(op, fmt::format("{} has shape {}; expected {} ({})", name, t.shape_string(), expected,
                              meaning));
}

Status check_contiguous(std::string_view op, std::string_view name, const Tensor& t) {
  if (t.numel() == 0 || t.is_contiguous()) return Status::ok();
  return fail(op, fmt::format("{} (shape {}) is not contiguous; expected a dense row-major view",
                              name, t.shape_string()));
}

// Where each intermediate lives inside the workspace (offsets in bytes from its start).
struct Layout {
  size_t tiles = 0, num_tiles = 0, row_token = 0, flat_to_row = 0, act = 0, y = 0;
  size_t total = 0;       // 0 when T == 0; SIZE_MAX on overflow
  int64_t max_tiles = 0;  // tiles the tile list can hold (for the smallest tile, 16 rows)
};

// Appends `bytes` at the next kRegionAlign boundary; false on overflow.
bool append_region(uint64_t& cursor, uint64_t bytes, size_t& offset) {
  const auto start = checked_align_up(cursor, kRegionAlign);
  if (!start) return false;
  const auto end = checked_add(*start, bytes);
  if (!end || *end > std::numeric_limits<size_t>::max()) return false;
  offset = static_cast<size_t>(*start);
  cursor = *end;
  return true;
}

Layout layout_for(int64_t T, int64_t H, int64_t I, int64_t E, int top_k) {
  Layout l;
  if (T <= 0) return l;
  l.total = std::numeric_limits<size_t>::max();
  if (H < 0 || I < 0 || E < 1 || top_k < 1) return l;
  const auto rows = checked_mul(static_cast<uint64_t>(T), static_cast<uint64_t>(top_k));
  if (!rows) return l;
  const uint64_t R = *rows;
  const uint64_t max_tiles = R / 16 + std::min<uint64_t>(static_cast<uint64_t>(E), R);
  l.max_tiles = static_cast<int64_t>(std::min<uint64_t>(max_tiles, INT64_MAX));
  const auto act_bytes = checked_product({R, static_cast<uint64_t>(I), 2});
  const auto y_bytes = checked_product({R, static_cast<uint64_t>(H), 4});
  const auto tile_bytes = checked_mul(max_tiles, sizeof(moe_internal::MoeTile));
  if (!act_bytes || !y_bytes || !tile_bytes || R > (UINT64_MAX / 4)) return l;
  uint64_t cursor = 0;
  const bool ok =
      append_region(cursor, *tile_bytes, l.tiles) && append_region(cursor, 4, l.num_tiles) &&
      append_region(cursor, R * 4, l.row_token) && append_region(cursor, R * 4, l.flat_to_row) &&
      append_region(cursor, *act_bytes, l.act) && append_region(cursor, *y_bytes, l.y);
  if (ok) l.total = static_cast<size_t>(cursor);
  return l;
}

}  // namespace

namespace moe_internal {

int rows_per_tile_for(int64_t num_rows, int64_t num_experts) {
  if (num_rows <= 0 || num_experts <= 0) return 16;
  const int64_t active = std::min(num_rows, num_experts);
  const int64_t rows_per_expert = (num_rows + active - 1) / active;
  // An expert's row count spreads around the mean (T = 256: mean 16, often 20+), so a tile
  // of twice the mean keeps most experts in one tile and their weights read once. Measured
  // at T = 256 on an H200: 16 rows 0.50 ms, 32 rows 0.43 ms, 64 rows 0.47 ms.
  if (rows_per_expert <= 8) return 16;
  if (rows_per_expert <= 24) return 32;
  return 64;
}

}  // namespace moe_internal

size_t moe_workspace_bytes(int64_t T, int64_t H, int64_t I, int64_t E, int top_k) {
  return layout_for(T, H, I, E, top_k).total;
}

Status check_moe_route(const MoeRouteArgs& a) {
  constexpr std::string_view op = "moe_route";
  const Tensor& logits = a.logits;
  if (logits.ndim != 2) {
    return fail(op, fmt::format("logits has shape {}; expected [T, E]", logits.shape_string()));
  }
  const int64_t T = logits.shape[0];
  const int64_t E = logits.shape[1];
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "logits", logits, /*allow_empty=*/true));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, "logits", logits));
  if (T < 0 || logits.strides[0] < 0) {
    return fail(op, fmt::format("logits has shape {} with row stride {}; expected non-negative "
                                "values",
                                logits.shape_string(), logits.strides[0]));
  }
  SLUICE_RETURN_IF_ERROR(check_last_dim_contiguous(op, "logits", logits));
  if (E < 1 || E > kMaxRouteExperts) {
    return fail(op, fmt::format("logits has {} experts (shape {}); expected 1 to {}", E,
                                logits.shape_string(), kMaxRouteExperts));
  }
  if (a.top_k < 1 || a.top_k > std::min<int64_t>(E, kMaxTopK)) {
    return fail(op,
                fmt::format("top_k is {}; expected 1 to min(E = {}, {})", a.top_k, E, kMaxTopK));
  }
  if (T > kMaxGridX) {
    return fail(op, fmt::format("logits has {} tokens; expected at most {}", T, kMaxGridX));
  }
  if (a.per_expert_scale.defined()) {
    SLUICE_RETURN_IF_ERROR(check_on_device(op, "per_expert_scale", a.per_expert_scale));
    SLUICE_RETURN_IF_ERROR(check_float_dtype(op, "per_expert_scale", a.per_expert_scale));
    SLUICE_RETURN_IF_ERROR(
        check_shape(op, "per_expert_scale", a.per_expert_scale, {E}, "one per expert"));
    SLUICE_RETURN_IF_ERROR(check_contiguous(op, "per_expert_scale", a.per_expert_scale));
  }
  const int64_t k = a.top_k;
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "out_experts", a.out_experts, true));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, "out_experts", a.out_experts, DType::kI32));
  SLUICE_RETURN_IF_ERROR(check_shape(op, "out_experts", a.out_experts, {T, k}, "[T, top_k]"));
  SLUICE_RETURN_IF_ERROR(check_contiguous(op, "out_experts", a.out_experts));
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "out_weights", a.out_weights, true));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, "out_weights", a.out_weights, DType::kF32));
  SLUICE_RETURN_IF_ERROR(check_shape(op, "out_weights", a.out_weights, {T, k}, "[T, top_k]"));
  SLUICE_RETURN_IF_ERROR(check_contiguous(op, "out_weights", a.out_weights));
  SLUICE_RETURN_IF_ERROR(
      check_disjoint(op, "out_experts", a.out_experts, "out_weights", a.out_weights));
  for (const auto& [name, t] : {std::pair<std::string_view, const Tensor*>{"logits", &logits},
                                {"per_expert_scale", &a.per_expert_scale}}) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out_experts", a.out_experts, name, *t));
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out_weights", a.out_weights, name, *t));
  }
  return Status::ok();
}

void moe_route(const MoeRouteArgs& a, void* stream) {
  check_or_die(check_moe_route(a));
  moe_internal::RouteParams p;
  p.logits = a.logits.data;
  p.logits_type = elem_type(a.logits.dtype);
  p.logits_stride = a.logits.shape[0] > 1 ? a.logits.strides[0] : 0;
  p.scale = a.per_expert_scale.data;
  p.scale_type = elem_type(a.per_expert_scale.dtype);
  p.out_experts = static_cast<int32_t*>(a.out_experts.data);
  p.out_weights = static_cast<float*>(a.out_weights.data);
  p.num_tokens = a.logits.shape[0];
  p.num_experts = static_cast<int32_t>(a.logits.shape[1]);
  p.top_k = a.top_k;
  moe_internal::launch_moe_route(p, stream);
}

Status check_moe_experts(const MoeExpertsArgs& a) {
  constexpr std::string_view op = "moe_experts";
  // Problem sizes come from the expert weights and the routing.
  if (a.gate_up.ndim != 3) {
    return fail(op,
                fmt::format("gate_up has shape {}; expected [E, 2I, H]", a.gate_up.shape_string()));
  }
  const int64_t E = a.gate_up.shape[0];
  const int64_t I = a.gate_up.shape[1] / 2;
  const int64_t H = a.gate_up.shape[2];
  if (a.experts.ndim != 2) {
    return fail(op, fmt::format("experts has shape {}; expected [T, k]", a.experts.shape_string()));
  }
  const int64_t T = a.experts.shape[0];
  const int64_t k = a.experts.shape[1];
  if (T < 0) return fail(op, fmt::format("experts has shape {}", a.experts.shape_string()));
  if (k < 1 || k > kMaxTopK) {
    return fail(op, fmt::format("experts has shape {}: k = {}; expected 1 to {} experts per token",
                                a.experts.shape_string(), k, kMaxTopK));
  }
  if (E < 1 || E > kMaxPlanExperts) {
    return fail(op, fmt::format("gate_up has shape {}: {} experts; expected 1 to {}",
                                a.gate_up.shape_string(), E, kMaxPlanExperts));
  }
  if (a.gate_up.shape[1] % 2 != 0 || I < 8 || I % 8 != 0) {
    return fail(op, fmt::format("gate_up has shape {}: the middle dimension must be 2I with I a "
                                "positive multiple of 8 (16-byte rows)",
                                a.gate_up.shape_string()));
  }
  if (H < 8 || H % 8 != 0) {
    return fail(op, fmt::format("gate_up has shape {}: H = {}; expected a positive multiple of 8 "
                                "(16-byte rows)",
                                a.gate_up.shape_string(), H));
  }
  if (H > std::numeric_limits<int32_t>::max() / 2 || I > std::numeric_limits<int32_t>::max() / 2 ||
      (H + kDownTileCols - 1) / kDownTileCols > kMaxGridYZ ||
      (I + kGateUpTileCols - 1) / kGateUpTileCols > kMaxGridYZ) {
    return fail(op,
                fmt::format("gate_up has shape {}: H or I too large", a.gate_up.shape_string()));
  }
  for (const auto& [name, t] :
       {std::pair<std::string_view, const Tensor*>{"gate_up", &a.gate_up}, {"down", &a.down}}) {
    SLUICE_RETURN_IF_ERROR(check_on_device(op, name, *t));
    SLUICE_RETURN_IF_ERROR(check_dtype(op, name, *t, DType::kBF16));
    SLUICE_RETURN_IF_ERROR(check_contiguous(op, name, *t));
    if (!aligned16(t->data)) {
      return fail(op, fmt::format("{} is not 16-byte aligned; expected an aligned base", name));
    }
  }
  SLUICE_RETURN_IF_ERROR(check_shape(op, "down", a.down, {E, H, I}, "[E, H, I] of gate_up"));

  // Routing.
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "experts", a.experts, true));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, "experts", a.experts, DType::kI32));
  SLUICE_RETURN_IF_ERROR(check_contiguous(op, "experts", a.experts));
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "weights", a.weights, true));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, "weights", a.weights, DType::kF32));
  SLUICE_RETURN_IF_ERROR(check_shape(op, "weights", a.weights, {T, k}, "[T, k] like experts"));
  SLUICE_RETURN_IF_ERROR(check_contiguous(op, "weights", a.weights));
  const auto rows = checked_mul(static_cast<uint64_t>(T), static_cast<uint64_t>(k));
  if (!rows || *rows > static_cast<uint64_t>(std::numeric_limits<int32_t>::max() / 2)) {
    return fail(op, fmt::format("{} tokens x {} experts each is too many rows; expected at most "
                                "{}",
                                T, k, std::numeric_limits<int32_t>::max() / 2));
  }

  // Activations.
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "x", a.x, true));
  SLUICE_RETURN_IF_ERROR(check_dtype(op, "x", a.x, DType::kBF16));
  SLUICE_RETURN_IF_ERROR(check_shape(op, "x", a.x, {T, H}, "[T, H]"));
  SLUICE_RETURN_IF_ERROR(check_last_dim_contiguous(op, "x", a.x));
  if (T > 0 && (!aligned16(a.x.data) || (T > 1 && (a.x.strides[0] * 2) % 16 != 0))) {
    return fail(op, fmt::format("x rows are not 16-byte aligned (row stride {} elements); expected "
                                "an aligned base and a row stride that is a multiple of 8",
                                a.x.strides[0]));
  }
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "out", a.out, true));
  SLUICE_RETURN_IF_ERROR(check_float_dtype(op, "out", a.out));
  SLUICE_RETURN_IF_ERROR(check_shape(op, "out", a.out, {T, H}, "[T, H]"));
  SLUICE_RETURN_IF_ERROR(check_last_dim_contiguous(op, "out", a.out));
  if (T > kMaxGridX) {
    return fail(op, fmt::format("{} tokens; expected at most {}", T, kMaxGridX));
  }

  // Workspace.
  const size_t need = moe_workspace_bytes(T, H, I, E, static_cast<int>(k));
  if (need == std::numeric_limits<size_t>::max()) {
    return fail(op, fmt::format("the workspace for T = {}, H = {}, I = {}, E = {}, k = {} "
                                "overflows size_t",
                                T, H, I, E, k));
  }
  const Tensor& ws = a.workspace;
  SLUICE_RETURN_IF_ERROR(check_workspace(
      op, ws, need, fmt::format("moe_workspace_bytes({}, {}, {}, {}, {})", T, H, I, E, k)));

  // Outputs overlap nothing they do not own (of the workspace: the `need` bytes used).
  const ByteSpan ws_span = need > 0 ? byte_span(ws.data, need) : ByteSpan{};
  const std::pair<std::string_view, const Tensor*> inputs[] = {{"x", &a.x},
                                                               {"experts", &a.experts},
                                                               {"weights", &a.weights},
                                                               {"gate_up", &a.gate_up},
                                                               {"down", &a.down}};
  for (const auto& [name, t] : inputs) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, name, *t));
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "workspace", ws_span, name, byte_span(*t)));
  }
  return check_disjoint(op, "out", byte_span(a.out), "workspace", ws_span);
}

namespace {

// T tokens routed to k experts each take the decode path (moe_gemv.cu).
bool decode_path(int64_t T, int64_t k) {
  return T >= 1 && T * k <= moe_internal::kGemvMaxRows && k <= moe_internal::kGemvMaxTopK;
}

}  // namespace

bool moe_experts_uses_gemv(const MoeExpertsArgs& a) {
  return check_moe_experts(a).is_ok() && decode_path(a.experts.shape[0], a.experts.shape[1]);
}

void moe_experts(const MoeExpertsArgs& a, void* stream) {
  check_or_die(check_moe_experts(a));
  const int64_t T = a.experts.shape[0];
  if (T == 0) return;
  const int64_t k = a.experts.shape[1];
  const int64_t E = a.gate_up.shape[0];
  const int64_t H = a.gate_up.shape[2];
  const int64_t I = a.gate_up.shape[1] / 2;
  const Layout l = layout_for(T, H, I, E, static_cast<int>(k));
  auto* ws = static_cast<uint8_t*>(a.workspace.data);

  moe_internal::ExpertsParams p;
  p.x = static_cast<const uint16_t*>(a.x.data);
  p.x_stride = T > 1 ? a.x.strides[0] : 0;
  p.experts = static_cast<const int32_t*>(a.experts.data);
  p.weights = static_cast<const float*>(a.weights.data);
  p.gate_up = static_cast<const uint16_t*>(a.gate_up.data);
  p.down = static_cast<const uint16_t*>(a.down.data);
  p.out = a.out.data;
  p.out_stride = T > 1 ? a.out.strides[0] : 0;
  p.out_type = elem_type(a.out.dtype);
  p.out_vectorized = rows_aligned16(a.out);
  p.tiles = reinterpret_cast<moe_internal::MoeTile*>(ws + l.tiles);
  p.num_tiles = reinterpret_cast<int32_t*>(ws + l.num_tiles);
  p.row_token = reinterpret_cast<int32_t*>(ws + l.row_token);
  p.flat_to_row = reinterpret_cast<int32_t*>(ws + l.flat_to_row);
  p.act = reinterpret_cast<uint16_t*>(ws + l.act);
  p.y = reinterpret_cast<float*>(ws + l.y);
  p.num_tokens = T;
  p.hidden = static_cast<int32_t>(H);
  p.intermediate = static_cast<int32_t>(I);
  p.num_experts = static_cast<int32_t>(E);
  p.top_k = static_cast<int32_t>(k);
  const int64_t R = T * k;
  p.rows_per_tile = moe_internal::rows_per_tile_for(R, E);
  const int64_t max_tiles = R / p.rows_per_tile + std::min(E, R);
  SLUICE_CHECK(max_tiles <= l.max_tiles && max_tiles <= kMaxGridX,
               "moe_experts: {} tiles exceed the workspace's tile list ({})", max_tiles,
               l.max_tiles);
  p.max_tiles = static_cast<int32_t>(max_tiles);
  if (decode_path(T, k)) {
    moe_internal::launch_moe_experts_gemv(p, stream);
  } else {
    moe_internal::launch_moe_experts(p, stream);
  }
}

}  // namespace sluice::kernels::cuda
