#pragma once
// A small leveled logger for the lower layers (common, kernels, models, engine), which must
// build without spdlog (INTERFACES.md, "The GPU build"). Lines go to stderr unless the
// process installs a sink (the server routes them into spdlog).

#include <fmt/format.h>

#include <string>

namespace sluice {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

using LogSink = void (*)(LogLevel level, const std::string& message);

void set_log_level(LogLevel level);
LogLevel log_level();
// nullptr restores the default stderr sink.
void set_log_sink(LogSink sink);
void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_message(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace sluice

#define SLUICE_LOG_DEBUG(...) ::sluice::log(::sluice::LogLevel::kDebug, __VA_ARGS__)
#define SLUICE_LOG_INFO(...) ::sluice::log(::sluice::LogLevel::kInfo, __VA_ARGS__)
#define SLUICE_LOG_WARN(...) ::sluice::log(::sluice::LogLevel::kWarn, __VA_ARGS__)
#define SLUICE_LOG_ERROR(...) ::sluice::log(::sluice::LogLevel::kError, __VA_ARGS__)
