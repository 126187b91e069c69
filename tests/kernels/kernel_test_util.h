#pragma once
// Helpers for the CPU kernel tests: random data, the norm-wise relative error against a
// double-precision reference, and a fixture that runs a test once per ISA (skipping, with a
// message, an ISA this CPU lacks).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/isa.h"
#include "kernels/tensor.h"

namespace sluice::kernels::testing {

using cpu::CpuIsa;

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ||out - ref|| / ||ref|| (or ||out|| when ref is all zeros).
inline double rel_error(const float* out, const double* ref, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(out[i]) - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
  }
  if (norm == 0.0) return std::sqrt(diff);
  return std::sqrt(diff / norm);
}
inline double rel_error(const std::vector<float>& out, const std::vector<double>& ref) {
  EXPECT_EQ(out.size(), ref.size());
  return rel_error(out.data(), ref.data(), std::min(out.size(), ref.size()));
}

// The tolerance the f32 paths must meet.
inline constexpr double kF32Tolerance = 1e-5;

// Weights stored as 16-bit values, with their exact f32 meaning for the reference.
struct HalfWeights {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
inline HalfWeights to_bf16(const std::vector<float>& v) {
  HalfWeights h;
  for (float x : v) {
    h.bits.push_back(f32_to_bf16(x));
    h.values.push_back(bf16_to_f32(h.bits.back()));
  }
  return h;
}
inline HalfWeights to_f16(const std::vector<float>& v) {
  HalfWeights h;
  for (float x : v) {
    h.bits.push_back(f32_to_f16(x));
    h.values.push_back(f16_to_f32(h.bits.back()));
  }
  return h;
}

// A view with explicit strides (elements), for row-strided arguments.
inline Tensor strided(void* data, DType dtype, std::vector<int64_t> shape,
                      std::vector<int64_t> strides) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < t.ndim; ++i) {
    t.shape[i] = shape[i];
    t.strides[i] = strides[i];
  }
  return t;
}

// TEST_P fixture: GetParam() is the ISA; ops() its op table, kernels() its leaf kernels.
class IsaTest : public ::testing::TestWithParam<CpuIsa> {
 protected:
  void SetUp() override {
    if (!cpu::isa_supported(GetParam())) {
      GTEST_SKIP() << "this CPU cannot run the " << cpu::isa_name(GetParam())
                   << " kernels (it supports up to " << cpu::isa_name(cpu::detected_isa()) << ")";
    }
  }
  const OpTable& ops() const { return cpu::cpu_ops_for_isa(GetParam()); }
  const cpu::IsaKernels& kernels() const { return cpu::isa_kernels(GetParam()); }
};

inline std::string isa_test_name(const ::testing::TestParamInfo<CpuIsa>& info) {
  return cpu::isa_name(info.param);
}

#define SLUICE_INSTANTIATE_ISA_TESTS(Fixture)                                          \
  INSTANTIATE_TEST_SUITE_P(Isa, Fixture,                                               \
                           ::testing::Values(::sluice::kernels::cpu::CpuIsa::kScalar,  \
                                             ::sluice::kernels::cpu::CpuIsa::kAvx2,    \
                                             ::sluice::kernels::cpu::CpuIsa::kAvx512), \
                           ::sluice::kernels::testing::isa_test_name)

}  // namespace sluice::kernels::testing
