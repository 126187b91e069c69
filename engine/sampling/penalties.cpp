#include "engine/sampling/penalties.h"

#include <limits>

namespace sluice::sampling {
namespace {

bool in_range(std::span<float> logits, int32_t id) {
  return id >= 0 && static_cast<size_t>(id) < logits.size();
}

}  // namespace

void apply_repetition_penalty(std::span<float> logits, float penalty,
                              std::span<const int32_t> token_ids) {
  if (penalty == 1.0f) return;
  for (int32_t id : token_ids) {
    if (!in_range(logits, id)) continue;
    float& l = logits[id];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

void apply_presence_frequency(std::span<float> logits, float presence, float frequency,
                              const std::unordered_map<int32_t, int32_t>& counts) {
  if (presence == 0.0f && frequency == 0.0f) return;
  for (const auto& [id, count] : counts) {
    if (count <= 0 || !in_range(logits, id)) continue;
    logits[id] -= presence + frequency * static_cast<float>(count);
  }
}

void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias) {
    if (in_range(logits, id)) logits[id] += b;
  }
}

void mask_tokens(std::span<float> logits, std::span<const int32_t> token_ids) {
  for (int32_t id : token_ids) {
    if (in_range(logits, id)) logits[id] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace sluice::sampling
