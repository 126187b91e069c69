// matmul against a double-precision reference, for every ISA path, weight dtype and a sweep
// of shapes that covers both kernels (dot-product for few rows, packed for many), edge tiles,
// k blocking, the row-split path and strided operands.

#include <cstring>
#include <limits>

#include "kernel_test_util.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::testing {
namespace {

struct Weights {
  DType dtype;
  std::vector<float> f32;  // when dtype is f32
  HalfWeights half;        // when dtype is bf16 / f16
  const float* values() const { return dtype == DType::kF32 ? f32.data() : half.values.data(); }
  void* data() { return dtype == DType::kF32 ? static_cast<void*>(f32.data()) : half.bits.data(); }
};

Weights make_weights(DType dtype, int64_t n, int64_t k, uint32_t seed) {
  Weights w;
  w.dtype = dtype;
  std::vector<float> v = random_floats(static_cast<size_t>(n * k), seed);
  if (dtype == DType::kF32) w.f32 = v;
  if (dtype == DType::kBF16) w.half = to_bf16(v);
  if (dtype == DType::kF16) w.half = to_f16(v);
  return w;
}

// out[m, n] = sum_k a[m*lda + k] * w[n*K + k], in double.
std::vector<double> reference(const float* a, int64_t lda, const float* w, int64_t M, int64_t N,
                              int64_t K) {
  std::vector<double> out(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(a[m * lda + k]) * w[n * K + k];
      out[m * N + n] = s;
    }
  }
  return out;
}

class MatmulTest : public IsaTest {
 protected:
  // Runs one contiguous case and returns the relative error.
  double run_case(DType dtype, int64_t M, int64_t N, int64_t K, uint32_t seed) {
    std::vector<float> a = random_floats(static_cast<size_t>(M * K), seed);
    Weights w = make_weights(dtype, N, K, seed + 1);
    std::vector<float> out(static_cast<size_t>(M * N), std::numeric_limits<float>::quiet_NaN());
    MatmulArgs args;
    args.a = Tensor::make(a.data(), DType::kF32, {M, K});
    args.w = Tensor::make(w.data(), dtype, {N, K});
    args.out = Tensor::make(out.data(), DType::kF32, {M, N});
    ops().matmul(args);
    return rel_error(out, reference(a.data(), K, w.values(), M, N, K));
  }
};

TEST_P(MatmulTest, MatchesReferenceOverShapeSweep) {
  uint32_t seed = 1;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t M : {1, 2, 3, 5, 7, 8, 13, 33}) {
      for (int64_t K : {1, 7, 33, 640, 1000}) {
        for (int64_t N : {1, 3, 17, 257}) {
          const double err = run_case(dtype, M, N, K, seed++);
          ASSERT_LE(err, kF32Tolerance)
              << dtype_name(dtype) << " M=" << M << " N=" << N << " K=" << K;
        }
      }
    }
  }
}

TEST_P(MatmulTest, PrefillShapesWithKBlocksAndPartialPanels) {
  // K = 1600 splits into k blocks; N = 300 leaves a partial panel and partial block; M = 130
  // leaves a partial row tile.
  EXPECT_LE(run_case(DType::kF32, 130, 300, 1600, 7), kF32Tolerance);
  EXPECT_LE(run_case(DType::kBF16, 64, 70, 2048, 8), kF32Tolerance);
  EXPECT_LE(run_case(DType::kF16, 96, 129, 640, 9), kF32Tolerance);
  // Narrow output, many rows: the row-split path.
  EXPECT_LE(run_case(DType::kF32, 200, 5, 64, 10), kF32Tolerance);
  EXPECT_LE(run_case(DType::kBF16, 257, 33, 100, 11), kF32Tolerance);
}

TEST_P(MatmulTest, StridedOperandsLeaveGapsUntouched) {
  for (int64_t M : {1, 4, 20}) {
    const int64_t K = 45, N = 37, lda = K + 3, ldo = N + 5;
    std::vector<float> a = random_floats(static_cast<size_t>(M * lda), 21);
    Weights w = make_weights(DType::kBF16, N, K, 22);
    const float sentinel = -12345.0f;
    std::vector<float> out(static_cast<size_t>(M * ldo), sentinel);
    MatmulArgs args;
    args.a = strided(a.data(), DType::kF32, {M, K}, {lda, 1});
    args.w = Tensor::make(w.data(), DType::kBF16, {N, K});
    args.out = strided(out.data(), DType::kF32, {M, N}, {ldo, 1});
    ops().matmul(args);
    std::vector<double> ref = reference(a.data(), lda, w.values(), M, N, K);
    std::vector<float> packed_out;
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) packed_out.push_back(out[m * ldo + n]);
      for (int64_t n = N; n < ldo; ++n) EXPECT_EQ(out[m * ldo + n], sentinel) << "gap written";
    }
    EXPECT_LE(rel_error(packed_out, ref), kF32Tolerance) << "M=" << M;
  }
}

TEST_P(MatmulTest, ZeroKGivesZeros) {
  std::vector<float> out(6, 1.0f);
  float dummy = 0.0f;
  MatmulArgs args;
  args.a = Tensor::make(&dummy, DType::kF32, {2, 0});
  args.w = Tensor::make(&dummy, DType::kF32, {3, 0});
  args.out = Tensor::make(out.data(), DType::kF32, {2, 3});
  ops().matmul(args);
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

TEST_P(MatmulTest, ResultDoesNotDependOnThreadCount) {
  for (int64_t M : {1, 3, 40}) {
    const int64_t K = 300, N = 515;
    std::vector<float> a = random_floats(static_cast<size_t>(M * K), 31);
    Weights w = make_weights(DType::kF32, N, K, 32);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      cpu::set_num_threads(threads);
      std::vector<float> out(static_cast<size_t>(M * N));
      MatmulArgs args;
      args.a = Tensor::make(a.data(), DType::kF32, {M, K});
      args.w = Tensor::make(w.data(), DType::kF32, {N, K});
      args.out = Tensor::make(out.data(), DType::kF32, {M, N});
      ops().matmul(args);
      results.push_back(out);
    }
    cpu::set_num_threads(0);
    EXPECT_EQ(results[0], results[1]) << "M=" << M;
    EXPECT_EQ(results[0], results[2]) << "M=" << M;
  }
}

// The leaf kernels directly, on the pieces the op composes: a packed block at an offset in
// k and in n, with and without accumulation.
TEST_P(MatmulTest, PackedKernelsComposeOverBlocks) {
  const cpu::IsaKernels& k = kernels();
  const int64_t M = 9, N = 150, K = 70, n0 = 11, n1 = 140, k0 = 5, kc = 50;
  std::vector<float> a = random_floats(static_cast<size_t>(M * K), 41);
  Weights w = make_weights(DType::kF16, N, K, 42);
  const int64_t panels = (n1 - n0 + k.panel_width - 1) / k.panel_width;
  std::vector<float> packed(static_cast<size_t>(panels * kc * k.panel_width), 7.0f);
  k.pack_panels(cpu::WeightType::kF16, w.data(), K, n0, n1, k0, kc, packed.data());
  // Packed layout and zero padding.
  for (int64_t c = 0; c < panels * k.panel_width; ++c) {
    for (int64_t kk = 0; kk < kc; ++kk) {
      const float got = packed[((c / k.panel_width) * kc + kk) * k.panel_width + c % k.panel_width];
      const float want = n0 + c < n1 ? w.values()[(n0 + c) * K + k0 + kk] : 0.0f;
      ASSERT_EQ(got, want) << "c=" << c << " k=" << kk;
    }
  }
  std::vector<float> out(static_cast<size_t>(M * (n1 - n0)), 0.5f);
  k.gemm_packed(a.data() + k0, K, M, packed.data(), kc, n1 - n0, out.data(), n1 - n0, 1);
  std::vector<double> ref(out.size());
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t c = 0; c < n1 - n0; ++c) {
      double s = 0.5;
      for (int64_t kk = 0; kk < kc; ++kk) {
        s += static_cast<double>(a[m * K + k0 + kk]) * w.values()[(n0 + c) * K + k0 + kk];
      }
      ref[m * (n1 - n0) + c] = s;
    }
  }
  EXPECT_LE(rel_error(out, ref), kF32Tolerance);
}

SLUICE_INSTANTIATE_ISA_TESTS(MatmulTest);

TEST(MatmulDeathTest, NamesTheMismatchedTensor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> buf(64);
  MatmulArgs args;
  args.a = Tensor::make(buf.data(), DType::kF32, {2, 4});
  args.w = Tensor::make(buf.data(), DType::kF32, {3, 5});
  args.out = Tensor::make(buf.data(), DType::kF32, {2, 3});
  EXPECT_DEATH(cpu_ops().matmul(args), "matmul: w has shape \\[3, 5\\] but dim 1 must be 4");
  args.w = Tensor::make(buf.data(), DType::kI32, {3, 4});
  EXPECT_DEATH(cpu_ops().matmul(args), "matmul: w has dtype i32");
}

}  // namespace
}  // namespace sluice::kernels::testing
