#pragma once
// DecoderScratch: the f32 activation buffers one forward call of a decoder needs (Gemma 3 and
// Gemma 4 share the layout), sized for the largest step seen so far and reused after.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "engine/models/model_config.h"

namespace sluice::models {

struct DecoderScratch {
  int tokens = 0;  // rows the buffers hold
  std::vector<float> x, a, o;  // [T, H]: residual, normed input, projection output
  std::vector<float> q, attn;  // [T, heads * max head dim]
  std::vector<float> k, v;     // [T, max kv heads * head dim]
  std::vector<float> gate, up, act;  // [T, max intermediate]

  // Grows every buffer to hold T tokens of `c`; false when they already did.
  bool ensure(const ModelConfig& c, int T) {
    if (T <= tokens) return false;
    const size_t H = c.hidden_size, qd = static_cast<size_t>(c.num_heads) * c.max_head_dim();
    size_t kvd = 0;
    for (const auto& l : c.layers) kvd = std::max(kvd, static_cast<size_t>(l.num_kv_heads) * l.head_dim);
    const size_t I = c.max_intermediate_size();
    for (auto* b : {&x, &a, &o}) b->resize(T * H);
    for (auto* b : {&q, &attn}) b->resize(T * qd);
    for (auto* b : {&k, &v}) b->resize(T * kvd);
    for (auto* b : {&gate, &up, &act}) b->resize(T * I);
    tokens = T;
    return true;
  }
};

}  // namespace sluice::models
