#pragma once
// Log-probabilities of one row of logits: the chosen token's and the top k alternatives.
//
// Choice: sluice reports logprobs of the PROCESSED distribution — the log-softmax of the
// logits after penalties, logit_bias and min_tokens masking, but BEFORE temperature, top-k,
// top-p and min-p. (vLLM by default returns the raw model's logprobs instead; ours reflect
// what the request's penalties and biases did, and stay independent of the truncation.)
//
// One pass over the vocabulary: an online log-sum-exp and a bounded heap of the k best, so
// a 262,144-entry row is never sorted. NaN entries count as -inf.

#include <cstdint>
#include <span>
#include <vector>

namespace sluice::sampling {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  bool operator==(const TokenLogprob&) const = default;
};

struct SampleLogprobs {
  TokenLogprob chosen;
  // The k most likely tokens, by logprob descending, ties by lower token id. Its length is
  // min(k, logits.size()); tokens with -inf logits fill the tail only when nothing is left.
  std::vector<TokenLogprob> top;
};

// Fills `out` for token `chosen` (must index `logits`) with the top `k` (k >= 0).
// If every entry is -inf/NaN, all reported logprobs are -inf.
void compute_logprobs(std::span<const float> logits, int32_t chosen, int k, SampleLogprobs* out);

// log(sum(exp(logits))) over the non-NaN entries, in one pass; -inf when there are none.
double log_sum_exp(std::span<const float> logits);

}  // namespace sluice::sampling
