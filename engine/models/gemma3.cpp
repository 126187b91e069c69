#include "engine/models/gemma3.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/check.h"
#include "engine/weights/weight_source.h"

namespace sluice::models {

using kernels::DType;
using kernels::Tensor;

StatusOr<std::unique_ptr<Gemma3Model>> Gemma3Model::load(ModelConfig config, WeightBinder binder,
                                                         const kernels::OpTable& ops) {
  std::unique_ptr<Gemma3Model> m(new Gemma3Model(std::move(config), std::move(binder), ops));
  const ModelConfig& c = m->config_;
  WeightBinder& b = m->binder_;
  const int64_t H = c.hidden_size;
  SLUICE_ASSIGN_OR_RETURN(m->head_, b.linear(TensorRole::kTokenEmbedding, -1, c.vocab_size, H));
  if (m->head_.quant.defined()) {
    SLUICE_ASSIGN_OR_RETURN(m->embed_info_, b.info(TensorRole::kTokenEmbedding, -1));
  } else {
    m->embed_ = m->head_.dense;
  }
  SLUICE_ASSIGN_OR_RETURN(m->final_norm_, b.vector(TensorRole::kFinalNorm, -1, H));
  m->layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerConfig& lc = c.layers[i];
    const int64_t d = lc.head_dim, nq = c.num_heads, nkv = lc.num_kv_heads,
                  I = lc.intermediate_size;
    Gemma3Layer& L = m->layers_[i];
    SLUICE_ASSIGN_OR_RETURN(L.attn_norm, b.vector(TensorRole::kAttnNorm, i, H));
    SLUICE_ASSIGN_OR_RETURN(L.wq, b.linear(TensorRole::kQProj, i, nq * d, H));
    SLUICE_ASSIGN_OR_RETURN(L.wk, b.linear(TensorRole::kKProj, i, nkv * d, H));
    SLUICE_ASSIGN_OR_RETURN(L.wv, b.linear(TensorRole::kVProj, i, nkv * d, H));
    SLUICE_ASSIGN_OR_RETURN(L.wo, b.linear(TensorRole::kOProj, i, H, nq * d));
    SLUICE_ASSIGN_OR_RETURN(L.q_norm, b.vector(TensorRole::kQNorm, i, d));
    SLUICE_ASSIGN_OR_RETURN(L.k_norm, b.vector(TensorRole::kKNorm, i, d));
    SLUICE_ASSIGN_OR_RETURN(L.post_attn_norm, b.vector(TensorRole::kPostAttnNorm, i, H));
    SLUICE_ASSIGN_OR_RETURN(L.ffn_norm, b.vector(TensorRole::kFfnNorm, i, H));
    SLUICE_ASSIGN_OR_RETURN(L.w_gate, b.linear(TensorRole::kGateProj, i, I, H));
    SLUICE_ASSIGN_OR_RETURN(L.w_up, b.linear(TensorRole::kUpProj, i, I, H));
    SLUICE_ASSIGN_OR_RETURN(L.w_down, b.linear(TensorRole::kDownProj, i, H, I));
    SLUICE_ASSIGN_OR_RETURN(L.post_ffn_norm, b.vector(TensorRole::kPostFfnNorm, i, H));
  }
  // HF casts sqrt(H) to the embedding dtype before multiplying (bf16: 25.25 for H = 640);
  // GGUF and f32 checkpoints use the exact value (docs/numerics.md).
  m->config_.embed_scale = b.embedding_scale(c.hidden_size);
  return m;
}

void Gemma3Model::embed(std::span<const int32_t> tokens, const Tensor& x) {
  const ModelConfig& c = config_;
  const int T = static_cast<int>(tokens.size());
  if (embed_info_ == nullptr) {
    ops_.embedding({x, embed_, Tensor::make(const_cast<int32_t*>(tokens.data()), DType::kI32, {T}),
                    c.embed_scale});
    return;
  }
  // A quantized table: dequantize each token's row (ids were validated by the caller), then
  // scale it as the embedding op does.
  const int64_t H = c.hidden_size;
  for (int t = 0; t < T; ++t) {
    float* row = x.ptr<float>() + t * x.strides[0];
    Status s = weights::convert_to_f32(*embed_info_, static_cast<uint64_t>(tokens[t]) * H, H, row);
    SLUICE_CHECK(s.is_ok(), "token table lookup: {}", s.to_string());
    for (int64_t i = 0; i < H; ++i) row[i] *= c.embed_scale;
  }
}

void Gemma3Model::ensure_scratch(int T) { s_.ensure(config_, T); }

Status Gemma3Model::forward(const ForwardBatch& batch, PagedKvCache& cache,
                            std::span<float> logits) {
  const ModelConfig& c = config_;
  SLUICE_RETURN_IF_ERROR(validate_forward_batch(c, batch, cache, logits));
  const int T = static_cast<int>(batch.tokens.size());
  ensure_scratch(T);

  const int64_t H = c.hidden_size, nq = c.num_heads;
  const float eps = c.rms_norm_eps;
  const bool one_plus = c.norm_one_plus_weight;
  auto i32 = [](std::span<const int32_t> s, std::initializer_list<int64_t> shape) {
    return Tensor::make(const_cast<int32_t*>(s.data()), DType::kI32, shape);
  };
  Tensor x = Tensor::make(s_.x.data(), DType::kF32, {T, H});
  Tensor a = Tensor::make(s_.a.data(), DType::kF32, {T, H});
  Tensor o = Tensor::make(s_.o.data(), DType::kF32, {T, H});
  Tensor pos = i32(batch.positions, {T});
  Tensor token_seq = i32(batch.token_seq, {T});

  const DecoderStep step{ops_, c, cache, batch, s_};
  embed(batch.tokens, x);
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    const Gemma3Layer& L = layers_[li];
    const int64_t d = lc.head_dim, nkv = lc.num_kv_heads;
    const int g = cache.group_of_layer(li);
    const KvGroupBatch& gb = batch.groups[g];
    Tensor q = Tensor::make(s_.q.data(), DType::kF32, {T, nq * d});
    Tensor k = Tensor::make(s_.k.data(), DType::kF32, {T, nkv * d});
    Tensor v = Tensor::make(s_.v.data(), DType::kF32, {T, nkv * d});

    ops_.rms_norm({a, x, L.attn_norm, eps, one_plus});
    linear_group(ops_, a, {{q, &L.wq}, {k, &L.wk}, {v, &L.wv}});
    Tensor q_heads = q.view({T * nq, d});
    Tensor k_heads = k.view({T * nkv, d});
    ops_.rms_norm({q_heads, q_heads, L.q_norm, eps, one_plus});
    ops_.rms_norm({k_heads, k_heads, L.k_norm, eps, one_plus});
    const RopeConfig& r = lc.rope;
    ops_.rope(
        {q.view({T, nq, d}), pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset, r.freq_dim});
    ops_.rope(
        {k.view({T, nkv, d}), pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset, r.freq_dim});
    ops_.cache_write(
        {k.view({T, nkv, d}), v.view({T, nkv, d}), cache.k(li), cache.v(li), i32(gb.slots, {T})});
    const Tensor attn = step.attend(li, q, pos, token_seq);
    linear(ops_, o, attn.view({T, nq * d}), L.wo);
    ops_.add_rms_norm({x, o, L.post_attn_norm, eps, one_plus});

    step.dense_mlp(li, x, a, o, L.ffn_norm, L.w_gate, L.w_up, L.w_down);
    ops_.add_rms_norm({x, o, L.post_ffn_norm, eps, one_plus});
  }

  // Logits only where a token is sampled: gather those rows, norm them, run the tied head.
  const int R = static_cast<int>(batch.logit_rows.size());
  if (R == 0) return Status::ok();
  for (int i = 0; i < R; ++i) {
    std::copy_n(s_.x.data() + static_cast<size_t>(batch.logit_rows[i]) * H, H,
                s_.o.data() + static_cast<size_t>(i) * H);
  }
  Tensor rows = o.slice_rows(0, R);
  Tensor y = a.slice_rows(0, R);
  ops_.rms_norm({y, rows, final_norm_, eps, one_plus});
  Tensor out = Tensor::make(logits.data(), DType::kF32, {R, c.vocab_size});
  linear(ops_, out, y, head_);
  if (c.final_logit_softcap > 0) ops_.softcap({out, c.final_logit_softcap});
  return Status::ok();
}

}  // namespace sluice::models
