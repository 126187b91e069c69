#pragma once
// Helpers of the CUDA model tests (gemma3_gpu_test.cpp, gemma4_gpu_test.cpp, the engine
// test): fixture files, the relative error of logits, loading a model directory onto the
// GPU, one sequence stepped through the paged cache, and the prefill-then-batched-decode run
// that graph and eager decoding must agree on.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "common/counter_rng.h"
#include "common/half.h"
#include "engine/models/loader.h"
#include "engine/models/model.h"
#include "engine/models/paged_kv_cache.h"
#include "engine/models_cuda/cuda_model_base.h"
#include "engine/weights/weight_source.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace sluice::testing {

// A copy of the safetensors fixture at `src` in `dst` with every F32 tensor rounded to BF16
// (nearest even), the other files copied as they are: the weights the GPU runs, so the CPU
// model can run them too.
inline void write_bf16_copy(const std::filesystem::path& src, const std::filesystem::path& dst) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    if (e.path().filename() != "model.safetensors") {
      fs::copy_file(e.path(), dst / e.path().filename(), fs::copy_options::overwrite_existing);
    }
  }
  const std::string bytes = read_file((src / "model.safetensors").string());
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  const json in = json::parse(bytes.substr(8, hlen));
  const char* data = bytes.data() + 8 + hlen;
  json out = json::object();
  std::string body;
  for (const auto& [name, t] : in.items()) {
    if (name == "__metadata__") {
      out[name] = t;
      continue;
    }
    const uint64_t begin = t["data_offsets"][0], end = t["data_offsets"][1];
    std::string dtype = t["dtype"];
    const uint64_t at = body.size();
    if (dtype == "F32") {
      for (uint64_t i = begin; i < end; i += 4) {
        float v;
        std::memcpy(&v, data + i, 4);
        const uint16_t h = f32_to_bf16(v);
        body.append(reinterpret_cast<const char*>(&h), 2);
      }
      dtype = "BF16";
    } else {
      body.append(data + begin, end - begin);
    }
    out[name] = {{"dtype", dtype},
                 {"shape", t["shape"]},
                 {"data_offsets", {at, static_cast<uint64_t>(body.size())}}};
  }
  std::string h = out.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream f(dst / "model.safetensors", std::ios::binary);
  const uint64_t n = h.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(body.data(), static_cast<std::streamsize>(body.size()));
}

// One tensor of a synthetic model: element j of tensor i (in the order given) is
// counter_uniform(seed + i, j, lo, hi) rounded to bf16, so the GPU machine and this one
// build the same model from a seed.
struct SyntheticTensor {
  std::string name;
  std::vector<int64_t> shape;
  float lo, hi;
};

// Writes `tensors` as a bf16 safetensors file.
inline void write_synthetic_safetensors(const std::filesystem::path& file,
                                        const std::vector<SyntheticTensor>& tensors,
                                        uint64_t seed) {
  using nlohmann::json;
  json header = json::object();
  uint64_t offset = 0;
  for (const SyntheticTensor& t : tensors) {
    int64_t n = 1;
    for (int64_t e : t.shape) n *= e;
    header[t.name] = {
        {"dtype", "BF16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 2 * n}}};
    offset += 2 * n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream f(file, std::ios::binary);
  const uint64_t hlen = h.size();
  f.write(reinterpret_cast<const char*>(&hlen), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  std::vector<uint16_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    int64_t n = 1;
    for (int64_t e : tensors[i].shape) n *= e;
    buf.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      buf[j] = f32_to_bf16(counter_uniform(seed + i, j, tensors[i].lo, tensors[i].hi));
    }
    f.write(reinterpret_cast<const char*>(buf.data()), n * 2);
  }
}

// The raw little-endian f32 values of a fixture file.
inline std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// ||got - want|| / ||want||; infinite when got holds a NaN or an infinity.
inline double rel_err(std::span<const float> got, std::span<const float> want) {
  double e = 0, r = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e += (got[i] - want[i]) * (got[i] - double(want[i]));
    r += double(want[i]) * want[i];
  }
  return std::sqrt(e / std::max(r, 1e-30));
}

// The safetensors model directory `dir` loaded as `Model` (CudaGemma3Model or
// CudaGemma4Model) with `blocks_per_group` blocks in every KV group (0: opt.num_blocks as
// given, empty meaning sized from memory).
template <typename Model>
StatusOr<std::unique_ptr<Model>> load_cuda_model(const std::string& dir,
                                                 models::cuda::CudaModelOptions opt,
                                                 int blocks_per_group = 0) {
  const std::string text = read_file(dir + "/config.json");
  SLUICE_ASSIGN_OR_RETURN(models::ModelConfig config, models::parse_hf_config(text, dir));
  if (blocks_per_group > 0) {
    opt.num_blocks.assign(models::kv_group_layouts(config).size(), blocks_per_group);
  }
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<weights::WeightSource> src,
                          weights::WeightSource::open_safetensors_dir(dir));
  models::WeightBinder binder(std::shared_ptr<weights::WeightSource>(std::move(src)),
                              /*keep_bf16=*/true);
  return Model::load(std::move(config), std::move(binder), opt);
}

// One sequence on a CUDA model with blocks laid out in order from `first_block` (block
// first_block + i = positions [i * bs, (i + 1) * bs)) in every KV group, as SequenceKv does
// on the CPU.
class GpuSequence {
 public:
  explicit GpuSequence(models::cuda::CudaModelBase& m, int first_block = 0)
      : m_(m), first_(first_block) {}
  // Runs `tokens` next; logits of the last `rows` tokens, or their argmax when greedy.
  Status step(std::span<const int32_t> tokens, int rows, std::span<float> logits,
              std::span<int32_t> greedy = {}) {
    const int T = static_cast<int>(tokens.size());
    const int end = n_ + T;
    const int bs = m_.block_size();
    table_.resize((end + bs - 1) / bs);
    std::iota(table_.begin(), table_.end(), first_);
    pos_.resize(T);
    slots_.resize(T);
    seq_.assign(T, 0);
    for (int t = 0; t < T; ++t) {
      pos_[t] = n_ + t;
      slots_[t] = first_ * bs + pos_[t];
    }
    rows_.resize(rows);
    std::iota(rows_.begin(), rows_.end(), T - rows);
    seq_len_ = end;
    models::ForwardBatch b;
    b.tokens = tokens;
    b.positions = pos_;
    b.token_seq = seq_;
    b.seq_lens = std::span<const int32_t>(&seq_len_, 1);
    b.logit_rows = rows_;
    for (int g = 0; g < m_.num_kv_groups(); ++g) {
      b.groups.push_back({slots_, table_, static_cast<int>(table_.size())});
    }
    Status st = greedy.empty() ? m_.forward(b, logits) : m_.forward_greedy(b, greedy);
    if (st.is_ok()) n_ = end;
    return st;
  }

 private:
  models::cuda::CudaModelBase& m_;
  int first_ = 0;
  int n_ = 0;
  int32_t seq_len_ = 0;
  std::vector<int32_t> table_, pos_, slots_, seq_, rows_;
};

// The fixture test of both CUDA models: the fixture `name` with its f32 weights rounded to
// bf16 (what the GPU runs), the CPU model and the GPU model (load(dir) on that copy) on
// every prompt of its prompts.json, whole and in chunks of 3 tokens through the paged cache:
// the GPU's logits within `vs_cpu_bf16` of the CPU's on the same weights and within
// `vs_transformers` of the fixture's (relative errors, printed).
template <typename Load>
void check_fixture_logits(const std::string& name, Load&& load, double vs_cpu_bf16,
                          double vs_transformers) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  const fs::path bf16_dir = scratch_path("sluice_bf16_" + name);
  write_bf16_copy(fixture_path(name), bf16_dir);
  const std::string dir = bf16_dir.string();
  auto cpu = models::load_model(dir, {}, kernels::cpu_ops());
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto gpu = load(dir);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  models::cuda::CudaModelBase& m = **gpu;
  const int V = m.config().vocab_size;
  json prompts = json::parse(read_file(dir + "/prompts.json"));
  for (const json& p : prompts["prompts"]) {
    std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    std::vector<float> want = read_f32(dir + "/" + p["logits_file"].get<std::string>());
    ASSERT_EQ(want.size(), ids.size() * V);
    std::vector<float> cpu_logits(ids.size() * V);
    {
      models::SequenceKv kv(cpu->model->config());
      ASSERT_TRUE(kv.forward(*cpu->model, ids, static_cast<int>(ids.size()), cpu_logits).is_ok());
    }
    auto expect_close = [&](std::span<const float> got, const char* how) {
      const double e_cpu = rel_err(got, cpu_logits), e_hf = rel_err(got, want);
      std::printf(
          "%s prompt %d (%zu tokens) %s: rel err %.3g vs CPU on bf16 weights, %.3g vs transformers "
          "(CPU itself %.3g)\n",
          name.c_str(), p["index"].get<int>(), ids.size(), how, e_cpu, e_hf,
          rel_err(cpu_logits, want));
      EXPECT_LT(e_cpu, vs_cpu_bf16) << "prompt " << p["index"] << " " << how;
      EXPECT_LT(e_hf, vs_transformers) << "prompt " << p["index"] << " " << how;
    };
    {  // Whole prompt.
      GpuSequence seq(m);
      std::vector<float> got(ids.size() * V);
      const Status st = seq.step(ids, static_cast<int>(ids.size()), got);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      expect_close(got, "whole");
    }
    {  // Chunks of 3 tokens through the paged cache.
      GpuSequence seq(m);
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

// Three prompts (5, 17 and 30 tokens, blocks of 8 per sequence) prefilled one at a time
// (eager), then 8 decode steps of all three together: every step's logits [3, V] and greedy
// tokens, appended. Graph and eager decoding must give the same.
inline void prefill_then_batched_decode(models::cuda::CudaModelBase& m,
                                        std::vector<float>* all_logits,
                                        std::vector<int32_t>* all_tokens) {
  const int V = m.config().vocab_size, bs = m.block_size(), per_seq = 8;
  const std::vector<int> prompt_len = {5, 17, 30};
  const int S = 3;
  std::vector<int32_t> len(S, 0), last(S);
  for (int s = 0; s < S; ++s) {
    std::vector<int32_t> ids(prompt_len[s]);
    for (int i = 0; i < prompt_len[s]; ++i) ids[i] = (7 + 31 * i + 101 * s) % V;
    GpuSequence seq(m, s * per_seq);
    std::vector<int32_t> out(1);
    ASSERT_TRUE(seq.step(ids, 1, {}, out).is_ok());
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
    models::ForwardBatch b;
    b.tokens = last;
    b.positions = pos;
    b.token_seq = seq;
    b.seq_lens = lens;
    b.logit_rows = rows;
    for (int g = 0; g < m.num_kv_groups(); ++g) b.groups.push_back({slots, table, per_seq});
    std::vector<float> logits(S * V);
    ASSERT_TRUE(m.forward(b, logits).is_ok());
    all_logits->insert(all_logits->end(), logits.begin(), logits.end());
    for (int s = 0; s < S; ++s) {
      auto row = std::span<const float>(logits).subspan(s * V, V);
      last[s] = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      all_tokens->push_back(last[s]);
      ++len[s];
    }
  }
}

// The prefill-then-batched-decode run on a model loaded eager (load(false)) and one loaded
// with decode graphs (load(true)): the same greedy tokens, logits within 1e-3, one graph
// captured (and none eager).
template <typename Load>
void check_graph_decode_matches_eager(Load&& load) {
  std::vector<std::vector<float>> logits_by_mode;
  std::vector<std::vector<int32_t>> tokens_by_mode;
  for (bool graphs : {false, true}) {
    auto gpu = load(graphs);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    models::cuda::CudaModelBase& m = **gpu;
    std::vector<float> all_logits;
    std::vector<int32_t> all_tokens;
    prefill_then_batched_decode(m, &all_logits, &all_tokens);
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_EQ(m.num_graphs(), graphs ? 1 : 0);
    logits_by_mode.push_back(std::move(all_logits));
    tokens_by_mode.push_back(std::move(all_tokens));
  }
  EXPECT_EQ(tokens_by_mode[1], tokens_by_mode[0]);
  EXPECT_LT(rel_err(logits_by_mode[1], logits_by_mode[0]), 1e-3);
}

// A model loaded with max_num_tokens 16: an out-of-vocabulary token and a 17-token step are
// INVALID_ARGUMENT, and the model then still serves a good step with finite logits.
inline void check_bad_batches_are_rejected(models::cuda::CudaModelBase& m) {
  const int V = m.config().vocab_size;
  std::vector<float> logits(V);
  {
    GpuSequence seq(m);
    std::vector<int32_t> bad = {1, V + 5};
    EXPECT_EQ(seq.step(bad, 1, logits).code(), StatusCode::kInvalidArgument);
  }
  {
    GpuSequence seq(m);
    std::vector<int32_t> too_many(17, 3);
    EXPECT_EQ(seq.step(too_many, 1, logits).code(), StatusCode::kInvalidArgument);
  }
  GpuSequence seq(m);
  std::vector<int32_t> ok = {2, 3, 4};
  EXPECT_TRUE(seq.step(ok, 1, logits).is_ok());
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace sluice::testing
