#include "frontend/detokenizer.h"

namespace sluice::frontend {

IncrementalDetokenizer::IncrementalDetokenizer(const tokenizer::Tokenizer& tokenizer,
                                               bool skip_special_tokens)
    : tokenizer_(&tokenizer), render_special_(!skip_special_tokens) {}

void IncrementalDetokenizer::push(int32_t id, std::string* out) {
  scratch_.clear();
  tokenizer_->append_token_text(id, render_special_, &scratch_);
  utf8_.append(scratch_, out);
}

void IncrementalDetokenizer::push(std::span<const int32_t> ids, std::string* out) {
  scratch_.clear();
  for (int32_t id : ids) tokenizer_->append_token_text(id, render_special_, &scratch_);
  utf8_.append(scratch_, out);
}

void IncrementalDetokenizer::finish(std::string* out) { utf8_.finish(out); }

}  // namespace sluice::frontend
