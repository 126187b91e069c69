// Hostile templates (RELIABILITY.md item 14): loops, recursion, output doubling, huge ranges,
// deep nesting and attribute walks end in INVALID_ARGUMENT naming the limit, under the default
// limits, without a crash or a big allocation.

#include <gtest/gtest.h>
#include <pthread.h>

#include <string>

#include "engine/chat/jinja_value.h"  // kMaxStackBytes
#include "jinja_test_util.h"

namespace sluice::chat {
namespace {

using testing::ErrorCase;

TEST(JinjaSandbox, LoopsHitTheStepOrIterationBudget) {
  const ErrorCase cases[] = {
      {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "max_"},
      {"{% for i in range(99999) %}{% for j in range(99999) %}{{ i }}{% endfor %}{% endfor %}",
       "max_"},
      {"{% for i in range(100000) %}{% endfor %}{% for i in range(100000) %}{% endfor %}",
       "max_loop_iterations (100000)"},
      {"{% set ns = namespace(n=0) %}{% for a in range(1000) %}{% for b in range(1000) %}"
       "{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}",
       "max_"},
      {"{{ range(100000)|sort|sort|sort|sort|sort|sort|sort|sort|sort|sort|length }}",
       "max_steps (1000000)"},
      {"{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}"
       "{% endfor %}",
       "max_steps (1000000)"},
      {"{% set l = range(100000)|list %}{% for i in range(100) %}{{ l == l }}{% endfor %}",
       "max_steps (1000000)"},
  };
  testing::expect_errors(cases);
}

TEST(JinjaSandbox, RecursionHitsTheMacroDepth) {
  const ErrorCase cases[] = {
      {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "max_macro_depth (64)"},
      {"{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
       "max_macro_depth (64)"},
      // Exponential fan-out stays shallow, so the step budget stops it.
      {"{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
       "{{ f(40) }}",
       "max_steps (1000000)"},
  };
  testing::expect_errors(cases);
}

TEST(JinjaSandbox, OutputAndStringsStayUnderTheByteLimit) {
  const ErrorCase cases[] = {
      {"{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
       "{% endfor %}{{ ns.s }}",
       "max_output_bytes (4194304)"},
      {"{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
       "{% endfor %}",
       "max_output_bytes (4194304)"},
      {"{{ 'x' * 1000000000000 }}", "max_output_bytes (4194304)"},
      {"{{ ['x'] * 1000000000000 }}", "max_steps (1000000)"},
      {"{{ [1] * 9223372036854775807 }}", "max_steps (1000000)"},
      {"{% for i in range(100000) %}{{ s * 100 }}{% endfor %}", "max_output_bytes"},
      {"{{ 'a'|replace('', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')|replace('b', "
       "'cccccccccccccccccccccccccccccccccccccccc')|replace('c', "
       "'dddddddddddddddddddddddddddddddddddddddd')|replace('d', "
       "'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee')|replace('e', 'ffffffffffffffffffff') }}",
       "max_output_bytes"},
      {"{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}"
       "{% endfor %}",
       "nested 129 deep"},
  };
  testing::expect_errors(cases);
}

TEST(JinjaSandbox, TheBriefsDoublingPatternIsBoundedByScoping) {
  // `{% set s = s ~ s %}` in a loop restarts from the outer `s` every iteration (Jinja
  // scoping), so it cannot grow; unrolled at the top level it doubles until the limit.
  EXPECT_EQ(testing::render_or_error(
                "{% set s = 'ab' %}{% for i in range(50) %}{% set s = s ~ s %}{% endfor %}{{ s }}"),
            "ab");
  std::string unrolled = "{% set s = 'ab' %}";
  for (int i = 0; i < 30; ++i) unrolled += "{% set s = s ~ s %}";
  std::string got = testing::render_or_error(unrolled + "{{ s|length }}");
  EXPECT_NE(got.find("max_output_bytes"), std::string::npos) << got;
}

TEST(JinjaSandbox, HugeRangesAreRefused) {
  const ErrorCase cases[] = {
      {"{{ range(1000000000)|length }}", "Range too big"},
      {"{{ range(-9223372036854775807, 9223372036854775807) }}", "Range too big"},
      {"{% for i in range(0, 1000000000000, 2) %}{% endfor %}", "Range too big"},
  };
  testing::expect_errors(cases);
}

TEST(JinjaSandbox, NoAttributeWalks) {
  // Everything a template can reach is the JSON it is given; Python's escape hatches are
  // plain undefined names or private attributes.
  EXPECT_EQ(testing::render_or_error("[{{ s.__class__ }}][{{ self }}][{{ cycler }}]"
                                     "[{{ lipsum }}][{{ config }}][{{ request }}]"
                                     "[{{ namespace.__init__ }}][{{ raise_exception.__globals__ }}]"
                                     "[{{ messages.pop }}][{{ d.update }}][{{ d.__dict__ }}]"),
            "[][][][][][][][][][][]");
  const ErrorCase cases[] = {
      {"{{ s.__class__.__mro__[1].__subclasses__() }}", "has no attribute '__class__'"},
      {"{{ cycler.__init__.__globals__.os.popen('id').read() }}", "'cycler' is undefined"},
      {"{{ self._TemplateReference__context }}", "'self' is undefined"},
      {"{{ d.pop('a') }}", "'dict object' has no attribute 'pop'"},
      {"{{ lst.append(1) }}", "'list object' has no attribute 'append'"},
  };
  testing::expect_errors(cases);
}

TEST(JinjaSandbox, DeepNestingIsAnErrorNotACrash) {
  // Deep template nesting fails at compile time (see jinja_parser_test); deep *runtime*
  // nesting, recursion through macros each holding a deep expression, fails cleanly too.
  // Each level's recursive call sits inside ~120 pending `~` evaluations.
  std::string expr = "f(n - 1)";
  for (int i = 0; i < 120; ++i) expr = "(" + expr + " ~ '')";
  std::string tmpl =
      "{% macro f(n) %}{% if n > 0 %}{{ " + expr + " }}{% endif %}{% endmacro %}{{ f(60) }}";
  std::string got = testing::render_or_error(tmpl);
  EXPECT_EQ(got.rfind("ERROR: INVALID_ARGUMENT", 0), 0u) << got.substr(0, 200);
  EXPECT_NE(got.find("nests too deeply while rendering"), std::string::npos) << got.substr(0, 300);
}

// Compiles and renders `tmpl` on a thread with a stack of twice the interpreter's stack
// budget (1 MiB in normal builds); returns what render_or_error gives. A stack overflow
// would crash the test binary.
std::string render_on_small_stack(const std::string& tmpl) {
  struct Job {
    std::string tmpl, result;
  } job{tmpl, ""};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 2 * jinja::kMaxStackBytes);
  pthread_t thread;
  auto run = [](void* arg) -> void* {
    auto* j = static_cast<Job*>(arg);
    j->result = testing::render_or_error(j->tmpl);
    return nullptr;
  };
  EXPECT_EQ(pthread_create(&thread, &attr, run, &job), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  return job.result;
}

TEST(JinjaSandbox, DeepTemplatesFitInASmallThreadStack) {
  std::string parens = "{{ " + std::string(127, '(') + "1" + std::string(127, ')') + " }}";
  EXPECT_EQ(render_on_small_stack(parens), "1");
  std::string expr = "f(n - 1)";
  for (int i = 0; i < 120; ++i) expr = "(" + expr + " ~ '')";
  std::string recursive =
      "{% macro f(n) %}{% if n > 0 %}{{ " + expr + " }}{% endif %}{% endmacro %}{{ f(60) }}";
  EXPECT_NE(render_on_small_stack(recursive).find("nests too deeply"), std::string::npos);
  std::string blocks = "{{ f(n - 1) }}";
  for (int i = 0; i < 60; ++i)
    blocks = "{% if t %}{% for q in [1] %}" + blocks + "{% endfor %}{% endif %}";
  std::string recursive_blocks =
      "{% macro f(n) %}{% if n > 0 %}" + blocks + "{% endif %}{% endmacro %}{{ f(60) }}";
  EXPECT_NE(render_on_small_stack(recursive_blocks).find("nests too deeply"), std::string::npos);
}

TEST(JinjaSandbox, BudgetsAreNotSharedBetweenRenders) {
  // A render close to the budget succeeds every time: counters start fresh per render.
  StatusOr<ChatTemplate> t =
      ChatTemplate::compile("{% for i in range(90000) %}{% endfor %}{{ 'done' }}");
  ASSERT_TRUE(t.is_ok());
  for (int i = 0; i < 3; ++i) {
    StatusOr<std::string> out = t->render(nlohmann::json::object());
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(*out, "done");
  }
}

}  // namespace
}  // namespace sluice::chat
