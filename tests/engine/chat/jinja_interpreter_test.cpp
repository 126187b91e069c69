// Rendering semantics: Jinja's scoping, loops, macros, namespaces, Undefined, lookups and
// Python's operators and output formatting.

#include "engine/chat/jinja_interpreter.h"

#include <gtest/gtest.h>

#include "jinja_test_util.h"

namespace sluice::chat::jinja {
namespace {

using testing::Case;
using testing::ErrorCase;

TEST(JinjaInterpreter, ScopesFollowJinja) {
  const Case cases[] = {
      // A loop body starts from the outer value on every iteration; nothing leaks out.
      {"{% set v = 1 %}{% for i in range(3) %}{{ v }}{% set v = v + 1 %}{{ v }};{% endfor %}{{ v "
       "}}",
       "12;12;12;1"},
      {"{% for i in range(3) %}{% if i == 0 %}{% set y = 5 %}{% endif %}{{ y }};{% endfor %}",
       "5;;;"},
      // `if` opens no scope.
      {"{% if t %}{% set z = 'in' %}{% endif %}{{ z }}", "in"},
      // Macros see top-level variables as they are when called, not the caller's locals.
      {"{% macro m() %}{{ g }}{% endmacro %}{% set g = 1 %}{{ m() }}{% set g = 2 %}{{ m() }}",
       "12"},
      {"{% macro m() %}[{{ i }}]{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}", "[]"},
      {"{% set g = 3 %}{% macro m() %}{% set g = 4 %}{{ g }}{% endmacro %}{{ m() }}{{ g }}", "43"},
      // A macro may call one defined after it.
      {"{% macro a() %}a{{ b() }}{% endmacro %}{% macro b() %}b{% endmacro %}{{ a() }}", "ab"},
      // Namespaces carry state out of loops.
      {"{% set ns = namespace(c=0) %}{% for v in lst %}{% set ns.c = ns.c + v %}{% endfor %}"
       "{{ ns.c }}",
       "6"},
      // Context variables can be shadowed.
      {"{% set s = 'mine' %}{{ s }}", "mine"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaInterpreter, LoopVariables) {
  const Case cases[] = {
      {"{% for v in lst %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
       "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
       "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;"},
      {"{% for v in lst %}{{ loop.previtem }}>{{ loop.nextitem }} {% endfor %}", ">1 3>2 1> "},
      {"{% for a in [1, 2] %}{% for b in [3] %}{{ loop.index }}{{ loop.length }}{% endfor %}"
       "{{ loop.last }}{% endfor %}",
       "11False11True"},
      {"{% for v in lst if v != 1 %}{{ loop.index }}/{{ loop.length }} {% endfor %}", "1/2 2/2 "},
      {"{% for k in d %}{{ k }}{% endfor %}", "bAaB"},
      {"{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}", "b=1 A=2 a=3 B=0 "},
      {"{% for c in 'h\u00e9!' %}[{{ c }}]{% endfor %}", "[h][\u00e9][!]"},
      {"{% for v in x %}a{% else %}empty{% endfor %}",
       "ERROR: INVALID_ARGUMENT: chat template "
       "render failed, line 1: 'NoneType' object "
       "is not iterable"},
      {"{% for v in undefined_name %}a{% else %}empty{% endfor %}", "empty"},
      {"{{ loop }}", ""},
  };
  testing::expect_cases(cases);
}

TEST(JinjaInterpreter, Macros) {
  const Case cases[] = {
      {"{% macro f(a, b=2, c='x') %}{{ a }}{{ b }}{{ c }}{% endmacro %}"
       "{{ f(1) }} {{ f(1, 3) }} {{ f(1, c=4) }} {{ f() }} {{ f(c=0, a=9) }}",
       "12x 13x 124 2x 920"},
      {"{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}"
       "{% endmacro %}{{ fact(10) }}",
       "3628800"},
      {"{% macro m(a, b=a + 1) %}{{ b }}{% endmacro %}{{ m(1) }}", "2"},
      {"{% macro m() %}  out  {% endmacro %}[{{ m() }}]{{ m() is string }}", "[  out  ]True"},
      {"{% macro m() %}{% endmacro %}{{ m is callable }}", "True"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "macro 'm' takes not more than 1"},
      {"{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", "macro 'm' takes no keyword argument 'b'"},
      {"{% macro m(a) %}{% endmacro %}{{ m(1, a=1) }}", "got multiple values for 'a'"},
      {"{{ n() }}", "'int' object is not callable"},
      {"{{ nope() }}", "'nope' is undefined"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaInterpreter, Namespaces) {
  const Case cases[] = {
      {"{% set ns = namespace(a=1, b='x') %}{{ ns.a }}{{ ns.b }}{{ ns.c }}{{ ns['a'] }}", "1x1"},
      {"{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a + ns.b }}", "3"},
      {"{% set ns = namespace() %}{% set ns.items = [1] %}{{ ns.items }}", "[1]"},
      {"{% set ns = namespace(a=1) %}{{ ns }}", "<Namespace {'a': 1}>"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{% set ns.a = 1 %}", "cannot assign attribute 'a' on 'ns'"},
      {"{% set s.a = 1 %}", "not a namespace"},
      {"{% set ns = namespace() %}{% set ns._secret = 1 %}", "underscore-prefixed"},
      {"{% set ns = namespace(_a=1) %}", "underscore-prefixed"},
      {"{% set ns = namespace() %}{% set ns.me = ns %}", "cannot hold another namespace"},
      {"{% set ns = namespace() %}{% set ns.l = [1, {'k': ns}] %}",
       "cannot hold another namespace"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaInterpreter, UndefinedBehavesLikeJinja) {
  const Case cases[] = {
      {"[{{ nope }}][{{ d.zz }}][{{ d['zz'] }}][{{ lst[7] }}][{{ x.y }}]", "[][][][][]"},
      {"{{ nope is defined }} {{ nope is undefined }} {{ nope is sequence }} "
       "{{ nope is iterable }} {{ nope is mapping }} {{ nope is string }} {{ nope is none }}",
       "False True True True False False False"},
      {"{{ nope|default('dflt') }} {{ x|default('dflt') }} {{ empty|default('e', true) }}",
       "dflt None e"},
      {"{{ nope ~ 'a' }} {{ nope|length }} {{ nope|list }} {{ nope|upper }}|{{ nope|trim }}|",
       "a 0 [] ||"},
      {"{{ nope == nope }} {{ nope == none }} {{ 1 in nope }} {{ not nope }}",
       "True False False True"},
      {"{{ 1 if false }}|{{ (1 if false) is defined }}", "|False"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{{ nope.attr }}", "'nope' is undefined"},
      {"{{ nope['k'] }}", "'nope' is undefined"},
      {"{{ d.zz.deeper }}", "'dict object' has no attribute 'zz'"},
      {"{{ lst[9][0] }}", "list object has no element 9"},
      {"{{ nope + 1 }}", "'nope' is undefined"},
      {"{{ 'a' + nope }}", "'nope' is undefined"},
      {"{{ -nope }}", "'nope' is undefined"},
      {"{{ nope < 1 }}", "'nope' is undefined"},
      {"{{ nope[1:] }}", "'nope' is undefined"},
      {"{{ nope|dictsort }}", "'nope' is undefined"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaInterpreter, LookupsFollowTheSandbox) {
  const Case cases[] = {
      // obj.name tries the attribute (method) first; obj['name'] tries the key first.
      {"{{ {'items': 1}['items'] }} {{ {'items': 1}.items is callable }}", "1 True"},
      {"{{ d['items'] is mapping }} {{ 'yes' if d['items'] else 'no' }}", "False yes"},
      {"{{ users[0].name }} {{ users[0]['age'] }} {{ messages[1].content }}", "ann 31 yo"},
      // No private attributes, no walks into host objects.
      {"[{{ s.__class__ }}][{{ d.__len__ }}][{{ range.__globals__ }}][{{ lst._x }}]", "[][][][]"},
      {"{{ s['upper']() }} {{ s[0] }} {{ s[-1] }} {{ s[99] }}|", "HELLO H o |"},
      {"{{ lst[true] }} {{ d[1] }}|", "1 |"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{{ s.__class__.__mro__ }}", "'str object' has no attribute '__class__'"},
      {"{{ n[1:] }}", "'int' object is not subscriptable"},
      {"{{ lst[::0] }}", "slice step cannot be zero"},
      {"{{ lst['a':] }}", "slice start must be an integer"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaInterpreter, PythonOperators) {
  const Case cases[] = {
      {"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ -7.5 // 2 }} "
       "{{ 7.5 % -2 }} {{ 10 / 4 }} {{ 10 / 5 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2.0 ** 3 }}",
       "3 -4 2 -2 3.0 -4.0 -0.5 2.5 2.0 1024 0.5 8.0"},
      {"{{ True + 1 }} {{ true * 3 }} {{ 1 == true }} {{ 1.0 == 1 }} {{ 0.1 + 0.2 }}",
       "2 3 True True 0.30000000000000004"},
      {"{{ 'ab' * 3 }} {{ 2 * [0] }} {{ [1] + [2] }} {{ (1,) + (2,) }} {{ 'a' + 'b' }} "
       "{{ 'ab' * 0 }}|{{ [1] * -1 }}",
       "ababab [0, 0] [1, 2] (1, 2) ab |[]"},
      {"{{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ [1] < [1, 0] }} {{ 2 >= 2.0 }} "
       "{{ 'B' < 'a' }}",
       "True True True True True"},
      {"{{ {'a': 1, 'b': [1, 2]} == {'b': [1, 2], 'a': 1} }} {{ [1, 2] == (1, 2) }} "
       "{{ 'a' ~ 1 ~ none ~ true ~ 1.5 ~ [1] }}",
       "True False a1NoneTrue1.5[1]"},
      {"{{ t and 'yes' }} {{ empty or 'fallback' }} {{ 0 or none }} {{ '' and 1 }}|",
       "yes fallback None |"},
      {"{{ 9007199254740993 + 0 }} {{ -(-9223372036854775807) }}",
       "9007199254740993 9223372036854775807"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{{ 1 / 0 }}", "division by zero"},
      {"{{ 1 // 0 }}", "integer division or modulo by zero"},
      {"{{ 1.5 % 0 }}", "float modulo"},
      {"{{ 'a' + 1 }}", "can only concatenate str (not \"int\") to str"},
      {"{{ [1] + 'a' }}", "can only concatenate list (not \"str\") to list"},
      {"{{ 'a' - 'b' }}", "unsupported operand type(s) for -: 'str' and 'str'"},
      {"{{ 'a' < 1 }}", "'<' not supported between instances of 'str' and 'int'"},
      {"{{ -'a' }}", "bad operand type for unary -: 'str'"},
      {"{{ 9223372036854775807 + 1 }}", "integer overflow"},
      {"{{ 2 ** 64 }}", "integer overflow"},
      {"{{ '%s' % 1 }}", "string formatting"},
      {"{{ 1 in 'abc' }}", "'in <string>' requires string as left operand, not int"},
      {"{{ 1 in 5 }}", "argument of type 'int' is not iterable"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaInterpreter, OutputUsesPythonStr) {
  const Case cases[] = {
      {"{{ 1.0 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} "
       "{{ -0.0 }} {{ 2 ** 0.5 }} {{ 1.5e-7 }} {{ 123456789.125 }}",
       "1.0 1e+20 1e+16 1000000000000000.0 0.0001 1e-05 0.3333333333333333 -0.0 "
       "1.4142135623730951 1.5e-07 123456789.125"},
      {"{{ f }} {{ n }} {{ t }} {{ x }} {{ lst }} {{ d }}",
       "2.5 5 True None [3, 1, 2] {'b': 1, 'A': 2, 'a': 3, 'B': 0}"},
      {"{{ [1, 'a', True, None, {'k': 1.5}, (2,)] }}", "[1, 'a', True, None, {'k': 1.5}, (2,)]"},
      {R"({{ ["it's", 'say "hi"', 'both \' "', 'tab\tnl\n\x01\x7f\xa0é\u2028'] }})",
       R"(["it's", 'say "hi"', 'both \' "', 'tab\tnl\n\x01\x7f\xa0é\u2028'])"},
      {"{{ users[1] }}", "{'name': 'Bob', 'age': 25}"},
  };
  testing::expect_cases(cases);
}

}  // namespace
}  // namespace sluice::chat::jinja
