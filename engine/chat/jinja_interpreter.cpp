#include "engine/chat/jinja_interpreter.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/chat/jinja_text.h"

namespace sluice::chat::jinja {
namespace {

using EK = Expr::Kind;
using SK = Stmt::Kind;

Value make_loop(size_t i, size_t n, const std::vector<Value>& items) {
  auto num = [](size_t v) { return Value(static_cast<int64_t>(v)); };
  std::vector<std::pair<std::string, Value>> loop = {
      {"index", num(i + 1)},    {"index0", num(i)},
      {"revindex", num(n - i)}, {"revindex0", num(n - i - 1)},
      {"first", Value(i == 0)}, {"last", Value(i + 1 == n)},
      {"length", num(n)},       {"depth", num(1)},
      {"depth0", num(0)},
  };
  if (i > 0) loop.emplace_back("previtem", items[i - 1]);
  if (i + 1 < n) loop.emplace_back("nextitem", items[i + 1]);
  return Value::dict(std::move(loop), /*keys_unique=*/true);
}

// Python's slice.indices(): the positions a slice visits in a sequence of `length` items.
std::vector<int64_t> slice_positions(int64_t length, const Value& start, const Value& stop,
                                     const Value& step_v) {
  auto bound = [](const Value& v, const char* what) -> const Value* {
    if (v.is_undefined() || v.is_none()) return nullptr;
    if (!v.is_int() && !v.is_bool()) {
      fail(fmt::format("slice {} must be an integer or None, not {}", what, type_name(v)));
    }
    return &v;
  };
  int64_t step = 1;
  if (const Value* s = bound(step_v, "step")) step = s->as_int();
  if (step == 0) fail("slice step cannot be zero");
  // Any |step| past the length visits at most one item; clamping keeps i += step in range.
  step = std::clamp<int64_t>(step, -length - 1, length + 1);
  auto adjust = [&](const Value* v, int64_t dflt) {
    if (v == nullptr) return dflt;
    int64_t x = v->as_int();
    if (x < 0) return x < -length ? (step < 0 ? int64_t{-1} : int64_t{0}) : x + length;
    if (x >= length) return step < 0 ? length - 1 : length;
    return x;
  };
  int64_t lo = adjust(bound(start, "start"), step < 0 ? length - 1 : 0);
  int64_t hi = adjust(bound(stop, "stop"), step < 0 ? -1 : length);
  std::vector<int64_t> out;
  for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) out.push_back(i);
  return out;
}

}  // namespace

void Renderer::enter_node() {
  if (stack_used_since(stack_base_) > kMaxStackBytes) {
    fail(
        fmt::format("chat template nests too deeply while rendering (recursion past {} KiB of "
                    "stack)",
                    kMaxStackBytes >> 10));
  }
  charge(1);
}

Value* Renderer::Frame::find(std::string_view name) {
  for (auto& kv : vars) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

void Renderer::Frame::set(std::string_view name, Value v) {
  if (Value* slot = find(name)) {
    *slot = std::move(v);
  } else {
    vars.emplace_back(name, std::move(v));
  }
}

std::string Renderer::render(const Value& context) {
  context_ = context;
  stack_base_ = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  Frame top;
  top_ = &top;
  std::string out;
  exec_body(program_.body, top, out);
  return out;
}

void Renderer::charge(int64_t steps) {
  if (steps > limits_.max_steps - steps_) {
    fail(
        fmt::format("chat template used more than max_steps ({}) steps; it loops too much or "
                    "its input is too large",
                    limits_.max_steps));
  }
  steps_ += steps;
}

void Renderer::charge_append(size_t added, size_t total) {
  if (total > max_string_bytes()) {
    fail(fmt::format("chat template built a string of {} bytes, over max_output_bytes ({})", total,
                     limits_.max_output_bytes));
  }
  charge(static_cast<int64_t>(added / 64));
}

void Renderer::emit(std::string& out, std::string_view text) {
  if (out.size() + text.size() > max_string_bytes()) {
    fail(
        fmt::format("chat template output passed max_output_bytes ({})", limits_.max_output_bytes));
  }
  out.append(text);
}

// ---------------------------------------------------------------- statements

Renderer::Flow Renderer::exec_body(const Body& body, Frame& f, std::string& out) {
  for (const auto& stmt : body) {
    Flow flow = exec(*stmt, f, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Renderer::Flow Renderer::exec(const Stmt& s, Frame& f, std::string& out) {
  enter_node();
  try {
    switch (s.kind) {
      case SK::kText:
        emit(out, s.text);
        break;
      case SK::kOutput: {
        Value v = eval(*s.expr, f);
        emit(out, v.is_string() ? v.as_string() : to_str(v, max_string_bytes()));
        break;
      }
      case SK::kIf:
        for (const auto& [cond, body] : s.branches) {
          if (truthy(eval(*cond, f))) return exec_body(body, f, out);
        }
        return exec_body(s.else_body, f, out);
      case SK::kFor:
        exec_for(s, f, out);
        break;
      case SK::kSet:
        assign(s, f, eval(*s.expr, f));
        break;
      case SK::kSetBlock: {
        std::string text;
        exec_body(s.body, f, text);
        Value v(std::move(text));
        if (s.filter) v = eval_filter_chain(*s.filter, std::move(v), f);
        assign(s, f, std::move(v));
        break;
      }
      case SK::kMacro: {
        auto c = std::make_shared<Callable>();
        c->type = Callable::Type::kMacro;
        c->name = s.macro->name;
        c->macro = s.macro.get();
        f.set(s.macro->name, Value(std::shared_ptr<const Callable>(std::move(c))));
        break;
      }
      case SK::kFilterBlock: {
        std::string text;
        exec_body(s.body, f, text);
        Value v = eval_filter_chain(*s.filter, Value(std::move(text)), f);
        emit(out, to_str(v, max_string_bytes()));
        break;
      }
      case SK::kBreak:
        return Flow::kBreak;
      case SK::kContinue:
        return Flow::kContinue;
      case SK::kScope:
        return exec_body(s.body, f, out);
    }
  } catch (TemplateError& e) {
    if (e.line == 0) e.line = s.line;
    throw;
  }
  return Flow::kNormal;
}

void Renderer::exec_for(const Stmt& s, Frame& f, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.expr, f));
  auto count_iteration = [&] {
    if (++loop_iterations_ > limits_.max_loop_iterations) {
      fail(fmt::format("chat template ran more than max_loop_iterations ({}) loop iterations",
                       limits_.max_loop_iterations));
    }
  };
  if (s.cond) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      count_iteration();
      Frame probe{&f, {}};
      bind_targets(probe, s.targets, item);
      if (truthy(eval(*s.cond, probe))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  Frame frame{&f, {}};
  for (size_t i = 0; i < items.size(); ++i) {
    count_iteration();
    frame.vars.clear();  // a fresh scope per iteration, reusing the storage
    bind_targets(frame, s.targets, items[i]);
    if (s.uses_loop) frame.set("loop", make_loop(i, items.size(), items));
    if (exec_body(s.body, frame, out) == Flow::kBreak) break;
  }
  if (items.empty()) exec_body(s.else_body, f, out);
}

void Renderer::bind_targets(Frame& f, const std::vector<std::string>& targets, const Value& v) {
  if (targets.size() == 1) {
    f.set(targets[0], v);
    return;
  }
  if (!v.is_list() && !v.is_string()) {
    fail(fmt::format("cannot unpack non-iterable {} object", type_name(v)));
  }
  std::vector<Value> parts = iterate(v);
  if (parts.size() != targets.size()) {
    fail(parts.size() > targets.size()
             ? fmt::format("too many values to unpack (expected {})", targets.size())
             : fmt::format("not enough values to unpack (expected {}, got {})", targets.size(),
                           parts.size()));
  }
  for (size_t i = 0; i < targets.size(); ++i) f.set(targets[i], parts[i]);
}

void Renderer::assign(const Stmt& s, Frame& f, Value v) {
  if (s.attr.empty()) {
    bind_targets(f, s.targets, v);
    return;
  }
  Value ns = lookup(s.targets[0], f);
  if (!ns.is_namespace()) {
    fail(fmt::format("cannot assign attribute '{}' on '{}', which is a {}, not a namespace", s.attr,
                     s.targets[0], type_name(ns)));
  }
  if (s.attr[0] == '_') {
    fail(
        fmt::format("chat templates cannot store underscore-prefixed attributes on a "
                    "namespace, but got '{}'",
                    s.attr));
  }
  if (v.holds_namespace()) fail("a namespace cannot hold another namespace in a chat template");
  Namespace& target = ns.as_namespace();
  if (Value* slot = target.find(s.attr)) {
    *slot = std::move(v);
  } else {
    target.attrs.emplace_back(s.attr, std::move(v));
  }
}

// ---------------------------------------------------------------- expressions

Value Renderer::eval(const Expr& e, Frame& f) {
  enter_node();
  try {
    return eval_node(e, f);
  } catch (TemplateError& err) {
    if (err.line == 0) err.line = e.line;
    throw;
  }
}

Value Renderer::eval_node(const Expr& e, Frame& f) {
  const auto& ops = e.operands;
  switch (e.kind) {
    case EK::kConst:
      return e.value;
    case EK::kName:
      return lookup(e.name, f);
    case EK::kList:
    case EK::kTuple: {
      std::vector<Value> items;
      items.reserve(ops.size());
      for (const auto& op : ops) items.push_back(eval(*op, f));
      return Value::list(std::move(items), e.kind == EK::kTuple);
    }
    case EK::kDict: {
      std::vector<std::pair<std::string, Value>> items;
      for (size_t i = 0; i + 1 < ops.size(); i += 2) {
        Value key = eval(*ops[i], f);
        if (!key.is_string()) {
          fail(fmt::format("chat template dict keys must be strings, not {}", type_name(key)));
        }
        items.emplace_back(key.as_string(), eval(*ops[i + 1], f));
      }
      return Value::dict(std::move(items));
    }
    case EK::kAttr:
      return get_attr(eval(*ops[0], f), e.name);
    case EK::kItem:
      return get_item(eval(*ops[0], f), eval(*ops[1], f));
    case EK::kSlice: {
      Value bounds[3];
      for (int i = 0; i < 3; ++i) {
        if (ops[1 + i]) bounds[i] = eval(*ops[1 + i], f);
      }
      return slice(eval(*ops[0], f), bounds[0], bounds[1], bounds[2]);
    }
    case EK::kCall:
      return eval_call(e, f);
    case EK::kFilter: {
      Value input = eval(*ops[0], f);
      return apply_filter(*this, e.name, input, eval_args(e.args, f));
    }
    case EK::kTest: {
      Value input = eval(*ops[0], f);
      return Value(apply_test(*this, e.name, input, eval_args(e.args, f)) != e.negated);
    }
    case EK::kNot:
      return Value(!truthy(eval(*ops[0], f)));
    case EK::kNeg:
      return negate(eval(*ops[0], f));
    case EK::kPos: {
      Value v = eval(*ops[0], f);
      if (v.is_undefined()) fail(v.undefined_hint());
      if (!v.is_number()) fail(fmt::format("bad operand type for unary +: '{}'", type_name(v)));
      return v.is_bool() ? Value(v.as_int()) : v;
    }
    case EK::kBinary: {
      Value a = eval(*ops[0], f);
      return binary_op(*this, e.name, a, eval(*ops[1], f));
    }
    case EK::kAnd: {
      Value a = eval(*ops[0], f);
      return truthy(a) ? eval(*ops[1], f) : a;
    }
    case EK::kOr: {
      Value a = eval(*ops[0], f);
      return truthy(a) ? a : eval(*ops[1], f);
    }
    case EK::kCompare: {
      Value left = eval(*ops[0], f);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*ops[i + 1], f);
        const std::string& op = e.ops[i];
        bool ok;
        if (op == "==" || op == "!=") {
          charge(std::min(left.weight(), right.weight()));
          ok = equals(left, right) == (op == "==");
        } else if (op == "in" || op == "not in") {
          charge(right.weight());
          ok = contains(right, left) == (op == "in");
        } else {
          charge(std::min(left.weight(), right.weight()));
          ok = compare(left, op, right);
        }
        if (!ok) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case EK::kConcat: {
      std::string text;
      for (const auto& op : ops) {
        Value v = eval(*op, f);
        std::string piece = v.is_string() ? std::string() : to_str(v, max_string_bytes());
        const std::string& add = v.is_string() ? v.as_string() : piece;
        charge_append(add.size(), text.size() + add.size());
        text += add;
      }
      return Value(std::move(text));
    }
    case EK::kCond:
      if (truthy(eval(*ops[0], f))) return eval(*ops[1], f);
      if (ops[2]) return eval(*ops[2], f);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was "
          "defined",
          e.line));
  }
  fail("unknown expression node");
}

CallArgs Renderer::eval_args(const std::vector<Arg>& args, Frame& f) {
  CallArgs out;
  for (const Arg& a : args) {
    if (a.name.empty()) {
      out.positional.push_back(eval(*a.value, f));
    } else {
      out.keyword.emplace_back(a.name, eval(*a.value, f));
    }
  }
  return out;
}

Value Renderer::eval_filter_chain(const Expr& chain, Value input, Frame& f) {
  if (chain.operands[0]) input = eval_filter_chain(*chain.operands[0], std::move(input), f);
  return apply_filter(*this, chain.name, input, eval_args(chain.args, f));
}

Value Renderer::eval_call(const Expr& e, Frame& f) {
  const Expr& callee = *e.operands[0];
  if (callee.kind == EK::kAttr) {  // obj.method(...): no bound-method value needed
    Value obj = eval(*callee.operands[0], f);
    if (has_method(obj, callee.name)) {
      return call_method(*this, obj, callee.name, eval_args(e.args, f));
    }
    Value fn = get_attr(obj, callee.name);
    return call(fn, eval_args(e.args, f));
  }
  Value fn = eval(callee, f);
  return call(fn, eval_args(e.args, f));
}

Value Renderer::call(const Value& callee, const CallArgs& args) {
  if (callee.is_undefined()) fail(callee.undefined_hint());
  if (!callee.is_callable()) fail(fmt::format("'{}' object is not callable", type_name(callee)));
  const Callable& c = callee.as_callable();
  switch (c.type) {
    case Callable::Type::kMacro:
      return call_macro(*c.macro, args);
    case Callable::Type::kMethod:
      return call_method(*this, c.self, c.name, args);
    case Callable::Type::kGlobal:
      return call_global(*this, c.name, args);
  }
  fail("unknown callable");
}

Value Renderer::call_macro(const MacroDef& macro, const CallArgs& args) {
  if (macro_depth_ >= limits_.max_macro_depth) {
    fail(fmt::format("chat template nested macro calls deeper than max_macro_depth ({})",
                     limits_.max_macro_depth));
  }
  struct DepthCount {
    int32_t& d;
    ~DepthCount() { --d; }
  } count{++macro_depth_};
  const auto& params = macro.params;
  if (args.positional.size() > params.size()) {
    fail(fmt::format("macro '{}' takes not more than {} argument(s)", macro.name, params.size()));
  }
  Frame frame{top_, {}};
  std::vector<bool> given(params.size(), false);
  for (size_t i = 0; i < args.positional.size(); ++i) {
    frame.set(params[i].first, args.positional[i]);
    given[i] = true;
  }
  for (const auto& kw : args.keyword) {
    auto it = std::find_if(params.begin(), params.end(),
                           [&](const auto& p) { return p.first == kw.first; });
    if (it == params.end()) {
      fail(fmt::format("macro '{}' takes no keyword argument '{}'", macro.name, kw.first));
    }
    size_t i = static_cast<size_t>(it - params.begin());
    if (given[i]) {
      fail(fmt::format("macro '{}' got multiple values for '{}'", macro.name, kw.first));
    }
    frame.set(params[i].first, kw.second);
    given[i] = true;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (given[i]) continue;
    frame.set(params[i].first, params[i].second
                                   ? eval(*params[i].second, frame)
                                   : Value::undefined(fmt::format("parameter '{}' was not provided",
                                                                  params[i].first)));
  }
  std::string out;
  exec_body(macro.body, frame, out);
  return Value(std::move(out));
}

Value Renderer::lookup(std::string_view name, Frame& f) {
  for (Frame* fr = &f; fr != nullptr; fr = fr->parent) {
    if (Value* v = fr->find(name)) return *v;
  }
  if (const Value* v = context_.as_dict().find(name)) return *v;
  if (is_global_function(name)) {
    auto c = std::make_shared<Callable>();
    c->type = Callable::Type::kGlobal;
    c->name = std::string(name);
    return Value(std::shared_ptr<const Callable>(std::move(c)));
  }
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

// ---------------------------------------------------------------- lookups

Value Renderer::get_attr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) fail(obj.undefined_hint());
  auto missing = [&] {
    return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(obj), name));
  };
  if (!name.empty() && name[0] == '_') return missing();  // sandbox: no private attributes
  if (has_method(obj, name)) {
    auto c = std::make_shared<Callable>();
    c->type = Callable::Type::kMethod;
    c->name = std::string(name);
    c->self = obj;
    return Value(std::shared_ptr<const Callable>(std::move(c)));
  }
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(name);
    return v ? *v : missing();
  }
  if (obj.is_namespace()) {
    Value* v = obj.as_namespace().find(name);
    return v ? *v : missing();
  }
  return missing();
}

Value Renderer::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail(obj.undefined_hint());
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
      return get_attr(obj, key.as_string());  // Jinja falls back to attributes
    }
    return Value::undefined(
        fmt::format("'dict object' has no element {}", repr(key, max_string_bytes())));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto& items = obj.as_list().items;
      int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
    } else {
      charge_bytes(obj.as_string().size());
      std::vector<std::string_view> chars = utf8_chars(obj.as_string());
      int64_t n = static_cast<int64_t>(chars.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(chars[static_cast<size_t>(i)]);
    }
    return Value::undefined(
        fmt::format("{} object has no element {}", type_name(obj), key.as_int()));
  }
  return Value::undefined(fmt::format("'{} object' has no element of that type", type_name(obj)));
}

Value Renderer::slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail(obj.undefined_hint());
  if (obj.is_list()) {
    const auto& items = obj.as_list().items;
    std::vector<int64_t> pos =
        slice_positions(static_cast<int64_t>(items.size()), start, stop, step);
    charge(static_cast<int64_t>(pos.size()));
    std::vector<Value> out;
    out.reserve(pos.size());
    for (int64_t p : pos) out.push_back(items[static_cast<size_t>(p)]);
    return Value::list(std::move(out), obj.as_list().is_tuple);
  }
  if (obj.is_string()) {
    charge_bytes(obj.as_string().size());
    std::vector<std::string_view> chars = utf8_chars(obj.as_string());
    std::string out;
    for (int64_t p : slice_positions(static_cast<int64_t>(chars.size()), start, stop, step)) {
      out += chars[static_cast<size_t>(p)];
    }
    return Value(std::move(out));
  }
  fail(fmt::format("'{}' object is not subscriptable", type_name(obj)));
}

std::vector<Value> Renderer::iterate(const Value& v) {
  std::vector<Value> out;
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return out;
    case Value::Kind::kList:
      charge(static_cast<int64_t>(v.as_list().items.size()));
      return v.as_list().items;
    case Value::Kind::kDict:
      charge(static_cast<int64_t>(v.as_dict().items.size()));
      for (const auto& kv : v.as_dict().items) out.emplace_back(kv.first);
      return out;
    case Value::Kind::kString: {
      size_t n = utf8_length(v.as_string());
      charge(static_cast<int64_t>(n));
      for (std::string_view c : utf8_chars(v.as_string())) out.emplace_back(c);
      return out;
    }
    default:
      fail(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

}  // namespace sluice::chat::jinja
