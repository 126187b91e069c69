#include "engine/chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/chat/jinja_expr_parser.h"

namespace sluice::chat::jinja {
namespace {

using SK = Stmt::Kind;

// Statements on top of the expression grammar.
class Parser : public ExprParser {
 public:
  using ExprParser::ExprParser;

  std::unique_ptr<Program> parse_program() {
    stack_base_ = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    auto program = std::make_unique<Program>();
    std::string end;
    program->body = parse_body({}, &end);
    return program;
  }

 private:
  // ---- statements ----
  Body parse_body(const std::vector<std::string_view>& ends, std::string* end_found) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::kEof) {
        if (ends.empty()) return body;
        error(t, fmt::format("unexpected end of template; expected '{{% {} %}}'", ends.back()));
      }
      if (t.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = SK::kText;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == TokenType::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = SK::kOutput;
        s->line = t.line;
        advance();
        s->expr = parse_tuple(true, false, {});
        expect(TokenType::kVarEnd, "end of print statement ('}}')");
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        const Token& name = peek();
        if (name.type != TokenType::kName) error(name, "expected a tag name after '{%'");
        if (std::find(ends.begin(), ends.end(), name.text) != ends.end()) {
          *end_found = name.text;
          pos_ += 2;
          return body;
        }
        advance();
        body.push_back(parse_statement());
      } else {
        error(t, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  std::unique_ptr<Stmt> parse_statement() {
    DepthGuard guard(this);
    const Token& t = cur();
    auto s = std::make_unique<Stmt>();
    s->line = t.line;
    std::string tag = expect_name();
    std::string end;
    if (tag == "if") {
      s->kind = SK::kIf;
      ExprPtr cond = parse_expression();
      expect_block_end();
      while (true) {
        Body body = parse_body({"elif", "else", "endif"}, &end);
        s->branches.emplace_back(std::move(cond), std::move(body));
        if (end != "elif") break;
        cond = parse_expression();
        expect_block_end();
      }
      if (end == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"}, &end);
      }
    } else if (tag == "for") {
      s->kind = SK::kFor;
      s->targets = parse_targets(false);
      if (!is_name("in")) unexpected("'in'");
      advance();
      s->expr = parse_tuple(false, false, {"recursive"});
      if (is_name("if")) {
        advance();
        s->cond = parse_expression();
      }
      if (is_name("recursive")) error(cur(), "recursive for loops are not supported");
      expect_block_end();
      ++loop_depth_;
      int loop_refs_before = loop_refs_;
      s->body = parse_body({"else", "endfor"}, &end);
      s->uses_loop = loop_refs_ != loop_refs_before;
      --loop_depth_;
      if (end == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"}, &end);
      }
    } else if (tag == "set") {
      s->targets = parse_targets(true);
      if (s->targets.size() == 1 && is_op(".")) {
        advance();
        s->attr = expect_name();
      }
      if (is_op("=")) {
        s->kind = SK::kSet;
        advance();
        s->expr = parse_tuple(true, false, {});
      } else {
        s->kind = SK::kSetBlock;
        if (s->targets.size() != 1 || !s->attr.empty()) unexpected("'='");
        if (is_op("|")) s->filter = parse_filters(nullptr, false);
        expect_block_end();
        s->body = parse_body({"endset"}, &end);
      }
      if (s->kind == SK::kSet) {
        expect_block_end();
        return s;
      }
    } else if (tag == "macro") {
      s->kind = SK::kMacro;
      s->macro = std::make_unique<MacroDef>();
      s->macro->name = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        if (!s->macro->params.empty()) expect_op(",");
        std::string param = expect_name();
        ExprPtr dflt;
        if (is_op("=")) {
          advance();
          dflt = parse_expression();
        } else if (!s->macro->params.empty() && s->macro->params.back().second) {
          error(cur(), "non-default argument follows default argument");
        }
        s->macro->params.emplace_back(std::move(param), std::move(dflt));
      }
      advance();
      expect_block_end();
      int saved_loops = loop_depth_;
      loop_depth_ = 0;
      s->macro->body = parse_body({"endmacro"}, &end);
      loop_depth_ = saved_loops;
    } else if (tag == "filter") {
      s->kind = SK::kFilterBlock;
      s->filter = parse_filters(nullptr, true);
      expect_block_end();
      s->body = parse_body({"endfilter"}, &end);
    } else if (tag == "generation") {
      s->kind = SK::kScope;
      expect_block_end();
      s->body = parse_body({"endgeneration"}, &end);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) error(t, fmt::format("'{}' outside of a for loop", tag));
      s->kind = tag == "break" ? SK::kBreak : SK::kContinue;
    } else if (tag == "elif" || tag == "else" || tag.rfind("end", 0) == 0) {
      error(t, fmt::format("unexpected '{{% {} %}}' with no block open to match it", tag));
    } else {
      error(t, fmt::format("unknown or unsupported tag '{}'", tag));
    }
    expect_block_end();
    return s;
  }

  // Assignment targets: `a`, `a, b`, `(a, b)`; with `allow_attr` the caller handles `ns.x`.
  std::vector<std::string> parse_targets(bool allow_attr) {
    std::vector<std::string> names;
    bool parens = is_op("(");
    if (parens) advance();
    names.push_back(expect_name());
    if (allow_attr && !parens && is_op(".")) return names;
    while (is_op(",")) {
      advance();
      if (cur().type != TokenType::kName) break;  // trailing comma
      names.push_back(expect_name());
    }
    if (parens) expect_op(")");
    return names;
  }

  int loop_depth_ = 0;  // for loops around the statement being parsed (0 inside a macro)
};

}  // namespace

std::unique_ptr<Program> parse_template(std::string_view source) {
  return Parser(tokenize(source)).parse_program();
}

}  // namespace sluice::chat::jinja
