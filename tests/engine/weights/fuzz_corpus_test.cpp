// Replays the committed fuzz seed corpora (tests/fuzz/corpus/) through the same entry points
// as the fuzz harnesses, so any input that once crashed stays covered without clang or
// libFuzzer. Seeds named valid* must parse; the rest must fail cleanly or parse.

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/weights/gguf.h"
#include "engine/weights/safetensors.h"
#include "engine/weights/weight_source.h"
#include "test_util.h"

namespace sluice::weights {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> corpus(const std::string& harness) {
  std::vector<fs::path> out;
  fs::path dir = fs::path(sluice::testing::source_dir()) / "tests/fuzz/corpus" / harness;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_valid_seed(const fs::path& p) { return p.filename().string().rfind("valid", 0) == 0; }

void touch_all(const WeightSource& src) {
  for (const auto& name : src.names()) {
    const WeightInfo* w = src.find(name);
    if (w->num_elements > (1u << 16)) continue;
    auto t = load_as_f32(*w);
    EXPECT_TRUE(t.is_ok()) << name << ": " << t.status().to_string();
  }
}

TEST(FuzzCorpusTest, Gguf) {
  auto files = corpus("fuzz_gguf");
  ASSERT_GE(files.size(), 3u);
  int valid = 0;
  for (const auto& p : files) {
    std::string bytes = sluice::testing::read_file(p.string());
    auto f = GgufFile::parse(p.filename().string(), reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size(), nullptr);
    if (is_valid_seed(p)) {
      ASSERT_TRUE(f.is_ok()) << f.status().to_string();
      ++valid;
    }
    if (f.is_ok()) touch_all(*WeightSource::from_gguf(std::move(f).value()));
  }
  EXPECT_GE(valid, 1);
}

TEST(FuzzCorpusTest, Safetensors) {
  auto files = corpus("fuzz_safetensors");
  ASSERT_GE(files.size(), 3u);
  for (const auto& p : files) {
    std::string bytes = sluice::testing::read_file(p.string());
    auto f = SafetensorsFile::parse(p.filename().string(),
                                    reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                    nullptr);
    if (is_valid_seed(p)) {
      EXPECT_TRUE(f.is_ok()) << p << ": " << f.status().to_string();
    }
    if (!f.is_ok()) {
      EXPECT_EQ(f.status().message().find('\n'), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace sluice::weights
