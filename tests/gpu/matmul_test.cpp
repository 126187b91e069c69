// CUDA matmul through cuBLASLt (kernels/cuda/matmul.h) against the CPU backend (cpu_ops(),
// the MatmulArgs contract of kernels/ops.h) on the same bf16 values: decode and prefill row
// counts, the model's projection widths, the vocabulary-wide head, strided and misaligned
// views, f32 and bf16 outputs, the accumulating form and graph capture.
// The argument checks run everywhere; the device tests skip cleanly without a device.

#include "kernels/cuda/matmul.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "gpu/gpu_test_util.h"
#include "kernels/ops.h"  // cpu_ops(): the reference

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

// The values of a view, row-major (host copy as the device holds them).
std::vector<float> view_values(const TestTensor& t) {
  std::vector<float> v;
  v.reserve(static_cast<size_t>(t.rows() * t.dim()));
  for (int64_t r = 0; r < t.rows(); ++r) {
    for (int64_t c = 0; c < t.dim(); ++c) v.push_back(t.at(r, c));
  }
  return v;
}

// a · w^T by cpu_ops().matmul: a as f32 (bf16 values are exact in f32), w as bf16.
std::vector<double> cpu_matmul(const TestTensor& a, const TestTensor& w) {
  const int64_t M = a.rows(), K = a.dim(), N = w.rows();
  std::vector<float> av = view_values(a);
  std::vector<uint16_t> wv;
  wv.reserve(static_cast<size_t>(N * K));
  for (float v : view_values(w)) wv.push_back(f32_to_bf16(v));
  std::vector<float> out(static_cast<size_t>(M * N));
  cpu_ops().matmul({Tensor::make(out.data(), DType::kF32, {M, N}),
                    Tensor::make(av.data(), DType::kF32, {M, K}),
                    Tensor::make(wv.data(), DType::kBF16, {N, K})});
  return {out.begin(), out.end()};
}

// The bounds of the task: bf16 outputs within 1e-2 (one rounding of 2^-9 plus the sum's),
// f32 outputs within 1e-3 (exact bf16 products; only the summation order differs). The
// elementwise atol is relative to max|ref|, for outputs that cancel to near zero.
void expect_matches(const TestTensor& out, const std::vector<double>& ref) {
  if (out.dtype() == DType::kBF16) {
    expect_close(out, ref, 1e-2, 1.0 / 128, 1e-3);
  } else {
    expect_close(out, ref, 1e-3, 1e-3, 1e-4);
  }
}

std::string trace(int64_t M, int64_t N, int64_t K, DType out) {
  return "M " + std::to_string(M) + ", N " + std::to_string(N) + ", K " + std::to_string(K) +
         ", out " + dtype_name(out);
}

struct WeightShape {
  int64_t n, k;
};

// Tiny sizes, Gemma 4 26B-A4B widths (hidden 2816; the 31B's 5376 and 21504 would make the
// CPU reference slow at M 257 and reach the same algorithm families), and an odd pair whose
// weight rows start off the 16-byte boundaries.
constexpr WeightShape kWeights[] = {{64, 64},     {640, 64},   {64, 640}, {1152, 640},
                                    {2816, 1152}, {640, 2816}, {77, 129}};
constexpr int64_t kRowCounts[] = {1, 3, 16, 100, 257};

TEST(MatmulGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240701);
  for (const WeightShape& ws : kWeights) {
    TestTensor w(DType::kBF16, {ws.n, ws.k});
    w.fill_random(rng, -1.0f, 1.0f);
    for (int64_t M : kRowCounts) {
      TestTensor a(DType::kBF16, {M, ws.k});
      a.fill_random(rng, -1.0f, 1.0f);
      const std::vector<double> ref = cpu_matmul(a, w);
      for (DType out_type : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE(trace(M, ws.n, ws.k, out_type));
        TestTensor out(out_type, {M, ws.n});  // poisoned (NaN) until written
        matmul({out.view(), a.view(), w.view()}, nullptr);
        out.download();
        expect_matches(out, ref);
        if (HasFailure()) return;  // the first failing case says enough
      }
    }
  }
}

// Decode shapes through the GEMV kernel (matmul_uses_gemv): 1 to 8 rows against Gemma 4
// 26B-A4B's dense weights (QKV of a sliding layer, gate/up, down), both output dtypes, with
// and without accumulation, a padded row stride.
TEST(MatmulGpu, DecodeShapesThroughGemv) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240707);
  for (const WeightShape ws : {WeightShape{8192, 2816}, WeightShape{4224, 2816},
                               WeightShape{2816, 2112}, WeightShape{1001, 264}}) {
    TestTensor w(DType::kBF16, {ws.n, ws.k});
    w.fill_random(rng, -1.0f, 1.0f);
    for (int64_t M : {1, 2, 3, 5, 8}) {
      TestTensor a(DType::kBF16, {M, ws.k}, {ws.k + 8, 1});
      a.fill_random(rng, -1.0f, 1.0f);
      const std::vector<double> product = cpu_matmul(a, w);
      for (DType out_type : {DType::kF32, DType::kBF16}) {
        for (const bool accumulate : {false, true}) {
          SCOPED_TRACE(trace(M, ws.n, ws.k, out_type) + (accumulate ? ", beta 1" : ""));
          TestTensor out(out_type, {M, ws.n}, {ws.n + 3, 1});
          std::vector<double> ref = product;
          if (accumulate) {
            out.fill_random(rng, -4.0f, 4.0f);
            const std::vector<float> before = view_values(out);
            for (size_t i = 0; i < ref.size(); ++i) ref[i] += before[i];
          }
          ASSERT_TRUE(matmul_uses_gemv({out.view(), a.view(), w.view()}));
          matmul_acc({out.view(), a.view(), w.view(), accumulate ? 1.0f : 0.0f}, nullptr);
          out.download();
          expect_matches(out, ref);
          EXPECT_EQ(out.padding_written(), 0);
          if (HasFailure()) return;
        }
      }
    }
  }
}

// The fused gate/up GeGLU at decode shapes against the CPU's matmul and geglu in f32 (the
// fused kernel keeps both projections in f32): Gemma 4 26B-A4B's MLP and Gemma 3 270M's.
TEST(MatmulGpu, GegluAtDecodeShapesMatchesReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240708);
  for (const WeightShape ws : {WeightShape{2 * 2112, 2816}, WeightShape{2 * 2048, 640}}) {
    const int64_t I = ws.n / 2;
    TestTensor w(DType::kBF16, {ws.n, ws.k});
    w.fill_random(rng, -0.05f, 0.05f);
    for (int64_t M : {1, 3, 8}) {
      TestTensor a(DType::kBF16, {M, ws.k});
      a.fill_random(rng, -1.0f, 1.0f);
      const std::vector<double> gu = cpu_matmul(a, w);  // [M, 2I]
      std::vector<float> gate(static_cast<size_t>(M * I)), up(gate.size()), act(gate.size());
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t i = 0; i < I; ++i) {
          gate[m * I + i] = static_cast<float>(gu[m * ws.n + i]);
          up[m * I + i] = static_cast<float>(gu[m * ws.n + I + i]);
        }
      }
      cpu_ops().geglu({Tensor::make(act.data(), DType::kF32, {M, I}),
                       Tensor::make(gate.data(), DType::kF32, {M, I}),
                       Tensor::make(up.data(), DType::kF32, {M, I})});
      for (DType out_type : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE(trace(M, ws.n, ws.k, out_type) + ", geglu");
        TestTensor out(out_type, {M, I});
        ASSERT_TRUE(matmul_geglu_applies({out.view(), a.view(), w.view()}));
        matmul_geglu({out.view(), a.view(), w.view()}, nullptr);
        out.download();
        expect_matches(out, {act.begin(), act.end()});
        if (HasFailure()) return;
      }
    }
  }
}

// f32 operands (an SGEMM; Gemma 4's router, 128 experts over hidden 2816): full f32
// arithmetic, so the bound is f32 summation order, far below bf16's.
TEST(MatmulGpu, F32OperandsMatchReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240705);
  TestTensor w(DType::kF32, {128, 2816});
  w.fill_random(rng, -0.05f, 0.05f);
  std::vector<float> wv = view_values(w);
  for (int64_t M : {1, 3, 64}) {
    SCOPED_TRACE("M " + std::to_string(M));
    TestTensor a(DType::kF32, {M, 2816});
    a.fill_random(rng, -2.0f, 2.0f);
    std::vector<float> av = view_values(a), ref(static_cast<size_t>(M * 128));
    cpu_ops().matmul({Tensor::make(ref.data(), DType::kF32, {M, 128}),
                      Tensor::make(av.data(), DType::kF32, {M, 2816}),
                      Tensor::make(wv.data(), DType::kF32, {128, 2816})});
    TestTensor out(DType::kF32, {M, 128});
    matmul({out.view(), a.view(), w.view()}, nullptr);
    out.download();
    expect_close(out, {ref.begin(), ref.end()}, 1e-5, 1e-4, 1e-5);
  }
}

// The vocabulary head's width (262144 rows of w), with a small K to keep the reference fast.
TEST(MatmulGpu, VocabularyWideHead) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240702);
  TestTensor w(DType::kBF16, {262144, 64});
  w.fill_random(rng, -1.0f, 1.0f);
  for (int64_t M : {1, 3, 16}) {
    TestTensor a(DType::kBF16, {M, 64});
    a.fill_random(rng, -1.0f, 1.0f);
    const std::vector<double> ref = cpu_matmul(a, w);
    for (DType out_type : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(trace(M, 262144, 64, out_type));
      TestTensor out(out_type, {M, 262144});
      matmul({out.view(), a.view(), w.view()}, nullptr);
      out.download();
      expect_matches(out, ref);
      if (HasFailure()) return;
    }
  }
}

// Row strides wider than the rows, some of them odd, and views that start 2 bytes past an
// alignment boundary: every element right, no padding element written.
TEST(MatmulGpu, StridedAndMisalignedViews) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240703);
  struct Case {
    int64_t M, N, K;
    int64_t a_stride, out_stride, a_offset, out_offset;
  };
  constexpr Case kCases[] = {
      {3, 640, 1152, 1152 + 8, 640 + 8, 0, 0},    // padded, still 16-byte aligned
      {100, 640, 1152, 1152 + 3, 640 + 5, 1, 1},  // odd strides, odd offsets
      {16, 77, 129, 131, 81, 1, 3},               // odd everything
      {257, 1152, 640, 2 * 640, 2 * 1152, 0, 0},  // every other row (a fused buffer)
      {1, 640, 1152, 0, 0, 1, 1},                 // one row: strides are free
  };
  for (const Case& c : kCases) {
    TestTensor w(DType::kBF16, {c.N, c.K});
    w.fill_random(rng, -1.0f, 1.0f);
    TestTensor a(DType::kBF16, {c.M, c.K}, {c.a_stride, 1}, c.a_offset);
    a.fill_random(rng, -1.0f, 1.0f);
    const std::vector<double> ref = cpu_matmul(a, w);
    for (DType out_type : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(trace(c.M, c.N, c.K, out_type) + ", a stride " + std::to_string(c.a_stride) +
                   ", out stride " + std::to_string(c.out_stride));
      TestTensor out(out_type, {c.M, c.N}, {c.out_stride, 1}, c.out_offset);
      matmul({out.view(), a.view(), w.view()}, nullptr);
      out.download();
      expect_matches(out, ref);
      EXPECT_EQ(out.padding_written(), 0);
      if (HasFailure()) return;
    }
  }
}

// beta 1 adds the product to what out holds (a fused residual add); beta 0 must not read
// out at all (it starts as NaN).
TEST(MatmulGpu, AccumulateIntoOutput) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240704);
  for (int64_t M : {1, 16, 100}) {
    TestTensor w(DType::kBF16, {640, 1152});
    w.fill_random(rng, -1.0f, 1.0f);
    TestTensor a(DType::kBF16, {M, 1152});
    a.fill_random(rng, -1.0f, 1.0f);
    const std::vector<double> product = cpu_matmul(a, w);
    for (DType out_type : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(trace(M, 640, 1152, out_type));
      {
        SCOPED_TRACE("beta 1");
        TestTensor out(out_type, {M, 640}, {648, 1});
        out.fill_random(rng, -4.0f, 4.0f);
        const std::vector<float> before = view_values(out);
        std::vector<double> ref(product.size());
        for (size_t i = 0; i < ref.size(); ++i) ref[i] = product[i] + before[i];
        matmul_acc({out.view(), a.view(), w.view(), 1.0f}, nullptr);
        out.download();
        expect_matches(out, ref);
        EXPECT_EQ(out.padding_written(), 0);
      }
      {
        SCOPED_TRACE("beta 0");
        TestTensor out(out_type, {M, 640});  // NaN: a read of out would show
        matmul_acc({out.view(), a.view(), w.view(), 0.0f}, nullptr);
        out.download();
        expect_matches(out, product);
      }
      if (HasFailure()) return;
    }
  }
}

// K == 0 is an empty sum: zeros, written without cuBLASLt.
TEST(MatmulGpu, EmptySumWritesZeros) {
  SLUICE_SKIP_WITHOUT_GPU();
  DeviceBuffer operands(64);
  for (DType out_type : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(out_type));
    TestTensor out(out_type, {3, 5}, {7, 1});
    const Tensor a = Tensor::make(operands.data(), DType::kBF16, {3, 0}, Device::kCuda);
    const Tensor w = Tensor::make(operands.data(), DType::kBF16, {5, 0}, Device::kCuda);
    matmul({out.view(), a, w}, nullptr);
    out.download();
    expect_close(out, std::vector<double>(15, 0.0), 0.0, 0.0, 0.0);
    EXPECT_EQ(out.padding_written(), 0);
  }
}

// A repeated problem reuses its cached algorithm; a new M is a new entry.
TEST(MatmulGpu, CachesTheAlgorithmPerProblem) {
  SLUICE_SKIP_WITHOUT_GPU();
  ASSERT_TRUE(init_blas().is_ok());
  std::mt19937 rng(20240705);
  TestTensor w(DType::kBF16, {192, 320});
  w.fill_random(rng, -1.0f, 1.0f);
  TestTensor a(DType::kBF16, {37, 320});
  a.fill_random(rng, -1.0f, 1.0f);
  TestTensor out(DType::kF32, {37, 192});
  matmul({out.view(), a.view(), w.view()}, nullptr);
  const size_t after_first = blas_cached_algo_count();
  EXPECT_GE(after_first, 1u);
  matmul({out.view(), a.view(), w.view()}, nullptr);
  EXPECT_EQ(blas_cached_algo_count(), after_first);
  matmul({out.view().slice_rows(0, 36), a.view().slice_rows(0, 36), w.view()}, nullptr);
  EXPECT_EQ(blas_cached_algo_count(), after_first + 1);
  out.download();
}

// Under stream capture (global mode, which rejects allocation and synchronisation): a shape
// seen before and one never seen both capture, and the replayed graph computes them.
TEST(MatmulGpu, CapturesIntoAGraph) {
  SLUICE_SKIP_WITHOUT_GPU();
  ASSERT_TRUE(init_blas().is_ok());
  std::mt19937 rng(20240706);
  TestTensor w(DType::kBF16, {1152, 640});
  w.fill_random(rng, -1.0f, 1.0f);
  TestTensor a(DType::kBF16, {16, 640});
  a.fill_random(rng, -1.0f, 1.0f);
  TestTensor a_new(DType::kBF16, {11, 640});  // an M no other test uses
  a_new.fill_random(rng, -1.0f, 1.0f);
  TestTensor out(DType::kBF16, {16, 1152});
  TestTensor out_new(DType::kF32, {11, 1152});

  const TestStream stream;
  matmul({out.view(), a.view(), w.view()}, stream.get());  // the seen shape
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  TestTensor poisoned(DType::kBF16, {16, 1152});  // re-poison out before the replay
  out.host() = poisoned.host();
  out.upload();

  const CapturedGraph graph(stream.get(), cudaStreamCaptureModeGlobal, [&](cudaStream_t s) {
    matmul({out.view(), a.view(), w.view()}, s);
    matmul({out_new.view(), a_new.view(), w.view()}, s);
  });
  graph.replay(stream.get());
  out.download();
  out_new.download();
  {
    SCOPED_TRACE("seen shape");
    expect_matches(out, cpu_matmul(a, w));
  }
  {
    SCOPED_TRACE("new shape");
    expect_matches(out_new, cpu_matmul(a_new, w));
  }
}

// ---- Argument checks: no device needed (the views point nowhere and are never read). ----

constexpr uintptr_t kA = 0x1000000, kW = 0x2000000, kOut = 0x8000000;

MatmulArgs good() {
  return {fake(kOut, DType::kF32, {4, 640}), fake(kA, DType::kBF16, {4, 1152}),
          fake(kW, DType::kBF16, {640, 1152})};
}

TEST(MatmulCheck, AcceptsValidArguments) {
  EXPECT_TRUE(check_matmul(good()).is_ok());
  MatmulArgs bf16_out = good();
  bf16_out.out.dtype = DType::kBF16;
  EXPECT_TRUE(check_matmul(bf16_out).is_ok());
  MatmulArgs strided = good();  // rows of a fused buffer, odd strides
  strided.a.strides[0] = 1155;
  strided.out.strides[0] = 2 * 640 + 1;
  EXPECT_TRUE(check_matmul(strided).is_ok());
  MatmulArgs one_row = good();  // one row: its stride is free
  one_row.a = fake(kA, DType::kBF16, {1, 1152});
  one_row.a.strides[0] = 0;
  one_row.out = fake(kOut, DType::kF32, {1, 640});
  one_row.out.strides[0] = 3;
  EXPECT_TRUE(check_matmul(one_row).is_ok());
  MatmulArgs f32 = good();  // an SGEMM
  f32.a.dtype = f32.w.dtype = DType::kF32;
  EXPECT_TRUE(check_matmul(f32).is_ok()) << check_matmul(f32).message();
  EXPECT_TRUE(check_matmul_acc({good().out, good().a, good().w, 1.0f}).is_ok());
  EXPECT_TRUE(check_matmul_acc({good().out, good().a, good().w, 0.0f}).is_ok());
}

TEST(MatmulCheck, GemvTakesDecodeShapesOnly) {
  const Tensor w = fake(kW, DType::kBF16, {2816, 2112});
  auto args = [&](int64_t M, int64_t K, uintptr_t a_address) {
    const Tensor wk = fake(kW, DType::kBF16, {2816, K});
    return MatmulArgs{fake(kOut, DType::kF32, {M, 2816}), fake(a_address, DType::kBF16, {M, K}),
                      wk};
  };
  EXPECT_TRUE(matmul_uses_gemv(args(1, 2112, kA)));
  EXPECT_TRUE(matmul_uses_gemv(args(8, 2112, kA)));
  EXPECT_FALSE(matmul_uses_gemv(args(9, 2112, kA)));      // a prefill: cuBLASLt
  EXPECT_FALSE(matmul_uses_gemv(args(1, 2116, kA)));      // K not a multiple of 8
  EXPECT_FALSE(matmul_uses_gemv(args(1, 128, kA)));       // K too short to stream
  EXPECT_FALSE(matmul_uses_gemv(args(1, 2112, kA + 2)));  // misaligned a
  MatmulArgs head{fake(kOut, DType::kF32, {1, 262144}), fake(kA, DType::kBF16, {1, 2816}),
                  fake(kW, DType::kBF16, {262144, 2816})};
  EXPECT_FALSE(matmul_uses_gemv(head));  // a weight cuBLASLt streams at full speed
  MatmulArgs f32 = args(1, 2112, kA);
  f32.a.dtype = f32.w.dtype = DType::kF32;
  EXPECT_FALSE(matmul_uses_gemv(f32));
  MatmulArgs bad = args(1, 2112, kA);
  bad.w = w;
  bad.w.shape[1] = 100;  // invalid arguments never take it
  EXPECT_FALSE(matmul_uses_gemv(bad));
}

TEST(MatmulCheck, GegluNamesTheBadArgument) {
  MatmulGegluArgs a{fake(kOut, DType::kBF16, {1, 2112}), fake(kA, DType::kBF16, {1, 2816}),
                    fake(kW, DType::kBF16, {4224, 2816})};
  EXPECT_TRUE(check_matmul_geglu(a).is_ok()) << check_matmul_geglu(a).message();
  EXPECT_TRUE(matmul_geglu_applies(a));
  MatmulGegluArgs b = a;
  b.w = fake(kW, DType::kBF16, {4223, 2816});
  expect_invalid(check_matmul_geglu(b), {"matmul_geglu: w has shape [4223, 2816]", "[2 I, 2816]"});
  b = a;
  b.out = fake(kOut, DType::kBF16, {1, 4224});
  expect_invalid(check_matmul_geglu(b), {"out has shape [1, 4224]", "expected [1, 2112]"});
  b = a;  // a prefill: two launches instead
  b.a = fake(kA, DType::kBF16, {64, 2816});
  b.out = fake(kOut, DType::kBF16, {64, 2112});
  expect_invalid(check_matmul_geglu(b), {"not a decode shape", "matmul, then geglu"});
  EXPECT_FALSE(matmul_geglu_applies(b));
}

TEST(MatmulCheck, NamesTheBadTensor) {
  MatmulArgs m = good();
  m.a.dtype = DType::kF32;
  expect_invalid(check_matmul(m), {"matmul: a has dtype f32", "expected bf16"});

  m = good();
  m.a.dtype = m.w.dtype = DType::kF32;
  m.out.dtype = DType::kBF16;
  expect_invalid(check_matmul(m), {"a has dtype f32, w f32 and out bf16", "f32 a, w and out"});

  m = good();
  m.w.dtype = DType::kF16;
  expect_invalid(check_matmul(m), {"matmul: w has dtype f16", "expected bf16"});

  m = good();
  m.out.dtype = DType::kI32;
  expect_invalid(check_matmul(m), {"out has dtype i32", "f32 or bf16"});

  m = good();
  m.out.device = Device::kCpu;
  expect_invalid(check_matmul(m), {"matmul: out is in host memory"});

  m = good();
  m.w.data = nullptr;
  expect_invalid(check_matmul(m), {"matmul: w is undefined"});

  m = good();
  m.w = fake(kW, DType::kBF16, {640, 1151});
  expect_invalid(check_matmul(m), {"w has shape [640, 1151] but a has [4, 1152]"});

  m = good();
  m.out = fake(kOut, DType::kF32, {4, 641});
  expect_invalid(check_matmul(m), {"out has shape [4, 641]", "expected [4, 640]"});

  m = good();
  m.w.strides[0] = 1160;
  expect_invalid(check_matmul(m), {"w has row stride 1160", "contiguous"});

  m = good();
  m.a.strides[0] = 1000;
  expect_invalid(check_matmul(m), {"a has row stride 1000 < K = 1152"});

  m = good();
  m.out.strides[0] = 600;
  expect_invalid(check_matmul(m), {"out has row stride 600 < N = 640"});

  m = good();
  m.a.strides[1] = 2;
  m.a.strides[0] = 2304;
  expect_invalid(check_matmul(m), {"a has stride 2 in its last dimension"});

  m = good();
  m.a = fake(kA, DType::kBF16, {2, 2, 1152});
  expect_invalid(check_matmul(m), {"a has shape [2, 2, 1152]", "[M, K]"});

  m = good();  // out's last row runs into a
  m.out = fake(kA - 4 * 640 * 4 + 8, DType::kF32, {4, 640});
  expect_invalid(check_matmul(m), {"out overlaps a"});

  m = good();
  m.out = fake(kW + 64, DType::kF32, {4, 640});
  expect_invalid(check_matmul(m), {"out overlaps w"});

  expect_invalid(check_matmul_acc({good().out, good().a, good().w, 0.5f}),
                 {"matmul_acc: beta is 0.5", "expected 0 or 1"});
}

// No rows: nothing is launched and no CUDA state is touched, so this runs without a device.
TEST(MatmulCheck, ZeroRowsLaunchNothing) {
  const MatmulArgs m{fake(kOut, DType::kBF16, {0, 640}), fake(kA, DType::kBF16, {0, 1152}),
                     fake(kW, DType::kBF16, {640, 1152})};
  EXPECT_TRUE(check_matmul(m).is_ok());
  matmul(m, nullptr);
  matmul_acc({m.out, m.a, m.w, 1.0f}, nullptr);
}

TEST(MatmulCheckDeathTest, LauncherAbortsNamingTheTensor) {
  MatmulArgs m = good();
  m.w = fake(kW, DType::kBF16, {640, 1151});
  EXPECT_DEATH(matmul(m, nullptr), "matmul: w has shape \\[640, 1151\\]");
  EXPECT_DEATH(matmul_acc({good().out, good().a, good().w, 2.0f}, nullptr),
               "matmul_acc: beta is 2");
}

}  // namespace
}  // namespace sluice::kernels::cuda
