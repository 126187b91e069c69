#pragma once
// UTF-8 validation and repair for text leaving the server. Token bytes may stop in the
// middle of a character (a multi-byte character split across byte-fallback tokens) or be
// no UTF-8 at all (a sampled stray byte token); JSON and protobuf strings must be valid.
//
// Repair replaces each maximal subpart of an ill-formed sequence with one U+FFFD, the
// Unicode Standard's recommended practice (chapter 3, "U+FFFD Substitution of Maximal
// Subparts"), which Python's errors="replace" and Rust's from_utf8_lossy also follow. The
// streaming form (Utf8Stream) gives exactly the same bytes as the whole-string form
// (to_valid_utf8) however the input is cut into pieces.

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::frontend {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Whether `s` is well-formed UTF-8 (no surrogates, no overlong forms, nothing above
// U+10FFFF).
bool is_valid_utf8(std::string_view s);

// `s` with every maximal ill-formed subpart replaced by U+FFFD, including an incomplete
// sequence at the end. Returns `s` unchanged (byte for byte) when it is valid.
std::string to_valid_utf8(std::string_view s);

// Incremental repair: append() emits every complete character at once and holds back an
// incomplete trailing sequence (at most 3 bytes) until the bytes that finish it, or prove
// it ill-formed, arrive. finish() ends the stream. Not thread-safe; one per stream.
class Utf8Stream {
 public:
  // Appends to *out the valid UTF-8 that `bytes` completes (possibly nothing).
  void append(std::string_view bytes, std::string* out);
  // End of input: a held-back incomplete sequence becomes one U+FFFD. The stream is then
  // empty and may be reused.
  void finish(std::string* out);
  // Bytes held back (0-3).
  size_t num_pending_bytes() const { return pending_len_; }

 private:
  char pending_[4] = {};
  uint8_t pending_len_ = 0;
  uint8_t need_ = 0;   // continuation bytes still expected
  uint8_t lo_ = 0x80;  // the range the next continuation byte must fall in
  uint8_t hi_ = 0xBF;
};

}  // namespace sluice::frontend
