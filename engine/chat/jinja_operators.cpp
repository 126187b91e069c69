// Python's arithmetic on template values: int64 with overflow checks (where Python would
// grow a big int, the template fails), float with Python's floor division and modulo, and
// + / * on strings and lists with the render's size budget charged before anything is built.

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "engine/chat/jinja_interpreter.h"

namespace sluice::chat::jinja {
namespace {

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a),
                   type_name(b)));
}

[[noreturn]] void overflow(std::string_view op) {
  fail(fmt::format("integer overflow in '{}' (chat templates compute with 64-bit integers)", op));
}

int64_t int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, base, &result)) overflow("**");
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) overflow("**");
  }
  return result;
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  bool as_float = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.as_double() == 0.0) fail("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (as_float) {
    double x = a.as_double(), y = b.as_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") {
      if (x == 0.0 && y < 0) fail("0.0 cannot be raised to a negative power");
      return Value(std::pow(x, y));
    }
    if (y == 0.0) fail(op == "//" ? "float floor division by zero" : "float modulo");
    // CPython's float_divmod.
    double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0.0) {
      if ((y < 0) != (mod < 0)) {
        mod += y;
        div -= 1.0;
      }
    } else {
      mod = std::copysign(0.0, y);
    }
    if (op == "%") return Value(mod);
    if (div == 0.0) return Value(std::copysign(0.0, x / y));
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    return Value(floordiv);
  }
  int64_t x = a.as_int(), y = b.as_int(), r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) overflow(op);
    return Value(r);
  }
  if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) overflow(op);
    return Value(r);
  }
  if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) overflow(op);
    return Value(r);
  }
  if (op == "**") {
    if (y < 0) {
      if (x == 0) fail("0.0 cannot be raised to a negative power");
      return Value(std::pow(double(x), double(y)));
    }
    return Value(int_pow(x, y));
  }
  if (y == 0) fail("integer division or modulo by zero");
  if (x == std::numeric_limits<int64_t>::min() && y == -1) overflow(op);
  int64_t q = x / y, m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) {
    q -= 1;
    m += y;
  }
  return Value(op == "%" ? m : q);
}

Value repeat(Renderer& r, const Value& seq, int64_t times) {
  if (times <= 0) return seq.is_string() ? Value("") : Value::list({}, seq.as_list().is_tuple);
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && static_cast<uint64_t>(times) > r.max_string_bytes() / s.size()) {
      r.charge_bytes(r.max_string_bytes() + 1);  // fails, naming the limit
    }
    r.charge_bytes(s.size() * static_cast<size_t>(times));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.as_list().items;
  int64_t total = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(items.size()), times, &total)) {
    total = std::numeric_limits<int64_t>::max();
  }
  r.charge(total);
  std::vector<Value> out;
  out.reserve(items.size() * static_cast<size_t>(times));
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), seq.as_list().is_tuple);
}

}  // namespace

Value binary_op(Renderer& r, std::string_view op, const Value& a, const Value& b) {
  for (const Value* v : {&a, &b}) {
    if (v->is_undefined()) fail(v->undefined_hint());
  }
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      r.charge_bytes(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
      const auto& x = a.as_list().items;
      const auto& y = b.as_list().items;
      r.charge(static_cast<int64_t>(x.size() + y.size()));
      std::vector<Value> out = x;
      out.insert(out.end(), y.begin(), y.end());
      return Value::list(std::move(out), a.as_list().is_tuple);
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
      return repeat(r, a, b.as_int());
    }
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) {
      return repeat(r, b, a.as_int());
    }
  }
  if (op == "+" && (a.is_string() || a.is_list())) {  // Python's wording
    fail(fmt::format("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b),
                     type_name(a)));
  }
  if (op == "%" && a.is_string()) {
    fail("printf-style string formatting ('...' % x) is not supported in chat templates");
  }
  unsupported(op, a, b);
}

Value negate(const Value& v) {
  if (v.is_undefined()) fail(v.undefined_hint());
  if (v.is_float()) return Value(-v.as_double());
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) overflow("-");
    return Value(-v.as_int());
  }
  fail(fmt::format("bad operand type for unary -: '{}'", type_name(v)));
}

}  // namespace sluice::chat::jinja
