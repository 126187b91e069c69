#pragma once
// The two merge algorithms that turn one fragment of plain text (no special tokens left in
// it, spaces already escaped to U+2581) into ids. Both start from one symbol per UTF-8
// character (utf8_len), merge adjacent symbols with a heap until no merge applies, and spell
// any symbol that is not a piece with byte-fallback ids. Stateless; internal to
// engine/tokenizer.

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/tokenizer/piece_index.h"

namespace sluice::tokenizer {

// SentencePiece BPE by scores (llama.cpp's SPM tokenizer): merges the adjacent pair whose
// concatenation is a piece with the highest score, leftmost first among equal scores.
// `scores` has one entry per piece. Appends to `out`.
void encode_by_scores(std::string_view text, const PieceIndex& index,
                      const std::vector<float>& scores, const ByteFallback& bytes,
                      std::vector<int32_t>* out);

// BPE by merge rank: merges the adjacent pair with the lowest rank, leftmost first among
// equal ranks. `text` is one pre-split word. Appends to `out`.
void encode_by_ranks(std::string_view text, const PieceIndex& index, const MergeTable& merges,
                     const ByteFallback& bytes, std::vector<int32_t>* out);

}  // namespace sluice::tokenizer
