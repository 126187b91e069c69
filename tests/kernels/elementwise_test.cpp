// geglu, softmax, softcap, add, scale and the vector exp/gelu leaf kernels against double
// references, per ISA.

#include <cmath>
#include <limits>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

double gelu_ref(double z) {
  return 0.5 * z * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
}

TEST(GeluTanhTest, MatchesTheFormula) {
  for (float z = -12.0f; z <= 12.0f; z += 0.01f) {
    const double ref = gelu_ref(z);
    EXPECT_NEAR(gelu_tanh(z), ref, 1e-6 * std::max(1.0, std::abs(ref))) << "z=" << z;
  }
  EXPECT_EQ(gelu_tanh(0.0f), 0.0f);
  EXPECT_FLOAT_EQ(gelu_tanh(100.0f), 100.0f);
  EXPECT_NEAR(gelu_tanh(-100.0f), 0.0f, 1e-30);
}

class ElementwiseTest : public IsaTest {};

TEST_P(ElementwiseTest, GegluOnHalvesOfAFusedProjection) {
  uint32_t seed = 1;
  for (int64_t T : {1, 2, 9}) {
    for (int64_t I : {1, 7, 16, 33, 2048}) {
      std::vector<float> fused = random_floats(static_cast<size_t>(T * 2 * I), seed++, -6.0f, 6.0f);
      std::vector<float> out(static_cast<size_t>(T * I));
      GegluArgs args;
      args.gate = strided(fused.data(), DType::kF32, {T, I}, {2 * I, 1});
      args.up = strided(fused.data() + I, DType::kF32, {T, I}, {2 * I, 1});
      args.out = Tensor::make(out.data(), DType::kF32, {T, I});
      ops().geglu(args);
      std::vector<double> ref;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < I; ++i) {
          ref.push_back(gelu_ref(fused[t * 2 * I + i]) * fused[t * 2 * I + I + i]);
        }
      }
      EXPECT_LE(rel_error(out, ref), kF32Tolerance) << "T=" << T << " I=" << I;
    }
  }
}

TEST_P(ElementwiseTest, GegluInPlaceOnContiguousRows) {
  const int64_t T = 3, I = 100;
  std::vector<float> gate = random_floats(T * I, 5, -4.0f, 4.0f), up = random_floats(T * I, 6);
  std::vector<double> ref;
  for (int64_t i = 0; i < T * I; ++i) ref.push_back(gelu_ref(gate[i]) * up[i]);
  GegluArgs args;
  args.gate = args.out = Tensor::make(gate.data(), DType::kF32, {T, I});
  args.up = Tensor::make(up.data(), DType::kF32, {T, I});
  ops().geglu(args);
  EXPECT_LE(rel_error(gate, ref), kF32Tolerance);
}

TEST_P(ElementwiseTest, GeluKernelOverAWideRange) {
  std::vector<float> z, ones;
  for (float x = -30.0f; x <= 30.0f; x += 0.003f) z.push_back(x);
  ones.assign(z.size(), 1.0f);
  std::vector<float> out(z.size());
  kernels().geglu(z.data(), ones.data(), out.data(), static_cast<int64_t>(z.size()));
  for (size_t i = 0; i < z.size(); ++i) {
    const double ref = gelu_ref(z[i]);
    ASSERT_NEAR(out[i], ref, 2e-6 * std::max(1.0, std::abs(ref))) << "z=" << z[i];
  }
}

TEST_P(ElementwiseTest, ExpSumKernelAccuracyAndSpecialValues) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> out(x.size());
  const float sum = kernels().exp_sum(x.data(), n, 0.0f, out.data());
  double ref_sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    ref_sum += ref;
    if (x[i] > -87.0f) {
      ASSERT_NEAR(out[i], ref, 3e-7 * ref) << "x=" << x[i];
    }
    if (x[i] < -88.0f) {
      ASSERT_LT(out[i], 1e-37f);
    }
  }
  EXPECT_NEAR(sum, ref_sum, 1e-5 * ref_sum);
  // -inf gives exactly 0, NaN stays NaN, and the shift is subtracted first.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special = {-inf, std::nanf(""), 10.0f, 11.0f, 12.5f};
  std::vector<float> o(special.size());
  kernels().exp_sum(special.data(), 5, 12.5f, o.data());
  EXPECT_EQ(o[0], 0.0f);
  EXPECT_TRUE(std::isnan(o[1]));
  EXPECT_NEAR(o[2], std::exp(-2.5), 1e-7);
  EXPECT_NEAR(o[3], std::exp(-1.5), 1e-7);
  EXPECT_NEAR(o[4], 1.0, 1e-7);
}

TEST_P(ElementwiseTest, SoftmaxRows) {
  uint32_t seed = 10;
  for (int64_t R : {1, 3, 50}) {
    for (int64_t D : {1, 7, 33, 1000}) {
      std::vector<float> x = random_floats(static_cast<size_t>(R * D), seed++, -20.0f, 20.0f);
      if (D > 2) x[1] = -std::numeric_limits<float>::infinity();  // a masked entry
      std::vector<double> ref(x.size());
      for (int64_t r = 0; r < R; ++r) {
        double max = -INFINITY, sum = 0.0;
        for (int64_t i = 0; i < D; ++i) max = std::max(max, static_cast<double>(x[r * D + i]));
        for (int64_t i = 0; i < D; ++i) sum += std::exp(x[r * D + i] - max);
        for (int64_t i = 0; i < D; ++i) ref[r * D + i] = std::exp(x[r * D + i] - max) / sum;
      }
      SoftmaxArgs args;
      args.x = Tensor::make(x.data(), DType::kF32, {R, D});
      ops().softmax(args);
      EXPECT_LE(rel_error(x, ref), kF32Tolerance) << "R=" << R << " D=" << D;
      if (D > 2) {
        EXPECT_EQ(x[1], 0.0f);
      }
    }
  }
}

TEST_P(ElementwiseTest, SoftcapAddScale) {
  const int64_t n = 7 * 10001;
  std::vector<float> x = random_floats(n, 20, -100.0f, 100.0f);
  std::vector<double> ref;
  for (float v : x) ref.push_back(30.0 * std::tanh(v / 30.0));
  SoftcapArgs sc;
  sc.x = Tensor::make(x.data(), DType::kF32, {7, 10001});
  sc.cap = 30.0f;
  ops().softcap(sc);
  EXPECT_LE(rel_error(x, ref), kF32Tolerance);

  std::vector<float> a = random_floats(n, 21), b = random_floats(n, 22);
  std::vector<double> sum;
  for (int64_t i = 0; i < n; ++i) sum.push_back(static_cast<double>(a[i]) + b[i]);
  AddArgs add;
  add.out = add.a = Tensor::make(a.data(), DType::kF32, {n});  // out aliases a
  add.b = Tensor::make(b.data(), DType::kF32, {n});
  ops().add(add);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(a[i], static_cast<float>(sum[i]));

  ScaleArgs s;
  s.x = Tensor::make(b.data(), DType::kF32, {n});
  s.scale = -0.5f;
  std::vector<float> before = b;
  ops().scale(s);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[i], before[i] * -0.5f);
}

SLUICE_INSTANTIATE_ISA_TESTS(ElementwiseTest);

}  // namespace
}  // namespace sluice::kernels::testing
