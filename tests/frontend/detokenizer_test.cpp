// Incremental detokenization: characters split across byte tokens, ill-formed bytes,
// special tokens, and the streaming property (every delta valid UTF-8; their
// concatenation equals to_valid_utf8(decode(ids))) on a hand-built vocabulary and on the
// real Gemma 3 270M vocabulary. Also TextStream, the detokenizer and stop matcher together.

#include "frontend/detokenizer.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "engine/weights/gguf.h"
#include "frontend/text_stream.h"
#include "frontend/utf8.h"
#include "test_util.h"

namespace sluice::frontend {
namespace {

using tokenizer::Tokenizer;
using tokenizer::TokenizerVocab;
using tokenizer::TokenType;

const std::string kR(kReplacementChar);

// Specials, all 256 byte pieces, then a few normal pieces ("▁" is U+2581).
std::unique_ptr<Tokenizer> small_tokenizer() {
  TokenizerVocab v;
  v.name = "detok-test";
  auto add = [&v](std::string piece, TokenType type) {
    v.pieces.push_back(std::move(piece));
    v.types.push_back(type);
    v.scores.push_back(-static_cast<float>(v.pieces.size()));
  };
  add("<pad>", TokenType::kControl);      // 0
  add("<eos>", TokenType::kControl);      // 1
  add("<bos>", TokenType::kControl);      // 2
  add("<unk>", TokenType::kUnknown);      // 3
  add("<turn>", TokenType::kControl);     // 4
  add("<img>", TokenType::kUserDefined);  // 5
  add("<unused0>", TokenType::kUnused);   // 6
  for (int b = 0; b < 256; ++b)
    add(tokenizer::byte_piece(static_cast<uint8_t>(b)), TokenType::kByte);
  for (const char* p : {"\xE2\x96\x81hello", "\xE2\x96\x81world", "he", "llo", "\xE2\x96\x81<",
                        "en", "d>", "\xE2\x96\x81", "\xC3\xA9t\xC3\xA9", "\xE2\x82\xAC"}) {
    add(p, TokenType::kNormal);
  }
  v.pad_id = 0;
  v.eos_id = 1;
  v.bos_id = 2;
  v.unk_id = 3;
  auto t = Tokenizer::create(std::move(v));
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  return t.is_ok() ? std::move(t).value() : nullptr;
}

constexpr int32_t kByte0 = 7;
constexpr int32_t byte_id(uint8_t b) { return kByte0 + b; }
constexpr int32_t kFirstNormal = kByte0 + 256;

// Streams `ids` one at a time; checks each delta is valid UTF-8 and returns them all.
std::string stream_all(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special,
                       std::vector<std::string>* deltas = nullptr) {
  IncrementalDetokenizer d(t, skip_special);
  std::string all;
  for (int32_t id : ids) {
    std::string delta;
    d.push(id, &delta);
    EXPECT_TRUE(is_valid_utf8(delta));
    if (deltas) deltas->push_back(delta);
    all += delta;
  }
  std::string tail;
  d.finish(&tail);
  EXPECT_TRUE(is_valid_utf8(tail));
  if (deltas) deltas->push_back(tail);
  return all + tail;
}

TEST(DetokenizerTest, CharacterSplitAcrossByteTokens) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  std::vector<std::string> deltas;
  // "a😀b": the emoji as four byte tokens.
  const std::vector<int32_t> ids = {byte_id('a'),  byte_id(0xF0), byte_id(0x9F),
                                    byte_id(0x98), byte_id(0x80), byte_id('b')};
  EXPECT_EQ(stream_all(*t, ids, true, &deltas),
            "a\xF0\x9F\x98\x80"
            "b");
  const std::vector<std::string> want = {"a", "", "", "", "\xF0\x9F\x98\x80", "b", ""};
  EXPECT_EQ(deltas, want);
}

TEST(DetokenizerTest, IllFormedBytesBecomeReplacement) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  std::vector<std::string> deltas;
  // A lone 0xFF is certain at once; a lead byte followed by a normal token is broken when
  // that token arrives; a lead byte at the very end becomes U+FFFD at finish.
  const std::vector<int32_t> ids = {byte_id(0xFF), byte_id(0xE2), kFirstNormal + 2, byte_id(0xE2),
                                    byte_id(0x82)};
  EXPECT_EQ(stream_all(*t, ids, true, &deltas), kR + kR + "he" + kR);
  const std::vector<std::string> want = {kR, "", kR + "he", "", "", kR};
  EXPECT_EQ(deltas, want);
}

TEST(DetokenizerTest, SpecialTokensSkippedUnlessAsked) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  const std::vector<int32_t> ids = {2, kFirstNormal, 4, 5, 6, kFirstNormal + 1, 1, 99999, -1};
  EXPECT_EQ(stream_all(*t, ids, true), " hello<img> world");
  EXPECT_EQ(stream_all(*t, ids, false), "<bos> hello<turn><img> world<eos>");
  EXPECT_EQ(stream_all(*t, ids, true), t->decode(ids, false));
  EXPECT_EQ(stream_all(*t, ids, false), t->decode(ids, true));
}

TEST(DetokenizerTest, LeadingSpaceKeptAsDecodeDoes) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  // No dummy-prefix stripping: the first token's "▁" is a space, as in decode().
  const std::vector<int32_t> ids = {kFirstNormal, kFirstNormal + 7, kFirstNormal + 1};
  EXPECT_EQ(stream_all(*t, ids, true), " hello  world");
  EXPECT_EQ(t->decode(ids), " hello  world");
}

TEST(DetokenizerTest, BatchPushEqualsSinglePushes) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  const std::vector<int32_t> ids = {byte_id(0xE2), byte_id(0x82), byte_id(0xAC), kFirstNormal + 8};
  IncrementalDetokenizer d(*t);
  std::string out;
  d.push(std::span<const int32_t>(ids.data(), 2), &out);
  EXPECT_EQ(out, "");
  EXPECT_EQ(d.num_pending_bytes(), 2u);
  d.push(std::span<const int32_t>(ids.data() + 2, 2), &out);
  EXPECT_EQ(out, "\xE2\x82\xAC\xC3\xA9t\xC3\xA9");
}

// The streaming property over random ids drawn from the whole vocabulary (specials,
// unused, bytes, normal pieces and out-of-range ids).
void check_random_property(const Tokenizer& t, uint32_t seed, int iterations, int max_len,
                           const std::vector<int32_t>& bias_ids) {
  std::mt19937 rng(seed);
  for (int iter = 0; iter < iterations; ++iter) {
    std::vector<int32_t> ids(1 + rng() % static_cast<uint32_t>(max_len));
    for (auto& id : ids) {
      const uint32_t r = rng() % 10;
      if (r < 5 && !bias_ids.empty()) {
        id = bias_ids[rng() % bias_ids.size()];
      } else if (r == 5) {
        id = static_cast<int32_t>(rng() % (static_cast<uint32_t>(t.vocab_size()) + 10));
      } else {
        id = static_cast<int32_t>(rng() % static_cast<uint32_t>(t.vocab_size()));
      }
    }
    for (bool skip : {true, false}) {
      const std::string whole = t.decode(ids, !skip);
      const std::string streamed = stream_all(t, ids, skip);
      ASSERT_EQ(streamed, to_valid_utf8(whole)) << "seed " << seed << " iteration " << iter;
      if (is_valid_utf8(whole)) {
        ASSERT_EQ(streamed, whole);
      }
    }
  }
}

TEST(DetokenizerTest, RandomIdsSmallVocab) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> bytes;
  for (int b = 0x80; b < 0x100; ++b) bytes.push_back(byte_id(static_cast<uint8_t>(b)));
  check_random_property(*t, 1, 2000, 30, bytes);
}

// ---- The real Gemma 3 vocabulary ----

const Tokenizer* gemma3() {
  static std::unique_ptr<Tokenizer> tok = [] {
    std::unique_ptr<Tokenizer> t;
    const std::string path = sluice::testing::default_model_path();
    if (path.empty()) return t;
    auto gguf = weights::GgufFile::open(path);
    if (!gguf.is_ok()) {
      ADD_FAILURE() << gguf.status().to_string();
      return t;
    }
    auto made = tokenizer::from_gguf(**gguf);
    if (!made.is_ok()) {
      ADD_FAILURE() << made.status().to_string();
      return t;
    }
    return std::move(made).value();
  }();
  return tok.get();
}

#define SKIP_WITHOUT_MODEL()                                                            \
  if (gemma3() == nullptr) {                                                            \
    GTEST_SKIP() << "default model GGUF not found (models/gemma-3-270m-q4_k_m.gguf or " \
                    "$SLUICE_DEFAULT_MODEL); run scripts/fetch-default-model.sh";       \
  }

std::vector<int32_t> gemma_byte_ids(const Tokenizer& t) {
  std::vector<int32_t> ids;
  for (int b = 0; b < 256; ++b) {
    auto id = t.token_id(tokenizer::byte_piece(static_cast<uint8_t>(b)));
    if (id) ids.push_back(*id);
  }
  return ids;
}

TEST(DetokenizerTest, Gemma3RandomIds) {
  SKIP_WITHOUT_MODEL();
  check_random_property(*gemma3(), 3, 1500, 40, {});
}

TEST(DetokenizerTest, Gemma3RandomIdsWithByteFallback) {
  SKIP_WITHOUT_MODEL();
  const std::vector<int32_t> bytes = gemma_byte_ids(*gemma3());
  ASSERT_EQ(bytes.size(), 256u);
  check_random_property(*gemma3(), 5, 1500, 40, bytes);
}

TEST(DetokenizerTest, Gemma3EncodedTextRoundTrips) {
  SKIP_WITHOUT_MODEL();
  const Tokenizer& t = *gemma3();
  // Rare characters fall back to byte tokens; the stream must put them back together.
  const std::vector<std::string> texts = {
      "Hello, world! How are you today?",
      "  leading spaces and\ttabs\n\nnewlines",
      "caf\xC3\xA9 na\xC3\xAFve \xE2\x82\xAC"
      "42 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\xA7\xAC \xF0\x90\x8D\x88",
      "\xF0\x9D\x95\xB3\xF0\x9D\x96\x8A\xF0\x9D\x96\x91 \xEA\xAF\x8D \xE1\x9A\xA0\xE1\x9B\x87",
  };
  for (const auto& text : texts) {
    const std::vector<int32_t> ids = t.encode(text, /*add_bos=*/true, /*parse_special=*/false);
    std::vector<std::string> deltas;
    EXPECT_EQ(stream_all(t, ids, true, &deltas), text);
  }
  // The byte-fallback path is really exercised by at least one of them.
  bool saw_bytes = false;
  for (const auto& text : texts) {
    for (int32_t id : t.encode(text, false, false)) saw_bytes |= t.is_byte(id);
  }
  EXPECT_TRUE(saw_bytes);
}

TEST(DetokenizerTest, Gemma3SpecialTokens) {
  SKIP_WITHOUT_MODEL();
  const Tokenizer& t = *gemma3();
  const std::vector<int32_t> ids =
      t.encode("<start_of_turn>model\nHi there<end_of_turn>", false, /*parse_special=*/true);
  EXPECT_EQ(stream_all(t, ids, true), "model\nHi there");
  EXPECT_EQ(stream_all(t, ids, false), "<start_of_turn>model\nHi there<end_of_turn>");
}

// ---- TextStream ----

TEST(TextStreamTest, StopStringAcrossTokensAndBytes) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  const std::vector<std::string> stop_list = {"<end>", "\xE2\x82\xAC!"};
  auto stops = StopStrings::compile(stop_list);
  ASSERT_TRUE(stops.is_ok());
  // " hello <end> world": the stop string spans three tokens.
  TextStream s(*t, *stops);
  std::string out;
  const int32_t ids[] = {kFirstNormal, kFirstNormal + 4, kFirstNormal + 5, kFirstNormal + 6,
                         kFirstNormal + 1};
  std::vector<bool> stopped;
  for (int32_t id : ids) stopped.push_back(s.push(id, true, &out));
  EXPECT_EQ(out, " hello ");
  EXPECT_EQ(stopped, (std::vector<bool>{false, false, false, true, true}));
  EXPECT_EQ(s.stop_index(), 0);
  EXPECT_TRUE(s.finish(&out));
  EXPECT_EQ(out, " hello ");

  // "€" built from byte tokens, then "!" completes the second stop string.
  TextStream s2(*t, *stops);
  out.clear();
  EXPECT_FALSE(s2.push(byte_id('a'), true, &out));
  EXPECT_FALSE(s2.push(byte_id(0xE2), true, &out));
  EXPECT_FALSE(s2.push(byte_id(0x82), true, &out));
  EXPECT_FALSE(s2.push(byte_id(0xAC), true, &out));
  EXPECT_EQ(out, "a");  // "€" is held: it may start "€!"
  EXPECT_TRUE(s2.push(byte_id('!'), true, &out));
  EXPECT_EQ(out, "a");
  EXPECT_EQ(s2.stop_index(), 1);
}

TEST(TextStreamTest, FinishReleasesHeldText) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  const std::vector<std::string> stop_list = {"<end>"};
  auto stops = StopStrings::compile(stop_list);
  ASSERT_TRUE(stops.is_ok());
  TextStream s(*t, *stops);
  std::string out;
  EXPECT_FALSE(s.push(kFirstNormal, true, &out));
  EXPECT_FALSE(s.push(kFirstNormal + 4, true, &out));
  EXPECT_FALSE(s.push(kFirstNormal + 5, true, &out));
  EXPECT_FALSE(s.push(byte_id(0xE2), true, &out));
  EXPECT_EQ(out, " hello ");     // "<en" may start "<end>"; the byte starts a character
  EXPECT_FALSE(s.finish(&out));  // finish_reason "length"
  EXPECT_EQ(out, " hello <en" + kR);
}

TEST(TextStreamTest, MinTokensIgnoresEarlyMatches) {
  auto t = small_tokenizer();
  ASSERT_NE(t, nullptr);
  const std::vector<std::string> stop_list = {"he"};
  auto stops = StopStrings::compile(stop_list);
  ASSERT_TRUE(stops.is_ok());
  TextStream s(*t, *stops);
  std::string out;
  // "he" as the first token (before min_tokens) does not stop; the second does.
  EXPECT_FALSE(s.push(kFirstNormal + 2, /*check_stop=*/false, &out));
  EXPECT_FALSE(s.push(kFirstNormal + 3, true, &out));
  EXPECT_TRUE(s.push(kFirstNormal + 2, true, &out));
  EXPECT_EQ(out, "hello");
}

}  // namespace
}  // namespace sluice::frontend
