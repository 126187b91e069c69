#pragma once
// The logit processors that run before logprobs and sampling: repetition, presence and
// frequency penalties, logit_bias and token masking. Each touches only the token ids it is
// given (sparse), never the whole vocabulary. Ids outside `logits` are ignored (validate()
// rejects them at the edge). See sampling_params.h for the order and semantics.

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>

namespace sluice::sampling {

// HF/vLLM repetition penalty on each id of `token_ids` (which must hold each id once):
// logit > 0 -> logit / penalty, otherwise logit * penalty. penalty 1 is a no-op.
void apply_repetition_penalty(std::span<float> logits, float penalty,
                              std::span<const int32_t> token_ids);

// OpenAI penalties over generated-token counts: logit -= presence * (count > 0) +
// frequency * count.
void apply_presence_frequency(std::span<float> logits, float presence, float frequency,
                              const std::unordered_map<int32_t, int32_t>& counts);

// Adds each (token id, bias) to the logits.
void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias);

// Sets the listed ids to -inf.
void mask_tokens(std::span<float> logits, std::span<const int32_t> token_ids);

}  // namespace sluice::sampling
