#pragma once
// TextStream: one choice's generated text, from token ids to the exact bytes the client
// gets: incremental detokenization (detokenizer.h) followed by stop-string matching
// (stop_matcher.h). The HTTP and gRPC front ends create one per choice and call it on the
// thread that owns the stream. Not thread-safe.
//
// Typical use per engine delta:
//   std::string delta;
//   for (int32_t id : choice_ids) {
//     ++num_completion_tokens;                       // counts through the stopping token
//     if (stream.push(id, num_completion_tokens > min_tokens, &delta)) { abort; break; }
//   }
//   if (finished) stream.finish(&delta);             // length / EOS / stop token
//   write delta (may be empty; valid UTF-8)

#include <cstdint>
#include <memory>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "frontend/detokenizer.h"
#include "frontend/stop_matcher.h"

namespace sluice::frontend {

struct TextStreamOptions {
  bool skip_special_tokens = true;
  bool include_stop_str_in_output = false;
};

class TextStream {
 public:
  // `tokenizer` must outlive the stream; `stops` may be null.
  TextStream(const tokenizer::Tokenizer& tokenizer, std::shared_ptr<const StopStrings> stops,
             TextStreamOptions options = {});

  // Appends the text token `id` releases. Returns true once a stop string has matched
  // (the caller aborts the request in the engine and reports finish_reason "stop"); later
  // calls append nothing. `check_stop` false ignores matches completing at this token
  // (before min_tokens).
  bool push(int32_t id, bool check_stop, std::string* out);
  // The engine finished the choice (length, EOS, stop token): appends the rest (an
  // incomplete character as U+FFFD, then held-back text). Returns true if that rest
  // completed a stop string after all, in which case only the text before it is appended.
  bool finish(std::string* out);

  bool stopped() const { return stop_.stopped(); }
  int32_t stop_index() const { return stop_.stop_index(); }

 private:
  IncrementalDetokenizer detok_;
  StopMatcher stop_;
  bool last_check_ = true;
  std::string scratch_;  // the detokenizer's delta for one token, reused
};

}  // namespace sluice::frontend
