#pragma once
// The op table: every operation the models need, as one struct of function pointers per
// backend (CPU here; CUDA in kernels/cuda). Model code calls ops only through an OpTable,
// so the same model runs on every backend. Each op's arguments are a struct of Tensor views;
// the op writes only `out` (or the tensor named in-place). Shapes use [rows, ...] with the
// last dimension contiguous unless a stride is stated.

#include <cstdint>

#include "kernels/tensor.h"

namespace sluice::kernels {

// out[t, :] = table[ids[t], :] * scale.
// table [V, H] f32|bf16|f16 contiguous; ids [T] i32 (host memory on CPU); out [T, H] f32
// (row stride may exceed H).
// Every id must be in [0, V); callers validate ids before they reach a kernel.
struct EmbeddingArgs {
  Tensor out, table, ids;
  float scale = 1.0f;
};

// Row-wise RMS norm over the last dimension D, computed in f32:
//   out = in * rsqrt(mean(in^2) + eps) * w,  with w = (1 + weight) when one_plus_weight
//   (Gemma 3's HF form), w = weight otherwise (Gemma 4, and Gemma 3 GGUFs, which store w+1),
//   and w = 1 when weight is undefined (Gemma 4's V-norm).
// in, out [R, D] f32 (may alias; row strides may exceed D, e.g. per-head QK-norm over a
// fused projection); weight [D] f32 or undefined. Sum of squares accumulated in f32.
struct RmsNormArgs {
  Tensor out, in, weight;
  float eps = 1e-6f;
  bool one_plus_weight = false;
};

// residual += rms_norm(in; weight): Gemma's post-norm followed by the residual add.
// residual, in [R, D] f32 (row strides may exceed D); weight [D] f32 (undefined: all ones).
struct AddRmsNormArgs {
  Tensor residual, in, weight;
  float eps = 1e-6f;
  bool one_plus_weight = false;
};

// out = a * w^T  (a Linear with HF weight w [N, K]).
// a [M, K] f32 (row stride may exceed K); w [N, K] f32|bf16|f16 contiguous; out [M, N] f32
// (row stride may exceed N; must not overlap a or w). Accumulation is f32 over f32 values
// (bf16/f16 weights are widened exactly); the result does not depend on the thread count.
struct MatmulArgs {
  Tensor out, a, w;
};

// Rotary embedding, rotate-half pairing, in place on x [T, num_heads, head_dim] f32.
// For i in [0, num_pairs): dims (i, i + pair_offset) rotate by angle
//   positions[t] * freq_scale * theta^(-2i / freq_dim).
// Dims outside those pairs pass through. Full RoPE: num_pairs = pair_offset = head_dim/2,
// freq_dim = head_dim. Gemma 4 "proportional" global RoPE: head_dim 512, num_pairs 64,
// pair_offset 256, freq_dim 512. Classic partial RoPE over the first r dims: num_pairs =
// pair_offset = r/2, freq_dim = r. positions [T] i32 host. Requires num_pairs <= pair_offset
// and num_pairs + pair_offset <= head_dim. x may be strided in its first two dims (heads
// inside a fused projection). Angles follow HF's f32 arithmetic: inv_freq_i = 1 /
// theta^(2i / freq_dim) rounded to f32, angle = f32(pos) * f32(inv_freq_i * freq_scale).
struct RopeArgs {
  Tensor x, positions;
  float theta = 10000.0f;
  float freq_scale = 1.0f;
  int num_pairs = 0;
  int pair_offset = 0;
  int freq_dim = 0;
};

// Causal attention of T query tokens of one sequence over its cached keys and values.
// q [T, nq, d] f32; k, v [S, nkv, d] f32 (key j is at position j); q_positions [T] i32 host,
// each in [0, S). Query head h reads KV head h / (nq / nkv). Key j is visible to a query at
// position p when j <= p and, with window W > 0, j > p - W. score = q.k * scale, optionally
// soft-capped as softcap * tanh(score / softcap); softmax in f32. out [T, nq, d] f32.
// q, k, v and out may be strided in their first two dims (views into fused or larger
// buffers); the last dim is contiguous.
struct AttentionArgs {
  Tensor out, q, k, v, q_positions;
  float scale = 1.0f;
  int window = 0;         // 0: no sliding window
  float softcap = 0.0f;   // 0: none
};

// out = gelu_tanh(gate) * up, elementwise over [T, I]. gate and up may be row-strided views
// (e.g. two halves of one fused [T, 2I] projection). out [T, I] f32 contiguous (may alias
// gate or up when they are contiguous too).
struct GegluArgs {
  Tensor out, gate, up;
};

// In-place softmax over the last dimension of x [..., D] f32 contiguous. -inf entries give 0;
// a row that is all -inf gives NaN.
struct SoftmaxArgs {
  Tensor x;
};

// The k largest of values [D] f32: out_indices [k] i32 and out_values [k] f32, sorted by
// value descending, ties broken by the lower index. NaN counts as smaller than everything.
// 0 <= k <= D; with k == 0 the outputs may be undefined.
struct TopKArgs {
  Tensor values, out_indices, out_values;
  int k = 0;
};

// In place: x = cap * tanh(x / cap). x f32, any shape, contiguous.
struct SoftcapArgs {
  Tensor x;
  float cap = 0.0f;
};

// out = a + b elementwise (f32, same shape, contiguous; out may alias a or b).
struct AddArgs {
  Tensor out, a, b;
};

// In place: x *= scale (f32, contiguous).
struct ScaleArgs {
  Tensor x;
  float scale = 1.0f;
};

// Writes the K and V rows of N new tokens into a paged KV cache, at their slots.
// k, v [N, nkv, d] f32 (may be row-strided views); k_cache, v_cache [num_slots, nkv, d] f32
// contiguous, where num_slots = num_blocks * block_size and slot = block * block_size + offset;
// slots [N] i32 host, each in [0, num_slots) or -1 (the token is not cached, e.g. a layer
// group whose blocks for it were not allocated).
struct CacheWriteArgs {
  Tensor k, v, k_cache, v_cache, slots;
};

// Attention for a flattened mixed batch (prefill chunks and decodes of several sequences)
// over a paged KV cache. Token t belongs to sequence token_seq[t] and sits at absolute
// position q_positions[t]; the key at position j of sequence s lives in slot
// block_tables[s, j / block_size] * block_size + j % block_size. Key j is visible to a
// query at position p when j <= p (and j < seq_lens[s]) and, with window W > 0, j > p - W;
// block-table entries of blocks that cannot be visible (left the window) may be -1. Each
// q_positions[t] < seq_lens[token_seq[t]]: the step's own keys are written first (cache_write).
// q, out [N, nq, d] f32 (may be row-strided views); k_cache, v_cache [num_slots, nkv, d] f32;
// token_seq, q_positions [N] i32 host; block_tables [S, max_blocks] i32 host; seq_lens [S]
// i32 host. GQA, scale and soft-cap as in AttentionArgs. Each query reads only the blocks of
// its own sequence, once, with no gather into a contiguous copy.
struct PagedAttentionArgs {
  Tensor out, q, k_cache, v_cache, token_seq, q_positions, block_tables, seq_lens;
  int block_size = 16;
  float scale = 1.0f;
  int window = 0;
  float softcap = 0.0f;
};

struct OpTable {
  const char* backend = "";
  void (*embedding)(const EmbeddingArgs&) = nullptr;
  void (*rms_norm)(const RmsNormArgs&) = nullptr;
  void (*add_rms_norm)(const AddRmsNormArgs&) = nullptr;
  void (*matmul)(const MatmulArgs&) = nullptr;
  void (*rope)(const RopeArgs&) = nullptr;
  void (*attention)(const AttentionArgs&) = nullptr;
  void (*geglu)(const GegluArgs&) = nullptr;
  void (*softmax)(const SoftmaxArgs&) = nullptr;
  void (*top_k)(const TopKArgs&) = nullptr;
  void (*softcap)(const SoftcapArgs&) = nullptr;
  void (*add)(const AddArgs&) = nullptr;
  void (*scale)(const ScaleArgs&) = nullptr;
  void (*cache_write)(const CacheWriteArgs&) = nullptr;
  void (*paged_attention)(const PagedAttentionArgs&) = nullptr;

  // The name of the first op without an implementation, or nullptr when all are set.
  const char* first_missing() const;
};

// The CPU backend (always built). SIMD path chosen at run time (kernels/cpu/isa.h).
const OpTable& cpu_ops();

// gelu with the tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).
float gelu_tanh(float z);

}  // namespace sluice::kernels
