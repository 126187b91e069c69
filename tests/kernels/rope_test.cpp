// rope in its three modes (full, Gemma 4 proportional, classic partial) against a reference
// that rotates in double; the angles follow the f32 rule of the contract.

#include <cmath>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

struct Mode {
  const char* name;
  int64_t head_dim;
  int num_pairs, pair_offset, freq_dim;
  float theta, freq_scale;
};

// The contract, literally: pairs (i, i + pair_offset) for i < num_pairs rotate by
// f32(position) * f32(f32(theta^(-2i/freq_dim)) * freq_scale); all other dims pass through.
std::vector<double> reference(const std::vector<float>& x, const std::vector<int32_t>& pos,
                              int64_t H, const Mode& m) {
  std::vector<double> out(x.begin(), x.end());
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int64_t h = 0; h < H; ++h) {
      const size_t base = (t * H + h) * m.head_dim;
      for (int i = 0; i < m.num_pairs; ++i) {
        const float inv =
            static_cast<float>(1.0 / std::pow(static_cast<double>(m.theta), 2.0 * i / m.freq_dim));
        const float angle = static_cast<float>(pos[t]) * (inv * m.freq_scale);
        const double c = std::cos(static_cast<double>(angle));
        const double s = std::sin(static_cast<double>(angle));
        const double x1 = x[base + i], x2 = x[base + i + m.pair_offset];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + m.pair_offset] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

class RopeTest : public IsaTest {};

TEST_P(RopeTest, AllModesMatchTheReference) {
  const Mode modes[] = {
      {"full d=256 (Gemma sliding)", 256, 128, 128, 256, 10000.0f, 1.0f},
      {"full d=6", 6, 3, 3, 6, 10000.0f, 1.0f},
      {"full, linear scaling 8 (Gemma 3 4B global)", 128, 64, 64, 128, 1e6f, 0.125f},
      {"Gemma 4 proportional d=512", 512, 64, 256, 512, 1e6f, 1.0f},
      {"classic partial r=16 of 64", 64, 8, 8, 16, 10000.0f, 1.0f},
      {"classic partial r=2 of 5", 5, 1, 1, 2, 500.0f, 1.0f},
  };
  uint32_t seed = 1;
  for (const Mode& m : modes) {
    for (int64_t H : {1, 3}) {
      std::vector<int32_t> pos = {0, 1, 7, 63, 600, 5000, 32767};
      const int64_t T = static_cast<int64_t>(pos.size());
      std::vector<float> x = random_floats(static_cast<size_t>(T * H * m.head_dim), seed++);
      std::vector<double> ref = reference(x, pos, H, m);
      RopeArgs args;
      args.x = Tensor::make(x.data(), DType::kF32, {T, H, m.head_dim});
      args.positions = Tensor::make(pos.data(), DType::kI32, {T});
      args.theta = m.theta;
      args.freq_scale = m.freq_scale;
      args.num_pairs = m.num_pairs;
      args.pair_offset = m.pair_offset;
      args.freq_dim = m.freq_dim;
      std::vector<float> before = x;
      ops().rope(args);
      EXPECT_LE(rel_error(x, ref), kF32Tolerance) << m.name << " H=" << H;
      // Pass-through dims are bit-identical.
      for (int64_t r = 0; r < T * H; ++r) {
        for (int64_t i = 0; i < m.head_dim; ++i) {
          const bool rotated =
              i < m.num_pairs || (i >= m.pair_offset && i < m.pair_offset + m.num_pairs);
          if (!rotated) {
            ASSERT_EQ(x[r * m.head_dim + i], before[r * m.head_dim + i]) << m.name;
          }
        }
      }
    }
  }
}

TEST_P(RopeTest, PositionZeroIsIdentityAndRotationKeepsNorms) {
  const int64_t D = 64;
  std::vector<float> x = random_floats(2 * D, 5);
  std::vector<float> before = x;
  std::vector<int32_t> pos = {0, 1234};
  RopeArgs args;
  args.x = Tensor::make(x.data(), DType::kF32, {2, 1, D});
  args.positions = Tensor::make(pos.data(), DType::kI32, {2});
  args.num_pairs = args.pair_offset = args.freq_dim = D / 2;
  ops().rope(args);
  for (int64_t i = 0; i < D; ++i) EXPECT_EQ(x[i], before[i]);
  for (int64_t i = 0; i < D / 2; ++i) {
    const double n0 = std::hypot(before[D + i], before[D + i + D / 2]);
    const double n1 = std::hypot(x[D + i], x[D + i + D / 2]);
    EXPECT_NEAR(n0, n1, 1e-6);
  }
}

TEST_P(RopeTest, StridedHeadsOfAFusedProjection) {
  // q heads inside a fused [T, 3 heads * d] buffer; the third head must stay untouched.
  const int64_t T = 4, d = 8, row = 3 * d;
  std::vector<float> buf = random_floats(T * row, 9);
  std::vector<float> before = buf;
  std::vector<int32_t> pos = {3, 4, 5, 6};
  RopeArgs args;
  args.x = strided(buf.data(), DType::kF32, {T, 2, d}, {row, d, 1});
  args.positions = Tensor::make(pos.data(), DType::kI32, {T});
  args.num_pairs = args.pair_offset = 4;
  args.freq_dim = 8;
  ops().rope(args);
  std::vector<float> contiguous;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < 2 * d; ++i) contiguous.push_back(before[t * row + i]);
  }
  Mode m{"", d, 4, 4, 8, 10000.0f, 1.0f};
  std::vector<double> ref = reference(contiguous, pos, 2, m);
  std::vector<float> got;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < 2 * d; ++i) got.push_back(buf[t * row + i]);
    for (int64_t i = 2 * d; i < row; ++i) EXPECT_EQ(buf[t * row + i], before[t * row + i]);
  }
  EXPECT_LE(rel_error(got, ref), kF32Tolerance);
}

SLUICE_INSTANTIATE_ISA_TESTS(RopeTest);

TEST(RopeDeathTest, RejectsOverlappingPairs) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> x(16);
  std::vector<int32_t> pos = {1};
  RopeArgs args;
  args.x = Tensor::make(x.data(), DType::kF32, {1, 1, 16});
  args.positions = Tensor::make(pos.data(), DType::kI32, {1});
  args.num_pairs = 8;
  args.pair_offset = 4;
  args.freq_dim = 16;
  EXPECT_DEATH(cpu_ops().rope(args), "rope: num_pairs 8 and pair_offset 4 do not fit");
}

}  // namespace
}  // namespace sluice::kernels::testing
