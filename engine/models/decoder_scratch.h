#pragma once
// DecoderScratch: the f32 activation buffers one forward call of a decoder needs (Gemma 3 and
// Gemma 4 share the layout), sized for the largest step seen so far and reused after; and
// DecoderStep, the layer pieces both decoders compute alike.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "engine/models/linear.h"
#include "engine/models/model.h"
#include "engine/models/model_config.h"
#include "engine/models/paged_kv_cache.h"
#include "kernels/ops.h"

namespace sluice::models {

struct DecoderScratch {
  int tokens = 0;                    // rows the buffers hold
  std::vector<float> x, a, o;        // [T, H]: residual, normed input, projection output
  std::vector<float> q, attn;        // [T, heads * max head dim]
  std::vector<float> k, v;           // [T, max kv heads * head dim]
  std::vector<float> gate, up, act;  // [T, max intermediate]

  // Grows every buffer to hold T tokens of `c`; false when they already did.
  bool ensure(const ModelConfig& c, int T) {
    if (T <= tokens) return false;
    const size_t H = c.hidden_size, qd = static_cast<size_t>(c.num_heads) * c.max_head_dim();
    size_t kvd = 0;
    for (const auto& l : c.layers)
      kvd = std::max(kvd, static_cast<size_t>(l.num_kv_heads) * l.head_dim);
    const size_t I = c.max_intermediate_size();
    for (auto* b : {&x, &a, &o}) b->resize(T * H);
    for (auto* b : {&q, &attn}) b->resize(T * qd);
    for (auto* b : {&k, &v}) b->resize(T * kvd);
    for (auto* b : {&gate, &up, &act}) b->resize(T * I);
    tokens = T;
    return true;
  }
};

// The per-call context of a decoder's forward pass and the layer pieces Gemma 3 and Gemma 4
// compute alike, over the scratch above (decoder_scratch.cpp).
struct DecoderStep {
  const kernels::OpTable& ops;
  const ModelConfig& config;
  PagedKvCache& cache;
  const ForwardBatch& batch;
  DecoderScratch& s;

  // Paged attention of layer li's queries q [T, nq * d] (normed, rotated) at positions pos
  // [T] of sequences token_seq [T] (the batch's, or the rows a model kept) over the layer's
  // cache, its window on sliding layers: s.attn as [T, nq, d].
  kernels::Tensor attend(int li, const kernels::Tensor& q, const kernels::Tensor& pos,
                         const kernels::Tensor& token_seq) const;
  // The dense GeGLU MLP of layer li over x [T, H]: a = norm(x; ffn_norm),
  // o = W_down(gelu(W_gate a) * W_up a), the layer's intermediate size.
  void dense_mlp(int li, const kernels::Tensor& x, const kernels::Tensor& a,
                 const kernels::Tensor& o, const kernels::Tensor& ffn_norm,
                 const LinearWeight& w_gate, const LinearWeight& w_up,
                 const LinearWeight& w_down) const;
};

}  // namespace sluice::models
