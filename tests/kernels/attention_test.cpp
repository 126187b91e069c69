// attention against a double-precision reference: GQA groups 1/2/4, sliding windows smaller
// than the sequence, soft-cap on and off, chunked prefill (T queries at positions S-T..S-1),
// decode, key counts past one chunk (the running-max rescale), strided views.

#include <limits>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

struct Case {
  int64_t T, S, nq, nkv, d;
  int window = 0;
  float softcap = 0.0f;
  float scale = 1.0f;
};

std::string describe(const Case& c) {
  return "T=" + std::to_string(c.T) + " S=" + std::to_string(c.S) + " nq=" + std::to_string(c.nq) +
         " nkv=" + std::to_string(c.nkv) + " d=" + std::to_string(c.d) +
         " window=" + std::to_string(c.window) + " softcap=" + std::to_string(c.softcap);
}

// Plain attention in double, straight from the contract in kernels/ops.h.
std::vector<double> reference(const Case& c, const float* q, int64_t q_s0, int64_t q_s1,
                              const float* k, const float* v, int64_t kv_s0, int64_t kv_s1,
                              const std::vector<int32_t>& pos) {
  std::vector<double> out(static_cast<size_t>(c.T * c.nq * c.d), 0.0);
  const int64_t group = c.nq / c.nkv;
  for (int64_t t = 0; t < c.T; ++t) {
    for (int64_t h = 0; h < c.nq; ++h) {
      const int64_t g = h / group;
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t j = 0; j < c.S; ++j) {
        const bool visible = j <= pos[t] && (c.window == 0 || j > pos[t] - c.window);
        if (!visible) continue;
        double s = 0.0;
        for (int64_t i = 0; i < c.d; ++i) {
          s += static_cast<double>(q[t * q_s0 + h * q_s1 + i]) * k[j * kv_s0 + g * kv_s1 + i];
        }
        s *= c.scale;
        if (c.softcap > 0.0f) s = c.softcap * std::tanh(s / c.softcap);
        scores.push_back(s);
        keys.push_back(j);
      }
      double max = -std::numeric_limits<double>::infinity();
      for (double s : scores) max = std::max(max, s);
      double sum = 0.0;
      for (double& s : scores) sum += (s = std::exp(s - max));
      for (size_t n = 0; n < keys.size(); ++n) {
        for (int64_t i = 0; i < c.d; ++i) {
          out[(t * c.nq + h) * c.d + i] += scores[n] / sum * v[keys[n] * kv_s0 + g * kv_s1 + i];
        }
      }
    }
  }
  return out;
}

class AttentionTest : public IsaTest {
 protected:
  // Contiguous q/k/v; queries at positions S-T..S-1 (chunked prefill), shuffled when asked.
  double run_case(const Case& c, uint32_t seed, float magnitude = 1.0f) {
    std::vector<float> q =
        random_floats(static_cast<size_t>(c.T * c.nq * c.d), seed, -magnitude, magnitude);
    std::vector<float> k =
        random_floats(static_cast<size_t>(c.S * c.nkv * c.d), seed + 1, -magnitude, magnitude);
    std::vector<float> v = random_floats(static_cast<size_t>(c.S * c.nkv * c.d), seed + 2);
    std::vector<int32_t> pos(static_cast<size_t>(c.T));
    for (int64_t t = 0; t < c.T; ++t) pos[t] = static_cast<int32_t>(c.S - c.T + t);
    std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
    AttentionArgs args;
    args.q = Tensor::make(q.data(), DType::kF32, {c.T, c.nq, c.d});
    args.k = Tensor::make(k.data(), DType::kF32, {c.S, c.nkv, c.d});
    args.v = Tensor::make(v.data(), DType::kF32, {c.S, c.nkv, c.d});
    args.out = Tensor::make(out.data(), DType::kF32, {c.T, c.nq, c.d});
    args.q_positions = Tensor::make(pos.data(), DType::kI32, {c.T});
    args.scale = c.scale;
    args.window = c.window;
    args.softcap = c.softcap;
    ops().attention(args);
    return rel_error(
        out, reference(c, q.data(), c.nq * c.d, c.d, k.data(), v.data(), c.nkv * c.d, c.d, pos));
  }
};

TEST_P(AttentionTest, GroupsWindowsSoftcapAndOffsets) {
  uint32_t seed = 100;
  for (int64_t nkv : {1, 2}) {
    for (int64_t group : {1, 2, 4}) {
      for (int64_t d : {1, 7, 16, 33, 64}) {
        for (int window : {0, 3, 17}) {
          for (float softcap : {0.0f, 2.5f}) {
            for (auto [T, S] : {std::pair<int64_t, int64_t>{1, 1}, {1, 40}, {5, 40}, {23, 23}}) {
              Case c{T, S, nkv * group, nkv, d, window, softcap, 0.3f};
              ASSERT_LE(run_case(c, seed++), kF32Tolerance) << describe(c);
            }
          }
        }
      }
    }
  }
}

TEST_P(AttentionTest, GemmaHeadDimsAndLongContexts) {
  // Keys past one chunk (256) with peaky scores: the running maximum changes between chunks.
  const Case cases[] = {
      {1, 700, 4, 1, 256, 0, 0.0f, 0.0625f},    // Gemma 3 270M decode
      {9, 600, 4, 1, 256, 512, 0.0f, 0.0625f},  // chunked prefill, window 512
      {3, 300, 8, 1, 512, 0, 0.0f, 1.0f},       // Gemma 4 global head dim, scale 1
      {2, 520, 2, 2, 256, 100, 30.0f, 1.0f},    // softcap with large scores
  };
  uint32_t seed = 500;
  for (const Case& c : cases) {
    ASSERT_LE(run_case(c, seed++, 1.5f), kF32Tolerance) << describe(c);
  }
}

TEST_P(AttentionTest, StridedViewsAndUnorderedPositions) {
  // q is the first part of a fused [T, (nq + 2 nkv) d] projection; k and v are views of a
  // cache with room for more heads than this layer uses.
  const Case c{6, 50, 4, 2, 24, 9, 0.0f, 0.2f};
  const int64_t qkv_stride = (c.nq + 2 * c.nkv) * c.d;
  const int64_t cache_heads = 3, kv_s0 = cache_heads * c.d + 5;
  std::vector<float> qkv = random_floats(static_cast<size_t>(c.T * qkv_stride), 900);
  std::vector<float> k = random_floats(static_cast<size_t>(c.S * kv_s0), 901);
  std::vector<float> v = random_floats(static_cast<size_t>(c.S * kv_s0), 902);
  std::vector<int32_t> pos = {49, 3, 0, 20, 21, 9};
  const int64_t out_s0 = c.nq * c.d + 3;
  std::vector<float> out(static_cast<size_t>(c.T * out_s0), -7.0f);
  AttentionArgs args;
  args.q = strided(qkv.data(), DType::kF32, {c.T, c.nq, c.d}, {qkv_stride, c.d, 1});
  args.k = strided(k.data() + c.d, DType::kF32, {c.S, c.nkv, c.d}, {kv_s0, c.d, 1});
  args.v = strided(v.data() + c.d, DType::kF32, {c.S, c.nkv, c.d}, {kv_s0, c.d, 1});
  args.out = strided(out.data(), DType::kF32, {c.T, c.nq, c.d}, {out_s0, c.d, 1});
  args.q_positions = Tensor::make(pos.data(), DType::kI32, {c.T});
  args.scale = c.scale;
  args.window = c.window;
  ops().attention(args);
  std::vector<double> ref =
      reference(c, qkv.data(), qkv_stride, c.d, k.data() + c.d, v.data() + c.d, kv_s0, c.d, pos);
  std::vector<float> got;
  for (int64_t t = 0; t < c.T; ++t) {
    for (int64_t i = 0; i < c.nq * c.d; ++i) got.push_back(out[t * out_s0 + i]);
    for (int64_t i = c.nq * c.d; i < out_s0; ++i) EXPECT_EQ(out[t * out_s0 + i], -7.0f);
  }
  EXPECT_LE(rel_error(got, ref), kF32Tolerance);
}

TEST_P(AttentionTest, WindowOfOneCopiesTheOwnValue) {
  const int64_t S = 5, d = 3;
  std::vector<float> q = random_floats(S * d, 1), k = random_floats(S * d, 2),
                     v = random_floats(S * d, 3), out(S * d);
  std::vector<int32_t> pos = {0, 1, 2, 3, 4};
  AttentionArgs args;
  args.q = Tensor::make(q.data(), DType::kF32, {S, 1, d});
  args.k = Tensor::make(k.data(), DType::kF32, {S, 1, d});
  args.v = Tensor::make(v.data(), DType::kF32, {S, 1, d});
  args.out = Tensor::make(out.data(), DType::kF32, {S, 1, d});
  args.q_positions = Tensor::make(pos.data(), DType::kI32, {S});
  args.window = 1;
  ops().attention(args);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_FLOAT_EQ(out[i], v[i]);
}

SLUICE_INSTANTIATE_ISA_TESTS(AttentionTest);

TEST(AttentionDeathTest, RejectsBadPositionsAndHeads) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> buf(256);
  std::vector<int32_t> pos = {4};
  AttentionArgs args;
  args.q = Tensor::make(buf.data(), DType::kF32, {1, 3, 4});
  args.k = Tensor::make(buf.data(), DType::kF32, {4, 2, 4});
  args.v = Tensor::make(buf.data(), DType::kF32, {4, 2, 4});
  args.out = Tensor::make(buf.data(), DType::kF32, {1, 3, 4});
  args.q_positions = Tensor::make(pos.data(), DType::kI32, {1});
  EXPECT_DEATH(cpu_ops().attention(args), "attention: 3 query heads are not a multiple of 2");
  args.q = Tensor::make(buf.data(), DType::kF32, {1, 4, 4});
  args.out = Tensor::make(buf.data(), DType::kF32, {1, 4, 4});
  EXPECT_DEATH(cpu_ops().attention(args), "attention: q_positions\\[0\\] = 4 is outside");
}

}  // namespace
}  // namespace sluice::kernels::testing
