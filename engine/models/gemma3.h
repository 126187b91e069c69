#pragma once
// Gemma 3 text decoder (gemma-models.md §1): sliding and global layers, GQA, QK-norm,
// sandwich norms, GeGLU, tied output head. Weights come from a GGUF (norms stored as w + 1)
// or a Hugging Face checkpoint (norms stored as w, applied as 1 + w).

#include <memory>

#include "engine/models/decoder_scratch.h"
#include "engine/models/model.h"
#include "engine/models/weight_binder.h"

namespace sluice::weights {
struct WeightInfo;
}  // namespace sluice::weights

namespace sluice::models {

struct Gemma3Layer {
  kernels::Tensor attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;
  LinearWeight wq, wk, wv, wo, w_gate, w_up, w_down;
};

class Gemma3Model final : public Model {
 public:
  // Binds every tensor (shapes checked against `config`) from `binder`, which keeps the
  // storage alive. `ops` must outlive the model.
  static StatusOr<std::unique_ptr<Gemma3Model>> load(ModelConfig config, WeightBinder binder,
                                                     const kernels::OpTable& ops);

  const ModelConfig& config() const override { return config_; }
  Status forward(const ForwardBatch& batch, PagedKvCache& cache, std::span<float> logits) override;

 private:
  Gemma3Model(ModelConfig config, WeightBinder binder, const kernels::OpTable& ops)
      : config_(std::move(config)), binder_(std::move(binder)), ops_(ops) {}
  void ensure_scratch(int num_tokens);
  void embed(std::span<const int32_t> tokens, const kernels::Tensor& x);

  ModelConfig config_;
  WeightBinder binder_;
  const kernels::OpTable& ops_;
  // The token table [V, H], also the tied output head. Dense in embed_, or (weights kept
  // quantized) only as head_.quant, with lookups dequantizing rows of embed_info_.
  kernels::Tensor embed_;
  LinearWeight head_;
  const weights::WeightInfo* embed_info_ = nullptr;
  kernels::Tensor final_norm_;  // [H]
  std::vector<Gemma3Layer> layers_;

  // Scratch for one forward call, sized for the largest T seen so far.
  DecoderScratch s_;
};

}  // namespace sluice::models
