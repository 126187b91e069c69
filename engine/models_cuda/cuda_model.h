#pragma once
// CudaGemma3Model: the Gemma 3 forward pass (engine/models/gemma3.cpp is the CPU twin) on one
// NVIDIA GPU. Weights live on the device in bf16, uploaded once; the residual stream is f32,
// GEMM inputs bf16 with f32 accumulation; the paged KV cache is bf16 and owned here (one
// buffer per layer, the KV groups of kv_group_layouts()).
//
// Staging, the KV pool, the head and the decode graphs are CudaModelBase's
// (cuda_model_base.h); this class holds the Gemma 3 weights and the kernels of one step.
//
// Data flow of one layer (T tokens, d head dim, I intermediate):
//   x f32 [T,H] -> rms_norm -> a bf16 -> a.Wqkv^T -> qkv bf16 [T,(nq+2nkv)d] -> QK-norm, RoPE
//   (in place) -> cache_write K,V -> paged attention -> attn bf16 [T,nq,d] -> attn.Wo^T -> o f32
//   -> x += norm(o); a = norm(x) (one fused pass) -> a.Wgu^T -> gu bf16 [T,2I] -> GeGLU -> act
//   bf16 [T,I] -> act.Wdown^T -> o f32 -> x += norm(o); a = norm(x) for the next layer.

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "engine/models/model.h"
#include "engine/models/weight_binder.h"
#include "engine/models_cuda/cuda_model_base.h"
#include "engine/models_cuda/device_memory.h"

namespace sluice::models::cuda {

class CudaGemma3Model final : public CudaModelBase {
 public:
  // Uploads every tensor `binder` binds (shapes checked against `config`), allocates scratch
  // for the options' largest step and the KV pool. RESOURCE_EXHAUSTED names what did not fit.
  static StatusOr<std::unique_ptr<CudaGemma3Model>> load(ModelConfig config, WeightBinder binder,
                                                         const CudaModelOptions& options);
  // A model of `config`'s shapes whose weights are drawn on the device from `seed`
  // (kernels/cuda/random_fill.h: matrices uniform in +-sqrt(3 / fan_in), embeddings +-0.1,
  // norm weights +-0.2), for benchmarks at any size without a checkpoint.
  static StatusOr<std::unique_ptr<CudaGemma3Model>> synthetic(ModelConfig config, uint64_t seed,
                                                              const CudaModelOptions& options);

 private:
  using Layer = DenseLayer;
  CudaGemma3Model() = default;
  static StatusOr<std::unique_ptr<CudaGemma3Model>> create(ModelConfig config, WeightBinder* binder,
                                                           uint64_t seed,
                                                           const CudaModelOptions& options);
  Status init_weights() override;
  Status allocate_scratch() override;
  void enqueue(const StepLayout& layout) override;

  kernels::Tensor embed_, final_norm_;
  std::vector<Layer> layers_;
};

}  // namespace sluice::models::cuda
