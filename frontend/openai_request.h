#pragma once
// The one request validator that the HTTP and gRPC front ends share (RELIABILITY.md, A).
// A JSON body of POST /v1/chat/completions or /v1/completions (gRPC's Generate carries the
// same JSON-shaped fields) becomes a ParsedRequest, or an ApiError that names the
// offending parameter. After the prompt is rendered and tokenized, check_context() fills
// or checks max_tokens against the context, and to_engine_request() makes the
// engine::Request that Engine::submit takes.
//
// What is accepted (INTERFACES.md, "HTTP API", has the ranges):
// - The body is one JSON object (RFC 8259, UTF-8). Syntax errors, a top level that is not
//   an object, nesting deeper than RequestLimits::max_json_depth, and a key repeated in
//   one object are 400s. Strings are UTF-8 without lone surrogates; U+0000 (`\u0000`) is
//   refused in every string and key, since C-string APIs downstream would cut text at it.
// - Types are strict, as OpenAI's: an integer parameter takes a JSON integer (not 5.0 or
//   "5"), a number parameter any JSON number, a boolean `true`/`false`. JSON null means
//   "not given" for every optional parameter. Values are never clamped: out of range is
//   a 400 naming the parameter.
// - Unknown keys are ignored, at the top level and inside messages and parts (OpenAI
//   clients send extras such as `metadata`, `store`, `parallel_tool_calls`). Known
//   parameters that would change the output but are not implemented are refused when set
//   to anything but their default: `tools`, `functions`, `tool_choice`/`function_call`
//   other than "none"/"auto", `response_format` other than {"type": "text"}, `suffix`,
//   `best_of` other than n, the guided-decoding extensions (`guided_json`,
//   `guided_regex`, `guided_choice`, `guided_grammar`, `structured_outputs`), a
//   request-supplied `chat_template`, and assistant `tool_calls` in messages.
// - chat: `messages` is a non-empty array; roles system, developer, user, assistant and
//   tool. Content is a string or a non-empty array of parts {"type": "text", "text"}
//   (assistant messages also take {"type": "refusal", "refusal"}, kept as text); media
//   parts (image_url, input_audio, file) are refused (text-only models). An assistant
//   message may have null content; a tool message needs a string `tool_call_id`.
//   `logprobs` (bool) with `top_logprobs` (int, needs logprobs true);
//   `chat_template_kwargs.enable_thinking` (bool; other kwargs are ignored).
// - completions: `prompt` is a string, a non-empty array of strings, a non-empty array of
//   token ids, or a non-empty array of non-empty arrays of token ids, at most
//   RequestLimits::max_prompts prompts; token ids lie in [0, vocab_size). `logprobs` is an
//   int; with `echo` it also asks for prompt logprobs. max_tokens defaults to 16 (OpenAI's
//   default for this endpoint).
// - both: `model` (string; absent means the server's default), `max_tokens` /
//   `max_completion_tokens` (both given: they must agree), n, stream,
//   stream_options.include_usage (only with stream true), stop (string or array),
//   temperature, top_p, top_k, min_p, presence/frequency/repetition penalties,
//   logit_bias (keys are decimal token-id strings), seed (a signed 64-bit integer, kept
//   as its two's-complement bits), min_tokens (<= max_tokens), user, ignore_eos,
//   stop_token_ids, skip_special_tokens.
//
// All functions are pure and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ids.h"  // TokenId
#include "engine/chat/chat_message.h"
#include "engine/runtime/request.h"
#include "engine/sampling/sampling_params.h"

namespace sluice::frontend {

enum class Endpoint { kChatCompletions, kCompletions };

// An error for the client: the server turns it into this HTTP status with the body
// {"error": {"message", "type", "param", "code"}}, or into a gRPC status. Messages are
// valid UTF-8, never echo raw input bytes, and quote client strings at most 64 bytes long.
struct ApiError {
  int http_status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::optional<std::string> param;  // OpenAI's path: "temperature", "messages[2].role"
  std::optional<std::string> code;   // e.g. "context_length_exceeded"
};

// The server's limits for one model. vocab_size must be > 0 (with 0 every token id is out
// of range); max_model_len must be > 0 for check_context().
struct RequestLimits {
  int max_logprobs = sampling::kMaxLogprobs;  // top_logprobs / logprobs in [0, max_logprobs]
  int max_n = 16;                             // n in [1, max_n]
  int max_stop = 16;                          // stop strings per request
  int max_stop_bytes = 256;                   // bytes per stop string
  int max_json_depth = 64;                    // open objects and arrays, the top level counting 1
  int vocab_size = 0;
  int max_model_len = 0;         // prompt + completion tokens
  int max_prompts = 64;          // completions: prompts in one request
  int max_stop_token_ids = 256;  // entries of stop_token_ids
};

// One completions prompt: text to tokenize, or token ids as given (exactly one is used).
struct PromptInput {
  std::optional<std::string> text;
  std::vector<TokenId> token_ids;
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string model;                        // empty: the server's default model
  std::vector<chat::ChatMessage> messages;  // chat: non-empty
  std::vector<PromptInput> prompts;         // completions: non-empty, one choice set each
  // temperature, top_p, top_k, min_p, penalties, logit_bias, seed, min_tokens; logprobs
  // (chat: top_logprobs, or 0, when logprobs is true; completions: logprobs);
  // prompt_logprobs (completions: logprobs when echo is set). stop_token_ids stays empty:
  // the engine adds the request's stop ids and, unless ignore_eos, the model's EOS ids.
  sampling::SamplingParams sampling;
  // max_tokens or max_completion_tokens, in [1, INT32_MAX]. Chat: unset when neither was
  // given; check_context() then fills it from the context left. Completions: 16 by default.
  std::optional<int32_t> max_tokens;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt text precedes the completion
  bool ignore_eos = false;
  std::vector<std::string> stop;        // stop strings: non-empty, valid UTF-8
  std::vector<TokenId> stop_token_ids;  // vLLM extension, ids in the vocabulary
  std::string user;
  std::optional<bool> enable_thinking;  // chat_template_kwargs.enable_thinking
  bool skip_special_tokens = true;
};

// Parses and validates a request body for `endpoint` (see the top of this file). Every
// rejection is a 400 invalid_request_error whose `param` names the parameter where one is
// to blame (JSON syntax errors at the top level and nesting too deep have none).
std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                    const RequestLimits& limits);

// The context check once a prompt is tokenized (prompt_tokens of them). When max_tokens is
// set and prompt_tokens + max_tokens > max_model_len: a 400 with code
// "context_length_exceeded", param "messages" (chat) or "prompt" (completions), in OpenAI's
// words ("This model's maximum context length is N tokens. However, you requested M tokens
// (P in the messages, C in the completion). Please reduce the length of the messages or
// completion."). When unset, max_tokens becomes max_model_len - prompt_tokens, or the same
// error ("... However, your messages resulted in P tokens. ...") when that is < 1. An empty
// prompt (0 tokens) is a 400 too. Changes `request` only by filling max_tokens. For several
// completions prompts call it once per prompt: their max_tokens is always set, so the calls
// do not interact. limits.max_model_len must be > 0.
std::optional<ApiError> check_context(ParsedRequest& request, int prompt_tokens,
                                      const RequestLimits& limits);

// The engine request for one prompt of `request` (one of request.prompts for completions,
// the rendered conversation for chat): sampling, max_tokens, n, ignore_eos and
// stop_token_ids. The tenant, priority, weight and cache namespace are the server's to set.
// EOS ids are the engine's (EngineConfig::eos_token_ids). request.max_tokens must be set
// (check_context() has run).
engine::Request to_engine_request(const ParsedRequest& request, std::vector<TokenId> prompt_ids);

}  // namespace sluice::frontend
