// Parsing: Jinja's operator precedence and associativity (which differ from Python's in
// places), statement forms, and syntax errors with their positions.

#include "engine/chat/jinja_parser.h"

#include <gtest/gtest.h>

#include <string>

#include "jinja_test_util.h"

namespace sluice::chat::jinja {
namespace {

using testing::Case;
using testing::ErrorCase;

TEST(JinjaParser, PrecedenceMatchesJinja) {
  const Case cases[] = {
      {"{{ 1 + 2 * 3 }}", "7"},
      {"{{ (1 + 2) * 3 }}", "9"},
      {"{{ 3 - 2 - 1 }}", "0"},
      {"{{ 2 ** 3 ** 2 }}", "64"},  // Jinja's ** is left-associative
      {"{{ -2 ** 2 }}", "4"},       // and unary minus binds tighter
      {"{{ -n|abs }}", "5"},        // filters apply to the negated value
      {"{{ not 1 == 2 }}", "True"},
      {"{{ 'a' ~ 1 * 2 }}", "a2"},
      {"{{ 1 + 2 ~ 3 }}",
       "ERROR: INVALID_ARGUMENT: chat template render failed, line 1: "
       "unsupported operand type(s) for +: 'int' and 'str'"},
      {"{{ n|default(1) + 1 }}", "6"},
      {"{{ 1 if x else 2 if t else 3 }}", "2"},
      {"{{ x or t and 0 }}", "0"},
      {"{{ 'b' in 'abc' and not 'z' in 'abc' }}", "True"},
      {"{{ 'z' not in 'abc' }}", "True"},
      {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 != 2 }}", "True False True"},
      {"{{ s is string and s|length > 3 }}", "True"},
      {"{{ n is divisibleby 5 }} {{ n is not divisibleby(2) }}", "True True"},
      {"{{ (x is none) if t else 0 }}", "True"},
      {"{{ users[0]['name'] }} {{ users.1.name }} {{ users[-1].age + 1 }}", "ann Bob 26"},
      {"{{ lst[1:] }} {{ lst[:-1] }} {{ lst[::2] }} {{ lst[::-1] }} {{ s[1:4] }}",
       "[1, 2] [3, 1] [3, 2] [2, 1, 3] ell"},
      {"{{ 'abc'|upper|lower }}", "abc"},
      {"{{ ('a', 'b')|join('-') }} {{ (1,) }} {{ () }}", "a-b (1,) ()"},
      {"{{ [1, 2,] }} {{ {'k': 1,} }}", "[1, 2] {'k': 1}"},
      {"{{ 'a' 'b' \"c\" }}", "abc"},
      {"{{ 1, 2 }}", "(1, 2)"},
      {"{{ true }} {{ True }} {{ none }} {{ None }} {{ false }}", "True True None None False"},
      {"{{ d.keys()|list|length }} {{ s.upper() }}", "4 HELLO"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaParser, StatementForms) {
  const Case cases[] = {
      {"{% if x %}a{% elif n > 3 %}b{% else %}c{% endif %}", "b"},
      {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }},{% endfor %}", "3,7,"},
      {"{% for (a, b) in d|dictsort %}{{ a }}{% endfor %}", "AabB"},
      {"{% for v in lst if v > 1 %}{{ v }}{% else %}none{% endfor %}", "32"},
      {"{% for v in [] %}{{ v }}{% else %}none{% endfor %}", "none"},
      {"{% set a, b = 1, 2 %}{{ a }}{{ b }}", "12"},
      {"{% set a = 1, 2 %}{{ a }}", "(1, 2)"},
      {"{% set ns = namespace(v=1) %}{% set ns.v = ns.v + 1 %}{{ ns.v }}", "2"},
      {"{% set blk | upper %}x{{ n }}{% endset %}{{ blk }}", "X5"},
      {"{% filter upper|replace('A', '_') %}abc{% endfilter %}", "_BC"},
      {"{% macro m(a, b=2) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(3, b=4) }}", "1234"},
      {"{% generation %}kept{% endgeneration %}", "kept"},
      {"{% for v in lst %}{% if v == 1 %}{% break %}{% endif %}{{ v }}{% endfor %}", "3"},
      {"{% for v in lst %}{% if v == 1 %}{% continue %}{% endif %}{{ v }}{% endfor %}", "32"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaParser, SyntaxErrorsNameThePosition) {
  const ErrorCase cases[] = {
      {"{% if x %}never closed", "expected '{% endif %}'"},
      {"{% for v in lst %}", "expected '{% endfor %}'"},
      {"text\n{% endfor %}", "line 2, column 4: unexpected '{% endfor %}'"},
      {"{% include 'x' %}", "unknown or unsupported tag 'include'"},
      {"{{ x|nosuchfilter }}", "line 1, column 6: no filter named 'nosuchfilter'"},
      {"{{ x is nosuchtest }}", "no test named 'nosuchtest'"},
      {"{{ }}", "expected an expression"},
      {"{{ 1 + }}", "unexpected end of print statement"},
      {"{% break %}", "'break' outside of a for loop"},
      {"{% for v in lst %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}",
       "'break' outside of a for loop"},
      {"{% macro m(a=1, b) %}{% endmacro %}", "non-default argument follows default"},
      {"{{ f(a=1, 2) }}", "positional argument follows keyword argument"},
      {"{{ f(*args) }}", "not supported"},
      {"{{ lst[1, 2] }}", "tuple subscripts are not supported"},
      {"{% for v in lst recursive %}{% endfor %}", "recursive for loops are not supported"},
      {"{% set %}", "expected a name"},
      {"{% if x %}{% else %}{% else %}{% endif %}", "unexpected '{% else %}'"},
      {"{{ x. }}", "expected a name"},
      {"{{ 'a' is string is string }}", "tests cannot be chained"},
      // As in Jinja, a name after a test is its argument, so this `if` is not a condition.
      {"{{ x is none if t else 0 }}", "expected end of print statement"},
  };
  testing::expect_errors(cases);
}

TEST(JinjaParser, RejectsNestingPastTheLimit) {
  std::string deep_parens = "{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
  std::string deep_blocks;
  for (int i = 0; i < 500; ++i) deep_blocks += "{% if true %}";
  std::string long_chain = "{{ 1 }}";
  for (int i = 0; i < 500; ++i) long_chain.insert(long_chain.size() - 3, " + 1");
  std::string negations = "{{ " + std::string(2000, '-') + "1 }}";
  std::string nots = "{{ ";
  for (int i = 0; i < 500; ++i) nots += "not ";
  nots += "1 }}";
  for (const std::string& src : {deep_parens, deep_blocks, long_chain, negations, nots}) {
    StatusOr<ChatTemplate> t = ChatTemplate::compile(src);
    ASSERT_FALSE(t.is_ok()) << src.substr(0, 40);
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("deeper than 128"), std::string::npos)
        << t.status().message();
  }
  // Just under the limit still compiles.
  std::string ok_chain = "{{ 1";
  for (int i = 0; i < 100; ++i) ok_chain += " + 1";
  EXPECT_EQ(testing::render_or_error(ok_chain + " }}"), "101");
}

}  // namespace
}  // namespace sluice::chat::jinja
