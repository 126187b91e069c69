#pragma once
// Token sampling from one row of logits for one sequence.
//
// Pipeline per call (see sampling_params.h for each step's semantics):
//   penalties (repetition, presence/frequency) -> logit_bias -> min_tokens masking
//   -> [logprobs taken here] -> temperature -> top-k -> top-p -> min-p -> draw.
// Temperature 0 or top_k 1 is greedy (argmax, no random draw). Selection is partial: the
// 262k-entry vocabulary is never fully sorted, and penalties touch only the ids seen.
// The input logits are never modified; when a penalty, bias or mask applies they are
// copied into a buffer owned by the sampler (reused between calls), else read directly.
//
// A Sampler is per sequence: it owns its random stream (seeded from params.seed, else from
// std::random_device), so a seeded sequence draws the same tokens for the same logits
// whatever other sequences do. It also owns the prompt ids (for repetition_penalty) and the
// counts of generated ids, which grow only through accept(): the caller accepts each token
// it keeps (sample() does not accept on its own). Not thread-safe; one thread per sampler.

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/sampling/logprobs.h"
#include "engine/sampling/sampling_params.h"

namespace sluice::sampling {

// Index of the largest logit; ties go to the lowest index; NaN never wins.
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params, std::span<const int32_t> prompt_tokens = {});

  // Samples one token. When `out_logprobs` is non-null and params.logprobs >= 0, fills it
  // with the chosen token's logprob and the top params.logprobs alternatives (logprobs.h).
  int32_t sample(std::span<const float> logits, SampleLogprobs* out_logprobs = nullptr);

  // Records a generated token (for presence/frequency/repetition penalties and min_tokens).
  void accept(int32_t token);

  int num_generated() const { return num_generated_; }
  const SamplingParams& params() const { return params_; }

 private:
  // The logits after penalties, bias and masking: `logits` itself when none applies.
  std::span<const float> process(std::span<const float> logits);
  int32_t draw(std::span<const float> logits);
  // draw() without top-k, top-p or min-p (every id a candidate): no candidate list, the
  // probabilities by the CPU backend's vectorised exp into probs_, and a walk that skips
  // whole chunks by their sums. nullopt where the general path must decide (NaN logits, no
  // finite maximum).
  std::optional<int32_t> draw_full(std::span<const float> logits, float inv_t);
  static constexpr int64_t kDrawChunk = 4096;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> prompt_ids_;              // sorted, unique
  std::vector<int32_t> generated_only_ids_;      // generated ids not in the prompt, unique
  std::unordered_map<int32_t, int32_t> counts_;  // generated id -> count
  int num_generated_ = 0;
  std::vector<float> work_;                            // processed logits, reused
  std::vector<std::pair<float, int32_t>> candidates_;  // reused between calls
  std::vector<float> probs_;                           // draw_full's probabilities
  std::vector<float> chunk_sums_;                      // and their sums per chunk
};

// The per-sequence sampler under the name the engine uses.
using SequenceSampler = Sampler;

}  // namespace sluice::sampling
