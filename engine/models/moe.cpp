#include "engine/models/moe.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace sluice::models {

using kernels::DType;
using kernels::Tensor;

namespace {

// A [rows, cols] view of `t` with row stride `stride` (elements), starting `offset` elements in.
Tensor strided_rows(const Tensor& t, int64_t offset, int64_t rows, int64_t cols, int64_t stride) {
  Tensor v = Tensor::make(
      static_cast<uint8_t*>(t.data) + offset * static_cast<int64_t>(kernels::dtype_size(t.dtype)),
      t.dtype, {rows, cols});
  v.strides[0] = stride;
  return v;
}

// Expert e's [rows, cols] slab of a stacked [E, rows, cols] weight (contiguous).
Tensor expert_slab(const Tensor& w, int64_t e, int64_t rows) {
  const int64_t cols = w.dim(2);
  return strided_rows(w, e * w.dim(1) * cols, rows, cols, cols);
}

// Router: RMS0(x) * scale * H^-0.5 -> logits [T, E] -> softmax in f32 over all experts ->
// top-k of the probabilities, renormalised to sum 1, then * per_expert_scale. Fills
// ws.top_k_index / ws.top_k_weight and counts each expert's rows into ws.expert_begin[e + 1].
void route(const kernels::OpTable& ops, const MoeWeights& w, int64_t K, float eps, const Tensor& x,
           const MoeWorkspace& ws) {
  const int64_t T = x.dim(0), H = x.dim(1), E = w.router_proj.dim(0);
  Tensor r_in = Tensor::make(ws.rows_in.data(), DType::kF32, {T, H});
  ops.rms_norm({r_in, x, w.router_scale, eps, false});
  ops.scale({r_in, static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)))});
  Tensor probs = Tensor::make(ws.probs.data(), DType::kF32, {T, E});
  ops.matmul({probs, r_in, w.router_proj});
  ops.softmax({probs});
  std::fill(ws.expert_begin.begin(), ws.expert_begin.begin() + E + 1, 0);
  for (int64_t t = 0; t < T; ++t) {
    int32_t* idx = ws.top_k_index.data() + t * K;
    float* wt = ws.top_k_weight.data() + t * K;
    ops.top_k({probs.slice_rows(t, t + 1).view({E}), Tensor::make(idx, DType::kI32, {K}),
               Tensor::make(wt, DType::kF32, {K}), static_cast<int>(K)});
    float sum = 0.0f;
    for (int64_t j = 0; j < K; ++j) sum += wt[j];
    for (int64_t j = 0; j < K; ++j) {
      wt[j] = wt[j] / sum * w.per_expert_scale[idx[j]];
      ++ws.expert_begin[idx[j] + 1];
    }
  }
}

// Permute: the routed (token, weight) pairs grouped by expert, tokens ascending within an
// expert; expert e's rows are [expert_begin[e], expert_begin[e + 1]).
void group_by_expert(int64_t T, int64_t E, int64_t K, const MoeWorkspace& ws) {
  for (int64_t e = 0; e < E; ++e) ws.expert_begin[e + 1] += ws.expert_begin[e];
  std::copy_n(ws.expert_begin.begin(), E, ws.expert_fill.begin());
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < K; ++j) {
      const int32_t e = ws.top_k_index[t * K + j];
      const int32_t row = ws.expert_fill[e]++;
      ws.routed_token[row] = static_cast<int32_t>(t);
      ws.routed_weight[row] = ws.top_k_weight[t * K + j];
    }
  }
}

}  // namespace

MoeWorkspace MoeScratch::reserve(int64_t T, int64_t H, int E, int K, int64_t I) {
  const size_t t = static_cast<size_t>(T), h = static_cast<size_t>(H), e = static_cast<size_t>(E),
               k = static_cast<size_t>(K), i = static_cast<size_t>(I);
  auto grow = [](auto& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  grow(probs_, t * e);
  grow(top_k_index_, t * k);
  grow(top_k_weight_, t * k);
  grow(expert_begin_, e + 1);
  grow(expert_fill_, e);
  grow(routed_token_, t * k);
  grow(routed_weight_, t * k);
  // One expert sees each token at most once, so T rows bound any expert's batch.
  grow(rows_in_, t * h);
  grow(rows_gate_up_, t * 2 * i);
  grow(rows_act_, t * i);
  grow(rows_out_, t * h);
  return {probs_,         top_k_index_, top_k_weight_, expert_begin_, expert_fill_, routed_token_,
          routed_weight_, rows_in_,     rows_gate_up_, rows_act_,     rows_out_};
}

void moe_forward(const kernels::OpTable& ops, const MoeWeights& w, int top_k, float eps,
                 const Tensor& x, const Tensor& in, const Tensor& out, const MoeWorkspace& ws) {
  const int64_t T = x.dim(0), H = x.dim(1), E = w.router_proj.dim(0), K = top_k,
                I = w.experts_down.dim(2);
  SLUICE_CHECK(K >= 1 && K <= E, "moe: top_k {} with {} experts", K, E);
  SLUICE_CHECK(in.dim(0) == T && in.dim(1) == H && out.dim(0) == T && out.dim(1) == H,
               "moe: x {}, in {}, out {} disagree", x.shape_string(), in.shape_string(),
               out.shape_string());
  SLUICE_CHECK(w.experts_gate_up.dim(0) == E && w.experts_gate_up.dim(1) == 2 * I &&
                   w.experts_gate_up.dim(2) == H && w.experts_down.dim(0) == E &&
                   w.experts_down.dim(1) == H && w.router_proj.dim(1) == H &&
                   w.per_expert_scale.size() == static_cast<size_t>(E),
               "moe: experts gate_up {}, down {}, router {} disagree",
               w.experts_gate_up.shape_string(), w.experts_down.shape_string(),
               w.router_proj.shape_string());
  SLUICE_CHECK(ws.probs.size() >= static_cast<size_t>(T * E) &&
                   ws.top_k_index.size() >= static_cast<size_t>(T * K) &&
                   ws.top_k_weight.size() >= static_cast<size_t>(T * K) &&
                   ws.expert_begin.size() >= static_cast<size_t>(E + 1) &&
                   ws.expert_fill.size() >= static_cast<size_t>(E) &&
                   ws.routed_token.size() >= static_cast<size_t>(T * K) &&
                   ws.routed_weight.size() >= static_cast<size_t>(T * K) &&
                   ws.rows_in.size() >= static_cast<size_t>(T * H) &&
                   ws.rows_gate_up.size() >= static_cast<size_t>(T * 2 * I) &&
                   ws.rows_act.size() >= static_cast<size_t>(T * I) &&
                   ws.rows_out.size() >= static_cast<size_t>(T * H),
               "moe: workspace too small for T {} H {} E {} K {} I {}", T, H, E, K, I);
  route(ops, w, K, eps, x, ws);
  group_by_expert(T, E, K, ws);
  // Experts in index order (the order transformers accumulates them in): gather the rows,
  // one fused gate/up matmul, GeGLU, down, then add weight * row into its token's output.
  float* dst_base = out.ptr<float>();
  std::fill(dst_base, dst_base + T * H, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t begin = ws.expert_begin[e], n = ws.expert_begin[e + 1] - begin;
    if (n == 0) continue;
    for (int64_t r = 0; r < n; ++r) {
      std::copy_n(in.ptr<const float>() + ws.routed_token[begin + r] * H, H,
                  ws.rows_in.data() + r * H);
    }
    Tensor rows = Tensor::make(ws.rows_in.data(), DType::kF32, {n, H});
    Tensor gu = Tensor::make(ws.rows_gate_up.data(), DType::kF32, {n, 2 * I});
    ops.matmul({gu, rows, expert_slab(w.experts_gate_up, e, 2 * I)});
    Tensor act = Tensor::make(ws.rows_act.data(), DType::kF32, {n, I});
    ops.geglu({act, strided_rows(gu, 0, n, I, 2 * I), strided_rows(gu, I, n, I, 2 * I)});
    Tensor down = Tensor::make(ws.rows_out.data(), DType::kF32, {n, H});
    ops.matmul({down, act, expert_slab(w.experts_down, e, H)});
    // Un-permute: each row, times its weight, into its token's sum.
    for (int64_t r = 0; r < n; ++r) {
      const float wt = ws.routed_weight[begin + r];
      const float* src = ws.rows_out.data() + r * H;
      float* dst = dst_base + ws.routed_token[begin + r] * H;
      for (int64_t h = 0; h < H; ++h) dst[h] += src[h] * wt;
    }
  }
}

}  // namespace sluice::models
