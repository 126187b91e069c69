#pragma once
// The tree-walking interpreter: one Renderer per render call, so a compiled Program can be
// rendered from many threads at once. It owns the render's budgets (TemplateLimits) and
// Jinja's scoping rules:
//   * a for loop body gets a fresh scope on every iteration (sets inside do not survive the
//     iteration, nor the loop); `if` opens no scope;
//   * a macro call gets its own scope whose parent is the template's top level, looked up at
//     call time (so macros see top-level variables set before the call, not the caller's);
//   * names resolve through the scopes, then the render context, then the globals.
// Errors are thrown as TemplateError; ChatTemplate::render turns them into a Status.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/chat/chat_template.h"  // TemplateLimits
#include "engine/chat/jinja_ast.h"
#include "engine/chat/jinja_builtins.h"

namespace sluice::chat::jinja {

class Renderer {
 public:
  Renderer(const Program& program, const TemplateLimits& limits)
      : program_(program), limits_(limits) {}

  // Renders the program with `context` (a dict Value) as its variables.
  std::string render(const Value& context);

  // ---- services for the builtins ----
  // Charges `steps` units of work; throws once max_steps is passed.
  void charge(int64_t steps);
  // Charges the work of building a `bytes`-long string; throws if that passes the string
  // limit (max_output_bytes).
  void charge_bytes(size_t bytes) { charge_append(bytes, bytes); }
  // Charges appending `added` bytes to a string that is then `total` bytes long.
  void charge_append(size_t added, size_t total);
  size_t max_string_bytes() const { return static_cast<size_t>(limits_.max_output_bytes); }
  // `obj.name` and `obj[key]` with Jinja's sandboxed lookup rules.
  Value get_attr(const Value& obj, std::string_view name);
  Value get_item(const Value& obj, const Value& key);
  // The items of a for loop over `v`: list items, dict keys, string characters; nothing
  // for Undefined. Throws for values that are not iterable.
  std::vector<Value> iterate(const Value& v);
  Value call(const Value& callee, const CallArgs& args);

 private:
  enum class Flow : uint8_t { kNormal, kBreak, kContinue };
  struct Frame {
    Frame* parent = nullptr;
    std::vector<std::pair<std::string_view, Value>> vars;  // names view into the AST
    Value* find(std::string_view name);
    void set(std::string_view name, Value v);
  };
  // Called on entering every statement and expression: charges a step and bounds native
  // recursion by the stack it actually uses.
  void enter_node();

  Flow exec_body(const Body& body, Frame& f, std::string& out);
  Flow exec(const Stmt& s, Frame& f, std::string& out);
  void exec_for(const Stmt& s, Frame& f, std::string& out);
  void assign(const Stmt& s, Frame& f, Value v);
  void bind_targets(Frame& f, const std::vector<std::string>& targets, const Value& v);
  void emit(std::string& out, std::string_view text);

  Value eval(const Expr& e, Frame& f);
  Value eval_node(const Expr& e, Frame& f);
  Value eval_call(const Expr& e, Frame& f);
  CallArgs eval_args(const std::vector<Arg>& args, Frame& f);
  Value eval_filter_chain(const Expr& chain, Value input, Frame& f);
  Value lookup(std::string_view name, Frame& f);
  Value call_macro(const MacroDef& macro, const CallArgs& args);
  Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

  const Program& program_;
  const TemplateLimits& limits_;
  Value context_;
  Frame* top_ = nullptr;
  int64_t steps_ = 0;
  int64_t loop_iterations_ = 0;
  int32_t macro_depth_ = 0;
  uintptr_t stack_base_ = 0;  // frame address where render() began
};

// Python's binary operators (+ - * / // % **) and unary minus, on Values.
Value binary_op(Renderer& r, std::string_view op, const Value& a, const Value& b);
Value negate(const Value& v);

}  // namespace sluice::chat::jinja
