// Dequantization: bit-exact against gguf.quants.dequantize (fixture written by
// tools/make_dequant_reference.py), plus hand-built blocks that pin each layout detail.

#include "engine/weights/dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "common/half.h"
#include "test_util.h"

namespace sluice::weights {
namespace {

std::vector<float> read_floats(const std::string& path) {
  std::string bytes = sluice::testing::read_file(path);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(DequantTest, MatchesGgufPythonReferenceBitExactly) {
  auto f = GgufFile::open(sluice::testing::fixture_path("weights/dequant_types.gguf"));
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  std::vector<float> expected =
      read_floats(sluice::testing::fixture_path("weights/dequant_expected.bin"));
  ASSERT_FALSE(expected.empty());
  uint64_t at = 0;
  std::set<GgmlType> seen;
  for (const auto& t : (*f)->tensors()) {
    ASSERT_LE(at + t.num_elements, expected.size()) << t.name;
    std::vector<float> got(t.num_elements);
    ASSERT_TRUE(dequantize(t.type, t.data, t.num_elements, got.data()).is_ok());
    size_t mismatches = 0;
    for (uint64_t i = 0; i < t.num_elements; ++i) {
      if (bits(got[i]) != bits(expected[at + i])) {
        if (++mismatches <= 3) {
          ADD_FAILURE() << t.name << " (" << ggml_type_name(t.type) << ") element " << i << ": got "
                        << got[i] << " expected " << expected[at + i];
        }
      }
    }
    EXPECT_EQ(mismatches, 0u) << t.name;
    // Row by row gives the same values.
    const uint64_t ne0 = t.ne[0];
    std::vector<float> row(ne0);
    ASSERT_TRUE(dequantize_rows(t, 1, 2, row.data()).is_ok());
    EXPECT_EQ(std::memcmp(row.data(), got.data() + ne0, ne0 * 4), 0) << t.name;
    at += t.num_elements;
    seen.insert(t.type);
  }
  EXPECT_EQ(at, expected.size());
  EXPECT_EQ(seen.size(), 11u);  // every supported type
}

void put_f16(uint8_t* p, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

TEST(DequantTest, Q8_0Block) {
  uint8_t b[34];
  put_f16(b, 0.5f);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16) * 4);
  float y[32];
  ASSERT_TRUE(dequantize(GgmlType::kQ8_0, b, 32, y).is_ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>((j - 16) * 4));
}

TEST(DequantTest, Q4_0LowNibblesFirstHalf) {
  uint8_t b[18];
  put_f16(b, 2.0f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>((15 - j) << 4 | j);
  float y[32];
  ASSERT_TRUE(dequantize(GgmlType::kQ4_0, b, 32, y).is_ok());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * static_cast<float>(15 - j - 8));
  }
}

TEST(DequantTest, Q5_0And5_1HighBits) {
  uint8_t b0[22] = {};
  put_f16(b0, 1.0f);
  const uint32_t qh = 0x80000001u;  // fifth bit set for elements 0 and 31
  std::memcpy(b0 + 2, &qh, 4);
  float y[32];
  ASSERT_TRUE(dequantize(GgmlType::kQ5_0, b0, 32, y).is_ok());
  EXPECT_EQ(y[0], 0.0f);    // 16 - 16
  EXPECT_EQ(y[1], -16.0f);  // 0 - 16
  EXPECT_EQ(y[31], 0.0f);
  uint8_t b1[24] = {};
  put_f16(b1, 1.0f);
  put_f16(b1 + 2, -3.0f);
  std::memcpy(b1 + 4, &qh, 4);
  b1[8 + 15] = 0xF0;  // element 31: high nibble 15, fifth bit set -> 31
  ASSERT_TRUE(dequantize(GgmlType::kQ5_1, b1, 32, y).is_ok());
  EXPECT_EQ(y[0], 16.0f - 3.0f);
  EXPECT_EQ(y[1], -3.0f);
  EXPECT_EQ(y[31], 31.0f - 3.0f);
}

TEST(DequantTest, Q4_KScalesAndMinusMin) {
  uint8_t b[144] = {};
  put_f16(b, 1.0f);      // d
  put_f16(b + 2, 0.5f);  // dmin
  uint8_t* scales = b + 4;
  // Sub-block 0: scale 3, min 4. Sub-block 5: scale (0x2 | (1<<4)) = 18, min (0x1 | (2<<4)) = 33.
  scales[0] = 3 | (1 << 6);  // high bits feed sub-block 4's scale
  scales[4] = 4;
  scales[1] = 0 | (1 << 6);  // scale of sub-block 5, high two bits = 1
  scales[5] = 0 | (2 << 6);  // min of sub-block 5, high two bits = 2
  scales[9] = 0x12;          // sub-block 5: low 4 bits of scale 2, of min 1
  uint8_t* qs = b + 16;
  qs[0] = 0x07;       // element 0: q 7 (sub-block 0)
  qs[64 + 1] = 0x90;  // element 64*2+32+1 = 161: q 9 (sub-block 5)
  float y[256];
  ASSERT_TRUE(dequantize(GgmlType::kQ4_K, b, 256, y).is_ok());
  EXPECT_EQ(y[0], 3.0f * 7.0f - 0.5f * 4.0f);
  EXPECT_EQ(y[1], -0.5f * 4.0f);
  EXPECT_EQ(y[161], 18.0f * 9.0f - 0.5f * 33.0f);
  EXPECT_EQ(y[160], -0.5f * 33.0f);
}

TEST(DequantTest, Q6_KScaleIndexIsElementOver16) {
  uint8_t b[210] = {};
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(i + 1);
  put_f16(b + 208, 1.0f);
  // All quants 0 -> q = -32, so y[k] = -32 * scales[k/16].
  float y[256];
  ASSERT_TRUE(dequantize(GgmlType::kQ6_K, b, 256, y).is_ok());
  for (int k = 0; k < 256; ++k) EXPECT_EQ(y[k], -32.0f * static_cast<float>(k / 16 + 1)) << k;
  // Element 128 + 64 + 3 takes the high nibble of ql[64 + 3] and bits 4-5 of qh[32 + 3].
  b[64 + 3] = 0xA0;
  b[128 + 32 + 3] = 0x30;
  ASSERT_TRUE(dequantize(GgmlType::kQ6_K, b, 256, y).is_ok());
  EXPECT_EQ(y[195], static_cast<float>((0xA | (3 << 4)) - 32) * 13.0f);
}

TEST(DequantTest, HalfConversions) {
  uint8_t src[6];
  uint16_t h[3] = {f32_to_f16(1.5f), f32_to_f16(-0.25f), 0x7c00};
  std::memcpy(src, h, 6);
  float y[3];
  convert_f16_to_f32(src, 3, y);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[1], -0.25f);
  EXPECT_TRUE(std::isinf(y[2]));
  uint16_t bf[2] = {0x3f80, 0xc040};  // 1.0, -3.0
  std::memcpy(src + 1, bf, 4);        // unaligned source
  convert_bf16_to_f32(src + 1, 2, y);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -3.0f);
}

TEST(DequantTest, RejectsPartialBlocksAndBadRows) {
  uint8_t b[34] = {};
  float y[64];
  EXPECT_EQ(dequantize(GgmlType::kQ8_0, b, 31, y).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dequantize(static_cast<GgmlType>(10), b, 256, y).code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(dequantize(GgmlType::kQ8_0, b, 0, y).is_ok());
  GgufTensorInfo t;
  t.name = "t";
  t.ne = {32, 2};
  t.type = GgmlType::kQ8_0;
  t.num_elements = 64;
  t.nbytes = 68;
  uint8_t data[68] = {};
  put_f16(data + 34, 1.0f);
  data[34 + 2] = 5;
  t.data = data;
  EXPECT_EQ(dequantize_rows(t, 1, 3, y).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(dequantize_rows(t, 2, 1, y).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(dequantize_rows(t, 1, 2, y).is_ok());
  EXPECT_EQ(y[0], 5.0f);
}

}  // namespace
}  // namespace sluice::weights
