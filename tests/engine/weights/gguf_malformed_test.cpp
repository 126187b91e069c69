// GGUF reader against malformed files (RELIABILITY.md, E23): each must fail with a one-line
// Status naming the file, the value and the limit — never crash, never allocate for a count
// the file cannot hold.

#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "engine/weights/gguf.h"
#include "gguf_writer.h"

namespace sluice::weights {
namespace {

using testing::array_of;
using testing::array_of_strings;
using testing::array_payload;
using testing::Bytes;
using testing::GgufBuilder;
using testing::put;
using testing::scalar_payload;
using testing::str_payload;
using testing::TensorSpec;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

Status parse(const Bytes& b) {
  return GgufFile::parse("bad.gguf", b.data(), b.size(), nullptr).status();
}

// Asserts a rejection with the expected code whose message is one line, starts with the
// file name and contains `needle`.
void expect_rejected(const Bytes& b, StatusCode code, const std::string& needle) {
  Status st = parse(b);
  ASSERT_FALSE(st.is_ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(st.code(), code) << st.to_string();
  EXPECT_EQ(st.message().rfind("bad.gguf: ", 0), 0u) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

GgufBuilder small_valid() {
  GgufBuilder g;
  g.kv_string("general.architecture", "gemma3")
      .kv("u8", 0, scalar_payload<uint8_t>(1))
      .kv("i16", 3, scalar_payload<int16_t>(-1))
      .kv("f64", 12, scalar_payload<double>(2.0))
      .kv("b", 7, scalar_payload<uint8_t>(0))
      .kv("toks", 9, array_of_strings({"a", "bc"}))
      .kv("scores", 9, array_of<float>(6, {0.f, -1.f}));
  g.tensor({"w", {32, 2}, 8, Bytes(68, 3)});
  g.tensor({"n", {4}, 0, Bytes(16, 4)});
  return g;
}

TEST(GgufMalformedTest, SmallValidFileParses) {
  GgufBuilder g = small_valid();
  EXPECT_TRUE(parse(g.build()).is_ok());
}

TEST(GgufMalformedTest, EveryTruncationIsRejected) {
  GgufBuilder g = small_valid();
  Bytes full = g.build();
  for (size_t n = 0; n < full.size(); ++n) {
    // A copy of exactly n bytes, so ASan sees any read past the end.
    Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    Status st =
        GgufFile::parse("bad.gguf", prefix.empty() ? nullptr : prefix.data(), n, nullptr).status();
    EXPECT_FALSE(st.is_ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(st.message().find('\n'), std::string::npos);
  }
}

TEST(GgufMalformedTest, BadMagicAndVersions) {
  GgufBuilder g = small_valid();
  g.magic = 0x46554746;
  expect_rejected(g.build(), StatusCode::kDataLoss, "bad magic");
  for (uint32_t v : {0u, 1u, 4u}) {
    GgufBuilder h = small_valid();
    h.version = v;
    expect_rejected(h.build(), StatusCode::kUnimplemented, "unsupported GGUF version");
  }
  GgufBuilder be = small_valid();
  be.version = 0x03000000;  // a big-endian v3 file read little-endian
  expect_rejected(be.build(), StatusCode::kUnimplemented, "big-endian");
}

TEST(GgufMalformedTest, HugeCounts) {
  for (uint64_t n : {uint64_t{1} << 63, kU64Max, uint64_t{1000}}) {
    GgufBuilder g = small_valid();
    g.n_tensors = n;
    expect_rejected(g.build(), StatusCode::kDataLoss, "tensor count");
    GgufBuilder h = small_valid();
    h.n_kv = n;
    expect_rejected(h.build(), StatusCode::kDataLoss, "metadata count");
  }
}

TEST(GgufMalformedTest, HugeStringLengths) {
  // Key length 2^64-1.
  Bytes b;
  put<uint32_t>(b, 0x46554747);
  put<uint32_t>(b, 3);
  put<uint64_t>(b, 0);
  put<uint64_t>(b, 1);
  put<uint64_t>(b, kU64Max);
  b.resize(b.size() + 64, 'k');
  expect_rejected(b, StatusCode::kDataLoss, "18446744073709551615");
  // Value string length 2^64-1, and just one byte more than is left.
  for (uint64_t len : {kU64Max, uint64_t{9}}) {
    Bytes payload;
    put<uint64_t>(payload, len);
    payload.resize(payload.size() + 8, 'x');
    GgufBuilder g;
    g.pad_data = false;  // no padding after the value: exactly 8 bytes are left
    g.kv("s", 8, payload);
    expect_rejected(g.build(), StatusCode::kDataLoss, "string value length");
  }
  // A string inside an array.
  Bytes elems;
  put<uint64_t>(elems, kU64Max);
  GgufBuilder g;
  g.kv("arr", 9, array_payload(8, 1, elems));
  expect_rejected(g.build(), StatusCode::kDataLoss, "array string length");
}

TEST(GgufMalformedTest, ArrayCountsBeyondTheBytesLeft) {
  for (uint32_t elem : {0u, 5u, 8u, 9u, 12u}) {
    for (uint64_t count : {kU64Max, uint64_t{1} << 62, uint64_t{1000}}) {
      GgufBuilder g;
      g.kv("arr", 9, array_payload(elem, count, Bytes(16, 0)));
      expect_rejected(g.build(), StatusCode::kDataLoss, "array count");
    }
  }
}

TEST(GgufMalformedTest, BadValueTypes) {
  GgufBuilder g;
  g.kv("x", 13, scalar_payload<uint32_t>(0));
  expect_rejected(g.build(), StatusCode::kDataLoss, "unknown value type");
  GgufBuilder h;
  h.kv("x", 9, array_payload(99, 1, Bytes(8, 0)));
  expect_rejected(h.build(), StatusCode::kDataLoss, "unknown array element type");
  GgufBuilder b;
  b.kv("flag", 7, scalar_payload<uint8_t>(2));
  expect_rejected(b.build(), StatusCode::kDataLoss, "bool value");
  GgufBuilder e;
  e.kv("", 4, scalar_payload<uint32_t>(1));
  expect_rejected(e.build(), StatusCode::kDataLoss, "empty");
}

TEST(GgufMalformedTest, NestingTooDeep) {
  Bytes inner = array_of<uint8_t>(0, {1});
  for (int i = 0; i < kGgufMaxArrayDepth + 2; ++i) inner = array_payload(9, 1, inner);
  GgufBuilder g;
  g.kv("deep", 9, inner);
  expect_rejected(g.build(), StatusCode::kUnimplemented, "nested too deeply");
}

TEST(GgufMalformedTest, DuplicateKey) {
  GgufBuilder g;
  g.kv_u32("k", 1).kv_u32("k", 2);
  expect_rejected(g.build(), StatusCode::kDataLoss, "duplicate metadata key 'k'");
}

TEST(GgufMalformedTest, Alignment) {
  for (uint32_t a : {0u, 3u, 48u, 1u << 31}) {
    GgufBuilder g;
    g.set_alignment(a);
    g.alignment = 32;
    g.tensor({"t", {4}, 0, Bytes(16, 0)});
    expect_rejected(g.build(), StatusCode::kDataLoss, "general.alignment");
  }
  GgufBuilder wrong_type;
  wrong_type.kv("general.alignment", 10, scalar_payload<uint64_t>(32));
  expect_rejected(wrong_type.build(), StatusCode::kDataLoss, "general.alignment has type u64");
  GgufBuilder as_string;
  as_string.kv("general.alignment", 8, str_payload("32"));
  expect_rejected(as_string.build(), StatusCode::kDataLoss, "general.alignment has type string");
}

TEST(GgufMalformedTest, TensorDims) {
  for (uint32_t n_dims : {0u, 5u, 0xffffffffu}) {
    GgufBuilder g;
    TensorSpec t{"t", {4}, 0, Bytes(16, 0)};
    t.n_dims = n_dims;
    g.tensor(t);
    expect_rejected(g.build(), StatusCode::kDataLoss, "n_dims");
  }
  GgufBuilder zero;
  zero.tensor({"t", {4, 0}, 0, Bytes(16, 0)});
  expect_rejected(zero.build(), StatusCode::kDataLoss, "dim 1 out of range");
  GgufBuilder huge;
  huge.tensor({"t", {uint64_t{1} << 63}, 0, {}});
  expect_rejected(huge.build(), StatusCode::kDataLoss, "out of range");
  // Element count wraps: 2^32 * 2^32.
  GgufBuilder wrap;
  wrap.tensor({"t", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, {}});
  expect_rejected(wrap.build(), StatusCode::kDataLoss, "element count overflows");
  // Byte size wraps through the block size: (2^62 / 32) blocks of 18 bytes.
  GgufBuilder q;
  q.tensor({"t", {uint64_t{1} << 62}, 2, {}});
  expect_rejected(q.build(), StatusCode::kDataLoss, "byte size");
  // F32 of 2^61 elements: 2^63 bytes, far more than the file.
  GgufBuilder f32;
  f32.tensor({"t", {uint64_t{1} << 61}, 0, {}});
  expect_rejected(f32.build(), StatusCode::kDataLoss, "byte size exceeds the file");
}

TEST(GgufMalformedTest, TensorTypes) {
  GgufBuilder q2k;
  q2k.tensor({"t", {256}, 10, Bytes(84, 0)});
  expect_rejected(q2k.build(), StatusCode::kUnimplemented, "unsupported type Q2_K");
  GgufBuilder unknown;
  unknown.tensor({"t", {256}, 1000, Bytes(84, 0)});
  expect_rejected(unknown.build(), StatusCode::kUnimplemented, "unsupported type ? (1000");
  GgufBuilder partial;
  partial.tensor({"t", {48}, 2, Bytes(36, 0)});
  expect_rejected(partial.build(), StatusCode::kDataLoss, "not a multiple of the Q4_0 block");
  GgufBuilder kpartial;
  kpartial.tensor({"t", {640}, 12, Bytes(1000, 0)});
  expect_rejected(kpartial.build(), StatusCode::kDataLoss, "Q4_K block (640");
}

TEST(GgufMalformedTest, TensorOffsets) {
  GgufBuilder misaligned;
  misaligned.tensor({"t", {4}, 0, Bytes(16, 0), uint64_t{4}});
  expect_rejected(misaligned.build(), StatusCode::kDataLoss, "not aligned (4");
  GgufBuilder past;
  past.tensor({"t", {4}, 0, Bytes(16, 0)});
  past.tensor({"u", {4}, 0, {}, uint64_t{1} << 40});
  expect_rejected(past.build(), StatusCode::kDataLoss, "past the end of the data blob");
  GgufBuilder wraps;
  wraps.tensor({"t", {4}, 0, Bytes(16, 0)});
  wraps.tensor({"u", {16}, 0, {}, kU64Max - 31});  // offset + 64 bytes wraps
  expect_rejected(wraps.build(), StatusCode::kDataLoss, "overflow");
  // The blob itself is short: the last tensor's bytes are cut off.
  GgufBuilder shortblob;
  shortblob.tensor({"t", {8}, 0, Bytes(16, 0)});
  expect_rejected(shortblob.build(), StatusCode::kDataLoss, "'t'");
  // Tensor infos present but the file ends before the data starts.
  GgufBuilder nodata;
  nodata.pad_data = false;
  nodata.tensor({"t", {4}, 0, {}});
  Bytes b = nodata.build();
  if (b.size() % 32 == 0) b.pop_back();
  expect_rejected(b, StatusCode::kDataLoss, "");
}

TEST(GgufMalformedTest, OverlappingAndDuplicateTensors) {
  GgufBuilder overlap;
  overlap.tensor({"a", {16}, 0, Bytes(64, 0), uint64_t{0}});
  overlap.tensor({"b", {16}, 0, Bytes(64, 0), uint64_t{32}});
  expect_rejected(overlap.build(), StatusCode::kDataLoss, "overlaps");
  GgufBuilder same;
  same.tensor({"a", {8}, 0, Bytes(32, 0), uint64_t{0}});
  same.tensor({"b", {8}, 0, Bytes(32, 0), uint64_t{0}});
  expect_rejected(same.build(), StatusCode::kDataLoss, "overlaps");
  GgufBuilder dup;
  dup.tensor({"a", {8}, 0, Bytes(32, 0)});
  dup.tensor({"a", {8}, 0, Bytes(32, 0)});
  expect_rejected(dup.build(), StatusCode::kDataLoss, "duplicate tensor name 'a'");
  GgufBuilder empty;
  empty.tensor({"", {8}, 0, Bytes(32, 0)});
  expect_rejected(empty.build(), StatusCode::kDataLoss, "empty name");
  GgufBuilder long_name;
  long_name.tensor({std::string(kGgufMaxTensorNameBytes + 1, 'x'), {8}, 0, Bytes(32, 0)});
  expect_rejected(long_name.build(), StatusCode::kDataLoss, "name length");
}

TEST(GgufMalformedTest, NullDataWithSize) {
  EXPECT_FALSE(GgufFile::parse("x", nullptr, 10, nullptr).is_ok());
  EXPECT_EQ(GgufFile::parse("x", nullptr, 0, nullptr).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(GgufFile::open("/nonexistent/file.gguf").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace sluice::weights
