#pragma once
// Device code shared by the two paged-attention kernels (paged_attention.cu: SIMT f32, any
// shape; paged_attention_mma.cu: bf16 tensor cores): asynchronous copies, element
// loads and stores, the split-K policy, the work item of one CTA, and the copy of one tile
// of keys through the block table into shared memory. Include from .cu files only.

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/paged_attention.h"

namespace sluice::kernels::cuda {
namespace {

constexpr int kMaxRows = 16;      // query rows per CTA
constexpr int kTableCache = 128;  // block ids a CTA keeps in shared memory

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float load_elem(const void* base, ElemType t, int64_t i) {
  return t == ElemType::kBF16 ? bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i])
                              : static_cast<const float*>(base)[i];
}

__device__ __forceinline__ void store_elem(void* base, ElemType t, int64_t i, float v) {
  if (t == ElemType::kBF16) {
    static_cast<uint16_t*>(base)[i] = static_cast<uint16_t>(f32_to_bf16_bits(v));
  } else {
    static_cast<float*>(base)[i] = v;
  }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

// The number of parts a decode with `keys` visible keys is split into. The attention and
// combine kernels both call it on the same values, so they agree without a handshake.
__device__ __forceinline__ int decode_splits(int keys, int max_splits, int split_keys) {
  if (max_splits <= 1 || keys <= split_keys) return 1;
  const int wanted = (keys + split_keys - 1) / split_keys;
  return wanted < max_splits ? wanted : max_splits;
}

// Visible key positions [lo, hi) of query positions [pos_min, pos_max] of one sequence.
struct KeyRange {
  int lo, hi;
};
__device__ __forceinline__ KeyRange key_range(int pos_min, int pos_max, int seq_len, int window) {
  KeyRange r;
  r.hi = pos_max + 1 < seq_len ? pos_max + 1 : seq_len;
  r.lo = window > 0 && pos_min - window + 1 > 0 ? pos_min - window + 1 : 0;
  return r;
}

// What one CTA works on, decided by thread 0.
struct WorkItem {
  int valid;
  int seq;
  int tok0, num_tokens;  // query tokens [tok0, tok0 + num_tokens)
  int head0, num_heads;  // query heads [head0, head0 + num_heads) of one KV head
  int lo, hi;            // key positions of this CTA (its split)
  int split;             // split index (decode mode)
  int partial;           // 1: write the split state to the workspace
};

__device__ WorkItem find_work(const PagedAttentionParams& p, bool decode_mode, int kv_head,
                              int head_chunk, int heads_per_cta) {
  WorkItem w{};
  w.valid = 0;
  const int group = p.num_q_heads / p.num_kv_heads;
  int s = 0, tok0 = 0, num_tokens = 0;
  if (decode_mode) {
    s = blockIdx.x;
    tok0 = p.query_start[s];
    num_tokens = p.query_start[s + 1] - tok0;
    if (num_tokens != 1) return w;
  } else {
    const int x = blockIdx.x;
    if (x >= p.tile_start[p.num_seqs]) return w;
    int lo = 0, hi = p.num_seqs - 1;  // largest s with tile_start[s] <= x
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (p.tile_start[mid] <= x) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    s = lo;
    const int tokens_per_tile = kMaxRows / heads_per_cta;
    const int q_begin = p.query_start[s], q_end = p.query_start[s + 1];
    tok0 = q_begin + (x - p.tile_start[s]) * tokens_per_tile;
    num_tokens = min(tokens_per_tile, q_end - tok0);
    if (num_tokens <= 0) return w;
  }
  int pos_min = p.q_positions[tok0], pos_max = pos_min;
  for (int t = 1; t < num_tokens; ++t) {
    const int pos = p.q_positions[tok0 + t];
    pos_min = min(pos_min, pos);
    pos_max = max(pos_max, pos);
  }
  const KeyRange range = key_range(pos_min, pos_max, p.seq_lens[s], p.window);
  const int keys = range.hi > range.lo ? range.hi - range.lo : 0;
  w.split = 0;
  w.partial = 0;
  w.lo = range.lo;
  w.hi = range.lo + keys;
  if (decode_mode) {
    const int splits = decode_splits(keys, p.max_splits, p.split_keys);
    if (static_cast<int>(blockIdx.z) >= splits) return w;
    w.split = blockIdx.z;
    w.partial = splits > 1;
    w.lo = range.lo + static_cast<int>(static_cast<int64_t>(keys) * w.split / splits);
    w.hi = range.lo + static_cast<int>(static_cast<int64_t>(keys) * (w.split + 1) / splits);
  }
  w.seq = s;
  w.tok0 = tok0;
  w.num_tokens = num_tokens;
  w.head0 = kv_head * group + head_chunk * heads_per_cta;
  w.num_heads = min(heads_per_cta, group - head_chunk * heads_per_cta);
  w.valid = 1;
  return w;
}

// The work item of this CTA (grid y = KV head x head chunk), found by thread 0 and handed to
// every thread through `shared`; `kv_head` receives the CTA's KV head. Contains a barrier:
// every thread calls it.
__device__ __forceinline__ WorkItem cta_work(const PagedAttentionParams& p, bool decode_mode,
                                             WorkItem& shared, int& kv_head) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int heads_per_cta = group < kMaxRows ? group : kMaxRows;
  const int head_chunks = (group + heads_per_cta - 1) / heads_per_cta;
  kv_head = blockIdx.y / head_chunks;
  if (threadIdx.x == 0) {
    shared = find_work(p, decode_mode, kv_head, blockIdx.y % head_chunks, heads_per_cta);
  }
  __syncthreads();
  return shared;
}

// The block table of one CTA's sequence, cached kTableCache entries at a time in shared
// memory. `base` and `loaded` are per-thread copies of CTA-uniform values.
struct TableCache {
  const int32_t* row;  // the sequence's block-table row (global memory)
  int32_t* ids;        // __shared__ int32_t[kTableCache]
  int base = 0;
  bool loaded = false;
};

// Queues the 16-byte copies of the K and V rows of keys [t0, t0 + KT) (those below `hi`)
// of KV head `kv_head` into k_dst / v_dst (rows ROW_BYTES apart). Keys at or past `hi`, and
// keys whose block-table entry is -1, are zero-filled without a read. CTA-uniform control
// flow: every thread calls it with the same t0 and hi; it may refill the block-id cache,
// with barriers.
template <int D, int ELEM, int KT, int ROW_BYTES, int THREADS>
__device__ __forceinline__ void issue_kv_tile(const PagedAttentionParams& p, TableCache& table,
                                              int kv_head, int t0, int hi, unsigned char* k_dst,
                                              unsigned char* v_dst) {
  constexpr int kNch = D * ELEM / 16;  // 16-byte chunks per key row
  const int tid = threadIdx.x;
  const int bs = p.block_size;
  const int t1 = min(t0 + KT, hi);
  const int first_block = t0 / bs, last_block = (t1 - 1) / bs;
  if (!table.loaded || last_block >= table.base + kTableCache) {
    __syncthreads();  // NOTE: uniform; nobody reads the cache between issues
    table.base = first_block;
    table.loaded = true;
    for (int i = tid; i < kTableCache; i += THREADS) {
      const int b = table.base + i;
      table.ids[i] = b < p.max_blocks ? table.row[b] : -1;
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = tid; i < KT * kNch; i += THREADS) {
    const int j = i / kNch, c = i % kNch;
    const int kp = t0 + j;
    const void* k_src = p.k_cache;
    const void* v_src = p.v_cache;
    bool valid = false;
    if (kp < t1) {
      // NOTE: block sizes are powers of two in practice; shift and mask, not divide.
      const int b = p.block_shift >= 0 ? kp >> p.block_shift : kp / bs;
      const int block = table.ids[b - table.base];
      if (block >= 0) {
        const int64_t row =
            (static_cast<int64_t>(block) * bs + (kp - b * bs)) * p.num_kv_heads + kv_head;
        const int64_t byte = row * D * ELEM + c * 16;
        k_src = static_cast<const unsigned char*>(p.k_cache) + byte;
        v_src = static_cast<const unsigned char*>(p.v_cache) + byte;
        valid = true;
      }
    }
    cp_async16(k_dst + j * ROW_BYTES + c * 16, k_src, valid);
    cp_async16(v_dst + j * ROW_BYTES + c * 16, v_src, valid);
  }
}

// The per-row state of a CTA's work item, set by threads 0 .. rows - 1 (a barrier must
// follow before it is read). Row r is (token tok0 + r / num_heads, query head head0 +
// r % num_heads); rows past num_rows are padding at position -1 (no key visible), never
// written out. Returns num_rows.
__device__ __forceinline__ int init_rows(const PagedAttentionParams& p, const WorkItem& w, int rows,
                                         int* row_pos, float* row_m, float* row_l) {
  const int num_rows = w.num_tokens * w.num_heads;
  const int r = threadIdx.x;
  if (r < rows) {
    row_pos[r] = r < num_rows ? p.q_positions[w.tok0 + r / w.num_heads] : -1;
    row_m[r] = neg_inf();
    row_l[r] = 0.0f;
  }
  return num_rows;
}

// Online softmax, per row r: after a tile whose visible scores have max m_new (>= the old
// max m_old) and whose weights exp(x - m_new) sum to `sum`, the running max and sum move to
// the new max and alpha = exp(m_old - m_new) (0 while the row has seen nothing) rescales the
// row's accumulators. One lane per row calls it.
struct RowState {
  float* m;
  float* l;
  float* alpha;
  __device__ __forceinline__ void fold(int r, float m_old, float m_new, float sum) const {
    const float a = m_old == neg_inf() ? 0.0f : expf(m_old - m_new);
    alpha[r] = a;
    l[r] = l[r] * a + sum;
    m[r] = m_new;
  }
};

// The double-buffered tile pipeline of both kernels: queues tile t + 1 (issue_tile(t + 1,
// stage)) behind tile t, waits for tile t's copies and returns its stage (K rows, then V
// rows). Tile 0 was queued and committed before the loop; the caller ends each tile with a
// barrier before the next call overwrites the stage it read.
template <typename IssueTile>
__device__ __forceinline__ const unsigned char* next_tile(IssueTile& issue_tile, int t,
                                                          int num_tiles, const unsigned char* smem,
                                                          int stage_bytes) {
  if (t + 1 < num_tiles) issue_tile(t + 1, (t + 1) & 1);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();
  return smem + (t & 1) * stage_bytes;
}

}  // namespace

// Attention on bf16 tensor cores (paged_attention_mma.cu), in either mode with the SIMT
// kernel's grid and work items: decode mode (num_seqs, num_kv_heads x head chunks,
// max_splits), with the same workspace states, so combine_kernel follows it unchanged;
// prefill mode (planned tiles, num_kv_heads x head chunks). bf16 cache, head dim 256 or 512.
void launch_paged_attention_mma(const PagedAttentionParams& p, bool decode_mode, dim3 grid,
                                cudaStream_t stream);

}  // namespace sluice::kernels::cuda
