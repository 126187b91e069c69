#include "common/log.h"

#include <atomic>
#include <cstdio>

namespace sluice {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<LogSink> g_sink{nullptr};
const char* level_tag(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void set_log_sink(LogSink sink) { g_sink.store(sink); }

void log_message(LogLevel level, const std::string& message) {
  if (LogSink sink = g_sink.load()) {
    sink(level, message);
    return;
  }
  std::fprintf(stderr, "[sluice %s] %s\n", level_tag(level), message.c_str());
}

}  // namespace sluice
