// Filters, tests, methods and globals, each against what jinja2 (with transformers'
// overrides) renders.

#include "engine/chat/jinja_builtins.h"

#include <gtest/gtest.h>

#include "jinja_test_util.h"

namespace sluice::chat::jinja {
namespace {

using testing::Case;
using testing::ErrorCase;

TEST(JinjaFilters, Strings) {
  const Case cases[] = {
      {"[{{ '  a b \n'|trim }}][{{ '\u3000x\u00a0'|trim }}][{{ 'xxaxx'|trim('x') }}]",
       "[a b][x][a]"},
      {"{{ s|upper }} {{ s|lower }} {{ 'hELLO wORLD'|capitalize }} {{ x|upper }}",
       "HELLO hello Hello world NONE"},
      {"{{ \"they're bill's-friend (a)\"|title }} {{ 'stra\u00dfe \u00e9t\u00e9'|upper }}",
       "They're Bill's-Friend (A) STRASSE \u00c9T\u00c9"},
      {"{{ 'aXbX'|replace('X', '') }} {{ 'abc'|replace('', '-') }} {{ 'aaa'|replace('a', 'b', 2) "
       "}}",
       "ab -a-b-c- bba"},
      {"{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) "
       "}}"
       "|{{ 'x\ny'|indent('> ') }}",
       "a\n  b\n\n  c|  a\n  b|a\n  \n  b|x\n> y"},
      {"{{ '<a href=\"x\">&\\'</a>'|e }} {{ '<b>'|safe }} {{ 5|string ~ 1 }}",
       "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt; <b> 51"},
      {"{{ s|length }} {{ 'h\u00e9llo'|count }} {{ lst|length }} {{ d|length }}", "5 5 3 4"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaFilters, Numbers) {
  const Case cases[] = {
      {"{{ 3.7|int }} {{ '42'|int }} {{ ' -7 '|int }} {{ '4.5'|int }} {{ 'x'|int }} "
       "{{ 'x'|int(9) }} {{ '0x1f'|int(0, 16) }} {{ '1_000'|int }} {{ true|int }} {{ none|int }}",
       "3 42 -7 4 0 9 31 1000 1 0"},
      {"{{ '3'|float }} {{ ' 1e3 '|float }} {{ 'x'|float }} {{ 'x'|float(1.5) }} {{ 2|float }}",
       "3.0 1000.0 0.0 1.5 2.0"},
      {"{{ 2.5|round }} {{ 3.5|round }} {{ 3.14159|round(2) }} {{ 3|round }} "
       "{{ 2.1|round(0, 'ceil') }} {{ 2.9|round(0, 'floor') }} {{ -3|abs }} {{ -2.5|abs }}",
       "2.0 4.0 3.14 3 3.0 2.0 3 2.5"},
      {"{{ lst|sum }} {{ users|sum(attribute='age') }} {{ [0.5, 1]|sum(start=1) }}", "6 56 2.5"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaFilters, Sequences) {
  const Case cases[] = {
      {"{{ lst|join(',') }} {{ lst|join }} {{ users|join(', ', attribute='name') }} "
       "{{ [1, none, 'a']|join('|') }}",
       "3,1,2 312 ann, Bob 1|None|a"},
      {"{{ lst|first }} {{ lst|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ d|first }} "
       "{{ d|last }} [{{ []|first }}]",
       "3 2 a c b B []"},
      {"{{ s|list }} {{ d|list }} {{ d|items|list }} {{ (1, 2)|list }}",
       "['H', 'e', 'l', 'l', 'o'] ['b', 'A', 'a', 'B'] [('b', 1), ('A', 2), ('a', 3), ('B', 0)] "
       "[1, 2]"},
      {"{{ d|dictsort }} {{ d|dictsort(true) }} {{ d|dictsort(by='value') }} "
       "{{ d|dictsort(reverse=true) }}",
       "[('A', 2), ('a', 3), ('b', 1), ('B', 0)] [('A', 2), ('B', 0), ('a', 3), ('b', 1)] "
       "[('B', 0), ('b', 1), ('A', 2), ('a', 3)] [('b', 1), ('B', 0), ('A', 2), ('a', 3)]"},
      {"{{ lst|sort }} {{ lst|sort(reverse=true) }} {{ ['b', 'A', 'a']|sort }} "
       "{{ ['B', 'a', 'C']|sort(case_sensitive=true) }} {{ "
       "users|sort(attribute='age')|map(attribute='name')|join }} "
       "{{ [3, 1.5, true]|sort }}",
       "[1, 2, 3] [3, 2, 1] ['A', 'a', 'b'] ['B', 'C', 'a'] Bobann [True, 1.5, 3]"},
      {"{{ ['b', 'A', 'a', 'B']|unique|list }} {{ ['a', 'A']|unique(true)|list }} "
       "{{ users|unique(attribute='admin')|map(attribute='name')|list }} {{ [1, 1.0, "
       "true]|unique|list }}",
       "['b', 'A'] ['a', 'A'] ['ann', 'Bob'] [1]"},
      {"{{ lst|reverse|list }} {{ 'h\u00e9!'|reverse }} {{ d|reverse|list }}",
       "[2, 1, 3] !\u00e9h ['B', 'a', 'A', 'b']"},
      {"{{ users|map(attribute='name')|list }} {{ users|map(attribute='admin', default=false)|list "
       "}} "
       "{{ ['a', 'b']|map('upper')|list }} {{ [' a ']|map('trim')|list }} "
       "{{ ['x']|map('replace', 'x', 'y')|list }} {{ users|map(attribute='name.0')|list }}",
       "['ann', 'Bob'] [True, False] ['A', 'B'] ['a'] ['y'] ['a', 'B']"},
      {"{{ users|selectattr('admin')|map(attribute='name')|list }} "
       "{{ users|rejectattr('admin')|map(attribute='name')|list }} "
       "{{ users|selectattr('age', 'gt', 30)|list|length }} "
       "{{ users|selectattr('name', 'equalto', 'Bob')|list|length }} "
       "{{ lst|select('odd')|list }} {{ lst|reject('odd')|list }} {{ [0, 1, '']|select|list }}",
       "['ann'] ['Bob'] 1 1 [3, 1] [2] [1]"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaFilters, ToJsonMatchesTransformersOverride) {
  const Case cases[] = {
      {"{{ d|tojson }}", R"({"b": 1, "A": 2, "a": 3, "B": 0})"},
      {"{{ d|tojson(sort_keys=true) }}", R"({"A": 2, "B": 0, "a": 3, "b": 1})"},
      {"{{ [1, 2.0, 'é\n<&>\\'\"', none, true, [], {}]|tojson }}",
       R"([1, 2.0, "é\n<&>'\"", null, true, [], {}])"},
      {"{{ {'a': [1, {'b': none}], 'c': {}}|tojson(indent=2) }}",
       "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {}\n}"},
      {"{{ [1, 2]|tojson(indent='\t') }}", "[\n\t1,\n\t2\n]"},
      {"{{ {'a': 1, 'b': 2}|tojson(separators=(',', ':')) }}", R"({"a":1,"b":2})"},
      {"{{ 'é😀\u0001'|tojson(ensure_ascii=true) }}", R"("\u00e9\ud83d\ude00\u0001")"},
      {"{{ 1e20|tojson }} {{ 0.1|tojson }} {{ -0.0|tojson }}", "1e+20 0.1 -0.0"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{{ nope|tojson }}", "Object of type Undefined is not JSON serializable"},
      {"{{ namespace()|tojson }}", "Object of type Namespace is not JSON serializable"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaTests, AllTests) {
  const Case cases[] = {
      {"{{ s is string }} {{ n is string }} {{ d is mapping }} {{ lst is mapping }} "
       "{{ lst is sequence }} {{ s is sequence }} {{ d is sequence }} {{ n is sequence }} "
       "{{ d is iterable }} {{ n is iterable }}",
       "True False True False True True True False True False"},
      {"{{ t is boolean }} {{ n is boolean }} {{ t is true }} {{ 1 is true }} {{ false is false }} "
       "{{ n is integer }} {{ t is integer }} {{ f is float }} {{ t is number }} {{ s is number }}",
       "True False True False True True False True True False"},
      {"{{ x is none }} {{ n is none }} {{ n is defined }} {{ nope is undefined }} "
       "{{ range is callable }} {{ s.upper is callable }} {{ s is callable }}",
       "True False True True True True False"},
      {"{{ 4 is even }} {{ 3 is odd }} {{ 2.0 is even }} {{ 9 is divisibleby 3 }} "
       "{{ 3 is in [1, 3] }} {{ 'e' is in s }} {{ x is sameas none }} {{ t is sameas true }}",
       "True True True True True True True True"},
      {"{{ 3 is eq 3 }} {{ 3 is equalto 3 }} {{ 3 is ne 4 }} {{ 3 is lt 4 }} "
       "{{ 3 is le 3 }} {{ 3 is gt 4 }} {{ 3 is ge 3 }} {{ 3 is greaterthan 2 }} "
       "{{ 3 is lessthan 2 }} {{ lst|select('==', 1)|list }} {{ lst|reject('>=', 2)|list }}",
       "True True True True True False True True False [1] [1]"},
      {"{{ 'abc' is lower }} {{ 'aBc' is lower }} {{ 'ABC' is upper }} {{ '12' is upper }}",
       "True False True False"},
  };
  testing::expect_cases(cases);
}

TEST(JinjaMethods, StringAndDictMethods) {
  const Case cases[] = {
      {"{{ 'a b  c'.split() }} {{ ' a b  c '.split(None, 1) }} {{ ' a b  c '.rsplit(None, 1) }} "
       "{{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} "
       "{{ ''.split(',') }} {{ ''.split() }}",
       "['a', 'b', 'c'] ['a', 'b  c '] [' a b', 'c'] ['a', 'b', '', 'c'] ['a', 'b,c'] "
       "['a,b', 'c'] [''] []"},
      {"{{ 'x<|channel>y<channel|>z'.split('<channel|>')[0].split('<|channel>')[0] }}", "x"},
      {"[{{ ' x '.strip() }}][{{ ' x '.lstrip() }}][{{ ' x '.rstrip() }}][{{ 'xyx'.strip('x') }}]",
       "[x][x ][ x][y]"},
      {"{{ s.startswith('He') }} {{ s.endswith('lo') }} {{ s.startswith(('x', 'H')) }} "
       "{{ s.endswith('x') }}",
       "True True True False"},
      {"{{ s.upper() }} {{ s.lower() }} {{ \"they're\".title() }} {{ 'hELLO'.capitalize() }}",
       "HELLO hello They'Re Hello"},
      {"{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '+', 1) }} {{ "
       "'h\u00e9llo'.find('l') }} "
       "{{ s.find('z') }} {{ 'abab'.count('ab') }} {{ ', '.join(['a', 'b']) }}",
       "a+b+c a+b-c 2 -1 2 a, b"},
      {"{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 7) }} {{ d.keys()|list }} "
       "{{ d.values()|list }} {{ d.items()|list|length }}",
       "3 None 7 ['b', 'A', 'a', 'B'] [1, 2, 3, 0] 4"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{{ s.split('') }}", "empty separator"},
      {"{{ ','.join([1]) }}", "expected str instance, int found"},
      {"{{ s.startswith() }}", "prefix"},
      {"{{ s.strip(1, 2) }}", "takes at most 1 argument"},
      {"{{ d.get() }}", "key"},
      {"{{ s.nosuch() }}", "'str object' has no attribute 'nosuch'"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaGlobals, RangeDictNamespaceRaise) {
  const Case cases[] = {
      {"{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} "
       "{{ range(0)|list }} {{ range(5, 1)|list }}",
       "[0, 1, 2] [1, 2, 3] [10, 7, 4, 1] [] []"},
      {"{{ dict(a=1, b='x') }} {{ dict({'k': 1}, j=2) }} {{ dict([['p', 1]]) }}",
       "{'a': 1, 'b': 'x'} {'k': 1, 'j': 2} {'p': 1}"},
      {"{{ strftime_now('%Y')|length }}", "4"},
  };
  testing::expect_cases(cases);
  const ErrorCase errors[] = {
      {"{{ range(100001)|length }}", "Range too big"},
      {"{{ range(0, 9223372036854775807) }}", "Range too big"},
      {"{{ range(1, 2, 0) }}", "must not be zero"},
      {"{{ range('a') }}", "expects an integer"},
      {"{{ dict(1) }}", "is not iterable"},
  };
  testing::expect_errors(errors);
}

TEST(JinjaGlobals, RaiseExceptionGivesItsMessage) {
  std::string got = testing::render_or_error(
      "{% if n > 1 %}{{ raise_exception('Conversation roles must alternate user/assistant') }}"
      "{% endif %}");
  EXPECT_EQ(got, "ERROR: INVALID_ARGUMENT: Conversation roles must alternate user/assistant");
}

}  // namespace
}  // namespace sluice::chat::jinja
