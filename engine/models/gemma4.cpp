#include "engine/models/gemma4.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/models/moe.h"

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

}  // namespace

StatusOr<std::unique_ptr<Gemma4Model>> Gemma4Model::load(ModelConfig config, WeightBinder binder,
                                                         const kernels::OpTable& ops) {
  if (config.arch != Arch::kGemma4) {
    return Status::invalid_argument(
        fmt::format("Gemma4Model cannot run a {} config", arch_name(config.arch)));
  }
  std::unique_ptr<Gemma4Model> m(new Gemma4Model(std::move(config), std::move(binder), ops));
  const ModelConfig& c = m->config_;
  WeightBinder& b = m->binder_;
  const int64_t H = c.hidden_size, L = c.num_layers, P = c.hidden_size_per_layer_input;
  SLUICE_ASSIGN_OR_RETURN(m->embed_, b.matrix(TensorRole::kTokenEmbedding, -1, c.vocab_size, H));
  SLUICE_ASSIGN_OR_RETURN(m->final_norm_, b.vector(TensorRole::kFinalNorm, -1, H));
  if (P > 0) {
    SLUICE_ASSIGN_OR_RETURN(m->ple_embed_, b.matrix(TensorRole::kPleEmbedding, -1,
                                                    c.vocab_size_per_layer_input, L * P));
    SLUICE_ASSIGN_OR_RETURN(m->ple_model_proj_,
                            b.matrix(TensorRole::kPleModelProjection, -1, L * P, H));
    SLUICE_ASSIGN_OR_RETURN(m->ple_proj_norm_, b.vector(TensorRole::kPleProjectionNorm, -1, P));
    m->ple_embed_scale_ = b.scale_for(TensorRole::kPleEmbedding,
                                      static_cast<float>(std::sqrt(static_cast<double>(P))));
  }
  m->layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerConfig& lc = c.layers[i];
    const int64_t d = lc.head_dim, nq = c.num_heads, nkv = lc.num_kv_heads,
                  I = lc.intermediate_size;
    Gemma4Layer& Ly = m->layers_[i];
    SLUICE_ASSIGN_OR_RETURN(Ly.attn_norm, b.vector(TensorRole::kAttnNorm, i, H));
    SLUICE_ASSIGN_OR_RETURN(Ly.wq, b.linear(TensorRole::kQProj, i, nq * d, H));
    SLUICE_ASSIGN_OR_RETURN(Ly.q_norm, b.vector(TensorRole::kQNorm, i, d));
    SLUICE_ASSIGN_OR_RETURN(Ly.wo, b.linear(TensorRole::kOProj, i, H, nq * d));
    SLUICE_ASSIGN_OR_RETURN(Ly.post_attn_norm, b.vector(TensorRole::kPostAttnNorm, i, H));
    // KV-shared layers read their source's cache: whatever K/V weights a checkpoint carries
    // for them are never bound. K=V layers have no v_proj (V is the raw K projection).
    if (lc.owns_kv()) {
      SLUICE_ASSIGN_OR_RETURN(Ly.wk, b.linear(TensorRole::kKProj, i, nkv * d, H));
      SLUICE_ASSIGN_OR_RETURN(Ly.k_norm, b.vector(TensorRole::kKNorm, i, d));
      if (!lc.k_eq_v) {
        SLUICE_ASSIGN_OR_RETURN(Ly.wv, b.linear(TensorRole::kVProj, i, nkv * d, H));
      }
    }
    SLUICE_ASSIGN_OR_RETURN(Ly.ffn_norm, b.vector(TensorRole::kFfnNorm, i, H));
    SLUICE_ASSIGN_OR_RETURN(Ly.w_gate, b.linear(TensorRole::kGateProj, i, I, H));
    SLUICE_ASSIGN_OR_RETURN(Ly.w_up, b.linear(TensorRole::kUpProj, i, I, H));
    SLUICE_ASSIGN_OR_RETURN(Ly.w_down, b.linear(TensorRole::kDownProj, i, H, I));
    SLUICE_ASSIGN_OR_RETURN(Ly.post_ffn_norm, b.vector(TensorRole::kPostFfnNorm, i, H));
    if (c.layer_scalar) {
      SLUICE_ASSIGN_OR_RETURN(Tensor s, b.vector(TensorRole::kLayerScalar, i, 1));
      Ly.layer_scalar = *s.ptr<const float>();
    }
    if (lc.has_ple) {
      SLUICE_ASSIGN_OR_RETURN(Ly.ple_gate, b.linear(TensorRole::kPleGate, i, P, H));
      SLUICE_ASSIGN_OR_RETURN(Ly.ple_proj, b.linear(TensorRole::kPleProjection, i, H, P));
      SLUICE_ASSIGN_OR_RETURN(Ly.ple_post_norm, b.vector(TensorRole::kPlePostNorm, i, H));
    }
    if (lc.moe) {
      const int64_t E = c.num_experts, Im = c.moe_intermediate_size;
      SLUICE_ASSIGN_OR_RETURN(Ly.post_ffn_norm_1, b.vector(TensorRole::kPostFfnNorm1, i, H));
      SLUICE_ASSIGN_OR_RETURN(Ly.pre_ffn_norm_2, b.vector(TensorRole::kPreFfnNorm2, i, H));
      SLUICE_ASSIGN_OR_RETURN(Ly.post_ffn_norm_2, b.vector(TensorRole::kPostFfnNorm2, i, H));
      SLUICE_ASSIGN_OR_RETURN(Ly.router_proj, b.matrix(TensorRole::kRouterProj, i, E, H));
      SLUICE_ASSIGN_OR_RETURN(Ly.router_scale, b.vector(TensorRole::kRouterScale, i, H));
      SLUICE_ASSIGN_OR_RETURN(Tensor pes, b.vector(TensorRole::kRouterPerExpertScale, i, E));
      Ly.per_expert_scale.assign(pes.ptr<const float>(), pes.ptr<const float>() + E);
      SLUICE_ASSIGN_OR_RETURN(Ly.experts_gate_up,
                              b.tensor(TensorRole::kExpertsGateUp, i, {E, 2 * Im, H}));
      SLUICE_ASSIGN_OR_RETURN(Ly.experts_down, b.tensor(TensorRole::kExpertsDown, i, {E, H, Im}));
    }
  }
  // As Gemma 3: sqrt(H) rounded to the embedding's dtype, as transformers multiplies it.
  m->config_.embed_scale = b.embedding_scale(c.hidden_size);
  return m;
}

void Gemma4Model::ensure_scratch(int T) {
  if (!s_.ensure(config_, T)) return;
  const ModelConfig& c = config_;
  const size_t H = c.hidden_size;
  kept_positions_.resize(T);
  kept_token_seq_.resize(T);
  if (c.hidden_size_per_layer_input > 0) {
    const size_t LP = static_cast<size_t>(c.num_layers) * c.hidden_size_per_layer_input;
    ple_.resize(T * LP);
    ple_tok_.resize(T * LP);
    ple_gate_.resize(2 * T * static_cast<size_t>(c.hidden_size_per_layer_input));
    ple_ids_.resize(T);
  }
  if (c.enable_moe_block) {
    const size_t E = c.num_experts, k = c.top_k_experts, Im = c.moe_intermediate_size;
    moe_in_.resize(T * H);
    moe_out_.resize(T * H);
    router_.resize(T * E);
    topk_idx_.resize(T * k);
    topk_w_.resize(T * k);
    // One expert sees each token at most once, so T rows bound any expert's batch.
    ex_in_.resize(T * H);
    ex_gu_.resize(T * 2 * Im);
    ex_act_.resize(T * Im);
    ex_out_.resize(T * H);
    expert_rows_.resize(T * k);
    expert_w_.resize(T * k);
    expert_begin_.resize(E + 1);
  }
}

void Gemma4Model::per_layer_inputs(std::span<const int32_t> tokens, const Tensor& x) {
  const ModelConfig& c = config_;
  const int64_t T = static_cast<int64_t>(tokens.size()), H = c.hidden_size, L = c.num_layers,
                P = c.hidden_size_per_layer_input;
  // Token part: the PLE table may be shorter than the vocabulary; ids past it (and, in
  // transformers, multimodal placeholders) read the pad row 0.
  for (int64_t t = 0; t < T; ++t) {
    ple_ids_[t] = tokens[t] < c.vocab_size_per_layer_input ? tokens[t] : 0;
  }
  Tensor ids = Tensor::make(ple_ids_.data(), DType::kI32, {T});
  Tensor tok = Tensor::make(ple_tok_.data(), DType::kF32, {T, L * P});
  ops_.embedding({tok, ple_embed_, ids, ple_embed_scale_});
  // Context part: RMSNorm((x0 . W^T) * H^-0.5) over each layer's P-slice.
  Tensor ctx = Tensor::make(ple_.data(), DType::kF32, {T, L * P});
  ops_.matmul({ctx, x, ple_model_proj_});
  ops_.scale({ctx, static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)))});
  Tensor slices = ctx.view({T * L, P});
  ops_.rms_norm({slices, slices, ple_proj_norm_, c.rms_norm_eps, false});
  ops_.add({ctx, ctx, tok});
  ops_.scale({ctx, static_cast<float>(1.0 / std::sqrt(2.0))});
}

void Gemma4Model::moe(const Gemma4Layer& Ly, const Tensor& x, const Tensor& in, const Tensor& out) {
  const ModelConfig& c = config_;
  const int64_t T = x.dim(0), E = c.num_experts;
  expert_fill_.resize(E);
  const MoeWeights w{Ly.router_proj, Ly.router_scale, Ly.per_expert_scale, Ly.experts_gate_up,
                     Ly.experts_down};
  const MoeWorkspace ws{router_,   topk_idx_, topk_w_, expert_begin_, expert_fill_, expert_rows_,
                        expert_w_, ex_in_,    ex_gu_,  ex_act_,       ex_out_};
  moe_forward(ops_, w, c.top_k_experts, c.rms_norm_eps, x, in, out, ws);
  observe("moe_top_k_index", current_layer_,
          Tensor::make(topk_idx_.data(), DType::kI32, {T, c.top_k_experts}));
  observe("moe_top_k_weights", current_layer_,
          Tensor::make(topk_w_.data(), DType::kF32, {T, c.top_k_experts}));
}

Status Gemma4Model::forward(const ForwardBatch& batch, PagedKvCache& cache,
                            std::span<float> logits) {
  const ModelConfig& c = config_;
  SLUICE_RETURN_IF_ERROR(validate_forward_batch(c, batch, cache, logits));
  const int num_tokens = static_cast<int>(batch.tokens.size());
  const int R = static_cast<int>(batch.logit_rows.size());
  ensure_scratch(std::max(num_tokens, R));  // R rows are gathered for the head

  const int64_t H = c.hidden_size, nq = c.num_heads, L = c.num_layers,
                P = c.hidden_size_per_layer_input;
  const float eps = c.rms_norm_eps;
  auto i32 = [](std::span<const int32_t> s, std::initializer_list<int64_t> shape) {
    return Tensor::make(const_cast<int32_t*>(s.data()), DType::kI32, shape);
  };
  // Rows still computed: every token, until the KV-shared layers (below) keep only the
  // logit rows.
  int T = num_tokens;
  std::span<const int32_t> positions = batch.positions, token_seqs = batch.token_seq;
  float* ple = ple_.data();  // [T, L, P]
  bool compacted = false;

  {
    Tensor x = Tensor::make(s_.x.data(), DType::kF32, {T, H});
    ops_.embedding({x, embed_, i32(batch.tokens, {T}), c.embed_scale});
    observe("embed", -1, x);
    if (P > 0) {
      per_layer_inputs(batch.tokens, x);
      observe("ple_inputs", -1, Tensor::make(ple_.data(), DType::kF32, {T, L, P}));
    }
  }

  const DecoderStep step{ops_, c, cache, batch, s_};
  const int first_shared = c.num_layers - c.num_kv_shared_layers;
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    const Gemma4Layer& Ly = layers_[li];
    const int64_t d = lc.head_dim, nkv = lc.num_kv_heads;
    const KvGroupBatch& gb = batch.groups[cache.group_of_layer(li)];
    const RopeConfig& r = lc.rope;
    current_layer_ = li;
    if (li == first_shared && R < T) {
      // NOTE: KV-shared layers write no cache, so from here on only the rows whose logits
      // are wanted matter (transformers' generate does the same). Keep those rows, in
      // logit_rows order; with none wanted the step is done.
      if (R == 0) return Status::ok();
      for (int i = 0; i < R; ++i) {
        const int32_t row = batch.logit_rows[i];
        std::copy_n(s_.x.data() + static_cast<size_t>(row) * H, H,
                    s_.o.data() + static_cast<size_t>(i) * H);
        if (P > 0) {
          std::copy_n(ple_.data() + static_cast<size_t>(row) * L * P, L * P,
                      ple_tok_.data() + static_cast<size_t>(i) * L * P);
        }
        kept_positions_[i] = batch.positions[row];
        kept_token_seq_[i] = batch.token_seq[row];
      }
      std::copy_n(s_.o.data(), static_cast<size_t>(R) * H, s_.x.data());
      ple = ple_tok_.data();
      positions = std::span<const int32_t>(kept_positions_.data(), R);
      token_seqs = std::span<const int32_t>(kept_token_seq_.data(), R);
      T = R;
      compacted = true;
    }
    Tensor x = Tensor::make(s_.x.data(), DType::kF32, {T, H});
    Tensor a = Tensor::make(s_.a.data(), DType::kF32, {T, H});
    Tensor o = Tensor::make(s_.o.data(), DType::kF32, {T, H});
    Tensor pos = i32(positions, {T});
    Tensor token_seq = i32(token_seqs, {T});

    // Attention. Q always; K/V only on layers that own them (a KV-shared layer attends over
    // its source layer's storage, written earlier in this same step).
    ops_.rms_norm({a, x, Ly.attn_norm, eps, false});
    Tensor q = Tensor::make(s_.q.data(), DType::kF32, {T, nq * d});
    linear(ops_, q, a, Ly.wq);
    Tensor q_heads = q.view({T * nq, d});
    ops_.rms_norm({q_heads, q_heads, Ly.q_norm, eps, false});
    ops_.rope(
        {q.view({T, nq, d}), pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset, r.freq_dim});
    if (lc.owns_kv()) {
      Tensor k = Tensor::make(s_.k.data(), DType::kF32, {T, nkv * d});
      Tensor v = Tensor::make(s_.v.data(), DType::kF32, {T, nkv * d});
      Tensor k_heads = k.view({T * nkv, d});
      Tensor v_heads = v.view({T * nkv, d});
      linear(ops_, k, a, Ly.wk);
      // V-norm: weightless RMS per head; on K=V layers it reads the raw K projection, before
      // k_norm and RoPE.
      if (lc.k_eq_v) {
        ops_.rms_norm({v_heads, k_heads, Tensor{}, eps, false});
      } else {
        linear(ops_, v, a, Ly.wv);
        ops_.rms_norm({v_heads, v_heads, Tensor{}, eps, false});
      }
      ops_.rms_norm({k_heads, k_heads, Ly.k_norm, eps, false});
      ops_.rope({k.view({T, nkv, d}), pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset,
                 r.freq_dim});
      ops_.cache_write(
          {k.view({T, nkv, d}), v.view({T, nkv, d}), cache.k(li), cache.v(li), i32(gb.slots, {T})});
    }
    const Tensor attn = step.attend(li, q, pos, token_seq);
    linear(ops_, o, attn.view({T, nq * d}), Ly.wo);
    ops_.add_rms_norm({x, o, Ly.post_attn_norm, eps, false});

    // Dense GeGLU MLP (2I wide on E2B's KV-shared layers: lc.intermediate_size says so).
    step.dense_mlp(li, x, a, o, Ly.ffn_norm, Ly.w_gate, Ly.w_up, Ly.w_down);
    if (lc.moe) {
      // m = RMSNorm(dense; post_1) + RMSNorm(MoE(x); post_2), the router and the experts
      // reading the post-attention residual x.
      ops_.rms_norm({o, o, Ly.post_ffn_norm_1, eps, false});
      Tensor e_in = Tensor::make(moe_in_.data(), DType::kF32, {T, H});
      Tensor e_out = Tensor::make(moe_out_.data(), DType::kF32, {T, H});
      ops_.rms_norm({e_in, x, Ly.pre_ffn_norm_2, eps, false});
      moe(Ly, x, e_in, e_out);
      ops_.add_rms_norm({o, e_out, Ly.post_ffn_norm_2, eps, false});
    }
    ops_.add_rms_norm({x, o, Ly.post_ffn_norm, eps, false});

    // PLE: x += RMSNorm(W_proj (gelu(W_gate x) * ple[l])).
    if (lc.has_ple) {
      Tensor g = Tensor::make(ple_gate_.data(), DType::kF32, {T, P});
      Tensor gp = Tensor::make(ple_gate_.data() + static_cast<size_t>(T) * P, DType::kF32, {T, P});
      linear(ops_, g, x, Ly.ple_gate);
      ops_.geglu(
          {gp, g, strided_rows(Tensor::make(ple, DType::kF32, {T, L * P}), li * P, T, P, L * P)});
      linear(ops_, o, gp, Ly.ple_proj);
      ops_.add_rms_norm({x, o, Ly.ple_post_norm, eps, false});
    }
    if (c.layer_scalar) ops_.scale({x, Ly.layer_scalar});
    observe("layer", li, x);
  }

  // Logits only where a token is sampled: gather those rows (already the first R rows, in
  // order, once compacted), norm them, run the tied head.
  if (R == 0) return Status::ok();
  for (int i = 0; i < R; ++i) {
    const size_t row =
        compacted ? static_cast<size_t>(i) : static_cast<size_t>(batch.logit_rows[i]);
    std::copy_n(s_.x.data() + row * H, H, s_.o.data() + static_cast<size_t>(i) * H);
  }
  Tensor rows = Tensor::make(s_.o.data(), DType::kF32, {R, H});
  Tensor y = Tensor::make(s_.a.data(), DType::kF32, {R, H});
  ops_.rms_norm({y, rows, final_norm_, eps, false});
  observe("final_norm", -1, y);
  Tensor out = Tensor::make(logits.data(), DType::kF32, {R, c.vocab_size});
  ops_.matmul({out, y, embed_});
  if (c.final_logit_softcap > 0) ops_.softcap({out, c.final_logit_softcap});
  return Status::ok();
}

}  // namespace sluice::models
