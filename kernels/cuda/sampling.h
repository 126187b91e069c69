#pragma once
// Token sampling on the GPU: one CUDA block per row of logits turns the row into one token
// id, so logits stay on the device; they cross to the host only when a request asks for
// logprobs, which the host then takes from the processed logits this op leaves in place.
//
// Per row, in the CPU sampler's order (engine/sampling/sampler.h, sampling_params.h):
//   1. repetition_penalty on every id in the prompt (prompt_mask) or generated so far
//      (token_counts > 0): logit > 0 ? logit / penalty : logit * penalty.
//   2. presence/frequency penalties on generated ids: logit -= presence + frequency * count.
//   3. logit_bias: each slot adds its bias to its id, in slot order.
//   4. banned ids (min_tokens masking of stop ids): logit = -inf.
//      -> Rows where 1-4 change anything are rewritten IN PLACE; afterwards every row of
//         `logits` holds what the CPU sampler computes logprobs from (compute_logprobs).
//   5. Greedy when temperature <= 0 (or NaN) or top_k == 1: the argmax of the row (NaN
//      never wins, ties go to the lowest id, an all-NaN row gives 0).
//   6. Otherwise: s = logit * (1 / temperature), then top-k -> top-p -> min-p -> draw, with
//      the exact arithmetic below. Each row reads its own SamplingRowParams, so greedy and
//      sampled rows mix freely in one launch.
//
// Exact definition of step 6 (a host reproduces the token bit for bit with the inline
// functions at the end of this header; tests/gpu/sampling_test.cpp does):
//   valid    logit neither NaN nor -inf. With no valid logit the token is the argmax of 5.
//   rank     valid ids ordered by s descending, ties by lower id: sampling_rank_key().
//   m        the largest s. d = sampling_distance(s, m) >= 0.
//   weight   w = sampling_weight(d): a 64-bit integer ~ 2^43 * exp(-d), 0 for d >= 28 (a
//            probability under e^-28 ~ 7e-13 of the best token's is never drawn). "Live"
//            ids are the valid ids with w > 0. Masses are exact integer sums, so the
//            result does not depend on summation order (no float reductions anywhere).
//   top-k    active when 0 < top_k < #live: K = the first top_k live ids in rank order;
//            else K = all live ids (ids past the k-th with w == 0 could never be drawn).
//   top-p    active when top_p < 1: P = the shortest rank-order prefix of K whose mass
//            reaches sampling_top_p_target(top_p, mass(K)) (at least one id); else P = K.
//   min-p    active when min_p > 0: S = ids of P with w >= sampling_min_p_weight(min_p)
//            (the best id always stays); else S = P.
//   draw     u = counter_uniform(seed, step, 0, 1) (common/counter_rng.h);
//            T = sampling_draw_target(u, mass(S)); the token is the first id of S in rank
//            order whose inclusive prefix mass exceeds T: the inverse CDF of the
//            renormalised distribution with ids by descending probability.
// Against the CPU sampler this differs only in rounding (exp in f32, mass in f64 there)
// and in where u comes from (its std::mt19937_64 per sampler; here a counter-based stream,
// so a draw depends on (seed, step) alone and replays exactly).
//
// How (sampling.cu): a row is read a few times (argmax; a histogram of d; a compaction of
// the few ids that can matter into shared memory, where they are sorted and scanned).
// Flat rows where thousands of ids remain after the filters (top-p alone over near-uniform
// logits, say) fall back to a radix refinement over the row that takes a few more passes.
// No pass sorts the whole vocabulary.
//
// Conventions are those of cuda_ops.h: tensors are kernels::Tensor views of device memory
// (Device::kCuda), `stream` is a cudaStream_t as void* (nullptr: the legacy default stream),
// the launcher validates first and aborts (SLUICE_CHECK) on a violation, check_sample()
// gives the same verdict as a Status naming the tensor, and nothing here allocates or
// synchronises: a launch can be captured in a CUDA graph. Includers need no CUDA header.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/status.h"
#include "kernels/tensor.h"

#if defined(__CUDACC__)
#define SLUICE_SAMPLING_HD __host__ __device__ __forceinline__
#else
#define SLUICE_SAMPLING_HD inline
#endif

namespace sluice::kernels::cuda {

// Per-row sampling parameters, the names and meanings of engine/sampling/sampling_params.h.
// Device memory holds an array of these, one per row.
struct SamplingRowParams {
  float temperature = 1.0f;         // <= 0 (or NaN): greedy
  int32_t top_k = -1;               // <= 0: off; 1: greedy
  float top_p = 1.0f;               // >= 1 (or NaN): off
  float min_p = 0.0f;               // <= 0: off; values above 1 act as 1
  float presence_penalty = 0.0f;    // 0: off
  float frequency_penalty = 0.0f;   // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  int32_t unused = 0;               // padding, ignored (keeps seed 8-byte aligned)
  uint64_t seed = 0;                // the request's random stream
  uint64_t step = 0;                // index of this draw in that stream
};
static_assert(sizeof(SamplingRowParams) == 48, "SamplingRowParams is a 48-byte POD");

// The params tensor views the array as i32 words: [R, kSamplingRowParamsWords].
inline constexpr int64_t kSamplingRowParamsWords = sizeof(SamplingRowParams) / 4;

// The largest vocabulary (masses of 2^20 ids of weight <= 2^43 fit in 63 bits).
inline constexpr int64_t kMaxSamplingVocab = int64_t{1} << 20;
// The most logit_bias slots and banned ids per row.
inline constexpr int64_t kMaxSamplingSparseSlots = 1024;

// All tensors are device views (Device::kCuda) with R = logits.dim(0), V = logits.dim(1);
// every tensor's last dimension is contiguous; "row stride free" means any stride >= 0
// between rows. Optional tensors are undefined (data null) when unused.
struct SampleArgs {
  Tensor logits;  // [R, V] f32, row stride free; steps 1-4 rewrite it in place (see above)
  Tensor params;  // [R, kSamplingRowParamsWords] i32 contiguous, 8-byte aligned: R
                  // SamplingRowParams (build them on the host, copy the bytes)
  // Optional, for steps 1-2: [R, V] i32, row stride free: how often each id was generated
  // so far (counts <= 0 count as absent).
  Tensor token_counts;
  // Optional, for step 1: [R, ceil(V / 32)] i32, row stride free: bit (id % 32) of word
  // id / 32 is set when id occurs in the prompt.
  Tensor prompt_mask;
  // Optional, step 3: [R, B] i32 and [R, B] f32 (both or neither), row strides free, B <=
  // kMaxSamplingSparseSlots. A slot whose id is outside [0, V) is empty; an id in several
  // slots adds each bias, in slot order, as the CPU sampler does.
  Tensor logit_bias_ids;
  Tensor logit_bias_values;
  // Optional, step 4: [R, M] i32, row stride free, M <= kMaxSamplingSparseSlots; ids outside
  // [0, V) are empty slots.
  Tensor banned_ids;
  Tensor out_tokens;  // [R] i32 contiguous, disjoint from every input
  // Scratch of at least sampling_workspace_bytes(R, V) bytes (any dtype); may be undefined
  // when that is 0, as it is in this version (every buffer lives in shared memory).
  Tensor workspace;
};

size_t sampling_workspace_bytes(int64_t rows, int64_t vocab);
Status check_sample(const SampleArgs& args);
// Writes out_tokens[r] for every row r; R == 0 launches nothing. Asynchronous on `stream`.
void sample(const SampleArgs& args, void* stream);

// ---- Exact arithmetic of step 6, shared by the kernel and any host reproduction. Every
// operation is IEEE-rounded the same way on both sides: products that feed a sum are
// rounded on their own (no fused multiply-add unless written as fmaf), and the masses are
// integers.

inline constexpr float kSamplingMaxDistance = 28.0f;  // d >= this: weight 0
inline constexpr int kSamplingWeightBits = 43;        // sampling_weight(0) == 2^43

// a * b rounded once, never fused into a following add.
SLUICE_SAMPLING_HD float sampling_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// The scaled logit s = logit * inv_temperature, inv_temperature = 1.0f / temperature.
SLUICE_SAMPLING_HD float sampling_scaled(float logit, float inv_temperature) {
  return sampling_mul(logit, inv_temperature);
}

// d = m - s for s <= m, and 0 when s == m (so that m = s = +inf gives 0, not NaN).
SLUICE_SAMPLING_HD float sampling_distance(float s, float m) { return s == m ? 0.0f : m - s; }

// floor(2^43 * 2^-x) with x = d * log2(e) rounded to f32 and 2^-frac(x) from a degree-8
// Taylor polynomial (relative error < 3e-7); 0 when d >= 28 or d is NaN.
SLUICE_SAMPLING_HD uint64_t sampling_weight(float d) {
  if (!(d < kSamplingMaxDistance)) return 0;
  const float x = sampling_mul(d, 1.44269502f);  // d >= 0, so x in [0, 40.4)
  const int n = static_cast<int>(x);
  const float f = x - static_cast<float>(n);  // exact
  float p = 1.321548666e-06f;
  p = fmaf(p, f, -1.525273365e-05f);
  p = fmaf(p, f, 1.540352969e-04f);
  p = fmaf(p, f, -1.333355787e-03f);
  p = fmaf(p, f, 9.618128650e-03f);
  p = fmaf(p, f, -5.550410971e-02f);
  p = fmaf(p, f, 2.402265072e-01f);
  p = fmaf(p, f, -6.931471825e-01f);
  p = fmaf(p, f, 1.0f);  // 2^-f in (0.5, 1]
  const float scaled = sampling_mul(p, 8796093022208.0f);  // * 2^43: exact, an integer
  return static_cast<uint64_t>(scaled) >> n;
}

// Order-preserving 64-bit key: larger key = earlier in rank order (s descending, then id
// ascending). -0 and +0 are the same value. Invert with sampling_key_value / _id.
SLUICE_SAMPLING_HD uint64_t sampling_rank_key(float s, int32_t id) {
  if (s == 0.0f) s = 0.0f;
  uint32_t bits;
#if defined(__CUDA_ARCH__)
  bits = __float_as_uint(s);
#else
  std::memcpy(&bits, &s, 4);
#endif
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(bits) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(id));
}

SLUICE_SAMPLING_HD float sampling_key_value(uint64_t key) {
  uint32_t bits = static_cast<uint32_t>(key >> 32);
  bits = (bits & 0x80000000u) ? (bits & 0x7FFFFFFFu) : ~bits;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float s;
  std::memcpy(&s, &bits, 4);
  return s;
#endif
}

SLUICE_SAMPLING_HD int32_t sampling_key_id(uint64_t key) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key));
}

// top-p keeps the shortest prefix whose mass is >= this (0 for top_p <= 0).
SLUICE_SAMPLING_HD uint64_t sampling_top_p_target(float top_p, uint64_t mass) {
  if (!(top_p > 0.0f)) return 0;
  return static_cast<uint64_t>(static_cast<double>(top_p) * static_cast<double>(mass));
}

// min-p keeps weights >= this: ceil(min_p * 2^43), at most sampling_weight(0) == 2^43.
SLUICE_SAMPLING_HD uint64_t sampling_min_p_weight(float min_p) {
  constexpr uint64_t kBest = uint64_t{1} << kSamplingWeightBits;
  if (!(min_p < 1.0f)) return kBest;
  if (!(min_p > 0.0f)) return 0;
  return static_cast<uint64_t>(ceil(static_cast<double>(min_p) * static_cast<double>(kBest)));
}

// The draw threshold for u in [0, 1) over a mass >= 1: floor(u * mass), at most mass - 1.
SLUICE_SAMPLING_HD uint64_t sampling_draw_target(float u, uint64_t mass) {
  const uint64_t t = static_cast<uint64_t>(static_cast<double>(u) * static_cast<double>(mass));
  return t < mass ? t : mass - 1;
}

// ---- Launch parameter block: internal to kernels/cuda (sampling.cpp fills it after
// validation, sampling.cu launches it). Strides in elements.
struct SampleParams {
  float* logits = nullptr;
  const SamplingRowParams* params = nullptr;
  const int32_t* token_counts = nullptr;  // or null
  const uint32_t* prompt_mask = nullptr;  // or null
  const int32_t* bias_ids = nullptr;      // or null
  const float* bias_values = nullptr;
  const int32_t* banned_ids = nullptr;  // or null
  int32_t* out_tokens = nullptr;
  int64_t logits_stride = 0;
  int64_t counts_stride = 0;
  int64_t mask_stride = 0;
  int64_t bias_ids_stride = 0;
  int64_t bias_values_stride = 0;
  int64_t banned_stride = 0;
  int32_t rows = 0;
  int32_t vocab = 0;
  int32_t num_bias = 0;    // B (0 without bias)
  int32_t num_banned = 0;  // M (0 without banned ids)
  // logits and (when present) token_counts rows are 16-byte aligned: 4-wide accesses.
  bool vectorized = false;
};

void launch_sample(const SampleParams& p, void* stream);

}  // namespace sluice::kernels::cuda

#undef SLUICE_SAMPLING_HD
