#include "frontend/openai_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/check.h"

namespace sluice::frontend {
namespace {

using nlohmann::json;

constexpr size_t kMaxQuotedBytes = 64;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();

ApiError invalid(std::optional<std::string> param, std::string message) {
  ApiError e;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

// At most kMaxQuotedBytes of a valid UTF-8 string, cut at a character boundary, for
// quoting client text in a message.
std::string quote_text(std::string_view s) {
  if (s.size() <= kMaxQuotedBytes) return fmt::format("'{}'", s);
  size_t n = kMaxQuotedBytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return fmt::format("'{}...'", s.substr(0, n));
}

// Printable ASCII only: library messages may carry input bytes.
std::string ascii_only(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return out;
}

std::string member_path(const std::string& parent, std::string_view key) {
  std::string k(key.size() <= kMaxQuotedBytes ? key : quote_text(key));
  return parent.empty() ? k : parent + "." + k;
}

std::string element_path(const std::string& parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

// ---- Strict JSON: a SAX handler that builds the document -------------------------------
//
// nlohmann's own DOM parser keeps the last of repeated keys and has no depth limit, so
// this handler builds the same json value itself, refusing a repeated key and the
// (max_depth + 1)-th open container the moment it sees them. It tracks the path being
// parsed, so that an error inside a value (bad UTF-8, a NaN literal, a number overflow)
// names the parameter.
class StrictDomBuilder {
 public:
  StrictDomBuilder(json* root, int max_depth) : root_(root), max_depth_(max_depth) {}

  std::optional<ApiError>& error() { return error_; }

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const std::string& /*text*/) { return put(v); }
  bool binary(json::binary_t& /*v*/) { return fail(std::nullopt, "unexpected binary value"); }

  bool string(std::string& v) {
    if (v.find('\0') != std::string::npos) {
      std::optional<std::string> p = path(/*into_value=*/true);
      return fail(
          p, fmt::format("{} contains U+0000 (NUL), which is not accepted", p ? *p : "a string"));
    }
    return put(std::move(v));
  }

  bool key(std::string& k) {
    Level& top = levels_.back();
    if (k.find('\0') != std::string::npos) {
      return fail(path(/*into_value=*/false),
                  "an object key contains U+0000 (NUL), which is not accepted");
    }
    if (top.node->contains(k)) {
      std::optional<std::string> parent = path(/*into_value=*/false);
      std::string p = member_path(parent.value_or(""), k);
      return fail(p, fmt::format("duplicate key {} in the JSON body", quote_text(p)));
    }
    top.key = std::move(k);
    top.key_pending = true;
    return true;
  }

  bool start_object(size_t /*num_elements*/) { return open(json::object()); }
  bool start_array(size_t /*num_elements*/) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool parse_error(size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    // what(): "[json.exception.parse_error.101] parse error at line 1, column 9: syntax
    // error while parsing value - invalid literal; last read: 'NaN'". The part from
    // "; last read" on echoes input bytes, so it goes.
    std::string_view what = ex.what();
    if (size_t bracket = what.find("] "); bracket != std::string_view::npos) {
      what.remove_prefix(bracket + 2);
    }
    if (size_t last = what.find("; last read"); last != std::string_view::npos) {
      what = what.substr(0, last);
    }
    what = what.substr(0, 200);  // a number token (in "number overflow parsing '...'") may be long
    const bool bad_utf8 = what.find("UTF-8") != std::string_view::npos ||
                          what.find("surrogate") != std::string_view::npos;
    std::optional<std::string> p = path(/*into_value=*/true);
    std::string message;
    if (bad_utf8) {
      message = fmt::format("{} is not valid UTF-8 (byte {} of the body): {}",
                            p ? *p : "the JSON body", position, ascii_only(what));
    } else if (p) {
      message = fmt::format("invalid JSON in the value of '{}': {}", *p, ascii_only(what));
    } else {
      message = fmt::format("the body is not valid JSON: {}", ascii_only(what));
    }
    return fail(std::move(p), std::move(message));
  }

 private:
  struct Level {
    json* node = nullptr;      // an object or array under construction
    std::string key;           // objects: the last key read
    bool key_pending = false;  // objects: `key` awaits its value
  };

  // The path of the value being parsed (into_value) or of the innermost open container.
  // Null at the top level.
  std::optional<std::string> path(bool into_value) const {
    std::string p;
    bool any = false;
    for (size_t i = 0; i < levels_.size(); ++i) {
      const Level& l = levels_[i];
      const bool innermost = i + 1 == levels_.size();
      if (innermost && !into_value) break;
      if (l.node->is_array()) {
        // The element being parsed: the last one if it is an open container, else the next.
        size_t index = innermost ? l.node->size() : l.node->size() - 1;
        p = element_path(p, index);
      } else {
        if (innermost && !l.key_pending) break;
        p = member_path(p, l.key);
      }
      any = true;
    }
    if (!any) return std::nullopt;
    return p;
  }

  bool fail(std::optional<std::string> param, std::string message) {
    if (!error_) error_ = invalid(std::move(param), std::move(message));
    return false;
  }

  // Stores `v` where the parser is (the root, the next array element or the pending key's
  // value) and returns where it went.
  json* insert(json&& v) {
    if (levels_.empty()) {
      *root_ = std::move(v);
      return root_;
    }
    Level& top = levels_.back();
    if (top.node->is_array()) {
      top.node->push_back(std::move(v));
      return &top.node->back();
    }
    json& slot = (*top.node)[top.key];
    slot = std::move(v);
    top.key_pending = false;
    return &slot;
  }

  bool put(json&& v) {
    insert(std::move(v));
    return true;
  }

  bool open(json&& container) {
    if (static_cast<int>(levels_.size()) >= max_depth_) {
      return fail(std::nullopt,
                  fmt::format("the JSON body is nested deeper than {} levels", max_depth_));
    }
    // NOTE: pointers into a parent stay valid: a parent gains no element while a child
    // is open.
    Level level;
    level.node = insert(std::move(container));
    levels_.push_back(std::move(level));
    return true;
  }

  bool close() {
    levels_.pop_back();
    return true;
  }

  json* root_;
  int max_depth_;
  std::vector<Level> levels_;
  std::optional<ApiError> error_;
};

// ---- Typed field access ---------------------------------------------------------------

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a decimal number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

// OpenAI's wording for a type error.
ApiError wrong_type(const std::string& path, std::string_view expected, const json& got) {
  return invalid(path, fmt::format("Invalid type for '{}': expected {}, but got {} instead.", path,
                                   expected, type_name(got)));
}

// obj[key], or nullptr when absent or JSON null (OpenAI treats null as "not given").
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<ApiError> read_bool(const json& v, const std::string& path, bool* out) {
  if (!v.is_boolean()) return wrong_type(path, "a boolean", v);
  *out = v.get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_string(const json& v, const std::string& path, std::string* out) {
  if (!v.is_string()) return wrong_type(path, "a string", v);
  *out = v.get<std::string>();
  return std::nullopt;
}

// A JSON integer in [lo, hi]. An integer too large for 64 bits reaches here as a float
// (nlohmann's fallback), and is out of range rather than of the wrong type.
std::optional<ApiError> read_int(const json& v, const std::string& path, int64_t lo, int64_t hi,
                                 int64_t* out) {
  auto out_of_range = [&] {
    return invalid(path, fmt::format("{} must be in [{}, {}], got {}", path, lo, hi, v.dump()));
  };
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo) return out_of_range();
    *out = static_cast<int64_t>(u);
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) return out_of_range();
    *out = i;
    return std::nullopt;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::fabs(d) >= 0x1p63) return out_of_range();
    return invalid(path, fmt::format("Invalid type for '{}': expected an integer, but got a "
                                     "decimal number instead.",
                                     path));
  }
  return wrong_type(path, "an integer", v);
}

std::optional<ApiError> read_int32(const json& v, const std::string& path, int64_t lo, int64_t hi,
                                   int32_t* out) {
  int64_t i = 0;
  if (auto e = read_int(v, path, lo, hi, &i)) return e;
  *out = static_cast<int32_t>(i);
  return std::nullopt;
}

// Any JSON number. A magnitude beyond float's becomes an infinity, which the range check
// (sampling::validate) then refuses by name.
std::optional<ApiError> read_float(const json& v, const std::string& path, float* out) {
  if (!v.is_number()) return wrong_type(path, "a number", v);
  double d = v.get<double>();
  if (d > FLT_MAX) {
    *out = std::numeric_limits<float>::infinity();
  } else if (d < -FLT_MAX) {
    *out = -std::numeric_limits<float>::infinity();
  } else {
    *out = static_cast<float>(d);
  }
  return std::nullopt;
}

std::optional<ApiError> read_token_id(const json& v, const std::string& path,
                                      const RequestLimits& limits, TokenId* out) {
  if (!v.is_number_integer()) return wrong_type(path, "an integer token id", v);
  if (v.is_number_unsigned() ? v.get<uint64_t>() >= static_cast<uint64_t>(limits.vocab_size)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() >= limits.vocab_size)) {
    return invalid(path, fmt::format("{}: token id {} is outside the vocabulary [0, {})", path,
                                     v.dump(), limits.vocab_size));
  }
  *out = static_cast<TokenId>(v.get<int64_t>());
  return std::nullopt;
}

// A canonical non-negative decimal ("0", "50256"; not "-1", "05", " 5", "1e3") that fits
// an int32.
std::optional<int32_t> parse_token_key(std::string_view s) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > kInt32Max) return std::nullopt;
  return static_cast<int32_t>(v);
}

// ---- Parameters ------------------------------------------------------------------------

// A known parameter this server does not implement: refused unless absent or at its
// default, rather than silently ignored (the output would not be what was asked for).
std::optional<ApiError> unsupported(const json& root, const char* key, std::string why) {
  if (field(root, key) == nullptr) return std::nullopt;
  return invalid(key, fmt::format("{} is not supported by this server: {}", key, why));
}

std::optional<ApiError> check_unsupported(const json& root, Endpoint endpoint) {
  for (const char* key : {"tools", "functions"}) {
    const json* v = field(root, key);
    if (v != nullptr && !(v->is_array() && v->empty())) {
      return invalid(key, fmt::format("{} is not supported by this server (no tool calling)", key));
    }
  }
  for (const char* key : {"tool_choice", "function_call"}) {
    const json* v = field(root, key);
    if (v != nullptr && !(v->is_string() && (*v == "none" || *v == "auto"))) {
      return invalid(key, fmt::format("{} other than \"none\" or \"auto\" is not supported by "
                                      "this server (no tool calling)",
                                      key));
    }
  }
  if (const json* v = field(root, "response_format")) {
    const json* type = v->is_object() ? field(*v, "type") : nullptr;
    if (type == nullptr || *type != "text") {
      return invalid("response_format",
                     "response_format other than {\"type\": \"text\"} is not "
                     "supported by this server (no structured output)");
    }
  }
  for (const char* key :
       {"guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs"}) {
    if (auto e = unsupported(root, key, "no structured output")) return e;
  }
  if (auto e =
          unsupported(root, "chat_template",
                      "request-supplied chat templates are refused; the model's own is used")) {
    return e;
  }
  if (endpoint == Endpoint::kCompletions) {
    const json* suffix = field(root, "suffix");
    if (suffix != nullptr &&
        !(suffix->is_string() && suffix->get_ref<const std::string&>().empty())) {
      return invalid("suffix", "suffix is not supported by this server (no insertion)");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> parse_stop(const json& root, const RequestLimits& limits,
                                   ParsedRequest& r) {
  const json* v = field(root, "stop");
  if (v == nullptr) return std::nullopt;
  auto add = [&](const json& s, const std::string& path) -> std::optional<ApiError> {
    if (!s.is_string()) return wrong_type(path, "a string", s);
    const std::string& text = s.get_ref<const std::string&>();
    if (text.empty()) return invalid("stop", fmt::format("{} is an empty stop string", path));
    if (text.size() > static_cast<size_t>(limits.max_stop_bytes)) {
      return invalid("stop", fmt::format("{} is {} bytes long; at most {} bytes allowed", path,
                                         text.size(), limits.max_stop_bytes));
    }
    r.stop.push_back(text);
    return std::nullopt;
  };
  if (v->is_string()) return add(*v, "stop");
  if (!v->is_array()) return wrong_type("stop", "a string or an array of strings", *v);
  if (v->size() > static_cast<size_t>(limits.max_stop)) {
    return invalid(
        "stop", fmt::format("stop has {} strings; at most {} allowed", v->size(), limits.max_stop));
  }
  for (size_t i = 0; i < v->size(); ++i) {
    if (auto e = add((*v)[i], element_path("stop", i))) return e;
  }
  return std::nullopt;
}

std::optional<ApiError> parse_logit_bias(const json& root, sampling::SamplingParams& s) {
  const json* v = field(root, "logit_bias");
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) return wrong_type("logit_bias", "an object", *v);
  if (v->size() > static_cast<size_t>(sampling::kMaxLogitBiasEntries)) {
    return invalid("logit_bias", fmt::format("logit_bias has {} entries; at most {} allowed",
                                             v->size(), sampling::kMaxLogitBiasEntries));
  }
  for (const auto& [key, bias] : v->items()) {
    std::optional<int32_t> id = parse_token_key(key);
    if (!id) {
      return invalid("logit_bias", fmt::format("logit_bias key {} is not a token id (a "
                                               "non-negative decimal integer)",
                                               quote_text(key)));
    }
    float b = 0.0f;
    if (!bias.is_number()) return wrong_type("logit_bias", "a number as each bias", bias);
    if (auto e = read_float(bias, "logit_bias", &b)) return e;
    s.logit_bias.emplace_back(*id, b);
  }
  return std::nullopt;  // ids in the vocabulary and biases in range: sampling::validate
}

// Sampling and length parameters common to both endpoints.
std::optional<ApiError> parse_common(const json& root, const RequestLimits& limits,
                                     ParsedRequest& r) {
  sampling::SamplingParams& s = r.sampling;
  if (const json* v = field(root, "model")) {
    if (auto e = read_string(*v, "model", &r.model)) return e;
  }

  std::optional<int32_t> max_tokens, max_completion_tokens;
  for (auto [key, dst] : {std::pair{"max_tokens", &max_tokens},
                          std::pair{"max_completion_tokens", &max_completion_tokens}}) {
    if (const json* v = field(root, key)) {
      int32_t t = 0;
      if (auto e = read_int32(*v, key, 1, kInt32Max, &t)) return e;
      *dst = t;
    }
  }
  if (max_tokens && max_completion_tokens && *max_tokens != *max_completion_tokens) {
    return invalid("max_completion_tokens",
                   fmt::format("max_tokens ({}) and max_completion_tokens ({}) disagree; send "
                               "one of them",
                               *max_tokens, *max_completion_tokens));
  }
  r.max_tokens = max_tokens ? max_tokens : max_completion_tokens;

  if (const json* v = field(root, "n")) {
    if (auto e = read_int32(*v, "n", 1, limits.max_n, &r.n)) return e;
  }
  if (const json* v = field(root, "stream")) {
    if (auto e = read_bool(*v, "stream", &r.stream)) return e;
  }
  if (const json* v = field(root, "stream_options")) {
    if (!v->is_object()) return wrong_type("stream_options", "an object", *v);
    if (!r.stream) {
      return invalid("stream_options", "stream_options is only allowed when stream is true");
    }
    if (const json* u = field(*v, "include_usage")) {
      if (auto e = read_bool(*u, "stream_options.include_usage", &r.include_usage)) return e;
    }
  }
  if (auto e = parse_stop(root, limits, r)) return e;

  for (auto [key, dst] :
       {std::pair{"temperature", &s.temperature}, std::pair{"top_p", &s.top_p},
        std::pair{"min_p", &s.min_p}, std::pair{"presence_penalty", &s.presence_penalty},
        std::pair{"frequency_penalty", &s.frequency_penalty},
        std::pair{"repetition_penalty", &s.repetition_penalty}}) {
    if (const json* v = field(root, key)) {
      if (auto e = read_float(*v, key, dst)) return e;
    }
  }
  if (const json* v = field(root, "top_k")) {
    if (auto e = read_int32(*v, "top_k", kInt32Min, kInt32Max, &s.top_k)) return e;
  }
  if (const json* v = field(root, "min_tokens")) {
    if (auto e = read_int32(*v, "min_tokens", 0, kInt32Max, &s.min_tokens)) return e;
  }
  if (const json* v = field(root, "seed")) {
    int64_t seed = 0;
    if (auto e = read_int(*v, "seed", std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max(), &seed)) {
      return e;
    }
    s.seed = static_cast<uint64_t>(seed);
  }
  if (auto e = parse_logit_bias(root, s)) return e;

  if (const json* v = field(root, "stop_token_ids")) {
    if (!v->is_array()) return wrong_type("stop_token_ids", "an array of token ids", *v);
    if (v->size() > static_cast<size_t>(limits.max_stop_token_ids)) {
      return invalid("stop_token_ids", fmt::format("stop_token_ids has {} entries; at most {} "
                                                   "allowed",
                                                   v->size(), limits.max_stop_token_ids));
    }
    for (size_t i = 0; i < v->size(); ++i) {
      TokenId id = 0;
      if (auto e = read_token_id((*v)[i], element_path("stop_token_ids", i), limits, &id)) return e;
      r.stop_token_ids.push_back(id);
    }
  }
  for (auto [key, dst] : {std::pair{"ignore_eos", &r.ignore_eos},
                          std::pair{"skip_special_tokens", &r.skip_special_tokens}}) {
    if (const json* v = field(root, key)) {
      if (auto e = read_bool(*v, key, dst)) return e;
    }
  }
  if (const json* v = field(root, "user")) {
    if (auto e = read_string(*v, "user", &r.user)) return e;
  }
  return std::nullopt;
}

// ---- Chat ------------------------------------------------------------------------------

constexpr std::string_view kRoles[] = {"system", "developer", "user", "assistant", "tool"};

std::optional<ApiError> parse_content(const json& v, const std::string& path, bool assistant,
                                      chat::ChatMessage& m) {
  if (v.is_string()) {
    m.content = v.get<std::string>();
    return std::nullopt;
  }
  if (!v.is_array()) return wrong_type(path, "a string or an array of content parts", v);
  if (v.empty()) return invalid(path, fmt::format("{} is an empty array of content parts", path));
  for (size_t j = 0; j < v.size(); ++j) {
    const std::string part_path = element_path(path, j);
    const json& part = v[j];
    if (!part.is_object()) return wrong_type(part_path, "an object", part);
    const json* type = field(part, "type");
    const std::string type_path = part_path + ".type";
    if (type == nullptr) return invalid(type_path, fmt::format("{} is missing", type_path));
    if (!type->is_string()) return wrong_type(type_path, "a string", *type);
    const std::string& t = type->get_ref<const std::string&>();
    // The text lives under the key named by the type: {"type": "text", "text": ...},
    // {"type": "refusal", "refusal": ...}.
    if (t == "text" || (assistant && t == "refusal")) {
      const std::string text_path = part_path + "." + t;
      const json* text = field(part, t.c_str());
      if (text == nullptr) return invalid(text_path, fmt::format("{} is missing", text_path));
      chat::ContentPart p;
      p.type = "text";
      if (auto e = read_string(*text, text_path, &p.text)) return e;
      m.parts.push_back(std::move(p));
    } else if (t == "image_url" || t == "input_audio" || t == "file" || t == "image" ||
               t == "audio" || t == "video") {
      return invalid(type_path, fmt::format("content of type {} is not supported: this model "
                                            "takes text only",
                                            quote_text(t)));
    } else {
      return invalid(type_path, fmt::format("{} has an unknown content part type {}; expected "
                                            "{}",
                                            type_path, quote_text(t),
                                            assistant ? "'text' or 'refusal'" : "'text'"));
    }
  }
  return std::nullopt;
}

std::optional<ApiError> parse_message(const json& v, const std::string& path,
                                      chat::ChatMessage& m) {
  if (!v.is_object()) return wrong_type(path, "an object", v);
  const std::string role_path = path + ".role";
  const json* role = field(v, "role");
  if (role == nullptr) return invalid(role_path, fmt::format("{} is missing", role_path));
  if (auto e = read_string(*role, role_path, &m.role)) return e;
  if (std::find(std::begin(kRoles), std::end(kRoles), m.role) == std::end(kRoles)) {
    return invalid(role_path, fmt::format("{} is {}; expected one of 'system', 'developer', "
                                          "'user', 'assistant', 'tool'",
                                          role_path, quote_text(m.role)));
  }
  const bool assistant = m.role == "assistant";
  if (const json* name = field(v, "name")) {
    std::string ignored;
    if (auto e = read_string(*name, path + ".name", &ignored)) return e;
  }
  if (assistant) {
    for (const char* key : {"tool_calls", "function_call"}) {
      const json* calls = field(v, key);
      if (calls != nullptr && !(calls->is_array() && calls->empty())) {
        return invalid(path + "." + key, fmt::format("{}.{} is not supported by this server (no "
                                                     "tool calling)",
                                                     path, key));
      }
    }
  }
  if (m.role == "tool") {
    const std::string id_path = path + ".tool_call_id";
    const json* id = field(v, "tool_call_id");
    if (id == nullptr) return invalid(id_path, fmt::format("{} is missing", id_path));
    std::string ignored;
    if (auto e = read_string(*id, id_path, &ignored)) return e;
  }
  const std::string content_path = path + ".content";
  const json* content = field(v, "content");
  if (content == nullptr) {
    // OpenAI: content may be null only for an assistant message (one that made tool calls,
    // or a prefix for the model to continue from).
    if (assistant) return std::nullopt;
    return invalid(content_path, fmt::format("{} is missing", content_path));
  }
  return parse_content(*content, content_path, assistant, m);
}

std::optional<ApiError> parse_chat(const json& root, const RequestLimits& limits,
                                   ParsedRequest& r) {
  const json* messages = field(root, "messages");
  if (messages == nullptr) return invalid("messages", "messages is required");
  if (!messages->is_array()) return wrong_type("messages", "an array", *messages);
  if (messages->empty()) return invalid("messages", "messages must not be empty");
  r.messages.resize(messages->size());
  for (size_t i = 0; i < messages->size(); ++i) {
    if (auto e = parse_message((*messages)[i], element_path("messages", i), r.messages[i])) {
      return e;
    }
  }

  bool logprobs = false;
  if (const json* v = field(root, "logprobs")) {
    if (auto e = read_bool(*v, "logprobs", &logprobs)) return e;
  }
  if (const json* v = field(root, "top_logprobs")) {
    int32_t k = 0;
    if (auto e = read_int32(*v, "top_logprobs", 0, limits.max_logprobs, &k)) return e;
    if (!logprobs) return invalid("top_logprobs", "top_logprobs requires logprobs to be true");
    r.sampling.logprobs = k;
  } else if (logprobs) {
    r.sampling.logprobs = 0;
  }

  if (const json* kwargs = field(root, "chat_template_kwargs")) {
    if (!kwargs->is_object()) return wrong_type("chat_template_kwargs", "an object", *kwargs);
    if (const json* v = field(*kwargs, "enable_thinking")) {
      bool b = false;
      if (auto e = read_bool(*v, "chat_template_kwargs.enable_thinking", &b)) return e;
      r.enable_thinking = b;
    }
  }
  return std::nullopt;
}

// ---- Completions -----------------------------------------------------------------------

std::optional<ApiError> parse_token_list(const json& v, const std::string& path,
                                         const RequestLimits& limits, PromptInput& p) {
  if (v.empty()) return invalid(path, fmt::format("{} is an empty list of token ids", path));
  p.token_ids.reserve(v.size());
  for (size_t j = 0; j < v.size(); ++j) {
    TokenId id = 0;
    if (auto e = read_token_id(v[j], element_path(path, j), limits, &id)) return e;
    p.token_ids.push_back(id);
  }
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const json& root, const RequestLimits& limits,
                                     ParsedRequest& r) {
  const json* v = field(root, "prompt");
  if (v == nullptr) return invalid("prompt", "prompt is required");
  if (v->is_string()) {
    r.prompts.push_back(PromptInput{v->get<std::string>(), {}});
    return std::nullopt;
  }
  constexpr std::string_view kShapes =
      "a string, an array of strings, an array of token ids or an array of arrays of token ids";
  if (!v->is_array()) return wrong_type("prompt", kShapes, *v);
  if (v->empty()) return invalid("prompt", "prompt must not be an empty array");
  const json& first = (*v)[0];
  if (first.is_number_integer()) {  // [int]: one prompt of token ids
    PromptInput p;
    if (auto e = parse_token_list(*v, "prompt", limits, p)) return e;
    r.prompts.push_back(std::move(p));
    return std::nullopt;
  }
  if (!first.is_string() && !first.is_array()) return wrong_type("prompt[0]", kShapes, first);
  if (v->size() > static_cast<size_t>(limits.max_prompts)) {
    return invalid("prompt", fmt::format("prompt has {} prompts; at most {} allowed", v->size(),
                                         limits.max_prompts));
  }
  const bool strings = first.is_string();
  r.prompts.resize(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& item = (*v)[i];
    const std::string path = element_path("prompt", i);
    if (strings) {  // [string]
      if (!item.is_string()) return wrong_type(path, "a string, as prompt[0]", item);
      r.prompts[i].text = item.get<std::string>();
    } else {  // [[int]]
      if (!item.is_array()) return wrong_type(path, "an array of token ids, as prompt[0]", item);
      if (auto e = parse_token_list(item, path, limits, r.prompts[i])) return e;
    }
  }
  return std::nullopt;
}

std::optional<ApiError> parse_completions(const json& root, const RequestLimits& limits,
                                          ParsedRequest& r) {
  if (auto e = parse_prompt(root, limits, r)) return e;
  if (!r.max_tokens) r.max_tokens = 16;  // OpenAI's default for /v1/completions
  if (const json* v = field(root, "echo")) {
    if (auto e = read_bool(*v, "echo", &r.echo)) return e;
  }
  if (const json* v = field(root, "logprobs")) {
    int32_t k = 0;
    if (auto e = read_int32(*v, "logprobs", 0, limits.max_logprobs, &k)) return e;
    r.sampling.logprobs = k;
    if (r.echo) r.sampling.prompt_logprobs = k;
  }
  if (const json* v = field(root, "best_of")) {
    int32_t best_of = 0;
    if (auto e = read_int32(*v, "best_of", 1, kInt32Max, &best_of)) return e;
    if (best_of < r.n) {
      return invalid("n", fmt::format("n ({}) must be at most best_of ({})", r.n, best_of));
    }
    if (best_of > r.n) {
      return invalid("best_of", fmt::format("best_of ({}) greater than n ({}) is not supported "
                                            "by this server",
                                            best_of, r.n));
    }
  }
  return std::nullopt;
}

std::variant<ParsedRequest, ApiError> parse_object(Endpoint endpoint, const json& root,
                                                   const RequestLimits& limits) {
  ParsedRequest r;
  r.endpoint = endpoint;
  if (auto e = check_unsupported(root, endpoint)) return *e;
  if (auto e = parse_common(root, limits, r)) return *e;
  if (auto e = endpoint == Endpoint::kChatCompletions ? parse_chat(root, limits, r)
                                                      : parse_completions(root, limits, r)) {
    return *e;
  }
  if (r.max_tokens && r.sampling.min_tokens > *r.max_tokens) {
    return invalid("min_tokens", fmt::format("min_tokens ({}) must be at most max_tokens ({})",
                                             r.sampling.min_tokens, *r.max_tokens));
  }
  // Numeric ranges; the message begins with the parameter's name.
  const Status valid = sampling::validate(r.sampling, limits.vocab_size, limits.max_logprobs);
  if (!valid.is_ok()) {
    const std::string& m = valid.message();
    return invalid(m.substr(0, m.find(' ')), m);
  }
  return r;
}

}  // namespace

std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                    const RequestLimits& limits) {
  json root;
  StrictDomBuilder builder(&root, limits.max_json_depth);
  try {
    if (!json::sax_parse(body.begin(), body.end(), &builder)) {
      if (builder.error()) return *builder.error();
      return invalid(std::nullopt, "the body is not valid JSON");
    }
    if (!root.is_object()) {
      return invalid(std::nullopt,
                     fmt::format("the body must be a JSON object, not {}", type_name(root)));
    }
    return parse_object(endpoint, root, limits);
  } catch (const json::exception& ex) {
    // Not expected (every access checks the type first); a client's body is never a 500.
    return invalid(std::nullopt,
                   fmt::format("the request could not be read: {}", ascii_only(ex.what())));
  }
}

std::optional<ApiError> check_context(ParsedRequest& request, int prompt_tokens,
                                      const RequestLimits& limits) {
  SLUICE_CHECK(limits.max_model_len > 0, "check_context needs max_model_len > 0, got {}",
               limits.max_model_len);
  const bool chat = request.endpoint == Endpoint::kChatCompletions;
  const char* param = chat ? "messages" : "prompt";
  const char* what = chat ? "the messages" : "the prompt";
  if (prompt_tokens < 1) {
    return invalid(param,
                   fmt::format("{} rendered to no tokens; the model needs at least one", what));
  }
  const int64_t max_len = limits.max_model_len;
  std::optional<ApiError> error;
  if (request.max_tokens) {
    const int64_t total = int64_t{prompt_tokens} + *request.max_tokens;
    if (total <= max_len) return std::nullopt;
    error = invalid(
        param,
        fmt::format(
            "This model's maximum context length is {} tokens. However, you requested {} tokens "
            "({} in {}, {} in the completion). Please reduce the length of {} or completion.",
            max_len, total, prompt_tokens, what, *request.max_tokens, what));
  } else {
    if (prompt_tokens < max_len) {
      request.max_tokens = static_cast<int32_t>(max_len - prompt_tokens);
      return std::nullopt;
    }
    error = invalid(
        param,
        fmt::format(
            "This model's maximum context length is {} tokens. However, your {} resulted in {} "
            "tokens. Please reduce the length of {}.",
            max_len, chat ? "messages" : "prompt", prompt_tokens, what));
  }
  error->code = "context_length_exceeded";
  return error;
}

engine::Request to_engine_request(const ParsedRequest& request, std::vector<TokenId> prompt_ids) {
  SLUICE_CHECK(request.max_tokens.has_value(), "to_engine_request before check_context");
  engine::Request r;
  r.prompt = std::move(prompt_ids);
  r.sampling = request.sampling;
  r.max_tokens = *request.max_tokens;
  r.n = request.n;
  r.ignore_eos = request.ignore_eos;
  r.stop_token_ids = request.stop_token_ids;
  return r;
}

}  // namespace sluice::frontend
