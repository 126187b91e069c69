// from_gguf: fills a TokenizerVocab from a GGUF file's `tokenizer.ggml.*` keys, with the
// defaults and token-type fixes llama.cpp applies when it loads the same file, so that
// both produce the same ids.

#include <fmt/format.h>

#include <string_view>

#include "engine/tokenizer/tokenizer.h"
#include "engine/weights/gguf.h"

namespace sluice::tokenizer {
namespace {

using weights::GgufArray;
using weights::GgufFile;
using weights::GgufType;

// Texts llama.cpp's loader treats as end-of-generation / fill-in-the-middle markers and
// forces to CONTROL whatever type the file gives them. In Gemma 3 this turns the HTML tag
// "</s>" (USER_DEFINED in the file) into a control token: it renders empty and is matched
// in the input only with special parsing.
// clang-format off
constexpr std::string_view kForcedControl[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~[",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>",
    "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>",
    "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", "<|fim_pad|>",
    "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
    "<REPO>", "<reponame>", "<|file_sep|>",
};
// clang-format on

StatusOr<const GgufArray*> typed_array(const GgufFile& f, std::string_view key,
                                       std::initializer_list<GgufType> allowed) {
  SLUICE_ASSIGN_OR_RETURN(const GgufArray* a, f.get_array(key));
  for (GgufType t : allowed) {
    if (a->elem_type == t) return a;
  }
  return Status::invalid_argument(fmt::format("{}: metadata key '{}' is an array of {}, not {}",
                                              f.name(), key, weights::gguf_type_name(a->elem_type),
                                              weights::gguf_type_name(*allowed.begin())));
}

// An optional token id: `fallback` when absent, INVALID_ARGUMENT when out of range.
StatusOr<int32_t> optional_id(const GgufFile& f, std::string_view key, size_t vocab_size,
                              int32_t fallback) {
  if (f.find(key) == nullptr) return fallback;
  SLUICE_ASSIGN_OR_RETURN(uint64_t id, f.get_u64(key));
  if (id >= vocab_size) {
    return Status::invalid_argument(fmt::format("{}: {} is {} but the vocabulary has {} tokens",
                                                f.name(), key, id, vocab_size));
  }
  return static_cast<int32_t>(id);
}

StatusOr<bool> optional_bool(const GgufFile& f, std::string_view key, bool fallback) {
  if (f.find(key) == nullptr) return fallback;
  return f.get_bool(key);
}

// The token-type fixes llama.cpp makes by text (see kForcedControl), in one pass.
void apply_llama_cpp_type_fixes(TokenizerVocab* v) {
  int64_t end_s = -1;  // "</s>"
  bool has_tool_response = false;
  for (size_t i = 0; i < v->pieces.size(); ++i) {
    const std::string& p = v->pieces[i];
    if (p.size() < 4 || p.size() > 32) continue;  // the lengths in kForcedControl
    if (p[0] != '<' && p[0] != '[' && p[0] != '_' && p[0] != '\xE2') continue;
    for (std::string_view text : kForcedControl) {
      if (p == text) {
        v->types[i] = TokenType::kControl;
        break;
      }
    }
    if (p == "</s>") end_s = static_cast<int64_t>(i);
    if (p == "<|tool_response>") has_tool_response = true;
  }
  // Where "<|tool_response>" ends generation (Gemma 4), llama.cpp makes "</s>" plain text.
  if (end_s >= 0 && has_tool_response) v->types[end_s] = TokenType::kNormal;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& f) {
  TokenizerVocab v;
  v.name = f.name();
  SLUICE_ASSIGN_OR_RETURN(std::string model, f.get_string("tokenizer.ggml.model"));
  if (model == "llama") {
    v.model = ModelKind::kSpmScores;
  } else if (model == "gemma4") {
    v.model = ModelKind::kBpeMerges;
    v.pre_split = PreSplit::kNewlineRuns;
    v.whole_words = WholeWord::kNewlineRuns;
  } else {
    return Status::unimplemented(
        fmt::format("{}: tokenizer.ggml.model is '{}'; supported: 'llama' (Gemma 3 SentencePiece), "
                    "'gemma4'",
                    f.name(), model));
  }

  SLUICE_ASSIGN_OR_RETURN(const GgufArray* tokens,
                          typed_array(f, "tokenizer.ggml.tokens", {GgufType::kString}));
  if (tokens->strings.size() > kMaxVocabSize) {
    return Status::invalid_argument(
        fmt::format("{}: tokenizer.ggml.tokens has {} entries, limit {}", f.name(),
                    tokens->strings.size(), kMaxVocabSize));
  }
  v.pieces = tokens->strings;
  const size_t n = v.pieces.size();

  if (f.find("tokenizer.ggml.scores") != nullptr) {
    SLUICE_ASSIGN_OR_RETURN(const GgufArray* scores, typed_array(f, "tokenizer.ggml.scores",
                                                                 {GgufType::kF32, GgufType::kI32}));
    v.scores.reserve(scores->size());
    for (double d : scores->floats) v.scores.push_back(static_cast<float>(d));
    for (int64_t i : scores->ints) v.scores.push_back(static_cast<float>(i));
  }
  v.types.assign(n, TokenType::kNormal);
  if (f.find("tokenizer.ggml.token_type") != nullptr) {
    SLUICE_ASSIGN_OR_RETURN(const GgufArray* types,
                            typed_array(f, "tokenizer.ggml.token_type", {GgufType::kI32}));
    if (types->ints.size() != n) {
      return Status::invalid_argument(
          fmt::format("{}: tokenizer.ggml.token_type has {} entries for {} tokens", f.name(),
                      types->ints.size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t t = types->ints[i];
      if (t < 1 || t > 6) {
        return Status::invalid_argument(
            fmt::format("{}: tokenizer.ggml.token_type[{}] is {}; expected 1 (normal) to 6 (byte)",
                        f.name(), i, t));
      }
      v.types[i] = static_cast<TokenType>(t);
    }
  }
  apply_llama_cpp_type_fixes(&v);

  if (v.model == ModelKind::kBpeMerges) {
    SLUICE_ASSIGN_OR_RETURN(const GgufArray* merges,
                            typed_array(f, "tokenizer.ggml.merges", {GgufType::kString}));
    if (merges->strings.size() > kMaxMerges) {
      return Status::invalid_argument(
          fmt::format("{}: tokenizer.ggml.merges has {} entries, limit {}", f.name(),
                      merges->strings.size(), kMaxMerges));
    }
    v.merges.reserve(merges->strings.size());
    for (size_t i = 0; i < merges->strings.size(); ++i) {
      const std::string& m = merges->strings[i];
      // "left right"; the first space at or after byte 1 separates them.
      size_t sep = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sep == std::string::npos) {
        return Status::invalid_argument(
            fmt::format("{}: tokenizer.ggml.merges[{}] ('{}') has no space between its two parts",
                        f.name(), i, printable_piece(m)));
      }
      v.merges.emplace_back(m.substr(0, sep), m.substr(sep + 1));
    }
  }

  SLUICE_ASSIGN_OR_RETURN(v.bos_id, optional_id(f, "tokenizer.ggml.bos_token_id", n, -1));
  SLUICE_ASSIGN_OR_RETURN(v.eos_id, optional_id(f, "tokenizer.ggml.eos_token_id", n, -1));
  SLUICE_ASSIGN_OR_RETURN(v.unk_id, optional_id(f, "tokenizer.ggml.unknown_token_id", n, -1));
  SLUICE_ASSIGN_OR_RETURN(v.pad_id, optional_id(f, "tokenizer.ggml.padding_token_id", n, -1));
  if (v.model == ModelKind::kSpmScores) {
    // llama.cpp's defaults for SentencePiece files that omit the keys.
    SLUICE_ASSIGN_OR_RETURN(v.add_bos,
                            optional_bool(f, "tokenizer.ggml.add_bos_token", v.bos_id >= 0));
    SLUICE_ASSIGN_OR_RETURN(v.add_space_prefix,
                            optional_bool(f, "tokenizer.ggml.add_space_prefix", true));
  } else {
    // NOTE: llama.cpp forces BOS on for Gemma 4 whatever the file says, and never adds a
    // prefix space to a BPE model.
    v.add_bos = v.bos_id >= 0;
    v.add_space_prefix = false;
  }
  return Tokenizer::create(std::move(v));
}

}  // namespace sluice::tokenizer
