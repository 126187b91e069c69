// The real default model (Gemma 3 270M, Q4_K_M GGUF): tensor count, per-tensor types as
// gemma-models.md §3.4 derives them, row-major shapes, and dequantized values against
// gguf.quants.dequantize (tests/fixtures/weights/gemma3_270m_rows.json).

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/weights/dequant.h"
#include "engine/weights/weight_source.h"
#include "test_util.h"

namespace sluice::weights {
namespace {

class Gemma3GgufTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string path = sluice::testing::default_model_path();
    if (path.empty()) return;
    auto src = WeightSource::open_gguf(path);
    ASSERT_TRUE(src.is_ok()) << src.status().to_string();
    source_ = std::move(src).value().release();
  }
  static void TearDownTestSuite() {
    delete source_;
    source_ = nullptr;
  }
  void SetUp() override {
    if (sluice::testing::default_model_path().empty()) {
      GTEST_SKIP() << "default model not found (models/gemma-3-270m-q4_k_m.gguf or "
                      "$SLUICE_DEFAULT_MODEL)";
    }
    ASSERT_NE(source_, nullptr);
  }
  static WeightSource* source_;
};
WeightSource* Gemma3GgufTest::source_ = nullptr;

TEST_F(Gemma3GgufTest, TensorCountTypesAndShapes) {
  const WeightSource& s = *source_;
  EXPECT_EQ(s.size(), 236u);
  EXPECT_EQ(s.gguf()->tensors().size(), 236u);
  EXPECT_EQ(*s.gguf()->get_string("general.architecture"), "gemma3");
  EXPECT_EQ(*s.gguf()->get_u64("gemma3.block_count"), 18u);
  EXPECT_EQ(*s.gguf()->get_u64("gemma3.embedding_length"), 640u);
  EXPECT_EQ((*s.gguf()->get_array("tokenizer.ggml.tokens"))->size(), 262144u);
  EXPECT_EQ((*s.gguf()->get_array("tokenizer.ggml.scores"))->floats.size(), 262144u);
  EXPECT_EQ((*s.gguf()->get_array("tokenizer.ggml.token_type"))->ints.size(), 262144u);

  auto type_of = [&](const std::string& name) {
    const WeightInfo* w = s.find(name);
    EXPECT_NE(w, nullptr) << name;
    return w ? w->dtype : SourceDType::kF32;
  };
  EXPECT_EQ(type_of("token_embd.weight"), SourceDType::kQ8_0);
  EXPECT_EQ(s.find("token_embd.weight")->shape, (std::vector<int64_t>{262144, 640}));
  EXPECT_EQ(s.find("output.weight"), nullptr);  // tied head
  EXPECT_EQ(type_of("output_norm.weight"), SourceDType::kF32);
  const std::set<int> more_bits = {0, 1, 4, 7, 10, 13, 15, 16, 17};
  for (int i = 0; i < 18; ++i) {
    std::string p = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(type_of(p + "attn_q.weight"), SourceDType::kQ5_0) << i;
    EXPECT_EQ(type_of(p + "attn_k.weight"), SourceDType::kQ5_0) << i;
    EXPECT_EQ(type_of(p + "ffn_gate.weight"), SourceDType::kQ5_0) << i;
    EXPECT_EQ(type_of(p + "ffn_up.weight"), SourceDType::kQ5_0) << i;
    EXPECT_EQ(type_of(p + "attn_output.weight"), SourceDType::kQ4_K) << i;
    bool more = more_bits.count(i) > 0;
    EXPECT_EQ(type_of(p + "attn_v.weight"), more ? SourceDType::kQ8_0 : SourceDType::kQ5_0) << i;
    EXPECT_EQ(type_of(p + "ffn_down.weight"), more ? SourceDType::kQ6_K : SourceDType::kQ4_K) << i;
    for (const char* norm : {"attn_norm", "attn_q_norm", "attn_k_norm", "post_attention_norm",
                             "ffn_norm", "post_ffw_norm"}) {
      EXPECT_EQ(type_of(p + norm + ".weight"), SourceDType::kF32) << p << norm;
    }
    EXPECT_EQ(s.find(p + "attn_q.weight")->shape, (std::vector<int64_t>{1024, 640}));
    EXPECT_EQ(s.find(p + "attn_k.weight")->shape, (std::vector<int64_t>{256, 640}));
    EXPECT_EQ(s.find(p + "attn_output.weight")->shape, (std::vector<int64_t>{640, 1024}));
    EXPECT_EQ(s.find(p + "ffn_down.weight")->shape, (std::vector<int64_t>{640, 2048}));
    EXPECT_EQ(s.find(p + "attn_q_norm.weight")->shape, (std::vector<int64_t>{256}));
  }
  std::map<SourceDType, int> counts;
  for (const auto& name : s.names()) counts[s.find(name)->dtype]++;
  EXPECT_EQ(counts[SourceDType::kF32], 109);
  EXPECT_EQ(counts[SourceDType::kQ5_0], 81);
  EXPECT_EQ(counts[SourceDType::kQ4_K], 27);
  EXPECT_EQ(counts[SourceDType::kQ8_0], 10);
  EXPECT_EQ(counts[SourceDType::kQ6_K], 9);
}

TEST_F(Gemma3GgufTest, DequantizedRowsMatchGgufPython) {
  std::string text =
      sluice::testing::read_file(sluice::testing::fixture_path("weights/gemma3_270m_rows.json"));
  ASSERT_FALSE(text.empty()) << "run tools/make_dequant_reference.py";
  nlohmann::json doc = nlohmann::json::parse(text);
  EXPECT_EQ(doc["tensor_count"].get<size_t>(), source_->size());
  ASSERT_TRUE(doc["tensors"].contains("blk.0.attn_q.weight"));
  int checked = 0;
  for (auto& [name, entry] : doc["tensors"].items()) {
    const WeightInfo* w = source_->find(name);
    ASSERT_NE(w, nullptr) << name;
    EXPECT_EQ(entry["type"].get<std::string>(), source_dtype_name(w->dtype)) << name;
    const uint64_t cols = static_cast<uint64_t>(w->shape.back());
    std::vector<float> row(cols);
    for (auto& r : entry["rows"]) {
      uint64_t index = r["row"].get<uint64_t>();
      ASSERT_TRUE(convert_to_f32(*w, index * cols, cols, row.data()).is_ok()) << name;
      auto first = r["first"].get<std::vector<uint32_t>>();
      auto last = r["last"].get<std::vector<uint32_t>>();
      for (size_t i = 0; i < first.size(); ++i) {
        uint32_t got;
        std::memcpy(&got, &row[i], 4);
        EXPECT_EQ(got, first[i]) << name << " row " << index << " col " << i;
        ++checked;
      }
      for (size_t i = 0; i < last.size(); ++i) {
        uint32_t got;
        std::memcpy(&got, &row[cols - last.size() + i], 4);
        EXPECT_EQ(got, last[i]) << name << " row " << index << " col " << cols - last.size() + i;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 500);
  // The same rows through the GGUF-level row API.
  const GgufTensorInfo* q = source_->gguf()->find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  std::vector<float> a(640), b(640);
  ASSERT_TRUE(dequantize_rows(*q, 1023, 1024, a.data()).is_ok());
  ASSERT_TRUE(
      convert_to_f32(*source_->find("blk.0.attn_q.weight"), 1023 * 640, 640, b.data()).is_ok());
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace sluice::weights
