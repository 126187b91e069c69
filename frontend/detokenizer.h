#pragma once
// IncrementalDetokenizer: generated token ids in, text deltas out, one per stream (one per
// choice of a request). The front-end thread that owns the stream pushes each id as the
// engine's delta arrives and writes what comes back into the SSE chunk / gRPC message.
//
// Contract: the concatenation of every delta plus finish() equals
// to_valid_utf8(tokenizer.decode(ids, render_special)) for the ids pushed, and is exactly
// tokenizer.decode(ids, ...) whenever that is valid UTF-8. Every delta is valid UTF-8 on
// its own: a character whose bytes span tokens is held back until complete, and bytes that
// can never form a character become U+FFFD as soon as that is certain.
//
// NOTE: Tokenizer::decode is a plain concatenation of per-token texts (Gemma has no dummy
// prefix, so no leading space is stripped from the first token, and "▁" inside any token
// becomes ' '), so one token's text never depends on its neighbours and no re-decoding
// of a prefix window (as vLLM does for tokenizers that strip) is needed.
// NOTE: an ill-formed run becomes one U+FFFD per maximal subpart (utf8.h), not one per
// byte token as Hugging Face's ByteFallback decoder does; the result is then a function of
// the bytes alone, identical for streamed and whole responses.

#include <cstdint>
#include <span>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "frontend/utf8.h"

namespace sluice::frontend {

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object. With `skip_special_tokens` (the OpenAI / vLLM
  // default) CONTROL and UNKNOWN tokens render as nothing, else as their text; other token
  // types render as Tokenizer::append_token_text says.
  explicit IncrementalDetokenizer(const tokenizer::Tokenizer& tokenizer,
                                  bool skip_special_tokens = true);

  // Appends to *out the text that `id` completes (possibly nothing). Ids out of range
  // render as nothing, as in decode().
  void push(int32_t id, std::string* out);
  void push(std::span<const int32_t> ids, std::string* out);
  // End of the stream: appends U+FFFD if a character was left incomplete. The object is
  // then back at its initial state.
  void finish(std::string* out);

  // Bytes of an incomplete character held back (0-3).
  size_t num_pending_bytes() const { return utf8_.num_pending_bytes(); }

 private:
  const tokenizer::Tokenizer* tokenizer_;
  bool render_special_;
  Utf8Stream utf8_;
  std::string scratch_;  // one token's bytes; reused so a push allocates nothing once warm
};

}  // namespace sluice::frontend
