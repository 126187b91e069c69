// The GPU sampler (sampling.h): one block of 1024 threads per row of logits.
//
// Passes over the row (each a coalesced, 16-byte-per-thread read of V floats):
//   0. (only rows with penalties, bias or banned ids) rewrite the processed logits in place.
//   1. argmax (the greedy token, the no-valid-logit fallback, and m = the largest s).
//   2. a histogram over d = m - s of the live ids: 2048 buckets of 28/2048 nats, with the
//      exact integer mass of each bucket when top-k is off. Live ids with d < 6 are also
//      appended to a shared-memory list while it has room.
// From the cumulative histogram, the bucket F where the filters (or, with none, the draw)
// must stop is known; the live ids of buckets <= F are a prefix C of the rank order. When
// |C| <= 4096 (top-k up to a few thousand, top-p/min-p over a peaked row, ...), C comes
// from the list of pass 2 when that list holds all of it, else from
//   3. a compaction pass,
// and is sorted in shared memory (bitonic), where top-k, top-p, min-p and the draw are
// block-wide prefix scans over exact integer masses.
// Otherwise (a flat row that keeps more than 4096 ids) each threshold (k-th id, top-p
// cutoff, drawn id) is found by a selection over the row: a histogram pass over the d
// buckets, then radix passes over the 64-bit rank key while the chosen bucket holds more
// than 4096 ids, then a compaction of that bucket into the shared list.
//
// Every decision is block-uniform (values read from shared memory after a barrier), so
// each barrier is reached by all threads. Masses are integers: results never depend on
// the order of atomics, and a host reproduces them exactly (sampling.h).

#include <cuda_runtime.h>

#include <cstdint>

#include "common/counter_rng.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/sampling.h"

namespace sluice::kernels::cuda {
namespace {

using u64 = unsigned long long;  // the type CUDA's 64-bit atomics and shuffles take

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;  // float4 loads in flight per thread
constexpr int kNumBuckets = 2048;
constexpr float kBucketsPerNat = kNumBuckets / kSamplingMaxDistance;
constexpr int kListCapacity = 4096;
constexpr int kPerThread = kListCapacity / kThreads;  // list positions per thread in scans
constexpr float kSpeculativeDistance = 6.0f;          // pass 2 lists live ids with d below
constexpr int kRadixBits = 11;
constexpr int kNone = 0x7FFFFFFF;
constexpr unsigned kFullMask = 0xFFFFFFFFu;

static_assert(kListCapacity % kThreads == 0, "scan positions split evenly");
static_assert(kNumBuckets == 2 * kThreads, "histogram scans take two buckets per thread");
static_assert(kNumBuckets == (1 << kRadixBits), "radix digits reuse the histogram");

struct Shared {
  u64 mass[kNumBuckets];      // histogram masses; cumulative after scan_histogram
  u64 list[kListCapacity];    // rank keys; sorted descending by sort_list
  u64 weight[kListCapacity];  // sampling_weight of list[j]
  uint32_t count[kNumBuckets];
  u64 red[kWarps + 1];
  float red_value[kWarps];
  int red_index[kWarps];
  int list_size;  // appends attempted (may exceed kListCapacity)
  int overflow;   // an append found the list full
  int found;
  u64 found_mass;
};

// Read-only view of one row during passes 1+.
struct RowCtx {
  const float* logits = nullptr;
  int vocab = 0;
  bool vectorized = false;
  float inv_t = 1.0f;
  float m = 0.0f;
};

enum class Mode : uint8_t {
  kCount,        // the element at 0-based rank index x
  kMassAtLeast,  // the first element whose inclusive prefix mass is >= x
  kMassAbove,    // the first element whose inclusive prefix mass is > x
};

// ---- Block-wide reductions and scans (every thread must call; they contain barriers).

__device__ __forceinline__ u64 warp_sum(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ u64 block_sum(u64 v, Shared& sh) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh.red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_sum(sh.red[lane]);
    if (lane == 0) sh.red[kWarps] = v;
  }
  __syncthreads();
  const u64 total = sh.red[kWarps];
  __syncthreads();
  return total;
}

// Bitwise AND (and_mode) or OR of v over the block.
__device__ u64 block_bits(u64 v, bool and_mode, Shared& sh) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const u64 t = __shfl_xor_sync(kFullMask, v, o);
    v = and_mode ? (v & t) : (v | t);
  }
  if (lane == 0) sh.red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = sh.red[lane];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const u64 t = __shfl_xor_sync(kFullMask, v, o);
      v = and_mode ? (v & t) : (v | t);
    }
    if (lane == 0) sh.red[kWarps] = v;
  }
  __syncthreads();
  const u64 result = sh.red[kWarps];
  __syncthreads();
  return result;
}

// Exclusive prefix sum of v over threads in index order; *total gets the block's sum.
__device__ u64 block_exclusive_scan(u64 v, u64* total, Shared& sh) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  u64 incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_up_sync(kFullMask, incl, o);
    if (lane >= o) incl += t;
  }
  if (lane == 31) sh.red[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    u64 w = sh.red[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 t = __shfl_up_sync(kFullMask, w, o);
      if (lane >= o) w += t;
    }
    sh.red[lane] = w;
  }
  __syncthreads();
  const u64 before = warp == 0 ? 0 : sh.red[warp - 1];
  *total = sh.red[kWarps - 1];
  __syncthreads();
  return before + incl - v;
}

// (value, index) of the largest value, ties to the lower index; index kNone if no thread
// offered one. NaN must be filtered out by the caller.
__device__ void block_argmax(float& value, int& index, Shared& sh) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  auto merge = [](float& v, int& i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) {
      v = ov;
      i = oi;
    }
  };
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    merge(value, index, __shfl_xor_sync(kFullMask, value, o), __shfl_xor_sync(kFullMask, index, o));
  }
  if (lane == 0) {
    sh.red_value[warp] = value;
    sh.red_index[warp] = index;
  }
  __syncthreads();
  value = sh.red_value[0];
  index = sh.red_index[0];
  for (int w = 1; w < kWarps; ++w) merge(value, index, sh.red_value[w], sh.red_index[w]);
  __syncthreads();
}

// ---- Passes over the row.

// Calls fn(i, logit) for every i < vocab; kUnroll 16-byte loads in flight per thread.
// Plain loads (not the read-only path): pass 0 may have rewritten the row in this kernel.
template <typename Fn>
__device__ __forceinline__ void for_each_logit(const float* row, int vocab, bool vectorized,
                                               Fn&& fn) {
  int tail_begin = 0;
  if (vectorized) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const int n4 = vocab >> 2;
    for (int base = threadIdx.x; base < n4; base += kThreads * kUnroll) {
      float4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = base + u * kThreads;
        v[u] = j < n4 ? row4[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = base + u * kThreads;
        if (j < n4) {
          fn(4 * j, v[u].x);
          fn(4 * j + 1, v[u].y);
          fn(4 * j + 2, v[u].z);
          fn(4 * j + 3, v[u].w);
        }
      }
    }
    tail_begin = n4 << 2;
  } else {
    for (int base = threadIdx.x; base < vocab; base += kThreads * kUnroll) {
      float v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = base + u * kThreads;
        v[u] = j < vocab ? row[j] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = base + u * kThreads;
        if (j < vocab) fn(j, v[u]);
      }
    }
    tail_begin = vocab;
  }
  for (int i = tail_begin + threadIdx.x; i < vocab; i += kThreads) fn(i, row[i]);
}

__device__ __forceinline__ bool is_valid(float l) { return !isnan(l) && l != -INFINITY; }

__device__ __forceinline__ int bucket_of(float d) {
  const int b = static_cast<int>(d * kBucketsPerNat);
  return b < kNumBuckets - 1 ? b : kNumBuckets - 1;
}

// Calls fn(i, s, d) for every live id (valid, d < kSamplingMaxDistance).
template <typename Fn>
__device__ __forceinline__ void for_each_live(const RowCtx& r, Fn&& fn) {
  for_each_logit(r.logits, r.vocab, r.vectorized, [&](int i, float l) {
    if (!is_valid(l)) return;
    const float s = sampling_scaled(l, r.inv_t);
    const float d = sampling_distance(s, r.m);
    if (!(d < kSamplingMaxDistance)) return;
    fn(i, s, d);
  });
}

// Appends a key to the shared list, or records that it was full.
__device__ __forceinline__ void append(Shared& sh, u64 key) {
  if (*reinterpret_cast<volatile int*>(&sh.list_size) < kListCapacity) {
    const int pos = atomicAdd(&sh.list_size, 1);
    if (pos < kListCapacity) {
      sh.list[pos] = key;
      return;
    }
  }
  sh.overflow = 1;
}

// Steps 1-4 of sampling.h on one row, in place. Only stores the 4-element groups that
// change, so a row with few penalised ids costs a read, not a write.
__device__ __noinline__ void apply_processors(const SampleParams& p, int row, const SamplingRowParams& prm) {
  float* logits = p.logits + static_cast<int64_t>(row) * p.logits_stride;
  const int32_t* counts =
      p.token_counts ? p.token_counts + static_cast<int64_t>(row) * p.counts_stride : nullptr;
  const uint32_t* mask =
      p.prompt_mask ? p.prompt_mask + static_cast<int64_t>(row) * p.mask_stride : nullptr;
  const bool repetition = prm.repetition_penalty != 1.0f && (counts || mask);
  const bool presence_frequency =
      (prm.presence_penalty != 0.0f || prm.frequency_penalty != 0.0f) && counts;
  const int vocab = p.vocab;

  if (repetition || presence_frequency) {
    // Rounded as the CPU sampler rounds: no fused multiply-adds.
    auto process = [&](int i, float l, int count, uint32_t word) -> float {
      const bool generated = count > 0;
      const bool in_prompt = (word >> (i & 31)) & 1u;
      if (repetition && (generated || in_prompt)) {
        l = l > 0.0f ? __fdiv_rn(l, prm.repetition_penalty)
                     : __fmul_rn(l, prm.repetition_penalty);
      }
      if (presence_frequency && generated) {
        l = __fsub_rn(l, __fadd_rn(prm.presence_penalty,
                                   __fmul_rn(prm.frequency_penalty, static_cast<float>(count))));
      }
      return l;
    };
    int tail_begin = 0;
    if (p.vectorized) {
      float4* row4 = reinterpret_cast<float4*>(logits);
      const int4* counts4 = reinterpret_cast<const int4*>(counts);
      const int n4 = vocab >> 2;
      for (int base = threadIdx.x; base < n4; base += kThreads * kUnroll) {
        float4 v[kUnroll];
        int4 c[kUnroll];
        uint32_t w[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int j = base + u * kThreads;
          const bool in = j < n4;
          v[u] = in ? row4[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          c[u] = in && counts ? counts4[j] : make_int4(0, 0, 0, 0);
          w[u] = in && mask ? mask[j >> 3] : 0u;  // 8 groups of 4 per 32-bit word
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int j = base + u * kThreads;
          if (j >= n4) continue;
          float4 out;
          out.x = process(4 * j, v[u].x, c[u].x, w[u]);
          out.y = process(4 * j + 1, v[u].y, c[u].y, w[u]);
          out.z = process(4 * j + 2, v[u].z, c[u].z, w[u]);
          out.w = process(4 * j + 3, v[u].w, c[u].w, w[u]);
          if (__float_as_uint(out.x) != __float_as_uint(v[u].x) ||
              __float_as_uint(out.y) != __float_as_uint(v[u].y) ||
              __float_as_uint(out.z) != __float_as_uint(v[u].z) ||
              __float_as_uint(out.w) != __float_as_uint(v[u].w)) {
            row4[j] = out;
          }
        }
      }
      tail_begin = n4 << 2;
    }
    for (int i = tail_begin + threadIdx.x; i < vocab; i += kThreads) {
      const float l = logits[i];
      const float out = process(i, l, counts ? counts[i] : 0, mask ? mask[i >> 5] : 0u);
      if (__float_as_uint(out) != __float_as_uint(l)) logits[i] = out;
    }
  }

  if (p.num_bias > 0) {
    __syncthreads();  // the penalties above are visible to every thread
    const int32_t* ids = p.bias_ids + static_cast<int64_t>(row) * p.bias_ids_stride;
    const float* values = p.bias_values + static_cast<int64_t>(row) * p.bias_values_stride;
    // One thread per distinct id (its first slot) adds that id's biases in slot order.
    for (int j = threadIdx.x; j < p.num_bias; j += kThreads) {
      const int id = ids[j];
      if (id < 0 || id >= vocab) continue;
      bool first = true;
      for (int k = 0; k < j && first; ++k) first = ids[k] != id;
      if (!first) continue;
      float l = logits[id];
      for (int k = j; k < p.num_bias; ++k) {
        if (ids[k] == id) l = __fadd_rn(l, values[k]);
      }
      logits[id] = l;
    }
  }
  if (p.num_banned > 0) {
    __syncthreads();
    const int32_t* ids = p.banned_ids + static_cast<int64_t>(row) * p.banned_stride;
    for (int j = threadIdx.x; j < p.num_banned; j += kThreads) {
      const int id = ids[j];
      if (id >= 0 && id < vocab) logits[id] = -INFINITY;
    }
  }
  __syncthreads();
}

// ---- The histogram (count and mass per slot) and its cumulative form.

__device__ void clear_histogram(Shared& sh, int slots) {
  for (int b = threadIdx.x; b < slots; b += kThreads) {
    sh.count[b] = 0;
    sh.mass[b] = 0;
  }
  __syncthreads();
}

// Turns count[0..slots) and mass[0..slots) into inclusive prefix sums (slots <= 2048).
__device__ void scan_histogram(Shared& sh, int slots) {
  const int b0 = 2 * threadIdx.x;
  const int b1 = b0 + 1;
  const u64 c0 = b0 < slots ? sh.count[b0] : 0;
  const u64 c1 = b1 < slots ? sh.count[b1] : 0;
  const u64 m0 = b0 < slots ? sh.mass[b0] : 0;
  const u64 m1 = b1 < slots ? sh.mass[b1] : 0;
  u64 total;
  const u64 count_before = block_exclusive_scan(c0 + c1, &total, sh);
  const u64 mass_before = block_exclusive_scan(m0 + m1, &total, sh);
  if (b0 < slots) {
    sh.count[b0] = static_cast<uint32_t>(count_before + c0);
    sh.mass[b0] = mass_before + m0;
  }
  if (b1 < slots) {
    sh.count[b1] = static_cast<uint32_t>(count_before + c0 + c1);
    sh.mass[b1] = mass_before + m0 + m1;
  }
  __syncthreads();
}

// The first slot whose cumulative count / mass, plus the offsets, crosses x in `mode`;
// `slots` if none does.
__device__ int first_slot(Shared& sh, int slots, Mode mode, u64 x, u64 count_offset,
                          u64 mass_offset) {
  int below = 0;
  for (int b = threadIdx.x; b < slots; b += kThreads) {
    bool crossed;
    switch (mode) {
      case Mode::kCount: crossed = count_offset + sh.count[b] > x; break;
      case Mode::kMassAtLeast: crossed = mass_offset + sh.mass[b] >= x; break;
      default: crossed = mass_offset + sh.mass[b] > x; break;
    }
    below += !crossed;
  }
  return static_cast<int>(block_sum(static_cast<u64>(below), sh));
}

// ---- The shared list: sort, weights, scans.

// Sorts list[0..n) descending (bitonic over the next power of two, padded with 0 keys,
// which rank below every real key).
__device__ void sort_list(Shared& sh, int n) {
  int size = 1;
  while (size < n) size <<= 1;
  for (int j = n + threadIdx.x; j < size; j += kThreads) sh.list[j] = 0;
  __syncthreads();
  for (int k = 2; k <= size; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += kThreads) {
        const int partner = i ^ j;
        if (partner > i) {
          const u64 a = sh.list[i];
          const u64 b = sh.list[partner];
          const bool descending = (i & k) == 0;
          if (descending ? a < b : a > b) {
            sh.list[i] = b;
            sh.list[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

__device__ void compute_list_weights(Shared& sh, int n, float m) {
  for (int j = threadIdx.x; j < n; j += kThreads) {
    sh.weight[j] = sampling_weight(sampling_distance(sampling_key_value(sh.list[j]), m));
  }
  __syncthreads();
}

// Sum of weight[j] over j < n with in_set(j).
template <typename InSet>
__device__ u64 list_mass(Shared& sh, int n, InSet in_set) {
  u64 local = 0;
  for (int j = threadIdx.x; j < n; j += kThreads) {
    if (in_set(j)) local += sh.weight[j];
  }
  return block_sum(local, sh);
}

// Among positions j < n with in_set(j), in order, the first whose inclusive prefix mass
// (base + the weights of in-set positions <= j) is > x (strict) or >= x; kNone if none.
// *mass_incl receives that prefix mass.
template <typename InSet>
__device__ int list_first_crossing(Shared& sh, int n, InSet in_set, u64 base, u64 x,
                                   bool strict, u64* mass_incl) {
  const int first = threadIdx.x * kPerThread;
  u64 local = 0;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int j = first + k;
    if (j < n && in_set(j)) local += sh.weight[j];
  }
  u64 total;
  u64 cum = base + block_exclusive_scan(local, &total, sh);
  if (threadIdx.x == 0) sh.found = kNone;
  __syncthreads();
  int mine = kNone;
  u64 mine_mass = 0;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int j = first + k;
    if (j < n && in_set(j)) {
      cum += sh.weight[j];
      if (mine == kNone && (strict ? cum > x : cum >= x)) {
        mine = j;
        mine_mass = cum;
      }
    }
  }
  if (mine != kNone) atomicMin(&sh.found, mine);
  __syncthreads();
  const int found = sh.found;
  if (found != kNone && mine == found) sh.found_mass = mine_mass;
  __syncthreads();
  *mass_incl = sh.found_mass;
  return found;
}

// ---- The slow path: selections over the whole row.

struct Selection {
  u64 key = 0;        // rank key of the selected id
  u64 mass_incl = 0;  // mass of the candidates ranked at or above it
};

// Mass of the live ids with key >= lo and weight >= wmin.
__device__ __noinline__ u64 row_mass(const RowCtx& r, Shared& sh, u64 lo, u64 wmin) {
  u64 local = 0;
  for_each_live(r, [&](int i, float s, float d) {
    if (sampling_rank_key(s, i) < lo) return;
    const u64 w = sampling_weight(d);
    if (w >= wmin) local += w;
  });
  return block_sum(local, sh);
}

// The candidate (live, key >= lo, weight >= wmin) that `mode` and x pick in rank order. The
// caller guarantees it exists (x < the candidates' count or mass).
__device__ __noinline__ Selection select_in_row(const RowCtx& r, Shared& sh, u64 lo, u64 wmin, Mode mode,
                                   u64 x) {
  // Level 0: the d buckets, monotone in rank order.
  clear_histogram(sh, kNumBuckets);
  for_each_live(r, [&](int i, float s, float d) {
    if (sampling_rank_key(s, i) < lo) return;
    const u64 w = sampling_weight(d);
    if (w < wmin) return;
    const int b = bucket_of(d);
    atomicAdd(&sh.count[b], 1u);
    atomicAdd(&sh.mass[b], w);
  });
  __syncthreads();
  scan_histogram(sh, kNumBuckets);
  const int bucket = first_slot(sh, kNumBuckets, mode, x, 0, 0);
  u64 above_count = bucket > 0 ? sh.count[bucket - 1] : 0;
  u64 above_mass = bucket > 0 ? sh.mass[bucket - 1] : 0;
  u64 region = sh.count[bucket] - above_count;
  __syncthreads();

  // The region: candidates in `bucket` whose key >> shift == prefix (shift 64: any key).
  int shift = 64;
  u64 prefix = 0;
  auto in_region = [&](int i, float s, float d, u64& key) {
    if (bucket_of(d) != bucket) return false;
    key = sampling_rank_key(s, i);
    if (key < lo || sampling_weight(d) < wmin) return false;
    return shift == 64 || (key >> shift) == prefix;
  };
  if (region > kListCapacity) {
    // Start the radix below the bits that every key of the region shares.
    u64 all_and = ~0ull, any_or = 0;
    for_each_live(r, [&](int i, float s, float d) {
      u64 key;
      if (!in_region(i, s, d, key)) return;
      all_and &= key;
      any_or |= key;
    });
    all_and = block_bits(all_and, true, sh);
    any_or = block_bits(any_or, false, sh);
    shift = 64 - __clzll(static_cast<long long>(all_and ^ any_or));  // > 0: keys differ
    prefix = shift == 64 ? 0 : all_and >> shift;
    while (region > kListCapacity) {
      const int bits = shift < kRadixBits ? shift : kRadixBits;
      const int digit_shift = shift - bits;
      const int slots = 1 << bits;
      clear_histogram(sh, slots);
      for_each_live(r, [&](int i, float s, float d) {
        u64 key;
        if (!in_region(i, s, d, key)) return;
        // Slot 0 holds the highest digit: slots ascend in rank order like the buckets.
        const int slot = slots - 1 - static_cast<int>((key >> digit_shift) & (slots - 1));
        atomicAdd(&sh.count[slot], 1u);
        atomicAdd(&sh.mass[slot], sampling_weight(d));
      });
      __syncthreads();
      scan_histogram(sh, slots);
      const int slot = first_slot(sh, slots, mode, x, above_count, above_mass);
      const u64 slot_count_before = slot > 0 ? sh.count[slot - 1] : 0;
      region = sh.count[slot] - slot_count_before;
      above_count += slot_count_before;
      above_mass += slot > 0 ? sh.mass[slot - 1] : 0;
      prefix = (prefix << bits) | static_cast<u64>(slots - 1 - slot);
      shift = digit_shift;
      __syncthreads();
    }
  }

  // Compact the region (<= kListCapacity ids), sort it, and finish in shared memory.
  if (threadIdx.x == 0) sh.list_size = 0;
  __syncthreads();
  for_each_live(r, [&](int i, float s, float d) {
    u64 key;
    if (in_region(i, s, d, key)) append(sh, key);
  });
  __syncthreads();
  const int n = sh.list_size;
  sort_list(sh, n);
  compute_list_weights(sh, n, r.m);
  Selection sel;
  if (mode == Mode::kCount) {
    const int j = static_cast<int>(x - above_count);
    sel.key = sh.list[j];
    sel.mass_incl = above_mass + list_mass(sh, n, [j](int k) { return k <= j; });
  } else {
    u64 mass_incl = 0;
    const int j = list_first_crossing(
        sh, n, [](int) { return true; }, above_mass, x, mode == Mode::kMassAbove, &mass_incl);
    sel.key = sh.list[j != kNone ? j : n - 1];
    sel.mass_incl = mass_incl;
  }
  __syncthreads();
  return sel;
}

// ---- The kernel.

__global__ void __launch_bounds__(kThreads, 1)
    sample_kernel(const __grid_constant__ SampleParams p) {
  SLUICE_DYNAMIC_SHARED(unsigned char, smem_raw, 16);
  Shared& sh = *reinterpret_cast<Shared*>(smem_raw);
  const int row = blockIdx.x;
  const SamplingRowParams prm = p.params[row];

  apply_processors(p, row, prm);

  RowCtx r;
  r.logits = p.logits + static_cast<int64_t>(row) * p.logits_stride;
  r.vocab = p.vocab;
  r.vectorized = p.vectorized;

  // Pass 1: argmax of the processed logits.
  float best = -INFINITY;
  int best_index = kNone;
  for_each_logit(r.logits, r.vocab, r.vectorized, [&](int i, float l) {
    if (!isnan(l) && (l > best || (l == best && i < best_index))) {
      best = l;
      best_index = i;
    }
  });
  block_argmax(best, best_index, sh);
  const int argmax = best_index == kNone ? 0 : best_index;
  const bool greedy = !(prm.temperature > 0.0f) || prm.top_k == 1;
  if (greedy || best == -INFINITY) {  // greedy, or no valid logit
    if (threadIdx.x == 0) p.out_tokens[row] = argmax;
    return;
  }
  r.inv_t = __fdiv_rn(1.0f, prm.temperature);
  r.m = sampling_scaled(best, r.inv_t);

  // Pass 2: histogram of the live ids over d; list the nearest ones while there is room.
  const bool with_mass = !(prm.top_k > 0 && prm.top_k < p.vocab);
  clear_histogram(sh, kNumBuckets);
  if (threadIdx.x == 0) {
    sh.list_size = 0;
    sh.overflow = 0;
  }
  __syncthreads();
  for_each_live(r, [&](int i, float s, float d) {
    const int b = bucket_of(d);
    atomicAdd(&sh.count[b], 1u);
    if (with_mass) atomicAdd(&sh.mass[b], sampling_weight(d));
    if (d < kSpeculativeDistance) append(sh, sampling_rank_key(s, i));
  });
  __syncthreads();
  scan_histogram(sh, kNumBuckets);

  const u64 num_live = sh.count[kNumBuckets - 1];
  if (num_live == 0) {  // e.g. 0 * inf = NaN scaled logits
    if (threadIdx.x == 0) p.out_tokens[row] = argmax;
    return;
  }
  const bool top_k = prm.top_k > 0 && static_cast<u64>(prm.top_k) < num_live;
  const bool top_p = prm.top_p < 1.0f;
  const bool min_p = prm.min_p > 0.0f;
  const u64 min_weight = min_p ? sampling_min_p_weight(prm.min_p) : 0;
  const u64 total_mass = with_mass ? sh.mass[kNumBuckets - 1] : 0;  // mass of all live ids
  const float u = counter_uniform(prm.seed, prm.step, 0.0f, 1.0f);

  // F: the last bucket the candidates can reach (sampling.h's definitions, bucket by bucket).
  int last = kNumBuckets - 1;
  const int min_p_last =
      min_p ? bucket_of(-logf(prm.min_p < 1.0f ? prm.min_p : 1.0f) + 1e-3f) : kNumBuckets - 1;
  if (top_k) {
    const int k_last = first_slot(sh, kNumBuckets, Mode::kCount, prm.top_k - 1, 0, 0);
    last = top_p ? k_last : min(k_last, min_p_last);
  } else if (top_p) {
    if (with_mass) {
      const u64 target = sampling_top_p_target(prm.top_p, total_mass);
      last = min(first_slot(sh, kNumBuckets, Mode::kMassAtLeast, target, 0, 0), min_p_last);
    }
  } else if (min_p) {
    last = min_p_last;
  } else if (with_mass) {
    const u64 target = sampling_draw_target(u, total_mass);
    last = first_slot(sh, kNumBuckets, Mode::kMassAbove, target, 0, 0);
  }
  const int num_candidates = static_cast<int>(sh.count[last]);
  // Every thread has read the histogram before either path reuses it (the slow path's radix
  // selection clears it): without this barrier a warp that ran ahead could zero count[last]
  // under a warp that had not read it yet, and the two would take different paths.
  __syncthreads();

  int token;
  if (num_candidates <= kListCapacity) {
    // The fast path: the candidates C, a rank-order prefix, sorted in shared memory.
    bool listed = false;
    if (!sh.overflow) {
      const int size = sh.list_size;
      u64 kept = 0;
      for (int j = threadIdx.x; j < size; j += kThreads) {
        const float d = sampling_distance(sampling_key_value(sh.list[j]), r.m);
        if (bucket_of(d) > last) {
          sh.list[j] = 0;
        } else {
          ++kept;
        }
      }
      listed = block_sum(kept, sh) == static_cast<u64>(num_candidates);
      if (listed) sort_list(sh, size);
    }
    if (!listed) {
      // Pass 3: compact the candidates.
      if (threadIdx.x == 0) sh.list_size = 0;
      __syncthreads();
      for_each_live(r, [&](int i, float s, float d) {
        if (bucket_of(d) <= last) append(sh, sampling_rank_key(s, i));
      });
      __syncthreads();
      sort_list(sh, num_candidates);
    }
    const int n = num_candidates;
    compute_list_weights(sh, n, r.m);
    const int in_k = top_k ? min(prm.top_k, n) : n;
    int in_p = in_k;
    if (top_p) {
      u64 mass_k;
      if (top_k) {
        mass_k = list_mass(sh, n, [&](int j) { return j < prm.top_k; });
      } else {
        mass_k = with_mass ? total_mass : list_mass(sh, n, [](int) { return true; });
      }
      const u64 target = sampling_top_p_target(prm.top_p, mass_k);
      u64 mass_incl;
      const int j = list_first_crossing(
          sh, n, [in_k](int k) { return k < in_k; }, 0, target, false, &mass_incl);
      if (j != kNone) in_p = j + 1;  // else the cutoff lies past C: all of C is kept
    }
    auto in_s = [&](int j) { return j < in_p && sh.weight[j] >= min_weight; };
    u64 mass_s;
    if (top_k || top_p || min_p) {
      mass_s = list_mass(sh, n, in_s);
    } else {
      mass_s = with_mass ? total_mass : list_mass(sh, n, [](int) { return true; });
    }
    u64 mass_incl;
    const int j = list_first_crossing(sh, n, in_s, 0, sampling_draw_target(u, mass_s), true,
                                      &mass_incl);
    token = sampling_key_id(sh.list[j != kNone ? j : 0]);
  } else {
    // The slow path: thresholds by selection over the row.
    u64 lo = 0;
    u64 mass_k = total_mass;
    if (top_k) {
      const Selection k = select_in_row(r, sh, 0, 0, Mode::kCount, prm.top_k - 1);
      lo = k.key;
      mass_k = k.mass_incl;
    } else if (!with_mass && (top_p || !min_p)) {
      mass_k = row_mass(r, sh, 0, 0);
    }
    u64 mass_p = mass_k;
    if (top_p) {
      const Selection cut = select_in_row(r, sh, lo, 0, Mode::kMassAtLeast,
                                          sampling_top_p_target(prm.top_p, mass_k));
      lo = cut.key;
      mass_p = cut.mass_incl;
    }
    const u64 mass_s = min_p ? row_mass(r, sh, lo, min_weight) : mass_p;
    const Selection drawn =
        select_in_row(r, sh, lo, min_weight, Mode::kMassAbove, sampling_draw_target(u, mass_s));
    token = sampling_key_id(drawn.key);
  }
  if (threadIdx.x == 0) p.out_tokens[row] = token;
}

}  // namespace

void launch_sample(const SampleParams& p, void* stream) {
  if (p.rows == 0) return;
  constexpr size_t kSmemBytes = sizeof(Shared);
  // NOTE: a function attribute, not a stream operation: allowed during graph capture.
  SLUICE_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(kSmemBytes)));
  launch_plain(sample_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kThreads), kSmemBytes,
               stream, p);
}

}  // namespace sluice::kernels::cuda
