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

using sluice::testing::GpuSequence;
using sluice::testing::read_f32;
using sluice::testing::rel_err;

StatusOr<std::unique_ptr<CudaGemma3Model>> load_cuda(const std::string& dir, CudaModelOptions opt) {
  return sluice::testing::load_cuda_model<CudaGemma3Model>(dir, opt);
}

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
  // Every prompt row's logits are compared: logit rows are bounded by max_num_seqs.
  sluice::testing::check_fixture_logits(
      GetParam(),
      [](const std::string& dir) {
        return load_cuda(dir, {.max_num_tokens = 256, .max_num_seqs = 64, .num_blocks = {64, 64}});
      },
      kTolVsCpuBf16, kTolVsTransformers);
}

// The fixture with the 270M's head dim; the others (head dim 32) are refused at load.
INSTANTIATE_TEST_SUITE_P(Fixtures, Gemma3Gpu, ::testing::Values("gemma3_tiny_d256"));

TEST(Gemma3GpuErrors, UnsupportedHeadDimIsRefusedAtLoad) {
  SLUICE_SKIP_WITHOUT_GPU();
  auto gpu = load_cuda(sluice::testing::fixture_path("gemma3_tiny"),
                       {.max_num_tokens = 16, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_EQ(gpu.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(gpu.status().message().find("head_dim 32"), std::string::npos)
      << gpu.status().to_string();
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
  for (int l = 0; l < L; ++l)
    types.push_back((l + 1) % 6 == 0 ? "full_attention" : "sliding_attention");
  cfg["layer_types"] = types;
  std::ofstream(dir / "config.json") << cfg.dump(2);

  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    float range;
  };
  std::vector<Spec> specs = {{"model.embed_tokens.weight", {V, H}, 0.1f},
                             {"model.norm.weight", {H}, 0.2f}};
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const float in_h = std::sqrt(3.0f / H), in_q = std::sqrt(3.0f / (nq * d)),
                in_i = std::sqrt(3.0f / I);
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
  std::vector<sluice::testing::SyntheticTensor> tensors;
  for (const Spec& sp : specs) tensors.push_back({sp.name, sp.shape, -sp.range, sp.range});
  sluice::testing::write_synthetic_safetensors(dir / "model.safetensors", tensors, seed);
}

TEST(Gemma3GpuSynthetic, GreedyTokensOf270mShapesMatchCpu) {
  SLUICE_SKIP_WITHOUT_GPU();
  const fs::path dir = sluice::testing::scratch_path("sluice_synthetic_270m");
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
  sluice::testing::check_graph_decode_matches_eager([&](bool graphs) {
    return load_cuda(dir, {.max_num_tokens = 64,
                           .max_num_seqs = 8,
                           .num_blocks = {32, 32},
                           .use_cuda_graphs = graphs});
  });
}

// A step that wants more logit rows than max_num_seqs (prompt logprobs of a long prompt)
// runs the head max_num_seqs rows at a time: the same logits and argmax tokens as a model
// whose buffer holds every row at once, through forward and forward_greedy.
TEST(Gemma3GpuHead, MoreLogitRowsThanSequencesRunInChunks) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  std::vector<int32_t> ids(21);
  for (int i = 0; i < 21; ++i) ids[i] = 2 + (i * 29) % 500;
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<int32_t>> greedy;
  for (int seqs : {4, 32}) {
    auto gpu = load_cuda(dir, {.max_num_tokens = 32, .max_num_seqs = seqs, .num_blocks = {8, 8}});
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    const int V = (*gpu)->config().vocab_size;
    std::vector<float> l(21 * V);
    ASSERT_TRUE(GpuSequence(**gpu).step(ids, 21, l).is_ok()) << "max_num_seqs " << seqs;
    std::vector<int32_t> g(21, -1);
    ASSERT_TRUE(GpuSequence(**gpu).step(ids, 21, {}, g).is_ok()) << "max_num_seqs " << seqs;
    logits.push_back(std::move(l));
    greedy.push_back(std::move(g));
  }
  EXPECT_LT(sluice::testing::rel_err(logits[0], logits[1]), 1e-5);
  EXPECT_EQ(greedy[0], greedy[1]);
  for (float v : logits[0]) ASSERT_TRUE(std::isfinite(v)) << "a row was never written";
}

// A decode graph that cannot be instantiated (the device is full) leaves its bucket eager:
// the same tokens and logits as a model without graphs, and, under the emulator, whose
// graphs take device memory, no graph kept.
TEST(Gemma3GpuGraphs, FullDeviceFallsBackToEagerDecode) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  std::vector<float> eager_logits, full_logits;
  std::vector<int32_t> eager_tokens, full_tokens;
  for (bool graphs : {false, true}) {
    auto gpu = load_cuda(dir, {.max_num_tokens = 64,
                               .max_num_seqs = 8,
                               .num_blocks = {32, 32},
                               .use_cuda_graphs = graphs});
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    const kernels::cuda::testing::Ballast full(0);
    sluice::testing::prefill_then_batched_decode(**gpu, graphs ? &full_logits : &eager_logits,
                                                 graphs ? &full_tokens : &eager_tokens);
    if (HasFatalFailure()) return;
#if defined(SLUICE_CUDA_EMU)
    EXPECT_EQ((*gpu)->num_graphs(), 0) << "a graph was instantiated on a full device";
#endif
  }
  EXPECT_EQ(full_tokens, eager_tokens);
  EXPECT_LT(sluice::testing::rel_err(full_logits, eager_logits), 1e-3);
}

// The step profile: sections in step order, each seen once per step, positive GPU times,
// and the same logits as an unprofiled step.
TEST(Gemma3GpuProfile, SectionsCoverTheStepAndChangeNothing) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  auto gpu = load_cuda(dir, {.max_num_tokens = 16, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  CudaGemma3Model& m = **gpu;
  const int V = m.config().vocab_size;
  const std::vector<int32_t> ids = {2, 3, 4, 5};
  std::vector<float> plain(V), profiled(V);
  ASSERT_TRUE(GpuSequence(m).step(ids, 1, plain).is_ok());
  m.set_profiling(true);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(GpuSequence(m).step(ids, 1, profiled).is_ok());
  const auto sections = m.profile();
  m.set_profiling(false);
  EXPECT_EQ(profiled, plain);
  ASSERT_GE(sections.size(), 5u);
  EXPECT_EQ(sections.front().name, "embedding");
  EXPECT_EQ(sections.back().name, "head (norm, logits, argmax)");
  for (const auto& sec : sections) {
    EXPECT_EQ(sec.steps, 2) << sec.name;
    EXPECT_GT(sec.ms, 0.0) << sec.name;
  }
  EXPECT_TRUE(m.profile().empty()) << "turning profiling off drops the totals";
}

TEST(Gemma3GpuErrors, BadBatchIsRejectedAndModelStillServes) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  auto gpu = load_cuda(dir, {.max_num_tokens = 16, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  sluice::testing::check_bad_batches_are_rejected(**gpu);
}

TEST(Gemma3GpuErrors, ModelThatDoesNotFitIsAClearError) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  // Scratch for 2^31 tokens cannot be allocated: RESOURCE_EXHAUSTED naming the buffer.
  auto gpu = load_cuda(dir, {.max_num_tokens = 1 << 30, .max_num_seqs = 2, .num_blocks = {8, 8}});
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_EQ(gpu.status().code(), StatusCode::kResourceExhausted) << gpu.status().to_string();
  EXPECT_NE(gpu.status().message().find("GPU memory"), std::string::npos)
      << gpu.status().to_string();
}

}  // namespace
}  // namespace sluice::models::cuda
