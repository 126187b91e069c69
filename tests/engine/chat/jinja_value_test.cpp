// Values and text helpers: Python's float repr, str repr, json.dumps, truthiness, equality,
// ordering and UTF-8 handling.

#include "engine/chat/jinja_value.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/chat/jinja_text.h"

namespace sluice::chat::jinja {
namespace {

constexpr size_t kMax = 1 << 20;

TEST(JinjaText, FormatsFloatsLikePythonRepr) {
  const std::pair<double, const char*> cases[] = {
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {1.0, "1.0"},
      {-2.5, "-2.5"},
      {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0 / 3, "0.3333333333333333"},
      {1e15, "1000000000000000.0"},
      {1e16, "1e+16"},
      {1.5e16, "1.5e+16"},
      {123456789012345.6, "123456789012345.6"},
      {0.0001, "0.0001"},
      {0.00001, "1e-05"},
      {1.5e-7, "1.5e-07"},
      {1e300, "1e+300"},
      {5e-324, "5e-324"},
      {std::numeric_limits<double>::max(), "1.7976931348623157e+308"},
      {std::nan(""), "nan"},
      {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"},
  };
  for (const auto& [v, want] : cases) EXPECT_EQ(format_py_float(v), want) << want;
}

TEST(JinjaText, ReprsStringsLikePython) {
  auto r = [](std::string_view s) {
    std::string out;
    append_py_repr(out, s);
    return out;
  };
  EXPECT_EQ(r("abc"), "'abc'");
  EXPECT_EQ(r("it's"), "\"it's\"");
  EXPECT_EQ(r("a\"b"), "'a\"b'");
  EXPECT_EQ(r("'\""), "'\\'\"'");
  EXPECT_EQ(r("\\\n\r\t"), "'\\\\\\n\\r\\t'");
  EXPECT_EQ(r("\x01\x7f"), "'\\x01\\x7f'");
  EXPECT_EQ(r("\xc2\xa0\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80"),
            "'\\xa0\xc3\xa9\\u2028\xf0\x9f\x98\x80'");
}

TEST(JinjaText, EscapesJsonStringsLikePython) {
  auto j = [](std::string_view s, bool ascii) {
    std::string out;
    append_json_string(out, s, ascii);
    return out;
  };
  EXPECT_EQ(j("a\"b\\c\n\r\t\b\f\x01/<>&'", false), R"("a\"b\\c\n\r\t\b\f\u0001/<>&'")");
  EXPECT_EQ(j("\xc3\xa9\xf0\x9f\x98\x80\x7f", false), "\"\xc3\xa9\xf0\x9f\x98\x80\x7f\"");
  EXPECT_EQ(j("\xc3\xa9\xf0\x9f\x98\x80", true), R"("\u00e9\ud83d\ude00")");
}

TEST(JinjaText, StripsAndCasesUnicode) {
  EXPECT_EQ(py_strip_chars("\xe3\x80\x80 a \xc2\xa0\n", {}, true, true), "a");
  EXPECT_EQ(py_rstrip(" a \t"), " a");
  EXPECT_EQ(py_lstrip(" a \t"), "a \t");
  EXPECT_EQ(py_strip_chars("xyaxy", "yx", true, true), "a");
  EXPECT_EQ(py_strip_chars("\xc3\xa9"
                           "a\xc3\xa9",
                           "\xc3\xa9", true, false),
            "a\xc3\xa9");
  EXPECT_EQ(py_upper("stra\xc3\x9f"
                     "e \xc3\xa9 \xce\xb1\xcf\x82 \xd0\xb4"),
            "STRASSE \xc3\x89 \xce\x91\xce\xa3 \xd0\x94");
  EXPECT_EQ(py_lower("\xc3\x89T\xc3\x89 \xce\x91 \xd0\x94"), "\xc3\xa9t\xc3\xa9 \xce\xb1 \xd0\xb4");
  EXPECT_EQ(py_title("hello wORLD 1st o'neil"), "Hello World 1St O'Neil");
  EXPECT_EQ(py_capitalize("hELLO World"), "Hello world");
  EXPECT_TRUE(py_islower("abc1"));
  EXPECT_FALSE(py_islower("123"));
  EXPECT_TRUE(py_isupper("ABC1"));
}

TEST(JinjaText, CountsCodePointsAndKeepsBadBytes) {
  EXPECT_EQ(utf8_length("h\xc3\xa9llo\xf0\x9f\x98\x80"), 6u);
  std::vector<std::string_view> chars = utf8_chars("a\xff\xc3\xa9\xe2\x82");
  ASSERT_EQ(chars.size(), 5u);  // a, \xff, é, \xe2, \x82
  EXPECT_EQ(chars[2], "\xc3\xa9");
  EXPECT_EQ(py_upper("\xff"
                     "a"),
            "\xff"
            "A");
}

TEST(JinjaValue, TruthinessAndEqualityFollowPython) {
  EXPECT_FALSE(truthy(Value()));
  EXPECT_FALSE(truthy(Value(None{})));
  EXPECT_FALSE(truthy(Value(0)));
  EXPECT_FALSE(truthy(Value(0.0)));
  EXPECT_FALSE(truthy(Value("")));
  EXPECT_FALSE(truthy(Value::list({})));
  EXPECT_FALSE(truthy(Value::dict({})));
  EXPECT_TRUE(truthy(Value("0")));
  EXPECT_TRUE(truthy(Value::list({Value(None{})})));

  EXPECT_TRUE(equals(Value(1), Value(1.0)));
  EXPECT_TRUE(equals(Value(true), Value(1)));
  EXPECT_FALSE(equals(Value("1"), Value(1)));
  EXPECT_TRUE(equals(Value(), Value::undefined("other")));
  EXPECT_FALSE(equals(Value(), Value(None{})));
  EXPECT_TRUE(equals(Value::dict({{"a", Value(1)}, {"b", Value(2)}}),
                     Value::dict({{"b", Value(2)}, {"a", Value(1.0)}})));
  EXPECT_FALSE(equals(Value::list({Value(1)}), Value::list({Value(1)}, true)));
  EXPECT_FALSE(equals(Value(std::nan("")), Value(std::nan(""))));
}

TEST(JinjaValue, OrdersLikePythonAndRejectsMixedTypes) {
  EXPECT_TRUE(compare(Value(1), "<", Value(1.5)));
  EXPECT_TRUE(compare(Value("B"), "<", Value("a")));
  EXPECT_TRUE(compare(Value("\xc3\xa9"), ">", Value("z")));
  EXPECT_TRUE(compare(Value::list({Value(1), Value(2)}), "<", Value::list({Value(1), Value(3)})));
  EXPECT_TRUE(compare(Value::list({Value(1)}), "<=", Value::list({Value(1), Value(0)})));
  EXPECT_FALSE(compare(Value(std::nan("")), "<", Value(1)));
  EXPECT_THROW(compare(Value("a"), "<", Value(1)), TemplateError);
  EXPECT_THROW(compare(Value(), "<", Value(1)), TemplateError);
}

TEST(JinjaValue, DictsKeepInsertionOrderAndLastDuplicate) {
  Value d = Value::dict({{"b", Value(1)}, {"a", Value(2)}, {"b", Value(3)}});
  ASSERT_EQ(d.as_dict().items.size(), 2u);
  EXPECT_EQ(repr(d, kMax), "{'b': 3, 'a': 2}");
  std::vector<std::pair<std::string, Value>> many;
  for (int i = 0; i < 50; ++i) {
    std::string key = fmt::format("k{}", i % 40);
    many.emplace_back(std::move(key), Value(i));
  }
  Value big = Value::dict(std::move(many));
  ASSERT_EQ(big.as_dict().items.size(), 40u);
  EXPECT_EQ(big.as_dict().find("k3")->as_int(), 43);
  EXPECT_EQ(big.as_dict().find("k39")->as_int(), 39);
  EXPECT_EQ(big.as_dict().find("nope"), nullptr);
}

TEST(JinjaValue, TracksDepthAndWeightAndCapsNesting) {
  Value v(1);
  for (int i = 0; i < kMaxValueDepth; ++i) v = Value::list({v, Value("x")});
  EXPECT_EQ(v.depth(), kMaxValueDepth);
  EXPECT_EQ(v.weight(), 1 + 2 * int64_t{kMaxValueDepth});
  EXPECT_THROW(Value::list({v}), TemplateError);
  EXPECT_THROW(Value::dict({{"k", v}}), TemplateError);
}

TEST(JinjaValue, ToStrAndJsonStopAtTheByteLimit) {
  std::vector<Value> items(1000, Value(std::string(100, 'x')));
  Value big = Value::list(std::move(items));
  EXPECT_THROW(to_str(big, 10'000), TemplateError);
  EXPECT_THROW(to_json(big, JsonOptions{}, 10'000), TemplateError);
  EXPECT_EQ(to_str(big, 1 << 20).size(), 1000u * 102 + 999 * 2 + 2);  // quotes, ", ", []
  JsonOptions o;
  EXPECT_EQ(to_json(Value::list({Value(1.0), Value(None{}), Value(false)}), o, kMax),
            "[1.0, null, false]");
  EXPECT_THROW(to_json(Value(), o, kMax), TemplateError);
}

}  // namespace
}  // namespace sluice::chat::jinja
