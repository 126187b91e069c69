// MoE kernels (moe.h): the router, and the expert layer as four launches on one stream:
//
//   plan      one CTA: rows per expert, their exclusive offsets, the tile list
//             (expert, first row, rows) and the row maps token <-> permuted row
//   gate_up   grouped GEMM act[r] = bf16(gelu_tanh(gate_e x[tok(r)]) * up_e x[tok(r)])
//   down      grouped GEMM y[r] = down_e act[r]   (f32)
//   combine   out[t] = sum_j w[t, j] * y[row(t, j)], j = 0..k-1 in order
//
// For T * k <= kMaxFusedPlanRows (decode) the plan kernel does not run: warp 0 of every
// gate_up CTA computes the same plan in registers (fused_plan), and CTA (0, 0) publishes it.
//
// The GEMMs: a CTA owns one tile of up to BM rows of one expert and one column tile
// (64 output columns, or 32 gate + 32 up rows so that GeGLU fuses in registers). K is
// streamed through a cp.async ring of BK = 64 columns, bf16 mma.sync m16n8k16 with f32
// accumulation (sm_80 and later). Grid: x = tile slot (bounded by floor(R / BM) + min(E, R),
// a host-known number; slots past the plan's tile count exit at once), y = column tile.
// At decode every active expert has one tile, and its weights are read exactly once, in
// 16-byte copies, by ceil(I / 32) + ceil(H / 64) CTAs per expert.
//
// Each output element of a GEMM depends only on its own row and the expert's weights, so
// the order of rows inside an expert (set by shared-memory atomics in the plan) never
// changes a result: the layer is deterministic.
//
// NOTE: on sm_90 the kernels are launched with programmatic dependent launch
// (kernels/cuda/pdl.cuh; SLUICE_PDL=0 in the environment turns it off).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elem_io.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/pdl.cuh"

namespace sluice::kernels::cuda::moe_internal {
namespace {

// ---- launch plumbing (programmatic dependent launch: kernels/cuda/pdl.cuh) -------------

template <typename Params>
void launch(void (*kernel)(Params), dim3 grid, dim3 block, size_t smem_bytes, void* stream,
            const Params& p) {
  if (smem_bytes > 48 * 1024) {
    SLUICE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem_bytes)));
  }
  launch_pdl(kernel, grid, block, smem_bytes, stream, p);
}

// ---- router ------------------------------------------------------------------------------

constexpr int kRouteWarps = 4;

// Order-preserving map of a float onto uint32 (larger float, larger key); NaN maps to 0,
// below every number.
__device__ __forceinline__ uint32_t order_key(float v) {
  if (v != v) return 0u;
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float load_elem(const void* base, ElemType t, int64_t i) {
  return t == ElemType::kBF16 ? bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i])
                              : static_cast<const float*>(base)[i];
}

// One warp per token. Lane l holds experts l, l + 32, ... (kSlots of them, E <= 32 kSlots).
// The top-k are taken one at a time by a warp arg-max over 64-bit keys (logit order, then
// the lower expert index): keys are unique, so every lane agrees on each winner, and only
// the lane that owned it rescans its slots.
template <int kSlots>
__global__ void __launch_bounds__(kRouteWarps * 32)
    moe_route_kernel(const __grid_constant__ RouteParams p) {
  start_after_producers();
  const int lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kRouteWarps + (threadIdx.x >> 5);
  if (t >= p.num_tokens) return;
  const int E = p.num_experts;
  const int64_t row = t * p.logits_stride;

  float logit[kSlots];
  float max_logit = -INFINITY;
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const int e = lane + 32 * i;
    logit[i] = e < E ? load_elem(p.logits, p.logits_type, row + e) : -INFINITY;
    max_logit = fmaxf(max_logit, logit[i]);  // fmaxf ignores NaN
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    max_logit = fmaxf(max_logit, __shfl_xor_sync(0xffffffffu, max_logit, offset));
  }

  // exp(l - max); 1 at the max itself (also when it is +-inf); 0 for NaN and absent experts.
  float prob[kSlots];
  uint64_t key[kSlots];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const int e = lane + 32 * i;
    const float l = logit[i];
    prob[i] = (e >= E || l != l) ? 0.0f : (l == max_logit ? 1.0f : expf(l - max_logit));
    sum += prob[i];
    key[i] = e < E ? (static_cast<uint64_t>(order_key(l)) << 32) |
                         static_cast<uint32_t>(~static_cast<uint32_t>(e))
                   : 0ull;  // absent: below everything; never chosen since top_k <= E
  }
  sum = warp_sum(sum);

  auto lane_max = [&]() {
    uint64_t m = 0;
#pragma unroll
    for (int i = 0; i < kSlots; ++i) m = key[i] > m ? key[i] : m;
    return m;
  };
  uint64_t lane_best = lane_max();
  int my_expert = 0;
  for (int j = 0; j < p.top_k; ++j) {
    uint64_t best = lane_best;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const uint64_t other = __shfl_xor_sync(0xffffffffu, best, offset);
      best = other > best ? other : best;
    }
    if (lane_best == best) {  // this lane owned the winner
#pragma unroll
      for (int i = 0; i < kSlots; ++i) key[i] = key[i] == best ? 0ull : key[i];
      lane_best = lane_max();
    }
    if (lane == j) my_expert = static_cast<int>(~static_cast<uint32_t>(best & 0xffffffffu));
  }

  // Gather each chosen expert's probability from the lane that holds it.
  float my_prob = 0.0f;
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const float v = __shfl_sync(0xffffffffu, prob[i], my_expert & 31);
    if ((my_expert >> 5) == i) my_prob = v / sum;
  }
  const float chosen_sum = warp_sum(lane < p.top_k ? my_prob : 0.0f);
  if (lane < p.top_k) {
    float w = my_prob / chosen_sum;
    if (p.scale != nullptr) w *= load_elem(p.scale, p.scale_type, my_expert);
    p.out_experts[t * p.top_k + lane] = my_expert;
    p.out_weights[t * p.top_k + lane] = w;
  }
}

// ---- plan --------------------------------------------------------------------------------

constexpr int kPlanThreads = 1024;
static_assert(kMaxPlanExperts <= kPlanThreads, "one plan thread per expert");

// Rows and tiles per expert packed as rows << 32 | tiles: one scan serves both (the tile
// total stays below 2^31, so the low half never carries into the high half).
__global__ void __launch_bounds__(kPlanThreads)
    moe_plan_kernel(const __grid_constant__ ExpertsParams p) {
  __shared__ int count[kMaxPlanExperts];
  __shared__ int cursor[kMaxPlanExperts];
  __shared__ unsigned long long warp_scan[32];
  start_after_producers();
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int num_warps = blockDim.x >> 5;
  const int E = p.num_experts;
  const int64_t R = p.num_tokens * p.top_k;

  for (int e = tid; e < E; e += blockDim.x) count[e] = 0;
  const int first_expert = tid < R ? p.experts[tid] : -1;  // reused by the scatter below
  __syncthreads();
  for (int64_t i = tid; i < R; i += blockDim.x) {
    const int e = i == tid ? first_expert : p.experts[i];
    if (static_cast<unsigned>(e) < static_cast<unsigned>(E)) atomicAdd(&count[e], 1);
  }
  __syncthreads();

  const int bm = p.rows_per_tile;
  const int rows = tid < E ? count[tid] : 0;
  const int tiles = (rows + bm - 1) / bm;
  const unsigned long long mine =
      (static_cast<unsigned long long>(rows) << 32) | static_cast<unsigned>(tiles);
  unsigned long long incl = mine;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const unsigned long long v = __shfl_up_sync(0xffffffffu, incl, offset);
    if (lane >= offset) incl += v;
  }
  if (lane == 31) warp_scan[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    unsigned long long w = lane < num_warps ? warp_scan[lane] : 0ull;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const unsigned long long v = __shfl_up_sync(0xffffffffu, w, offset);
      if (lane >= offset) w += v;
    }
    if (lane < num_warps) warp_scan[lane] = w;
  }
  __syncthreads();
  const unsigned long long before = (warp > 0 ? warp_scan[warp - 1] : 0ull) + incl - mine;
  const int row_begin = static_cast<int>(before >> 32);
  const int tile_begin = static_cast<int>(before & 0xffffffffull);
  if (tid < E) {
    cursor[tid] = row_begin;
    for (int j = 0; j < tiles; ++j) {
      const int first = j * bm;
      const int n = rows - first < bm ? rows - first : bm;
      reinterpret_cast<int4*>(p.tiles)[tile_begin + j] = make_int4(tid, row_begin + first, n, 0);
    }
  }
  if (tid == 0) {
    *p.num_tiles = static_cast<int>(warp_scan[num_warps - 1] & 0xffffffffull);
  }
  __syncthreads();

  for (int64_t i = tid; i < R; i += blockDim.x) {
    const int e = i == tid ? first_expert : p.experts[i];
    if (static_cast<unsigned>(e) < static_cast<unsigned>(E)) {
      const int pos = atomicAdd(&cursor[e], 1);
      p.row_token[pos] = static_cast<int>(i / p.top_k);
      p.flat_to_row[i] = pos;
    } else {
      p.flat_to_row[i] = -1;
    }
  }
}

// ---- grouped GEMM ------------------------------------------------------------------------

constexpr int kGemmThreads = 128;  // 4 warps, each 16 of the 64 tile columns
constexpr int kBN = 64;
constexpr int kBK = 64;
constexpr int kPitch = kBK + 8;  // smem row pitch in elements: 144 bytes, ldmatrix conflict-free
constexpr int kChunksPerRow = kBK / 8;                      // 16-byte chunks
constexpr int kRowsPerPass = kGemmThreads / kChunksPerRow;  // rows one pass of the CTA loads

// Stages of the cp.async ring: 69 KB, 55 KB and 55 KB of shared memory, 3 or 4 CTAs per SM.
// (Measured at decode: 8 or 9 stages for BM = 16 gain nothing.)
template <int BM>
struct GemmShape {
  static constexpr int kStages = BM == 16 ? 6 : (BM == 32 ? 4 : 3);
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(kStages) * (BM + kBN) * kPitch * sizeof(uint16_t);
};

// The CPU backend's form (kernels/ops.cpp): z / (1 + exp(-2u)) == 0.5 z (1 + tanh(u)).
__device__ __forceinline__ float gelu_tanh(float z) {
  const float u = 0.7978845608028654f * (z + 0.044715f * z * z * z);
  return z / (1.0f + expf(-2.0f * u));
}

// The plan for R = T * k <= 32 rows, computed by warp 0 of every gate/up CTA (so no plan
// kernel runs): lane l holds slot l. Rows are ordered by (expert, slot), as a stable sort;
// a tile starts at every BM-th row of an expert. The CTA keeps its own tile and the tokens
// of the first 32 rows in shared memory; CTA (0, 0) also writes the plan to the workspace
// for the down and combine kernels, in the same form as moe_plan_kernel.
__device__ __forceinline__ void fused_plan(const ExpertsParams& p, int4& s_tile, int& s_num_tiles,
                                           int* s_row_token) {
  const unsigned full = 0xffffffffu;
  const int lane = threadIdx.x & 31;
  const int R = static_cast<int>(p.num_tokens) * p.top_k;
  const int e = lane < R ? p.experts[lane] : -1;
  const bool valid = static_cast<unsigned>(e) < static_cast<unsigned>(p.num_experts);
  constexpr int kInvalid = 0x7fff0000;  // above every valid key (E <= 1024: key < 2^15)
  const int key = valid ? (e << 5) | lane : kInvalid | lane;
  int rank = 0;   // rows before this one
  int first = 0;  // rows of lower experts
  int count = 0;  // rows of this expert
#pragma unroll
  for (int m = 0; m < 32; ++m) {
    const int km = __shfl_sync(full, key, m);
    const bool valid_m = km < kInvalid;
    rank += km < key;
    first += valid_m && (km >> 5) < e;
    count += valid_m && (km >> 5) == e;
  }
  const int within = rank - first;  // index of this row inside its expert
  const bool start = valid && within % p.rows_per_tile == 0;
  const unsigned starts = __ballot_sync(full, start);
  int tile_index = 0;  // tiles that start at a lower row
#pragma unroll
  for (int m = 0; m < 32; ++m) {
    const int rank_m = __shfl_sync(full, rank, m);
    tile_index += ((starts >> m) & 1u) != 0 && rank_m < rank;
  }
  const int rows = count - within < p.rows_per_tile ? count - within : p.rows_per_tile;
  const int4 tile = make_int4(e, rank, rows, 0);
  if (start && tile_index == static_cast<int>(blockIdx.x)) s_tile = tile;
  if (valid) s_row_token[rank] = lane / p.top_k;
  if (lane == 0) s_num_tiles = __popc(starts);
  if (blockIdx.x == 0 && blockIdx.y == 0) {
    if (start) reinterpret_cast<int4*>(p.tiles)[tile_index] = tile;
    if (valid) p.row_token[rank] = lane / p.top_k;
    if (lane < R) p.flat_to_row[lane] = valid ? rank : -1;
    if (lane == 0) *p.num_tiles = __popc(starts);
  }
}

// kGateUp: A = x rows gathered through row_token, B = the tile's gate and up rows of
// gate_up[e] interleaved in blocks of 8 (gate 8, up 8, ...), so warp w's two n8 tiles are
// the gate and up halves of the same 8 intermediate columns; epilogue GeGLU -> act (bf16).
// Otherwise: A = act rows, B = down[e] rows; epilogue writes y (f32).
template <int BM, bool kGateUp>
__global__ void __launch_bounds__(kGemmThreads)
    moe_gemm_kernel(const __grid_constant__ ExpertsParams p) {
  constexpr int kStages = GemmShape<BM>::kStages;
  constexpr int kMTiles = BM / 16;
  constexpr int kARowsPerThread = BM / kRowsPerPass;
  constexpr int kBRowsPerThread = kBN / kRowsPerPass;
  static_assert(BM % kRowsPerPass == 0 && kBN % kRowsPerPass == 0, "tile rows per pass");
  SLUICE_DYNAMIC_SHARED(uint16_t, smem, 16);
  uint16_t* a_smem = smem;                          // [kStages][BM][kPitch]
  uint16_t* b_smem = smem + kStages * BM * kPitch;  // [kStages][kBN][kPitch]

  __shared__ int4 s_tile;
  __shared__ int s_num_tiles;
  __shared__ int s_row_token[kMaxFusedPlanRows];
  start_after_producers();
  const bool fused = kGateUp && p.fuse_plan;
  int4 tile;
  if (fused) {
    if (threadIdx.x < 32) fused_plan(p, s_tile, s_num_tiles, s_row_token);
    __syncthreads();
    if (static_cast<int>(blockIdx.x) >= s_num_tiles) return;
    tile = s_tile;
  } else {
    if (static_cast<int>(blockIdx.x) >= *p.num_tiles) return;
    tile = reinterpret_cast<const int4*>(p.tiles)[blockIdx.x];
  }
  const int expert = tile.x;
  const int row_begin = tile.y;
  const int num_rows = tile.z;

  const int H = p.hidden;
  const int I = p.intermediate;
  const int K = kGateUp ? H : I;
  const int tid = threadIdx.x;
  const int chunk = tid % kChunksPerRow;
  const int row0 = tid / kChunksPerRow;

  // Source rows of this thread's copies; a row that does not exist points at a valid base
  // and is zero-filled.
  const uint16_t* a_src[kARowsPerThread];
  bool a_ok[kARowsPerThread];
#pragma unroll
  for (int i = 0; i < kARowsPerThread; ++i) {
    const int r = row0 + i * kRowsPerPass;
    a_ok[i] = r < num_rows;
    if constexpr (kGateUp) {
      const int token =
          a_ok[i] ? (fused ? s_row_token[row_begin + r] : p.row_token[row_begin + r]) : 0;
      a_src[i] = a_ok[i] ? p.x + static_cast<int64_t>(token) * p.x_stride : p.x;
    } else {
      a_src[i] = a_ok[i] ? p.act + static_cast<int64_t>(row_begin + r) * I : p.act;
    }
  }
  const uint16_t* weights = kGateUp ? p.gate_up + static_cast<int64_t>(expert) * 2 * I * H
                                    : p.down + static_cast<int64_t>(expert) * H * I;
  const int n0 = blockIdx.y * (kGateUp ? kBN / 2 : kBN);
  const uint16_t* b_src[kBRowsPerThread];
  bool b_ok[kBRowsPerThread];
#pragma unroll
  for (int i = 0; i < kBRowsPerThread; ++i) {
    const int r = row0 + i * kRowsPerPass;
    int w_row;
    if constexpr (kGateUp) {
      const int block = r / 8;
      const int col = n0 + (block / 2) * 8 + r % 8;  // intermediate column
      b_ok[i] = col < I;
      w_row = (block % 2 == 0) ? col : I + col;
    } else {
      w_row = n0 + r;
      b_ok[i] = w_row < H;
    }
    b_src[i] = b_ok[i] ? weights + static_cast<int64_t>(w_row) * K : weights;
  }

  const int num_k_tiles = (K + kBK - 1) / kBK;
  auto load_stage = [&](int stage, int k_tile) {
    const int k = k_tile * kBK + chunk * 8;
    const bool k_ok = k < K;  // K % 8 == 0: a chunk is wholly inside or outside
    uint16_t* a_dst = a_smem + stage * BM * kPitch + chunk * 8;
    uint16_t* b_dst = b_smem + stage * kBN * kPitch + chunk * 8;
#pragma unroll
    for (int i = 0; i < kARowsPerThread; ++i) {
      const bool ok = a_ok[i] && k_ok;
      cp_async16(a_dst + (row0 + i * kRowsPerPass) * kPitch, ok ? a_src[i] + k : a_src[i], ok);
    }
#pragma unroll
    for (int i = 0; i < kBRowsPerThread; ++i) {
      const bool ok = b_ok[i] && k_ok;
      cp_async16(b_dst + (row0 + i * kRowsPerPass) * kPitch, ok ? b_src[i] + k : b_src[i], ok);
    }
  };

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_k_tiles) load_stage(s, s);
    cp_async_commit();
  }

  const int lane = tid & 31;
  const int warp = tid >> 5;
  float acc[kMTiles][2][4];
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
    for (int n = 0; n < 2; ++n) {
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[m][n][q] = 0.0f;
    }
  }

  // ldmatrix lane addresses. A (16 x 16 at (m, k)): lanes 0-15 rows 0-15 at k, lanes 16-31
  // rows 0-15 at k + 8 -> a0..a3. B (n-major): lanes 0-7 n 0-7 k, 8-15 n 0-7 k + 8,
  // 16-23 n 8-15 k, 24-31 n 8-15 k + 8 -> b0, b1 of n-tile 0, then of n-tile 1.
  const int a_lane_off = (lane % 16) * kPitch + (lane / 16) * 8;
  const int b_lane_off = (warp * 16 + (lane / 16) * 8 + lane % 8) * kPitch + ((lane / 8) % 2) * 8;

  for (int kt = 0; kt < num_k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kt landed for every thread; stage kt - 1 is free to refill
    const int next = kt + kStages - 1;
    if (next < num_k_tiles) load_stage(next % kStages, next);
    cp_async_commit();

    const uint16_t* a_stage = a_smem + (kt % kStages) * BM * kPitch;
    const uint16_t* b_stage = b_smem + (kt % kStages) * kBN * kPitch;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t b[4];
      ldmatrix_x4(b, b_stage + b_lane_off + kk);
#pragma unroll
      for (int m = 0; m < kMTiles; ++m) {
        uint32_t a[4];
        ldmatrix_x4(a, a_stage + m * 16 * kPitch + a_lane_off + kk);
        mma_bf16(acc[m][0], a, b[0], b[1]);
        mma_bf16(acc[m][1], a, b[2], b[3]);
      }
    }
  }
  cp_async_wait<0>();

  // Accumulator layout: c0, c1 at (row g, cols 2q, 2q + 1), c2, c3 at row g + 8.
  const int g = lane / 4;
  const int q = lane % 4;
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = m * 16 + g + half * 8;
      if (r >= num_rows) continue;
      const int64_t out_row = row_begin + r;
      if constexpr (kGateUp) {
        const int col = n0 + warp * 8 + 2 * q;
        if (col < I) {
          const float h0 = gelu_tanh(acc[m][0][2 * half]) * acc[m][1][2 * half];
          const float h1 = gelu_tanh(acc[m][0][2 * half + 1]) * acc[m][1][2 * half + 1];
          const uint32_t bits = f32_to_bf16_bits(h0) | (f32_to_bf16_bits(h1) << 16);
          *reinterpret_cast<uint32_t*>(p.act + out_row * I + col) = bits;
        }
      } else {
#pragma unroll
        for (int n = 0; n < 2; ++n) {
          const int col = n0 + warp * 16 + n * 8 + 2 * q;
          if (col < H) {
            *reinterpret_cast<float2*>(p.y + out_row * H + col) =
                make_float2(acc[m][n][2 * half], acc[m][n][2 * half + 1]);
          }
        }
      }
    }
  }
}

// ---- combine -----------------------------------------------------------------------------

constexpr int kCombineThreads = 64;
constexpr int kCombineCols = kCombineThreads * 8;

// out[t, cols] = sum_j w[t, j] * y[row(t, j), cols], 8 columns per thread, j in order.
__global__ void __launch_bounds__(kCombineThreads)
    moe_combine_kernel(const __grid_constant__ ExpertsParams p) {
  start_after_producers();
  const int64_t t = blockIdx.x;
  const int col = (blockIdx.y * kCombineThreads + threadIdx.x) * 8;
  if (col >= p.hidden) return;
  const int32_t* rows = p.flat_to_row + t * p.top_k;
  const float* w = p.weights + t * p.top_k;
  float acc[8];
#pragma unroll
  for (int q = 0; q < 8; ++q) acc[q] = 0.0f;
#pragma unroll 8
  for (int j = 0; j < p.top_k; ++j) {
    const int r = rows[j];
    if (r < 0) continue;
    const float wj = w[j];
    float v[8];
    load_n<8>(p.y + static_cast<int64_t>(r) * p.hidden, ElemType::kF32, col, v);
#pragma unroll
    for (int q = 0; q < 8; ++q) acc[q] = fmaf(wj, v[q], acc[q]);
  }
  const int64_t elem = p.out_type == ElemType::kBF16 ? 2 : 4;
  char* out_row = static_cast<char*>(p.out) + t * p.out_stride * elem;
  if (p.out_vectorized) {
    store_n<8>(out_row, p.out_type, col, acc);
  } else {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      float one[1] = {acc[q]};
      store_n<1>(out_row, p.out_type, col + q, one);
    }
  }
}

template <int BM>
void launch_gemms(const ExpertsParams& p, void* stream) {
  const unsigned tiles = static_cast<unsigned>(p.max_tiles);
  const dim3 gate_up_grid(tiles, static_cast<unsigned>((p.intermediate + kBN / 2 - 1) / (kBN / 2)));
  launch(moe_gemm_kernel<BM, true>, gate_up_grid, dim3(kGemmThreads), GemmShape<BM>::kSmemBytes,
         stream, p);
  const dim3 down_grid(tiles, static_cast<unsigned>((p.hidden + kBN - 1) / kBN));
  launch(moe_gemm_kernel<BM, false>, down_grid, dim3(kGemmThreads), GemmShape<BM>::kSmemBytes,
         stream, p);
}

}  // namespace

void launch_moe_route(const RouteParams& p, void* stream) {
  if (p.num_tokens == 0) return;
  const auto blocks = static_cast<unsigned>((p.num_tokens + kRouteWarps - 1) / kRouteWarps);
  const dim3 grid(blocks), block(kRouteWarps * 32);
  static_assert(kMaxRouteExperts == 16 * 32, "slots per lane");
  if (p.num_experts <= 32) {
    launch(moe_route_kernel<1>, grid, block, 0, stream, p);
  } else if (p.num_experts <= 64) {
    launch(moe_route_kernel<2>, grid, block, 0, stream, p);
  } else if (p.num_experts <= 128) {
    launch(moe_route_kernel<4>, grid, block, 0, stream, p);
  } else if (p.num_experts <= 256) {
    launch(moe_route_kernel<8>, grid, block, 0, stream, p);
  } else {
    launch(moe_route_kernel<16>, grid, block, 0, stream, p);
  }
}

void launch_moe_experts(const ExpertsParams& params, void* stream) {
  if (params.num_tokens == 0) return;
  ExpertsParams p = params;
  p.fuse_plan = p.num_tokens * p.top_k <= kMaxFusedPlanRows;
  if (!p.fuse_plan) launch(moe_plan_kernel, dim3(1), dim3(kPlanThreads), 0, stream, p);
  switch (p.rows_per_tile) {
    case 16:
      launch_gemms<16>(p, stream);
      break;
    case 32:
      launch_gemms<32>(p, stream);
      break;
    case 64:
      launch_gemms<64>(p, stream);
      break;
    default:
      std::fprintf(stderr, "sluice: moe_experts: rows_per_tile %d is not 16, 32 or 64\n",
                   p.rows_per_tile);
      std::abort();
  }
  const dim3 combine_grid(static_cast<unsigned>(p.num_tokens),
                          static_cast<unsigned>((p.hidden + kCombineCols - 1) / kCombineCols));
  launch(moe_combine_kernel, combine_grid, dim3(kCombineThreads), 0, stream, p);
}

}  // namespace sluice::kernels::cuda::moe_internal
