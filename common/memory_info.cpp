#include "common/memory_info.h"

#include <fstream>
#include <sstream>

namespace sluice {
namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<uint64_t> parse_u64(const std::string& text) {
  std::istringstream in(text);
  uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

// The cgroup v2 directory of this process ("0::/path" in /proc/self/cgroup).
std::optional<std::string> cgroup_dir() {
  const std::optional<std::string> text = read_small_file("/proc/self/cgroup");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> parse_meminfo_available(const std::string& meminfo) {
  std::istringstream in(meminfo);
  std::string key;
  while (in >> key) {
    if (key == "MemAvailable:") {
      uint64_t kib = 0;
      if (!(in >> kib)) return std::nullopt;
      return kib * 1024;
    }
    in.ignore(1 << 16, '\n');
  }
  return std::nullopt;
}

std::optional<uint64_t> cgroup_room(const std::string& memory_max, const std::string& memory_current) {
  if (memory_max.rfind("max", 0) == 0) return std::nullopt;  // no limit
  const std::optional<uint64_t> limit = parse_u64(memory_max);
  const std::optional<uint64_t> used = parse_u64(memory_current);
  if (!limit || !used) return std::nullopt;
  return *used >= *limit ? 0 : *limit - *used;
}

std::optional<MemoryAvailable> memory_available() {
  std::optional<MemoryAvailable> best;
  if (const std::optional<std::string> mi = read_small_file("/proc/meminfo")) {
    if (const std::optional<uint64_t> b = parse_meminfo_available(*mi)) best = MemoryAvailable{*b, "MemAvailable"};
  }
  if (const std::optional<std::string> dir = cgroup_dir()) {
    const std::optional<std::string> max = read_small_file(*dir + "/memory.max");
    const std::optional<std::string> cur = read_small_file(*dir + "/memory.current");
    if (max && cur) {
      if (const std::optional<uint64_t> room = cgroup_room(*max, *cur); room && (!best || *room < best->bytes)) {
        best = MemoryAvailable{*room, "cgroup memory.max"};
      }
    }
  }
  return best;
}

}  // namespace sluice
