#pragma once
// Request, Delta and OutputSink: what crosses the engine boundary (INTERFACES.md, "Engine
// boundary"). The server converts an HTTP/gRPC request into a Request of token ids and
// submits it with a sink; the engine thread pushes one Delta per choice and step (new token
// ids with their logprobs when asked, prompt logprobs on a choice's first delta, and the
// finish reason on the last one).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"                // RequestId, TokenId
#include "engine/sampling/logprobs.h"  // SampleLogprobs
#include "engine/sampling/sampling_params.h"
#include "scheduler/sequence.h"  // FinishReason, TenantId

namespace sluice::engine {

struct Request {
  std::vector<TokenId> prompt;  // non-empty, ids in the vocabulary
  // Checked by sampling::validate at submission. sampling.logprobs = k >= 0 puts the
  // logprob of every generated token and its top k alternatives on the deltas (OpenAI
  // `logprobs: true` + `top_logprobs: k`; completions' `logprobs: k`);
  // sampling.prompt_logprobs = k >= 0 does the same for the prompt (vLLM `prompt_logprobs`).
  sampling::SamplingParams sampling;
  int32_t max_tokens = 16;              // >= 1: output tokens per choice
  int32_t n = 1;                        // choices, in [1, max_num_seqs]
  bool ignore_eos = false;              // do not finish on the engine's EOS ids
  std::vector<TokenId> stop_token_ids;  // finish with kStop (even with ignore_eos)
  scheduler::TenantId tenant;
  int32_t priority = 0;         // lower runs first
  double weight = 1.0;          // the tenant's fair-share weight (> 0)
  std::string cache_namespace;  // prefix-cache namespace (derived by the server)
  // Debugging aid (`sluice generate --dump-logits`), never for serving: deltas carry the raw
  // model logits (after any soft-cap) they came from, one vocab-sized row per position,
  // which costs 1 MiB a row on a 262k vocabulary. Like prompt_logprobs, it makes the
  // request compute logits at every prompt position and skip the prefix cache.
  bool debug_logits = false;
};

// New tokens of one choice, and how it ended when finish_reason is set (the last delta of
// that choice). Every choice of a request gets exactly one delta with a finish reason, also
// when the request is rejected at submission or aborted (kAbort, no tokens): a rejected
// request gets one kAbort delta for each choice in [0, clamp(n, 1, max_num_seqs)).
struct Delta {
  RequestId id;
  int32_t choice = 0;
  std::vector<TokenId> token_ids;
  std::optional<scheduler::FinishReason> finish_reason;
  // [i] the logprob of token_ids[i] and its top sampling.logprobs alternatives, from the
  // processed distribution (after penalties, logit_bias and min_tokens masking, before
  // temperature and truncation; see sampling/logprobs.h). Empty unless sampling.logprobs >= 0.
  std::vector<sampling::SampleLogprobs> logprobs;
  // On the first delta with tokens of each choice when sampling.prompt_logprobs >= 0; null
  // otherwise (and for a choice aborted before its first token). [i] is for prompt token
  // i + 1 (the first prompt token has none): its logprob given the tokens before it and the
  // top sampling.prompt_logprobs alternatives, from the model's raw distribution (no
  // penalties or bias: those belong to generation). Shared, read-only, by the choices.
  std::shared_ptr<const std::vector<sampling::SampleLogprobs>> prompt_logprobs;
  // Request::debug_logits only: [rows, vocab] raw logits. The first delta with tokens of a
  // choice holds one row per prompt position but the last, then one row per token in
  // token_ids (the row each was sampled from); later deltas hold one row per token.
  std::vector<float> debug_logits;
  // On the first delta with tokens of each choice (nullopt on the others): prompt tokens
  // served from the prefix cache for this request (vLLM's
  // usage.prompt_tokens_details.cached_tokens), and seconds from Engine::submit until the
  // request was first scheduled (vllm:request_queue_time_seconds).
  std::optional<int32_t> num_cached_tokens;
  std::optional<double> queue_seconds;
};

// Receives a request's deltas. push() is called on the engine thread and must only enqueue
// (no blocking, no heavy work); it may call Engine::abort.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void push(Delta d) = 0;
};

}  // namespace sluice::engine
