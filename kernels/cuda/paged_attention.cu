// Paged KV cache kernels: cache_write, and attention of a mixed batch over the cache
// (contracts in kernels/cuda/paged_attention.h). SIMT f32 arithmetic throughout; the K/V
// bytes move with 16-byte cp.async copies into shared memory.
//
// One attention CTA (128 or 256 threads) owns a work item: up to kMaxRows query rows, each a
// (token, query head) pair of one sequence and one KV head, over a range of key positions.
// The rows are a whole GQA group of query heads (or 16 of them when the group is larger),
// times as many consecutive tokens of the sequence as fit, so each K/V byte the CTA loads
// serves every row. The CTA walks its keys in tiles of kTileBytes per K (and V) tile, two
// tiles in flight (double buffer), and per tile:
//   QK:      S[r][j] = q_r . k_j      (thread per (key, slice of d); shuffle-reduced)
//   softmax: scale, soft-cap, mask, online max/sum per row (one warp per row), P in place
//   PV:      O[r] = O[r] * alpha_r + sum_j P[r][j] v_j   (thread per (d chunk, rows, keys))
// all in f32. Keys are gathered through the block table one key row at a time; a
// block-table entry of -1 (or a key outside the range) is never read: its tile rows are
// zero-filled and masked.
//
// Two launches share that kernel:
//   decode mode: one CTA per (sequence with exactly one query token, KV head, split). A
//     decode's visible keys are split (flash-decoding) into min(p.max_splits,
//     ceil(keys / p.split_keys)) equal parts; each part leaves its unnormalised state (max,
//     sum, accumulator) in the workspace and combine_kernel merges the parts by log-sum-exp.
//   prefill mode: one CTA per tile of consecutive query tokens of a sequence with two or
//     more query tokens, no split. plan_tiles_kernel numbers the tiles on the device (a
//     prefix sum over query_start), so the grid is bounded by the token count, not by
//     num_seqs * max_query_len.
// Grid sizes come from host values only (num_seqs, max_query_len, max_seq_len): no launch
// reads device memory on the host, so the sequence is safe under CUDA graph capture.

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/paged_attention_common.cuh"
#include "kernels/cuda/pdl.cuh"

namespace sluice::kernels::cuda {
namespace {

constexpr int kTileBytes = 16384;  // one K (or V) tile in shared memory, padding aside
constexpr int kMaxSplitsLimit = 64;
constexpr int kPlanThreads = 1024;
constexpr int kCombineThreads = 128;

// The 16 bytes at `p` (shared memory) as 8 bf16 or 4 f32 values, widened to f32.
template <typename CacheT>
__device__ __forceinline__ void load_chunk(const unsigned char* p,
                                           float (&v)[16 / sizeof(CacheT)]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
  if constexpr (sizeof(CacheT) == 2) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = __uint_as_float(w[k] << 16);
      v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = __uint_as_float(w[k]);
  }
}

// Threads of an attention CTA by its row count: rows multiply the arithmetic per key byte,
// so CTAs with many rows get more warps (measured: 128 threads left the 8-row global-layer
// decode issue-bound at a quarter of the copy bandwidth).
constexpr int threads_for_rows(int rows) { return rows >= 8 ? 256 : 128; }

// Compile-time shape of one attention kernel: head dim D, cache element CacheT (uint16_t:
// bf16 bits, float: f32), ROWS query rows and THREADS threads.
template <int D, typename CacheT, int ROWS, int THREADS>
struct Cfg {
  static constexpr int kThreads = THREADS;
  static constexpr int kWarps = THREADS / 32;
  static constexpr int kElem = sizeof(CacheT);
  static constexpr int kCh = 16 / kElem;                // elements per 16-byte chunk
  static constexpr int kNch = D / kCh;                  // chunks per key row
  static constexpr int kKt = kTileBytes / (D * kElem);  // keys per tile
  static constexpr int kDs = kThreads / kKt;            // QK: lanes sharing one key
  static constexpr int kCpl = kNch / kDs;               // QK: chunks per lane
  // Row padding that puts the rows read by one quarter-warp in QK on distinct banks.
  static constexpr int kPad = (kDs * 16) % 128;
  static constexpr int kRowBytes = D * kElem + kPad;
  static constexpr int kTileSmem = kKt * kRowBytes;                 // one K (or V) tile
  static constexpr int kStageBytes = 2 * kTileSmem;                 // K and V
  static constexpr int kPvGroups = kThreads / kNch;                 // PV: threads per chunk
  static constexpr int kNrs = ROWS < kPvGroups ? ROWS : kPvGroups;  // PV: row splits
  static constexpr int kNks = kPvGroups / kNrs;                     // PV: key splits
  static constexpr int kRpt = ROWS / kNrs;                          // PV: rows per thread
  static constexpr int kQOffset = 2 * kStageBytes;
  static constexpr int kSOffset = kQOffset + ROWS * D * 4;
  static constexpr int kSmemBytes = kSOffset + ROWS * kKt * 4;
  static constexpr int kKeysPerLane = (kKt + 31) / 32;  // softmax

  static_assert(kKt >= 8 && kKt <= kThreads && kThreads % kKt == 0, "tile shape");
  static_assert(kDs <= 32 && kNch % kDs == 0, "QK: a key's lanes share a warp");
  static_assert(kThreads % kNch == 0 && kPvGroups % kNrs == 0, "PV thread map");
  static_assert(kNch * kNrs * kNks == kThreads, "PV: thread map covers the block");
  static_assert(ROWS % kNrs == 0 && ROWS <= kMaxRows, "rows");
  static_assert((kNks - 1) * ROWS * D * 4 <= kStageBytes, "PV reduction fits a stage");
};

template <int D, typename CacheT, int ROWS, int THREADS>
__global__ void __launch_bounds__(THREADS, THREADS >= 256 ? 2 : 1)
    paged_attention_kernel(const __grid_constant__ PagedAttentionParams p, bool decode_mode) {
  start_after_producers();
  using C = Cfg<D, CacheT, ROWS, THREADS>;
  constexpr int kKt = C::kKt, kCh = C::kCh, kNch = C::kNch, kDs = C::kDs;
  constexpr int kThreads = C::kThreads, kWarps = C::kWarps;
  constexpr int kRowBytes = C::kRowBytes;
  SLUICE_DYNAMIC_SHARED(unsigned char, smem, 128);
  __shared__ WorkItem item;
  __shared__ int32_t table_s[kTableCache];
  __shared__ int row_pos[ROWS];
  __shared__ float row_m[ROWS], row_l[ROWS], row_alpha[ROWS];
  float* q_s = reinterpret_cast<float*>(smem + C::kQOffset);  // [ROWS][D]
  float* s_s = reinterpret_cast<float*>(smem + C::kSOffset);  // [ROWS][kKt]: scores, then P

  const int tid = threadIdx.x;
  int kv_head = 0;
  const WorkItem w = cta_work(p, decode_mode, item, kv_head);
  if (!w.valid) return;
  const int num_rows = init_rows(p, w, ROWS, row_pos, row_m, row_l);  // padding: zero queries
  for (int i = tid; i < ROWS * D; i += kThreads) {
    const int r = i / D, e = i % D;
    float v = 0.0f;
    if (r < num_rows) {
      const int64_t tok = w.tok0 + r / w.num_heads, head = w.head0 + r % w.num_heads;
      v = load_elem(p.q, p.q_type, tok * p.q_token_stride + head * p.q_head_stride + e);
    }
    q_s[i] = v;
  }
  __syncthreads();

  TableCache table{p.block_tables + static_cast<int64_t>(w.seq) * p.table_stride, table_s};
  const int num_tiles = (w.hi - w.lo + kKt - 1) / kKt;
  auto issue_tile = [&](int t, int stage) {
    unsigned char* k_dst = smem + stage * C::kStageBytes;
    issue_kv_tile<D, C::kElem, kKt, kRowBytes, kThreads>(p, table, kv_head, w.lo + t * kKt, w.hi,
                                                         k_dst, k_dst + C::kTileSmem);
  };

  // PV thread map: chunk c of d, rows [rs * kRpt, rs * kRpt + kRpt), keys j = ks mod kNks.
  const int pv_c = tid % kNch;
  const int pv_rs = (tid / kNch) % C::kNrs;
  const int pv_ks = tid / kNch / C::kNrs;
  float o[C::kRpt][kCh];
#pragma unroll
  for (int i = 0; i < C::kRpt; ++i) {
#pragma unroll
    for (int e = 0; e < kCh; ++e) o[i][e] = 0.0f;
  }

  // QK thread map: key j, lane s of the kDs lanes sharing it, chunks s + kDs * i, i < kCpl.
  const int qk_j = tid / kDs;
  const int qk_s = tid % kDs;
  const int warp = tid / 32, lane = tid % 32;

  if (num_tiles > 0) issue_tile(0, 0);
  cp_async_commit();
  for (int t = 0; t < num_tiles; ++t) {
    const unsigned char* k_tile = next_tile(issue_tile, t, num_tiles, smem, C::kStageBytes);
    const unsigned char* v_tile = k_tile + C::kTileSmem;
    const int t0 = w.lo + t * kKt;

    // QK: raw dot products into s_s.
    {
      float acc[ROWS];
#pragma unroll
      for (int r = 0; r < ROWS; ++r) acc[r] = 0.0f;
      const unsigned char* k_row = k_tile + qk_j * kRowBytes;
#pragma unroll
      for (int i = 0; i < C::kCpl; ++i) {
        const int c = qk_s + kDs * i;
        float kv[kCh];
        load_chunk<CacheT>(k_row + c * 16, kv);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          const float4* qv = reinterpret_cast<const float4*>(q_s + r * D + c * kCh);
#pragma unroll
          for (int e4 = 0; e4 < kCh / 4; ++e4) {
            const float4 q4 = qv[e4];
            acc[r] = fmaf(q4.x, kv[4 * e4], acc[r]);
            acc[r] = fmaf(q4.y, kv[4 * e4 + 1], acc[r]);
            acc[r] = fmaf(q4.z, kv[4 * e4 + 2], acc[r]);
            acc[r] = fmaf(q4.w, kv[4 * e4 + 3], acc[r]);
          }
        }
      }
#pragma unroll
      for (int offset = kDs / 2; offset > 0; offset >>= 1) {
#pragma unroll
        for (int r = 0; r < ROWS; ++r) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], offset);
      }
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        if (r % kDs == qk_s) s_s[r * kKt + qk_j] = acc[r];
      }
    }
    __syncthreads();

    // Softmax: one warp per row; scale, soft-cap, mask, online max and sum; P over s_s.
    for (int r = warp; r < ROWS; r += kWarps) {
      const int pos = row_pos[r];
      float x[C::kKeysPerLane];
      float tile_max = neg_inf();
#pragma unroll
      for (int k = 0; k < C::kKeysPerLane; ++k) {
        const int j = lane + 32 * k;
        x[k] = neg_inf();
        if (j < kKt) {
          const int kp = t0 + j;
          float v = s_s[r * kKt + j] * p.scale;
          if (p.softcap > 0.0f) v = p.softcap * tanhf(v / p.softcap);
          const bool visible = kp < w.hi && kp <= pos && (p.window == 0 || kp > pos - p.window);
          if (visible) x[k] = v;
          tile_max = fmaxf(tile_max, x[k]);
        }
      }
      tile_max = warp_max(tile_max);
      const float m_old = row_m[r];
      const float m_new = fmaxf(m_old, tile_max);
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < C::kKeysPerLane; ++k) {
        const int j = lane + 32 * k;
        if (j < kKt) {
          const float pj = x[k] == neg_inf() ? 0.0f : expf(x[k] - m_new);
          s_s[r * kKt + j] = pj;
          sum += pj;
        }
      }
      sum = warp_sum(sum);
      if (lane == 0) RowState{row_m, row_l, row_alpha}.fold(r, m_old, m_new, sum);
    }
    __syncthreads();

    // PV: rescale, then accumulate this tile's values.
#pragma unroll
    for (int i = 0; i < C::kRpt; ++i) {
      const float alpha = row_alpha[pv_rs * C::kRpt + i];
#pragma unroll
      for (int e = 0; e < kCh; ++e) o[i][e] *= alpha;
    }
#pragma unroll
    for (int j = pv_ks; j < kKt; j += C::kNks) {
      float vv[kCh];
      load_chunk<CacheT>(v_tile + j * kRowBytes + pv_c * 16, vv);
#pragma unroll
      for (int i = 0; i < C::kRpt; ++i) {
        const float pj = s_s[(pv_rs * C::kRpt + i) * kKt + j];
#pragma unroll
        for (int e = 0; e < kCh; ++e) o[i][e] = fmaf(pj, vv[e], o[i][e]);
      }
    }
    __syncthreads();  // the next issue overwrites this stage
  }
  cp_async_wait<0>();

  if constexpr (C::kNks > 1) {
    // Sum the key splits' accumulators through shared memory (the stages are free now).
    float* red = reinterpret_cast<float*>(smem);  // [kNks - 1][ROWS][D]
    __syncthreads();
    if (pv_ks > 0) {
#pragma unroll
      for (int i = 0; i < C::kRpt; ++i) {
        const int r = pv_rs * C::kRpt + i;
#pragma unroll
        for (int e = 0; e < kCh; ++e) red[((pv_ks - 1) * ROWS + r) * D + pv_c * kCh + e] = o[i][e];
      }
    }
    __syncthreads();
    if (pv_ks == 0) {
      for (int k = 1; k < C::kNks; ++k) {
#pragma unroll
        for (int i = 0; i < C::kRpt; ++i) {
          const int r = pv_rs * C::kRpt + i;
#pragma unroll
          for (int e = 0; e < kCh; ++e) o[i][e] += red[((k - 1) * ROWS + r) * D + pv_c * kCh + e];
        }
      }
    }
  }
  if (pv_ks != 0) return;

#pragma unroll
  for (int i = 0; i < C::kRpt; ++i) {
    const int r = pv_rs * C::kRpt + i;
    if (r >= num_rows) continue;
    const int64_t tok = w.tok0 + r / w.num_heads;
    const int64_t head = w.head0 + r % w.num_heads;
    if (w.partial) {
      const int64_t state =
          (static_cast<int64_t>(w.seq) * p.num_q_heads + head) * p.max_splits + w.split;
      float4* dst = reinterpret_cast<float4*>(p.partial_acc + state * D + pv_c * kCh);
#pragma unroll
      for (int e4 = 0; e4 < kCh / 4; ++e4) {
        dst[e4] = make_float4(o[i][4 * e4], o[i][4 * e4 + 1], o[i][4 * e4 + 2], o[i][4 * e4 + 3]);
      }
      if (pv_c == 0) {
        p.partial_ml[2 * state] = row_m[r];
        p.partial_ml[2 * state + 1] = row_l[r];
      }
    } else {
      const float l = row_l[r];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int64_t base = tok * p.out_token_stride + head * p.out_head_stride + pv_c * kCh;
#pragma unroll
      for (int e = 0; e < kCh; ++e) store_elem(p.out, p.out_type, base + e, o[i][e] * inv);
    }
  }
}

// Merges the split states of each decode (sequence s = blockIdx.x, query head blockIdx.y):
// out = sum_k w_k acc_k / sum_k w_k l_k with w_k = exp(m_k - max_k m_k).
__global__ void __launch_bounds__(kCombineThreads)
    combine_kernel(const __grid_constant__ PagedAttentionParams p) {
  start_after_producers();
  __shared__ float weight_s[kMaxSplitsLimit];
  __shared__ float inv_sum_s;
  const int s = blockIdx.x, head = blockIdx.y;
  const int tok = p.query_start[s];
  if (p.query_start[s + 1] - tok != 1) return;
  const int pos = p.q_positions[tok];
  const KeyRange range = key_range(pos, pos, p.seq_lens[s], p.window);
  const int keys = range.hi > range.lo ? range.hi - range.lo : 0;
  const int splits = decode_splits(keys, p.max_splits, p.split_keys);
  if (splits <= 1) return;
  const int64_t first = (static_cast<int64_t>(s) * p.num_q_heads + head) * p.max_splits;
  const float* ml = p.partial_ml + 2 * first;
  if (threadIdx.x == 0) {
    float m = neg_inf();
    for (int k = 0; k < splits; ++k) m = fmaxf(m, ml[2 * k]);
    float sum = 0.0f;
    for (int k = 0; k < splits; ++k) {
      const float wk = ml[2 * k] == neg_inf() ? 0.0f : expf(ml[2 * k] - m);
      weight_s[k] = wk;
      sum += wk * ml[2 * k + 1];
    }
    inv_sum_s = sum > 0.0f ? 1.0f / sum : 0.0f;
  }
  __syncthreads();
  const float inv = inv_sum_s;
  const float* acc = p.partial_acc + first * p.head_dim;
  const int64_t out_base = tok * p.out_token_stride + head * p.out_head_stride;
  for (int e = threadIdx.x; e < p.head_dim; e += blockDim.x) {
    float v = 0.0f;
    for (int k = 0; k < splits; ++k)
      v = fmaf(weight_s[k], acc[static_cast<int64_t>(k) * p.head_dim + e], v);
    store_elem(p.out, p.out_type, out_base + e, v * inv);
  }
}

// tile_start[s + 1] = number of prefill tiles of sequences 0..s (tile_start[0] = 0), where a
// sequence with q >= 2 query tokens has ceil(q / tokens_per_tile) tiles and a decode none.
// One block; a block-wide inclusive scan per 1024 sequences.
__global__ void __launch_bounds__(kPlanThreads)
    plan_tiles_kernel(const __grid_constant__ PagedAttentionParams p, int tokens_per_tile) {
  start_after_producers();
  __shared__ int warp_total[kPlanThreads / 32];
  __shared__ int carry_s;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  if (tid == 0) {
    carry_s = 0;
    p.tile_start[0] = 0;
  }
  __syncthreads();
  for (int base = 0; base < p.num_seqs; base += kPlanThreads) {
    const int s = base + tid;
    int x = 0;
    if (s < p.num_seqs) {
      const int len = p.query_start[s + 1] - p.query_start[s];
      x = len >= 2 ? (len + tokens_per_tile - 1) / tokens_per_tile : 0;
    }
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, x, offset);
      if (lane >= offset) x += y;
    }
    if (lane == 31) warp_total[warp] = x;
    __syncthreads();
    if (warp == 0) {
      int t = warp_total[lane];
#pragma unroll
      for (int offset = 1; offset < 32; offset <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, t, offset);
        if (lane >= offset) t += y;
      }
      warp_total[lane] = t;  // inclusive totals per warp
    }
    __syncthreads();
    const int carry = carry_s;
    x += carry + (warp > 0 ? warp_total[warp - 1] : 0);
    if (s < p.num_seqs) p.tile_start[s + 1] = x;
    __syncthreads();
    if (tid == kPlanThreads - 1) carry_s = x;
    __syncthreads();
  }
}

template <int D, typename CacheT, int ROWS>
void launch_attention(const PagedAttentionParams& p, bool decode_mode, dim3 grid,
                      cudaStream_t stream) {
  constexpr int kThreads = threads_for_rows(ROWS);
  using C = Cfg<D, CacheT, ROWS, kThreads>;
  auto kernel = paged_attention_kernel<D, CacheT, ROWS, kThreads>;
  // NOTE: a function attribute, not a stream operation: allowed during graph capture.
  SLUICE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  launch_pdl(kernel, grid, dim3(kThreads), C::kSmemBytes, stream, p, decode_mode);
}

template <int D, typename CacheT>
void launch_for_shape(const PagedAttentionParams& p, cudaStream_t stream) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int heads_per_cta = group < kMaxRows ? group : kMaxRows;
  const int head_chunks = (group + heads_per_cta - 1) / heads_per_cta;
  const unsigned grid_y = static_cast<unsigned>(p.num_kv_heads * head_chunks);

  // Decodes: the smallest row count that holds one token's heads.
  const dim3 decode_grid(static_cast<unsigned>(p.num_seqs), grid_y,
                         static_cast<unsigned>(p.max_splits));
  constexpr bool kMmaShape = sizeof(CacheT) == 2 && (D == 256 || D == 512);
  if (kMmaShape && p.decode_mma) {
    launch_paged_attention_mma(p, true, decode_grid, stream);
  } else if (heads_per_cta <= 2) {
    launch_attention<D, CacheT, 2>(p, true, decode_grid, stream);
  } else if (heads_per_cta <= 4) {
    launch_attention<D, CacheT, 4>(p, true, decode_grid, stream);
  } else if (heads_per_cta <= 8) {
    launch_attention<D, CacheT, 8>(p, true, decode_grid, stream);
  } else {
    launch_attention<D, CacheT, kMaxRows>(p, true, decode_grid, stream);
  }
  if (p.max_splits > 1) {
    launch_pdl(combine_kernel,
               dim3(static_cast<unsigned>(p.num_seqs), static_cast<unsigned>(p.num_q_heads)),
               dim3(kCombineThreads), 0, stream, p);
  }

  // Prefill chunks: tiles of kMaxRows / heads_per_cta tokens, numbered on the device.
  if (p.max_query_len > 1) {
    const int tokens_per_tile = kMaxRows / heads_per_cta;
    launch_pdl(plan_tiles_kernel, dim3(1), dim3(kPlanThreads), 0, stream, p, tokens_per_tile);
    // Sum over sequences of ceil(q_s / T) <= (num_tokens + num_seqs (T - 1)) / T, and
    // <= num_seqs * ceil(max_query_len / T).
    const int64_t by_tokens = (static_cast<int64_t>(p.num_tokens) +
                               static_cast<int64_t>(p.num_seqs) * (tokens_per_tile - 1)) /
                              tokens_per_tile;
    const int64_t by_seqs = static_cast<int64_t>(p.num_seqs) *
                            ((p.max_query_len + tokens_per_tile - 1) / tokens_per_tile);
    const int64_t tiles = by_tokens < by_seqs ? by_tokens : by_seqs;
    const dim3 prefill_grid(static_cast<unsigned>(tiles), grid_y, 1);
    if (tiles > 0 && kMmaShape && p.prefill_mma) {
      launch_paged_attention_mma(p, false, prefill_grid, stream);
    } else if (tiles > 0) {
      launch_attention<D, CacheT, kMaxRows>(p, false, prefill_grid, stream);
    }
  }
}

__global__ void cache_write_kernel(const __grid_constant__ CacheWriteParams p) {
  start_after_producers();
  const int64_t t = blockIdx.x;
  const int slot = p.slots[t];
  if (slot < 0) return;
  const int d = p.head_dim;
  const int row = p.num_kv_heads * d;
  const size_t cache_elem = p.cache_type == ElemType::kBF16 ? 2 : 4;
  const size_t k_elem = p.k_type == ElemType::kBF16 ? 2 : 4;
  const size_t v_elem = p.v_type == ElemType::kBF16 ? 2 : 4;
  auto copy = [&](auto width, int i) {
    constexpr int N = decltype(width)::value;
    const int h = i / d, col = i % d;
    float x[N];
    const void* k_row = static_cast<const unsigned char*>(p.k) +
                        (t * p.k_token_stride + h * p.k_head_stride) * k_elem;
    const void* v_row = static_cast<const unsigned char*>(p.v) +
                        (t * p.v_token_stride + h * p.v_head_stride) * v_elem;
    const int64_t cache_row = static_cast<int64_t>(slot) * row + static_cast<int64_t>(h) * d;
    void* kc = static_cast<unsigned char*>(p.k_cache) + cache_row * cache_elem;
    void* vc = static_cast<unsigned char*>(p.v_cache) + cache_row * cache_elem;
    load_n<N>(k_row, p.k_type, col, x);
    store_n<N>(kc, p.cache_type, col, x);
    load_n<N>(v_row, p.v_type, col, x);
    store_n<N>(vc, p.cache_type, col, x);
  };
  if (p.vectorized) {
    for (int i = threadIdx.x * 8; i < row; i += blockDim.x * 8) copy(Width<8>{}, i);
  } else {
    for (int i = threadIdx.x; i < row; i += blockDim.x) copy(Width<1>{}, i);
  }
}

}  // namespace

int paged_attention_max_splits(int num_seqs, int max_seq_len, int split_keys) {
  // Aim for about kTargetUnits (sequence, split) pairs, enough CTAs to fill the chip even
  // with few KV heads, without splitting below split_keys keys per part.
  constexpr int kTargetUnits = 512;
  if (num_seqs <= 0 || split_keys < 1 || max_seq_len <= split_keys) return 1;
  const int by_len = (max_seq_len + split_keys - 1) / split_keys;
  const int by_batch = (kTargetUnits + num_seqs - 1) / num_seqs;
  int splits = by_len < by_batch ? by_len : by_batch;
  if (splits > kMaxSplitsLimit) splits = kMaxSplitsLimit;
  return splits < 1 ? 1 : splits;
}

void launch_paged_attention(const PagedAttentionParams& p, void* stream) {
  if (p.num_tokens == 0 || p.num_seqs == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const bool bf16 = p.cache_type == ElemType::kBF16;
  switch (p.head_dim) {
    case 64:
      bf16 ? launch_for_shape<64, uint16_t>(p, s) : launch_for_shape<64, float>(p, s);
      break;
    case 128:
      bf16 ? launch_for_shape<128, uint16_t>(p, s) : launch_for_shape<128, float>(p, s);
      break;
    case 256:
      bf16 ? launch_for_shape<256, uint16_t>(p, s) : launch_for_shape<256, float>(p, s);
      break;
    case 512:
      bf16 ? launch_for_shape<512, uint16_t>(p, s) : launch_for_shape<512, float>(p, s);
      break;
    default:
      break;  // rejected by check_paged_attention
  }
}

void launch_cache_write(const CacheWriteParams& p, void* stream) {
  if (p.num_tokens == 0 || p.num_kv_heads == 0 || p.head_dim == 0) return;
  const int64_t row = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  const int64_t per_thread = p.vectorized ? 8 : 1;
  int64_t threads = ((row / per_thread + 31) / 32) * 32;
  threads = threads < 32 ? 32 : (threads > 256 ? 256 : threads);
  launch_pdl(cache_write_kernel, dim3(static_cast<unsigned>(p.num_tokens)),
             dim3(static_cast<unsigned>(threads)), 0, stream, p);
}

}  // namespace sluice::kernels::cuda
