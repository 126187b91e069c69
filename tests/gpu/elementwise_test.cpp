// CUDA elementwise and row ops (kernels/cuda/elementwise.h) against the CPU backend
// (cpu_ops(), the contracts of kernels/ops.h) on the same values, and argmax against a host
// argmax. The argument checks run everywhere; the kernel tests skip cleanly without a device.
//
// Ops that are one f32 operation per element (add, scale, convert, gather_rows, embedding)
// must match the reference bit for bit after the output's one rounding; geglu and softcap
// (transcendentals) match to f32 rounding, or to one bf16 step after rounding.

#include "kernels/cuda/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "kernels/ops.h"  // cpu_ops(): the reference

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

constexpr DType kF32 = DType::kF32;
constexpr DType kBF16 = DType::kBF16;

// The values of a view, row-major (host copy as the device holds them).
std::vector<float> view_values(const TestTensor& t) {
  std::vector<float> v;
  v.reserve(t.rows() * t.dim());
  for (int64_t r = 0; r < t.rows(); ++r) {
    for (int64_t c = 0; c < t.dim(); ++c) v.push_back(t.at(r, c));
  }
  return v;
}

// Columns [col0, col0 + dim) of every row of `t`, row-major (a half of a fused projection).
std::vector<float> column_values(const TestTensor& t, int64_t col0, int64_t dim) {
  std::vector<float> v;
  for (int64_t r = 0; r < t.rows(); ++r) {
    for (int64_t c = 0; c < dim; ++c) v.push_back(t.at(r, col0 + c));
  }
  return v;
}

Tensor host_tensor(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return Tensor::make(v.data(), kF32, shape);
}

// A [rows, dim] view of columns [col0, col0 + dim) of a 2-D TestTensor.
Tensor column_view(const TestTensor& t, int64_t col0, int64_t dim) {
  Tensor v = t.view();
  v.data = static_cast<uint8_t*>(v.data) + col0 * dtype_size(v.dtype);
  v.shape[1] = dim;
  return v;
}

// Device copy of host indices; lives as long as the returned buffer.
struct DeviceIds {
  explicit DeviceIds(const std::vector<int32_t>& ids)
      : buffer(ids.size() * sizeof(int32_t)), count(static_cast<int64_t>(ids.size())) {
    if (!ids.empty()) buffer.upload(ids.data());
  }
  Tensor view() const { return Tensor::make(buffer.data(), DType::kI32, {count}, Device::kCuda); }
  std::vector<int32_t> download() const {
    std::vector<int32_t> v(count);
    if (count > 0) buffer.download(v.data());
    return v;
  }
  DeviceBuffer buffer;
  int64_t count;
};

enum class Match { kExact, kClose };

// `got` (values as downloaded, row-major) against the f32 reference `ref` for an output of
// dtype `t`. kExact: got == round_to(ref, t) for every element. kClose: each element within
// f32 rounding (f32) or one bf16 step of round_to(ref) (bf16), and ||got - ref|| / ||ref||
// within 1e-5 (f32) or 1e-2 (bf16). NaN in `got` (an unwritten element) always fails.
void expect_matches(const std::vector<float>& got, const std::vector<float>& ref, DType t,
                    Match match) {
  ASSERT_EQ(got.size(), ref.size());
  double max_ref = 0.0;
  for (float v : ref) {
    if (std::isfinite(v)) max_ref = std::max(max_ref, std::fabs(static_cast<double>(v)));
  }
  double err2 = 0.0, ref2 = 0.0;
  int64_t num_bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = round_to(ref[i], t);
    bool ok;
    if (std::isnan(got[i]) || std::isnan(want)) {
      ok = false;
    } else if (match == Match::kExact) {
      ok = got[i] == want;
    } else {
      const double rtol = t == kBF16 ? 1.0 / 128 : 2e-5;
      ok = std::fabs(got[i] - want) <= rtol * std::fabs(ref[i]) + 1e-6 * max_ref;
    }
    if (!ok && num_bad++ < 5) {
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want
                    << " (reference before rounding " << ref[i] << ")";
    }
    if (!std::isfinite(want) || !std::isfinite(ref[i])) continue;  // checked exactly above
    const double diff = static_cast<double>(got[i]) - ref[i];
    err2 += diff * diff;
    ref2 += static_cast<double>(ref[i]) * ref[i];
  }
  EXPECT_EQ(num_bad, 0) << "elements off the reference";
  const double rel = ref2 > 0.0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  EXPECT_LE(rel, t == kBF16 ? 1e-2 : 1e-5) << "||out - ref|| / ||ref||";
}

// ---- References (CPU backend on contiguous f32 copies). ----

std::vector<float> cpu_add(std::vector<float> a, std::vector<float> b) {
  const auto n = static_cast<int64_t>(a.size());
  std::vector<float> out(a.size());
  cpu_ops().add({host_tensor(out, {n}), host_tensor(a, {n}), host_tensor(b, {n})});
  return out;
}

std::vector<float> cpu_scale(std::vector<float> x, float s) {
  cpu_ops().scale({host_tensor(x, {static_cast<int64_t>(x.size())}), s});
  return x;
}

std::vector<float> cpu_softcap(std::vector<float> x, float cap) {
  cpu_ops().softcap({host_tensor(x, {static_cast<int64_t>(x.size())}), cap});
  return x;
}

std::vector<float> cpu_geglu(std::vector<float> gate, std::vector<float> up, int64_t rows,
                             int64_t dim) {
  std::vector<float> out(gate.size());
  cpu_ops().geglu({host_tensor(out, {rows, dim}), host_tensor(gate, {rows, dim}),
                   host_tensor(up, {rows, dim})});
  return out;
}

// Rows `ids` of `table` ([V, H] values) times scale; ids outside [0, V) give zeros.
std::vector<float> cpu_embedding(std::vector<float> table, int64_t vocab, int64_t hidden,
                                 const std::vector<int32_t>& ids, float scale) {
  std::vector<int32_t> valid;
  for (int32_t id : ids) valid.push_back(id >= 0 && id < vocab ? id : 0);
  const auto num = static_cast<int64_t>(ids.size());
  std::vector<float> out(num * hidden);
  if (num > 0 && vocab > 0) {
    cpu_ops().embedding({host_tensor(out, {num, hidden}), host_tensor(table, {vocab, hidden}),
                         Tensor::make(valid.data(), DType::kI32, {num}), scale});
  }
  for (int64_t t = 0; t < num; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) std::fill_n(out.begin() + t * hidden, hidden, 0.0f);
  }
  return out;
}

// ---- Shapes. ----

constexpr int64_t kRowCounts[] = {1, 3, 64};
constexpr int64_t kDims[] = {1, 7, 8, 256, 640, 2049, 5376};

std::string shape_trace(int64_t rows, int64_t dim) {
  return "rows " + std::to_string(rows) + ", D " + std::to_string(dim);
}

// Layout variants of a [rows, dim] tensor: contiguous, padded row stride (a view into a
// wider buffer), and a view one element off a 16-byte boundary (the scalar path).
enum class Layout { kContiguous, kStrided, kMisaligned };
constexpr Layout kLayouts[] = {Layout::kContiguous, Layout::kStrided, Layout::kMisaligned};

const char* layout_name(Layout l) {
  return l == Layout::kContiguous ? "contiguous"
                                  : (l == Layout::kStrided ? "strided" : "misaligned");
}

TestTensor make_rows(DType t, int64_t rows, int64_t dim, Layout layout) {
  switch (layout) {
    case Layout::kContiguous:
      return TestTensor(t, {rows, dim});
    case Layout::kStrided:
      return TestTensor(t, {rows, dim}, {dim + 24, 1});
    case Layout::kMisaligned:
      return TestTensor(t, {rows, dim}, {}, 1);
  }
  return TestTensor(t, {rows, dim});
}

constexpr DType kFloatTypes[] = {kF32, kBF16};

// Calls run(rows, dim, variant, layout) for every case of the sweep kRowCounts x kDims x
// `variants` x kLayouts, under the trace "rows R, D N, <describe(variant)>, <layout>".
// Stops at the first failing case: it says enough.
template <typename Variant, size_t N, typename Describe, typename Run>
void for_each_case(const Variant (&variants)[N], Describe describe, Run run) {
  for (int64_t rows : kRowCounts) {
    for (int64_t dim : kDims) {
      for (const Variant& v : variants) {
        for (Layout layout : kLayouts) {
          SCOPED_TRACE(shape_trace(rows, dim) + ", " + describe(v) + ", " + layout_name(layout));
          run(rows, dim, v, layout);
          if (::testing::Test::HasFailure()) return;
        }
      }
    }
  }
}

// ---- add ----

struct AddDtypes {
  DType out, a, b;
};
constexpr AddDtypes kAddDtypes[] = {
    {kF32, kF32, kF32}, {kBF16, kBF16, kBF16}, {kF32, kBF16, kF32}, {kBF16, kF32, kBF16}};

TEST(AddGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250101);
  for_each_case(
      kAddDtypes,
      [](const AddDtypes& d) {
        return std::string("out ") + dtype_name(d.out) + " a " + dtype_name(d.a) + " b " +
               dtype_name(d.b);
      },
      [&](int64_t rows, int64_t dim, const AddDtypes& d, Layout layout) {
        TestTensor a = make_rows(d.a, rows, dim, layout);
        TestTensor b(d.b, {rows, dim});
        TestTensor out = make_rows(d.out, rows, dim, layout);
        a.fill_random(rng, -4.0f, 4.0f);
        b.fill_random(rng, -4.0f, 4.0f);
        add({out.view(), a.view(), b.view()}, nullptr);
        out.download();
        expect_matches(view_values(out), cpu_add(view_values(a), view_values(b)), d.out,
                       Match::kExact);
        EXPECT_EQ(out.padding_written(), 0);
      });
}

// out = a and out = b exactly (in place), and [A, B, D] views with padded strides.
TEST(AddGpu, InPlaceAndThreeDimensionalViews) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250102);
  for (DType t : {kF32, kBF16}) {
    for (bool into_a : {true, false}) {
      SCOPED_TRACE(std::string(dtype_name(t)) + (into_a ? ", out = a" : ", out = b"));
      TestTensor x(t, {5, 640});
      TestTensor y(kF32, {5, 640});
      x.fill_random(rng, -4.0f, 4.0f);
      y.fill_random(rng, -4.0f, 4.0f);
      const std::vector<float> ref = cpu_add(view_values(x), view_values(y));
      if (into_a) {
        add({x.view(), x.view(), y.view()}, nullptr);
      } else {
        add({x.view(), y.view(), x.view()}, nullptr);
      }
      x.download();
      expect_matches(view_values(x), ref, t, Match::kExact);
    }
    SCOPED_TRACE(std::string(dtype_name(t)) + ", [2, 3, 256] strided");
    TestTensor a(t, {2, 3, 256}, {1000, 328, 1});
    TestTensor b(t, {2, 3, 256}, {960, 320, 1});
    TestTensor out(t, {2, 3, 256}, {800, 264, 1});
    a.fill_random(rng, -4.0f, 4.0f);
    b.fill_random(rng, -4.0f, 4.0f);
    add({out.view(), a.view(), b.view()}, nullptr);
    out.download();
    expect_matches(view_values(out), cpu_add(view_values(a), view_values(b)), t, Match::kExact);
    EXPECT_EQ(out.padding_written(), 0);
  }
}

// ---- scale ----

TEST(ScaleGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250103);
  constexpr float kScale = 0.70710678f;  // a Gemma 4-like layer scalar: not a power of two
  for_each_case(kFloatTypes, dtype_name, [&](int64_t rows, int64_t dim, DType t, Layout layout) {
    TestTensor x = make_rows(t, rows, dim, layout);
    x.fill_random(rng, -8.0f, 8.0f);
    const std::vector<float> ref = cpu_scale(view_values(x), kScale);
    scale({x.view(), kScale}, nullptr);
    x.download();
    expect_matches(view_values(x), ref, t, Match::kExact);
    EXPECT_EQ(x.padding_written(), 0);
  });
}

TEST(ScaleGpu, RankOneAndThreeDimensionalViews) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250104);
  for (DType t : {kF32, kBF16}) {
    SCOPED_TRACE(dtype_name(t));
    TestTensor v(t, {4097});
    v.fill_random(rng, -8.0f, 8.0f);
    std::vector<float> ref = cpu_scale(view_values(v), -3.25f);
    scale({v.view(), -3.25f}, nullptr);
    v.download();
    expect_matches(view_values(v), ref, t, Match::kExact);

    TestTensor x(t, {3, 4, 100}, {520, 128, 1}, 3);
    x.fill_random(rng, -8.0f, 8.0f);
    ref = cpu_scale(view_values(x), 1.5f);
    scale({x.view(), 1.5f}, nullptr);
    x.download();
    expect_matches(view_values(x), ref, t, Match::kExact);
    EXPECT_EQ(x.padding_written(), 0);
  }
}

// ---- softcap ----

TEST(SoftcapGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250105);
  for_each_case(kFloatTypes, dtype_name, [&](int64_t rows, int64_t dim, DType t, Layout layout) {
    TestTensor x = make_rows(t, rows, dim, layout);
    x.fill_random(rng, -100.0f, 100.0f);  // logits around Gemma's cap of 30
    const std::vector<float> ref = cpu_softcap(view_values(x), 30.0f);
    softcap({x.view(), 30.0f}, nullptr);
    x.download();
    expect_matches(view_values(x), ref, t, Match::kClose);
    EXPECT_EQ(x.padding_written(), 0);
  });
}

// Logits of a large vocabulary, and the saturated ends of tanh.
TEST(SoftcapGpu, VocabularyRowsAndSaturation) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250106);
  TestTensor x(kF32, {2, 262144});
  x.fill_random(rng, -50.0f, 50.0f);
  x.at(0, 0) = 1e30f;
  x.at(0, 1) = -1e30f;
  x.at(1, 7) = std::numeric_limits<float>::infinity();
  x.at(1, 8) = -std::numeric_limits<float>::infinity();
  x.upload();
  const std::vector<float> ref = cpu_softcap(view_values(x), 30.0f);
  softcap({x.view(), 30.0f}, nullptr);
  x.download();
  expect_matches(view_values(x), ref, kF32, Match::kClose);
  EXPECT_EQ(x.at(1, 7), 30.0f);
  EXPECT_EQ(x.at(1, 8), -30.0f);
}

// ---- convert ----

TEST(ConvertGpu, MatchesRoundingOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250107);
  const std::pair<DType, DType> kPairs[] = {
      {kF32, kBF16}, {kBF16, kF32}, {kF32, kF32}, {kBF16, kBF16}};
  for_each_case(
      kPairs,
      [](const std::pair<DType, DType>& p) {
        return std::string(dtype_name(p.first)) + " -> " + dtype_name(p.second);
      },
      [&](int64_t rows, int64_t dim, const std::pair<DType, DType>& p, Layout layout) {
        const auto [from, to] = p;
        TestTensor in = make_rows(from, rows, dim, layout);
        TestTensor out(to, {rows, dim}, {dim + 8, 1});
        in.fill_random(rng, -1000.0f, 1000.0f);
        convert({out.view(), in.view()}, nullptr);
        out.download();
        expect_matches(view_values(out), view_values(in), to, Match::kExact);
        EXPECT_EQ(out.padding_written(), 0);
      });
}

// Round to nearest even at the exact halfway points, and specials.
TEST(ConvertGpu, RoundsHalfwayCasesToEven) {
  SLUICE_SKIP_WITHOUT_GPU();
  auto from_bits = [](uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  TestTensor in(kF32, {1, 16});
  const float values[16] = {from_bits(0x3f808000u),  // 1 + 2^-8: halfway, rounds down (even)
                            from_bits(0x3f818000u),  // halfway, rounds up (to even)
                            from_bits(0x3f808001u),  // just above halfway: up
                            from_bits(0xbf808000u),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            3.4e38f,  // rounds to +inf in bf16
                            1e-40f,   // subnormal
                            0.0f,
                            -0.0f,
                            1.0f,
                            -2.5f,
                            65504.0f,
                            1e-3f,
                            123.456f,
                            -7e-20f};
  for (int c = 0; c < 16; ++c) in.at(0, c) = values[c];
  in.upload();
  TestTensor out(kBF16, {1, 16});
  convert({out.view(), in.view()}, nullptr);
  out.download();
  expect_matches(view_values(out), view_values(in), kBF16, Match::kExact);
  EXPECT_TRUE(std::signbit(out.at(0, 9)));
}

// ---- geglu ----

struct GegluDtypes {
  DType out, gate, up;
};
constexpr GegluDtypes kGegluDtypes[] = {
    {kF32, kF32, kF32}, {kBF16, kBF16, kBF16}, {kBF16, kF32, kF32}, {kF32, kBF16, kBF16}};

TEST(GegluGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250108);
  for_each_case(
      kGegluDtypes,
      [](const GegluDtypes& d) {
        return std::string("out ") + dtype_name(d.out) + " gate " + dtype_name(d.gate) + " up " +
               dtype_name(d.up);
      },
      [&](int64_t rows, int64_t dim, const GegluDtypes& d, Layout layout) {
        TestTensor gate = make_rows(d.gate, rows, dim, layout);
        TestTensor up = make_rows(d.up, rows, dim, layout);
        TestTensor out = make_rows(d.out, rows, dim, layout);
        gate.fill_random(rng, -5.0f, 5.0f);
        up.fill_random(rng, -2.0f, 2.0f);
        geglu({out.view(), gate.view(), up.view()}, nullptr);
        out.download();
        expect_matches(view_values(out), cpu_geglu(view_values(gate), view_values(up), rows, dim),
                       d.out, Match::kClose);
        EXPECT_EQ(out.padding_written(), 0);
      });
}

// gate and up as the two halves of one [T, 2I] projection, with out separate, out = gate
// and out = up (in place over the fused buffer).
TEST(GegluGpu, FusedProjectionHalvesAndAliasing) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250109);
  enum class Into { kSeparate, kGate, kUp };
  for (DType t : {kF32, kBF16}) {
    for (int64_t inter : {7, 640, 2112}) {
      for (Into into : {Into::kSeparate, Into::kGate, Into::kUp}) {
        SCOPED_TRACE(
            std::string(dtype_name(t)) + ", I " + std::to_string(inter) + ", out " +
            (into == Into::kSeparate ? "separate" : (into == Into::kGate ? "= gate" : "= up")));
        constexpr int64_t kTokens = 9;
        TestTensor fused(t, {kTokens, 2 * inter});
        fused.fill_random(rng, -5.0f, 5.0f);
        const Tensor gate = column_view(fused, 0, inter);
        const Tensor up = column_view(fused, inter, inter);
        const std::vector<float> ref = cpu_geglu(
            column_values(fused, 0, inter), column_values(fused, inter, inter), kTokens, inter);
        TestTensor out(t, {kTokens, inter});
        const Tensor out_view =
            into == Into::kSeparate ? out.view() : (into == Into::kGate ? gate : up);
        geglu({out_view, gate, up}, nullptr);
        if (into == Into::kSeparate) {
          out.download();
          expect_matches(view_values(out), ref, t, Match::kClose);
          continue;
        }
        const std::vector<float> before = fused.host();
        fused.download();
        const int64_t col0 = into == Into::kGate ? 0 : inter;
        expect_matches(column_values(fused, col0, inter), ref, t, Match::kClose);
        // The other half is untouched.
        const int64_t other = into == Into::kGate ? inter : 0;
        for (int64_t r = 0; r < kTokens; ++r) {
          for (int64_t c = 0; c < inter; ++c) {
            const int64_t i = fused.index(r, other + c);
            ASSERT_EQ(fused.host()[i], before[i]) << "row " << r << " col " << other + c;
          }
        }
      }
    }
  }
}

// ---- embedding ----

TEST(EmbeddingGpu, MatchesReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250110);
  struct Case {
    int64_t vocab, hidden;
    DType table, out;
    Layout out_layout;
  };
  const Case cases[] = {
      {262144, 8, kBF16, kF32, Layout::kContiguous},  // Gemma's vocabulary, small H
      {262144, 16, kF32, kBF16, Layout::kStrided},
      {1000, 640, kBF16, kBF16, Layout::kContiguous},
      {1000, 640, kBF16, kF32, Layout::kMisaligned},
      {517, 7, kF32, kF32, Layout::kStrided},  // odd H: scalar path
      {300, 2560, kBF16, kBF16, Layout::kStrided},
  };
  for (const Case& c : cases) {
    for (int64_t tokens : {1, 37}) {
      SCOPED_TRACE("V " + std::to_string(c.vocab) + ", H " + std::to_string(c.hidden) + ", T " +
                   std::to_string(tokens) + ", table " + dtype_name(c.table) + ", out " +
                   dtype_name(c.out) + ", " + layout_name(c.out_layout));
      TestTensor table(c.table, {c.vocab, c.hidden});
      table.fill_random(rng, -1.0f, 1.0f);
      std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c.vocab - 1));
      std::vector<int32_t> ids(tokens);
      for (auto& id : ids) id = pick(rng);
      ids[0] = static_cast<int32_t>(c.vocab - 1);  // the last row of the table
      if (tokens > 2) ids[2] = ids[1];             // a repeated token
      const DeviceIds device_ids(ids);
      TestTensor out = make_rows(c.out, tokens, c.hidden, c.out_layout);
      const float s = std::sqrt(static_cast<float>(c.hidden));  // Gemma's normaliser
      embedding({out.view(), table.view(), device_ids.view(), s}, nullptr);
      out.download();
      expect_matches(view_values(out), cpu_embedding(view_values(table), c.vocab, c.hidden, ids, s),
                     c.out, Match::kExact);
      EXPECT_EQ(out.padding_written(), 0);
      if (HasFailure()) return;
    }
  }
}

// Ids outside [0, V) (which callers must not pass) write zero rows and read nothing.
TEST(EmbeddingGpu, OutOfRangeIdsWriteZeros) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250111);
  for (DType t : {kF32, kBF16}) {
    SCOPED_TRACE(dtype_name(t));
    TestTensor table(t, {100, 256});
    table.fill_random(rng, -1.0f, 1.0f);
    const std::vector<int32_t> ids = {
        5, -1, 100, 99, std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min(),
        0};
    const DeviceIds device_ids(ids);
    TestTensor out(t, {static_cast<int64_t>(ids.size()), 256});
    embedding({out.view(), table.view(), device_ids.view(), 2.0f}, nullptr);
    out.download();
    expect_matches(view_values(out), cpu_embedding(view_values(table), 100, 256, ids, 2.0f), t,
                   Match::kExact);
  }
}

// ---- gather_rows ----

TEST(GatherRowsGpu, MatchesReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250112);
  const std::pair<DType, DType> kPairs[] = {
      {kF32, kF32}, {kBF16, kBF16}, {kF32, kBF16}, {kBF16, kF32}};
  for (int64_t dim : kDims) {
    for (const auto& [from, to] : kPairs) {
      for (Layout layout : kLayouts) {
        SCOPED_TRACE("D " + std::to_string(dim) + ", " + dtype_name(from) + " -> " +
                     dtype_name(to) + ", " + layout_name(layout));
        constexpr int64_t kInRows = 50;
        TestTensor in = make_rows(from, kInRows, dim, layout);
        in.fill_random(rng, -3.0f, 3.0f);
        std::vector<int32_t> rows = {49, 0, 7, 7, 13, 48, 2};
        rows.push_back(-3);       // out of range: zeros
        rows.push_back(kInRows);  // out of range: zeros
        const DeviceIds device_rows(rows);
        TestTensor out = make_rows(to, static_cast<int64_t>(rows.size()), dim, layout);
        gather_rows({out.view(), in.view(), device_rows.view()}, nullptr);
        out.download();
        expect_matches(view_values(out), cpu_embedding(view_values(in), kInRows, dim, rows, 1.0f),
                       to, Match::kExact);
        EXPECT_EQ(out.padding_written(), 0);
        if (HasFailure()) return;
      }
    }
  }
}

// ---- argmax ----

// The contract's argmax: the largest non-NaN value, lowest index on ties; 0 for a row of NaN.
int32_t host_argmax(const TestTensor& logits, int64_t row) {
  int32_t best_i = -1;
  float best = 0.0f;
  for (int64_t c = 0; c < logits.dim(); ++c) {
    const float v = logits.at(row, c);
    if (std::isnan(v)) continue;
    if (best_i < 0 || v > best) {
      best = v;
      best_i = static_cast<int32_t>(c);
    }
  }
  return best_i < 0 ? 0 : best_i;
}

void expect_argmax(const TestTensor& logits) {
  DeviceIds out(std::vector<int32_t>(logits.rows()));
  SLUICE_CUDA_CHECK(cudaMemset(out.buffer.data(), 0xFF, logits.rows() * sizeof(int32_t)));
  argmax({out.view(), logits.view()}, nullptr);
  const std::vector<int32_t> got = out.download();
  for (int64_t r = 0; r < logits.rows(); ++r) {
    EXPECT_EQ(got[r], host_argmax(logits, r)) << "row " << r;
  }
}

TEST(ArgmaxGpu, RandomRowsOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250113);
  for (int64_t vocab : {1, 3, 4, 7, 1000, 4097, 262144}) {
    for (int64_t rows : {1, 5, 33}) {
      for (Layout layout : kLayouts) {
        SCOPED_TRACE("V " + std::to_string(vocab) + ", rows " + std::to_string(rows) + ", " +
                     layout_name(layout));
        TestTensor logits = make_rows(kF32, rows, vocab, layout);
        logits.fill_random(rng, -10.0f, 10.0f);
        expect_argmax(logits);
        if (HasFailure()) return;
      }
    }
  }
}

// Ties, infinities and NaN, planted where different threads and warps see them.
TEST(ArgmaxGpu, TiesInfinitiesAndNan) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20250114);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::nanf("");
  for (int64_t vocab : {1003, 262144}) {
    for (Layout layout : kLayouts) {
      SCOPED_TRACE("V " + std::to_string(vocab) + ", " + layout_name(layout));
      TestTensor logits = make_rows(kF32, 10, vocab, layout);
      logits.fill_random(rng, -10.0f, 10.0f);
      auto fill_row = [&](int64_t r, float v) {
        for (int64_t c = 0; c < vocab; ++c) logits.at(r, c) = v;
      };
      const int64_t last = vocab - 1;
      // 0: a three-way tie of the maximum, the lowest index not scanned first.
      for (int64_t c : {last, vocab / 2, int64_t{17}}) logits.at(0, c) = 50.0f;
      fill_row(1, -inf);  // all -inf: index 0
      fill_row(2, nan);   // NaN everywhere but one value
      logits.at(2, vocab / 2 + 1) = -5.0f;
      fill_row(3, nan);       // all NaN: index 0
      logits.at(4, 0) = nan;  // NaN first, then two +inf
      logits.at(4, 5) = inf;
      logits.at(4, last) = inf;
      fill_row(5, -inf);  // NaN at 0, the rest -inf: index 1
      logits.at(5, 0) = nan;
      logits.at(6, last) = 99.0f;  // the maximum in the last (possibly scalar-tail) column
      fill_row(7, 1.25f);          // constant row: index 0
      for (int64_t c = 0; c < vocab; c += 2) logits.at(8, c) = nan;  // NaN interleaved
      logits.at(9, last) = nan;
      logits.at(9, last - 1) = 77.0f;
      logits.upload();
      expect_argmax(logits);
      const std::vector<int32_t> expected = {17, 0, static_cast<int32_t>(vocab / 2 + 1), 0,
                                             5,  1, static_cast<int32_t>(last),          0};
      for (size_t r = 0; r < expected.size(); ++r) {
        EXPECT_EQ(host_argmax(logits, static_cast<int64_t>(r)), expected[r]) << "row " << r;
      }
      if (HasFailure()) return;
    }
  }
}

// ---- Argument checks: no device needed (the views point nowhere and are never read). ----

// Columns [col0, col0 + cols) of a fake [rows, width] tensor.
Tensor fake_columns(uintptr_t address, DType t, int64_t rows, int64_t width, int64_t col0,
                    int64_t cols) {
  Tensor v = fake(address + col0 * dtype_size(t), t, {rows, cols});
  v.strides[0] = width;
  return v;
}

// 64 GiB apart: no fake view reaches the next.
constexpr uintptr_t kA = uintptr_t{1} << 36, kB = uintptr_t{2} << 36, kOut = uintptr_t{3} << 36,
                    kIds = uintptr_t{4} << 36;

EmbeddingArgs good_embedding() {
  return {fake(kOut, kF32, {4, 640}), fake(kA, kBF16, {262144, 640}), fake(kIds, DType::kI32, {4}),
          25.3f};
}

TEST(EmbeddingCheck, AcceptsAndRejects) {
  EXPECT_TRUE(check_embedding(good_embedding()).is_ok());
  EmbeddingArgs a = good_embedding();
  a.out.strides[0] = 1000;  // a row-strided output
  EXPECT_TRUE(check_embedding(a).is_ok());

  a = good_embedding();
  a.ids.device = Device::kCpu;
  expect_invalid(check_embedding(a), {"embedding: ids", "host memory"});
  a = good_embedding();
  a.ids = fake(kIds, DType::kI32, {5});
  expect_invalid(check_embedding(a), {"ids has shape [5]", "[4]"});
  a = good_embedding();
  a.ids.dtype = DType::kF32;
  expect_invalid(check_embedding(a), {"ids has dtype f32", "i32"});
  a = good_embedding();
  a.table.strides[0] = 1280;
  expect_invalid(check_embedding(a), {"table has row stride 1280", "contiguous"});
  a = good_embedding();
  a.table.dtype = DType::kF16;
  expect_invalid(check_embedding(a), {"table has dtype f16", "f32 or bf16"});
  a = good_embedding();
  a.out = fake(kOut, kF32, {4, 641});
  expect_invalid(check_embedding(a), {"out has shape [4, 641]", "expected [T, 640]"});
  a = good_embedding();
  a.scale = std::nanf("");
  expect_invalid(check_embedding(a), {"scale is nan"});
  a = good_embedding();
  a.out = fake(kA + 64, kF32, {4, 640});
  expect_invalid(check_embedding(a), {"out overlaps table"});
}

GegluArgs good_geglu() {
  // gate and up: the halves of one fused [8, 2 * 512] bf16 projection.
  return {fake(kOut, kBF16, {8, 512}), fake_columns(kA, kBF16, 8, 1024, 0, 512),
          fake_columns(kA, kBF16, 8, 1024, 512, 512)};
}

TEST(GegluCheck, AcceptsFusedHalvesAndExactAliases) {
  EXPECT_TRUE(check_geglu(good_geglu()).is_ok());
  GegluArgs a = good_geglu();
  a.out = a.gate;
  EXPECT_TRUE(check_geglu(a).is_ok());
  a = good_geglu();
  a.out = a.up;
  EXPECT_TRUE(check_geglu(a).is_ok());
  a = good_geglu();
  a.out = fake(kOut, kF32, {8, 512});
  a.gate = fake(kA, kF32, {8, 512});
  a.up = fake(kB, kBF16, {8, 512});
  EXPECT_TRUE(check_geglu(a).is_ok());
}

TEST(GegluCheck, RejectsPartialOverlapAndBadShapes) {
  GegluArgs a = good_geglu();
  a.out = fake_columns(kA, kBF16, 8, 1024, 1, 512);  // one element into gate and up
  expect_invalid(check_geglu(a), {"geglu: out overlaps gate", "same view"});
  a = good_geglu();
  a.out = fake_columns(kA, kF32, 8, 512, 256, 512);  // f32 rows straddling up and the next gate
  expect_invalid(check_geglu(a), {"out overlaps"});
  a = good_geglu();
  a.out = fake(kA, kBF16, {8, 512});  // contiguous over the fused rows: overlaps both
  expect_invalid(check_geglu(a), {"out overlaps gate"});
  a = good_geglu();
  a.up = fake(kB, kBF16, {8, 511});
  expect_invalid(check_geglu(a), {"up has shape [8, 511] but gate has [8, 512]"});
  a = good_geglu();
  a.gate.strides[1] = 2;
  expect_invalid(check_geglu(a), {"gate has stride 2 in its last dimension"});
  a = good_geglu();
  a.out = fake(kOut, kBF16, {2, 4, 512});
  expect_invalid(check_geglu(a), {"out has shape [2, 4, 512]", "[T, I]"});
}

TEST(SoftcapScaleCheck, AcceptsAndRejects) {
  EXPECT_TRUE(check_softcap({fake(kA, kF32, {4, 262144}), 30.0f}).is_ok());
  EXPECT_TRUE(check_softcap({fake(kA, kBF16, {262144}), 30.0f}).is_ok());
  expect_invalid(check_softcap({fake(kA, kF32, {4, 100}), 0.0f}), {"softcap: cap is 0", "> 0"});
  expect_invalid(check_softcap({fake(kA, kF32, {4, 100}), -1.0f}), {"cap is -1"});
  expect_invalid(check_softcap({fake(kA, kF32, {2, 2, 2, 100}), 30.0f}),
                 {"x has shape [2, 2, 2, 100]", "[D], [R, D] or [A, B, D]"});
  expect_invalid(check_softcap({fake(kA, kF32, {4, 100}, Device::kCpu), 30.0f}),
                 {"x is in host memory"});
  EXPECT_TRUE(check_scale({fake(kA, kBF16, {3, 4, 100}), 0.5f}).is_ok());
  expect_invalid(check_scale({fake(kA, kBF16, {3, 100}), std::numeric_limits<float>::infinity()}),
                 {"scale: scale is inf"});
  expect_invalid(check_scale({fake(kA, DType::kI32, {3, 100}), 2.0f}),
                 {"x has dtype i32", "f32 or bf16"});
}

TEST(AddCheck, AcceptsAndRejects) {
  const AddArgs good{fake(kOut, kF32, {3, 640}), fake(kA, kBF16, {3, 640}),
                     fake(kB, kF32, {3, 640})};
  EXPECT_TRUE(check_add(good).is_ok());
  AddArgs a = good;
  a.out = a.a;
  EXPECT_TRUE(check_add(a).is_ok());
  a = good;
  a.out = a.b;
  EXPECT_TRUE(check_add(a).is_ok());
  a = good;
  a.out = fake(kB + 4, kF32, {3, 640});
  expect_invalid(check_add(a), {"add: out overlaps b"});
  a = good;
  a.out = fake(kA, kF32, {3, 640});  // a's memory at another dtype
  expect_invalid(check_add(a), {"out overlaps a"});
  a = good;  // [A, B, D] views whose rows are not one run, in separate buffers
  a.out = fake(kOut, kF32, {2, 3, 256});
  a.a = fake(kA, kBF16, {2, 3, 256});
  a.b = fake(kB, kF32, {2, 3, 256});
  a.out.strides[0] = a.a.strides[0] = a.b.strides[0] = 1000;
  a.out.strides[1] = a.a.strides[1] = a.b.strides[1] = 328;
  EXPECT_TRUE(check_add(a).is_ok());
  a.out = a.a;
  EXPECT_TRUE(check_add(a).is_ok());
  a = good;
  a.b = fake(kB, kF32, {3, 639});
  expect_invalid(check_add(a), {"b has shape [3, 639] but a has [3, 640]"});
  a = good;
  a.out.data = nullptr;
  expect_invalid(check_add(a), {"out is undefined"});
}

TEST(ConvertGatherCheck, AcceptsAndRejects) {
  EXPECT_TRUE(check_convert({fake(kOut, kBF16, {3, 640}), fake(kA, kF32, {3, 640})}).is_ok());
  expect_invalid(check_convert({fake(kA + 640, kBF16, {3, 640}), fake(kA, kF32, {3, 640})}),
                 {"convert: out overlaps in"});
  expect_invalid(check_convert({fake(kOut, kBF16, {3, 641}), fake(kA, kF32, {3, 640})}),
                 {"out has shape [3, 641] but in has [3, 640]"});

  const GatherRowsArgs good{fake(kOut, kF32, {4, 640}), fake(kA, kBF16, {100, 640}),
                            fake(kIds, DType::kI32, {4})};
  EXPECT_TRUE(check_gather_rows(good).is_ok());
  GatherRowsArgs g = good;
  g.out = fake(kOut, kF32, {4, 320});
  expect_invalid(check_gather_rows(g),
                 {"gather_rows: out has shape [4, 320] but in has [100, 640]"});
  g = good;
  g.rows = fake(kIds, DType::kI32, {3});
  expect_invalid(check_gather_rows(g), {"rows has shape [3]", "[4]"});
  g = good;
  g.rows.device = Device::kCpu;
  expect_invalid(check_gather_rows(g), {"rows is in host memory"});
  g = good;
  g.out = fake(kA + 128, kF32, {4, 640});
  expect_invalid(check_gather_rows(g), {"out overlaps in"});
}

TEST(ArgmaxCheck, AcceptsAndRejects) {
  const ArgmaxArgs good{fake(kOut, DType::kI32, {8}), fake(kA, kF32, {8, 262144})};
  EXPECT_TRUE(check_argmax(good).is_ok());
  ArgmaxArgs a = good;
  a.logits.dtype = kBF16;
  expect_invalid(check_argmax(a), {"argmax: logits has dtype bf16", "f32"});
  a = good;
  a.logits = fake(kA, kF32, {8, 0});
  expect_invalid(check_argmax(a), {"logits has shape [8, 0]", "last dimension in [1,"});
  a = good;
  a.out = fake(kOut, DType::kI32, {7});
  expect_invalid(check_argmax(a), {"out has shape [7]", "[8]"});
  a = good;
  a.out = fake(kOut, kF32, {8});
  expect_invalid(check_argmax(a), {"out has dtype f32", "i32"});
  a = good;
  a.out = fake(kA + 16, DType::kI32, {8});
  expect_invalid(check_argmax(a), {"out overlaps logits"});
}

TEST(ElementwiseCheckDeathTest, LauncherAbortsNamingTheTensor) {
  GegluArgs a = good_geglu();
  a.up = fake(kB, kBF16, {8, 511});
  EXPECT_DEATH(geglu(a, nullptr), "geglu: up has shape \\[8, 511\\]");
}

}  // namespace
}  // namespace sluice::kernels::cuda
