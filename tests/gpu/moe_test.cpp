// CUDA MoE (kernels/cuda/moe.h) against host references in double: the router (softmax over
// all experts, top-k with ties to the lower index, renormalise, per-expert scale) and the
// expert layer (GeGLU experts, the bf16 rounding of their activation mimicked, weighted sum),
// at small shapes and once at Gemma 4 26B-A4B's. The argument checks run everywhere; the
// kernel tests skip cleanly without a device.

#include "kernels/cuda/moe.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/counter_rng.h"
#include "common/half.h"
#include "gpu/gpu_test_util.h"
#include "kernels/cuda/random_fill.h"

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

// ---- references --------------------------------------------------------------------------

struct Routing {
  std::vector<int32_t> experts;  // [T * k]
  std::vector<double> weights;   // [T * k]
};

// Router reference in double. Ranks by logit (the same order as the probabilities), ties
// to the lower index, NaN below everything.
Routing reference_route(const std::vector<float>& logits, int64_t T, int64_t E, int k,
                        const std::vector<float>* scale) {
  Routing r;
  for (int64_t t = 0; t < T; ++t) {
    const float* l = &logits[t * E];
    double max_l = -INFINITY;
    for (int64_t e = 0; e < E; ++e) {
      if (!std::isnan(l[e])) max_l = std::max(max_l, static_cast<double>(l[e]));
    }
    std::vector<double> p(E);
    double sum = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      p[e] = std::isnan(l[e]) ? 0.0 : (l[e] == max_l ? 1.0 : std::exp(l[e] - max_l));
      sum += p[e];
    }
    for (double& v : p) v /= sum;
    std::vector<int32_t> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      if (std::isnan(l[a]) || std::isnan(l[b])) return !std::isnan(l[a]) && std::isnan(l[b]);
      return l[a] > l[b];
    });
    double chosen = 0.0;
    for (int j = 0; j < k; ++j) chosen += p[order[j]];
    for (int j = 0; j < k; ++j) {
      const int32_t e = order[j];
      r.experts.push_back(e);
      r.weights.push_back(p[e] / chosen * (scale ? (*scale)[e] : 1.0));
    }
  }
  return r;
}

double gelu_tanh_ref(double z) {
  const double u = std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z);
  return 0.5 * z * (1.0 + std::tanh(u));
}

// One expert's weights on the host: gate_up [2I, H] and down [H, I] as floats.
struct ExpertWeights {
  const float* gate_up = nullptr;
  const float* down = nullptr;
};

// expert(x) in double, with the GeGLU output rounded to bf16 as the device stores it.
void reference_expert(const float* x, const ExpertWeights& w, int64_t H, int64_t I, double weight,
                      double* out) {
  std::vector<double> act(I);
  for (int64_t n = 0; n < I; ++n) {
    const float* g_row = w.gate_up + n * H;
    const float* u_row = w.gate_up + (I + n) * H;
    double g = 0.0, u = 0.0;
    for (int64_t h = 0; h < H; ++h) {
      g += static_cast<double>(x[h]) * g_row[h];
      u += static_cast<double>(x[h]) * u_row[h];
    }
    act[n] = round_to(static_cast<float>(gelu_tanh_ref(g) * u), DType::kBF16);
  }
  for (int64_t h = 0; h < H; ++h) {
    const float* d_row = w.down + h * I;
    double y = 0.0;
    for (int64_t n = 0; n < I; ++n) y += act[n] * d_row[n];
    out[h] += weight * y;
  }
}

std::vector<float> view_values(const TestTensor& t) {
  std::vector<float> v;
  for (int64_t r = 0; r < t.rows(); ++r) {
    for (int64_t c = 0; c < t.dim(); ++c) v.push_back(t.at(r, c));
  }
  return v;
}

double rel_error(const TestTensor& out, const std::vector<double>& ref) {
  double err2 = 0.0, ref2 = 0.0;
  for (int64_t r = 0; r < out.rows(); ++r) {
    for (int64_t c = 0; c < out.dim(); ++c) {
      const double d = out.at(r, c) - ref[r * out.dim() + c];
      err2 += d * d;
      ref2 += ref[r * out.dim() + c] * ref[r * out.dim() + c];
    }
  }
  return std::sqrt(err2 / std::max(ref2, 1e-300));
}

// Tolerances for the expert layer: the reference mimics the bf16 activation, so an f32
// output differs only by f32 accumulation and the odd activation rounded the other way.
void expect_layer_close(const TestTensor& out, const std::vector<double>& ref) {
  if (out.dtype() == DType::kBF16) {
    expect_close(out, ref, 1e-2, 1.0 / 64, 2e-3);
  } else {
    expect_close(out, ref, 2e-3, 1e-2, 1e-3);
  }
}

Tensor device_i32(const DeviceBuffer& b, std::initializer_list<int64_t> shape) {
  return Tensor::make(b.data(), DType::kI32, shape, Device::kCuda);
}
Tensor device_f32(const DeviceBuffer& b, std::initializer_list<int64_t> shape) {
  return Tensor::make(b.data(), DType::kF32, shape, Device::kCuda);
}
Tensor device_bytes(const DeviceBuffer& b, size_t bytes) {
  return Tensor::make(b.data(), DType::kF32, {static_cast<int64_t>((bytes + 3) / 4)},
                      Device::kCuda);
}

template <typename T>
std::vector<T> download(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  b.download(v.data());
  return v;
}

// ---- moe_route ---------------------------------------------------------------------------

struct RouteCase {
  int64_t T, E;
  int k;
  DType logits_dtype;
  int scale;  // 0 none, 1 f32, 2 bf16
  int64_t row_pad;
};

void run_route_case(const RouteCase& c, const std::vector<float>& logit_values, std::mt19937& rng) {
  SCOPED_TRACE("T " + std::to_string(c.T) + ", E " + std::to_string(c.E) + ", k " +
               std::to_string(c.k) + ", logits " + dtype_name(c.logits_dtype) + ", scale " +
               std::to_string(c.scale) + ", row pad " + std::to_string(c.row_pad));
  TestTensor logits(c.logits_dtype, {c.T, c.E}, {c.E + c.row_pad, 1});
  for (int64_t t = 0; t < c.T; ++t) {
    for (int64_t e = 0; e < c.E; ++e) logits.at(t, e) = logit_values[t * c.E + e];
  }
  logits.upload();
  std::optional<TestTensor> scale;
  if (c.scale != 0) {
    scale.emplace(c.scale == 1 ? DType::kF32 : DType::kBF16, std::vector<int64_t>{c.E});
    scale->fill_random(rng, 0.5f, 2.0f);
  }
  DeviceBuffer experts(c.T * c.k * 4), weights(c.T * c.k * 4);  // poisoned
  MoeRouteArgs a;
  a.logits = logits.view();
  if (scale) a.per_expert_scale = scale->view();
  a.out_experts = device_i32(experts, {c.T, c.k});
  a.out_weights = device_f32(weights, {c.T, c.k});
  a.top_k = c.k;
  moe_route(a, nullptr);
  const auto got_e = download<int32_t>(experts, c.T * c.k);
  const auto got_w = download<float>(weights, c.T * c.k);
  std::vector<float> scale_values;
  if (scale) scale_values = view_values(*scale);
  const Routing want =
      reference_route(view_values(logits), c.T, c.E, c.k, scale ? &scale_values : nullptr);
  int bad = 0;
  for (int64_t i = 0; i < c.T * c.k; ++i) {
    // f32 softmax: exp of a rounded difference, a few roundings in the sums.
    const bool ok = got_e[i] == want.experts[i] && std::fabs(got_w[i] - want.weights[i]) <=
                                                       1e-5 * std::fabs(want.weights[i]) + 1e-7;
    if (!ok && bad++ < 4) {
      ADD_FAILURE() << "token " << i / c.k << " slot " << i % c.k << ": got expert " << got_e[i]
                    << " weight " << got_w[i] << ", want expert " << want.experts[i] << " weight "
                    << want.weights[i];
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(MoeRouteGpu, MatchesReferenceOnDistinctLogits) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20260101);
  const RouteCase cases[] = {
      {1, 128, 8, DType::kF32, 1, 0},  {7, 128, 8, DType::kBF16, 2, 5},
      {33, 128, 8, DType::kF32, 0, 3}, {5, 8, 2, DType::kF32, 1, 0},
      {3, 8, 8, DType::kBF16, 0, 0},   {9, 200, 32, DType::kF32, 2, 1},
      {4, 512, 8, DType::kBF16, 1, 0}, {2, 512, 32, DType::kF32, 0, 0},
      {6, 33, 1, DType::kF32, 1, 0},   {300, 128, 8, DType::kF32, 1, 0},
  };
  for (const RouteCase& c : cases) {
    // Distinct logits: a permutation of steps of 1/32 (exact in bf16 for |v| < 8), plus, for
    // f32, noise smaller than a step.
    std::vector<float> values(c.T * c.E);
    std::uniform_real_distribution<float> noise(0.0f, 0.02f);
    for (int64_t t = 0; t < c.T; ++t) {
      std::vector<int> perm(c.E);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int64_t e = 0; e < c.E; ++e) {
        float v = static_cast<float>(perm[e] - c.E / 2) / 32.0f;
        if (c.logits_dtype == DType::kF32) v = v * 4.0f + noise(rng);
        values[t * c.E + e] = v;
      }
    }
    run_route_case(c, values, rng);
    if (HasFailure()) return;
  }
}

TEST(MoeRouteGpu, TiesGoToTheLowerIndexAndNaNLoses) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20260102);
  const int64_t E = 128;
  const float nan = std::nanf("");
  // Row 0: all equal. Row 1: three levels with many ties. Row 2: NaN and -inf mixed in.
  // Row 3: the top value tied across slots 100..110 with a NaN at expert 0.
  std::vector<float> values(4 * E);
  for (int64_t e = 0; e < E; ++e) {
    values[0 * E + e] = 0.5f;
    values[1 * E + e] = static_cast<float>((e * 7) % 3);
    values[2 * E + e] = e % 5 == 0 ? nan : (e % 5 == 1 ? -INFINITY : static_cast<float>(e % 4));
    values[3 * E + e] = (e >= 100 && e <= 110) ? 3.0f : -1.0f;
  }
  values[3 * E + 0] = nan;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    run_route_case({4, E, 8, dtype, 1, 0}, values, rng);
    run_route_case({4, E, 32, dtype, 0, 2}, values, rng);
  }
  // Fewer numbers than slots: the NaN experts fill the last slots with weight 0.
  std::vector<float> sparse(E, nan);
  sparse[17] = 1.0f;
  sparse[90] = 2.0f;
  run_route_case({1, E, 4, DType::kF32, 0, 0}, sparse, rng);
}

// ---- moe_experts -------------------------------------------------------------------------

enum class Pattern { kRandom, kAllToTwo, kAllToOne, kWithInvalid };

struct ExpertsCase {
  int64_t T, H, I;
  Pattern pattern;
  DType out_dtype;
  int64_t x_pad = 0;       // extra elements per x row (multiple of 8)
  int64_t out_offset = 0;  // elements before out's view (odd: unaligned, scalar stores)
};

constexpr int64_t kSmallE = 8;
constexpr int kSmallK = 2;

// Random routing: k distinct experts per token; or every token on experts 3 and 5; or every
// slot on expert 3 (a token may name an expert twice: both slots count); or some ids
// outside [0, E).
void make_routing(Pattern pattern, int64_t T, int64_t E, int k, std::mt19937& rng,
                  std::vector<int32_t>& experts, std::vector<float>& weights) {
  experts.assign(T * k, 0);
  weights.assign(T * k, 0.0f);
  std::uniform_real_distribution<float> wdist(0.05f, 1.0f);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int32_t> perm(E);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int j = 0; j < k; ++j) {
      int32_t e = perm[j];
      if (pattern == Pattern::kAllToTwo) e = j % 2 == 0 ? 3 : 5;
      if (pattern == Pattern::kAllToOne) e = 3;
      if (pattern == Pattern::kWithInvalid && (t + j) % 3 == 0) e = (t % 2 == 0) ? -1 : E;
      experts[t * k + j] = e;
      weights[t * k + j] = wdist(rng);
    }
  }
}

struct SmallLayer {
  TestTensor gate_up, down;
  SmallLayer(int64_t E, int64_t H, int64_t I, std::mt19937& rng)
      : gate_up(DType::kBF16, {E, 2 * I, H}), down(DType::kBF16, {E, H, I}) {
    const float gu = 2.5f / std::sqrt(static_cast<float>(H));
    const float dn = 2.5f / std::sqrt(static_cast<float>(I));
    gate_up.fill_random(rng, -gu, gu);
    down.fill_random(rng, -dn, dn);
  }
  ExpertWeights expert(int64_t e, int64_t H, int64_t I) {
    return {&gate_up.host()[e * 2 * I * H], &down.host()[e * H * I]};
  }
};

// The whole layer in double, expert by expert (each expert's weights are fetched once).
std::vector<double> reference_layer(const TestTensor& x, const std::vector<int32_t>& experts,
                                    const std::vector<float>& weights, int64_t E, int k, int64_t H,
                                    int64_t I,
                                    const std::function<ExpertWeights(int64_t)>& expert_weights) {
  const int64_t T = x.rows();
  std::vector<double> out(T * H, 0.0);
  std::vector<float> xr(H);
  for (int64_t e = 0; e < E; ++e) {
    bool fetched = false;
    ExpertWeights w;
    for (int64_t t = 0; t < T; ++t) {
      for (int j = 0; j < k; ++j) {
        if (experts[t * k + j] != e) continue;
        if (!fetched) {
          w = expert_weights(e);
          fetched = true;
        }
        for (int64_t h = 0; h < H; ++h) xr[h] = x.at(t, h);
        reference_expert(xr.data(), w, H, I, weights[t * k + j], &out[t * H]);
      }
    }
  }
  return out;
}

// Runs one case; returns the relative error (or -1 after a failure).
double run_experts_case(const ExpertsCase& c, std::mt19937& rng, bool check_determinism) {
  const int64_t E = kSmallE;
  const int k = kSmallK;
  SmallLayer layer(E, c.H, c.I, rng);
  TestTensor x(DType::kBF16, {c.T, c.H}, {c.H + c.x_pad, 1});
  x.fill_random(rng, -1.0f, 1.0f);
  std::vector<int32_t> experts;
  std::vector<float> weights;
  make_routing(c.pattern, c.T, E, k, rng, experts, weights);
  DeviceBuffer experts_d(experts.size() * 4), weights_d(weights.size() * 4);
  experts_d.upload(experts.data());
  weights_d.upload(weights.data());
  TestTensor out(c.out_dtype, {c.T, c.H}, {}, c.out_offset);
  const size_t ws_bytes = moe_workspace_bytes(c.T, c.H, c.I, E, k);
  DeviceBuffer ws(ws_bytes);

  MoeExpertsArgs a;
  a.out = out.view();
  a.x = x.view();
  a.experts = device_i32(experts_d, {c.T, k});
  a.weights = device_f32(weights_d, {c.T, k});
  a.gate_up = layer.gate_up.view();
  a.down = layer.down.view();
  a.workspace = device_bytes(ws, ws_bytes);
  moe_experts(a, nullptr);
  out.download();
  const auto ref = reference_layer(x, experts, weights, E, k, c.H, c.I,
                                   [&](int64_t e) { return layer.expert(e, c.H, c.I); });
  expect_layer_close(out, ref);
  EXPECT_EQ(out.padding_written(), 0);
  if (check_determinism) {
    TestTensor again(c.out_dtype, {c.T, c.H}, {}, c.out_offset);
    a.out = again.view();
    moe_experts(a, nullptr);
    again.download();
    for (int64_t r = 0; r < c.T; ++r) {
      for (int64_t col = 0; col < c.H; ++col) {
        const float u = out.at(r, col), v = again.at(r, col);
        if (std::memcmp(&u, &v, sizeof(float)) != 0) {
          ADD_FAILURE() << "second run differs at (" << r << ", " << col << "): " << u << " vs "
                        << v;
          return -1.0;
        }
      }
    }
  }
  return rel_error(out, ref);
}

TEST(MoeExpertsGpu, MatchesReferenceAtSmallShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20260103);
  struct Dims {
    int64_t H, I;
  };
  const Dims dims[] = {{64, 32}, {200, 40}, {256, 128}, {136, 96}};
  // T * k = 2 and 10 take the decode path (moe_gemv.cu: two weight streams); 32 the fused
  // plan (kMaxFusedPlanRows); 66, 200 and 400 the plan kernel, with 16, 32 and 64 rows per
  // tile.
  const int64_t token_counts[] = {1, 5, 16, 33, 100, 200};
  const Pattern patterns[] = {Pattern::kRandom, Pattern::kAllToTwo, Pattern::kAllToOne,
                              Pattern::kWithInvalid};
  double worst[2] = {0.0, 0.0};
  int n = 0;
  for (const Dims& d : dims) {
    for (int64_t T : token_counts) {
      for (Pattern pattern : patterns) {
        const DType out_dtype = n % 2 == 0 ? DType::kF32 : DType::kBF16;
        const ExpertsCase c{
            T, d.H, d.I, pattern, out_dtype, n % 3 == 0 ? 8 : 0, n % 4 == 1 ? 1 : 0};
        ++n;
        SCOPED_TRACE("T " + std::to_string(T) + ", H " + std::to_string(d.H) + ", I " +
                     std::to_string(d.I) + ", pattern " +
                     std::to_string(static_cast<int>(pattern)) + ", out " + dtype_name(out_dtype) +
                     ", x pad " + std::to_string(c.x_pad) + ", out offset " +
                     std::to_string(c.out_offset));
        const double rel = run_experts_case(c, rng, T == 33);
        worst[out_dtype == DType::kBF16] = std::max(worst[out_dtype == DType::kBF16], rel);
        if (HasFailure()) return;
      }
    }
  }
  std::printf("moe_experts small shapes: worst rel err f32 out %.3g, bf16 out %.3g\n", worst[0],
              worst[1]);
}

TEST(MoeExpertsGpu, ZeroTokensRunsNothing) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20260104);
  SmallLayer layer(kSmallE, 64, 32, rng);
  MoeExpertsArgs a;
  a.out = Tensor::make(nullptr, DType::kF32, {0, 64}, Device::kCuda);
  a.x = Tensor::make(nullptr, DType::kBF16, {0, 64}, Device::kCuda);
  a.experts = Tensor::make(nullptr, DType::kI32, {0, kSmallK}, Device::kCuda);
  a.weights = Tensor::make(nullptr, DType::kF32, {0, kSmallK}, Device::kCuda);
  a.gate_up = layer.gate_up.view();
  a.down = layer.down.view();
  EXPECT_EQ(moe_workspace_bytes(0, 64, 32, kSmallE, kSmallK), 0u);
  ASSERT_TRUE(check_moe_experts(a).is_ok()) << check_moe_experts(a).message();
  moe_experts(a, nullptr);
  SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
}

// Route then experts, captured into a CUDA graph on a stream of its own: same bits as the
// direct launches (nothing reads device data on the host, nothing allocates).
TEST(MoeExpertsGpu, GraphCaptureMatchesDirectLaunch) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20260105);
  const int64_t T = 19, H = 256, I = 128, E = 16;
  const int k = 4;
  TestTensor gate_up(DType::kBF16, {E, 2 * I, H}), down(DType::kBF16, {E, H, I});
  gate_up.fill_random(rng, -0.15f, 0.15f);
  down.fill_random(rng, -0.2f, 0.2f);
  TestTensor logits(DType::kF32, {T, E});
  logits.fill_random(rng, -3.0f, 3.0f);
  TestTensor x(DType::kBF16, {T, H});
  x.fill_random(rng, -1.0f, 1.0f);
  DeviceBuffer experts(T * k * 4), weights(T * k * 4);
  const size_t ws_bytes = moe_workspace_bytes(T, H, I, E, k);
  DeviceBuffer ws(ws_bytes);
  TestTensor direct(DType::kBF16, {T, H}), graphed(DType::kBF16, {T, H});

  auto enqueue = [&](const TestTensor& out, cudaStream_t stream) {
    MoeRouteArgs r;
    r.logits = logits.view();
    r.out_experts = device_i32(experts, {T, k});
    r.out_weights = device_f32(weights, {T, k});
    r.top_k = k;
    moe_route(r, stream);
    MoeExpertsArgs a;
    a.out = out.view();
    a.x = x.view();
    a.experts = r.out_experts;
    a.weights = r.out_weights;
    a.gate_up = gate_up.view();
    a.down = down.view();
    a.workspace = device_bytes(ws, ws_bytes);
    moe_experts(a, stream);
  };
  enqueue(direct, nullptr);
  direct.download();

  {
    const TestStream stream;
    const CapturedGraph graph(stream.get(), cudaStreamCaptureModeThreadLocal,
                              [&](cudaStream_t s) { enqueue(graphed, s); });
    graph.replay(stream.get());
  }
  graphed.download();
  int64_t differ = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      const float u = direct.at(t, h), v = graphed.at(t, h);
      differ += std::isnan(u) || std::memcmp(&u, &v, sizeof(float)) != 0;
    }
  }
  EXPECT_EQ(differ, 0) << "elements that differ between the graph and the direct launch (or NaN)";
}

// Gemma 4 26B-A4B's shapes, routed by moe_route from random logits, T = 1 and 2 (the decode
// path) and 4 (the grouped GEMMs). The weights are filled on the device from a counter-based
// generator; the host recomputes the rows of the experts it needs from the same seed.
class MoeExperts26B : public ::testing::TestWithParam<int64_t> {};

TEST_P(MoeExperts26B, MatchesReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  const int64_t T = GetParam();
  constexpr int64_t H = 2816, I = 704, E = 128;
  constexpr int k = 8;
  constexpr uint64_t kGateUpSeed = 0x6a7e, kDownSeed = 0xd0e1;
  const float gu = 2.5f / std::sqrt(static_cast<float>(H));
  const float dn = 2.5f / std::sqrt(static_cast<float>(I));
  std::mt19937 rng(20260106);
  DeviceBuffer gate_up_d(E * 2 * I * H * 2), down_d(E * H * I * 2);
  const Tensor gate_up = Tensor::make(gate_up_d.data(), DType::kBF16, {E, 2 * I, H}, Device::kCuda);
  const Tensor down = Tensor::make(down_d.data(), DType::kBF16, {E, H, I}, Device::kCuda);
  fill_uniform(gate_up, kGateUpSeed, -gu, gu, nullptr);
  fill_uniform(down, kDownSeed, -dn, dn, nullptr);

  TestTensor logits(DType::kF32, {T, E});
  logits.fill_random(rng, -4.0f, 4.0f);
  TestTensor scale(DType::kF32, {E});
  scale.fill_random(rng, 0.5f, 1.5f);
  TestTensor x(DType::kBF16, {T, H});
  x.fill_random(rng, -1.0f, 1.0f);
  DeviceBuffer experts_d(T * k * 4), weights_d(T * k * 4);
  MoeRouteArgs r;
  r.logits = logits.view();
  r.per_expert_scale = scale.view();
  r.out_experts = device_i32(experts_d, {T, k});
  r.out_weights = device_f32(weights_d, {T, k});
  r.top_k = k;
  moe_route(r, nullptr);

  const size_t ws_bytes = moe_workspace_bytes(T, H, I, E, k);
  DeviceBuffer ws(ws_bytes);
  for (DType out_dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(out_dtype));
    TestTensor out(out_dtype, {T, H});
    MoeExpertsArgs a;
    a.out = out.view();
    a.x = x.view();
    a.experts = r.out_experts;
    a.weights = r.out_weights;
    a.gate_up = gate_up;
    a.down = down;
    a.workspace = device_bytes(ws, ws_bytes);
    EXPECT_EQ(moe_experts_uses_gemv(a), T <= 2);
    moe_experts(a, nullptr);
    out.download();
    const auto experts = download<int32_t>(experts_d, T * k);
    const auto weights = download<float>(weights_d, T * k);

    // One expert's rows at a time, regenerated from the seeds (reference_layer fetches each
    // expert once).
    std::vector<float> g(2 * I * H), d(H * I);
    int distinct = 0;
    auto expert_weights = [&](int64_t e) {
      const uint64_t g0 = static_cast<uint64_t>(e) * 2 * I * H;
      const uint64_t d0 = static_cast<uint64_t>(e) * H * I;
      for (size_t i = 0; i < g.size(); ++i) {
        g[i] = round_to(counter_uniform(kGateUpSeed, g0 + i, -gu, gu), DType::kBF16);
      }
      for (size_t i = 0; i < d.size(); ++i) {
        d[i] = round_to(counter_uniform(kDownSeed, d0 + i, -dn, dn), DType::kBF16);
      }
      ++distinct;
      return ExpertWeights{g.data(), d.data()};
    };
    const auto ref = reference_layer(x, experts, weights, E, k, H, I, expert_weights);
    expect_layer_close(out, ref);
    std::printf("moe_experts 26B shapes, T = %d, out %s: rel err %.3g (%d distinct experts)\n",
                static_cast<int>(T), dtype_name(out_dtype), rel_error(out, ref), distinct);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Tokens, MoeExperts26B, ::testing::Values(1, 2, 4));

// ---- argument checks: no device needed (the views point nowhere and are never read) -------

MoeRouteArgs good_route() {
  MoeRouteArgs a;
  a.logits = fake(0x1000000, DType::kF32, {3, 128});
  a.per_expert_scale = fake(0x2000000, DType::kBF16, {128});
  a.out_experts = fake(0x3000000, DType::kI32, {3, 8});
  a.out_weights = fake(0x4000000, DType::kF32, {3, 8});
  a.top_k = 8;
  return a;
}

constexpr int64_t kH = 2816, kI = 704, kE = 128, kT = 4;
constexpr int kK = 8;

MoeExpertsArgs good_experts() {
  MoeExpertsArgs a;
  a.out = fake(0x1000000, DType::kBF16, {kT, kH});
  a.x = fake(0x2000000, DType::kBF16, {kT, kH});
  a.experts = fake(0x3000000, DType::kI32, {kT, kK});
  a.weights = fake(0x3100000, DType::kF32, {kT, kK});
  a.gate_up = fake(0x100000000, DType::kBF16, {kE, 2 * kI, kH});
  a.down = fake(0x200000000, DType::kBF16, {kE, kH, kI});
  const size_t bytes = moe_workspace_bytes(kT, kH, kI, kE, kK);
  a.workspace = fake(0x4000000, DType::kBF16, {static_cast<int64_t>(bytes / 2)});
  return a;
}

TEST(MoeCheck, AcceptsValidArguments) {
  EXPECT_TRUE(check_moe_route(good_route()).is_ok()) << check_moe_route(good_route()).message();
  MoeRouteArgs r = good_route();
  r.per_expert_scale = Tensor{};
  r.logits = fake(0x1000000, DType::kBF16, {3, 128});
  r.logits.strides[0] = 136;  // padded rows
  EXPECT_TRUE(check_moe_route(r).is_ok()) << check_moe_route(r).message();
  EXPECT_TRUE(check_moe_experts(good_experts()).is_ok())
      << check_moe_experts(good_experts()).message();
  MoeExpertsArgs e = good_experts();
  e.out = fake(0x1000000, DType::kF32, {kT, kH});
  e.out.strides[0] = kH + 3;  // any row stride for out
  e.x.strides[0] = kH + 8;
  e.x.data = reinterpret_cast<void*>(0x2000000);
  EXPECT_TRUE(check_moe_experts(e).is_ok()) << check_moe_experts(e).message();
}

TEST(MoeCheck, DecodePathTakesFewRowsOnly) {
  MoeExpertsArgs a = good_experts();  // T 4 x k 8 = 32 rows: the grouped GEMMs
  EXPECT_FALSE(moe_experts_uses_gemv(a));
  for (int64_t T : {1, 2}) {
    a = good_experts();
    a.out = fake(0x1000000, DType::kBF16, {T, kH});
    a.x = fake(0x2000000, DType::kBF16, {T, kH});
    a.experts = fake(0x3000000, DType::kI32, {T, kK});
    a.weights = fake(0x3100000, DType::kF32, {T, kK});
    EXPECT_TRUE(moe_experts_uses_gemv(a)) << "T " << T;
  }
  a.experts = fake(0x3000000, DType::kI32, {1, 12});  // k 12 > kGemvMaxTopK
  a.weights = fake(0x3100000, DType::kF32, {1, 12});
  EXPECT_FALSE(moe_experts_uses_gemv(a));
  a = good_experts();
  a.x.dtype = DType::kF32;  // invalid arguments never take it
  EXPECT_FALSE(moe_experts_uses_gemv(a));
}

TEST(MoeCheck, WorkspaceBytes) {
  EXPECT_EQ(moe_workspace_bytes(0, kH, kI, kE, kK), 0u);
  const size_t one = moe_workspace_bytes(1, kH, kI, kE, kK);
  // At least the f32 expert outputs and the bf16 activations of T * k rows.
  EXPECT_GE(one, static_cast<size_t>(kK) * (kH * 4 + kI * 2));
  EXPECT_LT(moe_workspace_bytes(1, kH, kI, kE, kK), moe_workspace_bytes(2, kH, kI, kE, kK));
  EXPECT_GE(moe_workspace_bytes(256, kH, kI, kE, kK), static_cast<size_t>(256 * kK) * kH * 4);
  EXPECT_EQ(moe_workspace_bytes(int64_t{1} << 62, kH, kI, kE, kK), SIZE_MAX);
}

TEST(MoeCheck, RouteNamesTheBadArgument) {
  MoeRouteArgs a = good_route();
  a.logits.device = Device::kCpu;
  expect_invalid(check_moe_route(a), {"moe_route: logits is in host memory"});

  a = good_route();
  a.logits = fake(0x1000000, DType::kF32, {3, 2, 64});
  expect_invalid(check_moe_route(a), {"logits has shape [3, 2, 64]; expected [T, E]"});

  a = good_route();
  a.logits.dtype = DType::kI32;
  expect_invalid(check_moe_route(a), {"logits has dtype i32"});

  a = good_route();
  a.logits = fake(0x1000000, DType::kF32, {3, 600});
  expect_invalid(check_moe_route(a), {"600 experts", "1 to 512"});

  a = good_route();
  a.logits.strides[1] = 2;
  expect_invalid(check_moe_route(a), {"logits has stride 2 in its last dimension"});

  a = good_route();
  a.top_k = 33;
  expect_invalid(check_moe_route(a), {"top_k is 33"});

  a = good_route();
  a.top_k = 0;
  expect_invalid(check_moe_route(a), {"top_k is 0"});

  a = good_route();
  a.per_expert_scale = fake(0x2000000, DType::kF32, {64});
  expect_invalid(check_moe_route(a), {"per_expert_scale has shape [64]", "[128]"});

  a = good_route();
  a.out_experts = fake(0x3000000, DType::kF32, {3, 8});
  expect_invalid(check_moe_route(a), {"out_experts has dtype f32; expected i32"});

  a = good_route();
  a.out_weights = fake(0x4000000, DType::kF32, {3, 4});
  expect_invalid(check_moe_route(a), {"out_weights has shape [3, 4]", "[3, 8]"});

  a = good_route();
  a.out_weights.strides[0] = 16;
  a.out_weights.shape[0] = 3;
  expect_invalid(check_moe_route(a), {"out_weights", "not contiguous"});

  a = good_route();
  a.out_weights.data = reinterpret_cast<void*>(0x3000010);
  expect_invalid(check_moe_route(a), {"out_experts overlaps out_weights"});

  a = good_route();
  a.out_experts.data = reinterpret_cast<void*>(0x1000100);
  expect_invalid(check_moe_route(a), {"out_experts overlaps logits"});
}

TEST(MoeCheck, ExpertsNamesTheBadArgument) {
  MoeExpertsArgs a = good_experts();
  a.gate_up = fake(0x100000000, DType::kBF16, {kE, 2 * kI + 1, kH});
  expect_invalid(check_moe_experts(a), {"gate_up has shape", "2I"});

  a = good_experts();
  a.gate_up = fake(0x100000000, DType::kBF16, {kE, 2 * kI, 2820});
  expect_invalid(check_moe_experts(a), {"H = 2820; expected a positive multiple of 8"});

  a = good_experts();
  a.gate_up.dtype = DType::kF32;
  expect_invalid(check_moe_experts(a), {"gate_up has dtype f32; expected bf16"});

  a = good_experts();
  a.down = fake(0x200000000, DType::kBF16, {kE, kI, kH});
  expect_invalid(check_moe_experts(a), {"down has shape [128, 704, 2816]", "[128, 2816, 704]"});

  a = good_experts();
  a.down.data = reinterpret_cast<void*>(0x200000008);
  expect_invalid(check_moe_experts(a), {"down is not 16-byte aligned"});

  a = good_experts();
  a.experts = fake(0x3000000, DType::kI32, {kT, 40});
  expect_invalid(check_moe_experts(a), {"k = 40"});

  a = good_experts();
  a.experts.dtype = DType::kF32;
  expect_invalid(check_moe_experts(a), {"experts has dtype f32; expected i32"});

  a = good_experts();
  a.weights = fake(0x3100000, DType::kF32, {kT + 1, kK});
  expect_invalid(check_moe_experts(a), {"weights has shape [5, 8]", "[4, 8]"});

  a = good_experts();
  a.x = fake(0x2000000, DType::kF32, {kT, kH});
  expect_invalid(check_moe_experts(a), {"x has dtype f32; expected bf16"});

  a = good_experts();
  a.x.strides[0] = kH + 4;
  expect_invalid(check_moe_experts(a), {"x rows are not 16-byte aligned"});

  a = good_experts();
  a.x.data = reinterpret_cast<void*>(0x2000002);
  expect_invalid(check_moe_experts(a), {"x rows are not 16-byte aligned"});

  a = good_experts();
  a.x.device = Device::kCpu;
  expect_invalid(check_moe_experts(a), {"moe_experts: x is in host memory"});

  a = good_experts();
  a.out = fake(0x1000000, DType::kBF16, {kT, kH + 8});
  expect_invalid(check_moe_experts(a), {"out has shape [4, 2824]", "[4, 2816]"});

  a = good_experts();
  a.out.dtype = DType::kF16;
  expect_invalid(check_moe_experts(a), {"out has dtype f16"});

  a = good_experts();
  a.workspace.shape[0] -= 1;
  expect_invalid(check_moe_experts(a), {"workspace has", "expected at least"});

  a = good_experts();
  a.workspace = Tensor{};
  expect_invalid(check_moe_experts(a), {"workspace is undefined"});

  a = good_experts();
  a.workspace.data = reinterpret_cast<void*>(0x2000000);
  expect_invalid(check_moe_experts(a), {"workspace overlaps x"});

  a = good_experts();
  a.out.data = reinterpret_cast<void*>(0x2000000);
  expect_invalid(check_moe_experts(a), {"out overlaps x"});
}

TEST(MoeCheckDeathTest, LaunchersAbortNamingTheArgument) {
  MoeRouteArgs r = good_route();
  r.top_k = 0;
  EXPECT_DEATH(moe_route(r, nullptr), "moe_route: top_k is 0");
  MoeExpertsArgs a = good_experts();
  a.x.device = Device::kCpu;
  EXPECT_DEATH(moe_experts(a, nullptr), "moe_experts: x is in host memory");
}

}  // namespace
}  // namespace sluice::kernels::cuda
