#include "common/log.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace sluice {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
std::atomic<LogSink> g_sink{nullptr};

// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F || ch == '"' || ch == '\\' || ch == '=') return true;
  }
  return false;
}

// Appends ASCII character `ch` escaped: the short escapes both formats share (\" \\ \n \r
// \t, and in JSON \b \f), other control characters as \xHH (text) or \u00HH (JSON).
void append_escaped_ascii(std::string& out, char ch, bool json) {
  const auto c = static_cast<unsigned char>(ch);
  switch (ch) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default:
      break;
  }
  if (json && ch == '\b') {
    out += "\\b";
  } else if (json && ch == '\f') {
    out += "\\f";
  } else if (c < 0x20 || c == 0x7F) {
    out += json ? fmt::format("\\u{:04x}", c) : fmt::format("\\x{:02x}", c);
  } else {
    out += ch;
  }
}

// A text-format value: as is when it is one plain word, else quoted with \" \\ and control
// characters escaped, so that a value can never break the line.
void append_text_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (char ch : v) append_escaped_ascii(out, ch, /*json=*/false);
  out += '"';
}

void append_value(std::string& out, const FieldValue& v, LogFormat format) {
  const bool json = format == LogFormat::kJson;
  switch (v.kind()) {
    case FieldValue::Kind::kNull:
      out += "null";
      return;
    case FieldValue::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case FieldValue::Kind::kInt:
      out += fmt::format("{}", v.as_int());
      return;
    case FieldValue::Kind::kUint:
      out += fmt::format("{}", v.as_uint());
      return;
    case FieldValue::Kind::kDouble:
      if (json && !std::isfinite(v.as_double())) {
        out += "null";  // JSON has no NaN or infinity
      } else {
        out += fmt::format("{}", v.as_double());
      }
      return;
    case FieldValue::Kind::kString:
      if (json) {
        out += '"';
        out += json_escape(v.as_string());
        out += '"';
      } else {
        append_text_value(out, v.as_string());
      }
      return;
  }
}

void write_line(LogLevel level, const std::string& line) {
  if (LogSink sink = g_sink.load()) {
    sink(level, line);
    return;
  }
  // One fprintf per line: stdio's lock keeps lines from different threads whole.
  if (log_format() == LogFormat::kJson) {
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {
    std::fprintf(stderr, "[sluice %s] %s\n", log_level_name(level).data(), line.c_str());
  }
}

}  // namespace

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "?";
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void set_log_format(LogFormat format) { g_format.store(static_cast<int>(format)); }
LogFormat log_format() { return static_cast<LogFormat>(g_format.load()); }
void set_log_sink(LogSink sink) { g_sink.store(sink); }

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return std::nullopt;
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      append_escaped_ascii(out, ch, /*json=*/true);
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string format_rfc3339_ms(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms_since = duration_cast<milliseconds>(t.time_since_epoch()).count();
  // Floor division, so that times before 1970 still get 0..999 ms.
  int64_t secs = ms_since / 1000;
  int64_t ms = ms_since % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::string format_log_line(LogFormat format, LogLevel level, std::string_view msg,
                            std::initializer_list<LogField> fields,
                            std::chrono::system_clock::time_point now) {
  std::string line;
  if (format == LogFormat::kJson) {
    line += "{\"ts\":\"";
    line += format_rfc3339_ms(now);
    line += "\",\"level\":\"";
    line += log_level_name(level);
    line += "\",\"msg\":\"";
    line += json_escape(msg);
    line += '"';
    for (const auto& [key, value] : fields) {
      line += ",\"";
      line += json_escape(key);
      line += "\":";
      append_value(line, value, format);
    }
    line += '}';
    return line;
  }
  line += msg;
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    append_value(line, value, format);
  }
  return line;
}

void log_message(LogLevel level, const std::string& message) {
  if (level < log_level()) return;
  if (log_format() == LogFormat::kText) {
    write_line(level, message);
    return;
  }
  write_line(level, format_log_line(LogFormat::kJson, level, message, {},
                                    std::chrono::system_clock::now()));
}

void log_fields(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (level < log_level()) return;
  write_line(level,
             format_log_line(log_format(), level, msg, fields, std::chrono::system_clock::now()));
}

}  // namespace sluice
