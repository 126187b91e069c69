#pragma once
// Token sampling from one row of logits: greedy, temperature, top-k, top-p, min-p, seeded.
// The order is temperature -> top-k -> top-p -> min-p, then a draw from what remains
// (renormalised). Selection is partial: the 262k-entry vocabulary is never fully sorted.

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace sluice::sampling {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  int top_k = -1;            // -1 or 0: off
  float top_p = 1.0f;        // (0, 1]
  float min_p = 0.0f;        // [0, 1]
  std::optional<uint64_t> seed;
};

// Index of the largest logit; ties go to the lowest index; NaN never wins.
int32_t argmax(std::span<const float> logits);

// A per-sequence sampler: owns the random stream so that a seeded sequence draws the same
// tokens whatever else happens in the process.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused between calls
};

}  // namespace sluice::sampling
