// Quantized matmul (kernels/cpu/quant_matmul.h) against dequantize-then-f64 on random blocks,
// for every block type and every ISA path this CPU can run.
//
// Tolerances:
//  - Against the exact product of the dequantized weights (engine/weights/dequant.h, the
//    bit-exact ggml reference) with the unquantized activations: the kernels use the weights
//    exactly and round each activation to the nearest step of its 32-block (step =
//    max|x|/127), so each output is off by at most sum_b step_b/2 * sum_{k in b} |w_k|, plus
//    f32 rounding: quant_error_bound(). That is a worst case. Statistically the rounding
//    errors are independent and uniform in +-step/2, so an output's error has variance
//    sum_k w_k^2 step_k^2 / 12; the RMS error over all outputs must stay within 3x the RMS
//    of that prediction. (Not tighter: with M = 1 every output shares the same activation
//    errors, and weights with a common offset, like Q4_K/Q5_K mins, correlate the outputs,
//    so a case can be a single draw: 3 sigma.)
//  - Between ISA paths: identical integer block sums, only the f32 summation order differs:
//    1e-5 of sum |w·x|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/half.h"
#include "engine/weights/dequant.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::weights {
namespace {

using kernels::cpu::QuantKernels;
using kernels::cpu::QuantMatrix;
using kernels::cpu::QuantType;

constexpr QuantType kAllTypes[] = {QuantType::kQ4_0, QuantType::kQ4_1, QuantType::kQ5_0,
                                   QuantType::kQ5_1, QuantType::kQ8_0, QuantType::kQ4_K,
                                   QuantType::kQ5_K, QuantType::kQ6_K};

GgmlType ggml_of(QuantType t) {
  switch (t) {
    case QuantType::kQ4_0: return GgmlType::kQ4_0;
    case QuantType::kQ4_1: return GgmlType::kQ4_1;
    case QuantType::kQ5_0: return GgmlType::kQ5_0;
    case QuantType::kQ5_1: return GgmlType::kQ5_1;
    case QuantType::kQ8_0: return GgmlType::kQ8_0;
    case QuantType::kQ4_K: return GgmlType::kQ4_K;
    case QuantType::kQ5_K: return GgmlType::kQ5_K;
    case QuantType::kQ6_K: return GgmlType::kQ6_K;
  }
  return GgmlType::kF32;
}

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// Random blocks: random code bytes, then sane f16 scales (random bytes there could be NaN).
std::vector<uint8_t> random_blocks(QuantType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const int64_t bb = kernels::cpu::quant_block_bytes(t);
  const int64_t nblocks = rows * cols / kernels::cpu::quant_block_elems(t);
  std::vector<uint8_t> bytes(static_cast<size_t>(nblocks * bb));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  std::uniform_real_distribution<float> min(-0.1f, 0.1f);
  for (int64_t i = 0; i < nblocks; ++i) {
    uint8_t* b = bytes.data() + i * bb;
    switch (t) {
      case QuantType::kQ4_1:
      case QuantType::kQ5_1:
        put_f16(b, scale(rng));
        put_f16(b + 2, min(rng));
        break;
      case QuantType::kQ4_K:
      case QuantType::kQ5_K:
        put_f16(b, scale(rng) * 0.1f);
        put_f16(b + 2, scale(rng) * 0.1f);
        break;
      case QuantType::kQ6_K:
        put_f16(b + 208, scale(rng) * 0.05f);
        break;
      default:
        put_f16(b, scale(rng));
        break;
    }
  }
  return bytes;
}

std::vector<float> random_activations(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  // A few outliers, as real residual streams have: they set their block's step.
  for (int64_t i = 0; i < n; i += 97) x[i] *= 20.0f;
  return x;
}

struct Case {
  QuantType type;
  int64_t N, K, M;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (QuantType t : kAllTypes) {
    const bool k_quant = kernels::cpu::quant_block_elems(t) == 256;
    for (int64_t K : k_quant ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{96, 640}) {
      for (int64_t M : {1, 3, 7, 9, 16, 19}) out.push_back({t, 37, K, M});
    }
  }
  return out;
}

std::vector<float> run_kernel(const QuantKernels& kern, const Case& c, const uint8_t* w,
                              const std::vector<float>& x) {
  const int64_t nb = c.K / 32;
  std::vector<int8_t> aq(c.M * c.K);
  std::vector<float> ad(c.M * nb), as16(c.M * 2 * nb);
  kernels::cpu::quantize_q8_rows(x.data(), c.K, c.M, c.K, aq.data(), ad.data(), as16.data());
  std::vector<float> work(kernels::cpu::quant_work_bytes(c.K) / 4 + 16);
  std::vector<float> out(c.M * c.N, NAN);
  kern.gemm(c.type, w, kernels::cpu::quant_row_bytes(c.type, c.K), c.K, aq.data(), ad.data(),
            as16.data(), c.M, 0, c.N, out.data(), c.N, work.data());
  return out;
}

TEST(QuantMatmulTest, EveryTypeAndIsaMatchesDequantizedReference) {
  std::mt19937 rng(42);
  const auto kernels_list = kernels::cpu::supported_quant_kernels();
  ASSERT_GE(kernels_list.size(), 1u);
  for (const Case& c : cases()) {
    const auto w = random_blocks(c.type, c.N, c.K, rng);
    const auto x = random_activations(c.M * c.K, rng);
    std::vector<float> wf(c.N * c.K);
    ASSERT_TRUE(dequantize(ggml_of(c.type), w.data(), wf.size(), wf.data()).is_ok());
    std::vector<double> ref(c.M * c.N), bound(c.M * c.N), mag(c.M * c.N);
    double var_sum = 0;  // predicted error variance, summed over outputs
    for (int64_t m = 0; m < c.M; ++m) {
      for (int64_t n = 0; n < c.N; ++n) {
        double s = 0, a = 0;
        for (int64_t k = 0; k < c.K; ++k) {
          s += static_cast<double>(wf[n * c.K + k]) * x[m * c.K + k];
          a += std::fabs(static_cast<double>(wf[n * c.K + k]) * x[m * c.K + k]);
        }
        for (int64_t b = 0; b < c.K / 32; ++b) {
          double amax = 0;
          for (int l = 0; l < 32; ++l) amax = std::max(amax, std::fabs(static_cast<double>(x[m * c.K + 32 * b + l])));
          const double step = amax / 127;
          for (int l = 0; l < 32; ++l) {
            const double wk = wf[n * c.K + 32 * b + l];
            var_sum += wk * wk * step * step / 12;
          }
        }
        ref[m * c.N + n] = s;
        mag[m * c.N + n] = a;
        bound[m * c.N + n] = kernels::cpu::quant_error_bound(wf.data() + n * c.K, x.data() + m * c.K, c.K);
      }
    }
    std::vector<float> scalar_out;
    for (const QuantKernels* kern : kernels_list) {
      SCOPED_TRACE(testing::Message() << kern->name << " " << kernels::cpu::quant_type_name(c.type)
                                      << " N=" << c.N << " K=" << c.K << " M=" << c.M);
      const auto out = run_kernel(*kern, c, w.data(), x);
      double err_ss = 0;
      int bad = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const double e = std::fabs(out[i] - ref[i]);
        err_ss += e * e;
        if (!(e <= bound[i]) && ++bad <= 3) {
          ADD_FAILURE() << "output " << i << ": " << out[i] << " vs " << ref[i] << " (bound " << bound[i] << ")";
        }
      }
      EXPECT_LE(std::sqrt(err_ss / out.size()), 3.0 * std::sqrt(var_sum / out.size()));
      if (scalar_out.empty()) {
        scalar_out = out;
      } else {
        for (size_t i = 0; i < out.size(); ++i) {
          ASSERT_NEAR(out[i], scalar_out[i], 1e-5 * mag[i] + 1e-30) << "vs scalar, output " << i;
        }
      }
    }
  }
}

// q, k and v (or gate and up) in one call: every output equals its own quant_matmul, bit
// for bit, whatever the types, the row counts (not multiples of the row unit), the batch
// (fused, tiled and dequantized paths) and the thread count.
TEST(QuantMatmulTest, MultiEqualsOneCallPerMatrix) {
  std::mt19937 rng(11);
  const int64_t K = 512;
  const QuantType types[3] = {QuantType::kQ5_0, QuantType::kQ8_0, QuantType::kQ4_K};
  const int64_t rows[3] = {100, 37, 64};
  std::vector<std::vector<uint8_t>> blocks;
  std::vector<QuantMatrix> mats;
  for (int i = 0; i < 3; ++i) {
    blocks.push_back(random_blocks(types[i], rows[i], K, rng));
    mats.push_back({blocks.back().data(), types[i], rows[i], K, kernels::cpu::quant_row_bytes(types[i], K)});
  }
  for (int64_t M : {1, 2, 5, 19, 40}) {
    const auto x = random_activations(M * K, rng);
    kernels::Tensor at = kernels::Tensor::make(const_cast<float*>(x.data()), kernels::DType::kF32, {M, K});
    std::vector<std::vector<float>> want(3);
    for (int i = 0; i < 3; ++i) {
      want[i].assign(M * rows[i], NAN);
      kernels::cpu::quant_matmul(kernels::Tensor::make(want[i].data(), kernels::DType::kF32, {M, rows[i]}),
                                 at, mats[i]);
    }
    for (int threads : {1, 2, 3}) {
      kernels::cpu::set_num_threads(threads);
      std::vector<std::vector<float>> got(3);
      kernels::cpu::QuantMatmulOut outs[3];
      for (int i = 0; i < 3; ++i) {
        got[i].assign(M * rows[i], NAN);
        outs[i] = {kernels::Tensor::make(got[i].data(), kernels::DType::kF32, {M, rows[i]}), &mats[i]};
      }
      kernels::cpu::quant_matmul_multi(at, outs);
      for (int i = 0; i < 3; ++i) {
        for (size_t j = 0; j < got[i].size(); ++j) {
          ASSERT_EQ(got[i][j], want[i][j]) << "matrix " << i << " M=" << M << " threads=" << threads
                                           << " element " << j;
        }
      }
    }
    kernels::cpu::set_num_threads(0);
  }
}

TEST(QuantMatmulTest, ThreadedOpEqualsSingleKernelCall) {
  std::mt19937 rng(7);
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ5_0, QuantType::kQ4_K, QuantType::kQ6_K}) {
    const Case c{t, 1000, 512, 2};
    const auto w = random_blocks(t, c.N, c.K, rng);
    const auto x = random_activations(c.M * c.K, rng);
    const auto want = run_kernel(kernels::cpu::quant_kernels(), c, w.data(), x);
    QuantMatrix qm{w.data(), t, c.N, c.K, kernels::cpu::quant_row_bytes(t, c.K)};
    for (int threads : {1, 2, 3}) {
      kernels::cpu::set_num_threads(threads);
      // Row strides larger than the rows: a and out as views into wider buffers.
      std::vector<float> a(c.M * (c.K + 8)), out(c.M * (c.N + 5), -1.0f);
      for (int64_t m = 0; m < c.M; ++m) std::copy_n(x.data() + m * c.K, c.K, a.data() + m * (c.K + 8));
      kernels::Tensor at = kernels::Tensor::make(a.data(), kernels::DType::kF32, {c.M, c.K});
      at.strides[0] = c.K + 8;
      kernels::Tensor ot = kernels::Tensor::make(out.data(), kernels::DType::kF32, {c.M, c.N});
      ot.strides[0] = c.N + 5;
      kernels::cpu::quant_matmul(ot, at, qm);
      for (int64_t m = 0; m < c.M; ++m) {
        for (int64_t n = 0; n < c.N; ++n) {
          ASSERT_EQ(out[m * (c.N + 5) + n], want[m * c.N + n]) << threads << " threads, " << m << "," << n;
        }
        for (int64_t n = c.N; n < c.N + 5; ++n) ASSERT_EQ(out[m * (c.N + 5) + n], -1.0f);
      }
    }
    kernels::cpu::set_num_threads(0);
  }
}

// The large-M path dequantizes panels to f32: every ISA's dequantize_rows against the
// reference dequantizer (one f32 rounding apart: f*q - o vs the reference's own order), and
// the whole product against f64 with f32-only tolerance (no activation rounding there).
TEST(QuantMatmulTest, DequantizedPanelPathMatchesReference) {
  std::mt19937 rng(11);
  for (QuantType t : kAllTypes) {
    const int64_t N = 70, K = 512, M = 40;
    const auto w = random_blocks(t, N, K, rng);
    std::vector<float> wf(N * K);
    ASSERT_TRUE(dequantize(ggml_of(t), w.data(), wf.size(), wf.data()).is_ok());
    const int64_t row_bytes = kernels::cpu::quant_row_bytes(t, K);
    for (const QuantKernels* kern : kernels::cpu::supported_quant_kernels()) {
      SCOPED_TRACE(testing::Message() << kern->name << " " << kernels::cpu::quant_type_name(t));
      std::vector<float> work(kernels::cpu::quant_work_bytes(K) / 4 + 16);
      std::vector<float> got((N - 3) * K);
      kern->dequantize_rows(t, w.data(), row_bytes, K, 3, N, got.data(), work.data());
      for (int64_t i = 0; i < (N - 3) * K; ++i) {
        const float want = wf[3 * K + i];
        ASSERT_NEAR(got[i], want, 2e-6f * std::fabs(want) + 1e-6f * 0.02f) << i;
      }
      const auto x = random_activations(M * K, rng);
      std::vector<float> out(M * N);
      kernels::cpu::quant_matmul(*kern, x.data(), K, M, {w.data(), t, N, K, row_bytes}, out.data(), N);
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double s = 0, mag = 0;
          for (int64_t k = 0; k < K; ++k) {
            s += static_cast<double>(wf[n * K + k]) * x[m * K + k];
            mag += std::fabs(static_cast<double>(wf[n * K + k]) * x[m * K + k]);
          }
          ASSERT_NEAR(out[m * N + n], s, 1e-5 * mag) << m << "," << n;
        }
      }
    }
  }
}

TEST(QuantMatmulTest, ActivationQuantizationIsWithinHalfAStep) {
  std::mt19937 rng(3);
  const int64_t K = 128;
  auto x = random_activations(K, rng);
  for (int l = 0; l < 32; ++l) x[32 + l] = 0.0f;  // an all-zero block: scale 0, codes 0
  std::vector<int8_t> q(K);
  std::vector<float> d(K / 32), s16(K / 16);
  kernels::cpu::quantize_q8_rows(x.data(), K, 1, K, q.data(), d.data(), s16.data());
  EXPECT_EQ(d[1], 0.0f);
  for (int64_t b = 0; b < K / 32; ++b) {
    int sum[2] = {0, 0};
    for (int l = 0; l < 32; ++l) {
      const int64_t k = 32 * b + l;
      EXPECT_GE(q[k], -127);
      EXPECT_LE(std::fabs(q[k] * d[b] - x[k]), 0.5f * d[b] * 1.0001f + 1e-30f) << k;
      sum[l / 16] += q[k];
    }
    EXPECT_EQ(s16[2 * b], d[b] * sum[0]);
    EXPECT_EQ(s16[2 * b + 1], d[b] * sum[1]);
  }
}

}  // namespace
}  // namespace sluice::weights
