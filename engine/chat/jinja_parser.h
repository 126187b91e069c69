#pragma once
// Parses a chat template into the syntax tree of jinja_ast.h, following Jinja's grammar
// (jinja2/parser.py; expressions in jinja_expr_parser.h).
//
// Statements: if/elif/else, for (tuple targets, inline `if`, else), set (name, tuple,
// `ns.attr`, block form with filters), macro, filter blocks, break/continue, generation.
// Unknown filters and tests are rejected here, as Jinja does at compile time.

#include <memory>
#include <string_view>

#include "engine/chat/jinja_ast.h"

namespace sluice::chat::jinja {

// Deepest nesting of blocks, and tallest expression tree, that a template may have. Keeps
// the parser, the tree walk and the tree's destructor off deep native recursion.
inline constexpr int32_t kMaxParseDepth = 128;

// Throws TemplateError with the line and column of the offending token.
std::unique_ptr<Program> parse_template(std::string_view source);

}  // namespace sluice::chat::jinja
