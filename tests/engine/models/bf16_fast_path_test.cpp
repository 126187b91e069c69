// bf16 checkpoints on the CPU fast path: the gemma3_tiny fixture rewritten as a bf16
// safetensors file (as released Gemma checkpoints are), loaded twice: with the fast path
// (LoadOptions::keep_quantized, the default: Linear weights through the AVX512_BF16 dot
// product for one to kBf16DotMaxRows rows, activations rounded to bf16) and without it (the reference: the same bf16 weights
// against f32 activations). Where the CPU has AVX512_BF16 the logits must differ (the path
// really ran) but stay within the tolerance below; elsewhere both loads take the reference
// path and must agree bit for bit.
//
// Tolerance: each matmul input is rounded to bf16 (at most 2^-8 relative per element,
// bf16_matmul.h), through the tiny model's layers; measured (AVX-512 BF16, 4 prompts of 1-40
// tokens, each + 8 decode steps): relative L2 of the logits 3.3e-3 to 5.5e-3, max |d| 0.010
// to 0.017. Bounds, about 4x and 6x that: relative L2 <= 2e-2, max |d| <= 0.1.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/half.h"
#include "engine/models/loader.h"
#include "engine/sampling/sampler.h"
#include "engine/weights/weight_source.h"
#include "kernels/cpu/bf16_matmul.h"
#include "test_util.h"

namespace sluice::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Writes every tensor of the safetensors checkpoint in `src` as bf16 into `dst`/model.safetensors,
// and copies config.json.
void write_bf16_copy(const std::string& src, const fs::path& dst) {
  auto source = weights::WeightSource::open_safetensors_dir(src);
  ASSERT_TRUE(source.is_ok()) << source.status().to_string();
  json header = json::object();
  std::vector<uint16_t> data;
  for (const std::string& name : (*source)->names()) {
    const weights::WeightInfo* info = (*source)->find(name);
    ASSERT_NE(info, nullptr);
    ASSERT_EQ(info->dtype, weights::SourceDType::kF32) << name;
    const size_t begin = data.size();
    for (uint64_t i = 0; i < info->num_elements; ++i) {
      float v;
      std::memcpy(&v, info->data + 4 * i, 4);
      data.push_back(f32_to_bf16(v));
    }
    header[name] = {{"dtype", "BF16"},
                    {"shape", info->shape},
                    {"data_offsets", {2 * begin, 2 * data.size()}}};
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  fs::create_directories(dst);
  std::ofstream out(dst / "model.safetensors", std::ios::binary);
  const uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(2 * data.size()));
  ASSERT_TRUE(out.good());
  fs::copy_file(fs::path(src) / "config.json", dst / "config.json");
}

TEST(Bf16FastPath, LogitsTrackTheF32ActivationPath) {
  const fs::path dir = fs::path(::testing::TempDir()) / "sluice_bf16_fast_path";
  fs::remove_all(dir);
  write_bf16_copy(testing::fixture_path("gemma3_tiny"), dir);
  LoadOptions ref_options;
  ref_options.keep_quantized = false;
  auto ref = load_model(dir.string(), ref_options, kernels::cpu_ops());
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  auto fast = load_model(dir.string(), {}, kernels::cpu_ops());
  ASSERT_TRUE(fast.is_ok()) << fast.status().to_string();
  const int V = ref->model->config().vocab_size;

  // Each prompt prefills (its first forward of one token already on the dot product; longer
  // ones on the dense f32-activation GEMM, kBf16DotMaxRows), then 8 decode steps, one row
  // each, teacher-forced with the reference's greedy tokens.
  const json prompts = json::parse(testing::read_file(testing::fixture_path("gemma3_tiny/prompts.json")));
  for (const json& p : prompts["prompts"]) {
    const std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    SequenceKv kv_ref(ref->model->config()), kv_fast(fast->model->config());
    std::vector<float> lr(V), lf(V);
    ASSERT_TRUE(kv_ref.forward(*ref->model, ids, 1, lr).is_ok());
    ASSERT_TRUE(kv_fast.forward(*fast->model, ids, 1, lf).is_ok());
    double es = 0, rs = 0, max_abs = 0;
    for (int step = 0; step < 8; ++step) {
      if (step > 0) {
        const int32_t t = sampling::argmax(lr);
        ASSERT_TRUE(kv_ref.forward(*ref->model, std::span(&t, 1), 1, lr).is_ok());
        ASSERT_TRUE(kv_fast.forward(*fast->model, std::span(&t, 1), 1, lf).is_ok());
      }
      for (int i = 0; i < V; ++i) {
        const double e = static_cast<double>(lf[i]) - lr[i];
        es += e * e;
        rs += static_cast<double>(lr[i]) * lr[i];
        max_abs = std::max(max_abs, std::fabs(e));
      }
    }
    const double rel = std::sqrt(es / rs);
    RecordProperty("prompt_" + std::to_string(p["index"].get<int>()) + "_rel_l2", std::to_string(rel));
    if (kernels::cpu::bf16_dot_available()) {
      EXPECT_GT(max_abs, 0.0) << "the bf16 dot product did not run";
      EXPECT_LE(rel, 2e-2) << "prompt " << p["index"];
      EXPECT_LE(max_abs, 0.1) << "prompt " << p["index"];
      std::printf("prompt %d (%zu tokens) + 8 decode steps: rel L2 %.2e, max |d| %.3g\n",
                  p["index"].get<int>(), ids.size(), rel, max_abs);
    } else {
      EXPECT_EQ(max_abs, 0.0) << "no AVX512_BF16: both loads take the reference path";
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice::models
