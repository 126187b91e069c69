// The CUDA Gemma 3 model (engine/models_cuda) against the CPU model on the same weights:
//  - the tiny golden fixture with head dim 256, whole prompt and chunk by chunk, against the CPU
//    model on its bf16-rounded weights and (more loosely) transformers' logits;
//  - a synthetic model with the 270M's shapes (head dim 256, vocab 262144), built from a seed
//    (no model file travels to the GPU machine), whose greedy tokens must equal the CPU's for
//    the first 16 tokens, and whose first-step logits must agree within bf16 tolerance.
// bf16 weights and activations on the GPU against f32 arithmetic over the same bf16 weights on
// the CPU: the logits' relative error is bounded, not bit-exact.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/counter_rng.h"
#include "common/half.h"
#include "engine/models/loader.h"
#include "engine/models_cuda/cuda_model.h"
#include "engine/weights/weight_source.h"
#include "gpu/gpu_test_util.h"
#include "gpu/model_test_util.h"
#include "test_util.h"

namespace sluice::models::cuda {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<float> read_f32(const std::string& path) {
  std::string bytes = sluice::testing::read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

double rel_err(std::span<const float> got, std::span<const float> want) {
  double e = 0, r = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e += (got[i] - want[i]) * (got[i] - double(want[i]));
    r += double(want[i]) * want[i];
  }
  return std::sqrt(e / std::max(r, 1e-30));
}

StatusOr<std::unique_ptr<CudaGemma3Model>> load_cuda(const std::string& dir, CudaModelOptions opt) {
  const std::string text = sluice::testing::read_file(dir + "/config.json");
  SLUICE_ASSIGN_OR_RETURN(ModelConfig config, parse_hf_config(text, dir));
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<weights::WeightSource> src,
                          weights::WeightSource::open_safetensors_dir(dir));
  WeightBinder binder(std::shared_ptr<weights::WeightSource>(std::move(src)), /*keep_bf16=*/true);
  return CudaGemma3Model::load(std::move(config), std::move(binder), opt);
}

// One sequence on the CUDA model with blocks laid out in order (block i = positions
// [i * bs, (i + 1) * bs)), as SequenceKv does on the CPU.
class GpuSequence {
 public:
  explicit GpuSequence(CudaGemma3Model& m) : m_(m) {}
  // Runs `tokens` next; logits of the last `rows` tokens, or their argmax when greedy.
  Status step(std::span<const int32_t> tokens, int rows, std::span<float> logits,
              std::span<int32_t> greedy = {}) {
    const int T = static_cast<int>(tokens.size());
    const int end = n_ + T;
    const int bs = m_.block_size();
    table_.resize((end + bs - 1) / bs);
    std::iota(table_.begin(), table_.end(), 0);
    pos_.resize(T);
    seq_.assign(T, 0);
    for (int t = 0; t < T; ++t) pos_[t] = n_ + t;
    rows_.resize(rows);
    std::iota(rows_.begin(), rows_.end(), T - rows);
    seq_len_ = end;
    ForwardBatch b;
    b.tokens = tokens;
    b.positions = pos_;
    b.token_seq = seq_;
    b.seq_lens = std::span<const int32_t>(&seq_len_, 1);
    b.logit_rows = rows_;
    for (int g = 0; g < m_.num_kv_groups(); ++g) {
      b.groups.push_back({pos_, table_, static_cast<int>(table_.size())});
    }
    Status st = greedy.empty() ? m_.forward(b, logits) : m_.forward_greedy(b, greedy);
    if (st.is_ok()) n_ = end;
    return st;
  }

 private:
  CudaGemma3Model& m_;
  int n_ = 0;
  int32_t seq_len_ = 0;
  std::vector<int32_t> table_, pos_, seq_, rows_;
};

class Gemma3Gpu : public ::testing::TestWithParam<std::string> {};

// The GPU runs bf16 weights, and rounding this tiny f32 model's weights to bf16 alone moves
// its logits about 1% from transformers' (the GPU measured 1.25-1.28%). So the tight check
// is against the CPU model on the same bf16-rounded weights (1e-2), and transformers' logits
// get a looser bound above that floor (3e-2); a wrong op moves these logits by tens of percent.
// The H200 measured 0.90-1.004% against the CPU on bf16 weights: the GPU's bf16 activations
// (the CPU keeps f32 between ops) cost as much again as the weight rounding, hence 2e-2.
constexpr double kTolVsCpuBf16 = 2e-2;
constexpr double kTolVsTransformers = 3e-2;

TEST_P(Gemma3Gpu, FixtureLogitsMatchTransformersAndCpu) {
  SLUICE_SKIP_WITHOUT_GPU();
  const fs::path bf16_dir = fs::temp_directory_path() / ("sluice_bf16_" + GetParam());
  sluice::testing::write_bf16_copy(sluice::testing::fixture_path(GetParam()), bf16_dir);
  const std::string dir = bf16_dir.string();
  auto cpu = load_model(dir, {}, kernels::cpu_ops());
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  // Every prompt row's logits are compared: logit rows are bounded by max_num_seqs.
  auto gpu = load_cuda(dir, {.max_num_tokens = 256, .max_num_seqs = 64, .num_blocks = {64, 64}});
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  const int V = (*gpu)->config().vocab_size;
  json prompts = json::parse(sluice::testing::read_file(dir + "/prompts.json"));
  for (const json& p : prompts["prompts"]) {
    std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    std::vector<float> want = read_f32(dir + "/" + p["logits_file"].get<std::string>());
    ASSERT_EQ(want.size(), ids.size() * V);
    std::vector<float> cpu_logits(ids.size() * V);
    {
      SequenceKv kv(cpu->model->config());
      ASSERT_TRUE(kv.forward(*cpu->model, ids, static_cast<int>(ids.size()), cpu_logits).is_ok());
    }
    auto expect_close = [&](std::span<const float> got, const char* how) {
      const double e_cpu = rel_err(got, cpu_logits), e_hf = rel_err(got, want);
      std::printf(
          "%s prompt %d (%zu tokens) %s: rel err %.3g vs CPU on bf16 weights, %.3g vs transformers "
          "(CPU itself %.3g)\n",
          GetParam().c_str(), p["index"].get<int>(), ids.size(), how, e_cpu, e_hf,
          rel_err(cpu_logits, want));
      EXPECT_LT(e_cpu, kTolVsCpuBf16) << "prompt " << p["index"] << " " << how;
      EXPECT_LT(e_hf, kTolVsTransformers) << "prompt " << p["index"] << " " << how;
    };
    // Whole prompt.
    {
      GpuSequence seq(**gpu);
      std::vector<float> got(ids.size() * V);
      const Status st = seq.step(ids, static_cast<int>(ids.size()), got);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      expect_close(got, "whole");
    }
    // Chunks of 3 tokens through the paged cache.
    {
      GpuSequence seq(**gpu);
      std::vector<float> got(ids.size() * V);
      for (size_t at = 0; at < ids.size(); at += 3) {
        const size_t n = std::min<size_t>(3, ids.size() - at);
        const Status st = seq.step(std::span(ids).subspan(at, n), static_cast<int>(n),
                                   std::span(got).subspan(at * V, n * V));
        ASSERT_TRUE(st.is_ok()) << st.to_string();
      }
      expect_close(got, "in chunks");
    }
  }
  fs::remove_all(bf16_dir);
}

// The fixture with the 270M's head dim; the others (head dim 32) are refused at load.
INSTANTIATE_TEST_SUITE_P(Fixtures, Gemma3Gpu, ::testing::Values("gemma3_tiny_d256"));

TEST(Gemma3GpuErrors, UnsupportedHeadDimIsRefusedAtLoad) {
  SLUICE_SKIP_WITHOUT_GPU();
  auto gpu = load_cuda(sluice::testing::fixture_path("gemma3_tiny"),
                       {.max_num_tokens = 16, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_EQ(gpu.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(gpu.status().message().find("head_dim 32"), std::string::npos) << gpu.status().to_string();
}

// Writes config.json and model.safetensors (bf16) of a Gemma 3 with the 270M's shapes, every
// weight from counter_uniform(seed + tensor index, element index).
void write_synthetic_270m(const fs::path& dir, uint64_t seed) {
  fs::create_directories(dir);
  const int H = 640, nq = 4, nkv = 1, d = 256, I = 2048, V = 262144, L = 18;
  json cfg = {{"model_type", "gemma3_text"},
              {"architectures", {"Gemma3ForCausalLM"}},
              {"hidden_size", H},
              {"intermediate_size", I},
              {"num_hidden_layers", L},
              {"num_attention_heads", nq},
              {"num_key_value_heads", nkv},
              {"head_dim", d},
              {"vocab_size", V},
              {"max_position_embeddings", 32768},
              {"sliding_window", 512},
              {"rms_norm_eps", 1e-6},
              {"query_pre_attn_scalar", 256},
              {"hidden_activation", "gelu_pytorch_tanh"},
              {"tie_word_embeddings", true},
              {"bos_token_id", 2},
              {"eos_token_id", 1},
              {"pad_token_id", 0},
              {"rope_parameters",
               {{"full_attention", {{"rope_theta", 1000000.0}, {"rope_type", "default"}}},
                {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}}}};
  json types = json::array();
  for (int l = 0; l < L; ++l) types.push_back((l + 1) % 6 == 0 ? "full_attention" : "sliding_attention");
  cfg["layer_types"] = types;
  std::ofstream(dir / "config.json") << cfg.dump(2);

  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    float range;
  };
  std::vector<Spec> specs = {{"model.embed_tokens.weight", {V, H}, 0.1f}, {"model.norm.weight", {H}, 0.2f}};
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const float in_h = std::sqrt(3.0f / H), in_q = std::sqrt(3.0f / (nq * d)), in_i = std::sqrt(3.0f / I);
    specs.push_back({p + "input_layernorm.weight", {H}, 0.2f});
    specs.push_back({p + "self_attn.q_proj.weight", {nq * d, H}, in_h});
    specs.push_back({p + "self_attn.k_proj.weight", {nkv * d, H}, in_h});
    specs.push_back({p + "self_attn.v_proj.weight", {nkv * d, H}, in_h});
    specs.push_back({p + "self_attn.o_proj.weight", {H, nq * d}, in_q});
    specs.push_back({p + "self_attn.q_norm.weight", {d}, 0.2f});
    specs.push_back({p + "self_attn.k_norm.weight", {d}, 0.2f});
    specs.push_back({p + "post_attention_layernorm.weight", {H}, 0.2f});
    specs.push_back({p + "pre_feedforward_layernorm.weight", {H}, 0.2f});
    specs.push_back({p + "mlp.gate_proj.weight", {I, H}, in_h});
    specs.push_back({p + "mlp.up_proj.weight", {I, H}, in_h});
    specs.push_back({p + "mlp.down_proj.weight", {H, I}, in_i});
    specs.push_back({p + "post_feedforward_layernorm.weight", {H}, 0.2f});
  }
  json header = json::object();
  uint64_t offset = 0;
  for (const Spec& s : specs) {
    int64_t n = 1;
    for (int64_t e : s.shape) n *= e;
    header[s.name] = {{"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {offset, offset + 2 * n}}};
    offset += 2 * n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  const uint64_t hlen = h.size();
  f.write(reinterpret_cast<const char*>(&hlen), 8);
  f.write(h.data(), h.size());
  std::vector<uint16_t> buf;
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t n = 1;
    for (int64_t e : specs[i].shape) n *= e;
    buf.resize(n);
    const float r = specs[i].range;
    for (int64_t j = 0; j < n; ++j) buf[j] = f32_to_bf16(counter_uniform(seed + i, j, -r, r));
    f.write(reinterpret_cast<const char*>(buf.data()), n * 2);
  }
}

TEST(Gemma3GpuSynthetic, GreedyTokensOf270mShapesMatchCpu) {
  SLUICE_SKIP_WITHOUT_GPU();
  const fs::path dir = fs::temp_directory_path() / "sluice_synthetic_270m";
  write_synthetic_270m(dir, 20261127);
  auto cpu = load_model(dir.string(), {}, kernels::cpu_ops());
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto gpu = load_cuda(dir.string(), {.max_num_tokens = 64, .max_num_seqs = 4, .num_blocks = {}});
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  Model& cm = *cpu->model;
  const int V = cm.config().vocab_size;
  std::vector<int32_t> prompt = {2, 818, 5279, 529, 7001, 563, 1, 4, 9999, 262143, 17, 100000};

  // First-step logits of the whole prompt.
  SequenceKv ckv(cm.config());
  std::vector<float> want(V), got(V);
  ASSERT_TRUE(ckv.forward(cm, prompt, 1, want).is_ok());
  GpuSequence gseq(**gpu);
  ASSERT_TRUE(gseq.step(prompt, 1, got).is_ok());
  const double err = rel_err(got, want);
  EXPECT_LT(err, 2e-2) << "first-step logits";
  std::printf("synthetic 270M: first-step logits relative error %.3g\n", err);

  // 16 greedy tokens on each side, each fed its own choice.
  auto argmax = [](std::span<const float> v) {
    return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
  };
  std::vector<int32_t> cpu_tokens, gpu_tokens;
  int32_t ct = argmax(want);
  std::vector<int32_t> gt(1);
  GpuSequence gseq2(**gpu);
  ASSERT_TRUE(gseq2.step(prompt, 1, {}, gt).is_ok());
  for (int i = 0; i < 16; ++i) {
    cpu_tokens.push_back(ct);
    gpu_tokens.push_back(gt[0]);
    ASSERT_TRUE(ckv.forward(cm, std::span<const int32_t>(&ct, 1), 1, want).is_ok());
    ct = argmax(want);
    const int32_t in = gt[0];
    ASSERT_TRUE(gseq2.step(std::span<const int32_t>(&in, 1), 1, {}, gt).is_ok());
  }
  EXPECT_EQ(gpu_tokens, cpu_tokens);
  fs::remove_all(dir);
}

// Decode steps through CUDA graphs (padded to a bucket, tables widened) give the tokens and
// logits of eager launches: 3 sequences of different lengths (bucket 4), 8 steps.
TEST(Gemma3GpuGraphs, GraphDecodeMatchesEager) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  std::vector<std::vector<float>> logits_by_mode;
  std::vector<std::vector<int32_t>> tokens_by_mode;
  for (bool graphs : {false, true}) {
    auto gpu = load_cuda(dir, {.max_num_tokens = 64, .max_num_seqs = 8, .num_blocks = {32, 32},
                               .use_cuda_graphs = graphs});
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    CudaGemma3Model& m = **gpu;
    const int V = m.config().vocab_size, bs = m.block_size(), per_seq = 8;
    const std::vector<int> prompt_len = {5, 17, 30};
    const int S = 3;
    std::vector<int32_t> len(S, 0), last(S);
    std::vector<float> all_logits;
    std::vector<int32_t> all_tokens;
    // Prefill each sequence alone (eager), then decode all three together.
    for (int s = 0; s < S; ++s) {
      std::vector<int32_t> ids(prompt_len[s]), pos(prompt_len[s]), seq(prompt_len[s], 0), slots(prompt_len[s]);
      std::vector<int32_t> table(per_seq);
      std::iota(table.begin(), table.end(), s * per_seq);
      for (int i = 0; i < prompt_len[s]; ++i) {
        ids[i] = (7 + 31 * i + 101 * s) % V;
        pos[i] = i;
        slots[i] = s * per_seq * bs + i;
      }
      const int32_t seq_len = prompt_len[s];
      const int32_t row = prompt_len[s] - 1;
      ForwardBatch b;
      b.tokens = ids;
      b.positions = pos;
      b.token_seq = seq;
      b.seq_lens = std::span<const int32_t>(&seq_len, 1);
      b.logit_rows = std::span<const int32_t>(&row, 1);
      for (int g = 0; g < m.num_kv_groups(); ++g) b.groups.push_back({slots, table, per_seq});
      std::vector<int32_t> out(1);
      ASSERT_TRUE(m.forward_greedy(b, out).is_ok());
      last[s] = out[0];
      len[s] = prompt_len[s];
    }
    for (int step = 0; step < 8; ++step) {
      std::vector<int32_t> pos(S), seq(S), slots(S), lens(S), rows(S), table(S * per_seq);
      for (int s = 0; s < S; ++s) {
        pos[s] = len[s];
        seq[s] = s;
        rows[s] = s;
        slots[s] = s * per_seq * bs + len[s];
        lens[s] = len[s] + 1;
        for (int k = 0; k < per_seq; ++k) table[s * per_seq + k] = s * per_seq + k;
      }
      ForwardBatch b;
      b.tokens = last;
      b.positions = pos;
      b.token_seq = seq;
      b.seq_lens = lens;
      b.logit_rows = rows;
      for (int g = 0; g < m.num_kv_groups(); ++g) b.groups.push_back({slots, table, per_seq});
      std::vector<float> logits(S * V);
      ASSERT_TRUE(m.forward(b, logits).is_ok());
      all_logits.insert(all_logits.end(), logits.begin(), logits.end());
      for (int s = 0; s < S; ++s) {
        auto row = std::span<const float>(logits).subspan(s * V, V);
        last[s] = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
        all_tokens.push_back(last[s]);
        ++len[s];
      }
    }
    EXPECT_EQ(m.num_graphs(), graphs ? 1 : 0);
    logits_by_mode.push_back(std::move(all_logits));
    tokens_by_mode.push_back(std::move(all_tokens));
  }
  EXPECT_EQ(tokens_by_mode[1], tokens_by_mode[0]);
  EXPECT_LT(rel_err(logits_by_mode[1], logits_by_mode[0]), 1e-3);
}

TEST(Gemma3GpuErrors, BadBatchIsRejectedAndModelStillServes) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  auto gpu = load_cuda(dir, {.max_num_tokens = 16, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  const int V = (*gpu)->config().vocab_size;
  std::vector<float> logits(V);
  {
    GpuSequence seq(**gpu);
    std::vector<int32_t> bad = {1, V + 5};
    EXPECT_EQ(seq.step(bad, 1, logits).code(), StatusCode::kInvalidArgument);
  }
  {
    GpuSequence seq(**gpu);
    std::vector<int32_t> too_many(17, 3);
    std::vector<float> l(V);
    EXPECT_EQ(seq.step(too_many, 1, l).code(), StatusCode::kInvalidArgument);
  }
  GpuSequence seq(**gpu);
  std::vector<int32_t> ok = {2, 3, 4};
  EXPECT_TRUE(seq.step(ok, 1, logits).is_ok());
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

TEST(Gemma3GpuErrors, ModelThatDoesNotFitIsAClearError) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  // Scratch for 2^31 tokens cannot be allocated: RESOURCE_EXHAUSTED naming the buffer.
  auto gpu = load_cuda(dir, {.max_num_tokens = 1 << 30, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_EQ(gpu.status().code(), StatusCode::kResourceExhausted) << gpu.status().to_string();
  EXPECT_NE(gpu.status().message().find("GPU memory"), std::string::npos) << gpu.status().to_string();
}

}  // namespace
}  // namespace sluice::models::cuda
