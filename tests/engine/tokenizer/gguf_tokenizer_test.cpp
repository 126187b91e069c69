// The tokenizer of the real Gemma 3 270M GGUF (loaded through our GGUF parser) against
// llama.cpp's ids for 2,000+ strings (tests/fixtures/tokenizer/gemma3_reference.jsonl, made
// by tools/make_tokenizer_reference.py), plus the Gemma 4 vocabulary when one is provided.

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "engine/weights/gguf.h"
#include "reference_check.h"
#include "test_util.h"

namespace sluice::tokenizer {
namespace {

using testing::check_reference;
using testing::load_reference;
using testing::report;

// Loaded once for the whole binary: parsing 262,144 pieces is the slow part.
const Tokenizer* gemma3() {
  static std::unique_ptr<Tokenizer> tok = [] {
    std::unique_ptr<Tokenizer> t;
    std::string path = sluice::testing::default_model_path();
    if (path.empty()) return t;
    auto gguf = weights::GgufFile::open(path);
    if (!gguf.is_ok()) {
      ADD_FAILURE() << gguf.status().to_string();
      return t;
    }
    auto made = from_gguf(**gguf);
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

TEST(GgufTokenizerTest, Gemma3Metadata) {
  SKIP_WITHOUT_MODEL();
  const Tokenizer& t = *gemma3();
  EXPECT_EQ(t.vocab_size(), 262144);
  EXPECT_EQ(t.model_kind(), ModelKind::kSpmScores);
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.unk_id(), 3);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_TRUE(t.add_bos_default());
  EXPECT_EQ(t.token_id("<start_of_turn>"), 105);
  EXPECT_EQ(t.token_id("<end_of_turn>"), 106);
  EXPECT_EQ(t.token_id("<0x00>"), 238);
  EXPECT_EQ(t.token_piece(106), "<end_of_turn>");
  EXPECT_TRUE(t.is_control(106));
  EXPECT_FALSE(t.is_control(107));  // "\n" is USER_DEFINED
  EXPECT_TRUE(t.is_special(107));
  EXPECT_TRUE(t.is_byte(238));
  // llama.cpp treats the HTML tag "</s>" as an end-of-generation control token.
  EXPECT_TRUE(t.is_control(*t.token_id("</s>")));
}

TEST(GgufTokenizerTest, Gemma3MatchesLlamaCpp) {
  SKIP_WITHOUT_MODEL();
  auto ref = load_reference(sluice::testing::fixture_path("tokenizer/gemma3_reference.jsonl"));
  ASSERT_FALSE(ref.lines.empty());
  auto c = check_reference(*gemma3(), ref, /*check_plain=*/true, /*check_decode=*/true);
  std::cout << "[ reference ] " << report(c) << "\n";
  EXPECT_GE(c.strings, 2000);
  EXPECT_EQ(c.encode_ok, c.strings) << report(c);
  EXPECT_EQ(c.encode_plain_ok, c.strings) << report(c);
  EXPECT_EQ(c.decode_ok, c.strings) << report(c);
  EXPECT_GE(c.decode_cases, 100);
  EXPECT_EQ(c.decode_cases_ok, c.decode_cases) << report(c);
  EXPECT_GE(c.bos_cases, 1);
  EXPECT_EQ(c.bos_ok, c.bos_cases) << report(c);
  // ~100 KB runs without a space (100k 'a', CJK, ...): no quadratic blow-up, same ids.
  EXPECT_GE(c.long_cases, 5);
  EXPECT_EQ(c.long_ok, c.long_cases) << report(c);
}

TEST(GgufTokenizerTest, Gemma3ChatTemplateText) {
  SKIP_WITHOUT_MODEL();
  const Tokenizer& t = *gemma3();
  const std::string chat = "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n";
  auto ids = t.encode(chat, /*add_bos=*/false, /*parse_special=*/true);
  ASSERT_GE(ids.size(), 6u);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 105);
  EXPECT_EQ(ids.back(), 107);  // "\n"
  EXPECT_EQ(t.decode(ids, /*render_special=*/true), chat);
  EXPECT_EQ(t.decode(ids, /*render_special=*/false), "user\nHi\nmodel\n");
  // Without special parsing "<bos>" is ordinary text: no id 2, and the text survives.
  auto plain = t.encode(chat, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(t.decode(plain), chat);
}

// The Gemma 4 vocabulary (a vocab-only GGUF from llama.cpp's test models) is 16 MB, so it
// is not committed; point SLUICE_GEMMA4_VOCAB_GGUF at it to run this test.
TEST(GgufTokenizerTest, Gemma4VocabMatchesLlamaCpp) {
  const char* path = std::getenv("SLUICE_GEMMA4_VOCAB_GGUF");
  if (path == nullptr || *path == '\0') {
    GTEST_SKIP() << "set SLUICE_GEMMA4_VOCAB_GGUF to llama.cpp's models/ggml-vocab-gemma-4.gguf";
  }
  auto gguf = weights::GgufFile::open(path);
  ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  auto tok = from_gguf(**gguf);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.model_kind(), ModelKind::kBpeMerges);
  EXPECT_TRUE(t.add_bos_default());
  EXPECT_EQ(t.token_id("<|turn>"), 105);
  auto ref =
      load_reference(sluice::testing::fixture_path("tokenizer/gemma4_vocab_reference.jsonl"));
  ASSERT_FALSE(ref.lines.empty());
  auto c = check_reference(t, ref, true, true);
  std::cout << "[ reference ] " << report(c) << "\n";
  EXPECT_GE(c.strings, 500);
  EXPECT_EQ(c.encode_ok, c.strings) << report(c);
  EXPECT_EQ(c.encode_plain_ok, c.strings) << report(c);
  EXPECT_EQ(c.decode_ok, c.strings) << report(c);
  EXPECT_EQ(c.decode_cases_ok, c.decode_cases) << report(c);
  EXPECT_EQ(c.bos_ok, c.bos_cases) << report(c);
  EXPECT_EQ(c.long_ok, c.long_cases) << report(c);
}

}  // namespace
}  // namespace sluice::tokenizer
