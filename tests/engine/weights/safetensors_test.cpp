// safetensors: files written by the Python `safetensors` package (fixtures), a 2-shard
// set, and malformed headers and indexes built here.

#include "engine/weights/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace sluice::weights {
namespace {

namespace fs = std::filesystem;

std::string st_bytes(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

Status parse(const std::string& bytes) {
  return SafetensorsFile::parse("bad.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()),
                                bytes.size(), nullptr)
      .status();
}

void expect_rejected(const std::string& bytes, StatusCode code, const std::string& needle) {
  Status st = parse(bytes);
  ASSERT_FALSE(st.is_ok()) << "accepted; expected " << needle;
  EXPECT_EQ(st.code(), code) << st.to_string();
  EXPECT_EQ(st.message().rfind("bad.safetensors: ", 0), 0u) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(SafetensorsTest, ReadsPythonWrittenFile) {
  std::string path = sluice::testing::fixture_path("weights/safetensors/single/model.safetensors");
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  ASSERT_EQ((*f)->tensors().size(), 3u);
  const SafetensorsTensor* a = (*f)->find("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, SafetensorsDType::kF32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(a->nbytes(), 128u);
  EXPECT_EQ(a->num_elements, 32u);
  const SafetensorsTensor* b = (*f)->find("b.bias");
  EXPECT_EQ(b->dtype, SafetensorsDType::kF16);
  EXPECT_EQ((*f)->find("c.weight")->shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  // a.weight's first value equals the reference dump.
  std::string expected = sluice::testing::read_file(
      sluice::testing::fixture_path("weights/safetensors/expected_f32.bin"));
  ASSERT_GE(expected.size(), 4u);
  EXPECT_EQ(std::memcmp(a->data, expected.data(), 4 * 32), 0);
  // Sorted by offset, tiling the data region.
  uint64_t at = 0;
  for (const auto& t : (*f)->tensors()) {
    EXPECT_EQ(t.begin, at);
    at = t.end;
  }
}

TEST(SafetensorsTest, ShardedAndSingleSetsAgree) {
  auto single =
      SafetensorsSet::open_dir(sluice::testing::fixture_path("weights/safetensors/single"));
  auto sharded =
      SafetensorsSet::open_dir(sluice::testing::fixture_path("weights/safetensors/sharded"));
  ASSERT_TRUE(single.is_ok()) << single.status().to_string();
  ASSERT_TRUE(sharded.is_ok()) << sharded.status().to_string();
  EXPECT_EQ((*sharded)->shards().size(), 2u);
  EXPECT_EQ((*single)->names(), (*sharded)->names());
  EXPECT_EQ((*sharded)->names(), (std::vector<std::string>{"a.weight", "b.bias", "c.weight"}));
  for (const auto& name : (*single)->names()) {
    const SafetensorsFile* shard = nullptr;
    const auto* x = (*single)->find(name);
    const auto* y = (*sharded)->find(name, &shard);
    ASSERT_NE(y, nullptr);
    ASSERT_NE(shard, nullptr);
    EXPECT_EQ(x->shape, y->shape);
    EXPECT_EQ(x->nbytes(), y->nbytes());
    EXPECT_EQ(std::memcmp(x->data, y->data, x->nbytes()), 0) << name;
  }
  EXPECT_NE((*sharded)->find("c.weight"), nullptr);
  EXPECT_EQ((*sharded)->find("nope"), nullptr);
}

TEST(SafetensorsTest, EmptyScalarAndZeroSizeTensorsAreValid) {
  EXPECT_TRUE(parse(st_bytes("{}")).is_ok());
  EXPECT_TRUE(parse(st_bytes(R"({"__metadata__": {"a": "b"}})")).is_ok());
  EXPECT_TRUE(parse(st_bytes(R"({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})",
                             std::string(4, '\0')))
                  .is_ok());
  EXPECT_TRUE(parse(st_bytes(R"({"z": {"dtype": "BF16", "shape": [0, 5], "data_offsets": [0, 0]},
                                 "s": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})",
                             std::string(2, '\0')))
                  .is_ok());
  // Trailing spaces after the JSON (as writers pad the header) are fine.
  EXPECT_TRUE(parse(st_bytes("{}    ")).is_ok());
}

TEST(SafetensorsTest, MalformedHeaderLength) {
  expect_rejected(std::string(5, '\0'), StatusCode::kDataLoss, "too short");
  std::string big(8, '\0');
  uint64_t n = ~uint64_t{0};
  std::memcpy(big.data(), &n, 8);
  expect_rejected(big + "{}", StatusCode::kDataLoss, "header length larger than the file");
  std::string past = st_bytes("{}");
  past[0] = 3;  // claims 3 bytes, file has 2 after the length
  expect_rejected(past, StatusCode::kDataLoss, "(3, limit 2)");
}

TEST(SafetensorsTest, MalformedJson) {
  expect_rejected(st_bytes("not json"), StatusCode::kDataLoss, "not a JSON object");
  expect_rejected(st_bytes("[1, 2]"), StatusCode::kDataLoss, "not a JSON object");
  expect_rejected(st_bytes("{\"a\": "), StatusCode::kDataLoss, "invalid JSON");
  expect_rejected(st_bytes("{\"a\": \"\xff\"}"), StatusCode::kDataLoss, "invalid JSON");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                             "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                           std::string(8, '\0')),
                  StatusCode::kDataLoss, "duplicate JSON key 'a'");
  std::string deep = "{\"__metadata__\": " + std::string(100, '[') + std::string(100, ']') + "}";
  expect_rejected(st_bytes(deep), StatusCode::kDataLoss, "nested too deeply");
  expect_rejected(st_bytes(R"({"__metadata__": {"a": 1}})"), StatusCode::kDataLoss,
                  "__metadata__ value of 'a'");
  expect_rejected(st_bytes(R"({"__metadata__": []})"), StatusCode::kDataLoss, "__metadata__");
}

TEST(SafetensorsTest, MalformedEntries) {
  const std::string d4(4, '\0');
  expect_rejected(st_bytes(R"({"a": 5})", d4), StatusCode::kDataLoss, "entry is not an object");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1]}})", d4), StatusCode::kDataLoss,
                  "lacks one of");
  expect_rejected(st_bytes(R"({"a": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})", d4),
                  StatusCode::kUnimplemented, "dtype I8 not supported");
  expect_rejected(st_bytes(R"({"a": {"dtype": 3, "shape": [4], "data_offsets": [0, 4]}})", d4),
                  StatusCode::kDataLoss, "dtype is not a string");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", d4),
                  StatusCode::kDataLoss, "shape has a dim");
  expect_rejected(
      st_bytes(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", d4),
      StatusCode::kDataLoss, "shape has a dim");
  expect_rejected(
      st_bytes(R"({"a": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]}})",
               d4),
      StatusCode::kDataLoss, "at most 8 dims");
  expect_rejected(
      st_bytes(
          R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})",
          d4),
      StatusCode::kDataLoss, "element count overflows");
  // product * 4 wraps to 0 while the element count itself fits.
  expect_rejected(
      st_bytes(
          R"({"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})"),
      StatusCode::kDataLoss, "does not match shape");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", d4),
                  StatusCode::kDataLoss, "does not match shape");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", d4),
                  StatusCode::kDataLoss, "end before begin");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", d4),
                  StatusCode::kDataLoss, "data_offsets is not two");
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, -4]}})", d4),
                  StatusCode::kDataLoss, "data_offsets is not two");
}

TEST(SafetensorsTest, MalformedOffsets) {
  const std::string d8(8, '\0');
  // Gap at the start.
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", d8),
                  StatusCode::kDataLoss, "leaving a gap (4, limit 0)");
  // Overlap.
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                           d8),
                  StatusCode::kDataLoss, "overlapping");
  // Past the end of the data region.
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", d8),
                  StatusCode::kDataLoss, "ends past the data region (16, limit 8)");
  // Offsets near 2^64.
  expect_rejected(
      st_bytes(
          R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551615]}})",
          d8),
      StatusCode::kDataLoss, "");
  // Trailing bytes after the last tensor.
  expect_rejected(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", d8),
                  StatusCode::kDataLoss, "data region size does not match");
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("sluice_st_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(file(name), std::ios::binary) << bytes;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

const char* kShardA = R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
const char* kShardB = R"({"y": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})";

TEST(SafetensorsTest, IndexErrors) {
  TempDir dir;
  dir.write("a.safetensors", st_bytes(kShardA, std::string(4, '\0')));
  dir.write("b.safetensors", st_bytes(kShardB, std::string(4, '\0')));
  auto open_with = [&](const std::string& index) {
    dir.write("model.safetensors.index.json", index);
    return SafetensorsSet::open_dir(dir.path().string()).status();
  };
  EXPECT_TRUE(open_with(R"({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})").is_ok());
  Status missing = open_with(R"({"weight_map": {"x": "a.safetensors", "y": "c.safetensors"}})");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.to_string();
  EXPECT_NE(missing.message().find("c.safetensors"), std::string::npos);
  Status wrong_shard = open_with(R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors"}})");
  EXPECT_EQ(wrong_shard.code(), StatusCode::kDataLoss);
  EXPECT_NE(wrong_shard.message().find("'y' is mapped to"), std::string::npos);
  for (const char* bad : {"../a.safetensors", "/etc/passwd", "sub/a.safetensors", ".."}) {
    Status st = open_with(std::string(R"({"weight_map": {"x": ")") + bad + "\"}}");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("not a plain file name"), std::string::npos) << st.message();
  }
  EXPECT_EQ(open_with(R"({"metadata": {}})").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_with(R"({"weight_map": {"x": 1}})").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_with(R"({"weight_map": {"x": "a.safetensors", "x": "a.safetensors"}})").code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(open_with("[]").code(), StatusCode::kInvalidArgument);
  // The same tensor in two shards.
  dir.write("b.safetensors",
            st_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                     std::string(8, '\0')));
  Status twice = open_with(R"({"weight_map": {"x": "a.safetensors", "w": "b.safetensors"}})");
  EXPECT_EQ(twice.code(), StatusCode::kDataLoss) << twice.to_string();
  EXPECT_NE(twice.message().find("'x' is also in"), std::string::npos) << twice.message();
}

TEST(SafetensorsTest, OpenDirWithoutModelIsNotFound) {
  TempDir dir;
  EXPECT_EQ(SafetensorsSet::open_dir(dir.path().string()).status().code(), StatusCode::kNotFound);
  dir.write("model.safetensors", st_bytes(kShardA, std::string(4, '\0')));
  auto set = SafetensorsSet::open_dir(dir.path().string());
  ASSERT_TRUE(set.is_ok()) << set.status().to_string();
  EXPECT_EQ((*set)->names(), std::vector<std::string>{"x"});
}

}  // namespace
}  // namespace sluice::weights
