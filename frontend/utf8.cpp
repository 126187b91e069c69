#include "frontend/utf8.h"

#include <algorithm>
#include <cstring>

namespace sluice::frontend {
namespace {

// For a lead byte: how many continuation bytes follow and the range of the first one
// (Unicode Table 3-7, "Well-Formed UTF-8 Byte Sequences"). need == 0 for ASCII; -1 for a
// byte that can never start a character (80..C1, F5..FF).
struct Lead {
  int8_t need;
  uint8_t lo;
  uint8_t hi;
};

constexpr Lead classify(uint8_t b) {
  if (b < 0x80) return {0, 0x80, 0xBF};
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};  // no overlong 3-byte forms
  if (b == 0xED) return {2, 0x80, 0x9F};  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xF0) return {3, 0x90, 0xBF};  // no overlong 4-byte forms
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};  // nothing above U+10FFFF
  return {-1, 0, 0};
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead lead = classify(b);
    if (lead.need < 0 || n - i - 1 < static_cast<size_t>(lead.need)) return false;
    uint8_t lo = lead.lo, hi = lead.hi;
    for (int k = 1; k <= lead.need; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if (c < lo || c > hi) return false;
      lo = 0x80;
      hi = 0xBF;
    }
    i += 1 + lead.need;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  Utf8Stream stream;
  stream.append(s, &out);
  stream.finish(&out);
  return out;
}

void Utf8Stream::append(std::string_view in, std::string* out) {
  const size_t n = in.size();
  size_t i = 0;
  // Finish the sequence held back by the previous call, byte by byte.
  while (need_ > 0 && i < n) {
    const auto c = static_cast<uint8_t>(in[i]);
    if (c < lo_ || c > hi_) {
      // The held bytes are a maximal subpart; `c` is looked at again as a new start.
      out->append(kReplacementChar);
      pending_len_ = 0;
      need_ = 0;
      break;
    }
    pending_[pending_len_++] = static_cast<char>(c);
    ++i;
    lo_ = 0x80;
    hi_ = 0xBF;
    if (--need_ == 0) {
      out->append(pending_, pending_len_);
      pending_len_ = 0;
    }
  }
  if (need_ > 0) return;  // everything went into the held sequence

  // Valid bytes are appended in runs [run, i), not one at a time.
  size_t run = i;
  while (i < n) {
    const auto b = static_cast<uint8_t>(in[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead lead = classify(b);
    if (lead.need < 0) {
      out->append(in.data() + run, i - run);
      out->append(kReplacementChar);
      run = ++i;
      continue;
    }
    uint8_t lo = lead.lo, hi = lead.hi;
    size_t j = i + 1;
    int k = 0;
    while (k < lead.need && j < n) {
      const auto c = static_cast<uint8_t>(in[j]);
      if (c < lo || c > hi) break;
      lo = 0x80;
      hi = 0xBF;
      ++j;
      ++k;
    }
    if (k == lead.need) {
      i = j;
      continue;
    }
    out->append(in.data() + run, i - run);
    if (j == n) {  // incomplete at the end of this piece: hold it back
      // j - i = 1 + k <= 3 (k < need <= 3); the min() only tells the compiler so.
      const size_t len = std::min(j - i, sizeof(pending_) - 1);
      std::memcpy(pending_, in.data() + i, len);
      pending_len_ = static_cast<uint8_t>(len);
      need_ = static_cast<uint8_t>(lead.need - k);
      lo_ = lo;
      hi_ = hi;
      return;
    }
    // in[j] cannot continue the sequence: [i, j) is one maximal subpart.
    out->append(kReplacementChar);
    i = j;
    run = i;
  }
  out->append(in.data() + run, n - run);
}

void Utf8Stream::finish(std::string* out) {
  if (pending_len_ > 0) out->append(kReplacementChar);
  pending_len_ = 0;
  need_ = 0;
  lo_ = 0x80;
  hi_ = 0xBF;
}

}  // namespace sluice::frontend
