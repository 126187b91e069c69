#pragma once
// The prompts sluice-bench sends and when it sends them. Pure and seeded: the same options
// give the same prompts and the same arrival times on every machine.
//
// Datasets (--dataset):
//   random  input and output lengths drawn uniformly from [len*(1-r), len*(1+r)]
//           (r = --range-ratio, as vLLM's random dataset); token-id prompts for
//           /v1/completions (exact lengths), or text of random words for chat (the runner
//           fits the word count to the length with /tokenize when the server has it).
//   prefix  one shared prefix of --prefix-len tokens (a system prompt in chat), then a
//           random suffix as above: the prefix cache's best case.
//   jsonl   one {"prompt": str | [token ids], "output_len": N} per line of --dataset-path.

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::bench {

struct BenchPrompt {
  std::vector<int32_t> prompt_ids;  // a token-id prompt (completions); empty for text
  std::string prefix_text;          // chat: the shared system prompt ("" for none)
  std::string prompt_text;          // a text prompt: the completion prompt or the user turn
  // Prompt tokens the server should count: exact for token ids and fitted text, an estimate
  // otherwise (`prompt_len_exact`), 0 when unknown (jsonl text without /tokenize). The
  // report prefers the server's usage.prompt_tokens.
  int64_t prompt_len = 0;
  bool prompt_len_exact = false;
  int64_t output_len = 0;  // max_tokens, forced with ignore_eos
  // Text prompts still to be fitted: the candidate words and the wanted token count.
  std::vector<std::string> words;
  int64_t target_len = 0;
};

// [lo, hi] of lengths for --input-len/--output-len `len` and --range-ratio `r` in [0, 1):
// lo = max(1, floor(len * (1 - r))), hi = floor(len * (1 + r)).
struct LengthRange {
  int64_t lo = 0;
  int64_t hi = 0;
};
LengthRange length_range(int64_t len, double range_ratio);

struct SyntheticOptions {
  int64_t num_prompts = 0;
  int64_t input_len = 0;  // the random part (after any prefix)
  int64_t output_len = 0;
  double range_ratio = 0;
  int64_t prefix_len = 0;  // 0: --dataset random
  // Token ids are drawn uniformly from [token_id_lo, token_id_hi).
  int32_t token_id_lo = 0;
  int32_t token_id_hi = 0;
  uint64_t seed = 0;
};

// Token-id prompts: prefix_len shared ids, then input_len (+/- range) random ids each.
// Exact lengths; prompt_len = prefix_len + the drawn input length.
std::vector<BenchPrompt> make_token_prompts(const SyntheticOptions& opt);

// Text prompts of random English words for chat or text completions. Each prompt gets
// `words` (enough for its target) and `target_len` (prefix_len + drawn input length); the
// shared prefix (prefix_len > 0) is prefix_words(seed, num_prefix_words) in `prefix_text`.
// Until fitted (fit_word_count), prompt_text holds an estimate at ~1 token per word,
// marked inexact.
std::vector<BenchPrompt> make_word_prompts(const SyntheticOptions& opt, int64_t num_prefix_words);
// The shared prefix's words for `seed`: prefix_words(s, k) is the first k of
// prefix_words(s, n) for k <= n, so a caller can fit k on a longer list.
std::vector<std::string> prefix_words(uint64_t seed, int64_t n);

// `n` random words from a fixed list of common English words (each a single token in the
// common vocabularies, so ~1 token per word), drawn with `rng`.
std::vector<std::string> random_words(std::mt19937_64& rng, int64_t n);
// The first `k` of `words`, joined by single spaces.
std::string join_words(const std::vector<std::string>& words, int64_t k);

// The word count k in [1, max_words] whose token count is closest to `target`, given
// `tokens_of(k)` = the token count of the prompt made of the first k words (non-decreasing
// in k). Starts at `guess` and steps by the miss (about one token per word), which lands in
// two or three calls; falls back to bisection. Ties go to the shorter prompt.
int64_t fit_word_count(int64_t target, int64_t max_words, int64_t guess,
                       const std::function<int64_t(int64_t)>& tokens_of);

// --dataset jsonl: `num_prompts` records, wrapping around the file when it has fewer
// lines. "prompt" is a string (text) or an array of token ids; "output_len" (>= 1)
// defaults to `default_output_len`. Blank lines are skipped; a bad line is an error naming
// its number.
StatusOr<std::vector<BenchPrompt>> load_jsonl(const std::string& path, int64_t num_prompts,
                                              int64_t default_output_len);

// Arrival offsets in seconds from the start of the run, non-decreasing, first at 0: a
// Poisson process of `rate` requests/s (exponential gaps); all 0 for rate = inf.
std::vector<double> poisson_arrivals(int64_t n, double rate, uint64_t seed);

// One request of a run: when it arrives, which prompt, which tenant (-1: none).
struct Arrival {
  double t_s = 0;
  int64_t prompt_index = 0;
  int tenant = -1;
};
// Merges per-tenant Poisson streams (tenant i sends prompts [i*n, (i+1)*n) at rates[i])
// into one schedule ordered by time; simultaneous arrivals go round-robin over tenants.
// Seeds differ per tenant.
std::vector<Arrival> tenant_schedule(int64_t num_prompts_per_tenant,
                                     const std::vector<double>& rates, uint64_t seed);

}  // namespace sluice::bench
