// Jinja's built-in filters (jinja2/filters.py) as chat templates use them, plus transformers'
// `tojson` override. Each charges the render budget for the elements or bytes it builds.

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "engine/chat/jinja_builtins.h"
#include "engine/chat/jinja_interpreter.h"
#include "engine/chat/jinja_text.h"

namespace sluice::chat::jinja {
namespace {

// Builds a string, failing as soon as it passes the render's string limit.
class TextBuilder {
 public:
  explicit TextBuilder(Renderer& r) : r_(r) {}
  void add(std::string_view s) {
    r_.charge_append(s.size(), text_.size() + s.size());
    text_.append(s);
  }
  std::string take() { return std::move(text_); }

 private:
  Renderer& r_;
  std::string text_;
};

std::string str_of(Renderer& r, const Value& v) { return to_str(v, r.max_string_bytes()); }

// Python's int(text, base); false when the text is not an integer literal.
bool parse_py_int(std::string_view text, int base, int64_t* out) {
  std::string_view t = py_strip_chars(text, std::string_view(), true, true);
  bool negative = false;
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) {
    negative = t[0] == '-';
    t.remove_prefix(1);
  }
  if (base == 16 && t.size() > 2 && t[0] == '0' && (t[1] | 0x20) == 'x') t.remove_prefix(2);
  std::string digits;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_' && i > 0 && i + 1 < t.size() && t[i - 1] != '_') continue;
    digits += t[i];
  }
  if (digits.empty()) return false;
  uint64_t v = 0;
  auto res = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
  if (res.ec != std::errc() || res.ptr != digits.data() + digits.size()) return false;
  if (v > static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0)) return false;
  *out = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

// Python's float(text); false when the text is not a float literal.
bool parse_py_float(std::string_view text, double* out) {
  std::string_view t = py_strip_chars(text, std::string_view(), true, true);
  bool negative = false;
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) {
    negative = t[0] == '-';
    t.remove_prefix(1);
  }
  if (t.empty() || t[0] == '+' || t[0] == '-') return false;
  double v = 0;
  auto res = std::from_chars(t.data(), t.data() + t.size(), v);
  if (res.ptr != t.data() + t.size()) return false;
  if (res.ec == std::errc::result_out_of_range) {
    size_t e = t.find_first_of("eE");
    v = (e != std::string_view::npos && e + 1 < t.size() && t[e + 1] == '-') ? 0.0 : HUGE_VAL;
  } else if (res.ec != std::errc()) {
    return false;
  }
  *out = negative ? -v : v;
  return true;
}

Value lower_if_string(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value(py_lower(v.as_string())) : v;
}

Value to_int(Renderer& r, const Value& v, const BoundArgs& a) {
  Value dflt = a.get_or(0, Value(0));
  int64_t base = a.get_int(1, 10);
  if (base < 2 || base > 36) fail("int(): base must be between 2 and 36");
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  double d = 0;
  if (v.is_string()) {
    int64_t i = 0;
    if (parse_py_int(v.as_string(), static_cast<int>(base), &i)) return Value(i);
    if (!parse_py_float(v.as_string(), &d)) return dflt;
  } else if (v.is_float()) {
    d = v.as_double();
  } else {
    return dflt;
  }
  if (std::isnan(d)) return dflt;
  if (!(std::abs(d) < 9.2e18)) fail("int(): float too large for a 64-bit integer");
  return Value(static_cast<int64_t>(d));
}

Value round_value(const Value& v, const BoundArgs& a) {
  int64_t precision = a.get_int(0, 0);
  std::string method = a.get(1) && a.get(1)->is_string() ? a.get(1)->as_string() : "common";
  if (method != "common" && method != "ceil" && method != "floor") {
    fail("round(): method must be common, ceil or floor");
  }
  if (!v.is_number()) fail(fmt::format("round(): expected a number, not {}", type_name(v)));
  if (method == "common" && !v.is_float() && precision >= 0) return Value(v.as_int());
  double scale = std::pow(10.0, static_cast<double>(std::clamp<int64_t>(precision, -308, 308)));
  double x = v.as_double() * scale;
  double rounded = method == "ceil"    ? std::ceil(x)
                   : method == "floor" ? std::floor(x)
                                       : std::nearbyint(x);
  return Value(rounded / scale);
}

Value indent(Renderer& r, const std::string& s, const BoundArgs& a) {
  std::string pad = "    ";
  if (a.get(0) && a.get(0)->is_string()) {
    pad = a.get(0)->as_string();
  } else {
    pad.assign(static_cast<size_t>(std::clamp<int64_t>(a.get_int(0, 4), 0, 256)), ' ');
  }
  bool first = a.get(1) && truthy(*a.get(1));
  bool blank = a.get(2) && truthy(*a.get(2));
  // str.splitlines() of s + "\n" (the trailing newline keeps a final empty line out).
  std::vector<std::string_view> lines;
  std::string text = s + "\n";
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) {
      lines.push_back(std::string_view(text).substr(start, i - start));
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  TextBuilder out(r);
  if (first) out.add(pad);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out.add("\n");
      if (blank || !lines[i].empty()) out.add(pad);
    }
    out.add(lines[i]);
  }
  return Value(out.take());
}

Value replace(Renderer& r, const std::string& s, const std::string& old, const std::string& repl,
              int64_t count) {
  TextBuilder out(r);
  if (old.empty()) {  // Python inserts `repl` around every character
    std::vector<std::string_view> chars = utf8_chars(s);
    for (size_t i = 0; i <= chars.size(); ++i) {
      if (count < 0 || static_cast<int64_t>(i) < count) out.add(repl);
      if (i < chars.size()) out.add(chars[i]);
    }
    return Value(out.take());
  }
  size_t start = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out.add(std::string_view(s).substr(start, p - start));
    out.add(repl);
    start = p + old.size();
  }
  out.add(std::string_view(s).substr(start));
  return Value(out.take());
}

Value tojson(Renderer& r, const Value& v, const BoundArgs& a) {
  JsonOptions o;
  o.ensure_ascii = a.get(0) && truthy(*a.get(0));
  if (const Value* ind = a.get(1)) {
    o.has_indent = true;
    if (ind->is_string()) {
      o.indent = ind->as_string();
    } else {
      o.indent.assign(static_cast<size_t>(std::clamp<int64_t>(a.get_int(1, 0), 0, 256)), ' ');
    }
    o.item_separator.assign(1,
                            ',');  // (assign, not = ",": dodges a GCC 12 -Wrestrict false positive)
  }
  if (const Value* sep = a.get(2)) {
    if (!sep->is_list() || sep->as_list().items.size() != 2 ||
        !sep->as_list().items[0].is_string() || !sep->as_list().items[1].is_string()) {
      fail("tojson(): separators must be a pair of strings");
    }
    o.item_separator = sep->as_list().items[0].as_string();
    o.key_separator = sep->as_list().items[1].as_string();
  }
  o.sort_keys = a.get(3) && truthy(*a.get(3));
  r.charge(v.weight());
  return Value(to_json(v, o, r.max_string_bytes()));
}

// select/reject/selectattr/rejectattr: keeps items whose test (truthiness when no test is
// named) is `keep`.
Value select(Renderer& r, const Value& seq, const CallArgs& args, bool by_attr, bool keep) {
  CallArgs test_args{args.positional, args.keyword};
  std::string attr;
  if (by_attr) {
    if (test_args.positional.empty() || !test_args.positional[0].is_string()) {
      fail("selectattr()/rejectattr() need an attribute name");
    }
    attr = test_args.positional[0].as_string();
    test_args.positional.erase(test_args.positional.begin());
  }
  std::string test;
  if (!test_args.positional.empty()) {
    if (!test_args.positional[0].is_string()) fail("select(): the test name must be a string");
    test = test_args.positional[0].as_string();
    if (!is_known_test(test)) fail(fmt::format("no test named '{}'", test));
    test_args.positional.erase(test_args.positional.begin());
  }
  std::vector<Value> out;
  for (const Value& item : r.iterate(seq)) {
    Value subject = by_attr ? attr_path(r, item, attr) : item;
    bool passed = test.empty() ? truthy(subject) : apply_test(r, test, subject, test_args);
    if (passed == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value map_items(Renderer& r, const Value& seq, const CallArgs& args) {
  std::vector<Value> out;
  bool by_attr = args.positional.empty();
  if (by_attr) {
    BoundArgs a(args, "map", {"attribute", "default"});
    if (!a.get(0) || !a.get(0)->is_string()) fail("map() needs a filter name or attribute=");
    for (const Value& item : r.iterate(seq)) {
      Value v = attr_path(r, item, a.get(0)->as_string());
      out.push_back(v.is_undefined() && a.get(1) ? *a.get(1) : v);
    }
    return Value::list(std::move(out));
  }
  if (!args.positional[0].is_string()) fail("map(): the filter name must be a string");
  std::string name = args.positional[0].as_string();
  if (!is_known_filter(name)) fail(fmt::format("no filter named '{}'", name));
  CallArgs rest{std::vector<Value>(args.positional.begin() + 1, args.positional.end()),
                args.keyword};
  for (const Value& item : r.iterate(seq)) out.push_back(apply_filter(r, name, item, rest));
  return Value::list(std::move(out));
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Jinja's `title` filter: upper-cases the first letter after '-', whitespace or an opening
// bracket, lower-cases the rest.
std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (std::string_view ch : utf8_chars(s)) {
    uint32_t cp = 0;
    utf8_decode(ch, 0, &cp);
    bool sep = is_py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
    out += sep ? std::string(ch) : word_start ? py_upper(ch) : py_lower(ch);
    word_start = sep;
  }
  return out;
}

}  // namespace

bool is_known_filter(std::string_view name) {
  static constexpr std::string_view kFilters[] = {
      "abs",     "capitalize", "count", "d",      "default", "dictsort",   "e",
      "escape",  "first",      "float", "indent", "int",     "items",      "join",
      "last",    "length",     "list",  "lower",  "map",     "reject",     "rejectattr",
      "replace", "reverse",    "round", "safe",   "select",  "selectattr", "sort",
      "string",  "sum",        "title", "tojson", "trim",    "unique",     "upper"};
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

Value apply_filter(Renderer& r, std::string_view name, const Value& v, const CallArgs& args) {
  auto no_args = [&] { BoundArgs(args, name, {}); };
  if (name == "default" || name == "d") {
    BoundArgs a(args, name, {"default_value", "boolean"});
    bool use_default = v.is_undefined() || (a.get(1) && truthy(*a.get(1)) && !truthy(v));
    return use_default ? a.get_or(0, Value("")) : v;
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    no_args();
    std::string s = str_of(r, v);
    r.charge_bytes(s.size());
    std::string out = name == "upper"   ? py_upper(s)
                      : name == "lower" ? py_lower(s)
                      : name == "title" ? jinja_title(s)
                                        : py_capitalize(s);
    r.charge_append(0, out.size());  // case mapping can grow text ('ß' -> 'SS')
    return Value(std::move(out));
  }
  if (name == "trim") {
    BoundArgs a(args, name, {"chars"});
    std::string s = str_of(r, v);
    r.charge_bytes(s.size());
    std::string_view chars;  // null view: strip whitespace
    if (const Value* c = a.get(0)) {
      if (!c->is_string()) fail("trim(): chars must be a string or None");
      chars = c->as_string();
    }
    return Value(py_strip_chars(s, chars, true, true));
  }
  if (name == "length" || name == "count") {
    no_args();
    switch (v.kind()) {
      case Value::Kind::kUndefined:
        return Value(0);
      case Value::Kind::kString:
        return Value(static_cast<int64_t>(utf8_length(v.as_string())));
      case Value::Kind::kList:
        return Value(static_cast<int64_t>(v.as_list().items.size()));
      case Value::Kind::kDict:
        return Value(static_cast<int64_t>(v.as_dict().items.size()));
      default:
        fail(fmt::format("object of type '{}' has no len()", type_name(v)));
    }
  }
  if (name == "string" || name == "safe") {
    no_args();
    return name == "safe" ? v : Value(str_of(r, v));
  }
  if (name == "escape" || name == "e") {
    no_args();
    std::string s = html_escape(str_of(r, v));
    r.charge_bytes(s.size());
    return Value(std::move(s));
  }
  if (name == "tojson") {
    return tojson(r, v,
                  BoundArgs(args, name, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  }
  if (name == "int") return to_int(r, v, BoundArgs(args, name, {"default", "base"}));
  if (name == "float") {
    BoundArgs a(args, name, {"default"});
    double d = 0;
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string() && parse_py_float(v.as_string(), &d)) return Value(d);
    return a.get_or(0, Value(0.0));
  }
  if (name == "abs") {
    no_args();
    if (v.is_float()) return Value(std::abs(v.as_double()));
    if (v.is_int() || v.is_bool()) return v.as_int() < 0 ? negate(v) : Value(v.as_int());
    fail(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
  }
  if (name == "round") return round_value(v, BoundArgs(args, name, {"precision", "method"}));
  if (name == "replace") {
    BoundArgs a(args, name, {"old", "new", "count"});
    if (!a.get(0) || !a.get(1)) fail("replace() takes the old and new text");
    return replace(r, str_of(r, v), str_of(r, *a.get(0)), str_of(r, *a.get(1)), a.get_int(2, -1));
  }
  if (name == "indent")
    return indent(r, str_of(r, v), BoundArgs(args, name, {"width", "first", "blank"}));
  if (name == "join") {
    BoundArgs a(args, name, {"d", "attribute"});
    std::string sep = a.get(0) ? str_of(r, *a.get(0)) : "";
    TextBuilder out(r);
    bool first = true;
    for (const Value& item : r.iterate(v)) {
      if (!first) out.add(sep);
      first = false;
      out.add(str_of(r, a.get(1) ? attr_path(r, item, str_of(r, *a.get(1))) : item));
    }
    return Value(out.take());
  }
  if (name == "list") {
    no_args();
    return Value::list(r.iterate(v));
  }
  if (name == "first" || name == "last") {
    no_args();
    if (name == "last" && !v.is_undefined() && !v.is_list() && !v.is_string() && !v.is_dict()) {
      fail(fmt::format("'{}' object is not reversible", type_name(v)));
    }
    std::vector<Value> items = r.iterate(v);
    if (items.empty())
      return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    no_args();
    std::vector<Value> items = r.iterate(v);
    std::reverse(items.begin(), items.end());
    if (!v.is_string()) return Value::list(std::move(items));
    std::string out;
    for (const Value& c : items) out += c.as_string();
    return Value(std::move(out));
  }
  if (name == "items") {
    no_args();
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) fail("items(): can only get item pairs from a mapping");
    return call_method(r, v, "items", {});
  }
  if (name == "dictsort") {
    BoundArgs a(args, name, {"case_sensitive", "by", "reverse"});
    if (v.is_undefined()) fail(v.undefined_hint());
    if (!v.is_dict()) fail(fmt::format("dictsort(): expected a mapping, got {}", type_name(v)));
    std::string by = a.get(1) ? str_of(r, *a.get(1)) : "key";
    if (by != "key" && by != "value")
      fail("dictsort(): you can only sort by either 'key' or 'value'");
    bool case_sensitive = a.get(0) && truthy(*a.get(0));
    std::vector<Value> items = call_method(r, v, "items", {}).as_list().items;
    std::vector<Value> keys;
    for (const Value& kv : items) {
      keys.push_back(lower_if_string(kv.as_list().items[by == "key" ? 0 : 1], case_sensitive));
    }
    sort_by_keys(r, items, keys, a.get(2) && truthy(*a.get(2)));
    return Value::list(std::move(items));
  }
  if (name == "sort" || name == "unique") {
    BoundArgs a(args, name,
                name == "sort"
                    ? std::vector<std::string_view>{"reverse", "case_sensitive", "attribute"}
                    : std::vector<std::string_view>{"case_sensitive", "attribute"});
    size_t base = name == "sort" ? 1 : 0;
    bool case_sensitive = a.get(base) && truthy(*a.get(base));
    const Value* attr = a.get(base + 1);
    std::vector<Value> items = r.iterate(v);
    std::vector<Value> keys;
    for (const Value& item : items) {
      keys.push_back(
          lower_if_string(attr ? attr_path(r, item, str_of(r, *attr)) : item, case_sensitive));
    }
    if (name == "sort") {
      sort_by_keys(r, items, keys, a.get(0) && truthy(*a.get(0)));
      return Value::list(std::move(items));
    }
    std::vector<Value> out, seen;
    for (size_t i = 0; i < items.size(); ++i) {
      r.charge(static_cast<int64_t>(seen.size()));
      bool dup =
          std::any_of(seen.begin(), seen.end(), [&](const Value& k) { return equals(k, keys[i]); });
      if (!dup) {
        seen.push_back(keys[i]);
        out.push_back(items[i]);
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "map") return map_items(r, v, args);
  if (name == "select" || name == "reject") return select(r, v, args, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") {
    return select(r, v, args, true, name == "selectattr");
  }
  if (name == "sum") {
    BoundArgs a(args, name, {"attribute", "start"});
    Value total = a.get_or(1, Value(0));
    for (const Value& item : r.iterate(v)) {
      total = binary_op(r, "+", total, a.get(0) ? attr_path(r, item, str_of(r, *a.get(0))) : item);
    }
    return total;
  }
  fail(fmt::format("no filter named '{}'", name));
}

}  // namespace sluice::chat::jinja
