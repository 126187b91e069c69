// embedding, rms_norm (x*w, x*(1+w), weightless) and add_rms_norm against references in
// double, per ISA.

#include <cmath>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

enum class WeightForm { kPlain, kOnePlus, kNone };

std::vector<double> rms_reference(const std::vector<float>& x, int64_t R, int64_t D,
                                  const std::vector<float>& w, WeightForm form, float eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < R; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(x[r * D + i]) * x[r * D + i];
    const double inv = 1.0 / std::sqrt(ss / D + eps);
    for (int64_t i = 0; i < D; ++i) {
      const double wi = form == WeightForm::kNone      ? 1.0
                        : form == WeightForm::kOnePlus ? 1.0 + w[i]
                                                       : w[i];
      out[r * D + i] = x[r * D + i] * inv * wi;
    }
  }
  return out;
}

class NormTest : public IsaTest {};

TEST_P(NormTest, RmsNormAllFormsAndInPlace) {
  uint32_t seed = 1;
  for (WeightForm form : {WeightForm::kPlain, WeightForm::kOnePlus, WeightForm::kNone}) {
    for (int64_t R : {1, 3, 40}) {
      for (int64_t D : {1, 7, 33, 256, 640, 1000}) {
        std::vector<float> x = random_floats(static_cast<size_t>(R * D), seed++, -3.0f, 3.0f);
        std::vector<float> w = random_floats(static_cast<size_t>(D), seed++);
        const float eps = 1e-6f;
        std::vector<double> ref = rms_reference(x, R, D, w, form, eps);
        for (bool in_place : {false, true}) {
          std::vector<float> in = x;
          std::vector<float> out(x.size());
          RmsNormArgs args;
          args.in = Tensor::make(in.data(), DType::kF32, {R, D});
          args.out = in_place ? args.in : Tensor::make(out.data(), DType::kF32, {R, D});
          if (form != WeightForm::kNone) args.weight = Tensor::make(w.data(), DType::kF32, {D});
          args.one_plus_weight = form == WeightForm::kOnePlus;
          args.eps = eps;
          ops().rms_norm(args);
          EXPECT_LE(rel_error(in_place ? in : out, ref), kF32Tolerance)
              << "form " << static_cast<int>(form) << " R=" << R << " D=" << D;
        }
      }
    }
  }
}

TEST_P(NormTest, RmsNormPerHeadOfStridedRows) {
  // QK-norm style: rows of d inside a wider buffer.
  const int64_t R = 5, D = 16, ld = 40;
  std::vector<float> buf = random_floats(R * ld, 3);
  std::vector<float> w = random_floats(D, 4);
  std::vector<float> x;
  for (int64_t r = 0; r < R; ++r) x.insert(x.end(), buf.begin() + r * ld, buf.begin() + r * ld + D);
  std::vector<double> ref = rms_reference(x, R, D, w, WeightForm::kOnePlus, 1e-6f);
  std::vector<float> before = buf;
  RmsNormArgs args;
  args.in = args.out = strided(buf.data(), DType::kF32, {R, D}, {ld, 1});
  args.weight = Tensor::make(w.data(), DType::kF32, {D});
  args.one_plus_weight = true;
  ops().rms_norm(args);
  std::vector<float> got;
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t i = 0; i < D; ++i) got.push_back(buf[r * ld + i]);
    for (int64_t i = D; i < ld; ++i) EXPECT_EQ(buf[r * ld + i], before[r * ld + i]);
  }
  EXPECT_LE(rel_error(got, ref), kF32Tolerance);
}

TEST_P(NormTest, AddRmsNormAddsTheNormedBranch) {
  uint32_t seed = 50;
  for (bool one_plus : {false, true}) {
    for (int64_t R : {1, 4, 64}) {
      for (int64_t D : {5, 640}) {
        std::vector<float> in = random_floats(static_cast<size_t>(R * D), seed++, -5.0f, 5.0f);
        std::vector<float> residual = random_floats(static_cast<size_t>(R * D), seed++);
        std::vector<float> w = random_floats(static_cast<size_t>(D), seed++);
        std::vector<double> ref =
            rms_reference(in, R, D, w, one_plus ? WeightForm::kOnePlus : WeightForm::kPlain, 1e-6f);
        for (size_t i = 0; i < ref.size(); ++i) ref[i] += residual[i];
        AddRmsNormArgs args;
        args.residual = Tensor::make(residual.data(), DType::kF32, {R, D});
        args.in = Tensor::make(in.data(), DType::kF32, {R, D});
        args.weight = Tensor::make(w.data(), DType::kF32, {D});
        args.one_plus_weight = one_plus;
        ops().add_rms_norm(args);
        EXPECT_LE(rel_error(residual, ref), kF32Tolerance) << "R=" << R << " D=" << D;
      }
    }
  }
}

TEST_P(NormTest, EmbeddingAllTableTypesWithScale) {
  const int64_t V = 50, H = 37;
  std::vector<float> table = random_floats(V * H, 7);
  HalfWeights bf = to_bf16(table), hf = to_f16(table);
  std::vector<int32_t> ids = {0, 49, 3, 3, 17};
  const int64_t T = static_cast<int64_t>(ids.size());
  const float scale = 25.25f;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const float* values = dtype == DType::kF32    ? table.data()
                          : dtype == DType::kBF16 ? bf.values.data()
                                                  : hf.values.data();
    void* data = dtype == DType::kF32    ? static_cast<void*>(table.data())
                 : dtype == DType::kBF16 ? bf.bits.data()
                                         : hf.bits.data();
    std::vector<float> out(T * H);
    EmbeddingArgs args;
    args.out = Tensor::make(out.data(), DType::kF32, {T, H});
    args.table = Tensor::make(data, dtype, {V, H});
    args.ids = Tensor::make(ids.data(), DType::kI32, {T});
    args.scale = scale;
    ops().embedding(args);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < H; ++i) {
        ASSERT_EQ(out[t * H + i], values[ids[t] * H + i] * scale) << dtype_name(dtype);
      }
    }
  }
}

SLUICE_INSTANTIATE_ISA_TESTS(NormTest);

TEST(NormDeathTest, RejectsOutOfRangeIdsAndBadWeights) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> table(20), out(8);
  std::vector<int32_t> ids = {1, 5};
  EmbeddingArgs e;
  e.out = Tensor::make(out.data(), DType::kF32, {2, 4});
  e.table = Tensor::make(table.data(), DType::kF32, {5, 4});
  e.ids = Tensor::make(ids.data(), DType::kI32, {2});
  EXPECT_DEATH(cpu_ops().embedding(e), "embedding: ids\\[1\\] = 5 is outside the table of 5");
  RmsNormArgs r;
  r.in = r.out = Tensor::make(out.data(), DType::kF32, {2, 4});
  r.weight = Tensor::make(table.data(), DType::kF32, {3});
  EXPECT_DEATH(cpu_ops().rms_norm(r), "rms_norm: weight has shape \\[3\\] but dim 0 must be 4");
}

}  // namespace
}  // namespace sluice::kernels::testing
