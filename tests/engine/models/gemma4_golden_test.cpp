// Golden tests: our f32 logits for tiny random Gemma 4 models (PLE + KV sharing, K=V, MoE,
// real head dims 256/512) against transformers' (tools/make_gemma4_fixtures.py): whole
// prompts, chunk by chunk through the KV cache, greedy decode rows, per-layer hidden states
// and MoE routing; plus loading the multimodal layout and clean load errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/models/gemma4.h"
#include "engine/models/loader.h"
#include "test_util.h"

namespace sluice::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr float kLogitTol = 1e-4f;

std::vector<float> read_f32(const std::string& path) {
  std::string bytes = testing::read_file(path);
  EXPECT_FALSE(bytes.empty()) << path;
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

float max_abs(std::span<const float> a) {
  float m = 0;
  for (float x : a) m = std::max(m, std::abs(x));
  return m;
}

int argmax(std::span<const float> row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

struct Fixture {
  std::string dir;
  LoadedModel loaded;
  json prompts;
  Model& model() { return *loaded.model; }
  int vocab() { return loaded.model->config().vocab_size; }
};

Fixture open_fixture(const std::string& name) {
  Fixture f;
  f.dir = testing::fixture_path(name);
  auto loaded = load_model(f.dir, {}, kernels::cpu_ops());
  EXPECT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  if (loaded.is_ok()) f.loaded = std::move(*loaded);
  f.prompts = json::parse(testing::read_file(f.dir + "/prompts.json"));
  return f;
}

// Logits of every position of `ids` from one forward over a fresh cache.
std::vector<float> full_logits(Model& model, const std::vector<int32_t>& ids) {
  SequenceKv kv(model.config());
  std::vector<float> got(ids.size() * model.config().vocab_size);
  Status s = kv.forward(model, ids, static_cast<int>(ids.size()), got);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return got;
}

class Gemma4Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Gemma4Golden, FullPromptLogitsMatchTransformers) {
  Fixture f = open_fixture(GetParam());
  ASSERT_NE(f.loaded.model, nullptr);
  EXPECT_EQ(f.model().config().arch, Arch::kGemma4);
  EXPECT_FLOAT_EQ(f.model().config().attn_scale, f.prompts["attn_scale"].get<float>());
  EXPECT_FLOAT_EQ(f.model().config().embed_scale, f.prompts["embed_scale"].get<float>());
  ASSERT_GE(f.prompts["prompts"].size(), 4u);
  float worst = 0;
  for (const json& p : f.prompts["prompts"]) {
    std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    std::vector<float> want = read_f32(f.dir + "/" + p["logits_file"].get<std::string>());
    ASSERT_EQ(want.size(), ids.size() * f.vocab());
    std::vector<float> got = full_logits(f.model(), ids);
    const float diff = max_abs_diff(got, want);
    worst = std::max(worst, diff);
    EXPECT_LE(diff, kLogitTol) << "prompt " << p["index"] << " of " << ids.size() << " tokens";
    std::vector<int> want_argmax = p["argmax"].get<std::vector<int>>();
    for (size_t t = 0; t < ids.size(); ++t) {
      EXPECT_EQ(argmax(std::span(got).subspan(t * f.vocab(), f.vocab())), want_argmax[t])
          << "prompt " << p["index"] << " position " << t;
    }
  }
  std::cout << "[ " << GetParam() << " ] max |dlogit| vs transformers: " << worst << "\n";
}

TEST_P(Gemma4Golden, ChunkedPrefillAndDecodeMatchFullPrompt) {
  Fixture f = open_fixture(GetParam());
  ASSERT_NE(f.loaded.model, nullptr);
  const int V = f.vocab();
  const json& p = f.prompts["prompts"].back();  // the longest: beyond the sliding window
  std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
  std::vector<float> want = read_f32(f.dir + "/" + p["logits_file"].get<std::string>());
  ASSERT_GT(ids.size(), static_cast<size_t>(f.model().config().sliding_window) + 4);
  std::vector<float> full = full_logits(f.model(), ids);
  // A prefill chunk of 5, one of 7, a chunk longer than the window, then one token at a time.
  SequenceKv kv(f.model().config());
  std::vector<size_t> chunks = {5, 7, static_cast<size_t>(f.model().config().sliding_window) + 3};
  size_t pos = 0;
  float worst_vs_full = 0;
  while (pos < ids.size()) {
    size_t n = chunks.empty() ? 1 : chunks.front();
    if (!chunks.empty()) chunks.erase(chunks.begin());
    n = std::min(n, ids.size() - pos);
    std::vector<float> got(n * V);
    ASSERT_TRUE(kv.forward(f.model(), std::span(ids).subspan(pos, n), static_cast<int>(n), got).is_ok());
    EXPECT_LE(max_abs_diff(got, std::span(want).subspan(pos * V, n * V)), kLogitTol) << "chunk at " << pos;
    worst_vs_full = std::max(worst_vs_full, max_abs_diff(got, std::span(full).subspan(pos * V, n * V)));
    pos += n;
  }
  EXPECT_EQ(kv.num_tokens, static_cast<int>(ids.size()));
  // Same math over a different split, up to f32 rounding: the CPU matmul takes a different
  // kernel (and summation order) for few rows than for many (measured about 1.6e-5).
  EXPECT_LE(worst_vs_full, kLogitTol);
  std::cout << "[ " << GetParam() << " ] chunked vs full-prompt max |dlogit|: " << worst_vs_full << "\n";
}

TEST_P(Gemma4Golden, GreedyStepLogitsMatchTransformers) {
  Fixture f = open_fixture(GetParam());
  ASSERT_NE(f.loaded.model, nullptr);
  const int V = f.vocab();
  ASSERT_FALSE(f.prompts["greedy"].empty());
  float worst = 0;
  for (const json& g : f.prompts["greedy"]) {
    const int pi = g["prompt_index"].get<int>();
    std::vector<int32_t> ids = f.prompts["prompts"][pi]["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> new_ids = g["new_ids"].get<std::vector<int32_t>>();
    std::vector<float> want = read_f32(f.dir + "/" + g["step_logits_file"].get<std::string>());
    ASSERT_EQ(want.size(), new_ids.size() * V);
    SequenceKv kv(f.model().config());
    std::vector<float> row(V);
    ASSERT_TRUE(kv.forward(f.model(), ids, 1, row).is_ok());
    for (size_t k = 0; k < new_ids.size(); ++k) {
      if (k > 0) {
        ASSERT_TRUE(kv.forward(f.model(), std::span(new_ids).subspan(k - 1, 1), 1, row).is_ok());
      }
      const float diff = max_abs_diff(row, std::span(want).subspan(k * V, V));
      worst = std::max(worst, diff);
      EXPECT_LE(diff, kLogitTol) << "prompt " << pi << " step " << k;
      EXPECT_EQ(argmax(row), new_ids[k]) << "prompt " << pi << " step " << k;
    }
  }
  std::cout << "[ " << GetParam() << " ] greedy rows max |dlogit|: " << worst << "\n";
}

// Two sequences in one step, as the engine batches them: prompts 2 and 3 prefilled together
// in a paged cache with scattered blocks (one block table per KV group), logits wanted for
// every token of one and only the last token of the other, then a decode of both.
TEST_P(Gemma4Golden, MixedBatchOverScatteredBlocksMatchesTransformers) {
  Fixture f = open_fixture(GetParam());
  ASSERT_NE(f.loaded.model, nullptr);
  const ModelConfig& c = f.model().config();
  const int V = f.vocab();
  std::vector<int32_t> ids_a = f.prompts["prompts"][2]["ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> ids_b = f.prompts["prompts"][3]["ids"].get<std::vector<int32_t>>();
  std::vector<float> want_a = read_f32(f.dir + "/" + f.prompts["prompts"][2]["logits_file"].get<std::string>());
  std::vector<float> want_b = read_f32(f.dir + "/" + f.prompts["prompts"][3]["logits_file"].get<std::string>());
  const int bs = 4, max_blocks = 16;
  const size_t num_groups = kv_group_layouts(c).size();
  PagedKvCache cache(c, bs, std::vector<int>(num_groups, 2 * max_blocks));
  // Sequence 0 takes the odd blocks backwards, sequence 1 the even ones, per group shifted.
  std::vector<std::vector<int32_t>> tables(num_groups, std::vector<int32_t>(2 * max_blocks));
  for (size_t g = 0; g < num_groups; ++g) {
    for (int j = 0; j < max_blocks; ++j) {
      tables[g][j] = static_cast<int32_t>((2 * (max_blocks - 1 - j) + 1 + 2 * g) % (2 * max_blocks));
      tables[g][max_blocks + j] = static_cast<int32_t>((2 * j + 2 * g) % (2 * max_blocks));
    }
  }
  auto run = [&](const std::vector<std::pair<int, int32_t>>& toks, std::vector<int32_t> rows,
                 std::vector<int32_t> seq_lens) {
    std::vector<int32_t> tokens, positions, seqs;
    std::vector<std::vector<int32_t>> slots(num_groups);
    for (auto [s, pos] : toks) {
      tokens.push_back(s == 0 ? ids_a[pos] : ids_b[pos]);
      positions.push_back(pos);
      seqs.push_back(s);
      for (size_t g = 0; g < num_groups; ++g) {
        slots[g].push_back(tables[g][s * max_blocks + pos / bs] * bs + pos % bs);
      }
    }
    ForwardBatch b;
    b.tokens = tokens;
    b.positions = positions;
    b.token_seq = seqs;
    b.seq_lens = seq_lens;
    b.logit_rows = rows;
    for (size_t g = 0; g < num_groups; ++g) b.groups.push_back({slots[g], tables[g], max_blocks});
    std::vector<float> out(rows.size() * V);
    Status st = f.model().forward(b, cache, out);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return out;
  };
  // Step 1: all of A but its last token, and B's first 30 tokens interleaved with it.
  const int na = static_cast<int>(ids_a.size()) - 1, nb = 30;
  std::vector<std::pair<int, int32_t>> toks;
  for (int p = 0; p < std::max(na, nb); ++p) {
    if (p < nb) toks.push_back({1, p});
    if (p < na) toks.push_back({0, p});
  }
  std::vector<int32_t> rows;
  std::vector<int32_t> rows_a_pos;
  for (size_t t = 0; t < toks.size(); ++t) {
    if (toks[t].first == 0) {
      rows.push_back(static_cast<int32_t>(t));
      rows_a_pos.push_back(toks[t].second);
    }
  }
  for (size_t t = 0; t < toks.size(); ++t) {
    if (toks[t].first == 1 && toks[t].second == nb - 1) rows.push_back(static_cast<int32_t>(t));
  }
  std::vector<float> out = run(toks, rows, {na, nb});
  float worst = 0;
  for (size_t i = 0; i < rows_a_pos.size(); ++i) {
    worst = std::max(worst, max_abs_diff(std::span(out).subspan(i * V, V),
                                         std::span(want_a).subspan(rows_a_pos[i] * V, V)));
  }
  worst = std::max(worst, max_abs_diff(std::span(out).subspan(rows_a_pos.size() * V, V),
                                       std::span(want_b).subspan((nb - 1) * V, V)));
  // Step 2: B's next 5 tokens (a chunk) and A's last token (a decode); only B's last wanted
  // first, then A's.
  toks.clear();
  for (int p = nb; p < nb + 5; ++p) toks.push_back({1, p});
  toks.push_back({0, na});
  out = run(toks, {4, 5}, {na + 1, nb + 5});
  worst = std::max(worst, max_abs_diff(std::span(out).subspan(0, V), std::span(want_b).subspan((nb + 4) * V, V)));
  worst = std::max(worst, max_abs_diff(std::span(out).subspan(V, V), std::span(want_a).subspan(na * V, V)));
  // Step 3: the rest of B with no logits at all, then its last token alone.
  toks.clear();
  const int nb_total = static_cast<int>(ids_b.size());
  for (int p = nb + 5; p < nb_total - 1; ++p) toks.push_back({1, p});
  run(toks, {}, {na + 1, nb_total - 1});
  out = run({{1, nb_total - 1}}, {0}, {na + 1, nb_total});
  worst = std::max(worst, max_abs_diff(out, std::span(want_b).subspan((nb_total - 1) * V, V)));
  EXPECT_LE(worst, kLogitTol);
  std::cout << "[ " << GetParam() << " ] mixed batch max |dlogit|: " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Gemma4Golden,
                         ::testing::Values("gemma4_e2b_tiny", "gemma4_31b_tiny", "gemma4_moe_tiny",
                                           "gemma4_e2b_realdims", "gemma4_moe_realdims"));

// Per-layer hidden states of e2b_tiny (prompt 2): localises a mismatch to one layer.
TEST(Gemma4Hidden, LayersMatchTransformers) {
  Fixture f = open_fixture("gemma4_e2b_tiny");
  ASSERT_NE(f.loaded.model, nullptr);
  auto* model = dynamic_cast<Gemma4Model*>(f.loaded.model.get());
  ASSERT_NE(model, nullptr);
  const json& h = f.prompts["hidden"];
  const json& files = h["files"];
  std::vector<int32_t> ids = f.prompts["prompts"][h["prompt_index"].get<int>()]["ids"].get<std::vector<int32_t>>();
  std::map<std::string, std::vector<float>> seen;
  model->set_observer([&](std::string_view what, int layer, const kernels::Tensor& t) {
    std::string key = layer >= 0 ? fmt::format("{}_{}", what, layer) : std::string(what);
    const float* p = t.ptr<const float>();
    seen[key].assign(p, p + t.numel());
  });
  full_logits(*model, ids);
  model->set_observer(nullptr);
  auto check = [&](const std::string& key, const std::string& file) {
    ASSERT_TRUE(seen.count(key)) << key;
    std::vector<float> want = read_f32(f.dir + "/" + file);
    const float scale = std::max(max_abs(want), 1e-6f);
    EXPECT_LE(max_abs_diff(seen[key], want) / scale, 1e-4f) << key;
  };
  check("embed", files["embed"].get<std::string>());
  check("ple_inputs", files["ple_inputs"].get<std::string>());
  for (size_t l = 0; l < files["layers"].size(); ++l) {
    check(fmt::format("layer_{}", l), files["layers"][l].get<std::string>());
  }
  check("final_norm", files["final_norm"].get<std::string>());
}

// The experts each token is routed to, and their weights, as transformers chose them.
TEST(Gemma4Moe, RoutingMatchesTransformers) {
  for (const char* name : {"gemma4_moe_tiny", "gemma4_moe_realdims"}) {
    SCOPED_TRACE(name);
    Fixture f = open_fixture(name);
    ASSERT_NE(f.loaded.model, nullptr);
    auto* model = dynamic_cast<Gemma4Model*>(f.loaded.model.get());
    ASSERT_NE(model, nullptr);
    ASSERT_FALSE(f.prompts["routing"].empty());
    for (const json& r : f.prompts["routing"]) {
      const int pi = r["prompt_index"].get<int>();
      std::vector<int32_t> ids = f.prompts["prompts"][pi]["ids"].get<std::vector<int32_t>>();
      std::map<int, std::vector<int32_t>> index;
      std::map<int, std::vector<float>> weights;
      model->set_observer([&](std::string_view what, int layer, const kernels::Tensor& t) {
        if (what == "moe_top_k_index") {
          index[layer].assign(t.ptr<const int32_t>(), t.ptr<const int32_t>() + t.numel());
        } else if (what == "moe_top_k_weights") {
          weights[layer].assign(t.ptr<const float>(), t.ptr<const float>() + t.numel());
        }
      });
      full_logits(*model, ids);
      model->set_observer(nullptr);
      for (const json& l : r["layers"]) {
        const int layer = l["layer"].get<int>();
        std::vector<int32_t> want_idx;
        std::vector<float> want_w;
        for (const json& row : l["top_k_index"]) for (const json& e : row) want_idx.push_back(e.get<int32_t>());
        for (const json& row : l["top_k_weights"]) for (const json& w : row) want_w.push_back(w.get<float>());
        EXPECT_EQ(index[layer], want_idx) << "prompt " << pi << " layer " << layer;
        EXPECT_LE(max_abs_diff(weights[layer], want_w), 1e-5f) << "prompt " << pi << " layer " << layer;
      }
    }
  }
}

// The published multimodal layout: text under model.language_model., towers and the unused
// KV-shared K/V tensors skipped, logits identical to the text fixture's.
TEST(Gemma4Multimodal, LoadsWithTowersSkippedAndMatchesTextLogits) {
  Fixture f = open_fixture("gemma4_e2b_tiny_multimodal");
  ASSERT_NE(f.loaded.model, nullptr);
  EXPECT_EQ(f.model().config().num_kv_shared_layers, 4);
  float worst = 0;
  for (const json& p : f.prompts["prompts"]) {
    std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    std::vector<float> want = read_f32(f.dir + "/" + p["logits_file"].get<std::string>());
    std::vector<float> got = full_logits(f.model(), ids);
    worst = std::max(worst, max_abs_diff(got, want));
  }
  EXPECT_LE(worst, kLogitTol);
  // Stop ids from the instruction-tuned generation config.
  for (int32_t id : {1, 106, 50}) {
    EXPECT_NE(std::find(f.loaded.defaults.stop_token_ids.begin(), f.loaded.defaults.stop_token_ids.end(), id),
              f.loaded.defaults.stop_token_ids.end())
        << id;
  }
}

// A copy of a fixture directory with config.json edited by `edit`.
class EditedFixture {
 public:
  EditedFixture(const std::string& name, const std::function<void(json&)>& edit) {
    path_ = fs::temp_directory_path() /
            fmt::format("sluice_g4_{}_{}", name, reinterpret_cast<uintptr_t>(this));
    fs::create_directories(path_);
    const fs::path src = testing::fixture_path(name);
    fs::copy_file(src / "model.safetensors", path_ / "model.safetensors");
    json cfg = json::parse(testing::read_file((src / "config.json").string()));
    edit(cfg);
    std::ofstream(path_ / "config.json") << cfg.dump();
  }
  ~EditedFixture() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string load_error(const std::string& dir) {
  auto loaded = load_model(dir, {}, kernels::cpu_ops());
  EXPECT_FALSE(loaded.is_ok());
  return loaded.is_ok() ? std::string() : loaded.status().to_string();
}

TEST(Gemma4Load, MissingTensorIsOneLineNamingTensorAndFile) {
  // Without KV sharing, layer 6 needs a k_proj the text checkpoint does not have.
  EditedFixture f("gemma4_e2b_tiny", [](json& c) {
    c["num_kv_shared_layers"] = 0;
    c["use_double_wide_mlp"] = false;
  });
  std::string msg = load_error(f.path());
  EXPECT_NE(msg.find("model.layers.6.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find(f.path()), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(Gemma4Load, ShapeMismatchIsOneLineNamingTensorAndFile) {
  EditedFixture f("gemma4_moe_tiny", [](json& c) { c["moe_intermediate_size"] = 40; });
  std::string msg = load_error(f.path());
  EXPECT_NE(msg.find("model.layers.0.experts.gate_up_proj"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[8, 64, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find(f.path()), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace
}  // namespace sluice::models
