#pragma once
// Lookup tables the encoders share, built once per Tokenizer and read-only afterwards (so
// any number of threads may encode at once):
//   PieceIndex  piece text -> id (open addressing over the vocabulary's own strings)
//   MergeTable  (left id, right id) -> (rank, merged id) for rank-ordered BPE
//   ByteFallback byte -> the id that spells it when no piece covers a character
// Internal to engine/tokenizer.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::tokenizer {

class PieceIndex {
 public:
  // Indexes `pieces` (which must outlive the index and not move). Empty pieces are not
  // indexed; when a text appears twice the lower id wins.
  void build(const std::vector<std::string>* pieces);
  // The id of the piece whose text is exactly `text`, or -1.
  int32_t find(std::string_view text) const;

 private:
  struct Slot {
    uint32_t hash = 0;
    int32_t id = -1;  // -1: empty slot
  };
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<Slot> slots_;  // power-of-two size, at most half full
  uint64_t mask_ = 0;
  size_t max_bytes_ = 0;  // the longest piece: longer texts are rejected without hashing
};

class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;  // (left id << 32) | right id
    int32_t rank = 0;
    int32_t result = 0;  // id of the concatenated piece
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  // Resolves every merge against `index`. INVALID_ARGUMENT naming `name` and the merge's
  // rank when a part or the concatenation is not a piece, or when a pair repeats.
  Status build(const std::vector<std::pair<std::string, std::string>>& merges,
               const PieceIndex& index, const std::string& name);
  // The merge of the two pieces, or nullptr.
  const Entry* find(int32_t left, int32_t right) const;
  bool empty() const { return count_ == 0; }

 private:
  std::vector<Entry> slots_;
  uint64_t mask_ = 0;
  size_t count_ = 0;
};

struct ByteFallback {
  // Per byte: the id of "<0xAB>" or, failing that (score models only), of the one-byte
  // piece; -1 when neither exists.
  std::array<int32_t, 256> ids{};
  int32_t unk_id = -1;

  // Appends the ids spelling `bytes` one byte at a time; a byte without an id becomes
  // unk_id, or nothing when there is no unknown token either.
  void emit(std::string_view bytes, std::vector<int32_t>* out) const;
};

// The length of the UTF-8 sequence that starts with `lead`, judged by its high bits alone
// (1 for ASCII and for stray continuation bytes, 2/3/4 for lead bytes), as llama.cpp
// splits text into symbols. Never validates the continuation bytes.
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

}  // namespace sluice::tokenizer
