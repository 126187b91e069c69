#pragma once
// The OpenAI-compatible routes of `sluice serve` over HttpServer: POST /v1/completions and
// /v1/chat/completions (streamed as Server-Sent Events or not, n >= 1, logprobs, echo,
// usage with prompt_tokens_details.cached_tokens), GET /v1/models and /v1/models/{id},
// POST /tokenize and /detokenize (vLLM's shapes). Bodies and chunks are shaped as OpenAI's;
// a stream ends with `data: [DONE]`.
//
// Logprobs. Chat: choices[].logprobs = {"content": [{"token", "logprob", "bytes",
// "top_logprobs": [{"token", "logprob", "bytes"}]}]}. Completions: choices[].logprobs =
// {"tokens", "token_logprobs", "top_logprobs" (one {token: logprob} object per token),
// "text_offset"}; with echo the prompt's tokens come first, the first of them with null
// logprob and alternatives. A token whose bytes are not valid UTF-8 on their own (a piece of
// a multi-byte character) is named "bytes:\xNN..." as vLLM names it; an impossible token
// (-inf) reports -9999.0, since JSON has no infinity.

#include <cstdint>
#include <string_view>

#include "server/http_server.h"
#include "server/serve_context.h"
#include "server/tenants.h"

namespace sluice::server {

// Every handler serves an authenticated `caller` (a tenant, never the admin: the routes
// refuse the admin key before these run); models the tenant may not use are a 403
// (generation.h, check_model).

// POST /v1/completions or /v1/chat/completions (by `endpoint`).
HttpResponse handle_generate(ServeContext& ctx, const Caller& caller, frontend::Endpoint endpoint,
                             const HttpRequest& http);
HttpResponse handle_tokenize(ServeContext& ctx, const Caller& caller, const HttpRequest& http);
HttpResponse handle_detokenize(ServeContext& ctx, const Caller& caller, const HttpRequest& http);
// GET /v1/models: the served model when the tenant may use it (else an empty list);
// GET /v1/models/{id}: 403 for a model the tenant may not use, else 404 model_not_found
// for another id.
HttpResponse handle_models(const ServeContext& ctx, const Caller& caller);
HttpResponse handle_model(const ServeContext& ctx, const Caller& caller, std::string_view id);

// An ApiError as OpenAI's error JSON with its status (503 and 429 carry Retry-After:
// `retry_after_seconds`).
HttpResponse api_error_response(const frontend::ApiError& e, int64_t retry_after_seconds = 1);

}  // namespace sluice::server
