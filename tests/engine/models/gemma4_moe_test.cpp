// The MoE block grouped by expert (engine/models/moe.h: route, permute, one GEMM pair per
// expert, weighted un-permute) against a plain per-token loop in double precision over the
// same weights: the moe_tiny fixture's own layers, random weights at its shapes and at
// 26B-like shapes (f32 and bf16), exact probability ties, every token on the same experts,
// experts with no tokens. Near-ties that f32 rounding may order differently from double are
// accepted only when the two probabilities agree to 1e-5 (relative).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "common/half.h"
#include "engine/models/model_config.h"
#include "engine/models/moe.h"
#include "engine/models/weight_binder.h"
#include "engine/weights/weight_source.h"
#include "test_util.h"

namespace sluice::models {
namespace {

using kernels::DType;
using kernels::Tensor;

constexpr double kNearTieRel = 1e-5;

// A weight held as its stored elements (f32 or bf16) plus the exact values widened to double.
struct HostWeight {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<double> exact;  // what the kernels read, widened

  Tensor view() {
    void* p =
        dtype == DType::kBF16 ? static_cast<void*>(bf16.data()) : static_cast<void*>(f32.data());
    Tensor t = Tensor::make(p, dtype, {shape[0]});
    t.ndim = static_cast<int>(shape.size());
    int64_t stride = 1;
    for (int d = t.ndim - 1; d >= 0; --d) {
      t.shape[d] = shape[d];
      t.strides[d] = stride;
      stride *= shape[d];
    }
    return t;
  }
};

HostWeight make_weight(std::vector<int64_t> shape, DType dtype, std::mt19937& rng, float lo,
                       float hi) {
  HostWeight w;
  w.dtype = dtype;
  w.shape = std::move(shape);
  const int64_t n =
      std::accumulate(w.shape.begin(), w.shape.end(), int64_t{1}, std::multiplies<>());
  std::uniform_real_distribution<float> u(lo, hi);
  w.exact.resize(n);
  if (dtype == DType::kBF16) {
    w.bf16.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      w.bf16[i] = f32_to_bf16(u(rng));
      w.exact[i] = bf16_to_f32(w.bf16[i]);
    }
  } else {
    w.f32.resize(n);
    for (int64_t i = 0; i < n; ++i) w.exact[i] = w.f32[i] = u(rng);
  }
  return w;
}

// Copies a bound tensor (f32 or bf16, contiguous) into a HostWeight.
HostWeight from_tensor(const Tensor& t) {
  HostWeight w;
  w.dtype = t.dtype;
  for (int d = 0; d < t.ndim; ++d) w.shape.push_back(t.shape[d]);
  const int64_t n = t.numel();
  w.exact.resize(n);
  if (t.dtype == DType::kBF16) {
    w.bf16.assign(t.ptr<const uint16_t>(), t.ptr<const uint16_t>() + n);
    for (int64_t i = 0; i < n; ++i) w.exact[i] = bf16_to_f32(w.bf16[i]);
  } else {
    w.f32.assign(t.ptr<const float>(), t.ptr<const float>() + n);
    for (int64_t i = 0; i < n; ++i) w.exact[i] = w.f32[i];
  }
  return w;
}

struct Layer {
  int64_t H = 0, E = 0, I = 0;
  int K = 0;
  HostWeight router_proj, router_scale, gate_up, down;  // [E,H], [H], [E,2I,H], [E,H,I]
  std::vector<float> per_expert_scale;                  // [E]

  MoeWeights weights() {
    return {router_proj.view(), router_scale.view(), per_expert_scale, gate_up.view(), down.view()};
  }
};

Layer random_layer(int64_t H, int64_t E, int K, int64_t I, DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  Layer L;
  L.H = H;
  L.E = E;
  L.I = I;
  L.K = K;
  // Router rows wide enough that the probabilities spread; experts scaled +-sqrt(3 / fan_in)
  // so their outputs stay O(1).
  L.router_proj = make_weight({E, H}, dtype, rng, -2.0f, 2.0f);
  L.router_scale = make_weight({H}, DType::kF32, rng, 0.5f, 1.5f);
  const float a_in = std::sqrt(3.0f / static_cast<float>(H)),
              a_mid = std::sqrt(3.0f / static_cast<float>(I));
  L.gate_up = make_weight({E, 2 * I, H}, dtype, rng, -a_in, a_in);
  L.down = make_weight({E, H, I}, dtype, rng, -a_mid, a_mid);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  L.per_expert_scale.resize(E);
  for (float& s : L.per_expert_scale) s = u(rng);
  return L;
}

std::vector<float> random_rows(int64_t T, int64_t H, uint32_t seed, float lo = -2.0f,
                               float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(T * H);
  for (float& x : v) x = u(rng);
  return v;
}

double gelu_tanh(double z) {
  return 0.5 * z * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
}

// The router of one token in double: probabilities over all experts.
std::vector<double> ref_probs(const Layer& L, const float* x, float eps) {
  const int64_t H = L.H, E = L.E;
  double ss = 0;
  for (int64_t h = 0; h < H; ++h) ss += static_cast<double>(x[h]) * x[h];
  const double inv_rms = 1.0 / std::sqrt(ss / H + eps);
  std::vector<double> r(H), p(E);
  for (int64_t h = 0; h < H; ++h)
    r[h] = x[h] * inv_rms * L.router_scale.exact[h] / std::sqrt(double(H));
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t e = 0; e < E; ++e) {
    double z = 0;
    for (int64_t h = 0; h < H; ++h) z += r[h] * L.router_proj.exact[e * H + h];
    p[e] = z;
    mx = std::max(mx, z);
  }
  double sum = 0;
  for (double& z : p) sum += (z = std::exp(z - mx));
  for (double& z : p) z /= sum;
  return p;
}

// Top-k by probability, ties to the lower index (the documented rule).
std::vector<int32_t> ref_top_k(const std::vector<double>& p, int K) {
  std::vector<int32_t> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  idx.resize(K);
  return idx;
}

// One token's output for the experts `chosen`, with the reference weights.
void ref_token(const Layer& L, const std::vector<double>& p, const std::vector<int32_t>& chosen,
               const float* in, double* out, std::vector<double>* weights) {
  const int64_t H = L.H, I = L.I;
  double psum = 0;
  for (int32_t e : chosen) psum += p[e];
  std::fill(out, out + H, 0.0);
  weights->clear();
  std::vector<double> act(I);
  for (int32_t e : chosen) {
    const double w = p[e] / psum * L.per_expert_scale[e];
    weights->push_back(w);
    const double* gu = L.gate_up.exact.data() + e * 2 * I * H;
    for (int64_t i = 0; i < I; ++i) {
      double g = 0, u = 0;
      for (int64_t h = 0; h < H; ++h) {
        g += gu[i * H + h] * in[h];
        u += gu[(I + i) * H + h] * in[h];
      }
      act[i] = gelu_tanh(g) * u;
    }
    const double* dn = L.down.exact.data() + e * H * I;
    for (int64_t h = 0; h < H; ++h) {
      double y = 0;
      for (int64_t i = 0; i < I; ++i) y += dn[h * I + i] * act[i];
      out[h] += w * y;
    }
  }
}

// Counts the matmuls the block issues and the rows of each, through a copy of the CPU table.
struct MatmulLog {
  static std::vector<int64_t>& rows() {
    static std::vector<int64_t> r;
    return r;
  }
  static void matmul(const kernels::MatmulArgs& a) {
    rows().push_back(a.a.dim(0));
    kernels::cpu_ops().matmul(a);
  }
  static kernels::OpTable table() {
    kernels::OpTable t = kernels::cpu_ops();
    t.matmul = &MatmulLog::matmul;
    return t;
  }
};

struct RunStats {
  int near_ties = 0;
  double rel_err = 0;  // ||out - ref|| / ||ref||
  double max_abs_err = 0;
  std::vector<int64_t> tokens_per_expert;
};

// Runs moe_forward on T tokens and checks it against the per-token reference: routing
// (indices best first, weights), the grouping by expert, the GEMM count and rows, the output.
void check_block(Layer& L, const std::vector<float>& x, const std::vector<float>& in,
                 double out_tol, float eps, RunStats& st) {
  const int64_t T = static_cast<int64_t>(x.size()) / L.H, H = L.H, E = L.E;
  const int K = L.K;
  MoeScratch scratch;
  MoeWorkspace ws = scratch.reserve(T, H, static_cast<int>(E), K, L.I);
  // Poison every buffer the block writes.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto s : {ws.probs, ws.top_k_weight, ws.routed_weight, ws.rows_in, ws.rows_gate_up,
                 ws.rows_act, ws.rows_out}) {
    std::fill(s.begin(), s.end(), nan);
  }
  for (auto s : {ws.top_k_index, ws.expert_begin, ws.expert_fill, ws.routed_token})
    std::fill(s.begin(), s.end(), -7);
  std::vector<float> out(T * H, nan);
  const kernels::OpTable ops = MatmulLog::table();
  MatmulLog::rows().clear();
  moe_forward(ops, L.weights(), K, eps,
              Tensor::make(const_cast<float*>(x.data()), DType::kF32, {T, H}),
              Tensor::make(const_cast<float*>(in.data()), DType::kF32, {T, H}),
              Tensor::make(out.data(), DType::kF32, {T, H}), ws);

  st = RunStats{};
  st.tokens_per_expert.assign(E, 0);
  std::vector<double> ref(T * H);
  std::vector<double> ref_w;
  for (int64_t t = 0; t < T; ++t) {
    SCOPED_TRACE(::testing::Message() << "token " << t);
    const std::vector<double> p = ref_probs(L, x.data() + t * H, eps);
    const std::vector<int32_t> want = ref_top_k(p, K);
    std::vector<int32_t> got(ws.top_k_index.begin() + t * K, ws.top_k_index.begin() + (t + 1) * K);
    for (int j = 0; j < K; ++j) {
      ASSERT_GE(got[j], 0);
      ASSERT_LT(got[j], E);
      if (got[j] == want[j]) continue;
      // Only a near tie may be ordered differently in f32 than in double.
      const double a = p[got[j]], b = p[want[j]];
      ASSERT_LE(std::abs(a - b), kNearTieRel * std::max(a, b))
          << "slot " << j << ": expert " << got[j] << " (p " << a << ") chosen, reference "
          << want[j] << " (p " << b << ")";
      ++st.near_ties;
    }
    std::vector<int32_t> sorted = got;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_TRUE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end())
        << "an expert chosen twice";
    // The output for the experts actually chosen (identical to `want` barring near ties).
    ref_token(L, p, got, in.data() + t * H, ref.data() + t * H, &ref_w);
    for (int j = 0; j < K; ++j) {
      EXPECT_NEAR(ws.top_k_weight[t * K + j], ref_w[j], 1e-5 * std::abs(ref_w[j]) + 1e-7)
          << "weight " << j;
      ++st.tokens_per_expert[got[j]];
    }
  }
  // Permute: expert e's rows are its tokens, ascending, at [expert_begin[e], expert_begin[e+1]).
  int used_experts = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int32_t b = ws.expert_begin[e], n = ws.expert_begin[e + 1] - b;
    EXPECT_EQ(n, st.tokens_per_expert[e]) << "expert " << e;
    for (int32_t r = 1; r < n; ++r) EXPECT_LT(ws.routed_token[b + r - 1], ws.routed_token[b + r]);
    for (int32_t r = 0; r < n; ++r) {
      const int32_t t = ws.routed_token[b + r];
      const auto* row = ws.top_k_index.data() + t * K;
      EXPECT_NE(std::find(row, row + K, e), row + K)
          << "token " << t << " filed under expert " << e;
    }
    used_experts += n > 0;
  }
  EXPECT_EQ(ws.expert_begin[E], T * K);
  // One router matmul over all T rows, then one gate/up and one down matmul per expert that
  // has tokens, each over exactly that expert's rows, in expert order.
  std::vector<int64_t> want_rows{T};
  for (int64_t e = 0; e < E; ++e) {
    if (st.tokens_per_expert[e] == 0) continue;
    want_rows.push_back(st.tokens_per_expert[e]);
    want_rows.push_back(st.tokens_per_expert[e]);
  }
  EXPECT_EQ(MatmulLog::rows(), want_rows);
  EXPECT_EQ(static_cast<int>(want_rows.size()), 1 + 2 * used_experts);

  double num = 0, den = 0;
  for (int64_t i = 0; i < T * H; ++i) {
    ASSERT_TRUE(std::isfinite(out[i])) << "out[" << i << "]";
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    st.max_abs_err = std::max(st.max_abs_err, std::abs(d));
  }
  st.rel_err = std::sqrt(num / std::max(den, 1e-300));
  EXPECT_LE(st.rel_err, out_tol) << "max |diff| " << st.max_abs_err;
}

RunStats run_and_check(Layer& L, const std::vector<float>& x, const std::vector<float>& in,
                       double out_tol, float eps = 1e-6f) {
  RunStats st;
  check_block(L, x, in, out_tol, eps, st);
  return st;
}

// f32 weights: the block's f32 arithmetic against double; bf16 weights are read exactly.
constexpr double kOutTol = 3e-6;  // measured up to 5.8e-7 (AVX2)

TEST(Gemma4MoeBlock, FixtureLayersMatchPerTokenReference) {
  const std::string dir = testing::fixture_path("gemma4_moe_tiny");
  auto cfg = parse_hf_config(testing::read_file(dir + "/config.json"), dir);
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  auto src = weights::WeightSource::open_safetensors_dir(dir);
  ASSERT_TRUE(src.is_ok()) << src.status().to_string();
  WeightBinder b(std::shared_ptr<weights::WeightSource>(std::move(*src)), /*keep_bf16=*/true);
  const ModelConfig& c = *cfg;
  const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  for (int layer : {0, c.num_layers - 1}) {
    SCOPED_TRACE(::testing::Message() << "layer " << layer);
    Layer L;
    L.H = H;
    L.E = E;
    L.I = I;
    L.K = c.top_k_experts;
    auto get = [&](StatusOr<Tensor> t) {
      EXPECT_TRUE(t.is_ok()) << t.status().to_string();
      return t.is_ok() ? from_tensor(*t) : HostWeight{};
    };
    L.router_proj = get(b.matrix(TensorRole::kRouterProj, layer, E, H));
    L.router_scale = get(b.vector(TensorRole::kRouterScale, layer, H));
    L.gate_up = get(b.tensor(TensorRole::kExpertsGateUp, layer, {E, 2 * I, H}));
    L.down = get(b.tensor(TensorRole::kExpertsDown, layer, {E, H, I}));
    auto pes = b.vector(TensorRole::kRouterPerExpertScale, layer, E);
    ASSERT_TRUE(pes.is_ok());
    L.per_expert_scale.assign(pes->ptr<const float>(), pes->ptr<const float>() + E);
    for (int64_t T : {1, 3, 17, 64}) {
      SCOPED_TRACE(::testing::Message() << "T " << T);
      RunStats st = run_and_check(L, random_rows(T, H, 100 + T), random_rows(T, H, 200 + T),
                                  kOutTol, c.rms_norm_eps);
      EXPECT_LE(st.near_ties, 0);
    }
  }
}

struct Shape {
  int64_t H, E;
  int K;
  int64_t I;
  DType dtype;
};

class Gemma4MoeRandom : public ::testing::TestWithParam<Shape> {};

TEST_P(Gemma4MoeRandom, MatchesPerTokenReference) {
  const Shape s = GetParam();
  Layer L = random_layer(s.H, s.E, s.K, s.I, s.dtype, 7 + static_cast<uint32_t>(s.H + s.E));
  int near_ties = 0;
  for (int64_t T : {1, 2, 5, 33, 130}) {
    SCOPED_TRACE(::testing::Message() << "T " << T);
    RunStats st =
        run_and_check(L, random_rows(T, s.H, 300 + T), random_rows(T, s.H, 400 + T), kOutTol);
    near_ties += st.near_ties;
    if (T >= 33) {
      // Enough tokens that several share an expert.
      EXPECT_GT(*std::max_element(st.tokens_per_expert.begin(), st.tokens_per_expert.end()), 1);
    }
  }
  EXPECT_LE(near_ties, 2);  // random probabilities: a near tie is rare
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Gemma4MoeRandom,
    ::testing::Values(Shape{64, 8, 2, 32, DType::kF32},  // moe_tiny
                      Shape{256, 16, 4, 64,
                            DType::kF32},  // 26B-like (H 2816, E 128, k 8 scaled down)
                      Shape{256, 16, 4, 64, DType::kBF16},  // as the 26B checkpoint stores it
                      Shape{96, 5, 5, 24, DType::kF32},     // k = E: every expert on every token
                      Shape{40, 12, 1, 8, DType::kBF16}),   // top-1, odd sizes
    [](const ::testing::TestParamInfo<Shape>& p) {
      const Shape& s = p.param;
      return fmt::format("H{}_E{}_K{}_I{}_{}", s.H, s.E, s.K, s.I,
                         s.dtype == DType::kBF16 ? "bf16" : "f32");
    });

// Zero router scale: every logit is exactly 0, every probability 1/E, so the top-k is the
// first k experts (ties go to the lower index) with weight per_expert_scale / k; all tokens
// share those experts and the rest get none.
TEST(Gemma4MoeBlock, AllTiedPicksLowestIndices) {
  Layer L = random_layer(256, 16, 4, 64, DType::kF32, 11);
  std::fill(L.router_scale.f32.begin(), L.router_scale.f32.end(), 0.0f);
  std::fill(L.router_scale.exact.begin(), L.router_scale.exact.end(), 0.0);
  const int64_t T = 9;
  RunStats st = run_and_check(L, random_rows(T, L.H, 1), random_rows(T, L.H, 2), kOutTol);
  EXPECT_EQ(st.near_ties, 0);
  for (int64_t e = 0; e < L.E; ++e)
    EXPECT_EQ(st.tokens_per_expert[e], e < L.K ? T : 0) << "expert " << e;
}

// Only some experts have router rows; the rest have zero rows and so exactly equal
// probabilities. With positive inputs and rows, the live experts win every token; the slots
// left over go to the lowest-indexed zero-row experts. Everything else gets no tokens.
TEST(Gemma4MoeBlock, PartialTiesAndSharedExperts) {
  for (const std::vector<int32_t>& live :
       {std::vector<int32_t>{13, 6, 9, 2}, std::vector<int32_t>{11, 5}}) {
    Layer L = random_layer(256, 16, 4, 64, DType::kF32, 12);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.1f, 1.0f);
    for (int64_t e = 0; e < L.E; ++e) {
      const bool is_live = std::find(live.begin(), live.end(), e) != live.end();
      for (int64_t h = 0; h < L.H; ++h) {
        const float v = is_live ? u(rng) : 0.0f;
        L.router_proj.f32[e * L.H + h] = v;
        L.router_proj.exact[e * L.H + h] = v;
      }
    }
    const int64_t T = 21;
    RunStats st =
        run_and_check(L, random_rows(T, L.H, 3, 0.1f, 2.0f), random_rows(T, L.H, 4), kOutTol);
    std::vector<int32_t> want = live;
    for (int32_t e = 0; static_cast<int>(want.size()) < L.K; ++e) {
      if (std::find(live.begin(), live.end(), e) == live.end()) want.push_back(e);
    }
    for (int64_t e = 0; e < L.E; ++e) {
      const bool chosen = std::find(want.begin(), want.end(), e) != want.end();
      EXPECT_EQ(st.tokens_per_expert[e], chosen ? T : 0) << "expert " << e;
    }
  }
}

// Two tokens identical: the same experts, the same weights and bit-identical outputs.
TEST(Gemma4MoeBlock, RepeatedTokenGivesIdenticalRows) {
  Layer L = random_layer(64, 8, 2, 32, DType::kF32, 21);
  const int64_t T = 6, H = L.H;
  std::vector<float> x = random_rows(T, H, 8), in = random_rows(T, H, 9);
  std::copy_n(x.data(), H, x.data() + 4 * H);
  std::copy_n(in.data(), H, in.data() + 4 * H);
  MoeScratch scratch;
  MoeWorkspace ws = scratch.reserve(T, H, 8, 2, 32);
  std::vector<float> out(T * H);
  moe_forward(kernels::cpu_ops(), L.weights(), 2, 1e-6f,
              Tensor::make(x.data(), DType::kF32, {T, H}),
              Tensor::make(in.data(), DType::kF32, {T, H}),
              Tensor::make(out.data(), DType::kF32, {T, H}), ws);
  EXPECT_EQ(ws.top_k_index[0], ws.top_k_index[4 * 2]);
  EXPECT_EQ(ws.top_k_index[1], ws.top_k_index[4 * 2 + 1]);
  EXPECT_TRUE(std::equal(out.begin(), out.begin() + H, out.begin() + 4 * H));
  run_and_check(L, x, in, kOutTol);
}

}  // namespace
}  // namespace sluice::models
