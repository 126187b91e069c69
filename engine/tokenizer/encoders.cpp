#include "engine/tokenizer/encoders.h"

#include <queue>

namespace sluice::tokenizer {
namespace {

// One symbol of the text being merged: a run of bytes [offset, offset + length) in a
// doubly linked list of the live symbols. A symbol merged into its left neighbour keeps
// length 0.
struct Symbol {
  int32_t prev = -1;
  int32_t next = -1;
  size_t offset = 0;
  size_t length = 0;
  int32_t id = -1;  // piece id of the symbol's text (rank BPE only); -1 if none
};

// One symbol per UTF-8 character (a truncated sequence at the end is one short symbol).
std::vector<Symbol> split_chars(std::string_view text) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  size_t offset = 0;
  int32_t index = 0;
  while (offset < text.size()) {
    Symbol s;
    s.offset = offset;
    s.length = std::min(utf8_len(static_cast<uint8_t>(text[offset])), text.size() - offset);
    offset += s.length;
    s.prev = index - 1;
    s.next = offset == text.size() ? -1 : index + 1;
    ++index;
    symbols.push_back(s);
  }
  return symbols;
}

struct ScoredPair {
  float score;
  int32_t left;
  int32_t right;
  size_t size;  // bytes of left + right when queued; a mismatch later means stale
};

// Max-heap order: higher score first, then the leftmost pair.
struct ScoreOrder {
  bool operator()(const ScoredPair& a, const ScoredPair& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

struct RankedPair {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t left_id;  // the ids when queued; a mismatch later means stale
  int32_t right_id;
  int32_t result;
};

// Min-heap order: lower rank first, then the leftmost pair.
struct RankOrder {
  bool operator()(const RankedPair& a, const RankedPair& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

// Unlinks `right` after merging it into `left`.
void absorb(std::vector<Symbol>& symbols, int32_t left, int32_t right) {
  Symbol& l = symbols[left];
  Symbol& r = symbols[right];
  l.length += r.length;
  r.length = 0;
  l.next = r.next;
  if (r.next >= 0) symbols[r.next].prev = left;
}

}  // namespace

void encode_by_scores(std::string_view text, const PieceIndex& index,
                      const std::vector<float>& scores, const ByteFallback& bytes,
                      std::vector<int32_t>* out) {
  if (text.empty()) return;
  std::vector<Symbol> symbols = split_chars(text);
  std::priority_queue<ScoredPair, std::vector<ScoredPair>, ScoreOrder> heap;

  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    size_t size = symbols[left].length + symbols[right].length;
    int32_t id = index.find(text.substr(symbols[left].offset, size));
    if (id < 0) return;
    heap.push(ScoredPair{scores[id], left, right, size});
  };

  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_pair(i - 1, i);
  while (!heap.empty()) {
    ScoredPair top = heap.top();
    heap.pop();
    const Symbol& l = symbols[top.left];
    const Symbol& r = symbols[top.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != top.size) continue;
    absorb(symbols, top.left, top.right);
    try_pair(symbols[top.left].prev, top.left);
    try_pair(top.left, symbols[top.left].next);
  }

  // Symbol 0 is never merged away (merges fold the right symbol into the left one).
  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    std::string_view piece = text.substr(symbols[i].offset, symbols[i].length);
    int32_t id = index.find(piece);
    if (id >= 0) {
      out->push_back(id);
    } else {
      bytes.emit(piece, out);
    }
  }
}

void encode_by_ranks(std::string_view text, const PieceIndex& index, const MergeTable& merges,
                     const ByteFallback& bytes, std::vector<int32_t>* out) {
  if (text.empty()) return;
  std::vector<Symbol> symbols = split_chars(text);
  for (Symbol& s : symbols) s.id = index.find(text.substr(s.offset, s.length));
  std::priority_queue<RankedPair, std::vector<RankedPair>, RankOrder> heap;

  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    int32_t left_id = symbols[left].id;
    int32_t right_id = symbols[right].id;
    if (left_id < 0 || right_id < 0) return;
    const MergeTable::Entry* e = merges.find(left_id, right_id);
    if (e == nullptr) return;
    heap.push(RankedPair{e->rank, left, right, left_id, right_id, e->result});
  };

  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_pair(i - 1, i);
  while (!heap.empty()) {
    RankedPair top = heap.top();
    heap.pop();
    const Symbol& l = symbols[top.left];
    const Symbol& r = symbols[top.right];
    // A symbol keeps its id until it merges, and a merged text is longer than either part,
    // so equal ids mean both symbols are unchanged (and therefore still adjacent).
    if (l.length == 0 || r.length == 0 || l.id != top.left_id || r.id != top.right_id) continue;
    absorb(symbols, top.left, top.right);
    symbols[top.left].id = top.result;
    try_pair(symbols[top.left].prev, top.left);
    try_pair(top.left, symbols[top.left].next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out->push_back(s.id);
    } else {
      bytes.emit(text.substr(s.offset, s.length), out);
    }
  }
}

}  // namespace sluice::tokenizer
