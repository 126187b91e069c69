// CUDA RoPE (kernels/cuda/cuda_ops.h) against the CPU backend (cpu_ops(), the RopeArgs
// contract of kernels/ops.h): full, partial, Gemma 3's linearly scaled and Gemma 4's
// proportional forms, at positions up to 262143.
// The argument checks run everywhere; the kernel tests skip cleanly without a device.

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/ops.h"  // cpu_ops(): the reference

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

struct RopeCase {
  const char* name;
  int64_t num_heads, head_dim;
  int num_pairs, pair_offset, freq_dim;
  float theta, freq_scale;
};

constexpr RopeCase kCases[] = {
    {"gemma sliding (full, theta 1e4)", 4, 256, 128, 128, 256, 1e4f, 1.0f},
    {"gemma4 global (proportional, 64 of 256 pairs)", 2, 512, 64, 256, 512, 1e6f, 1.0f},
    {"gemma3 global (linear x8)", 4, 256, 128, 128, 256, 1e6f, 0.125f},
    {"partial (first 64 of 128 dims)", 3, 128, 32, 32, 64, 1e4f, 1.0f},
    {"odd head_dim 7, 3 pairs", 5, 7, 3, 3, 6, 100.0f, 1.0f},
};

RopeArgs args_for(const RopeCase& c, const Tensor& x, const Tensor& positions) {
  RopeArgs a;
  a.x = x;
  a.positions = positions;
  a.theta = c.theta;
  a.freq_scale = c.freq_scale;
  a.num_pairs = c.num_pairs;
  a.pair_offset = c.pair_offset;
  a.freq_dim = c.freq_dim;
  return a;
}

// The reference: cpu_ops().rope on an f32 copy of the values the device holds, through a
// view with the same shape and strides. Returns the whole copy after the rotation.
std::vector<float> cpu_rope(std::vector<float> values, const Tensor& device_view,
                            const TestTensor& base, std::vector<int32_t> positions,
                            const RopeCase& c) {
  Tensor x = device_view;
  x.device = Device::kCpu;
  x.dtype = DType::kF32;
  const auto offset = (static_cast<const uint8_t*>(device_view.data) -
                       static_cast<const uint8_t*>(base.view().data)) /
                      static_cast<int64_t>(dtype_size(device_view.dtype));
  x.data = values.data() + offset;
  const Tensor p =
      Tensor::make(positions.data(), DType::kI32, {static_cast<int64_t>(positions.size())});
  cpu_ops().rope(args_for(c, x, p));
  return values;
}

bool is_rotated_dim(const RopeCase& c, int64_t d) {
  return d < c.num_pairs || (d >= c.pair_offset && d < c.pair_offset + c.num_pairs);
}

// Positions in [0, 8192), with 0 and the longest Gemma 4 context at the ends when T > 2.
std::vector<int32_t> random_positions(std::mt19937& rng, int64_t num_tokens) {
  std::uniform_int_distribution<int32_t> dist(0, 8191);
  std::vector<int32_t> positions(num_tokens);
  for (auto& p : positions) p = dist(rng);
  if (num_tokens > 2) {
    positions.front() = 0;
    positions.back() = 262143;
  }
  return positions;
}

struct DevicePositions {
  explicit DevicePositions(const std::vector<int32_t>& host)
      : buffer(host.size() * sizeof(int32_t)) {
    buffer.upload(host.data());
    tensor = Tensor::make(buffer.data(), DType::kI32, {static_cast<int64_t>(host.size())},
                          Device::kCuda);
  }
  DeviceBuffer buffer;
  Tensor tensor;
};

TEST(RopeGpu, MatchesReferenceOverShapes) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240611);
  for (const RopeCase& c : kCases) {
    for (int64_t num_tokens : {1, 3, 64}) {
      for (DType t : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE(std::string(c.name) + ", T " + std::to_string(num_tokens) + ", " +
                     dtype_name(t));
        TestTensor x(t, {num_tokens, c.num_heads, c.head_dim});
        x.fill_random(rng, -2.0f, 2.0f);
        const std::vector<int32_t> positions = random_positions(rng, num_tokens);
        DevicePositions device_positions(positions);
        // x is contiguous, so its host image (without padding) is the row-major values.
        const std::vector<float> before = x.host();
        const std::vector<float> want = cpu_rope(before, x.view(), x, positions, c);
        const std::vector<double> ref(want.begin(), want.end());
        rope(args_for(c, x.view(), device_positions.tensor), nullptr);
        x.download();
        const auto tol = tolerance_for(t);
        expect_close(x, ref, tol.max_rel, tol.rtol, tol.atol);
        int64_t changed_pass_through = 0;
        for (int64_t r = 0; r < x.rows(); ++r) {
          for (int64_t d = 0; d < c.head_dim; ++d) {
            if (!is_rotated_dim(c, d))
              changed_pass_through += x.at(r, d) != before[r * c.head_dim + d];
          }
        }
        EXPECT_EQ(changed_pass_through, 0) << "dims outside the rotated pairs changed";
        if (HasFailure()) return;
      }
    }
  }
}

// q and k as per-head views of one fused QKV projection output [T, (nq + 2 nkv) * d]: each
// rotates in place through its strides; v and everything else stays bit-identical.
TEST(RopeGpu, StridedViewsOfFusedQkv) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20240612);
  const RopeCase& c = kCases[1];  // Gemma 4 global: head_dim 512, proportional
  constexpr int64_t kTokens = 5, kQHeads = 4, kKvHeads = 2;
  const int64_t d = c.head_dim;
  const int64_t width = (kQHeads + 2 * kKvHeads) * d;
  for (DType t : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(t));
    TestTensor qkv(t, {kTokens, width});
    qkv.fill_random(rng, -2.0f, 2.0f);
    const std::vector<int32_t> positions = random_positions(rng, kTokens);
    DevicePositions device_positions(positions);

    const std::vector<float> before = qkv.host();  // contiguous: row-major values
    auto head_view = [&](int64_t first_head, int64_t num_heads) {
      Tensor v = qkv.view();
      v.data = static_cast<uint8_t*>(v.data) + first_head * d * dtype_size(t);
      v.ndim = 3;
      v.shape = {kTokens, num_heads, d, 0};
      v.strides = {width, d, 1, 0};
      return v;
    };
    std::vector<float> want = cpu_rope(before, head_view(0, kQHeads), qkv, positions, c);
    want = cpu_rope(want, head_view(kQHeads, kKvHeads), qkv, positions, c);
    const std::vector<double> ref(want.begin(), want.end());
    rope(args_for(c, head_view(0, kQHeads), device_positions.tensor), nullptr);
    rope(args_for(c, head_view(kQHeads, kKvHeads), device_positions.tensor), nullptr);
    qkv.download();
    const auto tol = tolerance_for(t);
    expect_close(qkv, ref, tol.max_rel, tol.rtol, tol.atol);
    int64_t changed = 0;  // v heads and pass-through dims: exactly as before
    for (int64_t r = 0; r < kTokens; ++r) {
      for (int64_t col = 0; col < width; ++col) {
        const bool rotated = col < (kQHeads + kKvHeads) * d && is_rotated_dim(c, col % d);
        if (!rotated) changed += qkv.at(r, col) != before[r * width + col];
      }
    }
    EXPECT_EQ(changed, 0);
  }
}

// ---- Argument checks: no device needed (the views point nowhere and are never read). ----

RopeArgs good_rope() {
  return args_for(kCases[1], fake(0x1000000, DType::kBF16, {3, 4, 512}),
                  fake(0x2000000, DType::kI32, {3}));
}

TEST(RopeCheck, AcceptsValidArguments) {
  EXPECT_TRUE(check_rope(good_rope()).is_ok());
  for (const RopeCase& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(check_rope(args_for(c, fake(0x1000000, DType::kF32, {2, c.num_heads, c.head_dim}),
                                    fake(0x2000000, DType::kI32, {2})))
                    .is_ok());
  }
}

TEST(RopeCheck, NamesTheBadArgument) {
  RopeArgs a = good_rope();
  a.positions.device = Device::kCpu;
  expect_invalid(check_rope(a), {"rope: positions is in host memory"});

  a = good_rope();
  a.positions = fake(0x2000000, DType::kI32, {4});
  expect_invalid(check_rope(a), {"positions has shape [4]", "contiguous [3]"});

  a = good_rope();
  a.positions.dtype = DType::kF32;
  expect_invalid(check_rope(a), {"positions has dtype f32; expected i32"});

  a = good_rope();
  a.x = fake(0x1000000, DType::kBF16, {3, 512});
  expect_invalid(check_rope(a), {"x has shape [3, 512]", "[T, num_heads, head_dim]"});

  a = good_rope();
  a.x.dtype = DType::kF16;
  expect_invalid(check_rope(a), {"x has dtype f16"});

  a = good_rope();
  a.num_pairs = -1;
  expect_invalid(check_rope(a), {"num_pairs is -1; expected 0 to 512"});

  a = good_rope();
  a.num_pairs = 257;
  expect_invalid(check_rope(a), {"num_pairs 257 with pair_offset 256 does not fit head_dim 512"});

  a = good_rope();
  a.pair_offset = 32;  // pairs (i, i + 32) for i < 64 would overlap
  expect_invalid(check_rope(a), {"num_pairs 64 with pair_offset 32"});

  a = good_rope();
  a.freq_dim = 0;
  expect_invalid(check_rope(a), {"freq_dim is 0"});

  a = good_rope();
  a.theta = 0.0f;
  expect_invalid(check_rope(a), {"theta is 0"});
}

TEST(RopeCheckDeathTest, LauncherAbortsNamingTheArgument) {
  RopeArgs a = good_rope();
  a.positions.device = Device::kCpu;
  EXPECT_DEATH(rope(a, nullptr), "rope: positions is in host memory");
}

}  // namespace
}  // namespace sluice::kernels::cuda
