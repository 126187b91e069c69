// Tests, methods and globals of the chat-template interpreter (filters are in
// jinja_filters.cpp), and the helpers they share.

#include "engine/chat/jinja_builtins.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "engine/chat/jinja_interpreter.h"
#include "engine/chat/jinja_text.h"

namespace sluice::chat::jinja {
namespace {

const std::string& string_arg(const Value* v, std::string_view fn, std::string_view param) {
  if (v == nullptr || !v->is_string()) {
    fail(fmt::format("{}() argument '{}' must be a string, not {}", fn, param,
                     v ? type_name(*v) : "missing"));
  }
  return v->as_string();
}

int64_t int_arg(const Value& v, std::string_view fn) {
  if (!v.is_int() && !v.is_bool()) {
    fail(fmt::format("{}() expects an integer argument, not {}", fn, type_name(v)));
  }
  return v.as_int();
}

bool is_sequence(const Value& v) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}

// ---- str methods ----

// Python's str.split / str.rsplit.
Value split(Renderer& r, const std::string& s, const Value* sep_v, int64_t maxsplit,
            bool from_right) {
  r.charge_bytes(s.size());
  std::vector<std::string> parts;
  if (sep_v == nullptr) {  // runs of whitespace; no empty strings
    std::vector<std::string_view> chars = utf8_chars(s);
    auto space = [&](size_t i) {
      uint32_t cp = 0;
      utf8_decode(chars[i], 0, &cp);
      return is_py_space(cp);
    };
    auto join = [&](size_t a, size_t b) {
      std::string out;
      for (size_t k = a; k < b; ++k) out += chars[k];
      return out;
    };
    size_t n = chars.size();
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < n && space(i)) ++i;
        if (i == n) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.push_back(join(i, n));  // the rest, trailing whitespace kept
          break;
        }
        size_t j = i;
        while (j < n && !space(j)) ++j;
        parts.push_back(join(i, j));
        i = j;
      }
    } else {
      size_t i = n;
      while (true) {
        while (i > 0 && space(i - 1)) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.push_back(join(0, i));  // the rest, leading whitespace kept
          break;
        }
        size_t j = i;
        while (j > 0 && !space(j - 1)) --j;
        parts.push_back(join(j, i));
        i = j;
      }
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    const std::string& sep = string_arg(sep_v, "split", "sep");
    if (sep.empty()) fail("split(): empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t p = s.find(sep, start);
        if (p == std::string::npos) break;
        parts.push_back(s.substr(start, p - start));
        start = p + sep.size();
      }
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        if (end < sep.size()) break;
        size_t p = s.rfind(sep, end - sep.size());
        if (p == std::string::npos) break;
        parts.push_back(s.substr(p + sep.size(), end - p - sep.size()));
        end = p;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
  }
  r.charge(static_cast<int64_t>(parts.size()));
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::list(std::move(items));
}

bool prefix_match(const std::string& s, const Value& prefix, bool at_end, std::string_view fn) {
  auto one = [&](const Value& p) {
    const std::string& x = string_arg(&p, fn, "prefix");
    if (x.size() > s.size()) return false;
    return s.compare(at_end ? s.size() - x.size() : 0, x.size(), x) == 0;
  };
  if (prefix.is_list()) {
    return std::any_of(prefix.as_list().items.begin(), prefix.as_list().items.end(), one);
  }
  return one(prefix);
}

Value string_method(Renderer& r, const std::string& s, std::string_view name,
                    const CallArgs& args) {
  auto none = [&] { BoundArgs(args, name, {}); };
  if (name == "startswith" || name == "endswith") {
    BoundArgs a(args, name, {"prefix"});
    if (!a.get(0)) fail(fmt::format("{}() takes a prefix argument", name));
    return Value(prefix_match(s, *a.get(0), name == "endswith", name));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    BoundArgs a(args, name, {"chars"});
    std::string_view chars =
        a.get(0) ? std::string_view(string_arg(a.get(0), name, "chars")) : std::string_view();
    return Value(py_strip_chars(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    BoundArgs a(args, name, {"sep", "maxsplit"});
    int64_t maxsplit = a.get(1) ? int_arg(*a.get(1), name) : -1;
    return split(r, s, a.get(0), maxsplit, name == "rsplit");
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    none();
    r.charge_bytes(s.size());
    std::string out = name == "upper"   ? py_upper(s)
                      : name == "lower" ? py_lower(s)
                      : name == "title" ? py_title(s)
                                        : py_capitalize(s);
    r.charge_append(0, out.size());  // case mapping can grow text ('ß' -> 'SS')
    return Value(std::move(out));
  }
  if (name == "replace") {
    BoundArgs a(args, name, {"old", "new", "count"});
    CallArgs forwarded{
        {Value(string_arg(a.get(0), name, "old")), Value(string_arg(a.get(1), name, "new"))}, {}};
    if (a.get(2)) forwarded.positional.push_back(*a.get(2));
    return apply_filter(r, "replace", Value(s), forwarded);
  }
  if (name == "find" || name == "count") {
    BoundArgs a(args, name, {"sub"});
    const std::string& sub = string_arg(a.get(0), name, "sub");
    r.charge_bytes(s.size());
    if (name == "find") {
      size_t p = s.find(sub);
      return Value(p == std::string::npos ? int64_t{-1}
                                          : static_cast<int64_t>(utf8_length(s.substr(0, p))));
    }
    if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
    int64_t n = 0;
    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    BoundArgs a(args, name, {"iterable"});
    if (!a.get(0)) fail("join() takes an iterable argument");
    std::string out;
    bool first = true;
    for (const Value& item : r.iterate(*a.get(0))) {
      if (!item.is_string()) {
        fail(fmt::format("sequence item: expected str instance, {} found", type_name(item)));
      }
      size_t added = (first ? 0 : s.size()) + item.as_string().size();
      r.charge_append(added, out.size() + added);
      if (!first) out += s;
      first = false;
      out += item.as_string();
    }
    return Value(std::move(out));
  }
  fail(fmt::format("'str' object has no method '{}'", name));
}

Value dict_method(Renderer& r, const Value& self, std::string_view name, const CallArgs& args) {
  const DictData& d = self.as_dict();
  if (name == "get") {
    BoundArgs a(args, name, {"key", "default"});
    if (!a.get(0)) fail("get() takes a key argument");
    const Value* v = a.get(0)->is_string() ? d.find(a.get(0)->as_string()) : nullptr;
    return v ? *v : a.get_or(1, Value(None{}));
  }
  BoundArgs(args, name, {});
  r.charge(static_cast<int64_t>(d.items.size()));
  std::vector<Value> out;
  out.reserve(d.items.size());
  for (const auto& [key, value] : d.items) {
    if (name == "keys") {
      out.emplace_back(key);
    } else if (name == "values") {
      out.push_back(value);
    } else {
      out.push_back(Value::list({Value(key), value}, true));
    }
  }
  return Value::list(std::move(out));
}

// ---- globals ----

Value make_range(Renderer& r, const CallArgs& args) {
  if (!args.keyword.empty()) fail("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3) fail("range() takes 1 to 3 integer arguments");
  int64_t start = 0, stop = 0, step = 1;
  if (p.size() == 1) {
    stop = int_arg(p[0], "range");
  } else {
    start = int_arg(p[0], "range");
    stop = int_arg(p[1], "range");
    if (p.size() == 3) step = int_arg(p[2], "range");
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  constexpr int64_t kMaxRange = 100000;  // ImmutableSandboxedEnvironment's MAX_RANGE
  // Length computed in floating point to stay clear of overflow at the int64 extremes.
  double span = step > 0 ? double(stop) - double(start) : double(start) - double(stop);
  double count = span <= 0 ? 0 : std::ceil(span / std::abs(double(step)));
  if (count > kMaxRange) {
    fail(fmt::format("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).",
                     kMaxRange));
  }
  r.charge(static_cast<int64_t>(count));
  std::vector<Value> items;
  for (int64_t i = 0, v = start; i < static_cast<int64_t>(count); ++i, v += step) {
    items.emplace_back(v);
  }
  return Value::list(std::move(items));
}

// dict(mapping_or_pairs, **kwargs) items, as namespace() and dict() take them.
std::vector<std::pair<std::string, Value>> mapping_items(Renderer& r, const CallArgs& args,
                                                         std::string_view fn) {
  std::vector<std::pair<std::string, Value>> items;
  if (args.positional.size() > 1) fail(fmt::format("{}() takes at most 1 positional argument", fn));
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      items = src.as_dict().items;
    } else {
      for (const Value& pair : r.iterate(src)) {
        if (!pair.is_list() || pair.as_list().items.size() != 2 ||
            !pair.as_list().items[0].is_string()) {
          fail(fmt::format("{}() needs a mapping or (str key, value) pairs", fn));
        }
        items.emplace_back(pair.as_list().items[0].as_string(), pair.as_list().items[1]);
      }
    }
  }
  for (const auto& kv : args.keyword) items.push_back(kv);
  r.charge(static_cast<int64_t>(items.size()));
  return items;
}

}  // namespace

BoundArgs::BoundArgs(const CallArgs& args, std::string_view fn, std::vector<std::string_view> names)
    : fn_(fn), params_(std::move(names)), values_(params_.size(), nullptr) {
  const std::vector<std::string_view>& params = params_;
  if (args.positional.size() > params.size()) {
    fail(fmt::format("{}() takes at most {} argument(s) ({} given)", fn, params.size(),
                     args.positional.size()));
  }
  std::vector<bool> given(params.size(), false);
  for (size_t i = 0; i < args.positional.size(); ++i) {
    given[i] = true;
    if (!args.positional[i].is_none()) values_[i] = &args.positional[i];
  }
  for (const auto& [name, value] : args.keyword) {
    auto it = std::find(params.begin(), params.end(), name);
    if (it == params.end())
      fail(fmt::format("{}() got an unexpected keyword argument '{}'", fn, name));
    size_t i = static_cast<size_t>(it - params.begin());
    if (given[i]) fail(fmt::format("{}() got multiple values for argument '{}'", fn, name));
    given[i] = true;
    if (!value.is_none()) values_[i] = &value;
  }
}

int64_t BoundArgs::get_int(size_t i, int64_t fallback) const {
  const Value* v = values_[i];
  if (v == nullptr) return fallback;
  if (!v->is_int() && !v->is_bool()) {
    fail(fmt::format("{}() argument '{}' must be an integer, not {}", fn_, params_[i],
                     type_name(*v)));
  }
  return v->as_int();
}

Value attr_path(Renderer& r, const Value& item, std::string_view path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    if (digits && part.size() < 18) {
      v = r.get_item(v, Value(static_cast<int64_t>(std::stoll(std::string(part)))));
    } else {
      v = r.get_item(v, Value(part));
    }
    if (dot == std::string_view::npos) return v;
    start = dot + 1;
  }
}

void sort_by_keys(Renderer& r, std::vector<Value>& items, const std::vector<Value>& keys,
                  bool reverse) {
  size_t n = items.size();
  std::vector<size_t> order(n), tmp(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  auto less = [&](size_t a, size_t b) {
    r.charge(1);
    return reverse ? compare(keys[a], ">", keys[b]) : compare(keys[a], "<", keys[b]);
  };
  for (size_t width = 1; width < n; width *= 2) {  // bottom-up merge sort: stable, in bounds
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = std::min(lo + width, n), hi = std::min(lo + 2 * width, n);
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = less(order[j], order[i]) ? order[j++] : order[i++];
      while (i < mid) tmp[k++] = order[i++];
      while (j < hi) tmp[k++] = order[j++];
    }
    order.swap(tmp);
  }
  std::vector<Value> sorted;
  sorted.reserve(n);
  for (size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
}

bool is_known_test(std::string_view name) {
  static constexpr std::string_view kTests[] = {
      "defined",     "undefined", "none",        "boolean", "false",    "true",     "integer",
      "float",       "number",    "string",      "mapping", "sequence", "iterable", "callable",
      "even",        "odd",       "divisibleby", "eq",      "equalto",  "==",       "ne",
      "!=",          "lt",        "lessthan",    "<",       "le",       "<=",       "gt",
      "greaterthan", ">",         "ge",          ">=",      "in",       "sameas",   "lower",
      "upper",       "escaped"};
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

bool apply_test(Renderer& r, std::string_view name, const Value& v, const CallArgs& args) {
  using K = Value::Kind;
  const std::vector<Value>& p = args.positional;
  auto arg = [&]() -> const Value& {
    if (p.size() != 1 || !args.keyword.empty())
      fail(fmt::format("test '{}' takes one argument", name));
    return p[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence" || name == "iterable") return is_sequence(v);
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "lower") return py_islower(to_str(v, r.max_string_bytes()));
  if (name == "upper") return py_isupper(to_str(v, r.max_string_bytes()));
  if (name == "even" || name == "odd") {
    bool even = equals(binary_op(r, "%", v, Value(2)), Value(0));
    return even == (name == "even");
  }
  if (name == "divisibleby") return equals(binary_op(r, "%", v, arg()), Value(0));
  if (name == "in") {
    r.charge(arg().weight());
    return contains(arg(), v);
  }
  if (name == "sameas") {
    const Value& o = arg();
    if (v.kind() != o.kind()) return false;
    switch (v.kind()) {
      case K::kNone:
        return true;
      case K::kBool:
      case K::kInt:
      case K::kFloat:
        return equals(v, o);
      case K::kString:
        return v.get<K::kString>() == o.get<K::kString>();
      case K::kList:
        return v.get<K::kList>() == o.get<K::kList>();
      case K::kDict:
        return v.get<K::kDict>() == o.get<K::kDict>();
      case K::kNamespace:
        return v.get<K::kNamespace>() == o.get<K::kNamespace>();
      default:
        return false;
    }
  }
  const Value& o = arg();
  r.charge(std::min(v.weight(), o.weight()));
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, o);
  if (name == "ne" || name == "!=") return !equals(v, o);
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, "<", o);
  if (name == "le" || name == "<=") return compare(v, "<=", o);
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, ">", o);
  return compare(v, ">=", o);  // ge, >=
}

bool has_method(const Value& self, std::string_view name) {
  static constexpr std::string_view kStr[] = {"startswith", "endswith", "strip", "lstrip", "rstrip",
                                              "split",      "rsplit",   "upper", "lower",  "title",
                                              "capitalize", "replace",  "find",  "count",  "join"};
  static constexpr std::string_view kDict[] = {"items", "keys", "values", "get"};
  if (self.is_string()) return std::find(std::begin(kStr), std::end(kStr), name) != std::end(kStr);
  if (self.is_dict()) return std::find(std::begin(kDict), std::end(kDict), name) != std::end(kDict);
  return false;
}

Value call_method(Renderer& r, const Value& self, std::string_view name, const CallArgs& args) {
  if (self.is_string()) return string_method(r, self.as_string(), name, args);
  if (self.is_dict()) return dict_method(r, self, name, args);
  fail(fmt::format("'{}' object has no method '{}'", type_name(self), name));
}

bool is_global_function(std::string_view name) {
  return name == "range" || name == "namespace" || name == "dict" || name == "raise_exception" ||
         name == "strftime_now";
}

Value call_global(Renderer& r, std::string_view name, const CallArgs& args) {
  if (name == "range") return make_range(r, args);
  if (name == "dict") return Value::dict(mapping_items(r, args, name));
  if (name == "namespace") {
    auto ns = std::make_shared<Namespace>();
    for (auto& [key, value] : mapping_items(r, args, name)) {
      if (!key.empty() && key[0] == '_') {
        fail(
            fmt::format("chat templates cannot store underscore-prefixed attributes on a "
                        "namespace, but got '{}'",
                        key));
      }
      if (value.holds_namespace()) fail("a namespace cannot hold another namespace");
      if (Value* slot = ns->find(key)) {
        *slot = value;
      } else {
        ns->attrs.emplace_back(key, value);
      }
    }
    return Value(std::move(ns));
  }
  if (name == "raise_exception") {
    BoundArgs a(args, name, {"message"});
    TemplateError error(a.get(0) ? to_str(*a.get(0), r.max_string_bytes()) : "None");
    error.from_raise = true;
    throw error;
  }
  // strftime_now(format): the local time, as transformers' global does.
  BoundArgs a(args, name, {"format"});
  const std::string& format = string_arg(a.get(0), name, "format");
  if (format.size() > 256) fail("strftime_now(): format longer than 256 bytes");
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[1024];
  size_t n = std::strftime(buf, sizeof(buf), format.c_str(), &local);
  return Value(std::string(buf, n));
}

}  // namespace sluice::chat::jinja
