#include "engine/models_cuda/cuda_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/half.h"
#include "engine/models_cuda/tensor_views.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/matmul.h"

namespace sluice::models::cuda {

using kernels::DType;
using kernels::Tensor;
namespace kc = kernels::cuda;

StatusOr<std::unique_ptr<CudaGemma3Model>> CudaGemma3Model::load(ModelConfig config,
                                                                 WeightBinder binder,
                                                                 const CudaModelOptions& options) {
  return create(std::move(config), &binder, 0, options);
}

StatusOr<std::unique_ptr<CudaGemma3Model>> CudaGemma3Model::synthetic(
    ModelConfig config, uint64_t seed, const CudaModelOptions& options) {
  return create(std::move(config), nullptr, seed, options);
}

StatusOr<std::unique_ptr<CudaGemma3Model>> CudaGemma3Model::create(
    ModelConfig config, WeightBinder* binder, uint64_t seed, const CudaModelOptions& options) {
  if (config.arch != Arch::kGemma3) {
    return Status::unimplemented(
        fmt::format("CudaGemma3Model runs Gemma 3 models; this is {} "
                    "(Gemma 4 runs on CudaGemma4Model)",
                    arch_name(config.arch)));
  }
  std::unique_ptr<CudaGemma3Model> m(new CudaGemma3Model());
  SLUICE_RETURN_IF_ERROR(m->build(std::move(config), options, binder, seed));
  return m;
}

Status CudaGemma3Model::init_weights() {
  ModelConfig& c = config_;
  const int64_t H = c.hidden_size, V = c.vocab_size, nq = c.num_heads;
  SLUICE_ASSIGN_OR_RETURN(
      embed_, upload_matrix({TensorRole::kTokenEmbedding}, -1, {V}, H, 0.1f, "token embeddings"));
  SLUICE_ASSIGN_OR_RETURN(final_norm_, upload_norm(TensorRole::kFinalNorm, -1, H, "final norm"));
  layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const int64_t d = c.layers[i].head_dim, nkv = c.layers[i].num_kv_heads;
    SLUICE_RETURN_IF_ERROR(upload_dense_layer(
        i, {TensorRole::kQProj, TensorRole::kKProj, TensorRole::kVProj}, {nq * d, nkv * d, nkv * d},
        /*with_k_norm=*/true, &layers_[i]));
  }
  // As on the CPU: HF rounds sqrt(H) to the embedding's stored dtype (docs/numerics.md).
  c.embed_scale = binder() != nullptr
                      ? binder()->embedding_scale(c.hidden_size)
                      : bf16_to_f32(f32_to_bf16(std::sqrt(static_cast<float>(c.hidden_size))));
  return Status::ok();
}

Status CudaGemma3Model::allocate_scratch() {
  const ModelConfig& c = config_;
  const int64_t nq = c.num_heads;
  int64_t qkv_w = 0, I = 0, dmax = 0;
  for (const LayerConfig& l : c.layers) {
    qkv_w = std::max<int64_t>(qkv_w, (nq + 2 * l.num_kv_heads) * l.head_dim);
    I = std::max<int64_t>(I, l.intermediate_size);
    dmax = std::max<int64_t>(dmax, l.head_dim);
  }
  SLUICE_RETURN_IF_ERROR(allocate_layer_scratch(qkv_w, I, dmax));
  return allocate_step_buffers(static_cast<int>(nq), static_cast<int>(dmax));
}

void CudaGemma3Model::enqueue(const StepLayout& L) {
  const ModelConfig& c = config_;
  const int T = L.T;
  const Tensor tokens = step_ints(L.o_tokens, T);

  const int64_t H = c.hidden_size, nq = c.num_heads;
  const float eps = c.rms_norm_eps;
  const bool one_plus = c.norm_one_plus_weight;
  const Tensor x = dev_contig(x_.data(), DType::kF32, {T, H});
  const Tensor a = dev_contig(a_.data(), DType::kBF16, {T, H});
  const Tensor o = dev_contig(o_.data(), DType::kF32, {T, H});
  void* s = stream_;

  section("embedding");
  kc::embedding({x, embed_, tokens, c.embed_scale}, s);
  kc::rms_norm({a, x, layers_[0].attn_norm, eps, one_plus}, s);
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    const Layer& ly = layers_[li];
    const int64_t d = lc.head_dim, nkv = lc.num_kv_heads, I = lc.intermediate_size;
    const int64_t w = (nq + 2 * nkv) * d;

    const Tensor qkv = dev_contig(qkv_.data(), DType::kBF16, {T, w});
    section("qkv projection");
    kc::matmul({qkv, a, ly.wqkv}, s);
    const Tensor attn = dev_contig(attn_.data(), DType::kBF16, {T, nq, d});
    section(lc.type == LayerType::kSliding ? "attention (sliding)" : "attention (global)");
    enqueue_attention(L, {li, true, false, false, ly.q_norm, ly.k_norm}, qkv, attn);
    section("o projection, post-attention norms");
    kc::matmul({o, attn.view({T, nq * d}), ly.wo}, s);
    kc::fused_add_rms_norm({x, o, ly.post_attn_norm, a, ly.ffn_norm, eps, one_plus}, s);

    const Tensor act = dev_contig(act_.data(), DType::kBF16, {T, I});
    section("dense MLP");
    enqueue_gate_up(a, ly.wgu, act, gu_.data());
    kc::matmul({o, act, ly.w_down}, s);
    section("layer tail");
    if (li + 1 < c.num_layers) {
      kc::fused_add_rms_norm({x, o, ly.post_ffn_norm, a, layers_[li + 1].attn_norm, eps, one_plus},
                             s);
    } else {
      kc::add_rms_norm({x, o, ly.post_ffn_norm, eps, one_plus}, s);
    }
  }
  section("head (norm, logits, argmax)");
  enqueue_head(L, x, embed_, final_norm_);
}

}  // namespace sluice::models::cuda
