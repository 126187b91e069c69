// Golden tests: our f32 logits for tiny random Gemma 3 models against transformers'
// (tools/make_gemma3_tiny_fixture.py), whole-prompt and chunk by chunk through the KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/models/loader.h"
#include "test_util.h"

namespace sluice::models {
namespace {

using nlohmann::json;

std::vector<float> read_f32(const std::string& path) {
  std::string bytes = testing::read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

class Gemma3Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Gemma3Golden, FullPromptLogitsMatchTransformers) {
  const std::string dir = testing::fixture_path(GetParam());
  auto loaded = load_model(dir, {}, kernels::cpu_ops());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  Model& model = *loaded->model;
  const int V = model.config().vocab_size;
  json prompts = json::parse(testing::read_file(dir + "/prompts.json"));
  ASSERT_GE(prompts["prompts"].size(), 4u);
  for (const json& p : prompts["prompts"]) {
    std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    std::vector<float> want = read_f32(dir + "/" + p["logits_file"].get<std::string>());
    ASSERT_EQ(want.size(), ids.size() * V);
    SequenceKv kv(model.config());
    std::vector<float> got(ids.size() * V);
    ASSERT_TRUE(kv.forward(model, ids, static_cast<int>(ids.size()), got).is_ok());
    EXPECT_LT(max_abs_diff(got, want), 1e-4f) << "prompt " << p["index"] << " of " << ids.size() << " tokens";
  }
}

TEST_P(Gemma3Golden, ChunkedPrefillAndDecodeMatchFullPrompt) {
  const std::string dir = testing::fixture_path(GetParam());
  auto loaded = load_model(dir, {}, kernels::cpu_ops());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  Model& model = *loaded->model;
  const int V = model.config().vocab_size;
  json prompts = json::parse(testing::read_file(dir + "/prompts.json"));
  const json& p = prompts["prompts"].back();  // the longest: beyond the sliding window
  std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
  std::vector<float> want = read_f32(dir + "/" + p["logits_file"].get<std::string>());
  ASSERT_GT(ids.size(), static_cast<size_t>(model.config().sliding_window) + 4);
  // A prefill chunk of 5, one of 7, then one token at a time.
  SequenceKv kv(model.config());
  size_t pos = 0;
  std::vector<size_t> chunks = {5, 7};
  while (pos < ids.size()) {
    size_t n = chunks.empty() ? 1 : chunks.front();
    if (!chunks.empty()) chunks.erase(chunks.begin());
    n = std::min(n, ids.size() - pos);
    std::vector<float> got(n * V);
    ASSERT_TRUE(kv.forward(model, std::span(ids).subspan(pos, n), static_cast<int>(n), got).is_ok());
    EXPECT_LT(max_abs_diff(got, std::span(want).subspan(pos * V, n * V)), 1e-4f) << "chunk at " << pos;
    pos += n;
  }
  EXPECT_EQ(kv.num_tokens, static_cast<int>(ids.size()));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Gemma3Golden,
                         ::testing::Values("gemma3_tiny", "gemma3_tiny_gqa2", "gemma3_tiny_d256"));

TEST(Gemma3Forward, RejectsOutOfRangeTokenIds) {
  auto loaded = load_model(testing::fixture_path("gemma3_tiny"), {}, kernels::cpu_ops());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  Model& model = *loaded->model;
  SequenceKv kv(model.config());
  std::vector<float> logits(model.config().vocab_size);
  for (int32_t bad : {-1, model.config().vocab_size, INT32_MAX}) {
    std::vector<int32_t> ids = {2, bad};
    Status s = kv.forward(model, ids, 1, logits);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(kv.num_tokens, 0);
  }
}

}  // namespace
}  // namespace sluice::models
