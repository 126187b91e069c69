#pragma once
// The OpenAI-compatible wire format as sluice-bench speaks it: request bodies for
// /v1/completions and /v1/chat/completions, the server-sent-events framing of a stream,
// and what one streamed chunk tells the benchmark. Pure; the HTTP client feeds it bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice_bench/dataset.h"  // BenchPrompt

namespace sluice::bench {

enum class ApiEndpoint { kCompletions, kChat };

// How output lengths are forced (INTERFACES.md): ignore_eos + max_tokens where the server
// honours it, else a -100 logit_bias on the EOS ids given.
struct RequestShape {
  ApiEndpoint endpoint = ApiEndpoint::kCompletions;
  std::string model;
  bool ignore_eos = true;
  std::vector<int32_t> banned_eos_ids;  // used only when !ignore_eos
};

// The JSON body for `p`: streamed with stream_options.include_usage, max_tokens =
// p.output_len, sampling left to the server's defaults (as vLLM's benchmark leaves it). Chat puts
// p.prefix_text (when set) in a system message and p.prompt_text in the user message; completions
// sends p.prompt_ids when set, else p.prompt_text.
std::string build_request_body(const BenchPrompt& p, const RequestShape& shape);

// Splits a text/event-stream body into events and returns each event's data (its
// "data:" lines joined by '\n'). Accepts \n, \r\n and \r line ends, ignores comments
// (":" lines) and other fields; bytes may arrive split anywhere.
class SseParser {
 public:
  // Appends the data of every event completed by `bytes` to `events`.
  void feed(std::string_view bytes, std::vector<std::string>* events);
  // Data of a final event not followed by a blank line (some servers omit it), if any.
  std::optional<std::string> finish();

 private:
  void end_line(std::vector<std::string>* events);
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
};

// One streamed event, as the benchmark reads it.
struct StreamChunk {
  bool done = false;                 // "data: [DONE]"
  bool malformed = false;            // not JSON
  std::optional<std::string> error;  // an {"error": {...}} event: its message
  bool has_content = false;          // new text/content (or reasoning text), or new token ids
  int64_t num_token_ids = 0;         // size of choices[0].token_ids (sluice without a tokenizer)
  bool has_usage = false;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};
StreamChunk parse_stream_chunk(std::string_view data);

// A non-streamed error body's message ({"error": {"message": ...}}, or a bare
// {"message"/"detail": ...}), else the body itself cut to 200 bytes.
std::string error_message(int status, std::string_view body);

}  // namespace sluice::bench
