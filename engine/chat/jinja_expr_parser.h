#pragma once
// Internal to the chat-template parser: a cursor over the lexer's tokens plus Jinja's
// expression grammar (jinja2/parser.py), from loosest to tightest binding: `x if c else y`,
// `or`, `and`, `not`, comparisons (chained, `in`, `not in`), `+ -`, `~`, `* / // %`, `**`,
// unary `- +`, then postfix `.attr`, `[index]`, `[a:b:c]`, `(call)`, `| filter`, `is test`.
// The statement parser (jinja_parser.cpp) builds on it. Errors are thrown as TemplateError.

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat/jinja_ast.h"
#include "engine/chat/jinja_lexer.h"
#include "engine/chat/jinja_parser.h"  // kMaxParseDepth

namespace sluice::chat::jinja {

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

 protected:
  using EK = Expr::Kind;

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const { return cur().type == TokenType::kOp && cur().text == op; }
  bool is_name(std::string_view name) const {
    return cur().type == TokenType::kName && cur().text == name;
  }

  static std::string describe(const Token& t) {
    static constexpr const char* kNames[] = {"template data",
                                             "'{{'",
                                             "end of print statement ('}}')",
                                             "'{%'",
                                             "end of statement block ('%}')",
                                             nullptr,
                                             "a string",
                                             "a number",
                                             "a number",
                                             nullptr,
                                             "end of template"};  // by TokenType
    const char* name = kNames[static_cast<size_t>(t.type)];
    return name ? std::string(name) : fmt::format("'{}'", t.text);
  }

  [[noreturn]] void error(const Token& t, const std::string& message) const {
    throw TemplateError(message, t.line, t.column);
  }
  [[noreturn]] void unexpected(std::string_view wanted) const {
    error(cur(), fmt::format("expected {}, got {}", wanted, describe(cur())));
  }
  void expect_op(std::string_view op) {
    if (!is_op(op)) unexpected(fmt::format("'{}'", op));
    advance();
  }
  void expect(TokenType type, std::string_view what) {
    if (cur().type != type) unexpected(what);
    advance();
  }
  void expect_block_end() { expect(TokenType::kBlockEnd, "end of statement block ('%}')"); }
  std::string expect_name() {
    if (cur().type != TokenType::kName) unexpected("a name");
    std::string name = cur().text;
    advance();
    return name;
  }

  // Counts nesting while parsing; the tree's height is checked separately in finish().
  struct DepthGuard {
    DepthGuard(ExprParser* p) : parser(p) {  // NOLINT
      if (++parser->depth_ > kMaxParseDepth ||
          stack_used_since(parser->stack_base_) > kMaxStackBytes) {
        parser->error(parser->cur(),
                      fmt::format("template nests deeper than {} levels", kMaxParseDepth));
      }
    }
    ~DepthGuard() { --parser->depth_; }
    ExprParser* parser;
  };

  ExprPtr make(EK kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  ExprPtr finish(ExprPtr e) {
    int32_t d = 0;
    for (const auto& op : e->operands) {
      if (op) d = std::max(d, op->depth);
    }
    for (const auto& a : e->args) d = std::max(d, a.value->depth);
    e->depth = d + 1;
    if (e->depth > kMaxParseDepth) {
      throw TemplateError(fmt::format("expression nests deeper than {} levels", kMaxParseDepth),
                          e->line);
    }
    return e;
  }
  ExprPtr make2(EK kind, int line, ExprPtr a, ExprPtr b, std::string name = "") {
    ExprPtr e = make(kind, line);
    e->name = std::move(name);
    e->operands.push_back(std::move(a));
    e->operands.push_back(std::move(b));
    return finish(std::move(e));
  }

  // ---- expressions ----
  bool is_tuple_end(const std::vector<std::string_view>& extra_ends) const;
  // `a` or `a, b, ...` (a tuple) up to `}}`, `%}`, `)` or a name in `extra_ends`; without
  // `with_condexpr` the items stop before `if` (a for loop's filter).
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens,
                      const std::vector<std::string_view>& extra_ends);
  // One expression, `x if c else y` included.
  ExprPtr parse_expression();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  // A left-associative run of the binary operators `ops` over `next`.
  template <typename Next>
  ExprPtr parse_binary(std::initializer_list<std::string_view> ops, Next next);
  ExprPtr parse_math1();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary_filtered();
  ExprPtr parse_concat();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node, int line);
  std::vector<Arg> parse_call_args();
  ExprPtr parse_call(ExprPtr callee);
  std::string parse_dotted_name();
  // `| f(args) | g ...`; with `inline_first` the first filter has no leading `|`.
  ExprPtr parse_filters(ExprPtr node, bool inline_first);
  ExprPtr parse_test(ExprPtr node);

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int32_t depth_ = 0;
  uintptr_t stack_base_ = 0;  // frame address where parsing began
  int loop_refs_ = 0;         // `loop` names parsed so far
};

}  // namespace sluice::chat::jinja
