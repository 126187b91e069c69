// Host side of the paged KV cache ops (kernels/cuda/paged_attention.h): argument checks
// (Tensor views -> a Status naming the op, the tensor and what was expected), the workspace
// layout, and translation into the kernels' parameter blocks.

#include "kernels/cuda/paged_attention.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "kernels/cuda/arg_checks.h"

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
constexpr size_t kWorkspaceAlign = 256;

// The K and V caches: [num_slots, nkv, d], contiguous, bf16|f32, the same dtype and shape.
Status check_caches(std::string_view op, const Tensor& k_cache, const Tensor& v_cache) {
  for (const auto& [name, t] :
       {std::pair<std::string_view, const Tensor*>{"k_cache", &k_cache}, {"v_cache", &v_cache}}) {
    SLUICE_RETURN_IF_ERROR(check_rows(op, name, *t, 3, 3, "[num_slots, num_kv_heads, head_dim]"));
    if (!t->is_contiguous()) {
      return fail(op, fmt::format("{} with shape {} is not contiguous; expected a contiguous "
                                  "[num_slots, num_kv_heads, head_dim] pool",
                                  name, t->shape_string()));
    }
  }
  if (k_cache.dtype != v_cache.dtype) {
    return fail(op, fmt::format("k_cache has dtype {} but v_cache has {}; expected the same",
                                dtype_name(k_cache.dtype), dtype_name(v_cache.dtype)));
  }
  for (int d = 0; d < 3; ++d) {
    if (k_cache.shape[d] != v_cache.shape[d]) {
      return fail(op, fmt::format("k_cache has shape {} but v_cache has {}; expected the same",
                                  k_cache.shape_string(), v_cache.shape_string()));
    }
  }
  return Status::ok();
}

size_t align_up(size_t n) { return (n + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

// Byte offsets of the workspace parts; partial_* are empty when max_splits == 1.
struct WorkspaceLayout {
  size_t partial_acc = 0, partial_ml = 0, tile_start = 0, total = 0;
};
WorkspaceLayout workspace_layout(int num_seqs, int num_q_heads, int head_dim, int max_splits) {
  WorkspaceLayout l;
  const size_t states =
      max_splits > 1 ? static_cast<size_t>(num_seqs) * num_q_heads * max_splits : 0;
  l.partial_acc = 0;
  l.partial_ml = align_up(states * head_dim * sizeof(float));
  l.tile_start = l.partial_ml + align_up(states * 2 * sizeof(float));
  l.total = l.tile_start + align_up((static_cast<size_t>(num_seqs) + 1) * sizeof(int32_t));
  return l;
}

bool supported_head_dim(int64_t d) { return d == 64 || d == 128 || d == 256 || d == 512; }

// The shapes the tensor-core kernel is built for.
bool mma_shape(const PagedAttentionArgs& a) {
  const int64_t d = a.q.ndim == 3 ? a.q.shape[2] : 0;
  return a.k_cache.dtype == DType::kBF16 && (d == 256 || d == 512);
}

}  // namespace

// ---- cache_write ----

Status check_cache_write(const CacheWriteArgs& a) {
  constexpr std::string_view op = "cache_write";
  SLUICE_RETURN_IF_ERROR(check_rows(op, "k", a.k, 3, 3, "[N, num_kv_heads, head_dim]"));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "v", a.v, 3, 3, "[N, num_kv_heads, head_dim]"));
  SLUICE_RETURN_IF_ERROR(check_caches(op, a.k_cache, a.v_cache));
  for (int d = 0; d < 3; ++d) {
    if (a.k.shape[d] != a.v.shape[d]) {
      return fail(op, fmt::format("k has shape {} but v has {}; expected the same",
                                  a.k.shape_string(), a.v.shape_string()));
    }
  }
  if (a.k_cache.shape[1] != a.k.shape[1] || a.k_cache.shape[2] != a.k.shape[2]) {
    return fail(op, fmt::format("k has shape {} but k_cache has {}; expected the same "
                                "[num_kv_heads, head_dim]",
                                a.k.shape_string(), a.k_cache.shape_string()));
  }
  const int64_t n = a.k.shape[0];
  if (n > kMaxInt32 || a.k.shape[1] * a.k.shape[2] > kMaxInt32) {
    return fail(op, fmt::format("k has shape {}; expected at most {} tokens and {} elements per "
                                "token",
                                a.k.shape_string(), kMaxInt32, kMaxInt32));
  }
  SLUICE_RETURN_IF_ERROR(check_i32_vector(op, "slots", a.slots, n, "one slot per token of k"));
  for (const auto& [name, t] :
       {std::pair<std::string_view, const Tensor*>{"k", &a.k}, {"v", &a.v}, {"slots", &a.slots}}) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "k_cache", a.k_cache, name, *t));
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "v_cache", a.v_cache, name, *t));
  }
  return check_disjoint(op, "k_cache", a.k_cache, "v_cache", a.v_cache);
}

CacheWriteParams cache_write_params(const CacheWriteArgs& a) {
  CacheWriteParams p;
  p.k = a.k.data;
  p.v = a.v.data;
  p.k_cache = a.k_cache.data;
  p.v_cache = a.v_cache.data;
  p.slots = static_cast<const int32_t*>(a.slots.data);
  p.k_token_stride = a.k.strides[0];
  p.k_head_stride = a.k.strides[1];
  p.v_token_stride = a.v.strides[0];
  p.v_head_stride = a.v.strides[1];
  p.k_type = elem_type(a.k.dtype);
  p.v_type = elem_type(a.v.dtype);
  p.cache_type = elem_type(a.k_cache.dtype);
  p.num_tokens = static_cast<int32_t>(a.k.shape[0]);
  p.num_kv_heads = static_cast<int32_t>(a.k.shape[1]);
  p.head_dim = static_cast<int32_t>(a.k.shape[2]);
  // 8 elements per access: every row start 16-byte aligned for both element sizes.
  p.vectorized = p.head_dim % 8 == 0 && rows_aligned16(a.k) && rows_aligned16(a.v) &&
                 aligned16(a.k_cache.data) && aligned16(a.v_cache.data);
  return p;
}

void cache_write(const CacheWriteArgs& a, void* stream) {
  check_or_die(check_cache_write(a));
  launch_cache_write(cache_write_params(a), stream);
}

// ---- paged_attention ----

size_t paged_attention_workspace_bytes(int num_tokens, int num_seqs, int num_q_heads, int head_dim,
                                       int max_seq_len) {
  (void)num_tokens;  // the layout depends on sequences, not tokens
  if (num_seqs <= 0) return 0;
  // The finest split policy a call may choose: every choice fits.
  const int max_splits = paged_attention_max_splits(num_seqs, max_seq_len, kPagedFinestSplitKeys);
  return workspace_layout(num_seqs, num_q_heads, head_dim, max_splits).total;
}

Status check_paged_attention(const CudaPagedAttentionArgs& args) {
  constexpr std::string_view op = "paged_attention";
  const PagedAttentionArgs& a = args.base;
  SLUICE_RETURN_IF_ERROR(check_rows(op, "q", a.q, 3, 3, "[N, num_q_heads, head_dim]"));
  SLUICE_RETURN_IF_ERROR(check_rows(op, "out", a.out, 3, 3, "[N, num_q_heads, head_dim]"));
  for (int d = 0; d < 3; ++d) {
    if (a.q.shape[d] != a.out.shape[d]) {
      return fail(op, fmt::format("q has shape {} but out has {}; expected the same",
                                  a.q.shape_string(), a.out.shape_string()));
    }
  }
  SLUICE_RETURN_IF_ERROR(check_caches(op, a.k_cache, a.v_cache));
  const int64_t n = a.q.shape[0], nq = a.q.shape[1], d = a.q.shape[2];
  const int64_t num_slots = a.k_cache.shape[0], nkv = a.k_cache.shape[1];
  if (!supported_head_dim(d)) {
    return fail(op, fmt::format("q has shape {}: head_dim {} is not supported; expected 64, 128, "
                                "256 or 512",
                                a.q.shape_string(), d));
  }
  if (a.k_cache.shape[2] != d) {
    return fail(op, fmt::format("k_cache has shape {} but q has {}; expected the same head_dim",
                                a.k_cache.shape_string(), a.q.shape_string()));
  }
  if (nkv < 1 || nq < 1 || nq % nkv != 0) {
    return fail(op, fmt::format("q has {} query heads and k_cache {} KV heads; expected a "
                                "positive multiple (GQA)",
                                nq, nkv));
  }
  if (n > kMaxInt32 || nq > kMaxGridYZ || num_slots > kMaxInt32) {
    return fail(op,
                fmt::format("q has shape {} and k_cache {}; expected at most {} tokens and "
                            "slots and {} query heads",
                            a.q.shape_string(), a.k_cache.shape_string(), kMaxInt32, kMaxGridYZ));
  }
  if (a.block_size < 8 || num_slots % a.block_size != 0) {
    return fail(op, fmt::format("block_size is {} with {} cache slots; expected at least 8 and a "
                                "divisor of the slot count",
                                a.block_size, num_slots));
  }
  SLUICE_RETURN_IF_ERROR(check_on_device(op, "block_tables", a.block_tables));
  if (a.block_tables.dtype != DType::kI32 || a.block_tables.ndim != 2 ||
      a.block_tables.shape[0] < 0 || a.block_tables.shape[1] < 0 || a.block_tables.strides[0] < 0 ||
      (a.block_tables.shape[1] > 1 && a.block_tables.strides[1] != 1)) {
    return fail(op, fmt::format("block_tables has dtype {} and shape {}; expected i32 "
                                "[num_seqs, max_blocks] with contiguous rows",
                                dtype_name(a.block_tables.dtype), a.block_tables.shape_string()));
  }
  const int64_t num_seqs = a.block_tables.shape[0], max_blocks = a.block_tables.shape[1];
  if (num_seqs > kMaxInt32 || max_blocks > kMaxInt32) {
    return fail(op, fmt::format("block_tables has shape {}; expected at most {} rows and columns",
                                a.block_tables.shape_string(), kMaxInt32));
  }
  SLUICE_RETURN_IF_ERROR(
      check_i32_vector(op, "seq_lens", a.seq_lens, num_seqs, "one per block_tables row"));
  SLUICE_RETURN_IF_ERROR(check_i32_vector(op, "query_start", args.query_start, num_seqs + 1,
                                          "num_seqs + 1 row offsets into q"));
  SLUICE_RETURN_IF_ERROR(check_i32_vector(op, "token_seq", a.token_seq, n, "one per token of q"));
  SLUICE_RETURN_IF_ERROR(
      check_i32_vector(op, "q_positions", a.q_positions, n, "one per token of q"));
  SLUICE_RETURN_IF_ERROR(check_finite(op, "scale", a.scale));
  if (a.window < 0) return fail(op, fmt::format("window is {}; expected >= 0", a.window));
  if (!std::isfinite(a.softcap) || a.softcap < 0.0f) {
    return fail(op,
                fmt::format("softcap is {}; expected a finite value >= 0 (0: none)", a.softcap));
  }
  if (args.max_query_len < 0 || args.max_query_len > n || (n > 0 && args.max_query_len < 1)) {
    return fail(op, fmt::format("max_query_len is {} for {} query tokens; expected 1 to {}",
                                args.max_query_len, n, n));
  }
  if (args.max_seq_len < 0 || args.max_seq_len > max_blocks * a.block_size) {
    return fail(op,
                fmt::format("max_seq_len is {}; expected 0 to {} (max_blocks {} x block_size "
                            "{})",
                            args.max_seq_len, max_blocks * a.block_size, max_blocks, a.block_size));
  }
  const int64_t group = nq / nkv;
  const int64_t head_chunks = (group + 15) / 16;
  if (nkv * head_chunks > kMaxGridYZ) {
    return fail(op, fmt::format("{} KV heads with groups of {} query heads need {} CTA rows; "
                                "expected at most {}",
                                nkv, group, nkv * head_chunks, kMaxGridYZ));
  }
  if (args.split_keys != 0 &&
      (args.split_keys < kPagedFinestSplitKeys || args.split_keys > (1 << 24))) {
    return fail(op, fmt::format("split_keys is {}; expected 0 (the default policy) or {} to {}",
                                args.split_keys, kPagedFinestSplitKeys, 1 << 24));
  }
  if (args.kernel == AttentionKernel::kMma && !mma_shape(a)) {
    return fail(op, fmt::format("kernel is kMma with a {} cache and head_dim {}; the "
                                "tensor-core kernel needs a bf16 cache and head_dim 256 or 512",
                                dtype_name(a.k_cache.dtype), d));
  }
  const size_t needed =
      paged_attention_workspace_bytes(static_cast<int>(n), static_cast<int>(num_seqs),
                                      static_cast<int>(nq), static_cast<int>(d), args.max_seq_len);
  SLUICE_RETURN_IF_ERROR(
      check_workspace(op, args.workspace, needed, "paged_attention_workspace_bytes"));
  const Tensor* inputs[] = {&a.q,           &a.k_cache,      &a.v_cache,  &a.token_seq,
                            &a.q_positions, &a.block_tables, &a.seq_lens, &args.query_start};
  const char* names[] = {"q",           "k_cache",      "v_cache",  "token_seq",
                         "q_positions", "block_tables", "seq_lens", "query_start"};
  for (size_t i = 0; i < std::size(inputs); ++i) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", a.out, names[i], *inputs[i]));
    if (needed > 0) {
      SLUICE_RETURN_IF_ERROR(check_disjoint(op, "workspace", args.workspace, names[i], *inputs[i]));
    }
  }
  if (needed > 0)
    SLUICE_RETURN_IF_ERROR(check_disjoint(op, "workspace", args.workspace, "out", a.out));
  return Status::ok();
}

MmaParts paged_attention_mma_parts(const CudaPagedAttentionArgs& args) {
  const PagedAttentionArgs& a = args.base;
  switch (args.kernel) {
    case AttentionKernel::kSimt:
      return {};
    case AttentionKernel::kMma:
      return {mma_shape(a), mma_shape(a)};
    case AttentionKernel::kAuto:
      break;
  }
  if (!mma_shape(a) || a.q.dtype != DType::kBF16 || a.out.dtype != DType::kBF16 ||
      a.k_cache.shape[1] < 1) {
    return {};
  }
  const int64_t group = a.q.shape[1] / a.k_cache.shape[1];
  return {(group < 16 ? group : 16) >= 8, true};
}

void paged_attention(const CudaPagedAttentionArgs& args, void* stream) {
  check_or_die(check_paged_attention(args));
  const PagedAttentionArgs& a = args.base;
  PagedAttentionParams p;
  p.q = a.q.data;
  p.out = a.out.data;
  p.k_cache = a.k_cache.data;
  p.v_cache = a.v_cache.data;
  p.q_positions = static_cast<const int32_t*>(a.q_positions.data);
  p.block_tables = static_cast<const int32_t*>(a.block_tables.data);
  p.seq_lens = static_cast<const int32_t*>(a.seq_lens.data);
  p.query_start = static_cast<const int32_t*>(args.query_start.data);
  p.q_token_stride = a.q.strides[0];
  p.q_head_stride = a.q.strides[1];
  p.out_token_stride = a.out.strides[0];
  p.out_head_stride = a.out.strides[1];
  p.table_stride = a.block_tables.strides[0];
  p.q_type = elem_type(a.q.dtype);
  p.out_type = elem_type(a.out.dtype);
  p.cache_type = elem_type(a.k_cache.dtype);
  p.num_tokens = static_cast<int32_t>(a.q.shape[0]);
  p.num_seqs = static_cast<int32_t>(a.block_tables.shape[0]);
  p.num_q_heads = static_cast<int32_t>(a.q.shape[1]);
  p.num_kv_heads = static_cast<int32_t>(a.k_cache.shape[1]);
  p.head_dim = static_cast<int32_t>(a.q.shape[2]);
  p.max_blocks = static_cast<int32_t>(a.block_tables.shape[1]);
  p.block_size = a.block_size;
  for (int shift = 0; shift < 31; ++shift) {
    if ((1 << shift) == a.block_size) p.block_shift = shift;
  }
  p.window = a.window;
  p.max_query_len = args.max_query_len;
  p.max_seq_len = args.max_seq_len;
  p.split_keys = args.split_keys > 0 ? args.split_keys : kPagedMinSplitKeys;
  p.max_splits = paged_attention_max_splits(p.num_seqs, p.max_seq_len, p.split_keys);
  p.scale = a.scale;
  p.softcap = a.softcap;
  const MmaParts mma = paged_attention_mma_parts(args);
  p.decode_mma = mma.decodes;
  p.prefill_mma = mma.prefills;
  if (p.num_tokens == 0 || p.num_seqs == 0 || p.num_q_heads == 0) return;
  const WorkspaceLayout l = workspace_layout(p.num_seqs, p.num_q_heads, p.head_dim, p.max_splits);
  auto* ws = static_cast<unsigned char*>(args.workspace.data);
  if (p.max_splits > 1) {
    p.partial_acc = reinterpret_cast<float*>(ws + l.partial_acc);
    p.partial_ml = reinterpret_cast<float*>(ws + l.partial_ml);
  }
  p.tile_start = reinterpret_cast<int32_t*>(ws + l.tile_start);
  launch_paged_attention(p, stream);
}

}  // namespace sluice::kernels::cuda
