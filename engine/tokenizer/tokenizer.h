#pragma once
// Tokenizer: text <-> token ids for Gemma 3 and Gemma 4, byte-exact with llama.cpp (GGUF)
// and Hugging Face tokenizers (tokenizer.json). It owns the vocabulary (TokenizerVocab)
// and the lookup tables built from it once at load; the server's front-end threads call
// encode() on request text and decode() on generated ids. Every method is const and safe
// to call from any number of threads at once.
//
// Encoding, in order:
//   1. split the input at special-token texts (USER_DEFINED always, CONTROL/UNKNOWN only
//      with parse_special), each becoming its id;
//   2. in each remaining fragment replace ' ' with U+2581 (no prefix space for Gemma);
//   3. run the model: SentencePiece BPE by scores (Gemma 3) or BPE by merge rank over
//      newline-split words (Gemma 4); characters with no piece fall back to <0xAB> bytes.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer/piece_index.h"
#include "engine/tokenizer/special_tokens.h"
#include "engine/tokenizer/vocab.h"

namespace sluice::weights {
class GgufFile;
}

namespace sluice::tokenizer {

class Tokenizer {
 public:
  // Validates `vocab` (validate_vocab, then the merges) and builds the lookup tables.
  static StatusOr<std::unique_ptr<Tokenizer>> create(TokenizerVocab vocab);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids for `text` (any bytes; invalid UTF-8 falls back to byte tokens). With
  // `add_bos`, the BOS id comes first (when the vocabulary has one). With `parse_special`,
  // CONTROL token texts such as "<start_of_turn>" or "<bos>" become their ids; without it
  // they are tokenized as plain text. Rendered chat templates need parse_special = true
  // and add_bos = false (the template writes "<bos>" itself).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // The bytes `ids` stand for: U+2581 becomes ' ', byte tokens their raw byte, USER_DEFINED
  // tokens their text, CONTROL/UNKNOWN tokens nothing unless `render_special` (then their
  // text), UNUSED tokens and ids out of range nothing. The result may be invalid UTF-8 when
  // the ids end inside a character; callers streaming text hold such a tail back.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;
  // Appends the bytes of one id, as decode() renders it.
  void append_token_text(int32_t id, bool render_special, std::string* out) const;

  // The vocabulary's text for `id` (spaces as U+2581, bytes as "<0xAB>"); empty when out
  // of range.
  const std::string& token_piece(int32_t id) const;
  // The id whose piece text is exactly `piece`, if any.
  std::optional<int32_t> token_id(std::string_view piece) const;

  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.pieces.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  int32_t unk_id() const { return vocab_.unk_id; }
  int32_t pad_id() const { return vocab_.pad_id; }
  // Whether a raw (non-chat) prompt gets BOS by the model's own configuration.
  bool add_bos_default() const { return vocab_.add_bos; }
  ModelKind model_kind() const { return vocab_.model; }
  const std::string& name() const { return vocab_.name; }

  // kNormal for ids out of range.
  TokenType token_type(int32_t id) const;
  // CONTROL or UNKNOWN: hidden from decoded text unless asked for.
  bool is_control(int32_t id) const;
  // CONTROL, UNKNOWN or USER_DEFINED: the tokens matched whole in the input.
  bool is_special(int32_t id) const;
  bool is_byte(int32_t id) const { return token_type(id) == TokenType::kByte; }

  // The vocabulary as loaded, scores and types filled in; merges are dropped once indexed.
  const TokenizerVocab& vocab() const { return vocab_; }

 private:
  explicit Tokenizer(TokenizerVocab vocab);
  Status build_tables();
  void encode_fragment(std::string_view raw, bool prefix_space, std::vector<int32_t>* out) const;

  TokenizerVocab vocab_;  // scores and types filled to vocab size
  PieceIndex index_;
  MergeTable merges_;
  ByteFallback bytes_;
  SpecialTokenMatcher specials_;
  std::vector<int16_t> byte_of_;  // [vocab] the byte of a kByte token, else -1
};

// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`): model "llama" (Gemma 3,
// scores) or "gemma4" (merges). INVALID_ARGUMENT / NOT_FOUND naming the file and key when
// a key is missing, mistyped or inconsistent; UNIMPLEMENTED for other tokenizer models.
// NOTE: defaults and token types follow llama.cpp's loader, so ids and text agree with it:
// texts it takes for end-of-generation markers are CONTROL whatever the file says (Gemma
// 3's HTML tag "</s>" and Gemma 4's "<|tool_response>" then render empty unless asked),
// and Gemma 4 always adds BOS.
StatusOr<std::unique_ptr<Tokenizer>> from_gguf(const weights::GgufFile& gguf);

// Builds the tokenizer a Hugging Face `tokenizer.json` describes (a BPE model with
// byte fallback, Gemma's space-replacing normalizer and an optional newline split), with
// `add_bos_token` and the special tokens read from `tokenizer_config_path` when it is not
// empty. UNIMPLEMENTED names any normalizer, pre-tokenizer or model setting outside that.
StatusOr<std::unique_ptr<Tokenizer>> from_hf_json(const std::string& tokenizer_json_path,
                                                  const std::string& tokenizer_config_path = "");

}  // namespace sluice::tokenizer
