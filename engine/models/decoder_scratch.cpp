// DecoderStep (engine/models/decoder_scratch.h): the attention call and the dense MLP that
// Gemma 3 and Gemma 4 share.

#include "engine/models/decoder_scratch.h"

namespace sluice::models {

using kernels::DType;
using kernels::Tensor;

namespace {

Tensor i32(std::span<const int32_t> s, std::initializer_list<int64_t> shape) {
  return Tensor::make(const_cast<int32_t*>(s.data()), DType::kI32, shape);
}

}  // namespace

Tensor DecoderStep::attend(int li, const Tensor& q, const Tensor& pos,
                           const Tensor& token_seq) const {
  const ModelConfig& c = config;
  const LayerConfig& lc = c.layers[li];
  const int64_t T = q.dim(0), nq = c.num_heads, d = lc.head_dim;
  const int64_t S = static_cast<int64_t>(batch.seq_lens.size());
  const KvGroupBatch& gb = batch.groups[cache.group_of_layer(li)];
  Tensor attn = Tensor::make(s.attn.data(), DType::kF32, {T, nq, d});
  const int window = lc.type == LayerType::kSliding ? c.sliding_window : 0;
  ops.paged_attention({attn, q.view({T, nq, d}), cache.k(li), cache.v(li), token_seq, pos,
                       i32(gb.block_tables, {S, gb.max_blocks}), i32(batch.seq_lens, {S}),
                       cache.block_size(), c.attn_scale, window, c.attn_logit_softcap});
  return attn;
}

void DecoderStep::dense_mlp(int li, const Tensor& x, const Tensor& a, const Tensor& o,
                            const Tensor& ffn_norm, const LinearWeight& w_gate,
                            const LinearWeight& w_up, const LinearWeight& w_down) const {
  const int64_t T = x.dim(0), I = config.layers[li].intermediate_size;
  ops.rms_norm({a, x, ffn_norm, config.rms_norm_eps, config.norm_one_plus_weight});
  Tensor gate = Tensor::make(s.gate.data(), DType::kF32, {T, I});
  Tensor up = Tensor::make(s.up.data(), DType::kF32, {T, I});
  Tensor act = Tensor::make(s.act.data(), DType::kF32, {T, I});
  linear_group(ops, a, {{gate, &w_gate}, {up, &w_up}});
  ops.geglu({act, gate, up});
  linear(ops, o, act, w_down);
}

}  // namespace sluice::models
