// GGUF reader: every metadata type, every tensor type, the Python-written fixture, and the
// valid-file side of the header checks. Malformed files are in gguf_malformed_test.cpp.

#include "engine/weights/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gguf_writer.h"
#include "test_util.h"

namespace sluice::weights {
namespace {

using testing::array_of;
using testing::array_of_strings;
using testing::array_payload;
using testing::Bytes;
using testing::GgufBuilder;
using testing::scalar_payload;
using testing::str_payload;
using testing::TensorSpec;

std::unique_ptr<GgufFile> parse_ok(const Bytes& b) {
  auto f = GgufFile::parse("mem.gguf", b.data(), b.size(), nullptr);
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  return f.is_ok() ? std::move(f).value() : nullptr;
}

TEST(GgufTest, EveryScalarMetadataType) {
  GgufBuilder g;
  g.kv("u8", 0, scalar_payload<uint8_t>(250))
      .kv("i8", 1, scalar_payload<int8_t>(-7))
      .kv("u16", 2, scalar_payload<uint16_t>(65535))
      .kv("i16", 3, scalar_payload<int16_t>(-32768))
      .kv("u32", 4, scalar_payload<uint32_t>(4000000000u))
      .kv("i32", 5, scalar_payload<int32_t>(-5))
      .kv("f32", 6, scalar_payload<float>(0.1f))
      .kv("bool", 7, scalar_payload<uint8_t>(1))
      .kv("string", 8, str_payload("h\xc3\xa9llo"))
      .kv("u64", 10, scalar_payload<uint64_t>(std::numeric_limits<uint64_t>::max()))
      .kv("i64", 11, scalar_payload<int64_t>(std::numeric_limits<int64_t>::min()))
      .kv("f64", 12, scalar_payload<double>(1e300));
  auto f = parse_ok(g.build());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->metadata().size(), 12u);
  EXPECT_EQ(*f->get_u64("u8"), 250u);
  EXPECT_EQ(f->find("u8")->type, GgufType::kU8);
  EXPECT_EQ(*f->get_i64("i8"), -7);
  EXPECT_EQ(*f->get_u64("u16"), 65535u);
  EXPECT_EQ(*f->get_i64("i16"), -32768);
  EXPECT_EQ(*f->get_u64("u32"), 4000000000u);
  EXPECT_EQ(*f->get_i64("u32"), 4000000000);
  EXPECT_EQ(*f->get_i64("i32"), -5);
  EXPECT_EQ(*f->get_f64("f32"), static_cast<double>(0.1f));
  EXPECT_TRUE(f->find("f32")->is_float());
  EXPECT_EQ(*f->get_bool("bool"), true);
  EXPECT_EQ(*f->get_string("string"), "h\xc3\xa9llo");
  EXPECT_EQ(*f->get_u64("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*f->get_i64("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*f->get_f64("f64"), 1e300);
  EXPECT_EQ(*f->get_f64("i32"), -5.0);  // integers widen to f64
  EXPECT_TRUE(f->find("i64")->is_integer());
  EXPECT_FALSE(f->find("string")->is_integer());
}

TEST(GgufTest, GetterErrorsNameKeyAndTypes) {
  GgufBuilder g;
  g.kv("neg", 5, scalar_payload<int32_t>(-1))
      .kv("big", 10, scalar_payload<uint64_t>(1ull << 63))
      .kv("s", 8, str_payload("x"))
      .kv("arr", 9, array_of<int32_t>(5, {1, 2}));
  auto f = parse_ok(g.build());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->get_u64("missing").status().code(), StatusCode::kNotFound);
  EXPECT_NE(f->get_u64("missing").status().message().find("'missing'"), std::string::npos);
  auto neg = f->get_u64("neg");
  EXPECT_EQ(neg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f->get_i64("big").status().code(), StatusCode::kInvalidArgument);
  auto wrong = f->get_bool("s");
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().message(), "mem.gguf: metadata key 's' has type string, expected bool");
  auto arr_as_str = f->get_string("arr");
  ASSERT_FALSE(arr_as_str.is_ok());
  EXPECT_NE(arr_as_str.status().message().find("array of i32"), std::string::npos);
  EXPECT_FALSE(f->get_array("s").is_ok());
  EXPECT_FALSE(f->get_f64("s").is_ok());
}

TEST(GgufTest, EveryArrayElementType) {
  Bytes bools = {1, 0, 1};
  GgufBuilder g;
  g.kv("a.u8", 9, array_of<uint8_t>(0, {0, 255}))
      .kv("a.i8", 9, array_of<int8_t>(1, {-128, 127}))
      .kv("a.u16", 9, array_of<uint16_t>(2, {65535}))
      .kv("a.i16", 9, array_of<int16_t>(3, {-2}))
      .kv("a.u32", 9, array_of<uint32_t>(4, {4000000000u}))
      .kv("a.i32", 9, array_of<int32_t>(5, {-3, 4}))
      .kv("a.f32", 9, array_of<float>(6, {0.5f, -1000.0f}))
      .kv("a.bool", 9, array_payload(7, 3, bools))
      .kv("a.str", 9, array_of_strings({"<0x0A>", "", "\xe2\x96\x81the"}))
      .kv("a.u64", 9, array_of<uint64_t>(10, {std::numeric_limits<uint64_t>::max()}))
      .kv("a.i64", 9, array_of<int64_t>(11, {-9}))
      .kv("a.f64", 9, array_of<double>(12, {2.5}))
      .kv("a.empty", 9, array_of<int32_t>(5, {}));
  // An array of two arrays: [[1, 2], [3]] of i32.
  Bytes nested = array_of<int32_t>(5, {1, 2});
  Bytes second = array_of<int32_t>(5, {3});
  nested.insert(nested.end(), second.begin(), second.end());
  g.kv("a.nested", 9, array_payload(9, 2, nested));
  auto f = parse_ok(g.build());
  ASSERT_TRUE(f);
  auto get = [&](const char* k) {
    auto a = f->get_array(k);
    EXPECT_TRUE(a.is_ok()) << k;
    return a.is_ok() ? *a : nullptr;
  };
  EXPECT_EQ(get("a.u8")->ints, (std::vector<int64_t>{0, 255}));
  EXPECT_TRUE(get("a.u8")->is_integer());
  EXPECT_EQ(get("a.i8")->ints, (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(get("a.u16")->ints, (std::vector<int64_t>{65535}));
  EXPECT_EQ(get("a.i16")->ints, (std::vector<int64_t>{-2}));
  EXPECT_EQ(get("a.u32")->ints, (std::vector<int64_t>{4000000000}));
  EXPECT_EQ(get("a.i32")->ints, (std::vector<int64_t>{-3, 4}));
  EXPECT_EQ(get("a.i32")->elem_type, GgufType::kI32);
  EXPECT_EQ(get("a.f32")->floats, (std::vector<double>{0.5, -1000.0}));
  EXPECT_TRUE(get("a.f32")->is_float());
  EXPECT_EQ(get("a.bool")->bools, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(get("a.str")->strings, (std::vector<std::string>{"<0x0A>", "", "\xe2\x96\x81the"}));
  EXPECT_EQ(static_cast<uint64_t>(get("a.u64")->ints[0]), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(get("a.i64")->ints, (std::vector<int64_t>{-9}));
  EXPECT_EQ(get("a.f64")->floats, (std::vector<double>{2.5}));
  EXPECT_EQ(get("a.empty")->size(), 0u);
  const GgufArray* n = get("a.nested");
  ASSERT_EQ(n->size(), 2u);
  ASSERT_EQ(n->arrays.size(), 2u);
  EXPECT_EQ(n->arrays[0]->ints, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(n->arrays[1]->ints, (std::vector<int64_t>{3}));
  for (const char* k : {"a.u8", "a.f32", "a.str", "a.bool"}) EXPECT_EQ(get(k)->size() > 0, true);
  EXPECT_EQ(get("a.str")->size(), 3u);
}

TEST(GgufTest, EveryTensorTypeSizesAndPlacement) {
  struct Case {
    uint32_t id;
    uint64_t ne0;
    uint64_t bytes_per_row;
  };
  const Case cases[] = {
      {0, 8, 32},  {1, 8, 16},  {30, 8, 16},    {2, 64, 36},    {3, 64, 40},    {6, 64, 44},
      {7, 64, 48}, {8, 64, 68}, {12, 512, 288}, {13, 512, 352}, {14, 512, 420},
  };
  GgufBuilder g;
  for (const auto& c : cases) {
    g.tensor({std::string("t") + ggml_type_name(static_cast<GgmlType>(c.id)),
              {c.ne0, 3},
              c.id,
              Bytes(c.bytes_per_row * 3, static_cast<uint8_t>(c.id))});
  }
  Bytes b = g.build();
  auto f = parse_ok(b);
  ASSERT_TRUE(f);
  ASSERT_EQ(f->tensors().size(), std::size(cases));
  for (size_t i = 0; i < std::size(cases); ++i) {
    const auto& t = f->tensors()[i];
    EXPECT_EQ(static_cast<uint32_t>(t.type), cases[i].id);
    EXPECT_EQ(t.nbytes, cases[i].bytes_per_row * 3) << t.name;
    EXPECT_EQ(t.num_elements, cases[i].ne0 * 3);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.data, b.data() + g.data_pos() + t.offset);
    EXPECT_EQ(t.data[0], static_cast<uint8_t>(cases[i].id));
    EXPECT_EQ(f->find_tensor(t.name), &t);
    EXPECT_EQ(ggml_row_bytes(t.type, cases[i].ne0), cases[i].bytes_per_row);
  }
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
  EXPECT_EQ(f->data_offset(), g.data_pos());
}

TEST(GgufTest, CustomAlignmentAndVersion2) {
  GgufBuilder g;
  g.version = 2;
  g.set_alignment(64);
  g.tensor({"a", {4}, 0, Bytes(16, 1)});
  g.tensor({"b", {2, 2}, 0, Bytes(16, 2)});
  Bytes b = g.build();
  auto f = parse_ok(b);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->find_tensor("b")->offset, 64u);
  EXPECT_EQ(f->find_tensor("b")->ne, (std::vector<uint64_t>{2, 2}));
}

TEST(GgufTest, MetadataOnlyFileMayEndUnpadded) {
  GgufBuilder g;
  g.pad_data = false;
  g.kv_string("general.architecture", "gemma3");
  auto f = parse_ok(g.build());
  ASSERT_TRUE(f);
  EXPECT_EQ(*f->get_string("general.architecture"), "gemma3");
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufTest, ReadsPythonWrittenFixtureMetadata) {
  auto f = GgufFile::open(sluice::testing::fixture_path("weights/dequant_types.gguf"));
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(*g.get_string("general.architecture"), "sluice-test");
  EXPECT_EQ(*g.get_u64("test.u8"), 200u);
  EXPECT_EQ(*g.get_i64("test.i8"), -100);
  EXPECT_EQ(*g.get_u64("test.u16"), 60000u);
  EXPECT_EQ(*g.get_i64("test.i16"), -30000);
  EXPECT_EQ(*g.get_u64("test.u32"), 4000000000u);
  EXPECT_EQ(*g.get_i64("test.i32"), -2000000000);
  EXPECT_EQ(*g.get_f64("test.f32"), static_cast<double>(0.1f));
  EXPECT_EQ(*g.get_bool("test.bool"), true);
  EXPECT_EQ(*g.get_string("test.string"), "h\xc3\xa9llo \xe2\x96\x81world");
  EXPECT_EQ(*g.get_u64("test.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*g.get_i64("test.i64"), -(int64_t{1} << 62));
  EXPECT_EQ(*g.get_f64("test.f64"), 0.1);
  EXPECT_EQ((*g.get_array("test.array_str"))->strings, (std::vector<std::string>{"a", "",
                                                                                 "\xe2\x96\x81"
                                                                                 "b"}));
  EXPECT_EQ((*g.get_array("test.array_i32"))->ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ((*g.get_array("test.array_f32"))->floats, (std::vector<double>{0.5, -1.25}));
  EXPECT_EQ((*g.get_array("test.array_bool"))->bools, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ((*g.get_array("test.array_u8"))->ints, (std::vector<int64_t>{0, 255}));
  const GgufArray* nested = *g.get_array("test.array_nested");
  ASSERT_EQ(nested->arrays.size(), 2u);
  EXPECT_EQ(nested->arrays[0]->ints, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(nested->arrays[1]->ints, (std::vector<int64_t>{3}));
  // 11 types, and a ".raw" twin for each of the 8 block-quantized ones.
  EXPECT_EQ(g.tensors().size(), 19u);
  EXPECT_EQ(g.find_tensor("q4_k")->ne, (std::vector<uint64_t>{512, 3}));
  EXPECT_EQ(g.find_tensor("q6_k.raw")->ne, (std::vector<uint64_t>{256, 2}));
}

}  // namespace
}  // namespace sluice::weights
