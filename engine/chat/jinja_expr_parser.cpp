// Jinja's expression grammar; see jinja_expr_parser.h.

#include "engine/chat/jinja_expr_parser.h"

#include "engine/chat/jinja_builtins.h"  // is_known_filter, is_known_test

namespace sluice::chat::jinja {

bool ExprParser::is_tuple_end(const std::vector<std::string_view>& extra_ends) const {
  TokenType t = cur().type;
  if (t == TokenType::kVarEnd || t == TokenType::kBlockEnd || is_op(")")) return true;
  return t == TokenType::kName &&
         std::find(extra_ends.begin(), extra_ends.end(), cur().text) != extra_ends.end();
}

ExprPtr ExprParser::parse_tuple(bool with_condexpr, bool explicit_parens,
                                const std::vector<std::string_view>& extra_ends) {
  int line = cur().line;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end(extra_ends)) break;
    items.push_back(with_condexpr ? parse_expression() : parse_or());
    if (!is_op(",")) break;
    is_tuple = true;
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) unexpected("an expression");
  }
  ExprPtr e = make(EK::kTuple, line);
  e->operands = std::move(items);
  return finish(std::move(e));
}

ExprPtr ExprParser::parse_expression() {
  ExprPtr e = parse_or();
  while (is_name("if")) {
    int line = cur().line;
    advance();
    ExprPtr cond = parse_or();
    ExprPtr otherwise;
    if (is_name("else")) {
      advance();
      otherwise = parse_expression();
    }
    ExprPtr c = make(EK::kCond, line);
    c->operands.push_back(std::move(cond));
    c->operands.push_back(std::move(e));
    c->operands.push_back(std::move(otherwise));
    e = finish(std::move(c));
  }
  return e;
}

ExprPtr ExprParser::parse_or() {
  ExprPtr e = parse_and();
  while (is_name("or")) {
    int line = cur().line;
    advance();
    e = make2(EK::kOr, line, std::move(e), parse_and());
  }
  return e;
}

ExprPtr ExprParser::parse_and() {
  ExprPtr e = parse_not();
  while (is_name("and")) {
    int line = cur().line;
    advance();
    e = make2(EK::kAnd, line, std::move(e), parse_not());
  }
  return e;
}

ExprPtr ExprParser::parse_not() {
  if (!is_name("not")) return parse_compare();
  DepthGuard guard(this);
  ExprPtr e = make(EK::kNot, cur().line);
  advance();
  e->operands.push_back(parse_not());
  return finish(std::move(e));
}

ExprPtr ExprParser::parse_compare() {
  int line = cur().line;
  ExprPtr first = parse_math1();
  ExprPtr e;
  while (true) {
    std::string op;
    if (cur().type == TokenType::kOp &&
        (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
         cur().text == ">" || cur().text == ">=")) {
      op = cur().text;
      advance();
    } else if (is_name("in")) {
      op = "in";
      advance();
    } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
      op = "not in";
      pos_ += 2;
    } else {
      break;
    }
    if (!e) {
      e = make(EK::kCompare, line);
      e->operands.push_back(std::move(first));
    }
    e->ops.push_back(op);
    e->operands.push_back(parse_math1());
  }
  return e ? finish(std::move(e)) : std::move(first);
}

template <typename Next>
ExprPtr ExprParser::parse_binary(std::initializer_list<std::string_view> ops, Next next) {
  ExprPtr e = (this->*next)();
  while (cur().type == TokenType::kOp &&
         std::find(ops.begin(), ops.end(), cur().text) != ops.end()) {
    std::string op = cur().text;
    int line = cur().line;
    advance();
    e = make2(EK::kBinary, line, std::move(e), (this->*next)(), op);
  }
  return e;
}

ExprPtr ExprParser::parse_math1() { return parse_binary({"+", "-"}, &ExprParser::parse_concat); }

ExprPtr ExprParser::parse_math2() {
  return parse_binary({"*", "/", "//", "%"}, &ExprParser::parse_pow);
}

ExprPtr ExprParser::parse_pow() { return parse_binary({"**"}, &ExprParser::parse_unary_filtered); }

ExprPtr ExprParser::parse_unary_filtered() { return parse_unary(true); }

ExprPtr ExprParser::parse_concat() {
  int line = cur().line;
  ExprPtr first = parse_math2();
  if (!is_op("~")) return first;
  ExprPtr e = make(EK::kConcat, line);
  e->operands.push_back(std::move(first));
  while (is_op("~")) {
    advance();
    e->operands.push_back(parse_math2());
  }
  return finish(std::move(e));
}

ExprPtr ExprParser::parse_unary(bool with_filter) {
  DepthGuard guard(this);
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    node = make(is_op("-") ? EK::kNeg : EK::kPos, cur().line);
    advance();
    node->operands.push_back(parse_unary(false));
    node = finish(std::move(node));
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (with_filter) {
    while (true) {
      if (is_op("|")) {
        node = parse_filters(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        break;
      }
    }
  }
  return node;
}

ExprPtr ExprParser::parse_primary() {
  const Token& t = cur();
  ExprPtr e = make(EK::kConst, t.line);
  switch (t.type) {
    case TokenType::kName:
      if (t.text == "true" || t.text == "True") {
        e->value = Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->value = Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->value = Value(None{});
      } else {
        e->kind = EK::kName;
        e->name = t.text;
        if (e->name == "loop") ++loop_refs_;
      }
      advance();
      return e;
    case TokenType::kString: {
      std::string s;
      while (cur().type == TokenType::kString) {  // adjacent literals concatenate
        s += cur().text;
        advance();
      }
      e->value = Value(std::move(s));
      return e;
    }
    case TokenType::kInt:
      e->value = Value(t.int_value);
      advance();
      return e;
    case TokenType::kFloat:
      e->value = Value(t.float_value);
      advance();
      return e;
    default:
      break;
  }
  if (is_op("(")) {
    advance();
    ExprPtr inner = parse_tuple(true, true, {});
    expect_op(")");
    return inner;
  }
  if (is_op("[") || is_op("{")) {
    bool is_dict = is_op("{");
    e->kind = is_dict ? EK::kDict : EK::kList;
    std::string_view close = is_dict ? "}" : "]";
    advance();
    while (!is_op(close)) {
      if (!e->operands.empty()) expect_op(",");
      if (is_op(close)) break;
      e->operands.push_back(parse_expression());
      if (is_dict) {
        expect_op(":");
        e->operands.push_back(parse_expression());
      }
    }
    advance();
    return finish(std::move(e));
  }
  error(t, fmt::format("unexpected {}", describe(t)));
}

ExprPtr ExprParser::parse_postfix(ExprPtr node) {
  while (true) {
    int line = cur().line;
    if (is_op(".")) {
      advance();
      if (cur().type == TokenType::kInt) {
        ExprPtr index = make(EK::kConst, line);
        index->value = Value(cur().int_value);
        advance();
        node = make2(EK::kItem, line, std::move(node), std::move(index));
      } else {
        ExprPtr e = make(EK::kAttr, line);
        e->name = expect_name();
        e->operands.push_back(std::move(node));
        node = finish(std::move(e));
      }
    } else if (is_op("[")) {
      advance();
      node = parse_subscript(std::move(node), line);
      expect_op("]");
    } else if (is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExprParser::parse_subscript(ExprPtr node, int line) {
  auto bound = [&]() -> ExprPtr {
    if (is_op(":") || is_op("]")) return nullptr;
    return parse_expression();
  };
  ExprPtr start = bound();
  if (!is_op(":")) {
    if (!start) unexpected("an index");
    if (is_op(",")) error(cur(), "tuple subscripts are not supported");
    return make2(EK::kItem, line, std::move(node), std::move(start));
  }
  ExprPtr e = make(EK::kSlice, line);
  e->operands.push_back(std::move(node));
  e->operands.push_back(std::move(start));
  advance();
  e->operands.push_back(bound());
  ExprPtr step;
  if (is_op(":")) {
    advance();
    step = bound();
  }
  e->operands.push_back(std::move(step));
  return finish(std::move(e));
}

std::vector<Arg> ExprParser::parse_call_args() {
  expect_op("(");
  std::vector<Arg> args;
  bool seen_keyword = false;
  while (!is_op(")")) {
    if (!args.empty()) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (is_op("*") || is_op("**")) error(cur(), "*args and **kwargs calls are not supported");
    Arg a;
    if (cur().type == TokenType::kName && peek().type == TokenType::kOp && peek().text == "=") {
      a.name = cur().text;
      pos_ += 2;
      seen_keyword = true;
    } else if (seen_keyword) {
      error(cur(), "positional argument follows keyword argument");
    }
    a.value = parse_expression();
    args.push_back(std::move(a));
  }
  advance();
  return args;
}

ExprPtr ExprParser::parse_call(ExprPtr callee) {
  ExprPtr e = make(EK::kCall, cur().line);
  e->operands.push_back(std::move(callee));
  e->args = parse_call_args();
  return finish(std::move(e));
}

std::string ExprParser::parse_dotted_name() {
  std::string name = expect_name();
  while (is_op(".")) {
    advance();
    name += '.';
    name += expect_name();
  }
  return name;
}

// `| f(args) | g ...`; with `inline_first` the first filter has no leading `|`.
ExprPtr ExprParser::parse_filters(ExprPtr node, bool inline_first) {
  while (is_op("|") || inline_first) {
    if (!inline_first) advance();
    inline_first = false;
    const Token& at = cur();
    ExprPtr e = make(EK::kFilter, at.line);
    e->name = parse_dotted_name();
    if (!is_known_filter(e->name)) error(at, fmt::format("no filter named '{}'", e->name));
    if (is_op("(")) e->args = parse_call_args();
    e->operands.push_back(std::move(node));
    node = finish(std::move(e));
  }
  return node;
}

ExprPtr ExprParser::parse_test(ExprPtr node) {
  advance();  // `is`
  ExprPtr e = make(EK::kTest, cur().line);
  if (is_name("not")) {
    e->negated = true;
    advance();
  }
  const Token& at = cur();
  e->name = parse_dotted_name();
  if (!is_known_test(e->name)) error(at, fmt::format("no test named '{}'", e->name));
  TokenType t = cur().type;
  if (is_op("(")) {
    e->args = parse_call_args();
  } else if ((t == TokenType::kName || t == TokenType::kString || t == TokenType::kInt ||
              t == TokenType::kFloat || is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) error(cur(), "tests cannot be chained with 'is'");
    Arg a;
    a.value = parse_postfix(parse_primary());
    e->args.push_back(std::move(a));
  }
  e->operands.push_back(std::move(node));
  return finish(std::move(e));
}

}  // namespace sluice::chat::jinja
