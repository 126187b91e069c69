#pragma once
// WeightBinder: hands the model code its tensors by role and layer, whatever the file format.
// It maps a role to the format's tensor name (GGUF `blk.N.attn_q.weight` or HF
// `model.layers.N.self_attn.q_proj.weight`, under any of the known prefixes), checks the
// shape against the config, converts to the dtype the CPU kernels take, and keeps every
// buffer (or file mapping) alive for the model's lifetime.

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/models/linear.h"
#include "kernels/tensor.h"

namespace sluice::weights {
class WeightSource;
struct OwnedTensor;
struct WeightInfo;
}  // namespace sluice::weights

namespace sluice::models {

enum class TensorRole : uint8_t {
  kTokenEmbedding,
  kFinalNorm,
  kAttnNorm,
  kQProj,
  kKProj,
  kVProj,
  kOProj,
  kQNorm,
  kKNorm,
  kPostAttnNorm,
  kFfnNorm,
  kGateProj,
  kUpProj,
  kDownProj,
  kPostFfnNorm,
  // Gemma 4 per-layer embeddings (PLE, E2B/E4B).
  kPleEmbedding,        // model: [V_ple, L * P] token table, layer-major rows
  kPleModelProjection,  // model: [L * P, H] context projection of the scaled embedding
  kPleProjectionNorm,   // model: [P], shared by every layer's slice
  kPleGate,             // layer: [P, H]
  kPleProjection,       // layer: [H, P]
  kPlePostNorm,         // layer: [H]
  kLayerScalar,         // layer: [1], multiplies the layer's whole output
  // Gemma 4 MoE block (26B-A4B), beside the dense MLP.
  kPostFfnNorm1,          // layer: [H], after the dense MLP
  kPreFfnNorm2,           // layer: [H], the experts' input norm
  kPostFfnNorm2,          // layer: [H], after the weighted expert sum
  kRouterProj,            // layer: [E, H]
  kRouterScale,           // layer: [H]
  kRouterPerExpertScale,  // layer: [E]
  kExpertsGateUp,         // layer: [E, 2 * I_moe, H]; rows [0, I) gate, [I, 2I) up
  kExpertsDown,           // layer: [E, H, I_moe]
};

class WeightBinder {
 public:
  // `keep_bf16`: bf16 matrices stay bf16 (the matmul reads them directly); otherwise, and
  // for every other stored type, matrices become f32. Vectors are always f32.
  WeightBinder(std::shared_ptr<weights::WeightSource> source, bool keep_bf16);
  WeightBinder(WeightBinder&&) noexcept;
  WeightBinder& operator=(WeightBinder&&) noexcept;
  ~WeightBinder();

  // Whether linear() may hand out the CPU fast path's weights, quantized blocks and bf16
  // matrices for the bf16 dot product (set by the loader; off by default, so every matrix is
  // dense with f32 activations as the reference path expects).
  void set_keep_quantized(bool keep) { keep_quantized_ = keep; }
  bool keep_quantized() const { return keep_quantized_; }

  // The tensor for `role` of layer `layer` (-1 for model-level tensors) as [rows, cols].
  StatusOr<kernels::Tensor> matrix(TensorRole role, int layer, int64_t rows, int64_t cols);
  // The same as a Linear weight: with keep_quantized() and a GGUF tensor stored in a type the
  // quantized kernels take (Q4_0 .. Q6_K, cols a whole number of blocks), a zero-copy view of
  // its blocks in the mapped file; otherwise matrix()'s dense tensor, marked for the bf16 dot
  // product when it is bf16, keep_quantized() and the CPU has AVX512_BF16.
  StatusOr<LinearWeight> linear(TensorRole role, int layer, int64_t rows, int64_t cols);
  // The stored tensor itself (for row lookups into a table left quantized).
  StatusOr<const weights::WeightInfo*> info(TensorRole role, int layer) const;
  StatusOr<kernels::Tensor> vector(TensorRole role, int layer, int64_t n);
  // Any rank (e.g. stacked expert weights [E, rows, cols]); bf16 kept like a matrix.
  StatusOr<kernels::Tensor> tensor(TensorRole role, int layer, std::vector<int64_t> shape);
  // Whether the source holds `role`/`layer` (e.g. to tell a K=V layer's missing v_proj).
  bool has(TensorRole role, int layer) const;

  // sqrt(hidden) as the reference multiplies it: rounded to the embedding's stored dtype
  // when that is bf16 or f16 (HF casts the scale to the weight dtype), exact otherwise.
  float embedding_scale(int hidden_size) const;
  // `value` as the reference multiplies it into `role`'s table (the PLE table's sqrt(P)):
  // rounded to that tensor's stored dtype when bf16 or f16, exact otherwise and for GGUF.
  float scale_for(TensorRole role, float value) const;

  // The name `role`/`layer` has in this source (for messages and tests).
  std::string tensor_name(TensorRole role, int layer) const;
  // Bytes of weights bound so far that live in owned (converted) buffers vs file mappings.
  uint64_t owned_bytes() const { return owned_bytes_; }
  uint64_t mapped_bytes() const { return mapped_bytes_; }

 private:
  StatusOr<kernels::Tensor> bind(TensorRole role, int layer, std::vector<int64_t> shape, bool allow_bf16);

  std::shared_ptr<weights::WeightSource> source_;
  bool keep_bf16_ = false;
  bool keep_quantized_ = false;
  bool is_gguf_ = false;
  std::string hf_prefix_;  // "model." or "model.language_model." or "language_model.model."
  std::vector<std::unique_ptr<weights::OwnedTensor>> owned_;
  uint64_t owned_bytes_ = 0;
  uint64_t mapped_bytes_ = 0;
};

}  // namespace sluice::models
