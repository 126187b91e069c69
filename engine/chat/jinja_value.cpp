#include "engine/chat/jinja_value.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/chat/jinja_ast.h"  // MacroDef::name
#include "engine/chat/jinja_text.h"

namespace sluice::chat::jinja {
namespace {

// Appends to a string, failing once it passes max_bytes.
struct Sink {
  std::string& out;
  size_t max_bytes;
  void check() const {
    if (out.size() > max_bytes) {
      fail(fmt::format("chat template built a text longer than {} bytes (max_output_bytes)",
                       max_bytes));
    }
  }
  void put(std::string_view s) {
    out.append(s);
    check();
  }
};

void check_depth(int32_t depth) {
  if (depth > kMaxValueDepth) {
    fail(fmt::format("chat template built a value nested {} deep; the limit is {}", depth,
                     kMaxValueDepth));
  }
}

void append_repr(Sink& s, const Value& v, bool top_level_str);

void append_items_repr(Sink& s, const ListData& l) {
  s.put(l.is_tuple ? "(" : "[");
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (i > 0) s.put(", ");
    append_repr(s, l.items[i], false);
  }
  if (l.is_tuple && l.items.size() == 1) s.put(",");
  s.put(l.is_tuple ? ")" : "]");
}

void append_pairs_repr(Sink& s, const std::vector<std::pair<std::string, Value>>& items) {
  s.put("{");
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s.put(", ");
    append_py_repr(s.out, items[i].first);
    s.put(": ");
    append_repr(s, items[i].second, false);
  }
  s.put("}");
}

// str(v) when top_level_str, else repr(v).
void append_repr(Sink& s, const Value& v, bool top_level_str) {
  using K = Value::Kind;
  switch (v.kind()) {
    case K::kUndefined:
      s.put(top_level_str ? "" : "Undefined");
      return;
    case K::kNone:
      s.put("None");
      return;
    case K::kBool:
      s.put(v.as_bool() ? "True" : "False");
      return;
    case K::kInt:
      s.put(std::to_string(v.as_int()));
      return;
    case K::kFloat:
      s.put(format_py_float(v.as_double()));
      return;
    case K::kString:
      if (top_level_str) {
        s.put(v.as_string());
      } else {
        append_py_repr(s.out, v.as_string());
        s.check();
      }
      return;
    case K::kList:
      append_items_repr(s, v.as_list());
      return;
    case K::kDict:
      append_pairs_repr(s, v.as_dict().items);
      return;
    case K::kNamespace:
      s.put("<Namespace ");
      append_pairs_repr(s, v.as_namespace().attrs);
      s.put(">");
      return;
    case K::kCallable: {
      const Callable& c = v.as_callable();
      if (c.type == Callable::Type::kMacro) {
        s.put(fmt::format("<Macro '{}'>", c.name));
      } else if (c.type == Callable::Type::kMethod) {
        s.put(fmt::format("<built-in method {} of {} object>", c.name, type_name(c.self)));
      } else {
        s.put(fmt::format("<function {}>", c.name));
      }
      return;
    }
  }
}

void append_json(Sink& s, const Value& v, const JsonOptions& o, int level) {
  using K = Value::Kind;
  auto newline = [&](int lvl) {
    s.put("\n");
    for (int i = 0; i < lvl; ++i) s.put(o.indent);
  };
  switch (v.kind()) {
    case K::kNone:
      s.put("null");
      return;
    case K::kBool:
      s.put(v.as_bool() ? "true" : "false");
      return;
    case K::kInt:
      s.put(std::to_string(v.as_int()));
      return;
    case K::kFloat: {
      double d = v.as_double();
      if (std::isnan(d)) {
        s.put("NaN");
      } else if (std::isinf(d)) {
        s.put(d > 0 ? "Infinity" : "-Infinity");
      } else {
        s.put(format_py_float(d));
      }
      return;
    }
    case K::kString:
      append_json_string(s.out, v.as_string(), o.ensure_ascii);
      s.check();
      return;
    case K::kList: {
      const auto& items = v.as_list().items;
      if (items.empty()) return s.put("[]");
      s.put("[");
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) s.put(o.item_separator);
        if (o.has_indent) newline(level + 1);
        append_json(s, items[i], o, level + 1);
      }
      if (o.has_indent) newline(level);
      s.put("]");
      return;
    }
    case K::kDict: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.as_dict().items) items.push_back(&kv);
      if (items.empty()) return s.put("{}");
      if (o.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      s.put("{");
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) s.put(o.item_separator);
        if (o.has_indent) newline(level + 1);
        append_json_string(s.out, items[i]->first, o.ensure_ascii);
        s.put(o.key_separator);
        append_json(s, items[i]->second, o, level + 1);
      }
      if (o.has_indent) newline(level);
      s.put("}");
      return;
    }
    default:
      fail(fmt::format("Object of type {} is not JSON serializable", type_name(v)));
  }
}

}  // namespace

void fail(const std::string& message) { throw TemplateError(message); }

Value Value::list(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  data->is_tuple = is_tuple;
  for (const Value& item : items) {
    data->depth = std::max(data->depth, item.depth() + 1);
    data->weight += item.weight();
    data->holds_namespace = data->holds_namespace || item.holds_namespace();
  }
  check_depth(data->depth);
  data->items = std::move(items);
  return Value(Storage(std::shared_ptr<const ListData>(std::move(data))));
}

Value Value::dict(std::vector<std::pair<std::string, Value>> items, bool keys_unique) {
  auto data = std::make_shared<DictData>();
  // Keys view into data->items, which is reserved up front and so never reallocates. Small
  // dicts (most of them) find duplicates by a linear scan instead.
  constexpr size_t kIndexFrom = 16;
  std::unordered_map<std::string_view, size_t> seen;
  data->items.reserve(items.size());
  for (auto& [key, value] : items) {
    data->depth = std::max(data->depth, value.depth() + 1);
    data->weight += value.weight();
    data->holds_namespace = data->holds_namespace || value.holds_namespace();
    size_t dup = data->items.size();
    if (keys_unique) {
      // nothing to look for
    } else if (items.size() >= kIndexFrom) {
      auto it = seen.find(key);
      if (it != seen.end()) dup = it->second;
    } else {
      for (size_t i = 0; i < data->items.size(); ++i) {
        if (data->items[i].first == key) dup = i;
      }
    }
    if (dup != data->items.size()) {
      data->items[dup].second = std::move(value);
      continue;
    }
    data->items.emplace_back(std::move(key), std::move(value));
    if (items.size() >= kIndexFrom) seen.emplace(data->items.back().first, data->items.size() - 1);
    // (with keys_unique the map still becomes the lookup index for big dicts)
  }
  check_depth(data->depth);
  data->index = std::move(seen);
  return Value(Storage(std::shared_ptr<const DictData>(std::move(data))));
}

int32_t Value::depth() const {
  switch (kind()) {
    case Kind::kList:
      return as_list().depth;
    case Kind::kDict:
      return as_dict().depth;
    case Kind::kNamespace: {
      int32_t d = 1;
      for (const auto& kv : as_namespace().attrs) d = std::max(d, kv.second.depth() + 1);
      return d;
    }
    default:
      return 0;
  }
}

int64_t Value::weight() const {
  switch (kind()) {
    case Kind::kList:
      return as_list().weight;
    case Kind::kDict:
      return as_dict().weight;
    case Kind::kNamespace: {
      int64_t w = 1;
      for (const auto& kv : as_namespace().attrs) w += kv.second.weight();
      return w;
    }
    default:
      return 1;
  }
}

bool Value::holds_namespace() const {
  switch (kind()) {
    case Kind::kList:
      return as_list().holds_namespace;
    case Kind::kDict:
      return as_dict().holds_namespace;
    case Kind::kNamespace:
      return true;
    default:
      return false;
  }
}

const Value* DictData::find(std::string_view key) const {
  if (!index.empty()) {
    auto it = index.find(key);
    return it == index.end() ? nullptr : &items[it->second].second;
  }
  for (const auto& kv : items) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

Value* Namespace::find(std::string_view name) {
  for (auto& kv : attrs) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

std::string_view type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.as_list().is_tuple ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kCallable:
      return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_double() != 0.0;
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
      return !v.as_list().items.empty();
    case Value::Kind::kDict:
      return !v.as_dict().items.empty();
    default:
      return true;
  }
}

bool equals(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone:
      return true;
    case K::kString:
      return a.as_string() == b.as_string();
    case K::kList: {
      const ListData& x = a.as_list();
      const ListData& y = b.as_list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case K::kDict: {
      const DictData& x = a.as_dict();
      const DictData& y = b.as_dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [key, value] : x.items) {
        const Value* other = y.find(key);
        if (other == nullptr || !equals(value, *other)) return false;
      }
      return true;
    }
    case K::kNamespace:
      return &a.as_namespace() == &b.as_namespace();
    case K::kCallable: {
      const Callable& x = a.as_callable();
      const Callable& y = b.as_callable();
      return x.type == y.type && x.name == y.name && x.macro == y.macro && equals(x.self, y.self);
    }
    default:
      return false;
  }
}

bool compare(const Value& a, std::string_view op, const Value& b) {
  auto apply = [&](auto x, auto y) {
    if (op == "<") return x < y;
    if (op == "<=") return x <= y;
    if (op == ">") return x > y;
    return x >= y;
  };
  for (const Value* v : {&a, &b}) {
    if (v->is_undefined()) fail(v->undefined_hint());
  }
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return apply(a.as_double(), b.as_double());
    return apply(a.as_int(), b.as_int());
  }
  if (a.is_string() && b.is_string()) return apply(a.as_string(), b.as_string());
  if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return compare(x[i], op, y[i]);
    }
    return apply(x.size(), y.size());
  }
  fail(fmt::format("'{}' not supported between instances of '{}' and '{}'", op, type_name(a),
                   type_name(b)));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        fail(fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list().items) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default:
      fail(fmt::format("argument of type '{}' is not iterable", type_name(container)));
  }
}

std::string to_str(const Value& v, size_t max_bytes) {
  if (v.is_string()) return v.as_string();
  std::string out;
  Sink sink{out, max_bytes};
  append_repr(sink, v, true);
  return out;
}

std::string repr(const Value& v, size_t max_bytes) {
  std::string out;
  Sink sink{out, max_bytes};
  append_repr(sink, v, false);
  return out;
}

std::string to_json(const Value& v, const JsonOptions& options, size_t max_bytes) {
  std::string out;
  Sink sink{out, max_bytes};
  append_json(sink, v, options, 0);
  return out;
}

}  // namespace sluice::chat::jinja
