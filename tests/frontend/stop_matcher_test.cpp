// Stop strings: no partial match ever reaches the output, the first completed match
// wins (longest of those ending at the same byte), held text is released at the end, and
// the streamed result equals a brute-force reference for random texts, splits and lists
// of up to 10,000 strings.

#include "frontend/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "frontend/utf8.h"

namespace sluice::frontend {
namespace {

std::shared_ptr<const StopStrings> compile(const std::vector<std::string>& stops) {
  auto s = StopStrings::compile(stops);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? *s : nullptr;
}

struct Outcome {
  std::string text;
  bool stopped = false;
  int32_t index = -1;
};

// Feeds `pieces` in order, then flushes if no stop; checks that what has been emitted is
// always a prefix of `final_text` when given.
Outcome run(std::shared_ptr<const StopStrings> stops, const std::vector<std::string>& pieces,
            bool include_stop = false) {
  StopMatcher m(std::move(stops), include_stop);
  Outcome o;
  for (const auto& p : pieces) {
    if (m.push(p, &o.text)) break;
  }
  if (!m.stopped()) m.flush(&o.text);
  o.stopped = m.stopped();
  o.index = m.stop_index();
  return o;
}

std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> v;
  for (char c : s) v.emplace_back(1, c);
  return v;
}

TEST(StopMatcherTest, StopStringSplitAcrossManyPieces) {
  auto stops = compile({"<|end_of_turn|>"});
  StopMatcher m(stops);
  std::string out;
  const std::string text = "The answer is 42.<|end_of_turn|>ignored";
  for (size_t i = 0; i < text.size(); ++i) {
    const bool stopped = m.push(text.substr(i, 1), &out);
    // Nothing of "<|end_of_turn|>" ever leaks, even one byte.
    ASSERT_EQ(out.find('<'), std::string::npos) << "after byte " << i;
    if (stopped) break;
  }
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "The answer is 42.");
  EXPECT_EQ(m.stop_index(), 0);
  // Pushes after the stop append nothing.
  EXPECT_TRUE(m.push("more", &out));
  m.flush(&out);
  EXPECT_EQ(out, "The answer is 42.");
}

TEST(StopMatcherTest, PartialMatchHeldUntilComplete) {
  auto stops = compile({"STOP"});
  StopMatcher m(stops);
  std::string out;
  EXPECT_FALSE(m.push("abc ST", &out));
  EXPECT_EQ(out, "abc ");
  EXPECT_EQ(m.num_held_bytes(), 2u);
  EXPECT_FALSE(m.push("O", &out));
  EXPECT_EQ(out, "abc ");
  EXPECT_TRUE(m.push("P!", &out));
  EXPECT_EQ(out, "abc ");
}

TEST(StopMatcherTest, MismatchReleasesHeldPrefix) {
  auto stops = compile({"STOP"});
  StopMatcher m(stops);
  std::string out;
  EXPECT_FALSE(m.push("abc STO", &out));
  EXPECT_FALSE(m.push("X STO", &out));
  EXPECT_EQ(out, "abc STOX ");
  m.flush(&out);  // finish_reason "length": the held prefix goes out at the end
  EXPECT_EQ(out, "abc STOX STO");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcherTest, OverlappingStopStrings) {
  // "bce" completes (at 'e') before "abcd" could: the output ends before it.
  auto o = run(compile({"abcd", "bce"}), chars_of("xxabce"));
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "xxa");
  EXPECT_EQ(o.index, 1);
  // The failure path: "aab" inside "aaab".
  o = run(compile({"aab"}), chars_of("aaaab!"));
  EXPECT_EQ(o.text, "aa");
  EXPECT_TRUE(o.stopped);
  // Self-overlapping: "abab" in "abababx".
  o = run(compile({"abab"}), {"ab", "a", "bab", "x"});
  EXPECT_EQ(o.text, "");
  // Two completing at the same byte: the longer one (earlier start) wins.
  o = run(compile({"b", "ab"}), {"xa", "b"});
  EXPECT_EQ(o.text, "x");
  EXPECT_EQ(o.index, 1);
}

TEST(StopMatcherTest, PrefixOfAnotherStopsFirst) {
  auto o = run(compile({"foobar", "foo"}), chars_of("say foobar"));
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "say ");
  EXPECT_EQ(o.index, 1);
  // Whether the whole text arrives at once or byte by byte, the answer is the same.
  o = run(compile({"foobar", "foo"}), {"say foobar"});
  EXPECT_EQ(o.text, "say ");
  EXPECT_EQ(o.index, 1);
  // Duplicates report the first index.
  o = run(compile({"x", "foo", "foo"}), {"a foo"});
  EXPECT_EQ(o.index, 1);
}

TEST(StopMatcherTest, IncludeStopString) {
  auto o = run(compile({"END"}), {"abc E", "ND tail"}, /*include_stop=*/true);
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "abc END");
}

TEST(StopMatcherTest, UnicodeStopStrings) {
  // "。" (U+3002) and "🛑" (U+1F6D1); text fed one byte at a time.
  auto stops = compile({"\xE3\x80\x82", "\xF0\x9F\x9B\x91"});
  auto o = run(stops, chars_of("\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82\xE4\xB8\x96"));
  EXPECT_EQ(o.text, "\xE4\xBD\xA0\xE5\xA5\xBD");
  EXPECT_EQ(o.index, 0);
  o = run(stops, {"ok \xF0\x9F", "\x9B\x91 no"});
  EXPECT_EQ(o.text, "ok ");
  EXPECT_EQ(o.index, 1);
  // A character sharing a lead byte with a stop string is released once it differs.
  StopMatcher m(stops);
  std::string out;
  EXPECT_FALSE(m.push("a\xE3\x80\x81", &out));  // U+3001, not U+3002
  EXPECT_EQ(out, "a\xE3\x80\x81");
  // Held text at the end (finish "length") comes out whole.
  auto long_stop = compile({"\xE7\xB5\x82\xE3\x82\x8F\xE3\x82\x8A"});  // 終わり
  o = run(long_stop, {"x\xE7\xB5\x82", "\xE3\x82\x8F"});
  EXPECT_FALSE(o.stopped);
  EXPECT_EQ(o.text, "x\xE7\xB5\x82\xE3\x82\x8F");
}

TEST(StopMatcherTest, WideNodeWithHighBytes) {
  // One node with more than 8 children, ASCII and lead bytes mixed: the sorted-edge
  // (binary search) path, with bytes ordered as unsigned.
  std::vector<std::string> list;
  for (const char* tail : {"a", "b", "c", "d", "e", "f", "g", "h", "z", "\xC3\xA9", "\xE2\x82\xAC",
                           "\xF0\x9F\x98\x80", "\xE4\xB8\x96"}) {
    list.push_back(std::string("x") + tail);
  }
  auto stops = compile(list);
  for (size_t i = 0; i < list.size(); ++i) {
    auto o = run(stops, {"ab x", list[i].substr(1) + " tail"});
    EXPECT_TRUE(o.stopped) << i;
    EXPECT_EQ(o.text, "ab ") << i;
    EXPECT_EQ(o.index, static_cast<int32_t>(i));
  }
  auto o = run(stops, {"x\xC3\xA8 xy"});  // U+00E8 and 'y' match nothing
  EXPECT_FALSE(o.stopped);
  EXPECT_EQ(o.text, "x\xC3\xA8 xy");
}

TEST(StopMatcherTest, UncheckedPiecesStillHoldBack) {
  // min_tokens: a match completing in an unchecked piece is ignored, but one that starts
  // there and completes in a checked piece is caught.
  auto stops = compile({"###"});
  StopMatcher m(stops);
  std::string out;
  EXPECT_FALSE(m.push("a###b#", &out, /*check=*/false));
  EXPECT_EQ(out, "a###b");
  EXPECT_TRUE(m.push("##c", &out, true));
  EXPECT_EQ(out, "a###b");
}

TEST(StopMatcherTest, NoStopStringsPassThrough) {
  StopMatcher m(nullptr);
  std::string out;
  EXPECT_FALSE(m.push("anything", &out));
  m.flush(&out);
  EXPECT_EQ(out, "anything");
  auto empty = compile({});
  StopMatcher m2(empty);
  EXPECT_FALSE(m2.push("x", &out));
  EXPECT_EQ(out, "anythingx");
}

TEST(StopMatcherTest, RejectsEmptyAndInvalid) {
  auto a = StopStrings::compile(std::vector<std::string>{"ok", ""});
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("stop[1]"), std::string::npos);
  auto b = StopStrings::compile(std::vector<std::string>{"\xE2\x82"});
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("UTF-8"), std::string::npos);
}

// ---- Against a brute-force reference ----

// The output for the whole text: cut at the first byte where any stop string ends,
// before the longest one ending there.
Outcome reference(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    int32_t best = -1;
    for (size_t i = 0; i < stops.size(); ++i) {
      const std::string& s = stops[i];
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0 &&
          (best < 0 || s.size() > stops[static_cast<size_t>(best)].size())) {
        best = static_cast<int32_t>(i);
      }
    }
    if (best >= 0)
      return {text.substr(0, end - stops[static_cast<size_t>(best)].size()), true, best};
  }
  return {text, false, -1};
}

std::string random_text(std::mt19937& rng, size_t n, int alphabet) {
  std::string s(n, 'a');
  for (auto& c : s) c = static_cast<char>('a' + rng() % static_cast<uint32_t>(alphabet));
  return s;
}

void check_against_reference(uint32_t seed, int iterations, int num_stops, size_t min_stop_len,
                             size_t max_stop_len, size_t text_len, int alphabet) {
  std::mt19937 rng(seed);
  for (int iter = 0; iter < iterations; ++iter) {
    std::vector<std::string> stop_list;
    for (int i = 0; i < num_stops; ++i) {
      stop_list.push_back(
          random_text(rng, min_stop_len + rng() % (max_stop_len - min_stop_len + 1), alphabet));
    }
    const std::string text = random_text(rng, text_len, alphabet);
    auto stops = compile(stop_list);
    ASSERT_NE(stops, nullptr);
    StopMatcher m(stops);
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
      const size_t n = std::min(text.size() - i, size_t{rng() % 7});
      if (m.push(std::string_view(text).substr(i, n), &out)) break;
      ASSERT_LT(m.num_held_bytes(), stops->max_length_bytes());
      i += n;
    }
    if (!m.stopped()) m.flush(&out);
    // Compare with a reference from the first index among equal strings.
    Outcome want = reference(text, stop_list);
    if (want.stopped) {
      for (size_t k = 0; k < stop_list.size(); ++k) {
        if (stop_list[k] == stop_list[static_cast<size_t>(want.index)]) {
          want.index = static_cast<int32_t>(k);
          break;
        }
      }
    }
    ASSERT_EQ(out, want.text) << "seed " << seed << " iteration " << iter;
    ASSERT_EQ(m.stopped(), want.stopped);
    ASSERT_EQ(m.stop_index(), want.index);
  }
}

TEST(StopMatcherTest, RandomAgainstReferenceFewStrings) {
  check_against_reference(1, 3000, 3, 1, 6, 60, 3);
}

TEST(StopMatcherTest, RandomAgainstReferenceManyStrings) {
  check_against_reference(2, 200, 300, 1, 12, 300, 6);
}

TEST(StopMatcherTest, TenThousandStopStrings) {
  // 10,000 strings of up to 256 bytes compile and match correctly.
  check_against_reference(3, 3, 10000, 4, 256, 2000, 20);
  std::vector<std::string> many;
  std::mt19937 rng(4);
  for (int i = 0; i < 10000; ++i) many.push_back(random_text(rng, 8 + rng() % 249, 26));
  auto stops = compile(many);
  ASSERT_NE(stops, nullptr);
  StopMatcher m(stops);
  std::string out;
  const std::string& target = many[1234];
  const size_t half = target.size() / 2;
  EXPECT_FALSE(m.push("no matches here, only " + target.substr(0, half), &out));
  EXPECT_EQ(out, "no matches here, only ");
  EXPECT_TRUE(m.push(target.substr(half) + " after", &out));
  EXPECT_EQ(out, "no matches here, only ");
}

}  // namespace
}  // namespace sluice::frontend
