// UTF-8 repair: the Unicode Standard's maximal-subpart examples, agreement with a
// brute-force reference built from every scalar value's encoding, and the streaming form
// giving the same bytes however the input is cut.

#include "frontend/utf8.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_set>

namespace sluice::frontend {
namespace {

const std::string kR(kReplacementChar);

TEST(Utf8Test, StandardExamples) {
  // Unicode Standard, Table 3-8 (and Python's errors="replace" on the same bytes).
  EXPECT_EQ(to_valid_utf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + kR + kR + kR + "b" + kR + "c" + kR + kR + "d");
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), kR + kR);                    // overlong
  EXPECT_EQ(to_valid_utf8("\xE0\x80\xAF"), kR + kR + kR);           // overlong
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), kR + kR + kR);           // surrogate
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), kR + kR + kR + kR);  // > U+10FFFF
  EXPECT_EQ(to_valid_utf8("\xE2\x82"), kR);                         // truncated
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98"), kR);
  EXPECT_EQ(to_valid_utf8("x\xFFy"), "x" + kR + "y");
  const std::string ok = "plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
  EXPECT_TRUE(is_valid_utf8(ok));
  EXPECT_EQ(to_valid_utf8(ok), ok);
  EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));
}

// Every prefix of every well-formed sequence, packed as (length << 24 | bytes) for lengths
// 1-3; complete sequences of any length are checked by decoding.
struct Reference {
  std::unordered_set<uint32_t> prefixes;
  std::unordered_set<uint64_t> complete;

  Reference() {
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      uint8_t b[4];
      int n;
      if (cp < 0x80) {
        b[0] = static_cast<uint8_t>(cp);
        n = 1;
      } else if (cp < 0x800) {
        b[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
        b[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
        n = 2;
      } else if (cp < 0x10000) {
        b[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
        b[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
        b[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
        n = 3;
      } else {
        b[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
        b[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
        b[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
        b[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
        n = 4;
      }
      uint64_t key = static_cast<uint64_t>(n) << 32;
      for (int i = 0; i < n; ++i) {
        key |= static_cast<uint64_t>(b[i]) << (8 * i);
        if (i + 1 < n) prefixes.insert(static_cast<uint32_t>(key & 0xFFFFFF) | ((i + 1u) << 24));
      }
      complete.insert(key);
    }
  }

  // Position by position: a complete character is copied; otherwise the longest prefix of
  // a well-formed sequence (at least one byte) becomes one U+FFFD.
  std::string repair(const std::string& s) const {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      bool done = false;
      for (size_t n = 1; n <= 4 && i + n <= s.size() && !done; ++n) {
        uint64_t key = static_cast<uint64_t>(n) << 32;
        for (size_t k = 0; k < n; ++k)
          key |= static_cast<uint64_t>(static_cast<uint8_t>(s[i + k])) << (8 * k);
        if (complete.count(key)) {
          out.append(s, i, n);
          i += n;
          done = true;
        }
      }
      if (done) continue;
      size_t sub = 1;
      for (size_t n = 3; n >= 1; --n) {
        if (i + n > s.size()) continue;
        uint32_t key = static_cast<uint32_t>(n) << 24;
        for (size_t k = 0; k < n; ++k)
          key |= static_cast<uint32_t>(static_cast<uint8_t>(s[i + k])) << (8 * k);
        if (prefixes.count(key)) {
          sub = n;
          break;
        }
      }
      out.append(kR);
      i += sub;
    }
    return out;
  }
};

// Random strings drawn from bytes that make interesting boundaries.
std::string random_bytes(std::mt19937& rng, size_t n) {
  static const uint8_t kPool[] = {'a',  ' ',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                  0xC0, 0xC1, 0xC2, 0xC3, 0xDF, 0xE0, 0xE1, 0xE2, 0xEC, 0xED,
                                  0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  std::string s(n, '\0');
  for (auto& c : s) {
    c = static_cast<char>(rng() % 3 == 0 ? kPool[rng() % sizeof(kPool)] : 0x80 + rng() % 0x40);
  }
  return s;
}

TEST(Utf8Test, MatchesBruteForceReference) {
  const Reference ref;
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    const std::string s = random_bytes(rng, 1 + rng() % 24);
    const std::string want = ref.repair(s);
    ASSERT_EQ(to_valid_utf8(s), want) << "iteration " << iter;
    ASSERT_EQ(is_valid_utf8(s), want == s);
    ASSERT_TRUE(is_valid_utf8(want));
  }
}

TEST(Utf8Test, StreamingEqualsWholeForAnySplit) {
  std::mt19937 rng(11);
  for (int iter = 0; iter < 3000; ++iter) {
    const std::string s = random_bytes(rng, 1 + rng() % 40);
    Utf8Stream stream;
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      const size_t n = std::min(s.size() - i, size_t{rng() % 5});
      std::string piece;
      stream.append(std::string_view(s).substr(i, n), &piece);
      ASSERT_TRUE(is_valid_utf8(piece));
      out += piece;
      ASSERT_LE(stream.num_pending_bytes(), 3u);
      i += n;
    }
    stream.finish(&out);
    ASSERT_EQ(out, to_valid_utf8(s)) << "iteration " << iter;
    ASSERT_EQ(stream.num_pending_bytes(), 0u);
  }
}

TEST(Utf8Test, HoldsBackOnlyIncompleteTail) {
  Utf8Stream stream;
  std::string out;
  stream.append("ab\xF0\x9F", &out);
  EXPECT_EQ(out, "ab");
  EXPECT_EQ(stream.num_pending_bytes(), 2u);
  stream.append("\x98", &out);
  EXPECT_EQ(out, "ab");
  stream.append("\x80z", &out);
  EXPECT_EQ(out, "ab\xF0\x9F\x98\x80z");
  // A held sequence broken by a non-continuation byte: one U+FFFD, and the byte itself
  // starts afresh.
  out.clear();
  stream.append("\xE2\x82", &out);
  stream.append("\xE2\x82\xAC", &out);
  EXPECT_EQ(out, kR + "\xE2\x82\xAC");
  out.clear();
  stream.append("\xE2", &out);
  stream.finish(&out);
  EXPECT_EQ(out, kR);
}

}  // namespace
}  // namespace sluice::frontend
