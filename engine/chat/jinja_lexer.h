#pragma once
// Splits a chat template into text and tag tokens, the way transformers' Jinja environment
// does (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//   * "\r\n" and "\r" become "\n", and one trailing newline of the template is dropped;
//   * `{%- ` / `{{- ` / `{#- ` strip all whitespace before the tag, ` -%}` / ` -}}` / ` -#}`
//     all whitespace after it; `{%+` / `+%}` turn lstrip / trim off for that tag;
//   * trim_blocks: the first newline after `%}` or `#}` is dropped;
//   * lstrip_blocks: spaces and tabs between a line start and `{%` / `{#` are dropped;
//   * comments vanish, `{% raw %}...{% endraw %}` becomes text.
// Inside a tag, a closing `}}` / `%}` only ends it when brackets are balanced.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::chat::jinja {

enum class TokenType : uint8_t {
  kText,        // text: template data
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // text: identifier (keywords included)
  kString,      // text: the literal's value, escapes decoded
  kInt,         // int_value
  kFloat,       // float_value
  kOp,          // text: operator or punctuation, e.g. "==", "(", "|"
  kEof,
};

struct Token {
  TokenType type;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in bytes
};

// Throws TemplateError (with line and column) on a malformed tag, string or number.
std::vector<Token> tokenize(std::string_view source);

}  // namespace sluice::chat::jinja
