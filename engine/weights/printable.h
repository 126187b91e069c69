#pragma once
// Quoting of names read from model files for error messages: a key or tensor name comes
// from untrusted bytes and may hold newlines, control bytes or megabytes of text, while an
// error message must stay one short line.

#include <string>
#include <string_view>

namespace sluice::weights {

// `s` with bytes outside printable ASCII (and backslash) written as \xNN, cut to
// `max_bytes` of input with "..." appended when longer. UTF-8 is escaped too: messages
// stay plain ASCII.
inline std::string printable(std::string_view s, size_t max_bytes = 96) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  size_t n = s.size() < max_bytes ? s.size() : max_bytes;
  out.reserve(n + 8);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > max_bytes) out += "...";
  return out;
}

}  // namespace sluice::weights
