// Gemma 4 config parsing and the per-layer plan, checked against the plans transformers
// 5.24 builds (tests/fixtures/gemma4_configs/expected_plan.json, prompts.json "plan").

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/models/kv_plan.h"
#include "engine/models/model_config.h"
#include "test_util.h"

namespace sluice::models {
namespace {

using nlohmann::json;

json load(const std::string& rel) {
  std::string text = testing::read_file(testing::fixture_path(rel));
  EXPECT_FALSE(text.empty()) << rel;
  return json::parse(text);
}

ModelConfig parse_ok(const json& j, const std::string& where) {
  auto c = parse_hf_config(j.dump(), where);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? *c : ModelConfig{};
}

std::string type_str(LayerType t) {
  return t == LayerType::kGlobal ? "full_attention" : "sliding_attention";
}

// Compares a plan with transformers' per-layer lists (expected_plan.json / prompts.json).
void expect_layers_match(const ModelPlan& plan, const json& want, const std::string& name) {
  const size_t n = want.at("layer").size();
  ASSERT_EQ(plan.layers.size(), n) << name;
  for (size_t i = 0; i < n; ++i) {
    SCOPED_TRACE(name + " layer " + std::to_string(i));
    const LayerPlan& l = plan.layers[i];
    EXPECT_EQ(l.layer, want["layer"][i].get<int>());
    EXPECT_EQ(type_str(l.type), want["type"][i].get<std::string>());
    EXPECT_EQ(l.head_dim, want["head_dim"][i].get<int>());
    EXPECT_EQ(l.num_kv_heads, want["num_kv_heads"][i].get<int>());
    EXPECT_EQ(!l.owns_kv, want["kv_shared"][i].get<bool>());
    EXPECT_EQ(l.kv_source_layer, want["kv_source_layer"][i].get<int>());
    if (want["has_v_proj"][i].is_null()) {
      EXPECT_FALSE(l.owns_kv);
    } else {
      EXPECT_EQ(l.has_v_proj, want["has_v_proj"][i].get<bool>());
    }
    EXPECT_EQ(l.intermediate_size, want["intermediate_size"][i].get<int>());
    EXPECT_FLOAT_EQ(l.rope_theta, want["rope_theta"][i].get<float>());
    EXPECT_EQ(l.rope_rotated_pairs, want["rope_rotated_pairs"][i].get<int>());
  }
}

TEST(Gemma4Config, RealConfigsMatchExpectedPlan) {
  json expected = load("gemma4_configs/expected_plan.json");
  ASSERT_EQ(expected["variants"].size(), 4u);
  for (const auto& [name, v] : expected["variants"].items()) {
    SCOPED_TRACE(name);
    std::string dir = "gemma4_configs/" + v["config_dir"].get<std::string>();
    ModelConfig c = parse_ok(load(dir + "/config.json"), dir + "/config.json");
    ASSERT_EQ(c.arch, Arch::kGemma4);
    EXPECT_EQ(c.hidden_size, v["hidden_size"].get<int>());
    EXPECT_EQ(c.num_layers, v["num_hidden_layers"].get<int>());
    EXPECT_EQ(c.num_heads, v["num_attention_heads"].get<int>());
    EXPECT_EQ(c.sliding_window, v["sliding_window"].get<int>());
    EXPECT_FLOAT_EQ(c.embed_scale, v["embed_scale_f32"].get<float>());
    EXPECT_FLOAT_EQ(c.final_logit_softcap, 30.0f);
    EXPECT_FLOAT_EQ(c.attn_scale, 1.0f);
    EXPECT_FALSE(c.norm_one_plus_weight);
    EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{1, 106}));

    ModelPlan plan = make_model_plan(c);
    expect_layers_match(plan, v["layers"], name);
    EXPECT_EQ(plan.first_kv_shared_layer, v["first_kv_shared_layer"].get<int>());
    std::vector<int> globals;
    for (const LayerPlan& l : plan.layers) {
      if (l.type == LayerType::kGlobal) globals.push_back(l.layer);
    }
    EXPECT_EQ(globals, v["global_layers"].get<std::vector<int>>());
    // transformers marks the last non-shared layer of each type "store" when sharing exists.
    for (int i = 0; i < c.num_layers; ++i) {
      const json& mode = v["kv_sharing_modes"][i];
      if (mode == "reuse") {
        EXPECT_FALSE(plan.layers[i].owns_kv) << i;
      }
      if (mode.is_null()) {
        EXPECT_TRUE(plan.layers[i].owns_kv) << i;
      }
    }
    EXPECT_EQ(plan.kv_bytes_per_token_bf16, v["kv_cache_bytes_per_token_bf16"].get<uint64_t>());
    EXPECT_EQ(plan.kv_bytes_per_token_f32, 2 * v["kv_cache_bytes_per_token_bf16"].get<uint64_t>());

    const json& pc = v["param_counts"];
    EXPECT_EQ(plan.params.embed_tokens, pc["embed_tokens"].get<uint64_t>());
    EXPECT_EQ(plan.params.ple_table, pc["ple_table"].get<uint64_t>());
    EXPECT_EQ(plan.params.experts, pc["experts"].get<uint64_t>());
    EXPECT_EQ(plan.params.unused_kv_shared_in_checkpoint,
              pc["unused_kv_shared_in_checkpoint"].get<uint64_t>());
    auto within_1pct = [](uint64_t got, uint64_t want) {
      return std::fabs(static_cast<double>(got) - static_cast<double>(want)) <=
             0.01 * static_cast<double>(want);
    };
    EXPECT_TRUE(within_1pct(plan.params.text_model, pc["text_model"].get<uint64_t>()))
        << plan.params.text_model << " vs " << pc["text_model"];
    EXPECT_TRUE(within_1pct(plan.params.text_active_per_token,
                            pc["text_active_per_token"].get<uint64_t>()))
        << plan.params.text_active_per_token << " vs " << pc["text_active_per_token"];
    EXPECT_EQ(plan.weight_bytes(2.0), 2 * plan.params.text_model);

    // KV groups: only owning layers, each owning layer in exactly one group.
    size_t owned = 0, grouped = 0;
    for (const LayerPlan& l : plan.layers) owned += l.owns_kv;
    for (const KvGroupPlan& g : plan.kv_groups) {
      grouped += g.layers.size();
      for (int l : g.layers) {
        EXPECT_TRUE(plan.layers[l].owns_kv);
        EXPECT_EQ(plan.layers[l].head_dim, g.head_dim);
        EXPECT_EQ(plan.layers[l].num_kv_heads, g.num_kv_heads);
      }
    }
    EXPECT_EQ(owned, grouped);
    EXPECT_EQ(plan.kv_groups.size(), 2u);
    for (const LayerPlan& l : plan.layers) {
      EXPECT_EQ(l.kv_group, plan.layers[l.kv_source_layer].kv_group);
    }
    std::string d = plan.describe();
    EXPECT_NE(d.find("KV groups"), std::string::npos);
    EXPECT_NE(d.find(std::to_string(plan.kv_bytes_per_token_bf16) + " B/token bf16"),
              std::string::npos);
  }
}

TEST(Gemma4Config, MoeAndPleFields) {
  ModelConfig moe = parse_ok(load("gemma4_configs/26b_a4b/config.json"), "26b");
  EXPECT_TRUE(moe.enable_moe_block);
  EXPECT_EQ(moe.num_experts, 128);
  EXPECT_EQ(moe.top_k_experts, 8);
  EXPECT_EQ(moe.moe_intermediate_size, 704);
  EXPECT_EQ(moe.hidden_size_per_layer_input, 0);
  EXPECT_TRUE(moe.layers[0].moe);
  EXPECT_TRUE(moe.layers[5].k_eq_v);
  EXPECT_FALSE(moe.layers[4].k_eq_v);
  ModelConfig e2b = parse_ok(load("gemma4_configs/e2b/config.json"), "e2b");
  EXPECT_EQ(e2b.hidden_size_per_layer_input, 256);
  EXPECT_EQ(e2b.vocab_size_per_layer_input, 262144);
  EXPECT_EQ(e2b.num_kv_shared_layers, 20);
  EXPECT_TRUE(e2b.layers[0].has_ple);
  EXPECT_FALSE(e2b.layers[0].moe);
  EXPECT_EQ(e2b.layers[15].kv_source_layer, 13);
  EXPECT_EQ(e2b.layers[19].kv_source_layer, 14);
  EXPECT_EQ(e2b.layers[14].kv_source_layer, -1);
  // Global rope: proportional, 64 of 256 pairs, pairs (i, i + 256), exponent over 512.
  EXPECT_EQ(e2b.layers[4].rope.num_pairs, 64);
  EXPECT_EQ(e2b.layers[4].rope.pair_offset, 256);
  EXPECT_EQ(e2b.layers[4].rope.freq_dim, 512);
  EXPECT_EQ(e2b.layers[0].rope.num_pairs, 128);
  EXPECT_EQ(e2b.layers[0].rope.freq_dim, 256);
}

TEST(Gemma4Config, TinyFixturesParseAndMatchTheirPlans) {
  for (const char* name : {"gemma4_e2b_tiny", "gemma4_e2b_tiny_multimodal", "gemma4_31b_tiny",
                           "gemma4_moe_tiny", "gemma4_e2b_realdims", "gemma4_moe_realdims"}) {
    SCOPED_TRACE(name);
    std::string dir = name;
    ModelConfig c = parse_ok(load(dir + "/config.json"), dir + "/config.json");
    json prompts = load(dir + "/prompts.json");
    if (prompts.contains("same_text_weights_as")) {  // the multimodal copy: use its text twin's
      prompts = load(prompts["same_text_weights_as"].get<std::string>() + "/prompts.json");
    }
    ModelPlan plan = make_model_plan(c);
    expect_layers_match(plan, prompts["plan"], name);
    EXPECT_EQ(c.vocab_size, prompts["vocab_size"].get<int>());
    EXPECT_FLOAT_EQ(c.final_logit_softcap, prompts["final_logit_softcapping"].get<float>());
    EXPECT_FLOAT_EQ(c.embed_scale, prompts["embed_scale"].get<float>());
  }
}

TEST(Gemma4Config, BothLayoutsGiveIdenticalLayers) {
  ModelConfig a = parse_ok(load("gemma4_e2b_tiny/config.json"), "new layout");
  ModelConfig b = parse_ok(load("gemma4_e2b_tiny_multimodal/config.json"), "published layout");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE(i);
    const LayerConfig& x = a.layers[i];
    const LayerConfig& y = b.layers[i];
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.head_dim, y.head_dim);
    EXPECT_EQ(x.num_kv_heads, y.num_kv_heads);
    EXPECT_EQ(x.intermediate_size, y.intermediate_size);
    EXPECT_EQ(x.kv_source_layer, y.kv_source_layer);
    EXPECT_EQ(x.k_eq_v, y.k_eq_v);
    EXPECT_EQ(x.has_ple, y.has_ple);
    EXPECT_FLOAT_EQ(x.rope.theta, y.rope.theta);
    EXPECT_EQ(x.rope.num_pairs, y.rope.num_pairs);
    EXPECT_EQ(x.rope.freq_dim, y.rope.freq_dim);
  }
  EXPECT_EQ(a.hidden_size_per_layer_input, b.hidden_size_per_layer_input);
}

TEST(Gemma4Config, PublishedGlobalKvHeadsOnlyApplyWithKEqV) {
  json j = load("gemma4_configs/e2b/config.json");
  j["text_config"]["num_global_key_value_heads"] = 4;  // ignored: attention_k_eq_v is false
  ModelConfig c = parse_ok(j, "e2b");
  EXPECT_EQ(c.layers[4].num_kv_heads, 1);
  j["text_config"]["attention_k_eq_v"] = true;
  c = parse_ok(j, "e2b");
  EXPECT_EQ(c.layers[4].num_kv_heads, 4);
  EXPECT_EQ(c.layers[3].num_kv_heads, 1);
}

void expect_rejected(json j, const std::string& needle) {
  auto c = parse_hf_config(j.dump(), "config.json");
  ASSERT_FALSE(c.is_ok()) << needle;
  EXPECT_NE(c.status().to_string().find(needle), std::string::npos) << c.status().to_string();
}

TEST(Gemma4Config, BadValuesAreRejectedByName) {
  const json base = load("gemma4_e2b_tiny/config.json");
  json j = base;
  j["hidden_activation"] = "silu";
  expect_rejected(j, "hidden_activation");
  j = base;
  j["use_bidirectional_attention"] = "all";
  expect_rejected(j, "use_bidirectional_attention");
  j = base;
  j["rope_parameters"]["full_attention"]["rope_type"] = "yarn";
  expect_rejected(j, "rope_type 'yarn'");
  j = base;
  j["per_layer_config"]["4"]["intermediate_size"] = 7;
  expect_rejected(j, "override 'intermediate_size'");
  j = base;
  j["per_layer_config"]["10"] = {{"head_dim", 64}};
  expect_rejected(j, "per_layer_config key '10'");
  j = base;
  j["num_kv_shared_layers"] = 10;
  expect_rejected(j, "num_kv_shared_layers");
  j = base;
  j["num_kv_shared_layers"] = 6;  // layers 4..9 shared: no global layer left to own K/V
  expect_rejected(j, "no non-shared full_attention layer");
  j = base;
  j["attention_k_eq_v"] = "yes";
  expect_rejected(j, "attention_k_eq_v");
  j = load("gemma4_moe_tiny/config.json");
  j.erase("num_experts");
  expect_rejected(j, "num_experts");
  j = load("gemma4_moe_tiny/config.json");
  j["top_k_experts"] = 9;
  expect_rejected(j, "top_k_experts");
  j = base;
  j["model_type"] = "gemma5_text";
  expect_rejected(j, "gemma4_text");
}

TEST(Gemma4Config, Gemma3PlanOwnsEveryLayer) {
  ModelConfig c = parse_ok(load("gemma3_tiny/config.json"), "gemma3_tiny");
  EXPECT_EQ(c.arch, Arch::kGemma3);
  EXPECT_EQ(c.num_kv_shared_layers, 0);
  ModelPlan plan = make_model_plan(c);
  for (const LayerPlan& l : plan.layers) {
    EXPECT_TRUE(l.owns_kv);
    EXPECT_EQ(l.kv_source_layer, l.layer);
    EXPECT_TRUE(l.has_v_proj);
  }
  size_t grouped = 0;
  for (const KvGroupPlan& g : plan.kv_groups) grouped += g.layers.size();
  EXPECT_EQ(grouped, plan.layers.size());
  EXPECT_EQ(plan.params.unused_kv_shared_in_checkpoint, 0u);
}

}  // namespace
}  // namespace sluice::models
