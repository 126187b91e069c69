#include "frontend/stop_matcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "frontend/utf8.h"

namespace sluice::frontend {

StatusOr<std::shared_ptr<const StopStrings>> StopStrings::compile(
    std::span<const std::string> stops) {
  size_t total_bytes = 0;
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) {
      return Status::invalid_argument(fmt::format("stop[{}] is an empty string", i));
    }
    if (!is_valid_utf8(stops[i])) {
      return Status::invalid_argument(fmt::format("stop[{}] is not valid UTF-8", i));
    }
    total_bytes += stops[i].size();
  }
  if (total_bytes > kMaxStopBytesTotal) {
    return Status::invalid_argument(fmt::format(
        "stop strings total {} bytes; at most {} are allowed", total_bytes, kMaxStopBytesTotal));
  }

  std::shared_ptr<StopStrings> s(new StopStrings());
  s->strings_.assign(stops.begin(), stops.end());
  for (const auto& str : stops) s->max_length_bytes_ = std::max(s->max_length_bytes_, str.size());

  // Build the trie from the strings in sorted order: each new string shares its longest
  // common prefix with the previous one, and a node's children are then created in
  // increasing byte order, so one stable counting sort by parent gives sorted edge groups.
  std::vector<int32_t> order(stops.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return stops[a] < stops[b]; });
  struct RawEdge {
    int32_t parent;
    int32_t child;
    uint8_t byte;
  };
  std::vector<RawEdge> raw;
  raw.reserve(total_bytes);
  std::vector<Node>& nodes = s->nodes_;
  nodes.reserve(total_bytes + 1);
  nodes.emplace_back();          // root
  std::vector<int32_t> path{0};  // path[d]: the node at depth d on the previous string
  std::string_view prev;
  for (int32_t idx : order) {
    const std::string_view str = stops[static_cast<size_t>(idx)];
    size_t common = 0;
    while (common < prev.size() && common < str.size() && prev[common] == str[common]) ++common;
    path.resize(common + 1);
    for (size_t d = common; d < str.size(); ++d) {
      const auto id = static_cast<int32_t>(nodes.size());
      Node node;
      node.depth = static_cast<int32_t>(d + 1);
      nodes.push_back(node);
      raw.push_back({path[d], id, static_cast<uint8_t>(str[d])});
      path.push_back(id);
    }
    Node& end = nodes[static_cast<size_t>(path[str.size()])];
    if (end.match < 0 || idx < end.match) end.match = idx;  // duplicates: first index wins
    prev = str;
  }

  // Edges grouped by parent (counting sort; stable, so bytes stay sorted in a group).
  for (const RawEdge& e : raw) ++nodes[static_cast<size_t>(e.parent)].num_edges;
  uint32_t offset = 0;
  for (Node& n : nodes) {
    n.first_edge = offset;
    offset += n.num_edges;
  }
  s->edge_byte_.resize(raw.size());
  s->edge_child_.resize(raw.size());
  {
    std::vector<uint32_t> fill(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) fill[i] = nodes[i].first_edge;
    for (const RawEdge& e : raw) {
      const uint32_t at = fill[static_cast<size_t>(e.parent)]++;
      s->edge_byte_[at] = e.byte;
      s->edge_child_[at] = e.child;
    }
  }
  s->root_next_.fill(0);
  for (uint32_t k = 0; k < nodes[0].num_edges; ++k) {
    s->root_next_[s->edge_byte_[k]] = s->edge_child_[k];
  }

  // Failure links and inherited matches, breadth first (a node's failure target is
  // shallower, so it is complete before the node is reached).
  std::vector<int32_t> queue;
  queue.reserve(nodes.size());
  queue.push_back(0);
  for (size_t head = 0; head < queue.size(); ++head) {
    const int32_t u = queue[head];
    const Node un = nodes[static_cast<size_t>(u)];
    for (uint32_t k = un.first_edge; k < un.first_edge + un.num_edges; ++k) {
      const uint8_t byte = s->edge_byte_[k];
      const int32_t v = s->edge_child_[k];
      int32_t f = 0;
      if (u != 0) f = s->next(un.fail, byte);
      Node& vn = nodes[static_cast<size_t>(v)];
      vn.fail = f;
      // A string ending exactly here is the longest match; else inherit the longest one
      // ending at the failure target (a proper suffix).
      if (vn.match < 0) vn.match = nodes[static_cast<size_t>(f)].match;
      queue.push_back(v);
    }
  }
  return std::shared_ptr<const StopStrings>(std::move(s));
}

int32_t StopStrings::child(int32_t state, uint8_t byte) const {
  const Node& n = nodes_[static_cast<size_t>(state)];
  const uint8_t* begin = edge_byte_.data() + n.first_edge;
  const uint8_t* end = begin + n.num_edges;
  const uint8_t* it;
  if (n.num_edges <= 8) {
    it = std::find(begin, end, byte);
  } else {
    it = std::lower_bound(begin, end, byte);
    if (it != end && *it != byte) it = end;
  }
  return it == end ? -1 : edge_child_[n.first_edge + static_cast<uint32_t>(it - begin)];
}

int32_t StopStrings::next(int32_t state, uint8_t byte) const {
  while (state != 0) {
    const int32_t c = child(state, byte);
    if (c >= 0) return c;
    state = nodes_[static_cast<size_t>(state)].fail;
  }
  return root_next_[byte];
}

StopMatcher::StopMatcher(std::shared_ptr<const StopStrings> stops, bool include_stop_str)
    : stops_(std::move(stops)), include_stop_str_(include_stop_str) {
  if (stops_) held_.reserve(stops_->max_length_bytes());
}

bool StopMatcher::push(std::string_view text, std::string* out, bool check) {
  if (stopped()) return true;
  if (!stops_ || stops_->size() == 0) {
    out->append(text);
    return false;
  }
  const size_t base = held_.size();
  held_.append(text);
  int32_t s = state_;
  for (size_t k = base; k < held_.size(); ++k) {
    s = stops_->next(s, static_cast<uint8_t>(held_[k]));
    const int32_t m = stops_->match(s);
    if (m >= 0 && check) {
      // The match is the last size(m) bytes of held_[0, k]: held_ always keeps at least
      // the matched prefix (it holds depth(state) bytes, and a match is never deeper).
      const size_t end = k + 1;
      out->append(held_.data(), include_stop_str_ ? end : end - stops_->string(m).size());
      held_.clear();
      stop_index_ = m;
      return true;
    }
  }
  state_ = s;
  const size_t keep = static_cast<size_t>(stops_->depth(s));
  const size_t emit = held_.size() - keep;
  out->append(held_.data(), emit);
  held_.erase(0, emit);
  return false;
}

void StopMatcher::flush(std::string* out) {
  if (stopped()) return;
  out->append(held_);
  held_.clear();
  state_ = 0;
}

}  // namespace sluice::frontend
