#include "frontend/text_stream.h"

namespace sluice::frontend {

TextStream::TextStream(const tokenizer::Tokenizer& tokenizer,
                       std::shared_ptr<const StopStrings> stops, TextStreamOptions options)
    : detok_(tokenizer, options.skip_special_tokens),
      stop_(std::move(stops), options.include_stop_str_in_output) {}

bool TextStream::push(int32_t id, bool check_stop, std::string* out) {
  if (stop_.stopped()) return true;
  last_check_ = check_stop;
  scratch_.clear();
  detok_.push(id, &scratch_);
  return stop_.push(scratch_, out, check_stop);
}

bool TextStream::finish(std::string* out) {
  if (stop_.stopped()) return true;
  scratch_.clear();
  detok_.finish(&scratch_);
  if (stop_.push(scratch_, out, last_check_)) return true;
  stop_.flush(out);
  return false;
}

}  // namespace sluice::frontend
