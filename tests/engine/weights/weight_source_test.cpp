// WeightSource and load_as: row-major shapes from both formats, zero-copy views where the
// dtype allows, owned aligned buffers otherwise, and lifetimes.

#include "engine/weights/weight_source.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/half.h"
#include "engine/weights/dequant.h"
#include "gguf_writer.h"
#include "test_util.h"

namespace sluice::weights {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::GgufBuilder;
using testing::TensorSpec;

Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A Q8_0 block with scale `d` and quants q[j] = j - 16.
Bytes q8_block(float d) {
  Bytes b(34);
  uint16_t h = f32_to_f16(d);
  std::memcpy(b.data(), &h, 2);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  return b;
}

struct Fixture {
  Bytes bytes;
  std::unique_ptr<WeightSource> src;
};

Fixture small_gguf() {
  GgufBuilder g;
  g.kv_string("general.architecture", "gemma3");
  Bytes q = q8_block(0.5f);
  Bytes q2 = q8_block(2.0f);
  q.insert(q.end(), q2.begin(), q2.end());
  g.tensor({"blk.0.attn_q.weight", {32, 2}, 8, q});  // HF [2, 32]
  g.tensor({"output_norm.weight", {4}, 0, f32_bytes({1, 2, 3, 4})});
  g.tensor({"cube", {2, 3, 4}, 0, f32_bytes(std::vector<float>(24, 1.5f))});
  Fixture f;
  f.bytes = g.build();
  auto file = GgufFile::parse("mem.gguf", f.bytes.data(), f.bytes.size(), nullptr);
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  f.src = WeightSource::from_gguf(std::move(file).value());
  return f;
}

TEST(WeightSourceTest, GgufShapesAreRowMajor) {
  Fixture f = small_gguf();
  EXPECT_EQ(f.src->format(), WeightSource::Format::kGguf);
  ASSERT_NE(f.src->gguf(), nullptr);
  EXPECT_EQ(f.src->names(),
            (std::vector<std::string>{"blk.0.attn_q.weight", "cube", "output_norm.weight"}));
  const WeightInfo* q = f.src->find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(q->dtype, SourceDType::kQ8_0);
  EXPECT_TRUE(is_quantized(q->dtype));
  EXPECT_EQ(q->nbytes, 68u);
  EXPECT_EQ(q->row_bytes(), 34u);
  EXPECT_EQ(q->shape_string(), "[2, 32]");
  EXPECT_EQ(f.src->find("cube")->shape, (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(f.src->find("output_norm.weight")->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(f.src->find("missing"), nullptr);
  auto missing = f.src->get("missing");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "mem.gguf: no tensor named 'missing'");
  EXPECT_TRUE(f.src->get("cube").is_ok());
}

TEST(WeightSourceTest, F32IsZeroCopyQuantizedIsDequantized) {
  Fixture f = small_gguf();
  auto norm = load_as_f32(*f.src->find("output_norm.weight"));
  ASSERT_TRUE(norm.is_ok()) << norm.status().to_string();
  EXPECT_TRUE(norm->borrowed);
  EXPECT_EQ(norm->tensor.data, f.src->find("output_norm.weight")->data);
  EXPECT_EQ(norm->tensor.ndim, 1);
  EXPECT_EQ(norm->tensor.ptr<float>()[3], 4.0f);

  auto q = load_as_f32(*f.src->find("blk.0.attn_q.weight"));
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_FALSE(q->borrowed);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q->tensor.data) % 64, 0u);
  EXPECT_EQ(q->tensor.shape_string(), "[2, 32]");
  EXPECT_EQ(q->tensor.strides[0], 32);
  EXPECT_EQ(q->tensor.dtype, kernels::DType::kF32);
  const float* y = q->tensor.ptr<float>();
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 16));
    EXPECT_EQ(y[32 + j], 2.0f * static_cast<float>(j - 16));
  }
  auto cube = load_as(*f.src->find("cube"), kernels::DType::kBF16);
  ASSERT_TRUE(cube.is_ok());
  EXPECT_FALSE(cube->borrowed);
  EXPECT_EQ(cube->tensor.shape_string(), "[4, 3, 2]");
  EXPECT_EQ(cube->tensor.ptr<uint16_t>()[23], f32_to_bf16(1.5f));
}

TEST(WeightSourceTest, ConversionsRoundToNearestEven) {
  GgufBuilder g;
  std::vector<float> v = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -65504.0f * 2, 1e-8f};
  g.tensor({"v", {4}, 0, f32_bytes(v)});
  Bytes b = g.build();
  auto src =
      WeightSource::from_gguf(std::move(GgufFile::parse("m", b.data(), b.size(), nullptr)).value());
  auto bf = load_as(*src->find("v"), kernels::DType::kBF16);
  auto h = load_as(*src->find("v"), kernels::DType::kF16);
  ASSERT_TRUE(bf.is_ok() && h.is_ok());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(bf->tensor.ptr<uint16_t>()[i], f32_to_bf16(v[i])) << i;
    EXPECT_EQ(h->tensor.ptr<uint16_t>()[i], f32_to_f16(v[i])) << i;
  }
  EXPECT_EQ(load_as(*src->find("v"), kernels::DType::kI32).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(WeightSourceTest, ConvertRangesOnBlockBoundaries) {
  Fixture f = small_gguf();
  const WeightInfo& q = *f.src->find("blk.0.attn_q.weight");
  float y[32];
  ASSERT_TRUE(convert_to_f32(q, 32, 32, y).is_ok());
  EXPECT_EQ(y[0], 2.0f * -16.0f);
  EXPECT_EQ(convert_to_f32(q, 16, 32, y).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(convert_to_f32(q, 32, 64, y).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(convert_to_f32(q, ~uint64_t{0} - 8, 32, y).code(), StatusCode::kOutOfRange);
  // A hand-built WeightInfo whose bytes cannot hold its elements is refused, not read.
  WeightInfo bad = q;
  bad.num_elements = 96;
  EXPECT_EQ(convert_to_f32(bad, 0, 32, y).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(load_as_f32(bad).status().code(), StatusCode::kInvalidArgument);
  bad = q;
  bad.data = nullptr;
  EXPECT_EQ(convert_to_f32(bad, 0, 32, y).code(), StatusCode::kInvalidArgument);
}

TEST(WeightSourceTest, MatchesDequantFixtureThroughLoadAs) {
  auto src = WeightSource::open(sluice::testing::fixture_path("weights/dequant_types.gguf"));
  ASSERT_TRUE(src.is_ok()) << src.status().to_string();
  std::string expected =
      sluice::testing::read_file(sluice::testing::fixture_path("weights/dequant_expected.bin"));
  uint64_t at = 0;
  for (const auto& t : (*src)->gguf()->tensors()) {  // the file's order
    auto loaded = load_as_f32(*(*src)->find(t.name));
    ASSERT_TRUE(loaded.is_ok()) << t.name;
    ASSERT_LE((at + t.num_elements) * 4, expected.size());
    EXPECT_EQ(std::memcmp(loaded->tensor.data, expected.data() + at * 4, t.num_elements * 4), 0)
        << t.name;
    EXPECT_EQ(loaded->tensor.shape[0], static_cast<int64_t>(t.ne[1]));
    at += t.num_elements;
  }
}

TEST(WeightSourceTest, SafetensorsSingleAndShardedAndViews) {
  std::string single_dir = sluice::testing::fixture_path("weights/safetensors/single");
  std::string sharded_dir = sluice::testing::fixture_path("weights/safetensors/sharded");
  auto a = WeightSource::open(single_dir);
  auto b = WeightSource::open_safetensors_dir(sharded_dir);
  auto c = WeightSource::open(sharded_dir + "/model.safetensors.index.json");
  auto d = WeightSource::open(single_dir + "/model.safetensors");
  for (auto* s : {&a, &b, &c, &d}) ASSERT_TRUE(s->is_ok()) << s->status().to_string();
  EXPECT_EQ((*a)->format(), WeightSource::Format::kSafetensors);
  EXPECT_EQ((*a)->gguf(), nullptr);
  EXPECT_EQ((*b)->safetensors()->shards().size(), 2u);
  std::string expected = sluice::testing::read_file(
      sluice::testing::fixture_path("weights/safetensors/expected_f32.bin"));
  for (auto* s : {&a, &b, &c, &d}) {
    EXPECT_EQ((**s)->names(), (std::vector<std::string>{"a.weight", "b.bias", "c.weight"}));
    uint64_t at = 0;
    for (const char* name : {"a.weight", "b.bias", "c.weight"}) {
      const WeightInfo* w = (**s)->find(name);
      ASSERT_NE(w, nullptr);
      auto t = load_as_f32(*w);
      ASSERT_TRUE(t.is_ok()) << t.status().to_string();
      EXPECT_EQ(std::memcmp(t->tensor.data, expected.data() + at * 4, w->num_elements * 4), 0)
          << name;
      EXPECT_EQ(t->borrowed,
                w->dtype == SourceDType::kF32 && reinterpret_cast<uintptr_t>(w->data) % 4 == 0);
      at += w->num_elements;
    }
  }
  EXPECT_EQ((*a)->find("c.weight")->shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ((*a)->find("b.bias")->dtype, SourceDType::kF16);
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  fs::path p = fs::temp_directory_path() / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

TEST(WeightSourceTest, Bf16ViewAndUnalignedData) {
  // Header of 2 bytes puts the data at offset 10 (2-aligned, not 4-aligned).
  auto make = [](const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + data;
  };
  std::string data(8, '\0');
  uint16_t bf[2] = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f)};
  float f = 3.25f;
  std::memcpy(data.data(), bf, 4);
  std::memcpy(data.data() + 4, &f, 4);
  std::string header =
      R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"f":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})";
  while ((8 + header.size()) % 4 != 2) header += ' ';
  std::string path = write_temp("sluice_ws_unaligned.safetensors", make(header, data));
  auto src = WeightSource::open(path);
  ASSERT_TRUE(src.is_ok()) << src.status().to_string();
  auto b = load_as(*(*src)->find("b"), kernels::DType::kBF16);
  ASSERT_TRUE(b.is_ok());
  EXPECT_TRUE(b->borrowed);
  auto scalar = load_as_f32(*(*src)->find("f"));
  ASSERT_TRUE(scalar.is_ok());
  EXPECT_FALSE(scalar->borrowed);  // F32 at an address that is 2 mod 4: copied
  EXPECT_EQ(scalar->tensor.ndim, 1);
  EXPECT_EQ(scalar->tensor.shape[0], 1);
  EXPECT_EQ(scalar->tensor.ptr<float>()[0], 3.25f);
  auto b32 = load_as_f32(*(*src)->find("b"));
  ASSERT_TRUE(b32.is_ok());
  EXPECT_EQ(b32->tensor.ptr<float>()[1], -2.0f);
  fs::remove(path);
}

TEST(WeightSourceTest, ViewsOutliveTheSource) {
  Fixture f = small_gguf();
  std::string path =
      write_temp("sluice_ws_lifetime.gguf", std::string(f.bytes.begin(), f.bytes.end()));
  OwnedTensor view;
  WeightInfo copy;
  {
    auto src = WeightSource::open_gguf(path);
    ASSERT_TRUE(src.is_ok()) << src.status().to_string();
    auto t = load_as_f32(*(*src)->find("output_norm.weight"));
    ASSERT_TRUE(t.is_ok());
    ASSERT_TRUE(t->borrowed);
    view = *t;
    copy = *(*src)->find("cube");
  }
  fs::remove(path);
  // The mapping is still alive through the view and the WeightInfo copy.
  EXPECT_EQ(view.tensor.ptr<float>()[0], 1.0f);
  EXPECT_EQ(view.tensor.ptr<float>()[3], 4.0f);
  auto cube = load_as_f32(copy);
  ASSERT_TRUE(cube.is_ok());
  EXPECT_EQ(cube->tensor.ptr<float>()[23], 1.5f);
}

TEST(WeightSourceTest, RankAboveFourIsRejected) {
  std::string header = R"({"r5":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header + std::string(4, '\0');
  auto file = SafetensorsFile::parse(
      "r.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  const SafetensorsTensor* t = (*file)->find("r5");
  WeightInfo w;
  w.name = "r5";
  w.shape = t->shape;
  w.data = t->data;
  w.nbytes = 4;
  w.num_elements = 1;
  auto loaded = load_as_f32(w);
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("rank 5"), std::string::npos);
}

TEST(WeightSourceTest, OpenErrors) {
  EXPECT_EQ(WeightSource::open("/nonexistent/model.gguf").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(WeightSource::open_safetensors_dir("/nonexistent").status().code(),
            StatusCode::kNotFound);
  std::string path = write_temp("sluice_ws_garbage.gguf", "GGUF garbage");
  EXPECT_FALSE(WeightSource::open(path).is_ok());
  fs::remove(path);
}

}  // namespace
}  // namespace sluice::weights
