#pragma once
// How much memory this process may still use: the smaller of the system's MemAvailable
// (/proc/meminfo) and, under a cgroup v2 memory limit (a container), that limit minus the
// group's current usage. For start-up checks that turn "the OOM killer later" into a clear
// error now.

#include <cstdint>
#include <optional>
#include <string>

namespace sluice {

struct MemoryAvailable {
  uint64_t bytes = 0;
  std::string source;  // "MemAvailable" or "cgroup memory.max"
};

// nullopt when neither can be read (not Linux, no /proc).
std::optional<MemoryAvailable> memory_available();

// The parsers, for tests: MemAvailable in bytes from /proc/meminfo text; the room left under
// a cgroup v2 limit from the texts of memory.max ("max" or bytes) and memory.current.
std::optional<uint64_t> parse_meminfo_available(const std::string& meminfo);
std::optional<uint64_t> cgroup_room(const std::string& memory_max, const std::string& memory_current);

}  // namespace sluice
