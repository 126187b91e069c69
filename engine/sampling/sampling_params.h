#pragma once
// Per-request sampling parameters and their validation.
//
// Semantics (applied by Sampler, in this order, to one row of logits):
//   1. repetition_penalty (vLLM/HF): for every token id seen in the prompt OR generated so
//      far, a positive logit is divided by the penalty and a negative one multiplied by it.
//   2. presence_penalty / frequency_penalty (OpenAI): over GENERATED tokens only,
//      logit -= presence * (count > 0) + frequency * count.
//   3. logit_bias (OpenAI): bias added to the listed token ids.
//   4. min_tokens: while fewer than min_tokens tokens were generated, every id in
//      stop_token_ids gets -inf.
//   5. logprobs are taken here (see logprobs.h), then temperature -> top-k -> top-p -> min-p
//      and a draw from what remains.
// ignore_eos is the caller's business: it leaves eos out of stop_token_ids (so min_tokens
// does not mask it) and does not finish on it; the sampler never finishes a sequence.

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::sampling {

struct SamplingParams {
  float temperature = 1.0f;      // 0: greedy
  int top_k = -1;                // -1 or 0: off (validate() accepts only -1 or >= 1)
  float top_p = 1.0f;            // (0, 1]
  float min_p = 0.0f;            // [0, 1]
  std::optional<uint64_t> seed;  // unset: a random seed per sampler

  float presence_penalty = 0.0f;    // [-2, 2], over generated tokens
  float frequency_penalty = 0.0f;   // [-2, 2], over generated tokens
  float repetition_penalty = 1.0f;  // (0, 2], over prompt and generated tokens; 1: off
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias in [-100, 100])
  int logprobs = -1;  // -1: none; k >= 0: the chosen token's logprob plus the top k
  // -1: none; k >= 0: each prompt token's logprob plus the top k (vLLM prompt_logprobs).
  // Not the sampler's business: the engine computes them from raw logits (request.h).
  int prompt_logprobs = -1;
  int min_tokens = 0;                   // stop ids are masked until this many are generated
  std::vector<int32_t> stop_token_ids;  // eos and other stop ids (for min_tokens masking)
};

inline constexpr int kMaxLogitBiasEntries = 300;
inline constexpr int kMaxLogprobs = 20;

// Checks the ranges of INTERFACES.md ("HTTP API"). Returns INVALID_ARGUMENT whose message
// begins with the parameter's OpenAI name followed by a space ("temperature must be ...",
// "logit_bias key ...", "top_logprobs must be ..."), so the server can fill `param` from the
// first word. NaN and infinities are rejected. `logprobs` is named "top_logprobs" (the chat
// API's spelling of the count); prompt_logprobs has the same range.
Status validate(const SamplingParams& params, int vocab_size, int max_logprobs = kMaxLogprobs);

}  // namespace sluice::sampling
