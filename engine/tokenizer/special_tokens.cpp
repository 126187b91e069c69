#include "engine/tokenizer/special_tokens.h"

#include <algorithm>

namespace sluice::tokenizer {

void SpecialTokenMatcher::build(const std::vector<std::string>* pieces,
                                const std::vector<TokenType>& types) {
  pieces_ = pieces;
  order_.clear();
  nodes_.assign(1, Node{});
  root_kids_.fill(-1);
  for (size_t id = 0; id < types.size(); ++id) {
    TokenType t = types[id];
    if (t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined) {
      order_.push_back(static_cast<int32_t>(id));
    }
  }
  // NOTE: the same (unstable) sort on the same id-ordered input as llama.cpp, so that even
  // equal-length special tokens are tried in the same order when built with libstdc++.
  std::sort(order_.begin(), order_.end(),
            [pieces](int32_t a, int32_t b) { return (*pieces)[a].size() > (*pieces)[b].size(); });
  for (size_t rank = 0; rank < order_.size(); ++rank) {
    int32_t id = order_[rank];
    insert((*pieces)[id], id, static_cast<int32_t>(rank), types[id] == TokenType::kUserDefined);
  }
}

int32_t SpecialTokenMatcher::child(int32_t node, uint8_t byte) const {
  if (node == 0) return root_kids_[byte];
  for (const auto& [b, next] : nodes_[node].kids) {
    if (b == byte) return next;
    if (b > byte) break;
  }
  return -1;
}

void SpecialTokenMatcher::insert(std::string_view text, int32_t token, int32_t rank, bool always) {
  if (text.empty()) return;  // an empty text can never be matched
  int32_t node = 0;
  for (char c : text) {
    auto byte = static_cast<uint8_t>(c);
    int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.push_back(Node{});
      if (node == 0) {
        root_kids_[byte] = next;
      } else {
        auto& kids = nodes_[node].kids;
        auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(byte, int32_t{-1}));
        kids.insert(it, {byte, next});
      }
    }
    node = next;
  }
  Node& n = nodes_[node];
  if (n.token < 0) {  // a repeated text keeps the earlier-tried token
    n.token = token;
    n.rank = rank;
    n.always = always;
  }
}

void SpecialTokenMatcher::partition(std::string_view text, bool parse_special, SpecialMatch mode,
                                    std::vector<Fragment>* out) const {
  out->clear();
  if (text.empty()) return;
  if (order_.empty()) {
    out->push_back(Fragment{0, text.size(), -1});
    return;
  }
  if (mode == SpecialMatch::kLongestFirst) {
    partition_longest_first(text, parse_special, out);
  } else {
    partition_leftmost_longest(text, parse_special, out);
  }
}

void SpecialTokenMatcher::partition_longest_first(std::string_view text, bool parse_special,
                                                  std::vector<Fragment>* out) const {
  // Which special tokens occur anywhere in the text? Only those can split a fragment, since
  // every fragment is a substring of the text.
  std::vector<uint8_t> seen(order_.size(), 0);
  std::vector<int32_t> found;  // ranks
  for (size_t p = 0; p < text.size(); ++p) {
    int32_t node = root_kids_[static_cast<uint8_t>(text[p])];
    for (size_t q = p + 1; node >= 0; ++q) {
      const Node& n = nodes_[node];
      if (n.token >= 0 && (n.always || parse_special) && !seen[n.rank]) {
        seen[n.rank] = 1;
        found.push_back(n.rank);
      }
      if (q >= text.size() || n.kids.empty()) break;
      node = child(node, static_cast<uint8_t>(text[q]));
    }
  }
  out->push_back(Fragment{0, text.size(), -1});
  if (found.empty()) return;
  std::sort(found.begin(), found.end());

  // Then, as llama.cpp does: each token in turn (longest first) splits every raw fragment
  // at its leftmost non-overlapping occurrences.
  std::vector<Fragment> next;
  for (int32_t rank : found) {
    const int32_t id = order_[rank];
    std::string_view tok = (*pieces_)[id];
    next.clear();
    for (const Fragment& f : *out) {
      if (f.token >= 0 || f.length < tok.size()) {
        next.push_back(f);
        continue;
      }
      size_t base = f.offset;
      const size_t end = f.offset + f.length;
      std::string_view window = text.substr(0, end);
      for (;;) {
        size_t pos = window.find(tok, base);
        if (pos == std::string_view::npos) break;
        if (pos > base) next.push_back(Fragment{base, pos - base, -1});
        next.push_back(Fragment{pos, tok.size(), id});
        base = pos + tok.size();
      }
      if (base < end) next.push_back(Fragment{base, end - base, -1});
    }
    out->swap(next);
  }
}

void SpecialTokenMatcher::partition_leftmost_longest(std::string_view text, bool parse_special,
                                                     std::vector<Fragment>* out) const {
  size_t raw_start = 0;
  size_t p = 0;
  while (p < text.size()) {
    int32_t best = -1;
    size_t best_len = 0;
    int32_t node = root_kids_[static_cast<uint8_t>(text[p])];
    for (size_t q = p + 1; node >= 0; ++q) {
      const Node& n = nodes_[node];
      if (n.token >= 0 && (n.always || parse_special)) {
        best = n.token;
        best_len = q - p;
      }
      if (q >= text.size() || n.kids.empty()) break;
      node = child(node, static_cast<uint8_t>(text[q]));
    }
    if (best < 0) {
      ++p;
      continue;
    }
    if (p > raw_start) out->push_back(Fragment{raw_start, p - raw_start, -1});
    out->push_back(Fragment{p, best_len, best});
    p += best_len;
    raw_start = p;
  }
  if (raw_start < text.size()) out->push_back(Fragment{raw_start, text.size() - raw_start, -1});
}

}  // namespace sluice::tokenizer
