#include "engine/chat/chat_template.h"

#include <fmt/format.h>

#include <new>
#include <nlohmann/json.hpp>

#include "engine/chat/jinja_interpreter.h"
#include "engine/chat/jinja_parser.h"

namespace sluice::chat {
namespace {

using jinja::Value;

// Converts the render context; nesting past kMaxValueDepth fails before recursing further.
template <typename Json>
Value from_json(const Json& j, int32_t depth) {
  if (depth > jinja::kMaxValueDepth) {
    jinja::fail(
        fmt::format("chat template context nests deeper than {} levels", jinja::kMaxValueDepth));
  }
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value(jinja::None{});
    case nlohmann::json::value_t::boolean:
      return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      // NOTE: Python would keep an exact big int; past int64 the value becomes a float.
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.template get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<std::string, Value>> items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        items.emplace_back(it.key(), from_json(it.value(), depth + 1));
      }
      return Value::dict(std::move(items), /*keys_unique=*/true);
    }
    default:
      jinja::fail("chat template context holds a value that is not JSON data (binary?)");
  }
}

Status to_status(const jinja::TemplateError& e, std::string_view what) {
  if (e.from_raise) return Status::invalid_argument(e.what());
  if (e.line == 0)
    return Status::invalid_argument(fmt::format("chat template {}: {}", what, e.what()));
  if (e.column == 0) {
    return Status::invalid_argument(
        fmt::format("chat template {}, line {}: {}", what, e.line, e.what()));
  }
  return Status::invalid_argument(
      fmt::format("chat template {}, line {}, column {}: {}", what, e.line, e.column, e.what()));
}

template <typename Json>
StatusOr<std::string> render_json(const jinja::Program& program, const TemplateLimits& limits,
                                  const Json& context) {
  if (!context.is_object()) {
    return Status::invalid_argument(
        fmt::format("chat template context must be a JSON object, got {}", context.type_name()));
  }
  try {
    Value vars = from_json(context, 0);
    jinja::Renderer renderer(program, limits);
    return renderer.render(vars);
  } catch (const jinja::TemplateError& e) {
    return to_status(e, "render failed");
  } catch (const std::bad_alloc&) {
    return Status::resource_exhausted("chat template render ran out of memory");
  } catch (const std::exception& e) {  // a bug here, but never worth a crash
    return Status::internal(fmt::format("chat template render failed unexpectedly: {}", e.what()));
  }
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::compile(std::string_view source,
                                             const TemplateLimits& limits) {
  try {
    std::shared_ptr<const jinja::Program> program = jinja::parse_template(source);
    return ChatTemplate(std::move(program), limits);
  } catch (const jinja::TemplateError& e) {
    return to_status(e, "syntax error");
  } catch (const std::bad_alloc&) {
    return Status::resource_exhausted("chat template compile ran out of memory");
  } catch (const std::exception& e) {
    return Status::internal(fmt::format("chat template compile failed unexpectedly: {}", e.what()));
  }
}

StatusOr<std::string> ChatTemplate::render(const nlohmann::json& context) const {
  return render_json(*program_, limits_, context);
}

StatusOr<std::string> ChatTemplate::render(const nlohmann::ordered_json& context) const {
  return render_json(*program_, limits_, context);
}

}  // namespace sluice::chat
