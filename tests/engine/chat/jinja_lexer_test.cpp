// Lexing: tag and literal tokens, and the whitespace rules of transformers' environment
// (trim_blocks, lstrip_blocks, `-` / `+` controls, one trailing newline dropped).

#include "engine/chat/jinja_lexer.h"

#include <gtest/gtest.h>

#include "engine/chat/jinja_value.h"
#include "jinja_test_util.h"

namespace sluice::chat::jinja {
namespace {

using testing::Case;
using testing::ErrorCase;

std::vector<TokenType> types(const std::vector<Token>& tokens) {
  std::vector<TokenType> out;
  for (const Token& t : tokens) out.push_back(t.type);
  return out;
}

TEST(JinjaLexer, SplitsTextAndTags) {
  std::vector<Token> t = tokenize("a{{ x.y + 1 }}b{% if z %}c");
  using T = TokenType;
  EXPECT_EQ(types(t), (std::vector<T>{T::kText, T::kVarBegin, T::kName, T::kOp, T::kName, T::kOp,
                                      T::kInt, T::kVarEnd, T::kText, T::kBlockBegin, T::kName,
                                      T::kName, T::kBlockEnd, T::kText, T::kEof}));
  EXPECT_EQ(t[0].text, "a");
  EXPECT_EQ(t[3].text, ".");
  EXPECT_EQ(t[6].int_value, 1);
  EXPECT_EQ(t[13].text, "c");
}

TEST(JinjaLexer, RecordsLineAndColumn) {
  std::vector<Token> t = tokenize("ab\n  {{ foo }}");
  ASSERT_EQ(t[2].type, TokenType::kName);
  EXPECT_EQ(t[2].line, 2);
  EXPECT_EQ(t[2].column, 6);
}

TEST(JinjaLexer, DecodesStringEscapes) {
  std::vector<Token> t = tokenize(R"({{ 'a\n\t\\\'\x41\u00e9\U0001F600\101\q' "d\"q" }})");
  ASSERT_EQ(t[1].type, TokenType::kString);
  EXPECT_EQ(t[1].text,
            "a\n\t\\'A\xc3\xa9\xf0\x9f\x98\x80"
            "A\\q");
  EXPECT_EQ(t[2].text, "d\"q");
}

TEST(JinjaLexer, ReadsNumbers) {
  std::vector<Token> t = tokenize("{{ 1_000 0x1F 0o17 0b101 1.5 2e3 1_0.2_5 0 00 }}");
  EXPECT_EQ(t[1].int_value, 1000);
  EXPECT_EQ(t[2].int_value, 31);
  EXPECT_EQ(t[3].int_value, 15);
  EXPECT_EQ(t[4].int_value, 5);
  EXPECT_EQ(t[5].float_value, 1.5);
  EXPECT_EQ(t[6].type, TokenType::kFloat);
  EXPECT_EQ(t[6].float_value, 2000.0);
  EXPECT_EQ(t[7].float_value, 10.25);
  EXPECT_EQ(t[8].int_value, 0);
  EXPECT_EQ(t[9].int_value, 0);
}

TEST(JinjaLexer, BracesInsideTagsDoNotCloseIt) {
  std::vector<Token> t = tokenize("{{ {'a': {'b': 1}} }}");
  EXPECT_EQ(t.back().type, TokenType::kEof);
  EXPECT_EQ(t[t.size() - 2].type, TokenType::kVarEnd);
}

TEST(JinjaLexer, RejectsMalformedInput) {
  const char* bad[] = {"{{ x ",
                       "{% if x",
                       "{# never closed",
                       "{{ 'abc }}",
                       "{{ x ] }}",
                       "{{ (x] }}",
                       "{{ 99999999999999999999 }}",
                       "{{ x $ y }}",
                       "{% raw %}never closed",
                       "{{ '\\x4' }}",
                       "{{ '\\ud800' }}"};
  for (const char* src : bad) {
    SCOPED_TRACE(src);
    try {
      tokenize(src);
      ADD_FAILURE() << "no error";
    } catch (const TemplateError& e) {
      EXPECT_GE(e.line, 1);
      EXPECT_GE(e.column, 1);
    }
  }
}

TEST(JinjaLexer, ErrorsPointAtTheTag) {
  try {
    tokenize("line one\nline two {{ x\n");
    ADD_FAILURE() << "no error";
  } catch (const TemplateError& e) {
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.column, 10);
  }
}

TEST(JinjaLexer, WhitespaceControlMatchesJinja) {
  const Case cases[] = {
      // trim_blocks + lstrip_blocks.
      {R"(  {% if true %}
  A
  {% endif %}
  B {# c #}
C
)",
       R"(  A
  B C)"},
      {"{% if t %}\n  yes\n{% else %}\n  no\n{% endif %}\n", "  yes\n"},
      // `-` strips every kind of whitespace, newlines included, on its side.
      {"a  \n\t {{- s -}} \n  b", "aHellob"},
      {"a \n {%- if t -%} \n x \n {%- endif -%} \n b", "axb"},
      {"a \n {#- note -#} \n b", "ab"},
      // `+` keeps the spaces lstrip_blocks would remove.
      {"line1   \n   {%- if true %}X{% endif %}  \n{%+ if true %}Y{% endif %}", "line1X  \nY"},
      {"  {%+ if t %}A{% endif %}", "  A"},
      // lstrip applies only when the tag starts its line; `{{` is never lstripped.
      {"x {% if t %}y{% endif %}", "x y"},
      {"  {{ s }}\n  {% if t %}z{% endif %}", "  Hello\nz"},
      // trim_blocks drops one newline after a block or comment tag, none after `}}`.
      {"{% if t %}\n\nA{% endif %}", "\nA"},
      {"{{ s }}\nA", "Hello\nA"},
      {"{# c #}\nA", "A"},
      {"{% if t +%}\nA{% endif %}", "\nA"},
      // One trailing newline of the template is dropped; \r\n counts as a newline.
      {"A\n\n", "A\n"},
      {"A\r\n{% if t %}\r\nB\r\n{% endif %}\r\n", "A\nB\n"},
      // Unicode whitespace counts for `-`.
      {"a\u3000 {{- s }}", "aHello"},
      // Raw blocks.
      {"a\n{% raw %}{{ x }}{% endraw %}\nb", "a\n{{ x }}b"},
      {"  {% raw -%}  {{ y }}  {%- endraw %}\nz", "{{ y }}z"},
      // Comments vanish.
      {"a{# {{ x }} {% if %} #}b", "ab"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaLexer, MalformedTemplatesFailToCompile) {
  const ErrorCase cases[] = {
      {"abc {{ x", "line 1, column 5"},
      {"\n\n  {% if x %", "line 3, column 3"},
      {"{{ 'unterminated }}", "unterminated string"},
      {"{{ a ! b }}", "unexpected character '!'"},
      {"{{ a ) }}", "unexpected ')'"},
      {"{{ [1, 2) }}", "expected ']'"},
  };
  testing::expect_errors(cases);
}

}  // namespace
}  // namespace sluice::chat::jinja
