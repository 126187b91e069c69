// The bf16 dot-product matmul (kernels/cpu/bf16_matmul.h) against a double-precision product
// of the same bf16 weights with the unrounded f32 activations, for every kernel table this
// CPU can run, over shapes that cover the 4 x 4 tiles and their edges, K not a multiple of
// the 32-element vector (masked tails), and strided operands through the threaded op.
//
// Tolerances:
//  - against the exact product: bf16_error_bound(), i.e. 2^-8 of sum |w x| for rounding each
//    activation to bf16 plus a loose K * 2^-24 of it for the f32 sums;
//  - between kernel tables: the same bf16 products, summed in another order: 1e-5 of
//    sum |w x|.

#include <cmath>
#include <vector>

#include "common/half.h"
#include "kernel_test_util.h"
#include "kernels/cpu/bf16_matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::testing {
namespace {

using cpu::Bf16Kernels;

struct Case {
  int64_t M, N, K;
};

TEST(Bf16Matmul, EveryKernelMatchesExactProductWithinBound) {
  const auto tables = cpu::supported_bf16_kernels();
  ASSERT_GE(tables.size(), 1u);
  const Case cases[] = {{1, 37, 640}, {3, 37, 33}, {4, 8, 64}, {5, 9, 1}, {7, 13, 1000},
                        {19, 21, 96}, {2, 4, 31}, {16, 40, 2048}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    std::vector<float> x = random_floats(static_cast<size_t>(c.M * c.K), seed++, -2.0f, 2.0f);
    for (size_t i = 0; i < x.size(); i += 53) x[i] *= 30.0f;  // outliers, as in real activations
    const HalfWeights w = to_bf16(random_floats(static_cast<size_t>(c.N * c.K), seed++));
    std::vector<double> exact(c.M * c.N), bound(c.M * c.N), mag(c.M * c.N);
    for (int64_t m = 0; m < c.M; ++m) {
      for (int64_t n = 0; n < c.N; ++n) {
        double s = 0, a = 0;
        for (int64_t k = 0; k < c.K; ++k) {
          const double p = static_cast<double>(w.values[n * c.K + k]) * x[m * c.K + k];
          s += p;
          a += std::fabs(p);
        }
        exact[m * c.N + n] = s;
        mag[m * c.N + n] = a;
        bound[m * c.N + n] = cpu::bf16_error_bound(w.bits.data() + n * c.K, x.data() + m * c.K, c.K);
      }
    }
    std::vector<float> first;
    for (const Bf16Kernels* kern : tables) {
      SCOPED_TRACE(::testing::Message() << kern->name << " M=" << c.M << " N=" << c.N << " K=" << c.K);
      std::vector<float> out(c.M * c.N, NAN);
      cpu::bf16_matmul(*kern, x.data(), c.K, c.M, w.bits.data(), c.N, c.K, out.data(), c.N);
      int bad = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const double e = std::fabs(out[i] - exact[i]);
        if (!(e <= bound[i]) && ++bad <= 3) {
          ADD_FAILURE() << "output " << i << ": " << out[i] << " vs " << exact[i] << " (bound "
                        << bound[i] << ")";
        }
      }
      if (first.empty()) {
        first = out;
      } else {
        for (size_t i = 0; i < out.size(); ++i) {
          ASSERT_NEAR(out[i], first[i], 1e-5 * mag[i] + 1e-30) << "vs " << tables[0]->name << ", output " << i;
        }
      }
    }
  }
}

// Activations are rounded to nearest even, subnormals to zero, as vcvtne2ps2bf16 does: each
// table's products are those of the rounded values exactly (a one-element dot product).
TEST(Bf16Matmul, RoundsActivationsToNearestEven) {
  const float xs[] = {1.0f + 1.0f / 256,  // halfway between bf16 neighbours 1 and 1 + 2^-7: even is 1
                      1.0f + 3.0f / 256,  // halfway, rounds up to the even 1 + 2^-6
                      -3.14159f, 1e-40f /* subnormal: zero */, 65504.0f};
  const uint16_t one = f32_to_bf16(1.0f);
  for (const Bf16Kernels* kern : cpu::supported_bf16_kernels()) {
    for (float x : xs) {
      float out = NAN;
      cpu::bf16_matmul(*kern, &x, 1, 1, &one, 1, 1, &out, 1);
      const float want = std::fabs(x) < 1e-38f ? 0.0f : bf16_to_f32(f32_to_bf16(x));
      EXPECT_EQ(out, want) << kern->name << " x=" << x;
    }
  }
}

TEST(Bf16Matmul, ThreadedOpWithStridesEqualsOneKernelCall) {
  const int64_t M = cpu::kBf16DotMaxRows, N = 333, K = 640;
  std::vector<float> x = random_floats(static_cast<size_t>(M * K), 11);
  const HalfWeights w = to_bf16(random_floats(static_cast<size_t>(N * K), 12));
  std::vector<float> want(M * N);
  cpu::bf16_matmul(cpu::bf16_kernels(), x.data(), K, M, w.bits.data(), N, K, want.data(), N);
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    std::vector<float> a(M * (K + 8)), out(M * (N + 5), -1.0f);
    for (int64_t m = 0; m < M; ++m) std::copy_n(x.data() + m * K, K, a.data() + m * (K + 8));
    Tensor at = Tensor::make(a.data(), DType::kF32, {M, K});
    at.strides[0] = K + 8;
    Tensor ot = Tensor::make(out.data(), DType::kF32, {M, N});
    ot.strides[0] = N + 5;
    Tensor wt = Tensor::make(const_cast<uint16_t*>(w.bits.data()), DType::kBF16, {N, K});
    cpu::bf16_matmul(ot, at, wt);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) ASSERT_EQ(out[m * (N + 5) + n], want[m * N + n]) << threads;
      for (int64_t n = N; n < N + 5; ++n) ASSERT_EQ(out[m * (N + 5) + n], -1.0f) << "wrote past the row";
    }
  }
  cpu::set_num_threads(0);
}

// Past kBf16DotMaxRows rows the op is the dense matmul with f32 activations, bit for bit.
TEST(Bf16Matmul, ManyRowsTakeTheDenseF32ActivationPath) {
  const int64_t M = cpu::kBf16DotMaxRows + 5, N = 70, K = 96;
  std::vector<float> x = random_floats(static_cast<size_t>(M * K), 21);
  const HalfWeights w = to_bf16(random_floats(static_cast<size_t>(N * K), 22));
  std::vector<float> got(M * N, NAN), want(M * N, NAN);
  Tensor wt = Tensor::make(const_cast<uint16_t*>(w.bits.data()), DType::kBF16, {N, K});
  cpu::bf16_matmul(Tensor::make(got.data(), DType::kF32, {M, N}),
                   Tensor::make(x.data(), DType::kF32, {M, K}), wt);
  cpu_ops().matmul({Tensor::make(want.data(), DType::kF32, {M, N}),
                    Tensor::make(x.data(), DType::kF32, {M, K}), wt});
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
}

}  // namespace
}  // namespace sluice::kernels::testing
