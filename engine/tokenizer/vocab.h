#pragma once
// TokenizerVocab: everything a tokenizer is built from, as plain data. The GGUF and
// tokenizer.json loaders only fill this struct; Tokenizer::create() validates it and builds
// its lookup tables. Keeping the algorithms behind a plain struct lets tests build tiny
// vocabularies by hand and lets each file format stay a thin adapter.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::tokenizer {

// Token types, numbered as in GGUF `tokenizer.ggml.token_type` (and SentencePiece).
enum class TokenType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // matched in input only when special parsing is on; renders empty
  kUserDefined = 4,  // always matched in input; always renders as its text
  kUnused = 5,       // never produced by encode; renders empty
  kByte = 6,         // "<0xAB>": one raw byte
};

// How the text between special tokens becomes ids.
enum class ModelKind : uint8_t {
  // SentencePiece BPE as llama.cpp's SPM tokenizer runs it: start from UTF-8 characters,
  // repeatedly merge the adjacent pair whose concatenation is the vocab piece with the
  // highest score (ties: leftmost), then byte-fallback what is left. Gemma 3.
  kSpmScores,
  // Rank-ordered BPE over UTF-8 characters: repeatedly merge the adjacent pair with the
  // lowest merge rank (ties: leftmost). Gemma 4 (GGUF "gemma4", tokenizer.json BPE).
  kBpeMerges,
};

// How special-token texts are found in the input.
enum class SpecialMatch : uint8_t {
  // llama.cpp: for each special token, longest text first, split every remaining text
  // fragment at its leftmost non-overlapping occurrences.
  kLongestFirst,
  // Hugging Face tokenizers: scan left to right, at each position take the longest match.
  kLeftmostLongest,
};

// Pre-split of a text fragment before the BPE model (kBpeMerges only).
enum class PreSplit : uint8_t {
  kNone,
  kNewlineRuns,  // maximal runs of `[^\n]+|[\n]+`
};

// When a whole pre-split word that is itself a vocab piece skips the merges (kBpeMerges).
enum class WholeWord : uint8_t {
  kNever,
  kNewlineRuns,  // only words made of '\n' (llama.cpp's Gemma 4 rule)
  kAlways,       // every word (tokenizer.json "ignore_merges": true)
};

// Size bounds checked on load: a file that exceeds them is rejected, never allocated.
inline constexpr size_t kMaxVocabSize = size_t{1} << 22;  // 4,194,304 pieces
inline constexpr size_t kMaxPieceBytes = 4096;
inline constexpr size_t kMaxMerges = size_t{1} << 23;  // 8,388,608 merges

struct TokenizerVocab {
  std::string name;  // where it came from, for error messages ("model.gguf")
  ModelKind model = ModelKind::kSpmScores;

  std::vector<std::string> pieces;  // [vocab_size] piece text; spaces appear as U+2581
  std::vector<float> scores;        // [vocab_size], or empty for all zero
  std::vector<TokenType> types;     // [vocab_size], or empty for all kNormal
  // kBpeMerges only: merge i (its rank) joins merges[i].first and merges[i].second. Both
  // parts and their concatenation must be pieces; a pair may appear only once.
  std::vector<std::pair<std::string, std::string>> merges;

  int32_t bos_id = -1;  // -1: none
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;           // the model's default for raw prompts
  bool add_space_prefix = false;  // kSpmScores: prepend ' ' to text that follows a special
  bool escape_spaces = true;      // replace ' ' with U+2581 before the model

  SpecialMatch special_match = SpecialMatch::kLongestFirst;
  PreSplit pre_split = PreSplit::kNone;
  WholeWord whole_words = WholeWord::kNever;
};

// "▁" (U+2581, LOWER ONE EIGHTH BLOCK) in UTF-8.
inline constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";

// The byte a "<0xAB>" piece stands for (hex digits in either case), or nullopt when the
// text is not exactly that form.
std::optional<uint8_t> parse_byte_piece(std::string_view piece);

// The canonical byte piece text, "<0xAB>" (upper-case hex).
std::string byte_piece(uint8_t byte);

// A piece made safe for a one-line error message: control bytes as \xAB, at most 40 bytes.
std::string printable_piece(std::string_view piece);

// Checks array lengths, size bounds, token types, special ids and byte pieces. The first
// problem found is returned as INVALID_ARGUMENT naming `vocab.name`, the field, the value
// and the limit. Merges are checked by Tokenizer::create() when it indexes them.
Status validate_vocab(const TokenizerVocab& vocab);

}  // namespace sluice::tokenizer
