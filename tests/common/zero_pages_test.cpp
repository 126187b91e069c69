#include "common/zero_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

namespace sluice {
namespace {

// This process's resident anonymous memory in KiB (RssAnon in /proc/self/status).
int64_t rss_anon_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "RssAnon:") {
      int64_t kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

TEST(ZeroPages, ReadsZeroAndGrowsKeepingContents) {
  ZeroPages z(1000);
  ASSERT_NE(z.data(), nullptr);
  EXPECT_EQ(z.size(), 1000u);
  auto* b = static_cast<unsigned char*>(z.data());
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(b[i], 0) << i;
  std::memset(b, 0xAB, 1000);
  z.resize(3 << 20);
  b = static_cast<unsigned char*>(z.data());
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(b[i], 0xAB) << i;
  for (size_t i = 1000; i < (3u << 20); i += 4093) ASSERT_EQ(b[i], 0) << i;
  ZeroPages moved = std::move(z);
  EXPECT_EQ(z.data(), nullptr);
  EXPECT_EQ(z.size(), 0u);
  EXPECT_EQ(static_cast<unsigned char*>(moved.data())[999], 0xAB);
  moved.resize(0);
  EXPECT_EQ(moved.data(), nullptr);
}

// The point of the class: a large reservation is resident only where it was written.
TEST(ZeroPages, ResidentOnlyWhereWritten) {
  const int64_t before = rss_anon_kib();
  ASSERT_GE(before, 0) << "no RssAnon in /proc/self/status";
  ZeroPages z(size_t{512} << 20);
  auto* b = static_cast<unsigned char*>(z.data());
  for (size_t i = 0; i < (size_t{8} << 20); i += 4096) b[i] = 1;  // the first 8 MiB
  const int64_t after = rss_anon_kib();
  EXPECT_GE(after - before, 6 * 1024) << "the written pages should be resident";
  EXPECT_LT(after - before, 64 * 1024) << "512 MiB reserved, 8 MiB written: " << after - before
                                       << " KiB became resident";
}

}  // namespace
}  // namespace sluice
