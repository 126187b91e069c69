#include "engine/models/model_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace sluice::models {
namespace {

using nlohmann::json;

json tiny_config() {
  return json::parse(testing::read_file(testing::fixture_path("gemma3_tiny/config.json")));
}

TEST(ModelConfig, ParsesTinyFixture) {
  auto c = parse_hf_config(tiny_config().dump(), "config.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->num_layers, 6);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->layers[5].type, LayerType::kGlobal);
  EXPECT_EQ(c->layers[0].type, LayerType::kSliding);
  EXPECT_FLOAT_EQ(c->layers[5].rope.theta, 1e6f);
  EXPECT_FLOAT_EQ(c->layers[0].rope.theta, 1e4f);
  EXPECT_EQ(c->layers[0].rope.num_pairs, 16);
  EXPECT_TRUE(c->norm_one_plus_weight);
  EXPECT_NEAR(c->attn_scale, 1.0 / std::sqrt(32.0), 1e-7);
}

TEST(ModelConfig, LegacyRopeKeysAndSlidingPattern) {
  json j = tiny_config();
  j.erase("rope_parameters");
  j.erase("layer_types");
  j["rope_theta"] = 1000000.0;
  j["rope_local_base_freq"] = 10000.0;
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  j["sliding_window_pattern"] = 3;
  auto c = parse_hf_config(j.dump(), "config.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->layers[2].type, LayerType::kGlobal);
  EXPECT_EQ(c->layers[3].type, LayerType::kSliding);
  EXPECT_FLOAT_EQ(c->layers[2].rope.freq_scale, 0.125f);  // linear x8 on global layers only
  EXPECT_FLOAT_EQ(c->layers[0].rope.freq_scale, 1.0f);
}

TEST(ModelConfig, MultimodalWrapperUsesTextConfig) {
  json j = {{"model_type", "gemma3"}, {"text_config", tiny_config()}, {"eos_token_id", json::array({1, 106})}};
  j["text_config"].erase("eos_token_id");
  j["text_config"]["vocab_size"] = 1024;
  auto c = parse_hf_config(j.dump(), "config.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{1, 106}));
}

struct BadCase {
  const char* key;
  json value;
  const char* expect_in_message;
};

TEST(ModelConfig, RejectsUnsupportedValuesByName) {
  std::vector<BadCase> cases = {
      {"hidden_activation", "silu", "hidden_activation"},
      {"num_key_value_heads", 3, "num_key_value_heads"},
      {"head_dim", 31, "head_dim"},
      {"num_hidden_layers", 100000, "num_hidden_layers"},
      {"hidden_size", "64", "hidden_size"},
      {"vocab_size", -1, "vocab_size"},
      {"model_type", "llama", "model_type"},
      {"tie_word_embeddings", false, "tie_word_embeddings"},
      {"layer_types", json::array({"sliding_attention"}), "layer_types"},
      {"rope_parameters", {{"full_attention", {{"rope_type", "yarn"}, {"rope_theta", 1e6}}},
                           {"sliding_attention", {{"rope_theta", 1e4}}}}, "yarn"},
  };
  for (const BadCase& bc : cases) {
    json j = tiny_config();
    j[bc.key] = bc.value;
    auto c = parse_hf_config(j.dump(), "cfg.json");
    ASSERT_FALSE(c.is_ok()) << bc.key;
    EXPECT_NE(c.status().message().find(bc.expect_in_message), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("cfg.json"), std::string::npos);
  }
  EXPECT_FALSE(parse_hf_config("{not json", "x").is_ok());
  EXPECT_FALSE(parse_hf_config("[]", "x").is_ok());
  json j = tiny_config();
  j.erase("hidden_size");
  auto c = parse_hf_config(j.dump(), "x");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("missing required key 'hidden_size'"), std::string::npos);
}

}  // namespace
}  // namespace sluice::models
