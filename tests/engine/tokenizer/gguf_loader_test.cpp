// from_gguf() on small GGUF files built in memory: both tokenizer models, llama.cpp's
// defaults and token-type fixes, and one-line errors for malformed tokenizer keys. Also
// validate_vocab() on malformed plain vocabularies.

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "engine/weights/gguf.h"
#include "engine/weights/gguf_writer.h"  // tests/: the test-only GGUF writer

namespace sluice::tokenizer {
namespace {

using weights::testing::array_of;
using weights::testing::array_of_strings;
using weights::testing::Bytes;
using weights::testing::GgufBuilder;

constexpr uint32_t kTypeBool = 7;
constexpr uint32_t kTypeU32 = 4;
constexpr uint32_t kTypeI32 = 5;
constexpr uint32_t kTypeF32 = 6;
constexpr uint32_t kTypeArray = 9;
constexpr const char* kSp = "\xE2\x96\x81";

// The pieces of a tiny Gemma-like vocabulary and their types.
struct TinyVocab {
  std::vector<std::string> pieces;
  std::vector<int32_t> types;
  std::vector<float> scores;
  void add(std::string p, int32_t type, float score) {
    pieces.push_back(std::move(p));
    types.push_back(type);
    scores.push_back(score);
  }
};

TinyVocab tiny_vocab() {
  TinyVocab v;
  v.add("<pad>", 3, -1000);
  v.add("<eos>", 3, -1000);
  v.add("<bos>", 3, -1000);
  v.add("<unk>", 3, -1000);
  v.add("\n", 4, -1000);
  v.add("</s>", 4, -1000);
  for (int b = 0; b < 256; ++b) v.add(byte_piece(static_cast<uint8_t>(b)), 6, 0);
  v.add(kSp, 1, -1);
  v.add("a", 1, -2);
  v.add(std::string(kSp) + "a", 1, -3);
  return v;
}

// A GGUF with the tokenizer keys of `v`; `skip` names one key to leave out.
GgufBuilder gguf_for(const TinyVocab& v, const std::string& model, const std::string& skip = "") {
  GgufBuilder b;
  if (skip != "model") b.kv_string("tokenizer.ggml.model", model);
  if (skip != "tokens") b.kv("tokenizer.ggml.tokens", kTypeArray, array_of_strings(v.pieces));
  if (skip != "scores") b.kv("tokenizer.ggml.scores", kTypeArray, array_of(kTypeF32, v.scores));
  if (skip != "types") b.kv("tokenizer.ggml.token_type", kTypeArray, array_of(kTypeI32, v.types));
  b.kv_u32("tokenizer.ggml.bos_token_id", 2);
  b.kv_u32("tokenizer.ggml.eos_token_id", 1);
  b.kv_u32("tokenizer.ggml.unknown_token_id", 3);
  b.kv_u32("tokenizer.ggml.padding_token_id", 0);
  if (skip != "add_space_prefix") {
    b.kv("tokenizer.ggml.add_space_prefix", kTypeBool, Bytes{0});
  }
  return b;
}

StatusOr<std::unique_ptr<Tokenizer>> load(GgufBuilder& b) {
  auto bytes = std::make_shared<Bytes>(b.build());
  auto gguf = weights::GgufFile::parse("tiny.gguf", bytes->data(), bytes->size(), bytes);
  if (!gguf.is_ok()) return gguf.status();
  return from_gguf(**gguf);
}

TEST(GgufLoaderTest, LlamaModelLoads) {
  TinyVocab v = tiny_vocab();
  GgufBuilder b = gguf_for(v, "llama");
  auto t = load(b);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const Tokenizer& tok = **t;
  EXPECT_EQ(tok.model_kind(), ModelKind::kSpmScores);
  EXPECT_EQ(tok.vocab_size(), static_cast<int32_t>(v.pieces.size()));
  EXPECT_TRUE(tok.add_bos_default());  // absent key: llama.cpp's SentencePiece default
  const int32_t sp_a = *tok.token_id(std::string(kSp) + "a");
  EXPECT_EQ(tok.encode("a a", false, false), (std::vector<int32_t>{*tok.token_id("a"), sp_a}));
  EXPECT_EQ(tok.encode("<bos>a", true, true), (std::vector<int32_t>{2, 2, *tok.token_id("a")}));
  // "</s>" is USER_DEFINED in the file, but llama.cpp makes it a control token.
  EXPECT_TRUE(tok.is_control(5));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{5, sp_a}), " a");
}

TEST(GgufLoaderTest, AddSpacePrefixDefaultsOnForLlama) {
  TinyVocab v = tiny_vocab();
  GgufBuilder b = gguf_for(v, "llama", "add_space_prefix");
  auto t = load(b);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ((*t)->encode("a", false, false),
            (std::vector<int32_t>{*(*t)->token_id(std::string(kSp) + "a")}));
}

TEST(GgufLoaderTest, Gemma4ModelUsesMerges) {
  TinyVocab v = tiny_vocab();
  v.add("<|tool_response>", 4, -1000);
  GgufBuilder b = gguf_for(v, "gemma4");
  b.kv("tokenizer.ggml.merges", kTypeArray, array_of_strings({std::string(kSp) + " a"}));
  b.kv("tokenizer.ggml.add_bos_token", kTypeBool, Bytes{0});
  auto t = load(b);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const Tokenizer& tok = **t;
  EXPECT_EQ(tok.model_kind(), ModelKind::kBpeMerges);
  EXPECT_TRUE(tok.add_bos_default());  // forced on for Gemma 4, as llama.cpp does
  EXPECT_EQ(tok.encode(" a", false, false),
            (std::vector<int32_t>{*tok.token_id(std::string(kSp) + "a")}));
  // With "<|tool_response>" present, llama.cpp treats "</s>" as plain text.
  EXPECT_EQ(tok.token_type(5), TokenType::kNormal);
  // ... and "<|tool_response>" itself as a control token.
  EXPECT_TRUE(tok.is_control(*tok.token_id("<|tool_response>")));
}

void expect_error(GgufBuilder& b, StatusCode code, const std::string& needle) {
  auto t = load(b);
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), code) << t.status().to_string();
  EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().message();
  EXPECT_EQ(t.status().message().find('\n'), std::string::npos) << t.status().message();
}

TEST(GgufLoaderTest, MissingModelKey) {
  GgufBuilder b = gguf_for(tiny_vocab(), "llama", "model");
  expect_error(b, StatusCode::kNotFound, "tokenizer.ggml.model");
}

TEST(GgufLoaderTest, UnsupportedModel) {
  GgufBuilder b = gguf_for(tiny_vocab(), "gpt2");
  expect_error(b, StatusCode::kUnimplemented, "gpt2");
}

TEST(GgufLoaderTest, MissingTokens) {
  GgufBuilder b = gguf_for(tiny_vocab(), "llama", "tokens");
  expect_error(b, StatusCode::kNotFound, "tokenizer.ggml.tokens");
}

TEST(GgufLoaderTest, TokensOfWrongType) {
  GgufBuilder b;
  b.kv_string("tokenizer.ggml.model", "llama");
  b.kv("tokenizer.ggml.tokens", kTypeArray, array_of(kTypeU32, std::vector<uint32_t>{1, 2, 3}));
  expect_error(b, StatusCode::kInvalidArgument, "tokenizer.ggml.tokens");
}

TEST(GgufLoaderTest, TypeCountMismatch) {
  TinyVocab v = tiny_vocab();
  v.types.pop_back();
  GgufBuilder b = gguf_for(v, "llama");
  expect_error(b, StatusCode::kInvalidArgument, "token_type");
}

TEST(GgufLoaderTest, ScoreCountMismatch) {
  TinyVocab v = tiny_vocab();
  v.scores.push_back(0);
  GgufBuilder b = gguf_for(v, "llama");
  expect_error(b, StatusCode::kInvalidArgument, "scores");
}

TEST(GgufLoaderTest, UnknownTokenType) {
  TinyVocab v = tiny_vocab();
  v.types[7] = 9;
  GgufBuilder b = gguf_for(v, "llama");
  expect_error(b, StatusCode::kInvalidArgument, "token_type[7] is 9");
}

TEST(GgufLoaderTest, MalformedBytePieces) {
  for (const char* bad : {"<0xZZ>", "<0x-1>", "<0x1>", "<0x100>", "0x41"}) {
    TinyVocab v = tiny_vocab();
    v.pieces[6 + 0x41] = bad;
    GgufBuilder b = gguf_for(v, "llama");
    expect_error(b, StatusCode::kInvalidArgument, "BYTE");
  }
}

TEST(GgufLoaderTest, SpecialIdOutOfRange) {
  TinyVocab v = tiny_vocab();
  GgufBuilder b2;
  b2.kv_string("tokenizer.ggml.model", "llama");
  b2.kv("tokenizer.ggml.tokens", kTypeArray, array_of_strings(v.pieces));
  b2.kv_u32("tokenizer.ggml.bos_token_id", 100000);
  expect_error(b2, StatusCode::kInvalidArgument, "bos_token_id is 100000");
}

TEST(GgufLoaderTest, MalformedMerges) {
  TinyVocab v = tiny_vocab();
  GgufBuilder b = gguf_for(v, "gemma4");
  b.kv("tokenizer.ggml.merges", kTypeArray, array_of_strings({"nospace"}));
  expect_error(b, StatusCode::kInvalidArgument, "merges[0]");
  GgufBuilder b2 = gguf_for(v, "gemma4");
  b2.kv("tokenizer.ggml.merges", kTypeArray, array_of_strings({"a zz"}));
  expect_error(b2, StatusCode::kInvalidArgument, "merge 0");
  GgufBuilder b3 = gguf_for(v, "gemma4");
  expect_error(b3, StatusCode::kNotFound, "tokenizer.ggml.merges");
}

// validate_vocab() on plain structs.
TEST(VocabValidationTest, RejectsMalformedVocabularies) {
  auto base = [] {
    TokenizerVocab v;
    v.name = "v";
    v.pieces = {"<bos>", "a", "<0x41>"};
    v.types = {TokenType::kControl, TokenType::kNormal, TokenType::kByte};
    v.scores = {0, 0, 0};
    v.bos_id = 0;
    return v;
  };
  EXPECT_TRUE(validate_vocab(base()).is_ok());
  auto expect_bad = [](const TokenizerVocab& v, const std::string& needle) {
    Status s = validate_vocab(v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    EXPECT_FALSE(Tokenizer::create(v).is_ok());
  };
  TokenizerVocab v = base();
  v.pieces.clear();
  v.types.clear();
  v.scores.clear();
  expect_bad(v, "empty");
  v = base();
  v.scores.push_back(1);
  expect_bad(v, "scores");
  v = base();
  v.types.pop_back();
  expect_bad(v, "token types");
  v = base();
  v.types[1] = static_cast<TokenType>(0);
  expect_bad(v, "token type 0");
  v = base();
  v.pieces[2] = "<0xG1>";
  expect_bad(v, "BYTE");
  v = base();
  v.pieces[1] = std::string(kMaxPieceBytes + 1, 'x');
  expect_bad(v, "limit");
  v = base();
  v.bos_id = 3;
  expect_bad(v, "bos id is 3");
  v = base();
  v.unk_id = -7;
  expect_bad(v, "unknown-token id is -7");
  v = base();
  v.scores[1] = std::numeric_limits<float>::quiet_NaN();
  expect_bad(v, "NaN");
  v = base();
  v.merges = {{"a", "a"}};
  expect_bad(v, "merges");
  v = base();
  v.bos_id = -1;
  v.add_bos = true;
  expect_bad(v, "add_bos");
  // A merge whose parts are not pieces is caught when the merges are indexed.
  v = base();
  v.model = ModelKind::kBpeMerges;
  v.merges = {{"a", "q"}};
  auto t = Tokenizer::create(v);
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("right part"), std::string::npos) << t.status().message();
}

TEST(VocabValidationTest, BytePieceParsing) {
  EXPECT_EQ(parse_byte_piece("<0x00>"), 0);
  EXPECT_EQ(parse_byte_piece("<0xfF>"), 255);
  EXPECT_EQ(parse_byte_piece("<0xAB>"), 0xAB);
  for (const char* bad : {"<0xZZ>", "<0x-1>", "<0x1>", "<0x123>", "<0X41>", "0x41>", ""}) {
    EXPECT_FALSE(parse_byte_piece(bad).has_value()) << bad;
  }
  EXPECT_EQ(byte_piece(0x0A), "<0x0A>");
}

TEST(VocabValidationTest, DuplicatePiecesKeepTheLowerId) {
  TokenizerVocab v;
  v.name = "dups";
  v.pieces = {"a", "b", "a"};
  auto t = Tokenizer::create(v);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ((*t)->token_id("a"), 0);
  EXPECT_EQ((*t)->encode("a", false, false), (std::vector<int32_t>{0}));
  EXPECT_EQ((*t)->decode(std::vector<int32_t>{2}), "a");
}

}  // namespace
}  // namespace sluice::tokenizer
