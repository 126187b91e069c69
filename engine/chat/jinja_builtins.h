#pragma once
// Jinja's built-in filters, tests and globals, and the Python string and dict methods that
// chat templates call, as far as chat templates use them. Each takes its arguments the way
// the Python original binds them (positional, then by keyword; unknown keywords are errors).
//
// Filters: abs capitalize count d default dictsort e escape first float indent int items
//   join last length list lower map reject rejectattr replace reverse round safe select
//   selectattr sort string sum title tojson trim unique upper
// Tests: defined undefined none boolean true false integer float number string mapping
//   sequence iterable callable even odd divisibleby eq equalto ne lt lessthan le gt
//   greaterthan ge in sameas lower upper (and == != < <= > >=)
// Globals: range namespace dict raise_exception strftime_now
// Methods: str.{startswith endswith strip lstrip rstrip split rsplit upper lower title
//   capitalize replace find count join}, dict.{items keys values get}
//
// `tojson` is transformers' override: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False), so non-ASCII text and <>&' are not escaped.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/chat/jinja_value.h"

namespace sluice::chat::jinja {

class Renderer;  // jinja_interpreter.h

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);
bool is_global_function(std::string_view name);
// True when `self` (a str or dict) has the method `name` above.
bool has_method(const Value& self, std::string_view name);

// ---- helpers shared by the builtins ----

// Binds CallArgs to a Python-style parameter list: positionals in order, then keywords by
// name. Throws for too many positionals or an unknown or repeated keyword.
class BoundArgs {
 public:
  BoundArgs(const CallArgs& args, std::string_view fn, std::vector<std::string_view> params);
  // The argument for params[i], or nullptr when it was not given (or given as None).
  const Value* get(size_t i) const { return values_[i]; }
  Value get_or(size_t i, Value fallback) const { return values_[i] ? *values_[i] : fallback; }
  // params[i] as an integer (bool counts, as in Python); throws for other types.
  int64_t get_int(size_t i, int64_t fallback) const;

 private:
  std::string fn_;
  std::vector<std::string_view> params_;
  std::vector<const Value*> values_;
};

// Jinja's attribute getter for map/selectattr/sort/...: "a.b.0" looks up a, then b, then
// item 0.
Value attr_path(Renderer& r, const Value& item, std::string_view path);
// Stable merge sort of `items` by `keys` (same length) with Python's `<`; it never reads out
// of bounds, even when the keys are not consistently ordered (NaN), and throws on
// unorderable keys.
void sort_by_keys(Renderer& r, std::vector<Value>& items, const std::vector<Value>& keys,
                  bool reverse);

Value apply_filter(Renderer& r, std::string_view name, const Value& input, const CallArgs& args);
bool apply_test(Renderer& r, std::string_view name, const Value& input, const CallArgs& args);
Value call_method(Renderer& r, const Value& self, std::string_view name, const CallArgs& args);
Value call_global(Renderer& r, std::string_view name, const CallArgs& args);

}  // namespace sluice::chat::jinja
