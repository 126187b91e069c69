#pragma once
// A small leveled logger for the lower layers (common, kernels, models, engine), which must
// build without spdlog (INTERFACES.md, "The GPU build"). Lines go to stderr unless the
// process installs a sink.
//
// Two line formats (--log-format), process-wide:
// - text: `[sluice info] message key=value key="a value"`, for people;
// - json: one object per line, `{"ts":"2025-01-02T03:04:05.678Z","level":"info","msg":...}`
//   plus one member per field, for log collectors. ts is UTC (RFC 3339, milliseconds).
// Structured lines (log_fields) carry key/value fields, e.g. one line per finished request.

#include <fmt/format.h>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };
enum class LogFormat : int { kText = 0, kJson = 1 };

// Receives each line that passes the level, without the trailing newline. In text format
// `line` is the message and its fields (`msg key=value ...`, no level tag: the sink has the
// level); in json format it is the whole JSON object. Called on the logging thread, possibly
// from several threads at once.
using LogSink = void (*)(LogLevel level, const std::string& line);

void set_log_level(LogLevel level);
LogLevel log_level();
void set_log_format(LogFormat format);
LogFormat log_format();
// "text" or "json" (exactly); nullopt otherwise.
std::optional<LogFormat> parse_log_format(std::string_view name);
// nullptr restores the default stderr sink.
void set_log_sink(LogSink sink);
// Writes `message` as one line in the current format, if `level` passes log_level().
void log_message(LogLevel level, const std::string& message);

// A field value of a structured line. Strings are viewed, not copied: a FieldValue lives
// only for the call it is passed to (temporaries such as fmt::format(...) results are fine).
class FieldValue {
 public:
  enum class Kind : uint8_t { kNull, kString, kInt, kUint, kDouble, kBool };

  FieldValue(std::nullptr_t) {}  // NOLINT: implicit by design, as are the others
  FieldValue(std::string_view s) : kind_(Kind::kString), str_(s) {}  // NOLINT
  FieldValue(const char* s) : kind_(Kind::kString), str_(s != nullptr ? s : "") {}  // NOLINT
  FieldValue(const std::string& s) : kind_(Kind::kString), str_(s) {}  // NOLINT
  FieldValue(bool b) : kind_(Kind::kBool), bool_(b) {}               // NOLINT
  template <std::signed_integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  FieldValue(T v) : kind_(Kind::kInt), int_(v) {}  // NOLINT
  template <std::unsigned_integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  FieldValue(T v) : kind_(Kind::kUint), uint_(v) {}  // NOLINT
  FieldValue(double v) : kind_(Kind::kDouble), double_(v) {}  // NOLINT
  FieldValue(float v) : kind_(Kind::kDouble), double_(v) {}   // NOLINT

  Kind kind() const { return kind_; }
  std::string_view as_string() const { return str_; }
  int64_t as_int() const { return int_; }
  uint64_t as_uint() const { return uint_; }
  double as_double() const { return double_; }
  bool as_bool() const { return bool_; }

 private:
  Kind kind_ = Kind::kNull;
  std::string_view str_;
  union {
    int64_t int_ = 0;
    uint64_t uint_;
    double double_;
    bool bool_;
  };
};

using LogField = std::pair<std::string_view, FieldValue>;

// One structured line: `msg` and its fields, in order. Text: `msg key=value ...`, where a
// string value is quoted (with \" and \\ escaped) when it is empty or has a space, a quote,
// a backslash, '=' or a control character; doubles print in their shortest round-trip form
// (round them first for shorter lines); null prints as `null`. Json: the fields become
// members after ts, level and msg (a NaN or infinite double becomes null). Keys should be
// snake_case identifiers; a key equal to ts, level or msg is written as given (a duplicate
// member), so avoid those.
void log_fields(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_message(level, fmt::format(format, std::forward<Args>(args)...));
}

// Pure pieces of the formats, exposed for tests.
// `s` as the body of a JSON string (no surrounding quotes): ", \ and control characters
// escaped (\n, \t, ... or \u00XX); bytes that are not valid UTF-8 become U+FFFD.
std::string json_escape(std::string_view s);
// "2025-01-02T03:04:05.678Z": UTC, milliseconds truncated.
std::string format_rfc3339_ms(std::chrono::system_clock::time_point t);
// The line a sink receives for `msg` with `fields` in `format` (ts: `now`).
std::string format_log_line(LogFormat format, LogLevel level, std::string_view msg,
                            std::initializer_list<LogField> fields,
                            std::chrono::system_clock::time_point now);
// "debug", "info", "warning", "error", "off".
std::string_view log_level_name(LogLevel level);

}  // namespace sluice

#define SLUICE_LOG_DEBUG(...) ::sluice::log(::sluice::LogLevel::kDebug, __VA_ARGS__)
#define SLUICE_LOG_INFO(...) ::sluice::log(::sluice::LogLevel::kInfo, __VA_ARGS__)
#define SLUICE_LOG_WARN(...) ::sluice::log(::sluice::LogLevel::kWarn, __VA_ARGS__)
#define SLUICE_LOG_ERROR(...) ::sluice::log(::sluice::LogLevel::kError, __VA_ARGS__)
