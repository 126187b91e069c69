// from_hf_json() on synthetic tokenizer.json files in Gemma 4's and Gemma 3's layouts
// (tests/fixtures/tokenizer/gemma{4,3}_synthetic, made by tools/make_synthetic_tokenizer.py)
// against the ids of the `tokenizers` library, and its rejection of settings it does not
// implement.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "reference_check.h"
#include "test_util.h"

namespace sluice::tokenizer {
namespace {

using nlohmann::json;
using testing::check_reference;
using testing::load_reference;
using testing::report;

std::string dir_of(const std::string& name) {
  return sluice::testing::fixture_path("tokenizer/" + name);
}

std::unique_ptr<Tokenizer> load(const std::string& name, bool with_config = true) {
  auto t = from_hf_json(dir_of(name) + "/tokenizer.json",
                        with_config ? dir_of(name) + "/tokenizer_config.json" : "");
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  return t.is_ok() ? std::move(t).value() : nullptr;
}

void expect_matches_reference(const Tokenizer& tok, const std::string& name) {
  auto ref = load_reference(dir_of(name) + "/reference.jsonl");
  ASSERT_FALSE(ref.lines.empty());
  auto c = check_reference(tok, ref, /*check_plain=*/true, /*check_decode=*/true);
  std::cout << "[ reference ] " << name << ": " << report(c) << "\n";
  EXPECT_GE(c.strings, 400);
  EXPECT_EQ(c.encode_ok, c.strings) << report(c);
  EXPECT_EQ(c.encode_plain_ok, c.strings) << report(c);
  EXPECT_EQ(c.decode_ok, c.strings) << report(c);
  EXPECT_GE(c.long_cases, 5);
  EXPECT_EQ(c.long_ok, c.long_cases) << report(c);
}

TEST(HfJsonTokenizerTest, Gemma4LayoutMatchesTokenizersLibrary) {
  auto tok = load("gemma4_synthetic");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model_kind(), ModelKind::kBpeMerges);
  EXPECT_EQ(tok->vocab().pre_split, PreSplit::kNewlineRuns);
  EXPECT_EQ(tok->vocab().special_match, SpecialMatch::kLeftmostLongest);
  EXPECT_FALSE(tok->add_bos_default());
  EXPECT_EQ(tok->bos_id(), 2);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->unk_id(), 3);
  EXPECT_EQ(tok->token_type(*tok->token_id("<|turn>")), TokenType::kControl);
  EXPECT_EQ(tok->token_type(*tok->token_id("<|channel>")), TokenType::kUserDefined);
  EXPECT_EQ(tok->token_type(*tok->token_id("<0x41>")), TokenType::kByte);
  expect_matches_reference(*tok, "gemma4_synthetic");
}

TEST(HfJsonTokenizerTest, Gemma3LayoutMatchesTokenizersLibrary) {
  auto tok = load("gemma3_synthetic");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab().pre_split, PreSplit::kNone);
  EXPECT_TRUE(tok->add_bos_default());
  expect_matches_reference(*tok, "gemma3_synthetic");
  auto ids = tok->encode("Hello", tok->add_bos_default(), true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 2);
}

TEST(HfJsonTokenizerTest, NewlineSplitMatters) {
  // The Gemma 3-layout merges were learned across newlines; the Gemma 4 layout never merges
  // across one. The same text must therefore split differently under the two files.
  auto g3 = load("gemma3_synthetic");
  auto g4 = load("gemma4_synthetic");
  ASSERT_NE(g3, nullptr);
  ASSERT_NE(g4, nullptr);
  for (int32_t id : g4->encode("user\nthe model\n<", false, true)) {
    const std::string& p = g4->token_piece(id);
    bool has_newline = p.find('\n') != std::string::npos;
    EXPECT_TRUE(!has_newline || p.find_first_not_of('\n') == std::string::npos) << p;
  }
  bool crosses = false;
  for (int32_t id : g3->encode("user\nthe model\n<", false, true)) {
    const std::string& p = g3->token_piece(id);
    if (p.find('\n') != std::string::npos && p.find_first_not_of('\n') != std::string::npos) {
      crosses = true;
    }
  }
  EXPECT_TRUE(crosses);
}

TEST(HfJsonTokenizerTest, LeftmostLongestSpecialMatching) {
  auto tok = load("gemma4_synthetic");
  ASSERT_NE(tok, nullptr);
  // "[[a" and "a]]]" overlap in "[[a]]]": Hugging Face takes the leftmost match.
  auto ids = tok->encode("[[a]]]", false, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], *tok->token_id("[[a"));
  EXPECT_EQ(tok->decode(ids), "[[a]]]");
}

TEST(HfJsonTokenizerTest, WithoutConfigUsesDefaults) {
  auto tok = load("gemma4_synthetic", /*with_config=*/false);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), 2);           // found by its text "<bos>"
  EXPECT_FALSE(tok->add_bos_default());  // no post-processor adds it
}

// Writes a modified copy of the Gemma 4 synthetic tokenizer.json and loads it.
class HfJsonRejectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(dir_of("gemma4_synthetic") + "/tokenizer.json");
    ASSERT_TRUE(in.good());
    base_ = json::parse(in);
    path_ = (std::filesystem::temp_directory_path() /
             ("sluice_tok_" + std::to_string(::getpid()) + ".json"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }

  Status load_modified(const json& j) {
    std::ofstream(path_) << j.dump();
    return from_hf_json(path_).status();
  }

  json base_;
  std::string path_;
};

TEST_F(HfJsonRejectTest, UnsupportedModel) {
  json j = base_;
  j["model"]["type"] = "Unigram";
  Status s = load_modified(j);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
  EXPECT_NE(s.message().find("model"), std::string::npos) << s.message();
}

TEST_F(HfJsonRejectTest, UnsupportedNormalizer) {
  json j = base_;
  j["normalizer"] = {{"type", "NFKC"}};
  Status s = load_modified(j);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
  EXPECT_NE(s.message().find("normalizer"), std::string::npos) << s.message();
}

TEST_F(HfJsonRejectTest, UnsupportedPreTokenizer) {
  json j = base_;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  Status s = load_modified(j);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
  EXPECT_NE(s.message().find("pre_tokenizer"), std::string::npos) << s.message();
}

TEST_F(HfJsonRejectTest, UnsupportedAddedTokenFlag) {
  json j = base_;
  j["added_tokens"][0]["lstrip"] = true;
  EXPECT_EQ(load_modified(j).code(), StatusCode::kUnimplemented);
}

TEST_F(HfJsonRejectTest, UnsupportedDecoder) {
  json j = base_;
  j["decoder"] = {{"type", "ByteLevel"}};
  EXPECT_EQ(load_modified(j).code(), StatusCode::kUnimplemented);
}

TEST_F(HfJsonRejectTest, MergeOfUnknownPiece) {
  json j = base_;
  j["model"]["merges"].push_back(json::array({"no-such-piece", "x"}));
  Status s = load_modified(j);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("no-such-piece"), std::string::npos) << s.message();
}

TEST_F(HfJsonRejectTest, RepeatedMerge) {
  json j = base_;
  j["model"]["merges"].push_back(j["model"]["merges"][0]);
  Status s = load_modified(j);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("repeats"), std::string::npos) << s.message();
}

TEST_F(HfJsonRejectTest, IdsWithAGap) {
  json j = base_;
  j["model"]["vocab"]["zzz-gap"] = 100000;
  Status s = load_modified(j);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("contiguous"), std::string::npos) << s.message();
}

TEST_F(HfJsonRejectTest, NotJson) {
  std::ofstream(path_) << "{\"model\": ";
  Status s = from_hf_json(path_).status();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
}

TEST(HfJsonTokenizerTest, MissingFile) {
  auto t = from_hf_json("/nonexistent/tokenizer.json");
  EXPECT_FALSE(t.is_ok());
}

}  // namespace
}  // namespace sluice::tokenizer
