#pragma once
// Request, Delta and OutputSink: what crosses the engine boundary (INTERFACES.md, "Engine
// boundary"). The server converts an HTTP/gRPC request into a Request of token ids and
// submits it with a sink; the engine thread pushes one Delta per choice and step (new token
// ids, and the finish reason on the last one).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"  // RequestId, TokenId
#include "engine/sampling/sampling_params.h"
#include "scheduler/sequence.h"  // FinishReason, TenantId

namespace sluice::engine {

struct Request {
  std::vector<TokenId> prompt;          // non-empty, ids in the vocabulary
  sampling::SamplingParams sampling;    // checked by sampling::validate at submission
  int32_t max_tokens = 16;              // >= 1: output tokens per choice
  int32_t n = 1;                        // choices
  bool ignore_eos = false;              // do not finish on the engine's EOS ids
  std::vector<TokenId> stop_token_ids;  // finish with kStop (even with ignore_eos)
  scheduler::TenantId tenant;
  int32_t priority = 0;         // lower runs first
  double weight = 1.0;          // the tenant's fair-share weight (> 0)
  std::string cache_namespace;  // prefix-cache namespace (derived by the server)
};

// New tokens of one choice, and how it ended when finish_reason is set (the last delta of
// that choice). A request rejected at submission gets one delta for choice 0 with kAbort.
struct Delta {
  RequestId id;
  int32_t choice = 0;
  std::vector<TokenId> token_ids;
  std::optional<scheduler::FinishReason> finish_reason;
};

// Receives a request's deltas. push() is called on the engine thread and must only enqueue
// (no blocking, no heavy work); it may call Engine::abort.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void push(Delta d) = 0;
};

}  // namespace sluice::engine
