#pragma once
// SpecialTokenMatcher: finds the texts of special tokens (CONTROL, UNKNOWN, USER_DEFINED)
// in the input and splits it into fragments, before any model sees it. USER_DEFINED tokens
// are always matched; CONTROL and UNKNOWN tokens only when the caller parses special
// tokens. Built once per Tokenizer, read-only afterwards. Internal to engine/tokenizer.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/vocab.h"

namespace sluice::tokenizer {

// A piece of the input: raw text [offset, offset + length), or one special token.
struct Fragment {
  size_t offset = 0;
  size_t length = 0;
  int32_t token = -1;  // -1: raw text
};

class SpecialTokenMatcher {
 public:
  // Indexes every special token of `pieces`/`types` (which must outlive the matcher).
  void build(const std::vector<std::string>* pieces, const std::vector<TokenType>& types);

  // Splits `text` into fragments in input order; `out` is cleared first. Raw fragments
  // are never empty.
  void partition(std::string_view text, bool parse_special, SpecialMatch mode,
                 std::vector<Fragment>* out) const;

  size_t num_special() const { return order_.size(); }

 private:
  struct Node {
    int32_t token = -1;   // id of the special token spelled by the path to here
    int32_t rank = -1;    // its position in order_
    bool always = false;  // USER_DEFINED: matched even without special parsing
    std::vector<std::pair<uint8_t, int32_t>> kids;  // (byte, node), sorted by byte
  };

  int32_t child(int32_t node, uint8_t byte) const;
  void insert(std::string_view text, int32_t token, int32_t rank, bool always);
  void partition_longest_first(std::string_view text, bool parse_special,
                               std::vector<Fragment>* out) const;
  void partition_leftmost_longest(std::string_view text, bool parse_special,
                                  std::vector<Fragment>* out) const;

  const std::vector<std::string>* pieces_ = nullptr;
  // Special ids in the order llama.cpp tries them: by text length, longest first.
  std::vector<int32_t> order_;
  std::vector<Node> nodes_;               // nodes_[0] is the root
  std::array<int32_t, 256> root_kids_{};  // dense first level; -1: no token starts so
};

}  // namespace sluice::tokenizer
