#pragma once
// The values a chat template computes with: Python's None, bool, int, float, str, list,
// tuple and dict (insertion-ordered), Jinja's Undefined and namespace, and callables (macros,
// bound string/dict methods, the few globals). Strings, lists and dicts are immutable and
// shared, so copying a Value is cheap; only a namespace is mutable. Every container records
// its nesting depth and total element count ("weight") when it is built, so deep operations
// (==, repr, tojson) can be charged against the render budget before they run, and nothing
// can nest deeper than kMaxValueDepth (which also bounds recursion in destructors).
//
// Errors inside the interpreter are thrown as TemplateError and turned into a Status at the
// ChatTemplate boundary; nothing here throws past it.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::chat::jinja {

inline constexpr int32_t kMaxValueDepth = 128;
// Native stack that parsing, or one render, may use for its recursion (nested statements,
// expressions and macro calls), measured from frame addresses, not estimated. Compiling and
// rendering need this much free stack plus a little on the calling thread. AddressSanitizer
// makes frames several times larger, so its builds get a larger budget.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr size_t kMaxStackBytes = 4 << 20;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr size_t kMaxStackBytes = 4 << 20;
#else
inline constexpr size_t kMaxStackBytes = 512 << 10;
#endif
#else
inline constexpr size_t kMaxStackBytes = 512 << 10;
#endif

// Bytes of stack used since `base` (a __builtin_frame_address(0) taken further up).
// NOTE: stacks grow down on every platform sluice builds for.
inline size_t stack_used_since(uintptr_t base) {
  return base - reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
}

// A template error: a syntax error at compile time or a failed operation while rendering.
// line/column are 1-based, 0 when unknown (filled in by the statement that catches it).
struct TemplateError : std::runtime_error {
  explicit TemplateError(const std::string& message, int line_in = 0, int column_in = 0)
      : std::runtime_error(message), line(line_in), column(column_in) {}
  int line;
  int column;
  bool from_raise = false;  // raised by the template's raise_exception(): message kept as is
};

[[noreturn]] void fail(const std::string& message);

struct Undefined {
  std::string hint;  // what the error says if the value is used: "'x' is undefined"
};
struct None {};
struct ListData;
struct DictData;
struct Namespace;
struct Callable;

class Value {
 public:
  // Same order as Storage's alternatives.
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable
  };
  using Storage =
      std::variant<Undefined, None, bool, int64_t, double, std::shared_ptr<const std::string>,
                   std::shared_ptr<const ListData>, std::shared_ptr<const DictData>,
                   std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>;

  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}                                                      // NOLINT
  Value(bool b) : v_(b) {}                                                         // NOLINT
  Value(int64_t i) : v_(i) {}                                                      // NOLINT
  Value(int i) : v_(static_cast<int64_t>(i)) {}                                    // NOLINT
  Value(double d) : v_(d) {}                                                       // NOLINT
  Value(std::string s) : v_(std::make_shared<const std::string>(std::move(s))) {}  // NOLINT
  Value(std::string_view s) : Value(std::string(s)) {}                             // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                                  // NOLINT
  Value(std::shared_ptr<Namespace> ns) : v_(std::move(ns)) {}                      // NOLINT
  Value(std::shared_ptr<const Callable> c) : v_(std::move(c)) {}                   // NOLINT

  static Value undefined(std::string hint) { return Value(Storage(Undefined{std::move(hint)})); }
  // Throws if the list would nest deeper than kMaxValueDepth.
  static Value list(std::vector<Value> items, bool is_tuple = false);
  // Later duplicates of a key replace the value but keep the first position, as in Python.
  // `keys_unique` skips that check when the caller knows there are none (JSON objects).
  static Value dict(std::vector<std::pair<std::string, Value>> items, bool keys_unique = false);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python: bool is int
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  template <Kind K>
  const auto& get() const {
    return std::get<static_cast<size_t>(K)>(v_);
  }
  bool as_bool() const { return std::get<bool>(v_); }
  // int or bool as int64.
  int64_t as_int() const { return is_bool() ? (as_bool() ? 1 : 0) : std::get<int64_t>(v_); }
  // any number as double.
  double as_double() const { return is_float() ? std::get<double>(v_) : double(as_int()); }
  const std::string& as_string() const { return *get<Kind::kString>(); }
  const ListData& as_list() const { return *get<Kind::kList>(); }
  const DictData& as_dict() const { return *get<Kind::kDict>(); }
  Namespace& as_namespace() const { return *get<Kind::kNamespace>(); }
  const Callable& as_callable() const { return *get<Kind::kCallable>(); }
  // What using this Undefined fails with, e.g. "'x' is undefined".
  std::string undefined_hint() const {
    const std::string& hint = std::get<Undefined>(v_).hint;
    return hint.empty() ? "undefined value" : hint;
  }
  const Storage& storage() const { return v_; }

  int32_t depth() const;   // 0 for scalars
  int64_t weight() const;  // 1 for scalars
  bool holds_namespace() const;

 private:
  explicit Value(Storage v) : v_(std::move(v)) {}
  Storage v_;
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  int32_t depth = 1;
  int64_t weight = 1;
  bool holds_namespace = false;
};

struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  int32_t depth = 1;
  int64_t weight = 1;
  bool holds_namespace = false;
  // Lookup index for large dicts (keys view into `items`, which never changes once built).
  std::unordered_map<std::string_view, size_t> index;

  const Value* find(std::string_view key) const;
};

// `namespace(...)`: the one mutable value. It never holds another namespace (assignments
// that would are rejected), so values cannot form cycles.
struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  Value* find(std::string_view name);
};

struct MacroDef;  // jinja_ast.h
struct Callable {
  enum class Type : uint8_t { kMacro, kMethod, kGlobal };
  Type type;
  std::string name;                 // method or global name ("split", "range"), or macro name
  const MacroDef* macro = nullptr;  // kMacro: owned by the compiled program
  Value self;                       // kMethod: the string or dict the method is bound to
};

// Python's type() name: 'str', 'int', 'NoneType', 'list', 'dict', 'Undefined', ...
std::string_view type_name(const Value& v);
bool truthy(const Value& v);
// Python ==. Undefined equals only Undefined.
bool equals(const Value& a, const Value& b);
// Python <, <=, >, >= ("<", "<=", ">", ">="); throws on unorderable types.
bool compare(const Value& a, std::string_view op, const Value& b);
// Python `a in b`; throws where Python raises (e.g. int in str).
bool contains(const Value& container, const Value& item);

// Jinja's output conversion, str(): Undefined -> "", None -> "None", True -> "True",
// 1.0 -> "1.0", lists and dicts as Python's repr. Throws when the text would pass max_bytes.
std::string to_str(const Value& v, size_t max_bytes);
// Python's repr().
std::string repr(const Value& v, size_t max_bytes);

struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // used when has_indent
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// json.dumps(v, ...) with Python's formatting of floats; throws for Undefined, namespaces
// and callables (not JSON serializable) and when the text would pass max_bytes.
std::string to_json(const Value& v, const JsonOptions& options, size_t max_bytes);

}  // namespace sluice::chat::jinja
