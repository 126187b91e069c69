// The fused attention prologue (kernels/cuda/qkv_prepare.h) against the CPU backend's
// rms_norm and rope (kernels/ops.h) on f32 copies of the same values, rounded once to each
// destination's dtype: Gemma 3 (QK-norm in the 1 + w form, full RoPE), Gemma 4 sliding
// (V-norm), Gemma 4 global (proportional RoPE, K=V: v is the raw k), a KV-shared layer
// (q only), over one fused QKV buffer (strided head views), with f32 and bf16 activations,
// caches and weights, slots of -1, and caches poisoned with NaN. The argument checks run
// everywhere; the kernel tests skip cleanly without a device.

#include "kernels/cuda/qkv_prepare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "kernels/ops.h"  // cpu_ops(): the reference

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

struct PrepareCase {
  const char* name;
  int64_t num_tokens, nq, nkv, d;
  int num_pairs, pair_offset, freq_dim;
  float theta;
  bool one_plus, v_norm, k_eq_v, q_only;
  DType act, cache, weight;
};

constexpr PrepareCase kCases[] = {
    {"gemma3 270m", 5, 4, 1, 256, 128, 128, 256, 1e4f, true, false, false, false, DType::kBF16,
     DType::kBF16, DType::kBF16},
    {"gemma4 sliding", 7, 16, 8, 256, 128, 128, 256, 1e4f, false, true, false, false, DType::kBF16,
     DType::kBF16, DType::kBF16},
    {"gemma4 global, K=V, proportional rope", 6, 16, 2, 512, 64, 256, 512, 1e6f, false, true, true,
     false, DType::kBF16, DType::kBF16, DType::kF32},
    {"kv-shared layer (q only)", 3, 8, 1, 512, 64, 256, 512, 1e6f, false, false, false, true,
     DType::kBF16, DType::kBF16, DType::kBF16},
    {"f32 activations and cache", 4, 4, 2, 128, 64, 64, 128, 1e4f, true, false, false, false,
     DType::kF32, DType::kF32, DType::kF32},
    {"bf16 activations into an f32 cache", 9, 2, 2, 64, 16, 32, 64, 100.0f, false, true, false,
     false, DType::kBF16, DType::kF32, DType::kBF16},
};

// Heads [h0, h0 + n) of a [T, heads, d] buffer, as a strided [T, n, d] view.
Tensor heads(const TestTensor& t, int64_t h0, int64_t n) {
  Tensor v = t.view();
  v.data = static_cast<uint8_t*>(v.data) + h0 * v.strides[1] * dtype_size(v.dtype);
  v.shape[1] = n;
  return v;
}

RopeArgs rope_args(const PrepareCase& c, const Tensor& x, const Tensor& positions) {
  return {x, positions, c.theta, 1.0f, c.num_pairs, c.pair_offset, c.freq_dim};
}

// rope(rms_norm(x; w)) or rms_norm alone on the CPU, over [T, n, d] f32 values.
std::vector<float> cpu_prepare(std::vector<float> x, int64_t num_tokens, int64_t n, int64_t d,
                               std::vector<float>* weight, const PrepareCase& c, bool norm,
                               bool rotate, std::vector<int32_t> positions) {
  Tensor t = Tensor::make(x.data(), DType::kF32, {num_tokens * n, d});
  Tensor w = weight ? Tensor::make(weight->data(), DType::kF32, {d}) : Tensor{};
  if (norm) cpu_ops().rms_norm({t, t, w, 1e-6f, c.one_plus});
  if (rotate) {
    cpu_ops().rope(rope_args(c, Tensor::make(x.data(), DType::kF32, {num_tokens, n, d}),
                             Tensor::make(positions.data(), DType::kI32, {num_tokens})));
  }
  return x;
}

void run_case(const PrepareCase& c, std::mt19937& rng) {
  SCOPED_TRACE(c.name);
  const int64_t T = c.num_tokens, nq = c.nq, nkv = c.nkv, d = c.d;
  const int64_t width = nq + 2 * nkv;
  const int64_t num_slots = 4 * T;
  TestTensor qkv(c.act, {T, width, d});
  qkv.fill_random(rng, -3.0f, 3.0f);
  TestTensor q_norm(c.weight, {d}), k_norm(c.weight, {d});
  q_norm.fill_random(rng, c.one_plus ? -0.5f : 0.5f, c.one_plus ? 0.5f : 1.5f);
  k_norm.fill_random(rng, c.one_plus ? -0.5f : 0.5f, c.one_plus ? 0.5f : 1.5f);
  TestTensor k_cache(c.cache, {num_slots, nkv, d}), v_cache(c.cache, {num_slots, nkv, d});
  k_cache.upload();  // NaN everywhere: untouched slots must stay NaN
  v_cache.upload();

  std::vector<int32_t> positions(T), slots(T), perm(num_slots);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t t = 0; t < T; ++t) {
    positions[t] = t == T - 1 ? 262143 : static_cast<int32_t>(rng() % 9000);
    slots[t] = t % 3 == 1 ? -1 : perm[t];
  }
  DeviceBuffer d_positions(T * 4), d_slots(T * 4);
  d_positions.upload(positions.data());
  d_slots.upload(slots.data());

  // f32 host copies of the three parts.
  auto part = [&](int64_t h0, int64_t n) {
    std::vector<float> v(T * n * d);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < n; ++h) {
        for (int64_t e = 0; e < d; ++e) v[(t * n + h) * d + e] = qkv.at(t * width + h0 + h, e);
      }
    }
    return v;
  };
  std::vector<float> qw(q_norm.host().begin(), q_norm.host().begin() + d);
  std::vector<float> kw(k_norm.host().begin(), k_norm.host().begin() + d);
  const std::vector<float> q_ref =
      cpu_prepare(part(0, nq), T, nq, d, &qw, c, true, true, positions);
  const std::vector<float> k_ref =
      cpu_prepare(part(nq, nkv), T, nkv, d, &kw, c, true, true, positions);
  const std::vector<float> v_ref = cpu_prepare(part(c.k_eq_v ? nq : nq + nkv, nkv), T, nkv, d,
                                               nullptr, c, c.v_norm, false, positions);
  const std::vector<float> before = qkv.host();

  QkvPrepareArgs a;
  a.q = heads(qkv, 0, nq);
  a.q_norm = q_norm.view();
  a.rope =
      rope_args(c, Tensor{}, Tensor::make(d_positions.data(), DType::kI32, {T}, Device::kCuda));
  a.one_plus_weight = c.one_plus;
  a.v_norm = c.v_norm;
  if (!c.q_only) {
    a.k = heads(qkv, nq, nkv);
    a.v = c.k_eq_v ? a.k : heads(qkv, nq + nkv, nkv);
    a.k_norm = k_norm.view();
    a.k_cache = k_cache.view();
    a.v_cache = v_cache.view();
    a.slots = Tensor::make(d_slots.data(), DType::kI32, {T}, Device::kCuda);
  }
  ASSERT_TRUE(check_qkv_prepare(a).is_ok()) << check_qkv_prepare(a).message();
  qkv_prepare(a, nullptr);
  SLUICE_CUDA_CHECK(cudaGetLastError());
  qkv.download();
  k_cache.download();
  v_cache.download();

  // q in place, k and v heads of the buffer untouched.
  const Tolerance tol =
      tolerance_for(c.act == DType::kBF16 || c.cache == DType::kBF16 ? DType::kBF16 : DType::kF32);
  double err2 = 0.0, ref2 = 0.0;
  int64_t bad = 0, changed = 0;
  auto compare = [&](float got, float want_f32, DType t, const char* what, int64_t where) {
    const double want = round_to(want_f32, t);
    err2 += (got - want) * (got - want);
    ref2 += want * want;
    if (!(std::fabs(got - want) <= tol.rtol * std::fabs(want) + tol.atol * 4.0) && bad++ < 3) {
      ADD_FAILURE() << what << " element " << where << ": got " << got << ", want " << want;
    }
  };
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < width; ++h) {
      for (int64_t e = 0; e < d; ++e) {
        const int64_t row = t * width + h;
        if (h < nq) {
          compare(qkv.at(row, e), q_ref[(t * nq + h) * d + e], c.act, "q", row * d + e);
        } else {
          changed += qkv.at(row, e) != before[qkv.index(row, e)];
        }
      }
    }
  }
  EXPECT_EQ(changed, 0) << "k or v elements of the QKV buffer were written";
  int64_t wrong_untouched = 0;
  for (int64_t s = 0; s < num_slots; ++s) {
    int64_t token = -1;
    for (int64_t t = 0; t < T; ++t) token = slots[t] == s ? t : token;
    for (int64_t j = 0; j < nkv; ++j) {
      for (int64_t e = 0; e < d; ++e) {
        const float got_k = k_cache.at(s * nkv + j, e), got_v = v_cache.at(s * nkv + j, e);
        if (token < 0 || c.q_only) {
          wrong_untouched += !std::isnan(got_k) || !std::isnan(got_v);
          continue;
        }
        const int64_t i = (token * nkv + j) * d + e;
        compare(got_k, k_ref[i], c.cache, "k_cache", i);
        compare(got_v, v_ref[i], c.cache, "v_cache", i);
      }
    }
  }
  EXPECT_EQ(wrong_untouched, 0) << "cache elements written for skipped tokens or free slots";
  EXPECT_EQ(bad, 0);
  const double rel = std::sqrt(err2 / std::max(ref2, 1e-300));
  EXPECT_LE(rel, tol.max_rel);
  std::printf("[qkv_prepare] %s: rel %.3g\n", c.name, rel);
}

TEST(QkvPrepareGpu, MatchesNormAndRopeReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(9301);
  for (const PrepareCase& c : kCases) run_case(c, rng);
}

// ---- Argument checks: no device needed.

QkvPrepareArgs good_prepare() {
  // 4 tokens of a fused [4, 16 + 2 + 2, 512] bf16 QKV row buffer at 0x10000000.
  constexpr int64_t kW = 20 * 512;
  QkvPrepareArgs a;
  a.q = fake(0x10000000, DType::kBF16, {4, 16, 512});
  a.q.strides = {kW, 512, 1};
  a.k = a.q;
  a.k.data = reinterpret_cast<void*>(0x10000000 + 16 * 512 * 2);
  a.k.shape = {4, 2, 512};
  a.v = a.k;
  a.v.data = reinterpret_cast<void*>(0x10000000 + 18 * 512 * 2);
  a.q_norm = fake(0x20000000, DType::kBF16, {512});
  a.k_norm = fake(0x20001000, DType::kBF16, {512});
  a.rope = {Tensor{}, fake(0x30000000, DType::kI32, {4}), 1e6f, 1.0f, 64, 256, 512};
  a.slots = fake(0x30001000, DType::kI32, {4});
  a.k_cache = fake(0x40000000, DType::kBF16, {64, 2, 512});
  a.v_cache = fake(0x50000000, DType::kBF16, {64, 2, 512});
  a.v_norm = true;
  return a;
}

TEST(QkvPrepareCheck, AcceptsFusedViews) {
  QkvPrepareArgs a = good_prepare();
  EXPECT_TRUE(check_qkv_prepare(a).is_ok()) << check_qkv_prepare(a).message();
  a.v = a.k;  // K=V
  EXPECT_TRUE(check_qkv_prepare(a).is_ok()) << check_qkv_prepare(a).message();
  a = good_prepare();
  a.k = a.v = a.k_cache = a.v_cache = a.slots = Tensor{};  // q only
  EXPECT_TRUE(check_qkv_prepare(a).is_ok()) << check_qkv_prepare(a).message();
}

TEST(QkvPrepareCheck, NamesTheBadArgument) {
  QkvPrepareArgs a = good_prepare();
  a.rope.num_pairs = 300;
  expect_invalid(check_qkv_prepare(a), {"qkv_prepare: (as rope of q)", "num_pairs 300"});

  a = good_prepare();
  a.q_norm = fake(0x20000000, DType::kBF16, {256});
  expect_invalid(check_qkv_prepare(a), {"(as rms_norm of q)", "weight has shape [256]"});

  a = good_prepare();
  a.v = Tensor{};
  expect_invalid(check_qkv_prepare(a), {"one of k and v is undefined"});

  a = good_prepare();
  a.k = a.v = Tensor{};
  expect_invalid(check_qkv_prepare(a), {"k and v are undefined but a cache or slots is given"});

  a = good_prepare();
  a.slots = fake(0x30001000, DType::kI32, {3});
  expect_invalid(check_qkv_prepare(a), {"(as cache_write)", "slots has shape [3]"});

  a = good_prepare();
  a.k_cache = fake(0x40000000, DType::kBF16, {64, 2, 256});
  a.v_cache = fake(0x50000000, DType::kBF16, {64, 2, 256});
  expect_invalid(check_qkv_prepare(a), {"(as cache_write)", "k_cache"});

  a = good_prepare();
  a.k = a.q;  // the q heads themselves
  a.k.shape = {4, 2, 512};
  a.v = a.k;
  expect_invalid(check_qkv_prepare(a), {"q overlaps k"});

  a = good_prepare();  // 16 + 2 * 300000 head rows: more CTAs than grid y holds
  a.k = a.v = fake(0x1000000000, DType::kBF16, {4, 300000, 512});
  a.k_cache = fake(0x2000000000, DType::kBF16, {64, 300000, 512});
  a.v_cache = fake(0x3000000000, DType::kBF16, {64, 300000, 512});
  expect_invalid(check_qkv_prepare(a), {"600016 head rows", "expected at most"});

  a = good_prepare();
  a.q = fake(0x10000000, DType::kBF16, {4, 16, 2048});
  a.q_norm = fake(0x20000000, DType::kBF16, {2048});
  a.k = a.v = a.k_cache = a.v_cache = a.slots = Tensor{};
  expect_invalid(check_qkv_prepare(a), {"head_dim <= 1024"});
}

}  // namespace
}  // namespace sluice::kernels::cuda
