#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/checked_math.h"
#include "common/half.h"
#include "common/mapped_file.h"
#include "common/status.h"

namespace sluice {
namespace {

StatusOr<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid_argument("not positive");
  return v;
}

Status use_twice(int v, int* out) {
  SLUICE_ASSIGN_OR_RETURN(int x, parse_positive(v));
  *out = 2 * x;
  return Status::ok();
}

TEST(Status, OrAndMacros) {
  int out = 0;
  EXPECT_TRUE(use_twice(4, &out).is_ok());
  EXPECT_EQ(out, 8);
  Status s = use_twice(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.to_string(), "INVALID_ARGUMENT: not positive");
  EXPECT_EQ(s.with_context("f.gguf").message(), "f.gguf: not positive");
}

TEST(CheckedMath, DetectsOverflow) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(checked_add(kMax, 1), std::nullopt);
  EXPECT_EQ(checked_mul(uint64_t{1} << 32, uint64_t{1} << 32), std::nullopt);
  EXPECT_EQ(checked_product({1u << 20, 1u << 20, 1u << 20, 1u << 5}), std::nullopt);
  EXPECT_EQ(checked_product({3, 5, 7}), 105u);
  EXPECT_EQ(checked_align_up(33, 32), 64u);
  EXPECT_EQ(checked_align_up(kMax, 32), std::nullopt);
  EXPECT_EQ(checked_align_up(5, 0), std::nullopt);
  EXPECT_TRUE(range_within(10, 5, 15));
  EXPECT_FALSE(range_within(10, 6, 15));
  EXPECT_FALSE(range_within(kMax, 2, kMax));
}

TEST(Half, RoundTripsAndRounding) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(25.298221f)), 25.25f);  // gemma-models.md §4 table
  EXPECT_EQ(f16_to_f32(f32_to_f16(25.298221f)), 25.296875f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(53.066f)), 53.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(73.32121f)), 73.3125f);
  // Every f16 bit pattern survives f16 -> f32 -> f16 (NaNs stay NaN).
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
    } else {
      EXPECT_EQ(f32_to_f16(f), h) << h;
    }
  }
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                       // overflow to +inf
  EXPECT_EQ(f16_to_f32(f32_to_f16(6e-8f)), 5.9604645e-08f);  // smallest subnormal
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(MappedFile, MissingAndDirectory) {
  auto m = MappedFile::open("/nonexistent/file");
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(MappedFile::open("/tmp").is_ok());
}

}  // namespace
}  // namespace sluice
