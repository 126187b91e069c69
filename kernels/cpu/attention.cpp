// Causal attention on the CPU (contract in kernels/ops.h, AttentionArgs).
//
// One task item is one (query token, query head). For each, the visible keys are walked in
// chunks (shared by the heads of one KV group where they run together, see below): scores
// for the chunk (dot_rows), an optional soft-cap, then an online softmax with a running
// maximum (when a chunk raises the maximum, the running sum and the output accumulator are
// rescaled by exp(old_max - new_max)), and the exp-weighted values are accumulated
// (weighted_sum_rows). Everything is f32; the output is divided by the sum at the end.
// Memory per task: one chunk of scores and one accumulator per head.

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

constexpr const char* kOp = "attention";
// Keys per chunk: a chunk of K or V for one head (256 keys x 256 dims x 4 B = 256 KiB) stays
// in L2 while every query head of its group uses it.
constexpr int64_t kKeyChunk = 256;
// The most query heads run together over the same chunks (bounds the per-task state).
constexpr int64_t kMaxHeadsTogether = 16;

struct View3 {
  const float* data;
  int64_t s0, s1;  // strides of dims 0 and 1, elements
  const float* at(int64_t i, int64_t j) const { return data + i * s0 + j * s1; }
};

View3 view3(const Tensor& t) { return {f32_data(t), t.strides[0], t.strides[1]}; }

}  // namespace

void run_attention(const AttentionArgs& args, const IsaKernels& kern) {
  check_tensor(args.q, kOp, "q", DType::kF32, 3);
  check_tensor(args.k, kOp, "k", DType::kF32, 3);
  check_tensor(args.v, kOp, "v", DType::kF32, 3);
  check_tensor(args.out, kOp, "out", DType::kF32, 3);
  check_tensor(args.q_positions, kOp, "q_positions", DType::kI32, 1);
  const int64_t T = args.q.dim(0);
  const int64_t nq = args.q.dim(1);
  const int64_t d = args.q.dim(2);
  const int64_t S = args.k.dim(0);
  const int64_t nkv = args.k.dim(1);
  check_dim(args.k, 2, d, kOp, "k");
  check_same_shape(args.k, args.v, kOp, "k", "v");
  check_same_shape(args.q, args.out, kOp, "q", "out");
  check_dim(args.q_positions, 0, T, kOp, "q_positions");
  SLUICE_CHECK(nkv > 0 && nq % nkv == 0, "{}: {} query heads are not a multiple of {} KV heads",
               kOp, nq, nkv);
  SLUICE_CHECK(args.window >= 0, "{}: window {} is negative", kOp, args.window);
  SLUICE_CHECK(args.softcap >= 0.0f, "{}: softcap {} is negative", kOp, args.softcap);
  const int32_t* positions = args.q_positions.ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    SLUICE_CHECK(positions[t] >= 0 && positions[t] < S,
                 "{}: q_positions[{}] = {} is outside the {} cached keys", kOp, t, positions[t], S);
  }
  if (T == 0 || nq == 0 || d == 0) return;

  const View3 q = view3(args.q), k = view3(args.k), v = view3(args.v);
  const int64_t out_s0 = args.out.strides[0], out_s1 = args.out.strides[1];
  float* out = f32_data(args.out);
  const int64_t group = nq / nkv;
  const float scale = args.scale;
  const float cap = args.softcap;
  const int64_t window = args.window;

  // Items are head-major over a folded token order (t0, t_last, t1, t_last-1, ...), so each
  // task's contiguous range mixes cheap early tokens with expensive late ones. Consecutive
  // items of one token that share a KV head (decode: T == 1) run together, chunk by chunk,
  // so each chunk of K and V is read from memory once for all of them, not once per head.
  auto run_items = [&](int64_t begin, int64_t end) {
    float* scores = scratch_floats(0, kKeyChunk);
    float* state = scratch_floats(1, static_cast<size_t>(kMaxHeadsTogether * (d + 2)));
    for (int64_t item = begin; item < end;) {
      const int64_t h0 = item / T;
      const int64_t r = item % T;
      const int64_t t = (r % 2 == 0) ? r / 2 : T - 1 - r / 2;
      int64_t num_heads = 1;
      // Only with one token are consecutive items consecutive heads of the same token.
      while (T == 1 && item + num_heads < end && num_heads < kMaxHeadsTogether &&
             (h0 + num_heads) / group == h0 / group) {
        ++num_heads;
      }
      // Per head i: running max, running sum, and the accumulator acc[d].
      float* running_max = state;
      float* running_sum = state + kMaxHeadsTogether;
      float* acc = state + 2 * kMaxHeadsTogether;
      std::fill(running_max, running_max + num_heads, -std::numeric_limits<float>::infinity());
      std::fill(running_sum, running_sum + num_heads, 0.0f);
      std::fill(acc, acc + num_heads * d, 0.0f);
      const int64_t pos = positions[t];
      const int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      const float* kh = k.at(0, h0 / group);
      const float* vh = v.at(0, h0 / group);
      for (int64_t j0 = first; j0 <= pos; j0 += kKeyChunk) {
        const int64_t n = std::min(kKeyChunk, pos + 1 - j0);
        for (int64_t i = 0; i < num_heads; ++i) {
          kern.dot_rows(q.at(t, h0 + i), kh + j0 * k.s0, k.s0, n, d, scores);
          float chunk_max = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < n; ++j) {
            float s = scores[j] * scale;
            if (cap > 0.0f) s = cap * std::tanh(s / cap);
            scores[j] = s;
            chunk_max = std::max(chunk_max, s);
          }
          float* acc_i = acc + i * d;
          if (chunk_max > running_max[i]) {
            if (running_sum[i] > 0.0f) {
              const float rescale = std::exp(running_max[i] - chunk_max);
              running_sum[i] *= rescale;
              for (int64_t c = 0; c < d; ++c) acc_i[c] *= rescale;
            }
            running_max[i] = chunk_max;
          }
          running_sum[i] += kern.exp_sum(scores, n, running_max[i], scores);
          kern.weighted_sum_rows(scores, vh + j0 * v.s0, v.s0, n, d, acc_i);
        }
      }
      for (int64_t i = 0; i < num_heads; ++i) {
        float* o = out + t * out_s0 + (h0 + i) * out_s1;
        const float inv = 1.0f / running_sum[i];
        for (int64_t c = 0; c < d; ++c) o[c] = acc[i * d + c] * inv;
      }
      item += num_heads;
    }
  };
  parallel_for(T * nq, run_items);
}

}  // namespace sluice::kernels::cpu
