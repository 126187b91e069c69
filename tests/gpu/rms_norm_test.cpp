// CUDA RMS norm kernels (kernels/cuda/cuda_ops.h) against the CPU backend (cpu_ops(), the
// contracts of kernels/ops.h RmsNormArgs and AddRmsNormArgs). The argument checks run
// everywhere; the kernel tests skip cleanly without a device.

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/ops.h"  // cpu_ops(): the reference

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

constexpr float kEps = 1e-6f;

enum class Form { kNone, kPlain, kOnePlus };
const char* form_name(Form f) {
  return f == Form::kNone ? "none" : (f == Form::kPlain ? "x*w" : "x*(1+w)");
}

// The values of a view, row-major (host copy as the device holds them).
std::vector<float> view_values(const TestTensor& t) {
  std::vector<float> v;
  for (int64_t r = 0; r < t.rows(); ++r) {
    for (int64_t c = 0; c < t.dim(); ++c) v.push_back(t.at(r, c));
  }
  return v;
}

// The reference is the CPU backend, kernels::cpu_ops(), run on contiguous f32 copies of the
// values the device holds (bf16 values are exact in f32).
Tensor host_tensor(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return Tensor::make(v.data(), DType::kF32, shape);
}

// rms_norm(in; w) on the CPU, as [rows * dim] values.
std::vector<double> cpu_norm(const TestTensor& in, const TestTensor* w, bool one_plus) {
  std::vector<float> x = view_values(in);
  std::vector<float> y(x.size());
  std::vector<float> wv = w == nullptr ? std::vector<float>{} : view_values(*w);
  const Tensor weight = w == nullptr ? Tensor{} : host_tensor(wv, {in.dim()});
  cpu_ops().rms_norm({host_tensor(y, {in.rows(), in.dim()}), host_tensor(x, {in.rows(), in.dim()}),
                      weight, kEps, one_plus});
  return {y.begin(), y.end()};
}

// residual_before + rms_norm(in; w) on the CPU (add_rms_norm), as [rows * dim] values.
std::vector<double> cpu_add_norm(std::vector<float> residual_before, const TestTensor& in,
                                 const TestTensor* w, bool one_plus) {
  std::vector<float> x = view_values(in);
  std::vector<float> wv = w == nullptr ? std::vector<float>{} : view_values(*w);
  const Tensor weight = w == nullptr ? Tensor{} : host_tensor(wv, {in.dim()});
  cpu_ops().add_rms_norm({host_tensor(residual_before, {in.rows(), in.dim()}),
                          host_tensor(x, {in.rows(), in.dim()}), weight, kEps, one_plus});
  return {residual_before.begin(), residual_before.end()};
}

// A random norm weight of the given form: around 1 for x*w, around 0 for x*(1+w).
std::optional<TestTensor> make_weight(Form form, DType dtype, int64_t dim, std::mt19937& rng) {
  std::optional<TestTensor> w;
  if (form == Form::kNone) return w;
  w.emplace(dtype, std::vector<int64_t>{dim});
  if (form == Form::kPlain) {
    w->fill_random(rng, 0.5f, 1.5f);
  } else {
    w->fill_random(rng, -0.5f, 0.5f);
  }
  return w;
}

Tensor view_or_none(const std::optional<TestTensor>& t) { return t ? t->view() : Tensor{}; }

constexpr int64_t kRowCounts[] = {1, 3, 64};
constexpr int64_t kDims[] = {1, 7, 256, 640, 2560, 5376};
constexpr Form kForms[] = {Form::kNone, Form::kPlain, Form::kOnePlus};

// Activation dtype sets: all f32, all bf16, and the mixed one a bf16 GEMM path uses.
struct Dtypes {
  DType in, out, weight;  // `out` is the residual for add_rms_norm
};
constexpr Dtypes kNormDtypes[] = {{DType::kF32, DType::kF32, DType::kF32},
                                  {DType::kBF16, DType::kBF16, DType::kBF16},
                                  {DType::kF32, DType::kBF16, DType::kF32}};
constexpr Dtypes kAddDtypes[] = {{DType::kF32, DType::kF32, DType::kF32},
                                 {DType::kBF16, DType::kBF16, DType::kBF16},
                                 {DType::kBF16, DType::kF32, DType::kBF16}};

std::string trace(int64_t rows, int64_t dim, const Dtypes& d, Form form) {
  return "rows " + std::to_string(rows) + ", D " + std::to_string(dim) + ", in " +
         dtype_name(d.in) + ", out/residual " + dtype_name(d.out) + ", weight " +
         dtype_name(d.weight) + ", form " + form_name(form);
}

void expect_close_as(const TestTensor& t, const std::vector<double>& ref) {
  const auto tol = tolerance_for(t.dtype());
  expect_close(t, ref, tol.max_rel, tol.rtol, tol.atol);
}

TEST(RmsNormGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240601);
  for (int64_t rows : kRowCounts) {
    for (int64_t dim : kDims) {
      for (const Dtypes& d : kNormDtypes) {
        for (Form form : kForms) {
          SCOPED_TRACE(trace(rows, dim, d, form));
          TestTensor in(d.in, {rows, dim});
          in.fill_random(rng, -2.0f, 2.0f);
          TestTensor out(d.out, {rows, dim});  // poisoned (NaN) until written
          const auto w = make_weight(form, d.weight, dim, rng);
          rms_norm({out.view(), in.view(), view_or_none(w), kEps, form == Form::kOnePlus}, nullptr);
          out.download();
          expect_close_as(out, cpu_norm(in, w ? &*w : nullptr, form == Form::kOnePlus));
          if (HasFailure()) return;  // the first failing case says enough
        }
      }
    }
  }
}

TEST(AddRmsNormGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240602);
  for (int64_t rows : kRowCounts) {
    for (int64_t dim : kDims) {
      for (const Dtypes& d : kAddDtypes) {
        for (Form form : kForms) {
          SCOPED_TRACE(trace(rows, dim, d, form));
          TestTensor in(d.in, {rows, dim});
          in.fill_random(rng, -2.0f, 2.0f);
          TestTensor residual(d.out, {rows, dim});
          residual.fill_random(rng, -4.0f, 4.0f);
          const std::vector<float> before = view_values(residual);
          const auto w = make_weight(form, d.weight, dim, rng);
          add_rms_norm({residual.view(), in.view(), view_or_none(w), kEps, form == Form::kOnePlus},
                       nullptr);
          residual.download();
          expect_close_as(residual,
                          cpu_add_norm(before, in, w ? &*w : nullptr, form == Form::kOnePlus));
          if (HasFailure()) return;
        }
      }
    }
  }
}

// residual += norm(in; w); out = norm(residual as stored; out_w), checked against the
// reference for each half: the second from the residual the kernel stored.
void run_fused_case(std::mt19937& rng, TestTensor& residual, TestTensor& in, TestTensor& out,
                    Form form, DType weight_dtype) {
  residual.fill_random(rng, -4.0f, 4.0f);
  in.fill_random(rng, -2.0f, 2.0f);
  const std::vector<float> before = view_values(residual);
  const auto w = make_weight(form, weight_dtype, in.dim(), rng);
  const auto out_w = make_weight(form, weight_dtype, in.dim(), rng);
  const bool one_plus = form == Form::kOnePlus;
  fused_add_rms_norm({residual.view(), in.view(), view_or_none(w), out.view(), view_or_none(out_w),
                      kEps, one_plus},
                     nullptr);
  residual.download();
  out.download();
  {
    SCOPED_TRACE("residual");
    expect_close_as(residual, cpu_add_norm(before, in, w ? &*w : nullptr, one_plus));
  }
  {
    SCOPED_TRACE("out");
    expect_close_as(out, cpu_norm(residual, out_w ? &*out_w : nullptr, one_plus));
  }
  EXPECT_EQ(residual.padding_written(), 0);
  EXPECT_EQ(out.padding_written(), 0);
}

TEST(FusedAddRmsNormGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240603);
  for (int64_t rows : kRowCounts) {
    for (int64_t dim : kDims) {
      for (const Dtypes& d : kAddDtypes) {
        for (Form form : kForms) {
          SCOPED_TRACE(trace(rows, dim, d, form));
          TestTensor residual(d.out, {rows, dim});
          TestTensor in(d.in, {rows, dim});
          TestTensor out(d.in, {rows, dim});
          run_fused_case(rng, residual, in, out, form, d.weight);
          if (HasFailure()) return;
        }
      }
    }
  }
}

// [A, B, D] views with padded row strides (as a per-head view of a wider buffer): padding
// must stay untouched (still NaN) and every row right.
TEST(FusedAddRmsNormGpu, StridedThreeDimensionalViews) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240604);
  for (DType t : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(t));
    TestTensor residual(t, {2, 3, 256}, {1000, 328, 1});
    TestTensor in(t, {2, 3, 256}, {960, 320, 1});
    TestTensor out(t, {2, 3, 256}, {800, 264, 1});
    run_fused_case(rng, residual, in, out, Form::kOnePlus, t);
  }
}

// Views that start off a 16-byte boundary take the scalar path; results must not change.
TEST(FusedAddRmsNormGpu, MisalignedViews) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240605);
  for (DType t : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(t));
    TestTensor residual(t, {3, 640}, {}, 1);
    TestTensor in(t, {3, 640}, {}, 3);
    TestTensor out(t, {3, 640}, {}, 5);
    run_fused_case(rng, residual, in, out, Form::kPlain, t);
  }
}

TEST(RmsNormGpu, InPlace) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240606);
  for (DType t : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(t));
    TestTensor x(t, {3, 2560});
    x.fill_random(rng, -2.0f, 2.0f);
    TestTensor original(t, {3, 2560});
    original.host() = x.host();
    const auto w = make_weight(Form::kPlain, t, 2560, rng);
    rms_norm({x.view(), x.view(), w->view(), kEps, false}, nullptr);
    x.download();
    expect_close_as(x, cpu_norm(original, &*w, false));
  }
}

// The fused kernel must give bit-for-bit what add_rms_norm followed by rms_norm gives: its
// second norm reads the residual as stored, with the same reduction order.
TEST(FusedAddRmsNormGpu, BitIdenticalToUnfusedPair) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240607);
  // An f32 residual into a bf16 GEMM input, and an all-bf16 stream (where the second norm
  // must see the residual rounded to bf16).
  for (const auto& [residual_dtype, out_dtype] :
       {std::pair{DType::kF32, DType::kBF16}, std::pair{DType::kBF16, DType::kF32}}) {
    for (int64_t dim : {7, 640, 5376}) {
      SCOPED_TRACE("D " + std::to_string(dim) + ", residual " + dtype_name(residual_dtype));
      TestTensor in(DType::kBF16, {5, dim});
      in.fill_random(rng, -2.0f, 2.0f);
      TestTensor residual_fused(residual_dtype, {5, dim});
      residual_fused.fill_random(rng, -4.0f, 4.0f);
      TestTensor residual_pair(residual_dtype, {5, dim});
      residual_pair.host() = residual_fused.host();
      residual_pair.upload();
      TestTensor out_fused(out_dtype, {5, dim});
      TestTensor out_pair(out_dtype, {5, dim});
      const auto w = make_weight(Form::kOnePlus, DType::kF32, dim, rng);
      const auto out_w = make_weight(Form::kOnePlus, DType::kF32, dim, rng);

      fused_add_rms_norm({residual_fused.view(), in.view(), w->view(), out_fused.view(),
                          out_w->view(), kEps, true},
                         nullptr);
      add_rms_norm({residual_pair.view(), in.view(), w->view(), kEps, true}, nullptr);
      rms_norm({out_pair.view(), residual_pair.view(), out_w->view(), kEps, true}, nullptr);
      for (TestTensor* t : {&residual_fused, &residual_pair, &out_fused, &out_pair}) {
        t->download();
      }
      EXPECT_EQ(view_values(residual_fused), view_values(residual_pair));
      EXPECT_EQ(view_values(out_fused), view_values(out_pair));
    }
  }
}

// ---- Argument checks: no device needed (the views point nowhere and are never read). ----

// rms_norm2: both outputs bit-identical to two rms_norm launches (the same f32 arithmetic in
// the same order), including out written in place over in.
TEST(RmsNorm2Gpu, BitIdenticalToTwoNorms) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240612);
  for (const int64_t dim : {2816, 37}) {
    for (const bool in_place : {false, true}) {
      SCOPED_TRACE("D " + std::to_string(dim) + (in_place ? ", out over in" : ""));
      TestTensor in(DType::kF32, {3, dim});
      in.fill_random(rng, -2.0f, 2.0f);
      const auto w = make_weight(Form::kPlain, DType::kF32, dim, rng);
      const auto w2 = make_weight(Form::kOnePlus, DType::kBF16, dim, rng);
      TestTensor want(DType::kF32, {3, dim}), want2(DType::kBF16, {3, dim});
      rms_norm({want.view(), in.view(), w->view(), kEps, true}, nullptr);
      rms_norm({want2.view(), in.view(), w2->view(), kEps, true}, nullptr);
      TestTensor out(DType::kF32, {3, dim}), out2(DType::kBF16, {3, dim});
      const Tensor out_view = in_place ? in.view() : out.view();
      rms_norm2({out_view, out2.view(), in.view(), w->view(), w2->view(), kEps, true}, nullptr);
      want.download();
      want2.download();
      out2.download();
      TestTensor& got = in_place ? in : out;
      got.download();
      int64_t differ = 0;
      for (int64_t r = 0; r < 3; ++r) {
        for (int64_t c = 0; c < dim; ++c) {
          differ += got.at(r, c) != want.at(r, c);
          differ += out2.at(r, c) != want2.at(r, c);
        }
      }
      EXPECT_EQ(differ, 0);
    }
  }
}

// residual_tail against rms_norm on the CPU composed by hand: b = norm(in) + norm(in2) (or
// in), residual = (residual + norm(b)) * scale rounded to its dtype, out = norm(residual).
struct TailCase {
  const char* name;
  int64_t rows, dim;
  bool two, with_out;
  float scale;
  Form form;
  DType residual, in, out, weight;
  int64_t pad;  // extra elements per row of every activation (0: 16-byte aligned rows)
};

void run_tail_case(const TailCase& c, std::mt19937& rng) {
  SCOPED_TRACE(c.name);
  const int64_t R = c.rows, D = c.dim;
  const bool one_plus = c.form == Form::kOnePlus;
  auto rows_of = [&](DType t) { return TestTensor(t, {R, D}, {D + c.pad, 1}); };
  TestTensor residual = rows_of(c.residual), in = rows_of(c.in), in2 = rows_of(c.in);
  TestTensor out = rows_of(c.out);
  residual.fill_random(rng, -2.0f, 2.0f);
  in.fill_random(rng, -3.0f, 3.0f);
  in2.fill_random(rng, -1.0f, 1.0f);
  out.upload();  // NaN: written only where it should be
  const auto w = make_weight(c.form, c.weight, D, rng),
             w_in = make_weight(c.form, c.weight, D, rng),
             w_in2 = make_weight(c.form, c.weight, D, rng),
             w_out = make_weight(c.form, c.weight, D, rng);

  // The reference, in f32 on the CPU.
  std::vector<double> b_ref = cpu_norm(in, w_in ? &*w_in : nullptr, one_plus);
  if (c.two) {
    const std::vector<double> n2 = cpu_norm(in2, w_in2 ? &*w_in2 : nullptr, one_plus);
    for (size_t i = 0; i < b_ref.size(); ++i) {
      b_ref[i] = static_cast<float>(static_cast<float>(b_ref[i]) + static_cast<float>(n2[i]));
    }
  } else {
    const std::vector<float> raw = view_values(in);
    b_ref.assign(raw.begin(), raw.end());
  }
  std::vector<float> b_f32(b_ref.begin(), b_ref.end()), normed(b_ref.size());
  std::vector<float> wv = w ? view_values(*w) : std::vector<float>{};
  cpu_ops().rms_norm({host_tensor(normed, {R, D}), host_tensor(b_f32, {R, D}),
                      w ? host_tensor(wv, {D}) : Tensor{}, kEps, one_plus});
  const std::vector<float> before = view_values(residual);
  TestTensor residual_ref = rows_of(c.residual);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t e = 0; e < D; ++e) {
      const float v = (before[r * D + e] + normed[r * D + e]) * c.scale;
      residual_ref.at(r, e) = round_to(v, c.residual);
    }
  }
  const std::vector<double> out_ref = cpu_norm(residual_ref, w_out ? &*w_out : nullptr, one_plus);

  ResidualTailArgs a;
  a.residual = residual.view();
  a.in = in.view();
  a.weight = view_or_none(w);
  if (c.two) {
    a.in2 = in2.view();
    a.in_weight = view_or_none(w_in);
    a.in2_weight = view_or_none(w_in2);
  }
  if (c.with_out) {
    a.out = out.view();
    a.out_weight = view_or_none(w_out);
  }
  a.scale = c.scale;
  a.eps = kEps;
  a.one_plus_weight = one_plus;
  ASSERT_TRUE(check_residual_tail(a).is_ok()) << check_residual_tail(a).message();
  residual_tail(a, nullptr);
  residual.download();
  out.download();
  const std::vector<float> want_residual = view_values(residual_ref);
  expect_close_as(residual, {want_residual.begin(), want_residual.end()});
  if (c.with_out) {
    expect_close_as(out, out_ref);
  } else {
    EXPECT_TRUE(std::isnan(out.at(0, 0))) << "out was written without being asked for";
  }
  EXPECT_EQ(residual.padding_written(), 0);
}

TEST(ResidualTailGpu, MatchesComposedReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240610);
  const TailCase cases[] = {
      {"gemma4 26b moe layer", 3, 2816, true, true, 0.71f, Form::kPlain, DType::kF32, DType::kF32,
       DType::kBF16, DType::kF32, 0},
      {"gemma4 dense layer end", 64, 5376, false, true, 1.3f, Form::kPlain, DType::kF32,
       DType::kF32, DType::kBF16, DType::kBF16, 0},
      {"last layer (no out)", 2, 640, true, false, 1.0f, Form::kOnePlus, DType::kF32, DType::kBF16,
       DType::kBF16, DType::kF32, 0},
      {"bf16 residual, odd rows (scalar path)", 5, 37, true, true, 0.5f, Form::kNone, DType::kBF16,
       DType::kBF16, DType::kF32, DType::kF32, 3},
  };
  for (const TailCase& c : cases) run_tail_case(c, rng);
}

constexpr uintptr_t kIn = 0x1000000, kOut = 0x2000000, kRes = 0x3000000, kW = 0x4000000,
                    kW2 = 0x5000000;

RmsNormArgs good_norm() {
  return {fake(kOut, DType::kBF16, {3, 256}), fake(kIn, DType::kF32, {3, 256}),
          fake(kW, DType::kF32, {256}), kEps, true};
}

TEST(RmsNormCheck, AcceptsValidArguments) {
  EXPECT_TRUE(check_rms_norm(good_norm()).is_ok());
  RmsNormArgs weightless = good_norm();
  weightless.weight = Tensor{};
  EXPECT_TRUE(check_rms_norm(weightless).is_ok());
  RmsNormArgs in_place = good_norm();
  in_place.out = in_place.in;
  EXPECT_TRUE(check_rms_norm(in_place).is_ok());
  RmsNormArgs heads = good_norm();  // QK-norm over [T, heads, head_dim]
  heads.in = fake(kIn, DType::kBF16, {4, 8, 256});
  heads.out = heads.in;
  EXPECT_TRUE(check_rms_norm(heads).is_ok());
  EXPECT_TRUE(
      check_add_rms_norm({fake(kRes, DType::kF32, {3, 256}), fake(kIn, DType::kBF16, {3, 256}),
                          fake(kW, DType::kBF16, {256}), kEps, false})
          .is_ok());
  EXPECT_TRUE(check_fused_add_rms_norm(
                  {fake(kRes, DType::kF32, {3, 256}), fake(kIn, DType::kBF16, {3, 256}),
                   fake(kW, DType::kF32, {256}), fake(kOut, DType::kBF16, {3, 256}),
                   fake(kW2, DType::kF32, {256}), kEps, true})
                  .is_ok());
}

TEST(RmsNormCheck, NamesTheBadTensor) {
  RmsNormArgs a = good_norm();
  a.out.device = Device::kCpu;
  expect_invalid(check_rms_norm(a), {"rms_norm: out", "host memory"});

  a = good_norm();
  a.in.data = nullptr;
  expect_invalid(check_rms_norm(a), {"rms_norm: in is undefined"});

  a = good_norm();
  a.weight = fake(kW, DType::kF32, {255});
  expect_invalid(check_rms_norm(a), {"weight has shape [255]", "expected [256]"});

  a = good_norm();
  a.in.dtype = DType::kI32;
  expect_invalid(check_rms_norm(a), {"in has dtype i32", "f32 or bf16"});

  a = good_norm();
  a.out = fake(kOut, DType::kBF16, {3, 255});
  expect_invalid(check_rms_norm(a), {"out has shape [3, 255] but in has [3, 256]"});

  a = good_norm();
  a.in.strides[1] = 2;
  a.in.strides[0] = 512;
  expect_invalid(check_rms_norm(a), {"in has stride 2 in its last dimension"});

  a = good_norm();
  a.in = fake(kIn, DType::kF32, {256});
  expect_invalid(check_rms_norm(a), {"in has shape [256]", "[rows, D] or [A, B, D]"});

  a = good_norm();
  a.eps = -1.0f;
  expect_invalid(check_rms_norm(a), {"eps is -1"});

  a = good_norm();  // out shifted by one row over in: neither disjoint nor in place
  a.out = fake(kIn + 256 * 4, DType::kF32, {3, 256});
  expect_invalid(check_rms_norm(a), {"out overlaps in"});

  expect_invalid(
      check_add_rms_norm({fake(kIn + 4, DType::kF32, {3, 256}), fake(kIn, DType::kF32, {3, 256}),
                          fake(kW, DType::kF32, {256}), kEps, false}),
      {"add_rms_norm: residual overlaps in"});

  expect_invalid(check_fused_add_rms_norm(
                     {fake(kRes, DType::kF32, {3, 256}), fake(kIn, DType::kBF16, {3, 256}),
                      fake(kW, DType::kF32, {256}), fake(kOut, DType::kBF16, {3, 256}),
                      fake(kW2, DType::kF32, {3, 256}), kEps, true}),
                 {"fused_add_rms_norm: out_weight has shape [3, 256]"});
}

TEST(RmsNormCheckDeathTest, LauncherAbortsNamingTheTensor) {
  RmsNormArgs a = good_norm();
  a.weight = fake(kW, DType::kF32, {255});
  EXPECT_DEATH(rms_norm(a, nullptr), "rms_norm: weight has shape \\[255\\]");
}

TEST(RmsNorm2Check, NamesTheBadArgument) {
  auto good = [] {
    return RmsNorm2Args{fake(kOut, DType::kF32, {3, 256}),
                        fake(kRes, DType::kBF16, {3, 256}),
                        fake(kIn, DType::kF32, {3, 256}),
                        fake(kW, DType::kF32, {256}),
                        fake(kW2, DType::kF32, {256}),
                        kEps,
                        false};
  };
  EXPECT_TRUE(check_rms_norm2(good()).is_ok()) << check_rms_norm2(good()).message();
  RmsNorm2Args a = good();
  a.out = a.in;  // in place
  EXPECT_TRUE(check_rms_norm2(a).is_ok()) << check_rms_norm2(a).message();
  a = good();
  a.out2 = a.in;
  expect_invalid(check_rms_norm2(a), {"rms_norm2: out2 overlaps in"});
  a = good();
  a.out2 = fake(kRes, DType::kBF16, {3, 128});
  expect_invalid(check_rms_norm2(a), {"out2 has shape [3, 128]"});
  a = good();
  a.weight2 = fake(kW2, DType::kF32, {255});
  expect_invalid(check_rms_norm2(a), {"weight2 has shape [255]"});
}

TEST(ResidualTailCheck, NamesTheBadArgument) {
  auto good = [] {
    ResidualTailArgs a;
    a.residual = fake(kRes, DType::kF32, {3, 256});
    a.in = fake(kIn, DType::kF32, {3, 256});
    a.weight = fake(kW, DType::kF32, {256});
    a.out = fake(kOut, DType::kBF16, {3, 256});
    a.out_weight = fake(kW2, DType::kF32, {256});
    return a;
  };
  EXPECT_TRUE(check_residual_tail(good()).is_ok()) << check_residual_tail(good()).message();

  ResidualTailArgs a = good();
  a.in_weight = fake(kW2, DType::kF32, {256});
  expect_invalid(check_residual_tail(a), {"residual_tail: in_weight or in2_weight is given "
                                          "without in2"});

  a = good();
  a.in2 = fake(kIn, DType::kF32, {3, 255});
  expect_invalid(check_residual_tail(a), {"in2 has shape [3, 255]", "residual"});

  a = good();
  a.out = a.in;
  a.out.dtype = DType::kBF16;
  expect_invalid(check_residual_tail(a), {"out overlaps in"});

  a = good();
  a.residual = fake(kRes, DType::kF32, {3, 8, 256});
  a.in = fake(kIn, DType::kF32, {3, 8, 256});
  expect_invalid(check_residual_tail(a), {"residual has", "[rows, D]"});

  a = good();
  a.scale = std::nanf("");
  expect_invalid(check_residual_tail(a), {"scale is nan"});

  a = good();
  a.out_weight = fake(kW2, DType::kF32, {128});
  expect_invalid(check_residual_tail(a), {"out_weight has shape [128]"});
}

}  // namespace
}  // namespace sluice::kernels::cuda
