#pragma once
// Stop strings for streamed text. A request's stop list is compiled once (StopStrings, an
// Aho-Corasick automaton, immutable and shared by all choices of the request); each
// stream gets its own StopMatcher, fed the detokenizer's deltas on the stream's front-end
// thread.
//
// Semantics (OpenAI's, streamed): the output ends right before the first place any stop
// string completes, and the stop string itself is not sent (unless include_stop_str, as
// vLLM's include_stop_str_in_output). Text that could still be the start of a stop string
// is held back until the next bytes rule the match in or out, so a partial match never
// reaches the client; at the end of a stream without a stop, flush() releases it.
// Matching is on bytes of the emitted text, so it does not depend on how the text was cut
// into tokens: the first stop string to complete wins and, of several completing at the
// same byte, the longest (it starts earliest). A stop string that is a prefix of another
// therefore stops first ("foo" before "foobar").
//
// Cost: compile is O(total stop bytes) time and about 25 bytes of memory per stop byte;
// push is amortised O(1) per byte, whatever the number of stop strings; a stream holds
// back at most (longest stop string - 1) bytes.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::frontend {

// Upper bound on the total bytes of one stop list, far above the API's own limits (16
// strings of 256 bytes): it only keeps the automaton's int32 indices and memory sane.
inline constexpr size_t kMaxStopBytesTotal = size_t{16} << 20;

class StopStrings {
 public:
  // Compiles `stops` (duplicates allowed; the first index is reported). INVALID_ARGUMENT,
  // naming the index, for an empty string or one that is not valid UTF-8 (it could cut a
  // character in two); INVALID_ARGUMENT when the total exceeds kMaxStopBytesTotal.
  static StatusOr<std::shared_ptr<const StopStrings>> compile(std::span<const std::string> stops);

  size_t size() const { return strings_.size(); }
  const std::string& string(int32_t index) const { return strings_[static_cast<size_t>(index)]; }
  size_t max_length_bytes() const { return max_length_bytes_; }

  // The automaton, for StopMatcher. State 0 is the root (nothing matched).
  int32_t next(int32_t state, uint8_t byte) const;
  // Length of the longest suffix of the text read so far that is a prefix of a stop string.
  int32_t depth(int32_t state) const { return nodes_[static_cast<size_t>(state)].depth; }
  // Index of the longest stop string ending at this state, or -1.
  int32_t match(int32_t state) const { return nodes_[static_cast<size_t>(state)].match; }

 private:
  struct Node {
    int32_t fail = 0;
    int32_t depth = 0;
    int32_t match = -1;
    uint32_t first_edge = 0;
    uint32_t num_edges = 0;
  };

  StopStrings() = default;
  // The child of `state` by `byte`, or -1.
  int32_t child(int32_t state, uint8_t byte) const;

  std::vector<std::string> strings_;
  size_t max_length_bytes_ = 0;
  std::vector<Node> nodes_;               // [num_nodes], node 0 is the root
  std::vector<uint8_t> edge_byte_;        // [num_edges], grouped by parent, sorted within a group
  std::vector<int32_t> edge_child_;       // [num_edges]
  std::array<int32_t, 256> root_next_{};  // the root's transitions, dense (0 = stay at root)
};

class StopMatcher {
 public:
  // `stops` may be null (no stop strings: text passes straight through).
  explicit StopMatcher(std::shared_ptr<const StopStrings> stops, bool include_stop_str = false);

  // Feeds the next piece of the stream's text (valid UTF-8, as the detokenizer emits).
  // Appends to *out the text that can no longer be part of a stop string. Returns true
  // when a stop string has completed: *out then ends right before it (or right after it
  // with include_stop_str), the rest of `text` is dropped, and later calls append nothing
  // and return true. With check == false, stop strings completing inside this piece are
  // ignored (tokens before min_tokens), but text is still held back so that a stop string
  // starting here and completing in a checked piece is caught.
  bool push(std::string_view text, std::string* out, bool check = true);
  // End of stream without a stop (length, EOS or a stop token): appends the held-back
  // text. Nothing after a stop.
  void flush(std::string* out);

  bool stopped() const { return stop_index_ >= 0; }
  // The index (into the compiled list) of the stop string that matched, or -1.
  int32_t stop_index() const { return stop_index_; }
  size_t num_held_bytes() const { return held_.size(); }

 private:
  std::shared_ptr<const StopStrings> stops_;
  bool include_stop_str_;
  int32_t state_ = 0;
  int32_t stop_index_ = -1;
  std::string held_;  // the last depth(state_) bytes of the stream, not yet emitted
};

}  // namespace sluice::frontend
