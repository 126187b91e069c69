// The GPU sampler (kernels/cuda/sampling.h) against a host reference written from the
// header's definition: the processors (penalties, bias, banned ids) in the CPU sampler's
// order, then a full sort of the live ids and plain sequential integer masses. The random
// draw is reproduced from (seed, step) with counter_uniform, so every row must give exactly
// the reference's token, and the processed logits left in place must match bit for bit.
// The arithmetic helpers and the argument checks run everywhere; the kernel tests skip
// cleanly without a device.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/counter_rng.h"
#include "gpu/gpu_test_util.h"
#include "kernels/cuda/sampling.h"

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h
using ::testing::HasSubstr;

constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- The host reference.

// One row's inputs. Optional inputs are empty when absent (for the whole batch).
struct RowCase {
  std::vector<float> logits;
  SamplingRowParams params;
  std::vector<int32_t> counts;                  // [V] or empty
  std::vector<uint32_t> prompt_mask;            // [ceil(V / 32)] or empty
  std::vector<std::pair<int32_t, float>> bias;  // slots, in order
  std::vector<int32_t> banned;
};

// Steps 1-4 of sampling.h, as engine/sampling/penalties.cpp computes them.
std::vector<float> reference_process(const RowCase& c) {
  std::vector<float> l = c.logits;
  const SamplingRowParams& p = c.params;
  const bool has_counts = !c.counts.empty();
  const bool has_mask = !c.prompt_mask.empty();
  for (size_t i = 0; i < l.size(); ++i) {
    const int32_t count = has_counts ? c.counts[i] : 0;
    const bool in_prompt = has_mask && ((c.prompt_mask[i / 32] >> (i % 32)) & 1u);
    if (p.repetition_penalty != 1.0f && (count > 0 || in_prompt)) {
      l[i] = l[i] > 0.0f ? l[i] / p.repetition_penalty : l[i] * p.repetition_penalty;
    }
    if ((p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) && count > 0) {
      const float penalty = p.presence_penalty + p.frequency_penalty * static_cast<float>(count);
      l[i] -= penalty;
    }
  }
  for (const auto& [id, b] : c.bias) {
    if (id >= 0 && static_cast<size_t>(id) < l.size()) l[id] += b;
  }
  for (int32_t id : c.banned) {
    if (id >= 0 && static_cast<size_t>(id) < l.size()) l[id] = -kInf;
  }
  return l;
}

int32_t reference_argmax(const std::vector<float>& l) {
  int32_t best = -1;
  for (size_t i = 0; i < l.size(); ++i) {
    if (std::isnan(l[i])) continue;
    if (best < 0 || l[i] > l[best]) best = static_cast<int32_t>(i);
  }
  return best < 0 ? 0 : best;
}

// Step 5-6 of sampling.h on processed logits: a full sort, sequential masses.
int32_t reference_token(const std::vector<float>& l, const SamplingRowParams& p) {
  const int32_t argmax = reference_argmax(l);
  if (!(p.temperature > 0.0f) || p.top_k == 1) return argmax;
  if (std::isnan(l[argmax]) || l[argmax] == -kInf) return argmax;  // no valid logit
  const float inv_t = 1.0f / p.temperature;
  const float m = sampling_scaled(l[argmax], inv_t);
  struct Live {
    uint64_t key, weight;
  };
  std::vector<Live> live;
  for (size_t i = 0; i < l.size(); ++i) {
    if (std::isnan(l[i]) || l[i] == -kInf) continue;
    const float s = sampling_scaled(l[i], inv_t);
    const uint64_t w = sampling_weight(sampling_distance(s, m));
    if (w > 0) live.push_back({sampling_rank_key(s, static_cast<int32_t>(i)), w});
  }
  if (live.empty()) return argmax;
  std::sort(live.begin(), live.end(), [](const Live& a, const Live& b) { return a.key > b.key; });
  const size_t n = live.size();
  const size_t in_k = p.top_k > 0 && static_cast<size_t>(p.top_k) < n ? p.top_k : n;
  size_t in_p = in_k;
  if (p.top_p < 1.0f) {
    uint64_t mass = 0;
    for (size_t j = 0; j < in_k; ++j) mass += live[j].weight;
    const uint64_t target = sampling_top_p_target(p.top_p, mass);
    uint64_t cum = 0;
    for (size_t j = 0; j < in_k; ++j) {
      cum += live[j].weight;
      if (cum >= target) {
        in_p = j + 1;
        break;
      }
    }
  }
  const uint64_t min_weight = p.min_p > 0.0f ? sampling_min_p_weight(p.min_p) : 0;
  uint64_t mass = 0;
  for (size_t j = 0; j < in_p; ++j) {
    if (live[j].weight >= min_weight) mass += live[j].weight;
  }
  const float u = counter_uniform(p.seed, p.step, 0.0f, 1.0f);
  const uint64_t target = sampling_draw_target(u, mass);
  uint64_t cum = 0;
  for (size_t j = 0; j < in_p; ++j) {
    if (live[j].weight < min_weight) continue;
    cum += live[j].weight;
    if (cum > target) return sampling_key_id(live[j].key);
  }
  ADD_FAILURE() << "reference found no token (mass " << mass << ", target " << target << ")";
  return -1;
}

// ---- Running a batch on the device.

struct Batch {
  int64_t vocab = 0;
  std::vector<RowCase> rows;
  int64_t row_stride = 0;  // logits row stride in elements; 0: vocab
};

struct GpuResult {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // rows after the call
};

GpuResult run_gpu(const Batch& batch) {
  const int64_t rows = static_cast<int64_t>(batch.rows.size());
  const int64_t vocab = batch.vocab;
  const int64_t stride = batch.row_stride > 0 ? batch.row_stride : vocab;
  const int64_t words = (vocab + 31) / 32;
  bool counts = false, mask = false;
  size_t num_bias = 0, num_banned = 0;
  for (const RowCase& c : batch.rows) {
    counts = counts || !c.counts.empty();
    mask = mask || !c.prompt_mask.empty();
    num_bias = std::max(num_bias, c.bias.size());
    num_banned = std::max(num_banned, c.banned.size());
  }

  std::vector<float> h_logits(rows * stride, std::nanf(""));
  std::vector<SamplingRowParams> h_params(rows);
  std::vector<int32_t> h_counts(counts ? rows * vocab : 0, 0);
  std::vector<uint32_t> h_mask(mask ? rows * words : 0, 0);
  std::vector<int32_t> h_bias_ids(rows * num_bias, -1);
  std::vector<float> h_bias_values(rows * num_bias, 0.0f);
  std::vector<int32_t> h_banned(rows * num_banned, -1);
  for (int64_t r = 0; r < rows; ++r) {
    const RowCase& c = batch.rows[r];
    std::copy(c.logits.begin(), c.logits.end(), h_logits.begin() + r * stride);
    h_params[r] = c.params;
    if (!c.counts.empty()) std::copy(c.counts.begin(), c.counts.end(), h_counts.begin() + r * vocab);
    if (!c.prompt_mask.empty()) {
      std::copy(c.prompt_mask.begin(), c.prompt_mask.end(), h_mask.begin() + r * words);
    }
    for (size_t j = 0; j < c.bias.size(); ++j) {
      h_bias_ids[r * num_bias + j] = c.bias[j].first;
      h_bias_values[r * num_bias + j] = c.bias[j].second;
    }
    std::copy(c.banned.begin(), c.banned.end(), h_banned.begin() + r * num_banned);
  }

  DeviceBuffer d_logits(h_logits.size() * 4), d_params(rows * sizeof(SamplingRowParams)),
      d_counts(h_counts.size() * 4), d_mask(h_mask.size() * 4),
      d_bias_ids(h_bias_ids.size() * 4), d_bias_values(h_bias_values.size() * 4),
      d_banned(h_banned.size() * 4), d_out(rows * 4);
  d_logits.upload(h_logits.data());
  d_params.upload(h_params.data());
  if (counts) d_counts.upload(h_counts.data());
  if (mask) d_mask.upload(h_mask.data());
  if (num_bias > 0) {
    d_bias_ids.upload(h_bias_ids.data());
    d_bias_values.upload(h_bias_values.data());
  }
  if (num_banned > 0) d_banned.upload(h_banned.data());

  SampleArgs a;
  a.logits = Tensor::make(d_logits.data(), DType::kF32, {rows, vocab}, Device::kCuda);
  a.logits.strides[0] = stride;
  a.params = Tensor::make(d_params.data(), DType::kI32, {rows, kSamplingRowParamsWords},
                          Device::kCuda);
  if (counts) {
    a.token_counts = Tensor::make(d_counts.data(), DType::kI32, {rows, vocab}, Device::kCuda);
  }
  if (mask) a.prompt_mask = Tensor::make(d_mask.data(), DType::kI32, {rows, words}, Device::kCuda);
  if (num_bias > 0) {
    const auto b = static_cast<int64_t>(num_bias);
    a.logit_bias_ids = Tensor::make(d_bias_ids.data(), DType::kI32, {rows, b}, Device::kCuda);
    a.logit_bias_values =
        Tensor::make(d_bias_values.data(), DType::kF32, {rows, b}, Device::kCuda);
  }
  if (num_banned > 0) {
    a.banned_ids = Tensor::make(d_banned.data(), DType::kI32,
                                {rows, static_cast<int64_t>(num_banned)}, Device::kCuda);
  }
  a.out_tokens = Tensor::make(d_out.data(), DType::kI32, {rows}, Device::kCuda);
  const Status status = check_sample(a);
  EXPECT_TRUE(status.is_ok()) << status.message();
  if (!status.is_ok()) return {};
  sample(a, nullptr);
  SLUICE_CUDA_CHECK(cudaGetLastError());

  GpuResult result;
  result.tokens.resize(rows);
  d_out.download(result.tokens.data());  // out starts as 0xFF bytes: -1 if unwritten
  d_logits.download(h_logits.data());
  for (int64_t r = 0; r < rows; ++r) {
    result.logits.emplace_back(h_logits.begin() + r * stride,
                               h_logits.begin() + r * stride + vocab);
  }
  return result;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0 || (a != a && b != b); }

// Runs `batch` and checks every row's token and processed logits against the reference.
void expect_matches_reference(const Batch& batch, const std::string& what) {
  const GpuResult got = run_gpu(batch);
  ASSERT_EQ(got.tokens.size(), batch.rows.size()) << what;
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const RowCase& c = batch.rows[r];
    const std::vector<float> processed = reference_process(c);
    const int32_t want = reference_token(processed, c.params);
    const SamplingRowParams& p = c.params;
    EXPECT_EQ(got.tokens[r], want)
        << what << ", row " << r << " of " << batch.rows.size() << ", V " << batch.vocab
        << ": temperature " << p.temperature << ", top_k " << p.top_k << ", top_p " << p.top_p
        << ", min_p " << p.min_p << ", seed " << p.seed << ", step " << p.step;
    int64_t mismatches = 0;
    for (size_t i = 0; i < processed.size(); ++i) {
      if (!same_bits(got.logits[r][i], processed[i]) && mismatches++ < 3) {
        ADD_FAILURE() << what << ", row " << r << ": logit " << i << " is " << got.logits[r][i]
                      << " after the call, want " << processed[i];
      }
    }
    EXPECT_EQ(mismatches, 0) << what << ", row " << r << ": processed logits differ";
  }
}

// ---- Inputs.

enum class Dist { kFlat, kGaussian, kTies, kSpike, kFewLive };

const char* dist_name(Dist d) {
  switch (d) {
    case Dist::kFlat: return "flat";
    case Dist::kGaussian: return "gaussian";
    case Dist::kTies: return "ties";
    case Dist::kSpike: return "spike";
    case Dist::kFewLive: return "few-live";
  }
  return "?";
}

std::vector<float> make_logits(Dist dist, int64_t vocab, std::mt19937& rng) {
  std::vector<float> l(vocab);
  std::uniform_real_distribution<float> uni(-4.0f, 4.0f);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> small_int(-2, 2);
  std::uniform_int_distribution<int64_t> any_id(0, vocab - 1);
  switch (dist) {
    case Dist::kFlat:
      for (float& v : l) v = uni(rng);
      break;
    case Dist::kGaussian:
      for (float& v : l) v = normal(rng);
      break;
    case Dist::kTies:  // five values only: huge runs of equal logits
      for (float& v : l) v = static_cast<float>(small_int(rng));
      break;
    case Dist::kSpike:
      for (float& v : l) v = normal(rng);
      for (int j = 0; j < 3; ++j) l[any_id(rng)] = 18.0f + static_cast<float>(j);
      break;
    case Dist::kFewLive: {  // logit_bias -inf style: almost everything masked, a few NaN
      std::fill(l.begin(), l.end(), -kInf);
      const int live = 1 + static_cast<int>(rng() % 6);
      for (int j = 0; j < live; ++j) l[any_id(rng)] = uni(rng);
      for (int j = 0; j < 3; ++j) l[any_id(rng)] = std::nanf("");
      break;
    }
  }
  return l;
}

struct Config {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
};

// The sweep's sampling settings (penalties are tested on their own below).
const std::vector<Config>& configs() {
  static const std::vector<Config> kConfigs = {
      {"greedy", 0.0f, -1, 1.0f, 0.0f},
      {"temperature 0.7", 0.7f, -1, 1.0f, 0.0f},
      {"temperature 1", 1.0f, -1, 1.0f, 0.0f},
      {"temperature 1.5", 1.5f, 0, 1.0f, 0.0f},
      {"top-k 1", 1.0f, 1, 1.0f, 0.0f},
      {"top-k 40", 1.0f, 40, 1.0f, 0.0f},
      {"top-p 0.9", 1.0f, -1, 0.9f, 0.0f},
      {"min-p 0.05", 1.0f, -1, 1.0f, 0.05f},
      {"top-k 40 top-p 0.95 t 0.8", 0.8f, 40, 0.95f, 0.0f},
      {"top-k 100 top-p 0.9 min-p 0.02 t 1.2", 1.2f, 100, 0.9f, 0.02f},
      {"top-p 0.5 min-p 0.1 t 0.6", 0.6f, -1, 0.5f, 0.1f},
      {"top-k 5000 t 2", 2.0f, 5000, 1.0f, 0.0f},
      {"top-k 6000 top-p 0.8", 1.0f, 6000, 0.8f, 0.0f},
      {"top-p 1e-6", 1.0f, -1, 1e-6f, 0.0f},
      {"min-p 1", 1.0f, -1, 1.0f, 1.0f},
  };
  return kConfigs;
}

SamplingRowParams make_params(const Config& c, std::mt19937& rng) {
  SamplingRowParams p;
  p.temperature = c.temperature;
  p.top_k = c.top_k;
  p.top_p = c.top_p;
  p.min_p = c.min_p;
  p.seed = (static_cast<uint64_t>(rng()) << 32) | rng();
  p.step = rng() % 1000;
  return p;
}

// ---- Host-side checks of the shared arithmetic (no device needed).

TEST(SamplingMath, WeightFollowsExp) {
  EXPECT_EQ(sampling_weight(0.0f), uint64_t{1} << kSamplingWeightBits);
  EXPECT_EQ(sampling_weight(kSamplingMaxDistance), 0u);
  EXPECT_EQ(sampling_weight(std::nanf("")), 0u);
  EXPECT_EQ(sampling_weight(kInf), 0u);
  EXPECT_GT(sampling_weight(std::nextafter(kSamplingMaxDistance, 0.0f)), 0u);
  double worst = 0.0;
  for (int i = 0; i <= 20000; ++i) {
    const float d = 20.0f * static_cast<float>(i) / 20000.0f;
    const double want = std::ldexp(std::exp(-static_cast<double>(d)), kSamplingWeightBits);
    // The weight is floored to an integer: allow one unit beyond the relative error.
    const double error = std::fabs(static_cast<double>(sampling_weight(d)) - want) - 1.0;
    worst = std::max(worst, error / want);
  }
  EXPECT_LT(worst, 2e-6) << "relative error of sampling_weight against 2^43 exp(-d)";
}

TEST(SamplingMath, RankKeyOrdersByValueThenLowerId) {
  const float values[] = {-kInf, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 2.0f, 2.5f, kInf};
  for (float a : values) {
    for (float b : values) {
      for (int32_t ia : {0, 7, 262143}) {
        for (int32_t ib : {0, 7, 262143}) {
          if (a == b && ia == ib) continue;
          const bool a_first = a > b || (a == b && ia < ib);
          EXPECT_EQ(sampling_rank_key(a, ia) > sampling_rank_key(b, ib), a_first)
              << a << "@" << ia << " vs " << b << "@" << ib;
        }
      }
      EXPECT_EQ(sampling_key_id(sampling_rank_key(a, 12345)), 12345);
      const float back = sampling_key_value(sampling_rank_key(a, 3));
      EXPECT_TRUE(back == a) << a << " came back as " << back;
    }
  }
}

TEST(SamplingMath, Thresholds) {
  EXPECT_EQ(sampling_top_p_target(0.5f, 1000), 500u);
  EXPECT_EQ(sampling_top_p_target(0.0f, 1000), 0u);
  EXPECT_EQ(sampling_top_p_target(-1.0f, 1000), 0u);
  EXPECT_EQ(sampling_min_p_weight(0.0f), 0u);
  EXPECT_EQ(sampling_min_p_weight(1.0f), uint64_t{1} << kSamplingWeightBits);
  EXPECT_EQ(sampling_min_p_weight(7.0f), uint64_t{1} << kSamplingWeightBits);
  EXPECT_EQ(sampling_min_p_weight(0.5f), uint64_t{1} << (kSamplingWeightBits - 1));
  EXPECT_EQ(sampling_draw_target(0.0f, 10), 0u);
  EXPECT_EQ(sampling_draw_target(0.5f, 10), 5u);
  EXPECT_EQ(sampling_draw_target(std::nextafter(1.0f, 0.0f), 10), 9u);
  EXPECT_EQ(sampling_draw_target(std::nextafter(1.0f, 0.0f), uint64_t{1} << 62),
            (uint64_t{1} << 62) - (uint64_t{1} << 38));
}

// ---- Argument checks (no device needed: the views are never dereferenced).

constexpr int64_t kRows = 4;
constexpr int64_t kVocab = 1000;

SampleArgs good_args() {
  SampleArgs a;
  a.logits = fake(0x10000000, DType::kF32, {kRows, kVocab});
  a.params = fake(0x20000000, DType::kI32, {kRows, kSamplingRowParamsWords});
  a.token_counts = fake(0x30000000, DType::kI32, {kRows, kVocab});
  a.prompt_mask = fake(0x40000000, DType::kI32, {kRows, (kVocab + 31) / 32});
  a.logit_bias_ids = fake(0x50000000, DType::kI32, {kRows, 5});
  a.logit_bias_values = fake(0x60000000, DType::kF32, {kRows, 5});
  a.banned_ids = fake(0x70000000, DType::kI32, {kRows, 2});
  a.out_tokens = fake(0x80000000, DType::kI32, {kRows});
  return a;
}

void expect_rejected(const SampleArgs& a, const std::string& substring) {
  const Status s = check_sample(a);
  EXPECT_FALSE(s.is_ok()) << "expected a complaint containing '" << substring << "'";
  EXPECT_THAT(s.message(), HasSubstr(substring));
  EXPECT_THAT(s.message(), HasSubstr("sample: "));
}

TEST(SampleChecks, AcceptsGoodArguments) {
  EXPECT_TRUE(check_sample(good_args()).is_ok()) << check_sample(good_args()).message();
  SampleArgs a = good_args();  // every optional tensor absent
  a.token_counts = {};
  a.prompt_mask = {};
  a.logit_bias_ids = {};
  a.logit_bias_values = {};
  a.banned_ids = {};
  EXPECT_TRUE(check_sample(a).is_ok()) << check_sample(a).message();
  a.logits.strides[0] = kVocab + 7;  // row stride free
  EXPECT_TRUE(check_sample(a).is_ok()) << check_sample(a).message();
  SampleArgs v = good_args();  // Gemma's vocabulary
  v.logits = fake(0x10000000, DType::kF32, {kRows, 262144});
  v.token_counts = fake(0x90000000, DType::kI32, {kRows, 262144});
  v.prompt_mask = fake(0xA0000000, DType::kI32, {kRows, 8192});
  EXPECT_TRUE(check_sample(v).is_ok()) << check_sample(v).message();
  EXPECT_EQ(sampling_workspace_bytes(256, 262144), 0u);
}

TEST(SampleChecks, RejectsBadLogits) {
  SampleArgs a = good_args();
  a.logits.data = nullptr;
  expect_rejected(a, "logits is undefined");
  a = good_args();
  a.logits.device = Device::kCpu;
  expect_rejected(a, "logits is in host memory");
  a = good_args();
  a.logits.dtype = DType::kBF16;
  expect_rejected(a, "logits has dtype bf16; expected f32");
  a = good_args();
  a.logits = fake(0x10000000, DType::kF32, {kRows * kVocab});
  expect_rejected(a, "expected [R, V]");
  a = good_args();
  a.logits.strides[1] = 2;
  expect_rejected(a, "logits has stride 2 in its last dimension");
  a = good_args();
  a.logits.strides[0] = kVocab - 1;
  expect_rejected(a, "must not overlap");
  a = good_args();
  a.logits = fake(0x10000000, DType::kF32, {kRows, kMaxSamplingVocab + 1});
  expect_rejected(a, "expected V in [1, 1048576]");
  a = good_args();
  a.logits = fake(0x10000000, DType::kF32, {kRows, 0});
  expect_rejected(a, "expected V in");
}

TEST(SampleChecks, RejectsBadParamsAndOutput) {
  SampleArgs a = good_args();
  a.params = fake(0x20000000, DType::kF32, {kRows, kSamplingRowParamsWords});
  expect_rejected(a, "params has dtype f32; expected i32");
  a = good_args();
  a.params = fake(0x20000000, DType::kI32, {kRows, 10});
  expect_rejected(a, "params has shape [4, 10]; expected [4, 12]");
  a = good_args();
  a.params = fake(0x20000004, DType::kI32, {kRows, kSamplingRowParamsWords});
  expect_rejected(a, "params data is not 8-byte aligned");
  a = good_args();
  a.params.strides[0] = 16;
  expect_rejected(a, "params has row stride 16");
  a = good_args();
  a.out_tokens = fake(0x80000000, DType::kI32, {kRows + 1});
  expect_rejected(a, "out_tokens has shape [5]; expected a contiguous [4]");
  a = good_args();
  a.out_tokens = fake(0x80000000, DType::kF32, {kRows});
  expect_rejected(a, "out_tokens has dtype f32");
  a = good_args();
  a.out_tokens = {};
  expect_rejected(a, "out_tokens is undefined");
  a = good_args();
  a.out_tokens = fake(0x10000000 + 64, DType::kI32, {kRows});
  expect_rejected(a, "out_tokens overlaps logits");
  a = good_args();
  a.params = fake(0x10000000 + 4000, DType::kI32, {kRows, kSamplingRowParamsWords});
  expect_rejected(a, "logits overlaps params");
}

TEST(SampleChecks, RejectsBadOptionalTensors) {
  SampleArgs a = good_args();
  a.token_counts = fake(0x30000000, DType::kI32, {kRows, kVocab + 1});
  expect_rejected(a, "token_counts has shape [4, 1001]; expected [4, 1000]");
  a = good_args();
  a.token_counts.device = Device::kCpu;
  expect_rejected(a, "token_counts is in host memory");
  a = good_args();
  a.prompt_mask = fake(0x40000000, DType::kI32, {kRows, kVocab});
  expect_rejected(a, "prompt_mask has shape [4, 1000]; expected [4, 32]");
  a = good_args();
  a.logit_bias_values = {};
  expect_rejected(a, "logit_bias_ids is defined but logit_bias_values is undefined");
  a = good_args();
  a.logit_bias_values = fake(0x60000000, DType::kF32, {kRows, 6});
  expect_rejected(a, "logit_bias_values has shape [4, 6]; expected [4, 5]");
  a = good_args();
  a.logit_bias_values = fake(0x60000000, DType::kI32, {kRows, 5});
  expect_rejected(a, "logit_bias_values has dtype i32; expected f32");
  a = good_args();
  a.logit_bias_ids = fake(0x50000000, DType::kI32, {kRows, kMaxSamplingSparseSlots + 1});
  a.logit_bias_values = fake(0x60000000, DType::kF32, {kRows, kMaxSamplingSparseSlots + 1});
  expect_rejected(a, "logit_bias_ids has 1025 slots per row");
  a = good_args();
  a.banned_ids = fake(0x70000000, DType::kI32, {kRows + 1, 2});
  expect_rejected(a, "banned_ids has shape [5, 2]");
  a = good_args();
  a.banned_ids = fake(0x10000000 + 8, DType::kI32, {kRows, 2});
  expect_rejected(a, "logits overlaps banned_ids");
}

// ---- Kernel tests.

// Rows of one distribution, cycling through the configs from `first_config`.
Batch make_batch(Dist dist, int64_t vocab, int64_t rows, size_t first_config, std::mt19937& rng) {
  Batch b;
  b.vocab = vocab;
  for (int64_t r = 0; r < rows; ++r) {
    RowCase c;
    c.logits = make_logits(dist, vocab, rng);
    c.params = make_params(configs()[(first_config + r) % configs().size()], rng);
    b.rows.push_back(std::move(c));
  }
  return b;
}

TEST(SampleGpu, MatchesReferenceSmallVocabulary) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (Dist dist : {Dist::kFlat, Dist::kGaussian, Dist::kTies, Dist::kSpike, Dist::kFewLive}) {
    for (int64_t rows : {1, 7, 64}) {
      for (size_t first = 0; first < (rows == 1 ? configs().size() : 2); ++first) {
        Batch b = make_batch(dist, 1000, rows, first, rng);
        expect_matches_reference(b, std::string(dist_name(dist)) + ", V 1000, R " +
                                        std::to_string(rows) + ", first config " +
                                        configs()[first].name);
      }
    }
  }
}

TEST(SampleGpu, MatchesReferenceGemmaVocabulary) {
  SLUICE_SKIP_WITHOUT_GPU();
  constexpr int64_t kGemmaVocab = 262144;
  std::mt19937 rng(2);
  // R = 64: every config over each distribution (rows cycle through the configs).
  for (Dist dist : {Dist::kFlat, Dist::kGaussian, Dist::kTies, Dist::kSpike, Dist::kFewLive}) {
    Batch b = make_batch(dist, kGemmaVocab, 64, 0, rng);
    expect_matches_reference(b, std::string(dist_name(dist)) + ", V 262144, R 64");
  }
  // R = 7 and R = 1 on a mixed batch.
  Batch mixed = make_batch(Dist::kGaussian, kGemmaVocab, 7, 5, rng);
  mixed.rows[1].logits = make_logits(Dist::kFlat, kGemmaVocab, rng);
  mixed.rows[3].logits = make_logits(Dist::kTies, kGemmaVocab, rng);
  expect_matches_reference(mixed, "mixed, V 262144, R 7");
  for (size_t config : {1, 6, 8}) {
    Batch one = make_batch(Dist::kFlat, kGemmaVocab, 1, config, rng);
    expect_matches_reference(one, std::string("flat, V 262144, R 1, ") + configs()[config].name);
  }
}

TEST(SampleGpu, UnalignedRowsAndOddVocabulary) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (int64_t vocab : {1, 2, 33, 4099}) {
    Batch b = make_batch(Dist::kGaussian, vocab, 9, 0, rng);
    b.row_stride = vocab + 1;  // rows not 16-byte aligned: the scalar path
    expect_matches_reference(b, "unaligned, V " + std::to_string(vocab));
  }
  Batch flat = make_batch(Dist::kFlat, 50001, 15, 0, rng);  // slow path, V % 4 == 1
  expect_matches_reference(flat, "flat, V 50001");
}

TEST(SampleGpu, PenaltiesBiasAndBannedIds) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (int64_t vocab : {1000, 262144}) {
    const int64_t words = (vocab + 31) / 32;
    Batch b = make_batch(Dist::kGaussian, vocab, 16, 0, rng);
    std::uniform_int_distribution<int64_t> any_id(0, vocab - 1);
    for (size_t r = 0; r < b.rows.size(); ++r) {
      RowCase& c = b.rows[r];
      c.params.repetition_penalty = r % 3 == 0 ? 1.0f : 1.3f;
      c.params.presence_penalty = r % 4 == 1 ? 0.0f : 0.5f;
      c.params.frequency_penalty = r % 5 == 2 ? 0.0f : 0.3f;
      c.counts.assign(vocab, 0);
      c.prompt_mask.assign(words, 0);
      for (int j = 0; j < 200; ++j) c.counts[any_id(rng)] += 1 + static_cast<int>(rng() % 3);
      for (int j = 0; j < 300; ++j) {
        const int64_t id = any_id(rng);
        c.prompt_mask[id / 32] |= 1u << (id % 32);
      }
      // The best few ids generated often, so the penalties change the outcome.
      const int32_t best = reference_argmax(c.logits);
      c.counts[best] = 5;
      if (r % 2 == 0) {
        const int32_t id = static_cast<int32_t>(any_id(rng));
        c.bias = {{id, 2.5f}, {-1, 0.0f}, {best, -kInf}, {id, 1.25f},
                  {static_cast<int32_t>(vocab), 9.0f}};
        c.banned = {static_cast<int32_t>(any_id(rng)), -1, best};
      }
    }
    expect_matches_reference(b, "penalties, V " + std::to_string(vocab));
  }
}

TEST(SampleGpu, EverythingFilteredButOne) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  const int64_t vocab = 262144;
  Batch b;
  b.vocab = vocab;
  const std::vector<Config> one_left = {
      {"min-p 1", 1.0f, -1, 1.0f, 1.0f},   {"top-p 1e-6", 1.0f, -1, 1e-6f, 0.0f},
      {"top-k 1", 1.0f, 1, 1.0f, 0.0f},    {"top-p 0", 1.0f, -1, 0.0f, 0.0f},
      {"temperature 1e-4", 1e-4f, -1, 1.0f, 0.0f},
  };
  std::vector<int32_t> expected;
  for (size_t r = 0; r < 2 * one_left.size(); ++r) {
    RowCase c;
    c.logits = make_logits(Dist::kFlat, vocab, rng);
    const int32_t top = static_cast<int32_t>(rng() % vocab);
    c.logits[top] = 4.5f;  // a unique best, 0.5 above the rest
    c.params = make_params(one_left[r % one_left.size()], rng);
    if (r >= one_left.size()) {  // and a row where only one id is not -inf
      std::fill(c.logits.begin(), c.logits.end(), -kInf);
      c.logits[top] = -50.0f;
      c.params.temperature = 1.0f;
    }
    expected.push_back(top);
    b.rows.push_back(std::move(c));
  }
  const GpuResult got = run_gpu(b);
  ASSERT_EQ(got.tokens.size(), expected.size());
  for (size_t r = 0; r < expected.size(); ++r) {
    EXPECT_EQ(got.tokens[r], expected[r]) << "row " << r;
  }
  expect_matches_reference(b, "one left");
}

TEST(SampleGpu, DegenerateRows) {
  SLUICE_SKIP_WITHOUT_GPU();
  const int64_t vocab = 3000;
  const float nan = std::nanf("");
  Batch b;
  b.vocab = vocab;
  auto add = [&](std::vector<float> logits, float temperature, int32_t top_k, int32_t want) {
    RowCase c;
    c.logits = std::move(logits);
    c.params.temperature = temperature;
    c.params.top_k = top_k;
    c.params.seed = 99;
    b.rows.push_back(std::move(c));
    return want;
  };
  std::vector<int32_t> want;
  want.push_back(add(std::vector<float>(vocab, nan), 1.0f, -1, 0));     // all NaN
  want.push_back(add(std::vector<float>(vocab, -kInf), 1.0f, -1, 0));   // all -inf
  std::vector<float> l(vocab, -kInf);
  l[0] = nan;
  want.push_back(add(l, 0.0f, -1, 1));  // greedy: the first non-NaN
  l.assign(vocab, 1.0f);
  l[17] = kInf;
  l[2500] = kInf;
  want.push_back(add(l, 1.0f, -1, -1));  // +inf ids share all the mass: 17 or 2500
  l.assign(vocab, 3.0f);
  want.push_back(add(l, 0.0f, -1, 0));   // greedy over ties: the lowest id
  want.push_back(add(l, 1.0f, 40, -1));  // top-k over ties: one of ids 0..39
  const GpuResult got = run_gpu(b);
  ASSERT_EQ(got.tokens.size(), want.size());
  for (size_t r = 0; r < want.size(); ++r) {
    if (want[r] >= 0) {
      EXPECT_EQ(got.tokens[r], want[r]) << "row " << r;
    }
  }
  EXPECT_TRUE(got.tokens[3] == 17 || got.tokens[3] == 2500) << got.tokens[3];
  EXPECT_GE(got.tokens[5], 0);
  EXPECT_LT(got.tokens[5], 40);
  expect_matches_reference(b, "degenerate rows");
}

TEST(SampleGpu, DrawsFollowTheFilteredDistribution) {
  SLUICE_SKIP_WITHOUT_GPU();
  // 4096 draws (steps) from one 16-logit row: frequencies against the probabilities that
  // softmax, top-k 6 and top-p 0.9 leave (an independent check of the reference's meaning).
  const int64_t vocab = 16;
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 3.0f, -2.0f, 1.0f,
                                     2.5f, -0.5f, 0.2f, -3.0f, 1.2f, 0.8f, -1.5f, 0.1f};
  Batch b;
  b.vocab = vocab;
  const int kDraws = 4096;
  for (int s = 0; s < kDraws; ++s) {
    RowCase c;
    c.logits = logits;
    c.params.top_k = 6;
    c.params.top_p = 0.9f;
    c.params.seed = 2024;
    c.params.step = static_cast<uint64_t>(s);
    b.rows.push_back(std::move(c));
  }
  const GpuResult got = run_gpu(b);
  ASSERT_EQ(got.tokens.size(), static_cast<size_t>(kDraws));
  // Top 6 by logit: ids 5 (3.0), 8 (2.5), 1 (2.0), 3 (1.5), 12 (1.2), 7 (1.0); top-p 0.9
  // of their softmax keeps the shortest prefix reaching 90% of the mass.
  const std::vector<int> order = {5, 8, 1, 3, 12, 7};
  std::vector<double> p;
  double total = 0;
  for (int id : order) total += std::exp(logits[id] - 3.0);
  double cum = 0;
  for (int id : order) {
    p.push_back(std::exp(logits[id] - 3.0) / total);
    cum += p.back();
    if (cum >= 0.9) break;
  }
  double kept = 0;
  for (double v : p) kept += v;
  std::vector<int> hits(vocab, 0);
  for (int32_t t : got.tokens) {
    ASSERT_GE(t, 0);
    ASSERT_LT(t, vocab);
    ++hits[t];
  }
  for (size_t j = 0; j < order.size(); ++j) {
    const int id = order[j];
    const double want = j < p.size() ? p[j] / kept : 0.0;
    const double sigma = std::sqrt(kDraws * want * (1 - want)) + 1e-9;
    EXPECT_NEAR(hits[id], kDraws * want, 5 * sigma + 1) << "id " << id;
  }
  int outside = 0;
  for (int64_t id = 0; id < vocab; ++id) {
    if (std::find(order.begin(), order.begin() + p.size(), id) == order.begin() + p.size()) {
      outside += hits[id];
    }
  }
  EXPECT_EQ(outside, 0) << "draws outside the top-p set";
  expect_matches_reference(b, "4096 draws");
}

TEST(SampleGpu, SameSeedAndStepGiveTheSameToken) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  Batch b = make_batch(Dist::kFlat, 262144, 8, 6, rng);  // top-p 0.9 over a flat row
  const GpuResult first = run_gpu(b);
  const GpuResult second = run_gpu(b);
  EXPECT_EQ(first.tokens, second.tokens);
  for (RowCase& c : b.rows) ++c.params.step;
  const GpuResult next = run_gpu(b);
  EXPECT_NE(first.tokens, next.tokens) << "eight rows drew the same ids at the next step";
}

}  // namespace
}  // namespace sluice::kernels::cuda
