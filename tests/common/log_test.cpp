// The logger's text and JSON line formats, the JSON string escaper, and structured fields.

#include "common/log.h"

#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

std::mutex g_lines_mu;
std::vector<std::pair<LogLevel, std::string>> g_lines;

void capture(LogLevel level, const std::string& line) {
  std::lock_guard<std::mutex> lock(g_lines_mu);
  g_lines.emplace_back(level, line);
}

// Routes lines into g_lines for one test and restores the defaults after it.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_lines.clear();
    set_log_sink(&capture);
    set_log_level(LogLevel::kInfo);
  }
  void TearDown() override {
    set_log_sink(nullptr);
    set_log_format(LogFormat::kText);
    set_log_level(LogLevel::kInfo);
  }
};

TEST(LogFormatTest, Rfc3339WithMilliseconds) {
  const system_clock::time_point t{milliseconds(1700000000123)};
  EXPECT_EQ(format_rfc3339_ms(t), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(format_rfc3339_ms(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(system_clock::time_point{milliseconds(-1)}),
            "1969-12-31T23:59:59.999Z");
}

TEST(LogFormatTest, ParseLogFormat) {
  EXPECT_EQ(parse_log_format("text"), LogFormat::kText);
  EXPECT_EQ(parse_log_format("json"), LogFormat::kJson);
  EXPECT_EQ(parse_log_format("JSON"), std::nullopt);
  EXPECT_EQ(parse_log_format(""), std::nullopt);
}

TEST(LogFormatTest, JsonEscape) {
  EXPECT_EQ(json_escape("plain"), "plain");
  EXPECT_EQ(json_escape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(json_escape("l1\nl2\r\t\b\f"), "l1\\nl2\\r\\t\\b\\f");
  EXPECT_EQ(json_escape(std::string("\x01\x1f\x7f", 3)), "\\u0001\\u001f\\u007f");
  EXPECT_EQ(json_escape(std::string_view("a\0b", 3)), "a\\u0000b");
  // Valid UTF-8 passes through; invalid bytes become U+FFFD, one per byte.
  EXPECT_EQ(json_escape("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(json_escape("\xff"), "\\ufffd");
  EXPECT_EQ(json_escape("a\xc3"), "a\\ufffd");             // truncated
  EXPECT_EQ(json_escape("\xc0\xaf"), "\\ufffd\\ufffd");    // overlong
  EXPECT_EQ(json_escape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // surrogate
  EXPECT_EQ(json_escape("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // > U+10FFFF
}

TEST(LogFormatTest, EscapedStringsParseBack) {
  std::string all;
  for (int c = 0; c < 128; ++c) all += static_cast<char>(c);
  all += "\xc3\xa9";
  std::string quoted = "\"";
  quoted += json_escape(all);
  quoted += '"';
  const auto parsed = nlohmann::json::parse(quoted);
  EXPECT_EQ(parsed.get<std::string>(), all);
}

TEST(LogFormatTest, TextLineQuotesOnlyWhatNeedsIt) {
  const std::string line = format_log_line(
      LogFormat::kText, LogLevel::kInfo, "request done",
      {{"method", "POST"},
       {"path", "/v1/completions"},
       {"status", 200},
       {"bytes", uint64_t{1234}},
       {"ms", 12.5},
       {"gone", false},
       {"agent", "curl 8.0"},
       {"empty", ""},
       {"evil", "a\"b\nc=d\\"},
       {"none", nullptr}},
      system_clock::now());
  EXPECT_EQ(line,
            "request done method=POST path=/v1/completions status=200 bytes=1234 ms=12.5 "
            "gone=false agent=\"curl 8.0\" empty=\"\" evil=\"a\\\"b\\nc=d\\\\\" none=null");
}

TEST(LogFormatTest, JsonLineIsOneObject) {
  const system_clock::time_point t{milliseconds(1700000000123)};
  const std::string id = "req-1";
  const std::string line = format_log_line(
      LogFormat::kJson, LogLevel::kWarn, "say \"hi\"\n",
      {{"request_id", id},
       {"status", -1},
       {"ratio", 0.25},
       {"nan", std::nan("")},
       {"ok", true},
       {"none", nullptr}},
      t);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["msg"], "say \"hi\"\n");
  EXPECT_EQ(j["request_id"], "req-1");
  EXPECT_EQ(j["status"], -1);
  EXPECT_EQ(j["ratio"], 0.25);
  EXPECT_TRUE(j["nan"].is_null());
  EXPECT_EQ(j["ok"], true);
  EXPECT_TRUE(j["none"].is_null());
  // Members in order: ts, level, msg, then the fields.
  EXPECT_EQ(line.rfind("{\"ts\":", 0), 0u);
  EXPECT_LT(line.find("\"msg\""), line.find("\"request_id\""));
}

TEST_F(LogTest, TextModeSinkGetsMessageAndFields) {
  SLUICE_LOG_INFO("loaded {} in {} ms", "model", 12);
  log_fields(LogLevel::kInfo, "request", {{"status", 404}, {"path", "/nope"}});
  SLUICE_LOG_DEBUG("hidden");
  log_fields(LogLevel::kDebug, "hidden too", {});
  ASSERT_EQ(g_lines.size(), 2u);
  EXPECT_EQ(g_lines[0].first, LogLevel::kInfo);
  EXPECT_EQ(g_lines[0].second, "loaded model in 12 ms");
  EXPECT_EQ(g_lines[1].second, "request status=404 path=/nope");
}

TEST_F(LogTest, JsonModeEveryLineIsAnObject) {
  set_log_format(LogFormat::kJson);
  EXPECT_EQ(log_format(), LogFormat::kJson);
  SLUICE_LOG_ERROR("bad\t{}", "thing");
  log_fields(LogLevel::kInfo, "request", {{"status", 200}, {"duration_ms", 1.5}});
  ASSERT_EQ(g_lines.size(), 2u);
  const std::regex ts(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  for (const auto& [level, line] : g_lines) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(), ts)) << line;
  }
  const auto e = nlohmann::json::parse(g_lines[0].second);
  EXPECT_EQ(e["level"], "error");
  EXPECT_EQ(e["msg"], "bad\tthing");
  const auto r = nlohmann::json::parse(g_lines[1].second);
  EXPECT_EQ(r["level"], "info");
  EXPECT_EQ(r["msg"], "request");
  EXPECT_EQ(r["status"], 200);
  EXPECT_EQ(r["duration_ms"], 1.5);
}

}  // namespace
}  // namespace sluice
