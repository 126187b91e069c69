#include "kernels/ops.h"

#include <cmath>

namespace sluice::kernels {

const char* OpTable::first_missing() const {
  if (embedding == nullptr) return "embedding";
  if (rms_norm == nullptr) return "rms_norm";
  if (add_rms_norm == nullptr) return "add_rms_norm";
  if (matmul == nullptr) return "matmul";
  if (rope == nullptr) return "rope";
  if (attention == nullptr) return "attention";
  if (geglu == nullptr) return "geglu";
  if (softmax == nullptr) return "softmax";
  if (top_k == nullptr) return "top_k";
  if (softcap == nullptr) return "softcap";
  if (add == nullptr) return "add";
  if (scale == nullptr) return "scale";
  if (cache_write == nullptr) return "cache_write";
  if (paged_attention == nullptr) return "paged_attention";
  return nullptr;
}

float gelu_tanh(float z) {
  // 0.5 z (1 + tanh(u)) written as z / (1 + exp(-2u)): the same function without the
  // cancellation of 1 + tanh(u) for negative z.
  const float u = 0.7978845608028654f * (z + 0.044715f * z * z * z);
  return z / (1.0f + std::exp(-2.0f * u));
}

}  // namespace sluice::kernels
