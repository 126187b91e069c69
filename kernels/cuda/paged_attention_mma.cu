// Paged attention on bf16 tensor cores (contract: PagedAttentionArgs with
// AttentionKernel::kMma in kernels/cuda/paged_attention.h), for decodes and prefill chunks.
// The work items, the split-K policy of decodes, the prefill tile plan, the workspace states
// and the combine step are those of the SIMT kernel (paged_attention.cu); only the
// arithmetic of one CTA differs.
//
// Why: a decode of a GQA group of G query heads does 4 G d flops per key and reads 4 d bytes
// of K and V. At G = 8 (Gemma 4's global layers: 16 query heads over 2 KV heads, d 512) SIMT
// f32 arithmetic cannot keep up with the memory system (measured on an H200: 28% of the copy
// bandwidth at batch 256, context 8192). With mma.sync the same work is a few dozen
// instructions per warp per tile, and the kernel is left to stream K and V.
// Prefill does 4 G d flops per (query, key) pair with nothing to stream but L2-resident K/V:
// the SIMT kernel ran it at 9.5 TFLOP/s (H200), a small fraction of the tensor-core rate.
//
// One CTA (8 warps) owns a work item like the SIMT kernel: decode mode, one (sequence, KV
// head, head chunk, split), its rows the up to 16 query heads of the chunk (one token);
// prefill mode, one tile of consecutive tokens of a sequence, its rows (token, head) pairs of
// the chunk, 16 at most. Rows are padded to the 16 rows of an m16n8k16 tile with zero
// queries at position -1, which see no key. Keys move in tiles of kKt keys (16 KiB
// of K and 16 KiB of V; rows padded by 16 bytes so fragment loads hit distinct banks),
// double-buffered through cp.async like the SIMT kernel, and per tile:
//   QK:      S = Q K^T     warp (key block of 8 keys, slice of d): kQkSteps mma, q fragments
//                          held in registers for the whole CTA; the d slices' partial S meet
//                          in shared memory
//   softmax: one warp per row (rows w and w + 8): sum the slices, scale, soft-cap, mask,
//            online max and sum in f32; P rounded to bf16 into shared memory, and the row
//            sum taken over the rounded values so numerator and denominator agree
//   PV:      O = O alpha + P V   warp (columns [w D / 8, (w + 1) D / 8)): accumulators in
//                          registers (the mma C layout), V fragments by ldmatrix.trans
// Fragment layouts: kernels/cuda/mma.cuh. tools/emulate_attention_mma.py replays this kernel's
// index arithmetic on the host.

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/paged_attention_common.cuh"
#include "kernels/cuda/pdl.cuh"

namespace sluice::kernels::cuda {
namespace {

constexpr int kMmaThreads = 256;
constexpr int kMmaWarps = kMmaThreads / 32;
constexpr int kMmaTileBytes = 16384;  // one K (or V) tile, padding aside
constexpr int kMmaRows = 16;          // the m of m16n8k16

template <int D>
struct MmaCfg {
  static constexpr int kKt = kMmaTileBytes / (D * 2);      // keys per tile: 16 (d 512), 32 (256)
  static constexpr int kRowBytes = D * 2 + 16;             // K/V tile row, padded
  static constexpr int kTileSmem = kKt * kRowBytes;        // one K (or V) tile
  static constexpr int kStageBytes = 2 * kTileSmem;        // K and V
  static constexpr int kKeyBlocks = kKt / 8;               // QK: n-blocks of 8 keys
  static constexpr int kDSplits = kMmaWarps / kKeyBlocks;  // QK: warps per key block
  static constexpr int kQkSteps = D / 16 / kDSplits;       // QK: k-steps of 16 per warp
  static constexpr int kPvCols = D / kMmaWarps;            // PV: output columns per warp
  static constexpr int kPvBlocks = kPvCols / 8;            // PV: n-blocks per warp
  static constexpr int kPvSteps = kKt / 16;                // PV: k-steps of 16 keys
  static constexpr int kQRow = D + 8;                      // bf16 elements per q row in smem
  static constexpr int kPRow = kKt + 8;                    // bf16 elements per P row in smem
  static constexpr int kQOffset = 2 * kStageBytes;
  static constexpr int kSOffset = kQOffset + kMmaRows * kQRow * 2;
  static constexpr int kPOffset = kSOffset + kDSplits * kMmaRows * kKt * 4;
  static constexpr int kSmemBytes = kPOffset + kMmaRows * kPRow * 2;

  static_assert(kKt % 16 == 0 && kKt <= 32, "a tile is whole k-steps, one key per lane");
  static_assert(kMmaWarps % kKeyBlocks == 0 && (D / 16) % kDSplits == 0, "QK warp map");
  static_assert(kPvBlocks % 2 == 0, "PV: ldmatrix.x4 loads two n-blocks");
  static_assert(kQOffset % 16 == 0 && kSOffset % 16 == 0 && kPOffset % 16 == 0, "alignment");
  static_assert(2 * kSmemBytes <= 220 * 1024, "two CTAs per SM");
};

__device__ __forceinline__ uint32_t lds32(const uint16_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

template <int D>
__global__ void __launch_bounds__(kMmaThreads, 2)
    paged_attention_mma_kernel(const __grid_constant__ PagedAttentionParams p, bool decode_mode) {
  start_after_producers();
  using C = MmaCfg<D>;
  constexpr int kKt = C::kKt;
  SLUICE_DYNAMIC_SHARED(unsigned char, smem, 128);
  __shared__ WorkItem item;
  __shared__ int32_t table_s[kTableCache];
  __shared__ int row_pos[kMmaRows];
  __shared__ float row_m[kMmaRows], row_l[kMmaRows], row_alpha[kMmaRows];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem + C::kQOffset);  // [16][kQRow] bf16
  float* s_s = reinterpret_cast<float*>(smem + C::kSOffset);        // [kDSplits][16][kKt]
  uint16_t* p_s = reinterpret_cast<uint16_t*>(smem + C::kPOffset);  // [16][kPRow] bf16

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, q4 = lane % 4;  // fragment coordinates
  int kv_head = 0;
  const WorkItem w = cta_work(p, decode_mode, item, kv_head);
  if (!w.valid) return;
  const int num_rows = init_rows(p, w, kMmaRows, row_pos, row_m, row_l);
  // q rounded once to bf16 (exact for a bf16 q); rows past num_rows are zero.
  for (int i = tid; i < kMmaRows * D / 2; i += kMmaThreads) {
    const int r = i / (D / 2), e = 2 * (i % (D / 2));
    uint32_t bits = 0;
    if (r < num_rows) {
      const int64_t at = static_cast<int64_t>(w.tok0 + r / w.num_heads) * p.q_token_stride +
                         static_cast<int64_t>(w.head0 + r % w.num_heads) * p.q_head_stride + e;
      bits = f32_to_bf16_bits(load_elem(p.q, p.q_type, at)) |
             (f32_to_bf16_bits(load_elem(p.q, p.q_type, at + 1)) << 16);
    }
    *reinterpret_cast<uint32_t*>(q_s + r * C::kQRow + e) = bits;
  }

  TableCache table{p.block_tables + static_cast<int64_t>(w.seq) * p.table_stride, table_s};
  const int num_tiles = (w.hi - w.lo + kKt - 1) / kKt;
  auto issue_tile = [&](int t, int stage) {
    unsigned char* k_dst = smem + stage * C::kStageBytes;
    issue_kv_tile<D, 2, kKt, C::kRowBytes, kMmaThreads>(p, table, kv_head, w.lo + t * kKt, w.hi,
                                                        k_dst, k_dst + C::kTileSmem);
  };
  if (num_tiles > 0) issue_tile(0, 0);
  cp_async_commit();
  __syncthreads();  // q_s is complete

  // QK warp map: key block kb (keys kb * 8 .. + 7 of a tile), d slice ds. Its q fragments
  // stay in registers for every tile.
  const int kb = warp % C::kKeyBlocks, ds = warp / C::kKeyBlocks;
  uint32_t qa[C::kQkSteps][4];
#pragma unroll
  for (int i = 0; i < C::kQkSteps; ++i) {
    const uint16_t* lo = q_s + g * C::kQRow + (ds * C::kQkSteps + i) * 16 + 2 * q4;
    const uint16_t* hi = lo + 8 * C::kQRow;
    qa[i][0] = lds32(lo);
    qa[i][1] = lds32(hi);
    qa[i][2] = lds32(lo + 8);
    qa[i][3] = lds32(hi + 8);
  }

  float acc[C::kPvBlocks][4];
#pragma unroll
  for (int nb = 0; nb < C::kPvBlocks; ++nb) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[nb][e] = 0.0f;
  }
  // PV: this lane's ldmatrix row within a k-step (key) and column offset.
  const int pv_key = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int pv_col = warp * C::kPvCols + (lane >> 4) * 8;

  for (int t = 0; t < num_tiles; ++t) {
    const unsigned char* k_tile = next_tile(issue_tile, t, num_tiles, smem, C::kStageBytes);
    const unsigned char* v_tile = k_tile + C::kTileSmem;
    const int t0 = w.lo + t * kKt;

    // QK: this warp's 16 x 8 block of S over its slice of d.
    {
      float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const uint16_t* k_row =
          reinterpret_cast<const uint16_t*>(k_tile + (kb * 8 + g) * C::kRowBytes) + 2 * q4;
#pragma unroll
      for (int i = 0; i < C::kQkSteps; ++i) {
        const int k0 = (ds * C::kQkSteps + i) * 16;
        mma_bf16(s, qa[i], lds32(k_row + k0), lds32(k_row + k0 + 8));
      }
      float* dst = s_s + (ds * kMmaRows + g) * kKt + kb * 8 + 2 * q4;
      *reinterpret_cast<float2*>(dst) = make_float2(s[0], s[1]);
      *reinterpret_cast<float2*>(dst + 8 * kKt) = make_float2(s[2], s[3]);
    }
    __syncthreads();

    // Softmax: warp w owns rows w and w + 8; lane j owns key t0 + j.
#pragma unroll
    for (int r = warp; r < kMmaRows; r += kMmaWarps) {
      float x = neg_inf();
      if (lane < kKt) {
        float v = 0.0f;
#pragma unroll
        for (int k = 0; k < C::kDSplits; ++k) v += s_s[(k * kMmaRows + r) * kKt + lane];
        v *= p.scale;
        if (p.softcap > 0.0f) v = p.softcap * tanhf(v / p.softcap);
        const int kp = t0 + lane, pos = row_pos[r];  // -1 on padding rows: nothing visible
        const bool visible = kp < w.hi && kp <= pos && (p.window == 0 || kp > pos - p.window);
        if (visible) x = v;
      }
      const float m_old = row_m[r];
      const float m_new = fmaxf(m_old, warp_max(x));
      uint32_t bits = 0;
      if (x != neg_inf()) bits = f32_to_bf16_bits(expf(x - m_new));
      if (lane < kKt) p_s[r * C::kPRow + lane] = static_cast<uint16_t>(bits);
      const float sum = warp_sum(bf16_bits_to_f32(bits));
      if (lane == 0) RowState{row_m, row_l, row_alpha}.fold(r, m_old, m_new, sum);
    }
    __syncthreads();

    // PV: rescale the accumulators, then add this tile's P V.
    const float alpha_lo = row_alpha[g], alpha_hi = row_alpha[g + 8];
#pragma unroll
    for (int nb = 0; nb < C::kPvBlocks; ++nb) {
      acc[nb][0] *= alpha_lo;
      acc[nb][1] *= alpha_lo;
      acc[nb][2] *= alpha_hi;
      acc[nb][3] *= alpha_hi;
    }
#pragma unroll
    for (int k = 0; k < C::kPvSteps; ++k) {
      const uint16_t* lo = p_s + g * C::kPRow + k * 16 + 2 * q4;
      const uint16_t* hi = lo + 8 * C::kPRow;
      const uint32_t pa[4] = {lds32(lo), lds32(hi), lds32(lo + 8), lds32(hi + 8)};
      const unsigned char* v_row = v_tile + (k * 16 + pv_key) * C::kRowBytes + pv_col * 2;
#pragma unroll
      for (int pair = 0; pair < C::kPvBlocks / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_row + pair * 16 * 2);
        mma_bf16(acc[2 * pair], pa, b[0], b[1]);
        mma_bf16(acc[2 * pair + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // the next issue overwrites this stage
  }
  cp_async_wait<0>();

  // This thread holds rows g and g + 8 at columns warp * kPvCols + nb * 8 + 2 q4 (+1).
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = g + 8 * half;
    if (r >= num_rows) continue;
    const int64_t tok = w.tok0 + r / w.num_heads;
    const int64_t head = w.head0 + r % w.num_heads;
    const int col = warp * C::kPvCols + 2 * q4;
    if (w.partial) {
      const int64_t state =
          (static_cast<int64_t>(w.seq) * p.num_q_heads + head) * p.max_splits + w.split;
      float* dst = p.partial_acc + state * D + col;
#pragma unroll
      for (int nb = 0; nb < C::kPvBlocks; ++nb) {
        *reinterpret_cast<float2*>(dst + nb * 8) =
            make_float2(acc[nb][2 * half], acc[nb][2 * half + 1]);
      }
      if (warp == 0 && q4 == 0) {
        p.partial_ml[2 * state] = row_m[r];
        p.partial_ml[2 * state + 1] = row_l[r];
      }
    } else {
      const float l = row_l[r];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int64_t base = tok * p.out_token_stride + head * p.out_head_stride + col;
#pragma unroll
      for (int nb = 0; nb < C::kPvBlocks; ++nb) {
        store_elem(p.out, p.out_type, base + nb * 8, acc[nb][2 * half] * inv);
        store_elem(p.out, p.out_type, base + nb * 8 + 1, acc[nb][2 * half + 1] * inv);
      }
    }
  }
}

template <int D>
void launch_mma(const PagedAttentionParams& p, bool decode_mode, dim3 grid, cudaStream_t stream) {
  using C = MmaCfg<D>;
  auto kernel = paged_attention_mma_kernel<D>;
  // NOTE: a function attribute, not a stream operation: allowed during graph capture.
  SLUICE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  launch_pdl(kernel, grid, dim3(kMmaThreads), C::kSmemBytes, stream, p, decode_mode);
}

}  // namespace

void launch_paged_attention_mma(const PagedAttentionParams& p, bool decode_mode, dim3 grid,
                                cudaStream_t stream) {
  if (p.head_dim == 512) {
    launch_mma<512>(p, decode_mode, grid, stream);
  } else {
    launch_mma<256>(p, decode_mode, grid, stream);  // the host checks allow 256 or 512 only
  }
}

}  // namespace sluice::kernels::cuda
