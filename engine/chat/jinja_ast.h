#pragma once
// The syntax tree of a compiled chat template (built by jinja_parser, walked by
// jinja_interpreter). It is immutable once built and shared by concurrent renders.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/chat/jinja_value.h"

namespace sluice::chat::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// One call argument: `value` (positional, empty name) or `name=value`.
struct Arg {
  std::string name;
  ExprPtr value;
};

struct Expr {
  enum class Kind : uint8_t {
    kConst,    // value
    kName,     // name
    kList,     // operands: items
    kTuple,    // operands: items
    kDict,     // operands: key0, value0, key1, value1, ...
    kAttr,     // operands[0].name
    kItem,     // operands[0][operands[1]]
    kSlice,    // operands[0][operands[1]:operands[2]:operands[3]], each bound may be null
    kCall,     // operands[0](args)
    kFilter,   // operands[0] | name(args); operands[0] is null in a filter block's chain
    kTest,     // operands[0] is [not] name(args)
    kNot,      // not operands[0]
    kNeg,      // -operands[0]
    kPos,      // +operands[0]
    kBinary,   // operands[0] name operands[1], name one of + - * / // % **
    kAnd,      // operands[0] and operands[1]
    kOr,       // operands[0] or operands[1]
    kCompare,  // operands[0] ops[0] operands[1] ops[1] ... (chained, as in Python)
    kConcat,   // operands[0] ~ operands[1] ~ ...
    kCond,     // operands[1] if operands[0] else operands[2] (null: Undefined)
  };
  Kind kind;
  int line = 0;
  int32_t depth = 1;  // height of this subtree; bounded by the parser
  Value value;
  std::string name;
  std::vector<ExprPtr> operands;
  std::vector<Arg> args;
  std::vector<std::string> ops;  // "==", "!=", "<", "<=", ">", ">=", "in", "not in"
  bool negated = false;          // kTest: `is not`
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
};

struct Stmt {
  enum class Kind : uint8_t {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches (cond, body) ..., else_body
    kFor,          // for targets in expr [if cond]: body [else else_body]
    kSet,          // set targets = expr, or set targets[0].attr = expr
    kSetBlock,     // set targets[0] [| filter] %}body{% endset
    kMacro,        // macro
    kFilterBlock,  // filter %}body{% endfilter
    kBreak,
    kContinue,
    kScope,  // {% generation %}body{% endgeneration %}: renders body as is
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::vector<std::string> targets;
  std::string attr;
  ExprPtr expr;
  ExprPtr cond;
  ExprPtr filter;  // a kFilter chain whose innermost operand is null
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::unique_ptr<MacroDef> macro;
  bool uses_loop = false;  // kFor: the body mentions `loop`, so it needs the loop variable
};

struct Program {
  Body body;
};

}  // namespace sluice::chat::jinja
