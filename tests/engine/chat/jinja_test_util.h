#pragma once
// Helpers for the chat-template tests: render a template against a fixed context and compare
// with what Python's jinja2 (set up as transformers sets it up) renders. Every table entry
// `{R"(template)", R"(expected)"}` in these tests was checked against jinja2 3.1.6 with
// kContextJson as the context.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "engine/chat/chat_template.h"

namespace sluice::chat::testing {

inline constexpr std::string_view kContextJson = R"({
  "x": null, "n": 5, "f": 2.5, "s": "Hello", "t": true, "empty": "", "lst": [3, 1, 2],
  "d": {"b": 1, "A": 2, "a": 3, "B": 0},
  "users": [{"name": "ann", "admin": true, "age": 31}, {"name": "Bob", "age": 25}],
  "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
})";

// The rendered text, or "ERROR: <status>" when compiling or rendering fails.
inline std::string render_or_error(std::string_view tmpl,
                                   std::string_view context_json = kContextJson,
                                   const TemplateLimits& limits = {}) {
  StatusOr<ChatTemplate> compiled = ChatTemplate::compile(tmpl, limits);
  if (!compiled.is_ok()) return "ERROR: " + compiled.status().to_string();
  StatusOr<std::string> out = compiled->render(nlohmann::ordered_json::parse(context_json));
  if (!out.is_ok()) return "ERROR: " + out.status().to_string();
  return *out;
}

struct Case {
  std::string_view tmpl;
  std::string_view want;
};

inline void expect_cases(std::span<const Case> cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("template: ") + std::string(c.tmpl));
    EXPECT_EQ(render_or_error(c.tmpl), c.want);
  }
}

// A template that must fail with INVALID_ARGUMENT whose message contains `fragment`.
struct ErrorCase {
  std::string_view tmpl;
  std::string_view fragment;
};

inline void expect_errors(std::span<const ErrorCase> cases,
                          std::string_view context_json = kContextJson,
                          const TemplateLimits& limits = {}) {
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(std::string("template: ") + std::string(c.tmpl));
    std::string got = render_or_error(c.tmpl, context_json, limits);
    EXPECT_EQ(got.rfind("ERROR: INVALID_ARGUMENT", 0), 0u) << got;
    EXPECT_NE(got.find(c.fragment), std::string::npos) << got;
  }
}

}  // namespace sluice::chat::testing
