#include "engine/models_cuda/cuda_gemma4.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/half.h"
#include "engine/models_cuda/tensor_views.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/moe.h"

namespace sluice::models::cuda {

using kernels::DType;
using kernels::Tensor;
namespace kc = kernels::cuda;

namespace {

// Rows of Q, K and V one layer's fused projection produces, in heads: Q always; K on layers
// that own their K/V; V too unless the layer is K=V.
int64_t qkv_heads(const ModelConfig& c, const LayerConfig& lc) {
  if (!lc.owns_kv()) return c.num_heads;
  return c.num_heads + lc.num_kv_heads * (lc.k_eq_v ? 1 : 2);
}

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

}  // namespace

StatusOr<std::unique_ptr<CudaGemma4Model>> CudaGemma4Model::load(ModelConfig config,
                                                                 WeightBinder binder,
                                                                 const CudaModelOptions& options) {
  return create(std::move(config), &binder, 0, options);
}

StatusOr<std::unique_ptr<CudaGemma4Model>> CudaGemma4Model::synthetic(
    ModelConfig config, uint64_t seed, const CudaModelOptions& options) {
  return create(std::move(config), nullptr, seed, options);
}

Status CudaGemma4Model::check_supported(const ModelConfig& c) {
  if (c.arch != Arch::kGemma4) {
    return Status::unimplemented(
        fmt::format("CudaGemma4Model runs Gemma 4 models; this is {} "
                    "(Gemma 3 runs on CudaGemma3Model)",
                    arch_name(c.arch)));
  }
  if (c.hidden_size_per_layer_input > 0 && c.vocab_size_per_layer_input < c.vocab_size) {
    // The reference maps ids past the PLE table to its row 0; the CUDA embedding writes zeros.
    return Status::unimplemented(
        fmt::format("the CUDA backend needs the per-layer embedding table to cover the vocabulary; "
                    "it has {} rows "
                    "for a vocabulary of {}",
                    c.vocab_size_per_layer_input, c.vocab_size));
  }
  if (c.enable_moe_block) {
    const int E = c.num_experts, k = c.top_k_experts, I = c.moe_intermediate_size;
    if (E > kc::moe_internal::kMaxRouteExperts || k > kc::moe_internal::kMaxTopK || k > E ||
        c.hidden_size % 8 != 0 || I % 8 != 0) {
      return Status::unimplemented(fmt::format(
          "the CUDA MoE kernels take up to {} experts, top-k up to {}, and hidden and expert sizes "
          "that "
          "are multiples of 8; this model has {} experts, top-k {}, hidden {}, expert size {}",
          kc::moe_internal::kMaxRouteExperts, kc::moe_internal::kMaxTopK, E, k, c.hidden_size, I));
    }
  }
  return Status::ok();
}

StatusOr<std::unique_ptr<CudaGemma4Model>> CudaGemma4Model::create(
    ModelConfig config, WeightBinder* binder, uint64_t seed, const CudaModelOptions& options) {
  SLUICE_RETURN_IF_ERROR(check_supported(config));
  std::unique_ptr<CudaGemma4Model> m(new CudaGemma4Model());
  SLUICE_RETURN_IF_ERROR(m->build(std::move(config), options, binder, seed));
  return m;
}

Status CudaGemma4Model::init_weights() {
  ModelConfig& c = config_;
  const int64_t H = c.hidden_size, V = c.vocab_size, nq = c.num_heads, L = c.num_layers,
                P = c.hidden_size_per_layer_input;
  auto fan_in = [](int64_t k) { return std::sqrt(3.0f / static_cast<float>(k)); };
  auto norm = [&](TensorRole role, int layer, int64_t n, std::string_view what) {
    return upload_norm(role, layer, n, what);  // Gemma 4 multiplies by w: near 1
  };
  SLUICE_ASSIGN_OR_RETURN(
      embed_, upload_matrix({TensorRole::kTokenEmbedding}, -1, {V}, H, 0.1f, "token embeddings"));
  SLUICE_ASSIGN_OR_RETURN(final_norm_, norm(TensorRole::kFinalNorm, -1, H, "final norm"));
  if (P > 0) {
    SLUICE_ASSIGN_OR_RETURN(
        ple_embed_, upload_matrix({TensorRole::kPleEmbedding}, -1, {c.vocab_size_per_layer_input},
                                  L * P, 0.1f, "per-layer embeddings"));
    SLUICE_ASSIGN_OR_RETURN(
        ple_model_proj_, upload_matrix({TensorRole::kPleModelProjection}, -1, {L * P}, H, fan_in(H),
                                       "per-layer input projection"));
    SLUICE_ASSIGN_OR_RETURN(ple_proj_norm_,
                            norm(TensorRole::kPleProjectionNorm, -1, P, "per-layer input norm"));
    const float sqrt_p = static_cast<float>(std::sqrt(static_cast<double>(P)));
    ple_embed_scale_ = binder() != nullptr ? binder()->scale_for(TensorRole::kPleEmbedding, sqrt_p)
                                           : round_bf16(sqrt_p);
  }
  layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerConfig& lc = c.layers[i];
    const int64_t d = lc.head_dim, nkv = lc.num_kv_heads;
    Layer& Ly = layers_[i];
    const std::string what = fmt::format("layer {} weights", i);
    // KV-shared layers read their source's cache: whatever K/V weights a checkpoint carries
    // for them are never bound. K=V layers have no v_proj.
    std::vector<TensorRole> roles = {TensorRole::kQProj};
    std::vector<int64_t> rows = {nq * d};
    if (lc.owns_kv()) {
      roles.push_back(TensorRole::kKProj);
      rows.push_back(nkv * d);
      if (!lc.k_eq_v) {
        roles.push_back(TensorRole::kVProj);
        rows.push_back(nkv * d);
      }
    }
    SLUICE_RETURN_IF_ERROR(upload_dense_layer(i, roles, rows, lc.owns_kv(), &Ly));
    if (c.layer_scalar) {
      SLUICE_ASSIGN_OR_RETURN(std::vector<float> s,
                              read_vector(TensorRole::kLayerScalar, i, 1, 1.0f));
      Ly.layer_scalar = s[0];
    }
    if (lc.has_ple) {
      SLUICE_ASSIGN_OR_RETURN(Ly.ple_gate,
                              upload_matrix({TensorRole::kPleGate}, i, {P}, H, fan_in(H), what));
      SLUICE_ASSIGN_OR_RETURN(
          Ly.ple_proj, upload_matrix({TensorRole::kPleProjection}, i, {H}, P, fan_in(P), what));
      SLUICE_ASSIGN_OR_RETURN(Ly.ple_post_norm, norm(TensorRole::kPlePostNorm, i, H, what));
    }
    if (lc.moe) {
      const int64_t E = c.num_experts, Im = c.moe_intermediate_size;
      SLUICE_ASSIGN_OR_RETURN(Ly.post_ffn_norm_1, norm(TensorRole::kPostFfnNorm1, i, H, what));
      SLUICE_ASSIGN_OR_RETURN(Ly.pre_ffn_norm_2, norm(TensorRole::kPreFfnNorm2, i, H, what));
      SLUICE_ASSIGN_OR_RETURN(Ly.post_ffn_norm_2, norm(TensorRole::kPostFfnNorm2, i, H, what));
      SLUICE_ASSIGN_OR_RETURN(Ly.router_proj, upload_matrix({TensorRole::kRouterProj}, i, {E}, H,
                                                            fan_in(H), what, DType::kF32));
      SLUICE_ASSIGN_OR_RETURN(Ly.router_scale, norm(TensorRole::kRouterScale, i, H, what));
      SLUICE_ASSIGN_OR_RETURN(Ly.per_expert_scale,
                              norm(TensorRole::kRouterPerExpertScale, i, E, what));
      SLUICE_ASSIGN_OR_RETURN(Ly.experts_gate_up, upload_tensor(TensorRole::kExpertsGateUp, i,
                                                                {E, 2 * Im, H}, fan_in(H), what));
      SLUICE_ASSIGN_OR_RETURN(Ly.experts_down, upload_tensor(TensorRole::kExpertsDown, i,
                                                             {E, H, Im}, fan_in(Im), what));
    }
  }
  // The router's H^-0.5 folded into its norm weight (one f32 product per element). The
  // uploads above ran on the legacy stream; the model's stream does not wait for it.
  SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
  for (Layer& Ly : layers_) {
    if (Ly.router_scale.defined()) {
      kc::scale({Ly.router_scale, static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)))},
                stream_);
    }
  }
  // As on the CPU: sqrt(H) rounded to the embedding's stored dtype (docs/numerics.md).
  c.embed_scale = binder() != nullptr ? binder()->embedding_scale(c.hidden_size)
                                      : round_bf16(std::sqrt(static_cast<float>(c.hidden_size)));
  return Status::ok();
}

Status CudaGemma4Model::allocate_scratch() {
  const ModelConfig& c = config_;
  const int64_t T = options_.max_num_tokens;
  const int64_t H = c.hidden_size, nq = c.num_heads, L = c.num_layers,
                P = c.hidden_size_per_layer_input;
  int64_t qkv_w = 0, I = 0, dmax = 0;
  for (const LayerConfig& l : c.layers) {
    qkv_w = std::max<int64_t>(qkv_w, qkv_heads(c, l) * l.head_dim);
    I = std::max<int64_t>(I, l.intermediate_size);
    dmax = std::max<int64_t>(dmax, l.head_dim);
  }
  auto bytes = [](int64_t n, int64_t elem) { return static_cast<size_t>(n * elem); };
  SLUICE_RETURN_IF_ERROR(allocate_layer_scratch(qkv_w, I, dmax));
  if (P > 0) {
    SLUICE_RETURN_IF_ERROR(allocate(&ple_, bytes(T * L * P, 4), "per-layer inputs"));
    SLUICE_RETURN_IF_ERROR(allocate(&ple_tok_, bytes(T * L * P, 4), "per-layer token embeddings"));
    SLUICE_RETURN_IF_ERROR(allocate(&ple_g_, bytes(T * P, 2), "per-layer gate"));
    SLUICE_RETURN_IF_ERROR(allocate(&ple_gp_, bytes(T * P, 2), "per-layer gated input"));
  }
  if (c.enable_moe_block) {
    const int64_t E = c.num_experts, k = c.top_k_experts, Im = c.moe_intermediate_size;
    SLUICE_RETURN_IF_ERROR(allocate(&router_in_, bytes(T * H, 4), "router input"));
    SLUICE_RETURN_IF_ERROR(allocate(&router_logits_, bytes(T * E, 4), "router logits"));
    SLUICE_RETURN_IF_ERROR(allocate(&topk_experts_, bytes(T * k, 4), "chosen experts"));
    SLUICE_RETURN_IF_ERROR(allocate(&topk_weights_, bytes(T * k, 4), "expert weights"));
    SLUICE_RETURN_IF_ERROR(allocate(&moe_in_, bytes(T * H, 2), "expert input"));
    SLUICE_RETURN_IF_ERROR(allocate(&moe_out_, bytes(T * H, 4), "expert output"));
    moe_ws_bytes_ = kc::moe_workspace_bytes(T, H, Im, E, static_cast<int>(k));
    if (moe_ws_bytes_ == SIZE_MAX) {
      return Status::resource_exhausted(fmt::format(
          "GPU memory: the MoE workspace for {} tokens overflows; lower max_num_tokens", T));
    }
    moe_ws_bytes_ = (moe_ws_bytes_ + 15) / 16 * 16;  // viewed as f32 below
    SLUICE_RETURN_IF_ERROR(allocate(&moe_ws_, moe_ws_bytes_, "MoE workspace"));
  }
  return allocate_step_buffers(static_cast<int>(nq), static_cast<int>(dmax));
}

uint64_t CudaGemma4Model::active_weight_bytes_per_token() const {
  const ModelConfig& c = config_;
  auto b = [](const Tensor& t) -> uint64_t { return t.defined() ? t.nbytes() : 0; };
  uint64_t total = b(embed_) + b(final_norm_) + b(ple_model_proj_) + b(ple_proj_norm_);
  for (const Layer& ly : layers_) {
    total += b(ly.attn_norm) + b(ly.wqkv) + b(ly.wo) + b(ly.q_norm) + b(ly.k_norm) +
             b(ly.post_attn_norm) + b(ly.ffn_norm) + b(ly.wgu) + b(ly.w_down) +
             b(ly.post_ffn_norm) + b(ly.ple_gate) + b(ly.ple_proj) + b(ly.ple_post_norm) +
             b(ly.post_ffn_norm_1) + b(ly.pre_ffn_norm_2) + b(ly.post_ffn_norm_2) +
             b(ly.router_proj) + b(ly.router_scale) + b(ly.per_expert_scale);
    if (ly.experts_gate_up.defined()) {
      total += (b(ly.experts_gate_up) + b(ly.experts_down)) / c.num_experts * c.top_k_experts;
    }
  }
  return total;
}

void CudaGemma4Model::enqueue_per_layer_inputs(const Tensor& x, const Tensor& tokens, int T) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, L = c.num_layers, P = c.hidden_size_per_layer_input;
  void* s = stream_;
  // Context part: norm((x0 . W^T) * H^-0.5) over each layer's P-slice.
  const Tensor xb = dev_contig(a_.data(), DType::kBF16, {T, H});
  kc::convert({xb, x}, s);
  const Tensor ctx = dev_contig(ple_.data(), DType::kF32, {T, L * P});
  kc::matmul({ctx, xb, ple_model_proj_}, s);
  kc::scale({ctx, static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)))}, s);
  const Tensor slices = dev_contig(ple_.data(), DType::kF32, {T * L, P});
  kc::rms_norm({slices, slices, ple_proj_norm_, c.rms_norm_eps, c.norm_one_plus_weight}, s);
  // Token part (validation keeps ids below vocab_size <= the table's rows).
  const Tensor tok = dev_contig(ple_tok_.data(), DType::kF32, {T, L * P});
  kc::embedding({tok, ple_embed_, tokens, ple_embed_scale_}, s);
  kc::add({ctx, ctx, tok}, s);
  kc::scale({ctx, static_cast<float>(1.0 / std::sqrt(2.0))}, s);
}

Tensor CudaGemma4Model::enqueue_moe(const Layer& ly, const Tensor& x, int T) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, E = c.num_experts, k = c.top_k_experts;
  const float eps = c.rms_norm_eps;
  const bool one_plus = c.norm_one_plus_weight;
  void* s = stream_;
  // Both inputs in one pass over x: the router's, norm0(x) * scale * H^-0.5 (folded into
  // router_scale), in f32 like the CPU model's routing, and the experts', norm(x; pre_2), in
  // bf16. The router's logits: an f32 GEMM over f32 weights, so near-ties pick the CPU's
  // experts.
  const Tensor r_in = dev_contig(router_in_.data(), DType::kF32, {T, H});
  const Tensor e_in = dev_contig(moe_in_.data(), DType::kBF16, {T, H});
  kc::rms_norm2({r_in, e_in, x, ly.router_scale, ly.pre_ffn_norm_2, eps, one_plus}, s);
  const Tensor logits = dev_contig(router_logits_.data(), DType::kF32, {T, E});
  kc::matmul({logits, r_in, ly.router_proj}, s);
  const Tensor experts = dev_contig(topk_experts_.data(), DType::kI32, {T, k});
  const Tensor weights = dev_contig(topk_weights_.data(), DType::kF32, {T, k});
  kc::moe_route({logits, ly.per_expert_scale, experts, weights, static_cast<int>(k)}, s);
  const Tensor e_out = dev_contig(moe_out_.data(), DType::kF32, {T, H});
  const Tensor ws = dev_contig(moe_ws_.data(), DType::kF32,
                               {static_cast<int64_t>(std::max<size_t>(moe_ws_bytes_ / 4, 1))});
  kc::moe_experts({e_out, e_in, experts, weights, ly.experts_gate_up, ly.experts_down, ws}, s);
  return e_out;
}

void CudaGemma4Model::enqueue(const StepLayout& L) {
  const ModelConfig& c = config_;
  const int T = L.T;
  const Tensor tokens = step_ints(L.o_tokens, T);

  const int64_t H = c.hidden_size, nq = c.num_heads, NL = c.num_layers,
                P = c.hidden_size_per_layer_input;
  const float eps = c.rms_norm_eps;
  const bool one_plus = c.norm_one_plus_weight;
  const Tensor x = dev_contig(x_.data(), DType::kF32, {T, H});
  const Tensor a = dev_contig(a_.data(), DType::kBF16, {T, H});
  const Tensor o = dev_contig(o_.data(), DType::kF32, {T, H});
  void* s = stream_;

  section("embedding (and PLE inputs)");
  kc::embedding({x, embed_, tokens, c.embed_scale}, s);
  if (P > 0) enqueue_per_layer_inputs(x, tokens, T);
  kc::rms_norm({a, x, layers_[0].attn_norm, eps, one_plus}, s);
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    const Layer& ly = layers_[li];
    const int64_t d = lc.head_dim, I = lc.intermediate_size;
    const int64_t w = qkv_heads(c, lc) * d;

    // Attention: Q always; K/V only on layers that own them (V-normed; on K=V layers V is
    // the raw K projection).
    const Tensor qkv = dev_contig(qkv_.data(), DType::kBF16, {T, w});
    section("qkv projection");
    kc::matmul({qkv, a, ly.wqkv}, s);
    const Tensor attn = dev_contig(attn_.data(), DType::kBF16, {T, nq, d});
    section(lc.type == LayerType::kSliding ? "attention (sliding)" : "attention (global)");
    enqueue_attention(L, {li, lc.owns_kv(), lc.k_eq_v, true, ly.q_norm, ly.k_norm}, qkv, attn);
    section("o projection, post-attention norms");
    kc::matmul({o, attn.view({T, nq * d}), ly.wo}, s);
    kc::fused_add_rms_norm({x, o, ly.post_attn_norm, a, ly.ffn_norm, eps, one_plus}, s);

    // Dense GeGLU MLP (2I wide on E2B's KV-shared layers: lc.intermediate_size says so).
    const Tensor act = dev_contig(act_.data(), DType::kBF16, {T, I});
    section("dense MLP");
    enqueue_gate_up(a, ly.wgu, act, gu_.data());
    kc::matmul({o, act, ly.w_down}, s);

    // The layer's last residual add, fused with what surrounds it (residual_tail): the
    // feed-forward's (on MoE layers of norm1(MLP) + norm2(experts)), or the PLE's after it;
    // then layer_scalar and the next layer's input norm.
    kc::ResidualTailArgs tail;
    tail.residual = x;
    tail.in = o;
    tail.weight = ly.post_ffn_norm;
    tail.eps = eps;
    tail.one_plus_weight = one_plus;
    if (lc.moe) {
      section("MoE (router, experts)");
      tail.in2 = enqueue_moe(ly, x, T);
      tail.in_weight = ly.post_ffn_norm_1;
      tail.in2_weight = ly.post_ffn_norm_2;
    }

    // PLE: x += norm(W_proj (gelu(W_gate x) * ple[l])).
    if (lc.has_ple) {
      section("PLE");
      kc::residual_tail(tail, s);
      tail.in2 = tail.in_weight = tail.in2_weight = Tensor{};
      tail.weight = ly.ple_post_norm;  // in: o again, now the PLE projection
      kc::convert({a, x}, s);
      const Tensor gate = dev_contig(ple_g_.data(), DType::kBF16, {T, P});
      const Tensor gated = dev_contig(ple_gp_.data(), DType::kBF16, {T, P});
      kc::matmul({gate, a, ly.ple_gate}, s);
      const Tensor slice =
          dev_view(static_cast<float*>(ple_.data()) + li * P, DType::kF32, {T, P}, {NL * P, 1});
      kc::geglu({gated, gate, slice}, s);
      kc::matmul({o, gated, ly.ple_proj}, s);
    }
    section("layer tail");
    tail.scale = ly.layer_scalar;
    if (li + 1 < c.num_layers) {
      tail.out = a;
      tail.out_weight = layers_[li + 1].attn_norm;
    }
    kc::residual_tail(tail, s);
    if (layer_record_.data() != nullptr) {
      const size_t bytes = static_cast<size_t>(T) * H * 4;
      SLUICE_CUDA_CHECK(
          cudaMemcpyAsync(static_cast<char*>(layer_record_.data()) +
                              static_cast<size_t>(li) * options_.max_num_tokens * H * 4,
                          x.data, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s)));
    }
  }
  if (layer_record_.data() != nullptr) recorded_tokens_ = T;
  section("head (norm, logits, argmax)");
  enqueue_head(L, x, embed_, final_norm_);
}

Status CudaGemma4Model::set_record_layers(bool on) {
  recorded_tokens_ = 0;
  if (!on) {
    layer_record_.reset();
    return Status::ok();
  }
  const size_t bytes =
      static_cast<size_t>(config_.num_layers) * options_.max_num_tokens * config_.hidden_size * 4;
  return allocate(&layer_record_, bytes, "recorded layer outputs");
}

StatusOr<std::vector<float>> CudaGemma4Model::recorded_layers() const {
  if (layer_record_.data() == nullptr) {
    return Status::failed_precondition("recorded_layers: set_record_layers(true) first");
  }
  const int64_t T = recorded_tokens_, H = config_.hidden_size, NL = config_.num_layers;
  std::vector<float> out(static_cast<size_t>(NL * T * H));
  auto stream = static_cast<cudaStream_t>(stream_);
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int64_t l = 0; l < NL; ++l) {
    SLUICE_CUDA_CHECK(cudaMemcpy(out.data() + l * T * H,
                                 static_cast<const char*>(layer_record_.data()) +
                                     static_cast<size_t>(l) * options_.max_num_tokens * H * 4,
                                 static_cast<size_t>(T * H) * 4, cudaMemcpyDeviceToHost));
  }
  return out;
}

}  // namespace sluice::models::cuda
