#include "engine/models/weight_binder.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "common/half.h"
#include "engine/weights/weight_source.h"

namespace sluice::models {
namespace {

struct RoleNames {
  const char* gguf;  // under "blk.N." for layer tensors
  const char* hf;    // under "<prefix>layers.N." for layer tensors
};

RoleNames role_names(TensorRole role) {
  switch (role) {
    case TensorRole::kTokenEmbedding: return {"token_embd.weight", "embed_tokens.weight"};
    case TensorRole::kFinalNorm: return {"output_norm.weight", "norm.weight"};
    case TensorRole::kAttnNorm: return {"attn_norm.weight", "input_layernorm.weight"};
    case TensorRole::kQProj: return {"attn_q.weight", "self_attn.q_proj.weight"};
    case TensorRole::kKProj: return {"attn_k.weight", "self_attn.k_proj.weight"};
    case TensorRole::kVProj: return {"attn_v.weight", "self_attn.v_proj.weight"};
    case TensorRole::kOProj: return {"attn_output.weight", "self_attn.o_proj.weight"};
    case TensorRole::kQNorm: return {"attn_q_norm.weight", "self_attn.q_norm.weight"};
    case TensorRole::kKNorm: return {"attn_k_norm.weight", "self_attn.k_norm.weight"};
    case TensorRole::kPostAttnNorm: return {"post_attention_norm.weight", "post_attention_layernorm.weight"};
    case TensorRole::kFfnNorm: return {"ffn_norm.weight", "pre_feedforward_layernorm.weight"};
    case TensorRole::kGateProj: return {"ffn_gate.weight", "mlp.gate_proj.weight"};
    case TensorRole::kUpProj: return {"ffn_up.weight", "mlp.up_proj.weight"};
    case TensorRole::kDownProj: return {"ffn_down.weight", "mlp.down_proj.weight"};
    case TensorRole::kPostFfnNorm: return {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"};
    case TensorRole::kPleEmbedding: return {"per_layer_token_embd.weight", "embed_tokens_per_layer.weight"};
    case TensorRole::kPleModelProjection: return {"per_layer_model_proj.weight", "per_layer_model_projection.weight"};
    case TensorRole::kPleProjectionNorm: return {"per_layer_proj_norm.weight", "per_layer_projection_norm.weight"};
    case TensorRole::kPleGate: return {"inp_gate.weight", "per_layer_input_gate.weight"};
    case TensorRole::kPleProjection: return {"proj.weight", "per_layer_projection.weight"};
    case TensorRole::kPlePostNorm: return {"post_norm.weight", "post_per_layer_input_norm.weight"};
    case TensorRole::kLayerScalar: return {"layer_output_scale.weight", "layer_scalar"};
    case TensorRole::kPostFfnNorm1: return {"post_ffw_norm_1.weight", "post_feedforward_layernorm_1.weight"};
    case TensorRole::kPreFfnNorm2: return {"pre_ffw_norm_2.weight", "pre_feedforward_layernorm_2.weight"};
    case TensorRole::kPostFfnNorm2: return {"post_ffw_norm_2.weight", "post_feedforward_layernorm_2.weight"};
    case TensorRole::kRouterProj: return {"ffn_gate_inp.weight", "router.proj.weight"};
    case TensorRole::kRouterScale: return {"ffn_gate_inp.scale", "router.scale"};
    case TensorRole::kRouterPerExpertScale: return {"ffn_down_exps.scale", "router.per_expert_scale"};
    case TensorRole::kExpertsGateUp: return {"ffn_gate_up_exps.weight", "experts.gate_up_proj"};
    case TensorRole::kExpertsDown: return {"ffn_down_exps.weight", "experts.down_proj"};
  }
  return {"", ""};
}

// The quantized-kernel type of a stored dtype, or nullopt for dense types.
std::optional<kernels::cpu::QuantType> quant_type_of(weights::SourceDType t) {
  using weights::SourceDType;
  using kernels::cpu::QuantType;
  switch (t) {
    case SourceDType::kQ4_0: return QuantType::kQ4_0;
    case SourceDType::kQ4_1: return QuantType::kQ4_1;
    case SourceDType::kQ5_0: return QuantType::kQ5_0;
    case SourceDType::kQ5_1: return QuantType::kQ5_1;
    case SourceDType::kQ8_0: return QuantType::kQ8_0;
    case SourceDType::kQ4_K: return QuantType::kQ4_K;
    case SourceDType::kQ5_K: return QuantType::kQ5_K;
    case SourceDType::kQ6_K: return QuantType::kQ6_K;
    default: return std::nullopt;
  }
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

WeightBinder::WeightBinder(std::shared_ptr<weights::WeightSource> source, bool keep_bf16)
    : source_(std::move(source)), keep_bf16_(keep_bf16) {
  is_gguf_ = source_->format() == weights::WeightSource::Format::kGguf;
  if (!is_gguf_) {
    // Text-only checkpoints use "model."; multimodal ones nest the text model.
    for (const char* p : {"model.", "model.language_model.", "language_model.model."}) {
      if (source_->find(std::string(p) + "embed_tokens.weight") != nullptr) {
        hf_prefix_ = p;
        break;
      }
    }
    if (hf_prefix_.empty()) hf_prefix_ = "model.";
  }
}

WeightBinder::WeightBinder(WeightBinder&&) noexcept = default;
WeightBinder& WeightBinder::operator=(WeightBinder&&) noexcept = default;
WeightBinder::~WeightBinder() = default;

std::string WeightBinder::tensor_name(TensorRole role, int layer) const {
  RoleNames n = role_names(role);
  if (is_gguf_) return layer < 0 ? std::string(n.gguf) : fmt::format("blk.{}.{}", layer, n.gguf);
  return layer < 0 ? hf_prefix_ + n.hf : fmt::format("{}layers.{}.{}", hf_prefix_, layer, n.hf);
}

StatusOr<kernels::Tensor> WeightBinder::bind(TensorRole role, int layer, std::vector<int64_t> shape,
                                             bool allow_bf16) {
  std::string name = tensor_name(role, layer);
  SLUICE_ASSIGN_OR_RETURN(const weights::WeightInfo* info, source_->get(name));
  if (info->shape != shape) {
    return Status::data_loss(fmt::format("{}: tensor '{}' has shape {} but the config implies {}",
                                         source_->path(), name, info->shape_string(), shape_str(shape)));
  }
  kernels::DType want = allow_bf16 && keep_bf16_ && info->dtype == weights::SourceDType::kBF16
                            ? kernels::DType::kBF16
                            : kernels::DType::kF32;
  auto loaded = weights::load_as(*info, want);
  if (!loaded.is_ok()) return loaded.status();
  auto owned = std::make_unique<weights::OwnedTensor>(std::move(*loaded));
  (owned->borrowed ? mapped_bytes_ : owned_bytes_) += owned->tensor.nbytes();
  kernels::Tensor t = owned->tensor;
  owned_.push_back(std::move(owned));
  return t;
}

StatusOr<kernels::Tensor> WeightBinder::matrix(TensorRole role, int layer, int64_t rows, int64_t cols) {
  return bind(role, layer, {rows, cols}, /*allow_bf16=*/true);
}

StatusOr<LinearWeight> WeightBinder::linear(TensorRole role, int layer, int64_t rows, int64_t cols) {
  LinearWeight w;
  if (keep_quantized_ && is_gguf_) {
    SLUICE_ASSIGN_OR_RETURN(const weights::WeightInfo* info, source_->get(tensor_name(role, layer)));
    std::optional<kernels::cpu::QuantType> qt = quant_type_of(info->dtype);
    if (qt && info->shape == std::vector<int64_t>{rows, cols} &&
        kernels::cpu::quant_row_bytes(*qt, cols) > 0 &&
        static_cast<uint64_t>(kernels::cpu::quant_row_bytes(*qt, cols) * rows) == info->nbytes) {
      w.quant = {info->data, *qt, rows, cols, kernels::cpu::quant_row_bytes(*qt, cols)};
      mapped_bytes_ += info->nbytes;
      return w;
    }
  }
  SLUICE_ASSIGN_OR_RETURN(w.dense, matrix(role, layer, rows, cols));
  w.bf16_dot = keep_quantized_ && w.dense.dtype == kernels::DType::kBF16 &&
               kernels::cpu::bf16_dot_available();
  return w;
}

StatusOr<const weights::WeightInfo*> WeightBinder::info(TensorRole role, int layer) const {
  return source_->get(tensor_name(role, layer));
}

StatusOr<kernels::Tensor> WeightBinder::vector(TensorRole role, int layer, int64_t n) {
  return bind(role, layer, {n}, /*allow_bf16=*/false);
}

StatusOr<kernels::Tensor> WeightBinder::tensor(TensorRole role, int layer, std::vector<int64_t> shape) {
  return bind(role, layer, std::move(shape), /*allow_bf16=*/true);
}

bool WeightBinder::has(TensorRole role, int layer) const {
  return source_->find(tensor_name(role, layer)) != nullptr;
}

float WeightBinder::embedding_scale(int hidden_size) const {
  return scale_for(TensorRole::kTokenEmbedding,
                   static_cast<float>(std::sqrt(static_cast<double>(hidden_size))));
}

float WeightBinder::scale_for(TensorRole role, float value) const {
  const weights::WeightInfo* info = source_->find(tensor_name(role, -1));
  if (info == nullptr || is_gguf_) return value;
  if (info->dtype == weights::SourceDType::kBF16) return bf16_to_f32(f32_to_bf16(value));
  if (info->dtype == weights::SourceDType::kF16) return f16_to_f32(f32_to_f16(value));
  return value;
}

}  // namespace sluice::models
