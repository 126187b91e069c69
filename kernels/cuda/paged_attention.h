#pragma once
// The paged KV cache on the GPU: writing a step's new K/V rows into their slots
// (cache_write) and attention of a flattened mixed batch (prefill chunks and decodes) over
// the cache (paged_attention). Includers need no CUDA header: tensors are kernels::Tensor
// views of device memory and `stream` is a cudaStream_t passed as void* (nullptr: the
// legacy default stream).
//
// Semantics are those of CacheWriteArgs and PagedAttentionArgs in kernels/ops.h; the
// differences on the GPU are listed at each function. Launchers validate their arguments
// (aborting through SLUICE_CHECK on a violation: a bad shape reaching a kernel is a bug in
// the caller), never allocate, never synchronise and never read device memory from the
// host, so both are safe under CUDA graph capture. Values inside device tensors (slots,
// positions, block ids, sequence lengths) are the caller's contract and are not checked.

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/kernel_params.h"  // ElemType
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

// CacheWriteArgs (kernels/ops.h) on the GPU:
//   k, v [N, nkv, d] f32|bf16 (each its own dtype; token and head strides free, last dim
//     contiguous);
//   k_cache, v_cache [num_slots, nkv, d] bf16|f32, contiguous, the same dtype and shape;
//   slots [N] i32 contiguous in DEVICE memory, each in [0, num_slots) or -1 (skip the token).
// Values are rounded once to the cache dtype (nearest even). Slots other than -1 must be
// distinct (two tokens writing one slot race). N <= INT32_MAX.
Status check_cache_write(const CacheWriteArgs& args);
void cache_write(const CacheWriteArgs& args, void* stream);

// PagedAttentionArgs (kernels/ops.h) on the GPU, plus what the kernels need to size their
// grids without reading device memory.
//   base.q, base.out [N, nq, d] f32|bf16 (each its own dtype; token and head strides free);
//   base.k_cache, base.v_cache [num_slots, nkv, d] bf16|f32, contiguous, same dtype and shape;
//   base.token_seq, base.q_positions [N], base.seq_lens [S] i32 contiguous, DEVICE memory;
//   base.block_tables [S, max_blocks] i32 DEVICE memory (row stride free);
//   d in {64, 128, 256, 512}; nq % nkv == 0; block_size >= 8 and divides num_slots.
// The kernels locate each sequence's tokens through query_start and never read token_seq
// (it is shape-checked only; it must agree with query_start). Scores, online softmax and
// the output accumulation are f32 over the stored values; out is rounded once.
// Which kernel computes a batch's attention. kAuto takes kMma where it applies
// (paged_attention_mma_parts) and kSimt elsewhere; the others force one, for tests and
// benchmarks.
//   kSimt: f32 arithmetic throughout, any cache dtype and head dim.
//   kMma:  bf16 tensor cores (mma.sync m16n8k16, f32 accumulation); q and the softmax
//          weights P are rounded to bf16 before their products, so results differ from
//          kSimt by about one bf16 rounding: only for a bf16 cache and head dim 256 or 512.
enum class AttentionKernel { kAuto, kSimt, kMma };

struct CudaPagedAttentionArgs {
  PagedAttentionArgs base;
  Tensor query_start;     // [S + 1] i32 device: sequence s owns rows [query_start[s],
                          // query_start[s + 1]) of q, in increasing position order
  int max_query_len = 0;  // host copy: max over s of query_start[s + 1] - query_start[s]
  int max_seq_len = 0;    // host copy: max over s of seq_lens[s]
  Tensor workspace;       // device scratch, contiguous, any dtype, at least
                          // paged_attention_workspace_bytes(...) bytes (undefined if that is 0)
  AttentionKernel kernel = AttentionKernel::kAuto;
  int split_keys = 0;  // fewest keys per decode split: 0 (kPagedMinSplitKeys) or at least
                       // kPagedFinestSplitKeys (benchmarks compare the policy's choices)
};

// Which parts of a batch run on tensor cores: its decodes (sequences with one query token)
// and its prefill chunks. kAuto picks kMma for a bf16 cache, head dim 256 or 512 and bf16 q
// and out (so the only extra rounding is P's): for prefill chunks always (a CTA's 16 rows are
// several tokens of a GQA group), for decodes when a KV head has at least 8 query heads (a
// decode's rows are one token's group, padded to the tile's 16; with fewer the SIMT kernel,
// bandwidth-bound there anyway, does as well).
struct MmaParts {
  bool decodes = false, prefills = false;
};
MmaParts paged_attention_mma_parts(const CudaPagedAttentionArgs& args);

// Bytes of device scratch paged_attention needs for a batch of num_tokens query tokens in
// num_seqs sequences whose longest holds max_seq_len keys (split-K partial results of the
// decodes and the prefill tile list). Depends only on its arguments (not on the device),
// so a buffer sized for the largest batch serves every smaller one.
size_t paged_attention_workspace_bytes(int num_tokens, int num_seqs, int num_q_heads, int head_dim,
                                       int max_seq_len);

Status check_paged_attention(const CudaPagedAttentionArgs& args);
void paged_attention(const CudaPagedAttentionArgs& args, void* stream);

// ---- Internal to kernels/cuda: parameter blocks filled by paged_attention.cpp and the
// launchers of paged_attention.cu. Plain data, passed by value as __grid_constant__. ----

struct CacheWriteParams {
  const void* k = nullptr;
  const void* v = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  const int32_t* slots = nullptr;
  int64_t k_token_stride = 0, k_head_stride = 0;  // elements
  int64_t v_token_stride = 0, v_head_stride = 0;
  ElemType k_type = ElemType::kF32, v_type = ElemType::kF32, cache_type = ElemType::kBF16;
  int32_t num_tokens = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  // Every row start of k, v and the caches is 16-byte aligned and head_dim % 8 == 0: then
  // threads move 8 elements per access.
  bool vectorized = false;
};
void launch_cache_write(const CacheWriteParams& p, void* stream);
// The parameter block of checked arguments (check_cache_write).
CacheWriteParams cache_write_params(const CacheWriteArgs& args);

// Split-K policy for decodes (see paged_attention.cu): a decode with K visible keys is split
// into min(paged_attention_max_splits(num_seqs, max_seq_len, split_keys), ceil(K /
// split_keys)) equal parts, split_keys being CudaPagedAttentionArgs::split_keys or
// kPagedMinSplitKeys. The workspace is sized for the finest choice, kPagedFinestSplitKeys.
inline constexpr int kPagedMinSplitKeys = 128;
inline constexpr int kPagedFinestSplitKeys = 32;
int paged_attention_max_splits(int num_seqs, int max_seq_len, int split_keys = kPagedMinSplitKeys);

struct PagedAttentionParams {
  const void* q = nullptr;
  void* out = nullptr;
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  const int32_t* q_positions = nullptr;   // [N]
  const int32_t* block_tables = nullptr;  // [S, max_blocks], row stride table_stride
  const int32_t* seq_lens = nullptr;      // [S]
  const int32_t* query_start = nullptr;   // [S + 1]
  float* partial_acc = nullptr;           // [S, nq, max_splits, d] (max_splits > 1 only)
  float* partial_ml = nullptr;            // [S, nq, max_splits, 2]: running max, running sum
  int32_t* tile_start = nullptr;          // [S + 1]: first prefill tile of each sequence
  int64_t q_token_stride = 0, q_head_stride = 0;  // elements
  int64_t out_token_stride = 0, out_head_stride = 0;
  int64_t table_stride = 0;
  ElemType q_type = ElemType::kF32, out_type = ElemType::kF32, cache_type = ElemType::kBF16;
  int32_t num_tokens = 0;
  int32_t num_seqs = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t max_blocks = 0;  // block-table columns
  int32_t block_size = 16;
  int32_t block_shift = -1;  // log2(block_size) when a power of two, else -1
  int32_t window = 0;
  int32_t max_query_len = 0;
  int32_t max_seq_len = 0;
  int32_t max_splits = 1;  // paged_attention_max_splits(num_seqs, max_seq_len, split_keys)
  int32_t split_keys = kPagedMinSplitKeys;
  float scale = 1.0f;
  float softcap = 0.0f;
  bool decode_mma = false;   // decodes on the tensor-core kernel (paged_attention_mma.cu)
  bool prefill_mma = false;  // prefill chunks on it
};
void launch_paged_attention(const PagedAttentionParams& p, void* stream);

}  // namespace sluice::kernels::cuda
