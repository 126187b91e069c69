#include "common/memory_info.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(MemoryInfo, ParsesMemAvailable) {
  const std::string meminfo =
      "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   15000000 kB\n"
      "Buffers:          100 kB\n";
  EXPECT_EQ(parse_meminfo_available(meminfo), 15000000ull * 1024);
  EXPECT_EQ(parse_meminfo_available("MemTotal: 5 kB\n"), std::nullopt);
}

TEST(MemoryInfo, CgroupRoomUnderALimit) {
  EXPECT_EQ(cgroup_room("max\n", "123\n"), std::nullopt);
  EXPECT_EQ(cgroup_room("1000\n", "250\n"), 750u);
  EXPECT_EQ(cgroup_room("1000\n", "1200\n"), 0u);
  EXPECT_EQ(cgroup_room("garbage", "1"), std::nullopt);
}

TEST(MemoryInfo, ThisMachineReportsSomething) {
  const std::optional<MemoryAvailable> m = memory_available();
  ASSERT_TRUE(m.has_value()) << "no /proc/meminfo?";
  EXPECT_GT(m->bytes, 0u);
  EXPECT_FALSE(m->source.empty());
}

}  // namespace
}  // namespace sluice
